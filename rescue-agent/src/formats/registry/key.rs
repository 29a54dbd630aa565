//! Keys and values: `nk` (key node), `vk` (value), the subkey lists (`lf`,
//! `lh`, `li`, and `ri`, a list of lists), the value list, and `db` (big
//! data: values over 16344 bytes in hives of version 1.4 and later).
//!
//! Names compare as Windows compares them: case-insensitively, each UTF-16
//! unit upper-cased (names stored "compressed" are Latin-1, one byte per
//! character).

#![deny(clippy::indexing_slicing)]

use super::cell::{Hive, NONE};
use super::{corrupt, RegError, Result};
use crate::util::le::{le16, le32, utf16_units};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Most subkeys or values one key may list (Windows' limit is far lower in practice).
pub const MAX_LIST: usize = 1 << 20;
/// Deepest key path followed.
pub const MAX_DEPTH: usize = 512;
/// Bytes a plain data cell holds at most; bigger data is split (`db`).
pub const BIG_DATA: u32 = 16344;

/// Registry value types used here.
pub mod kind {
    /// REG_SZ: a UTF-16LE string with its terminating NUL.
    pub const SZ: u32 = 1;
    /// REG_EXPAND_SZ.
    pub const EXPAND_SZ: u32 = 2;
    /// REG_BINARY.
    pub const BINARY: u32 = 3;
    /// REG_DWORD (little-endian).
    pub const DWORD: u32 = 4;
    /// REG_MULTI_SZ.
    pub const MULTI_SZ: u32 = 7;
    /// REG_QWORD (little-endian).
    pub const QWORD: u32 = 11;
}

/// A key node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// Offset of its `nk` cell.
    pub off: u32,
    /// Its name, in UTF-16 units.
    pub name: Vec<u16>,
    /// `nk` flags (0x20: name stored as Latin-1).
    pub flags: u16,
    /// Offset of its parent's `nk` cell (not meaningful for the root).
    pub parent: u32,
    /// Number of (stable) subkeys.
    pub subkey_count: u32,
    /// Offset of the subkey list (or [`NONE`]).
    pub subkey_list: u32,
    /// Number of values.
    pub value_count: u32,
    /// Offset of the value list (or [`NONE`]).
    pub value_list: u32,
    /// Offset of its security descriptor cell (`sk`).
    pub security: u32,
    /// Last written, as a FILETIME.
    pub timestamp: u64,
}

/// A value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// Offset of its `vk` cell.
    pub off: u32,
    /// Its name (empty for the key's default value).
    pub name: Vec<u16>,
    /// Its type (REG_*).
    pub kind: u32,
    /// Data size as stored (bit 31 set: the data, at most 4 bytes, is in `data_off` itself).
    pub raw_size: u32,
    /// Data offset, or the data itself (see `raw_size`).
    pub data_off: u32,
}

impl Value {
    /// Length of the data in bytes.
    pub fn len(&self) -> u32 {
        self.raw_size & 0x7FFF_FFFF
    }
    /// True when the value has no data.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// True when the data lives in the `vk` cell itself (4 bytes or fewer).
    pub fn is_inline(&self) -> bool {
        self.raw_size & 0x8000_0000 != 0
    }
    /// The name for people (lossy UTF-16).
    pub fn name_string(&self) -> String {
        String::from_utf16_lossy(&self.name)
    }
}

impl Key {
    /// The name for people (lossy UTF-16).
    pub fn name_string(&self) -> String {
        String::from_utf16_lossy(&self.name)
    }
}

/// Data for people: DWORD/QWORD in decimal and hex, strings as text, the rest in hex.
pub fn show(kind_: u32, bytes: &[u8]) -> String {
    match (kind_, bytes.len()) {
        (kind::DWORD, 4) => {
            let v = u32::from_le_bytes(bytes.try_into().unwrap_or([0; 4]));
            format!("{v} (0x{v:08x})")
        }
        (kind::QWORD, 8) => {
            let v = u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]));
            format!("{v} (0x{v:016x})")
        }
        (kind::SZ | kind::EXPAND_SZ, _) => {
            let u: Vec<u16> = utf16_units(bytes).take_while(|&x| x != 0).collect();
            format!("{:?}", String::from_utf16_lossy(&u))
        }
        (kind::MULTI_SZ, _) => {
            // Strings each ended by a NUL, the list by an empty one.
            let u: Vec<u16> = utf16_units(bytes).collect();
            let mut list: Vec<String> = u.split(|&x| x == 0).map(String::from_utf16_lossy).collect();
            while list.last().is_some_and(String::is_empty) {
                list.pop();
            }
            format!("{list:?}")
        }
        _ => crate::util::hex::hex(bytes),
    }
}

