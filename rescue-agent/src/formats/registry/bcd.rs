//! The Boot Configuration Data store (`EFI\Microsoft\Boot\BCD` on the EFI
//! System Partition): a hive whose `Objects` key holds one key per boot
//! object, each with `Elements\<element type>\Element` values.
//!
//! Safe Mode is the `safeboot` element (type `0x25000080`, an integer
//! stored as 8 little-endian bytes in a REG_BINARY: 0 minimal, 1 network)
//! on the boot manager's default OS loader: the object whose GUID the boot
//! manager (`{9dea862c-5cdd-4e70-acc1-f32b344d4795}`) names in its element
//! `0x23000003` (`default`). This is what `bcdedit /set {default} safeboot
//! minimal` writes, and `bcdedit /deletevalue {default} safeboot` removes.

#![deny(clippy::indexing_slicing)]

use super::edit::{Data, Editor};
use super::key::Key;
use super::{RegError, Result};
use crate::util::le::utf16_units;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The boot manager's object GUID.
pub const BOOTMGR: &str = "{9dea862c-5cdd-4e70-acc1-f32b344d4795}";
/// Element type of the boot manager's default loader (an object GUID, REG_SZ).
pub const DEFAULT_OBJECT: &str = "23000003";
/// Element type `safeboot`.
pub const SAFEBOOT: &str = "25000080";

/// What the next boot of this Windows should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SafeMode {
    /// Safe Mode (`safeboot minimal`).
    Minimal,
    /// Safe Mode with networking (`safeboot network`).
    Network,
    /// A normal boot: the `safeboot` element removed.
    Off,
}

impl SafeMode {
    /// The element's value (None: no element).
    pub fn element(self) -> Option<u64> {
        match self {
            SafeMode::Minimal => Some(0),
            SafeMode::Network => Some(1),
            SafeMode::Off => None,
        }
    }
}

/// What [`set_safe_mode`] changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafeModeChange {
    /// The default loader's object GUID (as the BCD spells it).
    pub loader: String,
    /// The `safeboot` element before (None: absent).
    pub before: Option<u64>,
    /// And after.
    pub after: Option<u64>,
}

/// The `Element` value of element `ty` of object `object`, if the element exists.
fn element(ed: &Editor, object: &str, ty: &str) -> Result<Option<(Key, Vec<u8>)>> {
    let h = ed.hive();
    let k = match h.open_path(&format!("Objects\\{object}\\Elements\\{ty}")) {
        Ok(k) => k,
        Err(RegError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let name: Vec<u16> = "Element".encode_utf16().collect();
    let v = h
        .value(&k, &name)?
        .ok_or(RegError::NotFound { path: format!("Objects\\{object}\\Elements\\{ty}\\Element") })?;
    Ok(Some((k, h.data(&v)?)))
}

/// The boot manager's default OS loader object, as its GUID string.
pub fn default_loader(ed: &Editor) -> Result<String> {
    let (_, data) = element(ed, BOOTMGR, DEFAULT_OBJECT)?
        .ok_or(RegError::NotFound { path: format!("Objects\\{BOOTMGR}\\Elements\\{DEFAULT_OBJECT}") })?;
    let units: Vec<u16> = utf16_units(&data).take_while(|&u| u != 0).collect();
    let guid = String::from_utf16_lossy(&units);
    if guid.len() != 38 || !guid.starts_with('{') || !guid.ends_with('}') {
        return Err(RegError::Unsupported { detail: "the boot manager's default object is not a GUID" });
    }
    Ok(guid)
}

/// Sets (or removes) the `safeboot` element of the default loader, as
/// `bcdedit` does. No change when it already says so.
pub fn set_safe_mode(ed: &mut Editor, mode: SafeMode, timestamp: u64) -> Result<SafeModeChange> {
    let loader = default_loader(ed)?;
    let current = element(ed, &loader, SAFEBOOT)?;
    let before = match &current {
        Some((_, d)) => Some(
            d.get(..8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                .ok_or(RegError::Unsupported { detail: "the safeboot element is not an 8-byte integer" })?,
        ),
        None => None,
    };
    let after = mode.element();
    if before != after {
        let elements = ed.hive().open_path(&format!("Objects\\{loader}\\Elements"))?;
        match (current, after) {
            (Some((k, _)), None) => ed.delete_key(&elements, &k, timestamp)?,
            (Some((k, _)), Some(v)) => {
                ed.set_value(&k, "Element", &Data::Binary(v.to_le_bytes().to_vec()), timestamp)?;
            }
            (None, Some(v)) => {
                let k = ed.create_key(&elements, SAFEBOOT, timestamp)?;
                ed.set_value(&k, "Element", &Data::Binary(v.to_le_bytes().to_vec()), timestamp)?;
            }
            (None, None) => {}
        }
    }
    Ok(SafeModeChange { loader, before, after })
}

/// A `safeboot` element value for people.
pub fn describe(v: Option<u64>) -> String {
    String::from(match v {
        None => "off",
        Some(0) => "minimal",
        Some(1) => "network",
        Some(_) => "other",
    })
}

/// How to undo setting `mode`, for the report.
pub fn undo_text(mode: SafeMode) -> String {
    String::from(match mode {
        SafeMode::Off => "to go back to Safe Mode: bcdedit /set {default} safeboot minimal",
        _ => {
            "to boot normally again: run a stick whose profile has [finish] safe_mode = \"off\", or in Windows \
              (an administrator prompt, also in Safe Mode): bcdedit /deletevalue {default} safeboot"
        }
    })
}

/// Edits a whole BCD store file: returns its new bytes (same length; equal
/// to `store` when nothing changes) and the change. A dirty or corrupt
/// store is an error and nothing is changed.
pub fn edit_store(store: &[u8], mode: SafeMode, timestamp: u64) -> Result<(Vec<u8>, SafeModeChange)> {
    let mut ed = Editor::new(super::cell::Hive::open(store.to_vec())?)?;
    let change = set_safe_mode(&mut ed, mode, timestamp)?;
    Ok((ed.finish(timestamp)?, change))
}
