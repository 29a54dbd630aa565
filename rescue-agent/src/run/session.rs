//! The agent's run over a whole machine: every disk, every volume, the
//! profile's fixes on each Windows volume, one report, one verdict.
//!
//! The front end supplies the disks (as [`BlockDevice`]s), a [`Console`] and
//! a backup sink; everything that decides lives here and is tested on the
//! host. Per volume the run uses the same code path as `rescue apply`
//! ([`delete::remediate_volume`]).

use crate::block::{BlockDevice, Slice};
use crate::formats::bitlocker::{BitLocker, BitLockerError, ProtectorKind, UnlockKey};
use crate::formats::diskid;
use crate::formats::ntfs::{Ntfs, NtfsError};
use crate::formats::partition::{self, PartitionKind};
use crate::formats::registry::bcd;
use crate::formats::smbios::Machine;
use crate::rules::delete::{self, BackupSink, Report, VolumeReport};
use crate::rules::profile::Profile;
use crate::run::ports::{BootFile, Console, EspFiles, KeyPrompt, KeySource};
use crate::run::prompt::{self, Event};
use crate::util::guid::Guid;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// A disk the firmware sees, with what it says about it.
pub struct Disk<D> {
    /// How the firmware names it (its device path as text).
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

/// The disks in the report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskReport {
    /// How the firmware names the disk (its device path as text).
    pub label: String,
    /// Model name as the firmware reports it (may be empty).
    pub model: String,
    /// Serial number as the firmware reports it (may be empty).
    pub serial: String,
    /// The bus it sits on (SATA, NVMe, USB, ...; may be empty).
    pub bus: String,
    /// Size of the disk in bytes.
    pub size: u64,
    /// `"gpt"`, `"mbr"` or `"none"` (empty when the table could not be read).
    pub partition_table: String,
    /// Indexes into `volumes` of this disk's volumes.
    pub volumes: Vec<usize>,
    /// Why the disk's partition table could not be read.
    pub error: Option<String>,
}

/// The verdict shown in large letters at the end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// At least one file was deleted and nothing failed.
    #[serde(rename = "FIXED")]
    Fixed,
    /// Windows volumes were found and nothing failed, but no file needed deleting.
    #[serde(rename = "NOTHING TO DO")]
    NothingToDo,
    /// Also what a report that names no outcome is taken for.
    #[default]
    #[serde(rename = "FAILED")]
    Failed,
}

impl Outcome {
    /// The verdict as shown on screen and written in the report (`"FIXED"`,
    /// `"NOTHING TO DO"`, `"FAILED"`).
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Fixed => "FIXED",
            Outcome::NothingToDo => "NOTHING TO DO",
            Outcome::Failed => "FAILED",
        }
    }
}

/// The agent's report: `rescue apply`'s report plus the machine, its disks,
/// the verdict and timings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunReport {
    /// Version of the agent that ran.
    pub agent_version: String,
    /// When the run started, as the front end formats it (empty when unknown).
    pub started: String,
    /// The machine's identity from SMBIOS, when the front end found it.
    pub machine: Option<Machine>,
    /// Every disk seen, in firmware order.
    pub disks: Vec<DiskReport>,
    /// The verdict.
    pub outcome: Outcome,
    /// Why the run failed: every failure, `; `-separated (`None` unless `FAILED`).
    pub reason: Option<String>,
    /// Volumes found holding `Windows\System32` (unlocked BitLocker ones included).
    pub windows_volumes: usize,
    /// Length of the run in milliseconds, by the front end's clock.
    pub duration_ms: u64,
    /// Extra facts from the front end (Secure Boot state, boot entry chosen...).
    pub notes: Vec<String>,
    /// The BitLocker volumes found, unlocked or not.
    pub bitlocker: Vec<BitLockerReport>,
    /// The engine's report over all volumes (its fields appear at the top level of the JSON).
    #[serde(flatten)]
    pub result: Report,
}

/// A BitLocker volume in the report. Never holds key material.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BitLockerReport {
    /// Index into `volumes`.
    pub volume: usize,
    /// The BitLocker volume GUID from the metadata (empty when it could not be opened).
    pub volume_guid: String,
    /// The BitLocker description, typically "COMPUTER-NAME C: date".
    pub description: Option<String>,
    /// The encryption method, by its Rust name (e.g. `XtsAes128`).
    pub encryption: String,
    /// Key IDs of the recovery-password protectors (what Windows' recovery screen shows).
    pub recovery_key_ids: Vec<String>,
    /// How it was unlocked ("clear key", "recovery password for Key ID ..."), if it was.
    pub unlocked_by: Option<String>,
    /// Why it stayed locked, if it did.
    pub skipped: Option<String>,
    /// Wrong recovery passwords typed before the right one (or before giving up).
    pub wrong_attempts: u32,
}

