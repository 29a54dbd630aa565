//! The registry engine against real Windows hives (../shared/corpus/registry,
//! from regipy's tests) and hivex (Debian python3-hivex, through
//! tests/support/hive_dump.py), which reads every hive we write: edited
//! values read back, nothing else changed, the base block is clean with a
//! valid checksum. Needs xz and python3-hivex.

use rescue_engine::formats::registry::bcd::{self, SafeMode};
use rescue_engine::formats::registry::cell::Hive;
use rescue_engine::formats::registry::edit::{Data, Editor};
use rescue_engine::formats::registry::RegError;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TS: u64 = 0x01DB_0000_0000_0000;

fn corpus(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/registry").join(format!("{name}.xz"));
    let o = common::ntfs3g::limits::output(Command::new("xz").arg("-dc").arg(&p)).unwrap();
    assert!(o.status.success(), "xz -dc {}: corpus missing?", p.display());
    o.stdout
}

/// hivex's view of a hive file: sorted lines (see hive_dump.py).
fn dump(path: &Path) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/hive_dump.py");
    let o = common::ntfs3g::limits::output(Command::new("/usr/bin/python3").arg(script).arg(path)).unwrap();
    assert!(o.status.success(), "hivex could not read {}: {}", path.display(), String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().lines().map(String::from).collect()
}

/// A clean SYSTEM hive: the corpus' dirty one, committed by hivex (it writes the primary as it reads it).
fn clean_system(dir: &Path) -> PathBuf {
    let p = dir.join("SYSTEM");
    fs::write(&p, corpus("SYSTEM_2")).unwrap();
    let o = Command::new("hivexsh").arg("-w").arg(&p).stdin(std::process::Stdio::piped()).spawn().and_then(|mut c| {
        use std::io::Write;
        c.stdin.take().unwrap().write_all(b"commit\n")?;
        c.wait_with_output()
    });
    assert!(o.unwrap().status.success(), "hivexsh commit");
    p
}

/// Applies `f` to the hive at `path` with our editor, writes the result (the
/// final bytes), checks the writes `finish` planned give the same bytes, and
/// returns hivex's view before and after.
fn edit(path: &Path, f: impl FnOnce(&mut Editor)) -> (Vec<String>, Vec<String>) {
    let before_bytes = fs::read(path).unwrap();
    let before = dump(path);
    let mut ed = Editor::new(Hive::open(before_bytes.clone()).unwrap()).unwrap();
    f(&mut ed);
    let bytes = ed.finish(TS).unwrap();
    let edits = rescue_engine::formats::registry::edit::writes(&before_bytes, &bytes).unwrap();
    // The planned writes, applied to the old file, give exactly the new bytes.
    let mut replay = before_bytes.clone();
    for (at, b) in &edits {
        replay[*at as usize..*at as usize + b.len()].copy_from_slice(b);
    }
    assert!(replay == bytes, "the planned writes do not produce the edited hive");
    assert_eq!(bytes.len(), before_bytes.len(), "the hive file changed size");
    fs::write(path, &bytes).unwrap();
    (before, dump(path))
}

/// Lines only in `a`, and lines only in `b`.
fn diff(a: &[String], b: &[String]) -> (BTreeSet<String>, BTreeSet<String>) {
    let (sa, sb): (BTreeSet<String>, BTreeSet<String>) = (a.iter().cloned().collect(), b.iter().cloned().collect());
    (sa.difference(&sb).cloned().collect(), sb.difference(&sa).cloned().collect())
}

fn set(lines: &[&str]) -> BTreeSet<String> {
    lines.iter().map(|s| s.to_string()).collect()
}

