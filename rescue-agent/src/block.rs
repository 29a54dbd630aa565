//! Block devices: the only way the engine touches storage.
//!
//! The engine never calls firmware or OS APIs. Every disk, partition, image
//! file or unlocked BitLocker volume is a [`BlockDevice`]; the UEFI front end
//! and the host tool provide implementations, and tests use [`MemDisk`].

use alloc::vec::Vec;
use core::fmt;

/// An I/O failure below the engine, with where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoError {
    /// The range `offset..offset+len` lies (partly) beyond the end of the device.
    OutOfRange {
        /// Byte offset where the transfer starts.
        offset: u64,
        /// Length of the transfer in bytes.
        len: u64,
    },
    /// The device refused a write (read-only medium or a protected area).
    ReadOnly {
        /// Byte offset of the refused write (or of the first protected byte it touches).
        offset: u64,
    },
    /// The underlying device reported an error.
    Device {
        /// Byte offset of the failed transfer.
        offset: u64,
        /// The device's own error code (e.g. a UEFI `EFI_STATUS`), shown in hex.
        code: u64,
    },
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoError::OutOfRange { offset, len } => {
                write!(f, "read of {len} bytes at byte {offset} runs past the end of the device")
            }
            IoError::ReadOnly { offset } => write!(f, "device is read-only (write at byte {offset})"),
            IoError::Device { offset, code } => write!(f, "device error {code:#x} at byte {offset}"),
        }
    }
}

impl core::error::Error for IoError {}

/// Random access to a device of fixed size.
///
/// Offsets and lengths are in bytes and need not be sector-aligned:
/// implementations over sector-based hardware do read-modify-write
/// themselves. A successful `write_at` followed by `flush` means the data is
/// on the medium.
pub trait BlockDevice {
    /// Logical sector size in bytes (512 or 4096 in practice).
    fn sector_size(&self) -> u32;
    /// Size of the device in bytes.
    fn size(&self) -> u64;
    /// Fill `buf` from `offset`. Fails without partial effects on `buf` semantics the caller relies on.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError>;
    /// Write `buf` at `offset`.
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError>;
    /// Make every completed write durable.
    fn flush(&mut self) -> Result<(), IoError> {
        Ok(())
    }
}

impl<T: BlockDevice + ?Sized> BlockDevice for &mut T {
    fn sector_size(&self) -> u32 {
        (**self).sector_size()
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        (**self).read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        (**self).write_at(offset, buf)
    }
    fn flush(&mut self) -> Result<(), IoError> {
        (**self).flush()
    }
}

/// Checks that `offset..offset+len` lies inside a device of `size` bytes.
pub fn check_range(offset: u64, len: usize, size: u64) -> Result<(), IoError> {
    let len = len as u64;
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(IoError::OutOfRange { offset, len }),
    }
}

/// A window `start..start+len` of another device: a partition, or a volume inside a disk.
pub struct Slice<D> {
    inner: D,
    start: u64,
    len: u64,
}

impl<D: BlockDevice> Slice<D> {
    /// A view of `len` bytes from `start`; the window is clipped to the device.
    pub fn new(inner: D, start: u64, len: u64) -> Self {
        let size = inner.size();
        let start = start.min(size);
        let len = len.min(size - start);
        Slice { inner, start, len }
    }
    /// Byte offset of this window in the underlying device.
    pub fn start(&self) -> u64 {
        self.start
    }
    /// The underlying device.
    pub fn into_inner(self) -> D {
        self.inner
    }
}

impl<D: BlockDevice> BlockDevice for Slice<D> {
    fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        check_range(offset, buf.len(), self.len)?;
        self.inner.read_at(self.start + offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        check_range(offset, buf.len(), self.len)?;
        self.inner.write_at(self.start + offset, buf)
    }
    fn flush(&mut self) -> Result<(), IoError> {
        self.inner.flush()
    }
}

/// A disk held in memory, for tests and for building images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemDisk {
    /// The disk's contents; its length is the device size.
    pub data: Vec<u8>,
    /// Logical sector size reported by [`BlockDevice::sector_size`] (not enforced on transfers).
    pub sector_size: u32,
}

impl MemDisk {
    /// A disk holding `data`, reporting `sector_size` bytes per sector.
    pub fn new(data: Vec<u8>, sector_size: u32) -> Self {
        MemDisk { data, sector_size }
    }
}

impl BlockDevice for MemDisk {
    fn sector_size(&self) -> u32 {
        self.sector_size
    }
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        check_range(offset, buf.len(), self.size())?;
        let o = offset as usize;
        buf.copy_from_slice(&self.data[o..o + buf.len()]);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        check_range(offset, buf.len(), self.size())?;
        let o = offset as usize;
        self.data[o..o + buf.len()].copy_from_slice(buf);
        Ok(())
    }
}

/// A device wrapper counting what the engine reads and writes.
pub struct Counting<D> {
    /// The device counted.
    pub inner: D,
    /// Bytes read so far.
    pub bytes_read: u64,
    /// Read calls so far.
    pub reads: u64,
    /// Bytes written so far.
    pub bytes_written: u64,
}

impl<D: BlockDevice> Counting<D> {
    /// Wraps `inner` with every counter at zero.
    pub fn new(inner: D) -> Self {
        Counting { inner, bytes_read: 0, reads: 0, bytes_written: 0 }
    }
}

impl<D: BlockDevice> BlockDevice for Counting<D> {
    fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.bytes_read += buf.len() as u64;
        self.reads += 1;
        self.inner.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        self.bytes_written += buf.len() as u64;
        self.inner.write_at(offset, buf)
    }
    fn flush(&mut self) -> Result<(), IoError> {
        self.inner.flush()
    }
}
