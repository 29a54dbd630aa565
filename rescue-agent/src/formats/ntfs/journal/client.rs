//! The NTFS client's records inside the log: update records (redo/undo
//! operations on one page), the checkpoint (restart) record, and the
//! restart tables it dumps (open attributes, dirty pages, transactions).

#![deny(clippy::indexing_slicing)]

use super::super::{corrupt, le16, le32, le64, NtfsError, Result};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Every operation code NTFS writes, by name (`ntfsrecover` and ntfs3 use the same names).
pub const OP_NAMES: [&str; 38] = [
    "Noop",
    "CompensationLogRecord",
    "InitializeFileRecordSegment",
    "DeallocateFileRecordSegment",
    "WriteEndOfFileRecordSegment",
    "CreateAttribute",
    "DeleteAttribute",
    "UpdateResidentValue",
    "UpdateNonResidentValue",
    "UpdateMappingPairs",
    "DeleteDirtyClusters",
    "SetNewAttributeSizes",
    "AddIndexEntryRoot",
    "DeleteIndexEntryRoot",
    "AddIndexEntryAllocation",
    "DeleteIndexEntryAllocation",
    "WriteEndOfIndexBuffer",
    "SetIndexEntryVcnRoot",
    "SetIndexEntryVcnAllocation",
    "UpdateFileNameRoot",
    "UpdateFileNameAllocation",
    "SetBitsInNonResidentBitMap",
    "ClearBitsInNonResidentBitMap",
    "HotFix",
    "EndTopLevelAction",
    "PrepareTransaction",
    "CommitTransaction",
    "ForgetTransaction",
    "OpenNonResidentAttribute",
    "OpenAttributeTableDump",
    "AttributeNamesDump",
    "DirtyPageTableDump",
    "TransactionTableDump",
    "UpdateRecordDataRoot",
    "UpdateRecordDataAllocation",
    "UpdateRelativeDataInIndex",
    "UpdateRelativeDataInIndex2",
    "ZeroEndOfFileRecord",
];

/// The name of operation `op` (`"unknown"` beyond the table).
pub fn op_name(op: u16) -> &'static str {
    OP_NAMES.get(op as usize).copied().unwrap_or("unknown operation")
}

#[allow(missing_docs)]
pub mod op {
    pub const NOOP: u16 = 0;
    pub const CLR: u16 = 1;
    pub const INIT_FRS: u16 = 2;
    pub const DEALLOC_FRS: u16 = 3;
    pub const WRITE_END_FRS: u16 = 4;
    pub const CREATE_ATTR: u16 = 5;
    pub const DELETE_ATTR: u16 = 6;
    pub const UPDATE_RESIDENT: u16 = 7;
    pub const UPDATE_NONRESIDENT: u16 = 8;
    pub const UPDATE_MAPPING: u16 = 9;
    pub const DELETE_DIRTY: u16 = 10;
    pub const SET_SIZES: u16 = 11;
    pub const ADD_ENTRY_ROOT: u16 = 12;
    pub const DEL_ENTRY_ROOT: u16 = 13;
    pub const ADD_ENTRY_ALLOC: u16 = 14;
    pub const DEL_ENTRY_ALLOC: u16 = 15;
    pub const WRITE_END_INDEX: u16 = 16;
    pub const SET_VCN_ROOT: u16 = 17;
    pub const SET_VCN_ALLOC: u16 = 18;
    pub const UPDATE_NAME_ROOT: u16 = 19;
    pub const UPDATE_NAME_ALLOC: u16 = 20;
    pub const SET_BITS: u16 = 21;
    pub const CLEAR_BITS: u16 = 22;
    pub const HOT_FIX: u16 = 23;
    pub const END_TOP_LEVEL: u16 = 24;
    pub const PREPARE: u16 = 25;
    pub const COMMIT: u16 = 26;
    pub const FORGET: u16 = 27;
    pub const OPEN_NONRESIDENT: u16 = 28;
    pub const OPEN_ATTR_DUMP: u16 = 29;
    pub const NAMES_DUMP: u16 = 30;
    pub const DIRTY_PAGES_DUMP: u16 = 31;
    pub const TRANSACTIONS_DUMP: u16 = 32;
    pub const UPDATE_DATA_ROOT: u16 = 33;
    pub const UPDATE_DATA_ALLOC: u16 = 34;
    pub const ZERO_END_FRS: u16 = 37;
}

