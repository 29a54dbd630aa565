//! The create planner: which bytes change when a file is put back into a
//! directory (a restore from our own backup). Reads only; the plan is
//! executed by [`super::plan::execute`].
//!
//! Writes come in an order where stopping after any one of them leaves a
//! volume that mounts with nothing cross-linked (at worst, space leaks until
//! chkdsk):
//!
//! 1. the file's clusters (content of a non-resident `$DATA`), free until now;
//! 2. their `$Bitmap` bits;
//! 3. the new record's `$MFT` bitmap bit;
//! 4. the MFT record itself (in use, its attributes);
//! 5. the parent's index entries, last (a node that splits as the delete
//!    planner's order says; a DOS name after its long name): until then no
//!    directory names the file.

use super::attr;
use super::bitmap::{add_bits, find_free_clusters, set_bits};
use super::filename::{DOS, POSIX, WIN32, WIN32_AND_DOS};
use super::fs::{Ntfs, FIRST_USER_RECORD, MFT};
use super::gate::Clearance;
use super::index_edit::{Editor, Key};
use super::plan::{record_write, Plan};
use super::record::{Record, IN_USE};
use super::runs::{encode, Run};
use super::{corrupt, put16, put32, put64, FileRef, NtfsError, Result};
use crate::block::BlockDevice;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// A file to create: where, under which names, with which metadata and content.
#[derive(Clone, Debug)]
pub struct NewFile<'a> {
    /// The directory that gets the file (its sequence number checked when non-zero).
    pub parent: FileRef,
    /// The names: one in the POSIX or Win32-and-DOS name space, or a Win32 name and its DOS partner.
    pub names: Vec<(Vec<u16>, u8)>,
    /// `$STANDARD_INFORMATION` times as FILETIMEs: created, modified, MFT modified, accessed.
    pub times: [u64; 4],
    /// File attributes (FILE_ATTRIBUTE_*); directories, reparse points and
    /// encrypted files are refused; a compressed or sparse file is written
    /// plain (those two attributes dropped, said in the plan's notes).
    pub attributes: u32,
    /// `$STANDARD_INFORMATION` owner id.
    pub owner_id: u32,
    /// `$STANDARD_INFORMATION` security id; `None`: the parent's.
    pub security_id: Option<u32>,
    /// The content of the unnamed `$DATA` stream.
    pub data: &'a [u8],
}

/// The largest `$MFT` bitmap read (2^27 records).
const MAX_MFT_BITMAP: u64 = 1 << 24;

/// File attributes a restored file may not carry: directory, reparse point,
/// encrypted (their data is not a plain stream of the file's bytes).
const UNSUPPORTED_ATTRIBUTES: u32 = 0x1000_0000 | 0x10 | 0x400 | 0x4000;
/// Compressed and sparse: the content is written plain, without them.
const PLAIN_ONLY: u32 = 0x800 | 0x200;

