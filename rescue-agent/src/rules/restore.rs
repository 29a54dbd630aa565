//! `[[restore]]` rules on one Windows volume: put back what earlier runs
//! changed, from the backups they kept (listed by the [`BackupSink`]: the
//! stick's `rescue/backups` on the agent, a folder on the host), found by
//! the volume's serial number.
//!
//! - A deleted file comes back where it was, by its sidecar's `restore`
//!   part: names, times, attributes, owner and security ids (the engine's
//!   create planner does the NTFS work).
//! - A hive (`SYSTEM`, `SOFTWARE`) is written back in place as it was
//!   before the run that kept it, through its transaction log as every
//!   hive edit is (log entry first), after the hive as it is now went to
//!   the backup sink (a restore can be undone too).
//!
//! Everything a sidecar says is data to check: the path and names are
//! single Win32 components, the backup's size and SHA-256 must match before
//! anything is planned, the parent folder must still be the one the file
//! was deleted from; a name already taken is left alone (the same content
//! there: nothing to do). A failure writes nothing of that backup; every
//! write goes through the commit protocol, gated like every other change.

use super::backup::{namespace_code, BackupSink, Origin, Stored};
use super::commit::Committed;
use super::ctx::Options;
use super::ctx::VolumeCtx;
use super::profile::{HiveName, Profile};
use super::registry::{keep_hive, plan_journal, read_files, CONFIG};
use super::report::{RestoreAction, RestoreReport};
use super::safe_mode::{write_store, BootFileWriter, Store};
use crate::block::BlockDevice;
use crate::formats::ntfs::create::{plan_create, NewFile};
use crate::formats::ntfs::plan::Plan;
use crate::formats::ntfs::{NtfsError, MAX_READ_WHOLE};
use crate::formats::registry::base::{self, BaseBlock};
use crate::formats::registry::cell::Hive;
use crate::formats::registry::journal;
use crate::formats::registry::log::Recovered;
use crate::util::hex::hex;
use crate::util::win32_name::component_problem;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Sidecars are small; anything larger is not one of ours.
pub const MAX_SIDECAR: usize = 1 << 20;

/// The parts of a sidecar a restore reads.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Sidecar {
    path: String,
    volume_serial: String,
    file: SidecarFile,
    restore: Option<Origin>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SidecarFile {
    size: u64,
    sha256: Option<String>,
}

/// A backup the rules take: where it is, the run that kept it, what to do.
struct Taken {
    at: String,
    run: Option<String>,
    what: What,
}

enum What {
    /// A deleted file, with what its sidecar says of it.
    File(Origin),
    /// A hive kept before a run changed it: which one, its size and SHA-256.
    Hive(HiveName, u64, String),
    /// The disk's BCD store kept before a run changed it: its size and
    /// SHA-256 (put back by the run with the disk's ESP, [`put_back_bcd`]).
    Bcd(u64, String),
}

