//! Transaction logs: recovering a dirty primary hive file from its `.LOG1`
//! and `.LOG2` files the way Windows does when it loads the hive.
//!
//! A hive is dirty when the checksum of its base block is wrong or its two
//! sequence numbers differ: Windows stored changes in a log and had not yet
//! written them to the primary file (since Windows 8.1 it delays that write
//! by up to an hour), or a write was cut short. Editing such a file without
//! applying its logs first would lose those changes or corrupt the hive.
//!
//! **New format** (Windows 8.1 and later): a log is a base block (file type
//! 6, only its first 512 bytes are meaningful) followed, from byte 512, by
//! `HvLE` log entries with no gaps: size (a multiple of 512), flags, sequence
//! number, hive bins data size, dirty page count, Hash-1 and Hash-2, then
//! the dirty page references (offset in the hive bins data, size) and the
//! pages themselves, in order. Hash-1 is the Marvin32 hash of the entry from
//! byte 40, Hash-2 that of its first 32 bytes, both with the seed written
//! `82 EF 4D 88 7A 4E 55 C5` in the specification: it is the number
//! 0x82EF4D887A4E55C5 (checked against logs written by Windows 10).
//! Recovery, as done here:
//! - a log is usable when its base block is valid (signature, checksum,
//!   version) and its two sequence numbers are equal;
//! - with a valid primary base block, both logs are used, the one whose base
//!   block has the lower sequence number (the earlier entries) first, `.LOG2`
//!   first on a tie (as in Suhanov's reference implementation, yarp); with a
//!   wrong primary checksum, the primary base block is rebuilt from the log
//!   with the latest entries (file type set back to 0) and only that log is
//!   used;
//! - a log is eligible when its base block's sequence number is not below
//!   the primary's secondary sequence number (a log whose entries are all
//!   older is skipped); the first eligible log must begin with an entry
//!   carrying that number, or recovery stops there; every following entry,
//!   in the same log or at the start of the next one, must carry the
//!   previous one's number + 1;
//! - recovery stops (keeping what was applied) at the first entry with a bad
//!   signature, size, Hash-1, Hash-2, hive bins size (not a multiple of
//!   4096), no dirty pages, or a wrong sequence number;
//! - each applied entry grows the file to its hive bins size; the recovered
//!   base block takes the hive bins size and flag bit 0 (`Flags`, offset
//!   0x90) of the last applied entry, and that entry's sequence number in
//!   both fields, which is what Windows holds in memory after recovery (its
//!   own next write would bump both to N + 1). The last-written time is kept.
//!
//! **Old format** (`DIRT`, up to Windows 8): the log base block (file type 1,
//! or 2 before Windows XP) occupies the first sector (clustering factor ×
//! 512 bytes), the dirty vector `DIRT` + bitmap (one bit per 512-byte page
//! of the hive bins data, least significant bit first) follows, and the
//! dirty pages start at the next sector boundary, 512 bytes each, in bit
//! order. The first usable log (`.LOG1`, then `.LOG2`) whose last-written
//! time equals the primary's (or, if the primary's checksum is wrong, the
//! first hive bin's timestamp) is applied; the recovered hive takes the
//! log's hive bins size and the primary's primary sequence number in both
//! fields (the interrupted write completed).
//!
//! Not done here (Windows does them): healing invalid hive bins inside
//! applied pages, and stopping an old-format recovery at a dirty hive bin
//! that is invalid (the cell reader rejects such bins, so the hive is
//! refused rather than guessed at); the Windows 8 rule that may apply an
//! old-format `.LOG2` whose time does not match, and the self-healing of
//! invalid log base blocks (such logs are not used: `Dirty`).
//!
//! Sources, read for facts only (no code copied): Maxim Suhanov, "Windows
//! registry file format specification" (github.com/msuhanov/regf: sections
//! "Format of transaction log files", "Dirty state of a hive", "Multiple
//! transaction log files"), and his note "Missing log entries for a dirty
//! primary file" (why the first entry may be past the primary's sequence
//! number); Joachim Metz, libyal "Windows NT Registry File (REGF) format"
//! (base block, dirty vector); Marvin32 as published by Microsoft in the
//! .NET runtime (`System.Marvin`, MIT) and patent US 2013/0262421.

#![deny(clippy::indexing_slicing)]

use alloc::vec::Vec;

use super::base::{self, BaseBlock, SIZE};
use super::{corrupt, RegError, Result};
use crate::util::le::{le32, le64, put32};

/// What recovery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The recovered primary file: base block clean (both sequence numbers equal), checksum valid.
    pub bytes: Vec<u8>,
    /// The sequence number the recovered base block carries (both fields).
    pub seq: u32,
    /// How many log entries (new format) or dirty pages (old format) were applied.
    pub applied: usize,
    /// Where the applied `HvLE` entries came from (new format only): what a
    /// writer needs to continue the chain (see `registry::journal`).
    pub chain: Option<Chain>,
}

