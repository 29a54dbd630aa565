//! Editing a hive in memory: values set in place where their data fits,
//! otherwise in free cells; a key created or removed (the BCD's Safe Mode
//! element). The hive file is never grown: a change that needs more room
//! than the free cells have is [`RegError::NoSpace`].
//!
//! [`writes`] turns an edited hive into the writes for its file, in the
//! order Windows uses: the base block marked dirty first (primary sequence
//! number advanced), then each changed 4 KiB page, then the base block
//! clean again (both sequence numbers equal, fresh checksum). A crash in
//! between leaves a hive Windows sees as dirty, never one that looks clean
//! with half its pages written.

use super::base::{self, stamp};
use super::cell::{Hive, NONE};
use super::key::{kind, upcase, Key, Value, BIG_DATA};
use super::{corrupt, RegError, Result};
use crate::util::le::{le32, put16, put32};
use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// Data to store in a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    /// REG_DWORD.
    Dword(u32),
    /// REG_QWORD.
    Qword(u64),
    /// REG_SZ (stored as UTF-16LE with a terminating NUL).
    Sz(String),
    /// REG_BINARY.
    Binary(Vec<u8>),
}

impl Data {
    /// The registry type (REG_*).
    pub fn kind(&self) -> u32 {
        match self {
            Data::Dword(_) => kind::DWORD,
            Data::Qword(_) => kind::QWORD,
            Data::Sz(_) => kind::SZ,
            Data::Binary(_) => kind::BINARY,
        }
    }
    /// The bytes stored.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Data::Dword(v) => v.to_le_bytes().to_vec(),
            Data::Qword(v) => v.to_le_bytes().to_vec(),
            Data::Sz(s) => s.encode_utf16().chain(core::iter::once(0)).flat_map(|u| u.to_le_bytes()).collect(),
            Data::Binary(b) => b.clone(),
        }
    }
}

/// One write for the hive file: (byte offset, bytes).
pub type FileEdit = (u64, Vec<u8>);

/// An edit session: the hive and the pages changed so far.
pub struct Editor {
    hive: Hive,
    pages: BTreeSet<usize>,
}

impl Editor {
    /// Starts editing a clean hive (recover a dirty one from its logs first).
    pub fn new(hive: Hive) -> Result<Editor> {
        hive.require_clean()?;
        Ok(Editor { hive, pages: BTreeSet::new() })
    }

    /// The hive as edited so far.
    pub fn hive(&self) -> &Hive {
        &self.hive
    }

    /// Writes `bytes` at file offset `at` in memory and remembers the pages.
    fn put(&mut self, at: usize, bytes: &[u8]) -> Result<()> {
        let dst =
            self.hive.bytes.get_mut(at..at + bytes.len()).ok_or(corrupt("cell", at as u64, "write beyond the hive"))?;
        dst.copy_from_slice(bytes);
        for p in at / 4096..=(at + bytes.len().max(1) - 1) / 4096 {
            self.pages.insert(p);
        }
        Ok(())
    }

    /// Writes a u32 at offset `o` of the data of cell `cell`.
    fn put32(&mut self, cell: u32, o: usize, v: u32) -> Result<()> {
        self.put(Hive::file_offset(cell) + 4 + o, &v.to_le_bytes())
    }

    /// Takes a free cell of at least `len` data bytes (first fit; the rest of
    /// a larger cell stays free). Returns its offset.
    fn alloc(&mut self, len: usize) -> Result<u32> {
        let need = ((len + 4 + 7) & !7) as u32;
        let (off, size, _) = self
            .hive
            .cells()?
            .into_iter()
            .find(|&(_, size, used)| !used && (size == need || size >= need + 8))
            .ok_or(RegError::NoSpace)?;
        let at = Hive::file_offset(off);
        if size > need {
            self.put(at + need as usize, &(size - need).to_le_bytes())?;
        }
        self.put(at, &(-(need as i32)).to_le_bytes())?;
        let zeros = vec![0u8; need as usize - 4];
        self.put(at + 4, &zeros)?;
        Ok(off)
    }

    /// Marks the allocated cell at `off` free (its bytes stay until reused).
    fn free(&mut self, off: u32) -> Result<()> {
        let (size, used) = self.hive.cell_size(off)?;
        if !used {
            return Err(corrupt("cell", Hive::file_offset(off) as u64, "freed twice"));
        }
        self.put(Hive::file_offset(off), &size.to_le_bytes())
    }

    /// A new cell holding `data`.
    fn new_cell(&mut self, data: &[u8]) -> Result<u32> {
        let off = self.alloc(data.len())?;
        self.put(Hive::file_offset(off) + 4, data)?;
        Ok(off)
    }

