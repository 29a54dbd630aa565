//! The EFI System Partitions of the disks being fixed, through the
//! firmware's Simple File System protocol: the BCD store that
//! `[finish] safe_mode` edits, and its logs. A disk's ESP is the file
//! system whose device path is the disk's followed by a hard-drive
//! (partition) node and which holds `\EFI\Microsoft\Boot\BCD`. Files are
//! edited in place (opened read-write, never deleted, re-created or
//! grown), one flushed write at a time.

use super::disks;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use rescue_engine::block::BlockDevice;
use rescue_engine::rules::safe_mode::BootFile;
use rescue_engine::run::ports::EspFiles;
use uefi::boot::ScopedProtocol;
use uefi::proto::media::file::{File, FileAttribute, FileMode, RegularFile};
use uefi::proto::media::fs::SimpleFileSystem;
use uefi::{boot, cstr16, CStr16};

/// Largest file read (real BCD stores and their logs are tens of KiB).
const MAX_FILE: usize = 16 << 20;

/// The ESPs as the firmware mounted them.
pub struct FirmwareEsp;

fn path(file: BootFile) -> &'static CStr16 {
    match file {
        BootFile::Bcd => cstr16!("\\EFI\\Microsoft\\Boot\\BCD"),
        BootFile::Log1 => cstr16!("\\EFI\\Microsoft\\Boot\\BCD.LOG1"),
        BootFile::Log2 => cstr16!("\\EFI\\Microsoft\\Boot\\BCD.LOG2"),
    }
}

/// `file` in the file system `fs`, opened (read-only or read-write).
fn open_in(fs: &mut ScopedProtocol<SimpleFileSystem>, file: BootFile, mode: FileMode) -> Option<RegularFile> {
    let mut root = fs.open_volume().ok()?;
    root.open(path(file), mode, FileAttribute::empty()).ok().and_then(|f| f.into_regular_file())
}

/// `disk`'s ESP (the file system holding its BCD store) and `file` in it.
fn open(disk: &str, file: BootFile, mode: FileMode) -> Option<(ScopedProtocol<SimpleFileSystem>, RegularFile)> {
    let prefix = format!("{disk}/HD(");
    for h in boot::find_handles::<SimpleFileSystem>().ok()? {
        if !disks::path_text(h).starts_with(&prefix) {
            continue;
        }
        let Some(mut fs) = disks::open::<SimpleFileSystem>(h) else { continue };
        if open_in(&mut fs, BootFile::Bcd, FileMode::Read).is_none() {
            continue;
        }
        // This is the disk's ESP: the file is there or nowhere.
        let f = open_in(&mut fs, file, mode)?;
        return Some((fs, f));
    }
    None
}

impl EspFiles for FirmwareEsp {
    fn read(&mut self, _: &mut dyn BlockDevice, disk: &str, file: BootFile) -> Option<Result<Vec<u8>, String>> {
        let (_fs, mut f) = open(disk, file, FileMode::Read)?;
        let mut out = Vec::new();
        let mut buf = alloc::vec![0u8; 64 << 10];
        loop {
            match f.read(&mut buf) {
                Ok(0) => return Some(Ok(out)),
                Ok(n) if out.len() + n <= MAX_FILE => out.extend_from_slice(&buf[..n]),
                Ok(_) => return Some(Err(format!("{} is larger than 16 MiB", file.name()))),
                Err(e) => return Some(Err(format!("reading {}: {:?}", file.name(), e.status()))),
            }
        }
    }

    fn write(
        &mut self,
        _: &mut dyn BlockDevice,
        disk: &str,
        file: BootFile,
        edits: &[(u64, Vec<u8>)],
    ) -> Result<(), String> {
        let name = file.name();
        let (_fs, mut f) = open(disk, file, FileMode::ReadWrite).ok_or_else(|| format!("{name} is no longer there"))?;
        for (at, bytes) in edits {
            f.set_position(*at).map_err(|e| format!("seeking in {name}: {:?}", e.status()))?;
            f.write(bytes).map_err(|e| format!("writing {name}: {:?}", e.status()))?;
            f.flush().map_err(|e| format!("flushing {name}: {:?}", e.status()))?;
        }
        Ok(())
    }
}