/// Upper-cases one UTF-16 unit as Windows compares key and value names.
pub fn upcase(u: u16) -> u16 {
    match u {
        0x61..=0x7A => u - 0x20,
        0..=0x7F => u,
        _ => char::from_u32(u as u32)
            .map(|c| {
                let mut up = c.to_uppercase();
                match (up.next(), up.next()) {
                    (Some(x), None) if (x as u32) < 0x10000 => x as u16,
                    _ => u,
                }
            })
            .unwrap_or(u),
    }
}

/// True when two names are equal as Windows compares them.
pub fn same_name(a: &[u16], b: &[u16]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| upcase(x) == upcase(y))
}

/// Decodes a stored name: Latin-1 bytes when `compressed`, else UTF-16LE.
fn name(b: &[u8], compressed: bool) -> Vec<u16> {
    if compressed {
        b.iter().map(|&c| c as u16).collect()
    } else {
        utf16_units(b).collect()
    }
}

impl Hive {
    /// The root key (from the base block).
    pub fn root(&self) -> Result<Key> {
        self.key(self.base.root)
    }

    /// The key whose `nk` cell is at `off`.
    pub fn key(&self, off: u32) -> Result<Key> {
        let c = self.cell(off)?;
        let at = Hive::file_offset(off) as u64 + 4;
        if c.get(..2) != Some(b"nk") || c.len() < 0x4C {
            return Err(corrupt("nk cell", at, "not a key node"));
        }
        let f = |o| le32(c, o).unwrap_or(0);
        let flags = le16(c, 2).unwrap_or(0);
        let nlen = le16(c, 0x48).unwrap_or(0) as usize;
        let nb = c.get(0x4C..0x4C + nlen).ok_or(corrupt("nk cell", at, "name beyond the cell"))?;
        Ok(Key {
            off,
            name: name(nb, flags & 0x20 != 0),
            flags,
            parent: f(0x10),
            subkey_count: f(0x14),
            subkey_list: f(0x1C),
            value_count: f(0x24),
            value_list: f(0x28),
            security: f(0x2C),
            timestamp: crate::util::le::le64(c, 4).unwrap_or(0),
        })
    }

    /// Offsets of the `nk` cells of `key`'s subkeys, in list order (sorted by name).
    pub fn subkey_offsets(&self, key: &Key) -> Result<Vec<u32>> {
        if key.subkey_count == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        self.list_into(key.subkey_list, true, &mut out)?;
        if out.len() != key.subkey_count as usize {
            return Err(corrupt(
                "nk cell",
                Hive::file_offset(key.off) as u64 + 0x18,
                "subkey count disagrees with its list",
            ));
        }
        Ok(out)
    }

    /// Appends the key offsets of subkey list `off` (an `ri` only at the top).
    fn list_into(&self, off: u32, top: bool, out: &mut Vec<u32>) -> Result<()> {
        let c = self.cell(off)?;
        let at = Hive::file_offset(off) as u64 + 4;
        let n = le16(c, 2).unwrap_or(0) as usize;
        let (step, sig) = match c.get(..2) {
            Some(b"lf") | Some(b"lh") => (8, "lf/lh list"),
            Some(b"li") => (4, "li list"),
            Some(b"ri") if top => (4, "ri list"),
            _ => return Err(corrupt("subkey list", at, "unknown list signature")),
        };
        if 4 + n * step > c.len() || out.len() + n > MAX_LIST {
            return Err(corrupt(sig, at, "more entries than the cell holds"));
        }
        for i in 0..n {
            let e = le32(c, 4 + i * step).unwrap_or(NONE);
            if sig == "ri list" {
                self.list_into(e, false, out)?;
            } else {
                out.push(e);
            }
        }
        Ok(())
    }

    /// The subkeys of `key`.
    pub fn subkeys(&self, key: &Key) -> Result<Vec<Key>> {
        self.subkey_offsets(key)?.into_iter().map(|o| self.key(o)).collect()
    }

    /// The subkey of `key` named `name` (case-insensitive), if any.
    pub fn subkey(&self, key: &Key, name: &[u16]) -> Result<Option<Key>> {
        for o in self.subkey_offsets(key)? {
            let k = self.key(o)?;
            if same_name(&k.name, name) {
                return Ok(Some(k));
            }
        }
        Ok(None)
    }