#[test]
fn reads_every_key_and_value_as_hivex_does() {
    let t = tempfile::tempdir().unwrap();
    for (name, path) in [
        ("BCD", {
            let p = t.path().join("BCD");
            fs::write(&p, corpus("BCD")).unwrap();
            p
        }),
        ("SYSTEM", clean_system(t.path())),
    ] {
        let h = Hive::open(fs::read(&path).unwrap()).unwrap();
        let mut ours = Vec::new();
        let mut stack = vec![(h.root().unwrap(), String::new())];
        while let Some((k, p)) = stack.pop() {
            let values = h.values(&k).unwrap();
            if values.is_empty() {
                ours.push(format!("{p}\t-"));
            }
            for v in values {
                let d: String = h.data(&v).unwrap().iter().map(|b| format!("{b:02x}")).collect();
                ours.push(format!("{p}\t{}\t{}\t{d}", v.name_string(), v.kind));
            }
            for c in h.subkeys(&k).unwrap() {
                let cp = if p.is_empty() { c.name_string() } else { format!("{p}\\{}", c.name_string()) };
                stack.push((c, cp));
            }
        }
        ours.sort();
        let theirs = dump(&path);
        assert_eq!(ours.len(), theirs.len() - 1, "{name}: number of lines");
        assert!(ours == theirs[1..], "{name}: our reading differs from hivex's");
    }
}

#[test]
fn lookups_are_case_insensitive_as_in_windows() {
    let t = tempfile::tempdir().unwrap();
    let h = Hive::open(fs::read(clean_system(t.path())).unwrap()).unwrap();
    let a = h.open_path("ControlSet001\\Services\\Tcpip").unwrap();
    let b = h.open_path("controlset001\\SERVICES\\tcpIP").unwrap();
    assert_eq!(a.off, b.off);
    let v: Vec<u16> = "start".encode_utf16().collect();
    assert!(h.value(&a, &v).unwrap().is_some());
    assert!(matches!(h.open_path("ControlSet001\\Services\\NoSuchService"), Err(RegError::NotFound { .. })));
}

#[test]
fn values_set_in_place_and_in_new_cells_read_back_in_hivex() {
    let t = tempfile::tempdir().unwrap();
    let path = clean_system(t.path());
    let (before, after) = edit(&path, |ed| {
        let tcpip = ed.hive().open_path("ControlSet001\\Services\\Tcpip").unwrap();
        // An existing DWORD: in place, inside its vk cell.
        ed.set_value(&tcpip, "Start", &Data::Dword(4), TS).unwrap();
        // New values: a vk cell, its data, a longer value list.
        ed.set_value(&tcpip, "RescueFlag", &Data::Dword(1), TS).unwrap();
        ed.set_value(&tcpip, "RescueQ", &Data::Qword(0x1122334455667788), TS).unwrap();
        ed.set_value(&tcpip, "RescueText", &Data::Sz("fixed by rescue".into()), TS).unwrap();
        // An existing string made longer than its cell: a new data cell.
        ed.set_value(&tcpip, "DisplayName", &Data::Sz("x".repeat(300)), TS).unwrap();
    });
    let (gone, new) = diff(&before, &after);
    let old_name =
        gone.iter().find(|l| l.starts_with("ControlSet001\\Services\\Tcpip\tDisplayName\t")).unwrap().clone();
    let long: String =
        "x".repeat(300).encode_utf16().chain([0]).flat_map(|u| u.to_le_bytes()).map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        new,
        set(&[
            &after[0],
            "ControlSet001\\Services\\Tcpip\tStart\t4\t04000000",
            "ControlSet001\\Services\\Tcpip\tRescueFlag\t4\t01000000",
            "ControlSet001\\Services\\Tcpip\tRescueQ\t11\t8877665544332211",
            &format!(
                "ControlSet001\\Services\\Tcpip\tRescueText\t1\t{}",
                "fixed by rescue"
                    .encode_utf16()
                    .chain([0])
                    .flat_map(|u| u.to_le_bytes())
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ),
            &format!("ControlSet001\\Services\\Tcpip\tDisplayName\t1\t{long}"),
        ])
    );
    assert_eq!(gone.len(), 3, "{gone:?}"); // base line, old Start, old DisplayName
    assert!(gone.contains(&old_name));
    assert_eq!(after[0], "base\t207\t207\tchecksum ok", "base block not clean and sealed");
    // A type mismatch is refused, and so is a hive we did not recover.
    let mut ed = Editor::new(Hive::open(fs::read(&path).unwrap()).unwrap()).unwrap();
    let tcpip = ed.hive().open_path("ControlSet001\\Services\\Tcpip").unwrap();
    assert!(matches!(ed.set_value(&tcpip, "Start", &Data::Sz("4".into()), TS), Err(RegError::TypeMismatch { .. })));
    let dirty = Hive::open(corpus("SYSTEM_2")).unwrap();
    assert!(matches!(Editor::new(dirty), Err(RegError::Dirty { .. })));
}

