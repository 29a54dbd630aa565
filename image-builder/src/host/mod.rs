//! This machine's disks: block devices and image files as engine devices,
//! what sysfs says of them, whether the system uses them, opening a volume
//! with credentials, and backups into a host folder.

pub mod backup_dir;
pub mod disk;
pub mod esp;
pub mod in_use;
pub mod sysblock;
pub mod volume;
