//! `rescue apply`: the agent's run ([`session::run`]) on a disk, image or
//! device, with the host's ports (its credentials, a backup folder, the
//! disk's ESP through fatfs, no screen); then the report, rendered as text
//! or JSON, and an exit code.

use crate::cli::volume_keys::KeyArgs;
use crate::cli::{read_profile, Exit};
use crate::host::backup_dir::DirSink;
use crate::host::disk::FileDisk;
use crate::host::esp::DiskEsp;
use crate::host::in_use::refuse_if_in_use;
use crate::host::volume::HostKeys;
use crate::output;
use anyhow::{bail, Context, Result};
use rescue_engine::block::BlockDevice;
use rescue_engine::formats::ntfs::Plan;
use rescue_engine::rules::report::{FileAction, Filesystem};
use rescue_engine::rules::Options;
use rescue_engine::run::ports::Silent;
use rescue_engine::run::report::RunReport;
use rescue_engine::run::session::{self, Disk, Ports};
use rescue_engine::util::time::filetime_rfc3339;
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
    /// Folder for the backups: deleted files, and hives and BCD stores before they change;
    /// `[[restore]]` rules put back what it holds (default: `backup` beside the report,
    /// else `./rescue-backup`).
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
    let registry = profile.changes_registry();
    if !args.dry_run && (profile.delete.iter().any(|r| r.backup) || registry || !profile.restore.is_empty()) {
        ready_backup_dir(&backup_dir, &args.target)?;
    }
    let mut keys = HostKeys::new(args.keys.credentials()?)?;
    if !args.dry_run {
        refuse_if_in_use(&args.target)?;
    }
    let dev = FileDisk::open(&args.target, !args.dry_run)?;
    let mut disks = [Disk {
        label: args.target.display().to_string(),
        model: String::new(),
        serial: String::new(),
        bus: String::new(),
        dev,
    }];
    let started = std::time::Instant::now();
    let ports = Ports {
        console: &mut Silent,
        sink: &mut DirSink::new(backup_dir),
        keys: &mut keys,
        esp: &mut DiskEsp,
        clock_ms: &|| started.elapsed().as_millis() as u64,
    };
    let opts = Options { dry_run: args.dry_run, now: crate::clock::now_filetime() };
    let mut report = session::run(&profile, &mut disks, opts, ports);
    report.front_end = String::from("rescue apply");
    report.started = filetime_rfc3339(opts.now);
    disks[0].dev.flush()?;
    if !to_stdout {
        show(&report, args.dry_run);
    }
    let summary = summary(&report, registry, started.elapsed());
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
        output::write_pieces(path, json.len() as u64, &[(0, json.into_bytes())], output::Readers::AsUmaskSays)?;
    }
    let r = &report.result;
    for e in &r.errors {
        say_err!("error: {e}");
    }
    if report.bitlocker.iter().any(|b| b.skipped.is_some()) {
        say_err!("a BitLocker volume stayed locked: give --recovery-password-file (for the Key ID above), --password-file or --bek");
    }
    let would = r.would_change();
    Ok(match (r.changes(), r.errors.len(), would) {
        (_, 0, w) if args.dry_run && w > 0 => Exit::Done,
        (0, 0, _) => Exit::NothingToDo,
        (_, 0, _) => Exit::Done,
        (0, n, _) => bail!("{n} error(s); nothing was changed"),
        (_, n, _) => Exit::Partial(n),
    })
}

