//! Network boot: `rescue build --format efi` makes one binary that OVMF
//! starts over PXE (QEMU's TFTP); booted without a stick, the agent fixes the
//! disk and delivers its report and backups with HTTP PUT to the profile's
//! `[report] url` — here a plain test receiver on the host, reached through
//! QEMU's `guestfwd` (socat). The disk is then checked with ntfs-3g.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

const BAD: &str = "Windows/System32/drivers/CrowdStrike/C-00000291-00000000-00000032.sys";

/// What the receiver got: URL path → body.
type Received = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

/// A minimal HTTP PUT receiver on 127.0.0.1 (one request per connection)
/// that stores what it gets.
fn receiver() -> (u16, Received) {
    receiver_answering(None)
}

/// A receiver answering every PUT with `refuse` (e.g. `"403 Forbidden"`,
/// storing nothing), or storing it and answering 201 when `None`.
fn receiver_answering(refuse: Option<&'static str>) -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Received = Arc::default();
    let store = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let read = r.read_exact(&mut body);
            let ok = read.is_ok() && line.starts_with("PUT ");
            let status = match (ok, refuse) {
                (false, _) => "400 Bad Request",
                (true, Some(refusal)) => refusal,
                (true, None) => {
                    store.lock().unwrap().insert(path, body);
                    "201 Created"
                }
            };
            let mut w = conn;
            let _ = write!(w, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, got)
}

/// A receiver that reads each request and never answers, holding the
/// connection open; returns its port and when its first connection came.
fn hanging_receiver() -> (u16, Arc<Mutex<Option<std::time::Instant>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let first: Arc<Mutex<Option<std::time::Instant>>> = Arc::default();
    let seen = first.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            seen.lock().unwrap().get_or_insert_with(std::time::Instant::now);
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut sink = [0u8; 4096];
                while conn.read(&mut sink).is_ok_and(|n| n > 0) {}
            });
        }
    });
    (port, first)
}

/// Builds rescue.efi from the default profile plus `[report] url`, in a TFTP
/// folder; `extra` goes to `rescue build` (e.g. signing).
fn network_binary(dir: &Path, url: &str, extra: &[&str]) -> PathBuf {
    network_binary_with(dir, url, "", extra)
}

/// As [`network_binary`], with `report_extra` added to the `[report]` section.
fn network_binary_with(dir: &Path, url: &str, report_extra: &str, extra: &[&str]) -> PathBuf {
    let mut text = std::fs::read_to_string(default_profile()).unwrap();
    if !url.is_empty() {
        text += &format!("\n[report]\nurl = \"{url}\"\n{report_extra}");
    }
    let profile = dir.join("net.toml");
    std::fs::write(&profile, text).unwrap();
    let tftp = dir.join("tftp");
    std::fs::create_dir(&tftp).unwrap();
    let efi = tftp.join("rescue.efi");
    ok(rescue()
        .arg("build")
        .arg("--format")
        .arg("efi")
        .arg("--profile")
        .arg(&profile)
        .arg("--out")
        .arg(&efi)
        .args(extra));
    let shown = ok(rescue().arg("inspect").arg(&efi));
    assert!(
        shown.contains("network-boot") && shown.contains(if url.is_empty() { "screen only" } else { url }),
        "{shown}"
    );
    tftp
}

/// QEMU options for a PXE boot of `tftp/rescue.efi` where 10.0.2.100:8080
/// in the guest leads to `port` on the host, and nowhere else (`restrict=on`).
fn pxe_nic(tftp: &Path, port: u16) -> [String; 4] {
    let netdev = format!(
        "user,id=n0,restrict=on,tftp={},bootfile=rescue.efi,guestfwd=tcp:10.0.2.100:8080-cmd:socat - TCP:127.0.0.1:{port}",
        tftp.display()
    );
    ["-netdev".into(), netdev, "-device".into(), "virtio-net-pci,netdev=n0,bootindex=0,romfile=".into()]
}