/// The chain of `HvLE` entries a recovery applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The first applied entry's sequence number (the base block sequence
    /// number of the log it starts in).
    pub first: u32,
    /// Indices (into the `logs` given to [`recover`]) of the logs that supplied entries.
    pub logs: Vec<usize>,
    /// The log holding the last applied entry, and the byte just past that entry.
    pub end: (usize, usize),
}

/// Logs are read in 512-byte sectors (Windows 8 and later always assume 512).
const SECTOR: usize = 512;
/// Size of an `HvLE` entry header, up to the dirty page references.
const ENTRY_HEADER: usize = 40;
/// The Marvin32 seed of log entry hashes, "82 EF 4D 88 7A 4E 55 C5" taken as
/// a number (low word 0x7A4E55C5): the value that reproduces the hashes in
/// logs written by Windows 10.
const MARVIN_SEED: u64 = 0x82EF_4D88_7A4E_55C5;
/// Base block fields written here.
const FILE_TYPE: usize = 0x1C;
const BINS_SIZE: usize = 0x28;
const FLAGS: usize = 0x90;
/// Largest hive bins size accepted: cell offsets are 32-bit and Windows
/// keeps their top bit for volatile (memory-only) cells.
const MAX_BINS: u32 = 0x8000_0000;

/// Recovers `primary` (the whole primary file) from `logs` (the contents of
/// the .LOG1 and .LOG2 files, in that order; an empty slice stands for a
/// missing file).
///
/// A clean primary (valid base block, equal sequence numbers) comes back
/// unchanged with `applied == 0`: Windows ignores the logs of a clean hive,
/// even when they hold later entries. A dirty one is rebuilt in memory as
/// described in the module documentation; the result may be longer than
/// `primary` when the logs grew the hive bins (the caller decides whether
/// that is acceptable).
///
/// Errors: [`RegError::Dirty`] when the primary is dirty and its logs are
/// missing, unusable, or do not continue its sequence numbers;
/// [`RegError::Corrupt`] when the primary's base block is invalid for another
/// reason than its checksum, when a dirty primary is shorter than its hive
/// bins, or when a log entry whose hashes are valid does not fit together
/// (the offset is then the byte in the log file); [`RegError::Unsupported`] when the
/// recovered hive would not fit in memory. Never panics, never trusts an
/// offset or length read from the files; `primary` and `logs` are not
/// modified.
pub fn recover(primary: &[u8], logs: &[&[u8]]) -> Result<Recovered> {
    let valid = primary_base(primary)?;
    if let Some(bb) = valid.filter(|bb| !bb.is_dirty()) {
        return Ok(Recovered { bytes: super::copy(primary)?, seq: bb.seq1, applied: 0, chain: None });
    }
    if valid.is_some_and(|bb| primary.len().saturating_sub(SIZE) < bb.bins_size as usize) {
        return Err(corrupt("base block", 0x28, "hive bins data size past the end of the file"));
    }
    if logs.iter().all(|log| log.is_empty()) {
        return Err(dirty("its transaction logs are missing"));
    }
    let (new, old): (Vec<Log>, Vec<Log>) =
        logs.iter().enumerate().filter_map(|(i, log)| Log::parse(log, i)).partition(|l| l.new_format);
    if !new.is_empty() {
        recover_new(primary, valid, new)
    } else if !old.is_empty() {
        recover_old(primary, valid, &old)
    } else {
        Err(dirty("its transaction logs are unusable (no valid log base block)"))
    }
}

fn dirty(detail: &'static str) -> RegError {
    RegError::Dirty { detail }
}

/// The primary's base block: `Some` when valid, `None` when only its
/// checksum is wrong (Windows then rebuilds it from a log).
fn primary_base(primary: &[u8]) -> Result<Option<BaseBlock>> {
    match BaseBlock::parse(primary) {
        Ok(bb) => Ok(Some(bb)),
        Err(_) if bad_checksum(primary) => Ok(None),
        Err(e) => Err(e),
    }
}

fn bad_checksum(b: &[u8]) -> bool {
    b.len() >= SIZE && b.starts_with(b"regf") && le32(b, 0x1FC) != Some(base::checksum(b))
}

/// A usable transaction log.
#[derive(Clone, Copy)]
struct Log<'a> {
    data: &'a [u8],
    /// Its position in the `logs` given to [`recover`].
    index: usize,
    base: BaseBlock,
    /// `HvLE` entries (file type 6) rather than a `DIRT` vector (1 or 2).
    new_format: bool,
    /// Sector size in bytes (clustering factor × 512); old format only.
    sector: usize,
}

