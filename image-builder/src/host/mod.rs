//! Host verbs that run the engine against disks: `ls`, `apply`.
//!
//! Both open TARGET (a whole-disk image, a partition image or a block
//! device) as a [`FileDisk`], find its volumes with the engine's partition
//! discovery, and use the same NTFS engine as the UEFI agent.
use crate::disk::FileDisk;
use crate::unlock::{open_volume, KeyArgs, Volume};
use anyhow::{bail, Context, Result};
use rescue_engine::block::{BlockDevice, Slice};
use rescue_engine::ntfs::{self, nt_time_rfc3339, Ntfs};
use rescue_engine::partition;
use rescue_engine::profile::Profile;
use rescue_engine::remediate::{self, BackupItem, BackupSink, Counting, Options};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Arguments of `rescue ls`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Disk image, partition image or block device.
    pub target: PathBuf,
    /// Directory to list, relative to each volume's root (e.g. 'Windows\System32').
    pub path: Option<String>,
    /// Also list DOS (8.3) names.
    #[arg(long)]
    pub dos: bool,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// Arguments of `rescue apply`.
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// The profile whose fixes to run.
    #[arg(long)]
    pub profile: PathBuf,
    /// Print the plan (which bytes of which structures would change) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the JSON report here (default: print a summary only).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Folder for backups of deleted files (default: `backup` beside the report, else `./rescue-backup`).
    #[arg(long)]
    pub backup_dir: Option<PathBuf>,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Disk image, partition image or block device.
    pub target: PathBuf,
}

pub fn ls(args: &LsArgs) -> Result<()> {
    let mut disk = Counting::new(FileDisk::open(&args.target, false)?);
    let parts = partition::discover(&mut disk).map_err(|e| anyhow::anyhow!("{e}")).context("reading the partition table")?;
    let mut found = 0;
    let mut failed = false;
    for p in parts {
        let mut vol = match open_volume(Slice::new(&mut disk, p.offset, p.size), &args.keys) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("partition {} (byte {}): {e:#}", p.number, p.offset);
                failed |= !args.keys.is_empty();
                continue;
            }
        };
        let v = match Ntfs::open(&mut vol) {
            Ok(v) => v,
            Err(ntfs::NtfsError::NotNtfs { .. }) => continue,
            Err(e) => {
                eprintln!("volume {} (partition {}, byte {}): {e}", found, p.number, p.offset);
                failed = true;
                continue;
            }
        };
        let path = args.path.clone().unwrap_or_default();
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "== volume {found}: partition {} at byte {} ({} bytes), serial {:016X}: \\{}", p.number, p.offset, p.size, v.boot.serial, path);
        found += 1;
        let r = (|| -> Result<(), ntfs::NtfsError> {
            let dir_ref = v.lookup(&mut vol, &path)?;
            let dir = match v.open_dir(&mut vol, dir_ref) {
                Err(ntfs::NtfsError::NotADirectory { .. }) => return Err(ntfs::NtfsError::NotADirectory { path: path.clone() }),
                r => r?,
            };
            for e in v.list_dir(&mut vol, &dir)? {
                if e.namespace == ntfs::filename::DOS && !args.dos {
                    continue;
                }
                let kind = if e.is_dir { "<DIR>" } else { "" };
                let ns = match e.namespace {
                    0 => "posix",
                    1 => "win32",
                    2 => "dos",
                    _ => "win32+dos",
                };
                if writeln!(o, "{:>12} {:5} {}  {:<9} rec {:>8}  {}", e.size, kind, &nt_time_rfc3339(e.modified)[..19], ns, ntfs::ref_record(e.file_ref), e.name).is_err() {
                    break; // stdout closed (e.g. piped into head)
                }
            }
            Ok(())
        })();
        if let Err(e) = r {
            eprintln!("volume {}: {e}", found - 1);
            failed = true;
        }
    }
    eprintln!("read {} bytes in {} reads", disk.bytes_read, disk.reads);
    if found == 0 {
        bail!("no NTFS volume found in {}", args.target.display());
    }
    if failed {
        bail!("some volumes could not be listed");
    }
    Ok(())
}

/// Backups as files: `DIR/vol<N>-<serial>/<path>` plus `<path>.json` metadata.
struct DirSink {
    dir: PathBuf,
}

