//! NTFS: read a volume, and delete files from it exactly as Windows expects.
//!
//! One module per on-disk structure (as in ColinFinck/ntfs):
//! [`boot`] (boot sector), [`record`] (`FILE` records and update-sequence
//! fixups), [`attr`] (attribute headers), [`runs`] (data runs),
//! [`attrlist`] (`$ATTRIBUTE_LIST`), [`upcase`] (`$UpCase`), [`filename`]
//! (`$FILE_NAME`), [`index`] (`$INDEX_ROOT`/`$INDEX_ALLOCATION`/`$BITMAP`,
//! the B+ tree), [`logfile`] (`$LogFile` restart areas), [`volume`]
//! (`$Volume` flags, hibernation). Writing is planned in four steps, one
//! module each: [`gate`] (the safety checks that issue a
//! [`gate::Clearance`]), [`delete`] and [`overwrite`] (the planners),
//! `index_edit` and `bitmap` (the index and bitmap editors the delete
//! planner uses), and [`plan`] (the write list and [`plan::execute`], the
//! only function that writes). Reading decodes every kind of file Windows
//! writes ([`stream`]): sparse, LZNT1-compressed (`compressed`) and
//! WOF/CompactOS ([`wof`], with the decompressors in [`crate::formats::decompress`]).
//!
//! Typical use (what `rescue apply` and the agent do through
//! [`crate::rules::apply`]):
//!
//! ```text
//! let v = Ntfs::open(dev)?;                                   // boot sector, $MFT runs, $UpCase
//! let dir = v.open_dir(dev, v.lookup(dev, r"Windows\System32")?)?;
//! let hits = v.glob(dev, &dir, "C-00000291*.sys")?;           // case-folded by $UpCase
//! let mut gate = gate::clear_for_writing(&v, dev, UncleanJournal::Refuse)?; // hibernation, journal
//! let plan = delete::plan_delete(&v, dev, &gate, dir_ref, file_ref, &[name])?; // reads only
//! plan::execute(dev, &plan, None)?;                          // the only NTFS write path
//! ```
//!
//! A deleted file leaves `$Extend\$ObjId:$O` and `$Extend\$Reparse:$R`
//! with it (as Windows and ntfs-3g do). Known limits (each refused with a
//! typed error or noted in the plan, never guessed): the `$Quota` index and
//! the USN journal are not updated (quota charges and USN records are left
//! to Windows); EFS files are reported and left alone. An interior index
//! entry whose successor and predecessor both do not fit its node makes the
//! node split (a full root moves into a new block), taking a free index
//! block or growing `$INDEX_ALLOCATION` by one; a split that would need a
//! non-resident index bitmap or a record with no room is refused
//! ([`NtfsError::NoSpace`], [`NtfsError::Unsupported`]).
//!
//! Guarantees shared by every function here: the device is passed per call;
//! disk data never causes a panic; every allocation is capped (by the volume
//! size or a fixed limit below) and every walk is bounded (run lists by their
//! byte length, index depth by [`MAX_INDEX_DEPTH`], attribute lists by
//! [`MAX_EXTENSION_RECORDS`], visited sets for index blocks). Errors name the
//! structure and carry its byte offset on the volume.

// Byte-layout checks read better as `% 8 != 0`; `is_multiple_of` needs Rust 1.87 (MSRV is 1.85).
#![allow(clippy::manual_is_multiple_of)]

pub mod attr;
pub mod attrlist;
mod bitmap;
pub mod boot;
mod compressed;
pub mod create;
pub mod delete;
pub mod file;
pub mod filename;
pub mod fs;
pub mod gate;
pub mod index;
mod index_edit;
pub mod journal;
pub mod logfile;
pub mod overwrite;
pub mod plan;
pub mod record;
pub mod runs;
pub mod stream;
pub mod upcase;
pub mod volume;
pub mod wof;

pub use fs::{DirEntry, FileInfo, Ntfs};
pub use plan::{execute, Plan, PlanWrite, WriteData};

use crate::block::IoError;
use alloc::string::String;
use core::fmt;

/// Deepest index B+ tree we walk (real trees of millions of entries are < 6 deep).
pub const MAX_INDEX_DEPTH: usize = 16;
/// Most extension records one file may have.
pub const MAX_EXTENSION_RECORDS: usize = 512;
/// Largest stream we read into memory as a whole (backups, attribute lists).
pub const MAX_READ_WHOLE: u64 = 256 * 1024 * 1024;

