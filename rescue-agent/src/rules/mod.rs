//! The profile and what its rules do to one volume: delete files
//! ([`delete`]), set registry values ([`registry`]), Safe Mode in the BCD
//! store ([`safe_mode`]). Every change is planned first and written through
//! one protocol ([`commit`]): gate, dry run, backup, journal, execute,
//! poison on failure.
//!
//! [`apply`] is the one entry for a volume; the run ([`crate::run::session`])
//! calls it for every Windows volume it finds.

pub mod backup;
pub mod commit;
pub mod delete;
pub mod profile;
pub mod registry;
pub mod report;
pub mod safe_mode;

use crate::block::BlockDevice;
use crate::formats::ntfs::gate::{clear_for_writing, Clearance};
use crate::formats::ntfs::plan::{self, Plan};
use crate::formats::ntfs::{Ntfs, NtfsError};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use backup::BackupSink;
use commit::{Committed, Target};
use profile::Profile;
use report::{FileAction, StoreAction, ValueOutcome, VolumeReport};

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

/// What the rules did on one volume.
#[derive(Debug, Default)]
pub struct Applied {
    /// The volume's report.
    pub volume: VolumeReport,
    /// Every failure, one line each; empty when all went well.
    pub errors: Vec<String>,
    /// Where each deleted file's backup went.
    pub backups: Vec<String>,
}

impl Applied {
    /// True when nothing failed.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
    /// Files deleted (0 on a dry run).
    pub fn files_deleted(&self) -> usize {
        self.volume.files().filter(|f| f.action == FileAction::Deleted).count()
    }
    /// Matched files left in place: skipped or failed (a dry run's "would delete" not counted).
    pub fn files_skipped(&self) -> usize {
        self.volume.files().filter(|f| !matches!(f.action, FileAction::Deleted | FileAction::WouldDelete)).count()
    }
    /// Registry values set (0 on a dry run).
    pub fn registry_changes(&self) -> usize {
        let written = self.volume.hives.iter().filter(|h| h.action == StoreAction::Written);
        written.flat_map(|h| &h.changes).filter(|c| c.outcome == ValueOutcome::Set).count()
    }
}

/// Applies the profile to one NTFS volume: every `[[delete]]` rule in
/// order, then the registry rules. `report` arrives with the volume's place
/// (index, partition, offset, size) filled. Never panics on disk data;
/// every failure lands in the result, and nothing is written unless the
/// gate cleared the volume.
pub fn apply<D: BlockDevice>(env: &mut Env<'_>, ntfs: &Ntfs, vol: &mut D, mut report: VolumeReport) -> Applied {
    report.serial = Some(format!("{:016X}", ntfs.boot.serial));
    let gate = clear_for_writing(ntfs, vol, env.profile.ntfs.unclean_journal);
    match &gate {
        Ok(c) => report.journal = Some(format!("{:?}", c.journal()).to_lowercase()),
        Err(e) => {
            report.write_refused = Some(e.to_string());
            env.say(&format!("volume {}: writes refused: {e}", report.index));
        }
    }
    let mut ctx = VolumeCtx { env, ntfs, vol, gate, report, errors: Vec::new(), backups: Vec::new() };
    delete::run(&mut ctx);
    registry::run(&mut ctx);
    Applied { volume: ctx.report, errors: ctx.errors, backups: ctx.backups }
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
        let mut target = NtfsTarget { dev: &mut **vol, gate, notes: &mut report.notes, reset: None };
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
}

impl<D: BlockDevice> Target for NtfsTarget<'_, D> {
    type Writes = Plan;

    fn clear(&mut self, plan: Plan) -> Result<Plan, String> {
        let clear = self.gate.as_mut().map_err(|g| format!("volume not writable: {g}"))?;
        let Some(reset) = clear.take_reset() else { return Ok(plan) };
        self.notes.extend(reset.notes.iter().cloned());
        let mut all = reset.clone();
        all.extend(plan);
        self.reset = Some(reset);
        Ok(all)
    }

    fn unclear(&mut self) {
        if let (Some(r), Ok(c)) = (self.reset.take(), self.gate.as_mut()) {
            c.put_back_reset(r);
        }
    }

    fn execute(&mut self, plan: &Plan) -> Result<(), String> {
        plan::execute(self.dev, plan, None).map(drop).map_err(|err| {
            let why = err.to_string();
            *self.gate = Err(err);
            why
        })
    }
}
