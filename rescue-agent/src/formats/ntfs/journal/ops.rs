//! The page edits of NTFS's log operations, redo and undo alike: each takes
//! a page as NTFS sees it in memory (fixups undone) and changes it the way
//! Windows' restart does. Every offset and length comes from the log and is
//! checked against the page and the structure it lands in; a record that
//! does not fit is [`NtfsError::Corrupt`] and nothing is changed.

#![deny(clippy::indexing_slicing)]

use super::super::{corrupt, le16, le32, le64, put16, put32, put64, runs, NtfsError, Result};
use super::client::op;

/// What a page of the journal's target attribute is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PageKind {
    /// A `FILE` record of `$MFT`.
    Record,
    /// An `INDX` buffer of an `$INDEX_ALLOCATION`.
    Index,
    /// Any other non-resident data (bitmaps, `$Secure`, …).
    Data,
}

/// Which page kind an operation works on (`None`: it changes no page).
pub fn target(op_code: u16) -> Option<PageKind> {
    use op::*;
    match op_code {
        INIT_FRS | DEALLOC_FRS | WRITE_END_FRS | CREATE_ATTR | DELETE_ATTR | UPDATE_RESIDENT | UPDATE_MAPPING
        | SET_SIZES | ADD_ENTRY_ROOT | DEL_ENTRY_ROOT | SET_VCN_ROOT | UPDATE_NAME_ROOT | UPDATE_DATA_ROOT => {
            Some(PageKind::Record)
        }
        ADD_ENTRY_ALLOC | DEL_ENTRY_ALLOC | WRITE_END_INDEX | SET_VCN_ALLOC | UPDATE_NAME_ALLOC | UPDATE_DATA_ALLOC => {
            Some(PageKind::Index)
        }
        UPDATE_NONRESIDENT | SET_BITS | CLEAR_BITS => Some(PageKind::Data),
        ZERO_END_FRS => Some(PageKind::Record),
        _ => None,
    }
}

/// Operations that change nothing on a page (bookkeeping of the log itself).
pub fn is_bookkeeping(op_code: u16) -> bool {
    use op::*;
    matches!(
        op_code,
        NOOP | CLR
            | DELETE_DIRTY
            | HOT_FIX
            | END_TOP_LEVEL
            | PREPARE
            | COMMIT
            | FORGET
            | OPEN_NONRESIDENT
            | OPEN_ATTR_DUMP
            | NAMES_DUMP
            | DIRTY_PAGES_DUMP
            | TRANSACTIONS_DUMP
    )
}

/// Where an operation lands and with what.
pub struct Edit<'a> {
    /// The operation.
    pub op: u16,
    /// The record's offset in the page.
    pub roff: usize,
    /// The offset within that record.
    pub aoff: usize,
    /// The operation's data.
    pub data: &'a [u8],
    /// The length of the record's other data (undo data for a redo, redo data for an undo):
    /// equal lengths mean an update in place.
    pub other_len: usize,
    /// Byte position of the page on the volume (for errors).
    pub at: u64,
}

const FRS_USED: usize = 0x18;
const FRS_ALLOCATED: usize = 0x1C;
const FRS_FLAGS: usize = 0x16;
const FRS_LINKS: usize = 0x12;
const FRS_NEXT_ID: usize = 0x28;
/// Resident attribute flag: the attribute is indexed (a `$FILE_NAME`, one hard link).
const RESIDENT_INDEXED: u8 = 0x01;
/// Offset of the index header in an `INDX` buffer.
const INDX_HEADER: usize = 0x18;

fn bad(e: &Edit, detail: &'static str) -> NtfsError {
    corrupt("$LogFile operation target", e.at + e.roff as u64, detail)
}

fn get32(p: &[u8], o: usize, e: &Edit) -> Result<u32> {
    le32(p, o).ok_or(bad(e, "field outside the page"))
}

/// Moves `p[from..end]` to start at `to` (within `limit`), as a record grows or shrinks.
fn shift(p: &mut [u8], from: usize, end: usize, to: usize, limit: usize, e: &Edit) -> Result<()> {
    if from > end || end > limit || to + (end - from) > limit || limit > p.len() {
        return Err(bad(e, "a change does not fit in its page"));
    }
    p.copy_within(from..end, to);
    Ok(())
}

fn copy_in(p: &mut [u8], at: usize, data: &[u8], limit: usize, e: &Edit) -> Result<()> {
    let end = at.checked_add(data.len()).ok_or(bad(e, "offset overflows"))?;
    if end > limit {
        return Err(bad(e, "data runs past its structure"));
    }
    p.get_mut(at..end).ok_or(bad(e, "data runs past the page"))?.copy_from_slice(data);
    Ok(())
}

