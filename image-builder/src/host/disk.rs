//! Files and block devices as engine [`BlockDevice`]s.

use anyhow::{bail, Context, Result};
use rescue_engine::block::{check_range, BlockDevice, IoError};
use std::fs::{File, OpenOptions};
use std::path::Path;

/// A disk image file or a block device, read (and optionally written) in place.
pub struct FileDisk {
    file: File,
    size: u64,
    sector_size: u32,
    writable: bool,
}

impl FileDisk {
    /// Opens `path` read-only, or read-write when `writable`. One disk, one
    /// writer: a writer takes an exclusive lock and a reader a
    /// shared one, so a second `rescue` on the same image or device is
    /// refused instead of interleaving its writes.
    pub fn open(path: &Path, writable: bool) -> Result<FileDisk> {
        if path.is_dir() {
            bail!("{} is a folder: give a disk image, a partition image or a block device", path.display());
        }
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        lock(&file, writable).with_context(|| {
            format!(
                "{} is in use by another rescue (or another program holding a lock on it): \
                 wait for it to finish, then run again",
                path.display()
            )
        })?;
        let size = device_size(&file).with_context(|| format!("cannot read the size of {}", path.display()))?;
        if size == 0 {
            bail!("{} is empty", path.display());
        }
        let sector_size = platform::logical_sector_size(&file).unwrap_or(512);
        Ok(FileDisk { file, size, sector_size, writable })
    }
}

/// Takes a lock on `file` without waiting: exclusive to write, shared to
/// read (`flock` on Unix, `LockFileEx` on Windows, through the standard library).
fn lock(file: &File, exclusive: bool) -> std::io::Result<()> {
    let r = if exclusive { file.try_lock() } else { file.try_lock_shared() };
    r.map_err(|e| match e {
        std::fs::TryLockError::Error(e) => e,
        std::fs::TryLockError::WouldBlock => std::io::Error::from(std::io::ErrorKind::WouldBlock),
    })
}

/// Size in bytes of a regular file or a block device.
pub fn device_size(file: &File) -> std::io::Result<u64> {
    let meta = file.metadata()?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    platform::device_size(file)
}

#[cfg(unix)]
mod platform {
    use std::fs::File;

    /// A block device's size: its metadata says 0, so seek to its end.
    pub fn device_size(file: &File) -> std::io::Result<u64> {
        use std::io::{Seek, SeekFrom};
        let mut f = file;
        let end = f.seek(SeekFrom::End(0))?;
        f.seek(SeekFrom::Start(0))?;
        Ok(end)
    }

    /// The logical sector size of a block device (BLKSSZGET), if it is one.
    pub fn logical_sector_size(file: &File) -> Option<u32> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::FileTypeExt;
        if !file.metadata().ok()?.file_type().is_block_device() {
            return None;
        }
        let mut ss: libc::c_int = 0;
        // SAFETY: BLKSSZGET writes one int to the pointer we pass.
        let r = unsafe { libc::ioctl(file.as_raw_fd(), libc::BLKSSZGET, &mut ss) };
        (r == 0 && ss > 0).then_some(ss as u32)
    }
}

#[cfg(windows)]
mod platform {
    use std::fs::File;

    /// A physical drive's size (IOCTL_DISK_GET_LENGTH_INFO).
    pub fn device_size(file: &File) -> std::io::Result<u64> {
        crate::host::windrives::length(file)
    }

    /// A physical drive's sector size (IOCTL_DISK_GET_DRIVE_GEOMETRY_EX), if it is one.
    pub fn logical_sector_size(file: &File) -> Option<u32> {
        crate::host::windrives::sector_size(file)
    }
}

impl BlockDevice for FileDisk {
    fn sector_size(&self) -> u32 {
        self.sector_size
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        check_range(offset, buf.len(), self.size)?;
        crate::fileio::read_exact_at(&self.file, buf, offset)
            .map_err(|e| IoError::Device { offset, code: e.raw_os_error().unwrap_or(-1) as u64 })
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        check_range(offset, buf.len(), self.size)?;
        if !self.writable {
            return Err(IoError::ReadOnly { offset });
        }
        crate::fileio::write_all_at(&self.file, buf, offset)
            .map_err(|e| IoError::Device { offset, code: e.raw_os_error().unwrap_or(-1) as u64 })
    }
    fn flush(&mut self) -> Result<(), IoError> {
        self.file.sync_all().map_err(|e| IoError::Device { offset: 0, code: e.raw_os_error().unwrap_or(-1) as u64 })
    }
}
