//! The profile and what its rules do: on one Windows volume, put back
//! what earlier runs changed ([`restore`]), delete files ([`delete`]) and
//! set registry values ([`registry`]); on a disk's ESP, Safe
//! Mode in the BCD store ([`safe_mode`]). Every change is planned first and
//! written through one protocol ([`commit`]): gate, dry run, backup,
//! journal, execute, poison on failure.
//!
//! [`apply`] is the one entry for a volume; the run calls it for every
//! Windows volume it finds, and [`safe_mode::set`] once per disk.

pub mod backup;
pub mod commit;
pub mod ctx;
pub mod delete;
pub mod profile;
pub mod registry;
pub mod report;
pub mod restore;
pub mod safe_mode;

pub use ctx::{Env, Options, VolumeCtx};

use crate::block::BlockDevice;
use crate::formats::ntfs::gate::{clear_for_writing, Clearance};
use crate::formats::ntfs::plan::Planned;
use crate::formats::ntfs::{Ntfs, NtfsError};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use report::{FileAction, RestoreAction, StoreAction, ValueOutcome, VolumeReport};

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
    /// Backups put back (0 on a dry run).
    pub fn restored(&self) -> usize {
        self.volume.restores.iter().filter(|r| r.action == RestoreAction::Restored).count()
    }
    /// Registry values set (0 on a dry run).
    pub fn registry_changes(&self) -> usize {
        let written = self.volume.hives.iter().filter(|h| h.action == StoreAction::Written);
        written.flat_map(|h| &h.changes).filter(|c| c.outcome == ValueOutcome::Set).count()
    }
}

/// Applies the profile to one NTFS volume: the `[[restore]]` rules, every
/// `[[delete]]` rule in order, then the registry rules. `report` arrives with the volume's place
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
    // A journal to replay: the rules plan on the volume as the replay leaves it
    // (the replay itself runs with the first change, before it).
    let pending = gate.as_ref().ok().and_then(|c| c.replay().map(|s| (c.pending_plan().cloned(), s.clone())));
    if let Some((Some(replay), summary)) = pending {
        env.say(&format!("volume {}: journal to replay: {summary}", report.index));
        let mut view = Planned::new(&mut *vol, replay);
        return match Ntfs::open(&mut view) {
            Ok(replayed) => run_rules(env, &replayed, &mut view, gate, report),
            Err(e) => {
                report.write_refused = Some(format!("the volume as the journal replay leaves it: {e}"));
                run_rules(env, ntfs, vol, Err(e), report)
            }
        };
    }
    run_rules(env, ntfs, vol, gate, report)
}

/// Runs the rules on one cleared (or refused) volume.
fn run_rules<D: BlockDevice>(
    env: &mut Env<'_>,
    ntfs: &Ntfs,
    vol: &mut D,
    gate: Result<Clearance, NtfsError>,
    report: VolumeReport,
) -> Applied {
    let mut ctx = VolumeCtx { env, ntfs, vol, gate, report, errors: Vec::new(), backups: Vec::new() };
    restore::run(&mut ctx);
    delete::run(&mut ctx);
    registry::run(&mut ctx);
    Applied { volume: ctx.report, errors: ctx.errors, backups: ctx.backups }
}
