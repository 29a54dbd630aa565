//! An open NTFS volume: records, streams, directories, path lookup.

#![deny(clippy::indexing_slicing)]

use super::attr::{self, Form, FILE_NAME, INDEX_ALLOCATION, INDEX_ROOT, STANDARD_INFORMATION};
use super::attrlist;
use super::boot::BootSector;
use super::file::{File, Stream};
use super::filename::{FileName, DOS};
use super::index::{Entry, Node};
use super::record::Record;
use super::runs::read_extents;
use super::runs::{self, Run};
use super::stream::{self, Clusters};
use super::upcase::UpCase;
use super::wof::{self, Wof};
use super::{corrupt, le32, le64, FileRef, NtfsError, Result, MAX_EXTENSION_RECORDS, MAX_INDEX_DEPTH, MAX_READ_WHOLE};
use crate::block::BlockDevice;
use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cmp::Ordering;

/// Record numbers of system files.
pub const MFT: u64 = 0;
/// `$MFTMirr`: copy of the first four MFT records.
pub const MFTMIRR: u64 = 1;
/// `$LogFile`: the metadata journal.
pub const LOGFILE: u64 = 2;
/// `$Volume`: volume name, NTFS version and flags.
pub const VOLUME: u64 = 3;
/// The root directory (`.`).
pub const ROOT: u64 = 5;
/// `$Bitmap`: one bit per cluster, set when the cluster is in use.
pub const BITMAP: u64 = 6;
/// `$UpCase`: the upper-case table used to compare names.
pub const UPCASE: u64 = 10;
/// `$Extend`: the folder of the newer metadata files (`$ObjId`, `$Quota`, `$Reparse`, `$UsnJrnl`).
pub const EXTEND: u64 = 11;
/// Records below this are reserved for system files.
pub const FIRST_USER_RECORD: u64 = 24;

/// The name of EFS's `$LOGGED_UTILITY_STREAM` attribute.
const EFS_NAME: [u16; 4] = [b'$' as u16, b'E' as u16, b'F' as u16, b'S' as u16];

/// The `$I30` name of directory index attributes.
pub const I30: [u16; 4] = [b'$' as u16, b'I' as u16, b'3' as u16, b'0' as u16];

/// An open volume. Holds only geometry, the `$MFT` run list and `$UpCase`;
/// every other read goes to the device passed to each call.
#[derive(Clone, Debug)]
pub struct Ntfs {
    /// Geometry from the boot sector.
    pub boot: BootSector,
    /// Data runs of `$MFT`'s unnamed `$DATA` (all segments, from VCN 0).
    pub mft_runs: Vec<Run>,
    /// Number of records `$MFT` holds.
    pub mft_records: u64,
    /// The volume's `$UpCase` table, for case-insensitive name comparison.
    pub upcase: UpCase,
}

/// A directory entry as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The name, decoded (unpaired surrogates become U+FFFD).
    pub name: String,
    /// The name as stored, in UTF-16 units.
    pub name_utf16: Vec<u16>,
    /// Name space of the name ([`super::filename::WIN32`] and so on).
    pub namespace: u8,
    /// Reference of the file the entry names (with its sequence number).
    pub file_ref: FileRef,
    /// True when the entry's cached flags mark a directory.
    pub is_dir: bool,
    /// File attributes as cached in the index (FILE_ATTRIBUTE_*: 0x200
    /// sparse, 0x400 reparse point, 0x800 compressed, 0x4000 encrypted).
    pub attributes: u32,
    /// Size and times as cached in the index (may lag the file's own).
    pub size: u64,
    /// Last data change as a FILETIME, as cached in the index.
    pub modified: u64,
}

