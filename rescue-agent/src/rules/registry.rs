//! A profile's `[[service]]` and `[[registry]]` rules on one Windows volume:
//! read the hive file through NTFS, recover it from its transaction logs if
//! a crash left it dirty, edit it in memory, back the original up, and
//! write the changed pages back in place through the NTFS overwrite
//! planner (same size, same clusters, behind the same gate, shown the same
//! way by a dry run).
//!
//! Guarantees: a hive is written only when every rule on it could be
//! applied or was reported as not found; a dirty hive whose logs are
//! missing or unusable, a corrupt hive, or a change that would grow the file
//! is reported and nothing is written to it.

use crate::block::BlockDevice;
use crate::formats::ntfs::gate::Clearance;
use crate::formats::ntfs::overwrite::plan_overwrite;
use crate::formats::ntfs::plan::{self, Plan, PlanWrite};
use crate::formats::ntfs::{self, Ntfs, NtfsError};
use crate::formats::registry::cell::Hive;
use crate::formats::registry::edit::{self, Data, Editor};
use crate::formats::registry::journal::{self, Target};
use crate::formats::registry::key::kind;
use crate::formats::registry::RegError;
use crate::rules::delete::{BackupItem, BackupSink, FileReport, Options, Report, VolumeReport};
use crate::rules::profile::{HiveName, Profile, RegistryRule};
use crate::run::ports::{BootFile, BootFileWriter};
use crate::util::hex::hex;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The folder of the hives.
const CONFIG: [&str; 3] = ["Windows", "System32", "config"];

/// What happened to one hive file of a volume.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HiveReport {
    /// `SYSTEM` or `SOFTWARE`.
    pub hive: String,
    /// Its path on the volume.
    pub path: String,
    /// SHA-256 of the file before, lowercase hex.
    pub sha256: Option<String>,
    /// Log entries applied to recover a dirty hive (0: it was clean).
    pub recovered_entries: usize,
    /// `written`, `would write`, `unchanged` or `failed`.
    pub action: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// Where the original went, as the backup sink said.
    pub backup: Option<String>,
    /// How the change went through a transaction log (see
    /// `registry::journal`), e.g. `log entry 2131 in SYSTEM.LOG2, written first`.
    pub journal: Option<String>,
    /// Where the originals of the logs written went.
    pub log_backups: Vec<String>,
    /// One entry per value a rule set (or would set).
    pub changes: Vec<ValueChange>,
    /// The NTFS writes (planned on a dry run, done on a real one). Not read back.
    #[serde(skip_deserializing)]
    pub writes: Vec<PlanWrite>,
}

/// One value a rule touched.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ValueChange {
    /// The key, as found (control sets resolved).
    pub key: String,
    /// The value's name.
    pub value: String,
    /// The data before, for people (None: the value did not exist).
    pub before: Option<String>,
    /// The data after, for people.
    pub after: String,
    /// `set`, `unchanged`, or `not found` (a `[[service]]` this control set lacks, or a missing key).
    pub outcome: String,
}

/// Data for people: DWORD/QWORD in decimal and hex, strings as text, the rest in hex.
pub fn show(kind_: u32, bytes: &[u8]) -> String {
    match (kind_, bytes.len()) {
        (kind::DWORD, 4) => {
            let v = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            format!("{v} (0x{v:08x})")
        }
        (kind::QWORD, 8) => {
            let v = u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]));
            format!("{v} (0x{v:016x})")
        }
        (kind::SZ | kind::EXPAND_SZ, _) => {
            let u: Vec<u16> =
                bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&x| x != 0).collect();
            format!("{:?}", String::from_utf16_lossy(&u))
        }
        _ => hex(bytes),
    }
}

