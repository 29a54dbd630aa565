//! The run over a whole machine — every disk, every volume, the profile's
//! fixes on each Windows volume, Safe Mode, one report, one verdict — the
//! same for the UEFI agent and `rescue apply`, which differ only in the
//! [`Ports`] they supply. Everything that decides lives here and in
//! [`crate::rules`], and is tested on the host.

use super::ports::{Console, EspFiles, KeySource};
use super::report::{DiskReport, Outcome, Report, RunReport};
use super::unlock::Unlocker;
use super::volumes::{self, Closed, Found};
use crate::block::{BlockDevice, Counting};
use crate::formats::diskid;
use crate::formats::ntfs::{Ntfs, NtfsError};
use crate::formats::registry::bcd;
use crate::rules::backup::BackupSink;
use crate::rules::profile::{Profile, WhenLocked};
use crate::rules::report::{Filesystem, RestoreAction, RestoreReport, SafeModeReport, StoreAction, VolumeReport};
use crate::rules::restore;
use crate::rules::safe_mode::{self, BootFile, Store};
use crate::rules::{self, Applied, Env, Options};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// A disk the run goes over, with what the front end knows of it.
pub struct Disk<D> {
    /// How the front end names it (the agent: its device path as text; the host: the path given).
    pub label: String,
    /// Model name as the firmware reports it (may be empty).
    pub model: String,
    /// Serial number as the firmware reports it (may be empty).
    pub serial: String,
    /// The bus people know it by (SATA, NVMe, USB, ...; may be empty).
    pub bus: String,
    /// The whole disk, as a block device.
    pub dev: D,
}

/// The ports a run reaches the outside through.
pub struct Ports<'a> {
    /// The screen and keyboard.
    pub console: &'a mut dyn Console,
    /// Where files go before they are changed.
    pub sink: &'a mut dyn BackupSink,
    /// BitLocker keys beyond the prompt (site keys; the host's credentials).
    pub keys: &'a mut dyn KeySource,
    /// The disks' EFI System Partitions (`[finish] safe_mode`).
    pub esp: &'a mut dyn EspFiles,
    /// A monotonic clock in milliseconds.
    pub clock_ms: &'a dyn Fn() -> u64,
}

