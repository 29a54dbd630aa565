//! Before an edit: the cells it may free or rewrite belong to one structure
//! each.
//!
//! The reader follows offsets; nothing in the format stops a hostile hive
//! from pointing two structures at one cell (a value's data stored in
//! another value's data cell, in a key's own `nk` cell, or inside a value
//! list). Reading such a hive works; editing it would free or overwrite a
//! cell something else still uses. So before any edit of a key, every cell
//! the editor may free or rewrite — the key and each key above it up to
//! the root, their subkey lists, the key's value list, values and data — is
//! checked to be the start of an allocated cell found by walking the bins
//! (cells never overlap) and to be referenced exactly once among them. The
//! whole key must also read as `rescue reg` reads it (every value's data).
//! Security cells (`sk`) are shared by design and only counted, not
//! rewritten, so they are not part of the check.

#![deny(clippy::indexing_slicing)]

use super::cell::{Hive, NONE};
use super::key::{Key, BIG_DATA, MAX_DEPTH};
use super::{corrupt, Result};
use crate::util::le::{le16, le32};
use alloc::vec::Vec;

/// One reference to a cell: (cell offset, the structure that uses it).
type Use = (u32, &'static str);

impl Hive {
    /// Checks that `key` can be edited safely (see the module
    /// documentation). Errors: [`super::RegError::Corrupt`] naming the
    /// first shared, overlapping or unreadable cell. Reads only.
    pub fn check_editable(&self, key: &Key) -> Result<()> {
        let mut uses: Vec<Use> = Vec::new();
        if key.value_count != 0 {
            uses.push((key.value_list, "value list"));
        }
        for v in self.values(key)? {
            uses.push((v.off, "vk cell"));
            // The whole key reads: a value with an absurd size anywhere in it refuses the edit.
            self.data(&v)?;
            if v.is_inline() || v.is_empty() || v.data_off == NONE {
                continue;
            }
            uses.push((v.data_off, "value data"));
            let c = self.cell(v.data_off)?;
            if c.get(..2) == Some(b"db") && self.base.minor >= 4 && v.len() > BIG_DATA {
                let list = le32(c, 4).unwrap_or(NONE);
                uses.push((list, "big data segment list"));
                let segs = self.cell(list)?;
                for i in 0..le16(c, 2).unwrap_or(0) as usize {
                    uses.push((le32(segs, 4 * i).unwrap_or(NONE), "big data segment"));
                }
            }
        }
        // The key and every key above it, with their subkey lists.
        let mut k = key.clone();
        for depth in 0.. {
            uses.push((k.off, "nk cell"));
            self.subkey_list_uses(&k, &mut uses)?;
            if k.off == self.base.root {
                break;
            }
            let at = Hive::file_offset(k.off) as u64 + 0x14;
            if depth >= MAX_DEPTH {
                return Err(corrupt("nk cell", at, "parent links do not reach the root key"));
            }
            let parent = self.key(k.parent)?;
            if !self.subkey_offsets(&parent)?.contains(&k.off) {
                return Err(corrupt("nk cell", at, "its parent key does not list it"));
            }
            k = parent;
        }
        self.each_used_once(uses)
    }

    /// The cells of `key`'s subkey list (an `ri` and the lists it holds).
    fn subkey_list_uses(&self, key: &Key, uses: &mut Vec<Use>) -> Result<()> {
        if key.subkey_count == 0 {
            return Ok(());
        }
        uses.push((key.subkey_list, "subkey list"));
        let c = self.cell(key.subkey_list)?;
        if c.get(..2) == Some(b"ri") {
            for i in 0..le16(c, 2).unwrap_or(0) as usize {
                uses.push((le32(c, 4 + 4 * i).unwrap_or(NONE), "subkey list"));
            }
        }
        Ok(())
    }

    /// Every use is the start of an allocated cell, and no cell is used twice.
    fn each_used_once(&self, mut uses: Vec<Use>) -> Result<()> {
        let cells = self.cells()?;
        uses.sort_unstable();
        let mut previous: Option<Use> = None;
        for (off, what) in uses {
            let at = Hive::file_offset(off) as u64;
            if previous.is_some_and(|(p, _)| p == off) {
                return Err(corrupt(what, at, "a cell that another structure uses too: refusing to edit it"));
            }
            let i = cells.partition_point(|&(o, _, _)| o < off);
            if !matches!(cells.get(i), Some(&(o, _, true)) if o == off) {
                return Err(corrupt(what, at, "not the start of an allocated cell (inside another cell?)"));
            }
            previous = Some((off, what));
        }
        Ok(())
    }
}
