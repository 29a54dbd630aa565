//! Attribute headers inside an MFT record (resident and non-resident).

#![deny(clippy::indexing_slicing)]

use super::runs::{self, Run};
use super::{byte, corrupt, le16, le32, le64, Result};
use alloc::vec::Vec;

/// Attribute type `$STANDARD_INFORMATION`: timestamps and DOS attribute flags.
pub const STANDARD_INFORMATION: u32 = 0x10;
/// Attribute type `$ATTRIBUTE_LIST`: where a file's attributes lie when they
/// span extension records.
pub const ATTRIBUTE_LIST: u32 = 0x20;
/// Attribute type `$FILE_NAME`: one name of the file and its parent directory.
pub const FILE_NAME: u32 = 0x30;
/// Attribute type `$OBJECT_ID`: the file's object GUID (indexed in `$Extend\$ObjId`).
pub const OBJECT_ID: u32 = 0x40;
/// Attribute type `$VOLUME_INFORMATION` (record 3 only): NTFS version and volume flags.
pub const VOLUME_INFORMATION: u32 = 0x70;
/// Attribute type `$DATA`: a file's contents (unnamed) or an alternate stream (named).
pub const DATA: u32 = 0x80;
/// Attribute type `$INDEX_ROOT`: the root node of an index, always resident.
pub const INDEX_ROOT: u32 = 0x90;
/// Attribute type `$INDEX_ALLOCATION`: the index blocks below the root.
pub const INDEX_ALLOCATION: u32 = 0xA0;
/// Attribute type `$BITMAP`: which index blocks (or MFT records, for `$MFT`) are in use.
pub const BITMAP: u32 = 0xB0;
/// Attribute type `$REPARSE_POINT`: a symbolic link, junction or other reparse data.
pub const REPARSE_POINT: u32 = 0xC0;
/// `$LOGGED_UTILITY_STREAM`: EFS key data (`$EFS`) or Transactional NTFS state (`$TXF_DATA`).
pub const LOGGED_UTILITY_STREAM: u32 = 0x100;
/// Type code marking the end of a record's attributes.
pub const END: u32 = 0xFFFF_FFFF;

/// Attribute flags.
pub const FLAG_COMPRESSED: u16 = 0x00FF;
/// Attribute flag: the value is EFS-encrypted.
pub const FLAG_ENCRYPTED: u16 = 0x4000;
/// Attribute flag: the value is sparse (runs may have no clusters).
pub const FLAG_SPARSE: u16 = 0x8000;

/// Where an attribute's value lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Form {
    /// Inside the record at `value_offset` (from the record start), `value_len` bytes.
    Resident {
        /// Byte offset of the value from the start of the record.
        value_offset: usize,
        /// Length of the value in bytes.
        value_len: usize,
    },
    /// In clusters.
    NonResident {
        /// First virtual cluster this header maps (non-zero in an extension record's piece).
        lowest_vcn: u64,
        /// Last virtual cluster this header maps (`u64::MAX`, i.e. -1, for an empty value).
        highest_vcn: u64,
        /// The decoded data runs, covering `lowest_vcn..=highest_vcn`.
        runs: Vec<Run>,
        /// Bytes allocated to the value (whole clusters); meaningful in the first piece only.
        allocated: u64,
        /// Length of the value in bytes; meaningful in the first piece only.
        data_size: u64,
        /// Bytes of the value written so far (the rest reads as zeros); meaningful in the first piece only.
        initialized: u64,
        /// Compression unit as a power of two of clusters (header byte 0x22;
        /// 4, i.e. 16 clusters, on compressed values; 0 otherwise).
        compression_unit: u8,
    },
}

/// One validated attribute header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    /// Attribute type (one of the constants above), header bytes 0–3.
    pub type_code: u32,
    /// Offset of the header in the record, and its length.
    pub offset: usize,
    /// Length of the whole attribute in bytes, header included (header bytes 4–7).
    pub length: usize,
    /// Attribute name in UTF-16 units (empty for the unnamed attribute).
    pub name: Vec<u16>,
    /// Attribute flags, header bytes 0x0C–0x0D ([`FLAG_COMPRESSED`] and the like).
    pub flags: u16,
    /// Attribute instance number, unique within its record (header bytes 0x0E–0x0F).
    pub instance: u16,
    /// Resident or non-resident, with the fields of that form.
    pub form: Form,
}