/// Runs the profile's `[[restore]]` rules on the volume.
pub fn run<D: BlockDevice>(ctx: &mut VolumeCtx<'_, '_, D>) {
    let rules = &ctx.env.profile.restore;
    if rules.is_empty() {
        return;
    }
    let index = ctx.report.index;
    let serial = format!("{:016X}", ctx.ntfs.boot.serial);
    let listed = match ctx.env.sink.list(&serial) {
        Ok(l) => l,
        Err(why) => return ctx.errors.push(format!("volume {index}: the backups cannot be read: {why}")),
    };
    let mut taken = Vec::new();
    for s in listed {
        match take(&s, &serial) {
            Ok(Some(t)) if rules.iter().any(|r| r.takes(t.path(), t.run.as_deref())) => taken.push(t),
            Ok(_) => {}
            Err(why) => ctx.report.notes.push(format!("backup {} skipped: {why}", s.at)),
        }
    }
    // Oldest first: run ids start with their time; a folder's copies are `x`, `x.1`, `x.2`...
    taken.sort_by(|a, b| a.at.cmp(&b.at));
    // The BCD store is the disk's, put back by the run with the disk's ESP.
    taken.retain(|t| !matches!(t.what, What::Bcd(..)));
    ctx.env.say(&format!("volume {index}: {} backups to put back", taken.len()));
    let mut hives_done: Vec<HiveName> = Vec::new();
    for t in &taken {
        let mut rr = RestoreReport {
            path: t.path().to_string(),
            backup: t.at.clone(),
            run: t.run.clone(),
            kind: String::from(if matches!(t.what, What::File(_)) { "file" } else { "hive" }),
            ..Default::default()
        };
        let done = match &t.what {
            What::Bcd(..) => continue,
            What::File(o) => one_file(ctx, t, o, &mut rr),
            // One copy of each hive: the oldest (as it was before the first
            // run that changed it); `run = "..."` chooses another.
            What::Hive(h, ..) if hives_done.contains(h) => {
                ctx.report.notes.push(format!("{}: newer backup {} left (the oldest is put back)", h.file(), t.at));
                continue;
            }
            What::Hive(h, size, sha) => {
                hives_done.push(*h);
                one_hive(ctx, t, (*h, *size, sha), &mut rr)
            }
        };
        if let Err(why) = done {
            rr.action = RestoreAction::Failed;
            ctx.errors.push(format!("volume {index}: restore of {}: {why}", rr.path));
            rr.reason = Some(why);
        }
        let why = rr.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
        ctx.env.say(&format!("volume {index}: {}: {}{why}", rr.path, rr.action));
        ctx.report.restores.push(rr);
    }
}

impl Taken {
    /// Where it goes back, from the volume root.
    fn path(&self) -> &str {
        match &self.what {
            What::File(o) => &o.path,
            What::Hive(h, ..) => match h {
                HiveName::System => "Windows\\System32\\config\\SYSTEM",
                HiveName::Software => "Windows\\System32\\config\\SOFTWARE",
            },
            What::Bcd(..) => BCD_PATH,
        }
    }
}

/// What a listed backup is for this volume (or its disk's BCD store):
/// `None` when it belongs to another volume or is nothing a restore puts
/// back (a hive's log); an error when its sidecar cannot be read.
fn take(s: &Stored, serial: &str) -> Result<Option<Taken>, String> {
    if s.sidecar.len() > MAX_SIDECAR {
        return Err(format!("its sidecar holds {} bytes, too many for one of ours", s.sidecar.len()));
    }
    let side: Sidecar = serde_json::from_slice(&s.sidecar).map_err(|e| format!("its sidecar is not ours ({e})"))?;
    let of = side.restore.as_ref().map_or(side.volume_serial.as_str(), |o| o.volume_serial.as_str());
    if !of.eq_ignore_ascii_case(serial) {
        return Ok(None);
    }
    let run = s.run.clone();
    let what = match side.restore {
        Some(o) => What::File(o),
        None if side.path.eq_ignore_ascii_case(BCD_PATH) => {
            What::Bcd(side.file.size, side.file.sha256.ok_or("its sidecar has no SHA-256")?.to_ascii_lowercase())
        }
        None => {
            let p: Vec<&str> = side.path.split('\\').collect();
            let hive = match p[..] {
                [w, s, c, name] if [w, s, c].iter().zip(CONFIG).all(|(a, b)| a.eq_ignore_ascii_case(b)) => {
                    [HiveName::System, HiveName::Software].into_iter().find(|h| h.file().eq_ignore_ascii_case(name))
                }
                _ => None,
            };
            let Some(h) = hive else { return Ok(None) };
            let sha = side.file.sha256.ok_or("its sidecar has no SHA-256")?;
            What::Hive(h, side.file.size, sha.to_ascii_lowercase())
        }
    };
    Ok(Some(Taken { at: s.at.clone(), run, what }))
}

/// The run of a backup at `at` in a stick's layout (`…/<serial>/<run>/<path…>`):
/// the folder after the first one of 16 hex digits, when a path follows it.
pub fn run_in_stick_layout(at: &str) -> Option<String> {
    let parts: Vec<&str> = at.split('/').collect();
    let serial = |p: &&str| p.len() == 16 && p.bytes().all(|b| b.is_ascii_hexdigit());
    parts.windows(3).find(|w| serial(&w[0])).map(|w| w[1].to_string())
}

