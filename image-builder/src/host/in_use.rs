//! Whether a block device is in use by the running system.

#[cfg(windows)]
pub use windows::refuse_if_in_use;

#[cfg(windows)]
mod windows {
    use anyhow::{bail, Result};
    use std::path::Path;

    /// On Windows, `apply` and the other disk verbs work on image files;
    /// a physical drive in use by Windows is refused.
    pub fn refuse_if_in_use(target: &Path) -> Result<()> {
        if crate::host::drives::is_device(target) {
            bail!(
                "{}: on Windows, rescue fixes disk image files; to fix a physical disk, boot the rescue stick \
                 on that PC (or attach the disk to a Linux rescue VM)",
                target.display()
            );
        }
        Ok(())
    }
}

#[cfg(unix)]
use anyhow::{bail, Context, Result};
#[cfg(unix)]
use std::path::Path;

/// Refuses to write to a block device that is mounted (or whose partitions
/// are): the running system would overwrite our change, or we its caches.
#[cfg(unix)]
pub fn refuse_if_in_use(target: &Path) -> Result<()> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let meta = std::fs::metadata(target).with_context(|| format!("cannot open {}", target.display()))?;
    if !meta.file_type().is_block_device() {
        return Ok(());
    }
    let dev = std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
    let name = dev.to_string_lossy().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for line in mounts.lines() {
        let src = line.split_whitespace().next().unwrap_or("");
        let src =
            std::fs::canonicalize(src).map(|p| p.to_string_lossy().to_string()).unwrap_or_else(|_| src.to_string());
        let part_of = src
            .strip_prefix(&name)
            .is_some_and(|rest| rest.is_empty() || rest.chars().all(|c| c.is_ascii_digit() || c == 'p'));
        if part_of {
            bail!(
                "{src} is mounted ({}): unmount it before `rescue apply` writes to {name}",
                line.split_whitespace().nth(1).unwrap_or("?")
            );
        }
    }
    // The kernel refuses an exclusive open of a device that is claimed (mounted, in a RAID, ...).
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(&dev)
        .with_context(|| format!("{name} is in use by the system (exclusive open failed): stop what uses it first"))?;
    Ok(())
}
