//! `rescue apply`: run a profile's fixes on every NTFS volume of a disk,
//! image or device, with the same engine as the agent.

use crate::cli::volume_keys::KeyArgs;
use crate::cli::{read_profile, Exit};
use crate::host::backup_dir::DirSink;
use crate::host::disk::FileDisk;
use crate::host::esp;
use crate::host::in_use::refuse_if_in_use;
use crate::host::volume::{open_volume, Volume};
use crate::output;
use anyhow::{bail, Context, Result};
use rescue_engine::block::{BlockDevice, Slice};
use rescue_engine::formats::partition;
use rescue_engine::rules::delete::{self, Counting, FileAction, Options};
use std::path::{Path, PathBuf};

/// Arguments of `rescue apply`.
#[derive(clap::Args)]
pub struct ApplyArgs {
    /// The profile whose fixes to run.
    #[arg(long)]
    pub profile: PathBuf,
    /// Print the plan (which bytes of which structures would change) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the JSON report here (`-`: standard output; default: print a summary only).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Print the JSON report on standard output instead of the summary (same as --report -)
    #[arg(long, conflicts_with = "report")]
    pub json: bool,
    /// Folder for backups of deleted files (default: `backup` beside the report, else `./rescue-backup`).
    #[arg(long)]
    pub backup_dir: Option<PathBuf>,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Disk image, partition image or block device.
    pub target: PathBuf,
}

fn default_backup_dir(args: &ApplyArgs) -> PathBuf {
    if let Some(d) = &args.backup_dir {
        return d.clone();
    }
    match &args.report {
        Some(r) => r.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).join("backup"),
        None => PathBuf::from("rescue-backup"),
    }
}