/// A file's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// MFT record number of the base record.
    pub record: u64,
    /// Reference of the base record, with its current sequence number.
    pub file_ref: FileRef,
    /// True when the record is flagged as a directory.
    pub is_dir: bool,
    /// Size of the unnamed `$DATA` stream.
    pub size: u64,
    /// Creation time from `$STANDARD_INFORMATION`, as a FILETIME.
    pub created: u64,
    /// Last data change from `$STANDARD_INFORMATION`, as a FILETIME.
    pub modified: u64,
    /// Last MFT record change from `$STANDARD_INFORMATION`, as a FILETIME.
    pub mft_modified: u64,
    /// Last access from `$STANDARD_INFORMATION`, as a FILETIME.
    pub accessed: u64,
    /// `$STANDARD_INFORMATION` file attributes (FILE_ATTRIBUTE_*).
    pub attributes: u32,
    /// `$STANDARD_INFORMATION` owner id (0 in the short, NTFS 1.2 form).
    pub owner_id: u32,
    /// `$STANDARD_INFORMATION` security id, the file's entry in `$Secure` (0 in the short form).
    pub security_id: u32,
    /// Compressed: by its file attributes or by the flags of its `$DATA`.
    pub compressed: bool,
    /// EFS-encrypted: by its file attributes, the flags of its `$DATA`, or a
    /// `$LOGGED_UTILITY_STREAM` named `$EFS` (not `$TXF_DATA`: Transactional NTFS).
    pub encrypted: bool,
    /// A reparse point: by its file attributes or a `$REPARSE_POINT` attribute.
    pub reparse: bool,
    /// Sparse: by its file attributes or the flags of its `$DATA`.
    pub sparse: bool,
    /// The reparse tag, when the file has a resident `$REPARSE_POINT`.
    pub reparse_tag: Option<u32>,
    /// Every name: (parent reference, namespace, name).
    pub names: Vec<(FileRef, u8, String)>,
}

/// Where a file's contents are (see [`Ntfs::content`]).
#[derive(Clone, Debug)]
pub enum Content {
    /// The unnamed `$DATA` stream.
    Stream(Stream),
    /// A WOF-compressed file.
    Wof(Wof),
}

impl Content {
    /// The contents' length in bytes (uncompressed).
    pub fn len(&self) -> u64 {
        match self {
            Content::Stream(s) => s.len(),
            Content::Wof(w) => w.size,
        }
    }
    /// True when the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A directory opened for lookup or editing.
#[derive(Clone, Debug)]
pub struct Directory {
    /// The directory's file, with all its records and attributes.
    pub file: File,
    /// Record index (in `file.records`) and offset of the `$INDEX_ROOT` attribute.
    pub root_rec: usize,
    /// Byte offset of the `$INDEX_ROOT` attribute header within that record.
    pub root_attr_off: usize,
    /// The parsed root node (the `$INDEX_ROOT` value).
    pub root: Node,
    /// Bytes per index block, from `$INDEX_ROOT`.
    pub block_size: u32,
    /// Bytes per index VCN.
    pub vcn_unit: u64,
    /// The `$INDEX_ALLOCATION` stream holding the index blocks (`None` for a small index).
    pub alloc: Option<Stream>,
    /// The index's attribute name (`$I30` for directories).
    pub name: Vec<u16>,
    /// A view index (keys are not `$FILE_NAME`s).
    pub view: bool,
}

/// A found entry: the path of (node, entry index) from the root, and the entry.
pub type Found = (Vec<(NodeLoc, usize)>, Entry);

/// Where a node lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeLoc {
    /// The `$INDEX_ROOT` node, inside the MFT record.
    Root,
    /// The index block at this VCN of `$INDEX_ALLOCATION`.
    Block(u64),
}

