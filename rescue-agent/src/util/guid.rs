//! GUIDs as stored on disk by GPT and BitLocker: the first three fields
//! little-endian, shown in the usual 8-4-4-4-12 upper-case form.

#![deny(clippy::indexing_slicing)]

use core::fmt;

/// A GUID as stored on disk (first three fields little-endian).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// EFI System Partition.
    pub const ESP: Guid =
        Guid::from_fields(0xC12A7328, 0xF81F, 0x11D2, [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B]);
    /// Microsoft basic data (NTFS, FAT, BitLocker).
    pub const BASIC_DATA: Guid =
        Guid::from_fields(0xEBD0A0A2, 0xB9E5, 0x4433, [0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7]);

    /// The GUID written `aaaaaaaa-bbbb-cccc-dddd-dddddddddddd`, from its fields
    /// as printed (`d` holds the last two groups, 8 bytes in order).
    pub const fn from_fields(a: u32, b: u16, c: u16, d: [u8; 8]) -> Guid {
        let a = a.to_le_bytes();
        let b = b.to_le_bytes();
        let c = c.to_le_bytes();
        Guid([a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }

    /// The GUID stored at byte `o` of `b`, if it lies inside.
    pub fn at(b: &[u8], o: usize) -> Option<Guid> {
        crate::util::le::array(b, o).map(Guid)
    }

    /// The GUID in the first 16 bytes of `b`; the nil GUID when `b` is shorter.
    pub fn from_slice(b: &[u8]) -> Guid {
        Self::at(b, 0).unwrap_or_default()
    }

    /// A version-4 style GUID from 16 arbitrary bytes (e.g. a hash).
    pub fn from_random(mut b: [u8; 16]) -> Guid {
        b[7] = (b[7] & 0x0F) | 0x40;
        b[8] = (b[8] & 0x3F) | 0x80;
        Guid(b)
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        write!(
            f,
            "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
            u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
            u16::from_le_bytes([g[4], g[5]]),
            u16::from_le_bytes([g[6], g[7]]),
            g[8],
            g[9],
            g[10],
            g[11],
            g[12],
            g[13],
            g[14],
            g[15]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