/// The record's used size, checked against the page.
fn used(p: &[u8], e: &Edit) -> Result<usize> {
    let u = get32(p, FRS_USED, e)? as usize;
    let alloc = get32(p, FRS_ALLOCATED, e)? as usize;
    if u > p.len() || alloc != p.len() || u < 0x30 {
        return Err(bad(e, "record's used size out of range"));
    }
    Ok(u)
}

/// The attribute at `roff` of a record: (its length), checked to lie within the used part.
fn attr_len(p: &[u8], e: &Edit, used: usize) -> Result<usize> {
    let l = get32(p, e.roff + 4, e)? as usize;
    if e.roff < 0x18 || l < 0x18 || l % 8 != 0 || e.roff + l > used {
        return Err(bad(e, "attribute length out of range"));
    }
    Ok(l)
}

/// Grows (or shrinks) the attribute at `roff` from `old` to `new` bytes, moving what follows.
fn resize_attr(p: &mut [u8], e: &Edit, used: usize, old: usize, new: usize) -> Result<()> {
    let limit = p.len();
    if used - old + new > limit {
        return Err(bad(e, "record has no room for the change"));
    }
    shift(p, e.roff + old, used, e.roff + new, limit, e)?;
    put32(p, e.roff + 4, new as u32)?;
    put32(p, FRS_USED, (used - old + new) as u32)?;
    Ok(())
}

/// True for the attribute starting `a` when it is resident and indexed (a `$FILE_NAME`: one hard link).
fn is_indexed(a: &[u8]) -> bool {
    a.get(8) == Some(&0) && a.get(0x16).is_some_and(|f| f & RESIDENT_INDEXED != 0)
}

/// An index entry's length at `at`, checked to lie within `end`.
fn entry_len(p: &[u8], at: usize, end: usize, e: &Edit) -> Result<usize> {
    let l = le16(p, at + 8).ok_or(bad(e, "index entry outside the page"))? as usize;
    if l < 0x10 || l % 8 != 0 || at + l > end {
        return Err(bad(e, "index entry length out of range"));
    }
    Ok(l)
}