/// The fixed part of an update record (before the LCN list).
pub const UPDATE_HEADER: usize = 0x20;

/// An update record: one redo and one undo operation on one page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// Redo operation.
    pub redo_op: u16,
    /// Undo operation.
    pub undo_op: u16,
    /// Redo data (`None`: it runs past the record).
    pub redo: Option<Vec<u8>>,
    /// Undo data (`None`: it runs past the record).
    pub undo: Option<Vec<u8>>,
    /// Offset of the target attribute's entry in the open attribute table.
    pub target_attr: u16,
    /// Offset of the record (attribute, index entry) in the page.
    pub record_offset: u16,
    /// Offset within that record.
    pub attribute_offset: u16,
    /// Offset of the page in its cluster, in 512-byte blocks.
    pub cluster_block_offset: u16,
    /// The first VCN of the page in the target attribute.
    pub target_vcn: u64,
    /// The clusters of the page.
    pub lcns: Vec<u64>,
}

/// Parses an update record's client data (`at`: its position for errors).
pub fn parse_update(d: &[u8], at: u64) -> Result<Update> {
    let f16 = |o: usize| le16(d, o).ok_or(corrupt("$LogFile update record", at, "shorter than its header"));
    let lcn_count = f16(0x0E)? as usize;
    let lcns_end = UPDATE_HEADER + 8 * lcn_count;
    if lcns_end > d.len() {
        return Err(corrupt("$LogFile update record", at, "LCN list runs past the record"));
    }
    let lcns = (0..lcn_count).filter_map(|i| le64(d, UPDATE_HEADER + 8 * i)).collect();
    // Data that runs past the record (Windows 10 writes such records with flags 0x6) is kept
    // as `None`: an error only if the replay needs it.
    let part = |off: u16, len: u16| -> Option<Vec<u8>> {
        let (o, l) = (off as usize, len as usize);
        d.get(o..o + l).map(<[u8]>::to_vec)
    };
    let redo_op = f16(0)?;
    let is_dump = (op::OPEN_ATTR_DUMP..=op::TRANSACTIONS_DUMP).contains(&redo_op);
    let (redo, undo) = if is_dump {
        // A table dump runs from its redo offset to the end of the record (tables outgrow the u16 length).
        let from = f16(4)? as usize;
        let table = d.get(from..).ok_or(corrupt("$LogFile table dump", at, "redo offset past the record"))?;
        (Some(table.to_vec()), Some(Vec::new()))
    } else {
        (part(f16(4)?, f16(6)?), part(f16(8)?, f16(0x0A)?))
    };
    Ok(Update {
        redo_op,
        undo_op: f16(2)?,
        redo,
        undo,
        target_attr: f16(0x0C)?,
        record_offset: f16(0x10)?,
        attribute_offset: f16(0x12)?,
        cluster_block_offset: f16(0x14)?,
        target_vcn: le64(d, 0x18).unwrap_or(0),
        lcns,
    })
}

/// The NTFS checkpoint: where its table dumps are in the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Version of the tables (0: 32-bit entries as Windows XP/7 write; 1: 64-bit, Windows 8+).
    pub major: u32,
    /// Where analysis starts.
    pub start: u64,
    /// LSNs of the dumps (0: none) and their lengths.
    pub open_attrs: (u64, u32),
    /// Attribute names dump.
    pub names: (u64, u32),
    /// Dirty page table dump.
    pub dirty_pages: (u64, u32),
    /// Transaction table dump.
    pub transactions: (u64, u32),
}

/// Parses the checkpoint record's client data.
pub fn parse_checkpoint(d: &[u8], at: u64) -> Result<Checkpoint> {
    let c = |o: usize| le64(d, o).ok_or(corrupt("$LogFile checkpoint record", at, "shorter than a restart area"));
    let l = |o: usize| le32(d, o).unwrap_or(0);
    let major = le32(d, 0).unwrap_or(0);
    if major > 1 {
        return Err(NtfsError::Unsupported {
            structure: "$LogFile checkpoint record",
            offset: at,
            detail: "restart area version above 1",
        });
    }
    Ok(Checkpoint {
        major,
        start: c(0x08)?,
        open_attrs: (c(0x10)?, l(0x30)),
        names: (c(0x18)?, l(0x34)),
        dirty_pages: (c(0x20)?, l(0x38)),
        transactions: (c(0x28)?, l(0x3C)),
    })
}

