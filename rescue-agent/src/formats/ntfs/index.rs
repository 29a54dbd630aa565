//! Directory indexes: `$INDEX_ROOT` (the root node, resident), `INDX` blocks
//! of `$INDEX_ALLOCATION` (the other nodes), and the entries of a node.
//!
//! NTFS directories are B+ trees whose every entry (interior ones too) is a
//! real key: an entry with a sub-node points to the node of keys below it;
//! the last (END) entry carries no key and points to the node of keys above
//! all others. This module parses and edits one node in memory; walking the
//! tree lives in `fs`, planning the writes in `plan`.

#![deny(clippy::indexing_slicing)]

use super::filename::FileName;
use super::record::apply_fixups;
use super::{corrupt, le16, le32, le64, put16, put32, FileRef, Result};
use alloc::vec::Vec;

/// Entry flags.
pub const ENTRY_NODE: u16 = 0x01;
/// Entry flag: the last entry of its node, with no key.
pub const ENTRY_END: u16 = 0x02;
/// Node header flag: entries have sub-nodes.
pub const LARGE_INDEX: u8 = 0x01;
/// Offset of the index header inside an `INDX` block and inside an `$INDEX_ROOT` value.
pub const BLOCK_HEADER: usize = 0x18;
/// Offset of the index header inside an `$INDEX_ROOT` value (after the 16-byte root header).
pub const ROOT_HEADER: usize = 0x10;

/// One entry of a node, located in the node's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Offset of the entry in the node buffer, and its length.
    pub off: usize,
    /// Length of the entry in bytes (entry bytes 8–9), sub-node VCN included.
    pub len: usize,
    /// Entry flags (entry bytes 12–13): [`ENTRY_NODE`], [`ENTRY_END`].
    pub flags: u16,
    /// Reference of the file the entry names (entry bytes 0–7; meaningless for END
    /// entries and view indexes).
    pub file_ref: FileRef,
    /// The key (`None` for the END entry).
    pub key: Option<FileName>,
    /// VCN of the sub-node (when `ENTRY_NODE` is set).
    pub sub: Option<u64>,
    /// The key's bytes (for view indexes such as `$ObjId:$O`; empty for END).
    pub raw_key: Vec<u8>,
}

impl Entry {
    /// True for the END entry of a node (no key).
    pub fn is_end(&self) -> bool {
        self.flags & ENTRY_END != 0
    }
}

/// One node in memory: an `INDX` block (fixups undone) or an `$INDEX_ROOT` value.
#[derive(Clone, Debug)]
pub struct Node {
    /// The node's bytes: a whole `INDX` block with fixups undone, or the `$INDEX_ROOT` value.
    pub buf: Vec<u8>,
    /// Offset of the index header in `buf`.
    pub hdr: usize,
    /// True for the root (`$INDEX_ROOT` value).
    pub is_root: bool,
    /// Byte offset on the volume, for errors.
    pub offset: u64,
    /// A view index (keys are not `$FILE_NAME`s, e.g. `$ObjId:$O`).
    pub view: bool,
}

/// Parameters from an `$INDEX_ROOT` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootInfo {
    /// Type of the attribute indexed (0x30 `$FILE_NAME` for directories, 0 for view indexes).
    pub indexed_type: u32,
    /// Collation rule of the keys (1: file names via `$UpCase`; 0x13:
    /// sequences of 32-bit integers, as in `$ObjId:$O`).
    pub collation: u32,
    /// Bytes per index block of this index.
    pub block_size: u32,
}

impl Node {
    /// Wraps an `$INDEX_ROOT` value. Checks the header; entries are checked by [`Node::entries`].
    pub fn root(value: Vec<u8>, offset: u64) -> Result<(Node, RootInfo)> {
        if value.len() < ROOT_HEADER + 0x10 {
            return Err(corrupt("$INDEX_ROOT", offset, "shorter than its header"));
        }
        let info = RootInfo {
            indexed_type: le32(&value, 0).unwrap_or(0),
            collation: le32(&value, 4).unwrap_or(0),
            block_size: le32(&value, 8).unwrap_or(0),
        };
        let n = Node { buf: value, hdr: ROOT_HEADER, is_root: true, offset, view: false };
        n.check_header(n.buf.len())?;
        Ok((n, info))
    }

