//! One NTFS volume as the rules see it ([`VolumeCtx`]): the run's
//! environment ([`Env`]), the opened volume, its write gate and the report
//! being filled; and the volume as a [`Target`] of the commit protocol.

use super::backup::BackupSink;
use super::commit::{self, Committed, Target};
use super::profile::Profile;
use super::report::VolumeReport;
use crate::block::BlockDevice;
use crate::formats::ntfs::gate::Clearance;
use crate::formats::ntfs::plan::{self, Plan};
use crate::formats::ntfs::{Ntfs, NtfsError};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Options of a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Plan and report, write nothing.
    pub dry_run: bool,
    /// The time now, as a FILETIME: hives record it when they are edited.
    pub now: u64,
}

/// What every rule of a run needs besides the volume: the profile, the
/// options, where backups go and where lines about what was done go.
pub struct Env<'a> {
    /// The profile whose rules run.
    pub profile: &'a Profile,
    /// Dry run, and the time now.
    pub opts: Options,
    /// Where originals go before they change.
    pub sink: &'a mut dyn BackupSink,
    /// One line per thing done (the agent's screen; the host renders the report instead).
    pub log: &'a mut dyn FnMut(&str),
}

impl Env<'_> {
    /// A line about what a rule did.
    pub fn say(&mut self, m: &str) {
        (self.log)(m);
    }
}

/// One NTFS volume being changed by the rules.
pub struct VolumeCtx<'e, 'a, D> {
    /// The run's environment.
    pub env: &'e mut Env<'a>,
    /// The volume, opened.
    pub ntfs: &'e Ntfs,
    /// Its device (plain, or an unlocked BitLocker volume).
    pub vol: &'e mut D,
    /// The write gate: a clearance, or why the volume may not be written
    /// (also after a write failed part-way: poisoned).
    pub gate: Result<Clearance, NtfsError>,
    /// The volume's report, filled as the rules go.
    pub report: VolumeReport,
    /// Every failure, one line each.
    pub errors: Vec<String>,
    /// Where each deleted file's backup went.
    pub backups: Vec<String>,
}

impl<D: BlockDevice> VolumeCtx<'_, '_, D> {
    /// Commits an NTFS plan through the [`commit`] protocol; `backup` gets
    /// the backup sink after the gate and before the first write.
    pub fn commit<B>(
        &mut self,
        plan: Plan,
        backup: impl FnOnce(&mut dyn BackupSink) -> Result<B, String>,
    ) -> Result<Committed<Plan, B>, String> {
        let VolumeCtx { env, vol, gate, report, .. } = self;
        let mut target = NtfsTarget { dev: &mut **vol, gate, notes: &mut report.notes, reset: None, replayed: None };
        let sink = &mut *env.sink;
        commit::commit(&mut target, plan, env.opts.dry_run, || backup(sink))
    }
}

/// An NTFS volume as a commit target: its gate, and the journal reset the
/// gate holds until the first change takes it.
struct NtfsTarget<'a, D> {
    dev: &'a mut D,
    gate: &'a mut Result<Clearance, NtfsError>,
    notes: &'a mut Vec<String>,
    reset: Option<Plan>,
    /// The report line of a journal replay this change carries, once written.
    replayed: Option<String>,
}

impl<D: BlockDevice> Target for NtfsTarget<'_, D> {
    type Writes = Plan;

    fn clear(&mut self, plan: Plan) -> Result<Plan, String> {
        let clear = self.gate.as_mut().map_err(|g| format!("volume not writable: {g}"))?;
        let Some(reset) = clear.take_reset() else { return Ok(plan) };
        self.replayed = clear
            .replay()
            .map(|s| format!("journal replayed: {} transactions redone, {} undone", s.redone_transactions, s.undone));
        self.notes.extend(reset.notes.iter().cloned());
        let mut all = reset.clone();
        all.extend(plan);
        self.reset = Some(reset);
        Ok(all)
    }

    fn unclear(&mut self) {
        self.replayed = None;
        if let (Some(r), Ok(c)) = (self.reset.take(), self.gate.as_mut()) {
            c.put_back_reset(r);
        }
    }

    fn execute(&mut self, plan: &Plan) -> Result<(), String> {
        let done = plan::execute(self.dev, plan, None);
        if done.is_ok() {
            self.notes.extend(self.replayed.take());
        }
        done.map(drop).map_err(|err| {
            let why = err.to_string();
            *self.gate = Err(err);
            why
        })
    }
}
