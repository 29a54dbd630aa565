//! The ports between the run and the world around it: the screen and
//! keyboard ([`Console`]), keys for BitLocker volumes ([`KeySource`]), the
//! disks' EFI System Partitions ([`EspFiles`]) and where backups go
//! ([`crate::rules::backup::BackupSink`]). The run uses them; the UEFI agent
//! and `rescue` on the host implement them, and only in that do the two differ.

use crate::block::BlockDevice;
use crate::formats::bitlocker::{StartupKey, UnlockKey};
use crate::formats::registry::edit::FileEdit;
use crate::rules::safe_mode::BootFile;
use crate::run::prompt::Key;
use crate::util::guid::Guid;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use zeroize::Zeroizing;

/// What the BitLocker prompt shows about the volume it asks a key for.
pub struct KeyPrompt<'a> {
    /// The disk and partition, as the rest of the screen names them.
    pub volume: &'a str,
    /// The recovery-password protectors' Key IDs (full GUIDs).
    pub key_ids: &'a [String],
    /// The volume's description from its BitLocker metadata (computer name, drive, date).
    pub description: Option<&'a str>,
}

impl KeyPrompt<'_> {
    /// The first 8 hex digits of a Key ID: what Windows' recovery screen shows.
    pub fn short_id(id: &str) -> &str {
        id.get(..8).unwrap_or(id)
    }

    /// The prompt as status lines (what a log or a text console shows).
    pub fn lines(&self) -> Vec<String> {
        let mut out = alloc::vec![format!("BitLocker recovery key needed for {}", self.volume)];
        out.extend(self.key_ids.iter().map(|id| format!("  Key ID: {} (full: {id})", Self::short_id(id))));
        out.extend(self.description.map(|d| format!("  Description: {d}")));
        out.push(String::from("Type the 48-digit recovery key, then Enter (Esc skips this volume):"));
        out
    }
}

/// What the agent shows and reads.
pub trait Console {
    /// A status line (screen and serial).
    fn line(&mut self, text: &str);
    /// The key-entry field, redrawn in place on screen (a line on serial,
    /// where a front end must never show the digits).
    fn field(&mut self, text: &str) {
        self.line(text)
    }
    /// The BitLocker prompt opens for a volume; the field follows. Front
    /// ends with a screen show the Key ID large; the default prints lines.
    fn key_prompt(&mut self, p: &KeyPrompt<'_>) {
        for l in p.lines() {
            self.line(&l);
        }
    }
    /// A long step begins (scanning, the key check, unlocking): shown as
    /// the screen's progress line; the default prints a line.
    fn progress(&mut self, text: &str) {
        self.line(text)
    }
    /// Waits for a key; `None` when `timeout_s` seconds pass first (`None`: wait forever).
    fn key(&mut self, timeout_s: Option<u32>) -> Option<Key>;
    /// False when nobody can answer a prompt (the host, tests): a locked
    /// volume no key source opens stays locked without asking.
    fn can_prompt(&self) -> bool {
        true
    }
}

/// A console with no screen and no keyboard: lines are dropped and no
/// prompt is shown (the host renders the report instead; tests).
pub struct Silent;

impl Console for Silent {
    fn line(&mut self, _: &str) {}
    fn key(&mut self, _: Option<u32>) -> Option<Key> {
        None
    }
    fn can_prompt(&self) -> bool {
        false
    }
}

/// A key for a BitLocker volume, as a key source holds it. Deliberately
/// not `Debug`; the secrets are zeroized when dropped.
pub enum Credential {
    /// A 48-digit recovery password.
    RecoveryPassword(Zeroizing<String>),
    /// A password, as typed in Windows.
    Password(Zeroizing<String>),
    /// A startup or recovery key file (.BEK).
    StartupKey(StartupKey),
    /// The clear key of a volume whose protection is suspended (tried anyway
    /// when the volume has one; asked for explicitly by `rescue unlock --clear-key`).
    ClearKey,
}

impl Credential {
    /// The key as the BitLocker unlocker takes it.
    pub fn as_key(&self) -> UnlockKey<'_> {
        match self {
            Credential::RecoveryPassword(p) => UnlockKey::RecoveryPassword(p),
            Credential::Password(p) => UnlockKey::Password(p),
            Credential::StartupKey(k) => UnlockKey::StartupKey(k),
            Credential::ClearKey => UnlockKey::ClearKey,
        }
    }
    /// What the report calls it when it opens a volume.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::RecoveryPassword(_) => "recovery password",
            Credential::Password(_) => "password",
            Credential::StartupKey(_) => "startup key",
            Credential::ClearKey => "clear key",
        }
    }
}

/// Keys for BitLocker volumes beyond the prompt: the stick's site keys
/// (keyed images), or what the admin gave `rescue` on the host.
pub trait KeySource {
    /// The keys to try, in order, for a volume protected by `key_ids` (its
    /// recovery-password protectors). May ask (the site PIN, once per boot;
    /// a terminal on the host) through `console`.
    fn keys(&mut self, key_ids: &[Guid], console: &mut dyn Console) -> Vec<Credential>;
    /// How the report names a key from this source (`None`: by its kind).
    fn label(&self) -> Option<&'static str> {
        None
    }
}

/// No keys: every locked volume goes to the prompt.
pub struct NoKeys;

impl KeySource for NoKeys {
    fn keys(&mut self, _: &[Guid], _: &mut dyn Console) -> Vec<Credential> {
        Vec::new()
    }
}

/// The EFI System Partitions of the disks being fixed, as the front end
/// reaches them: the agent through the firmware's Simple File System
/// protocol (by the disk's label), the host through the disk's device. A
/// disk's ESP is the one holding the BCD store.
pub trait EspFiles {
    /// The whole of `file` on the ESP of `disk` (named `label`); `None`
    /// when the disk has no ESP holding a BCD store, or (for a log) the log
    /// does not exist.
    fn read(&mut self, disk: &mut dyn BlockDevice, label: &str, file: BootFile) -> Option<Result<Vec<u8>, String>>;
    /// Writes `edits` (file offset, bytes) into `file`, in order, each
    /// flushed before the next, never changing its length (see
    /// [`crate::formats::registry::journal`]: log entry, then header dirty,
    /// pages, header clean).
    fn write(
        &mut self,
        disk: &mut dyn BlockDevice,
        label: &str,
        file: BootFile,
        edits: &[FileEdit],
    ) -> Result<(), String>;
}

/// No ESP reachable (tests, and front ends without file access).
pub struct NoEsp;

impl EspFiles for NoEsp {
    fn read(&mut self, _: &mut dyn BlockDevice, _: &str, _: BootFile) -> Option<Result<Vec<u8>, String>> {
        None
    }
    fn write(&mut self, _: &mut dyn BlockDevice, _: &str, _: BootFile, _: &[FileEdit]) -> Result<(), String> {
        Err(String::from("no EFI System Partition"))
    }
}
