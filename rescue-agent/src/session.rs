//! The agent's run over a whole machine: every disk, every volume, the
//! profile's fixes on each Windows volume, one report, one verdict.
//!
//! The front end supplies the disks (as [`BlockDevice`]s), a [`Console`] and
//! a backup sink; everything that decides lives here and is tested on the
//! host. Per volume the run uses the same code path as `rescue apply`
//! ([`remediate::remediate_volume`]).

use crate::block::{BlockDevice, Slice};
use crate::ntfs::Ntfs;
use crate::partition::{self, PartitionKind};
use crate::profile::Profile;
use crate::prompt::Key;
use crate::remediate::{self, BackupSink, Report, VolumeReport};
use crate::smbios::Machine;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use serde::Serialize;

/// What the agent shows and reads.
pub trait Console {
    /// A status line (screen and serial).
    fn line(&mut self, text: &str);
    /// Waits for a key; `None` when `timeout_s` seconds pass first (`None`: wait forever).
    fn key(&mut self, timeout_s: Option<u32>) -> Option<Key>;
}

/// A disk the firmware sees, with what it says about it.
pub struct Disk<D> {
    /// How the firmware names it (its device path as text).
    pub label: String,
    pub model: String,
    pub serial: String,
    pub dev: D,
}

/// The disks in the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DiskReport {
    pub label: String,
    pub model: String,
    pub serial: String,
    pub size: u64,
    pub partition_table: String,
    /// Indexes into `volumes` of this disk's volumes.
    pub volumes: Vec<usize>,
    pub error: Option<String>,
}

/// The verdict shown in large letters at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Outcome {
    #[serde(rename = "FIXED")]
    Fixed,
    #[serde(rename = "NOTHING TO DO")]
    NothingToDo,
    #[serde(rename = "FAILED")]
    Failed,
}

impl Outcome {
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
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub agent_version: &'static str,
    pub started: String,
    pub machine: Option<Machine>,
    pub disks: Vec<DiskReport>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub windows_volumes: usize,
    pub duration_ms: u64,
    /// Extra facts from the front end (Secure Boot state, boot entry chosen...).
    pub notes: Vec<String>,
    #[serde(flatten)]
    pub result: Report,
}

/// True when the NTFS volume holds `Windows\System32`.
fn is_windows<D: BlockDevice>(vol: &mut D) -> bool {
    Ntfs::open(vol).and_then(|v| v.lookup(vol, "Windows\\System32")).is_ok()
}

/// Runs `profile` over every volume of every disk.
pub fn run<D: BlockDevice>(
    profile: &Profile,
    disks: &mut [Disk<D>],
    console: &mut dyn Console,
    sink: &mut dyn BackupSink,
    clock_ms: &dyn Fn() -> u64,
) -> RunReport {
    let t0 = clock_ms();
    let mut result = Report { profile: profile.name.clone(), engine_version: crate::version::VERSION, ..Default::default() };
    let mut disk_reports = Vec::new();
    let mut windows = 0usize;
    let mut failures: Vec<String> = Vec::new();
    let opts = remediate::Options::default();

    for (n, disk) in disks.iter_mut().enumerate() {
        let mut dr = DiskReport {
            label: disk.label.clone(),
            model: disk.model.clone(),
            serial: disk.serial.clone(),
            size: disk.dev.size(),
            ..Default::default()
        };
        console.line(&format!("disk {}: {} ({} MiB){}", n + 1, disk.label, dr.size >> 20, if dr.model.is_empty() { String::new() } else { format!(", {}", dr.model) }));
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
        for p in parts {
            let mut vol = Slice::new(&mut disk.dev, p.offset, p.size);
            let mut head = [0u8; 512];
            if p.size < 512 || vol.read_at(0, &mut head).is_err() {
                continue;
            }
            let index = result.volumes.len();
            let mut vr = VolumeReport { index, partition: p.number, offset: p.offset, size: p.size, ..Default::default() };
            let what = format!("  partition {} ({} MiB)", p.number, p.size >> 20);
            if &head[3..11] == b"-FVE-FS-" {
                vr.filesystem = "bitlocker (locked)".into();
                vr.notes.push("BitLocker unlocking is not available in this agent yet".into());
                console.line(&format!("{what}: BitLocker, locked: skipped"));
                failures.push(format!("BitLocker volume on disk {} partition {} could not be unlocked", n + 1, p.number));
            } else if &head[3..11] == b"NTFS    " {
                if !is_windows(&mut vol) {
                    vr.filesystem = "ntfs".into();
                    vr.notes.push("no Windows\\System32: not a Windows volume, left alone".into());
                    console.line(&format!("{what}: NTFS, no Windows: left alone"));
                } else {
                    windows += 1;
                    console.line(&format!("{what}: Windows volume"));
                    let mut log = |m: &str| console.line(&format!("    {m}"));
                    remediate::remediate_volume(profile, &mut vol, &opts, sink, &mut log, &mut vr, &mut result);
                    if let Some(why) = &vr.write_refused {
                        let blocked = vr.rules.iter().flat_map(|r| &r.files).any(|f| f.header_match && f.action != "deleted");
                        if blocked {
                            failures.push(format!("disk {} partition {}: {why}", n + 1, p.number));
                        }
                    }
                }
            } else {
                continue;
            }
            dr.volumes.push(index);
            result.volumes.push(vr);
        }
        disk_reports.push(dr);
    }

    // Any matching file left in place is a failure, whatever the cause.
    for v in &result.volumes {
        for f in v.rules.iter().flat_map(|r| &r.files) {
            if f.header_match && f.action != "deleted" && v.write_refused.is_none() {
                failures.push(format!("{}: {}", f.path, f.reason.clone().unwrap_or_else(|| f.action.clone())));
            }
        }
    }
    failures.extend(result.errors.iter().cloned());
    failures.dedup();
    result.ok = failures.is_empty();
    let (outcome, reason) = if !failures.is_empty() {
        (Outcome::Failed, Some(failures.join("; ")))
    } else if windows == 0 {
        (Outcome::Failed, Some(String::from("no Windows volume found on any disk")))
    } else if result.files_deleted > 0 {
        (Outcome::Fixed, None)
    } else {
        (Outcome::NothingToDo, None)
    };
    RunReport {
        agent_version: crate::version::VERSION,
        started: String::new(),
        machine: None,
        disks: disk_reports,
        outcome,
        reason,
        windows_volumes: windows,
        duration_ms: clock_ms().saturating_sub(t0),
        notes: Vec::new(),
        result,
    }
}
