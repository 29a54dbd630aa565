//! `$FILE_NAME`: a name of a file in its parent directory (also the key of directory index entries).

use super::{corrupt, le64, FileRef, Result};
use alloc::string::String;
use alloc::vec::Vec;

/// Name spaces.
pub const POSIX: u8 = 0;
pub const WIN32: u8 = 1;
pub const DOS: u8 = 2;
pub const WIN32_AND_DOS: u8 = 3;

/// A parsed `$FILE_NAME` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileName {
    pub parent: FileRef,
    pub created: u64,
    pub modified: u64,
    pub mft_modified: u64,
    pub accessed: u64,
    pub allocated_size: u64,
    pub data_size: u64,
    pub flags: u32,
    pub namespace: u8,
    pub name: Vec<u16>,
}

impl FileName {
    /// Parses a value; `offset` locates it for errors.
    pub fn parse(b: &[u8], offset: u64) -> Result<FileName> {
        if b.len() < 0x42 {
            return Err(corrupt("$FILE_NAME", offset, "shorter than its header"));
        }
        let n = b[0x40] as usize;
        let nb = b.get(0x42..0x42 + 2 * n).ok_or(corrupt("$FILE_NAME", offset, "name longer than the value"))?;
        if n == 0 {
            return Err(corrupt("$FILE_NAME", offset, "empty name"));
        }
        Ok(FileName {
            parent: FileRef(le64(b, 0).unwrap_or(0)),
            created: le64(b, 8).unwrap_or(0),
            modified: le64(b, 0x10).unwrap_or(0),
            mft_modified: le64(b, 0x18).unwrap_or(0),
            accessed: le64(b, 0x20).unwrap_or(0),
            allocated_size: le64(b, 0x28).unwrap_or(0),
            data_size: le64(b, 0x30).unwrap_or(0),
            flags: u32::from_le_bytes([b[0x38], b[0x39], b[0x3A], b[0x3B]]),
            namespace: b[0x41],
            name: nb.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect(),
        })
    }
    /// The name as a string (unpaired surrogates become U+FFFD).
    pub fn name_string(&self) -> String {
        char::decode_utf16(self.name.iter().copied()).map(|c| c.unwrap_or('\u{FFFD}')).collect()
    }
    pub fn is_dos_only(&self) -> bool {
        self.namespace == DOS
    }
}
