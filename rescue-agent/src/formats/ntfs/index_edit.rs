//! The index editor: inserts entries into and removes entries from a
//! directory's (or a view index's) B+ tree in memory and records one planned
//! write per changed node.

use super::attr::{self, Form};
use super::bitmap::{add_bits, clear_bits, find_free_clusters, set_bits};
use super::file::Stream;
use super::fs::{Directory, NodeLoc, Ntfs};
use super::index::{entry_bytes, Entry, Node, ENTRY_END, ENTRY_NODE};
use super::plan::{commit_usn, record_write, Plan};
use super::record::write_fixups;
use super::runs::{encode, Run};
use super::{corrupt, le16, le64, put16, put64, FileRef, NtfsError, Result, MAX_INDEX_DEPTH};
use crate::block::BlockDevice;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// What an index edit looks for.
pub(super) enum Key {
    /// A directory entry: this exact name of this file.
    Name { name: Vec<u16>, file_ref: FileRef },
    /// A view-index key compared as little-endian u32s (`$ObjId:$O`, collation 0x13).
    Ulongs(Vec<u8>),
}

/// NTFS `COLLATION_NTOFS_ULONGS`: compare as sequences of little-endian u32s, then by length.
fn cmp_ulongs(a: &[u8], b: &[u8]) -> core::cmp::Ordering {
    for (x, y) in a.chunks(4).zip(b.chunks(4)) {
        let f = |c: &[u8]| c.iter().rev().fold(0u32, |v, &b| v << 8 | b as u32);
        match f(x).cmp(&f(y)) {
            core::cmp::Ordering::Equal => {}
            o => return o,
        }
    }
    a.len().cmp(&b.len())
}

/// An END entry pointing to sub-node `vcn`.
fn end_entry(vcn: u64) -> Result<Vec<u8>> {
    let mut e = alloc::vec![0u8; 0x18];
    put16(&mut e, 8, 0x18)?;
    put16(&mut e, 12, ENTRY_END | ENTRY_NODE)?;
    put64(&mut e, 0x10, vcn)?;
    Ok(e)
}

/// The sub-node of entry bytes `e` (its last 8 bytes).
fn sub_of(e: &[u8]) -> u64 {
    e.len().checked_sub(8).and_then(|o| le64(e, o)).unwrap_or(0)
}

/// Entry bytes `e` with its sub-node set to `vcn` (a leaf entry gains the
/// sub-node field and its flag).
fn with_sub(e: &[u8], vcn: u64) -> Result<Vec<u8>> {
    let mut v = e.to_vec();
    if le16(e, 12).unwrap_or(0) & ENTRY_NODE == 0 {
        v.extend_from_slice(&[0; 8]);
        let len = v.len() as u16;
        put16(&mut v, 8, len)?;
        put16(&mut v, 12, le16(e, 12).unwrap_or(0) | ENTRY_NODE)?;
    }
    if let Some(o) = v.len().checked_sub(8) {
        put64(&mut v, o, vcn)?;
    }
    Ok(v)
}

/// The END entry of a leaf.
fn leaf_end() -> Result<Vec<u8>> {
    let mut e = alloc::vec![0u8; 0x10];
    put16(&mut e, 8, 0x10)?;
    put16(&mut e, 12, ENTRY_END)?;
    Ok(e)
}

/// Edits one directory's index in memory and records a write per change.
pub(super) struct Editor<'a> {
    v: &'a Ntfs,
    dir: Directory,
    blocks: BTreeMap<u64, Node>,
    /// How many of `plan`'s writes came before this editor.
    prior: usize,
    plan: Plan,
}