    /// Parses an `INDX` block read from `offset` for `vcn`: signature,
    /// fixups, VCN, header bounds.
    pub fn block(mut raw: Vec<u8>, vcn: u64, offset: u64) -> Result<Node> {
        if raw.get(0..4) != Some(b"INDX") {
            return Err(corrupt("index block", offset, "no INDX signature"));
        }
        apply_fixups(&mut raw, "index block", offset)?;
        if le64(&raw, 0x10) != Some(vcn) {
            return Err(corrupt("index block", offset + 0x10, "VCN field does not match its position"));
        }
        let n = Node { buf: raw, hdr: BLOCK_HEADER, is_root: false, offset, view: false };
        let alloc = le32(&n.buf, n.hdr + 8).unwrap_or(0) as usize;
        if n.hdr + alloc > n.buf.len() {
            return Err(corrupt("index block", offset + 0x20, "allocated size beyond the block"));
        }
        n.check_header(n.hdr + alloc)?;
        Ok(n)
    }

    fn check_header(&self, limit: usize) -> Result<()> {
        let eo = self.entries_offset();
        let il = self.index_length();
        if eo < 0x10 || eo % 8 != 0 || il < eo || self.hdr + il > limit {
            return Err(corrupt(self.structure(), self.offset + self.hdr as u64, "index header offsets out of range"));
        }
        Ok(())
    }

