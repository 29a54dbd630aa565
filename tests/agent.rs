//! The agent end to end: a stick built by `rescue build` boots in QEMU + OVMF
//! (TCG) beside disks shaped like Windows PCs (`scripts/make-test-disk`), fixes
//! them by itself and ends the VM. The disks are then checked with ntfs-3g's
//! tools and the stick with mtools — never with our own code.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

const BAD: &str = "Windows/System32/drivers/CrowdStrike/C-00000291-00000000-00000032.sys";

/// Builds a stick from `profile` (text), boots it with `disks`, waits for the
/// VM to end by itself, and reads the report back from the stick.
fn boot_and_fix(dir: &Path, profile: &str, disks: &[(&TestDisk, Bus)]) -> Run {
    let profile_path = dir.join("profile.toml");
    std::fs::write(&profile_path, profile).unwrap();
    let stick = dir.join("stick.img");
    ok(rescue().arg("build").arg("--profile").arg(&profile_path).arg("--size").arg("40").arg("--out").arg(&stick));
    let attached: Vec<(&Path, Bus)> = disks.iter().map(|(d, b)| (d.path.as_path(), *b)).collect();
    let vm = Qemu::boot(&stick, Media::UsbStick, &attached, &[]);
    Run::finish(vm, &stick, Duration::from_secs(180))
}

fn crowdstrike() -> String {
    std::fs::read_to_string(default_profile()).unwrap()
}

fn verdict(run: &Run) -> String {
    run.verdict().to_string()
}

fn disk_sha(d: &TestDisk) -> String {
    sha256_hex(&std::fs::read(&d.path).unwrap())
}

/// The backup of `path` from the volume with this serial, read from the stick with mtools.
fn backup_on_stick(run: &Run, path: &str) -> Vec<Vec<u8>> {
    stick_list(&run.stick, "rescue/backups")
        .into_iter()
        .filter(|p| p.ends_with(path))
        .map(|p| stick_file(&run.stick, &p).unwrap())
        .collect()
}

#[test]
fn fixes_windows_disks_on_ahci_nvme_and_virtio() {
    let dir = tempfile::tempdir().unwrap();
    let ahci = make_test_disk(dir.path(), "ahci.img", &["--decoy"]);
    let nvme = make_test_disk(dir.path(), "nvme.img", &["--seed", "2"]);
    let virtio = make_test_disk(dir.path(), "virtio.img", &["--seed", "3", "--compressed"]);
    let data = make_test_disk(dir.path(), "data.img", &["--no-windows"]);
    let data_before = disk_sha(&data);
    let run = boot_and_fix(
        dir.path(),
        &crowdstrike(),
        &[(&ahci, Bus::Ahci), (&nvme, Bus::Nvme), (&virtio, Bus::Virtio), (&data, Bus::Ahci)],
    );
    assert_eq!(verdict(&run), "FIXED", "{:#?}", run.lines);
    assert_eq!(run.report["outcome"], "FIXED");
    assert_eq!(run.report["windows_volumes"], 3);
    assert_eq!(run.report["files_deleted"], 3);
    assert_eq!(run.report["disks"].as_array().unwrap().len(), 4);
    for d in [&ahci, &nvme, &virtio] {
        d.check_with_ntfs3g(&[BAD]);
    }
    // The decoy (right name, wrong header) is still there: check_with_ntfs3g compared it.
    assert!(ahci.files.keys().any(|k| k.ends_with("C-00000291-decoy.sys")));
    assert_eq!(disk_sha(&data), data_before, "the disk without Windows was written to");
    // Every deleted file is backed up on the stick, byte for byte.
    let backups = backup_on_stick(&run, "CrowdStrike/C-00000291-00000000-00000032.sys");
    assert_eq!(backups.len(), 3);
    let mut got: Vec<String> = backups.iter().map(|b| sha256_hex(b)).collect();
    let mut want: Vec<String> = [&ahci, &nvme, &virtio].iter().map(|d| d.files[BAD].clone()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn second_run_on_a_fixed_disk_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "win.img", &[]);
    let first = boot_and_fix(dir.path(), &crowdstrike(), &[(&disk, Bus::Ahci)]);
    assert_eq!(verdict(&first), "FIXED");
    let after_first = disk_sha(&disk);
    assert!(stick_list(&first.stick, "rescue/backups").iter().any(|p| p.ends_with(".sys.json")), "no sidecar");
    let second = boot_and_fix(dir.path(), &crowdstrike(), &[(&disk, Bus::Ahci)]);
    assert_eq!(verdict(&second), "NOTHING TO DO", "{:#?}", second.lines);
    assert_eq!(disk_sha(&disk), after_first, "the second run wrote to the disk");
    disk.check_with_ntfs3g(&[BAD]);
}

