//! Data runs (mapping pairs): how a non-resident attribute's VCNs map to clusters.

#![deny(clippy::indexing_slicing)]

use super::{corrupt, Result};
use crate::block::BlockDevice;
use alloc::vec::Vec;

/// One run: `len` clusters from `vcn`, stored at `lcn` (`None`: sparse, reads as zeros).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First virtual cluster (cluster index within the attribute value) of the run.
    pub vcn: u64,
    /// First logical cluster (cluster index on the volume), or `None` for a sparse run.
    pub lcn: Option<u64>,
    /// Length of the run in clusters (never zero).
    pub len: u64,
}

/// Decodes mapping pairs `b` starting at `lowest_vcn`. Guarantees: every run
/// has a non-zero length, lies inside `0..total_clusters`, VCNs are
/// contiguous without overflow, and the loop is bounded by `b.len()`.
/// `offset` is the byte position of `b` on the volume, for errors.
pub fn decode(b: &[u8], lowest_vcn: u64, total_clusters: u64, offset: u64) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    let mut i = 0usize;
    let mut vcn = lowest_vcn;
    let mut lcn: i64 = 0;
    let err = |i: usize, d| corrupt("data runs", offset + i as u64, d);
    while let Some(&h) = b.get(i) {
        if h == 0 {
            return Ok(runs);
        }
        let ls = (h & 0x0F) as usize;
        let os = (h >> 4) as usize;
        if ls == 0 || ls > 8 || os > 8 {
            return Err(err(i, "bad run header"));
        }
        let body = b.get(i + 1..i + 1 + ls + os).ok_or(err(i, "run runs past the attribute"))?;
        let (len_bytes, lcn_bytes) = body.split_at(ls);
        let mut len: u64 = 0;
        for (k, &x) in len_bytes.iter().enumerate() {
            len |= (x as u64) << (8 * k);
        }
        if len == 0 || len > total_clusters {
            return Err(err(i, "run length zero or larger than the volume"));
        }
        let run_lcn = if os == 0 {
            None
        } else {
            let mut d: i64 = 0;
            for (k, &x) in lcn_bytes.iter().enumerate() {
                d |= (x as i64) << (8 * k);
            }
            if os < 8 {
                let shift = 64 - 8 * os as u32;
                d = (d << shift) >> shift;
            }
            lcn = lcn.checked_add(d).ok_or(err(i, "cluster number overflow"))?;
            if lcn < 0 || (lcn as u64).checked_add(len).is_none_or(|e| e > total_clusters) {
                return Err(err(i, "run lies outside the volume"));
            }
            Some(lcn as u64)
        };
        runs.push(Run { vcn, lcn: run_lcn, len });
        vcn = vcn.checked_add(len).ok_or(err(i, "VCN overflow"))?;
        i += 1 + ls + os;
    }
    Err(err(i, "run list has no terminator"))
}

/// Encodes runs as mapping pairs (the inverse of [`decode`]), with the
/// terminating zero byte. Each field takes the fewest bytes that hold it
/// (lengths unsigned, cluster deltas signed), as Windows writes them.
pub fn encode(runs: &[Run]) -> Vec<u8> {
    fn bytes_for(v: i64, signed: bool) -> usize {
        (1..=8)
            .find(|&n| {
                let shift = 64 - 8 * n as u32;
                if signed {
                    n == 8 || (v << shift) >> shift == v
                } else {
                    n == 8 || (v as u64) >> (8 * n) == 0
                }
            })
            .unwrap_or(8)
    }
    let mut out = Vec::new();
    let mut prev: i64 = 0;
    for r in runs {
        let ls = bytes_for(r.len as i64, false);
        let (os, delta) = match r.lcn {
            Some(l) => {
                let d = l as i64 - prev;
                prev = l as i64;
                (bytes_for(d, true), d)
            }
            None => (0, 0),
        };
        out.push((os << 4 | ls) as u8);
        out.extend(r.len.to_le_bytes().into_iter().take(ls));
        out.extend(delta.to_le_bytes().into_iter().take(os));
    }
    out.push(0);
    out
}

