//! What Windows says about physical drives (`\\.\PhysicalDriveN`): model,
//! size, bus and removable flag (IOCTL_STORAGE_QUERY_PROPERTY), which volumes
//! lie on each (IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS), which holds Windows
//! itself; and locking and dismounting a drive's volumes before it is
//! written. The same `Disk` as Linux's `sysblock`, so `devices` and `flash`
//! share their checks.
//!
//! Every structure the kernel returns is read by byte offset from a buffer
//! we own (no casts of foreign memory).

use std::fs::{File, OpenOptions};
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::AsRawHandle;
use std::path::{Path, PathBuf};
use windows_sys::Win32::Storage::FileSystem::{
    FindFirstVolumeW, FindNextVolumeW, FindVolumeClose, FILE_SHARE_READ, FILE_SHARE_WRITE,
};
use windows_sys::Win32::System::Ioctl::{
    FSCTL_DISMOUNT_VOLUME, FSCTL_LOCK_VOLUME, IOCTL_DISK_GET_DRIVE_GEOMETRY_EX, IOCTL_DISK_GET_LENGTH_INFO,
    IOCTL_STORAGE_QUERY_PROPERTY,
};
use windows_sys::Win32::System::SystemInformation::GetSystemWindowsDirectoryW;
use windows_sys::Win32::System::IO::DeviceIoControl;

/// `CTL_CODE(IOCTL_VOLUME_BASE, 0, METHOD_BUFFERED, FILE_ANY_ACCESS)` (winioctl.h).
const IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS: u32 = 0x0056_0000;

pub use super::Disk;

/// Sends `code` with `input` to `file`; the first `out_len` bytes of the answer.
fn ioctl(file: &File, code: u32, input: &[u8], out_len: usize) -> std::io::Result<Vec<u8>> {
    let mut out = vec![0u8; out_len];
    let mut got = 0u32;
    // SAFETY: both buffers are ours and live through the call, with their true lengths.
    let ok = unsafe {
        DeviceIoControl(
            file.as_raw_handle() as _,
            code,
            input.as_ptr().cast(),
            input.len() as u32,
            out.as_mut_ptr().cast(),
            out.len() as u32,
            &mut got,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    out.truncate(got as usize);
    Ok(out)
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// Opens a device for queries only (no read or write access needed).
fn query_handle(path: &str) -> std::io::Result<File> {
    OpenOptions::new().access_mode(0).share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE).open(path)
}

/// A drive's length in bytes (IOCTL_DISK_GET_LENGTH_INFO).
pub fn length(file: &File) -> std::io::Result<u64> {
    let out = ioctl(file, IOCTL_DISK_GET_LENGTH_INFO, &[], 8)?;
    u64_at(&out, 0).ok_or_else(|| std::io::Error::other("short length answer"))
}

/// A drive's bytes per sector (DISK_GEOMETRY_EX.Geometry.BytesPerSector).
pub fn sector_size(file: &File) -> Option<u32> {
    let out = ioctl(file, IOCTL_DISK_GET_DRIVE_GEOMETRY_EX, &[], 256).ok()?;
    u32_at(&out, 20).filter(|s| s.is_power_of_two() && *s >= 512)
}

/// The name of a STORAGE_BUS_TYPE.
fn bus_name(t: u32) -> &'static str {
    match t {
        1 => "SCSI",
        3 => "ATA",
        7 => "USB",
        8 => "RAID",
        10 => "SAS",
        11 => "SATA",
        12 => "SD",
        13 => "MMC",
        14 | 15 => "virtual",
        17 => "NVMe",
        _ => "",
    }
}

/// A NUL-terminated ASCII string at `off` of `b` (0: none), trimmed.
fn cstr_at(b: &[u8], off: u32) -> String {
    let start = off as usize;
    if start == 0 || start >= b.len() {
        return String::new();
    }
    let end = b[start..].iter().position(|&c| c == 0).map_or(b.len(), |n| start + n);
    String::from_utf8_lossy(&b[start..end]).trim().to_string()
}

/// Disk numbers a volume (`\\.\C:` or `\\?\Volume{...}` without the trailing `\`) lies on.
fn volume_disks(volume: &str) -> Vec<u32> {
    let Ok(f) = query_handle(volume) else { return Vec::new() };
    let Ok(out) = ioctl(&f, IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS, &[], 8 + 24 * 32) else { return Vec::new() };
    let n = u32_at(&out, 0).unwrap_or(0) as usize;
    (0..n.min(32)).filter_map(|i| u32_at(&out, 8 + 24 * i)).collect()
}

/// Every volume's name (`\\?\Volume{...}`, without the trailing `\`).
fn volumes() -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u16; 64];
    // SAFETY: the buffer is ours, its length passed; the handle is closed below.
    let h = unsafe { FindFirstVolumeW(buf.as_mut_ptr(), buf.len() as u32) };
    if h.is_null() || h as isize == -1 {
        return out;
    }
    loop {
        let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
        let name = String::from_utf16_lossy(&buf[..end]);
        out.push(name.trim_end_matches('\\').to_string());
        // SAFETY: as above.
        if unsafe { FindNextVolumeW(h, buf.as_mut_ptr(), buf.len() as u32) } == 0 || out.len() > 256 {
            break;
        }
    }
    // SAFETY: `h` came from FindFirstVolumeW.
    unsafe { FindVolumeClose(h) };
    out
}

