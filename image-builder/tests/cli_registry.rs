//! `rescue apply` with `[[service]]`, `[[registry]]` and `[finish] safe_mode`
//! on whole test disks (`scripts/make-test-disk --hives / --dirty-hive`, real
//! hives from ../shared/corpus/registry), and `rescue reg`. Every hive we
//! wrote is read back by hivex (tests/support/hive_dump.py, Debian
//! python3-hivex), not by our code; a dirty hive's recovery is compared with
//! regipy's (PyPI). The NTFS volume is checked by ntfs-3g.
//!
//! Needs root (FUSE), ntfs-3g, mtools, hivex, regipy.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../tests/support/ntfs3g.rs"]
mod ntfs3g;
use ntfs3g::{bytes, check_volume, run};

const EXE: &str = env!("CARGO_BIN_EXE_rescue");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Disk {
    path: PathBuf,
    offset: usize,
    size: usize,
}

fn make_disk(dir: &Path, args: &[&str]) -> Disk {
    let path = dir.join("pc.img");
    run(Command::new(root().join("scripts/make-test-disk"))
        .args(["--size", "300"])
        .args(args)
        .arg(&path)
        .env("RESCUE", EXE));
    let m: serde_json::Value = serde_json::from_str(&fs::read_to_string(dir.join("pc.img.json")).unwrap()).unwrap();
    let n = |k: &str| m[k].as_u64().unwrap() as usize;
    Disk { path, offset: n("windows_partition_offset"), size: n("windows_partition_size") }
}

impl Disk {
    /// The Windows partition, cut out into `dir/part.img`.
    fn partition(&self, dir: &Path) -> PathBuf {
        let p = dir.join("part.img");
        fs::write(&p, &fs::read(&self.path).unwrap()[self.offset..self.offset + self.size]).unwrap();
        p
    }
    /// A file of the Windows volume, read by ntfs-3g.
    fn ntfs_file(&self, dir: &Path, path: &str) -> PathBuf {
        let out = dir.join(path.rsplit('/').next().unwrap());
        fs::write(&out, bytes(Command::new("ntfscat").arg(self.partition(dir)).arg(path))).unwrap();
        out
    }
    /// Puts `hive` in place of the SYSTEM hive (its logs removed) with
    /// ntfs-3g on `part` (the partition cut out), then the disk back
    /// together; returns the disk's bytes.
    fn put_system_hive(&self, part: &Path, hive: &[u8]) -> Vec<u8> {
        ntfs3g::with_mount(part, &[], |m| {
            let cfg = m.join("Windows/System32/config");
            fs::write(cfg.join("SYSTEM"), hive).unwrap();
            ["SYSTEM.LOG1", "SYSTEM.LOG2"].iter().for_each(|l| _ = fs::remove_file(cfg.join(l)));
        });
        let mut image = fs::read(&self.path).unwrap();
        image[self.offset..self.offset + self.size].copy_from_slice(&fs::read(part).unwrap());
        fs::write(&self.path, &image).unwrap();
        image
    }
    /// The BCD store, read from the ESP by mtools.
    fn bcd(&self, dir: &Path) -> PathBuf {
        self.boot_file(dir, "BCD")
    }
    /// A file of the ESP's EFI/Microsoft/Boot, read by mtools.
    fn boot_file(&self, dir: &Path, name: &str) -> PathBuf {
        let out = dir.join(name);
        let _ = fs::remove_file(&out);
        run(Command::new("mcopy")
            .arg("-i")
            .arg(format!("{}@@1048576", self.path.display()))
            .arg(format!("::/EFI/Microsoft/Boot/{name}"))
            .arg(&out));
        out
    }
}