/// Every way an NTFS operation can fail. Variants that describe disk data
/// name the structure and carry its byte offset on the volume.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NtfsError {
    /// The device failed.
    Io(IoError),
    /// Sector 0 is not an NTFS boot sector.
    NotNtfs {
        /// Byte offset of the sector checked (0: the volume's first sector).
        offset: u64,
    },
    /// On-disk data is inconsistent.
    Corrupt {
        /// Names the structure (e.g. `"index block"`).
        structure: &'static str,
        /// Byte offset of the structure on the volume.
        offset: u64,
        /// What is wrong with it.
        detail: &'static str,
    },
    /// Valid NTFS that this engine does not handle (and therefore never writes).
    Unsupported {
        /// Names the structure (e.g. `"index block"`).
        structure: &'static str,
        /// Byte offset of the structure on the volume.
        offset: u64,
        /// What feature it uses.
        detail: &'static str,
    },
    /// A path component was not found.
    NotFound {
        /// The path walked so far, `\`-separated, ending at the missing component.
        path: String,
    },
    /// A path component is a file, not a directory.
    NotADirectory {
        /// The path walked so far, `\`-separated, ending at the file (may be empty when no path was given).
        path: String,
    },
    /// A size is beyond what we read into memory.
    TooLarge {
        /// Names the structure (e.g. `"index block"`).
        structure: &'static str,
        /// Byte offset of the structure on the volume.
        offset: u64,
        /// Its size in bytes.
        size: u64,
    },
    /// `hiberfil.sys` holds a hibernation (or fast-startup) image: Windows
    /// would resume from it and overwrite our change, so we refuse to write.
    Hibernated {
        /// Byte offset of `hiberfil.sys`'s MFT record.
        offset: u64,
        /// What its signature says, in words.
        state: &'static str,
    },
    /// `$LogFile` says the volume was not cleanly unmounted and the policy is `refuse`.
    UncleanJournal {
        /// Byte offset of the start of `$LogFile` on the volume.
        offset: u64,
    },
    /// `$LogFile` restart page of a version or layout we do not know: refused.
    UnknownJournal {
        /// Byte offset of the restart page (or part of it) not understood.
        offset: u64,
        /// Major version from the restart page (0 when it has none).
        major: i16,
        /// Minor version from the restart page (0 when it has none).
        minor: i16,
    },
    /// No room: an index node for the entry an edit must put into it, `$Bitmap`
    /// for a file's clusters, `$MFT` for a new record.
    NoSpace {
        /// The index node (`"$INDEX_ROOT"` or `"index block"`).
        structure: &'static str,
        /// Byte offset of the node on the volume.
        offset: u64,
    },
    /// The target is not something we delete (system file, directory, ...).
    Refused {
        /// Byte offset of the target's base MFT record.
        offset: u64,
        /// Why it is refused.
        detail: &'static str,
    },
    /// The journal holds an operation the replay does not implement: nothing is written.
    JournalOp {
        /// The LSN of the record.
        lsn: u64,
        /// The operation's name.
        op: &'static str,
    },
    /// The target changed between planning and writing.
    Stale {
        /// Byte offset of the target's base MFT record.
        offset: u64,
    },
}

impl From<IoError> for NtfsError {
    fn from(e: IoError) -> Self {
        NtfsError::Io(e)
    }
}

impl From<crate::util::le::OutOfBounds> for NtfsError {
    fn from(e: crate::util::le::OutOfBounds) -> Self {
        corrupt("structure being edited", e.offset as u64, "a field to write lies outside it")
    }
}

impl fmt::Display for NtfsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use NtfsError::*;
        match self {
            Io(e) => write!(f, "{e}"),
            NotNtfs { offset } => write!(f, "no NTFS boot sector at byte {offset}"),
            Corrupt { structure, offset, detail } => write!(f, "corrupt {structure} at byte {offset}: {detail}"),
            Unsupported { structure, offset, detail } => write!(f, "unsupported {structure} at byte {offset}: {detail}"),
            NotFound { path } => write!(f, "not found: {path}"),
            NotADirectory { path } => write!(f, "not a directory: {path}"),
            TooLarge { structure, offset, size } => write!(f, "{structure} at byte {offset} is too large ({size} bytes)"),
            Hibernated { offset, state } => write!(f, "volume is hibernated (hiberfil.sys at byte {offset} holds {state}): refusing to write; shut Windows down fully (hold Shift while choosing Shut down) or delete hiberfil.sys"),
            UncleanJournal { offset } => write!(f, "$LogFile at byte {offset} says the volume was not cleanly unmounted; the profile says refuse (set [ntfs] unclean_journal = \"reset\" to reset it and have chkdsk run)"),
            UnknownJournal { offset, major, minor } => write!(f, "$LogFile restart page at byte {offset} has unknown version {major}.{minor} or layout: refusing to write"),
            NoSpace { structure, offset } => write!(f, "no room in {structure} at byte {offset}: refusing to write"),
            Refused { offset, detail } => write!(f, "refused (record at byte {offset}): {detail}"),
            JournalOp { lsn, op } => write!(f, "$LogFile record at LSN {lsn} holds operation {op}, which this tool does not replay: nothing written (boot Windows to let it replay the journal, or set [ntfs] unclean_journal = \"reset\")"),
            Stale { offset } => write!(f, "data at byte {offset} changed since the plan was made"),
        }
    }
}

impl core::error::Error for NtfsError {}

/// Shorthand for results of NTFS operations.
pub type Result<T> = core::result::Result<T, NtfsError>;

pub(crate) use crate::util::le::{byte, le16, le32, le64, put16, put32, put64};

pub(crate) fn corrupt(structure: &'static str, offset: u64, detail: &'static str) -> NtfsError {
    NtfsError::Corrupt { structure, offset, detail }
}

/// An MFT file reference: the record number (low 48 bits) and the
/// record's sequence number (high 16 bits) when the reference was made. A
/// type of its own, so that a directory and a file cannot be swapped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileRef(pub u64);

impl FileRef {
    /// The record number (low 48 bits).
    pub fn record(self) -> u64 {
        self.0 & 0x0000_FFFF_FFFF_FFFF
    }
    /// The sequence number (high 16 bits); 0 means "any".
    pub fn seq(self) -> u16 {
        (self.0 >> 48) as u16
    }
    /// The reference to record `record` with sequence number `seq`.
    pub fn new(record: u64, seq: u16) -> FileRef {
        FileRef(record & 0x0000_FFFF_FFFF_FFFF | (seq as u64) << 48)
    }
}
