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
//!    index again);
//! 2. the file's MFT records (base first, then extension records): in-use
//!    cleared, sequence number advanced; `$MFTMirr` too for records 0–3;
//! 3. the `$MFT` bitmap bits;
//! 4. the `$Bitmap` bits of the file's clusters — last, so clusters are never
//!    free while a record still claims them (a crash leaks, never cross-links).

use super::attr::{self, Form};
use super::file::Stream;
use super::filename::{DOS, WIN32};
use super::fs::{Directory, NodeLoc, Ntfs, FIRST_USER_RECORD, LOGFILE, MFT};
use super::index::{entry_bytes, Entry, Node};
use super::logfile::{self, JournalState};
use super::record::{write_fixups, Record, IN_USE};
use super::runs;
use super::volume::{self, VOLUME_IS_DIRTY};
use super::{corrupt, le16, le32, put16, put32, ref_record, NtfsError, Result, MAX_INDEX_DEPTH};
use crate::block::BlockDevice;
use crate::profile::UncleanJournal;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// What a write puts on the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteData {
    Bytes(Vec<u8>),
    /// `len` copies of `byte` (the journal reset).
    Fill { byte: u8, len: u64 },
}

/// One write of a plan.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PlanWrite {
    /// The structure changed (e.g. "index block", "MFT record", "$Bitmap").
    pub structure: &'static str,
    /// Byte offset on the volume.
    pub offset: u64,
    pub len: u64,
    #[serde(skip)]
    pub data: WriteData,
    pub reason: String,
}

/// An ordered list of writes.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    pub writes: Vec<PlanWrite>,
    /// Things the plan leaves for chkdsk, or decided (e.g. "hard link: record kept").
    pub notes: Vec<String>,
}

