//! `FILE` records of `$MFT` and the update-sequence fixups shared with `INDX` blocks.
//!
//! Every multi-sector structure stores an update sequence number (USN) in the
//! last two bytes of each 512-byte stride; the real bytes live in the update
//! sequence array (USA). [`apply_fixups`] checks and undoes that on read (a
//! torn write is detected as a mismatch); [`write_fixups`] increments the USN
//! and redoes it for a write.

#![deny(clippy::indexing_slicing)]

use super::attr::{parse_attrs, Attr};
use super::{corrupt, le16, le32, le64, put16, put32, FileRef, Result};
use alloc::vec::Vec;

/// Fixup stride: always 512 bytes, whatever the sector size.
pub const STRIDE: usize = 512;

/// Checks the update sequence of `buf` (`structure` names it for errors,
/// `offset` is its byte position on the volume) and restores the real bytes.
pub fn apply_fixups(buf: &mut [u8], structure: &'static str, offset: u64) -> Result<()> {
    let usa_ofs = le16(buf, 4).ok_or(corrupt(structure, offset, "short"))? as usize;
    let usa_count = le16(buf, 6).ok_or(corrupt(structure, offset, "short"))? as usize;
    if usa_count != buf.len() / STRIDE + 1 || buf.len() % STRIDE != 0 {
        return Err(corrupt(structure, offset + 6, "update sequence count does not match the size"));
    }
    if usa_ofs % 2 != 0 || usa_ofs < 8 || usa_ofs + 2 * usa_count > STRIDE - 2 {
        return Err(corrupt(structure, offset + 4, "update sequence array outside the first sector"));
    }
    let usn = le16(buf, usa_ofs).ok_or(corrupt(structure, offset, "short"))?;
    for i in 1..usa_count {
        let end = i * STRIDE - 2;
        if le16(buf, end) != Some(usn) {
            return Err(corrupt(structure, offset + end as u64, "update sequence mismatch (torn or damaged write)"));
        }
        let saved = le16(buf, usa_ofs + 2 * i).ok_or(corrupt(structure, offset, "short"))?;
        put16(buf, end, saved)?;
    }
    Ok(())
}

/// Prepares a fixed-up (in-memory) structure for writing: increments the
/// USN (skipping 0 and 0xFFFF, as Windows and ntfs-3g do), saves the last two
/// bytes of every stride in the USA and stamps the USN there. Returns the
/// on-disk bytes. The header fields were validated when the buffer was read.
pub fn write_fixups(mem: &[u8], structure: &'static str, offset: u64) -> Result<Vec<u8>> {
    let mut buf = mem.to_vec();
    let usa_ofs = le16(&buf, 4).ok_or(corrupt(structure, offset, "short"))? as usize;
    let usa_count = le16(&buf, 6).ok_or(corrupt(structure, offset, "short"))? as usize;
    if usa_count != buf.len() / STRIDE + 1 || usa_ofs + 2 * usa_count > STRIDE - 2 {
        return Err(corrupt(structure, offset + 4, "update sequence array invalid"));
    }
    let mut usn = le16(&buf, usa_ofs).ok_or(corrupt(structure, offset, "short"))?.wrapping_add(1);
    if usn == 0 || usn == 0xFFFF {
        usn = 1;
    }
    put16(&mut buf, usa_ofs, usn)?;
    for i in 1..usa_count {
        let end = i * STRIDE - 2;
        let real = le16(&buf, end).ok_or(corrupt(structure, offset, "short"))?;
        put16(&mut buf, usa_ofs + 2 * i, real)?;
        put16(&mut buf, end, usn)?;
    }
    Ok(buf)
}

/// Record header flags.
pub const IN_USE: u16 = 0x0001;
/// Record header flag: the record is a directory (it has an `$I30` index).
pub const DIRECTORY: u16 = 0x0002;

/// One `$MFT` record, fixups applied, header validated.
#[derive(Clone, Debug)]
pub struct Record {
    /// Record number.
    pub number: u64,
    /// Byte offset of the record on the volume (of its first byte).
    pub offset: u64,
    /// The record, fixups undone.
    pub data: Vec<u8>,
}