/// Runs `rescue apply`: done, nothing to do, or partly done (see [`Exit`]).
pub fn run(args: &ApplyArgs) -> Result<Exit> {
    let (profile, _) = read_profile(&args.profile)?;
    // Every output is checked before the first write to the disk: a fix must
    // never happen without its report and its backups.
    let to_stdout = args.json || args.report.as_deref() == Some(Path::new("-"));
    if let Some(r) = args.report.as_deref().filter(|_| !to_stdout) {
        output::check_output("--report", r, &[&args.target, &args.profile])?;
    }
    let backup_dir = default_backup_dir(args);
    let hives = !profile.services.is_empty() || !profile.registry.is_empty() || profile.finish.safe_mode.is_some();
    if !args.dry_run && (profile.delete.iter().any(|r| r.backup) || hives) {
        ready_backup_dir(&backup_dir, &args.target)?;
    }
    let creds = args.keys.credentials()?;
    if !args.dry_run {
        refuse_if_in_use(&args.target)?;
    }
    let disk = FileDisk::open(&args.target, !args.dry_run)?;
    let mut sink = DirSink { dir: backup_dir };
    let opts = Options { dry_run: args.dry_run, now: crate::clock::now_filetime() };
    let started = std::time::Instant::now();
    let mut disk = Counting::new(disk);
    let mut report = delete::Report {
        profile: profile.name.clone(),
        engine_version: rescue_engine::util::version::VERSION.into(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let parts = match partition::discover(&mut disk) {
        Ok(p) => p,
        Err(e) => {
            report.errors.push(format!("partition table: {e}"));
            Vec::new()
        }
    };
    // The summary below says what happened to every file, once.
    let mut log = |_: &str| {};
    let esps: Vec<partition::Partition> = parts.iter().filter(|p| esp::is_esp(p)).cloned().collect();
    for p in parts {
        let mut vr = delete::VolumeReport {
            index: report.volumes.len(),
            partition: p.number,
            offset: p.offset,
            size: p.size,
            ..Default::default()
        };
        match open_volume(Slice::new(&mut disk, p.offset, p.size), &creds) {
            Ok(mut vol) => {
                if let Volume::BitLocker(_) = vol {
                    vr.notes.push("BitLocker volume, unlocked".into());
                }
                delete::remediate_volume(&profile, &mut vol, &opts, &mut sink, &mut log, &mut vr, &mut report);
                if let Volume::BitLocker(_) = vol {
                    vr.filesystem = format!("{} (in BitLocker)", vr.filesystem);
                }
            }
            Err(e) => {
                vr.filesystem = "bitlocker (locked)".into();
                let m = format!("partition {} (byte {}): {e:#}", p.number, p.offset);
                log(&m);
                // A volume we could not look into may be the one that needed the fix: that is a failure.
                vr.error = Some(m.clone());
                report.errors.push(m);
            }
        }
        report.volumes.push(vr);
    }
    // [finish] safe_mode: the BCD store of the disk's EFI System Partition,
    // when the disk holds a Windows volume.
    if let Some(mode) = profile.finish.safe_mode {
        let windows = report.volumes.iter().any(|v| v.windows);
        for e in esps.iter().filter(|_| windows) {
            let r = esp::set_safe_mode(&mut disk, e, mode, opts.now, opts.dry_run, &mut sink);
            if let Some(why) = &r.reason {
                report.errors.push(format!("{}: {why}", r.store));
            }
            report.safe_mode.push(r);
        }
    }
    // Nothing found is not success: the admin may have pointed at the wrong disk.
    if !report.volumes.iter().any(|v| v.filesystem.starts_with("ntfs")) && report.errors.is_empty() {
        report.errors.push(format!(
            "no NTFS volume found in {}: is it the right disk (or a locked BitLocker volume)?",
            args.target.display()
        ));
    }
    report.bytes_read = disk.bytes_read;
    report.read_calls = disk.reads;
    report.bytes_written = disk.bytes_written;
    report.ok = report.errors.is_empty();
    let elapsed = started.elapsed();
    disk.flush()?;
    for v in report.volumes.iter().filter(|_| !to_stdout) {
        say!(
            "volume {} (partition {}, byte {}): {}{}",
            v.index,
            v.partition,
            v.offset,
            v.filesystem,
            v.serial.as_ref().map(|s| format!(", serial {s}")).unwrap_or_default()
        );
        if let Some(w) = &v.write_refused {
            say!("  writes refused: {w}");
        }
        for n in &v.notes {
            say!("  {n}");
        }
        for r in &v.rules {
            say!(
                "  rule {}: {}",
                r.path,
                if r.directory_found {
                    format!("{} file(s) matched", r.files.len())
                } else {
                    "directory not found".into()
                }
            );
            for f in &r.files {
                say!(
                    "    {} ({} bytes, sha256 {}): {}{}",
                    f.path,
                    f.size,
                    f.sha256.as_deref().unwrap_or("-"),
                    f.action,
                    match (&f.reason, f.action) {
                        (_, FileAction::Failed) => " (see the errors below)".to_string(),
                        (Some(r), _) => format!(" - {r}"),
                        (None, _) => String::new(),
                    }
                );
                for n in &f.notes {
                    say!("      {n}");
                }
                if let Some(b) = f.backup.as_ref().filter(|_| f.action == FileAction::Deleted) {
                    say!("      backup: {b}");
                }
                if args.dry_run && !f.writes.is_empty() {
                    let p = rescue_engine::formats::ntfs::Plan { writes: f.writes.clone(), notes: f.notes.clone() };
                    print!("{p}");
                }
            }
        }
    }
    for v in report.volumes.iter().filter(|_| !to_stdout) {
        for h in &v.hives {
            let recovered = match h.recovered_entries {
                0 => String::new(),
                n => format!(" (recovered first from its transaction logs: {n} log entries)"),
            };
            say!("volume {}: hive {}: {}{recovered}", v.index, h.path, h.action);
            for c in &h.changes {
                let before = c.before.as_deref().unwrap_or("(no value)");
                say!("  {}\\{}: {before} -> {} [{}]", c.key, c.value, c.after, c.outcome);
            }
            if let Some(r) = &h.reason {
                say!("  {r}");
            }
            if let Some(j) = &h.journal {
                say!("  transaction log: {j}");
            }
            if let Some(b) = &h.backup {
                say!("  backup of the hive: {b}");
            }
            for b in &h.log_backups {
                say!("  backup of its log: {b}");
            }
            if args.dry_run && !h.writes.is_empty() {
                print!("{}", rescue_engine::formats::ntfs::Plan { writes: h.writes.clone(), notes: Vec::new() });
            }
        }
    }
    for m in report.safe_mode.iter().filter(|_| !to_stdout) {
        say!("safe mode ({}): {} -> {} [{}]", m.store, m.before, m.after, m.action);
        if let Some(j) = &m.journal {
            say!("  transaction log: {j}");
        }
        if m.action == "set" {
            say!("  {}", m.undo);
        }
    }
    let registry_set: usize = report.registry_changes + report.safe_mode.iter().filter(|m| m.action == "set").count();
    let registry_would: usize = report
        .volumes
        .iter()
        .flat_map(|v| &v.hives)
        .filter(|h| h.action == "would write")
        .flat_map(|h| &h.changes)
        .filter(|c| c.outcome == "set")
        .count()
        + report.safe_mode.iter().filter(|m| m.action == "would set").count();
    let would = report.volumes.iter().flat_map(|v| &v.rules).flat_map(|r| &r.files);
    let would = would.filter(|f| f.action == FileAction::WouldDelete).count();
    let mut done =
        if args.dry_run { format!("{would} would be deleted") } else { format!("{} deleted", report.files_deleted) };
    if hives {
        done += &if args.dry_run {
            format!(", {registry_would} registry change(s) would be made")
        } else {
            format!(", {registry_set} registry change(s) made")
        };
    }
    let summary = format!(
        "{done}, {} skipped, {} error(s); read {} bytes in {} reads, wrote {} bytes; {:.1} ms",
        report.files_skipped,
        report.errors.len(),
        report.bytes_read,
        report.read_calls,
        report.bytes_written,
        elapsed.as_secs_f64() * 1000.0
    );
    // With the JSON report on standard output, people read the summary on stderr.
    if to_stdout {
        say_err!("{summary}");
    } else {
        say!("{summary}");
    }
    let json = serde_json::to_string_pretty(&report)?;
    if to_stdout {
        println!("{json}");
    } else if let Some(path) = &args.report {
        output::write_pieces(path, json.len() as u64, &[(0, json.into_bytes())])?;
    }
    for e in &report.errors {
        say_err!("error: {e}");
    }
    let (changed, would) = (report.files_deleted + registry_set, would + registry_would);
    Ok(match (changed, report.errors.len(), would) {
        (_, 0, w) if args.dry_run && w > 0 => Exit::Done,
        (0, 0, _) => Exit::NothingToDo,
        (_, 0, _) => Exit::Done,
        (0, n, _) => bail!("{n} error(s); nothing was changed"),
        (_, n, _) => Exit::Partial(n),
    })
}

/// Creates the backup folder and checks that a file can be made in it,
/// before anything is written to `target`.
fn ready_backup_dir(dir: &Path, target: &Path) -> Result<()> {
    if output::same_file(dir, target) {
        bail!("--backup-dir {} is the disk being fixed", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the backup folder {}", dir.display()))?;
    let probe = tempfile::Builder::new()
        .prefix(".rescue-probe-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in the backup folder {}", dir.display()))?;
    drop(probe);
    Ok(())
}
