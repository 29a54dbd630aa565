//! The ports between the engine's agent run and the world around it: the
//! screen and keyboard ([`Console`]) and the site's recovery keys
//! ([`KeySource`]). The session uses them; the UEFI front end and the
//! keyed-stick adapter (`sitekeys`) implement them.

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
}

/// Recovery keys the stick carries for its site (keyed images).
pub trait KeySource {
    /// A recovery password for a volume protected by one of `key_ids`, if
    /// the stick holds one. May ask the technician (e.g. the site PIN,
    /// once per boot) through `console`.
    fn recovery_password(&mut self, key_ids: &[Guid], console: &mut dyn Console) -> Option<Zeroizing<String>>;
}

/// A stick without site keys: every locked volume goes to the prompt.
pub struct NoSiteKeys;

impl KeySource for NoSiteKeys {
    fn recovery_password(&mut self, _: &[Guid], _: &mut dyn Console) -> Option<Zeroizing<String>> {
        None
    }
}

/// The files of the Windows boot manager's folder `EFI\Microsoft\Boot` that
/// `[finish] safe_mode` reads and edits: the BCD store and its two
/// transaction logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootFile {
    /// `BCD`, the store (a registry hive).
    Bcd,
    /// `BCD.LOG1`.
    Log1,
    /// `BCD.LOG2`.
    Log2,
}

impl BootFile {
    /// The logs, in the order recovery takes them.
    pub const LOGS: [BootFile; 2] = [BootFile::Log1, BootFile::Log2];

    /// The file's name in `EFI\Microsoft\Boot`.
    pub fn name(self) -> &'static str {
        match self {
            BootFile::Bcd => "BCD",
            BootFile::Log1 => "BCD.LOG1",
            BootFile::Log2 => "BCD.LOG2",
        }
    }
}

/// Writes edits (file offset, bytes) into one of the boot files, in order:
/// what [`EspFiles::write`] does for one disk.
pub type BootFileWriter<'a> =
    dyn FnMut(BootFile, &[(u64, alloc::vec::Vec<u8>)]) -> Result<(), alloc::string::String> + 'a;

/// The EFI System Partitions of the disks being fixed, as the front end
/// reaches them (the agent: the firmware's Simple File System protocol).
/// Disks are named by their label ([`crate::run::session::Disk::label`]). A
/// disk's ESP is the one holding the BCD store.
pub trait EspFiles {
    /// The whole of `file` on the disk's ESP; `None` when the disk has no
    /// ESP holding a BCD store, or (for a log) the log does not exist.
    fn read(&mut self, disk: &str, file: BootFile) -> Option<Result<alloc::vec::Vec<u8>, alloc::string::String>>;
    /// Writes `edits` (file offset, bytes) into `file`, in order, each
    /// flushed before the next, never changing its length (see
    /// [`crate::formats::registry::journal`]: log entry, then header dirty, pages,
    /// header clean).
    fn write(
        &mut self,
        disk: &str,
        file: BootFile,
        edits: &[(u64, alloc::vec::Vec<u8>)],
    ) -> Result<(), alloc::string::String>;
}

/// No ESP reachable (tests, and front ends without file access).
pub struct NoEsp;

impl EspFiles for NoEsp {
    fn read(&mut self, _: &str, _: BootFile) -> Option<Result<alloc::vec::Vec<u8>, alloc::string::String>> {
        None
    }
    fn write(&mut self, _: &str, _: BootFile, _: &[(u64, alloc::vec::Vec<u8>)]) -> Result<(), alloc::string::String> {
        Err(alloc::string::String::from("no EFI System Partition"))
    }
}
