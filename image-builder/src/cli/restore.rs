//! `rescue restore --from BACKUP_DIR DISK`: puts deleted files back from the
//! backups `rescue apply --backup-dir` or the agent (a stick's
//! `rescue/backups`) kept, each by its sidecar JSON, on the volume whose
//! serial number the sidecar names. A dry run by default; `--yes` writes.
//!
//! Everything a sidecar says is data to check: names are single Win32 path
//! components, the backup's size and SHA-256 must match before anything is
//! planned, the parent folder must still be the one the file was deleted
//! from, and a name already taken is left alone (the same content there:
//! nothing to do). The engine's create planner does the NTFS work.

use crate::cli::volume_keys::KeyArgs;
use crate::cli::Exit;
use crate::host::disk::FileDisk;
use crate::host::in_use::refuse_if_in_use;
use crate::host::volume::HostKeys;
use anyhow::{bail, Context, Result};
use rescue_engine::formats::ntfs::create::{plan_create, NewFile};
use rescue_engine::formats::ntfs::gate::{clear_for_writing, UncleanJournal};
use rescue_engine::formats::ntfs::{execute, Ntfs, NtfsError, MAX_READ_WHOLE};
use rescue_engine::rules::backup::{namespace_code, Origin};
use rescue_engine::run::ports::{Console, Silent};
use rescue_engine::run::unlock::Unlocker;
use rescue_engine::run::volumes::{self, Closed, Found};
use rescue_engine::util::hex::hex;
use rescue_engine::util::win32_name::component_problem;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

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

/// A backup and its sidecar.
struct Backup {
    content: PathBuf,
    origin: Origin,
}

/// What happened to one backup.
#[derive(serde::Serialize)]
struct Outcome {
    backup: String,
    path: String,
    volume_serial: String,
    /// "restored", "would restore", "nothing to do" or "failed".
    result: &'static str,
    reason: Option<String>,
    writes: usize,
    /// What the plan decided (e.g. written plain).
    notes: Vec<String>,
}

impl Outcome {
    /// A failed outcome for backup `b` on the volume with `serial`, to fill in.
    fn failed(b: &Backup, serial: &str, reason: Option<String>) -> Outcome {
        Outcome {
            backup: b.content.display().to_string(),
            path: b.origin.path.clone(),
            volume_serial: serial.to_string(),
            result: "failed",
            reason,
            writes: 0,
            notes: Vec::new(),
        }
    }
}

/// Sidecars are small; anything larger is not one of ours.
const MAX_SIDECAR: u64 = 1 << 20;
/// Folders below BACKUP_DIR walked at most (a stick's is `<serial>/<run>/<path…>`).
const MAX_DEPTH: usize = 64;

/// Every backup with a restore sidecar below `dir` (symlinks are not followed).
fn find_backups(dir: &Path, depth: usize, out: &mut Vec<Backup>, skipped: &mut Vec<String>) -> Result<()> {
    if depth > MAX_DEPTH {
        bail!("{}: folders nested deeper than {MAX_DEPTH}", dir.display());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read backup folder {}", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.file_type().is_symlink() {
            skipped.push(format!("{}: a symbolic link, not followed", path.display()));
            continue;
        }
        if meta.is_dir() {
            find_backups(&path, depth + 1, out, skipped)?;
            continue;
        }
        let Some(content) = path.to_str().and_then(|p| p.strip_suffix(".json")).map(PathBuf::from) else { continue };
        if !std::fs::symlink_metadata(&content).is_ok_and(|m| m.is_file()) {
            continue; // a report or other JSON, not a sidecar
        }
        if meta.len() > MAX_SIDECAR {
            skipped.push(format!("{}: {} bytes, too large for a sidecar", path.display(), meta.len()));
            continue;
        }
        let text = std::fs::read(&path)?;
        let parsed: serde_json::Value = match serde_json::from_slice(&text) {
            Ok(v) => v,
            Err(err) => {
                skipped.push(format!("{}: not valid JSON ({err})", path.display()));
                continue;
            }
        };
        match parsed.get("restore").map(|r| serde_json::from_value::<Origin>(r.clone())) {
            Some(Ok(origin)) => out.push(Backup { content, origin }),
            Some(Err(err)) => skipped.push(format!("{}: unreadable restore data ({err})", path.display())),
            None => {
                skipped.push(format!("{}: no restore data (a hive or BCD copy, or an older backup)", path.display()))
            }
        }
    }
    Ok(())
}

