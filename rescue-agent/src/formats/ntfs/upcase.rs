//! `$UpCase`: the volume's own case-folding table (65,536 UTF-16 units), used
//! for every name comparison. Read from the volume, never hard-coded.

#![deny(clippy::indexing_slicing)]

use alloc::vec::Vec;
use core::cmp::Ordering;

/// The volume's upcase table.
#[derive(Clone, Debug)]
pub struct UpCase(Vec<u16>);

impl UpCase {
    /// Builds the table from the `$UpCase` data (must be exactly 128 KiB).
    pub fn from_bytes(b: &[u8]) -> Option<UpCase> {
        if b.len() != 131072 {
            return None;
        }
        Some(UpCase(b.chunks_exact(2).filter_map(|c| c.try_into().ok().map(u16::from_le_bytes)).collect()))
    }
    /// The upper-case form of `u`.
    pub fn fold(&self, u: u16) -> u16 {
        self.0.get(u as usize).copied().unwrap_or(u)
    }
    /// NTFS file-name collation: compare upcased units, then length.
    pub fn cmp(&self, a: &[u16], b: &[u16]) -> Ordering {
        for (x, y) in a.iter().zip(b) {
            match self.fold(*x).cmp(&self.fold(*y)) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        a.len().cmp(&b.len())
    }
    /// True when `a` and `b` are the same name for NTFS (equal once upcased).
    pub fn eq(&self, a: &[u16], b: &[u16]) -> bool {
        self.cmp(a, b) == Ordering::Equal
    }
}
