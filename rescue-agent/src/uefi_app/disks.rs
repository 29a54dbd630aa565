//! Disks as the firmware sees them: connect every controller, enumerate the
//! whole-disk Block I/O handles (not the firmware's own partition handles:
//! the engine reads partition tables itself), skip the stick we booted from,
//! and wrap each as an engine [`BlockDevice`].

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use rescue_engine::block::{check_range, BlockDevice, IoError};
use uefi::boot::{self, OpenProtocolAttributes, OpenProtocolParams, ScopedProtocol, SearchType};
use uefi::proto::device_path::text::{AllowShortcuts, DisplayOnly};
use uefi::proto::device_path::DevicePath;
use uefi::proto::loaded_image::LoadedImage;
use uefi::proto::media::block::BlockIO;
use uefi::proto::media::disk_info::{DiskInfo, DiskInfoInterface};
use uefi::Handle;

/// Connects every handle to its drivers, recursively, so that disks behind
/// AHCI, NVMe, virtio, USB and RAID/VMD drivers get Block I/O even when the
/// firmware only connected the boot device (fast boot, `bootindex`).
pub fn connect_all() {
    if let Ok(handles) = boot::locate_handle_buffer(SearchType::AllHandles) {
        for &h in handles.iter() {
            let _ = boot::connect_controller(h, &[], None, true);
        }
    }
}

/// Device path bytes of `h` without the end node.
pub(super) fn path_bytes(h: Handle) -> Option<Vec<u8>> {
    let dp = open::<DevicePath>(h)?;
    let b = dp.as_bytes();
    Some(b[..b.len().saturating_sub(4)].to_vec())
}

pub(super) fn path_text(h: Handle) -> String {
    open::<DevicePath>(h)
        .and_then(|dp| dp.to_string16(DisplayOnly(true), AllowShortcuts(true)).ok())
        .map(|s| s.to_string())
        .unwrap_or_else(|| String::from("(unknown device)"))
}

/// Opens a protocol without taking it from its other users (an exclusive
/// open would disconnect the partition driver or the console).
pub(super) fn open<P: uefi::proto::ProtocolPointer + ?Sized>(h: Handle) -> Option<ScopedProtocol<P>> {
    let params = OpenProtocolParams { handle: h, agent: boot::image_handle(), controller: None };
    // SAFETY: GetProtocol does not change the handle's owners; boot services
    // keep the protocol alive for the agent's whole life.
    unsafe { boot::open_protocol::<P>(params, OpenProtocolAttributes::GetProtocol) }.ok()
}

/// The device path of the partition (or CD boot image) the agent was loaded from.
pub fn boot_device_path() -> Option<Vec<u8>> {
    let li = open::<LoadedImage>(boot::image_handle())?;
    path_bytes(li.device()?)
}

/// A whole disk behind Block I/O.
pub struct UefiDisk {
    bio: ScopedProtocol<BlockIO>,
    media_id: u32,
    block: u64,
    size: u64,
    align: usize,
    read_only: bool,
}

/// (model, serial) as the disk's controller reports them, where the firmware gives them.
fn identity(h: Handle) -> (String, String) {
    let none = (String::new(), String::new());
    let Some(di) = open::<DiskInfo>(h) else { return none };
    let mut buf = vec![0u8; 4096];
    let parsed = match di.interface() {
        DiskInfoInterface::IDE | DiskInfoInterface::AHCI => {
            di.identify(&mut buf).ok().and_then(|n| rescue_engine::formats::diskid::ata(&buf[..n.min(buf.len())]))
        }
        DiskInfoInterface::NVME => {
            di.identify(&mut buf).ok().and_then(|n| rescue_engine::formats::diskid::nvme(&buf[..n.min(buf.len())]))
        }
        DiskInfoInterface::USB | DiskInfoInterface::SCSI => {
            di.inquiry(&mut buf).ok().and_then(|n| rescue_engine::formats::diskid::scsi(&buf[..n.min(buf.len())]))
        }
        _ => None,
    };
    parsed.unwrap_or(none)
}

/// A disk found: how the firmware names it, what it says it is, and the device.
pub struct Found {
    pub label: String,
    pub model: String,
    pub serial: String,
    pub disk: UefiDisk,
}

