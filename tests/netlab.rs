//! Network boot against the real servers: `scripts/netboot-lab` makes a
//! private network namespace (198.18.0.0/24, no uplink) with Debian's
//! dnsmasq and nginx configured by the very snippets of
//! `docs/network-boot.md`, and boots QEMU + OVMF PCs on its bridge (TCG).
//! The PCs boot `rescue.efi` by UEFI HTTP Boot or PXE, fix their disks and
//! deliver to nginx's WebDAV folder; ntfs-3g, bdeinfo and nginx's own log
//! judge the result. Every process the lab starts is stopped by its id when
//! the lab goes down.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::RwLock;
use std::time::{Duration, Instant};
use support::*;

const BAD: &str = "Windows/System32/drivers/CrowdStrike/C-00000291-00000000-00000032.sys";
const RP: &str = "466895-217492-569250-069608-104434-135707-527241-083622";
const URL: &str = "http://198.18.0.1/rescue";

/// Two PCs at a time on two cores; the floor test takes the machine alone.
static MACHINE: RwLock<()> = RwLock::new(());

fn lab_script() -> Command {
    Command::new(root().join("scripts/netboot-lab"))
}

/// A lab brought up by `scripts/netboot-lab up`, brought down when dropped.
struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    /// The lab serving `efi`; `extra` goes to `netboot-lab up`.
    fn up(efi: &Path, extra: &[&str]) -> Lab {
        // Straight under /tmp: nginx and dnsmasq run as their own users and
        // must reach the lab's folders.
        let dir = tempfile::Builder::new().prefix("rescue-lab").tempdir_in("/tmp").unwrap();
        ok(lab_script().arg("up").arg(dir.path()).arg("--efi").arg(efi).args(extra));
        Lab { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// One PC booting from the lab (`scripts/netboot-lab pc`, which execs QEMU).
    fn pc(&self, disk: Option<&Path>, args: &[&str]) -> Qemu {
        let mut cmd = lab_script();
        cmd.arg("pc").arg(self.dir.path()).args(args);
        if let Some(d) = disk {
            cmd.arg("--disk").arg(d);
        }
        Qemu::run(cmd)
    }

    /// The run folders nginx received, by run id.
    fn runs(&self) -> Vec<PathBuf> {
        let mut runs: Vec<PathBuf> = std::fs::read_dir(self.path("srv/rescue"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        runs.sort();
        runs
    }

    /// nginx's access log: one line per request.
    fn access_log(&self) -> String {
        std::fs::read_to_string(self.path("nginx-access.log")).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = lab_script().arg("down").arg(self.dir.path()).output();
    }
}

/// `rescue.efi` from the default profile with `[report]` holding `url` and
/// `report_extra`; `extra` goes to `rescue build` (signing, keys).
fn network_binary(dir: &Path, url: &str, report_extra: &str, extra: &[&str]) -> PathBuf {
    let text =
        std::fs::read_to_string(default_profile()).unwrap() + &format!("\n[report]\nurl = \"{url}\"\n{report_extra}");
    let profile = dir.join("net.toml");
    std::fs::write(&profile, text).unwrap();
    let efi = dir.join("rescue.efi");
    ok(rescue().args(["build", "--format", "efi", "--profile"]).arg(&profile).arg("--out").arg(&efi).args(extra));
    efi
}

/// Waits for the verdict and for the PC to power off; the agent's lines and
/// the seconds from power-on to the verdict.
fn finish(mut vm: Qemu) -> (Vec<String>, String, f64) {
    let started = Instant::now();
    vm.wait_line(|l| l.starts_with("RESULT: "), Duration::from_secs(420));
    let took = started.elapsed().as_secs_f64();
    vm.wait_exit(Duration::from_secs(60));
    let serial = vm.serial_text();
    assert!(!serial.contains("Status("), "a raw firmware status reached the screen:\n{serial}");
    (vm.agent_lines(), serial, took)
}

fn verdict(lines: &[String]) -> &str {
    lines.iter().find_map(|l| l.strip_prefix("RESULT: ")).unwrap()
}

/// The one run folder and its report.
fn one_run(lab: &Lab) -> (PathBuf, serde_json::Value) {
    let runs = lab.runs();
    assert_eq!(runs.len(), 1, "{runs:?}\n{}", lab.access_log());
    let report = serde_json::from_slice(&std::fs::read(runs[0].join("report.json")).unwrap()).unwrap();
    (runs[0].clone(), report)
}

/// The backup of the channel file in a run folder (under `backups/<serial>/`).
fn backup_of_bad(run: &Path) -> Vec<u8> {
    let serials: Vec<_> = std::fs::read_dir(run.join("backups")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(serials.len(), 1, "{serials:?}");
    std::fs::read(serials[0].join(BAD)).unwrap()
}

#[test]
fn http_boot_from_the_documented_dnsmasq_and_nginx_fixes_and_delivers() {
    let _two = MACHINE.read().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "pc.img", &[]);
    let lab = Lab::up(&network_binary(dir.path(), URL, "", &[]), &[]);
    let (lines, serial, _) = finish(lab.pc(Some(&disk.path), &["--boot", "http"]));
    assert!(serial.contains("Start HTTP Boot") && lab.access_log().contains("UefiHttpBoot"), "{serial}");
    assert_eq!(verdict(&lines), "FIXED", "{serial}");
    assert!(lines.iter().all(|l| !l.contains("NOT DELIVERED") && !l.contains("stick")), "{lines:#?}");
    let (run, report) = one_run(&lab);
    assert_eq!(report["outcome"], "FIXED");
    // Run id: date-time, no serial (QEMU gives none), the PC's MAC, random bits.
    let id = run.file_name().unwrap().to_str().unwrap().to_string();
    assert!(id.contains("-noserial-525400180010-"), "{id}");
    assert!(lines.iter().any(|l| l == &format!("run: {id}")), "{lines:#?}");
    assert_eq!(sha256_hex(&backup_of_bad(&run)), disk.files[BAD]);
    // nginx (keep-alive on, as shipped) answered 201 to the three PUTs (the
    // backup, its sidecar, the report), once each.
    let log = lab.access_log();
    assert!(log.contains("GET /boot/rescue.efi HTTP/1.1\" 200"), "{log}");
    let puts: Vec<&str> = log.lines().filter(|l| l.contains("\"PUT ")).collect();
    assert_eq!(puts.len(), 3, "{log}");
    assert!(puts.iter().all(|l| l.contains("\" 201 ")), "{log}");
    // The fleet table from nginx's folder.
    let table = ok(rescue().arg("collect").arg(lab.path("srv/rescue")).args(["--out", "-"]));
    assert!(table.lines().nth(1).is_some_and(|row| row.contains("FIXED") && row.contains("C-00000291")), "{table}");
    drop(lab);
    disk.check_with_ntfs3g(&[BAD]);
}

/// PXE over dnsmasq's TFTP, with a DHCP server that leases only to boot
/// clients (the agent keeps the firmware's boot lease: one DHCPACK in all),
/// and nginx failing the first PUT with 500 (its body buffer unwritable)
/// before it takes the retry with 201.
#[test]
fn pxe_boot_over_dnsmasq_tftp_retries_a_500_and_delivers() {
    let _two = MACHINE.read().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "pc.img", &[]);
    let lab = Lab::up(&network_binary(dir.path(), URL, "", &[]), &["--boot-clients-only"]);
    let body = lab.path("nginx-tmp/body");
    let mode = |m: u32| std::os::unix::fs::PermissionsExt::from_mode(m);
    std::fs::set_permissions(&body, mode(0o000)).unwrap();
    let vm = lab.pc(Some(&disk.path), &["--boot", "pxe"]);
    // Mend nginx as soon as it has answered 500 once.
    let start = Instant::now();
    while !lab.access_log().contains("\" 500 ") {
        assert!(start.elapsed() < Duration::from_secs(420), "no 500 from nginx:\n{}", lab.access_log());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::set_permissions(&body, mode(0o700)).unwrap();
    let (lines, serial, _) = finish(vm);
    assert!(serial.contains("PXE") && !serial.contains("HTTP Boot"), "{serial}");
    assert_eq!(verdict(&lines), "FIXED", "{serial}");
    let (run, _) = one_run(&lab);
    assert_eq!(sha256_hex(&backup_of_bad(&run)), disk.files[BAD]);
    let log = lab.access_log();
    let backup_puts: Vec<&str> =
        log.lines().filter(|l| l.contains("\"PUT ") && l.contains("/backups/") && !l.contains(".json ")).collect();
    assert!(
        backup_puts.len() == 2 && backup_puts[0].contains("\" 500 ") && backup_puts[1].contains("\" 201 "),
        "{log}"
    );
    assert!(lines.iter().any(|l| l.starts_with("tried again: ") && l.contains("HTTP 500")), "{serial}");
    let dhcp = std::fs::read_to_string(lab.path("dnsmasq.log")).unwrap();
    assert_eq!(dhcp.matches("DHCPACK").count(), 1, "{dhcp}");
    drop(lab);
    disk.check_with_ntfs3g(&[BAD]);
}

/// A signed rescue.efi over UEFI HTTP Boot under OVMF's Secure Boot firmware
/// with our certificate in db; no disk, so FAILED, reported to nginx.
#[test]
fn signed_rescue_efi_boots_over_http_under_secure_boot() {
    let _two = MACHINE.read().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let sign = ["--sign-key", k.key.to_str().unwrap(), "--sign-cert", k.crt.to_str().unwrap()];
    let lab = Lab::up(&network_binary(dir.path(), URL, "", &sign), &[]);
    let vars = org_varstore(dir.path());
    let (lines, serial, _) = finish(lab.pc(None, &["--secure-boot", vars.to_str().unwrap()]));
    assert!(lines.iter().any(|l| l.contains("SecureBoot=1")), "{serial}");
    assert!(verdict(&lines).starts_with("FAILED"), "{serial}");
    let (_, report) = one_run(&lab);
    assert_eq!(report["outcome"], "FAILED");
}

/// A keyed rescue.efi (sealed keys inside) unlocks a BitLocker disk once the
/// PIN is typed, over HTTP Boot; dislocker and ntfs-3g confirm the fix.
#[test]
fn keyed_rescue_efi_unlocks_bitlocker_after_the_pin() {
    let _two = MACHINE.read().unwrap_or_else(|e| e.into_inner());
    const PIN: &str = "2468-site";
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "bl.img", &["--bitlocker", RP]);
    let keys = dir.path().join("keys.csv");
    std::fs::write(&keys, format!("KeyID,RecoveryKey\r\n{{{}}},{RP}\r\n", disk.recovery_key_id())).unwrap();
    let pin = dir.path().join("pin.txt");
    std::fs::write(&pin, format!("{PIN}\n")).unwrap();
    let keyed = ["--keys", keys.to_str().unwrap(), "--pin-file", pin.to_str().unwrap()];
    let lab = Lab::up(&network_binary(dir.path(), URL, "", &keyed), &[]);
    let mut vm = lab.pc(Some(&disk.path), &[]);
    vm.wait_line(|l| l.starts_with("PIN:"), Duration::from_secs(300));
    vm.type_text(&format!("{PIN}\r"));
    let (lines, serial, _) = finish(vm);
    assert_eq!(verdict(&lines), "FIXED", "{serial}");
    assert!(!serial.contains(PIN) && !serial.contains(RP), "a secret reached the console");
    let (run, report) = one_run(&lab);
    assert!(report["bitlocker"][0]["unlocked_by"].as_str().unwrap().starts_with("site key"), "{report}");
    assert_eq!(sha256_hex(&backup_of_bad(&run)), disk.files[BAD]);
    drop(lab);
    disk.check_with_ntfs3g(&[BAD]);
}

/// Asserts the run deleted nothing (its backup never confirmed), said why
/// in words, and kept no report; the disk is byte-identical.
fn assert_nothing_deleted(lines: &[String], serial: &str, disk: &TestDisk, before: &str, why: &str) {
    let result = verdict(lines);
    assert!(result.starts_with("FAILED") && result.contains("no report was kept"), "{result}\n{serial}");
    assert!(lines.iter().any(|l| l.contains("C-00000291") && l.contains("not deleted") && l.contains(why)), "{serial}");
    assert!(lines.iter().any(|l| l.starts_with("NOT DELIVERED: ") && l.contains(why)), "{serial}");
    assert_eq!(sha256_hex(&std::fs::read(&disk.path).unwrap()), before, "the disk was written");
}

/// nginx refusing (403: `deny all` ahead of the documented `allow`).
#[test]
fn a_refusing_nginx_means_nothing_deleted() {
    let _two = MACHINE.read().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "pc.img", &[]);
    let before = sha256_hex(&std::fs::read(&disk.path).unwrap());
    let lab = Lab::up(&network_binary(dir.path(), URL, "", &[]), &["--receiver-directive", "deny all;"]);
    let (lines, serial, _) = finish(lab.pc(Some(&disk.path), &[]));
    assert_nothing_deleted(&lines, &serial, &disk, &before, "refused by the server (HTTP 403)");
    // A 4xx is final: one PUT for the backup, one for the report.
    let log = lab.access_log();
    assert_eq!(log.lines().filter(|l| l.contains("\"PUT ") && l.contains("\" 403 ")).count(), 2, "{log}");
    assert!(lab.runs().is_empty());
}

/// Nothing listening at the report URL (the receiver down): nothing
/// deleted, and the PC is held no longer than the delivery deadline.
#[test]
fn a_receiver_that_is_down_means_nothing_deleted_within_the_deadline() {
    let _two = MACHINE.read().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "pc.img", &[]);
    let before = sha256_hex(&std::fs::read(&disk.path).unwrap());
    let efi = network_binary(dir.path(), "http://198.18.0.1:8081/rescue", "deadline_seconds = 10\n", &[]);
    let lab = Lab::up(&efi, &[]);
    let mut vm = lab.pc(Some(&disk.path), &[]);
    vm.wait_line(|l| l.starts_with("rescue-agent "), Duration::from_secs(300));
    let (lines, serial, took) = finish(vm);
    assert_nothing_deleted(
        &lines,
        &serial,
        &disk,
        &before,
        "nothing answers at 198.18.0.1:8081 (the connection was refused)",
    );
    // The agent's whole run, deliveries included, within the deadline plus
    // one try of the report and the scan (TCG).
    assert!(took < 10.0 + 20.0 + 60.0, "the agent ran {took:.0} s\n{serial}");
    assert!(lab.runs().is_empty());
}