/// Undo with a restore stick: a stick deletes the channel file, disables
/// a service and sets Safe Mode; a restore stick built from that stick's
/// backups (`rescue build --backups`) puts all three back: the file's SHA-256
/// equals the original's, hivex reads the hive and the BCD store as before
/// (mtools reads the ESP), regipy replays SYSTEM.LOG1 to the hive written,
/// ntfs-3g finds every file; booted again, the restore stick has nothing to do.
#[test]
fn a_restore_stick_puts_back_what_a_fix_stick_changed() {
    let dir = tempfile::tempdir().unwrap();
    let mut disk = make_test_disk(dir.path(), "win.img", &["--hives"]);
    let vol = dir.path().join("vol");
    let system = |disk: &TestDisk| {
        disk.extract_volume(&vol);
        ok_bytes(std::process::Command::new("ntfscat").arg(&vol).arg("Windows/System32/config/SYSTEM"))
    };
    let before = hive_dump(&system(&disk));
    let esp = format!("{}@@1M", disk.path.display());
    let bcd =
        || hive_dump(&ok_bytes(std::process::Command::new("mtype").args(["-i", &esp, "::/EFI/Microsoft/Boot/BCD"])));
    let bcd_before = bcd();
    let fix = crowdstrike().replace("[finish]", "[finish]\nsafe_mode = \"minimal\"")
        + "\n[[service]]\nname = \"CSAgent\"\nstart = \"disabled\"\n";
    let first = boot_and_fix(dir.path(), &fix, &[(&disk, Bus::Ahci)]);
    assert_eq!(verdict(&first), "FIXED", "{:#?}", first.lines);
    assert_eq!(first.report["files_deleted"], 1);
    let fixed = system(&disk);
    assert_ne!(hive_dump(&fixed)[1..], before[1..], "the service was not disabled");
    assert_ne!(bcd()[1..], bcd_before[1..], "Safe Mode was not set");
    // The fix stick's backups, as an admin copies them off it.
    let kept = dir.path().join("from-stick");
    for p in stick_list(&first.stick, "rescue/backups") {
        let to = kept.join(&p);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(&to, stick_file(&first.stick, &p).unwrap()).unwrap();
    }
    let undo = dir.path().join("undo.toml");
    std::fs::write(&undo, "name = \"undo\"\n[[restore]]\nfrom = \"backups\"\n").unwrap();
    let stick = dir.path().join("restore.img");
    let built = ok(rescue()
        .arg("build")
        .arg("--profile")
        .arg(&undo)
        .arg("--backups")
        .arg(kept.join("rescue/backups"))
        .args(["--size", "40", "--out"])
        .arg(&stick));
    assert!(built.contains("carries 5 backup(s)"), "{built}");
    let boot = || {
        let vm = Qemu::boot(&stick, Media::UsbStick, &[(disk.path.as_path(), Bus::Ahci)], &[]);
        Run::finish(vm, &stick, Duration::from_secs(180))
    };
    let restored = boot();
    let all = "FIXED: restored 1 files and 1 hives and 1 boot stores";
    assert_eq!(verdict(&restored), all, "{:#?}", restored.lines);
    assert_eq!(restored.report["restored"], 3, "{:#}", restored.report);
    assert_eq!(bcd()[1..], bcd_before[1..], "the BCD store is not as before the fix");
    // The file is back, byte for byte; every other file of the manifest is as it was.
    disk.extract_volume(&vol);
    let back = ok_bytes(std::process::Command::new("ntfscat").arg(&vol).arg(BAD));
    assert_eq!(sha256_hex(&back), disk.files[BAD]);
    // (The hive's bytes differ from the original's in its header's sequence
    // numbers and time, and its log holds the restore: hivex judges them below.)
    disk.files.retain(|path, _| !path.starts_with("Windows/System32/config/SYSTEM"));
    disk.check_with_ntfs3g(&[]);
    // The hive as before the fix; its restore went through SYSTEM.LOG1 first.
    let now = system(&disk);
    let after = hive_dump(&now);
    assert!(after[0].ends_with("checksum ok"), "{}", after[0]);
    assert_eq!(after[1..], before[1..], "hivex reads another hive than before the fix");
    let log1 = ok_bytes(std::process::Command::new("ntfscat").arg(&vol).arg("Windows/System32/config/SYSTEM.LOG1"));
    assert_eq!(regipy_replay(dir.path(), &fixed, &log1)[4096..], now[4096..], "regipy's replay of LOG1 differs");
    // The hive as the fix left it went to the stick before the restore.
    assert_eq!(backup_on_stick(&restored, "config/SYSTEM").len(), 2);
    // The same stick again (its report of the first run moved aside, as `rescue collect` reads one per run).
    let first_report = stick_list(&stick, "rescue/reports").pop().unwrap();
    ok(std::process::Command::new("mdel")
        .arg("-i")
        .arg(format!("{}@@1M", stick.display()))
        .arg(format!("::/{first_report}")));
    let again = boot();
    assert_eq!(verdict(&again), "NOTHING TO DO: restored 0 files; 3 already in place", "{:#?}", again.lines);
}

/// regipy's replay of `log1` over `hive` (its library, as its
/// `regipy-process-transaction-logs` command runs it).
fn regipy_replay(dir: &Path, hive: &[u8], log1: &[u8]) -> Vec<u8> {
    let (h, l, out) = (dir.join("regipy-hive"), dir.join("regipy-log1"), dir.join("regipy-out"));
    std::fs::write(&h, hive).unwrap();
    std::fs::write(&l, log1).unwrap();
    let py = "import sys\nfrom regipy.recovery import apply_transaction_logs\n\
              apply_transaction_logs(sys.argv[1], primary_log_path=sys.argv[2], restored_hive_path=sys.argv[3])\n";
    ok(std::process::Command::new("python3").arg("-c").arg(py).arg(&h).arg(&l).arg(&out));
    std::fs::read(&out).unwrap()
}

/// A crashed Windows: the journal holds transactions Windows committed but
/// had not written (a crash state made by ntfsrecover from the corpus' own
/// log). The shipped profile replays it, then fixes; the replayed records
/// equal ntfsrecover's replay of the same state, the journal is clean and the
/// volume is not marked for chkdsk.
#[test]
fn unclean_journal_is_replayed_then_fixed_with_the_crowdstrike_profile() {
    let dir = tempfile::tempdir().unwrap();
    let cs = dir.path().join("crash-state");
    let disk =
        make_test_disk(dir.path(), "crashed.img", &["--crash-state", "3", "--crash-state-dir", cs.to_str().unwrap()]);
    let run = boot_and_fix(dir.path(), &crowdstrike(), &[(&disk, Bus::Ahci)]);
    assert_eq!(verdict(&run), "FIXED", "{:#?}", run.lines);
    let notes = run.report["volumes"][0]["notes"].to_string();
    assert!(notes.contains("journal replayed: 1 transactions redone, 0 undone"), "{notes}\n{:#}", run.report);
    assert!(run.lines.iter().any(|l| l.contains("journal to replay: 1 transactions")), "{:#?}", run.lines);
    let info = disk.check_with_ntfs3g(&[BAD]);
    let flags = info.lines().find(|l| l.contains("Volume Flags")).unwrap_or_else(|| panic!("no flags:\n{info}"));
    assert!(!flags.contains("DIRTY"), "volume marked dirty after a replay: {flags}");
    let vol = dir.path().join("vol");
    disk.extract_volume(&vol);
    let rec = support::run(std::process::Command::new("ntfsrecover").args(["-n", "-s", "-v"]).arg(&vol));
    assert!(String::from_utf8_lossy(&rec.stdout).contains("Volume is clean"), "ntfsrecover: journal not clean");
    // Every record the replay restores equals ntfsrecover's replay (update sequence numbers aside).
    let touched: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cs.join("touched.json")).unwrap()).unwrap();
    let (ours, theirs) = (std::fs::read(&vol).unwrap(), std::fs::read(cs.join("replayed-by-ntfsrecover.img")).unwrap());
    let pages = touched["touched"].as_array().unwrap();
    assert!(!pages.is_empty());
    for p in pages {
        let (o, n) = (p["offset"].as_u64().unwrap() as usize, p["size"].as_u64().unwrap() as usize);
        let usa = |b: &[u8]| u16::from_le_bytes([b[o + 4], b[o + 5]]) as usize;
        let masked = |b: &[u8]| {
            let mut r = b[o..o + n].to_vec();
            let (uo, uc) = (usa(b), n / 512 + 1);
            r[uo..uo + 2 * uc].fill(0);
            for i in 1..uc {
                r[i * 512 - 2..i * 512].fill(0);
            }
            r
        };
        assert!(masked(&ours) == masked(&theirs), "record at byte {o} differs from ntfsrecover's replay");
    }
}