/// Asks for a recovery password until one opens `bl`, or the technician
/// presses Esc, or the profile's timeout passes. Returns the unlocked volume
/// or why it stays locked.
fn prompt_and_unlock<D: BlockDevice>(
    bl: BitLocker<D>,
    where_: &str,
    timeout_s: Option<u32>,
    console: &mut dyn Console,
    br: &mut BitLockerReport,
) -> Result<crate::formats::bitlocker::Unlocked<D>, String> {
    if br.recovery_key_ids.is_empty() {
        return Err(String::from("it has no recovery-password protector"));
    }
    console.key_prompt(&KeyPrompt {
        volume: where_,
        key_ids: &br.recovery_key_ids,
        description: br.description.as_deref(),
    });
    let mut entry = prompt::Entry::default();
    loop {
        console.field(&format!("KEY: {}", entry.render()));
        let key = match console.key(timeout_s) {
            Some(k) => k,
            None => return Err(format!("no key typed within {} s", timeout_s.unwrap_or(0))),
        };
        let mut ev = entry.key(key);
        // Barcode scanners type fast: take every digit already queued before redrawing.
        while ev == Event::Edited {
            match console.key(Some(0)) {
                Some(k) => ev = entry.key(k),
                None => break,
            }
        }
        match ev {
            Event::Edited => {}
            Event::Skip => return Err(String::from("skipped at the prompt (Esc)")),
            Event::Submit => {
                console.progress("Checking the key (this takes a few seconds)...");
                let pw = entry.password();
                match bl.unlock_key(&UnlockKey::RecoveryPassword(&pw)) {
                    Ok(vk) => {
                        br.unlocked_by = Some(format!("recovery password for Key ID {}", vk.key_id));
                        return bl.with_key(vk).map_err(|e| format!("{e}"));
                    }
                    Err(e @ BitLockerError::WrongRecoveryPassword { .. }) => {
                        br.wrong_attempts += 1;
                        console.line(&format!("That key does not open this volume: {e}. Try again, or Esc to skip."));
                        entry.clear();
                    }
                    Err(e) => return Err(format!("{e}")),
                }
            }
            other => {
                if let Some(m) = prompt::describe(&other) {
                    console.line(&m);
                }
            }
        }
    }
}

/// Opens a BitLocker volume: with its clear key when protection is
/// suspended, else with the stick's site key for it, else with a recovery
/// password typed at the prompt.
fn open_bitlocker<D: BlockDevice>(
    vol: D,
    where_: &str,
    timeout_s: Option<u32>,
    console: &mut dyn Console,
    keys: &mut dyn KeySource,
    br: &mut BitLockerReport,
) -> Result<crate::formats::bitlocker::Unlocked<D>, String> {
    let bl = BitLocker::open(vol).map_err(|e| format!("{e}"))?;
    br.volume_guid = format!("{}", bl.metadata.volume_guid);
    br.description = bl.metadata.description.clone();
    br.encryption = format!("{:?}", bl.metadata.method);
    br.recovery_key_ids = bl
        .protectors()
        .iter()
        .filter(|p| p.kind == ProtectorKind::RecoveryPassword)
        .map(|p| format!("{}", p.key_id))
        .collect();
    if bl.protectors().iter().any(|p| p.kind == ProtectorKind::ClearKey) {
        let unlocked = bl.unlock(&UnlockKey::ClearKey).map_err(|e| format!("{e}"))?;
        br.unlocked_by = Some(String::from("clear key (protection suspended)"));
        return Ok(unlocked);
    }
    let ids: Vec<Guid> =
        bl.protectors().iter().filter(|p| p.kind == ProtectorKind::RecoveryPassword).map(|p| p.key_id).collect();
    if let Some(pw) = keys.recovery_password(&ids, console) {
        console.progress(&format!("Unlocking {where_} with the site's key..."));
        match bl.unlock_key(&UnlockKey::RecoveryPassword(&pw)) {
            Ok(vk) => {
                br.unlocked_by = Some(format!("site key for Key ID {}", vk.key_id));
                return bl.with_key(vk).map_err(|e| format!("{e}"));
            }
            Err(e) => console.line(&format!("The stick's key for {where_} does not open it ({e}): type the key.")),
        }
    }
    prompt_and_unlock(bl, where_, timeout_s, console, br)
}