/// The last line: what was (or would be) changed, skipped and failed, and what it cost.
fn summary(report: &RunReport, registry: bool, elapsed: std::time::Duration) -> String {
    let r = &report.result;
    let mut done = if r.dry_run {
        format!("{} would be deleted", r.would_delete())
    } else {
        format!("{} deleted", r.files_deleted)
    };
    if r.restores().next().is_some() {
        done += &match r.dry_run {
            true => {
                format!(", {} would be restored", r.restores().filter(|x| x.action.as_str() == "would restore").count())
            }
            false => format!(", {} restored", r.restored),
        };
    }
    if registry {
        let set = r.registry_changes + r.safe_mode.iter().filter(|m| m.action.changed()).count();
        done += &if r.dry_run {
            format!(", {} registry change(s) would be made", r.would_change() - r.would_delete())
        } else {
            format!(", {set} registry change(s) made")
        };
    }
    format!(
        "{done}, {} skipped, {} error(s); read {} bytes in {} reads, wrote {} bytes; {:.1} ms",
        r.files_skipped,
        r.errors.len(),
        r.bytes_read,
        r.read_calls,
        r.bytes_written,
        elapsed.as_secs_f64() * 1000.0
    )
}

/// What happened on every volume, hive and BCD store, for people.
fn show(report: &RunReport, dry_run: bool) {
    let r = &report.result;
    for v in &r.volumes {
        let inside = if v.bitlocker && v.filesystem != Filesystem::LockedBitLocker { " (in BitLocker)" } else { "" };
        let serial = v.serial.as_ref().map(|s| format!(", serial {s}")).unwrap_or_default();
        say!("volume {} (partition {}, byte {}): {}{inside}{serial}", v.index, v.partition, v.offset, v.filesystem);
        if let Some(b) = report.bitlocker.iter().find(|b| b.volume == v.index) {
            match (&b.unlocked_by, &b.skipped) {
                (Some(by), _) => say!("  BitLocker volume, unlocked with the {by}"),
                (None, Some(why)) => say!("  BitLocker volume, left locked: {why}"),
                _ => {}
            }
        }
        if let Some(w) = &v.write_refused {
            say!("  writes refused: {w}");
        }
        for n in &v.notes {
            say!("  {n}");
        }
        for rule in &v.rules {
            let found = if rule.directory_found {
                format!("{} file(s) matched", rule.files.len())
            } else {
                "directory not found".into()
            };
            say!("  rule {}: {found}", rule.path);
            for f in &rule.files {
                let why = match (&f.reason, f.action) {
                    (_, FileAction::Failed) => " (see the errors below)".to_string(),
                    (Some(r), _) => format!(" - {r}"),
                    (None, _) => String::new(),
                };
                say!(
                    "    {} ({} bytes, sha256 {}): {}{why}",
                    f.path,
                    f.size,
                    f.sha256.as_deref().unwrap_or("-"),
                    f.action
                );
                for n in &f.notes {
                    say!("      {n}");
                }
                if let Some(b) = f.backup.as_ref().filter(|_| f.action == FileAction::Deleted) {
                    say!("      backup: {b}");
                }
                if dry_run && !f.writes.is_empty() {
                    print!("{}", Plan { writes: f.writes.clone(), notes: f.notes.clone() });
                }
            }
        }
    }
    for v in &r.volumes {
        for x in &v.restores {
            let why = x.reason.as_deref().map(|r| format!(" - {r}")).unwrap_or_default();
            say!("volume {}: restore {} ({}, from {}): {}{why}", v.index, x.path, x.kind, x.backup, x.action);
            for n in &x.notes {
                say!("  {n}");
            }
            if let Some(b) = &x.backup_of_current {
                say!("  backup of the hive before the restore: {b}");
            }
            if dry_run && !x.writes.is_empty() {
                print!("{}", Plan { writes: x.writes.clone(), notes: Vec::new() });
            }
        }
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
            if dry_run && !h.writes.is_empty() {
                print!("{}", Plan { writes: h.writes.clone(), notes: Vec::new() });
            }
        }
    }
    for m in &r.safe_mode {
        say!("safe mode ({}): {} -> {} [{}]", m.store, m.before, m.after, m.action);
        if let Some(j) = &m.journal {
            say!("  transaction log: {j}");
        }
        if m.action.changed() {
            say!("  {}", m.undo);
        }
    }
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