    /// Sets value `name` of `key` to `data`, creating the value when it does
    /// not exist (keys are re-read by their offset, so copies taken before
    /// other edits are fine). An existing value must have the same type. Returns the old
    /// data (None for a new value). Every edit first passes
    /// [`Hive::check_editable`] on the key it changes: a key sharing a cell
    /// with another structure is refused before anything is written.
    pub fn set_value(&mut self, key: &Key, name: &str, data: &Data, timestamp: u64) -> Result<Option<Vec<u8>>> {
        // Re-read: the caller's copy may predate earlier edits.
        let key = &self.hive.key(key.off)?;
        self.hive.check_editable(key)?;
        let n16: Vec<u16> = name.encode_utf16().collect();
        let bytes = data.bytes();
        if bytes.len() > BIG_DATA as usize {
            return Err(RegError::Unsupported { detail: "values over 16344 bytes are not written" });
        }
        let old = self.hive.value(key, &n16)?;
        let vk = match &old {
            Some(v) if v.kind != data.kind() => {
                return Err(RegError::TypeMismatch { name: String::from(name), found: v.kind });
            }
            Some(v) => v.clone(),
            None => self.add_value(key, name, data.kind())?,
        };
        let before = if old.is_some() { Some(self.hive.data(&vk)?) } else { None };
        self.store(&vk, &bytes)?;
        self.touch(key, timestamp)?;
        // The key's "largest value data" hint (nk 0x40).
        let c = self.hive.cell(key.off)?;
        let biggest = le32(c, 0x40).unwrap_or(0).max(bytes.len() as u32);
        self.put32(key.off, 0x40, biggest)?;
        Ok(before)
    }

    /// Puts `bytes` into value `vk`: inline when 4 bytes or fewer, in its
    /// data cell when it fits, else in a new cell (the old one freed).
    fn store(&mut self, vk: &Value, bytes: &[u8]) -> Result<()> {
        let own_cell = !vk.is_inline() && !vk.is_empty() && vk.data_off != NONE;
        if bytes.len() <= 4 {
            let mut inline = [0u8; 4];
            inline[..bytes.len()].copy_from_slice(bytes);
            if own_cell {
                self.free(vk.data_off)?;
            }
            self.put32(vk.off, 8, u32::from_le_bytes(inline))?;
            return self.put32(vk.off, 4, 0x8000_0000 | bytes.len() as u32);
        }
        let room = if own_cell {
            let c = self.hive.cell(vk.data_off)?;
            if c.get(..2) == Some(b"db") && vk.len() > BIG_DATA {
                return Err(RegError::Unsupported { detail: "values stored as big data are not rewritten" });
            }
            c.len()
        } else {
            0
        };
        let cell = if room >= bytes.len() {
            vk.data_off
        } else {
            let c = self.new_cell(bytes)?;
            if own_cell {
                self.free(vk.data_off)?;
            }
            c
        };
        self.put(Hive::file_offset(cell) + 4, bytes)?;
        self.put32(vk.off, 8, cell)?;
        self.put32(vk.off, 4, bytes.len() as u32)
    }

    /// Creates an empty value `name` of type `kind` on `key` (appended to its value list).
    fn add_value(&mut self, key: &Key, name: &str, kind: u32) -> Result<Value> {
        let (nb, compressed) = stored_name(name);
        let mut vk = vec![0u8; 0x14 + nb.len()];
        vk[..2].copy_from_slice(b"vk");
        put16(&mut vk, 2, nb.len() as u16)?;
        put32(&mut vk, 4, 0x8000_0000)?;
        put32(&mut vk, 0x0C, kind)?;
        put16(&mut vk, 0x10, compressed as u16)?;
        vk[0x14..].copy_from_slice(&nb);
        let off = self.new_cell(&vk)?;
        let mut list: Vec<u32> = self.hive.value_offsets(key)?;
        list.push(off);
        let old = if key.value_count == 0 { NONE } else { key.value_list };
        let new_list = self.rewrite_list(old, &list.iter().flat_map(|o| o.to_le_bytes()).collect::<Vec<_>>())?;
        self.put32(key.off, 0x28, new_list)?;
        self.put32(key.off, 0x24, list.len() as u32)?;
        let c = self.hive.cell(key.off)?;
        let longest = le32(c, 0x3C).unwrap_or(0).max(2 * name.encode_utf16().count() as u32);
        self.put32(key.off, 0x3C, longest)?;
        self.hive.value_at(off)
    }

