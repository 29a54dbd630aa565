//! `$ATTRIBUTE_LIST`: where the attributes of a file spread over extension records live.

#![deny(clippy::indexing_slicing)]

use super::{byte, corrupt, le16, le32, le64, FileRef, Result};
use alloc::vec::Vec;

/// One attribute list entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    /// Type of the attribute listed (entry bytes 0–3).
    pub type_code: u32,
    /// First virtual cluster of the piece listed (0 for resident attributes), entry bytes 8–15.
    pub lowest_vcn: u64,
    /// File reference of the record holding the attribute.
    pub record_ref: FileRef,
    /// Name of the attribute listed, in UTF-16 units (empty when unnamed).
    pub name: Vec<u16>,
    /// Instance (attribute id) of the attribute listed, entry bytes 0x18–0x19.
    pub instance: u16,
    /// Byte offset of the entry in the list, and its length.
    pub at: (usize, usize),
}

/// Parses an attribute list value; zeros after the last entry end it.
/// Bounded by `b.len()` (each entry is at least 0x1A bytes).
pub fn parse(b: &[u8], offset: u64) -> Result<Vec<ListEntry>> {
    let mut out = Vec::new();
    let mut o = 0usize;
    // Zeros after the last entry end the list (an interrupted shrink leaves them).
    while o + 0x1A <= b.len() {
        let short = || corrupt("attribute list", offset + o as u64, "entry length out of range");
        let t = le32(b, o).ok_or_else(short)?;
        if t == 0 && b.iter().skip(o).all(|&x| x == 0) {
            break;
        }
        let len = le16(b, o + 4).unwrap_or(0) as usize;
        if len < 0x1A || o + len > b.len() {
            return Err(corrupt("attribute list", offset + o as u64, "entry length out of range"));
        }
        let nl = byte(b, o + 6).ok_or_else(short)? as usize;
        let no = byte(b, o + 7).ok_or_else(short)? as usize;
        let name = if nl == 0 {
            Vec::new()
        } else {
            let nb = b.get(o + no..o + no + 2 * nl).filter(|_| no + 2 * nl <= len).ok_or(corrupt(
                "attribute list",
                offset + o as u64,
                "name outside the entry",
            ))?;
            nb.chunks_exact(2).filter_map(|c| le16(c, 0)).collect()
        };
        out.push(ListEntry {
            type_code: t,
            lowest_vcn: le64(b, o + 8).unwrap_or(0),
            record_ref: FileRef(le64(b, o + 0x10).unwrap_or(0)),
            name,
            instance: le16(b, o + 0x18).unwrap_or(0),
            at: (o, len),
        });
        o += len;
    }
    if b.iter().skip(o).any(|&x| x != 0) {
        return Err(corrupt("attribute list", offset + o as u64, "trailing bytes"));
    }
    Ok(out)
}
