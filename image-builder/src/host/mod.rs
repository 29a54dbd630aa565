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

/// A whole disk as the platform lists it (`rescue devices`, `rescue flash`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Disk {
    /// `/dev/sdX`, or `\\.\PhysicalDriveN` on Windows.
    pub dev_path: std::path::PathBuf,
    pub model: String,
    pub size: u64,
    pub removable: bool,
    /// The bus people know it by (USB, NVMe, SATA, SD, virtio, ...; empty when unknown).
    pub bus: String,
    /// Where it or its partitions are mounted (Linux mount points, Windows drive letters or volume names).
    pub mounts: Vec<String>,
    /// It holds the running system (Linux: `/`, `/boot`, `/usr` or active swap; Windows: the Windows folder).
    pub holds_system: bool,
}