#[test]
fn bcd_safe_mode_set_changed_and_removed_as_bcdedit_does() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("BCD");
    let original = corpus("BCD");
    fs::write(&path, &original).unwrap();
    let mut loader = String::new();
    let (before, after) = edit(&path, |ed| {
        let c = bcd::set_safe_mode(ed, SafeMode::Minimal, TS).unwrap();
        assert_eq!((c.before, c.after), (None, Some(0)));
        loader = c.loader;
    });
    let key = format!("Objects\\{loader}\\Elements\\25000080");
    let (gone, new) = diff(&before, &after);
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(new, set(&[&after[0], &format!("{key}\tElement\t3\t0000000000000000")]));
    let (_, after2) = edit(&path, |ed| {
        assert_eq!(bcd::set_safe_mode(ed, SafeMode::Network, TS).unwrap().before, Some(0));
    });
    assert!(after2.contains(&format!("{key}\tElement\t3\t0100000000000000")));
    let (_, after3) = edit(&path, |ed| {
        assert_eq!(bcd::set_safe_mode(ed, SafeMode::Off, TS).unwrap().after, None);
    });
    assert_eq!(after3[1..], dump_of(t.path(), &original)[1..], "safe_mode off gives the original store back");
    // Off again: nothing to write.
    let mut ed = Editor::new(Hive::open(fs::read(&path).unwrap()).unwrap()).unwrap();
    bcd::set_safe_mode(&mut ed, SafeMode::Off, TS).unwrap();
    let old = fs::read(&path).unwrap();
    assert!(ed.finish(TS).unwrap() == old, "nothing to change, yet the hive changed");
}

fn dump_of(dir: &Path, bytes: &[u8]) -> Vec<String> {
    let p = dir.join("dump-of.hive");
    fs::write(&p, bytes).unwrap();
    dump(&p)
}

#[test]
fn corrupted_and_hostile_hives_are_errors_never_panics() {
    assert!(Hive::open(corpus("corrupted_system_hive")).and_then(|h| walk(&h)).is_err());
    let good = corpus("BCD");
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..3000 {
        let mut b = good.clone();
        for _ in 0..1 + i % 8 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed as usize) % b.len();
            b[at] = (seed >> 32) as u8;
        }
        if i % 7 == 0 {
            b.truncate((seed as usize) % good.len());
        }
        if let Ok(h) = Hive::open(b) {
            let _ = walk(&h);
            if let Ok(mut ed) = Editor::new(h.clone()) {
                let _ = bcd::set_safe_mode(&mut ed, SafeMode::Minimal, TS);
            }
            edits_leave_the_key_readable(&h);
        }
    }
}

