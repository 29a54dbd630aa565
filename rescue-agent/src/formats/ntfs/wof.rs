//! WOF (Windows Overlay Filter) files: CompactOS and `compact /exe:` files.
//!
//! Such a file is a reparse point with tag [`TAG`]. Its unnamed `$DATA` is
//! sparse and only carries the size; the bytes live in the named stream
//! `WofCompressedData`, cut into chunks of 4, 8, 16 KiB (XPRESS Huffman) or
//! 32 KiB (LZX), each compressed on its own. The stream starts with a chunk
//! table: one offset per chunk but the first (4 bytes each, 8 when the file
//! is 4 GiB or more), counted from the end of the table. A chunk stored with
//! its full size was not compressed.
//!
//! Sources: the reparse data is `WOF_EXTERNAL_INFO` followed by
//! `FILE_PROVIDER_EXTERNAL_INFO_V1` (Microsoft's `wofapi.h` documentation,
//! "WofSetFileDataLocation"); the chunk layout is the one wimlib documents
//! for its NTFS-3G "system compression" plugin and shares with WIM resources.

#![deny(clippy::indexing_slicing)]

use super::attr;
use super::file::{File, Stream};
use super::stream::{self, Clusters};
use super::{corrupt, le32, le64, NtfsError, Result};
use crate::block::BlockDevice;
use crate::formats::decompress::{lzx, xpress_huffman, Corrupt};
use alloc::vec;
use alloc::vec::Vec;

/// `IO_REPARSE_TAG_WOF`.
pub const TAG: u32 = 0x8000_0017;

/// The named stream holding a WOF file's compressed bytes.
const STREAM: &str = "WofCompressedData";

/// The compression of a WOF file (`FILE_PROVIDER_COMPRESSION_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// XPRESS Huffman, 4 KiB chunks (0).
    Xpress4K,
    /// LZX, 32 KiB chunks (1).
    Lzx,
    /// XPRESS Huffman, 8 KiB chunks (2).
    Xpress8K,
    /// XPRESS Huffman, 16 KiB chunks (3).
    Xpress16K,
}

impl Algorithm {
    /// Uncompressed bytes per chunk.
    pub fn chunk_size(self) -> u64 {
        match self {
            Algorithm::Xpress4K => 4096,
            Algorithm::Xpress8K => 8192,
            Algorithm::Xpress16K => 16384,
            Algorithm::Lzx => 32768,
        }
    }
    fn decompress(self, input: &[u8], out: &mut [u8]) -> core::result::Result<(), Corrupt> {
        match self {
            Algorithm::Lzx => lzx::decompress(input, out),
            _ => xpress_huffman::decompress(input, out),
        }
    }
}

/// A WOF file's contents: where they are and how to decode them.
#[derive(Clone, Debug)]
pub struct Wof {
    /// How the chunks are compressed.
    pub algorithm: Algorithm,
    /// The file's (uncompressed) size: the size of its unnamed `$DATA`.
    pub size: u64,
    /// The `WofCompressedData` stream.
    pub stream: Stream,
}

