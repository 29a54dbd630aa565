//! The log file service (LFS) layer of `$LogFile`: the two restart pages,
//! the record pages with their fixups (and the tail copies Windows keeps of
//! the newest pages), LSN ↔ file offset, and log records that span pages.
//!
//! Guarantees: the whole log is read into memory once; every field read from
//! it is bounded by the log's size; every walk is bounded by the number of
//! record pages (a lying or looping log is [`NtfsError::Corrupt`], never a
//! hang or a panic).

#![deny(clippy::indexing_slicing)]

use super::super::record::apply_fixups;
use super::super::{corrupt, le16, le32, le64, NtfsError, Result};
use alloc::vec::Vec;

/// Size of an LFS record header.
pub const RECORD_HEADER: usize = 0x30;
/// LFS record type of a client record (an NTFS update).
pub const CLIENT_RECORD: u32 = 1;
/// LFS record type of a client restart record (an NTFS checkpoint).
pub const CLIENT_RESTART: u32 = 2;
/// Restart area flag: the volume was cleanly unmounted.
pub const CLEAN: u16 = 0x0002;
/// Largest log we read (Windows makes at most 4 GiB, in practice ≤ 256 MiB; the cap bounds memory).
pub const MAX_LOG: u64 = 512 * 1024 * 1024;
/// Largest client data one record may carry (a table dump of a big volume).
const MAX_RECORD_DATA: usize = 16 * 1024 * 1024;

/// One restart page (`RSTR`) and its restart area, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restart {
    /// Byte offset of the page in `$LogFile` (0 or the system page size).
    pub page_at: usize,
    /// System page size (restart pages) and log page size (record pages).
    pub sys_page: usize,
    /// Log page size.
    pub log_page: usize,
    /// Log version.
    pub major: i16,
    /// Log version.
    pub minor: i16,
    /// Offset of the restart area in the page.
    pub area_at: usize,
    /// The LSN of the newest record when the area was written.
    pub current_lsn: u64,
    /// Restart area flags ([`CLEAN`]).
    pub flags: u16,
    /// Bits of an LSN that count wraps of the log.
    pub seq_bits: u32,
    /// Size of the log as LFS sees it.
    pub file_size: u64,
    /// Where record data starts in a record page.
    pub data_offset: usize,
    /// Offset of the NTFS client record in the page (when a client is in use).
    pub client_at: Option<usize>,
    /// The NTFS client's oldest LSN it needs.
    pub oldest_lsn: u64,
    /// The NTFS client's restart LSN: its last checkpoint record.
    pub client_restart_lsn: u64,
}

impl Restart {
    /// True when the restart area says the volume was cleanly unmounted (or no client is in use).
    pub fn clean(&self) -> bool {
        self.flags & CLEAN != 0 || self.client_at.is_none()
    }
}

/// A record of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// Its LSN.
    pub lsn: u64,
    /// The previous record of the same client (0: none).
    pub prev_lsn: u64,
    /// The next record to undo for its transaction (0: none).
    pub undo_next_lsn: u64,
    /// [`CLIENT_RECORD`] or [`CLIENT_RESTART`].
    pub kind: u32,
    /// The transaction (offset of its entry in the transaction table).
    pub transaction: u32,
    /// The client data.
    pub data: Vec<u8>,
}

/// A `$LogFile` in memory, fixed up and ready to read records from.
#[derive(Debug)]
pub struct Log {
    /// Byte position of the log on the volume (for errors).
    pub at: u64,
    /// The restart area the log restarts from (the newer valid one).
    pub restart: Restart,
    /// Both restart pages as read (`None` where a page is empty or invalid).
    pub restarts: [Option<Restart>; 2],
    pages: Vec<u8>,
    good: Vec<bool>,
    first_page: usize,
}

fn cor(at: u64, detail: &'static str) -> NtfsError {
    corrupt("$LogFile", at, detail)
}