#[test]
fn unclean_journal_is_reset_when_the_profile_says_reset() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "crashed.img", &["--unclean"]);
    let run = boot_and_fix(dir.path(), &crowdstrike().replace("\"replay\"", "\"reset\""), &[(&disk, Bus::Ahci)]);
    assert_eq!(verdict(&run), "FIXED", "{:#?}", run.lines);
    let info = disk.check_with_ntfs3g(&[BAD]);
    // Marked dirty, so Windows runs chkdsk at its next boot.
    let flags = info.lines().find(|l| l.contains("Volume Flags")).unwrap_or_else(|| panic!("no flags:\n{info}"));
    assert!(flags.contains("DIRTY"), "volume not marked dirty: {flags}\n{info}");
}

/// `--unclean` clears the clean flag of Windows' restart areas: a crash
/// whose checkpoint left nothing to redo. `refuse` leaves it alone (FAILED,
/// nothing written); the shipped `replay` marks the journal clean, fixes the
/// volume and does not mark it for chkdsk.
#[test]
fn unclean_journal_is_refused_or_replayed_as_the_profile_says() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "crashed.img", &["--unclean"]);
    let before = disk_sha(&disk);
    let run = boot_and_fix(dir.path(), &crowdstrike().replace("\"replay\"", "\"refuse\""), &[(&disk, Bus::Ahci)]);
    let v = verdict(&run);
    assert!(v.starts_with("FAILED") && v.contains("journal"), "{v}\n{:#?}", run.lines);
    assert_eq!(disk_sha(&disk), before, "a refused disk was written to");
    let run = boot_and_fix(dir.path(), &crowdstrike(), &[(&disk, Bus::Ahci)]);
    assert_eq!(verdict(&run), "FIXED", "{:#?}", run.lines);
    let notes = run.report["volumes"][0]["notes"].to_string();
    assert!(notes.contains("journal replayed: 0 transactions redone, 0 undone"), "{notes}");
    let info = disk.check_with_ntfs3g(&[BAD]);
    let flags = info.lines().find(|l| l.contains("Volume Flags")).unwrap_or_else(|| panic!("no flags:\n{info}"));
    assert!(!flags.contains("DIRTY"), "volume marked dirty after a replay: {flags}");
}

#[test]
fn hibernated_volume_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "hib.img", &["--hibernated"]);
    let before = disk_sha(&disk);
    let run = boot_and_fix(dir.path(), &crowdstrike(), &[(&disk, Bus::Ahci)]);
    let v = verdict(&run);
    assert!(v.starts_with("FAILED") && v.to_lowercase().contains("hibernat"), "{v}\n{:#?}", run.lines);
    assert_eq!(disk_sha(&disk), before, "a hibernated disk was written to");
}

#[test]
fn no_windows_anywhere_is_a_failure_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "data.img", &["--no-windows"]);
    let before = disk_sha(&disk);
    let run = boot_and_fix(dir.path(), &crowdstrike(), &[(&disk, Bus::Virtio)]);
    let v = verdict(&run);
    assert!(v.starts_with("FAILED") && v.contains("no Windows volume"), "{v}");
    assert_eq!(disk_sha(&disk), before);
}

/// A recovery password (every block a multiple of 11 below 720896).
const RP: &str = "466895-217492-569250-069608-104434-135707-527241-083622";
const OTHER_RP: &str = "111111-222222-333333-444444-555555-666666-700007-000011";

/// Boots a stick with one BitLocker disk and drives the key prompt with `script`.
fn boot_bitlocker(dir: &Path, disk: &TestDisk, script: impl FnOnce(&mut Qemu)) -> Run {
    let stick = dir.join("stick.img");
    ok(rescue().arg("build").arg("--profile").arg(default_profile()).arg("--size").arg("40").arg("--out").arg(&stick));
    let mut vm = Qemu::boot(&stick, Media::UsbStick, &[(disk.path.as_path(), Bus::Ahci)], &[]);
    script(&mut vm);
    Run::finish(vm, &stick, Duration::from_secs(240))
}

fn at_prompt(vm: &mut Qemu) {
    vm.wait_line(|l| l.starts_with("KEY: "), Duration::from_secs(120));
}

#[test]
fn bitlocker_volume_is_fixed_with_the_typed_key() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "bl.img", &["--bitlocker", RP]);
    let run = boot_bitlocker(dir.path(), &disk, |vm| {
        at_prompt(vm);
        // The prompt shows the Key ID Windows shows on its recovery screen.
        assert!(vm.count_lines(|l| l.trim_start().starts_with("Key ID: ")) >= 1, "{}", vm.serial_text());
        vm.type_text(&format!("{}\r", RP.replace('-', "")));
    });
    assert_eq!(verdict(&run), "FIXED", "{:#?}", run.lines);
    assert!(
        run.lines.iter().all(|l| !l.contains(RP) && !l.contains(&RP.replace('-', ""))),
        "the key was echoed in a status line"
    );
    let bl = &run.report["bitlocker"][0];
    assert!(bl["unlocked_by"].as_str().unwrap().starts_with("recovery password"), "{bl}");
    let report_text = run.report.to_string();
    assert!(!report_text.contains(&RP[..13]), "the report holds the key");
    disk.check_with_ntfs3g(&[BAD]);
    let backups = backup_on_stick(&run, "CrowdStrike/C-00000291-00000000-00000032.sys");
    assert_eq!(backups.len(), 1);
    assert_eq!(sha256_hex(&backups[0]), disk.files[BAD]);
}

#[test]
fn bitlocker_wrong_block_and_wrong_key_then_right() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "bl.img", &["--bitlocker", RP]);
    let run = boot_bitlocker(dir.path(), &disk, |vm| {
        at_prompt(vm);
        // A mistyped second block is named at once.
        vm.type_text("466895-217493");
        vm.wait_line(|l| l.starts_with("Block 2 is wrong"), Duration::from_secs(60));
        // A well-formed but wrong key is refused, and the prompt asks again.
        vm.type_text(&format!("{OTHER_RP}\r"));
        vm.wait_line(|l| l.contains("does not open this volume"), Duration::from_secs(120));
        vm.type_text(&format!("{RP}\r"));
    });
    assert_eq!(verdict(&run), "FIXED", "{:#?}", run.lines);
    assert_eq!(run.report["bitlocker"][0]["wrong_attempts"], 1);
    disk.check_with_ntfs3g(&[BAD]);
}

#[test]
fn bitlocker_volume_skipped_with_esc_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "bl.img", &["--bitlocker", RP]);
    let before = disk_sha(&disk);
    let run = boot_bitlocker(dir.path(), &disk, |vm| {
        at_prompt(vm);
        vm.type_text("\x1b");
    });
    let v = verdict(&run);
    assert!(v.starts_with("FAILED") && v.contains("skipped"), "{v}");
    assert_eq!(disk_sha(&disk), before);
    assert!(run.report["bitlocker"][0]["skipped"].as_str().unwrap().contains("Esc"));
}