    /// The key at `path` (`\`-separated, relative to the root; empty: the root).
    pub fn open_path(&self, path: &str) -> Result<Key> {
        let mut k = self.root()?;
        let mut walked = String::new();
        for (depth, part) in path.split('\\').filter(|p| !p.is_empty()).enumerate() {
            if depth >= MAX_DEPTH {
                return Err(RegError::Unsupported { detail: "key path too deep" });
            }
            if !walked.is_empty() {
                walked.push('\\');
            }
            walked.push_str(part);
            let n: Vec<u16> = part.encode_utf16().collect();
            k = self.subkey(&k, &n)?.ok_or(RegError::NotFound { path: walked.clone() })?;
        }
        Ok(k)
    }

    /// Offsets of the `vk` cells of `key`'s values.
    pub fn value_offsets(&self, key: &Key) -> Result<Vec<u32>> {
        if key.value_count == 0 {
            return Ok(Vec::new());
        }
        let c = self.cell(key.value_list)?;
        let n = key.value_count as usize;
        if n > MAX_LIST || n * 4 > c.len() {
            return Err(corrupt(
                "value list",
                Hive::file_offset(key.value_list) as u64,
                "more values than the cell holds",
            ));
        }
        Ok((0..n).map(|i| le32(c, 4 * i).unwrap_or(NONE)).collect())
    }

    /// The value whose `vk` cell is at `off`.
    pub fn value_at(&self, off: u32) -> Result<Value> {
        let c = self.cell(off)?;
        let at = Hive::file_offset(off) as u64 + 4;
        if c.get(..2) != Some(b"vk") || c.len() < 0x14 {
            return Err(corrupt("vk cell", at, "not a value"));
        }
        let nlen = le16(c, 2).unwrap_or(0) as usize;
        let flags = le16(c, 0x10).unwrap_or(0);
        let nb = c.get(0x14..0x14 + nlen).ok_or(corrupt("vk cell", at, "name beyond the cell"))?;
        let v = Value {
            off,
            name: name(nb, flags & 1 != 0),
            kind: le32(c, 0x0C).unwrap_or(0),
            raw_size: le32(c, 4).unwrap_or(0),
            data_off: le32(c, 8).unwrap_or(0),
        };
        if v.is_inline() && v.len() > 4 {
            return Err(corrupt("vk cell", at + 4, "inline data longer than 4 bytes"));
        }
        Ok(v)
    }

    /// The values of `key`.
    pub fn values(&self, key: &Key) -> Result<Vec<Value>> {
        self.value_offsets(key)?.into_iter().map(|o| self.value_at(o)).collect()
    }

    /// The value of `key` named `name` (case-insensitive; empty: the default value).
    pub fn value(&self, key: &Key, name: &[u16]) -> Result<Option<Value>> {
        for v in self.values(key)? {
            if same_name(&v.name, name) {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// A value's data (inline, one data cell, or big data segments).
    pub fn data(&self, v: &Value) -> Result<Vec<u8>> {
        let len = v.len() as usize;
        if v.is_inline() {
            if len > 4 {
                return Err(corrupt("vk cell", Hive::file_offset(v.off) as u64, "inline data longer than 4 bytes"));
            }
            return Ok(v.data_off.to_le_bytes().into_iter().take(len).collect());
        }
        if len == 0 {
            return Ok(Vec::new());
        }
        let c = self.cell(v.data_off)?;
        let at = Hive::file_offset(v.data_off) as u64 + 4;
        if c.get(..2) == Some(b"db") && self.base.minor >= 4 && len > BIG_DATA as usize {
            let n = le16(c, 2).unwrap_or(0) as usize;
            let list = self.cell(le32(c, 4).unwrap_or(NONE))?;
            if n * 4 > list.len() {
                return Err(corrupt("db cell", at, "more segments than its list holds"));
            }
            if len > n * BIG_DATA as usize || len > self.bytes.len() {
                return Err(corrupt("db cell", at, "value longer than its segments"));
            }
            let mut out = Vec::with_capacity(len);
            for i in 0..n {
                let seg = self.cell(le32(list, 4 * i).unwrap_or(NONE))?;
                let take = (len - out.len()).min(BIG_DATA as usize).min(seg.len());
                out.extend(seg.iter().take(take));
            }
            if out.len() != len {
                return Err(corrupt("db cell", at, "segments shorter than the value"));
            }
            return Ok(out);
        }
        c.get(..len).map(|d| d.to_vec()).ok_or(corrupt("value data", at, "longer than its cell"))
    }
}