/// Reads the restart page at `page_at` of `raw`, or `None` when it is all 0xFF.
fn read_restart(raw: &[u8], page_at: usize, at: u64) -> Result<Option<Restart>> {
    let unknown = |major: i16, minor: i16| NtfsError::UnknownJournal { offset: at + page_at as u64, major, minor };
    let head = raw.get(page_at..page_at + 512).ok_or(unknown(0, 0))?;
    if head.iter().all(|&b| b == 0xFF) {
        return Ok(None);
    }
    if head.get(0..4) != Some(b"RSTR") {
        return Err(unknown(0, 0));
    }
    let sys_page = le32(head, 0x10).unwrap_or(0) as usize;
    let log_page = le32(head, 0x14).unwrap_or(0) as usize;
    let area_at = le16(head, 0x18).unwrap_or(0) as usize;
    let minor = le16(head, 0x1A).unwrap_or(0) as i16;
    let major = le16(head, 0x1C).unwrap_or(0) as i16;
    if !matches!((major, minor), (1, 1) | (2, 0)) {
        return Err(unknown(major, minor));
    }
    if !sys_page.is_power_of_two() || !(512..=65536).contains(&sys_page) {
        return Err(unknown(major, minor));
    }
    if !log_page.is_power_of_two() || !(512..=65536).contains(&log_page) {
        return Err(unknown(major, minor));
    }
    let mut page = raw.get(page_at..page_at + sys_page).ok_or(unknown(major, minor))?.to_vec();
    apply_fixups(&mut page, "$LogFile restart page", at + page_at as u64)?;
    let here = at + page_at as u64;
    if area_at % 8 != 0 || area_at < 0x1E || area_at + 0x30 > sys_page {
        return Err(cor(here + 0x18, "restart area outside its page"));
    }
    let a = |o: usize| area_at + o;
    let clients = le16(&page, a(0x08)).unwrap_or(0) as usize;
    let in_use = le16(&page, a(0x0C)).unwrap_or(0xFFFF);
    let seq_bits = le32(&page, a(0x10)).unwrap_or(0);
    let client_array = le16(&page, a(0x16)).unwrap_or(0) as usize;
    let file_size = le64(&page, a(0x18)).unwrap_or(0);
    let header_len = le16(&page, a(0x24)).unwrap_or(0) as usize;
    let data_offset = le16(&page, a(0x26)).unwrap_or(0) as usize;
    if !(1..=63).contains(&seq_bits) || file_size > MAX_LOG || file_size < 2 * sys_page as u64 {
        return Err(cor(here + a(0x10) as u64, "restart area: sequence bits or log size out of range"));
    }
    if header_len != RECORD_HEADER || data_offset % 8 != 0 || data_offset < 0x28 || data_offset + 0x40 > log_page {
        return Err(cor(here + a(0x24) as u64, "restart area: record header or page data offset out of range"));
    }
    let client_at = match in_use {
        0xFFFF => None,
        i if (i as usize) < clients => {
            let c = area_at + client_array + i as usize * 0xA0;
            if c + 0xA0 > sys_page {
                return Err(cor(here + a(0x16) as u64, "restart area: client record outside its page"));
            }
            Some(c)
        }
        _ => return Err(cor(here + a(0x0C) as u64, "restart area: client in use beyond the client count")),
    };
    let field = |o: usize| client_at.and_then(|c| le64(&page, c + o)).unwrap_or(0);
    Ok(Some(Restart {
        page_at,
        sys_page,
        log_page,
        major,
        minor,
        area_at,
        current_lsn: le64(&page, area_at).unwrap_or(0),
        flags: le16(&page, a(0x0E)).unwrap_or(0),
        seq_bits,
        file_size,
        data_offset,
        client_at,
        oldest_lsn: field(0),
        client_restart_lsn: field(8),
    }))
}

impl Log {
    /// Reads the log from `raw`, the whole `$LogFile` at byte `at` of the
    /// volume. Returns `None` when both restart pages are empty (a log that
    /// `mkntfs`/`ntfsfix` left all 0xFF). The restart area used is the
    /// valid one with the higher current LSN.
    pub fn read(raw: &[u8], at: u64) -> Result<Option<Log>> {
        if raw.len() < 8192 || raw.len() as u64 > MAX_LOG {
            return Err(NtfsError::TooLarge { structure: "$LogFile", offset: at, size: raw.len() as u64 });
        }
        let first = read_restart(raw, 0, at);
        let sys = match &first {
            Ok(Some(r)) => r.sys_page,
            _ => 4096,
        };
        let second = read_restart(raw, sys, at);
        let restarts = match (first, second) {
            (Ok(a), Ok(b)) => [a, b],
            (Ok(a), Err(_)) => [a, None],
            (Err(_), Ok(b)) => [None, b],
            (Err(e), Err(_)) => return Err(e),
        };
        let Some(restart) = restarts.iter().flatten().max_by_key(|r| r.current_lsn).cloned() else {
            return Ok(None);
        };
        let (sys_page, page) = (restart.sys_page, restart.log_page);
        if restart.file_size % page as u64 != 0 {
            return Err(cor(at, "restart area: log size not whole pages"));
        }
        let first_page = if restart.major >= 2 { 2 * sys_page + 32 * page } else { 2 * sys_page + 2 * page };
        if first_page + page > restart.file_size as usize {
            return Err(cor(at, "log too small for its version"));
        }
        let mut log = Log { at, restart, restarts, pages: Vec::new(), good: Vec::new(), first_page };
        log.fix_pages(raw)?;
        Ok(Some(log))
    }