/// Every value of the first keys of `h` rewritten shorter and longer: an
/// edit the editor accepts leaves a hive whose edited key reads whole (a
/// mutated hive whose cells overlap must be refused, not half-written).
fn edits_leave_the_key_readable(h: &Hive) {
    let mut keys = Vec::new();
    let mut stack: Vec<_> = h.root().into_iter().collect();
    while let Some(k) = stack.pop() {
        if keys.len() >= 8 {
            break;
        }
        stack.extend(h.subkeys(&k).unwrap_or_default());
        keys.push(k);
    }
    for k in keys {
        for v in h.values(&k).unwrap_or_default().into_iter().take(4) {
            for data in [Data::Dword(4), Data::Binary(vec![7; 300])] {
                let Ok(mut ed) = Editor::new(h.clone()) else { return };
                if ed.set_value(&k, &v.name_string(), &data, TS).is_err() {
                    continue;
                }
                let after = Hive::open(ed.finish(TS).unwrap()).expect("an edited hive opens");
                let key = after.key(k.off).expect("the edited key reads");
                for v in after.values(&key).expect("its values read") {
                    after.data(&v).expect("every value of the edited key reads");
                }
            }
        }
    }
}

/// Reads every key and value (at most 100,000 keys); the first error ends the walk.
fn walk(h: &Hive) -> Result<usize, RegError> {
    let mut n = 0;
    let mut stack = vec![h.root()?];
    while let Some(k) = stack.pop() {
        for v in h.values(&k)? {
            h.data(&v)?;
        }
        n += 1;
        if n > 100_000 {
            break; // a key listed under itself: the walk is bounded, the engine never loops
        }
        stack.extend(h.subkeys(&k)?);
    }
    Ok(n)
}

mod common;

/// regipy's recovery (PyPI; its library, as `regipy-process-transaction-logs`
/// runs it) of `hive` with `logs`, applied in the order given; `None` when
/// regipy finds no log entry to replay.
fn regipy_recover(dir: &Path, hive: &[u8], logs: &[&[u8]]) -> Option<Vec<u8>> {
    let (h, out) = (dir.join("r.hive"), dir.join("r.out"));
    fs::write(&h, hive).unwrap();
    let names: Vec<PathBuf> = (0..logs.len()).map(|i| dir.join(format!("r.log{i}"))).collect();
    logs.iter().zip(&names).for_each(|(l, n)| fs::write(n, l).unwrap());
    // regipy applies its `secondary` log first; it takes no empty log.
    let py = "import sys\nfrom regipy.recovery import apply_transaction_logs\n\
              logs = sys.argv[2:-1]\n\
              apply_transaction_logs(sys.argv[1], primary_log_path=logs[-1], secondary_log_path=logs[0] if len(logs) > 1 else None, restored_hive_path=sys.argv[-1])\n";
    let o = common::ntfs3g::limits::output(Command::new("python3").arg("-c").arg(py).arg(&h).args(&names).arg(&out))
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() && err.contains("vector magic was not expected") {
        return None;
    }
    assert!(o.status.success(), "regipy: {err}");
    Some(fs::read(out).unwrap())
}

fn seqs(b: &[u8]) -> (u32, u32) {
    (u32::from_le_bytes(b[4..8].try_into().unwrap()), u32::from_le_bytes(b[8..12].try_into().unwrap()))
}

/// The base sequence number of a log (0 for a missing or empty one).
fn log_seq(l: &[u8]) -> u32 {
    if l.len() >= 512 {
        seqs(l).0
    } else {
        0
    }
}