/// Runs `profile` over every volume of every disk: the rules on each
/// Windows volume (one holding `Windows\System32`; other volumes are left
/// alone), Safe Mode on the ESP of each disk holding one, then the verdict.
/// Never panics on disk data; every failure lands in the report.
pub fn run<D: BlockDevice>(profile: &Profile, disks: &mut [Disk<D>], opts: Options, ports: Ports<'_>) -> RunReport {
    let Ports { console, sink, keys, esp, clock_ms } = ports;
    let t0 = clock_ms();
    let mut result = Report {
        profile: profile.name.clone(),
        engine_version: crate::util::version::VERSION.into(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let mut disk_reports = Vec::new();
    let mut bitlocker = Vec::new();
    let disks_len = disks.len();
    for (n, disk) in disks.iter_mut().enumerate() {
        let mut dr = DiskReport {
            label: disk.label.clone(),
            model: disk.model.clone(),
            serial: disk.serial.clone(),
            bus: disk.bus.clone(),
            size: disk.dev.size(),
            ..Default::default()
        };
        // Disks as people know them: model, size, bus (the device path is in the report).
        let mut name = if dr.model.is_empty() { String::from("disk") } else { dr.model.clone() };
        name += &format!(", {}", diskid::human_size(dr.size));
        if !disk.bus.is_empty() {
            name += &format!(", {}", disk.bus);
        }
        console.progress(&format!("Scanning disk {} of {}: {name}", n + 1, disks_len));
        console.line(&format!("disk {}: {name}", n + 1));
        let mut dev = Counting::new(&mut disk.dev);
        let first = result.volumes.len();
        let errors_before = result.errors.len();
        let mut unlock = Unlocker {
            keys: &mut *keys,
            console: &mut *console,
            timeout_s: profile.prompt.timeout_seconds,
            clear_key_first: true,
        };
        let mut visit = |found: Found<'_>, console: &mut dyn Console| {
            let mut log = |m: &str| console.line(&format!("    {m}"));
            let mut env = Env { profile, opts, sink: &mut *sink, log: &mut log };
            result.add(volume(&mut env, found));
        };
        match volumes::walk(&mut dev, n + 1, first, &mut unlock, &mut visit) {
            Ok(w) => {
                dr.partition_table = w.table.into();
                dr.volumes = (first..first + w.count).collect();
                result.errors.extend(w.errors);
                bitlocker.extend(w.bitlocker);
            }
            Err(e) => {
                console.line(&format!("  cannot read its partition table: {e}"));
                dr.error = Some(format!("{e}"));
            }
        }
        let windows = result.volumes[first..].iter().any(|v| v.windows);
        let locked = result.volumes[first..].iter().any(|v| v.filesystem == Filesystem::LockedBitLocker);
        // The disk's Windows volume names its BCD store's backups.
        let serial = result.volumes[first..]
            .iter()
            .filter(|v| v.windows)
            .find_map(|v| v.serial.as_deref().and_then(|s| u64::from_str_radix(s, 16).ok()))
            .unwrap_or(0);
        if !profile.restore.is_empty() && serial != 0 {
            let on = EspDisk { dev: &mut *dev.inner, label: &disk.label, number: n + 1, serial };
            if let Some(r) = restore_bcd(on, profile, opts, esp, sink) {
                let why = r.reason.as_deref().map(|w| format!(" ({w})")).unwrap_or_default();
                console.line(&format!("  {}: {}{why}", r.path, r.action));
                match r.action {
                    RestoreAction::Restored => result.restored += 1,
                    RestoreAction::Failed => result.errors.push(format!("disk {}: restore of {}{why}", n + 1, r.path)),
                    _ => {}
                }
                if let Some(v) = result.volumes[first..].iter_mut().find(|v| v.windows) {
                    v.restores.push(r);
                }
            }
        }
        if let (Some(mode), true) = (profile.finish.safe_mode, windows) {
            let on = EspDisk { dev: &mut *dev.inner, label: &disk.label, number: n + 1, serial };
            let r = set_safe_mode(on, profile, mode, opts, esp, sink);
            console.line(&format!("  safe mode: {} -> {} [{}]", r.before, r.after, r.action));
            if let Some(why) = &r.reason {
                result.errors.push(format!("{}: {why}", r.store));
            }
            result.safe_mode.push(r);
        } else if profile.bitlocker.when_locked == WhenLocked::SafeMode && locked && !windows {
            // Every Windows of this disk is locked: Safe Mode on the disk's own
            // boot store, where Windows' TPM unlock still opens it. A disk
            // without a Windows boot store (a data disk) is left alone.
            let on = EspDisk { dev: &mut *dev.inner, label: &disk.label, number: n + 1, serial };
            if let Some(mut r) = safe_mode_for_locked(on, profile, opts, esp, sink) {
                console.line(&format!("  BitLocker left locked: safe mode {} -> {} [{}]", r.before, r.after, r.action));
                match &r.reason {
                    Some(why) => result.errors.push(format!("{}: {why}", r.store)),
                    // Done: the locked volumes are this PC's next step, not a failure.
                    None => retain_after(&mut result.errors, errors_before, |e| !e.starts_with(LOCKED_ERROR)),
                }
                r.for_locked_bitlocker = true;
                result.safe_mode.push(r);
            }
        }
        result.bytes_read += dev.bytes_read;
        result.read_calls += dev.reads;
        result.bytes_written += dev.bytes_written;
        disk_reports.push(dr);
    }
    let windows = result.volumes.iter().filter(|v| v.windows).count();
    let for_locked = result.safe_mode.iter().any(|m| m.for_locked_bitlocker && m.reason.is_none());
    if windows == 0 && !for_locked {
        let mut why = String::from("no Windows volume found on any disk");
        if !result.volumes.iter().any(|v| v.filesystem == Filesystem::Ntfs) {
            why += " (no NTFS volume found: is it the right disk?)";
        }
        // A disk whose partition table could not be read may be the one: say so.
        for (n, d) in disk_reports.iter().enumerate() {
            if let Some(e) = &d.error {
                why += &format!("; disk {}: cannot read its partition table: {e}", n + 1);
            }
        }
        result.errors.push(why);
    }
    result.ok = result.errors.is_empty();
    // A dry run concludes what the real run would (the report says `dry_run`).
    let changes = if opts.dry_run { result.would_change() } else { result.changes() };
    let (outcome, reason) = if !result.ok {
        (Outcome::Failed, Some(result.errors.join("; ")))
    } else if for_locked {
        (Outcome::SafeModeSet, Some(profile.bitlocker.instructions.clone()))
    } else if changes > 0 {
        (Outcome::Fixed, restored_line(profile, &result))
    } else {
        (Outcome::NothingToDo, restored_line(profile, &result))
    };
    RunReport {
        agent_version: crate::util::version::VERSION.into(),
        disks: disk_reports,
        outcome,
        reason,
        windows_volumes: windows,
        duration_ms: clock_ms().saturating_sub(t0),
        bitlocker,
        result,
        ..Default::default()
    }
}

/// One volume the walk found: its report, and the rules applied when it
/// is a Windows volume. An NTFS volume the engine cannot read is an error,
/// not "no Windows": a damaged system volume must not pass for a data disk.
fn volume(env: &mut Env<'_>, found: Found<'_>) -> Applied {
    let p = found.partition;
    let mut vr = VolumeReport {
        index: found.index,
        partition: p.number,
        offset: p.offset,
        size: p.size,
        bitlocker: found.bitlocker,
        ..Default::default()
    };
    let what = format!("partition {} ({} MiB)", p.number, p.size >> 20);
    let left = |volume, errors| Applied { volume, errors, backups: Vec::new() };
    let mut vol = match found.volume {
        Ok(v) => v,
        Err(Closed::Locked(why)) => {
            vr.filesystem = Filesystem::LockedBitLocker;
            return left(vr, vec![format!("{LOCKED_ERROR}{} not unlocked: {why}", found.name)]);
        }
        Err(Closed::Unreadable(why)) => {
            vr.error = Some(why.into());
            return left(vr, vec![format!("volume {} on {}: cannot be read: {why}", found.index, found.name)]);
        }
    };
    let opened = Ntfs::open(&mut vol).and_then(|v| v.lookup(&mut vol, "Windows\\System32").map(|_| v));
    vr.filesystem = Filesystem::Ntfs;
    let ntfs = match opened {
        Ok(v) => v,
        Err(NtfsError::NotNtfs { .. }) => {
            vr.filesystem = Filesystem::NotNtfs;
            return left(vr, Vec::new());
        }
        Err(NtfsError::NotFound { .. } | NtfsError::NotADirectory { .. }) => {
            vr.notes.push("no Windows\\System32: not a Windows volume, left alone".into());
            env.say(&format!("{what}: no Windows: left alone"));
            return left(vr, Vec::new());
        }
        Err(e) => {
            env.say(&format!("{what}: NTFS volume the engine cannot read, left alone: {e}"));
            vr.error = Some(format!("{e}"));
            let why = format!("volume {}: unreadable NTFS, left alone: {e}", vr.index);
            return left(vr, vec![why]);
        }
    };
    vr.windows = true;
    env.say(&format!("{what}: Windows volume"));
    rules::apply(env, &ntfs, &mut vol, vr)
}

/// For a profile with `[[restore]]` rules, what they did in one line:
/// `restored N files` (and hives), as the verdict's reason.
fn restored_line(profile: &Profile, r: &Report) -> Option<String> {
    if profile.restore.is_empty() {
        return None;
    }
    let word = if r.dry_run { "would restore" } else { "restored" };
    let want = if r.dry_run { RestoreAction::WouldRestore } else { RestoreAction::Restored };
    let done = |kind: &str| r.restores().filter(|x| x.action == want && x.kind == kind).count();
    let there = r.restores().filter(|x| x.action == RestoreAction::AlreadyThere).count();
    let mut line = format!("{word} {} files", done("file"));
    for (n, what) in [(done("hive"), "hives"), (done("bcd"), "boot stores")] {
        if n > 0 {
            line += &format!(" and {n} {what}");
        }
    }
    if there > 0 {
        line += &format!("; {there} already in place");
    }
    Some(line)
}

/// How the error for a BitLocker volume left locked begins.
const LOCKED_ERROR: &str = "BitLocker volume on ";

/// Keeps the entries of `v` from `from` on that pass `keep` (those before stay).
fn retain_after(v: &mut Vec<String>, from: usize, keep: impl Fn(&str) -> bool) {
    let tail: Vec<String> = v.drain(from.min(v.len())..).filter(|e| keep(e)).collect();
    v.extend(tail);
}

/// `[bitlocker] when_locked = "safe_mode"` on one disk: its boot store set
/// to the profile's Safe Mode, as `[finish] safe_mode` does; `None` when the
/// disk has no Windows boot store (no ESP, or no BCD on it).
fn safe_mode_for_locked(
    on: EspDisk<'_>,
    profile: &Profile,
    opts: Options,
    esp: &mut dyn EspFiles,
    sink: &mut dyn BackupSink,
) -> Option<SafeModeReport> {
    // Present but unreadable: set_safe_mode reports why.
    let _ = esp.read(&mut *on.dev, on.label, BootFile::Bcd)?;
    Some(set_safe_mode(on, profile, profile.bitlocker.safe_mode, opts, esp, sink))
}

/// A disk whose ESP the run edits: its device, its label, its number
/// (1-based) and its Windows volume's serial number (0: none).
struct EspDisk<'a> {
    dev: &'a mut dyn BlockDevice,
    label: &'a str,
    number: usize,
    serial: u64,
}

