//! The machine's identity from SMBIOS (type 1, System Information), parsed
//! from the structure table the firmware publishes. Bounded and panic-free on
//! any bytes.

#![deny(clippy::indexing_slicing)]

use crate::util::guid::Guid;
use crate::util::le::{le16, le32, le64};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Manufacturer, model, serial number and UUID of the machine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Machine {
    /// System manufacturer (type 1 string at byte 0x04); empty when not given.
    pub manufacturer: String,
    /// Product name (type 1 string at byte 0x05); empty when not given.
    pub model: String,
    /// Serial number (type 1 string at byte 0x07); empty when not given.
    pub serial_number: String,
    /// System UUID (type 1 bytes 0x08–0x17) in the usual uppercase form, first
    /// three fields little-endian; empty when the structure is too short for it.
    pub uuid: String,
}

/// Where the structure table lies, from an entry point (`_SM3_` or `_SM_`).
pub fn table_location(entry: &[u8]) -> Option<(u64, usize)> {
    if entry.get(..5) == Some(b"_SM3_") {
        let len = le32(entry, 0x0C)? as usize;
        return Some((le64(entry, 0x10)?, len.min(1 << 20)));
    }
    if entry.get(..4) == Some(b"_SM_") {
        return Some((le32(entry, 0x18)? as u64, le16(entry, 0x16)? as usize));
    }
    None
}

/// Finds the System Information structure in a structure table.
pub fn machine(table: &[u8]) -> Option<Machine> {
    let mut at = 0usize;
    // Each structure: formatted area of `len` bytes, then strings ending in a double NUL.
    while let (Some(&kind), Some(&len)) = (table.get(at), table.get(at + 1)) {
        let len = len as usize;
        let formatted = table.get(at..at + len).filter(|_| len >= 4)?;
        let after = table.get(at + len..)?;
        let strings_len = after.windows(2).position(|w| w == [0, 0])?;
        let strings: Vec<&[u8]> = after.get(..strings_len)?.split(|&b| b == 0).collect();
        if kind == 1 {
            let s = |i: usize| -> String {
                let n = *formatted.get(i).unwrap_or(&0) as usize;
                if n == 0 {
                    return String::new();
                }
                strings.get(n - 1).map(|b| String::from_utf8_lossy(b).trim().into()).unwrap_or_default()
            };
            return Some(Machine {
                manufacturer: s(4),
                model: s(5),
                serial_number: s(7),
                uuid: Guid::at(formatted, 8).map(|g| g.to_string()).unwrap_or_default(),
            });
        }
        if kind == 127 {
            return None;
        }
        at += len + strings_len + 2;
    }
    None
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index what they built
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn system_information() {
        let mut t = vec![0u8, 4, 0, 0, 0, 0]; // type 0 without strings
        let mut s1 = vec![1u8, 27, 1, 0, 1, 2, 3, 4];
        s1.extend_from_slice(&[0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 1, 2, 3, 4, 5, 6, 7, 8]);
        s1.extend_from_slice(&[6, 0, 0]);
        s1.extend_from_slice(b"QEMU\0Standard PC\0pc-q35\0SN-123\0\0");
        t.extend(s1);
        t.extend_from_slice(&[127, 4, 2, 0, 0, 0]);
        let m = machine(&t).unwrap();
        assert_eq!(m.manufacturer, "QEMU");
        assert_eq!(m.model, "Standard PC");
        assert_eq!(m.serial_number, "SN-123");
        assert_eq!(m.uuid, "12345678-1234-5678-0102-030405060708");
        // Truncated or garbage tables give None, never a panic.
        for n in 0..t.len() {
            let _ = machine(&t[..n]);
        }
        assert_eq!(machine(&[1, 200, 0]), None);
    }
}
