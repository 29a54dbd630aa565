//! A file: its base record, extension records, and its attributes across them.

#![deny(clippy::indexing_slicing)]

use super::attr::{Attr, Form, FILE_NAME};
use super::filename::FileName;
use super::record::Record;
use super::runs::Run;
use super::{corrupt, Result};
use alloc::vec::Vec;

/// A loaded file. `records[0]` is the base record; the rest are extension
/// records named by its attribute list. `attrs` pairs each attribute with
/// the index of the record holding it.
#[derive(Clone, Debug)]
pub struct File {
    /// The base record first, then the extension records in attribute-list order.
    pub records: Vec<Record>,
    /// Every attribute of the file, each with the index in `records` of the record holding it.
    pub attrs: Vec<(usize, Attr)>,
}

/// A stream's value: resident bytes, or runs with sizes (segments merged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stream {
    /// A resident value, copied out of its record.
    Resident(Vec<u8>),
    /// A value in clusters: the runs of every segment, in VCN order.
    NonResident {
        /// Data runs of all segments, concatenated (VCN 0 first).
        runs: Vec<Run>,
        /// Length of the value in bytes (from the segment at VCN 0).
        data_size: u64,
        /// Bytes written so far; the rest of the value reads as zeros.
        initialized: u64,
        /// Bytes allocated (whole clusters).
        allocated: u64,
        /// Attribute flags of the segment at VCN 0 (compressed, encrypted, sparse).
        flags: u16,
        /// Compression unit of the segment at VCN 0 (log2 clusters; 0: not compressed).
        compression_unit: u8,
        /// Byte offset on the volume of the first segment's attribute header (for errors).
        offset: u64,
    },
}

impl Stream {
    /// Length of the value in bytes (the data size for a non-resident stream).
    pub fn len(&self) -> u64 {
        match self {
            Stream::Resident(v) => v.len() as u64,
            Stream::NonResident { data_size, .. } => *data_size,
        }
    }
    /// True when the value is zero bytes long.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl File {
    /// The base record (`records[0]`; a file is never built without it).
    #[allow(clippy::indexing_slicing)]
    pub fn base(&self) -> &Record {
        &self.records[0]
    }
    /// Record `ri` of the file (an index from [`File::attrs`]).
    pub fn record(&self, ri: usize) -> Result<&Record> {
        self.records.get(ri).ok_or(corrupt("MFT record", self.base().offset, "attribute of a record the file lacks"))
    }
    /// Attributes of `type_code` named `name`, with their record index.
    pub fn find<'a>(&'a self, type_code: u32, name: &'a [u16]) -> impl Iterator<Item = &'a (usize, Attr)> + 'a {
        self.attrs.iter().filter(move |(_, a)| a.type_code == type_code && a.name == name)
    }
    /// The stream of `type_code`/`name`, merging non-resident segments in VCN
    /// order. Guarantees: segments are contiguous and sizes come from the
    /// segment at VCN 0; `None` when the file has no such attribute.
    pub fn stream(&self, type_code: u32, name: &[u16]) -> Result<Option<Stream>> {
        let mut segs: Vec<&(usize, Attr)> = self.find(type_code, name).collect();
        let Some(&&(ri, ref first)) = segs.first() else { return Ok(None) };
        let off = self.record(ri)?.offset + first.offset as u64;
        if let Form::Resident { .. } = first.form {
            if segs.len() != 1 {
                return Err(corrupt("attribute", off, "resident attribute appears twice"));
            }
            let v = first.value(&self.record(ri)?.data).ok_or(corrupt("attribute", off, "value out of range"))?;
            return Ok(Some(Stream::Resident(v.to_vec())));
        }
        segs.sort_by_key(|(_, a)| match a.form {
            Form::NonResident { lowest_vcn, .. } => lowest_vcn,
            _ => u64::MAX,
        });
        let mut runs = Vec::new();
        let mut next = 0u64;
        let mut sizes = None;
        for (_, a) in &segs {
            let Form::NonResident {
                lowest_vcn,
                highest_vcn,
                runs: r,
                allocated,
                data_size,
                initialized,
                compression_unit,
            } = &a.form
            else {
                return Err(corrupt("attribute", off, "resident and non-resident segments mixed"));
            };
            if *lowest_vcn != next {
                return Err(corrupt("attribute", off, "non-resident segments are not contiguous"));
            }
            if *lowest_vcn == 0 {
                sizes = Some((*data_size, *initialized, *allocated, a.flags, *compression_unit));
            }
            runs.extend_from_slice(r);
            next = highest_vcn.wrapping_add(1);
        }
        let (data_size, initialized, allocated, flags, compression_unit) =
            sizes.ok_or(corrupt("attribute", off, "no segment at VCN 0"))?;
        Ok(Some(Stream::NonResident { runs, data_size, initialized, allocated, flags, compression_unit, offset: off }))
    }
    /// Every `$FILE_NAME` of the file, with its record index and attribute.
    pub fn names(&self) -> Result<Vec<(usize, &Attr, FileName)>> {
        let mut out = Vec::new();
        for (ri, a) in self.attrs.iter().filter(|(_, a)| a.type_code == FILE_NAME) {
            let r = self.record(*ri)?;
            let off = r.offset + a.offset as u64;
            let v = a.value(&r.data).ok_or(corrupt("$FILE_NAME", off, "not resident"))?;
            out.push((*ri, a, FileName::parse(v, off)?));
        }
        Ok(out)
    }
}