/// The backup's content, checked against its size and SHA-256.
fn content<D: BlockDevice>(ctx: &mut VolumeCtx<'_, '_, D>, t: &Taken, size: u64, sha: &str) -> Result<Vec<u8>, String> {
    fetch(ctx.env.sink, &t.at, size, sha)
}

/// The content of the backup at `at` from `sink`, checked against the size and SHA-256 its sidecar gives.
fn fetch(sink: &mut dyn BackupSink, at: &str, size: u64, sha: &str) -> Result<Vec<u8>, String> {
    if size > MAX_READ_WHOLE {
        return Err(format!("its sidecar says {size} bytes, more than the {MAX_READ_WHOLE} any backup of ours holds"));
    }
    let data = sink.content(at, size).map_err(|e| format!("cannot read the backup: {e}"))?;
    if data.len() as u64 != size {
        return Err(format!("the backup holds {} bytes, its sidecar says {size}", data.len()));
    }
    if hex(&Sha256::digest(&data)) != sha.to_ascii_lowercase() {
        return Err(String::from("the backup's SHA-256 differs from its sidecar's: not restored"));
    }
    Ok(data)
}

/// Puts one deleted file back: checks, plan, commit.
fn one_file<D: BlockDevice>(
    ctx: &mut VolumeCtx<'_, '_, D>,
    t: &Taken,
    o: &Origin,
    rr: &mut RestoreReport,
) -> Result<(), String> {
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
    let data = content(ctx, t, o.size, &o.sha256)?;
    let e = |e: NtfsError| e.to_string();
    let (v, vol) = (ctx.ntfs, &mut *ctx.vol);
    let parent = v.lookup_path(vol, dirs).map_err(|err| format!("the folder it was deleted from is gone: {err}"))?;
    if parent.record() != o.parent_record || parent.seq() != o.parent_seq {
        return Err(String::from("the folder it was deleted from was deleted and made again: not restored"));
    }
    let dir = v.open_dir(vol, parent).map_err(e)?;
    if let Some(there) = v.lookup_in(vol, &dir, leaf).map_err(e)? {
        let f = v.load_file(vol, there.record()).map_err(e)?;
        let sha = o.sha256.to_ascii_lowercase();
        if v.read_content(vol, &f, MAX_READ_WHOLE).is_ok_and(|c| hex(&Sha256::digest(&c)) == sha) {
            rr.action = RestoreAction::AlreadyThere;
            rr.reason = Some(String::from("the same file is already there"));
            return Ok(());
        }
        return Err(format!("a different file named {leaf:?} is there: left alone"));
    }
    let clear = ctx.gate.as_ref().map_err(|g| format!("volume not writable: {g}"))?;
    let spec = NewFile {
        parent,
        names,
        times: [o.created, o.modified, o.mft_modified, o.accessed],
        attributes: o.attributes,
        owner_id: o.owner_id,
        security_id: (o.security_id != 0).then_some(o.security_id),
        data: &data,
    };
    let (plan, _) = plan_create(v, vol, clear, &spec).map_err(e)?;
    rr.notes = plan.notes.clone();
    // Nothing is destroyed by a create: no backup first.
    commit(ctx, plan, rr, |_| Ok(None))
}