impl Attr {
    /// The resident value inside the bytes of its record (None when non-resident).
    pub fn value<'a>(&self, record: &'a [u8]) -> Option<&'a [u8]> {
        match self.form {
            Form::Resident { value_offset, value_len } => record.get(value_offset..value_offset + value_len),
            _ => None,
        }
    }
    /// True when the attribute's name is exactly `name` (UTF-16 units, case-sensitive;
    /// an empty `name` matches the unnamed attribute).
    pub fn is_named(&self, name: &[u16]) -> bool {
        self.name == name
    }
}

/// Parses all attributes of a record's bytes `d` (at byte `offset` on the
/// volume; attributes start at `first`, `used` bytes are in use).
/// Guarantees: each header lies inside the bytes in use, is 8-aligned, and
/// the walk ends at the end marker.
pub fn parse_attrs(d: &[u8], offset: u64, first: usize, used: usize, total_clusters: u64) -> Result<Vec<Attr>> {
    let mut o = first;
    let mut out = Vec::new();
    let at = |o: usize| offset + o as u64;
    loop {
        let t = le32(d, o).ok_or(corrupt("attribute", at(o), "past the record"))?;
        if t == END {
            return Ok(out);
        }
        let len = le32(d, o + 4).ok_or(corrupt("attribute", at(o), "short"))? as usize;
        if len < 0x18 || len % 8 != 0 || o.checked_add(len).is_none_or(|e| e + 4 > used) {
            return Err(corrupt("attribute", at(o), "length out of range"));
        }
        let a = d.get(o..o + len).ok_or(corrupt("attribute", at(o), "length out of range"))?;
        let short = || corrupt("attribute", at(o), "short");
        let nonres = byte(a, 8).ok_or_else(short)?;
        let name_len = byte(a, 9).ok_or_else(short)? as usize;
        let name_off = le16(a, 0x0A).unwrap_or(0) as usize;
        let flags = le16(a, 0x0C).unwrap_or(0);
        let instance = le16(a, 0x0E).unwrap_or(0);
        let name = if name_len == 0 {
            Vec::new()
        } else {
            let nb = a.get(name_off..name_off + 2 * name_len).ok_or(corrupt(
                "attribute",
                at(o),
                "name outside the attribute",
            ))?;
            nb.chunks_exact(2).filter_map(|c| le16(c, 0)).collect()
        };
        let form = match nonres {
            0 => {
                let vl = le32(a, 0x10).unwrap_or(u32::MAX) as usize;
                let vo = le16(a, 0x14).unwrap_or(0) as usize;
                if vo.checked_add(vl).is_none_or(|e| e > len) || (vl > 0 && vo < 0x18) {
                    return Err(corrupt("attribute", at(o), "resident value outside the attribute"));
                }
                Form::Resident { value_offset: o + vo, value_len: vl }
            }
            1 => {
                if len < 0x40 {
                    return Err(corrupt("attribute", at(o), "non-resident header too short"));
                }
                let lowest_vcn = le64(a, 0x10).unwrap_or(0);
                let highest_vcn = le64(a, 0x18).unwrap_or(0);
                let mp = le16(a, 0x20).unwrap_or(0) as usize;
                let allocated = le64(a, 0x28).unwrap_or(0);
                let data_size = le64(a, 0x30).unwrap_or(0);
                let initialized = le64(a, 0x38).unwrap_or(0);
                let compression_unit = byte(a, 0x22).ok_or_else(short)?;
                if compression_unit > 8 {
                    return Err(corrupt("attribute", at(o + 0x22), "compression unit out of range"));
                }
                if mp < 0x40 || mp >= len {
                    return Err(corrupt("attribute", at(o), "mapping pairs outside the attribute"));
                }
                let pairs = a.get(mp..).ok_or(corrupt("attribute", at(o), "mapping pairs outside the attribute"))?;
                let runs = runs::decode(pairs, lowest_vcn, total_clusters, at(o + mp))?;
                let covered = runs.last().map_or(lowest_vcn, |r| r.vcn + r.len);
                let expect_end = highest_vcn.wrapping_add(1);
                if covered != expect_end && !(runs.is_empty() && highest_vcn == u64::MAX) {
                    return Err(corrupt("attribute", at(o + 0x18), "runs do not cover lowest..highest VCN"));
                }
                if initialized > data_size || (lowest_vcn == 0 && data_size > allocated) {
                    return Err(corrupt("attribute", at(o + 0x30), "sizes inconsistent"));
                }
                Form::NonResident { lowest_vcn, highest_vcn, runs, allocated, data_size, initialized, compression_unit }
            }
            _ => return Err(corrupt("attribute", at(o + 8), "non-resident flag not 0 or 1")),
        };
        out.push(Attr { type_code: t, offset: o, length: len, name, flags, instance, form });
        o += len;
    }
}