/// Marks an allocated entry of a restart table.
pub const ENTRY_ALLOCATED: u32 = 0xFFFF_FFFF;

/// The allocated entries of a restart table dump: offset in the table → entry bytes.
pub fn table_entries(d: &[u8], at: u64) -> Result<BTreeMap<u32, Vec<u8>>> {
    let bad = |detail| corrupt("$LogFile restart table", at, detail);
    let size = le16(d, 0).ok_or(bad("shorter than its header"))? as usize;
    let count = le16(d, 2).ok_or(bad("shorter than its header"))? as usize;
    if size < 8 || size % 4 != 0 {
        return Err(bad("entry size out of range"));
    }
    let mut out = BTreeMap::new();
    for i in 0..count {
        let o = 0x18 + i * size;
        let Some(e) = d.get(o..o + size) else {
            return Err(bad("entries run past the dump"));
        };
        if le32(e, 0) == Some(ENTRY_ALLOCATED) {
            out.insert(o as u32, e.to_vec());
        }
    }
    Ok(out)
}

/// An open attribute: what a target attribute index names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenAttr {
    /// The file holding the attribute.
    pub file: u64,
    /// Attribute type code.
    pub attr_type: u32,
    /// Bytes per index buffer (index allocations), else 0.
    pub bytes_per_index: u32,
}

/// Reads an open attribute entry (version 0: 0x2C bytes, 1: 0x28).
pub fn open_attr(e: &[u8], major: u32) -> OpenAttr {
    let g32 = |o| le32(e, o).unwrap_or(0);
    if major == 0 {
        OpenAttr { file: le64(e, 0x08).unwrap_or(0), attr_type: g32(0x1C), bytes_per_index: g32(0x28) }
    } else {
        OpenAttr { file: le64(e, 0x10).unwrap_or(0), attr_type: g32(0x08), bytes_per_index: g32(0x04) }
    }
}

/// A dirty page: a page of an attribute changed in memory but maybe not on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirtyPage {
    /// Offset of its attribute's entry in the open attribute table.
    pub target_attr: u32,
    /// First VCN of the page.
    pub vcn: u64,
    /// The oldest LSN that may not be on disk for it.
    pub oldest_lsn: u64,
    /// Its clusters.
    pub lcns: Vec<u64>,
}

/// Reads a dirty page entry (version 0 keeps a 32-bit reserved field before the VCN).
pub fn dirty_page(e: &[u8], major: u32) -> DirtyPage {
    let base = if major == 0 { 0x14 } else { 0x10 };
    let n = le32(e, 0x0C).unwrap_or(0) as usize;
    DirtyPage {
        target_attr: le32(e, 4).unwrap_or(0),
        vcn: le64(e, base).unwrap_or(0),
        oldest_lsn: le64(e, base + 8).unwrap_or(0),
        lcns: (0..n.min(64)).filter_map(|i| le64(e, base + 16 + 8 * i)).collect(),
    }
}

/// Transaction states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum TxState {
    /// Running when the log ends: its updates are undone.
    Active,
    /// Prepared (not used by NTFS itself).
    Prepared,
    /// Committed: its updates are redone.
    Committed,
}

/// A transaction as the checkpoint or analysis knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// Its state.
    pub state: TxState,
    /// Its first record.
    pub first_lsn: u64,
    /// The next record to undo (0: nothing left).
    pub undo_next_lsn: u64,
}

/// Reads a transaction entry.
pub fn transaction(e: &[u8]) -> Transaction {
    let state = match e.get(4).copied().unwrap_or(1) {
        2 => TxState::Prepared,
        3 => TxState::Committed,
        _ => TxState::Active,
    };
    Transaction { state, first_lsn: le64(e, 0x08).unwrap_or(0), undo_next_lsn: le64(e, 0x18).unwrap_or(0) }
}