impl Ntfs {
    /// Opens a volume: boot sector, `$MFT` record 0 (with its attribute list
    /// when the MFT is fragmented enough to need one) and `$UpCase`.
    pub fn open(dev: &mut impl BlockDevice) -> Result<Ntfs> {
        let boot = BootSector::read(dev)?;
        let rs = boot.record_size as u64;
        let cs = boot.cluster_size as u64;
        let mft_at = boot.mft_lcn * cs;
        let mut raw = vec![0u8; rs as usize];
        dev.read_at(mft_at, &mut raw)?;
        let rec0 = Record::parse(0, mft_at, raw)?;
        let a0 = rec0.attrs(boot.total_clusters)?;
        let data0 = a0.iter().find(|a| a.type_code == attr::DATA && a.name.is_empty()).ok_or(corrupt(
            "$MFT",
            mft_at,
            "no $DATA attribute",
        ))?;
        let Form::NonResident { runs, data_size, lowest_vcn: 0, .. } = &data0.form else {
            return Err(corrupt("$MFT", mft_at, "$DATA is resident or does not start at VCN 0"));
        };
        if runs.first().and_then(|r| r.lcn) != Some(boot.mft_lcn) {
            return Err(corrupt("$MFT", mft_at, "$DATA does not start at the boot sector's MFT cluster"));
        }
        let mft_records = data_size / rs;
        if mft_records < FIRST_USER_RECORD || *data_size > boot.volume_bytes() {
            return Err(corrupt("$MFT", mft_at, "$DATA size out of range"));
        }
        let mut v = Ntfs {
            boot,
            mft_runs: runs.clone(),
            mft_records,
            upcase: UpCase::from_bytes(&vec![0u8; 131072]).ok_or(corrupt("$UpCase", 0, "internal"))?,
        };
        // A fragmented $MFT keeps later $DATA segments in extension records.
        if a0.iter().any(|a| a.type_code == attr::ATTRIBUTE_LIST) {
            let f = v.load_file(dev, MFT)?;
            match f.stream(attr::DATA, &[])? {
                Some(Stream::NonResident { runs, .. }) => v.mft_runs = runs,
                _ => return Err(corrupt("$MFT", mft_at, "$DATA segments missing")),
            }
        }
        let covered = v.mft_runs.last().map_or(0, |r| r.vcn + r.len) * cs;
        if covered < mft_records * rs {
            return Err(corrupt("$MFT", mft_at, "$DATA runs shorter than its size"));
        }
        let up = v.load_file(dev, UPCASE)?;
        let s = up.stream(attr::DATA, &[])?.ok_or(corrupt("$UpCase", up.base().offset, "no $DATA"))?;
        if s.len() != 131072 {
            return Err(corrupt("$UpCase", up.base().offset, "size is not 128 KiB"));
        }
        let bytes = v.read_all(dev, &s, 131072)?;
        v.upcase = UpCase::from_bytes(&bytes).ok_or(corrupt("$UpCase", up.base().offset, "size is not 128 KiB"))?;
        Ok(v)
    }

    /// Bytes per cluster.
    pub fn cluster(&self) -> u64 {
        self.boot.cluster_size as u64
    }

    /// Physical extents (volume byte offset, length) of record `n`.
    pub fn record_extents(&self, n: u64) -> Result<Vec<(u64, u64)>> {
        if n >= self.mft_records {
            return Err(corrupt("$MFT", self.boot.mft_lcn * self.cluster(), "record number beyond the MFT"));
        }
        let rs = self.boot.record_size as u64;
        let ex = runs::extents(&self.mft_runs, self.cluster(), n * rs, rs, self.boot.mft_lcn * self.cluster())?;
        ex.into_iter()
            .map(|(p, l)| p.map(|p| (p, l)).ok_or(corrupt("$MFT", self.boot.mft_lcn * self.cluster(), "sparse MFT")))
            .collect()
    }

    /// Reads and validates record `n` (fixups applied). Does not require it to be in use.
    pub fn read_record(&self, dev: &mut impl BlockDevice, n: u64) -> Result<Record> {
        let ex = self.record_extents(n)?;
        let mut raw = vec![0u8; self.boot.record_size as usize];
        let at = ex.first().map_or(0, |e| e.0);
        read_extents(dev, &ex.iter().map(|&(p, l)| (Some(p), l)).collect::<Vec<_>>(), &mut raw, at)?;
        Record::parse(n, at, raw)
    }