/// A hive write through `rescue apply`'s path (rules::apply → registry rules →
/// journal → NTFS overwrite), stopped after every write, for `hive` and its
/// logs (`None`: no log files). The volume always passes ntfsfix and mounts;
/// the hive is the original (nothing written yet) or complete and clean, or
/// it is dirty and its logs, recovered by regipy (not our code), give the
/// hive before the change or (once the hive itself was touched) exactly the
/// edited one. Returns the journal line of the report.
fn interrupted_after_every_write(hive: &[u8], logs: Option<[&[u8]; 2]>) -> Option<String> {
    use rescue_engine::formats::ntfs::plan::{execute, Plan};
    use rescue_engine::rules::backup::NoBackup;
    use rescue_engine::rules::profile::Profile;
    use rescue_engine::rules::Options;
    let t = tempfile::tempdir().unwrap();
    let cfg = "Windows/System32/config";
    let img = common::ntfs3g::make_volume(t.path(), "win.img", 96, &[], &format!("mkdir -p {cfg}"));
    common::ntfs3g::with_mount(&img, &[], |m| {
        fs::write(m.join(cfg).join("SYSTEM"), hive).unwrap();
        for (ext, l) in ["LOG1", "LOG2"].iter().zip(logs.iter().flatten()) {
            fs::write(m.join(cfg).join(format!("SYSTEM.{ext}")), l).unwrap();
        }
    });
    let profile = Profile::parse("name = \"t\"\n[[service]]\nname = \"Tcpip\"\nstart = \"disabled\"\n").unwrap();
    let mut dev = common::FileDev::open(&img);
    let r = common::apply(&profile, &mut dev, Options { dry_run: true, now: TS }, &mut NoBackup);
    drop(dev);
    let h = &r.volume.hives[0];
    assert_eq!(h.action.as_str(), "would write", "{r:#?}");
    let plan = Plan { writes: h.writes.clone(), notes: Vec::new() };
    assert!(plan.len() >= 3, "{plan}");
    // The hive before the change, as regipy recovers it from the original
    // files (for a clean hive: the hive itself).
    let before = match logs {
        Some(l) => {
            let mut l = l.to_vec();
            l.sort_by_key(|l| log_seq(l));
            let l: Vec<&[u8]> = l.into_iter().filter(|l| !l.is_empty()).collect();
            regipy_recover(t.path(), hive, &l).unwrap_or_else(|| hive.to_vec())
        }
        None => hive.to_vec(),
    };
    let tcpip_start = |dump: &[String]| -> Option<String> {
        dump.iter().find(|l| l.starts_with("ControlSet001\\Services\\Tcpip\tStart\t")).cloned()
    };
    // Tcpip's Start as hivex reads it in a hive without logs (the only
    // judge of a dirty hive that has no logs).
    let start_before = match logs {
        Some(_) => String::new(),
        None => {
            let p = t.path().join("before.hive");
            fs::write(&p, hive).unwrap();
            tcpip_start(&dump(&p)).expect("Tcpip has a Start value")
        }
    };
    let mut edited = None::<Vec<u8>>;
    // Without logs, every cut. With them, every cut among the log writes,
    // the dirty base block and the first pages, the last ones, and every
    // 16th page between: a recovered dirty hive is rewritten in hundreds of
    // pages, and the states between two page writes differ only in pages
    // the log entries rewrite (the unit tests of `registry::journal` check
    // every cut with our recovery).
    let n = plan.len();
    for k in (0..=n).rev().filter(|&k| logs.is_none() || k <= 8 || k + 3 >= n || k % 16 == 0) {
        let part = common::ntfs3g::copy(&img, &t.path().join(format!("k{k}.img")));
        execute(&mut common::FileDev::open(&part), &plan, Some(k)).unwrap();
        common::ntfs3g::check_volume(&part);
        let cat = |name: &str| common::ntfs3g::bytes(Command::new("ntfscat").arg(&part).arg(format!("{cfg}/{name}")));
        let now = cat("SYSTEM");
        assert_eq!(now.len(), hive.len());
        let (s1, s2) = seqs(&now);
        if k == n {
            // Complete: clean, and hivex reads the change.
            assert_eq!(s1, s2);
            let p = t.path().join("final.hive");
            fs::write(&p, &now).unwrap();
            assert!(dump(&p).contains(&"ControlSet001\\Services\\Tcpip\tStart\t4\t04000000".to_string()));
            edited = Some(now);
            fs::remove_file(part).unwrap();
            continue;
        }
        let edited = edited.as_deref().unwrap();
        // The first write to the hive marks it dirty: it differs from then on.
        let touched = now != hive;
        if s1 == s2 {
            assert!(now == hive, "k={k}: a half-written hive looks clean");
        } else if logs.is_some() {
            let mut l = [cat("SYSTEM.LOG1"), cat("SYSTEM.LOG2")];
            l.sort_by_key(|l| log_seq(l));
            let l: Vec<&[u8]> = l.iter().map(|l| l.as_slice()).filter(|l| !l.is_empty()).collect();
            match regipy_recover(t.path(), &now, &l) {
                Some(theirs) => {
                    let want: &[u8] = if touched { edited } else { &before };
                    let ok = theirs[4096..] == want[4096..] || (!touched && theirs[4096..] == edited[4096..]);
                    assert!(ok, "k={k}: regipy recovers neither the hive before nor after the change");
                }
                // Written without a log entry: nothing to replay is right (a
                // stale entry replayed would give a third hive).
                None => assert!(
                    r.volume.hives[0].journal.as_deref().is_some_and(|j| j.starts_with("no log entry")),
                    "k={k}: {:?}",
                    r.volume.hives[0].journal
                ),
            }
        }
        if logs.is_none() && s1 != s2 {
            // Without logs a dirty hive is all there is: hivex still reads
            // it, and Tcpip starts as before or as changed, nothing else.
            let p = t.path().join("cut.hive");
            fs::write(&p, &now).unwrap();
            let start = tcpip_start(&dump(&p));
            let changed = "ControlSet001\\Services\\Tcpip\tStart\t4\t04000000";
            assert!(
                start.as_deref() == Some(start_before.as_str()) || start.as_deref() == Some(changed),
                "k={k}: {start:?}"
            );
        }
        fs::remove_file(part).unwrap();
    }
    r.volume.hives[0].journal.clone()
}