impl BackupSink for DirSink {
    fn backup(&mut self, item: &BackupItem<'_>) -> Result<String, String> {
        let write = || -> std::io::Result<PathBuf> {
            let mut rel = PathBuf::from(format!("vol{}-{:016X}", item.volume, item.volume_serial));
            for c in item.path.split('\\') {
                rel.push(c.replace(['/', '\0'], "_"));
            }
            let mut path = self.dir.join(&rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut n = 1;
            while path.exists() {
                path = self.dir.join(format!("{}.{n}", rel.display()));
                n += 1;
            }
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
            f.write_all(item.content)?;
            f.sync_all()?;
            let meta = serde_json::json!({ "profile": item.profile, "volume": item.volume, "path": item.path, "file": item.file });
            let mut m = std::fs::File::create(format!("{}.json", path.display()))?;
            m.write_all(serde_json::to_string_pretty(&meta).unwrap_or_default().as_bytes())?;
            m.sync_all()?;
            // The content must read back identical before we let the engine delete the original.
            if std::fs::read(&path)? != item.content {
                return Err(std::io::Error::other("backup read back differs"));
            }
            Ok(path)
        };
        write().map(|p| p.display().to_string()).map_err(|e| e.to_string())
    }
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

pub fn apply(args: &ApplyArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.profile).with_context(|| format!("cannot read {}", args.profile.display()))?;
    let profile = Profile::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.profile.display()))?;
    if !args.dry_run {
        refuse_if_in_use(&args.target)?;
    }
    let disk = FileDisk::open(&args.target, !args.dry_run)?;
    let mut sink = DirSink { dir: default_backup_dir(args) };
    let opts = Options { dry_run: args.dry_run };
    let started = std::time::Instant::now();
    let mut disk = Counting::new(disk);
    let mut report = remediate::Report { profile: profile.name.clone(), engine_version: rescue_engine::version::VERSION, dry_run: opts.dry_run, ..Default::default() };
    let parts = match partition::discover(&mut disk) {
        Ok(p) => p,
        Err(e) => {
            report.errors.push(format!("partition table: {e}"));
            Vec::new()
        }
    };
    let mut log = |line: &str| eprintln!("{line}");
    for p in parts {
        let mut vr = remediate::VolumeReport { index: report.volumes.len(), partition: p.number, offset: p.offset, size: p.size, ..Default::default() };
        match open_volume(Slice::new(&mut disk, p.offset, p.size), &args.keys) {
            Ok(mut vol) => {
                if let Volume::BitLocker(_) = vol {
                    vr.notes.push("BitLocker volume, unlocked".into());
                }
                remediate::remediate_volume(&profile, &mut vol, &opts, &mut sink, &mut log, &mut vr, &mut report);
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
    report.bytes_read = disk.bytes_read;
    report.read_calls = disk.reads;
    report.bytes_written = disk.bytes_written;
    report.ok = report.errors.is_empty();
    let elapsed = started.elapsed();
    disk.flush().map_err(|e| anyhow::anyhow!("{e}"))?;
    for v in &report.volumes {
        println!("volume {} (partition {}, byte {}): {}{}", v.index, v.partition, v.offset, v.filesystem, v.serial.as_ref().map(|s| format!(", serial {s}")).unwrap_or_default());
        if let Some(w) = &v.write_refused {
            println!("  writes refused: {w}");
        }
        for r in &v.rules {
            println!("  rule {}: {}", r.path, if r.directory_found { format!("{} file(s) matched", r.files.len()) } else { "directory not found".into() });
            for f in &r.files {
                println!("    {} ({} bytes, sha256 {}): {}{}", f.path, f.size, f.sha256.as_deref().unwrap_or("-"), f.action, f.reason.as_ref().map(|r| format!(" - {r}")).unwrap_or_default());
                if args.dry_run && !f.writes.is_empty() {
                    let p = rescue_engine::ntfs::Plan { writes: f.writes.clone(), notes: f.notes.clone() };
                    print!("{p}");
                }
            }
        }
    }
    println!("{} deleted, {} skipped, {} error(s); read {} bytes in {} reads, wrote {} bytes; {:.1} ms", report.files_deleted, report.files_skipped, report.errors.len(), report.bytes_read, report.read_calls, report.bytes_written, elapsed.as_secs_f64() * 1000.0);
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !report.ok {
        for e in &report.errors {
            eprintln!("error: {e}");
        }
        bail!("{} error(s)", report.errors.len());
    }
    Ok(())
}

/// Refuses to write to a block device that is mounted (or whose partitions
/// are): the running system would overwrite our change, or we its caches.
fn refuse_if_in_use(target: &Path) -> Result<()> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let meta = std::fs::metadata(target).with_context(|| format!("cannot open {}", target.display()))?;
    if !meta.file_type().is_block_device() {
        return Ok(());
    }
    let dev = std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
    let name = dev.to_string_lossy().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for line in mounts.lines() {
        let src = line.split_whitespace().next().unwrap_or("");
        let src = std::fs::canonicalize(src).map(|p| p.to_string_lossy().to_string()).unwrap_or_else(|_| src.to_string());
        let part_of = src.strip_prefix(&name).is_some_and(|rest| rest.is_empty() || rest.chars().all(|c| c.is_ascii_digit() || c == 'p'));
        if part_of {
            bail!("{src} is mounted ({}): unmount it before `rescue apply` writes to {name}", line.split_whitespace().nth(1).unwrap_or("?"));
        }
    }
    // The kernel refuses an exclusive open of a device that is claimed (mounted, in a RAID, ...).
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(&dev)
        .with_context(|| format!("{name} is in use by the system (exclusive open failed): stop what uses it first"))?;
    Ok(())
}
