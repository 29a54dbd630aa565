//! Putting an edited hive on disk as Windows does: the change goes into a
//! transaction log first, as one `HvLE` entry, and only then into the
//! primary file (base block marked dirty, the changed pages, base block
//! clean). Cut short after any write, the files recover, by Windows' rules
//! (as [`log::recover`] implements them), to the hive before the change or
//! to the edited one: never to a mix of the two.
//!
//! Where the entry goes:
//! - a dirty hive that was recovered from its logs: right after the last
//!   entry the recovery applied, continuing its chain (every earlier entry
//!   stays, so the hive recovers at every step); when that log has no room,
//!   at the start of the other log if the chain does not use it (Windows'
//!   own switch from one log file to the other);
//! - a clean hive: at the start of the first new-format log with room, under
//!   a fresh log base block; the dirty primary's secondary sequence number
//!   then names this entry, so older entries in either log are never
//!   replayed.
//!
//! The entry holds every 4 KiB page the edit changed in the recovered hive
//! (padded, as Windows pads them, to end on a 4 KiB boundary of the log when
//! there is room), and a zeroed sector after it ends the log. The entry takes
//! the edited hive's sequence number E; while the hive is written its base
//! block is the edited one with sequence numbers (E + 1, floor), where floor
//! is the first entry recovery must apply, and at the end (E + 1, E + 1), as
//! after Windows' own writes, so that Windows' next entry (numbered like the
//! hive's secondary sequence number) never takes the number of this one.
//!
//! Without a place for the entry: a clean hive whose logs are missing, too
//! small or old-format (Windows 8 and earlier) is written without one, in
//! the same order (a cut leaves a hive marked dirty, which Windows does not
//! take for a clean one), after a zeroed sector over the first record of
//! each log that holds one, so that no stale entry can replay over a cut
//! write; a dirty hive is refused.
//!
//! Every plan is checked before it is returned: recovery is run on the files
//! as they would be after each log write, after the dirty base block, after
//! the last page and at the end. Checking after every page is not needed:
//! the page writes only touch pages the recovery rewrites (from this entry
//! or from the chain it continues), so every state between the first and the
//! last page recovers as both ends do.

#![deny(clippy::indexing_slicing)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::base::{self, BaseBlock, SIZE};
use super::edit::{self, FileEdit};
use super::log::{self, Recovered};
use super::{corrupt, RegError, Result};
use crate::util::le::le32;

/// Logs are written in 512-byte sectors.
const SECTOR: usize = 512;
/// The base block flags (`Flags`, bit 0 is carried by log entries).
const FLAGS: usize = 0x90;

/// The file a write goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The primary hive file.
    Primary,
    /// A transaction log: its index in the `logs` given to [`plan`].
    Log(usize),
}

/// The writes that put an edited hive on disk, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Journal {
    /// Every write (offset in its file, bytes), in the order to do them; all
    /// log writes come before the first primary write. Empty when the hive
    /// did not change.
    pub writes: Vec<(Target, FileEdit)>,
    /// The log entry written first: (log index, sequence number); `None`
    /// when the hive is written without one.
    pub entry: Option<(usize, u32)>,
}

impl Journal {
    /// For people: where the log entry went, given the logs' file names, or why there is none.
    pub fn describe(&self, log_names: [&str; 2]) -> String {
        match self.entry {
            Some((i, seq)) => format!("log entry {seq} in {}, written first", log_names.get(i).unwrap_or(&"?")),
            None => String::from("no log entry (no transaction log in the new format with room for one)"),
        }
    }
}

/// The hive file `primary` as its `logs` recover it ([`log::recover`]), to be
/// edited and written back in place: a recovery that would make the file
/// longer (the logs grew the hive bins) is refused, files are never grown.
pub fn recover_in_place(primary: &[u8], logs: &[&[u8]]) -> Result<Recovered> {
    let recovered = log::recover(primary, logs)?;
    if recovered.bytes.len() != primary.len() {
        return Err(RegError::Unsupported {
            detail: "recovering it from its logs would make the file longer, and files are never grown",
        });
    }
    Ok(recovered)
}

