//! Hive bins and cells: the hive file after its base block.
//!
//! Hive bins (`hbin`, 32-byte header: signature, offset of the bin from the
//! first bin, size, a multiple of 4096) follow each other and hold cells. A
//! cell starts with its size as an i32: negative when allocated, positive
//! when free; sizes are multiples of 8 and a cell never crosses its bin.
//! Cell offsets in the hive (in keys, lists, values) count from the first
//! bin, so the file offset is 4096 more.

#![deny(clippy::indexing_slicing)]

use super::base::{self, BaseBlock};
use super::{corrupt, RegError, Result};
use crate::util::le::le32;
use alloc::vec::Vec;

/// An offset meaning "no cell".
pub const NONE: u32 = 0xFFFF_FFFF;

/// A hive in memory: its bytes, validated base block and bin boundaries.
#[derive(Clone, Debug)]
pub struct Hive {
    /// The whole file.
    pub bytes: Vec<u8>,
    /// Its base block.
    pub base: BaseBlock,
    /// Bins as (start, end) cell offsets, in order.
    bins: Vec<(u32, u32)>,
}

impl Hive {
    /// Validates `bytes` as a primary hive file: the base block, and every
    /// bin inside the file and chained end to end. A dirty hive opens (to be
    /// read); [`Hive::require_clean`] guards edits.
    pub fn open(bytes: Vec<u8>) -> Result<Hive> {
        let base = BaseBlock::parse(&bytes)?;
        if base.file_type != 0 {
            return Err(corrupt("base block", 0x1C, "not a primary hive file (a log?)"));
        }
        let end = base::SIZE as u64 + base.bins_size as u64;
        if end > bytes.len() as u64 {
            return Err(corrupt("base block", 0x28, "hive bins reach beyond the end of the file"));
        }
        let mut bins = Vec::new();
        let mut o = 0u32;
        while o < base.bins_size {
            let at = base::SIZE + o as usize;
            if bytes.get(at..at + 4) != Some(b"hbin") {
                return Err(corrupt("hive bin", at as u64, "no hbin signature"));
            }
            let size = le32(&bytes, at + 8).unwrap_or(0);
            if le32(&bytes, at + 4) != Some(o) {
                return Err(corrupt("hive bin", at as u64 + 4, "offset field does not match its place"));
            }
            if size == 0 || !size.is_multiple_of(4096) || o.checked_add(size).is_none_or(|e| e > base.bins_size) {
                return Err(corrupt("hive bin", at as u64 + 8, "size out of range"));
            }
            bins.push((o, o + size));
            o += size;
        }
        if bins.is_empty() {
            return Err(corrupt("base block", 0x28, "no hive bins"));
        }
        Ok(Hive { bytes, base, bins })
    }

    /// `Err(Dirty)` unless both sequence numbers agree (recover the hive first).
    pub fn require_clean(&self) -> Result<()> {
        if self.base.is_dirty() {
            return Err(RegError::Dirty { detail: "it was not recovered from its logs first" });
        }
        Ok(())
    }

    /// File offset of cell offset `off`.
    pub fn file_offset(off: u32) -> usize {
        base::SIZE + off as usize
    }

    /// The bin holding cell offset `off`.
    fn bin_of(&self, off: u32) -> Option<(u32, u32)> {
        let i = self.bins.partition_point(|&(s, _)| s <= off);
        self.bins.get(i.checked_sub(1)?).copied().filter(|&(s, e)| off >= s + 32 && off < e)
    }

    /// The cell at `off`: (its whole size, allocated?). Checks that it lies
    /// inside one bin, past the bin header, 8-aligned.
    pub fn cell_size(&self, off: u32) -> Result<(u32, bool)> {
        let at = Self::file_offset(off) as u64;
        let (_, end) = self.bin_of(off).ok_or(corrupt("cell", at, "offset outside every hive bin"))?;
        if !off.is_multiple_of(8) {
            return Err(corrupt("cell", at, "offset not 8-aligned"));
        }
        let raw = le32(&self.bytes, at as usize).ok_or(corrupt("cell", at, "beyond the file"))? as i32;
        let (size, used) = if raw < 0 { (raw.unsigned_abs(), true) } else { (raw as u32, false) };
        if size < 8 || size % 8 != 0 || off.checked_add(size).is_none_or(|e| e > end) {
            return Err(corrupt("cell", at, "size out of range or crossing its hive bin"));
        }
        Ok((size, used))
    }

    /// The data of the allocated cell at `off` (after its 4-byte size).
    pub fn cell(&self, off: u32) -> Result<&[u8]> {
        let (size, used) = self.cell_size(off)?;
        let at = Self::file_offset(off);
        if !used {
            return Err(corrupt("cell", at as u64, "points to a free cell"));
        }
        self.bytes.get(at + 4..at + size as usize).ok_or(corrupt("cell", at as u64, "outside the hive"))
    }

    /// Every cell of every bin, in order: (offset, size, allocated).
    /// Walks by cell sizes, each checked.
    pub fn cells(&self) -> Result<Vec<(u32, u32, bool)>> {
        let mut out = Vec::new();
        for &(s, e) in &self.bins {
            let mut o = s + 32;
            while o < e {
                let (size, used) = self.cell_size(o)?;
                out.push((o, size, used));
                o += size;
            }
        }
        Ok(out)
    }
}
