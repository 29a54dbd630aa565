//! `$LogFile` restart pages: was the volume cleanly unmounted?

#![deny(clippy::indexing_slicing)]

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
    let unknown =
        |o: usize, major: i16, minor: i16| NtfsError::UnknownJournal { offset: offset + o as u64, major, minor };
    if head.len() < 8192 {
        return Err(unknown(0, 0, 0));
    }
    let mut best: Option<(u64, JournalState)> = None;
    let mut page_at = 0usize;
    let mut pages = 0;
    while pages < 2 {
        pages += 1;
        let first = head.get(page_at..page_at + 4096).ok_or(unknown(page_at, 0, 0))?;
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
        if !sys_page.is_power_of_two()
            || !(512..=65536).contains(&sys_page)
            || !log_page.is_power_of_two()
            || log_page < 512
            || page_at + sys_page > head.len()
        {
            return Err(unknown(page_at, major, minor));
        }
        let mut page = head.get(page_at..page_at + sys_page).ok_or(unknown(page_at, major, minor))?.to_vec();
        apply_fixups(&mut page, "$LogFile restart page", offset + page_at as u64)?;
        if ra_off % 8 != 0 || ra_off < 0x1E || ra_off + 0x30 > sys_page {
            return Err(unknown(page_at, major, minor));
        }
        let lsn = le64(&page, ra_off).unwrap_or(0);
        let in_use = le16(&page, ra_off + 0x0C).unwrap_or(0);
        let flags = le16(&page, ra_off + 0x0E).unwrap_or(0);
        let st = if in_use == 0xFFFF || flags & RESTART_VOLUME_IS_CLEAN != 0 {
            JournalState::Clean
        } else {
            JournalState::Unclean
        };
        if best.is_none_or(|(l, _)| lsn >= l) {
            best = Some((lsn, st));
        }
        page_at += sys_page;
    }
    Ok(best.map_or(JournalState::Empty, |(_, s)| s))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index what they built
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// A restart page of `version` whose restart area has `flags` and `in_use`, with valid fixups.
    fn page(major: u16, minor: u16, flags: u16, in_use: u16, lsn: u64) -> Vec<u8> {
        let mut p = vec![0u8; 4096];
        p[..4].copy_from_slice(b"RSTR");
        p[4..6].copy_from_slice(&0x1Eu16.to_le_bytes());
        p[6..8].copy_from_slice(&9u16.to_le_bytes());
        p[0x10..0x14].copy_from_slice(&4096u32.to_le_bytes());
        p[0x14..0x18].copy_from_slice(&4096u32.to_le_bytes());
        p[0x18..0x1A].copy_from_slice(&0x30u16.to_le_bytes());
        p[0x1A..0x1C].copy_from_slice(&minor.to_le_bytes());
        p[0x1C..0x1E].copy_from_slice(&major.to_le_bytes());
        p[0x30..0x38].copy_from_slice(&lsn.to_le_bytes());
        p[0x3C..0x3E].copy_from_slice(&in_use.to_le_bytes());
        p[0x3E..0x40].copy_from_slice(&flags.to_le_bytes());
        // USN 1 at every stride end (the saved bytes are zero).
        p[0x1E..0x20].copy_from_slice(&1u16.to_le_bytes());
        for i in 1..9 {
            p[i * 512 - 2..i * 512].copy_from_slice(&1u16.to_le_bytes());
        }
        p
    }

    fn log(a: Vec<u8>, b: Vec<u8>) -> Vec<u8> {
        let mut v = a;
        v.extend(b);
        v.resize(65536, 0xFF);
        v
    }

    #[test]
    fn states() {
        assert_eq!(state(&vec![0xFF; 65536], 0), Ok(JournalState::Empty));
        assert_eq!(state(&log(page(1, 1, 2, 0, 5), page(1, 1, 2, 0, 4)), 0), Ok(JournalState::Clean));
        assert_eq!(state(&log(page(2, 0, 0, 0, 5), page(2, 0, 0, 0, 4)), 0), Ok(JournalState::Unclean));
        // No client in use counts as clean; the newest restart area decides.
        assert_eq!(state(&log(page(2, 0, 0, 0xFFFF, 5), page(2, 0, 0, 0, 4)), 0), Ok(JournalState::Clean));
        assert_eq!(state(&log(page(2, 0, 2, 0, 4), page(2, 0, 0, 0, 5)), 0), Ok(JournalState::Unclean));
        // Unknown versions, CHKD pages and garbage are refused.
        assert!(matches!(
            state(&log(page(3, 0, 2, 0, 5), page(3, 0, 2, 0, 4)), 0),
            Err(NtfsError::UnknownJournal { major: 3, .. })
        ));
        let mut chkd = page(1, 1, 2, 0, 5);
        chkd[..4].copy_from_slice(b"CHKD");
        assert!(state(&log(chkd, page(1, 1, 2, 0, 4)), 0).is_err());
        assert!(state(&vec![0u8; 65536], 0).is_err());
        assert!(state(&[0xFF; 100], 0).is_err());
        // A torn restart page (USN mismatch) is an error, not a guess.
        let mut torn = page(1, 1, 2, 0, 5);
        torn[1022] = 7;
        assert!(state(&log(torn, page(1, 1, 2, 0, 4)), 0).is_err());
    }
}
