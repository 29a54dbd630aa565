//! `rescue collect`: the agent's reports (`rescue/reports/*.json`) from
//! sticks, images and folders, gathered into one table for the helpdesk.
//!
//! Reports are read through the engine's report types with every field
//! optional, so reports of older and newer agents still make a row. A report never holds
//! a key, and as a second line of defence every text taken into the table
//! has anything shaped like a 48-digit recovery password masked.

use crate::image::read::open_boot_fat;
use crate::image::{fat, stick};
use crate::output;
use crate::sweep::table::{to_csv, Deleted, Locked, Row, Skipped};
use anyhow::{bail, Context, Result};
use rescue_engine::rules::report::{FileAction, RestoreAction};
use rescue_engine::run::report::{Outcome, Report, RunReport};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Largest report read: an agent's report is a few KiB, one that lists a
/// thousand deleted files and their writes well under 4 MiB.
pub const MAX_REPORT_BYTES: u64 = 4 << 20;
/// Longest text kept from one field of a report, in characters.
const MAX_TEXT: usize = 512;
/// Most entries kept per list of a row (the count of deleted files stays exact).
const MAX_LIST: usize = 50;

/// Arguments of `rescue collect`.
#[derive(clap::Args, Debug)]
pub struct CollectArgs {
    /// Sticks (block devices), stick images, folders (a stick's mount point,
    /// its rescue/reports folder, or any folder of .json reports) or report files
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<PathBuf>,
    /// The table to write: FILE.csv or FILE.json (`-`: CSV on standard output)
    #[arg(long, value_name = "FILE", required_unless_present_any = ["html", "missing_keys", "restore_index"])]
    pub out: Option<PathBuf>,
    /// Also write the fleet page: one self-contained HTML file (counts,
    /// failed PCs first, keys still missing, every PC), nothing fetched from anywhere
    #[arg(long, value_name = "FILE.html")]
    pub html: Option<PathBuf>,
    /// Also write the BitLocker Key IDs still missing (volumes left locked),
    /// one row each, with an empty RecoveryKey column to fill in
    #[arg(long, value_name = "FILE.csv")]
    pub missing_keys: Option<PathBuf>,
    /// For network-boot restores: write DIR/<volume serial>.json listing the backups
    /// found in SOURCE, the report URL's folder on the server (make DIR its `restore` folder)
    #[arg(long, value_name = "DIR")]
    pub restore_index: Option<PathBuf>,
}

/// The Key IDs of a report entry that are well-formed GUIDs, in upper case.
fn key_ids(ids: &[String]) -> Vec<String> {
    ids.iter()
        .filter_map(|id| rescue_engine::formats::keyring::parse_guid(id))
        .map(|g| g.to_string())
        .take(MAX_LIST)
        .collect()
}

/// Text from a report made safe to keep in a table: anything shaped like a
/// recovery password (8 groups of 6 digits, any separators of dashes or
/// spaces, or 48 digits in a row) masked, control characters escaped, at
/// most [`MAX_TEXT`] characters.
pub fn scrub(s: &str) -> String {
    keepable(&mask(s))
}