    /// Name of the node for errors: `"$INDEX_ROOT"` or `"index block"`.
    pub fn structure(&self) -> &'static str {
        if self.is_root {
            "$INDEX_ROOT"
        } else {
            "index block"
        }
    }
    /// Offset of the first entry, from the index header (header bytes 0–3).
    pub fn entries_offset(&self) -> usize {
        le32(&self.buf, self.hdr).unwrap_or(0) as usize
    }
    /// Bytes in use, from the index header to the end of the END entry (header bytes 4–7).
    pub fn index_length(&self) -> usize {
        le32(&self.buf, self.hdr + 4).unwrap_or(0) as usize
    }
    /// Bytes the node may use, from the index header (header bytes 8–11).
    pub fn allocated(&self) -> usize {
        le32(&self.buf, self.hdr + 8).unwrap_or(0) as usize
    }
    /// True when the node's entries have sub-nodes.
    pub fn is_large(&self) -> bool {
        self.buf.get(self.hdr + 12).is_some_and(|f| f & LARGE_INDEX != 0)
    }
    /// Sets whether the node's entries have sub-nodes (in memory).
    pub fn set_large(&mut self, large: bool) {
        if let Some(f) = self.buf.get_mut(self.hdr + 12) {
            *f = if large { *f | LARGE_INDEX } else { *f & !LARGE_INDEX };
        }
    }

    /// Parses the node's entries. Guarantees: entries lie inside the used
    /// area, the last one is the END entry, every entry agrees with the
    /// header on having a sub-node, and keys parse as `$FILE_NAME` values.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let s = self.structure();
        let end = self.hdr + self.index_length();
        let mut o = self.hdr + self.entries_offset();
        let large = self.is_large();
        let mut out = Vec::new();
        loop {
            let at = self.offset + o as u64;
            if o + 0x10 > end {
                return Err(corrupt(s, at, "entries run past the node without an END entry"));
            }
            let len = le16(&self.buf, o + 8).unwrap_or(0) as usize;
            let key_len = le16(&self.buf, o + 10).unwrap_or(0) as usize;
            let flags = le16(&self.buf, o + 12).unwrap_or(0);
            if len < 0x10 || len % 8 != 0 || o + len > end {
                return Err(corrupt(s, at, "entry length out of range"));
            }
            let node = flags & ENTRY_NODE != 0;
            if node != large {
                return Err(corrupt(s, at, "entry sub-node flag disagrees with the node header"));
            }
            if node && len < 0x18 {
                return Err(corrupt(s, at, "interior entry too short for its sub-node"));
            }
            let room = len - 0x10 - if node { 8 } else { 0 };
            if key_len > room {
                return Err(corrupt(s, at, "key longer than its entry"));
            }
            let sub = if node { Some(le64(&self.buf, o + len - 8).unwrap_or(0)) } else { None };
            let is_end = flags & ENTRY_END != 0;
            let key_bytes = self.buf.get(o + 0x10..o + 0x10 + key_len).ok_or(corrupt(s, at, "key outside the node"))?;
            let key = if is_end || self.view {
                None
            } else {
                if key_len < 0x42 {
                    return Err(corrupt(s, at, "entry key shorter than a $FILE_NAME"));
                }
                Some(FileName::parse(key_bytes, at + 0x10)?)
            };
            let raw_key = if is_end { Vec::new() } else { key_bytes.to_vec() };
            out.push(Entry {
                off: o,
                len,
                flags,
                file_ref: FileRef(le64(&self.buf, o).unwrap_or(0)),
                key,
                sub,
                raw_key,
            });
            if is_end {
                return Ok(out);
            }
            o += len;
        }
    }

    /// Replaces `remove` bytes at `at` (an entry boundary) with `insert`,
    /// moving the following entries, and updates the index length. For a
    /// block, fails with [`super::NtfsError::NoSpace`] when the result does
    /// not fit the block's allocated size; for the root, the buffer grows or
    /// shrinks (the caller resizes the attribute and checks the record).
    pub fn splice(&mut self, at: usize, remove: usize, insert: &[u8]) -> Result<()> {
        let used_end = self.hdr + self.index_length();
        if at + remove > used_end || at < self.hdr + self.entries_offset() {
            return Err(corrupt(self.structure(), self.offset, "edit outside the node"));
        }
        let (structure, offset) = (self.structure(), self.offset);
        let outside = move || corrupt(structure, offset, "edit outside the node");
        let (head, tail) = match (self.buf.get(..at), self.buf.get(at + remove..used_end)) {
            (Some(h), Some(t)) => (h, t.to_vec()),
            _ => return Err(outside()),
        };
        let new_len = self.index_length() - remove + insert.len();
        if self.is_root {
            let mut v = Vec::with_capacity(self.hdr + new_len);
            v.extend_from_slice(head);
            v.extend_from_slice(insert);
            v.extend_from_slice(&tail);
            self.buf = v;
            put32(&mut self.buf, self.hdr + 4, new_len as u32)?;
            put32(&mut self.buf, self.hdr + 8, new_len as u32)?;
        } else {
            if new_len > self.allocated() {
                return Err(super::NtfsError::NoSpace { structure: "index block", offset: self.offset });
            }
            let moved = self.buf.get_mut(at..at + insert.len() + tail.len()).ok_or_else(outside)?;
            let (ins, rest) = moved.split_at_mut(insert.len());
            ins.copy_from_slice(insert);
            rest.copy_from_slice(&tail);
            let new_end = self.hdr + new_len;
            if let Some(freed) = self.buf.get_mut(new_end..used_end) {
                freed.fill(0);
            }
            put32(&mut self.buf, self.hdr + 4, new_len as u32)?;
        }
        Ok(())
    }

    /// Sets the sub-node VCN of the entry at `e`.
    pub fn set_sub(&mut self, e: &Entry, vcn: u64) {
        if e.flags & ENTRY_NODE != 0 {
            if let Some(s) = self.buf.get_mut(e.off + e.len - 8..e.off + e.len) {
                s.copy_from_slice(&vcn.to_le_bytes());
            }
        }
    }
}

/// The bytes of `e` (from `node`) turned into an entry with sub-node `sub`
/// (interior form), or without one (leaf form) when `sub` is `None`.
pub fn entry_bytes(node: &Node, e: &Entry, sub: Option<u64>) -> Result<Vec<u8>> {
    let bad = || corrupt("index entry", e.off as u64, "entry outside its node");
    let body_len = if e.flags & ENTRY_NODE != 0 { e.len.checked_sub(8).ok_or_else(bad)? } else { e.len };
    let body = e.off.checked_add(body_len).and_then(|end| node.buf.get(e.off..end)).ok_or_else(bad)?;
    let mut v = body.to_vec();
    let mut flags = e.flags & !ENTRY_NODE;
    if let Some(s) = sub {
        flags |= ENTRY_NODE;
        v.extend_from_slice(&s.to_le_bytes());
    }
    let n = v.len() as u16;
    put16(&mut v, 8, n)?;
    put16(&mut v, 12, flags)?;
    Ok(v)
}
