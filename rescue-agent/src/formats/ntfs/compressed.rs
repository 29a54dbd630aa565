//! Reading NTFS-compressed streams (`$DATA` with the compressed flag).
//!
//! A compressed value is cut into compression units of 2^n clusters (16 on
//! every volume Windows makes). The run list says how each unit is stored:
//! no clusters (a hole: zeros), all of its clusters (stored as is, because
//! compression did not save a cluster), or fewer, followed by a sparse run
//! (LZNT1 data in the clusters it has). The clusters a delete frees are
//! exactly the allocated runs, so the delete planner needs nothing from here.

#![deny(clippy::indexing_slicing)]

use super::runs::{self, read_extents, Run};
use super::{corrupt, NtfsError, Result};
use crate::block::BlockDevice;
use crate::formats::decompress::lznt1;
use alloc::vec;
use alloc::vec::Vec;

/// Largest compression unit we decode (Windows uses 64 KiB: 16 clusters of 4 KiB).
const MAX_UNIT: u64 = 1 << 20;

/// A compressed stream's layout, for [`read`].
pub(super) struct Compressed<'a> {
    /// The stream's runs (VCN 0 first).
    pub runs: &'a [Run],
    /// Compression unit, log2 of clusters.
    pub unit_log2: u8,
    /// Bytes written so far; the rest reads as zeros.
    pub initialized: u64,
    /// Byte offset of the attribute header, for errors.
    pub offset: u64,
}

/// Reads `buf.len()` decompressed bytes from byte `pos` (the caller has
/// checked the range against the data size). Corrupt LZNT1 data is an
/// error naming the unit's first cluster; nothing is guessed.
pub(super) fn read(cluster: u64, dev: &mut impl BlockDevice, c: &Compressed, pos: u64, buf: &mut [u8]) -> Result<()> {
    let ub = cluster << c.unit_log2;
    if c.unit_log2 == 0 || ub > MAX_UNIT {
        return Err(NtfsError::Unsupported {
            structure: "compressed attribute",
            offset: c.offset,
            detail: "compression unit size not supported",
        });
    }
    let valid = c.initialized.saturating_sub(pos).min(buf.len() as u64) as usize;
    let (buf, unwritten) = buf.split_at_mut(valid);
    unwritten.fill(0);
    let mut unit = vec![0u8; ub as usize];
    let mut packed = Vec::new();
    let mut done = 0usize;
    while done < valid {
        let p = pos + done as u64;
        let start = p - p % ub;
        decode_unit(cluster, dev, c, start, &mut packed, &mut unit)?;
        let from = (p - start) as usize;
        let n = (unit.len() - from).min(valid - done);
        let (Some(to), Some(part)) = (buf.get_mut(done..done + n), unit.get(from..from + n)) else {
            return Err(corrupt("compressed attribute", c.offset, "read outside a compression unit"));
        };
        to.copy_from_slice(part);
        done += n;
    }
    Ok(())
}

/// Decodes the unit starting at byte `start` into `unit`.
fn decode_unit(
    cluster: u64,
    dev: &mut impl BlockDevice,
    c: &Compressed,
    start: u64,
    packed: &mut Vec<u8>,
    unit: &mut [u8],
) -> Result<()> {
    let ub = unit.len() as u64;
    let ex = runs::extents(c.runs, cluster, start, ub, c.offset)?;
    let stored: u64 = ex.iter().filter(|(p, _)| p.is_some()).map(|(_, l)| l).sum();
    if stored == 0 {
        unit.fill(0);
        return Ok(());
    }
    if ex.iter().skip_while(|(p, _)| p.is_some()).any(|(p, _)| p.is_some()) {
        return Err(corrupt("compressed attribute", c.offset, "clusters after the sparse tail of a compression unit"));
    }
    let first = ex.first().and_then(|e| e.0).unwrap_or(0);
    let target: &mut [u8] = if stored == ub {
        unit
    } else {
        packed.resize(stored as usize, 0);
        packed
    };
    let stored_extents: Vec<(Option<u64>, u64)> = ex.into_iter().filter(|(p, _)| p.is_some()).collect();
    read_extents(dev, &stored_extents, target, c.offset)?;
    if stored < ub {
        lznt1::decompress(packed, unit).map_err(|e| corrupt("compressed data (LZNT1)", first, e.0))?;
    }
    Ok(())
}
