//! What Linux says about block devices (`/sys/block`, `/proc/self/mountinfo`):
//! enough to list sticks and to refuse flashing the wrong disk.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub use super::Disk;

fn read_trim(p: impl AsRef<Path>) -> String {
    fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// `major:minor` of the disk and of each of its partitions.
fn dev_numbers(name: &str) -> BTreeSet<String> {
    let base = Path::new("/sys/block").join(name);
    let mut out = BTreeSet::new();
    out.insert(read_trim(base.join("dev")));
    if let Ok(rd) = fs::read_dir(&base) {
        for e in rd.flatten() {
            if e.path().join("partition").exists() {
                out.insert(read_trim(e.path().join("dev")));
            }
        }
    }
    out
}

/// `(major:minor, mount point)` of every mount.
fn mounts() -> Vec<(String, String)> {
    read_trim("/proc/self/mountinfo")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((f.get(2)?.to_string(), f.get(4)?.to_string()))
        })
        .collect()
}

/// Devices (`major:minor`) of active swap areas.
fn swaps() -> BTreeSet<String> {
    read_trim("/proc/swaps")
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| format!("{}:{}", libc::major(m.rdev()), libc::minor(m.rdev())))
        .collect()
}

/// Reads one disk by kernel name.
pub fn disk(name: &str) -> Option<Disk> {
    let base = Path::new("/sys/block").join(name);
    if !base.exists() {
        return None;
    }
    let numbers = dev_numbers(name);
    let all_mounts = mounts();
    let mounts: Vec<String> = all_mounts.iter().filter(|(d, _)| numbers.contains(d)).map(|(_, m)| m.clone()).collect();
    let system = ["/", "/boot", "/boot/efi", "/usr"];
    let swap = swaps();
    let holds_system = mounts.iter().any(|m| system.contains(&m.as_str())) || numbers.iter().any(|n| swap.contains(n));
    // A raw PCI vendor ID ("0x1af4") is not a name: show names or nothing.
    let model = [read_trim(base.join("device/vendor")), read_trim(base.join("device/model"))]
        .into_iter()
        .filter(|s| !s.is_empty() && !s.starts_with("0x"))
        .collect::<Vec<_>>()
        .join(" ");
    let sys_path = fs::canonicalize(&base).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let usb = sys_path.contains("/usb");
    let bus = [("/usb", "USB"), ("/nvme", "NVMe"), ("/ata", "SATA"), ("/virtio", "virtio"), ("/mmc", "MMC")]
        .iter()
        .find(|(k, _)| sys_path.contains(k))
        .map_or("", |(_, b)| b);
    Some(Disk {
        dev_path: Path::new("/dev").join(name),
        model,
        size: read_trim(base.join("size")).parse::<u64>().unwrap_or(0) * 512,
        removable: read_trim(base.join("removable")) == "1" || usb,
        bus: bus.to_string(),
        mounts,
        holds_system,
    })
}

/// Every disk the kernel lists with media, except RAM and compressed-swap
/// devices (empty loop devices and card readers without a card have size 0).
pub fn disks() -> Vec<Disk> {
    let mut names: Vec<String> = fs::read_dir("/sys/block")
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .filter(|n| !n.starts_with("ram") && !n.starts_with("zram"))
        .filter_map(|n| disk(n))
        .filter(|d| d.size > 0)
        .collect()
}

/// True when `node` is a block device.
pub fn is_device(node: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    fs::metadata(node).is_ok_and(|m| m.file_type().is_block_device())
}

/// The disk a block device node belongs to, and whether the node is a partition.
pub fn disk_of_node(node: &Path) -> Option<(Disk, bool)> {
    let rdev = fs::metadata(node).ok()?.rdev();
    let sys = fs::canonicalize(format!("/sys/dev/block/{}:{}", libc::major(rdev), libc::minor(rdev))).ok()?;
    let is_partition = sys.join("partition").exists();
    let disk_dir = if is_partition { sys.parent()?.to_path_buf() } else { sys };
    Some((disk(&disk_dir.file_name()?.to_string_lossy())?, is_partition))
}