/// Checks a backup against its sidecar and the volume, and plans putting it
/// back. `Ok(None)`: the same file is already there.
fn plan_one(
    ntfs: &Ntfs,
    vol: &mut impl rescue_engine::block::BlockDevice,
    gate: &rescue_engine::formats::ntfs::gate::Clearance,
    b: &Backup,
) -> Result<Option<rescue_engine::formats::ntfs::Plan>, String> {
    let o = &b.origin;
    let parts: Vec<&str> = o.path.split('\\').filter(|p| !p.is_empty()).collect();
    let Some((leaf, dirs)) = parts.split_last() else { return Err(String::from("the sidecar names no path")) };
    for p in &parts {
        if let Some(why) = component_problem(p) {
            return Err(format!("the sidecar's path has a bad component {p:?} ({why})"));
        }
    }
    let mut names = Vec::new();
    for n in &o.names {
        if let Some(why) = component_problem(&n.name) {
            return Err(format!("the sidecar's name {:?} is not a file name ({why})", n.name));
        }
        let ns =
            namespace_code(&n.namespace).ok_or(format!("the sidecar's name space {:?} is unknown", n.namespace))?;
        names.push((n.name.encode_utf16().collect::<Vec<u16>>(), ns));
    }
    if !o.names.iter().any(|n| n.name.eq_ignore_ascii_case(leaf) && n.namespace != "dos") {
        return Err(format!("the sidecar's names do not include {leaf:?}, the last part of its path"));
    }
    let size = std::fs::symlink_metadata(&b.content).map_err(|e| e.to_string())?.len();
    if size != o.size {
        return Err(format!("the backup holds {size} bytes, its sidecar says {}", o.size));
    }
    if size > MAX_READ_WHOLE {
        return Err(format!("the backup holds {size} bytes, more than the {MAX_READ_WHOLE} any backup of ours holds"));
    }
    let data = std::fs::read(&b.content).map_err(|e| format!("cannot read the backup: {e}"))?;
    if hex(&Sha256::digest(&data)) != o.sha256.to_ascii_lowercase() {
        return Err(String::from("the backup's SHA-256 differs from its sidecar's: not restored"));
    }
    let e = |e: NtfsError| e.to_string();
    let parent = ntfs.lookup_path(vol, dirs).map_err(|err| format!("the folder it was deleted from is gone: {err}"))?;
    if parent.record() != o.parent_record || parent.seq() != o.parent_seq {
        return Err(String::from("the folder it was deleted from was deleted and made again: not restored"));
    }
    let dir = ntfs.open_dir(vol, parent).map_err(e)?;
    if let Some(there) = ntfs.lookup_in(vol, &dir, leaf).map_err(e)? {
        let f = ntfs.load_file(vol, there.record()).map_err(e)?;
        let same = ntfs.read_content(vol, &f, MAX_READ_WHOLE).is_ok_and(|c| hex(&Sha256::digest(&c)) == o.sha256);
        return if same { Ok(None) } else { Err(format!("a different file named {leaf:?} is there: left alone")) };
    }
    let spec = NewFile {
        parent,
        names,
        times: [o.created, o.modified, o.mft_modified, o.accessed],
        attributes: o.attributes,
        owner_id: o.owner_id,
        security_id: (o.security_id != 0).then_some(o.security_id),
        data: &data,
    };
    plan_create(ntfs, vol, gate, &spec).map(|(plan, _)| Some(plan)).map_err(e)
}

