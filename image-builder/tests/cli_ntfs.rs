//! `rescue ls` and `rescue apply` on NTFS volumes made by mkntfs + ntfs-3g:
//! the CLI's side of the engine tests in rescue-agent/tests/ntfs_write.rs.
//!
//! Needs root (FUSE mounts, loop devices), mkntfs, ntfs-3g, ntfsprogs.

use std::fs;
use std::path::Path;
use std::process::Command;

#[path = "../../tests/support/ntfs3g.rs"]
mod ntfs3g;
#[path = "../../tests/support/testkit.rs"]
mod testkit;
use ntfs3g::{check_volume, make_volume, run, with_mount};

#[test]
fn rescue_cli_ls_and_apply() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(
        t.path(),
        "cli.img",
        16,
        &[],
        "mkdir -p Windows/System32/drivers/CrowdStrike && cd Windows/System32/drivers/CrowdStrike && \
         printf '\\252\\252\\252\\252\\001\\000\\043\\001rest' > C-00000291-00000000-00000032.sys && \
         printf 'not a channel file' > C-00000291-bad.sys && echo keep > C-00000290-00000000-00000001.sys",
    );
    let exe = env!("CARGO_BIN_EXE_rescue");
    let ls = run(Command::new(exe).args(["ls"]).arg(&img).arg("windows\\system32\\DRIVERS\\crowdstrike"));
    assert!(ls.contains("C-00000291-00000000-00000032.sys") && ls.contains("C-00000290"), "{ls}");
    let prof = t.path().join("cs.toml");
    fs::write(&prof, "name = \"cs\"\n[[delete]]\npath = 'Windows\\System32\\drivers\\CrowdStrike\\C-00000291*.sys'\nheader = \"AAAAAAAA01002301\"\n").unwrap();
    let before = fs::read(&img).unwrap();
    let dry = run(Command::new(exe).args(["apply", "--dry-run", "--profile"]).arg(&prof).arg(&img));
    assert!(dry.contains("would delete") && dry.contains("index") && dry.contains("$MFT bitmap"), "{dry}");
    assert!(fs::read(&img).unwrap() == before, "dry run wrote");
    let report = t.path().join("out/report.json");
    fs::create_dir_all(report.parent().unwrap()).unwrap();
    run(Command::new(exe).args(["apply", "--profile"]).arg(&prof).arg("--report").arg(&report).arg(&img));
    let j: serde_json::Value = serde_json::from_str(&fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(j["files_deleted"], 1);
    assert!(j["bytes_read"].as_u64().unwrap() > 0);
    let files = j["volumes"][0]["rules"][0]["files"].as_array().unwrap();
    let bad = files.iter().find(|f| f["path"].as_str().unwrap().ends_with("bad.sys")).unwrap();
    assert_eq!(bad["header_match"], false);
    assert_eq!(bad["action"], "skipped");
    let good = files.iter().find(|f| f["action"] == "deleted").unwrap();
    let backup = good["backup"].as_str().unwrap();
    assert_eq!(fs::read(backup).unwrap(), b"\xaa\xaa\xaa\xaa\x01\x00\x23\x01rest");
    assert!(Path::new(backup).starts_with(t.path().join("out/backup")));
    check_volume(&img);
    // A failing backup keeps the file and fails the run.
    let img2 = make_volume(
        t.path(),
        "cli2.img",
        16,
        &[],
        "printf '\\252\\252\\252\\252\\001\\000\\043\\001' > C-00000291-x.sys",
    );
    fs::write(&prof, "name = \"cs\"\n[[delete]]\npath = 'C-00000291*.sys'\n").unwrap();
    fs::write(t.path().join("file-not-dir"), b"").unwrap();
    let out = ntfs3g::limits::output(
        Command::new(exe)
            .args(["apply", "--profile"])
            .arg(&prof)
            .arg("--backup-dir")
            .arg(t.path().join("file-not-dir/sub"))
            .arg(&img2),
    )
    .unwrap();
    assert!(!out.status.success());
    let ls = run(Command::new("ntfsls").arg(&img2));
    assert!(ls.contains("C-00000291-x.sys"), "file must stay when its backup fails: {ls}");
}

