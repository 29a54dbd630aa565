//! `$FILE_NAME`: a name of a file in its parent directory (also the key of directory index entries).

#![deny(clippy::indexing_slicing)]

use super::{byte, corrupt, le16, le32, le64, FileRef, Result};
use alloc::string::String;
use alloc::vec::Vec;

/// Name spaces.
pub const POSIX: u8 = 0;
/// Win32 name space: the long name, case-insensitive, with a separate DOS name.
pub const WIN32: u8 = 1;
/// DOS name space: the 8.3 short name paired with a Win32 name.
pub const DOS: u8 = 2;
/// A name valid in both the Win32 and DOS name spaces (no separate short name).
pub const WIN32_AND_DOS: u8 = 3;

/// A parsed `$FILE_NAME` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileName {
    /// Reference of the parent directory (value bytes 0x00–0x07).
    pub parent: FileRef,
    /// Creation time as a Windows FILETIME (bytes 0x08–0x0F); as of the last
    /// name change, not necessarily current.
    pub created: u64,
    /// Last data change as a FILETIME (bytes 0x10–0x17); may lag `$STANDARD_INFORMATION`.
    pub modified: u64,
    /// Last MFT record change as a FILETIME (bytes 0x18–0x1F).
    pub mft_modified: u64,
    /// Last access as a FILETIME (bytes 0x20–0x27).
    pub accessed: u64,
    /// Allocated size in bytes as recorded with the name (bytes 0x28–0x2F; may be stale).
    pub allocated_size: u64,
    /// File size in bytes as recorded with the name (bytes 0x30–0x37; may be stale).
    pub data_size: u64,
    /// File attribute flags (bytes 0x38–0x3B): DOS attributes, plus 0x1000_0000 for directories.
    pub flags: u32,
    /// Name space of the name: [`POSIX`], [`WIN32`], [`DOS`] or [`WIN32_AND_DOS`] (byte 0x41).
    pub namespace: u8,
    /// The name in UTF-16 units (length from byte 0x40, from byte 0x42 on).
    pub name: Vec<u16>,
}

impl FileName {
    /// Parses a value; `offset` locates it for errors.
    pub fn parse(b: &[u8], offset: u64) -> Result<FileName> {
        let short = || corrupt("$FILE_NAME", offset, "shorter than its header");
        if b.len() < 0x42 {
            return Err(short());
        }
        let n = byte(b, 0x40).ok_or_else(short)? as usize;
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
            flags: le32(b, 0x38).ok_or_else(short)?,
            namespace: byte(b, 0x41).ok_or_else(short)?,
            name: nb.chunks_exact(2).filter_map(|c| le16(c, 0)).collect(),
        })
    }
    /// The name as a string (unpaired surrogates become U+FFFD).
    pub fn name_string(&self) -> String {
        char::decode_utf16(self.name.iter().copied()).map(|c| c.unwrap_or('\u{FFFD}')).collect()
    }
    /// True for a DOS (8.3) name that has a separate Win32 partner name.
    pub fn is_dos_only(&self) -> bool {
        self.namespace == DOS
    }
}
