//! `rescue restore --from BACKUP_DIR DISK`: puts deleted files back from the
//! backups `rescue apply --backup-dir` or the agent (a stick's
//! `rescue/backups`) kept, each by its sidecar JSON, on the volume whose
//! serial number the sidecar names. A dry run by default; `--yes` writes.
//!
//! It is the engine's run with one `[[restore]]` rule, the same the agent
//! runs from a restore stick ([`rescue_engine::rules::restore`] checks every
//! sidecar and plans the NTFS and hive writes); hives written back have
//! their state before the restore kept in the same folder.

use crate::cli::volume_keys::KeyArgs;
use crate::cli::Exit;
use crate::host::backup_dir::DirSink;
use crate::host::disk::FileDisk;
use crate::host::esp::DiskEsp;
use crate::host::in_use::refuse_if_in_use;
use crate::host::volume::HostKeys;
use anyhow::{bail, Result};
use rescue_engine::block::{BlockDevice, IoError};
use rescue_engine::formats::ntfs::Plan;
use rescue_engine::rules::backup::BackupSink;
use rescue_engine::rules::profile::Profile;
use rescue_engine::rules::report::RestoreAction;
use rescue_engine::rules::Options;
use rescue_engine::run::ports::Silent;
use rescue_engine::run::session::{self, Disk, Ports};
use std::path::PathBuf;

/// Arguments of `rescue restore`.
#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The backup folder: `rescue apply --backup-dir`'s, or a stick's `rescue/backups`
    #[arg(long = "from", value_name = "BACKUP_DIR")]
    pub from: PathBuf,
    /// Disk image, partition image or block device to put the files back on
    pub target: PathBuf,
    /// Write (without it: a dry run that shows what would be put back)
    #[arg(long)]
    pub yes: bool,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Stop after this many writes of each file's plan (interruption tests).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// One row of `--json`: what happened to one backup.
#[derive(serde::Serialize)]
struct Row {
    backup: String,
    path: String,
    kind: String,
    volume_serial: String,
    /// "restored", "would restore", "nothing to do" or "failed".
    result: &'static str,
    reason: Option<String>,
    writes: usize,
    /// What the plan decided (e.g. written plain).
    notes: Vec<String>,
}

/// A disk that refuses writes after the first `left` (interruption tests:
/// the run stops there, as a pulled plug would stop it).
struct StopAfter<D> {
    inner: D,
    left: Option<usize>,
}

impl<D: BlockDevice> BlockDevice for StopAfter<D> {
    fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        match &mut self.left {
            Some(0) => Err(IoError::ReadOnly { offset }),
            Some(n) => {
                *n -= 1;
                self.inner.write_at(offset, buf)
            }
            None => self.inner.write_at(offset, buf),
        }
    }
    fn flush(&mut self) -> Result<(), IoError> {
        self.inner.flush()
    }
}

/// The serial number a sidecar names (its restore part's, else its own).
fn serial_of(sidecar: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(sidecar).ok()?;
    let s = v.pointer("/restore/volume_serial").or_else(|| v.get("volume_serial"))?.as_str()?;
    Some(s.to_ascii_uppercase())
}

/// Runs `rescue restore`.
pub fn run(args: &RestoreArgs) -> Result<Exit> {
    let mut sink = DirSink::new(args.from.clone());
    let listed = sink.list("").map_err(anyhow::Error::msg)?;
    let serials: Vec<(String, Option<String>)> = listed.iter().map(|s| (s.at.clone(), serial_of(&s.sidecar))).collect();
    if listed.is_empty() {
        bail!("no backup with a sidecar in {}{}", args.from.display(), shown(&sink.skipped));
    }
    let profile = Profile::parse("name = \"restore\"\n[[restore]]\nfrom = \"backups\"\n")
        .map_err(|e| anyhow::anyhow!("the restore profile: {e}"))?;
    if args.yes {
        refuse_if_in_use(&args.target)?;
    }
    let dev = StopAfter { inner: FileDisk::open(&args.target, args.yes)?, left: args.stop_after };
    let label = args.target.display().to_string();
    let mut disks = [Disk { label, model: String::new(), serial: String::new(), bus: String::new(), dev }];
    let mut keys = HostKeys::new(args.keys.credentials()?)?;
    let ports = Ports { console: &mut Silent, sink: &mut sink, keys: &mut keys, esp: &mut DiskEsp, clock_ms: &|| 0 };
    let opts = Options { dry_run: !args.yes, now: crate::clock::now_filetime() };
    let report = session::run(&profile, &mut disks, opts, ports);
    disks[0].dev.inner.flush()?;
    let mut rows = Vec::new();
    for v in &report.result.volumes {
        for x in &v.restores {
            rows.push(Row {
                backup: x.backup.clone(),
                path: x.path.clone(),
                kind: x.kind.clone(),
                volume_serial: v.serial.clone().unwrap_or_default(),
                result: x.action.as_str(),
                reason: x.reason.clone(),
                writes: x.writes.len(),
                notes: x.notes.clone(),
            });
            if !args.json {
                if !args.yes && !x.writes.is_empty() {
                    print!("{}", Plan { writes: x.writes.clone(), notes: Vec::new() });
                }
                let why = x.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
                println!("{}: {}{why}", x.path, x.action.as_str().to_uppercase());
                for n in &x.notes {
                    println!("  note: {n}");
                }
            }
        }
    }
    // Backups for no volume of this disk: said, and counted as failed.
    let on_disk: Vec<&String> = report.result.volumes.iter().filter_map(|v| v.serial.as_ref()).collect();
    for (at, serial) in &serials {
        let serial = serial.clone().unwrap_or_default();
        if rows.iter().any(|r| &r.backup == at) || on_disk.contains(&&serial) {
            continue;
        }
        let why = format!("no volume with serial {serial} on {}", args.target.display());
        if !args.json {
            println!("{at}: FAILED ({why})");
        }
        let (backup, path, kind) = (at.clone(), at.clone(), String::from("file"));
        let (result, reason, writes, notes) = ("failed", Some(why), 0, Vec::new());
        rows.push(Row { backup, path, kind, volume_serial: serial, result, reason, writes, notes });
    }
    let count = |a: RestoreAction| rows.iter().filter(|r| r.result == a.as_str()).count();
    let (restored, would, nothing) =
        (count(RestoreAction::Restored), count(RestoreAction::WouldRestore), count(RestoreAction::AlreadyThere));
    let errors: Vec<&String> = report.result.errors.iter().collect();
    let failed = count(RestoreAction::Failed).max(usize::from(!errors.is_empty()));
    let mut skipped = sink.skipped.clone();
    skipped.extend(
        report.result.volumes.iter().flat_map(|v| v.notes.iter().filter(|n| n.starts_with("backup "))).cloned(),
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for e in errors.iter().filter(|e| !e.contains("restore of ")) {
            println!("error: {e}");
        }
        if args.yes {
            println!("restored {restored} files, {nothing} already there, {failed} failed{}", shown(&skipped));
        } else {
            println!(
                "dry run: {would} files would be restored, {nothing} already there, {failed} cannot be; \
                 run again with --yes to write{}",
                shown(&skipped)
            );
        }
    }
    if failed > 0 {
        return Ok(if restored > 0 { Exit::Partial(failed) } else { bail!("{failed} backups could not be restored") });
    }
    Ok(if restored + would == 0 { Exit::NothingToDo } else { Exit::Done })
}

/// Skipped files, as a note after a summary line.
fn shown(skipped: &[String]) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    format!("\nskipped (not restorable here):\n  {}", skipped.join("\n  "))
}