/// hivex's view of a hive file (see tests/support/hive_dump.py).
fn dump(path: &Path) -> Vec<String> {
    let o = ntfs3g::limits::output(
        Command::new("/usr/bin/python3").arg(root().join("tests/support/hive_dump.py")).arg(path),
    )
    .unwrap();
    assert!(o.status.success(), "hivex could not read {}: {}", path.display(), String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().lines().map(String::from).collect()
}

/// Lines only in `a`, and lines only in `b` (the base-block line left out).
fn diff(a: &[String], b: &[String]) -> (BTreeSet<String>, BTreeSet<String>) {
    let sa: BTreeSet<String> = a[1..].iter().cloned().collect();
    let sb: BTreeSet<String> = b[1..].iter().cloned().collect();
    (sa.difference(&sb).cloned().collect(), sb.difference(&sa).cloned().collect())
}

fn apply(dir: &Path, disk: &Disk, profile: &str, extra: &[&str]) -> std::process::Output {
    let p = dir.join("profile.toml");
    fs::write(&p, profile).unwrap();
    ntfs3g::limits::output(
        Command::new(EXE)
            .args(["apply", "--profile"])
            .arg(&p)
            .arg("--backup-dir")
            .arg(dir.join("backups"))
            .args(extra)
            .arg(&disk.path),
    )
    .unwrap()
}

const CSAGENT_OFF: &str = "name = \"csagent-off\"\n[[service]]\nname = \"CSAgent\"\nstart = \"disabled\"\n[finish]\nsafe_mode = \"minimal\"\n";

#[test]
fn service_disabled_in_every_control_set_and_safe_mode_set() {
    let t = tempfile::tempdir().unwrap();
    let disk = make_disk(t.path(), &["--hives"]);
    let sys_before = dump(&disk.ntfs_file(t.path(), "Windows/System32/config/SYSTEM"));
    let bcd_original = fs::read(disk.bcd(t.path())).unwrap();
    let bcd_before = dump(&disk.bcd(t.path()));
    let image_before = fs::read(&disk.path).unwrap();
    // A dry run says what it would do and writes nothing.
    let o = apply(t.path(), &disk, CSAGENT_OFF, &["--dry-run"]);
    let so = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && so.contains("3 registry change(s) would be made") && so.contains("would write"),
        "{so}"
    );
    assert!(fs::read(&disk.path).unwrap() == image_before, "the dry run wrote");
    // The real run.
    let o = apply(t.path(), &disk, CSAGENT_OFF, &[]);
    let so = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && so.contains("3 registry change(s) made"),
        "{so}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(so.contains("bcdedit /deletevalue {default} safeboot"), "the undo is not shown: {so}");
    // The change went into a fresh LOG1 first: regipy, applying it to the
    // original hive, gets the hive we wrote.
    assert!(so.contains("transaction log: log entry ") && so.contains(" in SYSTEM.LOG1, written first"), "{so}");
    let cfg = "Windows/System32/config/";
    let sys_written = fs::read(disk.ntfs_file(t.path(), &format!("{cfg}SYSTEM"))).unwrap();
    let log1 = disk.ntfs_file(t.path(), &format!("{cfg}SYSTEM.LOG1"));
    let orig = t.path().join("SYSTEM.orig");
    fs::write(&orig, &image_before[disk.offset..disk.offset + disk.size]).unwrap();
    fs::write(&orig, bytes(Command::new("ntfscat").arg(&orig).arg(format!("{cfg}SYSTEM")))).unwrap();
    // (An empty path: regipy takes no secondary log.)
    let replayed = fs::read(regipy_recover(t.path(), &orig, Path::new(""), &log1)).unwrap();
    assert!(replayed[4096..] == sys_written[4096..], "regipy's replay of LOG1 differs from the hive written");
    let sys_after = dump(&disk.ntfs_file(t.path(), "Windows/System32/config/SYSTEM"));
    let (gone, new) = diff(&sys_before, &sys_after);
    let want_new: BTreeSet<String> = ["ControlSet001", "ControlSet002"]
        .iter()
        .map(|cs| format!("{cs}\\Services\\CSAgent\tStart\t4\t04000000"))
        .collect();
    assert_eq!(new, want_new, "hivex sees other changes");
    assert_eq!(gone.len(), 2, "{gone:?}");
    assert!(
        sys_after[0].ends_with("checksum ok") && sys_after[0].split('\t').nth(1) == sys_after[0].split('\t').nth(2),
        "{}",
        sys_after[0]
    );
    let bcd_after = dump(&disk.bcd(t.path()));
    let (gone, new) = diff(&bcd_before, &bcd_after);
    assert!(gone.is_empty(), "{gone:?}");
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(new.iter().next().unwrap().ends_with("\\Elements\\25000080\tElement\t3\t0000000000000000"), "{new:?}");
    // The store's change went into BCD.LOG1 first: regipy replays it over the original.
    assert!(so.contains(" in BCD.LOG1, written first"), "{so}");
    let bcd_orig = t.path().join("BCD.orig");
    fs::write(&bcd_orig, &bcd_original).unwrap();
    let log1 = disk.boot_file(t.path(), "BCD.LOG1");
    let replayed = fs::read(regipy_recover(t.path(), &bcd_orig, Path::new(""), &log1)).unwrap();
    assert!(replayed[4096..] == fs::read(disk.bcd(t.path())).unwrap()[4096..], "regipy's replay of BCD.LOG1 differs");
    // The originals are in the backup folder, byte for byte.
    let backups = t.path().join("backups");
    let sys_backup = fs::read(
        backups
            .join("vol0-")
            .parent()
            .unwrap()
            .read_dir()
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains("vol0-"))
            .unwrap()
            .join("Windows/System32/config/SYSTEM"),
    )
    .unwrap();
    assert_eq!(dump_of(t.path(), &sys_backup), sys_before);
    check_volume(&disk.partition(t.path()));
    // Again: nothing to do (exit 3), nothing written.
    let image_fixed = fs::read(&disk.path).unwrap();
    let o = apply(t.path(), &disk, CSAGENT_OFF, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(fs::read(&disk.path).unwrap() == image_fixed);
    // safe_mode = "off" restores the original store.
    let o = apply(t.path(), &disk, "name = \"normal\"\n[finish]\nsafe_mode = \"off\"\n", &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(dump(&disk.bcd(t.path()))[1..], bcd_before[1..]);
    // rescue reg shows the change.
    let o = run(Command::new(EXE).arg("reg").arg(&disk.path).arg("SYSTEM\\CurrentControlSet\\Services\\CSAgent"));
    assert!(o.contains("Start = 4 (0x00000004)"), "{o}");
}

fn dump_of(dir: &Path, bytes: &[u8]) -> Vec<String> {
    let p = dir.join("dump-of");
    fs::write(&p, bytes).unwrap();
    dump(&p)
}

/// regipy's recovery of a dirty hive from its logs (its library, as its
/// `regipy-process-transaction-logs` command runs it). It applies the
/// secondary log first: here LOG1 holds the older entries.
fn regipy_recover(dir: &Path, hive: &Path, log1: &Path, log2: &Path) -> PathBuf {
    let out = dir.join("regipy-recovered");
    let py = "import sys\nfrom regipy.recovery import apply_transaction_logs\n\
              apply_transaction_logs(sys.argv[1], primary_log_path=sys.argv[3], secondary_log_path=sys.argv[2], restored_hive_path=sys.argv[4])\n";
    run(Command::new("python3").arg("-c").arg(py).arg(hive).arg(log1).arg(log2).arg(&out));
    // regipy leaves the base block's checksum as it was: recompute it so hivex opens the file.
    let mut b = fs::read(&out).unwrap();
    let x = (0..127).fold(0u32, |x, i| x ^ u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap()));
    let x = match x {
        0 => 1,
        0xFFFF_FFFF => 0xFFFF_FFFE,
        x => x,
    };
    b[0x1FC..0x200].copy_from_slice(&x.to_le_bytes());
    fs::write(&out, b).unwrap();
    out
}

