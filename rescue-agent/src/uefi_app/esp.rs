//! The EFI System Partitions of the disks being fixed, through the
//! firmware's Simple File System protocol: the BCD store that
//! `[finish] safe_mode` edits. A disk's ESP is the file system whose device
//! path is the disk's followed by a hard-drive (partition) node and which
//! holds `\EFI\Microsoft\Boot\BCD`.

use super::disks;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use rescue_engine::ports::EspFiles;
use uefi::fs::FileSystem;
use uefi::proto::media::fs::SimpleFileSystem;
use uefi::{boot, cstr16, CStr16};

const BCD: &CStr16 = cstr16!("\\EFI\\Microsoft\\Boot\\BCD");

/// The ESPs as the firmware mounted them.
pub struct FirmwareEsp;

/// The file system of `disk`'s ESP that holds a BCD store.
fn esp_of(disk: &str) -> Option<FileSystem> {
    let prefix = format!("{disk}/HD(");
    for h in boot::find_handles::<SimpleFileSystem>().ok()? {
        if !disks::path_text(h).starts_with(&prefix) {
            continue;
        }
        let Some(p) = disks::open::<SimpleFileSystem>(h) else { continue };
        let mut fs = FileSystem::new(p);
        if fs.try_exists(BCD).unwrap_or(false) {
            return Some(fs);
        }
    }
    None
}

impl EspFiles for FirmwareEsp {
    fn read_bcd(&mut self, disk: &str) -> Option<Result<Vec<u8>, String>> {
        let mut fs = esp_of(disk)?;
        Some(fs.read(BCD).map_err(|e| format!("reading the BCD store: {e:?}")))
    }

    fn write_bcd(&mut self, disk: &str, bytes: &[u8]) -> Result<(), String> {
        let mut fs = esp_of(disk).ok_or("the EFI System Partition is no longer there")?;
        fs.write(BCD, bytes).map_err(|e| format!("writing the BCD store: {e:?}"))
    }
}