/// A slow link to the server (what the PCs send it goes at 32 kbit/s, so
/// the 40 KiB backup alone takes over 10 s): backup and report still arrive whole.
#[test]
fn a_slow_link_still_delivers() {
    let _two = MACHINE.read().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "pc.img", &[]);
    let lab = Lab::up(&network_binary(dir.path(), URL, "", &[]), &["--server-kbit", "32"]);
    let mut vm = lab.pc(Some(&disk.path), &[]);
    vm.wait_line(|l| l.starts_with("run: "), Duration::from_secs(300));
    let (lines, serial, took) = finish(vm);
    assert_eq!(verdict(&lines), "FIXED", "{serial}");
    assert!(took > 10.0, "the link was not slow: the run took {took:.1} s");
    let (run, _) = one_run(&lab);
    assert_eq!(sha256_hex(&backup_of_bad(&run)), disk.files[BAD]);
}

/// Undo over the network: a PC fixed by HTTP Boot (its backup and sidecar
/// PUT to nginx), `rescue collect --restore-index` indexing nginx's folder,
/// then a restore binary served in its place: the agent GETs its volume's
/// index, the backup and its sidecar, and puts the channel file back
/// (SHA-256 equal, ntfs-3g finds the whole manifest); nginx's log shows the GETs.
#[test]
fn a_network_restore_puts_back_what_a_network_fix_deleted() {
    let _two = MACHINE.read().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "pc.img", &[]);
    let lab = Lab::up(&network_binary(dir.path(), URL, "", &[]), &["--restore"]);
    let (lines, serial, _) = finish(lab.pc(Some(&disk.path), &["--boot", "http"]));
    assert_eq!(verdict(&lines), "FIXED", "{serial}");
    disk.check_with_ntfs3g(&[BAD]);
    let index = ok(rescue()
        .arg("collect")
        .arg(lab.path("srv/rescue"))
        .arg("--restore-index")
        .arg(lab.path("srv/rescue/restore")));
    let indexes: Vec<PathBuf> =
        std::fs::read_dir(lab.path("srv/rescue/restore")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(indexes.len(), 1, "{index}");
    let listed: serde_json::Value = serde_json::from_slice(&std::fs::read(&indexes[0]).unwrap()).unwrap();
    assert_eq!(listed["backups"].as_array().map(Vec::len), Some(1), "{listed}");
    // The restore binary, where the PCs boot from.
    let undo = dir.path().join("undo.toml");
    std::fs::write(&undo, format!("name = \"undo\"\n[[restore]]\nfrom = \"backups\"\n[report]\nurl = \"{URL}\"\n"))
        .unwrap();
    let efi = dir.path().join("undo.efi");
    ok(rescue().args(["build", "--format", "efi", "--profile"]).arg(&undo).arg("--out").arg(&efi));
    for to in ["srv/boot/rescue.efi", "srv/tftp/rescue.efi"] {
        std::fs::copy(&efi, lab.path(to)).unwrap();
    }
    let (lines, serial, _) = finish(lab.pc(Some(&disk.path), &["--boot", "http"]));
    assert_eq!(verdict(&lines), "FIXED: restored 1 files", "{serial}");
    let log = lab.access_log();
    let gets = log.lines().filter(|l| l.contains("\"GET /rescue/") && l.contains("\" 200 ")).count();
    assert_eq!(gets, 3, "the index, the sidecar, the backup:\n{log}");
    drop(lab);
    disk.check_with_ntfs3g(&[]);
}