/// The disk's BCD store and its two logs (a missing log reads as empty).
fn read_store(dev: &mut dyn BlockDevice, label: &str, esp: &mut dyn EspFiles) -> Result<[Vec<u8>; 3], String> {
    let bcd = esp.read(dev, label, BootFile::Bcd).ok_or("the disk has no EFI System Partition with a BCD store")??;
    let [log1, log2] = BootFile::LOGS.map(|f| esp.read(dev, label, f).unwrap_or(Ok(Vec::new())));
    Ok([bcd, log1?, log2?])
}

/// `[[restore]]` rules on one disk's BCD store (see [`restore::put_back_bcd`]).
fn restore_bcd(
    on: EspDisk<'_>,
    profile: &Profile,
    opts: Options,
    esp: &mut dyn EspFiles,
    sink: &mut dyn BackupSink,
) -> Option<RestoreReport> {
    let EspDisk { dev, label, number, serial } = on;
    let files = read_store(dev, label, esp);
    let store = match &files {
        Ok([bcd, log1, log2]) => Ok(Store { bcd, logs: [log1, log2], owner: (&profile.name, number, serial) }),
        Err(why) => Err(why.clone()),
    };
    let mut write = |file, edits: &[_]| esp.write(dev, label, file, edits);
    restore::put_back_bcd(profile, serial, store, opts, sink, &mut write)
}

/// `[finish] safe_mode` on one disk's BCD store, read and written through
/// the front end's ESP port (the originals go to the backup sink first).
fn set_safe_mode(
    on: EspDisk<'_>,
    profile: &Profile,
    mode: bcd::SafeMode,
    opts: Options,
    esp: &mut dyn EspFiles,
    sink: &mut dyn BackupSink,
) -> SafeModeReport {
    let EspDisk { dev, label, number, serial } = on;
    let store = format!("disk {number}: \\EFI\\Microsoft\\Boot\\BCD");
    let mut r = SafeModeReport { store, undo: bcd::undo_text(mode), ..Default::default() };
    let result = (|| -> Result<(), String> {
        let [old, log1, log2] = read_store(dev, label, esp)?;
        let mut write = |file, edits: &[_]| esp.write(dev, label, file, edits);
        let store = Store { bcd: &old, logs: [&log1, &log2], owner: (&profile.name, number, serial) };
        safe_mode::set(store, mode, opts, sink, &mut write, &mut r)
    })();
    if let Err(why) = result {
        r.action = StoreAction::Failed;
        r.reason = Some(why);
    }
    r
}