impl<'a> Log<'a> {
    /// The log when its base block is valid and its sequence numbers equal.
    fn parse(data: &'a [u8], index: usize) -> Option<Log<'a>> {
        // Only the first 512 bytes of a log base block are meaningful.
        let mut head = alloc::vec![0u8; SIZE];
        head.get_mut(..SECTOR)?.copy_from_slice(data.get(..SECTOR)?);
        let base = BaseBlock::parse(&head).ok().filter(|b| b.seq1 == b.seq2)?;
        let new_format = match base.file_type {
            6 => true,
            1 | 2 => false,
            _ => return None,
        };
        let sector = match le32(&head, 0x2C)? {
            cf @ (1 | 2 | 4 | 8) => SECTOR * cf as usize,
            _ if new_format => SECTOR,
            _ => return None,
        };
        Some(Log { data, index, base, new_format, sector })
    }
}

/// `primary` with its base block's first sector replaced by the log's, as
/// a primary file (file type 0).
fn with_log_base(primary: &[u8], log: &Log) -> Result<Vec<u8>> {
    let mut out = super::copy(primary)?;
    match (out.get_mut(..SECTOR), log.data.get(..SECTOR)) {
        (Some(dst), Some(src)) => dst.copy_from_slice(src),
        _ => return Err(corrupt("base block", 0, "shorter than a sector")),
    }
    put32(&mut out, FILE_TYPE, 0)?;
    Ok(out)
}

/// The largest a recovered hive can be: every byte past the primary file
/// comes from a page in a log, so the primary and the logs together bound
/// it (a short entry claiming gigabytes of bins is refused before anything
/// is allocated).
fn bound<'a>(primary: &[u8], logs: impl IntoIterator<Item = &'a [u8]>) -> usize {
    logs.into_iter().fold(primary.len(), |n, l| n.saturating_add(l.len()))
}

/// Extends `out` with zeros to `len` bytes (never shrinks it).
fn grow(out: &mut Vec<u8>, len: usize) -> Result<()> {
    let more = len.saturating_sub(out.len());
    if more > 0 {
        out.try_reserve_exact(more).map_err(|_| super::no_memory())?;
        out.resize(len, 0);
    }
    Ok(())
}

/// Writes the recovered base block fields and checks the result.
fn finish(mut out: Vec<u8>, seq: u32, bins: u32, flags: Option<u32>) -> Result<Vec<u8>> {
    put32(&mut out, BINS_SIZE, bins)?;
    if let Some(flags) = flags {
        let kept = le32(&out, FLAGS).unwrap_or(0) & !1;
        put32(&mut out, FLAGS, kept | (flags & 1))?;
    }
    let written = le64(&out, 0x0C).unwrap_or(0);
    base::stamp(&mut out, seq, seq, written)?;
    BaseBlock::parse(&out)?;
    Ok(out)
}

// ---- New format: HvLE log entries ----

/// A log entry that passed its checks.
struct Entry<'a> {
    /// Byte offset of the entry in its log file.
    at: usize,
    /// The whole entry (header, references, pages).
    body: &'a [u8],
    seq: u32,
    bins: u32,
    flags: u32,
    pages: u32,
}

fn recover_new(primary: &[u8], valid: Option<BaseBlock>, mut logs: Vec<Log>) -> Result<Recovered> {
    // Earlier entries first; on a tie .LOG2 first (Windows' order, as
    // Suhanov's reference implementation has it).
    logs.sort_by_key(|log| (log.base.seq1, core::cmp::Reverse(log.index)));
    if valid.is_none() {
        // Only the log with the latest entries is used: it supplies the base block.
        logs.drain(..logs.len().saturating_sub(1));
    }
    let mut out = match (valid, logs.first()) {
        (Some(_), _) => super::copy(primary)?,
        (None, Some(latest)) => with_log_base(primary, latest)?,
        (None, None) => return Err(dirty("its transaction logs are unusable (no valid log base block)")),
    };
    let floor = valid.map(|bb| bb.seq2);
    let limit = bound(primary, logs.iter().map(|l| l.data));
    let mut last: Option<Entry> = None;
    let mut applied = 0;
    let mut chain: Option<Chain> = None;
    let mut started = false;
    for log in &logs {
        let mut expected = match &last {
            Some(entry) => entry.seq.checked_add(1),
            // The first eligible log must begin the chain: recovery does not go on past it.
            None if started => break,
            None => Some(log.base.seq1).filter(|&seq| floor.is_none_or(|floor| seq >= floor)),
        };
        started |= expected.is_some();
        let mut at = SECTOR;
        while let Some(entry) = expected.and_then(|seq| entry_at(log.data, at, seq)) {
            apply_entry(&mut out, &entry, limit)?;
            at += entry.body.len();
            expected = entry.seq.checked_add(1);
            applied += 1;
            let c = chain.get_or_insert_with(|| Chain { first: entry.seq, logs: Vec::new(), end: (log.index, at) });
            if c.logs.last() != Some(&log.index) {
                c.logs.push(log.index);
            }
            c.end = (log.index, at);
            last = Some(entry);
        }
    }
    match last {
        Some(entry) => {
            let bytes = finish(out, entry.seq, entry.bins, Some(entry.flags))?;
            Ok(Recovered { bytes, seq: entry.seq, applied, chain })
        }
        None => Err(dirty("no transaction log continues its sequence number")),
    }
}