/// The disk numbers holding the running Windows (its folder's volume).
fn system_disks() -> Vec<u32> {
    let mut buf = [0u16; 260];
    // SAFETY: the buffer is ours, its length passed.
    let n = unsafe { GetSystemWindowsDirectoryW(buf.as_mut_ptr(), buf.len() as u32) } as usize;
    let dir = String::from_utf16_lossy(&buf[..n.min(buf.len())]);
    match dir.get(..2) {
        Some(drive) if drive.ends_with(':') => volume_disks(&format!(r"\\.\{drive}")),
        _ => Vec::new(),
    }
}

/// Physical drive `n`, if it exists.
pub fn disk(n: u32) -> Option<Disk> {
    let path = format!(r"\\.\PhysicalDrive{n}");
    let f = query_handle(&path).ok()?;
    let size = length(&f).unwrap_or(0);
    // STORAGE_PROPERTY_QUERY { StorageDeviceProperty (0), PropertyStandardQuery (0) }.
    let desc = ioctl(&f, IOCTL_STORAGE_QUERY_PROPERTY, &[0u8; 12], 1024).unwrap_or_default();
    let vendor = cstr_at(&desc, u32_at(&desc, 12).unwrap_or(0));
    let product = cstr_at(&desc, u32_at(&desc, 16).unwrap_or(0));
    let model = [vendor, product].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
    let bus = bus_name(u32_at(&desc, 28).unwrap_or(0)).to_string();
    let removable = desc.get(10).is_some_and(|&r| r != 0) || bus == "USB" || bus == "SD";
    let mut mounts: Vec<String> = Vec::new();
    for letter in b'A'..=b'Z' {
        let v = format!(r"\\.\{}:", letter as char);
        if volume_disks(&v).contains(&n) {
            mounts.push(format!("{}:", letter as char));
        }
    }
    if mounts.is_empty() {
        mounts = volumes().into_iter().filter(|v| volume_disks(v).contains(&n)).collect();
    }
    Some(Disk {
        dev_path: PathBuf::from(path),
        model,
        size,
        removable,
        bus,
        mounts,
        holds_system: system_disks().contains(&n),
    })
}

/// Every physical drive with media.
pub fn disks() -> Vec<Disk> {
    (0..64).filter_map(disk).filter(|d| d.size > 0).collect()
}

/// The drive number of a `\\.\PhysicalDriveN` path.
pub fn drive_number(node: &Path) -> Option<u32> {
    let s = node.to_str()?;
    let rest = s.strip_prefix(r"\\.\PhysicalDrive").or_else(|| s.strip_prefix(r"\\.\physicaldrive"))?;
    rest.parse().ok()
}

/// True when `node` names a physical drive.
pub fn is_device(node: &Path) -> bool {
    drive_number(node).is_some()
}

/// The drive `node` names, and whether it is a partition (never, on Windows: drives are whole).
pub fn disk_of_node(node: &Path) -> Option<(Disk, bool)> {
    Some((disk(drive_number(node)?)?, false))
}

/// Locks and dismounts every volume of drive `n`, so that Windows lets its
/// sectors be written and keeps no cache of them. The handles keep the
/// locks: hold them until the write and its verification are done.
pub fn lock_volumes(n: u32) -> std::io::Result<Vec<File>> {
    let mut held = Vec::new();
    for v in volumes() {
        if !volume_disks(&v).contains(&n) {
            continue;
        }
        let f = OpenOptions::new().read(true).write(true).share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE).open(&v)?;
        ioctl(&f, FSCTL_LOCK_VOLUME, &[], 0)
            .map_err(|e| std::io::Error::other(format!("cannot lock {v} (is a program using it?): {e}")))?;
        ioctl(&f, FSCTL_DISMOUNT_VOLUME, &[], 0)
            .map_err(|e| std::io::Error::other(format!("cannot dismount {v}: {e}")))?;
        held.push(f);
    }
    Ok(held)
}