/// `rescue apply` through BitLocker: a volume we encrypt with `rescue bitlocker
/// encrypt` is unlocked with its recovery password and fixed; without a key
/// the run fails and writes nothing.
#[test]
fn rescue_apply_inside_bitlocker() {
    let t = tempfile::tempdir().unwrap();
    let plain = t.path().join("plain.img");
    fs::File::create(&plain).unwrap().set_len(64 << 20).unwrap();
    run(Command::new("mkntfs").args(["-F", "-Q", "-q"]).arg(&plain).arg(((63u64 << 20) / 512).to_string()));
    with_mount(&plain, &[], |m| {
        fs::create_dir_all(m.join("Windows/System32/drivers/CrowdStrike")).unwrap();
        fs::write(
            m.join("Windows/System32/drivers/CrowdStrike/C-00000291-1.sys"),
            b"\xaa\xaa\xaa\xaa\x01\x00\x23\x01x",
        )
        .unwrap();
    });
    let exe = env!("CARGO_BIN_EXE_rescue");
    let rp = "193721-090981-367752-170005-714307-648065-680878-547316";
    let bl = t.path().join("bl.img");
    run(Command::new(testkit::bitlocker_encrypt()).args(["--recovery-password", rp]).arg(&plain).arg(&bl));
    let prof = t.path().join("cs.toml");
    fs::write(&prof, "name = \"cs\"\n[[delete]]\npath = 'Windows\\System32\\drivers\\CrowdStrike\\C-00000291*.sys'\nheader = \"AAAAAAAA01002301\"\nbackup = false\n").unwrap();
    let before = fs::read(&bl).unwrap();
    let out = ntfs3g::limits::output(Command::new(exe).args(["apply", "--profile"]).arg(&prof).arg(&bl)).unwrap();
    assert!(!out.status.success(), "a locked volume must fail the run");
    assert!(fs::read(&bl).unwrap() == before);
    let o = run(Command::new(exe).args(["apply", "--recovery-password", rp, "--profile"]).arg(&prof).arg(&bl));
    assert!(o.contains("1 deleted"), "{o}");
    let ls = run(Command::new(exe)
        .args(["ls", "--recovery-password", rp])
        .arg(&bl)
        .arg("Windows\\System32\\drivers\\CrowdStrike"));
    assert!(!ls.contains("C-00000291"), "{ls}");
}

/// `rescue apply` refuses a block device that is mounted, and works on it once unmounted.
#[test]
fn apply_refuses_mounted_block_device() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(t.path(), "loop.img", 16, &[], "mkdir -p Windows/System32 && echo x > victim.sys");
    let lo = run(Command::new("losetup").args(["-f", "--show"]).arg(&img)).trim().to_string();
    let prof = t.path().join("p.toml");
    fs::write(&prof, "name = \"p\"\n[[delete]]\npath = 'victim.sys'\nbackup = false\n").unwrap();
    let exe = env!("CARGO_BIN_EXE_rescue");
    let r = std::panic::catch_unwind(|| {
        let m = tempfile::tempdir().unwrap();
        run(Command::new("ntfs-3g").arg(&lo).arg(m.path()));
        let out = ntfs3g::limits::output(Command::new(exe).args(["apply", "--profile"]).arg(&prof).arg(&lo)).unwrap();
        run(Command::new("umount").arg(m.path()));
        assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("mounted"), "{out:?}");
        let o = run(Command::new(exe).args(["apply", "--profile"]).arg(&prof).arg(&lo));
        assert!(o.contains("1 deleted"), "{o}");
    });
    run(Command::new("losetup").arg("-d").arg(&lo));
    if let Err(p) = r {
        std::panic::resume_unwind(p);
    }
    check_volume(&img);
}