/// `[finish] safe_mode` on one disk's BCD store (read and written through
/// the front end's ESP port; the original goes to the backup sink first).
fn safe_mode(
    label: &str,
    name: &str,
    mode: bcd::SafeMode,
    now: u64,
    esp: &mut dyn EspFiles,
    sink: &mut dyn BackupSink,
    console: &mut dyn Console,
) -> bcd::SafeModeReport {
    let mut r = bcd::SafeModeReport {
        store: format!("{name}: \\EFI\\Microsoft\\Boot\\BCD"),
        undo: bcd::undo_text(mode),
        ..Default::default()
    };
    let result = (|| -> Result<(), String> {
        let old = esp.read(label, BootFile::Bcd).ok_or("the disk has no EFI System Partition with a BCD store")??;
        let [log1, log2] = BootFile::LOGS.map(|f| esp.read(label, f).unwrap_or(Ok(Vec::new())));
        let (log1, log2) = (log1?, log2?);
        let mut write = |file, edits: &[crate::formats::registry::edit::FileEdit]| esp.write(label, file, edits);
        crate::rules::registry::safe_mode_store(&old, [&log1, &log2], mode, now, false, 0, sink, &mut write, &mut r)
    })();
    if let Err(why) = result {
        r.action = "failed".into();
        r.reason = Some(why);
    }
    console.line(&format!("  safe mode: {} -> {} [{}]", r.before, r.after, r.action));
    r
}

