//! The safety gates every NTFS write passes: a [`Clearance`] exists only
//! when the volume is NTFS 3.x, not hibernated, and its journal is clean —
//! or unclean with the `replay` or `reset` policy, whose plan the clearance
//! then carries, to run before the first change.

use super::attr;
use super::file::Stream;
use super::fs::{Ntfs, LOGFILE};
use super::journal::{self, Summary};
use super::logfile::{self, JournalState};
use super::plan::{record_write, Plan, PlanWrite, WriteData};
use super::runs;
use super::volume::{self, VOLUME_IS_DIRTY};
use super::{corrupt, put16, NtfsError, Result};
use crate::block::BlockDevice;
use alloc::string::String;
use alloc::vec;
use serde::Deserialize;

/// Proof that the safety gates passed for a volume; required by every
/// planner that writes. Obtained only from [`clear_for_writing`].
#[derive(Clone, Debug)]
pub struct Clearance {
    journal: JournalState,
    reset: Option<Plan>,
    replay: Option<Summary>,
}

impl Clearance {
    /// What `$LogFile` said when the clearance was given.
    pub fn journal(&self) -> JournalState {
        self.journal
    }
    /// What the journal replay does (present when the journal was unclean and the policy is `replay`).
    pub fn replay(&self) -> Option<&Summary> {
        self.replay.as_ref()
    }
    /// The journal plan still pending (not taken by a change).
    pub fn pending_plan(&self) -> Option<&Plan> {
        self.reset.as_ref()
    }
    /// The journal plan (replay or reset; present when the journal was
    /// unclean and the policy is not `refuse`); run it before anything else. Taken once.
    pub fn take_reset(&mut self) -> Option<Plan> {
        self.reset.take()
    }
    /// Returns a reset plan that was taken but not executed.
    pub fn put_back_reset(&mut self, p: Plan) {
        self.reset = Some(p);
    }
}

/// The safety gates, checked before any write: the volume version is 3.x,
/// `hiberfil.sys` is not a hibernation image, and the journal is empty or
/// clean — or unclean with `policy == Replay`, in which case the clearance
/// carries the replay ([`journal::plan_replay`]; a journal that cannot be
/// replayed is an error naming why), or `policy == Reset`, in which case it
/// carries a plan that sets the volume dirty flag (record 3 and its mirror)
/// and then fills `$LogFile` with 0xFF as `ntfsfix` does.
pub fn clear_for_writing(v: &Ntfs, dev: &mut impl BlockDevice, policy: UncleanJournal) -> Result<Clearance> {
    let (mut vrec, vi) = volume::read(v, dev)?;
    if vi.major != 3 {
        return Err(NtfsError::Unsupported {
            structure: "$VOLUME_INFORMATION",
            offset: vrec.offset,
            detail: "NTFS version is not 3.x",
        });
    }
    volume::check_hibernation(v, dev)?;
    let lf = v.load_file(dev, LOGFILE)?;
    let s = lf.stream(attr::DATA, &[])?.ok_or(corrupt("$LogFile", lf.base().offset, "no $DATA"))?;
    let Stream::NonResident { runs: lruns, data_size, offset: loff, .. } = &s else {
        return Err(corrupt("$LogFile", lf.base().offset, "resident $DATA"));
    };
    let head_len = (*data_size).min(65536);
    let mut head = vec![0u8; head_len as usize];
    v.read_stream(dev, &s, 0, &mut head)?;
    let log_at = runs::extents(lruns, v.cluster(), 0, 1, *loff)?.first().and_then(|e| e.0).unwrap_or(*loff);
    let journal = logfile::state(&head, log_at)?;
    let mut replay = None;
    let reset = match (journal, policy) {
        (JournalState::Unclean, UncleanJournal::Refuse) => return Err(NtfsError::UncleanJournal { offset: log_at }),
        (JournalState::Unclean, UncleanJournal::Replay) => {
            let j = journal::read(v, dev)?;
            let (plan, summary) = journal::plan_replay(v, dev, &j)?.ok_or(corrupt(
                "$LogFile",
                log_at,
                "unclean, yet nothing to replay",
            ))?;
            replay = Some(summary);
            Some(plan)
        }
        (JournalState::Unclean, UncleanJournal::Reset) => {
            let mut p = Plan::default();
            put16(&mut vrec.data, vi.flags_at, vi.flags | VOLUME_IS_DIRTY)?;
            record_write(v, &mut p, &mut vrec, "set the volume dirty flag so chkdsk runs at the next boot")?;
            for (ph, l) in runs::extents(lruns, v.cluster(), 0, *data_size, *loff)? {
                let ph = ph.ok_or(corrupt("$LogFile", *loff, "sparse journal"))?;
                p.writes.push(PlanWrite {
                    structure: "$LogFile",
                    offset: ph,
                    len: l,
                    data: WriteData::Fill { byte: 0xFF, len: l },
                    reason: String::from("reset the unclean journal (fill with 0xFF, as ntfsfix does)"),
                });
            }
            p.notes.push(String::from(
                "journal was unclean: reset and volume marked dirty; Windows runs chkdsk at the next boot",
            ));
            Some(p)
        }
        _ => None,
    };
    Ok(Clearance { journal, reset, replay })
}

/// What to do with a volume whose `$LogFile` says it was not cleanly unmounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UncleanJournal {
    /// Replay the journal as Windows does, then write (the default); refuse where it cannot be replayed.
    #[default]
    Replay,
    /// Refuse to write to the volume.
    Refuse,
    /// Reset the journal as `ntfsfix` does and mark the volume dirty so Windows runs chkdsk.
    Reset,
}