/// The prompt times out (nobody has the key): with `[bitlocker] when_locked
/// = "safe_mode"` the run ends SAFE MODE SET, the store on the ESP says so
/// (hivex), and the encrypted volume is untouched.
#[test]
fn locked_pc_whose_prompt_times_out_gets_safe_mode_with_networking() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "bl.img", &["--bitlocker", RP, "--hives"]);
    let (vol, after) = (dir.path().join("vol"), dir.path().join("after"));
    disk.extract_volume(&vol);
    let profile = crowdstrike()
        + "\n[prompt]\ntimeout_seconds = 3\n[bitlocker]\nwhen_locked = \"safe_mode\"\nsafe_mode = \"network\"\n";
    let run = boot_and_fix(dir.path(), &profile, &[(&disk, Bus::Ahci)]);
    assert!(verdict(&run).starts_with("SAFE MODE SET"), "{:#?}", run.lines);
    assert_eq!(run.report["outcome"], "SAFE MODE SET");
    assert!(run.report["bitlocker"][0]["skipped"].as_str().unwrap().contains("within 3 s"), "{:#}", run.report);
    let esp = format!("{}@@1M", disk.path.display());
    let bcd = ok_bytes(std::process::Command::new("mtype").args(["-i", &esp, "::/EFI/Microsoft/Boot/BCD"]));
    assert!(hive_dump(&bcd).iter().any(|l| l.ends_with("\\Elements\\25000080\tElement\t3\t0100000000000000")));
    assert_eq!(backup_on_stick(&run, "Boot/BCD").len(), 1, "the store was not backed up first");
    disk.extract_volume(&after);
    assert!(std::fs::read(&vol).unwrap() == std::fs::read(&after).unwrap(), "the BitLocker volume was written");
}

#[test]
fn read_only_medium_still_fixes_and_says_so() {
    // An ISO booted as a CD: no backups or report can be kept, the fix goes on.
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "win.img", &[]);
    let iso = build_image(dir.path(), "stick.iso", &["--format", "iso"]);
    let mut vm = Qemu::boot(&iso, Media::Cdrom, &[(disk.path.as_path(), Bus::Ahci)], &[]);
    vm.wait_exit(Duration::from_secs(180));
    let lines = vm.agent_lines();
    // FIXED, and the verdict says that no report was kept.
    assert!(lines.iter().any(|l| l.starts_with("RESULT: FIXED") && l.contains("no report was kept")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("warning: backup of") && l.contains("not kept")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("warning: no report kept")), "{lines:#?}");
    disk.check_with_ntfs3g(&[BAD]);
}

/// A USB stick with its write-protect switch on behaves as the CD does: the
/// fix goes on, and the screen says that neither backup nor report was kept.
#[test]
fn write_protected_stick_still_fixes_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "win.img", &[]);
    let stick = build_image(dir.path(), "stick.img", &["--size", "40"]);
    let before = sha256_hex(&std::fs::read(&stick).unwrap());
    let mut vm = Qemu::boot(&stick, Media::ReadOnlyStick, &[(disk.path.as_path(), Bus::Ahci)], &[]);
    vm.wait_exit(Duration::from_secs(180));
    let lines = vm.agent_lines();
    assert!(lines.iter().any(|l| l.starts_with("RESULT: FIXED") && l.contains("no report was kept")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("warning: backup of") && l.contains("not kept")), "{lines:#?}");
    assert_eq!(sha256_hex(&std::fs::read(&stick).unwrap()), before, "the write-protected stick was written");
    disk.check_with_ntfs3g(&[BAD]);
}

/// A stick with no room left (filled by mtools): the same rule as a
/// read-only one; fsck.fat finds the stick's file system intact afterwards
/// (no half-written copy left behind).
#[test]
fn full_stick_still_fixes_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "win.img", &[]);
    let stick = build_image(dir.path(), "stick.img", &["--size", "40"]);
    let esp = format!("{}@@1M", stick.display());
    let free: u64 = ok(std::process::Command::new("mdir").args(["-i", &esp, "::/"]))
        .lines()
        .find_map(|l| l.trim().strip_suffix(" bytes free"))
        .map(|n| n.replace(' ', "").parse().unwrap())
        .expect("mdir shows the free space");
    let filler = dir.path().join("filler");
    std::fs::write(&filler, vec![0u8; free as usize]).unwrap();
    ok(std::process::Command::new("mcopy").args(["-i", &esp]).arg(&filler).arg("::/filler"));
    let mut vm = Qemu::boot(&stick, Media::UsbStick, &[(disk.path.as_path(), Bus::Ahci)], &[]);
    vm.wait_exit(Duration::from_secs(180));
    let lines = vm.agent_lines();
    assert!(lines.iter().any(|l| l.starts_with("RESULT: FIXED") && l.contains("no report was kept")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("warning: backup of") && l.contains("not kept")), "{lines:#?}");
    let part = dir.path().join("esp.img");
    let bytes = std::fs::read(&stick).unwrap();
    std::fs::write(&part, &bytes[1 << 20..]).unwrap();
    let fsck = run(std::process::Command::new("fsck.fat").args(["-n", "-v"]).arg(&part));
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
    assert!(stick_list(&stick, "rescue/backups").is_empty(), "a partial copy was left on the stick");
    disk.check_with_ntfs3g(&[BAD]);
}

/// A disk that fails to read in the middle of the fix (QEMU's blkdebug
/// returns EIO for the channel file's data, found by ntfsinfo): the run is
/// FAILED with the error in words, and not one byte of the disk changed.
/// The disk is on virtio: on QEMU's AHCI, OVMF hands the agent zeros with
/// success for the failed read (the file then shows a header mismatch and
/// is skipped: still nothing written, but no error to report).
#[test]
fn a_read_error_in_the_middle_of_a_fix_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "win.img", &[]);
    let vol = dir.path().join("vol");
    disk.extract_volume(&vol);
    let info = ok(std::process::Command::new("ntfsinfo").arg("-v").arg("-F").arg(format!("/{BAD}")).arg(&vol));
    let mut lines = info.lines().skip_while(|l| !l.contains("Runlist:"));
    let run0: Vec<&str> = lines.nth(1).expect("a runlist").split_whitespace().collect();
    let lcn = u64::from_str_radix(run0[1].trim_start_matches("0x"), 16).unwrap();
    let cluster: u64 = ok(std::process::Command::new("ntfsinfo").arg("-m").arg(&vol))
        .lines()
        .find_map(|l| l.trim().strip_prefix("Cluster Size:").map(|v| v.trim().parse().unwrap()))
        .unwrap();
    let sector = (disk.part_offset + lcn * cluster) / 512;
    let rules = dir.path().join("blkdebug.cfg");
    std::fs::write(&rules, format!("[inject-error]\nevent = \"read_aio\"\nsector = \"{sector}\"\nerrno = \"5\"\n"))
        .unwrap();
    let before = disk_sha(&disk);
    let stick = build_image(dir.path(), "stick.img", &["--size", "40"]);
    let drive = format!(
        "if=none,id=bd,format=raw,file.driver=blkdebug,file.config={},file.image.filename={}",
        rules.display(),
        disk.path.display()
    );
    let vm = Qemu::boot(&stick, Media::UsbStick, &[], &["-drive", &drive, "-device", "virtio-blk-pci,drive=bd"]);
    let run = Run::finish(vm, &stick, Duration::from_secs(180));
    let v = verdict(&run);
    assert!(v.starts_with("FAILED") && v.contains("C-00000291"), "{v}\n{:#?}", run.lines);
    assert!(
        run.lines.iter().any(|l| l.to_lowercase().contains("error") && l.contains("C-00000291")),
        "{:#?}",
        run.lines
    );
    assert_eq!(disk_sha(&disk), before, "a disk that failed to read was written");
}

