//! ARM64 PCs (Windows-on-ARM laptops boot `EFI\BOOT\BOOTAA64.EFI`): the same
//! stick `rescue build` makes for every PC boots in `qemu-system-aarch64 -M
//! virt` with AAVMF (TCG), the stick on xHCI and the test disk on NVMe, and
//! fixes a plain and a BitLocker test disk (the key typed at the prompt).
//! The disks are then checked with ntfs-3g, the stick with mtools.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::time::Duration;
use support::*;

const BAD: &str = "Windows/System32/drivers/CrowdStrike/C-00000291-00000000-00000032.sys";
const RP: &str = "236808-089419-192665-046024-405482-219285-362142-691911";

/// Builds the default stick, boots it on ARM64 with `disk`, runs `script`
/// (typing at prompts), and returns the run.
fn boot(dir: &Path, disk: &TestDisk, script: impl FnOnce(&mut Qemu)) -> Run {
    let stick = dir.join("stick.img");
    ok(rescue().arg("build").arg("--profile").arg(default_profile()).arg("--size").arg("40").arg("--out").arg(&stick));
    let mut vm = Qemu::boot_arm64(&stick, &[disk.path.as_path()]);
    script(&mut vm);
    Run::finish(vm, &stick, Duration::from_secs(600))
}

#[test]
fn arm64_pc_plain_disk_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "win.img", &["--decoy"]);
    let run = boot(dir.path(), &disk, |_| {});
    assert_eq!(run.verdict(), "FIXED", "{:#?}", run.lines);
    assert_eq!(run.report["files_deleted"], 1);
    let stick = &run.stick;
    disk.check_with_ntfs3g(&[BAD]);
    let backups: Vec<String> =
        stick_list(stick, "rescue/backups").into_iter().filter(|p| p.ends_with("00000032.sys")).collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(sha256_hex(&stick_file(stick, &backups[0]).unwrap()), disk.files[BAD]);
}

#[test]
fn arm64_pc_bitlocker_disk_is_fixed_with_a_typed_key() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "bl.img", &["--bitlocker", RP]);
    let run = boot(dir.path(), &disk, |vm| {
        vm.wait_line(|l| l.starts_with("KEY: "), Duration::from_secs(400));
        vm.type_text(&format!("{}\r", RP.replace('-', "")));
    });
    assert_eq!(run.verdict(), "FIXED", "{:#?}", run.lines);
    assert!(run.report["bitlocker"][0]["unlocked_by"].as_str().unwrap().starts_with("recovery password"));
    // The key check on ARM64 (software SHA-256 in TCG): the report's timing, for the README.
    eprintln!("arm64 bitlocker run: {} ms", run.report["duration_ms"]);
    disk.check_with_ntfs3g(&[BAD]);
}