    /// Puts `bytes` in the cell at `old` when it has room (or `old` is
    /// [`NONE`]: a new cell); otherwise in a new cell, freeing `old`.
    /// Returns the cell now holding them.
    fn rewrite_list(&mut self, old: u32, bytes: &[u8]) -> Result<u32> {
        if old != NONE && self.hive.cell(old)?.len() >= bytes.len() {
            self.put(Hive::file_offset(old) + 4, bytes)?;
            return Ok(old);
        }
        let new = self.new_cell(bytes)?;
        if old != NONE {
            self.free(old)?;
        }
        Ok(new)
    }

    /// Sets a key's last-written time.
    fn touch(&mut self, key: &Key, timestamp: u64) -> Result<()> {
        self.put(Hive::file_offset(key.off) + 4 + 4, &timestamp.to_le_bytes())
    }

    /// Creates subkey `name` of `parent` (no values, no subkeys, the
    /// parent's security descriptor), inserted in name order into the
    /// parent's subkey list. An `ri` (list of lists) parent is refused.
    pub fn create_key(&mut self, parent: &Key, name: &str, timestamp: u64) -> Result<Key> {
        let parent = &self.hive.key(parent.off)?;
        self.hive.check_editable(parent)?;
        let n16: Vec<u16> = name.encode_utf16().collect();
        if self.hive.subkey(parent, &n16)?.is_some() {
            return Err(RegError::Unsupported { detail: "the key to create exists already" });
        }
        let (nb, compressed) = stored_name(name);
        let mut nk = vec![0u8; 0x4C + nb.len()];
        nk[..2].copy_from_slice(b"nk");
        put16(&mut nk, 2, if compressed { 0x20 } else { 0 })?;
        nk[4..12].copy_from_slice(&timestamp.to_le_bytes());
        put32(&mut nk, 0x10, parent.off)?;
        for o in [0x1C, 0x20, 0x28, 0x30] {
            put32(&mut nk, o, NONE)?;
        }
        put32(&mut nk, 0x2C, parent.security)?;
        put16(&mut nk, 0x48, nb.len() as u16)?;
        nk[0x4C..].copy_from_slice(&nb);
        let off = self.new_cell(&nk)?;
        self.security_refs(parent.security, 1)?;
        // Insert into the parent's list, in upper-cased name order.
        let mut subs: Vec<Key> = self.hive.subkeys(parent)?;
        let key_of = |n: &[u16]| n.iter().map(|&u| upcase(u)).collect::<Vec<u16>>();
        let at = subs.partition_point(|k| key_of(&k.name) < key_of(&n16));
        let new = self.hive.key(off)?;
        subs.insert(at, new.clone());
        self.write_subkey_list(parent, &subs)?;
        let c = self.hive.cell(parent.off)?;
        let longest = (le32(c, 0x34).unwrap_or(0) & 0xFFFF).max(2 * n16.len() as u32);
        let high = le32(c, 0x34).unwrap_or(0) & 0xFFFF_0000;
        self.put32(parent.off, 0x34, high | longest)?;
        self.touch(parent, timestamp)?;
        Ok(new)
    }

    /// Removes subkey `child` of `parent`, with its values. A key that has
    /// subkeys of its own is refused.
    pub fn delete_key(&mut self, parent: &Key, child: &Key, timestamp: u64) -> Result<()> {
        let (parent, child) = (&self.hive.key(parent.off)?, &self.hive.key(child.off)?);
        self.hive.check_editable(child)?;
        if child.subkey_count != 0 {
            return Err(RegError::Unsupported { detail: "a key with subkeys is not removed" });
        }
        let subs: Vec<Key> = self.hive.subkeys(parent)?.into_iter().filter(|k| k.off != child.off).collect();
        if subs.len() + 1 != parent.subkey_count as usize {
            return Err(corrupt("nk cell", Hive::file_offset(child.off) as u64, "not a subkey of its parent"));
        }
        for v in self.hive.values(child)? {
            if !v.is_inline() && !v.is_empty() {
                self.free(v.data_off)?;
            }
            self.free(v.off)?;
        }
        if child.value_count != 0 {
            self.free(child.value_list)?;
        }
        self.write_subkey_list(parent, &subs)?;
        self.security_refs(child.security, -1)?;
        self.free(child.off)?;
        self.touch(parent, timestamp)
    }

