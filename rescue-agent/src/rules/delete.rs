//! The remediation run shared by `rescue apply` and the UEFI agent: apply a
//! profile's `[[delete]]` rules to every NTFS volume of a device, hand each
//! file to a [`BackupSink`] before deleting it, and produce a [`Report`].
//!
//! One code path for dry and real runs: every deletion is planned
//! ([`crate::formats::ntfs::delete::plan_delete`]); a dry run records the plan, a real
//! run executes the same plan. A file whose backup fails is not deleted.

use crate::block::{BlockDevice, IoError, Slice};
use crate::formats::ntfs::delete::plan_delete;
use crate::formats::ntfs::gate::{clear_for_writing, Clearance};
use crate::formats::ntfs::plan::{self, Plan, PlanWrite};
use crate::formats::ntfs::{self, FileRef, Ntfs, NtfsError};
use crate::formats::partition;
use crate::rules::profile::{DeleteRule, Profile};
use crate::util::hex::hex;
use crate::util::time::filetime_rfc3339;
use crate::util::win32_name;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A device wrapper counting what the engine reads and writes.
pub struct Counting<D> {
    /// The device counted.
    pub inner: D,
    /// Bytes read so far.
    pub bytes_read: u64,
    /// Read calls so far.
    pub reads: u64,
    /// Bytes written so far.
    pub bytes_written: u64,
}

impl<D: BlockDevice> Counting<D> {
    /// Wraps `inner` with every counter at zero.
    pub fn new(inner: D) -> Self {
        Counting { inner, bytes_read: 0, reads: 0, bytes_written: 0 }
    }
}

impl<D: BlockDevice> BlockDevice for Counting<D> {
    fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.bytes_read += buf.len() as u64;
        self.reads += 1;
        self.inner.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        self.bytes_written += buf.len() as u64;
        self.inner.write_at(offset, buf)
    }
    fn flush(&mut self) -> Result<(), IoError> {
        self.inner.flush()
    }
}

/// A file handed to the backup sink before it is deleted.
#[derive(Debug)]
pub struct BackupItem<'a> {
    /// Name of the profile whose rule matched the file.
    pub profile: &'a str,
    /// Index of the volume in the report.
    pub volume: usize,
    /// NTFS volume serial number (from the boot sector).
    pub volume_serial: u64,
    /// Path from the volume root, `\`-separated.
    pub path: &'a str,
    /// The file's report so far: names, size, times, SHA-256.
    pub file: &'a FileReport,
    /// The whole unnamed `$DATA` stream of the file.
    pub content: &'a [u8],
    /// True for a file about to be edited in place (a hive, the BCD): the
    /// sink must really keep the copy, or fail (no copy, no edit). A file
    /// about to be deleted may go on without one when the stick is full.
    pub required: bool,
}

/// Where backups go (the stick on the agent, a folder on the host).
pub trait BackupSink {
    /// Stores a file durably; returns where it went. An error stops the deletion of that file.
    fn backup(&mut self, item: &BackupItem<'_>) -> Result<String, String>;
}

/// A sink that refuses every backup (for runs whose rules say `backup = false`).
pub struct NoBackup;
impl BackupSink for NoBackup {
    fn backup(&mut self, _: &BackupItem<'_>) -> Result<String, String> {
        Err(String::from("no backup destination"))
    }
}

/// Options of a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Plan and report, write nothing.
    pub dry_run: bool,
    /// The time now, as a FILETIME: hives record it when they are edited.
    pub now: u64,
}

/// What was done to one matched file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileAction {
    /// Deleted (after its backup, when the rule asks for one).
    #[serde(rename = "deleted")]
    Deleted,
    /// A dry run would delete it.
    #[serde(rename = "would delete")]
    WouldDelete,
    /// Left alone on purpose (header differs, refused by a safety check, ...).
    #[default]
    #[serde(rename = "skipped")]
    Skipped,
    /// Left alone because something went wrong.
    #[serde(rename = "failed")]
    Failed,
}

impl FileAction {
    /// The word the report and the log use.
    pub fn as_str(self) -> &'static str {
        match self {
            FileAction::Deleted => "deleted",
            FileAction::WouldDelete => "would delete",
            FileAction::Skipped => "skipped",
            FileAction::Failed => "failed",
        }
    }
}

