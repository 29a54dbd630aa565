//! Image formats: everything that turns a stick's file map into bytes, and
//! reads an image back. Nothing here knows about the command line.
//!
//! - [`stick`]: the one map of path → content every format is made from;
//! - [`agent`]: the UEFI agent carried inside `rescue`;
//! - [`shim`]: signing the agent and the shim + MokManager layout;
//! - [`fat`], [`usb`] (protective MBR + GPT + FAT32 ESP), [`iso`] (El Torito, hybrid);
//! - [`read`]: what an image or stick holds, for `rescue inspect` and `rescue collect`.

pub mod agent;
pub mod fat;
pub mod iso;
pub mod pieces;
pub mod read;
pub mod shim;
pub mod stick;
pub mod usb;

use anyhow::{bail, Result};
pub use pieces::Pieces;
use rescue_engine::util::time::Civil;
use stick::StickFiles;

/// The image formats `rescue build` makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Raw disk image for a USB stick: protective MBR, GPT, one FAT32 EFI System Partition.
    Usb,
    /// Hybrid ISO 9660 with a UEFI El Torito entry; also boots when written to a stick.
    Iso,
    /// The agent alone, for network boot (made by `rescue build`, not by [`build`]).
    Efi,
}

impl Format {
    /// The default size in MiB: room for a fleet's backups on a stick; the El Torito maximum for an ISO.
    pub fn default_mib(self) -> u64 {
        match self {
            Format::Usb => 128,
            Format::Iso | Format::Efi => 32,
        }
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Usb => "USB",
            Format::Iso => "ISO",
            Format::Efi => "EFI",
        }
    }
}

/// Makes an image of `format` holding `files`: its length and its pieces.
/// `seed` makes GUIDs and volume serials and `stamp` is every date in the
/// image: the same inputs give the same bytes.
pub fn build(format: Format, files: &StickFiles, mib: u64, seed: [u8; 32], stamp: Civil) -> Result<(u64, Pieces)> {
    match format {
        Format::Usb => {
            if !(40..=1 << 20).contains(&mib) {
                bail!("--size {mib}: a USB image must be 40 MiB to 1 TiB (FAT32 needs at least 40 MiB)");
            }
            let len = mib << 20;
            Ok((len, usb::build(files, len, seed, &stamp)?))
        }
        Format::Iso => {
            if !(2..=Format::Iso.default_mib()).contains(&mib) {
                bail!("--size {mib}: an ISO's boot partition must be 2-32 MiB (El Torito counts its size in 16 bits)");
            }
            iso::build(files, (mib << 20).min(iso::MAX_BOOT_IMAGE), seed, stamp)
        }
        Format::Efi => bail!("a network-boot binary is not a disk image"),
    }
}
