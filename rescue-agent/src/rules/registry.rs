//! A profile's `[[service]]` and `[[registry]]` rules on one Windows volume:
//! read the hive file through NTFS, recover it from its transaction logs if
//! a crash left it dirty, edit it in memory, back the original up, and
//! write the changed pages back in place through the NTFS overwrite
//! planner and the commit protocol (log entry first; same size, same
//! clusters, behind the same gate, shown the same way by a dry run).
//!
//! Guarantees: a hive is written only when every rule on it could be
//! applied or was reported as not found; a dirty hive whose logs are
//! missing or unusable, a corrupt hive, or a change that would grow the file
//! is reported and nothing is written to it.

use super::backup::keep_originals;
use super::commit::Committed;
use super::ctx::VolumeCtx;
use super::profile::{HiveName, RegistryRule};
use super::report::{HiveReport, StoreAction, ValueChange, ValueOutcome};
use crate::block::BlockDevice;
use crate::formats::ntfs::overwrite::plan_overwrite;
use crate::formats::ntfs::plan::Plan;
use crate::formats::ntfs::{self, NtfsError};
use crate::formats::registry::cell::Hive;
use crate::formats::registry::edit::{Data, Editor};
use crate::formats::registry::journal::{self, Journal, Target};
use crate::formats::registry::key::{kind, show};
use crate::formats::registry::RegError;
use crate::util::hex::hex;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use sha2::{Digest, Sha256};

/// The folder of the hives.
pub(super) const CONFIG: [&str; 3] = ["Windows", "System32", "config"];

/// Applies the profile's registry rules to the volume. Does nothing when
/// the profile has none or the volume has no `Windows\\System32\\config`.
pub fn run<D: BlockDevice>(ctx: &mut VolumeCtx<'_, '_, D>) {
    let profile = ctx.env.profile;
    if profile.services.is_empty() && profile.registry.is_empty() {
        return;
    }
    let index = ctx.report.index;
    let config = match ctx.ntfs.lookup_path(ctx.vol, &CONFIG) {
        Ok(c) => c,
        // A volume without hives: nothing to do here.
        Err(NtfsError::NotFound { .. } | NtfsError::NotADirectory { .. }) => return,
        Err(e) => return ctx.errors.push(format!("volume {index}: {}: {e}", CONFIG.join("\\"))),
    };
    for hive in [HiveName::System, HiveName::Software] {
        let rules: Vec<&RegistryRule> = profile.registry.iter().filter(|r| r.hive == hive).collect();
        if rules.is_empty() && (hive != HiveName::System || profile.services.is_empty()) {
            continue;
        }
        let path = format!("{}\\{}", CONFIG.join("\\"), hive.file());
        let mut hr = HiveReport { hive: hive.file().into(), path: path.clone(), ..Default::default() };
        if let Err(e) = one_hive(ctx, config, hive, &rules, &mut hr) {
            hr.action = StoreAction::Failed;
            ctx.errors.push(format!("volume {index}: {path}: {e}"));
            hr.reason = Some(e);
        }
        for c in &hr.changes {
            ctx.env.say(&format!("volume {index}: {}\\{}\\{}: {} ({})", hr.hive, c.key, c.value, c.outcome, c.after));
        }
        match &hr.journal {
            Some(j) if hr.action == StoreAction::Written => {
                ctx.env.say(&format!("volume {index}: {path}: written ({j})"))
            }
            _ => ctx.env.say(&format!("volume {index}: {path}: {}", hr.action)),
        }
        ctx.report.hives.push(hr);
    }
}

/// A hive file and its two logs as read from the volume: (name, record if
/// the file exists, content; a missing log reads as empty).
pub(super) type HiveFiles = Vec<(String, Option<ntfs::FileRef>, Vec<u8>)>;

/// Reads `names` from the folder `config`.
pub(super) fn read_files<D: BlockDevice>(
    ctx: &mut VolumeCtx<'_, '_, D>,
    config: ntfs::FileRef,
    names: [String; 3],
) -> Result<HiveFiles, NtfsError> {
    let (v, vol) = (ctx.ntfs, &mut *ctx.vol);
    let dir = v.open_dir(vol, config)?;
    let mut out = Vec::new();
    for name in names {
        let found = v.lookup_in(vol, &dir, &name)?;
        let content = match found {
            Some(r) => {
                let f = v.load_file(vol, r.record())?;
                v.read_content(vol, &f, ntfs::MAX_READ_WHOLE)?
            }
            None => Vec::new(),
        };
        out.push((name, found, content));
    }
    Ok(out)
}

