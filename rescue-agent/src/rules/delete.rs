//! `[[delete]]` rules on one volume: find the files a rule matches, check
//! each one (header, kind, name), back it up and delete it through the
//! commit protocol ([`super::commit`]). A dry run records the plan; a real
//! run executes the same plan. A file whose backup fails is not deleted.

use super::backup::{namespace_name, BackupItem, Origin, OriginName};
use super::commit::Committed;
use super::ctx::VolumeCtx;
use super::profile::DeleteRule;
use super::report::{FileAction, FileReport, RuleReport};
use crate::block::BlockDevice;
use crate::formats::ntfs::delete::plan_delete;
use crate::formats::ntfs::{self, FileRef, NtfsError};
use crate::util::hex::hex;
use crate::util::time::filetime_rfc3339;
use crate::util::win32_name;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use sha2::{Digest, Sha256};

/// Runs every `[[delete]]` rule of the profile on the volume, in order.
pub fn run<D: BlockDevice>(ctx: &mut VolumeCtx<'_, '_, D>) {
    let profile = ctx.env.profile;
    for rule in &profile.delete {
        let mut rr = RuleReport {
            path: rule.path.clone(),
            header: hex(&rule.header),
            backup: rule.backup,
            ..Default::default()
        };
        one_rule(ctx, rule, &mut rr);
        if let Some(e) = &rr.error {
            ctx.errors.push(format!("volume {}: rule {}: {e}", ctx.report.index, rule.path));
        }
        ctx.report.rules.push(rr);
    }
}

/// One rule: its directory, the files its pattern matches (one per MFT
/// record, with every matching name), each checked and deleted.
fn one_rule<D: BlockDevice>(ctx: &mut VolumeCtx<'_, '_, D>, rule: &DeleteRule, rr: &mut RuleReport) {
    let (v, vol) = (ctx.ntfs, &mut *ctx.vol);
    let dir_ref = match v.lookup_path(vol, &rule.dir) {
        Ok(r) => r,
        Err(NtfsError::NotFound { .. } | NtfsError::NotADirectory { .. }) => return,
        Err(e) => return rr.error = Some(e.to_string()),
    };
    let dir = match v.open_dir(vol, dir_ref) {
        Ok(d) => d,
        Err(NtfsError::NotADirectory { .. }) => return,
        Err(e) => return rr.error = Some(e.to_string()),
    };
    rr.directory_found = true;
    let entries = match v.glob(vol, &dir, &rule.pattern) {
        Ok(e) => e,
        Err(e) => return rr.error = Some(e.to_string()),
    };
    let mut files: BTreeMap<u64, (FileRef, Vec<Vec<u16>>, String)> = BTreeMap::new();
    for e in entries {
        let f = files.entry(e.file_ref.record()).or_insert((e.file_ref, Vec::new(), e.name.clone()));
        f.1.push(e.name_utf16);
    }
    let dir_path: String = rule.dir.join("\\");
    let index = ctx.report.index;
    for (rec, (file_ref, names, first)) in files {
        let path = if dir_path.is_empty() { first.clone() } else { format!("{dir_path}\\{first}") };
        let mut fr = FileReport { path: path.clone(), record: rec, ..Default::default() };
        let target = Matched { dir: dir_ref, file: file_ref, names: &names };
        if let Err(e) = one_file(ctx, rule, &target, &mut fr) {
            fr.action = FileAction::Failed;
            fr.reason.get_or_insert_with(|| e.clone());
            ctx.errors.push(format!("volume {index}: {path}: {e}"));
        }
        let why = match (&fr.reason, &fr.backup) {
            (Some(r), _) => format!(" ({r})"),
            (None, Some(at)) => format!(" (backup: {at})"),
            (None, None) => String::new(),
        };
        ctx.env.say(&format!("volume {index}: {}: {}{why}", fr.path, fr.action));
        rr.files.push(fr);
    }
}

/// A file a rule matched: its directory, its record and the names that matched.
struct Matched<'a> {
    dir: FileRef,
    file: FileRef,
    names: &'a [Vec<u16>],
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