/// Masks anything shaped like a recovery password in `s`.
fn mask(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() && (i == 0 || !chars[i - 1].is_ascii_digit()) {
            // Count digits from i, allowing single '-' or ' ' between 6-digit groups.
            let mut j = i;
            let mut digits = 0;
            let mut ok = true;
            while j < chars.len() && digits < 48 {
                if chars[j].is_ascii_digit() {
                    digits += 1;
                    j += 1;
                } else if (chars[j] == '-' || chars[j] == ' ')
                    && digits % 6 == 0
                    && digits > 0
                    && j + 1 < chars.len()
                    && chars[j + 1].is_ascii_digit()
                {
                    j += 1;
                } else {
                    ok = false;
                    break;
                }
            }
            if digits == 48 && (j == chars.len() || !chars[j].is_ascii_digit()) {
                out.push_str("[recovery password removed]");
                i = j;
                continue;
            }
            let _ = ok;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Report text as a row keeps it: on one line ([`crate::text::one_line`]:
/// a cell is one line), at most [`MAX_TEXT`] characters.
fn keepable(s: &str) -> String {
    let line = crate::text::one_line(s);
    match line.char_indices().nth(MAX_TEXT) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.into_owned(),
    }
}

/// Keeps the first [`MAX_LIST`] entries of `v`, the last of them saying how many were left out.
fn cap<T>(v: &mut Vec<T>, more: impl Fn(usize) -> T) {
    if v.len() > MAX_LIST {
        let left_out = v.len() - (MAX_LIST - 1);
        v.truncate(MAX_LIST - 1);
        v.push(more(left_out));
    }
}

/// A row from one report's JSON; `None` when it is not an agent report.
/// Reports are read through the engine's own report types, with every field
/// optional, so reports of older and newer agents still make a row.
pub fn row_from_report(source: &str, name: &str, json: &Value) -> Option<Row> {
    if !json.is_object() || (json.get("outcome").is_none() && json.get("started").is_none()) {
        return None;
    }
    let r: RunReport = serde_json::from_value(json.clone()).ok()?;
    let mut deleted = Vec::new();
    let mut skipped = Vec::new();
    for vol in &r.result.volumes {
        let what = format!("volume {} (partition {})", vol.index, vol.partition);
        if let Some(refused) = &vol.write_refused {
            skipped.push(Skipped { what: what.clone(), reason: format!("not written: {}", scrub(refused)) });
        }
        if let Some(error) = &vol.error {
            skipped.push(Skipped { what: what.clone(), reason: scrub(error) });
        }
        for f in vol.rules.iter().flat_map(|rule| &rule.files) {
            let path = scrub(&f.path);
            match f.action {
                FileAction::Deleted => deleted.push(Deleted { path, sha256: f.sha256.as_deref().map(scrub) }),
                FileAction::Skipped | FileAction::Failed => {
                    let reason = match &f.reason {
                        Some(why) => format!("{}: {}", f.action, scrub(why)),
                        None => f.action.to_string(),
                    };
                    skipped.push(Skipped { what: format!("file {path}"), reason });
                }
                FileAction::WouldDelete => {}
            }
        }
    }
    let mut restored_paths: Vec<String> =
        r.result.restores().filter(|x| x.action == RestoreAction::Restored).map(|x| scrub(&x.path)).collect();
    for x in r.result.restores().filter(|x| x.action == RestoreAction::Failed) {
        let reason = format!("not restored: {}", scrub(x.reason.as_deref().unwrap_or("")));
        skipped.push(Skipped { what: format!("backup {}", scrub(&x.path)), reason });
    }
    let restored = restored_paths.len();
    cap(&mut restored_paths, |n| format!("… and {n} more"));
    let mut unlocked = Vec::new();
    let (mut locked, mut unlocked_key_ids) = (Vec::new(), Vec::new());
    for bl in r.bitlocker.iter().take(MAX_LIST) {
        if let Some(by) = &bl.unlocked_by {
            unlocked.push(format!("volume {}: {}", bl.volume, scrub(by)));
            unlocked_key_ids.extend(key_ids(&bl.recovery_key_ids));
        } else if let Some(why) = &bl.skipped {
            skipped.push(Skipped {
                what: format!("BitLocker volume {}", bl.volume),
                reason: format!("locked: {}", scrub(why)),
            });
            let disk = r.disks.iter().find(|d| d.volumes.contains(&bl.volume)).map(|d| scrub(&d.label));
            locked.push(Locked {
                key_ids: key_ids(&bl.recovery_key_ids),
                disk: disk.unwrap_or_default(),
                volume: bl.volume,
                why: scrub(why),
            });
        }
    }
    let journal = if r.result.volumes.iter().flat_map(|v| &v.notes).any(|n| n.starts_with("journal was unclean: reset"))
    {
        "reset"
    } else if r.result.volumes.iter().any(|v| v.journal.as_deref() == Some("unclean")) {
        "unclean, left alone"
    } else {
        ""
    };
    let mut errors: Vec<String> = r.result.errors.iter().map(|e| scrub(e)).collect();
    for d in &r.disks {
        if let Some(e) = &d.error {
            errors.push(format!("disk {}: {}", scrub(&d.label), scrub(e)));
        }
    }
    let files_deleted = deleted.len();
    cap(&mut deleted, |n| Deleted { path: format!("… and {n} more"), sha256: None });
    cap(&mut skipped, |n| Skipped { what: format!("… and {n} more"), reason: String::new() });
    cap(&mut unlocked, |n| format!("… and {n} more"));
    cap(&mut errors, |n| format!("… and {n} more"));
    let machine = r.machine.unwrap_or_default();
    Some(Row {
        source: keepable(source),
        report: keepable(name),
        started: scrub(&r.started),
        manufacturer: scrub(&machine.manufacturer),
        model: scrub(&machine.model),
        serial: scrub(&machine.serial_number),
        outcome: r.outcome.word().to_string(),
        reason: r.reason.as_deref().map(scrub).unwrap_or_default(),
        files_deleted,
        deleted,
        skipped,
        unlocked,
        errors,
        // Reports of `rescue apply` (a VM or cloud disk fixed from a host) say so.
        agent_version: match r.front_end.as_str() {
            "rescue apply" => format!("host {}", scrub(&r.agent_version)),
            _ => scrub(&r.agent_version),
        },
        profile: scrub(&r.result.profile),
        registry_changes: r.result.registry_changes,
        restored,
        restored_paths,
        journal: journal.to_string(),
        duration_ms: r.duration_ms,
        locked,
        unlocked_key_ids,
    })
}

/// Problems met while reading sources (bad JSON, unreadable files): reported, not fatal.
pub type Warnings = Vec<String>;

fn add_report(rows: &mut Vec<Row>, warnings: &mut Warnings, source: &str, name: &str, bytes: &[u8]) {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let json: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            warnings.push(format!("{source}: {name}: not valid JSON ({e})"));
            return;
        }
    };
    if json.get("dry_run") == Some(&Value::Bool(true)) {
        warnings.push(format!("{source}: {name}: a dry run (nothing was written): not counted"));
        return;
    }
    if let Some(o) = json.get("outcome").and_then(Value::as_str) {
        if !["FIXED", "NOTHING TO DO", "FAILED", "SAFE MODE SET"].contains(&o) {
            warnings.push(format!("{source}: {name}: unknown outcome {:?}: not counted", scrub(o)));
            return;
        }
    }
    match row_from_report(source, name, &json).or_else(|| row_from_host_report(source, name, &json)) {
        Some(r) => rows.push(r),
        None => warnings.push(format!("{source}: {name}: not a rescue report (agent or `rescue apply --report`)")),
    }
}

