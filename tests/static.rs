//! The static Linux `rescue` (target x86_64-unknown-linux-musl) runs where
//! nothing is installed — the cloud route for a VM's disk is attach, `rescue
//! apply`, detach from any rescue VM or live system: `apply` inside a
//! chroot that holds only the binary, a profile and the disk image. The
//! disk is then checked with ntfs-3g.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

const BAD: &str = "Windows/System32/drivers/CrowdStrike/C-00000291-00000000-00000032.sys";

/// The static binary `scripts/dist` (and `scripts/test`) build, checked fresh by cargo.
fn static_rescue() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // Always through cargo: nothing to do when the binary is fresh.
    ok(Command::new(env!("CARGO")).current_dir(&root).args([
        "build",
        "--release",
        "--locked",
        "--target",
        "x86_64-unknown-linux-musl",
        "-p",
        "image-builder",
    ]));
    root.join("target/x86_64-unknown-linux-musl/release/rescue")
}

#[test]
fn static_binary_applies_a_profile_in_an_empty_chroot() {
    let bin = static_rescue();
    let file = ok(Command::new("file").arg(&bin));
    assert!(file.contains("statically linked") || file.contains("static-pie linked"), "{file}");
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "pc.img", &["--decoy"]);
    // The jail: the binary, the profile, the disk. Nothing else (no /proc, /dev, /tmp, libraries).
    let jail = dir.path().join("jail");
    std::fs::create_dir(&jail).unwrap();
    std::fs::copy(&bin, jail.join("rescue")).unwrap();
    std::fs::copy(default_profile(), jail.join("profile.toml")).unwrap();
    std::fs::rename(&disk.path, jail.join("pc.img")).unwrap();
    let out = ok(Command::new("chroot").arg(&jail).args([
        "/rescue",
        "apply",
        "--profile",
        "/profile.toml",
        "--backup-dir",
        "/backups",
        "/pc.img",
    ]));
    assert!(out.contains("1 deleted"), "{out}");
    std::fs::rename(jail.join("pc.img"), &disk.path).unwrap();
    disk.check_with_ntfs3g(&[BAD]);
    let backups = std::fs::read_dir(jail.join("backups")).unwrap().count();
    assert_eq!(backups, 1, "one volume's backup folder");
}

/// The shipped binary carries no BitLocker encrypter: no command, none of its code.
#[test]
fn shipped_binary_carries_no_test_encrypter() {
    let bin = static_rescue();
    let bytes = std::fs::read(&bin).unwrap();
    for needle in [
        "only NTFS volumes can be encrypted by the test tool",
        "no free space for BitLocker metadata",
        "encrypted-size",
    ] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle:?} is in {}", bin.display());
    }
    let o = support::limits::output(Command::new(&bin).args(["bitlocker", "encrypt", "--help"])).unwrap();
    assert!(!o.status.success(), "rescue bitlocker encrypt exists");
    // The probe can fail: the test kit's binary holds the code the shipped one must not.
    let kit = std::fs::read(support::testkit::bitlocker_encrypt()).unwrap();
    let needle = b"only NTFS volumes can be encrypted by the test tool";
    assert!(kit.windows(needle.len()).any(|w| w == needle), "the probe no longer finds the encrypter");
}
