//! The walk over one disk that every verb shares: partitions discovered,
//! each NTFS or BitLocker volume opened (BitLocker through [`unlock`]),
//! handed to a visitor, and an unlocked volume's writes flushed. The run
//! ([`super::session`]) applies the rules through it; `rescue ls` and
//! `rescue reg` read through it.

use super::ports::Console;
use super::report::BitLockerReport;
use super::unlock::{self, Unlocker};
use crate::block::{BlockDevice, Slice};
use crate::formats::bitlocker::header::is_bitlocker;
use crate::formats::partition::{self, Partition, PartitionError, PartitionKind};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// A volume the walk found.
pub struct Found<'a> {
    /// Its position among the run's volumes (the first index given, counting up).
    pub index: usize,
    /// Where it is on the disk.
    pub partition: &'a Partition,
    /// How the screen names it: `disk 1 partition 3 (500 MiB)`.
    pub name: &'a str,
    /// True for a BitLocker volume.
    pub bitlocker: bool,
    /// The volume to read (and write): a plain partition or an unlocked
    /// BitLocker volume; or why it cannot be read.
    pub volume: Result<&'a mut dyn BlockDevice, Closed<'a>>,
}

/// Why a volume the walk found cannot be read.
#[derive(Clone, Copy, Debug)]
pub enum Closed<'a> {
    /// A BitLocker volume that stayed locked, and why.
    Locked(&'a str),
    /// Its first sector could not be read (the device's error).
    Unreadable(&'a str),
}

/// What the walk saw of a disk besides its volumes.
#[derive(Debug, Default)]
pub struct Walked {
    /// `"gpt"`, `"mbr"` or `"none"`.
    pub table: &'static str,
    /// The BitLocker volumes, unlocked or not.
    pub bitlocker: Vec<BitLockerReport>,
    /// Volumes found (the next index is the first index plus this).
    pub count: usize,
    /// Writes to an unlocked volume that could not be flushed.
    pub errors: Vec<String>,
}

/// Walks the volumes of disk number `disk_no` (1-based), numbering them
/// from `first_index`, and hands each to `visit` with the console. Other
/// partitions (the ESP, recovery tools, unknown) are skipped. An error
/// means the partition table could not be read.
pub fn walk<D: BlockDevice>(
    dev: &mut D,
    disk_no: usize,
    first_index: usize,
    u: &mut Unlocker<'_>,
    visit: &mut dyn FnMut(Found<'_>, &mut dyn Console),
) -> Result<Walked, PartitionError> {
    let parts = partition::discover(dev)?;
    let mut walked = Walked {
        table: match parts.first().map(|p| &p.kind) {
            Some(PartitionKind::Gpt { .. }) => "gpt",
            Some(PartitionKind::Mbr { .. }) => "mbr",
            _ => "none",
        },
        ..Default::default()
    };
    for p in &parts {
        let mut vol = Slice::new(&mut *dev, p.offset, p.size);
        let mut head = [0u8; 512];
        if p.size < 512 {
            continue;
        }
        let index = first_index + walked.count;
        let name = format!("disk {disk_no} partition {} ({} MiB)", p.number, p.size >> 20);
        let what = format!("  partition {} ({} MiB)", p.number, p.size >> 20);
        let found = |volume, bitlocker| Found { index, partition: p, name: &name, bitlocker, volume };
        if let Err(e) = vol.read_at(0, &mut head) {
            let why = format!("{e}");
            u.console.line(&format!("{what}: cannot be read: {why}"));
            visit(found(Err(Closed::Unreadable(&why)), false), u.console);
            walked.count += 1;
            continue;
        }
        if is_bitlocker(&head) {
            u.console.line(&format!("{what}: BitLocker"));
            let mut br = BitLockerReport { volume: index, ..Default::default() };
            match unlock::open(&mut vol, &name, u, &mut br) {
                Ok(mut plain) => {
                    u.console.line(&format!("  unlocked: {}", br.unlocked_by.as_deref().unwrap_or("")));
                    visit(found(Ok(&mut plain), true), u.console);
                    if let Err(e) = plain.flush() {
                        walked.errors.push(format!("{name}: flushing writes failed: {e}"));
                    }
                }
                Err(why) => {
                    u.console.line(&format!("  left locked: {why}"));
                    visit(found(Err(Closed::Locked(&why)), true), u.console);
                    br.skipped = Some(why);
                }
            }
            walked.bitlocker.push(br);
        } else if head.get(3..11) == Some(b"NTFS    ") {
            visit(found(Ok(&mut vol), false), u.console);
        } else {
            continue;
        }
        walked.count += 1;
    }
    Ok(walked)
}
