//! Planning changes to NTFS bitmaps (`$Bitmap`, the `$MFT` bitmap, index
//! bitmaps): bits are gathered per byte, checked against the disk, and
//! written as whole bytes.

use super::file::Stream;
use super::fs::Ntfs;
use super::plan::Plan;
use super::runs;
use super::{corrupt, NtfsError, Result};
use crate::block::BlockDevice;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

/// Adds bits `start..start+len` to a byte→mask map; a bit already present means two runs claim one cluster.
pub(super) fn add_bits(
    map: &mut BTreeMap<u64, u8>,
    start: u64,
    len: u64,
    structure: &'static str,
    offset: u64,
) -> Result<()> {
    for b in start..start + len {
        let m = map.entry(b / 8).or_insert(0);
        let bit = 1u8 << (b % 8);
        if *m & bit != 0 {
            return Err(corrupt(structure, offset, "the same cluster or record is claimed twice"));
        }
        *m |= bit;
    }
    Ok(())
}

/// Plans clearing `bits` (byte index → mask) in a bitmap stream; every bit must currently be set.
pub(super) fn clear_bits(
    v: &Ntfs,
    dev: &mut impl BlockDevice,
    plan: &mut Plan,
    s: &Stream,
    bits: &BTreeMap<u64, u8>,
    structure: &'static str,
    reason: &str,
) -> Result<()> {
    change_bits(v, dev, plan, s, bits, structure, reason, false)
}

/// Plans setting `bits` (byte index → mask) in a bitmap stream; every bit must currently be clear.
pub(super) fn set_bits(
    v: &Ntfs,
    dev: &mut impl BlockDevice,
    plan: &mut Plan,
    s: &Stream,
    bits: &BTreeMap<u64, u8>,
    structure: &'static str,
    reason: &str,
) -> Result<()> {
    change_bits(v, dev, plan, s, bits, structure, reason, true)
}

/// Reads `buf.len()` bytes of bitmap stream `s` from byte `pos` as they
/// will be once `plan` has run.
fn read_through(v: &Ntfs, dev: &mut impl BlockDevice, plan: &Plan, s: &Stream, pos: u64, buf: &mut [u8]) -> Result<()> {
    v.read_stream(dev, s, pos, buf)?;
    if let Stream::NonResident { runs, offset, .. } = s {
        let mut o = 0usize;
        for (p, l) in runs::extents(runs, v.cluster(), pos, buf.len() as u64, *offset)? {
            if let Some(p) = p {
                plan.overlay(p, &mut buf[o..o + l as usize]);
            }
            o += l as usize;
        }
    }
    Ok(())
}

/// First `n` free clusters in a row in `$Bitmap` (`bitmap` is its stream),
/// as it will be once `plan` has run, read 64 KiB at a time.
/// `Err(NoSpace)` when the volume has no such run.
pub(super) fn find_free_clusters(
    v: &Ntfs,
    dev: &mut impl BlockDevice,
    plan: &Plan,
    bitmap: &Stream,
    n: u64,
) -> Result<u64> {
    let total = v.boot.total_clusters;
    let mut buf = vec![0u8; 65536];
    let (mut run_start, mut run_len) = (0u64, 0u64);
    let mut byte = 0u64;
    while byte * 8 < total {
        let take = (bitmap.len().saturating_sub(byte)).min(buf.len() as u64) as usize;
        if take == 0 {
            break;
        }
        read_through(v, dev, plan, bitmap, byte, &mut buf[..take])?;
        for (i, b) in buf[..take].iter().enumerate() {
            if *b == 0xFF {
                run_len = 0;
                continue;
            }
            for bit in 0..8 {
                let c = (byte + i as u64) * 8 + bit;
                if c >= total {
                    break;
                }
                if b >> bit & 1 == 0 {
                    if run_len == 0 {
                        run_start = c;
                    }
                    run_len += 1;
                    if run_len == n {
                        return Ok(run_start);
                    }
                } else {
                    run_len = 0;
                }
            }
        }
        byte += take as u64;
    }
    Err(NtfsError::NoSpace { structure: "$Bitmap", offset: 0 })
}

#[allow(clippy::too_many_arguments)]
fn change_bits(
    v: &Ntfs,
    dev: &mut impl BlockDevice,
    plan: &mut Plan,
    s: &Stream,
    bits: &BTreeMap<u64, u8>,
    structure: &'static str,
    reason: &str,
    set: bool,
) -> Result<()> {
    let Stream::NonResident { runs, offset, .. } = s else {
        return Err(NtfsError::Unsupported { structure, offset: 0, detail: "resident bitmap" });
    };
    // Group consecutive bytes.
    let mut groups: Vec<(u64, Vec<u8>)> = Vec::new();
    for (&byte, &mask) in bits {
        match groups.last_mut() {
            Some((start, masks)) if *start + masks.len() as u64 == byte => masks.push(mask),
            _ => groups.push((byte, vec![mask])),
        }
    }
    for (start, masks) in groups {
        let mut cur = vec![0u8; masks.len()];
        read_through(v, dev, plan, s, start, &mut cur)
            .map_err(|_| corrupt(structure, *offset, "bit beyond the bitmap"))?;
        for (i, (c, m)) in cur.iter_mut().zip(&masks).enumerate() {
            let at = *offset + start + i as u64;
            if set {
                if *c & m != 0 {
                    return Err(corrupt(structure, at, "bit already set: the space is in use"));
                }
                *c |= m;
            } else {
                if *c & m != *m {
                    return Err(corrupt(
                        structure,
                        at,
                        "bit already clear: the volume disagrees with the file (cross-linked?)",
                    ));
                }
                *c &= !m;
            }
        }
        let ex: Vec<(u64, u64)> = runs::extents(runs, v.cluster(), start, masks.len() as u64, *offset)?
            .into_iter()
            .map(|(p, l)| p.map(|p| (p, l)).ok_or(corrupt(structure, *offset, "sparse bitmap")))
            .collect::<Result<_>>()?;
        plan.push_extents(structure, &ex, &cur, reason);
    }
    Ok(())
}
