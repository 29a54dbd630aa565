//! The overwrite planner: new bytes for parts of an existing file's
//! contents, in place, with no change to its size or its clusters (what the
//! registry writer needs to edit a hive). Reads only; the plan is executed
//! by [`super::plan::execute`].
//!
//! Guarantees: only the unnamed `$DATA` of an ordinary file is written, and
//! only inside its current size; a resident value is written as its MFT
//! record (one write, with fixups), a non-resident one as one write per
//! physical extent of each edit, in the order the edits are given (so the
//! caller decides what a crash can leave: e.g. a hive's header first). A
//! compressed, encrypted or WOF file, and an edit landing in a hole or
//! beyond the initialised part, are refused with nothing planned.

use super::attr::{self, Form};
use super::file::Stream;
use super::fs::{Ntfs, FIRST_USER_RECORD};
use super::gate::Clearance;
use super::plan::{record_write, Plan};
use super::runs;
use super::{FileRef, NtfsError, Result};
use crate::block::BlockDevice;
use alloc::format;

/// Plans writing each `(position, bytes)` of `edits` over the contents of
/// file `file_ref` (sequence checked when non-zero). Every edit must lie
/// inside the file's current size.
pub fn plan_overwrite(
    v: &Ntfs,
    dev: &mut impl BlockDevice,
    _gate: &Clearance,
    file_ref: FileRef,
    edits: &[(u64, &[u8])],
) -> Result<Plan> {
    let f = v.load_file(dev, file_ref.record())?;
    let base = f.base();
    let refuse = |detail| Err(NtfsError::Refused { offset: base.offset, detail });
    if file_ref.seq() != 0 && base.seq() != file_ref.seq() {
        return Err(NtfsError::Stale { offset: base.offset });
    }
    if file_ref.record() < FIRST_USER_RECORD || base.is_dir() {
        return refuse("not an ordinary file");
    }
    if f.attrs.iter().any(|(_, a)| a.type_code == attr::REPARSE_POINT) {
        return refuse("reparse point (WOF or other): contents are not overwritten in place");
    }
    let Some(s) = f.stream(attr::DATA, &[])? else { return refuse("no data to overwrite") };
    for (pos, bytes) in edits {
        if pos.checked_add(bytes.len() as u64).is_none_or(|e| e > s.len()) {
            return refuse("overwrite beyond the end of the file (the size never changes)");
        }
    }
    let mut plan = Plan::default();
    match &s {
        Stream::Resident(_) => {
            let (ri, a) = f.find(attr::DATA, &[]).next().ok_or(NtfsError::Stale { offset: base.offset })?;
            let Form::Resident { value_offset, .. } = a.form else { return refuse("internal: resident form") };
            let mut rec = f.records[*ri].clone();
            for (pos, bytes) in edits {
                let at = value_offset + *pos as usize;
                rec.data[at..at + bytes.len()].copy_from_slice(bytes);
            }
            record_write(v, &mut plan, &mut rec, "overwrite the file's (resident) contents")?;
        }
        Stream::NonResident { runs, initialized, flags, offset, .. } => {
            if flags & (attr::FLAG_COMPRESSED | attr::FLAG_ENCRYPTED) != 0 {
                return refuse("compressed or encrypted: contents are not overwritten in place");
            }
            for (pos, bytes) in edits {
                if pos + bytes.len() as u64 > *initialized {
                    return refuse(
                        "beyond the initialised part of the file: writing would change its initialised size",
                    );
                }
                let mut o = 0usize;
                for (p, l) in runs::extents(runs, v.cluster(), *pos, bytes.len() as u64, *offset)? {
                    let Some(p) = p else {
                        return refuse("sparse where the overwrite lands: clusters would be allocated");
                    };
                    let end = o + l as usize;
                    let reason = format!("overwrite the file's contents at byte {}", pos + o as u64);
                    plan.push("file data", p, bytes[o..end].to_vec(), reason);
                    o = end;
                }
            }
        }
    }
    plan.notes.push(format!("record {}: contents overwritten in place; size and clusters unchanged", base.number));
    Ok(plan)
}
