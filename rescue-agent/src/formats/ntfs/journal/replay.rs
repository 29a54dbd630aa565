//! NTFS restart, planned in memory: the checkpoint and its table dumps,
//! the analysis pass to the end of the log, redo from the oldest dirty page
//! (a record is applied only where the page's LSN is older), undo of the
//! transactions that never committed (following undo-next LSNs and skipping
//! compensation records). The result is a [`Plan`] of whole-page writes and
//! a [`Summary`]; nothing is written here.
//!
//! Interruption: every page is written whole, once, with the LSN of the
//! last record redone on it, so a second replay skips what already landed.
//! A page undone gets the LSN after the log's last record (below any LSN
//! Windows will write next); a second replay leaves such pages alone.

#![deny(clippy::indexing_slicing)]

use super::super::fs::{Ntfs, MFT};
use super::super::plan::{Plan, PlanWrite, WriteData};
use super::super::record::{apply_fixups, write_fixups};
use super::super::{attr, corrupt, le64, put64, NtfsError, Result};
use super::client::{self, op, Checkpoint, DirtyPage, OpenAttr, TxState, Update};
use super::log::{Log, LogRecord, CLIENT_RECORD, CLIENT_RESTART};
use super::ops::{self, Edit, PageKind};
use crate::block::BlockDevice;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// What a replay does (or would do), for the screen, the report and `rescue journal`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// The checkpoint record restart starts from.
    pub checkpoint_lsn: u64,
    /// Where analysis started (the checkpoint's start).
    pub analysis_lsn: u64,
    /// Where redo started (the oldest dirty page's LSN; 0: nothing to redo).
    pub redo_lsn: u64,
    /// The last record in the log.
    pub end_lsn: u64,
    /// Records read from the analysis start to the end.
    pub records: usize,
    /// Transactions the analysis saw committed, and not.
    pub committed: usize,
    /// Transactions left uncommitted (undone).
    pub uncommitted: usize,
    /// Transactions with at least one operation redone.
    pub redone_transactions: usize,
    /// Operations redone.
    pub redone: usize,
    /// Operations undone.
    pub undone: usize,
    /// Operations by name (redone and undone together).
    pub by_op: BTreeMap<&'static str, usize>,
    /// Pages the replay changes.
    pub pages: usize,
}

impl core::fmt::Display for Summary {
    /// "N transactions, M operations, K pages": what a replay does, in one line.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let ops = self.redone + self.undone;
        write!(f, "{} transactions, {ops} operations, {} pages", self.redone_transactions, self.pages)
    }
}

/// One page being replayed: where it is, what it is, its bytes (fixups undone).
struct Page {
    kind: PageKind,
    extents: Vec<(u64, u64)>,
    mem: Vec<u8>,
    original: Vec<u8>,
    /// The MFT record number (record pages).
    record: Option<u64>,
    fixups: bool,
}

/// The result of planning a replay.
pub struct Replay {
    /// The writes (pages, then the restart areas last).
    pub plan: Plan,
    /// What it does.
    pub summary: Summary,
}

struct Restart<'a, D> {
    v: &'a Ntfs,
    dev: &'a mut D,
    log: &'a Log,
    attrs: BTreeMap<u32, OpenAttr>,
    dirty: Vec<DirtyPage>,
    pages: BTreeMap<u64, Page>,
    summary: Summary,
    end_lsn: u64,
}

fn load_table(log: &Log, at: (u64, u32)) -> Result<Option<Vec<u8>>> {
    if at.0 == 0 || at.1 == 0 {
        return Ok(None);
    }
    let rec = log.record(at.0)?;
    let table = client::parse_update(&rec.data, log.at)?.redo;
    Ok(Some(table.ok_or(corrupt("$LogFile table dump", log.at, "dump runs past its record"))?))
}