/// Plans creating `spec` in its parent directory: a free MFT record (the
/// lowest user record the `$MFT` bitmap marks free; `$MFT` never grows),
/// contiguous clusters for a content that does not fit the record, the
/// index entries of every name. Reads only; an error means no plan.
/// Returns the plan and the new file's reference.
pub fn plan_create(
    v: &Ntfs,
    dev: &mut impl BlockDevice,
    _gate: &Clearance,
    spec: &NewFile<'_>,
) -> Result<(Plan, FileRef)> {
    let refuse = |detail| NtfsError::Refused { offset: 0, detail };
    check_names(&spec.names)
        .ok_or(refuse("names must be one POSIX or Win32-and-DOS name, or a Win32 and a DOS name"))?;
    if spec.attributes & UNSUPPORTED_ATTRIBUTES != 0 {
        return Err(refuse("only files are created (not directories, reparse points or encrypted files)"));
    }
    let attributes = spec.attributes & !PLAIN_ONLY;
    let dir = v.open_dir(dev, spec.parent)?;
    let parent = dir.file.base().file_ref();
    let security_id = match spec.security_id {
        Some(s) => s,
        None => v.info_of(&dir.file)?.security_id,
    };
    let cs = v.cluster();
    let rs = v.boot.record_size as usize;
    let mut plan = Plan::default();
    if attributes != spec.attributes {
        plan.notes.push(String::from("written plain: the file was compressed or sparse, its copy is not"));
    }

    // The record to use, and the record built in memory.
    let mft = v.load_file(dev, MFT)?;
    let mbm = mft.stream(attr::BITMAP, &[])?.ok_or(corrupt("$MFT", mft.base().offset, "no $BITMAP"))?;
    let bits = v.read_all(dev, &mbm, MAX_MFT_BITMAP)?;
    let number = (FIRST_USER_RECORD..v.mft_records)
        .find(|&n| bits.get((n / 8) as usize).is_some_and(|b| b >> (n % 8) & 1 == 0))
        .ok_or(NtfsError::NoSpace { structure: "$MFT", offset: mft.base().offset })?;
    let offset = v.record_extents(number)?.first().map_or(0, |e| e.0);
    let seq = match v.read_record(dev, number) {
        Ok(old) if old.in_use() => {
            return Err(corrupt("MFT record", old.offset, "in use, yet free in the $MFT bitmap"))
        }
        Ok(old) => old.seq().max(1),
        Err(_) => 1, // never written (zeros): a fresh record
    };
    let file_ref = FileRef::new(number, seq);
    let mut rec = Record { number, offset, data: header(rs, number, seq)? };

    // Content: resident when it fits the record, else contiguous clusters.
    let names_len: usize = spec.names.iter().map(|(n, _)| attr_len(0x42 + 2 * n.len())).sum();
    let fixed = rec.attrs_offset() + attr_len(0x48) + names_len + 8;
    let size = spec.data.len() as u64;
    let resident = fixed + attr_len(spec.data.len()) <= rs;
    let (alloc_size, runs) = if resident {
        (size.div_ceil(8) * 8, Vec::new())
    } else {
        let n = size.div_ceil(cs);
        let bf = v.load_file(dev, super::fs::BITMAP)?;
        let bm = bf.stream(attr::DATA, &[])?.ok_or(corrupt("$Bitmap", bf.base().offset, "no $DATA"))?;
        let lcn = find_free_clusters(v, dev, &plan, &bm, n)?;
        let mut bytes = spec.data.to_vec();
        bytes.resize((n * cs) as usize, 0);
        plan.push_extents("file data", &[(lcn * cs, n * cs)], &bytes, "write the restored file's content");
        let mut m = BTreeMap::new();
        add_bits(&mut m, lcn, n, "$Bitmap", 0)?;
        set_bits(v, dev, &mut plan, &bm, &m, "$Bitmap", "take the clusters of the restored file")?;
        (n * cs, vec![Run { vcn: 0, lcn: Some(lcn), len: n }])
    };

    // 3. $MFT bitmap.
    let mut m = BTreeMap::new();
    add_bits(&mut m, number, 1, "$MFT bitmap", mft.base().offset)?;
    set_bits(v, dev, &mut plan, &mbm, &m, "$MFT bitmap", "mark the restored file's MFT record in use")?;

    // 4. The record: $STANDARD_INFORMATION, the $FILE_NAMEs, $DATA.
    let [created, modified, mft_modified, accessed] = spec.times;
    let mut si = vec![0u8; 0x48];
    for (i, t) in spec.times.iter().enumerate() {
        put64(&mut si, 8 * i, *t)?;
    }
    put32(&mut si, 0x20, attributes)?;
    put32(&mut si, 0x30, spec.owner_id)?;
    put32(&mut si, 0x34, security_id)?;
    let mut attrs = vec![resident_attr(attr::STANDARD_INFORMATION, 0, &si, 0)?];
    let mut fns = Vec::new();
    for (i, (name, ns)) in spec.names.iter().enumerate() {
        let mut f = vec![0u8; 0x42];
        put64(&mut f, 0, parent.0)?;
        for (j, t) in [created, modified, mft_modified, accessed].iter().enumerate() {
            put64(&mut f, 8 + 8 * j, *t)?;
        }
        put64(&mut f, 0x28, alloc_size)?;
        put64(&mut f, 0x30, size)?;
        put32(&mut f, 0x38, attributes)?;
        f[0x40] = name.len() as u8;
        f[0x41] = *ns;
        f.extend(name.iter().flat_map(|u| u.to_le_bytes()));
        attrs.push(resident_attr(attr::FILE_NAME, 1 + i as u16, &f, 1)?);
        fns.push(f);
    }
    let instance = 1 + spec.names.len() as u16;
    attrs.push(if resident {
        resident_attr(attr::DATA, instance, spec.data, 0)?
    } else {
        nonresident_data(instance, &runs, alloc_size, size)?
    });
    let mut at = rec.attrs_offset();
    for a in &attrs {
        rec.data
            .get_mut(at..at + a.len())
            .ok_or(corrupt("MFT record", offset, "attributes do not fit"))?
            .copy_from_slice(a);
        at += a.len();
    }
    rec.data
        .get_mut(at..at + 8)
        .ok_or(corrupt("MFT record", offset, "attributes do not fit"))?
        .copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]);
    put32(&mut rec.data, 0x18, (at + 8) as u32)?;
    put16(&mut rec.data, 0x28, instance + 1)?;
    // Every $FILE_NAME counts, a DOS name too (as Windows and ntfs-3g count them).
    put16(&mut rec.data, 0x12, spec.names.len() as u16)?;
    Record::parse(number, offset, rec.to_disk()?)?.attrs(v.boot.total_clusters)?;
    record_write(v, &mut plan, &mut rec, &format!("write the restored file's MFT record {number}"))?;

    // 5. The parent's index, last; a DOS name after its long name, so that a
    // restore stopped between the two leaves the file under its own name.
    let mut ed = Editor::new(v, dir, &plan);
    let mut order: Vec<_> = spec.names.iter().zip(&fns).collect();
    order.sort_by_key(|((_, ns), _)| *ns == DOS);
    for ((name, _), f) in order {
        let shown = String::from_utf16_lossy(name);
        ed.insert(dev, index_entry(file_ref, f)?, &Key::Name { name: name.clone(), file_ref }, &shown)?;
    }
    plan.extend(ed.into_plan());
    Ok((plan, file_ref))
}