#[test]
fn hive_write_interrupted_after_every_write() {
    use rescue_engine::formats::registry::log;
    let t = tempfile::tempdir().unwrap();
    // A clean hive without logs (hivex made it): written without a log entry.
    let clean = fs::read(clean_system(t.path())).unwrap();
    assert_eq!(
        interrupted_after_every_write(&clean, None).as_deref(),
        Some("no log entry (no transaction log in the new format with room for one)")
    );
    // A dirty hive with its logs (Windows 10): the entry continues the chain in LOG2.
    let (dirty, log1, log2) = (corpus("SYSTEM_B"), corpus("SYSTEM_B.LOG1"), corpus("SYSTEM_B.LOG2"));
    let j = interrupted_after_every_write(&dirty, Some([&log1, &log2]));
    assert_eq!(j.as_deref(), Some("log entry 2131 in SYSTEM.LOG2, written first"));
    // The same hive as Windows leaves it after writing it out (clean, at
    // 2130) with the same logs: a fresh LOG1 whose only entry is the change.
    let flushed = rescue_engine::formats::registry::log::recover(&dirty, &[&log1, &log2]).unwrap().bytes;
    let j = interrupted_after_every_write(&flushed, Some([&log1, &log2]));
    assert_eq!(j.as_deref(), Some("log entry 2131 in SYSTEM.LOG1, written first"));
    // A clean hive whose LOG1 is too small for the change's entry but holds
    // a stale, valid entry numbered as the hive: written without an entry,
    // after that stale entry is cleared (else a cut would replay it).
    let seq = u32::from_le_bytes(clean[8..12].try_into().unwrap());
    let bins = u32::from_le_bytes(clean[0x28..0x2C].try_into().unwrap());
    let stale_page = vec![0x5Au8; 512];
    let stale = log::entry(seq, bins, 0, &[(bins - 4096, &stale_page)], 0).unwrap();
    let mut small = log::log_base(&clean, 6, seq).unwrap();
    small.extend_from_slice(&stale);
    let j = interrupted_after_every_write(&clean, Some([&small, &[]]));
    assert_eq!(j.as_deref(), Some("no log entry (no transaction log in the new format with room for one)"));
}

