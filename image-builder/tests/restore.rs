//! `rescue restore`: files deleted by `rescue apply` (with `--backup-dir`)
//! put back from their backups, judged by ntfs-3g: the content byte for byte
//! (`ntfscat`), the same names, times and attributes (`getfattr
//! system.ntfs_times` / `system.ntfs_attrib`), the parent folder listing as
//! before the delete, `ntfsfix -n` and a read-write mount, libyal's
//! `fsntfsinfo` reading every file; every prefix of a restore's writes
//! mounts; lying sidecars and taken names are refused with nothing written.
//!
//! Needs root (FUSE mounts), mkntfs, ntfs-3g, ntfsprogs, getfattr, fsntfsinfo.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../tests/support/ntfs3g.rs"]
mod ntfs3g;
#[path = "../../tests/support/testkit.rs"]
mod testkit;
use ntfs3g::{check_volume, copy, make_volume, run, with_mount};

const EXE: &str = env!("CARGO_BIN_EXE_rescue");

/// A volume with folder `Data\D` holding `n` files `f-00001.txt`... plus the
/// two to delete and restore: a small one (resident) and a 40 KB one (clusters).
fn volume(dir: &Path, n: usize) -> PathBuf {
    make_volume(
        dir,
        "orig.img",
        64,
        &[],
        &format!(
            "mkdir -p Windows/System32 Data/D && cd Data/D && i=1; while [ $i -le {n} ]; do printf 'file %d' $i > $(printf 'f-%05d.txt' $i); \
             i=$((i+1)); done && printf '\\252\\252\\252\\252\\001\\000\\043\\001small' > 'Target one.sys' && \
             (printf '\\252\\252\\252\\252\\001\\000\\043\\001'; head -c 40000 /dev/urandom) > target-two.sys && \
             setfattr -h -v 0x21000000 -n system.ntfs_attrib target-two.sys && \
             setfattr -h -v 'TARGET~1.SYS' -n system.ntfs_dos_name 'Target one.sys'"
        ),
    )
}

/// Deletes the two targets (and the files `also` names, a glob in `Data\D`)
/// with `rescue apply`, keeping backups in `bk`; `n` files in all.
fn delete(dir: &Path, img: &Path, also: Option<&str>, n: usize) -> PathBuf {
    let prof = dir.join("p.toml");
    let mut p = String::from("name = \"t\"\n[[delete]]\npath = 'Data\\D\\*.sys'\nheader = \"AAAAAAAA01002301\"\n");
    if let Some(g) = also {
        p += &format!("[[delete]]\npath = 'Data\\D\\{g}'\n");
    }
    fs::write(&prof, p).unwrap();
    let bk = dir.join("bk");
    let out = run(Command::new(EXE).args(["apply", "--profile"]).arg(&prof).arg("--backup-dir").arg(&bk).arg(img));
    assert!(out.contains(&format!("{n} deleted")), "{out}");
    bk
}