/// One hive: read, recover, edit, then (when it changed) journal plan,
/// NTFS overwrite plan and commit, with the hive and each log written
/// backed up first (kept copies required).
fn one_hive<D: BlockDevice>(
    ctx: &mut VolumeCtx<'_, '_, D>,
    config: ntfs::FileRef,
    hive: HiveName,
    rules: &[&RegistryRule],
    hr: &mut HiveReport,
) -> Result<(), String> {
    let e = |e: NtfsError| e.to_string();
    let r = |e: RegError| e.to_string();
    let (profile, now) = (ctx.env.profile, ctx.env.opts.now);
    let name = hive.file();
    let files = read_files(ctx, config, [name.into(), format!("{name}.LOG1"), format!("{name}.LOG2")]).map_err(e)?;
    files[0].1.ok_or("the hive file does not exist")?;
    let original = &files[0].2;
    hr.sha256 = Some(hex(&Sha256::digest(original)));
    // Its transaction logs: to recover a dirty hive, and to write the change
    // into one before the hive itself.
    let logs: Vec<&[u8]> = files[1..].iter().map(|l| l.2.as_slice()).collect();
    let recovered = journal::recover_in_place(original, &logs).map_err(r)?;
    hr.recovered_entries = recovered.applied;
    let copy = crate::util::mem::copy(&recovered.bytes).ok_or("the hive does not fit in the memory available")?;
    let mut ed = Editor::new(Hive::open(copy).map_err(r)?).map_err(r)?;
    for s in &profile.services {
        for set in control_sets(ed.hive()).map_err(r)? {
            let key = format!("{set}\\Services\\{}", s.name);
            set_one(&mut ed, &key, "Start", &Data::Dword(s.start.value()), now, true, hr).map_err(r)?;
        }
    }
    for rule in rules {
        let key = resolve(ed.hive(), hive, &rule.key).map_err(r)?;
        set_one(&mut ed, &key, &rule.value, &rule.data, now, false, hr).map_err(r)?;
    }
    let edited = ed.finish(now).map_err(r)?;
    // Nothing to change: a dirty hive is left for Windows to recover itself.
    if edited == recovered.bytes {
        hr.action = StoreAction::Unchanged;
        return Ok(());
    }
    let journal = journal::plan(original, &recovered, &edited, &logs).map_err(r)?;
    hr.journal = Some(journal.describe([&files[1].0, &files[2].0]));
    let plan = plan_journal(ctx, &journal, &files)?;
    // The whole original hive, and each log the journal writes, go to the backup first.
    let keep = keep_hive(ctx, &journal, &files);
    let backup = |sink: &mut dyn super::backup::BackupSink| {
        keep(sink).map_err(|m| format!("backup failed: {m}; the hive was not changed"))
    };
    match ctx.commit(plan, backup)? {
        Committed::DryRun(plan) => {
            hr.action = StoreAction::WouldWrite;
            hr.writes = plan.writes;
        }
        Committed::Done(plan, mut kept) => {
            hr.backup = Some(kept.remove(0));
            hr.log_backups = kept;
            hr.writes = plan.writes;
            hr.action = StoreAction::Written;
        }
    }
    Ok(())
}

/// The NTFS writes of a hive's journal over its `files` (hive, LOG1,
/// LOG2): one overwrite plan per run of writes to the same file, in order
/// (the log's writes all come before the hive's).
pub(super) fn plan_journal<D: BlockDevice>(
    ctx: &mut VolumeCtx<'_, '_, D>,
    journal: &Journal,
    files: &HiveFiles,
) -> Result<Plan, String> {
    let clear = ctx.gate.as_mut().map_err(|g| format!("volume not writable: {g}"))?;
    let mut plan = Plan::default();
    for run in journal.writes.chunk_by(|a, b| a.0 == b.0) {
        let target = match run[0].0 {
            Target::Primary => files[0].1.ok_or("the hive file does not exist")?,
            Target::Log(i) => files[1 + i].1.ok_or("the log to write does not exist")?,
        };
        let parts: Vec<(u64, &[u8])> = run.iter().map(|(_, (o, b))| (*o, b.as_slice())).collect();
        plan.extend(plan_overwrite(ctx.ntfs, ctx.vol, clear, target, &parts).map_err(|e| e.to_string())?);
    }
    Ok(plan)
}

/// The backup step of a hive's commit: the hive as it is and each log the
/// journal writes go to the sink (each copy required). Gives where each
/// went, the hive's first.
pub(super) fn keep_hive<'f, D: BlockDevice>(
    ctx: &VolumeCtx<'_, '_, D>,
    journal: &'f Journal,
    files: &'f HiveFiles,
) -> impl FnOnce(&mut dyn super::backup::BackupSink) -> Result<Vec<String>, String> + 'f {
    let folder = CONFIG.join("\\");
    let whose = (ctx.env.profile.name.clone(), ctx.report.index, ctx.ntfs.boot.serial);
    move |sink| {
        let originals: Vec<(String, &[u8])> =
            files.iter().map(|(n, _, content)| (format!("{folder}\\{n}"), content.as_slice())).collect();
        keep_originals(sink, journal, (&whose.0, whose.1, whose.2), &originals)
    }
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
                outcome: ValueOutcome::NotFound,
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
        ValueOutcome::Unchanged
    } else {
        ed.set_value(&k, value, data, now)?;
        ValueOutcome::Set
    };
    let before = before.map(|b| show(data.kind(), &b));
    hr.changes.push(ValueChange { key: key.into(), value: value.into(), before, after, outcome });
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
    if v.kind != kind::DWORD {
        return Err(RegError::Unsupported { detail: "Select\\Current is not a REG_DWORD" });
    }
    let d = h.data(&v)?;
    let n = match d[..] {
        [a, b, c, d] => Some(u32::from_le_bytes([a, b, c, d])).filter(|n| (1..=999).contains(n)),
        _ => None,
    };
    let n = n.ok_or(RegError::Unsupported { detail: "Select\\Current does not name a control set" })?;
    Ok(match parts.next() {
        Some(rest) => format!("ControlSet{n:03}\\{rest}"),
        None => format!("ControlSet{n:03}"),
    })
}