impl Record {
    /// Validates a raw record read from `offset`. A record that was never
    /// written (all zero) or has no `FILE` signature is an error.
    pub fn parse(number: u64, offset: u64, mut data: Vec<u8>) -> Result<Record> {
        if data.get(0..4) != Some(b"FILE") {
            return Err(corrupt("MFT record", offset, "no FILE signature"));
        }
        apply_fixups(&mut data, "MFT record", offset)?;
        let r = Record { number, offset, data };
        let len = r.data.len();
        let attrs = r.attrs_offset();
        let used = r.bytes_in_use();
        let alloc = le32(&r.data, 0x1C).unwrap_or(0) as usize;
        if alloc != len {
            return Err(corrupt("MFT record", offset + 0x1C, "allocated size differs from the record size"));
        }
        if used > len || used < 0x30 || attrs < 0x30 || attrs + 8 > used || attrs % 8 != 0 {
            return Err(corrupt("MFT record", offset + 0x14, "attribute offset or bytes in use out of range"));
        }
        Ok(r)
    }
    /// Record header flags (bytes 0x16–0x17): [`IN_USE`], [`DIRECTORY`].
    pub fn flags(&self) -> u16 {
        le16(&self.data, 0x16).unwrap_or(0)
    }
    /// True when the record is in use (not a deleted or free record).
    pub fn in_use(&self) -> bool {
        self.flags() & IN_USE != 0
    }
    /// True when the record is flagged as a directory.
    pub fn is_dir(&self) -> bool {
        self.flags() & DIRECTORY != 0
    }
    /// Sequence number (reuse count).
    pub fn seq(&self) -> u16 {
        le16(&self.data, 0x10).unwrap_or(0)
    }
    /// Hard link count (bytes 0x12–0x13): directory entries naming the file.
    pub fn link_count(&self) -> u16 {
        le16(&self.data, 0x12).unwrap_or(0)
    }
    /// Offset of the first attribute in the record (bytes 0x14–0x15).
    pub fn attrs_offset(&self) -> usize {
        le16(&self.data, 0x14).unwrap_or(0) as usize
    }
    /// Bytes of the record in use, end marker included (bytes 0x18–0x1B).
    pub fn bytes_in_use(&self) -> usize {
        le32(&self.data, 0x18).unwrap_or(0) as usize
    }
    /// File reference of the base record (0 for a base record).
    pub fn base_ref(&self) -> FileRef {
        FileRef(le64(&self.data, 0x20).unwrap_or(0))
    }
    /// This record's file reference (number + sequence).
    pub fn file_ref(&self) -> FileRef {
        FileRef::new(self.number, self.seq())
    }
    /// The attributes of this record, validated; runs decoded against `total_clusters`.
    pub fn attrs(&self, total_clusters: u64) -> Result<Vec<Attr>> {
        parse_attrs(&self.data, self.offset, self.attrs_offset(), self.bytes_in_use(), total_clusters)
    }
    /// Removes the attribute whose header is at `off` (`len` bytes long),
    /// moving the attributes after it down. In memory only.
    pub fn remove_attr(&mut self, off: usize, len: usize) -> Result<()> {
        let used = self.bytes_in_use();
        if off < self.attrs_offset() || off + len > used || used > self.data.len() {
            return Err(corrupt("attribute", self.offset + off as u64, "outside the record"));
        }
        self.data.copy_within(off + len..used, off);
        if let Some(tail) = self.data.get_mut(used - len..used) {
            tail.fill(0);
        }
        put32(&mut self.data, 0x18, (used - len) as u32)?;
        Ok(())
    }

    /// Replaces the value of the resident attribute whose header is at `ao`
    /// with `value`, moving the attributes after it. In memory only; `None`
    /// (and the record unchanged) when the record has no room for it.
    pub fn set_resident_value(&mut self, ao: usize, value: &[u8]) -> Option<()> {
        let vo = le16(&self.data, ao + 0x14)? as usize;
        let mut attr = self.data.get(ao..ao + vo)?.to_vec();
        attr.extend_from_slice(value);
        attr.resize((attr.len() + 7) & !7, 0);
        put32(&mut attr, 0x10, value.len() as u32).ok()?;
        self.replace_attr(ao, &attr)
    }

    /// Replaces the whole attribute whose header is at `ao` by `attr` (its
    /// length a multiple of 8, set in its header here), moving the
    /// attributes after it. In memory only; `None` (and the record
    /// unchanged) when the record has no room for it.
    pub fn replace_attr(&mut self, ao: usize, attr: &[u8]) -> Option<()> {
        let old_len = le32(&self.data, ao + 4)? as usize;
        let used = self.bytes_in_use();
        let new_used = (used + attr.len()).checked_sub(old_len)?;
        if attr.len() % 8 != 0 || ao + old_len > used || used > self.data.len() || new_used + 8 > self.data.len() {
            return None;
        }
        let mut d = Vec::with_capacity(self.data.len());
        d.extend_from_slice(self.data.get(..ao)?);
        d.extend_from_slice(attr);
        d.extend_from_slice(self.data.get(ao + old_len..used)?);
        d.resize(self.data.len(), 0);
        put32(&mut d, ao + 4, attr.len() as u32).ok()?;
        put32(&mut d, 0x18, new_used as u32).ok()?;
        self.data = d;
        Some(())
    }

    /// The on-disk bytes for writing this record back (USN incremented).
    pub fn to_disk(&self) -> Result<Vec<u8>> {
        write_fixups(&self.data, "MFT record", self.offset)
    }
}