fn restore(bk: &Path, img: &Path, extra: &[&str]) -> (i32, String) {
    let out =
        ntfs3g::limits::output(Command::new(EXE).arg("restore").arg("--from").arg(bk).args(extra).arg(img)).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// What ntfs-3g shows of the folder: `ls -la --full-time` and each target's times and attributes.
fn seen(img: &Path) -> String {
    with_mount(img, &["ro"], |m| {
        let d = m.join("Data/D");
        // The folder's own line ("." and ".."; its size and times follow its index) is left out.
        let ls = run(Command::new("ls").args(["-l", "--full-time"]).arg(&d));
        let mut s: String = ls.lines().filter(|l| !l.starts_with("total")).map(|l| format!("{l}\n")).collect();
        for f in ["Target one.sys", "target-two.sys"] {
            for a in ["system.ntfs_times", "system.ntfs_attrib", "system.ntfs_dos_name"] {
                let o =
                    ntfs3g::limits::output(Command::new("getfattr").args(["-h", "-e", "hex", "-n", a]).arg(d.join(f)))
                        .unwrap();
                s += &format!("{f} {a}: {}\n", String::from_utf8_lossy(&o.stdout).lines().nth(1).unwrap_or("-"));
            }
        }
        s
    })
}

/// Panics with the lines that differ (names, sizes, times or attributes).
fn same(now: &str, before: &str, what: &str) {
    let (a, b): (Vec<&str>, Vec<&str>) = (now.lines().collect(), before.lines().collect());
    let gone: Vec<&&str> = b.iter().filter(|l| !a.contains(l)).take(5).collect();
    let new: Vec<&&str> = a.iter().filter(|l| !b.contains(l)).take(5).collect();
    assert!(gone.is_empty() && new.is_empty(), "{what}: before the delete {gone:#?}\nafter the restore {new:#?}");
}

fn cat(img: &Path, path: &str) -> Vec<u8> {
    ntfs3g::bytes(Command::new("ntfscat").arg(img).arg(path))
}

/// Deletes from a folder of `n` files the two targets and the files `also`
/// matches (`extra` of them), restores them all, and compares.
fn round_trip(n: usize, also: Option<&str>, extra: usize) {
    let t = tempfile::tempdir().unwrap();
    let orig = volume(t.path(), n);
    let before = seen(&orig);
    let img = copy(&orig, &t.path().join("work.img"));
    let bk = delete(t.path(), &img, also, 2 + extra);
    assert_ne!(seen(&img), before, "nothing deleted");
    let deleted = fs::read(&img).unwrap();
    // ntfs-3g creating the same files on the same volume, to compare with.
    let theirs = t.path().join("theirs.img");
    fs::write(&theirs, &deleted).unwrap();
    with_mount(&theirs, &[], |m| {
        for f in ["Data/D/Target one.sys", "Data/D/target-two.sys"] {
            fs::write(m.join(f), cat(&orig, &format!("/{f}"))).unwrap();
        }
    });
    let (code, dry) = restore(&bk, &img, &[]);
    assert_eq!(code, 0, "{dry}");
    assert!(dry.contains("WOULD RESTORE") && dry.contains("MFT record"), "{dry}");
    let (code, json) = restore(&bk, &img, &["--json"]);
    assert_eq!(code, 0, "{json}");
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2 + extra, "{json}");
    assert!(rows.iter().all(|r| r["result"] == "would restore" && r["writes"].as_u64() > Some(2)), "{json}");
    assert!(fs::read(&img).unwrap() == deleted, "the dry run wrote");
    let (code, out) = restore(&bk, &img, &["--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("restored {} files", 2 + extra)), "{out}");
    for f in ["/Data/D/Target one.sys", "/Data/D/target-two.sys"] {
        assert!(cat(&img, f) == cat(&orig, f), "{f}: content differs");
    }
    same(&seen(&img), &before, &format!("n={n}"));
    check_volume(&img);
    if extra == 0 {
        // The same records and clusters in use as ntfs-3g's own create, as ntfscluster counts them from $MFT and $Bitmap.
        let usage = |img: &Path| -> Vec<String> {
            let keep = ["mft records in use", "bytes of free space", "bytes of user data", "bytes of metadata"];
            let all = run(Command::new("ntfscluster").arg("-i").arg(img));
            all.lines().filter(|l| keep.iter().any(|k| l.starts_with(k))).map(String::from).collect()
        };
        let ours = usage(&img);
        assert_eq!(ours.len(), 4, "{ours:?}");
        assert_eq!(ours, usage(&theirs), "n={n}: our restore and ntfs-3g's create use different space");
    }
    let info = run(Command::new("fsntfsinfo").args(["-H"]).arg(&img));
    assert!(!info.is_empty());
    // A second run finds both files in place.
    let (code, again) = restore(&bk, &img, &["--yes"]);
    assert_eq!(code, 3, "{again}");
    assert!(again.contains(&format!("restored 0 files, {} already there", 2 + extra)), "{again}");
    eprintln!("n={n}: restored, listing equal to the original's");
}

#[test]
fn deleted_files_come_back_as_they_were() {
    round_trip(0, None, 0); // the folder holds only the two: its index root
    round_trip(40, None, 0); // one index block
}

/// 1,000 of 5,000 files put back one by one in name order into a folder whose
/// tree ntfs-3g shrank when it deleted them: leaves fill and split, their
/// middle keys move up. (The backups come from our delete on a copy.)
#[test]
fn a_thousand_files_restored_into_a_folder_of_5000_split_its_index() {
    let t = tempfile::tempdir().unwrap();
    let orig = volume(t.path(), 5000);
    let before = seen(&orig);
    let ours = copy(&orig, &t.path().join("ours.img"));
    let prof = t.path().join("p.toml");
    fs::write(&prof, "name = \"t\"\n[[delete]]\npath = 'Data\\D\\f-01*.txt'\n").unwrap();
    let bk = t.path().join("bk");
    ntfs3g::limits::output(
        Command::new(EXE).args(["apply", "--profile"]).arg(&prof).arg("--backup-dir").arg(&bk).arg(&ours),
    )
    .unwrap();
    let kept: Vec<String> =
        walk(&bk).iter().filter_map(|p| p.file_name()?.to_str()?.strip_suffix(".json").map(String::from)).collect();
    assert!(kept.len() >= 990, "{} backups", kept.len());
    let img = copy(&orig, &t.path().join("work.img"));
    with_mount(&img, &[], |m| kept.iter().for_each(|n| fs::remove_file(m.join("Data/D").join(n)).unwrap()));
    let (code, out) = restore(&bk, &img, &["--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("restored {} files", kept.len())), "{}", out.lines().last().unwrap_or_default());
    same(&seen(&img), &before, "5000");
    for n in kept.iter().step_by(97) {
        let f = format!("/Data/D/{n}");
        assert!(cat(&img, &f) == cat(&orig, &f), "{f}: content differs");
    }
    check_volume(&img);
    run(Command::new("fsntfsinfo").args(["-H"]).arg(&img));
}

/// Stopped after each write, a restore leaves a volume ntfs-3g mounts, and run again puts the file back.
#[test]
fn every_prefix_of_a_restore_mounts() {
    let t = tempfile::tempdir().unwrap();
    let orig = volume(t.path(), 40);
    let img = copy(&orig, &t.path().join("work.img"));
    let bk = delete(t.path(), &img, None, 2);
    let deleted = t.path().join("deleted.img");
    copy(&img, &deleted);
    let (_, dry) = restore(&bk, &img, &[]);
    let writes = dry.lines().filter(|l| l.trim_start().starts_with("write ")).count();
    assert!(writes >= 8, "{dry}");
    for k in 0..writes {
        let cut = copy(&deleted, &t.path().join("cut.img"));
        restore(&bk, &cut, &["--yes", "--stop-after", &k.to_string()]);
        check_volume(&cut);
        let (code, out) = restore(&bk, &cut, &["--yes"]);
        assert!(code == 0 || code == 3, "after {k} writes: {out}");
        for f in ["/Data/D/Target one.sys", "/Data/D/target-two.sys"] {
            assert!(cat(&cut, f) == cat(&orig, f), "stopped after {k} writes, then restored: {f} differs");
        }
        check_volume(&cut);
    }
}

/// Sidecars that lie, names that are taken, folders that are gone: refused, nothing written.
#[test]
fn hostile_backups_are_refused_without_writes() {
    let t = tempfile::tempdir().unwrap();
    let orig = volume(t.path(), 10);
    let img = copy(&orig, &t.path().join("work.img"));
    let bk = delete(t.path(), &img, None, 2);
    let side = |name: &str| {
        let mut found = Vec::new();
        for e in walk(&bk) {
            if e.to_string_lossy().ends_with(&format!("{name}.json")) {
                found.push(e);
            }
        }
        found.pop().unwrap()
    };
    let small = side("Target one.sys");
    let good: serde_json::Value = serde_json::from_str(&fs::read_to_string(&small).unwrap()).unwrap();
    type Lie = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Lie, &str)> = vec![
        ("size", Box::new(|v| v["restore"]["size"] = 5.into()), "bytes"),
        ("sha256", Box::new(|v| v["restore"]["sha256"] = "00".repeat(32).into()), "SHA-256"),
        (
            "name with ..\\",
            Box::new(|v| v["restore"]["names"][0]["name"] = "..\\..\\evil.sys".into()),
            "not a file name",
        ),
        ("path with ..", Box::new(|v| v["restore"]["path"] = "Data\\..\\..\\Target one.sys".into()), "bad component"),
        ("parent replaced", Box::new(|v| v["restore"]["parent_seq"] = 77.into()), "made again"),
        ("parent gone", Box::new(|v| v["restore"]["path"] = "Data\\Gone\\Target one.sys".into()), "gone"),
        ("unknown name space", Box::new(|v| v["restore"]["names"][0]["namespace"] = "nt".into()), "name space"),
    ];
    // Only the small file's backup is offered.
    fs::remove_file(side("target-two.sys")).unwrap();
    let before = fs::read(&img).unwrap();
    for (what, lie, says) in cases {
        let mut v = good.clone();
        lie(&mut v);
        fs::write(&small, serde_json::to_string(&v).unwrap()).unwrap();
        let (code, out) = restore(&bk, &img, &["--yes"]);
        assert_ne!(code, 0, "{what}: {out}");
        assert!(out.contains(says), "{what}: {out}");
        assert!(fs::read(&img).unwrap() == before, "{what}: written");
    }
    // A different file under the name: left alone.
    fs::write(&small, serde_json::to_string(&good).unwrap()).unwrap();
    with_mount(&img, &[], |m| fs::write(m.join("Data/D/Target one.sys"), b"someone else's").unwrap());
    let before = fs::read(&img).unwrap();
    let (code, out) = restore(&bk, &img, &["--yes"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("a different file") && fs::read(&img).unwrap() == before, "{out}");
    // A backup larger than the volume's free space.
    let big = vec![7u8; 80 << 20];
    let content = small.with_extension("");
    fs::write(&content, &big).unwrap();
    let mut v = good.clone();
    v["restore"]["size"] = big.len().into();
    v["restore"]["sha256"] = sha256(&big).into();
    v["restore"]["names"] = serde_json::json!([{ "name": "Big one.sys", "namespace": "posix" }]);
    v["restore"]["path"] = "Data\\D\\Big one.sys".into();
    fs::write(&small, serde_json::to_string(&v).unwrap()).unwrap();
    let (code, out) = restore(&bk, &img, &["--yes"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("no room") || out.contains("$Bitmap"), "{out}");
    assert!(fs::read(&img).unwrap() == before, "too large: written");
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// On a BitLocker volume (a whole test disk, its Windows partition encrypted
/// by the test kit): the channel file deleted with the recovery password,
/// restored with it; dislocker-file's decryption of the partition then holds
/// the file, byte for byte, and ntfsfix accepts the volume.
#[test]
fn a_file_comes_back_on_a_bitlocker_volume() {
    const RP: &str = "466895-217492-569250-069608-104434-135707-527241-083622";
    const BAD: &str = "Windows/System32/drivers/CrowdStrike/C-00000291-00000000-00000032.sys";
    testkit::bitlocker_encrypt();
    let t = tempfile::tempdir().unwrap();
    let disk = t.path().join("pc.img");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-test-disk");
    run(Command::new(script).args(["--size", "200", "--bitlocker", RP]).arg(&disk).env("RESCUE", EXE));
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(t.path().join("pc.img.json")).unwrap()).unwrap();
    let profile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/crowdstrike-c00000291.toml");
    let bk = t.path().join("bk");
    let key = ["--recovery-password", RP];
    let out = run(Command::new(EXE)
        .args(["apply", "--profile"])
        .arg(&profile)
        .args(key)
        .arg("--backup-dir")
        .arg(&bk)
        .arg(&disk));
    assert!(out.contains("1 deleted"), "{out}");
    let (code, out) = restore(&bk, &disk, &["--yes", key[0], key[1]]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("restored 1 files"), "{out}");
    // dislocker-file decrypts the partition, cut out with the manifest's offsets.
    let (at, len) =
        (manifest["windows_partition_offset"].as_u64().unwrap(), manifest["windows_partition_size"].as_u64().unwrap());
    let part = t.path().join("part.img");
    run(Command::new("dd").arg(format!("if={}", disk.display())).arg(format!("of={}", part.display())).args([
        "bs=512",
        &format!("skip={}", at / 512),
        &format!("count={}", len / 512),
        "status=none",
    ]));
    let plain = t.path().join("plain.img");
    run(Command::new("dislocker-file").arg("-V").arg(&part).arg(format!("-p{RP}")).arg(&plain));
    assert_eq!(sha256(&cat(&plain, &format!("/{BAD}"))), manifest["files"][BAD].as_str().unwrap());
    let fix = run(Command::new("ntfsfix").arg("-n").arg(&plain));
    assert!(fix.contains("processed successfully"), "{fix}");
    let (code, out) = restore(&bk, &disk, &["--yes", key[0], key[1]]);
    assert_eq!(code, 3, "{out}");
}

/// A file of an NTFS-compressed folder (ntfs-3g compresses it): deleted,
/// then put back plain (our engine writes no compressed data): the same
/// content, names and times, its attributes without "compressed", and the
/// restore says so.
#[test]
fn a_file_of_a_compressed_folder_comes_back_plain() {
    let t = tempfile::tempdir().unwrap();
    let orig = make_volume(t.path(), "orig.img", 32, &[], "mkdir -p Windows/System32 Data/D");
    with_mount(&orig, &["compression"], |m| {
        let d = m.join("Data/D");
        run(Command::new("setfattr").args(["-h", "-v", "0x10080000", "-n", "system.ntfs_attrib"]).arg(&d));
        let mut body = b"\xaa\xaa\xaa\xaa\x01\x00\x23\x01".to_vec();
        body.extend(b"compressible ".repeat(5000));
        fs::write(d.join("target-three.sys"), body).unwrap();
    });
    let attrib = |img: &Path| {
        with_mount(img, &["ro"], |m| {
            let o = run(Command::new("getfattr")
                .args(["-h", "-e", "hex", "-n", "system.ntfs_attrib"])
                .arg(m.join("Data/D/target-three.sys")));
            let hex = o.lines().nth(1).unwrap_or_default().rsplit("0x").next().unwrap_or_default().to_string();
            u32::from_le_bytes(u32::from_str_radix(&hex, 16).unwrap().to_be_bytes())
        })
    };
    let before = attrib(&orig);
    assert!(before & 0x800 != 0, "ntfs-3g did not compress the file: {before:#x}");
    let img = copy(&orig, &t.path().join("work.img"));
    let bk = delete(t.path(), &img, None, 1);
    let (code, out) = restore(&bk, &img, &["--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("restored 1 files") && out.contains("written plain"), "{out}");
    assert!(cat(&img, "/Data/D/target-three.sys") == cat(&orig, "/Data/D/target-three.sys"), "content differs");
    assert_eq!(attrib(&img), before & !0x800);
    check_volume(&img);
}

/// The same restore as a profile's `[[restore]]` rule through `rescue apply`
/// (its backup folder is where it finds the backups; a `path` filter takes
/// one of the two), and `rescue collect` counting the restore run.
#[test]
fn a_restore_profile_through_apply_shows_in_collect() {
    let t = tempfile::tempdir().unwrap();
    let orig = volume(t.path(), 3);
    let img = copy(&orig, &t.path().join("work.img"));
    let bk = delete(t.path(), &img, None, 2);
    let prof = t.path().join("undo.toml");
    fs::write(&prof, "name = \"undo\"\n[[restore]]\nfrom = \"backups\"\npath = 'Data\\D\\target-*.sys'\n").unwrap();
    let report = t.path().join("undo.json");
    let out = run(Command::new(EXE)
        .args(["apply", "--profile"])
        .arg(&prof)
        .arg("--backup-dir")
        .arg(&bk)
        .arg("--report")
        .arg(&report)
        .arg(&img));
    assert!(out.contains("1 restored"), "{out}");
    assert!(cat(&img, "/Data/D/target-two.sys") == cat(&orig, "/Data/D/target-two.sys"), "not restored");
    let o = ntfs3g::limits::output(Command::new("ntfscat").arg(&img).arg("/Data/D/Target one.sys")).unwrap();
    assert!(!o.status.success(), "the path filter let the other file back");
    check_volume(&img);
    let csv = run(Command::new(EXE).args(["collect", "--out", "-"]).arg(&report));
    let (head, row) = (csv.lines().next().unwrap(), csv.lines().nth(1).unwrap());
    assert!(head.ends_with(",restored") && row.ends_with(",1") && row.contains("FIXED"), "{csv}");
}