/// A row from a `rescue apply --report` file (a cloud or VM disk fixed from
/// a host): it has no machine identity; its outcome follows from what was done.
fn row_from_host_report(source: &str, name: &str, json: &Value) -> Option<Row> {
    if json.get("engine_version").is_none() || json.get("volumes").is_none() || json.get("outcome").is_some() {
        return None;
    }
    let report: Report = serde_json::from_value(json.clone()).ok()?;
    let run = RunReport {
        outcome: match (report.errors.is_empty(), report.changes()) {
            (false, _) => Outcome::Failed,
            (true, 0) => Outcome::NothingToDo,
            (true, _) => Outcome::Fixed,
        },
        agent_version: format!("host {}", report.engine_version),
        result: report,
        ..Default::default()
    };
    row_from_report(source, name, &serde_json::to_value(run).ok()?)
}

/// A report file name: something, then `.json` (any case). Names come from
/// a stick: any UTF-8, never sliced at a byte that may split a character.
fn is_json(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.len() > 5 && lower.ends_with(".json")
}

/// The reports in a folder: `DIR/rescue/reports/*.json` when that exists
/// (a mounted stick), else `DIR/*.json` and `DIR/<run>/report.json` (a
/// report receiver's folder). Symbolic links are never followed: a report
/// folder comes from many machines, and a link could lead anywhere.
fn collect_dir(dir: &Path, rows: &mut Vec<Row>, warnings: &mut Warnings) -> Result<()> {
    let reports = dir.join(stick::REPORTS_DIR);
    let dir = if is_real_dir(&reports) { reports } else { dir.to_path_buf() };
    let source = dir.display().to_string();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let Ok(entry) = entry else { continue };
        let (path, file_type) = (entry.path(), entry.file_type()?);
        let name = entry.file_name().to_string_lossy().into_owned();
        if file_type.is_symlink() {
            if is_json(&name) || path.join("report.json").exists() {
                warnings.push(format!("{source}: {name}: a symbolic link, not followed"));
            }
        } else if file_type.is_file() && is_json(&name) {
            names.push(path);
        } else if file_type.is_dir() && std::fs::symlink_metadata(path.join("report.json")).is_ok() {
            names.push(path.join("report.json"));
        }
    }
    names.sort();
    for p in names {
        let name = p.strip_prefix(&dir).unwrap_or(&p).display().to_string();
        match read_bounded(&p, true) {
            Ok(b) => add_report(rows, warnings, &source, &name, &b),
            Err(e) => warnings.push(format!("{source}: {name}: {e:#}")),
        }
    }
    Ok(())
}