/// The WOF layout of `f`, or `None` when `f` is not a WOF file. A WOF
/// reparse point of another provider (a file backed by a WIM image) or an
/// unknown algorithm is [`NtfsError::Unsupported`].
pub(super) fn of(v: Clusters, dev: &mut impl BlockDevice, f: &File) -> Result<Option<Wof>> {
    let Some(rp) = f.stream(attr::REPARSE_POINT, &[])? else { return Ok(None) };
    let value = stream::read_all(v, dev, &rp, 16 * 1024)?;
    if le32(&value, 0) != Some(TAG) {
        return Ok(None);
    }
    let at = f.base().offset;
    let unsupported = |detail| NtfsError::Unsupported { structure: "WOF reparse point", offset: at, detail };
    // 8-byte reparse header, then WOF_EXTERNAL_INFO {version 1, provider}
    // and FILE_PROVIDER_EXTERNAL_INFO_V1 {version 1, algorithm}.
    let (Some(version), Some(provider), Some(fversion), Some(algorithm)) =
        (le32(&value, 8), le32(&value, 12), le32(&value, 16), le32(&value, 20))
    else {
        return Err(corrupt("WOF reparse point", at, "reparse data too short"));
    };
    if version != 1 || fversion != 1 {
        return Err(unsupported("unknown WOF version"));
    }
    if provider != 2 {
        return Err(unsupported("WOF file backed by a WIM image (not compressed in place)"));
    }
    let algorithm = match algorithm {
        0 => Algorithm::Xpress4K,
        1 => Algorithm::Lzx,
        2 => Algorithm::Xpress8K,
        3 => Algorithm::Xpress16K,
        _ => return Err(unsupported("unknown WOF compression algorithm")),
    };
    let size = f.stream(attr::DATA, &[])?.map_or(0, |s| s.len());
    let name: Vec<u16> = STREAM.encode_utf16().collect();
    let stream = f.stream(attr::DATA, &name)?.ok_or(corrupt("WOF file", at, "no WofCompressedData stream"))?;
    Ok(Some(Wof { algorithm, size, stream }))
}

/// Reads `buf.len()` bytes of a WOF file's contents from byte `pos`
/// (the caller has checked the range against [`Wof::size`]). A chunk
/// table or chunk that does not decode is an error naming the stream.
pub(super) fn read(v: Clusters, dev: &mut impl BlockDevice, w: &Wof, pos: u64, buf: &mut [u8]) -> Result<()> {
    let at = match &w.stream {
        Stream::NonResident { offset, .. } => *offset,
        Stream::Resident(_) => 0,
    };
    let bad = |detail| corrupt("WofCompressedData", at, detail);
    let cs = w.algorithm.chunk_size();
    let chunks = w.size.div_ceil(cs);
    let entry = if w.size > u32::MAX as u64 { 8 } else { 4 };
    let table = chunks.saturating_sub(1) * entry;
    let stored_total = w.stream.len().checked_sub(table).ok_or(bad("shorter than its chunk table"))?;
    // Chunk i's stored bytes start at `start(i)`, counted from the end of the table.
    let start = |dev: &mut _, i: u64| -> Result<u64> {
        if i == 0 {
            return Ok(0);
        }
        if i == chunks {
            return Ok(stored_total);
        }
        let mut e = [0u8; 8];
        let field = e.get_mut(..entry as usize).ok_or(bad("chunk table entry too wide"))?;
        stream::read(v, dev, &w.stream, (i - 1) * entry, field)?;
        Ok(le64(&e, 0).unwrap_or(u64::MAX))
    };
    let mut plain = vec![0u8; cs as usize];
    let mut packed = Vec::new();
    let mut done = 0usize;
    while done < buf.len() {
        let p = pos + done as u64;
        let i = p / cs;
        let (s, e) = (start(dev, i)?, start(dev, i + 1)?);
        if s > e || e > stored_total {
            return Err(bad("chunk table out of order or beyond the stream"));
        }
        let expect = cs.min(w.size - i * cs) as usize;
        let stored = (e - s) as usize;
        if stored > expect {
            return Err(bad("chunk larger than its uncompressed size"));
        }
        let out = plain.get_mut(..expect).ok_or(bad("chunk larger than the chunk size"))?;
        if stored == expect {
            stream::read(v, dev, &w.stream, table + s, out)?;
        } else {
            packed.resize(stored, 0);
            stream::read(v, dev, &w.stream, table + s, &mut packed)?;
            w.algorithm.decompress(&packed, out).map_err(|c| bad(c.0))?;
        }
        let from = (p - i * cs) as usize;
        let n = (expect - from).min(buf.len() - done);
        let (Some(to), Some(part)) = (buf.get_mut(done..done + n), out.get(from..from + n)) else {
            return Err(bad("read outside a chunk"));
        };
        to.copy_from_slice(part);
        done += n;
    }
    Ok(())
}