    /// Loads file `n`: its base record (must be in use and a base record)
    /// and every extension record its attribute list names (each must be in
    /// use and point back to `n`). At most [`MAX_EXTENSION_RECORDS`].
    pub fn load_file(&self, dev: &mut impl BlockDevice, n: u64) -> Result<File> {
        let base = self.read_record(dev, n)?;
        if !base.in_use() {
            return Err(corrupt("MFT record", base.offset, "record is not in use"));
        }
        if base.base_ref() != FileRef(0) {
            return Err(corrupt("MFT record", base.offset, "expected a base record, found an extension record"));
        }
        let tc = self.boot.total_clusters;
        let mut attrs: Vec<(usize, attr::Attr)> = base.attrs(tc)?.into_iter().map(|a| (0, a)).collect();
        let mut file = File { records: vec![base], attrs: Vec::new() };
        let list = attrs.iter().find(|(_, a)| a.type_code == attr::ATTRIBUTE_LIST).map(|(_, a)| a.clone());
        if let Some(la) = list {
            let off = file.base().offset + la.offset as u64;
            let bytes = match &la.form {
                Form::Resident { .. } => {
                    la.value(&file.base().data).ok_or(corrupt("attribute list", off, "value out of range"))?.to_vec()
                }
                Form::NonResident { runs, data_size, initialized, allocated, compression_unit, .. } => {
                    if *data_size > 1 << 20 {
                        return Err(NtfsError::TooLarge { structure: "attribute list", offset: off, size: *data_size });
                    }
                    let s = Stream::NonResident {
                        runs: runs.clone(),
                        data_size: *data_size,
                        initialized: *initialized,
                        allocated: *allocated,
                        flags: la.flags,
                        compression_unit: *compression_unit,
                        offset: off,
                    };
                    self.read_all(dev, &s, 1 << 20)?
                }
            };
            let entries = attrlist::parse(&bytes, off)?;
            let mut seen = BTreeSet::new();
            seen.insert(n);
            for e in entries {
                let rn = e.record_ref.record();
                if seen.contains(&rn) {
                    continue;
                }
                if seen.len() > MAX_EXTENSION_RECORDS {
                    return Err(NtfsError::TooLarge {
                        structure: "attribute list",
                        offset: off,
                        size: seen.len() as u64,
                    });
                }
                seen.insert(rn);
                let r = self.read_record(dev, rn)?;
                if !r.in_use() || r.base_ref().record() != n || r.seq() != e.record_ref.seq() {
                    return Err(corrupt(
                        "MFT record",
                        r.offset,
                        "extension record not in use or not owned by its base",
                    ));
                }
                let idx = file.records.len();
                attrs.extend(r.attrs(tc)?.into_iter().map(|a| (idx, a)));
                file.records.push(r);
            }
        }
        file.attrs = attrs;
        Ok(file)
    }

    /// Reads `buf.len()` bytes of a stream from byte `pos` (sparse and
    /// uninitialised parts read as zeros, compressed values decompressed).
    /// Fails when the range is beyond the stream.
    pub fn read_stream(&self, dev: &mut impl BlockDevice, s: &Stream, pos: u64, buf: &mut [u8]) -> Result<()> {
        stream::read(self.clusters(), dev, s, pos, buf)
    }

    /// Reads a whole stream, refusing streams longer than `cap` (and than [`MAX_READ_WHOLE`]).
    pub fn read_all(&self, dev: &mut impl BlockDevice, s: &Stream, cap: u64) -> Result<Vec<u8>> {
        stream::read_all(self.clusters(), dev, s, cap)
    }

    /// The volume as the stream readers see it.
    pub fn clusters(&self) -> Clusters {
        Clusters { cluster: self.cluster(), volume_bytes: self.boot.volume_bytes() }
    }

    /// Metadata of file `n`.
    pub fn file_info(&self, dev: &mut impl BlockDevice, n: u64) -> Result<FileInfo> {
        let f = self.load_file(dev, n)?;
        self.info_of(&f)
    }