/// Plans the replay of `log` (the volume's `$LogFile`, at volume byte `log_at` contiguous or not).
pub fn plan(v: &Ntfs, dev: &mut impl BlockDevice, log: &Log) -> Result<Replay> {
    let rs = &log.restart;
    let cp_rec = log.record(rs.client_restart_lsn)?;
    if cp_rec.kind != CLIENT_RESTART {
        return Err(corrupt("$LogFile", log.at, "the client restart LSN does not name a checkpoint record"));
    }
    let cp: Checkpoint = client::parse_checkpoint(&cp_rec.data, log.at)?;
    let mut attrs = BTreeMap::new();
    if let Some(t) = load_table(log, cp.open_attrs)? {
        for (off, e) in client::table_entries(&t, log.at)? {
            attrs.insert(off, client::open_attr(&e, cp.major));
        }
    }
    let mut dirty = Vec::new();
    if let Some(t) = load_table(log, cp.dirty_pages)? {
        for e in client::table_entries(&t, log.at)?.values() {
            dirty.push(client::dirty_page(e, cp.major));
        }
    }
    let mut txs = BTreeMap::new();
    if let Some(t) = load_table(log, cp.transactions)? {
        for (off, e) in client::table_entries(&t, log.at)? {
            txs.insert(off, client::transaction(&e));
        }
    }
    let start = if cp.start != 0 { cp.start } else { rs.client_restart_lsn };
    let records = log.records_from(start)?;
    let end_lsn = records.last().map_or(start, |r| r.lsn);
    let summary = Summary {
        checkpoint_lsn: rs.client_restart_lsn,
        analysis_lsn: start,
        end_lsn,
        records: records.len(),
        ..Summary::default()
    };
    let mut r = Restart { v, dev, log, attrs, dirty, pages: BTreeMap::new(), summary, end_lsn };

    // Analysis: transactions, open attributes and dirty pages to the end of the log.
    for rec in records.iter().filter(|x| x.kind == CLIENT_RECORD) {
        let u = client::parse_update(&rec.data, log.at)?;
        let tx = txs.entry(rec.transaction).or_insert(client::Transaction {
            state: TxState::Active,
            first_lsn: rec.lsn,
            undo_next_lsn: 0,
        });
        match u.redo_op {
            op::COMMIT => {
                r.summary.committed += 1;
                tx.state = TxState::Committed;
            }
            op::PREPARE => tx.state = TxState::Prepared,
            op::FORGET => {
                r.summary.committed += 1;
                txs.remove(&rec.transaction);
                continue;
            }
            op::CLR => tx.undo_next_lsn = rec.undo_next_lsn,
            _ if u.undo_op != op::NOOP => tx.undo_next_lsn = rec.lsn,
            _ => {}
        }
        if u.redo_op == op::OPEN_NONRESIDENT {
            r.attrs.insert(u.target_attr as u32, client::open_attr(u.redo.as_deref().unwrap_or_default(), cp.major));
        }
        if ops::target(u.redo_op).is_some() && r.dirty_entry(&u).is_none() {
            r.dirty.push(DirtyPage {
                target_attr: u.target_attr as u32,
                vcn: u.target_vcn,
                oldest_lsn: rec.lsn,
                lcns: u.lcns.clone(),
            });
        }
    }
    r.summary.uncommitted = txs.values().filter(|t| t.state != TxState::Committed && t.undo_next_lsn != 0).count();

    // Redo: from the oldest dirty page, every record whose page is older.
    let redo_lsn = r.dirty.iter().map(|d| d.oldest_lsn).filter(|&l| l != 0).min().unwrap_or(0);
    r.summary.redo_lsn = redo_lsn;
    let mut redone_tx = BTreeSet::new();
    if redo_lsn != 0 {
        // The analysis' records when redo starts among them; else the log from further back.
        let older: Vec<LogRecord>;
        let redo = if redo_lsn >= start {
            records.get(records.partition_point(|x| x.lsn < redo_lsn)..).unwrap_or_default()
        } else {
            older = log.records_from(redo_lsn)?;
            &older
        };
        for rec in redo.iter().filter(|x| x.kind == CLIENT_RECORD) {
            let u = client::parse_update(&rec.data, log.at)?;
            if ops::is_bookkeeping(u.redo_op) {
                continue;
            }
            if ops::target(u.redo_op).is_none() {
                return Err(NtfsError::JournalOp { lsn: rec.lsn, op: client::op_name(u.redo_op) });
            }
            let Some(d) = r.dirty_entry(&u) else { continue };
            if rec.lsn < d.oldest_lsn {
                continue;
            }
            if r.apply(&u, u.redo_op, Some(rec.lsn))? {
                redone_tx.insert(rec.transaction);
                r.summary.redone += 1;
            }
        }
    }
    r.summary.redone_transactions = redone_tx.len();

    // Undo: every transaction that never committed, newest record first.
    for tx in txs.values().filter(|t| t.state != TxState::Committed) {
        let mut next = tx.undo_next_lsn;
        let mut steps = 0usize;
        while next != 0 {
            steps += 1;
            if steps > records.len() + 1 {
                return Err(corrupt("$LogFile", log.at, "undo chain loops"));
            }
            let rec = log.record(next)?;
            let u = client::parse_update(&rec.data, log.at)?;
            next = rec.undo_next_lsn;
            if u.redo_op == op::CLR || ops::is_bookkeeping(u.undo_op) {
                continue;
            }
            if ops::target(u.undo_op).is_none() {
                return Err(NtfsError::JournalOp { lsn: rec.lsn, op: client::op_name(u.undo_op) });
            }
            if r.apply(&u, u.undo_op, None)? {
                r.summary.undone += 1;
            }
        }
    }
    let plan = r.writes()?;
    Ok(Replay { plan, summary: r.summary })
}