/// Applies the profile's registry rules to the volume. Does nothing when
/// the profile has none or the volume has no `Windows\System32\config`.
#[allow(clippy::too_many_arguments)]
pub fn run<D: BlockDevice>(
    profile: &Profile,
    v: &Ntfs,
    vol: &mut D,
    opts: &Options,
    sink: &mut dyn BackupSink,
    log: &mut dyn FnMut(&str),
    gate: &mut Result<Clearance, NtfsError>,
    vr: &mut VolumeReport,
    report: &mut Report,
) {
    if profile.services.is_empty() && profile.registry.is_empty() {
        return;
    }
    let config = match v.lookup_path(vol, &CONFIG) {
        Ok(c) => c,
        // Not a Windows volume (or one without hives): nothing to do here.
        Err(NtfsError::NotFound { .. } | NtfsError::NotADirectory { .. }) => return,
        Err(e) => {
            report.errors.push(format!("volume {}: {}: {e}", vr.index, CONFIG.join("\\")));
            return;
        }
    };
    for hive in [HiveName::System, HiveName::Software] {
        let rules: Vec<&RegistryRule> = profile.registry.iter().filter(|r| r.hive == hive).collect();
        if rules.is_empty() && (hive != HiveName::System || profile.services.is_empty()) {
            continue;
        }
        let path = format!("{}\\{}", CONFIG.join("\\"), hive.file());
        let mut hr = HiveReport { hive: hive.file().into(), path: path.clone(), ..Default::default() };
        match one_hive(profile, v, vol, config, hive, &rules, opts, sink, gate, vr.index, &mut hr) {
            Ok(()) if hr.action == "written" => {
                report.registry_changes += hr.changes.iter().filter(|c| c.outcome == "set").count();
            }
            Ok(()) => {}
            Err(e) => {
                hr.action = String::from("failed");
                report.errors.push(format!("volume {}: {path}: {e}", vr.index));
                hr.reason = Some(e);
            }
        }
        for c in &hr.changes {
            log(&format!("volume {}: {}\\{}\\{}: {} ({})", vr.index, hr.hive, c.key, c.value, c.outcome, c.after));
        }
        match &hr.journal {
            Some(j) if hr.action == "written" => log(&format!("volume {}: {path}: written ({j})", vr.index)),
            _ => log(&format!("volume {}: {path}: {}", vr.index, hr.action)),
        }
        vr.hives.push(hr);
    }
}

#[allow(clippy::too_many_arguments)]
fn one_hive<D: BlockDevice>(
    profile: &Profile,
    v: &Ntfs,
    vol: &mut D,
    config: ntfs::FileRef,
    hive: HiveName,
    rules: &[&RegistryRule],
    opts: &Options,
    sink: &mut dyn BackupSink,
    gate: &mut Result<Clearance, NtfsError>,
    volume: usize,
    hr: &mut HiveReport,
) -> Result<(), String> {
    let e = |e: NtfsError| e.to_string();
    let r = |e: RegError| e.to_string();
    let dir = v.open_dir(vol, config).map_err(e)?;
    let file_ref = v.lookup_in(vol, &dir, hive.file()).map_err(e)?.ok_or("the hive file does not exist")?;
    let f = v.load_file(vol, file_ref.record()).map_err(e)?;
    let original = v.read_content(vol, &f, ntfs::MAX_READ_WHOLE).map_err(e)?;
    hr.sha256 = Some(hex(&Sha256::digest(&original)));
    // Its transaction logs: to recover a dirty hive, and to write the change
    // into one before the hive itself (a missing log reads as empty).
    let mut logs: Vec<(String, Option<ntfs::FileRef>, Vec<u8>)> = Vec::new();
    for ext in ["LOG1", "LOG2"] {
        let name = format!("{}.{ext}", hive.file());
        let found = v.lookup_in(vol, &dir, &name).map_err(e)?;
        let content = match found {
            Some(l) => {
                let lf = v.load_file(vol, l.record()).map_err(e)?;
                v.read_content(vol, &lf, ntfs::MAX_READ_WHOLE).map_err(e)?
            }
            None => Vec::new(),
        };
        logs.push((name, found, content));
    }
    let refs: Vec<&[u8]> = logs.iter().map(|l| l.2.as_slice()).collect();
    let recovered = journal::recover_in_place(&original, &refs).map_err(r)?;
    hr.recovered_entries = recovered.applied;
    let mut ed = Editor::new(Hive::open(recovered.bytes.clone()).map_err(r)?).map_err(r)?;
    for s in &profile.services {
        for set in control_sets(ed.hive()).map_err(r)? {
            let key = format!("{set}\\Services\\{}", s.name);
            let data = Data::Dword(s.start.value());
            set_one(&mut ed, &key, "Start", &data, opts.now, true, hr).map_err(r)?;
        }
    }
    for rule in rules {
        let key = resolve(ed.hive(), hive, &rule.key).map_err(r)?;
        set_one(&mut ed, &key, &rule.value, &rule.data, opts.now, false, hr).map_err(r)?;
    }
    let edited = ed.finish(opts.now);
    // Nothing to change: a dirty hive is left for Windows to recover itself.
    if edited == recovered.bytes {
        hr.action = String::from("unchanged");
        return Ok(());
    }
    let journal = journal::plan(&original, &recovered, &edited, &refs).map_err(r)?;
    hr.journal = Some(journal.describe([&logs[0].0, &logs[1].0]));
    let clear = gate.as_mut().map_err(|g| format!("volume not writable: {g}"))?;
    // One overwrite plan per run of writes to the same file, in order: the
    // log's writes all come before the hive's.
    let mut plan = Plan::default();
    for run in journal.writes.chunk_by(|a, b| a.0 == b.0) {
        let target = match run[0].0 {
            Target::Primary => file_ref,
            Target::Log(i) => logs[i].1.ok_or("the log to write does not exist")?,
        };
        let parts: Vec<(u64, &[u8])> = run.iter().map(|(_, (o, b))| (*o, b.as_slice())).collect();
        plan.extend(plan_overwrite(v, vol, clear, target, &parts).map_err(e)?);
    }
    // An unclean journal with the `reset` policy: the reset goes first, as for a delete.
    let reset = clear.take_reset();
    if let Some(r) = &reset {
        let mut all = r.clone();
        all.extend(plan);
        plan = all;
    }
    if opts.dry_run {
        hr.action = String::from("would write");
        hr.writes = plan.writes;
        return Ok(());
    }
    // The whole original hive, and each log the journal writes, go to the backup first.
    let mut files = alloc::vec![(hr.path.clone(), original.as_slice())];
    files.extend(logs.iter().map(|(name, _, content)| (format!("{}\\{name}", CONFIG.join("\\")), content.as_slice())));
    let backed_up = back_up(sink, &journal, (&profile.name, volume, v.boot.serial), &files).map(|mut at| {
        hr.backup = Some(at.remove(0));
        hr.log_backups = at;
    });
    if let Err(m) = backed_up {
        if let (Some(r), Ok(c)) = (reset, gate.as_mut()) {
            c.put_back_reset(r);
        }
        return Err(format!("backup failed: {m}; the hive was not changed"));
    }
    if let Err(err) = plan::execute(vol, &plan, None) {
        *gate = Err(err.clone());
        return Err(e(err));
    }
    hr.writes = plan.writes;
    hr.action = String::from("written");
    Ok(())
}