/// Boots `tftp/rescue.efi` over PXE with `disk` attached and no stick.
fn pxe_boot(tftp: &Path, disk: &TestDisk, port: u16) -> Qemu {
    let nic = pxe_nic(tftp, port);
    let nic: Vec<&str> = nic.iter().map(String::as_str).collect();
    Qemu::boot(Path::new("/dev/null"), Media::Network, &[(disk.path.as_path(), Bus::Ahci)], &nic)
}

#[test]
fn network_boot_fixes_and_delivers_the_report_and_backups() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "pc.img", &[]);
    let (port, got) = receiver();
    let tftp = network_binary(dir.path(), "http://10.0.2.100:8080/rescue", &[]);
    let mut vm = pxe_boot(&tftp, &disk, port);
    let result = vm.wait_line(|l| l.starts_with("RESULT: "), Duration::from_secs(300));
    vm.wait_exit(Duration::from_secs(60));
    assert_eq!(result, "RESULT: FIXED", "{}", vm.serial_text());
    let got = got.lock().unwrap();
    let report_path =
        got.keys().find(|k| k.ends_with("/report.json")).unwrap_or_else(|| panic!("no report: {:?}", got.keys()));
    assert!(report_path.starts_with("/rescue/"), "{report_path}");
    let report: serde_json::Value = serde_json::from_slice(&got[report_path]).unwrap();
    assert_eq!(report["outcome"], "FIXED");
    let backup = got
        .iter()
        .find(|(k, _)| k.contains("/backups/") && k.ends_with("C-00000291-00000000-00000032.sys"))
        .unwrap_or_else(|| panic!("no backup: {:?}", got.keys()));
    assert_eq!(sha256_hex(backup.1), disk.files[BAD]);
    // What a web server would have stored: `rescue collect` reads that folder.
    let received = dir.path().join("received");
    for (path, body) in got.iter() {
        let at = received.join(path.trim_start_matches("/rescue/"));
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(at, body).unwrap();
    }
    let table = ok(rescue().arg("collect").arg(&received).args(["--out", "-"]));
    assert!(table.lines().nth(1).is_some_and(|row| row.contains("FIXED") && row.contains("C-00000291")), "{table}");
    drop(got);
    drop(vm);
    disk.check_with_ntfs3g(&[BAD]);
}

/// Without a stick the server's copy is the only backup: a receiver that
/// refuses every PUT means nothing is deleted, and the verdict and screen say why.
#[test]
fn network_boot_deletes_nothing_whose_backup_the_server_refused() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "pc.img", &[]);
    let before = sha256_hex(&std::fs::read(&disk.path).unwrap());
    let (port, got) = receiver_answering(Some("403 Forbidden"));
    let tftp = network_binary(dir.path(), "http://10.0.2.100:8080/rescue", &[]);
    let mut vm = pxe_boot(&tftp, &disk, port);
    let result = vm.wait_line(|l| l.starts_with("RESULT: "), Duration::from_secs(400));
    vm.wait_exit(Duration::from_secs(60));
    let serial = vm.serial_text();
    assert!(result.starts_with("RESULT: FAILED") && result.contains("no report was kept"), "{result}\n{serial}");
    let lines = vm.agent_lines();
    let refused = |l: &String| l.contains("refused by the server (HTTP 403)");
    assert!(lines.iter().any(|l| l.contains("C-00000291") && l.contains("not deleted") && refused(l)), "{serial}");
    assert!(lines.iter().any(|l| l.starts_with("NOT DELIVERED: ") && refused(l)), "{serial}");
    assert!(!serial.contains("Status("), "a raw firmware status reached the screen:\n{serial}");
    assert!(got.lock().unwrap().is_empty());
    drop(vm);
    assert_eq!(sha256_hex(&std::fs::read(&disk.path).unwrap()), before, "the disk was written");
}