/// Plans writing `edited` over the primary file `original`, whose logs are
/// `logs` (as given to [`log::recover`], which returned `recovered`).
/// `edited` is `recovered.bytes` changed by the editor (same length as
/// `original`).
///
/// Errors: [`RegError::Unsupported`] when a recovered dirty hive's logs have
/// no room for the entry, or when the check finds the logs would not recover
/// the change (logs that do not fit together); nothing is to be written
/// then. Never panics; writes nothing itself.
pub fn plan(original: &[u8], recovered: &Recovered, edited: &[u8], logs: &[&[u8]]) -> Result<Journal> {
    if edited.len() != original.len() {
        return Err(RegError::Unsupported {
            detail: "the change would change the file's length, and files are never grown",
        });
    }
    let mut primary = edit::writes(original, edited)?;
    if primary.is_empty() {
        return Ok(Journal::default());
    }
    let new = BaseBlock::parse(edited)?;
    let pages = changed_pages(&recovered.bytes, edited);
    let seq = new.seq1;
    let flags = le32(edited, FLAGS).unwrap_or(0) & 1;
    let body = log::entry(seq, new.bins_size, flags, &pages, 0)?;
    let place = if pages.is_empty() { None } else { place(recovered, logs, body.len(), seq)? };
    let Some(place) = place else {
        return without_entry(original, recovered, primary, logs);
    };
    // As Windows lays entries out: each ends on a 4 KiB boundary of the log, when there is room.
    let log_len = logs.get(place.log).map_or(0, |l| l.len());
    let aligned = (place.at + body.len()).next_multiple_of(4096) - place.at;
    let body = match place.at + aligned {
        end if end == log_len || end + SECTOR <= log_len => log::entry(seq, new.bins_size, flags, &pages, aligned)?,
        _ => body,
    };
    let mut at_entry = body;
    if place.at + at_entry.len() < log_len {
        at_entry.resize(at_entry.len() + SECTOR, 0);
    }
    let mut writes = alloc::vec![(Target::Log(place.log), (place.at as u64, at_entry))];
    if place.at == SECTOR {
        writes.push((Target::Log(place.log), (0, log::log_base(edited, 6, seq)?)));
    }
    // The hive ends one past its last log entry, as after Windows' own
    // writes (its next entry then takes the next number); while written it
    // is dirty with recovery starting at `floor`.
    let base_block = edited.get(..SIZE).ok_or(corrupt("base block", 0, "shorter than a base block"))?;
    let mut clean = base_block.to_vec();
    base::stamp(&mut clean, seq.wrapping_add(1), seq.wrapping_add(1), new.timestamp)?;
    let mut dirty = base_block.to_vec();
    base::stamp(&mut dirty, seq.wrapping_add(1), place.floor, new.timestamp)?;
    if let Some(first) = primary.first_mut() {
        first.1 = dirty;
    }
    if let Some(last) = primary.last_mut() {
        last.1 = clean;
    }
    writes.extend(primary.into_iter().map(|w| (Target::Primary, w)));
    let journal = Journal { writes, entry: Some((place.log, seq)) };
    check(original, recovered, edited, logs, &journal)?;
    Ok(journal)
}

/// The writes for a hive written without a log entry: first, when the
/// hive was clean, a zeroed sector over the first record of every log that
/// still holds one (a stale entry there could otherwise replay over a cut
/// write, to a hive that is neither the old nor the new one), then the
/// primary's writes. Checked: once the primary is marked dirty, no log
/// recovers anything.
fn without_entry(original: &[u8], recovered: &Recovered, primary: Vec<FileEdit>, logs: &[&[u8]]) -> Result<Journal> {
    let mut writes = Vec::new();
    // A hive recovered from old-format logs keeps them: its first write
    // (a new last-written time) already ends their use.
    if recovered.applied == 0 {
        for (i, log) in logs.iter().enumerate() {
            if let Some(at) = log::replay_start(log) {
                writes.push((Target::Log(i), (at as u64, alloc::vec![0u8; SECTOR])));
            }
        }
    }
    if recovered.applied == 0 {
        // The files once the logs are cleared and the primary marked dirty.
        let mut files = Files::new(original, logs)?;
        let dirty_base = primary.first().map(|w| (Target::Primary, w.clone()));
        for w in writes.iter().chain(&dirty_base) {
            files.apply(w).ok_or_else(replays)?;
        }
        if files.recover().is_ok() {
            return Err(replays());
        }
    }
    writes.extend(primary.into_iter().map(|w| (Target::Primary, w)));
    Ok(Journal { writes, entry: None })
}