/// Hostile hives that hivex reads but whose structures share cells (made
/// by patching a real hive's value cells, as a small regf writer would):
/// every edit of the key is refused before anything changes.
#[test]
fn keys_sharing_cells_with_other_structures_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let clean = fs::read(clean_system(t.path())).unwrap();
    let h = Hive::open(clean.clone()).unwrap();
    let tcpip = h.open_path("ControlSet001\\Services\\Tcpip").unwrap();
    let value = |name: &str| {
        let n: Vec<u16> = name.encode_utf16().collect();
        h.value(&tcpip, &n).unwrap().unwrap()
    };
    let (start, image, display) = (value("Start"), value("ImagePath"), value("DisplayName"));
    assert!(!image.is_inline() && !display.is_inline());
    // Patches the vk cell of `v`: (data size, data offset).
    let patch = |v: &rescue_engine::formats::registry::key::Value, size: u32, data: u32| {
        let mut b = clean.clone();
        let at = Hive::file_offset(v.off) + 4;
        b[at + 4..at + 8].copy_from_slice(&size.to_le_bytes());
        b[at + 8..at + 12].copy_from_slice(&data.to_le_bytes());
        b
    };
    let cases: [(&str, Vec<u8>, &str, Data); 5] = [
        ("Start's data in ImagePath's data cell", patch(&start, 4, image.data_off), "Start", Data::Dword(4)),
        (
            "ImagePath's data in the key's own nk cell",
            patch(&image, 8, tcpip.off),
            "ImagePath",
            Data::Sz("x".repeat(99)),
        ),
        ("ImagePath's data is the value list", patch(&image, 4, tcpip.value_list), "ImagePath", Data::Sz("y".into())),
        (
            "ImagePath's data inside DisplayName's cell",
            patch(&image, 4, display.data_off + 8),
            "ImagePath",
            Data::Sz("z".into()),
        ),
        (
            "DisplayName claims 0x7FFFFFF0 bytes",
            patch(&display, 0x7FFF_FFF0, display.data_off),
            "Start",
            Data::Dword(4),
        ),
    ];
    for (what, hostile, name, data) in cases {
        if what.starts_with("Start's") {
            // hivex reads this hive: the sharing is invisible to a reader.
            let lines = dump_of(t.path(), &hostile);
            assert!(lines.iter().any(|l| l.starts_with("ControlSet001\\Services\\Tcpip\tStart\t")), "{what}");
        }
        let mut ed = Editor::new(Hive::open(hostile.clone()).unwrap()).unwrap();
        let key = ed.hive().open_path("ControlSet001\\Services\\Tcpip").unwrap();
        let r = ed.set_value(&key, name, &data, TS);
        assert!(matches!(r, Err(RegError::Corrupt { .. })), "{what}: {r:?}");
        assert!(ed.finish(TS).unwrap() == hostile, "{what}: the hive changed");
    }
    // The untouched hive still edits (the check does not refuse real hives).
    let mut ed = Editor::new(h).unwrap();
    ed.set_value(&tcpip, "Start", &Data::Dword(4), TS).unwrap();
}

/// `CurrentControlSet` follows `Select\Current` only when it is a DWORD: the
/// same four bytes stored as a string are refused, not read as a number.
#[test]
fn select_current_must_be_a_dword() {
    use rescue_engine::rules::profile::HiveName;
    use rescue_engine::rules::registry::resolve;
    let t = tempfile::tempdir().unwrap();
    let clean = fs::read(clean_system(t.path())).unwrap();
    let h = Hive::open(clean.clone()).unwrap();
    assert_eq!(resolve(&h, HiveName::System, "CurrentControlSet\\Services").unwrap(), "ControlSet001\\Services");
    let select = h.open_path("Select").unwrap();
    let cur = h.value(&select, &"Current".encode_utf16().collect::<Vec<u16>>()).unwrap().unwrap();
    let mut b = clean;
    let at = Hive::file_offset(cur.off) + 4 + 0x0C;
    b[at..at + 4].copy_from_slice(&1u32.to_le_bytes()); // REG_SZ
    let h = Hive::open(b).unwrap();
    let e = resolve(&h, HiveName::System, "CurrentControlSet\\Services").unwrap_err();
    assert!(e.to_string().contains("not a REG_DWORD"), "{e}");
}