#[test]
fn dirty_hive_is_recovered_like_regipy_then_edited() {
    let t = tempfile::tempdir().unwrap();
    let disk = make_disk(t.path(), &["--dirty-hive"]);
    let cfg = "Windows/System32/config/";
    let hive = disk.ntfs_file(t.path(), &format!("{cfg}SYSTEM"));
    let (l1, l2) = (
        disk.ntfs_file(t.path(), &format!("{cfg}SYSTEM.LOG1")),
        disk.ntfs_file(t.path(), &format!("{cfg}SYSTEM.LOG2")),
    );
    let theirs = dump(&regipy_recover(t.path(), &hive, &l1, &l2));
    let log2_before = fs::read(&l2).unwrap();
    let profile = "name = \"flag\"\n[[registry]]\nhive = \"SYSTEM\"\nkey = 'CurrentControlSet\\Services\\Tcpip\\Parameters'\nvalue = \"RescueFlag\"\ndword = 7\n";
    let o = apply(t.path(), &disk, profile, &[]);
    let so = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && so.contains("recovered first from its transaction logs: 24 log entries"),
        "{so}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The change went into LOG2 first, after the chain's last entry; the log's original is kept.
    assert!(so.contains("transaction log: log entry 2131 in SYSTEM.LOG2, written first"), "{so}");
    let kept = so.lines().find_map(|l| l.trim().strip_prefix("backup of its log: ")).expect("log backup line");
    assert!(fs::read(kept).unwrap() == log2_before);
    assert!(fs::read(disk.ntfs_file(t.path(), &format!("{cfg}SYSTEM.LOG2"))).unwrap() != log2_before);
    let ours = dump(&disk.ntfs_file(t.path(), &format!("{cfg}SYSTEM")));
    let (gone, new) = diff(&theirs, &ours);
    assert!(gone.is_empty(), "our recovery lost what regipy's has: {gone:?}");
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(new.iter().next().unwrap().ends_with("Services\\Tcpip\\Parameters\tRescueFlag\t4\t07000000"), "{new:?}");
    assert!(ours[0].ends_with("checksum ok"));
    check_volume(&disk.partition(t.path()));
}

