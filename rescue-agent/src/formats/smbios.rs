//! The machine's identity from SMBIOS (type 1, System Information), parsed
//! from the structure table the firmware publishes. Bounded and panic-free on
//! any bytes.

use alloc::format;
use alloc::string::String;
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
    if entry.len() >= 0x18 && &entry[..5] == b"_SM3_" {
        let len = u32::from_le_bytes(entry[0x0C..0x10].try_into().ok()?) as usize;
        let addr = u64::from_le_bytes(entry[0x10..0x18].try_into().ok()?);
        return Some((addr, len.min(1 << 20)));
    }
    if entry.len() >= 0x1C && &entry[..4] == b"_SM_" {
        let len = u16::from_le_bytes(entry[0x16..0x18].try_into().ok()?) as usize;
        let addr = u32::from_le_bytes(entry[0x18..0x1C].try_into().ok()?) as u64;
        return Some((addr, len));
    }
    None
}

/// Finds the System Information structure in a structure table.
pub fn machine(table: &[u8]) -> Option<Machine> {
    let mut at = 0usize;
    // Each structure: formatted area of `len` bytes, then strings ending in a double NUL.
    while at + 4 <= table.len() {
        let kind = table[at];
        let len = table[at + 1] as usize;
        if len < 4 || at + len > table.len() {
            return None;
        }
        let formatted = &table[at..at + len];
        let strings_start = at + len;
        let end = table[strings_start..].windows(2).position(|w| w == [0, 0]).map(|p| strings_start + p + 2)?;
        let strings: Vec<&[u8]> = table[strings_start..end - 2].split(|&b| b == 0).collect();
        if kind == 1 {
            let s = |i: usize| -> String {
                let n = *formatted.get(i).unwrap_or(&0) as usize;
                if n == 0 {
                    return String::new();
                }
                strings.get(n - 1).map(|b| String::from_utf8_lossy(b).trim().into()).unwrap_or_default()
            };
            let uuid = formatted.get(8..24).map(|u| {
                format!(
                    "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
                    u32::from_le_bytes([u[0], u[1], u[2], u[3]]),
                    u16::from_le_bytes([u[4], u[5]]),
                    u16::from_le_bytes([u[6], u[7]]),
                    u[8],
                    u[9],
                    u[10],
                    u[11],
                    u[12],
                    u[13],
                    u[14],
                    u[15]
                )
            });
            return Some(Machine {
                manufacturer: s(4),
                model: s(5),
                serial_number: s(7),
                uuid: uuid.unwrap_or_default(),
            });
        }
        if kind == 127 {
            return None;
        }
        at = end;
    }
    None
}

#[cfg(test)]
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