    /// Metadata of a loaded file.
    pub fn info_of(&self, f: &File) -> Result<FileInfo> {
        let base = f.base();
        let si = f.find(STANDARD_INFORMATION, &[]).next().ok_or(corrupt(
            "MFT record",
            base.offset,
            "no $STANDARD_INFORMATION",
        ))?;
        let v = si.1.value(&f.record(si.0)?.data).filter(|v| v.len() >= 0x24).ok_or(corrupt(
            "$STANDARD_INFORMATION",
            base.offset,
            "too short",
        ))?;
        let attributes = le32(v, 0x20).unwrap_or(0);
        let data = f.find(attr::DATA, &[]).next();
        let dflags = data.map_or(0, |d| d.1.flags);
        let size = match f.stream(attr::DATA, &[])? {
            Some(s) => s.len(),
            None => 0,
        };
        let names = f.names()?.into_iter().map(|(_, _, n)| (n.parent, n.namespace, n.name_string())).collect();
        Ok(FileInfo {
            record: base.number,
            file_ref: base.file_ref(),
            is_dir: base.is_dir(),
            size,
            created: le64(v, 0).unwrap_or(0),
            modified: le64(v, 8).unwrap_or(0),
            mft_modified: le64(v, 0x10).unwrap_or(0),
            accessed: le64(v, 0x18).unwrap_or(0),
            attributes,
            owner_id: le32(v, 0x30).unwrap_or(0),
            security_id: le32(v, 0x34).unwrap_or(0),
            compressed: attributes & 0x800 != 0 || dflags & attr::FLAG_COMPRESSED != 0,
            // EFS keeps its keys in a `$LOGGED_UTILITY_STREAM` named `$EFS`;
            // Transactional NTFS uses the same type named `$TXF_DATA`, which
            // says nothing about encryption.
            encrypted: attributes & 0x4000 != 0
                || dflags & attr::FLAG_ENCRYPTED != 0
                || f.attrs.iter().any(|(_, a)| a.type_code == attr::LOGGED_UTILITY_STREAM && a.name == EFS_NAME),
            reparse: attributes & 0x400 != 0 || f.attrs.iter().any(|(_, a)| a.type_code == attr::REPARSE_POINT),
            sparse: attributes & 0x200 != 0 || dflags & attr::FLAG_SPARSE != 0,
            reparse_tag: f
                .find(attr::REPARSE_POINT, &[])
                .next()
                .and_then(|(ri, a)| a.value(&f.record(*ri).ok()?.data))
                .and_then(|v| le32(v, 0)),
            names,
        })
    }

    /// Opens directory `file_ref` (sequence checked when non-zero).
    pub fn open_dir(&self, dev: &mut impl BlockDevice, file_ref: FileRef) -> Result<Directory> {
        let file = self.load_file(dev, file_ref.record())?;
        let base = file.base();
        if file_ref.seq() != 0 && base.seq() != file_ref.seq() {
            return Err(corrupt(
                "MFT record",
                base.offset,
                "sequence number does not match the reference (stale entry)",
            ));
        }
        if !base.is_dir() {
            return Err(NtfsError::NotADirectory { path: String::new() });
        }
        self.open_index(file, &I30, FILE_NAME, 1)
    }

    /// Opens the index named `name` of a loaded file, checking its indexed
    /// attribute type and collation rule (`$I30`: 0x30 and 1; `$ObjId:$O`: 0 and 0x13).
    pub fn open_index(&self, file: File, name: &[u16], indexed_type: u32, collation: u32) -> Result<Directory> {
        let base = file.base();
        let (ri, ra) = file.find(INDEX_ROOT, name).next().cloned().ok_or(corrupt(
            "MFT record",
            base.offset,
            "no $INDEX_ROOT of that name",
        ))?;
        let rec = file.record(ri)?;
        let off = rec.offset + ra.offset as u64;
        let value = ra.value(&rec.data).ok_or(corrupt("$INDEX_ROOT", off, "not resident"))?.to_vec();
        let (mut root, info) = Node::root(value, off)?;
        if info.indexed_type != indexed_type || info.collation != collation {
            return Err(NtfsError::Unsupported {
                structure: "$INDEX_ROOT",
                offset: off,
                detail: "index type or collation not as expected",
            });
        }
        let view = indexed_type != FILE_NAME;
        root.view = view;
        if !info.block_size.is_power_of_two() || !(512..=65536).contains(&info.block_size) {
            return Err(corrupt("$INDEX_ROOT", off + 8, "index block size out of range"));
        }
        let vcn_unit = if info.block_size as u64 >= self.cluster() { self.cluster() } else { 512 };
        let alloc = file.stream(INDEX_ALLOCATION, name)?;
        if root.is_large() && !matches!(alloc, Some(Stream::NonResident { .. })) {
            return Err(corrupt("$INDEX_ROOT", off, "large index without $INDEX_ALLOCATION"));
        }
        Ok(Directory {
            root_rec: ri,
            root_attr_off: ra.offset,
            root,
            block_size: info.block_size,
            vcn_unit,
            alloc,
            file,
            name: name.to_vec(),
            view,
        })
    }