impl core::fmt::Display for FileAction {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of a run (serialised as JSON by the host, as text by the agent).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    /// Name of the profile run.
    pub profile: String,
    /// Version of the engine that ran it.
    pub engine_version: String,
    /// True for a dry run: nothing was written.
    pub dry_run: bool,
    /// One report per volume found, in partition-table order.
    pub volumes: Vec<VolumeReport>,
    /// Every failure, one line each; empty when the run succeeded.
    pub errors: Vec<String>,
    /// Files deleted (always 0 on a dry run).
    pub files_deleted: usize,
    /// Matched files left in place: skipped or failed (dry-run "would delete" not counted).
    pub files_skipped: usize,
    /// Registry values set by `[[service]]` and `[[registry]]` rules (0 on a dry run).
    pub registry_changes: usize,
    /// What `[finish] safe_mode` did to each BCD store.
    pub safe_mode: Vec<crate::formats::registry::bcd::SafeModeReport>,
    /// Where each backup went, as the backup sink reported it.
    pub backups_written: Vec<String>,
    /// Bytes the engine read from the device (all volumes).
    pub bytes_read: u64,
    /// Read calls the engine made to the device (all volumes).
    pub read_calls: u64,
    /// Bytes the engine wrote to the device (all volumes).
    pub bytes_written: u64,
    /// True when nothing failed.
    pub ok: bool,
}

/// What was found and done on one volume.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeReport {
    /// Position of this volume in [`Report::volumes`].
    pub index: usize,
    /// Partition number, 1-based (0 when the device holds a single volume).
    pub partition: u32,
    /// Byte offset and size of the volume on the device.
    pub offset: u64,
    /// Length of the volume in bytes.
    pub size: u64,
    /// "ntfs", "bitlocker (locked)", "not ntfs"
    pub filesystem: String,
    /// True when the volume holds `Windows\System32`.
    pub windows: bool,
    /// NTFS volume serial number, 16 uppercase hex digits (NTFS volumes only).
    pub serial: Option<String>,
    /// `$LogFile` state, `"empty"`, `"clean"` or `"unclean"` (when writes are cleared).
    pub journal: Option<String>,
    /// Why this volume may not be written (hibernated, unclean journal, ...).
    pub write_refused: Option<String>,
    /// One report per `[[delete]]` rule, in profile order (NTFS volumes only).
    pub rules: Vec<RuleReport>,
    /// Notes of the journal reset, when one was planned or done.
    pub notes: Vec<String>,
    /// One report per hive the profile's registry rules edited (Windows volumes only).
    pub hives: Vec<crate::rules::registry::HiveReport>,
    /// Why the NTFS volume could not be opened.
    pub error: Option<String>,
}

/// What one `[[delete]]` rule found and did on a volume.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RuleReport {
    /// The rule's path as written in the profile.
    pub path: String,
    /// The rule's required header, as lowercase hex (empty: any file).
    pub header: String,
    /// Whether the rule backs files up before deleting them.
    pub backup: bool,
    /// True when the rule's directory exists on the volume.
    pub directory_found: bool,
    /// One report per matching file (several names of one file count once).
    pub files: Vec<FileReport>,
    /// The rule's first error (lookup, listing, or a file that failed); `None` when all went well.
    pub error: Option<String>,
}

/// What was found and done for one matching file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FileReport {
    /// Path from the volume root, `\`-separated, by the first matching name.
    pub path: String,
    /// MFT record number of the file.
    pub record: u64,
    /// Every name of the file (all directories, all name spaces).
    pub names: Vec<String>,
    /// Size of the unnamed `$DATA` stream in bytes.
    pub size: u64,
    /// Creation time from `$STANDARD_INFORMATION`, RFC 3339 UTC.
    pub created: String,
    /// Last data change from `$STANDARD_INFORMATION`, RFC 3339 UTC.
    pub modified: String,
    /// Last MFT record change from `$STANDARD_INFORMATION`, RFC 3339 UTC.
    pub mft_modified: String,
    /// Last access from `$STANDARD_INFORMATION`, RFC 3339 UTC.
    pub accessed: String,
    /// SHA-256 of the content, lowercase hex (`None` when the content was not read).
    pub sha256: Option<String>,
    /// True when the file starts with the rule's header bytes.
    pub header_match: bool,
    /// What was done to the file.
    pub action: FileAction,
    /// Why the file was skipped or failed.
    pub reason: Option<String>,
    /// Where its backup went, as the backup sink reported it.
    pub backup: Option<String>,
    /// The plan (dry run) or the writes done (real run). Not read back.
    #[serde(skip_deserializing)]
    pub writes: Vec<PlanWrite>,
    /// Notes of the delete plan (e.g. hard links kept).
    pub notes: Vec<String>,
}

