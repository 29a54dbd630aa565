//! FVE metadata entries ("datums"): a size, an entry type, a value type and a
//! version, then a value whose layout the value type decides. Some values
//! (VMK, stretch key, use key, external key) end in nested datums.
//!
//! Every accessor checks lengths; a datum whose size runs past its container
//! is reported as corrupt with its byte offset.

#![deny(clippy::indexing_slicing)]

use super::error::{corrupt, Result};
use crate::util::guid::Guid;
use crate::util::le::{array, le16, le64, utf16_units};
use alloc::string::String;

/// Entry types (what a datum is for).
pub mod entry {
    /// A property: an entry with no role of its own (nested entries, the
    /// validation's AES-CCM value, keys inside VMK entries).
    pub const PROPERTY: u16 = 0x0000;
    /// A volume master key protector (value type `value::VMK`).
    pub const VMK: u16 = 0x0002;
    /// The full volume encryption key, wrapped under the VMK (AES-CCM value).
    pub const FVEK: u16 = 0x0003;
    /// Validation data (not read by this engine).
    pub const VALIDATION: u16 = 0x0004;
    /// A startup key: the external key entry of a .BEK file.
    pub const STARTUP_KEY: u16 = 0x0006;
    /// The volume description (UTF-16 string, e.g. "COMPUTER-NAME C: date").
    pub const DESCRIPTION: u16 = 0x0007;
    /// A second copy of the wrapped FVEK (not used by this engine).
    pub const FVEK_BACKUP: u16 = 0x000b;
    /// Where the original boot sectors were relocated (offset-and-size value).
    pub const VOLUME_HEADER: u16 = 0x000f;
}

/// Value types (how a datum's value is laid out).
pub mod value {
    /// An erased entry: no value.
    pub const ERASED: u16 = 0x0000;
    /// A key: 2-byte encryption method, 2 reserved bytes, then the key bytes.
    pub const KEY: u16 = 0x0001;
    /// A UTF-16LE string.
    pub const UNICODE: u16 = 0x0002;
    /// A key-stretch salt: 4-byte method, 16-byte salt, then nested entries.
    pub const STRETCH_KEY: u16 = 0x0003;
    /// A use key: 4-byte method, then nested entries.
    pub const USE_KEY: u16 = 0x0004;
    /// An AES-CCM encrypted value: 12-byte nonce, 16-byte tag, ciphertext.
    pub const AES_CCM: u16 = 0x0005;
    /// A TPM-sealed key blob (not opened by this engine).
    pub const TPM_KEY: u16 = 0x0006;
    /// Validation data (not read by this engine).
    pub const VALIDATION: u16 = 0x0007;
    /// A volume master key protector: 16-byte Key ID, 8-byte FILETIME, 2 unknown
    /// bytes, 2-byte protection type, then nested entries.
    pub const VMK: u16 = 0x0008;
    /// An external (startup) key: 16-byte Key ID, 8-byte FILETIME, then nested entries.
    pub const EXTERNAL_KEY: u16 = 0x0009;
    /// An update record (not used by this engine).
    pub const UPDATE: u16 = 0x000a;
    /// An error record (not used by this engine).
    pub const ERROR: u16 = 0x000b;
    /// Two little-endian u64s: a byte offset and a size in bytes.
    pub const OFFSET_SIZE: u16 = 0x000f;
}

/// Size of a datum header.
pub const HEADER_LEN: usize = 8;

/// One datum, borrowed from the metadata buffer.
#[derive(Clone, Copy, Debug)]
pub struct Datum<'a> {
    /// Byte position of the datum (for error messages).
    pub offset: u64,
    /// What the datum is for: one of the [`entry`] codes (bytes 2–3).
    pub entry_type: u16,
    /// How the value is laid out: one of the [`value`] codes (bytes 4–5).
    pub value_type: u16,
    /// Datum format version (bytes 6–7).
    pub version: u16,
    /// The whole datum, header included.
    pub raw: &'a [u8],
}

/// Iterates over a list of datums in `buf`, whose first byte is at byte
/// position `base`. Stops at the end of the buffer, at a zero size or at
/// fewer than 8 bytes left; yields an error (once) for a datum that runs past
/// the end or is shorter than its header.
pub struct Datums<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
    failed: bool,
}

impl<'a> Datums<'a> {
    /// Starts iterating at the beginning of `buf`; `base` is the byte position
    /// of `buf[0]`, used for the offsets reported in datums and errors.
    pub fn new(buf: &'a [u8], base: u64) -> Self {
        Datums { buf, pos: 0, base, failed: false }
    }
}

impl<'a> Iterator for Datums<'a> {
    type Item = Result<Datum<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.buf.len().saturating_sub(self.pos) < HEADER_LEN {
            return None;
        }
        let b = self.buf.get(self.pos..)?;
        let size = le16(b, 0).unwrap_or(0) as usize;
        if size == 0 {
            return None;
        }
        let offset = self.base + self.pos as u64;
        let Some(raw) = b.get(..size).filter(|_| size >= HEADER_LEN) else {
            self.failed = true;
            return Some(corrupt("metadata entry size", offset));
        };
        let d = Datum {
            offset,
            entry_type: le16(b, 2).unwrap_or(0),
            value_type: le16(b, 4).unwrap_or(0),
            version: le16(b, 6).unwrap_or(0),
            raw,
        };
        self.pos += size;
        Some(Ok(d))
    }
}

