//! Planning and executing writes: the delete planner, the journal reset, and
//! [`execute`], the only function in the engine that writes to NTFS.
//!
//! A [`Plan`] is an ordered list of writes (structure, byte offset, new
//! bytes, reason). `--dry-run` prints it; the real run executes the same
//! plan. Writes are ordered so that stopping after any one of them leaves a
//! volume that mounts with nothing cross-linked:
//!
//! 0. (journal reset only) the `$Volume` dirty flag in record 3, then its
//!    `$MFTMirr` copy, then `$LogFile` filled with 0xFF. Between the first two
//!    writes `$MFT` and `$MFTMirr` differ: ntfs-3g refuses to mount until
//!    `ntfsfix` (or chkdsk, which the dirty flag schedules) copies it — the
//!    one window that cannot be closed with single-sector writes;
//! 1. directory index nodes (every name of the file leaves its parent's
//!    index; an interior entry is replaced by its successor, as ntfs-3g does;
//!    an entry moved between nodes is first written at its new place, then
//!    removed from the old one, so a crash can duplicate but never lose
//!    another file's entry; an emptied leaf is unlinked and freed in the
//!    index bitmap, and a root whose only block empties becomes a small
//!    index again). A node that must split takes a new block: clusters
//!    marked in `$Bitmap` first, then the grown `$INDEX_ALLOCATION` in the
//!    directory's record, then the new block's contents, then its index
//!    bitmap bit, then the parent that points to it, and only then the
//!    shrunk node — each prefix leaks space or duplicates keys, never loses one;
//! 2. the file's MFT records (base first, then extension records): in-use
//!    cleared, sequence number advanced; `$MFTMirr` too for records 0–3;
//! 3. the `$MFT` bitmap bits;
//! 4. the `$Bitmap` bits of the file's clusters — last, so clusters are never
//!    free while a record still claims them (a crash leaks, never cross-links).

use super::fs::Ntfs;
use super::record::Record;
use super::{le16, put16, Result};
use crate::block::BlockDevice;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// What a write puts on the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteData {
    /// These exact bytes.
    Bytes(Vec<u8>),
    /// `len` copies of `byte` (the journal reset).
    Fill {
        /// The byte value written.
        byte: u8,
        /// How many bytes to write.
        len: u64,
    },
}

/// One write of a plan.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PlanWrite {
    /// The structure changed (e.g. "index block", "MFT record", "$Bitmap").
    pub structure: &'static str,
    /// Byte offset on the volume.
    pub offset: u64,
    /// Bytes written.
    pub len: u64,
    /// What is written (left out of the JSON report).
    #[serde(skip)]
    pub data: WriteData,
    /// Why, in words (shown by `--dry-run` and in the report).
    pub reason: String,
}

/// An ordered list of writes.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    /// The writes, in the order [`execute`] performs them.
    pub writes: Vec<PlanWrite>,
    /// Things the plan leaves for chkdsk, or decided (e.g. "hard link: record kept").
    pub notes: Vec<String>,
}

impl Plan {
    pub(super) fn push(&mut self, structure: &'static str, offset: u64, data: Vec<u8>, reason: String) {
        self.writes.push(PlanWrite { structure, offset, len: data.len() as u64, data: WriteData::Bytes(data), reason });
    }
    /// Adds one write per physical extent of `data`.
    pub(super) fn push_extents(&mut self, structure: &'static str, ex: &[(u64, u64)], data: &[u8], reason: &str) {
        let mut o = 0usize;
        for (p, l) in ex {
            self.push(structure, *p, data[o..o + *l as usize].to_vec(), String::from(reason));
            o += *l as usize;
        }
    }
    /// Number of writes.
    pub fn len(&self) -> usize {
        self.writes.len()
    }
    /// True when the plan writes nothing (notes aside).
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
    /// Lays the bytes this plan writes over `buf`, which holds the volume's
    /// bytes at `at`: what a read would see after the plan ran (later
    /// writes over earlier ones). Planners read through this so that a plan
    /// never undoes its own earlier writes (two bitmap edits of one byte).
    pub fn overlay(&self, at: u64, buf: &mut [u8]) {
        let end = at + buf.len() as u64;
        for w in &self.writes {
            let (ws, we) = (w.offset, w.offset + w.len);
            if we <= at || ws >= end {
                continue;
            }
            let (from, to) = (ws.max(at), we.min(end));
            let dst = &mut buf[(from - at) as usize..(to - at) as usize];
            match &w.data {
                WriteData::Bytes(b) => dst.copy_from_slice(&b[(from - ws) as usize..(to - ws) as usize]),
                WriteData::Fill { byte, .. } => dst.fill(*byte),
            }
        }
    }
    /// Appends `other` after this plan's writes.
    pub fn extend(&mut self, other: Plan) {
        self.writes.extend(other.writes);
        self.notes.extend(other.notes);
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, w) in self.writes.iter().enumerate() {
            writeln!(
                f,
                "  write {:>3}: {:<22} byte {:#012x} (+{} bytes): {}",
                i + 1,
                w.structure,
                w.offset,
                w.len,
                w.reason
            )?;
        }
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        Ok(())
    }
}