#[test]
fn dirty_hive_without_logs_and_corrupt_hive_are_refused_with_nothing_written() {
    let t = tempfile::tempdir().unwrap();
    let disk = make_disk(t.path(), &["--hives"]);
    let part = disk.partition(t.path());
    let xz = |name: &str| {
        bytes(Command::new("xz").arg("-dc").arg(root().join("../shared/corpus/registry").join(format!("{name}.xz"))))
    };
    let aliased = aliased_start(&fs::read(disk.ntfs_file(t.path(), "Windows/System32/config/SYSTEM")).unwrap());
    for (name, want) in [
        ("SYSTEM_2", "transaction logs are missing"),
        ("corrupted_system_hive", "corrupt hive"),
        ("aliased", "another structure uses too"),
    ] {
        if name == "aliased" {
            assert!(dump_of(t.path(), &aliased).iter().any(|l| l.contains("CSAgent\tStart\t")), "hivex reads it");
        }
        let hive = if name == "aliased" { aliased.clone() } else { xz(name) };
        let image = disk.put_system_hive(&part, &hive);
        let o = apply(t.path(), &disk, CSAGENT_OFF, &[]);
        let se = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && se.contains(want), "{name}: {se}");
        let after = fs::read(&disk.path).unwrap();
        assert!(
            after[disk.offset..disk.offset + disk.size] == image[disk.offset..disk.offset + disk.size],
            "{name}: the volume was written"
        );
    }
}

/// `rescue reg` shows names from the hive on one line: a value named with
/// a newline cannot forge a line of its own.
#[test]
fn reg_shows_hostile_names_on_one_line() {
    use rescue_engine::formats::registry::cell::Hive;
    use rescue_engine::formats::registry::edit::{Data, Editor};
    let t = tempfile::tempdir().unwrap();
    let disk = make_disk(t.path(), &["--hives"]);
    let part = disk.partition(t.path());
    let hive = fs::read(disk.ntfs_file(t.path(), "Windows/System32/config/SYSTEM")).unwrap();
    let mut ed = Editor::new(Hive::open(hive).unwrap()).unwrap();
    let key = ed.hive().open_path("ControlSet001\\Services\\CSAgent").unwrap();
    ed.set_value(&key, "x\n  Start = 4 (0x00000004)\r", &Data::Dword(1), 0).unwrap();
    disk.put_system_hive(&part, &ed.finish(0).unwrap());
    let o = ntfs3g::bytes(Command::new(EXE).arg("reg").arg(&disk.path).arg("SYSTEM\\ControlSet001\\Services\\CSAgent"));
    let o = String::from_utf8(o).unwrap();
    assert!(o.contains("Start = 2 (0x00000002)"), "{o}");
    assert!(!o.lines().any(|l| l.trim_start().starts_with("Start = 4")), "a name forged a line:\n{o}");
    assert!(o.contains("x\\u{a}  Start = 4 (0x00000004)\\u{d} = 1 (0x00000001)"), "{o}");
}