/// Backs up a hive file and each log `journal` writes, every copy
/// required (no copy, no edit): `files[0]` is the hive and `files[1 + i]`
/// log `i`, as (path, content); `whose` is (profile, volume index, volume
/// serial). Returns where each copy went, the hive's first.
fn back_up(
    sink: &mut dyn BackupSink,
    journal: &journal::Journal,
    whose: (&str, usize, u64),
    files: &[(String, &[u8])],
) -> Result<Vec<String>, String> {
    let written = |i: usize| i == 0 || journal.writes.iter().any(|w| w.0 == Target::Log(i - 1));
    let mut at = Vec::new();
    for (path, content) in files.iter().enumerate().filter(|(i, _)| written(*i)).map(|(_, f)| f) {
        let fr = FileReport {
            path: path.clone(),
            size: content.len() as u64,
            sha256: Some(hex(&Sha256::digest(content))),
            ..Default::default()
        };
        let (profile, volume, volume_serial) = whose;
        let item = BackupItem { profile, volume, volume_serial, path, file: &fr, content, required: true };
        at.push(sink.backup(&item).map_err(|m| format!("{path}: {m}"))?);
    }
    Ok(at)
}

/// Sets one value, recording the change. With `optional`, a missing key is
/// recorded as `not found` (a service this control set lacks) instead of an error.
fn set_one(
    ed: &mut Editor,
    key: &str,
    value: &str,
    data: &Data,
    now: u64,
    optional: bool,
    hr: &mut HiveReport,
) -> Result<(), RegError> {
    let after = show(data.kind(), &data.bytes());
    let k = match ed.hive().open_path(key) {
        Ok(k) => k,
        Err(RegError::NotFound { .. }) if optional => {
            hr.changes.push(ValueChange {
                key: key.into(),
                value: value.into(),
                before: None,
                after,
                outcome: "not found".into(),
            });
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let name: Vec<u16> = value.encode_utf16().collect();
    let before = match ed.hive().value(&k, &name)? {
        Some(v) => Some(ed.hive().data(&v)?),
        None => None,
    };
    let outcome = if before.as_deref() == Some(&data.bytes()[..]) {
        "unchanged"
    } else {
        ed.set_value(&k, value, data, now)?;
        "set"
    };
    let before = before.map(|b| show(data.kind(), &b));
    hr.changes.push(ValueChange { key: key.into(), value: value.into(), before, after, outcome: outcome.into() });
    Ok(())
}

/// Names of every `ControlSetNNN` key of a SYSTEM hive, in order.
pub fn control_sets(h: &Hive) -> Result<Vec<String>, RegError> {
    let mut out: Vec<String> = h
        .subkeys(&h.root()?)?
        .into_iter()
        .map(|k| k.name_string())
        .filter(|n| {
            let b = n.as_bytes();
            b.len() == 13 && b[..10].eq_ignore_ascii_case(b"ControlSet") && b[10..].iter().all(u8::is_ascii_digit)
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Resolves a rule's key: in SYSTEM, `CurrentControlSet` becomes the set `Select\Current` names.
pub fn resolve(h: &Hive, hive: HiveName, key: &str) -> Result<String, RegError> {
    let mut parts = key.splitn(2, '\\');
    let first = parts.next().unwrap_or("");
    if hive != HiveName::System || !first.eq_ignore_ascii_case("CurrentControlSet") {
        return Ok(key.to_string());
    }
    let select = h.open_path("Select")?;
    let cur: Vec<u16> = "Current".encode_utf16().collect();
    let v = h.value(&select, &cur)?.ok_or(RegError::NotFound { path: String::from("Select\\Current") })?;
    let d = h.data(&v)?;
    let n = d.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).filter(|&n| (1..=999).contains(&n));
    let n = n.ok_or(RegError::Unsupported { detail: "Select\\Current does not name a control set" })?;
    Ok(match parts.next() {
        Some(rest) => format!("ControlSet{n:03}\\{rest}"),
        None => format!("ControlSet{n:03}"),
    })
}

/// `[finish] safe_mode` on one BCD store whose bytes are `old`, with its
/// logs (`BCD.LOG1`, `BCD.LOG2`; empty when missing): recovers it if dirty,
/// edits it (a dry run stops there), backs the original and each log to be
/// written up (kept copies are required), then hands the writes of the
/// journal, file by file in order, to `write` (the agent: the firmware's
/// file system; the host: fatfs). Fills `r`; an error says why nothing was
/// written.
#[allow(clippy::too_many_arguments)]
pub fn safe_mode_store(
    old: &[u8],
    logs: [&[u8]; 2],
    mode: crate::formats::registry::bcd::SafeMode,
    now: u64,
    dry_run: bool,
    volume: usize,
    sink: &mut dyn BackupSink,
    write: &mut BootFileWriter,
    r: &mut crate::formats::registry::bcd::SafeModeReport,
) -> Result<(), String> {
    use crate::formats::registry::bcd;
    let store = |e: RegError| format!("the BCD store: {e}");
    let recovered = journal::recover_in_place(old, &logs).map_err(store)?;
    let (new, change) = bcd::edit_store(&recovered.bytes, mode, now).map_err(store)?;
    r.loader = change.loader;
    r.before = bcd::describe(change.before);
    r.after = bcd::describe(change.after);
    if new == recovered.bytes {
        r.action = String::from("unchanged");
        return Ok(());
    }
    let journal = journal::plan(old, &recovered, &new, &logs).map_err(store)?;
    r.journal = Some(journal.describe(BootFile::LOGS.map(BootFile::name)));
    if dry_run {
        r.action = String::from("would set");
        return Ok(());
    }
    let dir = "ESP\\EFI\\Microsoft\\Boot\\";
    let files: Vec<(String, &[u8])> = core::iter::once(BootFile::Bcd)
        .chain(BootFile::LOGS)
        .zip(core::iter::once(old).chain(logs))
        .map(|(f, content)| (format!("{dir}{}", f.name()), content))
        .collect();
    back_up(sink, &journal, ("safe_mode", volume, 0), &files)
        .map_err(|m| format!("backup of the BCD store failed: {m}; it was not changed"))?;
    for run in journal.writes.chunk_by(|a, b| a.0 == b.0) {
        let file = match run[0].0 {
            Target::Primary => BootFile::Bcd,
            Target::Log(i) => BootFile::LOGS[i],
        };
        let edits: Vec<edit::FileEdit> = run.iter().map(|(_, e)| e.clone()).collect();
        write(file, &edits)?;
    }
    r.action = String::from("set");
    Ok(())
}