impl<'a> Datum<'a> {
    /// The value after the 8-byte header.
    pub fn data(&self) -> &'a [u8] {
        self.raw.get(HEADER_LEN..).unwrap_or_default()
    }

    /// The data's first `len` bytes and the rest; an error naming `what` when it is shorter.
    fn need(&self, len: usize, what: &'static str) -> Result<(&'a [u8], &'a [u8])> {
        match self.data().split_at_checked(len) {
            Some(parts) => Ok(parts),
            None => corrupt(what, self.offset),
        }
    }

    /// Nested datums after a fixed part of `fixed` bytes of value.
    pub fn nested(&self, fixed: usize) -> Result<Datums<'a>> {
        let (_, rest) = self.need(fixed, "metadata entry (too short for its nested entries)")?;
        Ok(Datums::new(rest, self.offset + (HEADER_LEN + fixed) as u64))
    }

    /// Nested datums of a VMK, stretch key, use key or external key value.
    pub fn children(&self) -> Result<Datums<'a>> {
        let fixed = match self.value_type {
            value::VMK => 28,
            value::STRETCH_KEY => 20,
            value::USE_KEY => 4,
            value::EXTERNAL_KEY => 24,
            _ => return corrupt("metadata entry (no nested entries expected)", self.offset),
        };
        self.nested(fixed)
    }

    /// A key value: (encryption method, key bytes).
    pub fn key(&self) -> Result<(u16, &'a [u8])> {
        if self.value_type != value::KEY {
            return corrupt("key entry (wrong value type)", self.offset);
        }
        let (head, key) = self.need(4, "key entry")?;
        Ok((le16(head, 0).unwrap_or(0), key))
    }

    /// A UTF-16LE string value, decoded (unpaired surrogates become U+FFFD;
    /// a trailing NUL is dropped).
    pub fn unicode(&self) -> String {
        let d = self.data();
        let units = utf16_units(d).take_while(|&u| u != 0);
        char::decode_utf16(units).map(|r| r.unwrap_or('\u{FFFD}')).collect()
    }

    /// A stretch key value: (method, salt).
    pub fn stretch_salt(&self) -> Result<[u8; 16]> {
        let (head, _) = self.need(20, "stretch key entry")?;
        array(head, 4).map_or_else(|| corrupt("stretch key entry", self.offset), Ok)
    }

    /// An AES-CCM value: (nonce, tag, ciphertext).
    pub fn ccm(&self) -> Result<CcmBlob<'a>> {
        if self.value_type != value::AES_CCM {
            return corrupt("AES-CCM entry (wrong value type)", self.offset);
        }
        let (head, ciphertext) = self.need(28, "AES-CCM entry")?;
        let (Some(nonce), Some(tag)) = (array(head, 0), array(head, 12)) else {
            return corrupt("AES-CCM entry", self.offset);
        };
        Ok(CcmBlob { nonce, tag, ciphertext, offset: self.offset })
    }

    /// A VMK or external key's GUID.
    pub fn guid(&self) -> Result<Guid> {
        let (d, _) = self.need(16, "key protector entry")?;
        Ok(Guid::from_slice(d))
    }

    /// An offset-and-size value.
    pub fn offset_size(&self) -> Result<(u64, u64)> {
        let (d, _) = self.need(16, "offset and size entry")?;
        Ok((le64(d, 0).unwrap_or(0), le64(d, 8).unwrap_or(0)))
    }
}

/// An AES-CCM encrypted value: a 12-byte nonce, a 16-byte tag, ciphertext.
#[derive(Clone, Copy, Debug)]
pub struct CcmBlob<'a> {
    /// The 12-byte CCM nonce (bytes 0–11 of the value).
    pub nonce: [u8; 12],
    /// The 16-byte CCM authentication tag (bytes 12–27 of the value).
    pub tag: [u8; 16],
    /// The encrypted bytes after the tag.
    pub ciphertext: &'a [u8],
    /// Byte position of the datum holding this value (for error messages).
    pub offset: u64,
}

/// Serialises a datum header followed by `value` (used by the test-support writer).
pub fn build(entry_type: u16, value_type: u16, version: u16, value: &[u8]) -> alloc::vec::Vec<u8> {
    let size = HEADER_LEN + value.len();
    let mut v = alloc::vec::Vec::with_capacity(size);
    v.extend_from_slice(&(size as u16).to_le_bytes());
    v.extend_from_slice(&entry_type.to_le_bytes());
    v.extend_from_slice(&value_type.to_le_bytes());
    v.extend_from_slice(&version.to_le_bytes());
    v.extend_from_slice(value);
    v
}