/// The entry at byte `at` of `log`, if it is a valid `HvLE` entry carrying
/// sequence number `expected`; `None` ends recovery from this log.
fn entry_at(log: &[u8], at: usize, expected: u32) -> Option<Entry<'_>> {
    let rest = log.get(at..)?;
    if !rest.starts_with(b"HvLE") {
        return None;
    }
    let size = le32(rest, 4)? as usize;
    if size < ENTRY_HEADER || !size.is_multiple_of(SECTOR) {
        return None;
    }
    let body = rest.get(..size)?;
    let entry =
        Entry { at, body, flags: le32(body, 8)?, seq: le32(body, 12)?, bins: le32(body, 16)?, pages: le32(body, 20)? };
    let hashes_match = || {
        Some(
            marvin32(body.get(..32)?, MARVIN_SEED) == le64(body, 32)?
                && marvin32(body.get(ENTRY_HEADER..)?, MARVIN_SEED) == le64(body, 24)?,
        )
    };
    (entry.seq == expected && entry.pages > 0 && entry.bins.is_multiple_of(4096) && hashes_match()?).then_some(entry)
}

/// Grows `out` to the entry's hive bins size and writes its dirty pages.
fn apply_entry(out: &mut Vec<u8>, entry: &Entry, limit: usize) -> Result<()> {
    let at = entry.at as u64;
    if entry.bins > MAX_BINS {
        return Err(corrupt("log entry", at + 16, "hive bins size above 2 GiB"));
    }
    if SIZE + entry.bins as usize > limit {
        return Err(corrupt("log entry", at + 16, "hive bins larger than the hive and its logs together hold"));
    }
    grow(out, SIZE + entry.bins as usize)?;
    let refs_end = (entry.pages as usize)
        .checked_mul(8)
        .and_then(|n| n.checked_add(ENTRY_HEADER))
        .filter(|&end| end <= entry.body.len())
        .ok_or(corrupt("log entry", at + 20, "more dirty pages than the entry holds"))?;
    let mut data = refs_end;
    for r in (ENTRY_HEADER..refs_end).step_by(8) {
        let bad = |detail| corrupt("dirty page reference", at + r as u64, detail);
        let (Some(offset), Some(len)) = (le32(entry.body, r), le32(entry.body, r + 4)) else {
            return Err(bad("truncated"));
        };
        if u64::from(offset) + u64::from(len) > u64::from(entry.bins) {
            return Err(bad("page outside the hive bins"));
        }
        let (offset, len) = (offset as usize, len as usize);
        let src = data.checked_add(len).and_then(|end| entry.body.get(data..end));
        let src = src.ok_or(bad("page data past the end of the entry"))?;
        let dst = out.get_mut(SIZE + offset..SIZE + offset + len).ok_or(bad("page outside the hive"))?;
        dst.copy_from_slice(src);
        data += len;
    }
    Ok(())
}

/// Marvin32 (Microsoft's 64-bit keyed hash) of `data`: 4-byte little-endian
/// blocks added into the low state word and mixed; the 0–3 remaining bytes
/// padded with a 0x80 byte form a last block, then two more mixing rounds.
/// The result is `high << 32 | low`.
fn marvin32(data: &[u8], seed: u64) -> u64 {
    let mut state = (seed as u32, (seed >> 32) as u32);
    let word = |bytes: &[u8]| bytes.iter().rev().fold(0u32, |w, &b| (w << 8) | u32::from(b));
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        state = marvin_mix(state.0.wrapping_add(word(block)), state.1);
    }
    let tail = blocks.remainder();
    let last = (0x80u32 << (8 * tail.len())) | word(tail);
    state = marvin_mix(state.0.wrapping_add(last), state.1);
    state = marvin_mix(state.0, state.1);
    (u64::from(state.1) << 32) | u64::from(state.0)
}

/// The Marvin32 block function.
fn marvin_mix(mut lo: u32, mut hi: u32) -> (u32, u32) {
    hi ^= lo;
    lo = lo.rotate_left(20).wrapping_add(hi);
    hi = hi.rotate_left(9) ^ lo;
    lo = lo.rotate_left(27).wrapping_add(hi);
    hi = hi.rotate_left(19);
    (lo, hi)
}

/// A log base block as the first sector of a log file: `hive`'s first 512
/// bytes with file type `file_type` (6 for `HvLE` logs) and both sequence
/// numbers `seq`, checksum recomputed. Only these 512 bytes are written: the
/// rest of a log base block is not read.
#[allow(clippy::indexing_slicing)] // writes into a buffer it sized itself
pub fn log_base(hive: &[u8], file_type: u32, seq: u32) -> Result<Vec<u8>> {
    let mut h = alloc::vec![0u8; SIZE];
    let n = hive.len().min(SECTOR);
    h[..n].copy_from_slice(&hive[..n]);
    put32(&mut h, FILE_TYPE, file_type)?;
    base::stamp(&mut h, seq, seq, le64(hive, 0x0C).unwrap_or(0))?;
    h.truncate(SECTOR);
    Ok(h)
}