/// A folder, and not a link to one.
fn is_real_dir(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// A report file's bytes, at most [`MAX_REPORT_BYTES`]; with `no_links`,
/// a symbolic link or anything but a regular file is refused.
fn read_bounded(p: &Path, no_links: bool) -> Result<Vec<u8>> {
    use std::io::Read;
    let seen = std::fs::symlink_metadata(p)?;
    if no_links && !seen.is_file() {
        bail!("not a regular file (a symbolic link?): not read");
    }
    let file = std::fs::File::open(p)?;
    let meta = file.metadata()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if no_links && (meta.dev(), meta.ino()) != (seen.dev(), seen.ino()) {
            bail!("replaced by another file while read: not read");
        }
    }
    let len = meta.len();
    if len > MAX_REPORT_BYTES {
        bail!("{len} bytes is too large for a report (at most {MAX_REPORT_BYTES})");
    }
    let mut bytes = Vec::new();
    file.take(MAX_REPORT_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_REPORT_BYTES {
        bail!("grew past {MAX_REPORT_BYTES} bytes while read: not a report");
    }
    Ok(bytes)
}

/// The reports on a stick or image's FAT boot partition.
fn collect_image(path: &Path, rows: &mut Vec<Row>, warnings: &mut Warnings) -> Result<()> {
    let (file, boot) = open_boot_fat(path)?;
    let fs = fat::open(fat::Window::new(&file, boot.offset, boot.size))
        .with_context(|| format!("{}: boot partition", path.display()))?;
    let source = path.display().to_string();
    let prefix = format!("{}/", stick::REPORTS_DIR);
    let mut found = false;
    for e in fat::walk(&fs)? {
        let Some(rest) =
            e.path.get(..prefix.len()).filter(|p| p.eq_ignore_ascii_case(&prefix)).map(|_| &e.path[prefix.len()..])
        else {
            continue;
        };
        found = true;
        if e.is_dir || rest.contains('/') || !is_json(rest) {
            continue;
        }
        if e.size > MAX_REPORT_BYTES {
            warnings.push(format!("{source}: {}: {} bytes is too large for a report", e.path, e.size));
            continue;
        }
        match fat::read_file(&fs, &e.path, MAX_REPORT_BYTES) {
            Ok(b) => add_report(rows, warnings, &source, rest, &b),
            Err(err) => warnings.push(format!("{source}: {}: {err:#}", e.path)),
        }
    }
    if !found && !fat::walk(&fs)?.iter().any(|e| e.path.eq_ignore_ascii_case(stick::REPORTS_DIR)) {
        warnings.push(format!("{source}: no {} folder: is this a rescue stick?", stick::REPORTS_DIR));
    }
    Ok(())
}

/// Reads every source; rows are sorted by start time, then source.
pub fn collect(sources: &[PathBuf]) -> Result<(Vec<Row>, Warnings)> {
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    for s in sources {
        let meta = std::fs::metadata(s).with_context(|| format!("cannot read {}", s.display()))?;
        if meta.is_dir() {
            collect_dir(s, &mut rows, &mut warnings)?;
        } else if s.file_name().and_then(|n| n.to_str()).is_some_and(is_json) {
            let b = read_bounded(s, false).with_context(|| format!("reading {}", s.display()))?;
            let dir = s.parent().map(|p| p.display().to_string()).unwrap_or_default();
            add_report(&mut rows, &mut warnings, &dir, &s.file_name().unwrap_or_default().to_string_lossy(), &b);
        } else {
            collect_image(s, &mut rows, &mut warnings)?;
        }
    }
    rows.sort_by(|a, b| (&a.started, &a.source, &a.report).cmp(&(&b.started, &b.source, &b.report)));
    // The same report seen twice (a stick and a copy of its folder): one row.
    let mut seen = std::collections::HashSet::new();
    let before = rows.len();
    rows.retain(|r| {
        seen.insert(
            serde_json::to_string(&(&r.report, &r.started, &r.serial, &r.deleted, &r.outcome)).unwrap_or_default(),
        )
    });
    if rows.len() < before {
        warnings.push(format!("{} report(s) seen twice were counted once", before - rows.len()));
    }
    Ok((rows, warnings))
}

/// Runs `rescue collect`.
pub fn run(args: &CollectArgs) -> Result<()> {
    let inputs: Vec<&Path> = args.sources.iter().map(PathBuf::as_path).collect();
    let stdout = Path::new("-");
    let outputs = [
        ("--out", args.out.as_deref()),
        ("--html", args.html.as_deref()),
        ("--missing-keys", args.missing_keys.as_deref()),
    ];
    for (flag, path) in outputs {
        match path {
            Some(p) if p != stdout => output::check_output(flag, p, &inputs)?,
            Some(_) if flag != "--out" => bail!("{flag} needs a file name (`-` is for --out only)"),
            _ => {}
        }
    }
    let table = match args.out.as_deref() {
        None => None,
        Some(p) if p == stdout => Some(("csv", p)),
        Some(p) => match p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("csv") => Some(("csv", p)),
            Some("json") => Some(("json", p)),
            _ => bail!("--out {}: name a .csv or .json file", p.display()),
        },
    };
    if let Some(dir) = &args.restore_index {
        let [root] = &args.sources[..] else { bail!("--restore-index reads one SOURCE: the report URL's folder") };
        restore_index(root, dir)?;
    }
    let (rows, warnings) = collect(&args.sources)?;
    for w in &warnings {
        say_err!("warning: {w}");
    }
    if let Some((kind, path)) = table {
        let bytes = match kind {
            "csv" => to_csv(&rows).into_bytes(),
            _ => {
                let mut v = serde_json::to_vec_pretty(&rows)?;
                v.push(b'\n');
                v
            }
        };
        write(path, bytes)?;
    }
    if let Some(path) = &args.html {
        let made = rescue_engine::util::time::filetime_display(crate::clock::now_filetime());
        write(path, crate::sweep::page::render(&rows, &made).into_bytes())?;
        say_err!("{}: the fleet page", path.display());
    }
    if let Some(path) = &args.missing_keys {
        let keys = crate::sweep::missing_keys::missing(&rows);
        write(path, crate::sweep::missing_keys::to_csv(&keys).into_bytes())?;
        say_err!("{}: {} BitLocker Key ID(s) still missing", path.display(), keys.len());
    }
    let count = |o: &str| rows.iter().filter(|r| r.outcome == o).count();
    let (fixed, failed) = (count("FIXED"), count("FAILED"));
    say_err!(
        "{} report(s) from {} source(s): {fixed} FIXED, {} NOTHING TO DO, {failed} FAILED, {} SAFE MODE SET",
        rows.len(),
        args.sources.len(),
        count("NOTHING TO DO"),
        count("SAFE MODE SET")
    );
    let restores: Vec<&Row> = rows.iter().filter(|r| r.restored > 0).collect();
    if !restores.is_empty() {
        let files: usize = restores.iter().map(|r| r.restored).sum();
        say_err!("restore runs: {} put back {files} file(s) and hive(s)", restores.len());
    }
    Ok(())
}