    /// Copies the record pages and tail copies with their fixups undone;
    /// a tail copy newer than the page it copies takes that page's place.
    fn fix_pages(&mut self, raw: &[u8]) -> Result<()> {
        // Pages past the end of `raw` (a copy cut short) count as unwritten.
        let (page, size) = (self.restart.log_page, self.restart.file_size as usize);
        let n = size / page;
        self.pages = raw.get(..size.min(raw.len() / page * page)).unwrap_or_default().to_vec();
        self.good = (0..n).map(|_| false).collect();
        let tail_start = 2 * self.restart.sys_page / page;
        let first = self.first_page / page;
        for i in tail_start..n {
            let Some(buf) = self.pages.get_mut(i * page..(i + 1) * page) else { break };
            let ok = buf.get(0..4) == Some(b"RCRD") && apply_fixups(buf, "$LogFile page", 0).is_ok();
            if let Some(g) = self.good.get_mut(i) {
                *g = ok && i >= first;
            }
        }
        // Tail copies: the newest pages, written there before their own
        // place. Their home is the file offset at 0x08 (version 1.x) or 0x3C (2.0).
        for i in tail_start..first {
            if !self.is_rcrd(i) {
                continue;
            }
            let home_at = if self.restart.major >= 2 {
                le32(&self.pages, i * page + 0x3C).unwrap_or(0) as u64
            } else {
                le64(&self.pages, i * page + 0x08).unwrap_or(0)
            };
            let home = (home_at / page as u64) as usize;
            if home_at % page as u64 != 0 || home < first || home >= n {
                continue;
            }
            let end = self.page_end_lsn(i);
            if !self.good.get(home).copied().unwrap_or(false) || self.page_end_lsn(home) < end {
                let copy = self.pages.get(i * page..(i + 1) * page).map(<[u8]>::to_vec).unwrap_or_default();
                if let Some(dst) = self.pages.get_mut(home * page..(home + 1) * page) {
                    dst.copy_from_slice(&copy);
                    if let Some(g) = self.good.get_mut(home) {
                        *g = true;
                    }
                }
            }
        }
        Ok(())
    }

    fn is_rcrd(&self, i: usize) -> bool {
        let p = self.restart.log_page;
        self.pages.get(i * p..i * p + 4) == Some(b"RCRD")
            && self.pages.get(i * p..(i + 1) * p).is_some_and(|b| le16(b, 6) == Some((p / 512 + 1) as u16))
    }

    /// The last end LSN a record page claims.
    fn page_end_lsn(&self, i: usize) -> u64 {
        let p = self.restart.log_page;
        le64(&self.pages, i * p + 0x20).unwrap_or(0)
    }

    /// Bits of an LSN that hold the file offset (in 8-byte units).
    fn file_bits(&self) -> u32 {
        64 - self.restart.seq_bits
    }

    /// The byte offset in `$LogFile` that `lsn` names.
    pub fn lsn_to_offset(&self, lsn: u64) -> u64 {
        let bits = self.file_bits();
        let mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
        (lsn & mask).wrapping_mul(8)
    }

    fn lsn_seq(&self, lsn: u64) -> u64 {
        lsn.checked_shr(self.file_bits()).unwrap_or(0)
    }

    fn make_lsn(&self, seq: u64, offset: u64) -> u64 {
        seq.checked_shl(self.file_bits()).unwrap_or(0) | (offset / 8)
    }

    /// Byte position on the volume of log offset `o` (for errors), assuming a contiguous log.
    fn pos(&self, o: u64) -> u64 {
        self.at + o
    }

    /// Reads the record at `lsn`: its header must carry that LSN, its data
    /// may run over following pages (wrapping at the end of the log).
    pub fn record(&self, lsn: u64) -> Result<LogRecord> {
        let (rec, _) = self.record_and_next(lsn)?;
        Ok(rec)
    }