/// True when the NTFS volume holds `Windows\System32`.
/// An NTFS volume the engine cannot read is an error, not "no Windows": a
/// damaged system volume must not pass for a data disk.
fn is_windows<D: BlockDevice>(vol: &mut D) -> Result<bool, NtfsError> {
    match Ntfs::open(vol).and_then(|v| v.lookup(vol, "Windows\\System32")) {
        Ok(_) => Ok(true),
        Err(NtfsError::NotFound { .. } | NtfsError::NotADirectory { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Runs the profile on `vol` if it is a Windows volume; returns whether it was.
#[allow(clippy::too_many_arguments)]
fn fix_if_windows<D: BlockDevice>(
    profile: &Profile,
    vol: &mut D,
    opts: &delete::Options,
    sink: &mut dyn BackupSink,
    console: &mut dyn Console,
    vr: &mut VolumeReport,
    result: &mut Report,
    what: &str,
) -> bool {
    match is_windows(vol) {
        Ok(true) => {}
        Ok(false) => {
            vr.notes.push("no Windows\\System32: not a Windows volume, left alone".into());
            console.line(&format!("{what}: no Windows: left alone"));
            return false;
        }
        Err(e) => {
            console.line(&format!("{what}: NTFS volume the engine cannot read, left alone: {e}"));
            vr.error = Some(format!("{e}"));
            result.errors.push(format!("volume {}: unreadable NTFS, left alone: {e}", vr.index));
            return false;
        }
    }
    console.line(&format!("{what}: Windows volume"));
    let mut log = |m: &str| console.line(&format!("    {m}"));
    delete::remediate_volume(profile, vol, opts, sink, &mut log, vr, result);
    true
}

/// The ports a run reaches the outside through.
pub struct Ports<'a> {
    /// The screen and keyboard.
    pub console: &'a mut dyn Console,
    /// Where files go before they are changed.
    pub sink: &'a mut dyn BackupSink,
    /// BitLocker keys beyond the prompt (site keys).
    pub keys: &'a mut dyn KeySource,
    /// The disks' EFI System Partitions (`[finish] safe_mode`).
    pub esp: &'a mut dyn EspFiles,
    /// A monotonic clock in milliseconds.
    pub clock_ms: &'a dyn Fn() -> u64,
    /// The time now, as a FILETIME (hives and the BCD record it when edited).
    pub now: u64,
}

/// Runs `profile` over every volume of every disk.
pub fn run<D: BlockDevice>(profile: &Profile, disks: &mut [Disk<D>], ports: Ports<'_>) -> RunReport {
    let Ports { console, sink, keys, esp, clock_ms, now } = ports;
    let t0 = clock_ms();
    let mut result = Report {
        profile: profile.name.clone(),
        engine_version: crate::util::version::VERSION.into(),
        ..Default::default()
    };
    let mut disk_reports = Vec::new();
    let mut windows = 0usize;
    let mut failures: Vec<String> = Vec::new();
    let mut bitlocker = Vec::new();
    let opts = delete::Options { dry_run: false, now };

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
        let parts = match partition::discover(&mut disk.dev) {
            Ok(p) => p,
            Err(e) => {
                console.line(&format!("  cannot read its partition table: {e}"));
                dr.error = Some(format!("{e}"));
                disk_reports.push(dr);
                continue;
            }
        };
        dr.partition_table = match parts.first().map(|p| &p.kind) {
            Some(PartitionKind::Gpt { .. }) => "gpt".into(),
            Some(PartitionKind::Mbr { .. }) => "mbr".into(),
            _ => "none".into(),
        };
        let mut dr_windows = false;
        for p in parts {
            let mut vol = Slice::new(&mut disk.dev, p.offset, p.size);
            let mut head = [0u8; 512];
            if p.size < 512 || vol.read_at(0, &mut head).is_err() {
                continue;
            }
            let index = result.volumes.len();
            let mut vr =
                VolumeReport { index, partition: p.number, offset: p.offset, size: p.size, ..Default::default() };
            let what = format!("  partition {} ({} MiB)", p.number, p.size >> 20);
            let mut windows_volume = false;
            if &head[3..11] == b"-FVE-FS-" {
                let mut br = BitLockerReport { volume: index, ..Default::default() };
                let where_ = format!("disk {} partition {} ({} MiB)", n + 1, p.number, p.size >> 20);
                console.line(&format!("{what}: BitLocker"));
                match open_bitlocker(&mut vol, &where_, profile.prompt.timeout_seconds, console, keys, &mut br) {
                    Ok(mut plain) => {
                        console.line(&format!("  unlocked: {}", br.unlocked_by.as_deref().unwrap_or("")));
                        vr.filesystem = "bitlocker".into();
                        windows_volume =
                            fix_if_windows(profile, &mut plain, &opts, sink, console, &mut vr, &mut result, &what);
                        if let Err(e) = plain.flush() {
                            failures.push(format!("{where_}: flushing writes failed: {e}"));
                        }
                    }
                    Err(why) => {
                        vr.filesystem = "bitlocker (locked)".into();
                        console.line(&format!("  left locked: {why}"));
                        failures.push(format!("BitLocker volume on {where_} not unlocked: {why}"));
                        br.skipped = Some(why);
                    }
                }
                bitlocker.push(br);
            } else if &head[3..11] == b"NTFS    " {
                vr.filesystem = "ntfs".into();
                windows_volume = fix_if_windows(profile, &mut vol, &opts, sink, console, &mut vr, &mut result, &what);
            } else {
                continue;
            }
            if windows_volume {
                windows += 1;
            }
            dr.volumes.push(index);
            result.volumes.push(vr);
            dr_windows |= windows_volume;
        }
        if let (Some(mode), true) = (profile.finish.safe_mode, dr_windows) {
            let r = safe_mode(&disk.label, &name, mode, now, esp, sink, console);
            if let Some(why) = &r.reason {
                failures.push(format!("{}: {why}", r.store));
            }
            result.safe_mode.push(r);
        }
        disk_reports.push(dr);
    }

    // A volume whose writes were refused (hibernated, unclean journal...)
    // fails the run when a file to delete stayed on it; every other file
    // left in place is already among the engine's errors.
    for v in &result.volumes {
        let stayed =
            v.rules.iter().flat_map(|r| &r.files).any(|f| f.header_match && f.action != delete::FileAction::Deleted);
        if let (Some(why), true) = (&v.write_refused, stayed) {
            failures.push(format!("volume {} (partition {}): {why}", v.index, v.partition));
        }
    }
    failures.extend(result.errors.iter().cloned());
    result.ok = failures.is_empty();
    let (outcome, reason) = if !failures.is_empty() {
        (Outcome::Failed, Some(failures.join("; ")))
    } else if windows == 0 {
        (Outcome::Failed, Some(String::from("no Windows volume found on any disk")))
    } else if result.files_deleted + result.registry_changes > 0 || result.safe_mode.iter().any(|m| m.action == "set") {
        (Outcome::Fixed, None)
    } else {
        (Outcome::NothingToDo, None)
    };
    RunReport {
        agent_version: crate::util::version::VERSION.into(),
        started: String::new(),
        machine: None,
        disks: disk_reports,
        outcome,
        reason,
        windows_volumes: windows,
        duration_ms: clock_ms().saturating_sub(t0),
        notes: Vec::new(),
        bitlocker,
        result,
    }
}
