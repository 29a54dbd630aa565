//! `$LogFile` restart pages: was the volume cleanly unmounted?

use super::record::apply_fixups;
use super::{le16, le32, le64, NtfsError, Result};

/// What the journal says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum JournalState {
    /// Never used: all 0xFF (as `mkntfs`, ntfs-3g and `ntfsfix` leave it).
    Empty,
    /// The newest restart area has the clean flag (or no client in use).
    Clean,
    /// Not cleanly unmounted (a crash, a hard power-off).
    Unclean,
}

/// Restart area flag: the volume is clean.
pub const RESTART_VOLUME_IS_CLEAN: u16 = 0x0002;

/// Classifies the journal from its first bytes `head` (at least two pages;
/// `offset` is its byte position on the volume). Known versions: 1.1 and
/// 2.0. Anything else that is not all 0xFF — another version, a `CHKD`
/// page, garbage — is [`NtfsError::UnknownJournal`].
pub fn state(head: &[u8], offset: u64) -> Result<JournalState> {
    let unknown = |o: usize, major: i16, minor: i16| NtfsError::UnknownJournal { offset: offset + o as u64, major, minor };
    if head.len() < 8192 {
        return Err(unknown(0, 0, 0));
    }
    let mut best: Option<(u64, JournalState)> = None;
    let mut page_at = 0usize;
    let mut pages = 0;
    while pages < 2 {
        pages += 1;
        if page_at + 4096 > head.len() {
            return Err(unknown(page_at, 0, 0));
        }
        let first = &head[page_at..page_at + 4096];
        if first.iter().all(|&b| b == 0xFF) {
            page_at += 4096;
            continue;
        }
        if first.get(0..4) != Some(b"RSTR") {
            return Err(unknown(page_at, 0, 0));
        }
        let sys_page = le32(first, 0x10).unwrap_or(0) as usize;
        let log_page = le32(first, 0x14).unwrap_or(0) as usize;
        let ra_off = le16(first, 0x18).unwrap_or(0) as usize;
        let minor = le16(first, 0x1A).unwrap_or(0) as i16;
        let major = le16(first, 0x1C).unwrap_or(0) as i16;
        if !matches!((major, minor), (1, 1) | (2, 0)) {
            return Err(unknown(page_at, major, minor));
        }
        if !sys_page.is_power_of_two() || !(512..=65536).contains(&sys_page) || !log_page.is_power_of_two() || log_page < 512 || page_at + sys_page > head.len() {
            return Err(unknown(page_at, major, minor));
        }
        let mut page = head[page_at..page_at + sys_page].to_vec();
        apply_fixups(&mut page, "$LogFile restart page", offset + page_at as u64)?;
        if ra_off % 8 != 0 || ra_off < 0x1E || ra_off + 0x30 > sys_page {
            return Err(unknown(page_at, major, minor));
        }
        let lsn = le64(&page, ra_off).unwrap_or(0);
        let in_use = le16(&page, ra_off + 0x0C).unwrap_or(0);
        let flags = le16(&page, ra_off + 0x0E).unwrap_or(0);
        let st = if in_use == 0xFFFF || flags & RESTART_VOLUME_IS_CLEAN != 0 { JournalState::Clean } else { JournalState::Unclean };
        if best.map_or(true, |(l, _)| lsn >= l) {
            best = Some((lsn, st));
        }
        page_at += sys_page;
    }
    Ok(best.map_or(JournalState::Empty, |(_, s)| s))
}