/// The refusal when a log could replay over a change written without an entry.
fn replays() -> RegError {
    RegError::Unsupported { detail: "a transaction log could replay over the change if the write were cut short" }
}

/// Where the log entry goes.
struct Place {
    /// Index of the log file.
    log: usize,
    /// Byte offset of the entry in it (512: a fresh log).
    at: usize,
    /// The sequence number recovery must start from.
    floor: u32,
}

/// Chooses the log and offset for an entry of `len` bytes with sequence
/// number `seq`; `None`: the hive is written without an entry.
fn place(recovered: &Recovered, logs: &[&[u8]], len: usize, seq: u32) -> Result<Option<Place>> {
    // The entry fits, followed by a zeroed sector or by the end of the file.
    let fits = |i: usize, at: usize| logs.get(i).is_some_and(|l| at + len == l.len() || at + len + SECTOR <= l.len());
    match &recovered.chain {
        Some(chain) => {
            let (log, end) = chain.end;
            if fits(log, end) {
                return Ok(Some(Place { log, at: end, floor: chain.first }));
            }
            let other = (0..logs.len()).find(|&i| !chain.logs.contains(&i) && fits(i, SECTOR));
            match other {
                Some(log) => Ok(Some(Place { log, at: SECTOR, floor: chain.first })),
                None => Err(RegError::Unsupported {
                    detail:
                        "its transaction logs have no room for a log entry of the change, and files are never grown",
                }),
            }
        }
        // Recovered from old-format logs, or clean: a fresh new-format log, if one can hold the entry.
        None if recovered.applied > 0 => Ok(None),
        None => {
            let log = (0..logs.len()).find(|&i| logs.get(i).is_some_and(|l| log::is_new_format(l)) && fits(i, SECTOR));
            Ok(log.map(|log| Place { log, at: SECTOR, floor: seq }))
        }
    }
}

/// Every 4 KiB page of the hive bins that differs between `old` and `new`
/// (same length): (offset in the hive bins, page).
fn changed_pages<'a>(old: &[u8], new: &'a [u8]) -> Vec<(u32, &'a [u8])> {
    let pages = old.chunks(4096).zip(new.chunks(4096)).enumerate().skip(1);
    pages.filter(|(_, (a, b))| a != b).map(|(i, (_, b))| (((i - 1) * 4096) as u32, b)).collect()
}

/// The primary file and its logs as a plan's writes leave them (copies:
/// the caller's files stay as they are).
struct Files {
    primary: Vec<u8>,
    logs: Vec<Vec<u8>>,
}

impl Files {
    fn new(primary: &[u8], logs: &[&[u8]]) -> Result<Files> {
        Ok(Files { primary: super::copy(primary)?, logs: logs.iter().map(|l| super::copy(l)).collect::<Result<_>>()? })
    }

    /// Applies one write; `None` when it falls outside its file.
    fn apply(&mut self, (target, (at, bytes)): &(Target, FileEdit)) -> Option<()> {
        let file = match target {
            Target::Primary => &mut self.primary,
            Target::Log(i) => self.logs.get_mut(*i)?,
        };
        let at = usize::try_from(*at).ok()?;
        file.get_mut(at..at.checked_add(bytes.len())?)?.copy_from_slice(bytes);
        Some(())
    }

    /// What Windows' recovery makes of the files now.
    fn recover(&self) -> Result<Recovered> {
        let refs: Vec<&[u8]> = self.logs.iter().map(|l| l.as_slice()).collect();
        log::recover(&self.primary, &refs)
    }
}

