//! Network boot where no stock server can play the part: OVMF starts
//! `rescue.efi` over PXE from QEMU's own TFTP, and the report URL leads
//! (QEMU's `guestfwd`, socat) to a receiver on the host that never answers,
//! or to nothing at all. Delivery to real servers (dnsmasq, nginx) is
//! `tests/netlab.rs`.

#[path = "support/mod.rs"]
mod support;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

const BAD: &str = "Windows/System32/drivers/CrowdStrike/C-00000291-00000000-00000032.sys";

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