/// True when `names` is one POSIX or Win32-and-DOS name, or one Win32 and
/// one DOS name; every name 1–255 UTF-16 units.
fn check_names(names: &[(Vec<u16>, u8)]) -> Option<()> {
    if names.iter().any(|(n, _)| n.is_empty() || n.len() > 255) {
        return None;
    }
    let mut ns: Vec<u8> = names.iter().map(|(_, ns)| *ns).collect();
    ns.sort_unstable();
    matches!(ns.as_slice(), [POSIX] | [WIN32_AND_DOS] | [WIN32] | [WIN32, DOS]).then_some(())
}

/// The length of a resident attribute with a value of `value_len` bytes.
fn attr_len(value_len: usize) -> usize {
    (0x18 + value_len).div_ceil(8) * 8
}

/// An empty record of `size` bytes: header, update sequence array, no attributes yet.
fn header(size: usize, number: u64, seq: u16) -> Result<Vec<u8>> {
    let mut r = vec![0u8; size];
    r[..4].copy_from_slice(b"FILE");
    let usa_count = size / 512 + 1;
    put16(&mut r, 4, 0x30)?;
    put16(&mut r, 6, usa_count as u16)?;
    put16(&mut r, 0x10, seq)?;
    put16(&mut r, 0x14, ((0x30 + 2 * usa_count).div_ceil(8) * 8) as u16)?;
    put16(&mut r, 0x16, IN_USE)?;
    put32(&mut r, 0x1C, size as u32)?;
    put32(&mut r, 0x2C, number as u32)?;
    put16(&mut r, 0x30, 1)?; // the update sequence number; write_fixups advances it
    Ok(r)
}

/// A resident, unnamed attribute holding `value`.
fn resident_attr(type_code: u32, instance: u16, value: &[u8], resident_flags: u8) -> Result<Vec<u8>> {
    let mut a = vec![0u8; attr_len(value.len())];
    put32(&mut a, 0, type_code)?;
    let len = a.len() as u32;
    put32(&mut a, 4, len)?;
    put16(&mut a, 0x0A, 0x18)?;
    put16(&mut a, 0x0E, instance)?;
    put32(&mut a, 0x10, value.len() as u32)?;
    put16(&mut a, 0x14, 0x18)?;
    a[0x16] = resident_flags;
    a[0x18..0x18 + value.len()].copy_from_slice(value);
    Ok(a)
}

/// The unnamed, non-resident `$DATA` attribute over `runs`.
fn nonresident_data(instance: u16, runs: &[Run], alloc_size: u64, size: u64) -> Result<Vec<u8>> {
    let mut a = vec![0u8; 0x40];
    a.extend_from_slice(&encode(runs));
    a.resize(a.len().div_ceil(8) * 8, 0);
    put32(&mut a, 0, attr::DATA)?;
    let len = a.len() as u32;
    put32(&mut a, 4, len)?;
    a[8] = 1;
    put16(&mut a, 0x0A, 0x40)?;
    put16(&mut a, 0x0E, instance)?;
    let clusters: u64 = runs.iter().map(|r| r.len).sum();
    put64(&mut a, 0x18, clusters.saturating_sub(1))?;
    put16(&mut a, 0x20, 0x40)?;
    put64(&mut a, 0x28, alloc_size)?;
    put64(&mut a, 0x30, size)?;
    put64(&mut a, 0x38, size)?;
    Ok(a)
}

/// A directory index entry for `$FILE_NAME` value `f` of file `file_ref`.
fn index_entry(file_ref: FileRef, f: &[u8]) -> Result<Vec<u8>> {
    let mut e = vec![0u8; (0x10 + f.len()).div_ceil(8) * 8];
    put64(&mut e, 0, file_ref.0)?;
    let len = e.len() as u16;
    put16(&mut e, 8, len)?;
    put16(&mut e, 10, f.len() as u16)?;
    e[0x10..0x10 + f.len()].copy_from_slice(f);
    Ok(e)
}
