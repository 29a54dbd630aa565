//! UEFI boot options (`Boot####` variables): enough to find the Windows Boot
//! Manager so the agent can boot it next, once, through `BootNext` — never by
//! changing `BootOrder` (a changed boot order can trigger BitLocker recovery).

#![deny(clippy::indexing_slicing)]

use crate::util::le::{le16, utf16_units};
use alloc::string::String;
use alloc::vec::Vec;

/// A parsed `EFI_LOAD_OPTION`.
#[derive(Debug, PartialEq, Eq)]
pub struct LoadOption {
    /// `LOAD_OPTION_ACTIVE` (bit 0 of the attributes) is set.
    pub active: bool,
    /// The description shown in the firmware boot menu (e.g. "Windows Boot Manager").
    pub description: String,
    /// Text of every file-path node in the option's device path.
    pub files: Vec<String>,
}

/// Parses a load option; `None` when the bytes are not one.
pub fn parse(b: &[u8]) -> Option<LoadOption> {
    let attributes = u32::from_le_bytes(b.get(0..4)?.try_into().ok()?);
    let path_len = u16::from_le_bytes(b.get(4..6)?.try_into().ok()?) as usize;
    let mut at = 6;
    let mut desc = Vec::new();
    loop {
        let u = u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?);
        at += 2;
        if u == 0 {
            break;
        }
        desc.push(u);
    }
    let path = b.get(at..at + path_len)?;
    let mut files = Vec::new();
    let mut p = 0;
    // Device path nodes: type, subtype, u16 length (including the 4-byte header).
    while let (Some(&ty), Some(&sub), Some(len)) = (path.get(p), path.get(p + 1), le16(path, p + 2)) {
        let len = len as usize;
        let Some(node) = path.get(p + 4..p + len).filter(|_| len >= 4 && ty != 0x7F) else {
            break;
        };
        if ty == 4 && sub == 4 {
            let units: Vec<u16> = utf16_units(node).take_while(|&u| u != 0).collect();
            files.push(char::decode_utf16(units).map(|c| c.unwrap_or('\u{FFFD}')).collect());
        }
        p += len;
    }
    Some(LoadOption {
        active: attributes & 1 != 0,
        description: char::decode_utf16(desc).map(|c| c.unwrap_or('\u{FFFD}')).collect(),
        files,
    })
}

impl LoadOption {
    /// True for the Windows Boot Manager: by its file, or by its usual name.
    pub fn is_windows_boot_manager(&self) -> bool {
        self.files
            .iter()
            .any(|f| f.to_ascii_lowercase().replace('/', "\\").ends_with("\\efi\\microsoft\\boot\\bootmgfw.efi"))
            || self.description.to_ascii_lowercase().contains("windows boot manager")
    }
}

/// Parses the `BootOrder` variable: a list of option numbers.
pub fn boot_order(b: &[u8]) -> Vec<u16> {
    utf16_units(b).collect()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index what they built
mod tests {
    use super::*;
    use alloc::vec;

    fn option(desc: &str, file: &str) -> Vec<u8> {
        let mut path = vec![4u8, 1, 42, 0];
        path.extend([0u8; 38]); // a hard-drive node
        let f: Vec<u8> = file.encode_utf16().chain([0]).flat_map(|u| u.to_le_bytes()).collect();
        path.extend([4u8, 4]);
        path.extend(((f.len() + 4) as u16).to_le_bytes());
        path.extend(f);
        path.extend([0x7F, 0xFF, 4, 0]);
        let mut b = vec![1u8, 0, 0, 0];
        b.extend((path.len() as u16).to_le_bytes());
        b.extend(desc.encode_utf16().chain([0]).flat_map(|u| u.to_le_bytes()));
        b.extend(path);
        b
    }

    #[test]
    fn finds_windows_boot_manager() {
        let o = parse(&option("Windows Boot Manager", "\\EFI\\Microsoft\\Boot\\bootmgfw.efi")).unwrap();
        assert!(o.active && o.is_windows_boot_manager());
        assert_eq!(o.files, ["\\EFI\\Microsoft\\Boot\\bootmgfw.efi"]);
        let o = parse(&option("Disk 0", "\\efi\\microsoft\\boot\\BOOTMGFW.EFI")).unwrap();
        assert!(o.is_windows_boot_manager());
        let o = parse(&option("UEFI Shell", "\\EFI\\BOOT\\BOOTX64.EFI")).unwrap();
        assert!(!o.is_windows_boot_manager());
        let b = option("x", "y");
        for n in 0..b.len() {
            let _ = parse(&b[..n]);
        }
        assert_eq!(boot_order(&[1, 0, 3, 0]), [1, 3]);
    }
}