/// A BitLocker volume Windows made (the corpus's, with files written into
/// it through dislocker): the agent asks for its key by the Key ID bdeinfo
/// reads, unlocks it with the recovery password and fixes it; dislocker and
/// ntfs-3g confirm the file is gone and the rest intact.
#[test]
fn windows_made_bitlocker_volume_is_unlocked_and_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let disk =
        make_test_disk(dir.path(), "wm.img", &["--size", "300", "--windows-made-bitlocker", "bitlk-aes-xts-128"]);
    let rp = disk.recovery_password.clone().expect("the manifest has the recovery password");
    let key_id = disk.recovery_key_id();
    let stick = build_image(dir.path(), "stick.img", &["--size", "40"]);
    let mut vm = Qemu::boot(&stick, Media::UsbStick, &[(disk.path.as_path(), Bus::Ahci)], &[]);
    let prompt = vm.wait_line(|l| l.starts_with("KEY: ") || l.contains("Key ID"), Duration::from_secs(180));
    let lines = vm.agent_lines();
    assert!(lines.iter().any(|l| l.contains(&key_id[..8])), "the prompt does not show {key_id}: {prompt}\n{lines:#?}");
    vm.wait_line(|l| l.starts_with("KEY: "), Duration::from_secs(60));
    vm.type_text(&format!("{rp}\r"));
    let run = Run::finish(vm, &stick, Duration::from_secs(240));
    assert_eq!(verdict(&run), "FIXED", "{:#?}", run.lines);
    disk.check_with_ntfs3g(&[BAD]);
}

/// Boots `stick` with `disk` and a varstore holding a Windows Boot Manager
/// entry (made with virt-fw-vars, as Windows setup leaves one); returns the
/// agent's lines and the varstore as `virt-fw-vars --print` shows it after.
fn boot_with_windows_entry(dir: &Path, stick: &Path, disk: &TestDisk, name: &str) -> (Vec<String>, String) {
    let vars = dir.join(name);
    ok(std::process::Command::new("virt-fw-vars")
        .args(["-i", OVMF_VARS, "-o"])
        .arg(&vars)
        .args(["--append-boot-filepath", "\\EFI\\Microsoft\\Boot\\bootmgfw.efi"]));
    let mut vm = Qemu::boot_with_vars(stick, Media::UsbStick, &[(disk.path.as_path(), Bus::Ahci)], &vars);
    vm.wait_exit(Duration::from_secs(180));
    (vm.agent_lines(), ok(std::process::Command::new("virt-fw-vars").arg("-i").arg(&vars).arg("--print")))
}

fn var(printed: &str, name: &str) -> Option<String> {
    printed.lines().find(|l| l.starts_with(name)).map(|l| l.split(':').next_back().unwrap().trim().to_string())
}

#[test]
fn reboot_boots_windows_next_without_touching_boot_order() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "win.img", &[]);
    let stick = build_image(dir.path(), "stick.img", &["--size", "40"]);
    let (lines, printed) = boot_with_windows_entry(dir.path(), &stick, &disk, "vars.fd");
    assert!(lines.iter().any(|l| l == "RESULT: FIXED"), "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("next boot: Boot") && l.contains("(BootNext)")), "{lines:#?}");
    let entry = printed.lines().find(|l| l.contains("bootmgfw.efi")).expect("the Windows entry");
    let number = entry.split_whitespace().next().unwrap().trim_start_matches("Boot").to_string();
    assert_eq!(
        var(&printed, "BootNext").as_deref(),
        Some(number.as_str()),
        "BootNext does not point at the Windows Boot Manager:\n{printed}"
    );

    // Control: the same boot with a profile that shuts down (no BootNext) leaves
    // BootOrder exactly as the reboot run did: the agent never writes it.
    let profile = dir.path().join("shutdown.toml");
    std::fs::write(&profile, crowdstrike().replace("action = \"reboot\"", "action = \"shutdown\"")).unwrap();
    let stick2 = dir.path().join("stick2.img");
    ok(rescue().arg("build").arg("--profile").arg(&profile).arg("--size").arg("40").arg("--out").arg(&stick2));
    let (lines2, printed2) = boot_with_windows_entry(dir.path(), &stick2, &disk, "vars2.fd");
    assert!(lines2.iter().any(|l| l == "RESULT: NOTHING TO DO"), "{lines2:#?}");
    assert_eq!(var(&printed2, "BootNext"), None);
    assert_eq!(
        var(&printed, "BootOrder"),
        var(&printed2, "BootOrder"),
        "BootOrder differs with and without the agent's BootNext"
    );
}

const PIN: &str = "2468-site";

/// A keyed stick: the default profile plus `keys_csv`, sealed with [`PIN`].
fn keyed_stick(dir: &Path, keys_csv: &str) -> PathBuf {
    let keys = dir.join("keys.csv");
    std::fs::write(&keys, keys_csv).unwrap();
    let pin = dir.join("pin.txt");
    std::fs::write(&pin, format!("{PIN}\n")).unwrap();
    let stick = dir.join("keyed.img");
    ok(rescue()
        .arg("build")
        .arg("--profile")
        .arg(default_profile())
        .arg("--keys")
        .arg(&keys)
        .arg("--pin-file")
        .arg(&pin)
        .args(["--size", "40", "--out"])
        .arg(&stick));
    stick
}

/// Boots a keyed stick with a BitLocker disk, drives it with `script`, returns the run.
fn boot_keyed(stick: &Path, disk: &TestDisk, script: impl FnOnce(&mut Qemu)) -> Run {
    let mut vm = Qemu::boot(stick, Media::UsbStick, &[(disk.path.as_path(), Bus::Ahci)], &[]);
    script(&mut vm);
    Run::finish(vm, stick, Duration::from_secs(240))
}

#[test]
fn keyed_image_unlocks_after_the_pin_wrong_pin_first() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "bl.img", &["--bitlocker", RP]);
    let stick = keyed_stick(dir.path(), &format!("KeyID,RecoveryKey\r\n{{{}}},{RP}\r\n", disk.recovery_key_id()));
    let run = boot_keyed(&stick, &disk, |vm| {
        vm.wait_line(|l| l.starts_with("PIN:"), Duration::from_secs(120));
        vm.type_text("1357\r");
        vm.wait_line(|l| l.starts_with("Wrong PIN"), Duration::from_secs(120));
        vm.type_text(&format!("{PIN}\r"));
    });
    assert_eq!(verdict(&run), "FIXED", "{:#?}", run.lines);
    assert!(run.lines.iter().all(|l| !l.starts_with("KEY: ")), "a recovery key was asked for: {:#?}", run.lines);
    assert!(run.lines.iter().all(|l| !l.contains(PIN)), "the PIN was echoed");
    assert!(
        run.report["bitlocker"][0]["unlocked_by"].as_str().unwrap().starts_with("site key"),
        "{}",
        run.report["bitlocker"]
    );
    disk.check_with_ntfs3g(&[BAD]);
}