impl<D: BlockDevice> Restart<'_, D> {
    /// The dirty page entry covering the update's page.
    fn dirty_entry(&self, u: &Update) -> Option<DirtyPage> {
        self.dirty
            .iter()
            .find(|d| {
                d.target_attr == u.target_attr as u32
                    && d.vcn <= u.target_vcn
                    && u.target_vcn < d.vcn.saturating_add(d.lcns.len().max(1) as u64)
            })
            .cloned()
    }

    /// Applies `code` with `data` to the update's page; `redo_lsn` is the
    /// record's LSN for a redo (skipped where the page is as new), `None`
    /// for an undo. Returns whether the operation was applied.
    fn apply(&mut self, u: &Update, code: u16, redo_lsn: Option<u64>) -> Result<bool> {
        let Some(kind) = ops::target(code) else { return Ok(false) };
        let oa = self.attrs.get(&(u.target_attr as u32)).cloned().ok_or(corrupt(
            "$LogFile",
            self.log.at,
            "update names an attribute the open attribute table lacks",
        ))?;
        let key = self.load(u, kind, &oa)?;
        let (end, at0) = (self.end_lsn, self.log.at);
        let Some(page) = self.pages.get_mut(&key) else { return Ok(false) };
        // Raw writes of whole buffers carry no LSN check (as NTFS does): they are idempotent.
        let checked = page.fixups && code != op::UPDATE_NONRESIDENT;
        let page_lsn = if page.fixups { le64(&page.mem, 8).unwrap_or(0) } else { 0 };
        if page.fixups && page_lsn > end {
            return Ok(false); // undone by an earlier replay: final
        }
        if let Some(l) = redo_lsn {
            if checked && page_lsn >= l {
                return Ok(false);
            }
        }
        let (data, other) = if redo_lsn.is_some() { (&u.redo, &u.undo) } else { (&u.undo, &u.redo) };
        let data =
            data.as_deref().ok_or(corrupt("$LogFile update record", at0, "the data to replay runs past its record"))?;
        let other_len = other.as_ref().map_or(0, Vec::len);
        let base = if page.kind == PageKind::Data { u.cluster_block_offset as usize * 512 } else { 0 };
        let at = page.extents.first().map_or(0, |e| e.0);
        let edit = Edit {
            op: code,
            roff: base + u.record_offset as usize,
            aoff: u.attribute_offset as usize,
            data,
            other_len,
            at,
        };
        ops::apply(page.kind, &mut page.mem, &edit)?;
        // A page written from scratch gets its fixups from its new header.
        if !page.fixups && matches!(page.mem.get(0..4), Some(b"FILE") | Some(b"INDX")) {
            page.fixups = true;
        }
        if page.fixups && code != op::UPDATE_NONRESIDENT {
            put64(&mut page.mem, 8, redo_lsn.unwrap_or(end.saturating_add(1)))?;
        }
        *self.summary.by_op.entry(client::op_name(code)).or_insert(0) += 1;
        Ok(true)
    }

    /// Reads the update's page into the overlay (once) and returns its key.
    fn load(&mut self, u: &Update, kind: PageKind, oa: &OpenAttr) -> Result<u64> {
        let cs = self.v.cluster();
        let at = self.log.at;
        let first = *u.lcns.first().ok_or(corrupt("$LogFile update record", at, "no LCN for its page"))?;
        let kind = match (kind, oa.attr_type) {
            (PageKind::Data, attr::INDEX_ALLOCATION) => PageKind::Index,
            (PageKind::Data, _) if oa.file & 0xFFFF_FFFF_FFFF == MFT && oa.attr_type == attr::DATA => PageKind::Record,
            (k, _) => k,
        };
        let size = match kind {
            PageKind::Record => self.v.boot.record_size as u64,
            PageKind::Index => oa.bytes_per_index as u64,
            PageKind::Data => u.lcns.len() as u64 * cs,
        };
        let skip = if kind == PageKind::Data { 0 } else { u.cluster_block_offset as u64 * 512 };
        if !(512..=(1 << 21)).contains(&size) || skip + size > u.lcns.len().max(1) as u64 * cs.max(size) {
            return Err(corrupt("$LogFile update record", at, "page size out of range"));
        }
        // The page's extents: `size` bytes from `skip` into the listed clusters.
        let mut extents: Vec<(u64, u64)> = Vec::new();
        let (mut pos, mut left) = (skip, size);
        for &lcn in &u.lcns {
            if left == 0 {
                break;
            }
            if pos >= cs {
                pos -= cs;
                continue;
            }
            let take = (cs - pos).min(left);
            let phys = lcn.checked_mul(cs).and_then(|p| p.checked_add(pos));
            let phys = phys
                .filter(|p| p.checked_add(take).is_some_and(|e| e <= self.v.boot.volume_bytes()))
                .ok_or(corrupt("$LogFile update record", at, "page lies beyond the volume"))?;
            match extents.last_mut() {
                Some(l) if l.0 + l.1 == phys => l.1 += take,
                _ => extents.push((phys, take)),
            }
            pos = 0;
            left -= take;
        }
        if left != 0 {
            // One LCN for a record or buffer inside one cluster bigger than it.
            let phys = first.checked_mul(cs).and_then(|p| p.checked_add(skip));
            let phys = phys.filter(|p| p.checked_add(size).is_some_and(|e| e <= self.v.boot.volume_bytes()));
            extents = vec![(phys.ok_or(corrupt("$LogFile update record", at, "page lies beyond the volume"))?, size)];
        }
        let key = extents.first().map_or(0, |e| e.0);
        if let Some(p) = self.pages.get(&key) {
            if p.mem.len() as u64 != size || p.kind != kind {
                return Err(corrupt("$LogFile update record", key, "two records see one page differently"));
            }
            return Ok(key);
        }
        let end = key + size;
        if self.pages.iter().any(|(&k, p)| k < end && key < k + p.mem.len() as u64) {
            return Err(corrupt("$LogFile update record", key, "pages overlap"));
        }
        let mut mem = vec![0u8; size as usize];
        let mut o = 0usize;
        for &(p, l) in &extents {
            let dst = mem.get_mut(o..o + l as usize).ok_or(corrupt("$LogFile", key, "internal extent"))?;
            self.dev.read_at(p, dst)?;
            o += l as usize;
        }
        let original = mem.clone();
        let record = match kind {
            PageKind::Record => {
                let rs = self.v.boot.record_size as u64;
                let vbo = u.target_vcn.checked_mul(cs).and_then(|b| b.checked_add(u.cluster_block_offset as u64 * 512));
                let n = vbo.ok_or(corrupt("$LogFile update record", key, "VCN beyond any $MFT"))? / rs;
                let ex = self.v.record_extents(n)?;
                if ex.first().map(|e| e.0) != Some(key) {
                    return Err(corrupt("$LogFile update record", key, "its LCN is not where $MFT keeps that record"));
                }
                Some(n)
            }
            _ => None,
        };
        let magic_ok =
            matches!((kind, mem.get(0..4)), (PageKind::Record, Some(b"FILE")) | (PageKind::Index, Some(b"INDX")));
        let fixups = magic_ok && apply_fixups(&mut mem, "journal page", key).is_ok();
        if magic_ok && !fixups {
            return Err(corrupt("journal page", key, "torn page (update sequence mismatch) the log must rewrite"));
        }
        self.pages.insert(key, Page { kind, extents, mem, original, record, fixups });
        Ok(key)
    }

    /// The writes: every changed page, whole (records 0–3 also to `$MFTMirr`), counted in the summary.
    fn writes(&mut self) -> Result<Plan> {
        let mut plan = Plan::default();
        for (&key, p) in &self.pages {
            let disk = if p.fixups { write_fixups(&p.mem, "journal page", key)? } else { p.mem.clone() };
            if disk == p.original || (p.fixups && p.mem == fixed(&p.original, key)) {
                continue;
            }
            self.summary.pages += 1;
            let structure = match p.kind {
                PageKind::Record => "MFT record",
                PageKind::Index => "index block",
                PageKind::Data => "attribute data",
            };
            let reason = String::from("journal replay");
            let mut o = 0usize;
            for &(at, l) in &p.extents {
                let data = disk.get(o..o + l as usize).unwrap_or_default().to_vec();
                plan.writes.push(PlanWrite {
                    structure,
                    offset: at,
                    len: l,
                    data: WriteData::Bytes(data),
                    reason: reason.clone(),
                });
                o += l as usize;
            }
            if let Some(n) = p.record.filter(|&n| n < 4) {
                let mirr = self.v.load_file_mirror_extents(n)?;
                plan.push_extents("$MFTMirr", &mirr, &disk, &format!("{reason} (mirror)"));
            }
        }
        Ok(plan)
    }
}

fn fixed(raw: &[u8], at: u64) -> Vec<u8> {
    let mut m = raw.to_vec();
    let _ = apply_fixups(&mut m, "journal page", at);
    m
}