/// Applies one operation to `p`.
pub fn apply(kind: PageKind, p: &mut [u8], e: &Edit) -> Result<()> {
    use op::*;
    match (kind, e.op) {
        (PageKind::Record, INIT_FRS) => {
            // The record's header and attributes up to the end marker; the rest stays as it was.
            let limit = p.len();
            copy_in(p, e.roff + e.aoff, e.data, limit, e)?;
            let f = le16(p, FRS_FLAGS).ok_or(bad(e, "short record"))?;
            put16(p, FRS_FLAGS, f | 1)?;
            Ok(())
        }
        (PageKind::Record, DEALLOC_FRS) => {
            let f = le16(p, FRS_FLAGS).ok_or(bad(e, "short record"))?;
            put16(p, FRS_FLAGS, f & !1)?;
            Ok(())
        }
        (PageKind::Record, WRITE_END_FRS) => {
            used(p, e)?;
            let at = e.roff + e.aoff;
            let limit = p.len();
            copy_in(p, at, e.data, limit, e)?;
            put32(p, FRS_USED, ((at + e.data.len() + 7) & !7) as u32)?;
            Ok(())
        }
        (PageKind::Record, ZERO_END_FRS) => {
            let at = e.roff + e.aoff;
            let end =
                at.checked_add(e.data.len()).filter(|&x| x <= p.len()).ok_or(bad(e, "zeroing runs past the record"))?;
            p.get_mut(at..end).ok_or(bad(e, "zeroing runs past the record"))?.fill(0);
            Ok(())
        }
        (PageKind::Record, CREATE_ATTR) => {
            let u = used(p, e)?;
            let l = le32(e.data, 4).unwrap_or(0) as usize;
            if l > e.data.len() || l < 0x18 || l % 8 != 0 || e.roff < 0x18 || e.roff > u || u + l > p.len() {
                return Err(bad(e, "attribute to create does not fit"));
            }
            let limit = p.len();
            shift(p, e.roff, u, e.roff + l, limit, e)?;
            copy_in(p, e.roff, e.data.get(..l).unwrap_or_default(), limit, e)?;
            put32(p, FRS_USED, (u + l) as u32)?;
            let id = le16(e.data, 0x0E).unwrap_or(0);
            if id >= le16(p, FRS_NEXT_ID).unwrap_or(0) {
                put16(p, FRS_NEXT_ID, id.wrapping_add(1))?;
            }
            if is_indexed(e.data) {
                let links = le16(p, FRS_LINKS).unwrap_or(0);
                put16(p, FRS_LINKS, links.wrapping_add(1))?;
            }
            Ok(())
        }
        (PageKind::Record, DELETE_ATTR) => {
            let u = used(p, e)?;
            let l = attr_len(p, e, u)?;
            let indexed = is_indexed(p.get(e.roff..).unwrap_or_default());
            let limit = p.len();
            shift(p, e.roff + l, u, e.roff, limit, e)?;
            put32(p, FRS_USED, (u - l) as u32)?;
            if indexed {
                let links = le16(p, FRS_LINKS).unwrap_or(0);
                put16(p, FRS_LINKS, links.saturating_sub(1))?;
            }
            Ok(())
        }
        (PageKind::Record, UPDATE_RESIDENT) => {
            let u = used(p, e)?;
            let asize = attr_len(p, e, u)?;
            let end = e.aoff + e.data.len();
            let vo = le16(p, e.roff + 0x14).ok_or(bad(e, "short attribute"))? as usize;
            if e.aoff < vo || p.get(e.roff + 8) != Some(&0) {
                return Err(bad(e, "update lands outside a resident value"));
            }
            if e.data.len() != e.other_len {
                // The value is cut or extended to end exactly at aoff + dlen.
                let nsize = (end + 7) & !7;
                resize_attr(p, e, u, asize, nsize)?;
                put32(p, e.roff + 0x10, (end - vo) as u32)?;
            }
            let lim = e.roff + get32(p, e.roff + 4, e)? as usize;
            copy_in(p, e.roff + e.aoff, e.data, lim, e)
        }
        (PageKind::Record, UPDATE_MAPPING) => {
            let u = used(p, e)?;
            let asize = attr_len(p, e, u)?;
            let nsize = (e.aoff + e.data.len() + 7) & !7;
            let pairs_at = le16(p, e.roff + 0x20).unwrap_or(0) as usize;
            if p.get(e.roff + 8) != Some(&1) || e.aoff < pairs_at || pairs_at < 0x40 {
                return Err(bad(e, "mapping pairs land outside a non-resident attribute's runs"));
            }
            resize_attr(p, e, u, asize, nsize)?;
            let lim = e.roff + nsize;
            copy_in(p, e.roff + e.aoff, e.data, lim, e)?;
            // highest_vcn follows the runs.
            let lowest = le64(p, e.roff + 0x10).unwrap_or(0);
            let pairs = p.get(e.roff + pairs_at..lim).unwrap_or_default();
            let runs =
                runs::decode(pairs, lowest, u64::MAX >> 8, e.at).map_err(|_| bad(e, "mapping pairs do not decode"))?;
            let highest = runs.last().map_or(lowest.wrapping_sub(1), |r| r.vcn + r.len - 1);
            put64(p, e.roff + 0x18, highest)?;
            Ok(())
        }
        (PageKind::Record, SET_SIZES) => {
            // NEW_ATTRIBUTE_SIZES: allocated, valid, data size, then (if logged) total allocated;
            // the attribute header keeps allocated, data, valid, total.
            let u = used(p, e)?;
            let asize = attr_len(p, e, u)?;
            if p.get(e.roff + 8) != Some(&1) || e.data.len() < 0x18 {
                return Err(bad(e, "new sizes for a resident attribute"));
            }
            let g = |o| le64(e.data, o).unwrap_or(0);
            put64(p, e.roff + 0x28, g(0))?;
            put64(p, e.roff + 0x38, g(8))?;
            put64(p, e.roff + 0x30, g(0x10))?;
            if e.data.len() >= 0x20 && asize >= 0x48 {
                put64(p, e.roff + 0x40, g(0x18))?;
            }
            Ok(())
        }
        (PageKind::Record, ADD_ENTRY_ROOT | DEL_ENTRY_ROOT) => {
            let u = used(p, e)?;
            let asize = attr_len(p, e, u)?;
            let vo = le16(p, e.roff + 0x14).ok_or(bad(e, "short attribute"))? as usize;
            let ih = e.roff + vo + 0x10;
            let ih_used = get32(p, ih + 4, e)? as usize;
            let at = e.roff + e.aoff;
            if at < ih + 0x10 || at > ih + ih_used || ih + ih_used > e.roff + asize {
                return Err(bad(e, "index entry outside $INDEX_ROOT"));
            }
            let vlen = get32(p, e.roff + 0x10, e)? as usize;
            let ih_alloc = get32(p, ih + 8, e)? as usize;
            let grow = |p: &mut [u8], by: isize| -> Result<()> {
                put32(p, e.roff + 0x10, (vlen as isize + by) as u32)?;
                put32(p, ih + 4, (ih_used as isize + by) as u32)?;
                put32(p, ih + 8, (ih_alloc as isize + by) as u32)?;
                Ok(())
            };
            if e.op == ADD_ENTRY_ROOT {
                let l = entry_len(e.data, 0, e.data.len(), e)?;
                resize_attr(p, e, u, asize, asize + l)?;
                // resize_attr moved everything after the attribute; now open the gap inside it.
                let limit = e.roff + asize + l;
                shift(p, at, e.roff + asize, at + l, limit, e)?;
                copy_in(p, at, e.data.get(..l).unwrap_or_default(), limit, e)?;
                grow(p, l as isize)
            } else {
                let l = entry_len(p, at, ih + ih_used, e)?;
                let limit = e.roff + asize;
                shift(p, at + l, limit, at, limit, e)?;
                resize_attr(p, e, u, asize, asize - l)?;
                grow(p, -(l as isize))
            }
        }
        (PageKind::Index, ADD_ENTRY_ALLOC | DEL_ENTRY_ALLOC | WRITE_END_INDEX) => {
            let ih = e.roff + INDX_HEADER;
            let ih_used = get32(p, ih + 4, e)? as usize;
            let ih_alloc = get32(p, ih + 8, e)? as usize;
            let end = ih + ih_used;
            let limit = ih + ih_alloc;
            let at = e.roff + e.aoff;
            if limit > p.len() || end > limit || at < ih + 0x10 || at > end {
                return Err(bad(e, "index entry outside its index buffer"));
            }
            match e.op {
                ADD_ENTRY_ALLOC => {
                    let l = entry_len(e.data, 0, e.data.len(), e)?;
                    if end + l > limit {
                        return Err(bad(e, "index buffer has no room for the entry"));
                    }
                    shift(p, at, end, at + l, limit, e)?;
                    copy_in(p, at, e.data.get(..l).unwrap_or_default(), limit, e)?;
                    put32(p, ih + 4, (ih_used + l) as u32)?;
                }
                DEL_ENTRY_ALLOC => {
                    let l = entry_len(p, at, end, e)?;
                    shift(p, at + l, end, at, limit, e)?;
                    put32(p, ih + 4, (ih_used - l) as u32)?;
                }
                _ => {
                    copy_in(p, at, e.data, limit, e)?;
                    put32(p, ih + 4, (at + e.data.len() - ih) as u32)?;
                }
            }
            Ok(())
        }
        (PageKind::Record | PageKind::Index, SET_VCN_ROOT | SET_VCN_ALLOC) => {
            let at = e.roff + e.aoff;
            let l = entry_len(p, at, p.len(), e)?;
            let vcn = le64(e.data, 0).ok_or(bad(e, "short VCN"))?;
            put64(p, at + l - 8, vcn)?;
            Ok(())
        }
        (PageKind::Record | PageKind::Index, UPDATE_NAME_ROOT | UPDATE_NAME_ALLOC) => {
            let at = e.roff + e.aoff;
            let l = entry_len(p, at, p.len(), e)?;
            copy_in(p, at + 0x18, e.data, at + l, e)
        }
        (PageKind::Record | PageKind::Index, UPDATE_DATA_ROOT | UPDATE_DATA_ALLOC) => {
            let at = e.roff + e.aoff;
            let l = entry_len(p, at, p.len(), e)?;
            let d = le16(p, at).ok_or(bad(e, "short entry"))? as usize;
            copy_in(p, at + d, e.data, at + l, e)
        }
        (_, UPDATE_NONRESIDENT) => {
            let limit = p.len();
            copy_in(p, e.roff + e.aoff, e.data, limit, e)
        }
        (PageKind::Data, SET_BITS | CLEAR_BITS) => {
            let first = le32(e.data, 0).ok_or(bad(e, "short bitmap range"))? as usize;
            let count = le32(e.data, 4).ok_or(bad(e, "short bitmap range"))? as usize;
            let base = e.roff;
            let last = first.checked_add(count).ok_or(bad(e, "bitmap range overflows"))?;
            if base.checked_add(last.div_ceil(8)).is_none_or(|x| x > p.len()) {
                return Err(bad(e, "bitmap range runs past its page"));
            }
            for bit in first..last {
                let b = p.get_mut(base + bit / 8).ok_or(bad(e, "bitmap range runs past its page"))?;
                if e.op == SET_BITS {
                    *b |= 1 << (bit % 8);
                } else {
                    *b &= !(1 << (bit % 8));
                }
            }
            Ok(())
        }
        _ => Err(bad(e, "operation does not apply to this kind of page")),
    }
}