/// Whole disks with media, except the one whose path prefixes `skip` (the boot stick).
pub fn whole_disks(skip: Option<&[u8]>) -> Vec<Found> {
    let mut out = Vec::new();
    let Ok(handles) = boot::find_handles::<BlockIO>() else { return out };
    for h in handles {
        let Some(bio) = open::<BlockIO>(h) else { continue };
        let m = bio.media();
        if m.is_logical_partition() || !m.is_media_present() || m.block_size() == 0 {
            continue;
        }
        if let (Some(skip), Some(mine)) = (skip, path_bytes(h)) {
            if skip.starts_with(&mine) {
                continue;
            }
        }
        let block = m.block_size() as u64;
        let disk = UefiDisk {
            media_id: m.media_id(),
            block,
            size: (m.last_block() + 1) * block,
            align: (m.io_align() as usize).max(1),
            read_only: m.is_read_only(),
            bio,
        };
        let (model, serial) = identity(h);
        out.push(Found { label: path_text(h), model, serial, disk });
    }
    out
}

/// Most bytes moved per firmware call.
const CHUNK: u64 = 1 << 20;

impl UefiDisk {
    /// An aligned scratch buffer of `len` bytes: (storage, start offset).
    fn scratch(&self, len: usize) -> (Vec<u8>, usize) {
        let v = vec![0u8; len + self.align];
        let shift = v.as_ptr().align_offset(self.align);
        (v, shift)
    }

    fn err(&self, offset: u64, s: uefi::Status) -> IoError {
        IoError::Device { offset, code: s.0 as u64 }
    }

    /// Reads whole blocks `lba..` into `out` (a multiple of the block size).
    fn read_blocks(&mut self, lba: u64, out: &mut [u8]) -> Result<(), IoError> {
        let (mut v, s) = self.scratch(out.len());
        let media = self.media_id;
        self.bio
            .read_blocks(media, lba, &mut v[s..s + out.len()])
            .map_err(|e| self.err(lba * self.block, e.status()))?;
        out.copy_from_slice(&v[s..s + out.len()]);
        Ok(())
    }

    /// The next piece of a transfer at byte `pos` with `left` bytes to go:
    /// (first block, bytes to skip in it, bytes moved, whole-block span).
    fn chunk(&self, pos: u64, left: usize) -> (u64, usize, usize, usize) {
        let skip = (pos % self.block) as usize;
        let want = left.min(CHUNK as usize);
        let span = (skip + want).div_ceil(self.block as usize) * self.block as usize;
        (pos / self.block, skip, want, span)
    }

    fn write_blocks(&mut self, lba: u64, data: &[u8]) -> Result<(), IoError> {
        let (mut v, s) = self.scratch(data.len());
        v[s..s + data.len()].copy_from_slice(data);
        let media = self.media_id;
        self.bio.write_blocks(media, lba, &v[s..s + data.len()]).map_err(|e| self.err(lba * self.block, e.status()))
    }
}

impl BlockDevice for UefiDisk {
    fn sector_size(&self) -> u32 {
        self.block as u32
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        check_range(offset, buf.len(), self.size)?;
        let mut done = 0usize;
        while done < buf.len() {
            let (first, skip, want, span) = self.chunk(offset + done as u64, buf.len() - done);
            let mut tmp = vec![0u8; span];
            self.read_blocks(first, &mut tmp)?;
            buf[done..done + want].copy_from_slice(&tmp[skip..skip + want]);
            done += want;
        }
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        check_range(offset, buf.len(), self.size)?;
        if self.read_only {
            return Err(IoError::ReadOnly { offset });
        }
        let mut done = 0usize;
        while done < buf.len() {
            let (first, skip, want, span) = self.chunk(offset + done as u64, buf.len() - done);
            let mut tmp = vec![0u8; span];
            if skip != 0 || want % self.block as usize != 0 {
                // Partial blocks at either end: read, modify, write.
                self.read_blocks(first, &mut tmp)?;
            }
            tmp[skip..skip + want].copy_from_slice(&buf[done..done + want]);
            self.write_blocks(first, &tmp)?;
            done += want;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), IoError> {
        self.bio.flush_blocks().map_err(|e| IoError::Device { offset: 0, code: e.status().0 as u64 })
    }
}