impl<'a> Editor<'a> {
    /// An editor for the index of `dir`, adding to `prior` (the writes
    /// planned before it, which its bitmap reads see through).
    pub(super) fn new(v: &'a Ntfs, dir: Directory, prior: &Plan) -> Editor<'a> {
        Editor {
            v,
            dir,
            blocks: BTreeMap::new(),
            prior: prior.writes.len(),
            plan: Plan { writes: prior.writes.clone(), notes: Vec::new() },
        }
    }

    /// The writes this editor planned (after `prior`'s).
    pub(super) fn into_plan(mut self) -> Plan {
        self.plan.writes.drain(..self.prior);
        self.plan
    }

    fn node(&mut self, dev: &mut impl BlockDevice, loc: NodeLoc) -> Result<&mut Node> {
        match loc {
            NodeLoc::Root => Ok(&mut self.dir.root),
            NodeLoc::Block(vcn) => {
                if !self.blocks.contains_key(&vcn) {
                    if self.blocks.len() > 4096 {
                        return Err(corrupt("index block", self.dir.root.offset, "too many index blocks visited"));
                    }
                    let b = self.v.read_block(dev, &self.dir, vcn)?;
                    self.blocks.insert(vcn, b);
                }
                self.blocks.get_mut(&vcn).ok_or(corrupt("index block", 0, "internal"))
            }
        }
    }

    fn entries(&mut self, dev: &mut impl BlockDevice, loc: NodeLoc) -> Result<Vec<Entry>> {
        self.node(dev, loc)?.entries()
    }

    /// Writes the current state of node `loc`.
    fn emit(&mut self, loc: NodeLoc, reason: &str) -> Result<()> {
        match loc {
            NodeLoc::Root => {
                let ri = self.dir.root_rec;
                let ao = self.dir.root_attr_off;
                let rec = &mut self.dir.file.records[ri];
                let at = rec.offset + ao as u64;
                rec.set_resident_value(ao, &self.dir.root.buf)
                    .ok_or(NtfsError::NoSpace { structure: "$INDEX_ROOT", offset: at })?;
                let mut r = rec.clone();
                record_write(self.v, &mut self.plan, &mut r, reason)?;
                self.dir.file.records[ri] = r;
            }
            NodeLoc::Block(vcn) => {
                let ex = self.v.block_extents(&self.dir, vcn)?;
                let node = self.blocks.get_mut(&vcn).ok_or(corrupt("index block", 0, "internal"))?;
                let disk = write_fixups(&node.buf, "index block", node.offset)?;
                commit_usn(&mut node.buf, &disk)?;
                self.plan.push_extents("index block", &ex, &disk, reason);
            }
        }
        Ok(())
    }

    /// Finds the entry for `key`, searching the in-memory nodes.
    pub(super) fn find(&mut self, dev: &mut impl BlockDevice, key: &Key) -> Result<Option<Vec<(NodeLoc, usize)>>> {
        let mut path = Vec::new();
        let mut steps = 0usize;
        if self.search(dev, NodeLoc::Root, key, 0, &mut path, &mut steps)? {
            Ok(Some(path))
        } else {
            Ok(None)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn search(
        &mut self,
        dev: &mut impl BlockDevice,
        loc: NodeLoc,
        key: &Key,
        depth: usize,
        path: &mut Vec<(NodeLoc, usize)>,
        steps: &mut usize,
    ) -> Result<bool> {
        *steps += 1;
        if depth > MAX_INDEX_DEPTH || *steps > 4096 {
            return Err(corrupt("index block", self.dir.root.offset, "index tree too deep or looping"));
        }
        let entries = self.entries(dev, loc)?;
        for (i, e) in entries.iter().enumerate() {
            let (ord, hit) = if e.is_end() {
                (core::cmp::Ordering::Less, false)
            } else {
                match key {
                    Key::Name { name, file_ref } => {
                        let k = e.key.as_ref().ok_or(corrupt(
                            "directory index",
                            self.dir.root.offset,
                            "entry without a file name",
                        ))?;
                        let o = self.v.upcase.cmp(name, &k.name);
                        (
                            o,
                            o == core::cmp::Ordering::Equal
                                && e.file_ref.record() == file_ref.record()
                                && k.name == *name,
                        )
                    }
                    Key::Ulongs(k) => {
                        let o = cmp_ulongs(k, &e.raw_key);
                        (o, o == core::cmp::Ordering::Equal)
                    }
                }
            };
            if hit {
                path.push((loc, i));
                return Ok(true);
            }
            if ord != core::cmp::Ordering::Greater {
                if let Some(s) = e.sub {
                    path.push((loc, i));
                    if self.search(dev, NodeLoc::Block(s), key, depth + 1, path, steps)? {
                        return Ok(true);
                    }
                    path.pop();
                }
                if ord == core::cmp::Ordering::Less {
                    return Ok(false);
                }
            }
        }
        Ok(false)
    }

    /// Inserts `entry` (leaf entry bytes) for `key` into the leaf where it
    /// sorts, splitting full nodes on the way up ([`Self::put_entries`]).
    /// A name already in the index (equal when upcased) is refused.
    pub(super) fn insert(&mut self, dev: &mut impl BlockDevice, entry: Vec<u8>, key: &Key, shown: &str) -> Result<()> {
        let Key::Name { name, .. } = key else {
            return Err(NtfsError::Unsupported { structure: "view index", offset: 0, detail: "insertion" });
        };
        let mut path = Vec::new();
        let mut loc = NodeLoc::Root;
        for _ in 0..=MAX_INDEX_DEPTH {
            let es = self.entries(dev, loc)?;
            let mut at = es.len().saturating_sub(1);
            for (i, e) in es.iter().enumerate() {
                if e.is_end() {
                    at = i;
                    break;
                }
                let k =
                    e.key.as_ref().ok_or(corrupt("directory index", self.dir.root.offset, "entry without a name"))?;
                match self.v.upcase.cmp(name, &k.name) {
                    core::cmp::Ordering::Greater => {}
                    core::cmp::Ordering::Equal => {
                        return Err(NtfsError::Refused {
                            offset: self.dir.root.offset,
                            detail: "the directory already has a file of that name",
                        })
                    }
                    core::cmp::Ordering::Less => {
                        at = i;
                        break;
                    }
                }
            }
            let e = es.get(at).ok_or(corrupt("directory index", self.dir.root.offset, "node without an END entry"))?;
            match e.sub {
                Some(s) => {
                    path.push((loc, at));
                    loc = NodeLoc::Block(s);
                }
                None => {
                    let node = self.node(dev, loc)?.clone();
                    let mut list: Vec<Vec<u8>> =
                        node.entries()?.iter().map(|en| entry_bytes(&node, en, en.sub)).collect::<Result<_>>()?;
                    list.insert(at, entry);
                    return self.put_entries(dev, &path, loc, list, &format!("add index entry {shown:?}"));
                }
            }
        }
        Err(corrupt("directory index", self.dir.root.offset, "index tree too deep"))
    }

    /// Removes the entry of `file_ref` named `name`, keeping the tree valid and sorted.
    pub(super) fn remove(&mut self, dev: &mut impl BlockDevice, key: &Key, shown: &str) -> Result<()> {
        let path = self.find(dev, key)?.ok_or(corrupt(
            "directory index",
            self.dir.root.offset,
            "no index entry for a name of the file",
        ))?;
        let &(loc, idx) = path.last().ok_or(corrupt("directory index", 0, "internal"))?;
        let entries = self.entries(dev, loc)?;
        let e = entries.get(idx).cloned().ok_or(corrupt("directory index", 0, "internal"))?;
        match e.sub {
            None => {
                self.node(dev, loc)?.splice(e.off, e.len, &[])?;
                self.emit(loc, &format!("remove index entry {shown:?} from a leaf"))?;
                if let NodeLoc::Block(vcn) = loc {
                    if path.len() >= 2 {
                        self.collapse_if_empty(dev, path[path.len() - 2], vcn)?;
                    }
                }
            }
            Some(sub) if self.is_empty_leaf(dev, sub)? && self.next_is_empty_leaf(dev, loc, idx)? => {
                // Both sides are leaves emptied earlier: no key to move up. The
                // entry goes, the next entry keeps its (empty) leaf, the left one is freed.
                self.node(dev, loc)?.splice(e.off, e.len, &[])?;
                self.emit(loc, &format!("remove index entry {shown:?} between two emptied leaves"))?;
                self.blocks.remove(&sub);
                self.free_block(dev, sub)?;
            }
            Some(sub) => {
                // Successor first (as ntfs-3g does), then the predecessor; when
                // neither fits the node (or lends a key), the node splits (as
                // ntfs-3g and Windows do), successor first again. A try that
                // fails has emitted nothing: the node and the plan are put back.
                let saved = self.node(dev, loc)?.clone();
                let n_writes = self.plan.writes.len();
                let tries = [(false, true), (false, false), (true, true), (true, false)];
                for (k, &(split, successor)) in tries.iter().enumerate() {
                    if k > 0 {
                        *self.node(dev, loc)? = saved.clone();
                        self.plan.writes.truncate(n_writes);
                    }
                    let done = if split {
                        self.replace_by_split(dev, &path, &e, sub, shown, successor)
                    } else {
                        self.replace_interior(dev, loc, idx, &e, sub, shown, successor)
                    };
                    match done {
                        Err(NtfsError::NoSpace { .. }) if k + 1 < tries.len() => {}
                        r => return r,
                    }
                }
            }
        }
        Ok(())
    }

    /// True when block `vcn` is a leaf holding no key (only its END entry).
    fn is_empty_leaf(&mut self, dev: &mut impl BlockDevice, vcn: u64) -> Result<bool> {
        let es = self.entries(dev, NodeLoc::Block(vcn))?;
        Ok(es.len() == 1 && es[0].sub.is_none())
    }

    /// True when the entry after `idx` in node `loc` points to an empty leaf.
    fn next_is_empty_leaf(&mut self, dev: &mut impl BlockDevice, loc: NodeLoc, idx: usize) -> Result<bool> {
        match self.entries(dev, loc)?.get(idx + 1).and_then(|n| n.sub) {
            Some(s) => self.is_empty_leaf(dev, s),
            None => Ok(false),
        }
    }

    /// Replaces interior entry `e` (index `idx` of node `loc`, sub-node `sub`)
    /// by its successor (the first key of the leftmost leaf right of it) or
    /// its predecessor (the last key of the rightmost leaf under `sub`), then
    /// removes that key from its leaf. The node is written before the leaf.
    #[allow(clippy::too_many_arguments)]
    fn replace_interior(
        &mut self,
        dev: &mut impl BlockDevice,
        loc: NodeLoc,
        idx: usize,
        e: &Entry,
        sub: u64,
        shown: &str,
        successor: bool,
    ) -> Result<()> {
        let (cur, parent, x) = self.neighbour(dev, loc, idx, sub, successor)?;
        let moved = entry_bytes(self.node(dev, cur)?, &x, Some(sub))?;
        let xname = x.key.as_ref().map(|k| k.name_string()).unwrap_or_else(|| String::from("key"));
        let which = if successor { "successor" } else { "predecessor" };
        self.node(dev, loc)?.splice(e.off, e.len, &moved)?;
        self.emit(loc, &format!("replace interior index entry {shown:?} by its {which} {xname:?}"))?;
        self.node(dev, cur)?.splice(x.off, x.len, &[])?;
        self.emit(cur, &format!("remove {xname:?} from its leaf (moved up)"))?;
        if let NodeLoc::Block(vcn) = cur {
            self.collapse_if_empty(dev, parent, vcn)?;
        }
        Ok(())
    }

    /// The key that can replace interior entry `idx` of node `loc` (whose
    /// sub-node is `sub`): its successor (the first key of the leftmost leaf
    /// right of it) or its predecessor (the last key of the rightmost leaf
    /// under `sub`). Returns the leaf, the leaf's parent entry, and the key.
    fn neighbour(
        &mut self,
        dev: &mut impl BlockDevice,
        loc: NodeLoc,
        idx: usize,
        sub: u64,
        successor: bool,
    ) -> Result<(NodeLoc, (NodeLoc, usize), Entry)> {
        let entries = self.entries(dev, loc)?;
        let (mut cur, mut parent) = if successor {
            let next_sub = entries.get(idx + 1).and_then(|n| n.sub).ok_or(corrupt(
                "directory index",
                self.dir.root.offset,
                "interior entry without a following sub-node",
            ))?;
            (NodeLoc::Block(next_sub), (loc, idx + 1))
        } else {
            (NodeLoc::Block(sub), (loc, idx))
        };
        for _ in 0..=MAX_INDEX_DEPTH {
            let es = self.entries(dev, cur)?;
            let pick = if successor { 0 } else { es.len() - 1 };
            match es[pick].sub {
                Some(s) => {
                    parent = (cur, pick);
                    cur = NodeLoc::Block(s);
                }
                None => break,
            }
        }
        let leaf_es = self.entries(dev, cur)?;
        if leaf_es.len() < 2 {
            // An emptied leaf kept earlier has no key to lend: the other side is tried.
            return Err(NtfsError::NoSpace { structure: "index block", offset: self.node(dev, cur)?.offset });
        }
        let x = if successor { leaf_es[0].clone() } else { leaf_es[leaf_es.len() - 2].clone() };
        Ok((cur, parent, x))
    }

    /// Replaces interior entry `e` (the last step of `path`, sub-node `sub`)
    /// by its successor when neither neighbour fits the node: the node's new
    /// entries go through [`Self::put_entries`], which splits it. Then the
    /// successor leaves its leaf. Every new block is written before the node
    /// that will point to it, and a node shrinks only after its entries are
    /// written at their new place: a crash duplicates keys, never loses one.
    fn replace_by_split(
        &mut self,
        dev: &mut impl BlockDevice,
        path: &[(NodeLoc, usize)],
        e: &Entry,
        sub: u64,
        shown: &str,
        successor: bool,
    ) -> Result<()> {
        let &(loc, idx) = path.last().ok_or(corrupt("directory index", 0, "internal"))?;
        let (cur, _, x) = self.neighbour(dev, loc, idx, sub, successor)?;
        let moved = entry_bytes(self.node(dev, cur)?, &x, Some(sub))?;
        let node = self.node(dev, loc)?.clone();
        let list: Vec<Vec<u8>> = node
            .entries()?
            .iter()
            .map(|en| if en.off == e.off { Ok(moved.clone()) } else { entry_bytes(&node, en, en.sub) })
            .collect::<Result<_>>()?;
        let xname = x.key.as_ref().map(|k| k.name_string()).unwrap_or_else(|| String::from("key"));
        let which = if successor { "successor" } else { "predecessor" };
        let reason = format!("replace interior index entry {shown:?} by its {which} {xname:?}");
        self.put_entries(dev, &path[..path.len() - 1], loc, list, &reason)?;
        self.node(dev, cur)?.splice(x.off, x.len, &[])?;
        self.emit(cur, &format!("remove {xname:?} from its leaf (moved up)"))
    }

    /// Gives node `loc` (reached through `ancestors`) the entries `list`
    /// (entry bytes, END last), splitting it when they do not fit: a block
    /// keeps the lower half, a new block takes the upper half, and the
    /// middle key moves up into the parent (recursively); a root that does
    /// not fit its MFT record moves its entries into a new block and keeps
    /// only an END entry pointing to it.
    fn put_entries(
        &mut self,
        dev: &mut impl BlockDevice,
        ancestors: &[(NodeLoc, usize)],
        loc: NodeLoc,
        list: Vec<Vec<u8>>,
        reason: &str,
    ) -> Result<()> {
        let saved = self.node(dev, loc)?.clone();
        match self.set_entries(dev, loc, &list).and_then(|_| self.emit(loc, reason)) {
            Err(NtfsError::NoSpace { .. }) => *self.node(dev, loc)? = saved.clone(),
            r => return r,
        }
        let bytes = |l: &[Vec<u8>]| l.iter().map(|e| e.len()).sum::<usize>();
        let nodes = list.iter().filter(|e| le16(e, 12).unwrap_or(0) & ENTRY_NODE != 0).count();
        let leaf = nodes == 0;
        if list.len() < 3 || !(leaf || nodes == list.len()) {
            return Err(NtfsError::NoSpace { structure: saved.structure(), offset: saved.offset });
        }
        let Some(&(ploc, pidx)) = ancestors.last() else {
            // The root: everything moves down into a new block (a small index becomes a large one).
            let b = self.alloc_block(dev)?;
            self.new_block(dev, b, &list, "the index root is full: move its entries into a new index block")?;
            self.set_entries(dev, loc, &[end_entry(b)?])?;
            self.node(dev, loc)?.set_large(true);
            return self.emit(loc, "point the index root at the new block");
        };
        // Split at the entry where the lower half passes half of the bytes.
        let half = bytes(&list) / 2;
        let mut m = 1;
        while m < list.len() - 2 && bytes(&list[..m]) + list[m].len() <= half {
            m += 1;
        }
        let NodeLoc::Block(vcn) = loc else {
            return Err(corrupt("directory index", 0, "internal: root with a parent"));
        };
        let lower_end = if leaf { leaf_end()? } else { end_entry(sub_of(&list[m]))? };
        let b = self.alloc_block(dev)?;
        self.new_block(dev, b, &list[m + 1..], "split a full index block: its upper half goes to a new block")?;
        let parent = self.node(dev, ploc)?.clone();
        let mut plist: Vec<Vec<u8>> = Vec::new();
        for (i, pe) in parent.entries()?.iter().enumerate() {
            if i == pidx {
                plist.push(with_sub(&list[m], vcn)?);
                plist.push(entry_bytes(&parent, pe, Some(b))?);
            } else {
                plist.push(entry_bytes(&parent, pe, pe.sub)?);
            }
        }
        let up = &ancestors[..ancestors.len() - 1];
        self.put_entries(dev, up, ploc, plist, "the middle key of a split index block moves up")?;
        let mut lower = list[..m].to_vec();
        lower.push(lower_end);
        self.set_entries(dev, loc, &lower)?;
        self.emit(loc, &format!("{reason} (the block keeps its lower half)"))
    }

    /// Replaces the entries of node `loc` in memory.
    fn set_entries(&mut self, dev: &mut impl BlockDevice, loc: NodeLoc, list: &[Vec<u8>]) -> Result<()> {
        let n = self.node(dev, loc)?;
        let start = n.hdr + n.entries_offset();
        let old = n.index_length() - n.entries_offset();
        n.splice(start, old, &list.concat())
    }

    /// Creates index block `vcn` (already reserved by [`Self::alloc_block`])
    /// holding `list`, from the layout of an existing block, and writes it.
    fn new_block(&mut self, dev: &mut impl BlockDevice, vcn: u64, list: &[Vec<u8>], reason: &str) -> Result<()> {
        let template = match self.blocks.values().next() {
            Some(b) => b.clone(),
            None => {
                let first = self.dir.root.entries()?.iter().find_map(|e| e.sub);
                let any = first.ok_or(corrupt("directory index", self.dir.root.offset, "no index block to copy"))?;
                self.node(dev, NodeLoc::Block(any))?.clone()
            }
        };
        let ex = self.v.block_extents(&self.dir, vcn)?;
        let mut n = Node { offset: ex[0].0, ..template };
        put64(&mut n.buf, 0x10, vcn)?;
        // The header says whether the block has sub-nodes: a split leaf's half does not.
        n.set_large(list.first().is_some_and(|e| le16(e, 12).unwrap_or(0) & ENTRY_NODE != 0));
        let start = n.hdr + n.entries_offset();
        let old = n.index_length() - n.entries_offset();
        n.splice(start, old, &list.concat())?;
        n.entries()?;
        self.blocks.insert(vcn, n);
        self.emit(NodeLoc::Block(vcn), reason)?;
        self.mark_block_used(vcn)
    }

    /// Picks an index block for a split: a free one inside
    /// `$INDEX_ALLOCATION` when its bitmap has one, otherwise a new one at
    /// its end (clusters taken from `$Bitmap` when the allocation has no
    /// spare room; planned first, then the directory record's new run and
    /// sizes: a crash leaks space at worst). Its index bitmap bit is set by
    /// [`Self::new_block`] once the block is written. Returns the block's VCN.
    fn alloc_block(&mut self, dev: &mut impl BlockDevice) -> Result<u64> {
        let bs = self.dir.block_size as u64;
        let unsupported = |detail| NtfsError::Unsupported { structure: "$INDEX_ALLOCATION", offset: 0, detail };
        let Some(Stream::NonResident { runs, data_size, allocated, .. }) = self.dir.alloc.clone() else {
            return Err(unsupported("no index allocation to grow"));
        };
        let iname = self.dir.name.clone();
        let (ri, ba) = self.current_attr(attr::BITMAP, &iname)?;
        let Form::Resident { value_offset, value_len } = ba.form else {
            return Err(unsupported("non-resident index bitmap"));
        };
        let bits = self.dir.file.records[ri].data[value_offset..value_offset + value_len].to_vec();
        let used = |i: u64| bits.get((i / 8) as usize).is_none_or(|b| b >> (i % 8) & 1 != 0);
        let blocks = data_size / bs;
        let bit = match (0..blocks).find(|&i| !used(i)) {
            Some(i) => i,
            None => {
                if blocks >= value_len as u64 * 8 {
                    return Err(unsupported("the index bitmap would have to grow"));
                }
                self.grow_allocation(dev, &runs, data_size, allocated)?;
                blocks
            }
        };
        Ok(bit * bs / self.dir.vcn_unit)
    }

    /// Sets the bit of index block `vcn` in the index bitmap, after the
    /// block is written (ntfs-3g reads every block the bitmap marks).
    fn mark_block_used(&mut self, vcn: u64) -> Result<()> {
        let bit = vcn * self.dir.vcn_unit / self.dir.block_size as u64;
        let iname = self.dir.name.clone();
        let (ri, ba) = self.current_attr(attr::BITMAP, &iname)?;
        let Form::Resident { value_offset, value_len } = ba.form else {
            return Err(corrupt("index bitmap", self.dir.root.offset, "no longer resident"));
        };
        if bit / 8 >= value_len as u64 {
            return Err(corrupt("index bitmap", self.dir.root.offset, "bit beyond the bitmap"));
        }
        let mut r = self.dir.file.records[ri].clone();
        r.data[value_offset + (bit / 8) as usize] |= 1 << (bit % 8);
        record_write(self.v, &mut self.plan, &mut r, "mark the new index block in use in the index bitmap")?;
        self.dir.file.records[ri] = r;
        Ok(())
    }

    /// Adds one block at the end of `$INDEX_ALLOCATION` (a single segment):
    /// new clusters from `$Bitmap` when `allocated` has no room, then the
    /// attribute's run list and sizes rewritten in the directory's record.
    fn grow_allocation(
        &mut self,
        dev: &mut impl BlockDevice,
        runs: &[Run],
        data_size: u64,
        allocated: u64,
    ) -> Result<()> {
        let bs = self.dir.block_size as u64;
        let cs = self.v.cluster();
        let iname = self.dir.name.clone();
        let new_size = data_size + bs;
        let mut runs = runs.to_vec();
        let mut new_alloc = allocated;
        if new_size > allocated {
            let n = (new_size - allocated).div_ceil(cs);
            let bf = self.v.load_file(dev, super::fs::BITMAP)?;
            let bm = bf.stream(attr::DATA, &[])?.ok_or(corrupt("$Bitmap", bf.base().offset, "no $DATA"))?;
            let lcn = find_free_clusters(self.v, dev, &self.plan, &bm, n)?;
            let mut m = BTreeMap::new();
            add_bits(&mut m, lcn, n, "$Bitmap", 0)?;
            set_bits(self.v, dev, &mut self.plan, &bm, &m, "$Bitmap", "take clusters for a new index block")?;
            let vcn = allocated / cs;
            match runs.last_mut() {
                Some(last) if last.lcn.is_some_and(|l| l + last.len == lcn) && last.vcn + last.len == vcn => {
                    last.len += n
                }
                _ => runs.push(Run { vcn, lcn: Some(lcn), len: n }),
            }
            new_alloc += n * cs;
        }
        let (ri, ia) = self.current_attr(attr::INDEX_ALLOCATION, &iname)?;
        let rec = &self.dir.file.records[ri];
        let at = rec.offset + ia.offset as u64;
        // One piece mapping the whole allocation (a list split over extension records is refused).
        let pieces = self.dir.file.find(attr::INDEX_ALLOCATION, &iname).count();
        let whole = matches!(ia.form, Form::NonResident { lowest_vcn: 0, highest_vcn, .. }
            if highest_vcn.wrapping_add(1) == allocated / cs);
        if pieces != 1 || !whole {
            return Err(NtfsError::Unsupported {
                structure: "$INDEX_ALLOCATION",
                offset: at,
                detail: "resident or in pieces",
            });
        }
        let mp = le16(&rec.data, ia.offset + 0x20).unwrap_or(0) as usize;
        let mut a = rec.data[ia.offset..ia.offset + mp].to_vec();
        a.extend_from_slice(&encode(&runs));
        a.resize((a.len() + 7) & !7, 0);
        put64(&mut a, 0x18, new_alloc / cs - 1)?;
        put64(&mut a, 0x28, new_alloc)?;
        put64(&mut a, 0x30, new_size)?;
        put64(&mut a, 0x38, new_size)?;
        let mut r = rec.clone();
        r.replace_attr(ia.offset, &a).ok_or(NtfsError::NoSpace { structure: "MFT record", offset: at })?;
        record_write(self.v, &mut self.plan, &mut r, "grow the index allocation by one block")?;
        self.dir.file.records[ri] = r;
        if let Some(Stream::NonResident { runs: r, data_size, initialized, allocated, .. }) = &mut self.dir.alloc {
            (*r, *data_size, *initialized, *allocated) = (runs, new_size, new_size, new_alloc);
        }
        Ok(())
    }

    /// The attribute `type_code`/`name` as it is now in the (edited) records: (record index, attribute).
    fn current_attr(&self, type_code: u32, name: &[u16]) -> Result<(usize, attr::Attr)> {
        for (ri, rec) in self.dir.file.records.iter().enumerate() {
            if let Some(a) =
                rec.attrs(self.v.boot.total_clusters)?.into_iter().find(|a| a.type_code == type_code && a.name == name)
            {
                return Ok((ri, a));
            }
        }
        Err(corrupt("directory index", self.dir.root.offset, "index attribute missing"))
    }

    /// When leaf `vcn` (pointed to by entry `pidx` of node `ploc`) has no
    /// key left, moves a neighbouring separator into a sibling leaf, unlinks
    /// the empty leaf and frees it in the index bitmap. If no sibling has
    /// room, the empty leaf stays (a valid, if wasteful, tree).
    fn collapse_if_empty(
        &mut self,
        dev: &mut impl BlockDevice,
        (ploc, pidx): (NodeLoc, usize),
        vcn: u64,
    ) -> Result<()> {
        if self.entries(dev, NodeLoc::Block(vcn))?.len() > 1 {
            return Ok(());
        }
        let pes = self.entries(dev, ploc)?;
        let pe = pes.get(pidx).cloned().ok_or(corrupt("directory index", 0, "internal"))?;
        if pe.sub != Some(vcn) {
            return Ok(());
        }
        if !pe.is_end() {
            // Separator K moves to the front of the leftmost leaf of the next subtree.
            let next = &pes[pidx + 1];
            let Some(mut cur) = next.sub else { return Ok(()) };
            for _ in 0..=MAX_INDEX_DEPTH {
                match self.entries(dev, NodeLoc::Block(cur))?[0].sub {
                    Some(s) => cur = s,
                    None => break,
                }
            }
            let k = entry_bytes(self.node(dev, ploc)?, &pe, None)?;
            let first = self.entries(dev, NodeLoc::Block(cur))?[0].off;
            if self.node(dev, NodeLoc::Block(cur))?.splice(first, 0, &k).is_err() {
                self.plan.notes.push(String::from("an emptied index leaf was kept (no room to rebalance)"));
                return Ok(());
            }
            self.emit(NodeLoc::Block(cur), "move the separator above an emptied leaf down into the next leaf")?;
            self.node(dev, ploc)?.splice(pe.off, pe.len, &[])?;
            self.emit(ploc, "unlink the emptied leaf")?;
        } else if pidx > 0 {
            // Rightmost child: the previous separator moves to the end of the rightmost leaf of its subtree.
            let prev = pes[pidx - 1].clone();
            let Some(a) = prev.sub else { return Ok(()) };
            let mut cur = a;
            for _ in 0..=MAX_INDEX_DEPTH {
                let es = self.entries(dev, NodeLoc::Block(cur))?;
                match es[es.len() - 1].sub {
                    Some(s) => cur = s,
                    None => break,
                }
            }
            let k = entry_bytes(self.node(dev, ploc)?, &prev, None)?;
            let es = self.entries(dev, NodeLoc::Block(cur))?;
            let end_off = es[es.len() - 1].off;
            if self.node(dev, NodeLoc::Block(cur))?.splice(end_off, 0, &k).is_err() {
                self.plan.notes.push(String::from("an emptied index leaf was kept (no room to rebalance)"));
                return Ok(());
            }
            self.emit(NodeLoc::Block(cur), "move the separator before an emptied leaf down into its left sibling")?;
            let p = self.node(dev, ploc)?;
            p.splice(prev.off, prev.len, &[])?;
            let pes2 = p.entries()?;
            let end = pes2[pes2.len() - 1].clone();
            p.set_sub(&end, a);
            self.emit(ploc, "unlink the emptied leaf")?;
        } else if ploc == NodeLoc::Root {
            // The root's only child is empty: the root becomes a small index (as ntfs-3g does);
            // $INDEX_ALLOCATION stays allocated, its block is freed in the index bitmap.
            let end = entry_bytes(self.node(dev, ploc)?, &pe, None)?;
            let root = self.node(dev, ploc)?;
            root.splice(pe.off, pe.len, &end)?;
            root.set_large(false);
            root.entries()?;
            self.emit(ploc, "the index's only block is empty: make the root a small index")?;
        } else {
            self.plan.notes.push(String::from("an emptied index leaf was kept (its parent has no other child)"));
            return Ok(());
        }
        self.blocks.remove(&vcn);
        self.free_block(dev, vcn)
    }

    /// Clears the bit of index block `vcn` in the directory's `$BITMAP:$I30`.
    fn free_block(&mut self, dev: &mut impl BlockDevice, vcn: u64) -> Result<()> {
        let bit = vcn * self.dir.vcn_unit / self.dir.block_size as u64;
        let iname = self.dir.name.clone();
        let s = self.dir.file.stream(attr::BITMAP, &iname)?;
        match s {
            Some(s @ Stream::NonResident { .. }) => {
                let mut m = BTreeMap::new();
                m.insert(bit / 8, 1u8 << (bit % 8));
                clear_bits(self.v, dev, &mut self.plan, &s, &m, "index bitmap", "free the emptied index block")
            }
            Some(Stream::Resident(_)) => {
                let Some((ri, a)) = self.dir.file.find(attr::BITMAP, &iname).next().cloned() else { return Ok(()) };
                if ri != self.dir.root_rec {
                    self.plan.notes.push(String::from("an unlinked index block stays marked in use (chkdsk frees it)"));
                    return Ok(());
                }
                // Re-read the attribute from the current (edited) record.
                let rec = &self.dir.file.records[ri];
                let attrs = rec.attrs(self.v.boot.total_clusters)?;
                let Some(cur) = attrs.iter().find(|x| x.type_code == attr::BITMAP && x.name == iname) else {
                    return Ok(());
                };
                let _ = a;
                let Form::Resident { value_offset, value_len } = cur.form else { return Ok(()) };
                let byte = (bit / 8) as usize;
                if byte >= value_len {
                    return Err(corrupt("index bitmap", rec.offset, "bit beyond the bitmap"));
                }
                let mut r = rec.clone();
                let mask = 1u8 << (bit % 8);
                if r.data[value_offset + byte] & mask == 0 {
                    return Err(corrupt("index bitmap", rec.offset, "index block already free"));
                }
                r.data[value_offset + byte] &= !mask;
                record_write(self.v, &mut self.plan, &mut r, "free the emptied index block")?;
                self.dir.file.records[ri] = r;
                Ok(())
            }
            None => Ok(()),
        }
    }
}
