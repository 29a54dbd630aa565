//! `$Volume` (flags, version) and the hibernation check on `hiberfil.sys`.

#![deny(clippy::indexing_slicing)]

use super::attr::VOLUME_INFORMATION;
use super::fs::{Ntfs, VOLUME};
use super::record::Record;
use super::{byte, corrupt, le16, FileRef, NtfsError, Result};
use crate::block::BlockDevice;

/// `$VOLUME_INFORMATION` flag: chkdsk must run at the next mount.
pub const VOLUME_IS_DIRTY: u16 = 0x0001;

/// Version and flags of a volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VolumeInfo {
    /// NTFS major version (3 for every Windows since 2000), value byte 8.
    pub major: u8,
    /// NTFS minor version (1 since Windows XP), value byte 9.
    pub minor: u8,
    /// Volume flags (value bytes 10–11), e.g. [`VOLUME_IS_DIRTY`].
    pub flags: u16,
    /// Offset of the flags field in record 3.
    pub flags_at: usize,
}

/// Reads `$VOLUME_INFORMATION` of record 3.
pub fn info(v: &Ntfs, rec: &Record) -> Result<VolumeInfo> {
    let attrs = rec.attrs(v.boot.total_clusters)?;
    let a = attrs.iter().find(|a| a.type_code == VOLUME_INFORMATION).ok_or(corrupt(
        "$Volume",
        rec.offset,
        "no $VOLUME_INFORMATION",
    ))?;
    let super::attr::Form::Resident { value_offset, value_len } = a.form else {
        return Err(corrupt("$VOLUME_INFORMATION", rec.offset, "not resident"));
    };
    if value_len < 12 {
        return Err(corrupt("$VOLUME_INFORMATION", rec.offset + value_offset as u64, "too short"));
    }
    let short = || corrupt("$VOLUME_INFORMATION", rec.offset + value_offset as u64, "outside its record");
    Ok(VolumeInfo {
        major: byte(&rec.data, value_offset + 8).ok_or_else(short)?,
        minor: byte(&rec.data, value_offset + 9).ok_or_else(short)?,
        flags: le16(&rec.data, value_offset + 10).unwrap_or(0),
        flags_at: value_offset + 10,
    })
}

/// Reads record 3 and its volume information.
pub fn read(v: &Ntfs, dev: &mut impl BlockDevice) -> Result<(Record, VolumeInfo)> {
    let r = v.read_record(dev, VOLUME)?;
    let i = info(v, &r)?;
    Ok((r, i))
}

/// The signatures Windows writes at the start of `hiberfil.sys` while the
/// file holds a session to resume, in any case, with what each means:
/// `hibr` a hibernation or Fast Startup image (`HIBR` since Windows 8),
/// `wake` a resume that did not finish (Windows offers to try again), `rstr`
/// a resume in progress. Each means Windows may still restore memory over
/// the volume, undoing (or tearing) whatever was written meanwhile.
const HIBERNATION_SIGNATURES: [(&[u8; 4], &str); 3] = [
    (b"hibr", "a hibernation or Fast Startup image"),
    (b"wake", "a resume from hibernation that did not finish"),
    (b"rstr", "a resume from hibernation in progress"),
];

/// Fails with [`NtfsError::Hibernated`] when `hiberfil.sys` in the root
/// starts with a hibernation signature ([`HIBERNATION_SIGNATURES`], any
/// case). A missing, short or zeroed (resumed, Windows 8 and later) file
/// passes, as does any other content.
pub fn check_hibernation(v: &Ntfs, dev: &mut impl BlockDevice) -> Result<()> {
    let root = v.open_dir(dev, FileRef::new(super::fs::ROOT, 0))?;
    let Some(r) = v.lookup_in(dev, &root, "hiberfil.sys")? else { return Ok(()) };
    let f = v.load_file(dev, r.record())?;
    let head = v.read_head(dev, &f, 4)?;
    match HIBERNATION_SIGNATURES.iter().find(|(sig, _)| head.eq_ignore_ascii_case(&sig[..])) {
        Some((_, state)) => Err(NtfsError::Hibernated { offset: f.base().offset, state }),
        None => Ok(()),
    }
}