#[test]
fn keyed_image_without_this_disks_key_falls_back_to_the_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "bl.img", &["--bitlocker", RP]);
    let stick =
        keyed_stick(dir.path(), &format!("KeyID,RecoveryKey\n12345678-1234-1234-1234-123456789ABC,{OTHER_RP}\n"));
    let run = boot_keyed(&stick, &disk, |vm| {
        vm.wait_line(|l| l.starts_with("KEY: "), Duration::from_secs(120));
        vm.type_text(&format!("{RP}\r"));
    });
    assert_eq!(verdict(&run), "FIXED", "{:#?}", run.lines);
    assert!(run.lines.iter().any(|l| l == "The stick holds no key for this volume."), "{:#?}", run.lines);
    assert!(run.lines.iter().all(|l| !l.starts_with("PIN:")), "the PIN was asked although no key matched");
    disk.check_with_ntfs3g(&[BAD]);
}

#[test]
fn tampered_key_file_is_detected_and_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "bl.img", &["--bitlocker", RP]);
    let stick = keyed_stick(dir.path(), &format!("KeyID,RecoveryKey\n{},{RP}\n", disk.recovery_key_id()));
    // Flip one byte of the sealed file on the stick, with mtools.
    let mut sealed = stick_file(&stick, "rescue/keys.sealed").expect("keys.sealed on the stick");
    let at = sealed.len() / 2;
    sealed[at] ^= 0x01;
    let altered = dir.path().join("keys.sealed");
    std::fs::write(&altered, &sealed).unwrap();
    ok(std::process::Command::new("mcopy")
        .args(["-o", "-i"])
        .arg(format!("{}@@1M", stick.display()))
        .arg(&altered)
        .arg("::/rescue/keys.sealed"));
    let run = boot_keyed(&stick, &disk, |vm| {
        vm.wait_line(|l| l.starts_with("KEY: "), Duration::from_secs(120));
        vm.type_text(&format!("{RP}\r"));
    });
    assert_eq!(verdict(&run), "FIXED", "{:#?}", run.lines);
    assert!(run.lines.iter().any(|l| l.contains("key file") && l.contains("changed after")), "{:#?}", run.lines);
    disk.check_with_ntfs3g(&[BAD]);
}

#[test]
fn corrupted_windows_volume_fails_clearly_and_is_not_written() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "broken.img", &[]);
    // Break the $MFT's first record (its "FILE" signature), as a failing disk might.
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&disk.path).unwrap();
    let mut boot = [0u8; 512];
    f.read_exact_at(&mut boot, disk.part_offset).unwrap();
    let cluster = u16::from_le_bytes([boot[11], boot[12]]) as u64 * boot[13] as u64;
    let mft = disk.part_offset + u64::from_le_bytes(boot[0x30..0x38].try_into().unwrap()) * cluster;
    let mut sig = [0u8; 4];
    f.read_exact_at(&mut sig, mft).unwrap();
    assert_eq!(&sig, b"FILE");
    f.write_all_at(b"XXXX", mft).unwrap();
    drop(f);
    let before = disk_sha(&disk);
    let run = boot_and_fix(dir.path(), &crowdstrike(), &[(&disk, Bus::Ahci)]);
    let v = verdict(&run);
    assert!(v.starts_with("FAILED") && v.contains("unreadable NTFS"), "{v}\n{:#?}", run.lines);
    assert_eq!(disk_sha(&disk), before, "a corrupted volume was written to");
}

/// A stick whose profile was replaced after the build (by another valid
/// profile, as anyone with the stick for a minute could) does nothing: FAILED,
/// the disk byte-identical, and `rescue inspect` shows the difference.
#[test]
fn replaced_profile_on_the_stick_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "pc.img", &[]);
    let before = disk_sha(&disk);
    let stick = build_image(dir.path(), "stick.img", &["--size", "40"]);
    let evil = dir.path().join("evil.toml");
    std::fs::write(
        &evil,
        "name = \"exfiltrate\"\n[[delete]]\npath = 'Windows\\System32\\config\\SYSTEM'\nbackup = true\n",
    )
    .unwrap();
    ok(std::process::Command::new("mcopy")
        .args(["-o", "-i"])
        .arg(format!("{}@@1M", stick.display()))
        .arg(&evil)
        .arg("::/rescue/profile.toml"));
    let shown = ok(rescue().arg("inspect").arg(&stick));
    assert!(shown.contains("rescue/profile.toml DIFFERS"), "{shown}");
    let mut vm = Qemu::boot(&stick, Media::UsbStick, &[(disk.path.as_path(), Bus::Ahci)], &[]);
    let result = vm.wait_line(|l| l.starts_with("RESULT: "), Duration::from_secs(120));
    drop(vm);
    assert!(result.starts_with("RESULT: FAILED") && result.contains("differs"), "{result}");
    assert_eq!(disk_sha(&disk), before, "the disk was written");
    assert!(stick_list(&stick, "rescue/backups").is_empty(), "something was backed up");
}

/// A channel file whose one NTFS name holds `\..\..`: the agent leaves it on
/// the disk, names it, and writes nothing for it on the stick; the real
/// channel file beside it is still fixed.
#[test]
fn hostile_name_on_the_disk_reaches_nothing_on_the_stick() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "pc.img", &["--hostile-name"]);
    let run = boot_and_fix(dir.path(), &crowdstrike(), &[(&disk, Bus::Ahci)]);
    assert!(verdict(&run).starts_with("FAILED"), "{:#?}", run.lines);
    assert!(run.lines.iter().any(|l| l.contains("suspicious name")), "{:#?}", run.lines);
    let on_stick: Vec<String> = stick_list(&run.stick, "rescue/backups");
    assert!(on_stick.iter().all(|p| !p.contains("escaped")), "{on_stick:?}");
    assert!(stick_list(&run.stick, "").iter().all(|p| !p.contains("escaped")), "written at the stick's root");
    // ntfs-3g finds every file of the manifest unchanged (the suspicious one
    // included) except the real channel file, which is gone.
    disk.check_with_ntfs3g(&[BAD]);
}

