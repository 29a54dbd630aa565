//! Boot tests: the images `rescue build` makes must boot in OVMF (QEMU, TCG)
//! as a USB stick, as a CD, and (the hybrid ISO) as a USB stick, print the
//! agent's banner and the profile's name on serial, and end the VM by
//! themselves (the default profile reboots; QEMU runs with -no-reboot).

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;
use support::*;

fn boots(format: &str, media: Media) {
    let dir = tempfile::tempdir().unwrap();
    let ext = if format == "iso" { "iso" } else { "img" };
    let image = build_image(dir.path(), &format!("stick.{ext}"), &["--format", format]);
    let mut vm = Qemu::boot(&image, media, &[], &[]);
    let status = vm.wait_exit(Duration::from_secs(90));
    let lines = vm.agent_lines();
    assert!(
        lines.iter().any(|l| l == &format!("rescue-agent {}", env!("CARGO_PKG_VERSION"))),
        "no banner on serial ({format} as {media:?}, qemu {status}):\n{}",
        vm.serial_text()
    );
    assert!(lines.iter().any(|l| l == "profile: crowdstrike-c00000291"), "no profile name:\n{}", vm.serial_text());
    assert!(lines.iter().any(|l| l == "finish: reboot"), "no finish line:\n{}", vm.serial_text());
}

#[test]
fn usb_image_boots_as_usb_stick() {
    boots("usb", Media::UsbStick);
}

#[test]
fn iso_boots_as_cdrom() {
    boots("iso", Media::Cdrom);
}

#[test]
fn iso_boots_as_usb_stick() {
    boots("iso", Media::UsbStick);
}
