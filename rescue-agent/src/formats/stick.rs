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

/// A `/` path as a UEFI file path (`\` separators).
pub fn uefi_path(path: &str) -> String {
    path.replace('/', "\\")
}
