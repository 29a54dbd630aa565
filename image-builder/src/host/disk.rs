//! Files and block devices as engine [`BlockDevice`]s.

use anyhow::{bail, Context, Result};
use rescue_engine::block::{check_range, BlockDevice, IoError};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
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
    /// writer: a writer takes an exclusive lock (`flock`) and a reader a
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
        let sector_size = logical_sector_size(&file).unwrap_or(512);
        Ok(FileDisk { file, size, sector_size, writable })
    }
}

/// Takes an advisory lock on `file` without waiting: exclusive to write, shared to read.
fn lock(file: &File, exclusive: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let how = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
    // SAFETY: flock on a descriptor we own; the kernel releases it when the file closes.
    if unsafe { libc::flock(file.as_raw_fd(), how | libc::LOCK_NB) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Size in bytes of a regular file or a block device.
pub fn device_size(file: &File) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let meta = file.metadata()?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    // Block devices report length 0 in metadata: seek to the end instead.
    let mut f = file;
    let end = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    Ok(end)
}

/// The logical sector size of a block device (BLKSSZGET), if it is one.
fn logical_sector_size(file: &File) -> Option<u32> {
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

impl BlockDevice for FileDisk {
    fn sector_size(&self) -> u32 {
        self.sector_size
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        check_range(offset, buf.len(), self.size)?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| IoError::Device { offset, code: e.raw_os_error().unwrap_or(-1) as u64 })
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        check_range(offset, buf.len(), self.size)?;
        if !self.writable {
            return Err(IoError::ReadOnly { offset });
        }
        self.file
            .write_all_at(buf, offset)
            .map_err(|e| IoError::Device { offset, code: e.raw_os_error().unwrap_or(-1) as u64 })
    }
    fn flush(&mut self) -> Result<(), IoError> {
        self.file.sync_all().map_err(|e| IoError::Device { offset: 0, code: e.raw_os_error().unwrap_or(-1) as u64 })
    }
}
