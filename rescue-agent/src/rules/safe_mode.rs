//! `[finish] safe_mode`: the Windows boot manager's default loader set to
//! start in Safe Mode (or back), in the BCD store on the disk's EFI System
//! Partition, through the same commit protocol as every other change. The
//! front end reads and writes the store's files ([`crate::run::ports::EspFiles`]).

use super::backup::{keep_originals, BackupSink};
use super::commit::{self, Committed, Target};
use super::ctx::Options;
use super::report::{SafeModeReport, StoreAction};
use crate::formats::registry::bcd::{self, SafeMode};
use crate::formats::registry::edit::FileEdit;
use crate::formats::registry::journal;
use crate::formats::registry::log::Recovered;
use crate::formats::registry::RegError;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The files of the Windows boot manager's folder `EFI\Microsoft\Boot` that
/// `[finish] safe_mode` reads and edits: the BCD store and its two
/// transaction logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootFile {
    /// `BCD`, the store (a registry hive).
    Bcd,
    /// `BCD.LOG1`.
    Log1,
    /// `BCD.LOG2`.
    Log2,
}

impl BootFile {
    /// The logs, in the order recovery takes them.
    pub const LOGS: [BootFile; 2] = [BootFile::Log1, BootFile::Log2];

    /// The file's name in `EFI\Microsoft\Boot`.
    pub fn name(self) -> &'static str {
        match self {
            BootFile::Bcd => "BCD",
            BootFile::Log1 => "BCD.LOG1",
            BootFile::Log2 => "BCD.LOG2",
        }
    }
}

/// Writes edits (file offset, bytes) into one of the boot files, in order:
/// what [`crate::run::ports::EspFiles::write`] does for one disk.
pub type BootFileWriter<'a> = dyn FnMut(BootFile, &[FileEdit]) -> Result<(), String> + 'a;

/// A BCD store as read from the ESP: the store, and its logs `BCD.LOG1`,
/// `BCD.LOG2` (empty when missing).
pub struct Store<'a> {
    /// The store's bytes.
    pub bcd: &'a [u8],
    /// The logs' bytes.
    pub logs: [&'a [u8]; 2],
    /// The profile that changes it, the disk it is on (1-based) and the
    /// serial number of that disk's Windows volume (0: none known), for the
    /// backups: a restore finds them by that serial.
    pub owner: (&'a str, usize, u64),
}

/// Sets `mode` in `store`: recovers it if dirty, edits it, then commits the
/// journal's writes (log entry first) through `write`, file by file in
/// order, after the originals of the store and each log written went to
/// `sink` (kept copies required). Fills `r`; an error says why nothing was
/// written (or, from `write`, that a write failed part-way).
pub fn set(
    store: Store<'_>,
    mode: SafeMode,
    opts: Options,
    sink: &mut dyn BackupSink,
    write: &mut BootFileWriter,
    r: &mut SafeModeReport,
) -> Result<(), String> {
    let err = |e: RegError| format!("the BCD store: {e}");
    let recovered = journal::recover_in_place(store.bcd, &store.logs).map_err(err)?;
    let (new, change) = bcd::edit_store(&recovered.bytes, mode, opts.now).map_err(err)?;
    r.loader = change.loader;
    r.before = bcd::describe(change.before);
    r.after = bcd::describe(change.after);
    if new == recovered.bytes {
        r.action = StoreAction::Unchanged;
        return Ok(());
    }
    let (journal, done) = write_store(&store, &recovered, &new, opts, sink, write)?;
    r.journal = Some(journal);
    r.action = if done { StoreAction::Set } else { StoreAction::WouldSet };
    Ok(())
}

/// Writes `new` over the store (as `recovered` from its logs) through the
/// commit protocol: journal planned (log entry first), the originals of the
/// store and of each log written to `sink` (kept copies required), then
/// the writes, file by file in order. Returns how the change went through
/// a log, and whether it was written (false: a dry run).
pub fn write_store(
    store: &Store<'_>,
    recovered: &Recovered,
    new: &[u8],
    opts: Options,
    sink: &mut dyn BackupSink,
    write: &mut BootFileWriter,
) -> Result<(String, bool), String> {
    let Store { bcd: old, logs, owner } = *store;
    let journal = journal::plan(old, recovered, new, &logs).map_err(|e| format!("the BCD store: {e}"))?;
    let described = journal.describe(BootFile::LOGS.map(BootFile::name));
    let writes: Vec<(BootFile, Vec<FileEdit>)> = journal
        .writes
        .chunk_by(|a, b| a.0 == b.0)
        .map(|run| {
            let file = match run[0].0 {
                journal::Target::Primary => BootFile::Bcd,
                journal::Target::Log(i) => BootFile::LOGS[i],
            };
            (file, run.iter().map(|(_, e)| e.clone()).collect())
        })
        .collect();
    let originals: Vec<(String, &[u8])> = core::iter::once(BootFile::Bcd)
        .chain(BootFile::LOGS)
        .zip(core::iter::once(old).chain(logs))
        .map(|(f, content)| (format!("{BCD_FOLDER}\\{}", f.name()), content))
        .collect();
    let backup = || {
        keep_originals(sink, &journal, owner, &originals)
            .map_err(|m| format!("backup of the BCD store failed: {m}; it was not changed"))
    };
    let done = match commit::commit(&mut EspTarget { write }, writes, opts.dry_run, backup)? {
        Committed::DryRun(_) => false,
        Committed::Done(..) => true,
    };
    Ok((described, done))
}

/// Where the BCD store and its logs are, as backups name them.
pub const BCD_FOLDER: &str = "ESP\\EFI\\Microsoft\\Boot";

/// The files of an ESP as a commit target: no gate (the ESP has no
/// journal to reset); the writer keeps each file's length.
struct EspTarget<'w, 'a> {
    write: &'w mut BootFileWriter<'a>,
}

impl Target for EspTarget<'_, '_> {
    type Writes = Vec<(BootFile, Vec<FileEdit>)>;

    fn clear(&mut self, writes: Self::Writes) -> Result<Self::Writes, String> {
        Ok(writes)
    }

    fn unclear(&mut self) {}

    fn execute(&mut self, writes: &Self::Writes) -> Result<(), String> {
        writes.iter().try_for_each(|(file, edits)| (self.write)(*file, edits))
    }
}
