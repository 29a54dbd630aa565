//! Opening a BitLocker volume, the same way on every front end: its clear
//! key when protection is suspended (unless exact keys are asked for); else each key the [`KeySource`] holds
//! for it (the stick's site keys, or what the admin gave `rescue`); else a
//! recovery password typed at the prompt, when someone can answer one.
//! Keys are never shown or logged; the report says only which Key ID opened it.

use super::ports::{Console, KeyPrompt, KeySource};
use super::prompt::{self, Event};
use super::report::BitLockerReport;
use crate::block::BlockDevice;
use crate::formats::bitlocker::{BitLocker, BitLockerError, ProtectorKind, UnlockKey, Unlocked};
use crate::util::guid::Guid;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// What opens locked volumes: the key source, the console (for the prompt
/// and the site PIN) and the profile's prompt timeout.
pub struct Unlocker<'a> {
    /// Keys beyond the prompt.
    pub keys: &'a mut dyn KeySource,
    /// The screen and keyboard.
    pub console: &'a mut dyn Console,
    /// Seconds the prompt waits for a key (`None`: forever).
    pub timeout_s: Option<u32>,
    /// Open a suspended volume with its clear key before trying any other
    /// (the run); false to try exactly the key source's keys (checking a key).
    pub clear_key_first: bool,
}

/// Opens the BitLocker volume `vol` (named `where_` on screen), filling
/// `br` with what its metadata says and how it was unlocked. Returns the
/// plaintext volume, or why it stays locked.
pub fn open<D: BlockDevice>(
    vol: D,
    where_: &str,
    u: &mut Unlocker<'_>,
    br: &mut BitLockerReport,
) -> Result<Unlocked<D>, String> {
    let bl = BitLocker::open(vol).map_err(|e| format!("{e}"))?;
    br.volume_guid = format!("{}", bl.metadata.volume_guid);
    br.description = bl.metadata.description.clone();
    br.encryption = format!("{:?}", bl.metadata.method);
    let ids: Vec<Guid> =
        bl.protectors().iter().filter(|p| p.kind == ProtectorKind::RecoveryPassword).map(|p| p.key_id).collect();
    br.recovery_key_ids = ids.iter().map(|id| format!("{id}")).collect();
    if u.clear_key_first && bl.protectors().iter().any(|p| p.kind == ProtectorKind::ClearKey) {
        let unlocked = bl.unlock(&UnlockKey::ClearKey).map_err(|e| format!("{e}"))?;
        br.unlocked_by = Some(String::from("clear key (protection suspended)"));
        return Ok(unlocked);
    }
    let keys = u.keys.keys(&ids, u.console);
    // The error worth showing: a wrong key rather than "no protector of this kind".
    let mut refused: Option<BitLockerError> = None;
    if !keys.is_empty() {
        u.console.progress(&format!("Unlocking {where_}..."));
    }
    for key in &keys {
        match bl.unlock_key(&key.as_key()) {
            Ok(vk) => {
                br.unlocked_by = Some(format!("{} for Key ID {}", u.keys.label().unwrap_or(key.kind()), vk.key_id));
                return bl.with_key(vk).map_err(|e| format!("{e}"));
            }
            Err(e) => {
                if refused.as_ref().is_none_or(|r| matches!(r, BitLockerError::NoProtector { .. })) {
                    refused = Some(e);
                }
            }
        }
    }
    if let Some(e) = &refused {
        u.console.line(&format!("The key for {where_} does not open it ({e})."));
    }
    if !u.console.can_prompt() {
        return Err(match refused {
            Some(e) => format!("{e}"),
            None if ids.is_empty() => String::from("no key given opens it (it has no recovery-password protector)"),
            None => format!("no key given for it (Key ID {})", br.recovery_key_ids.join(", ")),
        });
    }
    prompt_and_unlock(bl, where_, u.timeout_s, u.console, br)
}

/// Asks for a recovery password until one opens `bl`, or the technician
/// presses Esc, or the profile's timeout passes. Returns the unlocked volume
/// or why it stays locked.
fn prompt_and_unlock<D: BlockDevice>(
    bl: BitLocker<D>,
    where_: &str,
    timeout_s: Option<u32>,
    console: &mut dyn Console,
    br: &mut BitLockerReport,
) -> Result<Unlocked<D>, String> {
    if br.recovery_key_ids.is_empty() {
        return Err(String::from("it has no recovery-password protector"));
    }
    console.key_prompt(&KeyPrompt {
        volume: where_,
        key_ids: &br.recovery_key_ids,
        description: br.description.as_deref(),
    });
    let mut entry = prompt::Entry::default();
    loop {
        console.field(&format!("KEY: {}", entry.render()));
        let key = match console.key(timeout_s) {
            Some(k) => k,
            None => return Err(format!("no key typed within {} s", timeout_s.unwrap_or(0))),
        };
        let mut ev = entry.key(key);
        // Barcode scanners type fast: take every digit already queued before redrawing.
        while ev == Event::Edited {
            match console.key(Some(0)) {
                Some(k) => ev = entry.key(k),
                None => break,
            }
        }
        match ev {
            Event::Edited => {}
            Event::Skip => return Err(String::from("skipped at the prompt (Esc)")),
            Event::Submit => {
                console.progress("Checking the key (this takes a few seconds)...");
                let pw = entry.password();
                match bl.unlock_key(&UnlockKey::RecoveryPassword(&pw)) {
                    Ok(vk) => {
                        br.unlocked_by = Some(format!("recovery password for Key ID {}", vk.key_id));
                        return bl.with_key(vk).map_err(|e| format!("{e}"));
                    }
                    Err(e @ BitLockerError::WrongRecoveryPassword { .. }) => {
                        br.wrong_attempts += 1;
                        console.line(&format!("That key does not open this volume: {e}. Try again, or Esc to skip."));
                        entry.clear();
                    }
                    Err(e) => return Err(format!("{e}")),
                }
            }
            other => {
                if let Some(m) = prompt::describe(&other) {
                    console.line(&m);
                }
            }
        }
    }
}