    /// Physical extents of the index block at `vcn`.
    pub fn block_extents(&self, dir: &Directory, vcn: u64) -> Result<Vec<(u64, u64)>> {
        let Some(Stream::NonResident { runs, data_size, offset, .. }) = &dir.alloc else {
            return Err(corrupt("$INDEX_ROOT", dir.root.offset, "sub-node without $INDEX_ALLOCATION"));
        };
        let pos =
            vcn.checked_mul(dir.vcn_unit).ok_or(corrupt("index entry", dir.root.offset, "sub-node VCN overflow"))?;
        let bs = dir.block_size as u64;
        if pos % bs != 0 || pos.checked_add(bs).is_none_or(|e| e > *data_size) {
            return Err(corrupt("$INDEX_ALLOCATION", *offset, "sub-node VCN outside the allocation"));
        }
        runs::extents(runs, self.cluster(), pos, bs, *offset)?
            .into_iter()
            .map(|(p, l)| p.map(|p| (p, l)).ok_or(corrupt("$INDEX_ALLOCATION", *offset, "sparse index block")))
            .collect()
    }

    /// Reads the index block at `vcn`.
    pub fn read_block(&self, dev: &mut impl BlockDevice, dir: &Directory, vcn: u64) -> Result<Node> {
        let ex = self.block_extents(dir, vcn)?;
        let mut raw = vec![0u8; dir.block_size as usize];
        let at = ex.first().map_or(0, |e| e.0);
        read_extents(dev, &ex.iter().map(|&(p, l)| (Some(p), l)).collect::<Vec<_>>(), &mut raw, at)?;
        let mut n = Node::block(raw, vcn, at)?;
        n.view = dir.view;
        Ok(n)
    }