/// Every file below `dir`, recursively.
fn all_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A channel file whose one NTFS name holds `\..\..`: `rescue apply` must not
/// delete it, must name it in an error, and must write nothing outside the
/// backup folder (a legitimate file beside it is still fixed).
#[test]
fn hostile_name_is_refused_and_nothing_leaves_the_backup_folder() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(
        t.path(),
        "hostile.img",
        16,
        &[],
        "mkdir -p Windows/System32 && printf '\\252\\252\\252\\252\\001\\000\\043\\001evil' > 'C-00000291-x\\..\\..\\..\\..\\escaped.sys' && \
         printf '\\252\\252\\252\\252\\001\\000\\043\\001good' > C-00000291-good.sys",
    );
    let prof = t.path().join("cs.toml");
    fs::write(&prof, "name = \"cs\"\n[[delete]]\npath = 'C-00000291*.sys'\nheader = \"AAAAAAAA01002301\"\n").unwrap();
    let backups = t.path().join("a/b/c/backups");
    let exe = env!("CARGO_BIN_EXE_rescue");
    let out = ntfs3g::limits::output(
        Command::new(exe).args(["apply", "--profile"]).arg(&prof).arg("--backup-dir").arg(&backups).arg(&img),
    )
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "one file fixed, one refused: partly done (exit 4): {err}");
    assert!(err.contains("suspicious name") && err.contains("escaped.sys"), "{err}");
    // Nothing named escaped.sys anywhere, and every new file is inside the backup folder.
    for f in all_files(t.path()) {
        assert!(!f.to_string_lossy().contains("escaped"), "{} was written", f.display());
        if f != img && f != prof {
            assert!(f.starts_with(&backups), "{} is outside the backup folder", f.display());
        }
    }
    let ls = run(Command::new("ntfsls").arg(&img));
    assert!(ls.contains("escaped.sys"), "the suspicious file was deleted:\n{ls}");
    assert!(!ls.contains("C-00000291-good.sys"), "the good file was not fixed:\n{ls}");
    check_volume(&img);
}

/// Exit status and JSON, as scripts use them: 3 when there is nothing to do,
/// 0 when fixed; `--json` reports parse, for apply and the read-only verbs.
#[test]
fn exit_codes_and_json_for_scripts() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(
        t.path(),
        "v.img",
        16,
        &[],
        "mkdir -p Windows/System32 && printf '\\252\\252\\252\\252\\001\\000\\043\\001' > C-00000291-x.sys",
    );
    let prof = t.path().join("cs.toml");
    fs::write(&prof, "name = \"cs\"\n[[delete]]\npath = 'C-00000291*.sys'\nbackup = false\n").unwrap();
    let exe = env!("CARGO_BIN_EXE_rescue");
    let apply = || {
        ntfs3g::limits::output(Command::new(exe).args(["apply", "--json", "--profile"]).arg(&prof).arg(&img)).unwrap()
    };
    let first = apply();
    assert_eq!(first.status.code(), Some(0), "{}", String::from_utf8_lossy(&first.stderr));
    let j: serde_json::Value = serde_json::from_slice(&first.stdout).expect("apply --json prints the report");
    assert_eq!(j["files_deleted"], 1);
    let second = apply();
    assert_eq!(second.status.code(), Some(3), "nothing to do: {}", String::from_utf8_lossy(&second.stderr));
    let json = |args: &[&str]| -> serde_json::Value {
        let o = ntfs3g::limits::output(Command::new(exe).args(args)).unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    // Every disk lsblk knows (size in bytes, removable flag) is in the JSON.
    let devices = json(&["devices", "--all", "--json"]);
    let lsblk = run(Command::new("lsblk").args(["-d", "-n", "-b", "-o", "NAME,SIZE,RM,TYPE"]));
    for d in lsblk.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()).filter(|d| d[3] == "disk" && d[1] != "0") {
        let dev = devices.as_array().unwrap().iter().find(|j| j["dev_path"] == format!("/dev/{}", d[0]));
        let dev = dev.unwrap_or_else(|| panic!("/dev/{} missing from {devices}", d[0]));
        assert_eq!(dev["size"].as_u64().unwrap().to_string(), d[1]);
        assert_eq!(dev["removable"], d[2] == "1");
    }
    let check = json(&["profile", "check", "--json", prof.to_str().unwrap()]);
    assert_eq!(check["name"], "cs");
    assert_eq!(check["rules"][0]["path"], "C-00000291*.sys");
    assert_eq!(check["actions"][0], "delete C-00000291*.sys (no backup)");
    assert!(check["warnings"][0].as_str().unwrap().contains("wildcard at the volume root"), "{check}");
    let usage = ntfs3g::limits::output(Command::new(exe).args(["apply", "--no-such-flag"])).unwrap();
    assert_eq!(usage.status.code(), Some(2), "usage errors exit 2");
    check_volume(&img);
}