/// Writes `dir/<serial>.json` for every volume serial with backups below
/// `root` (the report URL's folder: `<run>/backups/<serial>/<path>` beside
/// `<path>.json`): `{"backups": [{"run", "at"}]}`, `at` relative to `root`,
/// oldest run first. What a network-booted restore agent fetches first.
fn restore_index(root: &Path, dir: &Path) -> Result<()> {
    use rescue_engine::rules::backup::BackupSink;
    let mut sink = crate::host::backup_dir::DirSink::new(root.to_path_buf());
    let listed = sink.list("").map_err(anyhow::Error::msg)?;
    let mut by_serial: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for s in listed {
        let Ok(rel) = Path::new(&s.at).strip_prefix(root) else { continue };
        let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        // The server's layout: <run>/backups/<serial>/<path…>.
        let [run, backups, serial, _, ..] = &parts[..] else { continue };
        if backups != "backups" || serial.len() != 16 || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        by_serial
            .entry(serial.to_ascii_uppercase())
            .or_default()
            .push(serde_json::json!({ "run": run, "at": parts.join("/") }));
    }
    if by_serial.is_empty() {
        bail!("no backups below {} in the report URL's layout (<run>/backups/<serial>/…)", root.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (serial, mut backups) in by_serial {
        backups.sort_by(|a, b| a["at"].as_str().cmp(&b["at"].as_str()));
        let json = serde_json::to_vec_pretty(&serde_json::json!({ "backups": backups }))?;
        let at = dir.join(format!("{serial}.json"));
        output::write_pieces(&at, json.len() as u64, &[(0, json)], output::Readers::AsUmaskSays)?;
        say_err!("{}: {} backup(s)", at.display(), backups.len());
    }
    Ok(())
}

/// Writes an output: `-` is standard output, anything else a file written atomically.
fn write(path: &Path, bytes: Vec<u8>) -> Result<()> {
    if path == Path::new("-") {
        use std::io::Write;
        std::io::stdout().write_all(&bytes)?;
        return Ok(());
    }
    output::write_pieces(path, bytes.len() as u64, &[(0, bytes)], output::Readers::AsUmaskSays)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_masks_recovery_passwords_only() {
        let pw = "236808-089419-192665-495704-618299-073414-538373-542366";
        assert_eq!(scrub(&format!("key {pw} typed")), "key [recovery password removed] typed");
        assert_eq!(scrub(&pw.replace('-', "")), "[recovery password removed]");
        assert_eq!(scrub(&pw.replace('-', " ")), "[recovery password removed]");
        for keep in ["disk 1: 512 MiB", "2026-11-28T10:11:12Z", "123456-123456", "serial 0123456789"] {
            assert_eq!(scrub(keep), keep);
        }
    }

    #[test]
    fn report_text_is_kept_on_one_line_and_clipped() {
        assert_eq!(scrub("a\x1b[2Jb\x07\nc"), "a\\u{1b}[2Jb\\u{7}\\u{a}c");
        let long = scrub(&"x".repeat(10_000));
        assert_eq!(long.chars().count(), MAX_TEXT + 1);
        let mut v: Vec<usize> = (0..1000).collect();
        cap(&mut v, |n| n);
        assert_eq!((v.len(), v[MAX_LIST - 1]), (MAX_LIST, 1000 - (MAX_LIST - 1)));
    }

    /// Reports come from any PC on the network: mutated and truncated
    /// reports are rows or warnings, never a panic.
    #[test]
    fn mutated_reports_never_panic() {
        let good = br#"{"agent_version":"0.1.0","front_end":"agent (x86_64)","started":"2026-11-28T10:00:00Z",
            "machine":{"manufacturer":"QEMU","model":"Standard PC","serial_number":"SN-1"},"outcome":"FIXED",
            "reason":null,"bitlocker":[{"volume":0,"recovery_key_ids":["B5D1E0A1-6C0F-4E7E-9A4B-0123456789AB"],
            "skipped":"no key"}],"disks":[{"label":"disk 1","error":"x"}],"result":{"profile":"p","ok":true,
            "volumes":[{"index":0,"partition":1,"rules":[{"files":[{"path":"a.sys","action":"deleted",
            "sha256":"00"}]}]}],"errors":["e"]}}"#;
        let (mut rows, mut warnings) = (Vec::new(), Vec::new());
        add_report(&mut rows, &mut warnings, "s", "good.json", good);
        assert_eq!(rows.len(), 1, "{warnings:?}");
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..5000 {
            let mut b = good.to_vec();
            for _ in 0..1 + i % 6 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed as usize) % b.len();
                b[at] = b"{}[]\",:0aZ\x1b\n-9 t"[(seed >> 40) as usize % 16];
            }
            if i % 5 == 0 {
                b.truncate((seed as usize) % good.len());
            }
            add_report(&mut rows, &mut warnings, "s", "m.json", &b);
        }
    }

    #[test]
    fn report_names_in_any_utf8() {
        assert!(is_json("pc-01.json") && is_json("PC.JSON") && is_json("été.json"));
        assert!(!is_json(".json") && !is_json("ab€") && !is_json("x.jsön") && !is_json("日本語"));
    }
}
