//! This machine's disks: block devices and image files as engine devices,
//! what sysfs says of them, whether the system uses them, opening a volume
//! with credentials, and backups into a host folder.

pub mod backup_dir;
pub mod disk;
pub mod esp;
pub mod in_use;
#[cfg(unix)]
pub mod sysblock;
pub mod volume;
#[cfg(windows)]
pub mod windrives;

/// The platform's physical disks: Linux's `/sys/block`, or Windows' physical drives.
#[cfg(unix)]
pub use sysblock as drives;
#[cfg(windows)]
pub use windrives as drives;
