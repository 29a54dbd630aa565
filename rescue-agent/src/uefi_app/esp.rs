//! The EFI System Partitions of the disks being fixed, through the
//! firmware's Simple File System protocol: the BCD store that
//! `[finish] safe_mode` edits. A disk's ESP is the file system whose device
//! path is the disk's followed by a hard-drive (partition) node and which
//! holds `\EFI\Microsoft\Boot\BCD`. The store is edited in place (opened
//! read-write, never deleted or re-created), one flushed write at a time.

use super::disks;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use rescue_engine::ports::EspFiles;
use uefi::boot::ScopedProtocol;
use uefi::proto::media::file::{File, FileAttribute, FileMode, RegularFile};
use uefi::proto::media::fs::SimpleFileSystem;
use uefi::{boot, cstr16, CStr16};

const BCD: &CStr16 = cstr16!("\\EFI\\Microsoft\\Boot\\BCD");
/// Largest BCD store read (real ones are tens of KiB).
const MAX_BCD: usize = 16 << 20;

/// The ESPs as the firmware mounted them.
pub struct FirmwareEsp;

/// `disk`'s ESP file system and its BCD store, opened (read-only or read-write).
fn open_bcd(disk: &str, mode: FileMode) -> Option<(ScopedProtocol<SimpleFileSystem>, RegularFile)> {
    let prefix = format!("{disk}/HD(");
    for h in boot::find_handles::<SimpleFileSystem>().ok()? {
        if !disks::path_text(h).starts_with(&prefix) {
            continue;
        }
        let Some(mut fs) = disks::open::<SimpleFileSystem>(h) else { continue };
        let Ok(mut root) = fs.open_volume() else { continue };
        let file = root.open(BCD, mode, FileAttribute::empty()).ok().and_then(|f| f.into_regular_file());
        if let Some(f) = file {
            return Some((fs, f));
        }
    }
    None
}

impl EspFiles for FirmwareEsp {
    fn read_bcd(&mut self, disk: &str) -> Option<Result<Vec<u8>, String>> {
        let (_fs, mut f) = open_bcd(disk, FileMode::Read)?;
        let mut out = Vec::new();
        let mut buf = alloc::vec![0u8; 64 << 10];
        loop {
            match f.read(&mut buf) {
                Ok(0) => return Some(Ok(out)),
                Ok(n) if out.len() + n <= MAX_BCD => out.extend_from_slice(&buf[..n]),
                Ok(_) => return Some(Err(String::from("the BCD store is larger than 16 MiB"))),
                Err(e) => return Some(Err(format!("reading the BCD store: {:?}", e.status()))),
            }
        }
    }

    fn write_bcd(&mut self, disk: &str, edits: &[(u64, Vec<u8>)]) -> Result<(), String> {
        let (_fs, mut f) = open_bcd(disk, FileMode::ReadWrite).ok_or("the BCD store is no longer there")?;
        for (at, bytes) in edits {
            f.set_position(*at).map_err(|e| format!("seeking in the BCD store: {:?}", e.status()))?;
            f.write(bytes).map_err(|e| format!("writing the BCD store: {:?}", e.status()))?;
            f.flush().map_err(|e| format!("flushing the BCD store: {:?}", e.status()))?;
        }
        Ok(())
    }
}