    /// The record at `lsn` and the LSN where the next record would start.
    pub fn record_and_next(&self, lsn: u64) -> Result<(LogRecord, u64)> {
        let page = self.restart.log_page as u64;
        let off = self.lsn_to_offset(lsn);
        let here = self.pos(off);
        let data_off = self.restart.data_offset as u64;
        let in_page = off % page;
        let pidx = (off / page) as usize;
        if off < self.first_page as u64 || off >= self.restart.file_size || in_page < data_off {
            return Err(cor(here, "LSN points outside the record pages"));
        }
        if in_page + RECORD_HEADER as u64 > page || !self.good.get(pidx).copied().unwrap_or(false) {
            return Err(cor(here, "LSN points into a damaged or unwritten log page"));
        }
        let h = off as usize;
        let field = |o: usize| le64(&self.pages, h + o).unwrap_or(0);
        if field(0) != lsn {
            return Err(cor(here, "record header does not carry the LSN that points to it"));
        }
        let len = le32(&self.pages, h + 0x18).unwrap_or(0) as usize;
        if len > MAX_RECORD_DATA {
            return Err(cor(here + 0x18, "record data length out of range"));
        }
        let mut rec = LogRecord {
            lsn,
            prev_lsn: field(0x08),
            undo_next_lsn: field(0x10),
            kind: le32(&self.pages, h + 0x20).unwrap_or(0),
            transaction: le32(&self.pages, h + 0x24).unwrap_or(0),
            data: Vec::with_capacity(len),
        };
        // Copy the data page by page.
        let (mut seq, mut pi, mut at) = (self.lsn_seq(lsn), pidx, h + RECORD_HEADER);
        let pages_total = self.restart.file_size as usize / page as usize;
        let mut hops = 0usize;
        loop {
            let page_end = (pi + 1) * page as usize;
            let take = (len - rec.data.len()).min(page_end.saturating_sub(at));
            rec.data.extend_from_slice(self.pages.get(at..at + take).ok_or(cor(here, "record runs past the log"))?);
            at += take;
            if rec.data.len() == len {
                break;
            }
            // Next page (wrapping to the first record page, one lap more).
            (pi, seq) = self.next_page(pi, seq);
            hops += 1;
            if hops > pages_total || !self.good.get(pi).copied().unwrap_or(false) {
                return Err(cor(here, "record runs into a damaged or unwritten log page"));
            }
            at = pi * page as usize + data_off as usize;
        }
        // Where the next record starts: 8-aligned; a header never splits across pages.
        let mut next = (at + 7) & !7;
        if next + RECORD_HEADER > (pi + 1) * page as usize {
            (pi, seq) = self.next_page(pi, seq);
            next = pi * page as usize + data_off as usize;
        }
        Ok((rec, self.make_lsn(seq, next as u64)))
    }

    fn next_page(&self, pi: usize, seq: u64) -> (usize, u64) {
        let page = self.restart.log_page;
        if (pi + 1) * page >= self.restart.file_size as usize {
            (self.first_page / page, seq.wrapping_add(1))
        } else {
            (pi + 1, seq)
        }
    }

    /// Every record from `lsn` to the end of the log, in order. The end is
    /// where the next record's header does not carry the LSN that leads to
    /// it (older data, an unwritten page). Bounded by the log's size.
    pub fn records_from(&self, lsn: u64) -> Result<Vec<LogRecord>> {
        let mut out = Vec::new();
        let mut next = lsn;
        let mut total = 0usize;
        while let Ok((rec, n)) = self.record_and_next(next) {
            total += RECORD_HEADER + rec.data.len();
            if total > 2 * self.restart.file_size as usize || n <= rec.lsn {
                return Err(cor(self.pos(self.lsn_to_offset(rec.lsn)), "log records loop"));
            }
            next = n;
            out.push(rec);
        }
        if out.first().map(|r| r.lsn) != Some(lsn) {
            return Err(cor(self.pos(self.lsn_to_offset(lsn)), "the record the restart area names cannot be read"));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_garbage() {
        assert!(matches!(Log::read(&[0xFF; 65536], 0), Ok(None)));
        assert!(Log::read(&[0u8; 65536], 0).is_err());
        assert!(Log::read(&[0xFF; 100], 0).is_err());
    }
}