/// Runs the recovery on the files as they would be at each checkpoint of
/// `journal` (see the module documentation) and checks the result.
fn check(original: &[u8], recovered: &Recovered, edited: &[u8], logs: &[&[u8]], journal: &Journal) -> Result<()> {
    let bad = || RegError::Unsupported {
        detail: "its transaction logs would not recover the change if the write were cut short",
    };
    let mut files = Files::new(original, logs)?;
    let n = journal.writes.len();
    for (k, w) in journal.writes.iter().enumerate() {
        files.apply(w).ok_or_else(bad)?;
        let (target, (at, _)) = w;
        let next_is_page = matches!(journal.writes.get(k + 1), Some((Target::Primary, (o, _))) if *o != 0);
        if *target == Target::Primary && *at != 0 && next_is_page {
            continue;
        }
        let r = files.recover().map_err(|_| bad())?;
        let primary = &files.primary;
        let primary_touched = journal.writes.iter().take(k + 1).any(|(t, _)| *t == Target::Primary);
        let good = if k + 1 == n {
            // Clean: the edited hive, numbered one past the entry.
            let next = journal.entry.map_or(0, |(_, seq)| seq.wrapping_add(1));
            let mut base_block = edited.get(..SIZE).ok_or_else(bad)?.to_vec();
            base::stamp(&mut base_block, next, next, BaseBlock::parse(edited)?.timestamp)?;
            let is_want = |b: &[u8]| b.get(..SIZE) == Some(&base_block[..]) && b.get(SIZE..) == edited.get(SIZE..);
            is_want(primary) && is_want(&r.bytes)
        } else if primary_touched {
            r.bytes == edited
        } else {
            // Only logs written: the hive as before, or (a chain that now
            // ends with the entry) as edited; base blocks differ in time.
            BaseBlock::parse(&r.bytes).is_ok()
                && (r.bytes.get(SIZE..) == recovered.bytes.get(SIZE..) || r.bytes.get(SIZE..) == edited.get(SIZE..))
        };
        if !good {
            return Err(bad());
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index what they built
mod tests {
    use super::*;
    use crate::formats::registry::log::tests::primary;
    use alloc::vec;

    const PAGE: usize = 4096;

    /// `hive` with bin `i` filled with `fill`, both sequence numbers `seq`, timestamp 9.
    fn changed(hive: &[u8], bins: &[(usize, u8)], seq: u32) -> Vec<u8> {
        let mut b = hive.to_vec();
        for &(i, fill) in bins {
            b[SIZE + i * PAGE..SIZE + (i + 1) * PAGE].fill(fill);
        }
        base::stamp(&mut b, seq, seq, 9).unwrap();
        b
    }

    /// A new-format log of `len` bytes: base block `seq`, then `entries`.
    fn new_log(hive: &[u8], seq: u32, entries: &[Vec<u8>], len: usize) -> Vec<u8> {
        let mut l = log::log_base(hive, 6, seq).unwrap();
        entries.iter().for_each(|e| l.extend_from_slice(e));
        assert!(l.len() <= len);
        l.resize(len, 0);
        l
    }

    fn page_entry(seq: u32, bins: usize, i: usize, fill: u8) -> Vec<u8> {
        log::entry(seq, (bins * PAGE) as u32, 0, &[((i * PAGE) as u32, &vec![fill; PAGE])], 0).unwrap()
    }

    /// Applies the first `k` writes of `j` and recovers.
    fn after(original: &[u8], logs: &[&[u8]], j: &Journal, k: usize) -> Vec<u8> {
        let mut files: Vec<Vec<u8>> =
            core::iter::once(original.to_vec()).chain(logs.iter().map(|l| l.to_vec())).collect();
        for (t, (at, b)) in &j.writes[..k] {
            let f = match t {
                Target::Primary => 0,
                Target::Log(i) => 1 + i,
            };
            files[f][*at as usize..*at as usize + b.len()].copy_from_slice(b);
        }
        let refs: Vec<&[u8]> = files[1..].iter().map(|l| l.as_slice()).collect();
        log::recover(&files[0], &refs).unwrap().bytes
    }

    /// Every cut of `j` recovers to the bins of `before` or of `edited`,
    /// and to exactly `edited` once the primary was touched.
    fn every_cut_recovers(original: &[u8], before: &[u8], edited: &[u8], logs: &[&[u8]], j: &Journal) {
        let first_primary = j.writes.iter().position(|(t, _)| *t == Target::Primary).unwrap();
        let next = j.entry.unwrap().1 + 1;
        for k in 0..=j.writes.len() {
            let r = after(original, logs, j, k);
            if k == j.writes.len() {
                assert!(r[SIZE..] == edited[SIZE..], "the end");
                assert_eq!(BaseBlock::parse(&r).map(|b| (b.seq1, b.seq2)), Ok((next, next)), "one past the entry");
            } else if k > first_primary {
                assert!(r == edited, "cut after {k} writes");
            } else {
                assert!(r[SIZE..] == before[SIZE..] || r[SIZE..] == edited[SIZE..], "cut after {k} writes");
            }
        }
    }

    #[test]
    fn clean_hive_gets_a_fresh_log_whose_entry_is_replayed_alone() {
        let original = primary(10, 10, 4);
        // LOG1 holds an old chain whose pages must never come back.
        let log1 = new_log(&original, 8, &[page_entry(8, 4, 1, 0xEE), page_entry(9, 4, 2, 0xEE)], 32 * 1024);
        let log2 = vec![0u8; 32 * 1024];
        let logs: [&[u8]; 2] = [&log1, &log2];
        let rec = log::recover(&original, &logs).unwrap();
        let edited = changed(&original, &[(1, 0xA1), (3, 0xA3)], 11);
        let j = plan(&original, &rec, &edited, &logs).unwrap();
        assert_eq!(j.entry, Some((0, 11)));
        assert_eq!(j.writes[0].0, Target::Log(0));
        assert_eq!(j.writes[0].1 .0, SECTOR as u64);
        assert_eq!(j.writes[1].1 .0, 0, "the fresh log base block goes after the entry");
        every_cut_recovers(&original, &original, &edited, &logs, &j);
    }

    #[test]
    fn recovered_dirty_hive_continues_the_chain_or_switches_logs() {
        let original = primary(13, 11, 4);
        let chain = [page_entry(11, 4, 0, 0xB0), page_entry(12, 4, 1, 0xB1)];
        let log1 = new_log(&original, 11, &chain, 64 * 1024);
        let log2 = vec![0u8; 64 * 1024];
        let logs: [&[u8]; 2] = [&log1, &log2];
        let rec = log::recover(&original, &logs).unwrap();
        assert_eq!(rec.seq, 12);
        let edited = changed(&rec.bytes, &[(2, 0xC2)], 13);
        let j = plan(&original, &rec, &edited, &logs).unwrap();
        let end = rec.chain.as_ref().unwrap().end.1;
        assert_eq!((j.entry, j.writes[0].1 .0), (Some((0, 13)), end as u64), "appended after entry 12");
        every_cut_recovers(&original, &rec.bytes, &edited, &logs, &j);

        // LOG1 full (the chain ends at its end): a fresh LOG2 continues it.
        let full = &log1[..end];
        let logs: [&[u8]; 2] = [full, &log2];
        let rec = log::recover(&original, &logs).unwrap();
        let j = plan(&original, &rec, &edited, &logs).unwrap();
        assert_eq!((j.entry, j.writes[0].1 .0), (Some((1, 13)), SECTOR as u64));
        every_cut_recovers(&original, &rec.bytes, &edited, &logs, &j);

        // No room anywhere: refused, nothing to write.
        let logs: [&[u8]; 2] = [full, &log2[..1024]];
        let rec = log::recover(&original, &logs).unwrap();
        assert!(matches!(plan(&original, &rec, &edited, &logs), Err(RegError::Unsupported { .. })));
    }

    #[test]
    fn without_a_usable_log_a_clean_hive_is_written_as_before() {
        let original = primary(5, 5, 3);
        let edited = changed(&original, &[(1, 0x11)], 6);
        let old_format = {
            let mut l = log::log_base(&original, 1, 5).unwrap();
            l.resize(16 * 1024, 0);
            l
        };
        for logs in [vec![], vec![&[][..], &[][..]], vec![&old_format[..]], vec![&[0u8; 1024][..]]] {
            let rec = log::recover(&original, &logs).unwrap();
            let j = plan(&original, &rec, &edited, &logs).unwrap();
            assert_eq!(j.entry, None);
            let plain: Vec<(Target, FileEdit)> =
                edit::writes(&original, &edited).unwrap().into_iter().map(|w| (Target::Primary, w)).collect();
            assert_eq!(j.writes, plain);
        }
        let rec = log::recover(&original, &[]).unwrap();
        assert_eq!(plan(&original, &rec, &original, &[]).unwrap(), Journal::default());
        let longer = [&edited[..], &[0u8; 4096]].concat();
        assert!(matches!(plan(&original, &rec, &longer, &[]), Err(RegError::Unsupported { .. })));
    }

    #[test]
    fn without_room_for_an_entry_stale_entries_are_cleared_first() {
        // A clean hive at 7; LOG1 holds an old but valid entry 7 and is too
        // small for the two-page entry of the change; LOG2 is old-format.
        let original = primary(7, 7, 4);
        let log1 = new_log(&original, 7, &[page_entry(7, 4, 1, 0x77)], 6 * 1024);
        let mut log2 = log::log_base(&original, 1, 7).unwrap();
        log2.resize(8 * 1024, 0);
        log2[512..516].copy_from_slice(b"DIRT");
        let logs: [&[u8]; 2] = [&log1, &log2];
        let rec = log::recover(&original, &logs).unwrap();
        let edited = changed(&original, &[(2, 0xA2), (3, 0xA3)], 8);
        let j = plan(&original, &rec, &edited, &logs).unwrap();
        assert_eq!(j.entry, None);
        assert_eq!(j.writes[0], (Target::Log(0), (512, vec![0u8; 512])), "LOG1's entry cleared first");
        assert_eq!(j.writes[1], (Target::Log(1), (512, vec![0u8; 512])), "LOG2's dirty vector too");
        // Every cut: the hive as before (still clean), or dirty with nothing
        // to replay, or the edited one; never a third hive from a stale entry.
        for k in 0..=j.writes.len() {
            let mut files = [original.clone(), log1.clone(), log2.clone()];
            for (t, (at, b)) in &j.writes[..k] {
                let f = match t {
                    Target::Primary => 0,
                    Target::Log(i) => 1 + i,
                };
                files[f][*at as usize..*at as usize + b.len()].copy_from_slice(b);
            }
            match log::recover(&files[0], &[&files[1], &files[2]]) {
                Ok(r) => assert!(r.bytes == original || r.bytes[SIZE..] == edited[SIZE..], "cut after {k} writes"),
                Err(e) => assert!(matches!(e, RegError::Dirty { .. }), "cut after {k} writes: {e}"),
            }
        }
        // Before this fix, the same cut after the dirty base block replayed entry 7.
        let mut cut = original.clone();
        let first = edit::writes(&original, &edited).unwrap().remove(0);
        cut[..first.1.len()].copy_from_slice(&first.1);
        let stale = log::recover(&cut, &logs).unwrap();
        assert!(stale.bytes[SIZE..] != original[SIZE..] && stale.bytes[SIZE..] != edited[SIZE..]);
    }

    #[test]
    fn logs_that_would_replay_over_the_change_are_refused() {
        // LOG2 claims entries after the one to write (a log from elsewhere):
        // recovery would continue into it.
        let original = primary(20, 20, 3);
        let log1 = new_log(&original, 5, &[], 32 * 1024);
        let log2 = new_log(&original, 22, &[page_entry(22, 3, 1, 0x66)], 32 * 1024);
        let logs: [&[u8]; 2] = [&log1, &log2];
        let rec = log::recover(&original, &logs).unwrap();
        let edited = changed(&original, &[(2, 0x22)], 21);
        assert!(matches!(plan(&original, &rec, &edited, &logs), Err(RegError::Unsupported { .. })));
    }
}