    /// Writes `parent`'s subkey list as `subs` (in this order) and its count.
    fn write_subkey_list(&mut self, parent: &Key, subs: &[Key]) -> Result<()> {
        let sig: &[u8; 2] = if parent.subkey_count == 0 {
            if self.hive.base.minor >= 5 {
                b"lh"
            } else {
                b"lf"
            }
        } else {
            match self.hive.cell(parent.subkey_list)?.get(..2) {
                Some(b"lh") => b"lh",
                Some(b"lf") => b"lf",
                Some(b"li") => b"li",
                _ => return Err(RegError::Unsupported { detail: "a key whose subkeys are in a list of lists" }),
            }
        };
        let list = if subs.is_empty() {
            if parent.subkey_count != 0 {
                self.free(parent.subkey_list)?;
            }
            NONE
        } else {
            let mut b = Vec::with_capacity(4 + 8 * subs.len());
            b.extend_from_slice(sig);
            b.extend_from_slice(&(subs.len() as u16).to_le_bytes());
            for k in subs {
                b.extend_from_slice(&k.off.to_le_bytes());
                match sig {
                    b"lh" => b.extend_from_slice(&name_hash(&k.name).to_le_bytes()),
                    b"lf" => b.extend_from_slice(&name_hint(&k.name)),
                    _ => {}
                }
            }
            let old = if parent.subkey_count == 0 { NONE } else { parent.subkey_list };
            self.rewrite_list(old, &b)?
        };
        self.put32(parent.off, 0x1C, list)?;
        self.put32(parent.off, 0x14, subs.len() as u32)
    }

    /// Adds `delta` to the reference count of security cell `sk`.
    fn security_refs(&mut self, sk: u32, delta: i32) -> Result<()> {
        let c = self.hive.cell(sk)?;
        if c.get(..2) != Some(b"sk") {
            return Err(corrupt("sk cell", Hive::file_offset(sk) as u64, "not a security descriptor"));
        }
        let refs = le32(c, 0x0C).unwrap_or(0);
        let n = refs.checked_add_signed(delta).filter(|&n| n > 0);
        let n = n.ok_or(corrupt("sk cell", Hive::file_offset(sk) as u64, "reference count out of range"))?;
        self.put32(sk, 0x0C, n)
    }

    /// Ends the session: the hive's final bytes, the base block clean with
    /// both sequence numbers advanced by one and `timestamp`; unchanged
    /// (byte for byte) when nothing was edited. Plan the file's writes with
    /// [`writes`].
    pub fn finish(mut self, timestamp: u64) -> Result<Vec<u8>> {
        if !self.pages.is_empty() {
            let next = self.hive.base.seq2.wrapping_add(1);
            stamp(&mut self.hive.bytes, next, next, timestamp)?;
        }
        Ok(self.hive.bytes)
    }
}

/// The writes that turn hive file `old` into `new` (same length), in the
/// order Windows writes a hive: `old`'s base block marked dirty with
/// `new`'s primary sequence number, then every 4 KiB page that differs,
/// then `new`'s (clean) base block. Empty when the files are equal.
pub fn writes(old: &[u8], new: &[u8]) -> Result<Vec<FileEdit>> {
    if old == new || old.len() != new.len() || old.len() < base::SIZE {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut dirty = old[..base::SIZE].to_vec();
    let old_seq2 = crate::util::le::le32(old, 8).unwrap_or(0);
    let new_seq1 = crate::util::le::le32(new, 4).unwrap_or(0);
    let ts = crate::util::le::le64(new, 0x0C).unwrap_or(0);
    stamp(&mut dirty, new_seq1, old_seq2, ts)?;
    out.push((0, dirty));
    for (i, (a, b)) in old.chunks(4096).zip(new.chunks(4096)).enumerate().skip(1) {
        if a != b {
            out.push(((i * 4096) as u64, b.to_vec()));
        }
    }
    out.push((0, new[..base::SIZE].to_vec()));
    Ok(out)
}

/// A name as stored: Latin-1 ("compressed") when every character allows it, else UTF-16LE.
fn stored_name(name: &str) -> (Vec<u8>, bool) {
    if name.chars().all(|c| (c as u32) < 0x100) {
        (name.chars().map(|c| c as u8).collect(), true)
    } else {
        (name.encode_utf16().flat_map(|u| u.to_le_bytes()).collect(), false)
    }
}

/// The `lh` hash of a name: h = h * 37 + upper-cased unit, over its UTF-16 units.
pub fn name_hash(name: &[u16]) -> u32 {
    name.iter().fold(0u32, |h, &u| h.wrapping_mul(37).wrapping_add(upcase(u) as u32))
}

/// The `lf` hint of a name: its first four characters as bytes (zero padded).
fn name_hint(name: &[u16]) -> [u8; 4] {
    let mut h = [0u8; 4];
    for (d, &u) in h.iter_mut().zip(name) {
        *d = u as u8;
    }
    h
}
