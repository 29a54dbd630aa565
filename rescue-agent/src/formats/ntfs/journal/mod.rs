//! `$LogFile` replay: the journal read ([`log`], [`client`]), NTFS restart
//! planned in memory ([`replay`]) with the page edits of every operation
//! Windows writes ([`ops`]), and the restart areas marked clean last.
//!
//! [`read`] loads a volume's journal; [`plan_replay`] returns the writes
//! (pages, then restart areas) and what they do. Nothing here writes:
//! the plan goes through [`super::plan::execute`] like every other change.

pub mod client;
pub mod log;
pub mod ops;
pub mod replay;

use super::attr;
use super::file::Stream;
use super::fs::{Ntfs, LOGFILE};
use super::plan::Plan;
use super::record::{apply_fixups, write_fixups};
use super::{corrupt, le16, put16, put32, put64, runs, Result};
use crate::block::BlockDevice;
use alloc::string::String;
use alloc::vec::Vec;
pub use log::Log;
pub use replay::Summary;

/// A volume's journal, read whole.
pub struct Journal {
    /// The log (`None`: empty, all 0xFF).
    pub log: Option<Log>,
    /// The raw bytes of `$LogFile`.
    raw: Vec<u8>,
    /// Physical extents of `$LogFile` (volume offset, length).
    extents: Vec<(u64, u64)>,
}

impl Journal {
    /// True when there is nothing to replay (empty, or the restart area says clean).
    pub fn clean(&self) -> bool {
        self.log.as_ref().is_none_or(|l| l.restart.clean())
    }
    /// The physical position of log offset `o` and how many bytes are contiguous there.
    fn phys(&self, mut o: u64) -> Option<(u64, u64)> {
        for &(p, l) in &self.extents {
            if o < l {
                return Some((p + o, l - o));
            }
            o -= l;
        }
        None
    }
}

/// Reads the volume's `$LogFile` whole (bounded by [`log::MAX_LOG`]).
pub fn read(v: &Ntfs, dev: &mut impl BlockDevice) -> Result<Journal> {
    let lf = v.load_file(dev, LOGFILE)?;
    let s = lf.stream(attr::DATA, &[])?.ok_or(corrupt("$LogFile", lf.base().offset, "no $DATA"))?;
    let Stream::NonResident { runs: lruns, data_size, offset: loff, .. } = &s else {
        return Err(corrupt("$LogFile", lf.base().offset, "resident $DATA"));
    };
    if *data_size > log::MAX_LOG {
        return Err(super::NtfsError::TooLarge { structure: "$LogFile", offset: *loff, size: *data_size });
    }
    let mut extents = Vec::new();
    for (p, l) in runs::extents(lruns, v.cluster(), 0, *data_size, *loff)? {
        extents.push((p.ok_or(corrupt("$LogFile", *loff, "sparse journal"))?, l));
    }
    let raw = v.read_all(dev, &s, log::MAX_LOG)?;
    let at = extents.first().map_or(*loff, |e| e.0);
    let log = Log::read(&raw, at)?;
    Ok(Journal { log, raw, extents })
}

/// Plans the replay of an unclean journal: the page writes, then both
/// restart areas marked clean (the last writes: a replay interrupted before
/// them is replayed again to the same bytes). `None` when the journal is clean.
///
/// The restart areas end as Windows leaves a clean log: the clean flag set and,
/// in the last one written, the current LSN on the log's last record, so
/// whatever NTFS writes next gets an LSN newer than every page the replay
/// stamped (the client's restart and oldest LSN stay on the checkpoint, a valid
/// restart record). The other keeps its current LSN: stopped between the two,
/// the page the log restarts from still says unclean and the replay runs again
/// to the same bytes.
pub fn plan_replay(v: &Ntfs, dev: &mut impl BlockDevice, j: &Journal) -> Result<Option<(Plan, Summary)>> {
    let Some(log) = j.log.as_ref().filter(|l| !l.restart.clean()) else { return Ok(None) };
    let r = replay::plan(v, dev, log)?;
    let mut plan = r.plan;
    let end = r.summary.end_lsn;
    let end_len = u32::try_from(log.record(end)?.data.len()).unwrap_or(u32::MAX);
    // A restart page already marked clean (by a replay stopped between the two) stays as it is.
    // The page the log restarts from (the newer; the second on a tie) is written last.
    let mut unclean: Vec<_> = log.restarts.iter().flatten().filter(|r| r.flags & log::CLEAN == 0).collect();
    unclean.sort_by_key(|r| r.current_lsn);
    for (i, rs) in unclean.iter().enumerate() {
        let mut page = j.raw.get(rs.page_at..rs.page_at + rs.sys_page).unwrap_or_default().to_vec();
        apply_fixups(&mut page, "$LogFile restart page", log.at + rs.page_at as u64)?;
        let flags_at = rs.area_at + 0x0E;
        let flags = le16(&page, flags_at).unwrap_or(0);
        put16(&mut page, flags_at, flags | log::CLEAN)?;
        if i + 1 == unclean.len() {
            put64(&mut page, rs.area_at, end)?;
            put32(&mut page, rs.area_at + 0x20, end_len)?;
        }
        let disk = write_fixups(&page, "$LogFile restart page", log.at + rs.page_at as u64)?;
        let (at, room) =
            j.phys(rs.page_at as u64).ok_or(corrupt("$LogFile", log.at, "restart page beyond its runs"))?;
        if room < disk.len() as u64 {
            return Err(corrupt("$LogFile", at, "restart page split across runs"));
        }
        plan.push("$LogFile", at, disk, String::from("journal replayed: restart area marked clean"));
    }
    plan.notes.push(alloc::format!("journal: replay {}", r.summary));
    Ok(Some((plan, r.summary)))
}
