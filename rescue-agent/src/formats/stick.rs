//! The rescue stick's layout: where `rescue build` puts each file and where
//! the agent finds it. The one definition both sides use.
//!
//! Paths use `/`; the agent turns them into UEFI paths with [`uefi_path`].

use alloc::format;
use alloc::string::String;

/// The agent, at the removable-media boot path for x86-64.
pub const AGENT_PATH: &str = "EFI/BOOT/BOOTX64.EFI";
/// The ARM64 agent, at the removable-media boot path for AArch64 (Windows-on-ARM PCs).
pub const AGENT_AA64_PATH: &str = "EFI/BOOT/BOOTAA64.EFI";
/// Shim route: shim sits at [`AGENT_PATH`] and starts this file (the signed agent) …
pub const SHIM_SECOND_STAGE_PATH: &str = "EFI/BOOT/grubx64.efi";
/// … or MokManager, when the second stage is not trusted yet.
pub const MOKMANAGER_PATH: &str = "EFI/BOOT/mmx64.efi";
/// The stick's own folder (profile, keys, reports, backups, certificate for MokManager).
pub const RESCUE_DIR: &str = "rescue";
/// The profile the stick was built with.
pub const PROFILE_PATH: &str = "rescue/profile.toml";
/// The site's recovery keys (a sealed key file), when the image is keyed.
pub const KEYS_PATH: &str = "rescue/keys.sealed";
/// Where the agent writes its reports.
pub const REPORTS_DIR: &str = "rescue/reports";
/// Where the agent copies files before deleting them.
pub const BACKUPS_DIR: &str = "rescue/backups";

/// The report of run `run_id`.
pub fn report_path(run_id: &str) -> String {
    format!("{REPORTS_DIR}/{run_id}.json")
}

/// The id of one run, the name of its report and of its folder at the
/// report URL: `YYYYMMDD-HHMMSS-<serial>-<machine>-<random>`.
///
/// Guarantee: two runs get different ids unless they share the second,
/// the serial number, the machine part and 32 random bits. `machine` is
/// the NIC's MAC or the SMBIOS UUID (PCs without a serial number, or cloned
/// ones, still differ by it); `random` tells two runs of one PC apart
/// within a second. Every part is reduced to letters, digits and `-`, and
/// bounded, so the id is a safe file name and URL segment whatever the
/// firmware says.
pub fn run_id(stamp: &str, serial: &str, machine: &str, random: u32) -> String {
    let part = |s: &str, max: usize, none: &str| -> String {
        let clean: String =
            s.trim().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).take(max).collect();
        if clean.is_empty() {
            String::from(none)
        } else {
            clean
        }
    };
    format!(
        "{}-{}-{}-{random:08x}",
        part(stamp, 15, "unknown-time"),
        part(serial, 40, "noserial"),
        part(machine, 32, "nomac")
    )
}

/// A `/` path as a UEFI file path (`\` separators).
pub fn uefi_path(path: &str) -> String {
    path.replace('/', "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_safe_bounded_and_distinct() {
        let a = run_id("20261206-193000", "", "525400123456", 1);
        let b = run_id("20261206-193000", "", "525400123457", 1);
        let c = run_id("20261206-193000", "", "525400123456", 2);
        assert_eq!(a, "20261206-193000-noserial-525400123456-00000001");
        assert!(a != b && a != c && b != c);
        let hostile = run_id("../..", "S/N \\..\\x\u{202e}", &"A".repeat(500), u32::MAX);
        assert!(hostile.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{hostile}");
        assert!(hostile.len() <= 15 + 40 + 32 + 8 + 3, "{hostile}");
        assert!(!hostile.contains(".."));
    }
}
