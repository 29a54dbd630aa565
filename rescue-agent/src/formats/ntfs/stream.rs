//! Reading a stream's bytes — resident, non-resident, sparse, or
//! LZNT1-compressed — over a view of the volume that knows only its
//! cluster size and its size ([`Clusters`]): the readers never call back
//! into [`super::fs::Ntfs`], so `fs` can use them without a circle.

#![deny(clippy::indexing_slicing)]

use super::attr;
use super::compressed::{self, Compressed};
use super::file::Stream;
use super::runs;
use super::{corrupt, NtfsError, Result, MAX_READ_WHOLE};
use crate::block::BlockDevice;
use alloc::vec;
use alloc::vec::Vec;

/// What the stream readers need of a volume.
#[derive(Clone, Copy, Debug)]
pub struct Clusters {
    /// Bytes per cluster (run lists count clusters).
    pub cluster: u64,
    /// Bytes in the volume: no stream is larger.
    pub volume_bytes: u64,
}

/// Reads `buf.len()` bytes of a stream from byte `pos` (sparse and
/// uninitialised parts read as zeros, compressed values decompressed).
/// Fails when the range is beyond the stream.
pub fn read(v: Clusters, dev: &mut impl BlockDevice, s: &Stream, pos: u64, buf: &mut [u8]) -> Result<()> {
    let len = buf.len() as u64;
    match s {
        Stream::Resident(v) => {
            let from = usize::try_from(pos).ok();
            let part = from.and_then(|f| v.get(f..f.checked_add(buf.len())?));
            buf.copy_from_slice(part.ok_or(corrupt("attribute", 0, "read beyond a resident value"))?);
        }
        Stream::NonResident { runs, data_size, initialized, offset, flags, compression_unit, .. } => {
            if pos.checked_add(len).is_none_or(|e| e > *data_size) {
                return Err(corrupt("attribute", *offset, "read beyond the stream"));
            }
            if flags & attr::FLAG_COMPRESSED != 0 {
                let c = Compressed { runs, unit_log2: *compression_unit, initialized: *initialized, offset: *offset };
                return compressed::read(v.cluster, dev, &c, pos, buf);
            }
            let valid = initialized.saturating_sub(pos).min(len) as usize;
            let (written, unwritten) = buf.split_at_mut(valid);
            unwritten.fill(0);
            runs::read_extents(dev, &runs::extents(runs, v.cluster, pos, valid as u64, *offset)?, written, *offset)?;
        }
    }
    Ok(())
}

/// Reads a whole stream, refusing streams longer than `cap` (and than [`MAX_READ_WHOLE`]).
pub fn read_all(v: Clusters, dev: &mut impl BlockDevice, s: &Stream, cap: u64) -> Result<Vec<u8>> {
    let n = s.len();
    if n > cap.min(MAX_READ_WHOLE) || n > v.volume_bytes {
        let off = if let Stream::NonResident { offset, .. } = s { *offset } else { 0 };
        return Err(NtfsError::TooLarge { structure: "stream", offset: off, size: n });
    }
    let mut out = vec![0u8; n as usize];
    read(v, dev, s, 0, &mut out)?;
    Ok(out)
}
