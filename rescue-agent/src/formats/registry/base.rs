//! The base block: the first 4 KiB of a hive file (and of each of its logs).
//!
//! Fields used here: signature `regf` (0x00), primary and secondary
//! sequence numbers (0x04, 0x08; equal when the file was written out
//! completely), last-written FILETIME (0x0C), major/minor version (0x14,
//! 0x18), file type (0x1C: 0 primary, 1 and 2 transaction logs, 6 a
//! new-format log), file format (0x20, 1), root cell offset (0x24, relative
//! to the first hive bin), size of the hive bins data (0x28), and the
//! checksum (0x1FC): the XOR of the first 508 bytes taken as 127
//! little-endian u32s, with 0 written as 1 and 0xFFFFFFFF as 0xFFFFFFFE.

#![deny(clippy::indexing_slicing)]

use super::{corrupt, Result};
use crate::util::le::{le32, le64, put32};

/// Size of the base block; hive bins start right after it.
pub const SIZE: usize = 4096;

/// A validated base block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaseBlock {
    /// Primary sequence number (incremented before a write starts).
    pub seq1: u32,
    /// Secondary sequence number (set equal to `seq1` when the write ends).
    pub seq2: u32,
    /// Last written, as a FILETIME.
    pub timestamp: u64,
    /// Major version (1).
    pub major: u32,
    /// Minor version (3 to 6).
    pub minor: u32,
    /// File type: 0 primary; 1, 2 or 6 a transaction log.
    pub file_type: u32,
    /// Offset of the root key's cell, relative to the first hive bin.
    pub root: u32,
    /// Bytes of hive bins after the base block.
    pub bins_size: u32,
    /// Checksum as stored.
    pub checksum: u32,
}

impl BaseBlock {
    /// Parses and checks the base block at the start of `b` (signature,
    /// version, file format, checksum, bins size a multiple of 4096; whether
    /// the bins fit the file is the caller's check).
    pub fn parse(b: &[u8]) -> Result<BaseBlock> {
        if b.len() < SIZE || b.get(..4) != Some(b"regf") {
            return Err(corrupt("base block", 0, "no regf signature"));
        }
        let f = |o| le32(b, o).unwrap_or(0);
        let bb = BaseBlock {
            seq1: f(4),
            seq2: f(8),
            timestamp: le64(b, 0x0C).unwrap_or(0),
            major: f(0x14),
            minor: f(0x18),
            file_type: f(0x1C),
            root: f(0x24),
            bins_size: f(0x28),
            checksum: f(0x1FC),
        };
        if bb.major != 1 || !(2..=6).contains(&bb.minor) {
            return Err(corrupt("base block", 0x14, "unknown format version"));
        }
        if f(0x20) != 1 {
            return Err(corrupt("base block", 0x20, "unknown file format"));
        }
        if bb.checksum != checksum(b) {
            return Err(corrupt("base block", 0x1FC, "checksum does not match"));
        }
        if !bb.bins_size.is_multiple_of(4096) {
            return Err(corrupt("base block", 0x28, "hive bins size not a multiple of 4096"));
        }
        Ok(bb)
    }

    /// True when a write to the primary file did not finish (the sequence numbers differ).
    pub fn is_dirty(&self) -> bool {
        self.seq1 != self.seq2
    }
}

/// The checksum of a base block: XOR of its first 508 bytes as u32s.
pub fn checksum(b: &[u8]) -> u32 {
    let x = (0..127).fold(0u32, |x, i| x ^ le32(b, 4 * i).unwrap_or(0));
    match x {
        0 => 1,
        0xFFFF_FFFF => 0xFFFF_FFFE,
        x => x,
    }
}

/// Sets both sequence numbers of the base block at the start of `b` to
/// (`seq1`, `seq2`), its timestamp, and a fresh checksum. In memory only.
pub fn stamp(b: &mut [u8], seq1: u32, seq2: u32, timestamp: u64) -> Result<()> {
    put32(b, 4, seq1)?;
    put32(b, 8, seq2)?;
    put32(b, 0x0C, timestamp as u32)?;
    put32(b, 0x10, (timestamp >> 32) as u32)?;
    let c = checksum(b);
    put32(b, 0x1FC, c)?;
    Ok(())
}