/// Runs `profile` over every volume of `dev` (whole disk, partition, or
/// volume). Never panics on disk data; every failure lands in the report.
pub fn remediate<D: BlockDevice>(
    profile: &Profile,
    dev: &mut D,
    opts: &Options,
    sink: &mut dyn BackupSink,
    log: &mut dyn FnMut(&str),
) -> Report {
    let mut report = Report {
        profile: profile.name.clone(),
        engine_version: crate::util::version::VERSION.into(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let mut cdev = Counting::new(dev);
    let parts = match partition::discover(&mut cdev) {
        Ok(p) => p,
        Err(e) => {
            report.errors.push(format!("partition table: {e}"));
            Vec::new()
        }
    };
    for p in parts {
        let index = report.volumes.len();
        let mut vr = VolumeReport { index, partition: p.number, offset: p.offset, size: p.size, ..Default::default() };
        let mut vol = Slice::new(&mut cdev, p.offset, p.size);
        remediate_volume(profile, &mut vol, opts, sink, log, &mut vr, &mut report);
        report.volumes.push(vr);
    }
    report.bytes_read = cdev.bytes_read;
    report.read_calls = cdev.reads;
    report.bytes_written = cdev.bytes_written;
    report.ok = report.errors.is_empty();
    report
}

/// Runs the profile on one volume (e.g. an unlocked BitLocker volume), filling `vr` and `report`.
pub fn remediate_volume<D: BlockDevice>(
    profile: &Profile,
    vol: &mut D,
    opts: &Options,
    sink: &mut dyn BackupSink,
    log: &mut dyn FnMut(&str),
    vr: &mut VolumeReport,
    report: &mut Report,
) {
    let mut head = [0u8; 512];
    if vol.size() < 512 || vol.read_at(0, &mut head).is_err() {
        vr.filesystem = String::from("unreadable");
        return;
    }
    if &head[3..11] == b"-FVE-FS-" {
        vr.filesystem = String::from("bitlocker (locked)");
        log(&format!("volume {}: BitLocker, locked: skipped", vr.index));
        return;
    }
    if &head[3..11] != b"NTFS    " {
        vr.filesystem = String::from("not ntfs");
        return;
    }
    vr.filesystem = String::from("ntfs");
    let v = match Ntfs::open(vol) {
        Ok(v) => v,
        Err(e) => {
            let m = format!("volume {}: cannot open NTFS: {e}", vr.index);
            log(&m);
            vr.error = Some(e.to_string());
            report.errors.push(m);
            return;
        }
    };
    vr.serial = Some(format!("{:016X}", v.boot.serial));
    vr.windows = v.lookup(vol, "Windows\\System32").is_ok();
    let mut gate: Result<Clearance, NtfsError> = clear_for_writing(&v, vol, profile.ntfs.unclean_journal);
    match &gate {
        Ok(c) => vr.journal = Some(format!("{:?}", c.journal()).to_lowercase()),
        Err(e) => {
            vr.write_refused = Some(e.to_string());
            log(&format!("volume {}: writes refused: {e}", vr.index));
        }
    }
    for rule in &profile.delete {
        let mut rr = RuleReport {
            path: rule.path.clone(),
            header: hex(&rule.header),
            backup: rule.backup,
            ..Default::default()
        };
        run_rule(profile, &v, vol, rule, opts, sink, log, &mut gate, &mut rr, vr, report);
        if let Some(e) = &rr.error {
            report.errors.push(format!("volume {}: rule {}: {e}", vr.index, rule.path));
        }
        vr.rules.push(rr);
    }
    crate::rules::registry::run(profile, &v, vol, opts, sink, log, &mut gate, vr, report);
}

#[allow(clippy::too_many_arguments)]
fn run_rule<D: BlockDevice>(
    profile: &Profile,
    v: &Ntfs,
    vol: &mut D,
    rule: &DeleteRule,
    opts: &Options,
    sink: &mut dyn BackupSink,
    log: &mut dyn FnMut(&str),
    gate: &mut Result<Clearance, NtfsError>,
    rr: &mut RuleReport,
    vr: &mut VolumeReport,
    report: &mut Report,
) {
    let dir_ref = match v.lookup_path(vol, &rule.dir) {
        Ok(r) => r,
        Err(NtfsError::NotFound { .. }) | Err(NtfsError::NotADirectory { .. }) => return,
        Err(e) => {
            rr.error = Some(e.to_string());
            return;
        }
    };
    let dir = match v.open_dir(vol, dir_ref) {
        Ok(d) => d,
        Err(NtfsError::NotADirectory { .. }) => return,
        Err(e) => {
            rr.error = Some(e.to_string());
            return;
        }
    };
    rr.directory_found = true;
    let entries = match v.glob(vol, &dir, &rule.pattern) {
        Ok(e) => e,
        Err(e) => {
            rr.error = Some(e.to_string());
            return;
        }
    };
    // One file per record, with every matching name.
    let mut files: BTreeMap<u64, (FileRef, Vec<Vec<u16>>, String)> = BTreeMap::new();
    for e in entries {
        let f = files.entry(e.file_ref.record()).or_insert((e.file_ref, Vec::new(), e.name.clone()));
        f.1.push(e.name_utf16);
    }
    let dir_path: String = rule.dir.join("\\");
    for (rec, (file_ref, names, first)) in files {
        let path = if dir_path.is_empty() { first.clone() } else { format!("{dir_path}\\{first}") };
        let mut fr = FileReport { path: path.clone(), record: rec, ..Default::default() };
        let res = one_file(profile, v, vol, rule, opts, sink, gate, dir_ref, file_ref, &names, &mut fr, vr, report);
        match res {
            Ok(()) => {}
            Err(e) => {
                fr.action = FileAction::Failed;
                fr.reason = Some(e.clone());
                rr.error.get_or_insert_with(String::new);
                report.errors.push(format!("volume {}: {path}: {e}", vr.index));
            }
        }
        if rr.error.as_deref() == Some("") {
            rr.error = None;
        }
        if fr.action == FileAction::Deleted {
            report.files_deleted += 1;
        } else if fr.action != FileAction::WouldDelete {
            report.files_skipped += 1;
        }
        log(&format!(
            "volume {}: {}: {}{}",
            vr.index,
            fr.path,
            fr.action,
            fr.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
        ));
        rr.files.push(fr);
    }
}

/// Why a reparse point is not deleted: only kinds whose contents are on
/// this volume (so the backup is the file) or that hold no contents are:
/// WOF-compressed files, symbolic links, junctions, app execution aliases
/// and cloud-file placeholders (OneDrive: the placeholder goes, the cloud
/// copy stays). Deduplicated, HSM and unknown kinds keep their data
/// elsewhere; a backup would be a stub.
fn reparse_refusal(info: &ntfs::FileInfo) -> Option<String> {
    if !info.reparse {
        return None;
    }
    match info.reparse_tag {
        Some(0x8000_0017 | 0xA000_000C | 0xA000_0003 | 0x8000_001B) => None,
        Some(t) if t & 0xFFFF_0FFF == 0x9000_001A => None,
        Some(t) => Some(format!("reparse point of kind {t:#010x}, whose data is kept elsewhere")),
        None => Some(String::from("reparse point whose kind could not be read")),
    }
}

#[allow(clippy::too_many_arguments)]
fn one_file<D: BlockDevice>(
    profile: &Profile,
    v: &Ntfs,
    vol: &mut D,
    rule: &DeleteRule,
    opts: &Options,
    sink: &mut dyn BackupSink,
    gate: &mut Result<Clearance, NtfsError>,
    dir_ref: FileRef,
    file_ref: FileRef,
    names: &[Vec<u16>],
    fr: &mut FileReport,
    vr: &mut VolumeReport,
    report: &mut Report,
) -> Result<(), String> {
    let e = |e: NtfsError| e.to_string();
    let f = v.load_file(vol, file_ref.record()).map_err(e)?;
    let info = v.info_of(&f).map_err(e)?;
    fr.names = info.names.iter().map(|n| n.2.clone()).collect();
    fr.size = info.size;
    fr.created = filetime_rfc3339(info.created);
    fr.modified = filetime_rfc3339(info.modified);
    fr.mft_modified = filetime_rfc3339(info.mft_modified);
    fr.accessed = filetime_rfc3339(info.accessed);
    if info.is_dir {
        fr.reason = Some(String::from("is a directory"));
        return Ok(());
    }
    if let Some(why) = reparse_refusal(&info) {
        fr.reason = Some(format!("{why}: not handled, left in place"));
        report.errors.push(format!("volume {}: {}: matched but not deleted ({why})", vr.index, fr.path));
        return Ok(());
    }
    if info.encrypted {
        let w = "encrypted (EFS)";
        // The rule matched but the fix did not happen: the run must say so (non-zero exit).
        fr.reason = Some(format!("{w}: not handled, left in place"));
        report.errors.push(format!("volume {}: {}: matched but not deleted ({w})", vr.index, fr.path));
        return Ok(());
    }
    // A name from the disk that cannot be one Win32 path component (a `\`,
    // `..`, a control character) would become a path on a stick or host:
    // such a file is suspicious and left alone.
    for name in names.iter().map(|n| String::from_utf16_lossy(n)) {
        if let Some(why) = win32_name::component_problem(&name) {
            fr.reason = Some(format!("suspicious name {name:?}: {why}"));
            return Err(format!("suspicious name {name:?} ({why}): not deleted"));
        }
    }
    let head = v.read_head(vol, &f, rule.header.len()).map_err(e)?;
    fr.header_match = head == rule.header;
    let content = v.read_content(vol, &f, ntfs::MAX_READ_WHOLE).map_err(e)?;
    let digest = Sha256::digest(&content);
    fr.sha256 = Some(hex(&digest));
    if !fr.header_match {
        fr.reason = Some(format!("header mismatch: file starts with {}", hex(&head)));
        return Ok(());
    }
    let clear = match gate {
        Ok(c) => c,
        Err(g) => {
            fr.reason = Some(format!("volume not writable: {g}"));
            return Err(format!("not deleted: {g}"));
        }
    };
    let mut p = plan_delete(v, vol, clear, dir_ref, file_ref, names).map_err(e)?;
    fr.notes = p.notes.clone();
    let reset: Option<Plan> = clear.take_reset();
    if let Some(r) = &reset {
        vr.notes.extend(r.notes.iter().cloned());
        let mut all = r.clone();
        all.extend(p);
        p = all;
    }
    if opts.dry_run {
        fr.action = FileAction::WouldDelete;
        fr.writes = p.writes;
        return Ok(());
    }
    if rule.backup {
        let item = BackupItem {
            profile: &profile.name,
            volume: vr.index,
            volume_serial: v.boot.serial,
            path: &fr.path,
            file: fr,
            content: &content,
            required: false,
        };
        match sink.backup(&item) {
            Ok(at) => {
                fr.backup = Some(at.clone());
                report.backups_written.push(at);
            }
            Err(m) => {
                if let (Some(r), Ok(c)) = (reset, gate.as_mut()) {
                    // Keep the journal reset for a later file of this volume.
                    c.put_back_reset(r);
                }
                fr.reason = Some(format!("backup failed: {m}; not deleted"));
                return Err(format!("backup failed: {m}"));
            }
        }
    }
    if let Err(err) = plan::execute(vol, &p, None) {
        // A write failed part-way (a journal reset included): nothing more is
        // written to this volume in this run.
        *gate = Err(err.clone());
        return Err(e(err));
    }
    fr.writes = p.writes;
    fr.action = FileAction::Deleted;
    Ok(())
}