/// Runs `rescue restore`.
pub fn run(args: &RestoreArgs) -> Result<Exit> {
    let mut backups = Vec::new();
    let mut skipped = Vec::new();
    find_backups(&args.from, 0, &mut backups, &mut skipped)?;
    if backups.is_empty() {
        bail!("no backup with restore data in {}{}", args.from.display(), shown(&skipped));
    }
    if args.yes {
        refuse_if_in_use(&args.target)?;
    }
    let mut disk = FileDisk::open(&args.target, args.yes)?;
    let mut keys = HostKeys::new(args.keys.credentials()?)?;
    let mut unlock = Unlocker { keys: &mut keys, console: &mut Silent, timeout_s: None, clear_key_first: true };
    let mut outcomes = Vec::new();
    let mut visit = |v: Found<'_>, _: &mut dyn Console| {
        let mut vol = match v.volume {
            Ok(vol) => vol,
            Err(Closed::Locked(why) | Closed::Unreadable(why)) => {
                return say_err!("partition {}: not restored: {why}", v.partition.number);
            }
        };
        let Ok(ntfs) = Ntfs::open(&mut vol) else { return };
        let serial = format!("{:016X}", ntfs.boot.serial);
        let mine: Vec<&Backup> =
            backups.iter().filter(|b| b.origin.volume_serial.eq_ignore_ascii_case(&serial)).collect();
        if mine.is_empty() {
            return;
        }
        let gate = clear_for_writing(&ntfs, &mut vol, UncleanJournal::Refuse);
        for b in mine {
            let mut out = Outcome::failed(b, &serial, None);
            let planned = match &gate {
                Ok(g) => plan_one(&ntfs, &mut vol, g, b),
                Err(err) => Err(format!("volume {} not writable: {err}", v.index)),
            };
            match planned {
                Ok(None) => {
                    out.result = "nothing to do";
                    out.reason = Some(String::from("the same file is already there"));
                }
                Ok(Some(plan)) if !args.yes => {
                    out.result = "would restore";
                    out.notes = plan.notes.clone();
                    out.writes = plan.writes.len();
                    if !args.json {
                        for w in &plan.writes {
                            println!("  plan: {:<14} byte {:>12} +{:<6} {}", w.structure, w.offset, w.len, w.reason);
                        }
                    }
                }
                Ok(Some(plan)) => match execute(&mut vol, &plan, args.stop_after) {
                    Ok(n) => {
                        out.result = "restored";
                        out.writes = n;
                        out.notes = plan.notes.clone();
                    }
                    Err(err) => out.reason = Some(format!("stopped part-way: {err}")),
                },
                Err(why) => out.reason = Some(why),
            }
            if !args.json {
                let why = out.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
                println!("{}: {}{why}", out.path, out.result.to_uppercase());
                for n in &out.notes {
                    println!("  note: {n}");
                }
            }
            outcomes.push(out);
        }
    };
    volumes::walk(&mut disk, 1, 0, &mut unlock, &mut visit).context("reading the partition table")?;
    for b in &backups {
        if !outcomes.iter().any(|o| o.backup == b.content.display().to_string()) {
            let why = format!("no volume with serial {} on {}", b.origin.volume_serial, args.target.display());
            outcomes.push(Outcome::failed(b, &b.origin.volume_serial, Some(why)));
        }
    }
    let count = |r: &str| outcomes.iter().filter(|o| o.result == r).count();
    let (restored, would, nothing, failed) =
        (count("restored"), count("would restore"), count("nothing to do"), count("failed"));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else {
        // Backups for no volume of the disk were not shown while walking it.
        for o in &outcomes {
            if let Some(why) = o.reason.as_deref().filter(|r| r.starts_with("no volume")) {
                println!("{}: FAILED ({why})", o.path);
            }
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
