//! The backup port: every file goes to a [`BackupSink`] before it is
//! deleted or edited (the stick on the agent, a folder on the host).

use super::report::FileReport;
use crate::formats::registry::journal::{Journal, Target};
use crate::util::hex::hex;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use sha2::{Digest, Sha256};

/// A file handed to the backup sink before it is deleted or edited.
#[derive(Debug)]
pub struct BackupItem<'a> {
    /// Name of the profile whose rule matched the file.
    pub profile: &'a str,
    /// Index of the volume in the report (for the ESP's files: the disk's number, 1-based).
    pub volume: usize,
    /// NTFS volume serial number (from the boot sector; 0 for the ESP).
    pub volume_serial: u64,
    /// Path from the volume root, `\`-separated.
    pub path: &'a str,
    /// The file's report so far: names, size, times, SHA-256.
    pub file: &'a FileReport,
    /// The whole unnamed `$DATA` stream of the file.
    pub content: &'a [u8],
    /// True for a file about to be edited in place (a hive, the BCD): the
    /// sink must really keep the copy, or fail (no copy, no edit). A file
    /// about to be deleted may go on without one when the stick is full.
    pub required: bool,
}

impl BackupItem<'_> {
    /// The file's path below a backup folder, `/` between names, checked to
    /// stay inside it: a path from the disk is data (no `..`, no drive, no
    /// device name), never a place to follow.
    pub fn relative_path(&self) -> Result<String, String> {
        match crate::util::win32_name::relative_path_problem(self.path) {
            Some(why) => Err(format!("{:?} cannot be a backup path ({why})", self.path)),
            None => Ok(self.path.replace('\\', "/")),
        }
    }
}

/// Where backups go (the stick on the agent, a folder on the host).
pub trait BackupSink {
    /// Stores a file durably; returns where it went. An error stops the change of that file.
    fn backup(&mut self, item: &BackupItem<'_>) -> Result<String, String>;
}

/// A sink that refuses every backup (for runs whose rules say `backup = false`).
pub struct NoBackup;
impl BackupSink for NoBackup {
    fn backup(&mut self, _: &BackupItem<'_>) -> Result<String, String> {
        Err(String::from("no backup destination"))
    }
}

/// Backs up a hive file and each log `journal` writes, every copy
/// required (no copy, no edit): `files[0]` is the hive and `files[1 + i]`
/// log `i`, as (path, content); `whose` is (profile, volume index, volume
/// serial). Returns where each copy went, the hive's first.
pub fn keep_originals(
    sink: &mut dyn BackupSink,
    journal: &Journal,
    whose: (&str, usize, u64),
    files: &[(String, &[u8])],
) -> Result<Vec<String>, String> {
    let written = |i: usize| i == 0 || journal.writes.iter().any(|w| w.0 == Target::Log(i - 1));
    let mut at = Vec::new();
    for (path, content) in files.iter().enumerate().filter(|(i, _)| written(*i)).map(|(_, f)| f) {
        let fr = FileReport {
            path: path.clone(),
            size: content.len() as u64,
            sha256: Some(hex(&Sha256::digest(content))),
            ..Default::default()
        };
        let (profile, volume, volume_serial) = whose;
        let item = BackupItem { profile, volume, volume_serial, path, file: &fr, content, required: true };
        at.push(sink.backup(&item).map_err(|m| format!("{path}: {m}"))?);
    }
    Ok(at)
}
