//! The report of a run: its vocabulary is defined once, here and in
//! [`crate::rules::report`] (volumes, files, hives, Safe Mode). The agent
//! writes it to the stick (or a server), `rescue apply --report` to a file,
//! and `rescue collect` reads both. Never holds key material.

use crate::formats::smbios::Machine;
use crate::rules::report::{FileAction, RestoreAction, SafeModeReport, ValueOutcome, VolumeReport};
use crate::rules::Applied;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// The engine's part of the report: every volume and the totals.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    /// Name of the profile run.
    pub profile: String,
    /// Version of the engine that ran it.
    pub engine_version: String,
    /// True for a dry run: nothing was written.
    pub dry_run: bool,
    /// One report per NTFS or BitLocker volume found, disk by disk, in partition-table order.
    pub volumes: Vec<VolumeReport>,
    /// Every failure, one line each; empty when the run succeeded.
    pub errors: Vec<String>,
    /// Files deleted (always 0 on a dry run).
    pub files_deleted: usize,
    /// Matched files left in place: skipped or failed (dry-run "would delete" not counted).
    pub files_skipped: usize,
    /// Registry values set by `[[service]]` and `[[registry]]` rules (0 on a dry run).
    pub registry_changes: usize,
    /// Backups put back by `[[restore]]` rules: files and hives (0 on a dry run).
    pub restored: usize,
    /// What `[finish] safe_mode` did to each BCD store.
    pub safe_mode: Vec<SafeModeReport>,
    /// Where each deleted file's backup went, as the backup sink reported it.
    pub backups_written: Vec<String>,
    /// Bytes the engine read from the disks (the ESP's files, which the front end reads, aside).
    pub bytes_read: u64,
    /// Read calls the engine made to the disks.
    pub read_calls: u64,
    /// Bytes the engine wrote to the disks (the ESP's files aside).
    pub bytes_written: u64,
    /// True when nothing failed.
    pub ok: bool,
}

impl Report {
    /// Adds what the rules did on one volume: its report, errors, backups and counts.
    pub fn add(&mut self, a: Applied) {
        self.files_deleted += a.files_deleted();
        self.files_skipped += a.files_skipped();
        self.registry_changes += a.registry_changes();
        self.restored += a.restored();
        self.errors.extend(a.errors);
        self.backups_written.extend(a.backups);
        self.volumes.push(a.volume);
    }

    /// Changes made: files deleted, registry values set, backups restored, BCD stores set.
    pub fn changes(&self) -> usize {
        let stores = self.safe_mode.iter().filter(|m| m.action.changed()).count();
        self.files_deleted + self.registry_changes + self.restored + stores
    }

    /// Every `[[restore]]` outcome of the run, volume by volume.
    pub fn restores(&self) -> impl Iterator<Item = &crate::rules::report::RestoreReport> {
        self.volumes.iter().flat_map(|v| &v.restores)
    }

    /// Files a dry run would delete.
    pub fn would_delete(&self) -> usize {
        self.volumes.iter().flat_map(|v| v.files()).filter(|f| f.action == FileAction::WouldDelete).count()
    }

    /// Changes a dry run would make: files, registry values, BCD stores.
    pub fn would_change(&self) -> usize {
        let hives = self.volumes.iter().flat_map(|v| &v.hives).filter(|h| h.action.would_change());
        let values = hives.flat_map(|h| &h.changes).filter(|c| c.outcome == ValueOutcome::Set).count();
        let restores = self.restores().filter(|r| r.action == RestoreAction::WouldRestore).count();
        self.would_delete() + values + restores + self.safe_mode.iter().filter(|m| m.action.would_change()).count()
    }
}

/// The disks in the report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskReport {
    /// How the front end names the disk (the agent: its device path as text; the host: the path given).
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
    /// Something was changed (a file deleted, a registry value or Safe Mode set)
    /// and nothing failed; on a dry run: would be.
    #[serde(rename = "FIXED")]
    Fixed,
    /// Windows volumes were found and nothing failed, but nothing needed changing.
    #[serde(rename = "NOTHING TO DO")]
    NothingToDo,
    /// Also what a report that names no outcome is taken for.
    #[default]
    #[serde(rename = "FAILED")]
    Failed,
    /// Nothing failed, and a disk whose BitLocker volumes stayed locked was
    /// set to start Windows in Safe Mode (`[bitlocker] when_locked`): the
    /// PC needs the steps the report's reason gives.
    #[serde(rename = "SAFE MODE SET")]
    SafeModeSet,
}

impl Outcome {
    /// The verdict as shown on screen and written in the report (`"FIXED"`,
    /// `"NOTHING TO DO"`, `"FAILED"`, `"SAFE MODE SET"`).
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Fixed => "FIXED",
            Outcome::NothingToDo => "NOTHING TO DO",
            Outcome::Failed => "FAILED",
            Outcome::SafeModeSet => "SAFE MODE SET",
        }
    }
}

/// The report of a run, the same from the agent and from `rescue apply`:
/// the engine's totals and volumes ([`Report`]) plus the machine, its
/// disks, the BitLocker volumes, the verdict and timings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunReport {
    /// Version of the agent (or of `rescue`) that ran.
    pub agent_version: String,
    /// Which front end ran: `agent` (with its architecture) or `rescue apply`.
    pub front_end: String,
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