/// An `HvLE` log entry with sequence number `seq`, hive bins size `bins`,
/// flags `flags` (bit 0 of the base block's), writing each `(offset in the
/// hive bins, data)` of `pages`; padded with zeros to a multiple of 512
/// bytes and to at least `min_size`, both Marvin32 hashes set.
#[allow(clippy::indexing_slicing)] // writes into a buffer it sized itself
pub fn entry(seq: u32, bins: u32, flags: u32, pages: &[(u32, &[u8])], min_size: usize) -> Result<Vec<u8>> {
    let mut e = alloc::vec![0u8; ENTRY_HEADER];
    e[..4].copy_from_slice(b"HvLE");
    for (offset, data) in pages {
        e.extend_from_slice(&offset.to_le_bytes());
        e.extend_from_slice(&(data.len() as u32).to_le_bytes());
    }
    for (_, data) in pages {
        e.extend_from_slice(data);
    }
    e.resize(e.len().max(min_size).next_multiple_of(SECTOR), 0);
    let size = e.len() as u32;
    for (o, v) in [(4, size), (8, flags), (12, seq), (16, bins), (20, pages.len() as u32)] {
        put32(&mut e, o, v)?;
    }
    let h1 = marvin32(&e[ENTRY_HEADER..], MARVIN_SEED);
    e[24..32].copy_from_slice(&h1.to_le_bytes());
    let h2 = marvin32(&e[..32], MARVIN_SEED);
    e[32..40].copy_from_slice(&h2.to_le_bytes());
    Ok(e)
}

/// Whether `log` is a usable new-format (`HvLE`, Windows 8.1 and later) log.
pub fn is_new_format(log: &[u8]) -> bool {
    Log::parse(log, 0).is_some_and(|l| l.new_format)
}

/// Where recovery would start reading `log`'s records — its first `HvLE`
/// entry (byte 512) or its `DIRT` dirty vector (the sector after the base
/// block) — when the log is usable and that sector is not already zeroed:
/// a zeroed sector written there leaves nothing to replay.
pub fn replay_start(log: &[u8]) -> Option<usize> {
    let l = Log::parse(log, 0)?;
    let at = if l.new_format { SECTOR } else { l.sector };
    log.get(at..at + SECTOR).filter(|s| s.iter().any(|&b| b != 0)).map(|_| at)
}

// ---- Old format: DIRT dirty vector ----

fn recover_old(primary: &[u8], valid: Option<BaseBlock>, logs: &[Log]) -> Result<Recovered> {
    // With a wrong primary checksum, the first hive bin's timestamp stands in.
    let written = match valid {
        Some(bb) => Some(bb.timestamp),
        None => le64(primary, SIZE + 20),
    };
    let log = logs
        .iter()
        .find(|log| Some(log.base.timestamp) == written)
        .ok_or(dirty("no transaction log matches its last-written time"))?;
    let bins = log.base.bins_size;
    if bins > MAX_BINS {
        return Err(corrupt("base block", 0x28, "hive bins size above 2 GiB"));
    }
    if SIZE + bins as usize > bound(primary, [log.data]) {
        return Err(corrupt("base block", 0x28, "hive bins larger than the hive and its log together hold"));
    }
    let mut out = match valid {
        Some(_) => super::copy(primary)?,
        None => with_log_base(primary, log)?,
    };
    grow(&mut out, SIZE + bins as usize)?;
    let applied = apply_dirty_vector(&mut out, log)?;
    let seq = valid.map_or(log.base.seq1, |bb| bb.seq1);
    let bytes = finish(out, seq, bins, None)?;
    Ok(Recovered { bytes, seq, applied, chain: None })
}