/// hivex's view of a hive (tests/support/hive_dump.py, Debian python3-hivex).
fn hive_dump(bytes: &[u8]) -> Vec<String> {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    let o = run(std::process::Command::new("/usr/bin/python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/hive_dump.py"))
        .arg(f.path()));
    assert!(o.status.success(), "hivex: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().lines().map(String::from).collect()
}

#[test]
fn disables_a_service_and_sets_safe_mode_checked_with_hivex() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "win.img", &["--hives"]);
    let profile = "name = \"csagent-off\"\n[[service]]\nname = \"CSAgent\"\nstart = \"disabled\"\n\
                   [finish]\nsafe_mode = \"minimal\"\n";
    let run = boot_and_fix(dir.path(), profile, &[(&disk, Bus::Ahci)]);
    assert_eq!(verdict(&run), "FIXED", "{:#?}", run.lines);
    assert_eq!(run.report["registry_changes"], 2, "{:#}", run.report);
    assert_eq!(run.report["safe_mode"][0]["action"], "set", "{:#}", run.report);
    // The SYSTEM hive as ntfs-3g reads it, as hivex reads that.
    let vol = dir.path().join("vol");
    disk.extract_volume(&vol);
    let system = ok_bytes(std::process::Command::new("ntfscat").arg(&vol).arg("Windows/System32/config/SYSTEM"));
    let dump = hive_dump(&system);
    for cs in ["ControlSet001", "ControlSet002"] {
        assert!(dump.contains(&format!("{cs}\\Services\\CSAgent\tStart\t4\t04000000")), "{cs}: CSAgent not disabled");
    }
    assert!(dump[0].ends_with("checksum ok"), "{}", dump[0]);
    // The change went into a fresh SYSTEM.LOG1 first: an HvLE entry after its new base block.
    let hives = run.report["volumes"].as_array().unwrap().iter().flat_map(|v| v["hives"].as_array().unwrap().clone());
    let journal: Vec<String> = hives.filter_map(|h| h["journal"].as_str().map(String::from)).collect();
    assert!(journal.len() == 1 && journal[0].ends_with(" in SYSTEM.LOG1, written first"), "{journal:?}");
    let log1 = ok_bytes(std::process::Command::new("ntfscat").arg(&vol).arg("Windows/System32/config/SYSTEM.LOG1"));
    assert!(log1[..4] == *b"regf" && log1[0x1C] == 6 && log1[512..516] == *b"HvLE", "LOG1 holds no entry");
    // The BCD store on the disk's ESP, as mtools reads it.
    let esp = format!("{}@@1M", disk.path.display());
    let bcd = ok_bytes(std::process::Command::new("mtype").args(["-i", &esp, "::/EFI/Microsoft/Boot/BCD"]));
    assert!(hive_dump(&bcd).iter().any(|l| l.ends_with("\\Elements\\25000080\tElement\t3\t0000000000000000")));
    // Through BCD.LOG1 first, written in place through the firmware's file system.
    let bcd_journal = run.report["safe_mode"][0]["journal"].as_str().unwrap_or_default().to_string();
    assert!(bcd_journal.ends_with(" in BCD.LOG1, written first"), "{:#}", run.report);
    let bcd_log = ok_bytes(std::process::Command::new("mtype").args(["-i", &esp, "::/EFI/Microsoft/Boot/BCD.LOG1"]));
    assert!(bcd_log.len() == 64 * 1024 && bcd_log[512..516] == *b"HvLE", "BCD.LOG1 holds no entry");
    // Both originals are backed up on the stick.
    assert_eq!(backup_on_stick(&run, "config/SYSTEM").len(), 1);
    assert_eq!(backup_on_stick(&run, "config/SYSTEM.LOG1").len(), 1);
    assert_eq!(backup_on_stick(&run, "Boot/BCD").len(), 1);
    assert_eq!(backup_on_stick(&run, "Boot/BCD.LOG1").len(), 1);
    let fix = ok(std::process::Command::new("ntfsfix").arg("-n").arg(&vol));
    assert!(fix.contains("processed successfully"), "{fix}");
}

/// The profile keys no other agent test reaches, in one run: a service's
/// start type other than `disabled`, `[[registry]]` values (a QWORD in
/// SYSTEM through `CurrentControlSet`, a string in SOFTWARE), Safe Mode with
/// networking, a report URL on a stick (no network here: not delivered, the
/// stick keeps the report), and `action = "wait"` (the PC waits for a key).
/// hivex judges the hives and the BCD store. A second stick with
/// `safe_mode = "off"` then takes Safe Mode out again.
#[test]
fn every_other_profile_key_works_in_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "win.img", &["--hives"]);
    let profile = r#"name = "keys"
[[service]]
name = "CSAgent"
start = "manual"
[[registry]]
hive = "SYSTEM"
key = 'CurrentControlSet\Services\CSAgent'
value = "RescueQword"
qword = 1234567890123
[[registry]]
hive = "SOFTWARE"
key = 'ControlSet001\Control'
value = "RescueString"
string = "set by the rescue stick"
[report]
url = "http://10.0.2.100:8080/rescue"
deadline_seconds = 10
[finish]
action = "wait"
safe_mode = "network"
"#;
    let profile_path = dir.path().join("keys.toml");
    std::fs::write(&profile_path, profile).unwrap();
    let stick = dir.path().join("stick.img");
    ok(rescue().arg("build").arg("--profile").arg(&profile_path).args(["--size", "40", "--out"]).arg(&stick));
    let mut vm = Qemu::boot(&stick, Media::UsbStick, &[(disk.path.as_path(), Bus::Ahci)], &[]);
    vm.wait_line(|l| l.contains("Press any key to restart."), Duration::from_secs(240));
    std::thread::sleep(Duration::from_secs(2));
    assert!(vm.running(), "the PC did not wait for a key");
    vm.type_text("x");
    let run = Run::finish(vm, &stick, Duration::from_secs(60));
    assert_eq!(verdict(&run), "FIXED", "{:#?}", run.lines);
    assert!(run.lines.iter().any(|l| l == "finish: wait"), "{:#?}", run.lines);
    let not_delivered = run.lines.iter().find(|l| l.starts_with("NOT DELIVERED: http://10.0.2.100:8080/rescue/"));
    assert!(not_delivered.is_some_and(|l| l.contains("no network interface")), "{:#?}", run.lines);
    assert_eq!(run.report["safe_mode"][0]["action"], "set", "{:#}", run.report);
    let vol = dir.path().join("vol");
    disk.extract_volume(&vol);
    let cat = |path: &str| ok_bytes(std::process::Command::new("ntfscat").arg(&vol).arg(path));
    let system = hive_dump(&cat("Windows/System32/config/SYSTEM"));
    assert!(system.contains(&"ControlSet001\\Services\\CSAgent\tStart\t4\t03000000".to_string()), "{system:#?}");
    let qword = format!("{:016x}", 1234567890123u64.swap_bytes());
    assert!(system.contains(&format!("ControlSet001\\Services\\CSAgent\tRescueQword\t11\t{qword}")), "{system:#?}");
    let software = hive_dump(&cat("Windows/System32/config/SOFTWARE"));
    let utf16: String =
        "set by the rescue stick\0".encode_utf16().flat_map(u16::to_le_bytes).map(|b| format!("{b:02x}")).collect();
    assert!(software.contains(&format!("ControlSet001\\Control\tRescueString\t1\t{utf16}")), "{software:#?}");
    assert!(software[0].ends_with("checksum ok") && system[0].ends_with("checksum ok"));
    let esp = format!("{}@@1M", disk.path.display());
    let bcd = || ok_bytes(std::process::Command::new("mtype").args(["-i", &esp, "::/EFI/Microsoft/Boot/BCD"]));
    let safeboot =
        |b: &[u8]| hive_dump(b).into_iter().filter(|l| l.contains("\\Elements\\25000080\t")).collect::<Vec<_>>();
    let set = safeboot(&bcd());
    assert!(!set.is_empty() && set.iter().all(|l| l.ends_with("\tElement\t3\t0100000000000000")), "{set:?}");
    // Safe Mode off: the element goes.
    let off = dir.path().join("off.toml");
    std::fs::write(&off, "name = \"safe-mode-off\"\n[finish]\nsafe_mode = \"off\"\n").unwrap();
    let stick2 = dir.path().join("stick2.img");
    ok(rescue().arg("build").arg("--profile").arg(&off).args(["--size", "40", "--out"]).arg(&stick2));
    let vm = Qemu::boot(&stick2, Media::UsbStick, &[(disk.path.as_path(), Bus::Ahci)], &[]);
    let run2 = Run::finish(vm, &stick2, Duration::from_secs(240));
    assert_eq!(verdict(&run2), "FIXED", "{:#?}", run2.lines);
    assert_eq!(safeboot(&bcd()), Vec::<String>::new(), "Safe Mode is still set");
}