/// Two `rescue apply` runs on the same image at once: one fixes, the other
/// is refused (disk in use) or finds nothing left to do; the volume stays
/// consistent for ntfs-3g every time.
#[test]
fn concurrent_applies_on_one_disk_never_interleave() {
    let t = tempfile::tempdir().unwrap();
    let prof = t.path().join("cs.toml");
    fs::write(&prof, "name = \"cs\"\n[[delete]]\npath = 'C-00000291*.sys'\nbackup = false\n").unwrap();
    let exe = env!("CARGO_BIN_EXE_rescue");
    for round in 0..4 {
        let img = make_volume(
            t.path(),
            &format!("r{round}.img"),
            16,
            &[],
            "mkdir -p Windows/System32 && for i in 1 2 3 4 5 6 7 8; do printf '\\252\\252\\252\\252\\001\\000\\043\\001' > C-00000291-$i.sys; done",
        );
        let start = || ntfs3g::limits::output(Command::new(exe).args(["apply", "--profile"]).arg(&prof).arg(&img));
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(start);
            let b = s.spawn(start);
            (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
        });
        let outcome = |o: &std::process::Output| {
            let err = String::from_utf8_lossy(&o.stderr).into_owned();
            match o.status.code() {
                Some(0) => "fixed",
                Some(3) => "nothing",
                Some(1) if err.contains("in use by another") => "refused",
                _ => panic!("unexpected: {o:?}"),
            }
        };
        let mut both = [outcome(&a), outcome(&b)];
        both.sort();
        assert!(both == ["fixed", "nothing"] || both == ["fixed", "refused"], "round {round}: {both:?}");
        let ls = run(Command::new("ntfsls").arg(&img));
        assert!(!ls.contains("C-00000291"), "round {round}: files left:\n{ls}");
        check_volume(&img);
    }
}

/// A PC whose Windows folder is NTFS-compressed (`make-test-disk
/// --compressed`): `rescue ls` marks the files compressed, `rescue apply`
/// checks the decompressed header, backs up the decompressed contents (the
/// SHA-256 the manifest recorded when ntfs-3g wrote them) and deletes the
/// file; the decoy stays; ntfs-3g's checks pass.
#[test]
fn compressed_windows_folder_is_fixed() {
    let t = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_rescue");
    let disk = t.path().join("pc.img");
    run(Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-test-disk"))
        .args(["--size", "200", "--compressed", "--decoy"])
        .arg(&disk)
        .env("RESCUE", exe));
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(t.path().join("pc.img.json")).unwrap()).unwrap();
    assert_eq!(manifest["compressed"], true);
    let cs = "Windows\\System32\\drivers\\CrowdStrike";
    let ls = run(Command::new(exe).arg("ls").arg(&disk).arg(cs));
    let line = ls.lines().find(|l| l.ends_with("C-00000291-00000000-00000032.sys")).unwrap();
    assert!(line.contains(" C--- "), "not shown as compressed: {line}");
    let profile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/crowdstrike-c00000291.toml");
    let backups = t.path().join("backups");
    let o =
        run(Command::new(exe).args(["apply", "--profile"]).arg(&profile).arg("--backup-dir").arg(&backups).arg(&disk));
    assert!(o.contains("1 deleted"), "{o}");
    let bad = "Windows/System32/drivers/CrowdStrike/C-00000291-00000000-00000032.sys";
    let want = manifest["files"][bad].as_str().unwrap();
    let found: Vec<_> =
        all_files(&backups).into_iter().filter(|p| p.ends_with("C-00000291-00000000-00000032.sys")).collect();
    assert_eq!(found.len(), 1, "{found:?}");
    use sha2::Digest;
    let got: String = sha2::Sha256::digest(fs::read(&found[0]).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(got, want, "the backup is not the decompressed file");
    // ntfs-3g's view of the partition: the file is gone, the decoy stays,
    // and its own checks pass.
    let off = manifest["windows_partition_offset"].as_u64().unwrap() as usize;
    let len = manifest["windows_partition_size"].as_u64().unwrap() as usize;
    let part = t.path().join("part.img");
    fs::write(&part, &fs::read(&disk).unwrap()[off..off + len]).unwrap();
    let ls = run(Command::new("ntfsls").args(["-p", "/Windows/System32/drivers/CrowdStrike"]).arg(&part));
    assert!(!ls.contains("00000032.sys") && ls.contains("C-00000291-decoy.sys"), "{ls}");
    check_volume(&part);
}