/// Writes one hive back as its backup holds it, through its transaction
/// log: the backup's bins under a base block that continues the hive's
/// sequence numbers (Windows then takes it for the newest state).
fn one_hive<D: BlockDevice>(
    ctx: &mut VolumeCtx<'_, '_, D>,
    t: &Taken,
    (hive, size, sha): (HiveName, u64, &str),
    rr: &mut RestoreReport,
) -> Result<(), String> {
    let backup = content(ctx, t, size, sha)?;
    let r = |e: crate::formats::registry::RegError| format!("{}: {e}", hive.file());
    let config = ctx.ntfs.lookup_path(ctx.vol, &CONFIG).map_err(|e| e.to_string())?;
    let name = hive.file();
    let files = read_files(ctx, config, [name.into(), format!("{name}.LOG1"), format!("{name}.LOG2")])
        .map_err(|e| e.to_string())?;
    files[0].1.ok_or("the hive file does not exist")?;
    let current = &files[0].2;
    let logs: Vec<&[u8]> = files[1..].iter().map(|l| l.2.as_slice()).collect();
    let Some(Restored { recovered, restored, kept: kept_hive }) =
        from_backup(("hive", hive.file()), backup, current, &logs, ctx.env.opts.now, rr)?
    else {
        return Ok(());
    };
    // Cloned PCs share volume serials: a hive of another PC is never put back.
    let copy = crate::util::mem::copy(&recovered.bytes).ok_or("the hive does not fit in the memory available")?;
    let this_hive = Hive::open(copy).map_err(r)?;
    let (key, value) = IDENTITY[usize::from(hive == HiveName::Software)];
    if let (Some(theirs), Some(ours)) = (identity(&kept_hive, key, value), identity(&this_hive, key, value)) {
        if theirs != ours {
            return Err(format!(
                "the backup is of another PC ({value} {theirs:?}, this PC's is {ours:?}; cloned PCs share volume \
                 serial numbers): not restored"
            ));
        }
    }
    let journal = journal::plan(current, &recovered, &restored, &logs).map_err(r)?;
    rr.notes.push(format!("{} ({})", name, journal.describe([&files[1].0, &files[2].0])));
    let plan = plan_journal(ctx, &journal, &files)?;
    // The hive as it is now goes to the backup sink first: a restore can be undone too.
    let keep = keep_hive(ctx, &journal, &files);
    commit(ctx, plan, rr, |sink| {
        let mut at = keep(sink).map_err(|m| format!("backup of the hive as it is now failed: {m}; not restored"))?;
        Ok(Some(at.remove(0)))
    })
}

/// A registry file (hive or BCD store) as its backup will put it back.
struct Restored {
    /// The file as it is now, recovered from its logs.
    recovered: Recovered,
    /// The backup's bytes under a base block that continues the file's
    /// sequence numbers (Windows then takes it for the newest state).
    restored: Vec<u8>,
    /// The backup, parsed.
    kept: Hive,
}

/// Checks a registry file's `backup` against the file as it is (`current`,
/// with its `logs`): the backup clean and readable, the same size (files
/// never grow or shrink). `Ok(None)`: the file already holds what the
/// backup holds (said in `rr`). `what` is (`"hive"` or `"store"`, how
/// errors name the file).
fn from_backup(
    (what, name): (&str, &str),
    backup: Vec<u8>,
    current: &[u8],
    logs: &[&[u8]],
    now: u64,
    rr: &mut RestoreReport,
) -> Result<Option<Restored>, String> {
    let r = |e: crate::formats::registry::RegError| format!("{name}: {e}");
    if BaseBlock::parse(&backup).map_err(r)?.is_dirty() {
        return Err(format!("the backup is of a {what} a crash left dirty: not restored"));
    }
    let copy = crate::util::mem::copy(&backup).ok_or(format!("the {what} does not fit in the memory available"))?;
    let kept = Hive::open(copy).map_err(|e| format!("the backup is not a {what} that can be read: {e}"))?;
    if current.len() != backup.len() {
        return Err(format!(
            "the {what} is {} bytes now, its backup {}: files are never grown or shrunk, not restored",
            current.len(),
            backup.len()
        ));
    }
    let recovered = journal::recover_in_place(current, logs).map_err(r)?;
    if recovered.bytes.get(base::SIZE..) == backup.get(base::SIZE..) {
        rr.action = RestoreAction::AlreadyThere;
        rr.reason = Some(format!("the {what} already holds what its backup holds"));
        return Ok(None);
    }
    let mut restored = backup;
    let next = BaseBlock::parse(&recovered.bytes).map_err(r)?.seq2.wrapping_add(1);
    base::stamp(&mut restored, next, next, now).map_err(r)?;
    Ok(Some(Restored { recovered, restored, kept }))
}

/// Where a BCD store's backup says it was.
const BCD_PATH: &str = "ESP\\EFI\\Microsoft\\Boot\\BCD";