fn ok_bytes(cmd: &mut std::process::Command) -> Vec<u8> {
    let o = run(cmd);
    assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// Headless Chromium (Debian's `chromium`) on a local page: the DOM after
/// its script ran, and what it printed on its console.
fn chromium_dom(page: &Path) -> (String, String) {
    let o = run(std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"])
        .args(["--virtual-time-budget=3000", "--dump-dom"])
        .arg(format!("file://{}", page.display())));
    assert!(o.status.success(), "chromium: {}", String::from_utf8_lossy(&o.stderr));
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// The text of the element with `id` in a dumped DOM.
fn by_id<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id}"));
    let open = at + dom[at..].find('>').unwrap() + 1;
    &dom[open..open + dom[open..].find('<').unwrap()]
}

/// After the sweep: real agent runs (a disk fixed; a BitLocker disk whose
/// key the technician did not have) plus hostile hand-made reports, through
/// `rescue collect --html` and `--missing-keys`, read back in a real browser.
#[test]
fn fleet_page_and_missing_keys_from_agent_runs() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    let plain = make_test_disk(dir.path(), "win.img", &[]);
    let fixed = boot_and_fix(dir.path(), &crowdstrike(), &[(&plain, Bus::Ahci)]);
    std::fs::write(reports.join("fixed.json"), fixed.report.to_string()).unwrap();
    let bl = make_test_disk(dir.path(), "bl.img", &["--bitlocker", RP]);
    let key_id = bl.recovery_key_id();
    let locked = boot_bitlocker(dir.path(), &bl, |vm| {
        at_prompt(vm);
        vm.type_text("\x1b");
    });
    std::fs::write(reports.join("locked.json"), locked.report.to_string()).unwrap();
    // Reports arrive from any PC on the network: names that are markup.
    for (i, name) in
        ["<img src=x onerror=\"document.title='pwned'\">", "</script><script>document.title='pwned'</script>"]
            .iter()
            .enumerate()
    {
        let mut r = fixed.report.clone();
        r["machine"]["manufacturer"] = serde_json::json!(name);
        r["machine"]["serial_number"] = serde_json::json!(format!("HOSTILE-{i}"));
        r["reason"] = serde_json::json!(name);
        std::fs::write(reports.join(format!("hostile-{i}.json")), r.to_string()).unwrap();
    }
    let (page, keys) = (dir.path().join("fleet.html"), dir.path().join("missing.csv"));
    ok(rescue().arg("collect").arg(&reports).arg("--html").arg(&page).arg("--missing-keys").arg(&keys));
    ok(rescue().arg("collect").arg(&reports).arg("--out").arg(dir.path().join("fleet.json")));
    let rows: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("fleet.json")).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    let count = |o: &str| rows.iter().filter(|r| r["outcome"] == o).count().to_string();

    let (dom, console) = chromium_dom(&page);
    assert!(dom.contains("data-script=\"ran\""), "the page's own script did not run (CSP hash?):\n{console}");
    assert_eq!(by_id(&dom, "count-total"), rows.len().to_string());
    assert_eq!(by_id(&dom, "count-fixed"), count("FIXED"));
    assert_eq!(by_id(&dom, "count-failed"), count("FAILED"));
    assert_eq!(by_id(&dom, "count-locked"), "1");
    assert_eq!(dom.matches("<tr class=\"pc\"").count(), rows.len());
    for r in rows {
        assert!(dom.contains(&format!(">{}<", r["serial"].as_str().unwrap())), "row {} missing", r["serial"]);
    }
    // Hostile text shows as text: no element made from it, no script run.
    assert!(!dom.contains("<img") && dom.matches("<script").count() == 1, "markup from a report became elements");
    assert!(dom.contains("&lt;img src=x onerror="), "the hostile name is not shown as text");
    assert!(!dom.contains("<title>pwned") && !console.contains("pwned"), "{console}");
    assert!(!console.contains("Uncaught") && !console.contains("Refused"), "{console}");
    // The failed PC comes first, with its reason in words.
    let failed = &dom[dom.find("<ol class=\"failed\">").unwrap()..];
    assert!(failed.contains(locked.report["machine"]["serial_number"].as_str().unwrap()));
    // Kept as a test artifact: what the admin sees.
    let shot = root().join("target/test-artifacts/fleet-page.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    ok(std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1700"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display())));
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    if std::env::var_os("RESCUE_UPDATE_SCREENSHOTS").is_some() {
        std::fs::copy(&shot, root().join("docs/img/fleet-page.png")).unwrap();
    }

    // The missing keys: exactly the locked volume's Key ID; filled in, a key file `rescue keys check` accepts.
    let csv = std::fs::read_to_string(&keys).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].starts_with(&format!("{key_id},,")), "{csv}");
    let filled = dir.path().join("filled.csv");
    std::fs::write(&filled, csv.replacen(&format!("{key_id},,"), &format!("{key_id},{RP},"), 1)).unwrap();
    let checked = ok(rescue().args(["keys", "check"]).arg(&filled));
    assert!(checked.contains("1 distinct Key ID(s) with a valid key; 0 error(s)"), "{checked}");
}