/// The test disk's SYSTEM hive with CSAgent's `Start` (an inline DWORD)
/// turned into a 4-byte value whose data cell is ImagePath's: hivex reads
/// it, and disabling the service would have freed ImagePath's data.
fn aliased_start(hive: &[u8]) -> Vec<u8> {
    use rescue_engine::formats::registry::cell::Hive;
    let h = Hive::open(hive.to_vec()).unwrap();
    let key = h.open_path("ControlSet001\\Services\\CSAgent").unwrap();
    let find = |n: &str| h.values(&key).unwrap().into_iter().find(|v| v.name_string() == n).unwrap();
    let (start, image) = (find("Start"), find("ImagePath"));
    let mut b = hive.to_vec();
    let at = Hive::file_offset(start.off) + 4;
    b[at + 4..at + 8].copy_from_slice(&4u32.to_le_bytes());
    b[at + 8..at + 12].copy_from_slice(&image.data_off.to_le_bytes());
    b
}

#[test]
fn profile_check_names_registry_mistakes_by_line_and_column() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("bad.toml");
    fs::write(
        &p,
        "name = \"bad\"\n[[registry]]\nhive = \"SAM\"\nkey = 'X'\nvalue = \"v\"\ndword = 1\n\
         [[registry]]\nhive = \"SYSTEM\"\nkey = 'X'\nvalue = \"v\"\ndword = 1\nstring = \"two\"\n\
         [[registry]]\nhive = \"SOFTWARE\"\nkey = '\\Microsoft'\nvalue = \"v\"\nqword = 1\n\
         [[service]]\nname = 'a\\b'\nstart = \"disabled\"\n[finish]\nsafe_mode = \"maybe\"\n",
    )
    .unwrap();
    let o = ntfs3g::limits::output(Command::new(EXE).args(["profile", "check"]).arg(&p)).unwrap();
    let se = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    // safe_mode's bad value stops TOML decoding first; fix it and see the rest, all at once.
    assert!(se.contains("line 22") && se.contains("maybe"), "{se}");
    fs::write(&p, fs::read_to_string(&p).unwrap().replace("\"maybe\"", "\"minimal\"")).unwrap();
    let o = ntfs3g::limits::output(Command::new(EXE).args(["profile", "check"]).arg(&p)).unwrap();
    let se = String::from_utf8_lossy(&o.stderr);
    for want in [
        "line 3, column 8",
        "\"SAM\"",
        "line 12, column 10",
        "exactly one of dword, qword or string",
        "line 15, column 7",
        "relative",
        "line 19, column 8",
        "one key name",
    ] {
        assert!(se.contains(want), "missing {want:?} in:\n{se}");
    }
}