/// A floor at once: four PCs without serial numbers, each with its own disk
/// copy and MAC, boot from one dnsmasq + nginx; every report and backup
/// arrives under its own run id. Prints the time from power-on to the last
/// report (TCG).
#[test]
fn a_floor_of_four_pcs_reports_under_distinct_run_ids() {
    let _alone = MACHINE.write().unwrap_or_else(|e| e.into_inner());
    const N: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "pc0.img", &[]);
    let copies: Vec<PathBuf> = (0..N)
        .map(|i| {
            let p = dir.path().join(format!("pc{i}.img"));
            if i > 0 {
                std::fs::copy(&disk.path, &p).unwrap();
            }
            p
        })
        .collect();
    let lab = Lab::up(&network_binary(dir.path(), URL, "", &[]), &[]);
    let started = Instant::now();
    let vms: Vec<Qemu> = copies.iter().map(|p| lab.pc(Some(p), &[])).collect();
    let results: Vec<(Vec<String>, String, f64)> = vms.into_iter().map(finish).collect();
    let took = started.elapsed().as_secs_f64();
    for (lines, serial, _) in &results {
        assert_eq!(verdict(lines), "FIXED", "{serial}");
        // An answer followed by the server's close is an answer: no needless retries.
        assert!(lines.iter().all(|l| !l.starts_with("tried again")), "{serial}");
    }
    let runs = lab.runs();
    assert_eq!(runs.len(), N, "{runs:?}\n{}", lab.access_log());
    for run in &runs {
        assert!(run.join("report.json").is_file(), "{run:?}");
        assert_eq!(sha256_hex(&backup_of_bad(run)), disk.files[BAD]);
    }
    let log = lab.access_log();
    assert!(log.lines().filter(|l| l.contains("\"PUT ")).all(|l| l.contains("\" 201 ")), "an overwrite:\n{log}");
    let table = ok(rescue().arg("collect").arg(lab.path("srv/rescue")).args(["--out", "-"]));
    assert_eq!(table.lines().filter(|l| l.contains("FIXED")).count(), N, "{table}");
    let leases = std::fs::read_to_string(lab.path("dnsmasq.leases")).unwrap_or_default();
    println!(
        "floor: {N} PCs, power-on to last verdict {took:.1} s (TCG), {:.0} PCs per hour per server; {} leases held",
        N as f64 * 3600.0 / took,
        leases.lines().count()
    );
    drop(lab);
    for p in &copies {
        let copy = TestDisk {
            path: p.clone(),
            part_offset: disk.part_offset,
            part_size: disk.part_size,
            files: disk.files.clone(),
            recovery_password: None,
        };
        copy.check_with_ntfs3g(&[BAD]);
    }
}