/// A device seen as it will be after a plan ran: reads lay the plan's
/// writes over the device's bytes; writes go to the device and over the
/// view alike (so a read after them sees them, not the plan's older bytes).
/// Planners read through it to plan on top of a plan not yet executed
/// (the fixes on top of a journal replay).
pub struct Planned<D> {
    inner: D,
    plan: Plan,
}

impl<D: BlockDevice> Planned<D> {
    /// `inner` as it will be once `plan` ran.
    pub fn new(inner: D, plan: Plan) -> Self {
        Planned { inner, plan }
    }
}

impl<D: BlockDevice> BlockDevice for Planned<D> {
    fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> core::result::Result<(), crate::block::IoError> {
        self.inner.read_at(offset, buf)?;
        self.plan.overlay(offset, buf);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> core::result::Result<(), crate::block::IoError> {
        self.inner.write_at(offset, buf)?;
        self.plan.push("written", offset, buf.to_vec(), String::new());
        Ok(())
    }
    fn flush(&mut self) -> core::result::Result<(), crate::block::IoError> {
        self.inner.flush()
    }
}

/// Performs the writes of `plan` in order, flushing after each one, and
/// stops after `stop_after` writes when given (for interruption tests).
/// Returns the number of writes done. This is the only NTFS write path.
pub fn execute(dev: &mut impl BlockDevice, plan: &Plan, stop_after: Option<usize>) -> Result<usize> {
    let mut done = 0;
    for w in &plan.writes {
        if stop_after.is_some_and(|k| done >= k) {
            break;
        }
        match &w.data {
            WriteData::Bytes(b) => dev.write_at(w.offset, b)?,
            WriteData::Fill { byte, len } => {
                let chunk = vec![*byte; 65536];
                let mut o = 0u64;
                while o < *len {
                    let n = (*len - o).min(65536);
                    dev.write_at(w.offset + o, &chunk[..n as usize])?;
                    o += n;
                }
            }
        }
        dev.flush()?;
        done += 1;
    }
    Ok(done)
}

/// Plans writing record `rec` (fixups applied; also its `$MFTMirr` copy for records 0-3).
pub(super) fn record_write(v: &Ntfs, plan: &mut Plan, rec: &mut Record, reason: &str) -> Result<()> {
    let disk = rec.to_disk()?;
    commit_usn(&mut rec.data, &disk)?;
    let ex = v.record_extents(rec.number)?;
    plan.push_extents("MFT record", &ex, &disk, reason);
    if rec.number < 4 {
        // $MFTMirr mirrors records 0-3: ntfs-3g refuses a volume whose copies differ.
        let mirr = v.load_file_mirror_extents(rec.number)?;
        plan.push_extents("$MFTMirr", &mirr, &disk, &format!("{reason} (mirror)"));
    }
    Ok(())
}

/// Copies the USN a write used back into the in-memory structure, so the next write of it increments again.
pub(super) fn commit_usn(mem: &mut [u8], disk: &[u8]) -> Result<()> {
    if let Some(o) = le16(mem, 4) {
        if let Some(u) = le16(disk, o as usize) {
            put16(mem, o as usize, u)?;
        }
    }
    Ok(())
}