/// `rescue reg` shows keys as hivex's own shell (`hivexsh`) does: for each
/// key, the same subkeys, the same value names, the same numbers and
/// strings for DWORD and string values, the same lists for multi-strings
/// and the same bytes for the rest.
#[test]
fn reg_lists_what_hivexsh_lists() {
    let t = tempfile::tempdir().unwrap();
    let disk = make_disk(t.path(), &["--hives"]);
    let system = disk.ntfs_file(t.path(), "Windows/System32/config/SYSTEM");
    for key in
        ["Select", "ControlSet001\\Services\\CSAgent", "ControlSet001\\Control", "ControlSet001\\Control\\CrashControl"]
    {
        let script = t.path().join("cmds");
        fs::write(&script, format!("cd \\{key}\nls\nlsval\n")).unwrap();
        let theirs = run(Command::new("hivexsh").arg("-f").arg(&script).arg(&system));
        let ours = String::from_utf8(ntfs3g::bytes(
            Command::new(EXE).arg("reg").arg(&disk.path).arg(format!("SYSTEM\\{key}")),
        ))
        .unwrap();
        let mut their_keys = BTreeSet::new();
        let mut their_values = BTreeSet::new();
        for line in theirs.lines() {
            match line.strip_prefix('"').and_then(|l| l.split_once("\"=")) {
                Some((name, data)) => {
                    // hivexsh: dword:XXXXXXXX, "text", str(2):"text" (expandable), hex(N):aa,bb,...
                    let data = data.strip_prefix("str(2):").unwrap_or(data);
                    let shown = if let Some(hex) = data.strip_prefix("dword:") {
                        u32::from_str_radix(hex, 16).unwrap().to_string()
                    } else if data.starts_with('"') {
                        data.to_string()
                    } else if let Some(bytes) = data.strip_prefix("hex(7):") {
                        // A multi-string: hivex's bytes decoded here, shown as a list.
                        let raw: Vec<u8> = bytes.split(',').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
                        let units: Vec<u16> = raw.chunks_exact(2).map(|p| u16::from_le_bytes([p[0], p[1]])).collect();
                        let mut list: Vec<String> = units.split(|&u| u == 0).map(String::from_utf16_lossy).collect();
                        while list.last().is_some_and(String::is_empty) {
                            list.pop();
                        }
                        format!("{list:?}")
                    } else if let Some((_, bytes)) = data.strip_prefix("hex(").and_then(|d| d.split_once("):")) {
                        format!("hex:{}", bytes.replace(',', ""))
                    } else {
                        String::from("(other)")
                    };
                    their_values.insert((name.to_string(), shown));
                }
                None if line.starts_with('@') => {
                    their_values.insert((String::new(), String::from("(other)")));
                }
                None => {
                    their_keys.insert(line.to_string());
                }
            }
        }
        let mut our_keys = BTreeSet::new();
        let mut our_values = BTreeSet::new();
        for line in ours.lines().filter_map(|l| l.strip_prefix("  ")) {
            if let Some(k) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                our_keys.insert(k.to_string());
            } else if let Some((name, data)) = line.split_once(" = ") {
                let name = if name == "(default)" { "" } else { name };
                let shown = match data.split_once(" (0x") {
                    Some((n, _))
                        if !data.starts_with('"') && n.parse::<u32>().is_ok() && data.len() == n.len() + 13 =>
                    {
                        n.to_string()
                    }
                    _ if data.starts_with('"') || data.starts_with('[') => data.to_string(),
                    _ if !data.is_empty() && data.bytes().all(|b| b.is_ascii_hexdigit()) => format!("hex:{data}"),
                    _ => String::from("(other)"),
                };
                our_values.insert((name.to_string(), shown));
            }
        }
        assert!(!our_keys.is_empty() || !our_values.is_empty(), "{key}: nothing listed:\n{ours}");
        assert_eq!(our_keys, their_keys, "{key}: subkeys");
        assert_eq!(our_values, their_values, "{key}: values\nours:\n{ours}\nhivexsh:\n{theirs}");
    }
}