/// Writes the dirty pages listed by the log's dirty vector; returns how many.
fn apply_dirty_vector(out: &mut [u8], log: &Log) -> Result<usize> {
    let at = log.sector;
    if !log.data.get(at..).is_some_and(|rest| rest.starts_with(b"DIRT")) {
        return Err(corrupt("dirty vector", at as u64, "no DIRT signature"));
    }
    // One bit per 512-byte page of the hive bins data.
    let bitmap_end = at + 4 + log.base.bins_size as usize / 4096;
    let bitmap =
        log.data.get(at + 4..bitmap_end).ok_or(corrupt("dirty vector", at as u64, "past the end of the log"))?;
    let first_page = bitmap_end.next_multiple_of(log.sector);
    let mut applied = 0;
    for (i, &byte) in bitmap.iter().enumerate() {
        for bit in (0..8).filter(|bit| (byte >> bit) & 1 == 1) {
            let src_at = first_page + applied * SECTOR;
            let src = log.data.get(src_at..src_at + SECTOR);
            let src = src.ok_or(corrupt("dirty page", src_at as u64, "past the end of the log"))?;
            let dst_at = SIZE + (i * 8 + bit) * SECTOR;
            let dst = out.get_mut(dst_at..dst_at + SECTOR);
            dst.ok_or(corrupt("dirty vector", (at + 4 + i) as u64, "page outside the hive"))?.copy_from_slice(src);
            applied += 1;
        }
    }
    Ok(applied)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index what they built
pub(super) mod tests {
    use super::*;
    use alloc::vec;

    const BIN: usize = 4096;

    /// A primary file: base block with sequence numbers (`seq1`, `seq2`)
    /// and `bins` hive bins of 4096 bytes, each filled with its index.
    pub(in crate::formats::registry) fn primary(seq1: u32, seq2: u32, bins: usize) -> Vec<u8> {
        let mut b = vec![0u8; SIZE + bins * BIN];
        b[..4].copy_from_slice(b"regf");
        for (o, v) in [(0x14, 1), (0x18, 5), (0x20, 1), (0x24, 0x20), (0x2C, 1), (0x28, (bins * BIN) as u32)] {
            put32(&mut b, o, v).unwrap();
        }
        for i in 0..bins {
            b[SIZE + i * BIN..SIZE + (i + 1) * BIN].fill(i as u8);
            b[SIZE + i * BIN..SIZE + i * BIN + 4].copy_from_slice(b"hbin");
        }
        base::stamp(&mut b, seq1, seq2, 0x01D0_0000_0000_0000).unwrap();
        b
    }

    /// An `HvLE` entry writing `pages` (offset, fill byte, length).
    fn entry(seq: u32, bins: u32, flags: u32, pages: &[(u32, u8, u32)]) -> Vec<u8> {
        let data: Vec<(u32, Vec<u8>)> = pages.iter().map(|&(o, fill, len)| (o, vec![fill; len as usize])).collect();
        let refs: Vec<(u32, &[u8])> = data.iter().map(|(o, d)| (*o, d.as_slice())).collect();
        super::entry(seq, bins, flags, &refs, 0).unwrap()
    }

    fn new_log(hive: &[u8], entries: &[Vec<u8>]) -> Vec<u8> {
        let seq = entries.first().map_or(1, |e| le32(e, 12).unwrap());
        let mut log = log_base(hive, 6, seq).unwrap();
        entries.iter().for_each(|e| log.extend_from_slice(e));
        log.resize(log.len() + SECTOR, 0); // zeroed tail, as Windows leaves it
        log
    }

    fn bin(b: &[u8], i: usize) -> &[u8] {
        &b[SIZE + i * BIN..SIZE + (i + 1) * BIN]
    }

    #[test]
    fn marvin32_matches_a_hash_windows_wrote() {
        // First 32 bytes of the first entry of a Windows 10 SYSTEM.LOG1 and its Hash-2.
        let head: [u8; 32] = [
            0x48, 0x76, 0x4C, 0x45, 0x00, 0x3E, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3B, 0x08, 0x00, 0x00, 0x00, 0x30,
            0xBD, 0x00, 0x03, 0x00, 0x00, 0x00, 0xC4, 0x81, 0x2C, 0xBE, 0xA1, 0xB6, 0x70, 0x4B,
        ];
        assert_eq!(marvin32(&head, MARVIN_SEED), 0xDD88_C5D7_DF48_F30A);
        // Tails of 0 to 3 bytes: the 32-bit fold (low ^ high) of published
        // vectors for seed 0x5D70D359C498B3F8 (github.com/dgryski/go-marvin32).
        for (input, folded) in [("", 0xF7F2_C954), ("a", 0xD46E_71F7), ("abc", 0x5B3B_C23D), ("abcdefg", 0x79B0_1BFB)] {
            let h = marvin32(input.as_bytes(), 0x5D70_D359_C498_B3F8);
            assert_eq!((h ^ (h >> 32)) as u32, folded, "{input:?}");
        }
    }

    #[test]
    fn clean_primary_is_returned_unchanged() {
        let p = primary(7, 7, 2);
        let log = new_log(&p, &[entry(7, 8192, 0, &[(0, 0xAA, 4096)])]);
        let r = recover(&p, &[&log, &[]]).unwrap();
        assert_eq!((r.bytes, r.seq, r.applied), (p, 7, 0));
    }

    #[test]
    fn dirty_without_usable_logs_is_refused() {
        let p = primary(8, 7, 2);
        let missing = recover(&p, &[&[], &[]]).unwrap_err();
        assert_eq!(missing, RegError::Dirty { detail: "its transaction logs are missing" });
        assert_eq!(recover(&p, &[]).unwrap_err(), missing);
        let mut log = new_log(&p, &[entry(7, 8192, 0, &[(0, 0xAA, 4096)])]);
        log[0] = b'x';
        assert!(matches!(recover(&p, &[&log]), Err(RegError::Dirty { .. })));
        let cut = recover(&p[..SIZE + 4096], &[&log]).unwrap_err();
        assert_eq!(cut, corrupt("base block", 0x28, "hive bins data size past the end of the file"));
        let stale = new_log(&p, &[entry(6, 8192, 0, &[(0, 0xAA, 4096)])]);
        let err = recover(&p, &[&stale]).unwrap_err();
        assert_eq!(err, RegError::Dirty { detail: "no transaction log continues its sequence number" });
    }

    #[test]
    fn entries_are_applied_across_both_logs_in_sequence() {
        let p = primary(8, 7, 2);
        // .LOG2 holds the earlier entries; .LOG1 continues them and grows the hive.
        let log2 = new_log(&p, &[entry(7, 8192, 1, &[(0, 0xA1, 4096)]), entry(8, 8192, 1, &[(4096, 0xA2, 4096)])]);
        let log1 = new_log(&p, &[entry(9, 12288, 0, &[(0, 0xB1, 4096), (8192, 0xB3, 4096)])]);
        let r = recover(&p, &[&log1, &log2]).unwrap();
        assert_eq!((r.seq, r.applied, r.bytes.len()), (9, 3, SIZE + 3 * BIN));
        assert!(bin(&r.bytes, 0).iter().all(|&b| b == 0xB1));
        assert!(bin(&r.bytes, 1).iter().all(|&b| b == 0xA2));
        assert!(bin(&r.bytes, 2).iter().all(|&b| b == 0xB3));
        let bb = BaseBlock::parse(&r.bytes).unwrap();
        assert_eq!((bb.seq1, bb.seq2, bb.bins_size, bb.file_type), (9, 9, 12288, 0));
        assert_eq!(le32(&r.bytes, FLAGS), Some(0));
    }

    #[test]
    fn a_tie_takes_log2_first_and_the_first_eligible_log_must_begin_the_chain() {
        let p = primary(8, 7, 2);
        // Both logs begin at 7: .LOG2 goes first, and .LOG1 (also 7) cannot continue it.
        let log1 = new_log(&p, &[entry(7, 8192, 0, &[(0, 0x11, 4096)])]);
        let log2 = new_log(&p, &[entry(7, 8192, 0, &[(0, 0x22, 4096)])]);
        let r = recover(&p, &[&log1, &log2]).unwrap();
        assert!(bin(&r.bytes, 0).iter().all(|&b| b == 0x22));
        assert_eq!((r.applied, r.chain.unwrap().end), (1, (1, SECTOR + 4608)));
        // The first eligible log (.LOG1, base 7) does not begin with entry 7:
        // recovery stops, even though .LOG2 (base 9) holds a valid entry 9.
        let mut bad = new_log(&p, &[entry(8, 8192, 0, &[(0, 0x11, 4096)])]);
        put32(&mut bad, 4, 7).unwrap();
        put32(&mut bad, 8, 7).unwrap();
        let c = base::checksum(&bad);
        put32(&mut bad, 0x1FC, c).unwrap();
        let later = new_log(&p, &[entry(9, 8192, 0, &[(0, 0x33, 4096)])]);
        let err = recover(&p, &[&bad, &later]).unwrap_err();
        assert_eq!(err, RegError::Dirty { detail: "no transaction log continues its sequence number" });
    }

    #[test]
    fn recovery_stops_at_a_gap_or_a_bad_hash() {
        let p = primary(8, 7, 2);
        let e7 = entry(7, 8192, 0, &[(0, 0xA1, 4096)]);
        let e9 = entry(9, 8192, 0, &[(4096, 0xA2, 4096)]);
        let r = recover(&p, &[&new_log(&p, &[e7.clone(), e9.clone()])]).unwrap();
        assert_eq!((r.seq, r.applied), (7, 1));
        assert_eq!(bin(&r.bytes, 1), bin(&p, 1));
        let e8 = entry(8, 8192, 0, &[(4096, 0xA2, 4096)]);
        let flip = SECTOR + e7.len() + 100; // inside the page data of e8
        let mut log = new_log(&p, &[e7, e8]);
        log[flip] ^= 1;
        let r = recover(&p, &[&log]).unwrap();
        assert_eq!((r.seq, r.applied), (7, 1));
    }

    #[test]
    fn a_log_of_older_entries_is_skipped() {
        let p = primary(11, 10, 2);
        let old = new_log(&p, &[entry(5, 8192, 0, &[(0, 0xEE, 4096)])]);
        let log = new_log(&p, &[entry(12, 8192, 0, &[(4096, 0xA2, 4096)])]);
        let r = recover(&p, &[&old, &log]).unwrap();
        assert_eq!((r.seq, r.applied), (12, 1));
        assert_eq!(bin(&r.bytes, 0), bin(&p, 0));
    }

    #[test]
    fn inconsistent_entry_is_corrupt_with_its_log_offset() {
        let p = primary(8, 7, 2);
        let log = new_log(&p, &[entry(7, 8192, 0, &[(8192, 0xA1, 4096)])]);
        let err = recover(&p, &[&log]).unwrap_err();
        assert_eq!(err, corrupt("dirty page reference", (SECTOR + ENTRY_HEADER) as u64, "page outside the hive bins"));
        let mut e = entry(7, 8192, 0, &[(0, 0xA1, 4096)]);
        put32(&mut e, 20, 1000).unwrap();
        let h1 = marvin32(&e[ENTRY_HEADER..], MARVIN_SEED);
        e[24..32].copy_from_slice(&h1.to_le_bytes());
        let h2 = marvin32(&e[..32], MARVIN_SEED);
        e[32..40].copy_from_slice(&h2.to_le_bytes());
        let err = recover(&p, &[&new_log(&p, &[e])]).unwrap_err();
        assert!(
            matches!(err, RegError::Corrupt { structure: "log entry", offset, .. } if offset == (SECTOR + 20) as u64)
        );
    }

    #[test]
    fn wrong_primary_checksum_takes_the_base_block_of_the_latest_log() {
        let mut p = primary(8, 7, 2);
        p[0x30] ^= 0xFF; // breaks the checksum
        let early = new_log(&p, &[entry(3, 8192, 0, &[(0, 0xEE, 4096)])]);
        let mut fixed = primary(8, 7, 2);
        fixed[0x30] = 0x55;
        let latest = new_log(&fixed, &[entry(7, 8192, 1, &[(4096, 0xA2, 4096)])]);
        let r = recover(&p, &[&latest, &early]).unwrap();
        assert_eq!((r.seq, r.applied, r.bytes[0x30]), (7, 1, 0x55));
        assert_eq!(bin(&r.bytes, 0), bin(&p, 0));
        assert_eq!(BaseBlock::parse(&r.bytes).unwrap().file_type, 0);
        assert!(recover(&b"regf"[..], &[&latest]).is_err());
    }

    /// An old-format log dirtying 512-byte pages `pages` of the hive bins.
    fn dirt_log(hive: &[u8], pages: &[usize]) -> Vec<u8> {
        let mut log = log_base(hive, 1, le32(hive, 4).unwrap()).unwrap();
        let bins = le32(hive, BINS_SIZE).unwrap() as usize;
        let mut bitmap = vec![0u8; bins / 4096];
        pages.iter().for_each(|&p| bitmap[p / 8] |= 1 << (p % 8));
        log.extend_from_slice(b"DIRT");
        log.extend_from_slice(&bitmap);
        log.resize(log.len().next_multiple_of(SECTOR), 0);
        for (n, _) in pages.iter().enumerate() {
            log.extend(core::iter::repeat_n(0xC0 + n as u8, SECTOR));
        }
        log
    }

    #[test]
    fn old_format_dirty_vector() {
        let p = primary(8, 7, 2);
        let log = dirt_log(&p, &[1, 9]);
        let r = recover(&p, &[&log, &[]]).unwrap();
        assert_eq!((r.seq, r.applied), (8, 2));
        assert!(r.bytes[SIZE + 512..SIZE + 1024].iter().all(|&b| b == 0xC0));
        assert!(r.bytes[SIZE + 9 * 512..SIZE + 10 * 512].iter().all(|&b| b == 0xC1));
        assert_eq!(r.bytes[SIZE + 1024..SIZE + 9 * 512], p[SIZE + 1024..SIZE + 9 * 512]);
        let mut other_time = log.clone();
        put32(&mut other_time, 0x0C, 1).unwrap();
        let sum = base::checksum(&other_time);
        put32(&mut other_time, 0x1FC, sum).unwrap();
        let err = recover(&p, &[&other_time]).unwrap_err();
        assert_eq!(err, RegError::Dirty { detail: "no transaction log matches its last-written time" });
        let cut = &log[..log.len() - 1];
        assert!(matches!(recover(&p, &[cut]), Err(RegError::Corrupt { structure: "dirty page", .. })));
    }

    #[test]
    fn an_entry_claiming_more_bins_than_the_files_hold_is_refused_before_allocating() {
        let hive = primary(3, 2, 1);
        // A 4.5 KiB entry, hashes valid, claiming 2 GiB of hive bins.
        let e = entry(2, 0x7FFF_F000, 0, &[(0, 0xAB, 4096)]);
        let log = new_log(&hive, &[e]);
        let r = recover(&hive, &[&log, &[]]);
        assert!(matches!(r, Err(RegError::Corrupt { detail, .. }) if detail.contains("logs together")), "{r:?}");
    }

    #[test]
    fn truncated_or_bit_flipped_inputs_never_panic() {
        let p = primary(8, 7, 2);
        let log1 = new_log(&p, &[entry(7, 8192, 1, &[(0, 0xA1, 4096)]), entry(8, 12288, 1, &[(8192, 0xA2, 512)])]);
        let log2 = dirt_log(&p, &[0, 3]);
        for (slot, mut buf) in [(0, log1.clone()), (1, log2.clone())] {
            let run = |b: &[u8]| {
                let mut logs: [&[u8]; 2] = [&[], &[]];
                logs[slot] = b;
                let _ = recover(&p, &logs);
            };
            for cut in (0..buf.len()).step_by(37) {
                run(&buf[..cut]);
            }
            for i in (0..buf.len()).step_by(7) {
                buf[i] ^= 0x41;
                run(&buf);
                buf[i] ^= 0x41;
            }
        }
        for cut in (0..p.len()).step_by(509) {
            let _ = recover(&p[..cut], &[&log1, &log2]);
        }
        let mut q = p.clone();
        for i in (0..SECTOR).step_by(3) {
            q[i] ^= 0x10;
            let _ = recover(&q, &[&log1, &log2]);
            q[i] ^= 0x10;
        }
    }
}