/// What a restore needs to put the file back into directory `dir`: its
/// names there, its `$STANDARD_INFORMATION`, its size and SHA-256.
fn origin(info: &ntfs::FileInfo, dir: FileRef, serial: u64, fr: &FileReport, size: u64) -> Origin {
    let here: Vec<_> = info.names.iter().filter(|n| n.0.record() == dir.record()).collect();
    Origin {
        volume_serial: format!("{serial:016X}"),
        path: fr.path.clone(),
        parent_record: dir.record(),
        parent_seq: here.first().map_or(dir.seq(), |n| n.0.seq()),
        names: here
            .iter()
            .map(|n| OriginName { name: n.2.clone(), namespace: String::from(namespace_name(n.1)) })
            .collect(),
        created: info.created,
        modified: info.modified,
        mft_modified: info.mft_modified,
        accessed: info.accessed,
        attributes: info.attributes,
        owner_id: info.owner_id,
        security_id: info.security_id,
        size,
        sha256: fr.sha256.clone().unwrap_or_default(),
    }
}

/// Checks one matched file and deletes it: header, kind and names first;
/// then plan, gate, dry run, backup (when the rule asks), delete. `Ok` with
/// a reason means left alone on purpose; `Err` means the fix did not happen.
fn one_file<D: BlockDevice>(
    ctx: &mut VolumeCtx<'_, '_, D>,
    rule: &DeleteRule,
    m: &Matched<'_>,
    fr: &mut FileReport,
) -> Result<(), String> {
    let e = |e: NtfsError| e.to_string();
    let (v, vol) = (ctx.ntfs, &mut *ctx.vol);
    let f = v.load_file(vol, m.file.record()).map_err(e)?;
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
    // A matched file that is not deleted is a failure of the run: the fix did not happen.
    let unhandled = reparse_refusal(&info).or_else(|| info.encrypted.then(|| String::from("encrypted (EFS)")));
    if let Some(why) = unhandled {
        fr.reason = Some(format!("{why}: not handled, left in place"));
        ctx.errors.push(format!("volume {}: {}: matched but not deleted ({why})", ctx.report.index, fr.path));
        return Ok(());
    }
    // A name from the disk that cannot be one Win32 path component (a `\`,
    // `..`, a control character) would become a path on a stick or host:
    // such a file is suspicious and left alone.
    for name in m.names.iter().map(|n| String::from_utf16_lossy(n)) {
        if let Some(why) = win32_name::component_problem(&name) {
            fr.reason = Some(format!("suspicious name {name:?}: {why}"));
            return Err(format!("suspicious name {name:?} ({why}): not deleted"));
        }
    }
    let head = v.read_head(vol, &f, rule.header.len()).map_err(e)?;
    fr.header_match = head == rule.header;
    let content = v.read_content(vol, &f, ntfs::MAX_READ_WHOLE).map_err(e)?;
    fr.sha256 = Some(hex(&Sha256::digest(&content)));
    if !fr.header_match {
        fr.reason = Some(format!("header mismatch: file starts with {}", hex(&head)));
        return Ok(());
    }
    let clear = ctx.gate.as_mut().map_err(|g| {
        fr.reason = Some(format!("volume not writable: {g}"));
        format!("not deleted: {g}")
    })?;
    let plan = plan_delete(v, vol, clear, m.dir, m.file, m.names).map_err(e)?;
    fr.notes = plan.notes.clone();
    let (profile, volume, volume_serial) = (ctx.env.profile.name.as_str(), ctx.report.index, v.boot.serial);
    let origin = origin(&info, m.dir, volume_serial, fr, content.len() as u64);
    let backup = |sink: &mut dyn super::backup::BackupSink| -> Result<Option<String>, String> {
        if !rule.backup {
            return Ok(None);
        }
        let (path, file, content, origin) = (&fr.path, &*fr, &content, Some(&origin));
        let item = BackupItem { profile, volume, volume_serial, path, file, content, origin, required: false };
        sink.backup(&item).map(Some).map_err(|m| format!("backup failed: {m}; not deleted"))
    };
    match ctx.commit(plan, backup)? {
        Committed::DryRun(plan) => {
            fr.action = FileAction::WouldDelete;
            fr.writes = plan.writes;
        }
        Committed::Done(plan, kept) => {
            if let Some(at) = &kept {
                ctx.backups.push(at.clone());
            }
            fr.backup = kept;
            fr.writes = plan.writes;
            fr.action = FileAction::Deleted;
        }
    }
    Ok(())
}