/// A receiver that takes the requests and never answers holds a PC no
/// longer than the delivery budget (`deadline_seconds`), plus one try of the
/// report; the backup it never confirmed means nothing is deleted.
#[test]
fn a_receiver_that_never_answers_holds_a_pc_only_until_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "pc.img", &[]);
    let before = sha256_hex(&std::fs::read(&disk.path).unwrap());
    let (port, first) = hanging_receiver();
    let tftp = network_binary_with(dir.path(), "http://10.0.2.100:8080/rescue", "deadline_seconds = 10\n", &[]);
    let mut vm = pxe_boot(&tftp, &disk, port);
    let result = vm.wait_line(|l| l.starts_with("RESULT: "), Duration::from_secs(400));
    let held = first.lock().unwrap().expect("the agent connected").elapsed();
    vm.wait_exit(Duration::from_secs(60));
    let serial = vm.serial_text();
    assert!(result.starts_with("RESULT: FAILED") && result.contains("no report was kept"), "{result}\n{serial}");
    let lines = vm.agent_lines();
    assert!(lines.iter().any(|l| l.contains("C-00000291") && l.contains("not deleted")), "{serial}");
    assert!(lines.iter().any(|l| l.contains("s left for deliveries")), "{serial}");
    assert!(lines.iter().any(|l| l.starts_with("NOT DELIVERED: ") && l.contains("timed out")), "{serial}");
    // 10 s for the backup, at most 20 s for the one try of the report (before
    // the budget: three tries of 20 s per file, over two minutes).
    assert!(held < Duration::from_secs(75), "held for {held:?}\n{serial}");
    drop(vm);
    assert_eq!(sha256_hex(&std::fs::read(&disk.path).unwrap()), before, "the disk was written");
}

/// A signed rescue.efi boots over PXE under OVMF's Secure Boot firmware with
/// our certificate in db (as a signed stick does) and delivers its report.
#[test]
fn signed_network_binary_boots_under_secure_boot() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let (port, got) = receiver();
    let sign = ["--sign-key", k.key.to_str().unwrap(), "--sign-cert", k.crt.to_str().unwrap()];
    let tftp = network_binary(dir.path(), "http://10.0.2.100:8080/rescue", &sign);
    let shown = ok(rescue().arg("inspect").arg(tftp.join("rescue.efi")));
    assert!(shown.contains("signature matches"), "{shown}");
    let vars = org_varstore(dir.path());
    let nic = pxe_nic(&tftp, port);
    let nic: Vec<&str> = nic.iter().map(String::as_str).collect();
    let mut vm = Qemu::boot_secure(Path::new("/dev/null"), Media::Network, &vars, &nic);
    vm.wait_line(|l| l.starts_with("RESULT: "), Duration::from_secs(300));
    vm.wait_exit(Duration::from_secs(60));
    assert!(vm.agent_lines().iter().any(|l| l.contains("SecureBoot=1")), "{}", vm.serial_text());
    // No disk here: FAILED (no Windows), and the report says so at the receiver.
    let got = got.lock().unwrap();
    let report = got.iter().find(|(k, _)| k.ends_with("/report.json")).expect("the report arrived");
    let report: serde_json::Value = serde_json::from_slice(report.1).unwrap();
    assert_eq!(report["outcome"], "FAILED");
}

/// Without a report URL (and no stick) the fix still happens, and the
/// verdict says that no report was kept.
#[test]
fn network_boot_without_a_url_says_no_report_was_kept() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "pc.img", &[]);
    let tftp = network_binary(dir.path(), "", &[]);
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut vm = pxe_boot(&tftp, &disk, closed);
    let result = vm.wait_line(|l| l.starts_with("RESULT: "), Duration::from_secs(300));
    vm.wait_exit(Duration::from_secs(60));
    assert!(result.starts_with("RESULT: FIXED") && result.contains("no report was kept"), "{result}");
    assert!(vm.agent_lines().iter().any(|l| l.contains("backup of") && l.contains("not kept")), "{}", vm.serial_text());
    drop(vm);
    disk.check_with_ntfs3g(&[BAD]);
}