/// Maps `len` bytes at byte `pos` of a stream to physical extents
/// (`Some(volume byte offset)` or `None` for sparse), in order.
pub fn extents(runs: &[Run], cluster: u64, pos: u64, len: u64, offset: u64) -> Result<Vec<(Option<u64>, u64)>> {
    let mut out = Vec::new();
    let mut pos = pos;
    let end = pos.checked_add(len).ok_or(corrupt("data runs", offset, "range overflow"))?;
    // Runs come from the disk: every product below is checked, never wrapped.
    let overflow = || corrupt("data runs", offset, "cluster arithmetic overflows");
    let bytes = |clusters: u64| clusters.checked_mul(cluster).ok_or_else(overflow);
    while pos < end {
        let vcn = pos.checked_div(cluster).ok_or_else(overflow)?;
        let r = runs.iter().find(|r| r.vcn <= vcn && vcn - r.vcn < r.len).ok_or(corrupt(
            "data runs",
            offset,
            "stream range not mapped by its runs",
        ))?;
        let run_end = bytes(r.vcn.checked_add(r.len).ok_or_else(overflow)?)?;
        let n = (run_end - pos).min(end - pos);
        let into_run = pos - bytes(r.vcn)?;
        let phys = match r.lcn {
            Some(l) => Some(bytes(l)?.checked_add(into_run).ok_or_else(overflow)?),
            None => None,
        };
        match out.last_mut() {
            Some((Some(p), l)) if phys == Some(*p + *l) => *l += n,
            _ => out.push((phys, n)),
        }
        pos += n;
    }
    Ok(out)
}

/// Reads `extents` (device offset or `None` for a hole, length) one after
/// another into `buf`: holes read as zeros. The extents must not be longer
/// than `buf` (`at` locates the structure for the error).
pub fn read_extents(dev: &mut impl BlockDevice, extents: &[(Option<u64>, u64)], buf: &mut [u8], at: u64) -> Result<()> {
    let mut rest = buf;
    for &(p, l) in extents {
        let len = usize::try_from(l).ok();
        let (part, tail) = len.and_then(|l| rest.split_at_mut_checked(l)).ok_or(corrupt(
            "data runs",
            at,
            "extents longer than the read",
        ))?;
        match p {
            Some(p) => dev.read_at(p, part)?,
            None => part.fill(0),
        }
        rest = tail;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index what they built
mod tests {
    use super::*;
    #[test]
    fn decode_runs() {
        // 0x18 clusters at 0x5634, then sparse 0x10, then 4 at -2 relative
        let b = [0x21, 0x18, 0x34, 0x56, 0x01, 0x10, 0x11, 0x04, 0xFE, 0x00];
        let r = decode(&b, 0, 1 << 20, 0).unwrap();
        assert_eq!(
            r,
            [
                Run { vcn: 0, lcn: Some(0x5634), len: 0x18 },
                Run { vcn: 0x18, lcn: None, len: 0x10 },
                Run { vcn: 0x28, lcn: Some(0x5632), len: 4 }
            ]
        );
        assert!(decode(&b[..4], 0, 1 << 20, 0).is_err());
        assert!(decode(&b, 0, 0x100, 0).is_err());
        assert_eq!(decode(&encode(&r), 0, 1 << 20, 0).unwrap(), r, "encode is decode's inverse");
        let wide = [Run { vcn: 0, lcn: Some(0x80), len: 0x100 }, Run { vcn: 0x100, lcn: Some(0x10), len: 1 }];
        assert_eq!(encode(&wide), [0x22, 0x00, 0x01, 0x80, 0x00, 0x11, 0x01, 0x90, 0x00]);
        let e = extents(&r, 512, 0x17 * 512, 3 * 512, 0).unwrap();
        assert_eq!(e, [(Some(0x5634 * 512 + 0x17 * 512), 512), (None, 1024)]);
    }
}