impl Plan {
    fn push(&mut self, structure: &'static str, offset: u64, data: Vec<u8>, reason: String) {
        self.writes.push(PlanWrite { structure, offset, len: data.len() as u64, data: WriteData::Bytes(data), reason });
    }
    /// Adds one write per physical extent of `data`.
    fn push_extents(&mut self, structure: &'static str, ex: &[(u64, u64)], data: &[u8], reason: &str) {
        let mut o = 0usize;
        for (p, l) in ex {
            self.push(structure, *p, data[o..o + *l as usize].to_vec(), String::from(reason));
            o += *l as usize;
        }
    }
    pub fn len(&self) -> usize {
        self.writes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
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
            writeln!(f, "  write {:>3}: {:<22} byte {:#012x} (+{} bytes): {}", i + 1, w.structure, w.offset, w.len, w.reason)?;
        }
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        Ok(())
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

/// Proof that the safety gates passed for a volume; required by every
/// planner that writes. Obtained only from [`clear_for_writing`].
#[derive(Clone, Debug)]
pub struct Clearance {
    journal: JournalState,
    reset: Option<Plan>,
}

impl Clearance {
    pub fn journal(&self) -> JournalState {
        self.journal
    }
    /// The journal-reset plan (present when the journal was unclean and the
    /// policy is `reset`); run it before anything else. Taken once.
    pub fn take_reset(&mut self) -> Option<Plan> {
        self.reset.take()
    }
    /// Returns a reset plan that was taken but not executed.
    pub fn put_back_reset(&mut self, p: Plan) {
        self.reset = Some(p);
    }
}

fn record_write(v: &Ntfs, plan: &mut Plan, rec: &mut Record, reason: &str) -> Result<()> {
    let disk = rec.to_disk()?;
    commit_usn(&mut rec.data, &disk);
    let ex = v.record_extents(rec.number)?;
    plan.push_extents("MFT record", &ex, &disk, reason);
    if rec.number < 4 {
        // $MFTMirr mirrors records 0-3: ntfs-3g refuses a volume whose copies differ.
        let mirr = v.load_file_mirror_extents(rec.number)?;
        plan.push_extents("$MFTMirr", &mirr, &disk, &format!("{reason} (mirror)"));
    }
    Ok(())
}

impl Ntfs {
    /// Extents of record `n` (< 4) inside `$MFTMirr`, from the boot sector's mirror cluster.
    fn load_file_mirror_extents(&self, n: u64) -> Result<Vec<(u64, u64)>> {
        let rs = self.boot.record_size as u64;
        Ok(vec![(self.boot.mftmirr_lcn * self.cluster() + n * rs, rs)])
    }
}

/// Copies the USN a write used back into the in-memory structure, so the next write of it increments again.
fn commit_usn(mem: &mut [u8], disk: &[u8]) {
    if let Some(o) = le16(mem, 4) {
        if let Some(u) = le16(disk, o as usize) {
            put16(mem, o as usize, u);
        }
    }
}

/// The safety gates, checked before any write: the volume version is 3.x,
/// `hiberfil.sys` is not a hibernation image, and the journal is empty or
/// clean — or unclean with `policy == Reset`, in which case the clearance
/// carries a plan that sets the volume dirty flag (record 3 and its mirror)
/// and then fills `$LogFile` with 0xFF as `ntfsfix` does.
pub fn clear_for_writing(v: &Ntfs, dev: &mut impl BlockDevice, policy: UncleanJournal) -> Result<Clearance> {
    let (mut vrec, vi) = volume::read(v, dev)?;
    if vi.major != 3 {
        return Err(NtfsError::Unsupported { structure: "$VOLUME_INFORMATION", offset: vrec.offset, detail: "NTFS version is not 3.x" });
    }
    volume::check_hibernation(v, dev)?;
    let lf = v.load_file(dev, LOGFILE)?;
    let s = lf.stream(attr::DATA, &[])?.ok_or(corrupt("$LogFile", lf.base().offset, "no $DATA"))?;
    let Stream::NonResident { runs: lruns, data_size, offset: loff, .. } = &s else {
        return Err(corrupt("$LogFile", lf.base().offset, "resident $DATA"));
    };
    let head_len = (*data_size).min(65536);
    let mut head = vec![0u8; head_len as usize];
    v.read_stream(dev, &s, 0, &mut head)?;
    let log_at = runs::extents(lruns, v.cluster(), 0, 1, *loff)?.first().and_then(|e| e.0).unwrap_or(*loff);
    let journal = logfile::state(&head, log_at)?;
    let reset = match (journal, policy) {
        (JournalState::Unclean, UncleanJournal::Refuse) => return Err(NtfsError::UncleanJournal { offset: log_at }),
        (JournalState::Unclean, UncleanJournal::Reset) => {
            let mut p = Plan::default();
            put16(&mut vrec.data, vi.flags_at, vi.flags | VOLUME_IS_DIRTY);
            record_write(v, &mut p, &mut vrec, "set the volume dirty flag so chkdsk runs at the next boot")?;
            for (ph, l) in runs::extents(lruns, v.cluster(), 0, *data_size, *loff)? {
                let ph = ph.ok_or(corrupt("$LogFile", *loff, "sparse journal"))?;
                p.writes.push(PlanWrite { structure: "$LogFile", offset: ph, len: l, data: WriteData::Fill { byte: 0xFF, len: l }, reason: String::from("reset the unclean journal (fill with 0xFF, as ntfsfix does)") });
            }
            p.notes.push(String::from("journal was unclean: reset and volume marked dirty; Windows runs chkdsk at the next boot"));
            Some(p)
        }
        _ => None,
    };
    Ok(Clearance { journal, reset })
}

/// The next sequence number after freeing a record (never 0).
pub fn next_seq(s: u16) -> u16 {
    match s.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

/// Plans deleting the names `names` of file `file_ref` from directory
/// `dir_ref` (exact, case-sensitive names as stored; the DOS or Win32 partner
/// of a removed name goes too). When the file keeps other names (hard links)
/// only those names go and the record stays; otherwise the record, its
/// extension records, their `$MFT` bitmap bits and the file's clusters are
/// freed. Reads only; errors mean no plan (and nothing written).
pub fn plan_delete(v: &Ntfs, dev: &mut impl BlockDevice, _gate: &Clearance, dir_ref: u64, file_ref: u64, names: &[Vec<u16>]) -> Result<Plan> {
    let n = ref_record(file_ref);
    let f = v.load_file(dev, n)?;
    let base = f.base().clone();
    if base.file_ref() != file_ref && super::ref_seq(file_ref) != 0 {
        return Err(NtfsError::Stale { offset: base.offset });
    }
    if n < FIRST_USER_RECORD {
        return Err(NtfsError::Refused { offset: base.offset, detail: "system file" });
    }
    if base.is_dir() {
        return Err(NtfsError::Refused { offset: base.offset, detail: "directories are not deleted" });
    }
    if f.attrs.iter().any(|(_, a)| a.type_code == attr::REPARSE_POINT) {
        return Err(NtfsError::Refused { offset: base.offset, detail: "reparse point (its $Reparse index entry is not handled)" });
    }
    let all = f.names()?;
    let in_dir: Vec<_> = all.iter().filter(|(_, _, fname)| ref_record(fname.parent) == ref_record(dir_ref)).collect();
    let mut remove: Vec<usize> = Vec::new(); // indexes into `all`
    for (i, (_, _, fname)) in all.iter().enumerate() {
        if ref_record(fname.parent) == ref_record(dir_ref) && names.contains(&fname.name) {
            remove.push(i);
        }
    }
    if remove.is_empty() {
        return Err(NtfsError::Stale { offset: base.offset });
    }
    let has = |ns: u8, rm: &Vec<usize>| rm.iter().any(|&i| all[i].2.namespace == ns);
    let partner = if has(WIN32, &remove) { Some(DOS) } else if has(DOS, &remove) { Some(WIN32) } else { None };
    if let Some(p) = partner {
        for (i, (_, _, fname)) in all.iter().enumerate() {
            if fname.namespace == p && ref_record(fname.parent) == ref_record(dir_ref) && !remove.contains(&i) {
                remove.push(i);
            }
        }
    }
    let _ = in_dir;
    let mut plan = Plan::default();

    // 1. The parent's index.
    let dir = v.open_dir(dev, dir_ref)?;
    let mut ed = Editor { v, dir, blocks: BTreeMap::new(), plan: Plan::default() };
    for &i in &remove {
        let fname = &all[i].2;
        ed.remove(dev, &Key::Name { name: fname.name.clone(), file_ref }, &fname.name_string())?;
    }
    plan.extend(ed.plan);

    let keep = all.len() - remove.len();
    if keep > 0 {
        // 2a. Hard link: drop the removed $FILE_NAMEs from the record, keep it.
        let mut rec = base.clone();
        let mut drop: Vec<(usize, usize)> = Vec::new();
        for &i in &remove {
            let (ri, a, _) = &all[i];
            if *ri != 0 {
                return Err(NtfsError::Unsupported { structure: "$FILE_NAME", offset: f.records[*ri].offset, detail: "name of a hard-linked file held in an extension record" });
            }
            drop.push((a.offset, a.length));
        }
        drop.sort();
        for (off, len) in drop.iter().rev() {
            remove_attr(&mut rec, *off, *len)?;
        }
        let links = remove.iter().filter(|&&i| all[i].2.namespace != DOS).count() as u16;
        let lc = rec.link_count().saturating_sub(links).max(1);
        put16(&mut rec.data, 0x12, lc);
        record_write(v, &mut plan, &mut rec, "remove the deleted names from the hard-linked file's record")?;
        plan.notes.push(format!("file has {keep} other name(s): record {n} kept, link count now {lc}"));
        return Ok(plan);
    }
    if let Some((ri, oa)) = f.attrs.iter().find(|(_, a)| a.type_code == attr::OBJECT_ID) {
        // Its entry in $Extend\$ObjId:$O goes before the record is freed (as Windows and ntfs-3g do).
        let guid = oa.value(&f.records[*ri]).and_then(|v| v.get(..16)).map(|g| g.to_vec());
        match (guid, v.lookup(dev, "$Extend\\$ObjId")) {
            (Some(g), Ok(objid)) => {
                let of = v.load_file(dev, ref_record(objid))?;
                let o_name: Vec<u16> = "$O".encode_utf16().collect();
                let idx = v.open_index(of, &o_name, 0, 0x13)?;
                let mut ed = Editor { v, dir: idx, blocks: BTreeMap::new(), plan: Plan::default() };
                match ed.find(dev, &Key::Ulongs(g.clone()))? {
                    Some(_) => {
                        ed.remove(dev, &Key::Ulongs(g), "object ID")?;
                        for w in &mut ed.plan.writes {
                            w.reason = format!("$ObjId: {}", w.reason);
                        }
                        plan.extend(ed.plan);
                    }
                    None => plan.notes.push(String::from("file has an object ID that $ObjId does not list")),
                }
            }
            _ => plan.notes.push(String::from("file has an object ID but the volume has no $Extend\\$ObjId index")),
        }
    }

    // 2b. Free the records (base first).
    for rec in &f.records {
        let mut r = rec.clone();
        let flags = r.flags() & !IN_USE;
        put16(&mut r.data, 0x16, flags);
        let seq = next_seq(r.seq());
        put16(&mut r.data, 0x10, seq);
        let what = if r.number == n { "free the file's MFT record" } else { "free an extension record of the file" };
        let reason = format!("{what} {} (sequence {} -> {seq})", r.number, rec.seq());
        record_write(v, &mut plan, &mut r, &reason)?;
    }

    // 3. $MFT bitmap.
    let mft = v.load_file(dev, MFT)?;
    let mbm = mft.stream(attr::BITMAP, &[])?.ok_or(corrupt("$MFT", mft.base().offset, "no $BITMAP"))?;
    let mut bits = BTreeMap::new();
    for rec in &f.records {
        add_bits(&mut bits, rec.number, 1, "$MFT bitmap", mft.base().offset)?;
    }
    clear_bits(v, dev, &mut plan, &mbm, &bits, "$MFT bitmap", "mark the file's MFT record(s) free")?;

    // 4. $Bitmap, last.
    let mut cbits = BTreeMap::new();
    let mut total = 0u64;
    for (ri, a) in &f.attrs {
        if let Form::NonResident { runs, .. } = &a.form {
            for r in runs {
                if let Some(l) = r.lcn {
                    total += r.len;
                    if total > v.boot.total_clusters {
                        return Err(corrupt("data runs", f.records[*ri].offset, "file claims more clusters than the volume has"));
                    }
                    add_bits(&mut cbits, l, r.len, "data runs", f.records[*ri].offset + a.offset as u64)?;
                }
            }
        }
    }
    if !cbits.is_empty() {
        let bf = v.load_file(dev, super::fs::BITMAP)?;
        let bs = bf.stream(attr::DATA, &[])?.ok_or(corrupt("$Bitmap", bf.base().offset, "no $DATA"))?;
        clear_bits(v, dev, &mut plan, &bs, &cbits, "$Bitmap", "free the file's clusters")?;
    }
    Ok(plan)
}

/// Adds bits `start..start+len` to a byte→mask map; a bit already present means two runs claim one cluster.
fn add_bits(map: &mut BTreeMap<u64, u8>, start: u64, len: u64, structure: &'static str, offset: u64) -> Result<()> {
    for b in start..start + len {
        let m = map.entry(b / 8).or_insert(0);
        let bit = 1u8 << (b % 8);
        if *m & bit != 0 {
            return Err(corrupt(structure, offset, "the same cluster or record is claimed twice"));
        }
        *m |= bit;
    }
    Ok(())
}

/// Plans clearing `bits` (byte index → mask) in a bitmap stream; every bit must currently be set.
fn clear_bits(v: &Ntfs, dev: &mut impl BlockDevice, plan: &mut Plan, s: &Stream, bits: &BTreeMap<u64, u8>, structure: &'static str, reason: &str) -> Result<()> {
    let Stream::NonResident { runs, offset, .. } = s else {
        return Err(NtfsError::Unsupported { structure, offset: 0, detail: "resident bitmap" });
    };
    // Group consecutive bytes.
    let mut groups: Vec<(u64, Vec<u8>)> = Vec::new();
    for (&byte, &mask) in bits {
        match groups.last_mut() {
            Some((start, masks)) if *start + masks.len() as u64 == byte => masks.push(mask),
            _ => groups.push((byte, vec![mask])),
        }
    }
    for (start, masks) in groups {
        let mut cur = vec![0u8; masks.len()];
        v.read_stream(dev, s, start, &mut cur).map_err(|_| corrupt(structure, *offset, "bit beyond the bitmap"))?;
        for (i, (c, m)) in cur.iter_mut().zip(&masks).enumerate() {
            if *c & m != *m {
                return Err(corrupt(structure, *offset + start + i as u64, "bit already clear: the volume disagrees with the file (cross-linked?)"));
            }
            *c &= !m;
        }
        let ex: Vec<(u64, u64)> = runs::extents(runs, v.cluster(), start, masks.len() as u64, *offset)?
            .into_iter()
            .map(|(p, l)| p.map(|p| (p, l)).ok_or(corrupt(structure, *offset, "sparse bitmap")))
            .collect::<Result<_>>()?;
        plan.push_extents(structure, &ex, &cur, reason);
    }
    Ok(())
}

/// Removes the attribute at `off` (`len` bytes) from a record in memory.
fn remove_attr(rec: &mut Record, off: usize, len: usize) -> Result<()> {
    let used = rec.bytes_in_use();
    if off + len > used {
        return Err(corrupt("attribute", rec.offset + off as u64, "outside the record"));
    }
    rec.data.copy_within(off + len..used, off);
    rec.data[used - len..used].fill(0);
    put32(&mut rec.data, 0x18, (used - len) as u32);
    Ok(())
}

/// What an index edit looks for.
enum Key {
    /// A directory entry: this exact name of this file.
    Name { name: Vec<u16>, file_ref: u64 },
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

/// Edits one directory's index in memory and records a write per change.
struct Editor<'a> {
    v: &'a Ntfs,
    dir: Directory,
    blocks: BTreeMap<u64, Node>,
    plan: Plan,
}

impl Editor<'_> {
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
                let old_len = le32(&rec.data, ao + 4).unwrap_or(0) as usize;
                let vo = le16(&rec.data, ao + 0x14).unwrap_or(0) as usize;
                let val = &self.dir.root.buf;
                let new_len = (vo + val.len() + 7) & !7;
                let used = rec.bytes_in_use();
                let new_used = used - old_len + new_len;
                if new_used + 8 > rec.data.len() {
                    return Err(NtfsError::NoSpace { structure: "$INDEX_ROOT", offset: at });
                }
                let mut d = Vec::with_capacity(rec.data.len());
                d.extend_from_slice(&rec.data[..ao + vo]);
                d.extend_from_slice(val);
                d.resize(ao + new_len, 0);
                d.extend_from_slice(&rec.data[ao + old_len..used]);
                d.resize(rec.data.len(), 0);
                put32(&mut d, ao + 4, new_len as u32);
                put32(&mut d, ao + 0x10, val.len() as u32);
                put32(&mut d, 0x18, new_used as u32);
                rec.data = d;
                let mut r = rec.clone();
                record_write(self.v, &mut self.plan, &mut r, reason)?;
                self.dir.file.records[ri] = r;
            }
            NodeLoc::Block(vcn) => {
                let ex = self.v.block_extents(&self.dir, vcn)?;
                let node = self.blocks.get_mut(&vcn).ok_or(corrupt("index block", 0, "internal"))?;
                let disk = write_fixups(&node.buf, "index block", node.offset)?;
                commit_usn(&mut node.buf, &disk);
                self.plan.push_extents("index block", &ex, &disk, reason);
            }
        }
        Ok(())
    }

    /// Finds the entry for `key`, searching the in-memory nodes.
    fn find(&mut self, dev: &mut impl BlockDevice, key: &Key) -> Result<Option<Vec<(NodeLoc, usize)>>> {
        let mut path = Vec::new();
        let mut steps = 0usize;
        if self.search(dev, NodeLoc::Root, key, 0, &mut path, &mut steps)? {
            Ok(Some(path))
        } else {
            Ok(None)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn search(&mut self, dev: &mut impl BlockDevice, loc: NodeLoc, key: &Key, depth: usize, path: &mut Vec<(NodeLoc, usize)>, steps: &mut usize) -> Result<bool> {
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
                        let k = e.key.as_ref().ok_or(corrupt("directory index", self.dir.root.offset, "entry without a file name"))?;
                        let o = self.v.upcase.cmp(name, &k.name);
                        (o, o == core::cmp::Ordering::Equal && ref_record(e.file_ref) == ref_record(*file_ref) && k.name == *name)
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

    /// Removes the entry of `file_ref` named `name`, keeping the tree valid and sorted.
    fn remove(&mut self, dev: &mut impl BlockDevice, key: &Key, shown: &str) -> Result<()> {
        let path = self.find(dev, key)?.ok_or(corrupt("directory index", self.dir.root.offset, "no index entry for a name of the file"))?;
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
            Some(sub) => {
                // Successor first (as ntfs-3g does); when it does not fit the
                // node, the predecessor (nothing was emitted yet: undo and retry).
                let saved = self.node(dev, loc)?.clone();
                let n_writes = self.plan.writes.len();
                match self.replace_interior(dev, loc, idx, &e, sub, shown, true) {
                    Err(NtfsError::NoSpace { .. }) => {
                        *self.node(dev, loc)? = saved;
                        self.plan.writes.truncate(n_writes);
                        self.replace_interior(dev, loc, idx, &e, sub, shown, false)?;
                    }
                    r => r?,
                }
            }
        }
        Ok(())
    }

    /// Replaces interior entry `e` (index `idx` of node `loc`, sub-node `sub`)
    /// by its successor (the first key of the leftmost leaf right of it) or
    /// its predecessor (the last key of the rightmost leaf under `sub`), then
    /// removes that key from its leaf. The node is written before the leaf.
    #[allow(clippy::too_many_arguments)]
    fn replace_interior(&mut self, dev: &mut impl BlockDevice, loc: NodeLoc, idx: usize, e: &Entry, sub: u64, shown: &str, successor: bool) -> Result<()> {
        let entries = self.entries(dev, loc)?;
        let (mut cur, mut parent) = if successor {
            let next_sub = entries.get(idx + 1).and_then(|n| n.sub).ok_or(corrupt("directory index", self.dir.root.offset, "interior entry without a following sub-node"))?;
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
            return Err(NtfsError::Unsupported { structure: "index block", offset: self.node(dev, cur)?.offset, detail: "replacement leaf is empty" });
        }
        let x = if successor { leaf_es[0].clone() } else { leaf_es[leaf_es.len() - 2].clone() };
        let moved = entry_bytes(self.node(dev, cur)?, &x, Some(sub));
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

    /// When leaf `vcn` (pointed to by entry `pidx` of node `ploc`) has no
    /// key left, moves a neighbouring separator into a sibling leaf, unlinks
    /// the empty leaf and frees it in the index bitmap. If no sibling has
    /// room, the empty leaf stays (a valid, if wasteful, tree).
    fn collapse_if_empty(&mut self, dev: &mut impl BlockDevice, (ploc, pidx): (NodeLoc, usize), vcn: u64) -> Result<()> {
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
            let k = entry_bytes(self.node(dev, ploc)?, &pe, None);
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
            let k = entry_bytes(self.node(dev, ploc)?, &prev, None);
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
            let end = entry_bytes(self.node(dev, ploc)?, &pe, None);
            let root = self.node(dev, ploc)?;
            root.splice(pe.off, pe.len, &end)?;
            let hdr = root.hdr;
            if let Some(f) = root.buf.get_mut(hdr + 12) {
                *f &= !super::index::LARGE_INDEX;
            }
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
                let Some(cur) = attrs.iter().find(|x| x.type_code == attr::BITMAP && x.name == iname) else { return Ok(()) };
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