/// The `[[restore]]` rules on the BCD store of a disk whose Windows volume
/// has `serial` (BCD backups are kept under that serial): the oldest backup
/// of it the rules take (`run` chooses another), checked and written back in
/// place through its log like every store change, after the store as it is
/// now went to the sink. `None` when no backup of it is taken.
pub fn put_back_bcd(
    profile: &Profile,
    serial: u64,
    store: Result<Store<'_>, String>,
    opts: Options,
    sink: &mut dyn BackupSink,
    write: &mut BootFileWriter,
) -> Option<RestoreReport> {
    let serial = format!("{serial:016X}");
    let listed = match sink.list(&serial) {
        Ok(l) => l,
        Err(why) => {
            let reason = Some(format!("the backups cannot be read: {why}"));
            return Some(RestoreReport { path: BCD_PATH.into(), kind: "bcd".into(), reason, ..Default::default() });
        }
    };
    let mut taken: Vec<Taken> = listed
        .iter()
        .filter_map(|s| take(s, &serial).ok().flatten())
        .filter(|t| {
            matches!(t.what, What::Bcd(..)) && profile.restore.iter().any(|r| r.takes(BCD_PATH, t.run.as_deref()))
        })
        .collect();
    taken.sort_by(|a, b| a.at.cmp(&b.at));
    let t = taken.into_iter().next()?;
    let What::Bcd(size, sha) = &t.what else { return None };
    let mut rr = RestoreReport {
        path: BCD_PATH.into(),
        kind: "bcd".into(),
        backup: t.at.clone(),
        run: t.run.clone(),
        ..Default::default()
    };
    let done = (|| {
        let store = store?;
        let backup = fetch(sink, &t.at, *size, sha)?;
        let found = from_backup(("store", "the BCD store"), backup, store.bcd, &store.logs, opts.now, &mut rr)?;
        let Some(Restored { recovered, restored, .. }) = found else { return Ok(()) };
        let (journal, done) = write_store(&store, &recovered, &restored, opts, sink, write)?;
        rr.notes.push(format!("BCD ({journal})"));
        rr.action = if done { RestoreAction::Restored } else { RestoreAction::WouldRestore };
        Ok(())
    })();
    if let Err(why) = done {
        rr.action = RestoreAction::Failed;
        rr.reason = Some(why);
    }
    Some(rr)
}

/// The value that tells one PC's hive from another's, of SYSTEM and of
/// SOFTWARE: the computer name, the machine GUID (new on every installed
/// or sysprepped copy of Windows).
const IDENTITY: [(&str, &str); 2] = [
    ("ControlSet001\\Control\\ComputerName\\ComputerName", "ComputerName"),
    ("Microsoft\\Cryptography", "MachineGuid"),
];

/// The text of `value` in `key` of hive `h`, when it has one.
fn identity(h: &Hive, key: &str, value: &str) -> Option<String> {
    let k = h.open_path(key).ok()?;
    let name: Vec<u16> = value.encode_utf16().collect();
    let data = h.data(&h.value(&k, &name).ok()??).ok()?;
    let units: Vec<u16> =
        data.chunks_exact(2).map(|u| u16::from_le_bytes([u[0], u[1]])).take_while(|&u| u != 0).collect();
    Some(String::from_utf16_lossy(&units))
}

/// Commits a restore's plan; `backup` keeps what it overwrites first.
fn commit<D: BlockDevice>(
    ctx: &mut VolumeCtx<'_, '_, D>,
    plan: Plan,
    rr: &mut RestoreReport,
    backup: impl FnOnce(&mut dyn BackupSink) -> Result<Option<String>, String>,
) -> Result<(), String> {
    match ctx.commit(plan, backup)? {
        Committed::DryRun(plan) => {
            rr.action = RestoreAction::WouldRestore;
            rr.writes = plan.writes;
        }
        Committed::Done(plan, kept) => {
            rr.action = RestoreAction::Restored;
            rr.backup_of_current = kept;
            rr.writes = plan.writes;
        }
    }
    Ok(())
}