/// `(name, size)` of each entry `rescue ls` shows: size first, the name
/// after the record number (`… rec 66  a.txt`).
fn our_listing(text: &str) -> std::collections::BTreeSet<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let size = l.split_whitespace().next()?.parse().ok()?;
            let rest = l.get(l.find(" rec ")? + 5..)?.trim_start();
            Some((rest.split_once("  ")?.1.to_string(), size))
        })
        .collect()
}

/// The same from `ntfsls -l` (`size Mon dd HH:MM YYYY name`), without `.`.
fn ntfsls_listing(text: &str) -> std::collections::BTreeSet<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let size = l.split_whitespace().next()?.parse().ok()?;
            Some((l.get(l.find(':')? + 9..)?.to_string(), size))
        })
        .filter(|(name, _)| name != ".")
        .collect()
}

/// `rescue ls` lists a folder as ntfs-3g's `ntfsls -l` does: the same names
/// (Unicode, spaces, a symbolic link, a subfolder, 400 files so the folder
/// needs index blocks) with the same sizes.
#[test]
fn ls_lists_what_ntfsls_lists() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(
        t.path(),
        "ls.img",
        16,
        &[],
        "mkdir -p d/sub && echo a > d/a.txt && printf 'x%.0s' $(seq 5000) > d/big.bin && \
         echo u > 'd/Üml ä ☃.sys' && ln -s a.txt d/link && \
         for i in $(seq 400); do echo $i > d/file-$i.dat; done",
    );
    let exe = env!("CARGO_BIN_EXE_rescue");
    let ours = our_listing(&run(Command::new(exe).arg("ls").arg(&img).arg("d")));
    let theirs = ntfsls_listing(&run(Command::new("ntfsls").args(["-l", "-p", "/d"]).arg(&img)));
    assert_eq!(ours.len(), 405, "{ours:?}");
    assert_eq!(ours, theirs);
}

/// A file with a long and an 8.3 name and a hard link elsewhere: deleting the
/// long name (its 8.3 partner goes too) leaves the link with the link count
/// ntfs-3g's own `rm` leaves (every name counts, the 8.3 one too).
#[test]
fn deleting_a_hard_linked_file_with_a_dos_name_counts_links_as_ntfs3g() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(
        t.path(),
        "hl.img",
        16,
        &[],
        "mkdir -p Windows/System32/drivers/CrowdStrike Other && cd Windows/System32/drivers/CrowdStrike && \
         printf '\\252\\252\\252\\252\\001\\000\\043\\001x' > 'C-00000291-long name.sys' && \
         setfattr -h -v 'C-0000~1.SYS' -n system.ntfs_dos_name 'C-00000291-long name.sys' && \
         ln 'C-00000291-long name.sys' ../../../../Other/link.sys",
    );
    let theirs = ntfs3g::copy(&img, &t.path().join("theirs.img"));
    with_mount(&theirs, &[], |m| {
        fs::remove_file(m.join("Windows/System32/drivers/CrowdStrike/C-00000291-long name.sys")).unwrap()
    });
    let prof = t.path().join("cs.toml");
    fs::write(&prof, "name = \"cs\"\n[[delete]]\npath = 'Windows\\System32\\drivers\\CrowdStrike\\C-00000291*.sys'\n")
        .unwrap();
    run(Command::new(env!("CARGO_BIN_EXE_rescue")).args(["apply", "--profile"]).arg(&prof).arg(&img));
    let links = |i: &Path| {
        let info = run(Command::new("ntfsinfo").args(["-F", "/Other/link.sys"]).arg(i));
        info.lines().find(|l| l.contains("Hard Links")).unwrap_or_default().to_string()
    };
    assert_eq!(links(&img), links(&theirs));
    assert!(links(&img).contains("1 (0x1)"), "{}", links(&img));
    check_volume(&img);
}
