//! The Windows registry: hive files (regf) read and edited in memory, with
//! the same discipline as NTFS — read, validate, plan, write.
//!
//! One module per structure: [`base`] (the 4 KiB base block: sequence
//! numbers, checksum), [`cell`] (hive bins and cells, every offset checked),
//! [`key`] (nk, vk, subkey lists lf/lh/li/ri, big data db: lookup as Windows
//! does it), [`log`] (transaction logs: recovering a dirty hive), [`edit`]
//! (changing values in place or in free cells; creating and removing a key),
//! [`audit`] (before an edit: every cell it may touch belongs to one structure),
//! [`journal`] (writing an edit as Windows does: log entry first).
//!
//! Sources: the format as documented by Joachim Metz (libyal, "Windows NT
//! Registry File (REGF) format specification") and Maxim Suhanov ("Windows
//! registry file format specification", msuhanov/regf), read for facts only.
//!
//! Guarantees shared by every function here: hive bytes are data, never
//! trusted; every offset and length is checked against the hive before use;
//! no panic on any input; walks are bounded (key depth, list sizes).

pub mod audit;
pub mod base;
pub mod bcd;
pub mod cell;
pub mod edit;
pub mod journal;
pub mod key;
pub mod log;

use core::fmt;

/// Every way reading or editing a hive can fail.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegError {
    /// The hive's bytes are inconsistent.
    Corrupt {
        /// The structure (e.g. `"nk cell"`).
        structure: &'static str,
        /// Byte offset in the hive file.
        offset: u64,
        /// What is wrong.
        detail: &'static str,
    },
    /// Valid, but something this engine does not handle (and so never writes).
    Unsupported {
        /// What it is.
        detail: &'static str,
    },
    /// The primary file is dirty (a crash left changes in its logs) and the
    /// logs are missing or unusable: editing it would lose those changes.
    Dirty {
        /// Why recovery was not possible.
        detail: &'static str,
    },
    /// A key or value named in the path does not exist.
    NotFound {
        /// The path walked, `\`-separated, up to the missing part.
        path: alloc::string::String,
    },
    /// The change needs more space than the hive's free cells have, and the
    /// hive file is never grown.
    NoSpace,
    /// The value exists with another type than the one to set.
    TypeMismatch {
        /// The value's name.
        name: alloc::string::String,
        /// Its registry type (REG_*) on disk.
        found: u32,
    },
}

impl From<crate::util::le::OutOfBounds> for RegError {
    fn from(e: crate::util::le::OutOfBounds) -> Self {
        RegError::Corrupt {
            structure: "structure being edited",
            offset: e.offset as u64,
            detail: "a field to write lies outside it",
        }
    }
}

impl fmt::Display for RegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RegError::*;
        match self {
            Corrupt { structure, offset, detail } => write!(f, "corrupt hive: {structure} at byte {offset}: {detail}"),
            Unsupported { detail } => write!(f, "unsupported hive: {detail}"),
            Dirty { detail } => {
                write!(f, "the hive is dirty (Windows did not save it cleanly) and {detail}: refusing to edit it")
            }
            NotFound { path } => write!(f, "not in the hive: {path}"),
            NoSpace => write!(f, "the hive has no free cell large enough and is never grown: refusing to edit it"),
            TypeMismatch { name, found } => write!(f, "value {name:?} has registry type {found}, not the one to set"),
        }
    }
}

impl core::error::Error for RegError {}

/// Shorthand for registry results.
pub type Result<T> = core::result::Result<T, RegError>;

/// The error for a hive (or a copy of it) that does not fit in memory.
pub(crate) fn no_memory() -> RegError {
    RegError::Unsupported { detail: "the hive does not fit in the memory available" }
}

/// A copy of `bytes`, or [`no_memory`].
pub(crate) fn copy(bytes: &[u8]) -> Result<alloc::vec::Vec<u8>> {
    crate::util::mem::copy(bytes).ok_or_else(no_memory)
}

pub(crate) fn corrupt(structure: &'static str, offset: u64, detail: &'static str) -> RegError {
    RegError::Corrupt { structure, offset, detail }
}
