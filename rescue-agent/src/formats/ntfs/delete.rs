//! The delete planner: which bytes of which structures change when a file
//! (or one of its names) is deleted. Reads only; the plan is executed by
//! [`super::plan::execute`] in the crash-safe order documented there.

use super::attr::{self, Form};
use super::attrlist;
use super::bitmap::{add_bits, clear_bits};
use super::file::File;
use super::file::Stream;
use super::filename::{DOS, WIN32};
use super::fs::{Ntfs, FIRST_USER_RECORD, MFT};
use super::gate::Clearance;
use super::index_edit::{Editor, Key};
use super::plan::{record_write, Plan};
use super::record::{Record, IN_USE};
use super::runs;
use super::{corrupt, le32, put16, put64, FileRef, NtfsError, Result};
use crate::block::BlockDevice;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

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
///
/// One long function on purpose: it pushes the writes in the crash-safe
/// order the module docs of [`super::plan`] give (index, records, `$MFT`
/// bitmap, `$Bitmap`), and that order is easiest to check read top to bottom.
pub fn plan_delete(
    v: &Ntfs,
    dev: &mut impl BlockDevice,
    _gate: &Clearance,
    dir_ref: FileRef,
    file_ref: FileRef,
    names: &[Vec<u16>],
) -> Result<Plan> {
    let n = file_ref.record();
    let f = v.load_file(dev, n)?;
    let base = f.base().clone();
    if base.file_ref() != file_ref && file_ref.seq() != 0 {
        return Err(NtfsError::Stale { offset: base.offset });
    }
    if n < FIRST_USER_RECORD {
        return Err(NtfsError::Refused { offset: base.offset, detail: "system file" });
    }
    if base.is_dir() {
        return Err(NtfsError::Refused { offset: base.offset, detail: "directories are not deleted" });
    }
    let all = f.names()?;
    let mut remove: Vec<usize> = Vec::new(); // indexes into `all`
    for (i, (_, _, fname)) in all.iter().enumerate() {
        if fname.parent.record() == dir_ref.record() && names.contains(&fname.name) {
            remove.push(i);
        }
    }
    if remove.is_empty() {
        return Err(NtfsError::Stale { offset: base.offset });
    }
    let has = |ns: u8, rm: &Vec<usize>| rm.iter().any(|&i| all[i].2.namespace == ns);
    let partner = if has(WIN32, &remove) {
        Some(DOS)
    } else if has(DOS, &remove) {
        Some(WIN32)
    } else {
        None
    };
    if let Some(p) = partner {
        for (i, (_, _, fname)) in all.iter().enumerate() {
            if fname.namespace == p && fname.parent.record() == dir_ref.record() && !remove.contains(&i) {
                remove.push(i);
            }
        }
    }
    let mut plan = Plan::default();

    // 1. The parent's index.
    let dir = v.open_dir(dev, dir_ref)?;
    let mut ed = Editor::new(v, dir, &plan);
    for &i in &remove {
        let fname = &all[i].2;
        ed.remove(dev, &Key::Name { name: fname.name.clone(), file_ref }, &fname.name_string())?;
    }
    plan.extend(ed.into_plan());

    let keep = all.len() - remove.len();
    if keep > 0 {
        // 2a. Hard link: drop the removed $FILE_NAMEs from the records
        // holding them (and from the attribute list), keep the file.
        let gone: Vec<(usize, &attr::Attr)> = remove.iter().map(|&i| (all[i].0, all[i].1)).collect();
        let mut recs = drop_names(v, dev, &mut plan, &f, &gone)?;
        let mut rec = recs.remove(&0).unwrap_or_else(|| base.clone());
        // Every $FILE_NAME counts as a link, a DOS name too (as Windows and ntfs-3g count them).
        let lc = rec.link_count().saturating_sub(remove.len() as u16).max(1);
        put16(&mut rec.data, 0x12, lc)?;
        record_write(v, &mut plan, &mut rec, "remove the deleted names from the hard-linked file's record")?;
        for (_, mut r) in recs {
            if r.bytes_in_use() <= r.attrs_offset() + 8 {
                // Emptied extension record: freed, as ntfs-3g does.
                free_record(v, &mut plan, &r, "free the emptied extension record")?;
                let mft = v.load_file(dev, MFT)?;
                let mbm = mft.stream(attr::BITMAP, &[])?.ok_or(corrupt("$MFT", mft.base().offset, "no $BITMAP"))?;
                let mut bits = BTreeMap::new();
                add_bits(&mut bits, r.number, 1, "$MFT bitmap", mft.base().offset)?;
                clear_bits(v, dev, &mut plan, &mbm, &bits, "$MFT bitmap", "mark the extension record free")?;
            } else {
                record_write(v, &mut plan, &mut r, "remove a deleted name from the file's extension record")?;
            }
        }
        plan.notes.push(format!("file has {keep} other name(s): record {n} kept, link count now {lc}"));
        return Ok(plan);
    }
    // Entries other indexes keep for the file go before its record is freed
    // (as Windows and ntfs-3g do): its object ID in `$ObjId:$O`, its reparse
    // tag in `$Reparse:$R`.
    if let Some((ri, oa)) = f.attrs.iter().find(|(_, a)| a.type_code == attr::OBJECT_ID) {
        match oa.value(&f.records[*ri].data).and_then(|v| v.get(..16)) {
            Some(guid) => unindex(v, dev, &mut plan, OBJID, guid.to_vec())?,
            None => plan.notes.push(String::from("file has an unreadable object ID: $ObjId left as it is")),
        }
    }
    if let Some(tag) = reparse_tag(v, dev, &f)? {
        let mut key = tag.to_le_bytes().to_vec();
        key.extend_from_slice(&base.file_ref().0.to_le_bytes());
        unindex(v, dev, &mut plan, REPARSE, key)?;
    }

    // 2b. Free the records (base first).
    for rec in &f.records {
        let what = if rec.number == n { "free the file's MFT record" } else { "free an extension record of the file" };
        free_record(v, &mut plan, rec, what)?;
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
                        return Err(corrupt(
                            "data runs",
                            f.records[*ri].offset,
                            "file claims more clusters than the volume has",
                        ));
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

/// A view index that lists files by a key of theirs: the index file's path,
/// the index name, and what its key is (for the plan).
struct ViewIndex {
    path: &'static str,
    index: &'static str,
    what: &'static str,
}

/// `$Extend\$ObjId:$O`: object GUID -> file.
const OBJID: ViewIndex = ViewIndex { path: "$Extend\\$ObjId", index: "$O", what: "an object ID" };
/// `$Extend\$Reparse:$R`: (reparse tag, file reference) -> nothing.
const REPARSE: ViewIndex = ViewIndex { path: "$Extend\\$Reparse", index: "$R", what: "a reparse point" };

/// Plans removing `key` from a view index (both collate as little-endian
/// u32s, `COLLATION_NTOFS_ULONGS`). A volume without that index, or an index
/// without the key, is noted in the plan, not an error: there is nothing to undo.
fn unindex(v: &Ntfs, dev: &mut impl BlockDevice, plan: &mut Plan, ix: ViewIndex, key: Vec<u8>) -> Result<()> {
    let Ok(at) = v.lookup(dev, ix.path) else {
        plan.notes.push(format!("file has {} but the volume has no {} index", ix.what, ix.path));
        return Ok(());
    };
    let file = v.load_file(dev, at.record())?;
    let name: Vec<u16> = ix.index.encode_utf16().collect();
    let mut ed = Editor::new(v, v.open_index(file, &name, 0, 0x13)?, plan);
    if ed.find(dev, &Key::Ulongs(key.clone()))?.is_none() {
        plan.notes.push(format!("file has {} that {} does not list", ix.what, ix.path));
        return Ok(());
    }
    ed.remove(dev, &Key::Ulongs(key), ix.what)?;
    let mut p = ed.into_plan();
    for w in &mut p.writes {
        w.reason = format!("{}:{}: {}", ix.path, ix.index, w.reason);
    }
    plan.extend(p);
    Ok(())
}

/// The reparse tag of a file's `$REPARSE_POINT` (its first four bytes), if it has one.
fn reparse_tag(v: &Ntfs, dev: &mut impl BlockDevice, f: &File) -> Result<Option<u32>> {
    let Some(s) = f.stream(attr::REPARSE_POINT, &[])? else { return Ok(None) };
    let value = v.read_all(dev, &s, 16 * 1024)?;
    le32(&value, 0).map(Some).ok_or(corrupt("$REPARSE_POINT", f.base().offset, "shorter than its tag"))
}

/// Plans freeing MFT record `rec`: in-use flag cleared, sequence number bumped.
fn free_record(v: &Ntfs, plan: &mut Plan, rec: &Record, what: &str) -> Result<()> {
    let mut r = rec.clone();
    let (flags, seq) = (rec.flags() & !IN_USE, next_seq(rec.seq()));
    put16(&mut r.data, 0x16, flags)?;
    put16(&mut r.data, 0x10, seq)?;
    record_write(v, plan, &mut r, &format!("{what} {} (sequence {} -> {seq})", rec.number, rec.seq()))
}

/// The file's records with the `$FILE_NAME` attributes `gone` (record
/// index, attribute) removed, keyed by record index; when the file has an
/// attribute list, their entries leave it too, and the list itself goes
/// once it names no extension record. In memory only, except for a
/// non-resident list: its new bytes (zeros after them up to the old size)
/// are planned first, before the base record that shrinks its size.
fn drop_names(
    v: &Ntfs,
    dev: &mut impl BlockDevice,
    plan: &mut Plan,
    f: &File,
    gone: &[(usize, &attr::Attr)],
) -> Result<BTreeMap<usize, Record>> {
    let mut recs: BTreeMap<usize, Record> = BTreeMap::new();
    let mut by_rec: BTreeMap<usize, Vec<&attr::Attr>> = BTreeMap::new();
    for (ri, a) in gone {
        by_rec.entry(*ri).or_default().push(a);
    }
    // Highest offset first, so that the offsets still to remove stay valid.
    for (ri, mut attrs) in by_rec {
        attrs.sort_by_key(|a| core::cmp::Reverse(a.offset));
        let mut r = f.records[ri].clone();
        for a in attrs {
            r.remove_attr(a.offset, a.length)?;
        }
        recs.insert(ri, r);
    }
    let Some((li, la)) = f.attrs.iter().find(|(_, a)| a.type_code == attr::ATTRIBUTE_LIST) else { return Ok(recs) };
    let base = f.base();
    let at = base.offset + la.offset as u64;
    if *li != 0 {
        return Err(corrupt("attribute list", at, "outside the base record"));
    }
    let list = f.stream(attr::ATTRIBUTE_LIST, &[])?.ok_or(corrupt("attribute list", at, "unreadable"))?;
    let value = v.read_all(dev, &list, 1 << 20)?;
    let (mut kept, mut dropped, mut elsewhere) = (Vec::with_capacity(value.len()), 0, false);
    for e in attrlist::parse(&value, at)? {
        let drop = gone.iter().any(|(ri, a)| {
            e.type_code == attr::FILE_NAME && e.record_ref.record() == f.records[*ri].number && e.instance == a.instance
        });
        if drop {
            dropped += 1;
        } else {
            kept.extend_from_slice(&value[e.at.0..e.at.0 + e.at.1]);
            elsewhere |= e.record_ref.record() != base.number;
        }
    }
    if dropped != gone.len() {
        return Err(corrupt("attribute list", at, "does not list a name the file has"));
    }
    let r = recs.entry(0).or_insert_with(|| base.clone());
    match &list {
        _ if !elsewhere && matches!(la.form, Form::Resident { .. }) => r.remove_attr(la.offset, la.length)?,
        Stream::Resident(_) => {
            r.set_resident_value(la.offset, &kept).ok_or(corrupt("attribute list", at, "internal: list grew"))?
        }
        Stream::NonResident { runs, data_size, .. } => {
            // The clusters stay allocated (as ntfs-3g keeps them); only the sizes shrink.
            let ex: Vec<(u64, u64)> = runs::extents(runs, v.cluster(), 0, *data_size, at)?
                .into_iter()
                .map(|(p, l)| p.map(|p| (p, l)).ok_or(corrupt("attribute list", at, "sparse")))
                .collect::<Result<_>>()?;
            let mut bytes = kept.clone();
            bytes.resize(*data_size as usize, 0);
            plan.push_extents("attribute list", &ex, &bytes, "remove the deleted names from the attribute list");
            put64(&mut r.data, la.offset + 0x30, kept.len() as u64)?;
            put64(&mut r.data, la.offset + 0x38, kept.len() as u64)?;
        }
    }
    Ok(recs)
}