/// A service disabled and Safe Mode set by `rescue apply`, then `rescue
/// restore` from its backup folder: hivex reads the hive and the BCD store
/// as they were before the fix (every value), each restore went through its
/// LOG1 first (regipy, replaying that log over the fixed file, gets the file
/// written), ntfs-3g accepts the volume, and a second restore has nothing to do.
#[test]
fn a_disabled_service_and_safe_mode_are_restored_through_their_logs() {
    let t = tempfile::tempdir().unwrap();
    let disk = make_disk(t.path(), &["--hives"]);
    let cfg = "Windows/System32/config/";
    let sys_before = dump(&disk.ntfs_file(t.path(), &format!("{cfg}SYSTEM")));
    let bcd_before = dump(&disk.bcd(t.path()));
    let o = apply(t.path(), &disk, CSAGENT_OFF, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let fixed = fs::read(disk.ntfs_file(t.path(), &format!("{cfg}SYSTEM"))).unwrap();
    let fixed_path = t.path().join("SYSTEM.fixed");
    fs::write(&fixed_path, &fixed).unwrap();
    let bcd_fixed = t.path().join("BCD.fixed");
    fs::copy(disk.bcd(t.path()), &bcd_fixed).unwrap();
    assert_ne!(dump(&bcd_fixed)[1..], bcd_before[1..], "Safe Mode was not set");
    assert_ne!(dump(&fixed_path)[1..], sys_before[1..], "the fix changed nothing");
    let restore = |extra: &[&str]| {
        let o = ntfs3g::limits::output(
            Command::new(EXE).arg("restore").arg("--from").arg(t.path().join("backups")).args(extra).arg(&disk.path),
        )
        .unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
    };
    let image = fs::read(&disk.path).unwrap();
    let (code, dry) = restore(&[]);
    assert_eq!(code, Some(0), "{dry}");
    assert!(dry.contains("Windows\\System32\\config\\SYSTEM: WOULD RESTORE"), "{dry}");
    assert!(fs::read(&disk.path).unwrap() == image, "the dry run wrote");
    let (code, out) = restore(&["--yes"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Windows\\System32\\config\\SYSTEM: RESTORED"), "{out}");
    assert!(out.contains(" in SYSTEM.LOG1, written first"), "{out}");
    let sys_after = dump(&disk.ntfs_file(t.path(), &format!("{cfg}SYSTEM")));
    let (gone, new) = diff(&sys_before, &sys_after);
    assert!(gone.is_empty() && new.is_empty(), "hivex: lost {gone:?}, new {new:?}");
    assert!(sys_after[0].ends_with("checksum ok"), "{}", sys_after[0]);
    // regipy replays the restore's log entry over the fixed hive: the hive written.
    let log1 = disk.ntfs_file(t.path(), &format!("{cfg}SYSTEM.LOG1"));
    let replayed = fs::read(regipy_recover(t.path(), &fixed_path, Path::new(""), &log1)).unwrap();
    let written = fs::read(disk.ntfs_file(t.path(), &format!("{cfg}SYSTEM"))).unwrap();
    assert!(replayed[4096..] == written[4096..], "regipy's replay of LOG1 differs from the hive restored");
    check_volume(&disk.partition(t.path()));
    // The BCD store, on the ESP, as mtools reads it: as before, through BCD.LOG1.
    assert!(out.contains("ESP\\EFI\\Microsoft\\Boot\\BCD: RESTORED"), "{out}");
    let bcd_after = dump(&disk.bcd(t.path()));
    let (gone, new) = diff(&bcd_before, &bcd_after);
    assert!(gone.is_empty() && new.is_empty(), "hivex, BCD: lost {gone:?}, new {new:?}");
    let log1 = disk.boot_file(t.path(), "BCD.LOG1");
    let replayed = fs::read(regipy_recover(t.path(), &bcd_fixed, Path::new(""), &log1)).unwrap();
    assert!(replayed[4096..] == fs::read(disk.bcd(t.path())).unwrap()[4096..], "regipy's replay of BCD.LOG1 differs");
    // What the fix left went to the backup folder before the restore; a second restore has nothing to do.
    let (code, again) = restore(&["--yes"]);
    assert_eq!(code, Some(3), "{again}");
    assert!(again.contains("SYSTEM: NOTHING TO DO") && again.contains("BCD: NOTHING TO DO"), "{again}");
}

/// Cloned PCs share volume serial numbers: a backup of SYSTEM whose
/// computer name is not this PC's is refused, nothing written.
#[test]
fn a_hive_of_another_pc_is_not_restored() {
    let t = tempfile::tempdir().unwrap();
    let disk = make_disk(t.path(), &["--hives"]);
    let off = "name = \"csagent-off\"\n[[service]]\nname = \"CSAgent\"\nstart = \"disabled\"\n";
    assert!(apply(t.path(), &disk, off, &[]).status.success());
    // This PC now has another name than the one its first backup holds (as a clone would).
    let rename = "name = \"rename\"\n[[registry]]\nhive = \"SYSTEM\"\n\
                  key = 'ControlSet001\\Control\\ComputerName\\ComputerName'\nvalue = \"ComputerName\"\nstring = \"OTHER-PC\"\n";
    let o = apply(t.path(), &disk, rename, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let image = fs::read(&disk.path).unwrap();
    let o = ntfs3g::limits::output(
        Command::new(EXE).arg("restore").arg("--from").arg(t.path().join("backups")).arg("--yes").arg(&disk.path),
    )
    .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && out.contains("the backup is of another PC (ComputerName"), "{out}");
    assert!(fs::read(&disk.path).unwrap() == image, "written");
}