    /// Every entry of a directory in collation order (END entries left
    /// out). Bounded by [`MAX_INDEX_DEPTH`] and a visited set of blocks.
    pub fn list_dir(&self, dev: &mut impl BlockDevice, dir: &Directory) -> Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        self.walk(dev, dir, &dir.root, 0, &mut seen, &mut out)?;
        Ok(out)
    }

    /// The index block `vcn` that entry `e` of `node` points to; a block
    /// already in `seen` is a loop in the index, an error.
    fn unseen_child(
        &self,
        dev: &mut impl BlockDevice,
        dir: &Directory,
        node: &Node,
        e: &Entry,
        vcn: u64,
        seen: &mut BTreeSet<u64>,
    ) -> Result<Node> {
        if !seen.insert(vcn) {
            return Err(corrupt(
                "index entry",
                node.offset + e.off as u64,
                "sub-node visited twice (loop in the index)",
            ));
        }
        self.read_block(dev, dir, vcn)
    }

    fn walk(
        &self,
        dev: &mut impl BlockDevice,
        dir: &Directory,
        node: &Node,
        depth: usize,
        seen: &mut BTreeSet<u64>,
        out: &mut Vec<DirEntry>,
    ) -> Result<()> {
        if depth > MAX_INDEX_DEPTH {
            return Err(corrupt("index block", node.offset, "index tree too deep (loop?)"));
        }
        for e in node.entries()? {
            if let Some(vcn) = e.sub {
                let child = self.unseen_child(dev, dir, node, &e, vcn, seen)?;
                self.walk(dev, dir, &child, depth + 1, seen, out)?;
            }
            if let Some(k) = e.key {
                out.push(DirEntry {
                    name: k.name_string(),
                    namespace: k.namespace,
                    file_ref: e.file_ref,
                    is_dir: k.flags & 0x1000_0000 != 0,
                    attributes: k.flags,
                    size: k.data_size,
                    modified: k.modified,
                    name_utf16: k.name,
                });
            }
        }
        Ok(())
    }

    /// Finds the entry for `name` in `dir`; when `target` is given, only an
    /// entry of that record with exactly that name (case-sensitive) counts.
    /// Returns the path of (node, entry index) from the root to the entry.
    pub fn find_entry(
        &self,
        dev: &mut impl BlockDevice,
        dir: &Directory,
        name: &[u16],
        target: Option<FileRef>,
    ) -> Result<Option<Found>> {
        let mut path = Vec::new();
        let mut seen = BTreeSet::new();
        self.search(dev, dir, NodeLoc::Root, &dir.root, name, target, 0, &mut seen, &mut path)
    }

    #[allow(clippy::too_many_arguments)]
    fn search(
        &self,
        dev: &mut impl BlockDevice,
        dir: &Directory,
        loc: NodeLoc,
        node: &Node,
        name: &[u16],
        target: Option<FileRef>,
        depth: usize,
        seen: &mut BTreeSet<u64>,
        path: &mut Vec<(NodeLoc, usize)>,
    ) -> Result<Option<Found>> {
        if depth > MAX_INDEX_DEPTH {
            return Err(corrupt("index block", node.offset, "index tree too deep (loop?)"));
        }
        let entries = node.entries()?;
        for (i, e) in entries.iter().enumerate() {
            let ord = match &e.key {
                None => Ordering::Less,
                Some(k) => self.upcase.cmp(name, &k.name),
            };
            if ord == Ordering::Equal {
                let k = e.key.as_ref().map(|k| &k.name);
                let hit = match target {
                    None => true,
                    Some(t) => e.file_ref.record() == t.record() && k.is_some_and(|k| k.as_slice() == name),
                };
                if hit {
                    path.push((loc, i));
                    return Ok(Some((path.clone(), e.clone())));
                }
            }
            if ord != Ordering::Greater {
                if let Some(vcn) = e.sub {
                    let child = self.unseen_child(dev, dir, node, e, vcn, seen)?;
                    path.push((loc, i));
                    if let Some(r) =
                        self.search(dev, dir, NodeLoc::Block(vcn), &child, name, target, depth + 1, seen, path)?
                    {
                        return Ok(Some(r));
                    }
                    path.pop();
                }
                if ord == Ordering::Less {
                    return Ok(None);
                }
            }
        }
        Ok(None)
    }

    /// Looks up one name in a directory (case-insensitive via `$UpCase`);
    /// returns the entry's file reference.
    pub fn lookup_in(&self, dev: &mut impl BlockDevice, dir: &Directory, name: &str) -> Result<Option<FileRef>> {
        let n: Vec<u16> = name.encode_utf16().collect();
        Ok(self.find_entry(dev, dir, &n, None)?.map(|(_, e)| e.file_ref))
    }

    /// Resolves a path of directory components from the root; returns the
    /// file reference of the last one (the root's for an empty path).
    pub fn lookup_path<S: AsRef<str>>(&self, dev: &mut impl BlockDevice, parts: &[S]) -> Result<FileRef> {
        let root = self.load_file(dev, ROOT)?;
        let mut cur = root.base().file_ref();
        let mut walked = String::new();
        for p in parts {
            let p = p.as_ref();
            if !walked.is_empty() {
                walked.push('\\');
            }
            walked.push_str(p);
            let dir = match self.open_dir(dev, cur) {
                Err(NtfsError::NotADirectory { .. }) => return Err(NtfsError::NotADirectory { path: walked }),
                r => r?,
            };
            match self.lookup_in(dev, &dir, p)? {
                Some(r) => cur = r,
                None => return Err(NtfsError::NotFound { path: walked }),
            }
        }
        Ok(cur)
    }

    /// Parses `path` (`\` or `/` separated, relative to the root) and resolves it.
    pub fn lookup(&self, dev: &mut impl BlockDevice, path: &str) -> Result<FileRef> {
        let parts: Vec<&str> = path.split(['\\', '/']).filter(|s| !s.is_empty()).collect();
        self.lookup_path(dev, &parts)
    }

    /// Entries of `dir` whose (non-DOS) name matches `pattern` (glob, case-folded by `$UpCase`).
    /// The volume's own files never match: the records reserved for metadata
    /// (`$MFT` ... and the root's `.`) and everything in `$Extend`.
    pub fn glob(&self, dev: &mut impl BlockDevice, dir: &Directory, pattern: &str) -> Result<Vec<DirEntry>> {
        if dir.file.base().number == EXTEND {
            return Ok(Vec::new());
        }
        let p: Vec<u16> = pattern.encode_utf16().collect();
        Ok(self
            .list_dir(dev, dir)?
            .into_iter()
            .filter(|e| e.file_ref.record() >= FIRST_USER_RECORD)
            .filter(|e| e.namespace != DOS && crate::util::glob::matches(&p, &e.name_utf16, |u| self.upcase.fold(u)))
            .collect())
    }

    /// Where a file's contents are: its unnamed `$DATA` (plain, sparse or
    /// LZNT1-compressed), or for a WOF file its `WofCompressedData`.
    pub fn content(&self, dev: &mut impl BlockDevice, f: &File) -> Result<Content> {
        if let Some(w) = wof::of(self.clusters(), dev, f)? {
            return Ok(Content::Wof(w));
        }
        // A file without an unnamed `$DATA` (a symbolic link, say) is empty.
        Ok(Content::Stream(f.stream(attr::DATA, &[])?.unwrap_or(Stream::Resident(Vec::new()))))
    }

    /// Reads `buf.len()` bytes of a file's contents from byte `pos`, decoded.
    pub fn read_content_at(&self, dev: &mut impl BlockDevice, c: &Content, pos: u64, buf: &mut [u8]) -> Result<()> {
        match c {
            Content::Stream(s) => self.read_stream(dev, s, pos, buf),
            Content::Wof(w) => {
                if pos.checked_add(buf.len() as u64).is_none_or(|e| e > w.size) {
                    return Err(corrupt("WOF file", 0, "read beyond the file"));
                }
                wof::read(self.clusters(), dev, w, pos, buf)
            }
        }
    }

    /// The first `n` bytes of a file's contents (fewer if it is shorter).
    pub fn read_head(&self, dev: &mut impl BlockDevice, f: &File, n: usize) -> Result<Vec<u8>> {
        let c = self.content(dev, f)?;
        let mut v = vec![0u8; (n as u64).min(c.len()) as usize];
        self.read_content_at(dev, &c, 0, &mut v)?;
        Ok(v)
    }

    /// A file's whole contents, decoded, up to `cap` bytes (and [`MAX_READ_WHOLE`]).
    pub fn read_content(&self, dev: &mut impl BlockDevice, f: &File, cap: u64) -> Result<Vec<u8>> {
        let c = self.content(dev, f)?;
        let n = c.len();
        if n > cap.min(MAX_READ_WHOLE) || n > self.boot.volume_bytes() {
            return Err(NtfsError::TooLarge { structure: "file contents", offset: f.base().offset, size: n });
        }
        let mut v = crate::util::mem::zeroed(n as usize).ok_or(NtfsError::TooLarge {
            structure: "file contents (more than the memory available)",
            offset: f.base().offset,
            size: n,
        })?;
        self.read_content_at(dev, &c, 0, &mut v)?;
        Ok(v)
    }

    /// A name's key as found in a file's `$FILE_NAME`s, for callers matching names to entries.
    pub fn names_in(&self, f: &File, parent: FileRef) -> Result<Vec<FileName>> {
        Ok(f.names()?.into_iter().map(|(_, _, n)| n).filter(|n| n.parent.record() == parent.record()).collect())
    }
}

impl Ntfs {
    /// Extents of record `n` (< 4) inside `$MFTMirr`, from the boot sector's mirror cluster.
    pub(super) fn load_file_mirror_extents(&self, n: u64) -> Result<Vec<(u64, u64)>> {
        let rs = self.boot.record_size as u64;
        Ok(vec![(self.boot.mftmirr_lcn * self.cluster() + n * rs, rs)])
    }
}
