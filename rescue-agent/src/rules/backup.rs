//! The backup port: every file goes to a [`BackupSink`] before it is
//! deleted or edited (the stick on the agent, a folder on the host).

use super::report::FileReport;
use crate::formats::ntfs::filename::{DOS, POSIX, WIN32, WIN32_AND_DOS};
use crate::formats::registry::journal::{Journal, Target};
use crate::util::hex::hex;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};
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
    /// What a restore needs to put the file back (deleted files; `None` for hives and the BCD).
    pub origin: Option<&'a Origin>,
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

/// A name of a file in its directory, with its NTFS name space.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginName {
    /// The name.
    pub name: String,
    /// `"posix"`, `"win32"`, `"dos"` or `"win32+dos"`.
    pub namespace: String,
}

/// What a restore needs to put a deleted file back where it was: the
/// `restore` part of the sidecar JSON beside its backup. Every field is
/// data from a disk or a stick: a restore validates it before use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Origin {
    /// NTFS volume serial number, 16 hex digits (as in the backup's folder name).
    pub volume_serial: String,
    /// Path from the volume root, `\`-separated.
    pub path: String,
    /// The parent directory's MFT record number.
    pub parent_record: u64,
    /// The parent directory's sequence number.
    pub parent_seq: u16,
    /// The file's names in that directory.
    pub names: Vec<OriginName>,
    /// `$STANDARD_INFORMATION` creation time, FILETIME.
    pub created: u64,
    /// `$STANDARD_INFORMATION` last data change, FILETIME.
    pub modified: u64,
    /// `$STANDARD_INFORMATION` last MFT record change, FILETIME.
    pub mft_modified: u64,
    /// `$STANDARD_INFORMATION` last access, FILETIME.
    pub accessed: u64,
    /// File attributes (FILE_ATTRIBUTE_*).
    pub attributes: u32,
    /// `$STANDARD_INFORMATION` owner id.
    pub owner_id: u32,
    /// `$STANDARD_INFORMATION` security id.
    pub security_id: u32,
    /// Size of the content in bytes.
    pub size: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
}

/// NTFS name spaces as a sidecar spells them.
const NAMESPACES: [(u8, &str); 4] = [(POSIX, "posix"), (WIN32, "win32"), (DOS, "dos"), (WIN32_AND_DOS, "win32+dos")];

/// The name of NTFS name space `ns` in a sidecar.
pub fn namespace_name(ns: u8) -> &'static str {
    NAMESPACES.iter().find(|n| n.0 == ns).map_or("win32+dos", |n| n.1)
}

/// The NTFS name space a sidecar names (`None`: not one of [`namespace_name`]'s).
pub fn namespace_code(name: &str) -> Option<u8> {
    NAMESPACES.iter().find(|n| n.1 == name).map(|n| n.0)
}

/// The sidecar JSON written beside a backup: who made it, the file's report
/// and, for a deleted file, what a restore needs.
pub fn sidecar(item: &BackupItem<'_>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Sidecar<'a> {
        profile: &'a str,
        volume: usize,
        volume_serial: String,
        path: &'a str,
        file: &'a FileReport,
        #[serde(skip_serializing_if = "Option::is_none")]
        restore: Option<&'a Origin>,
    }
    let s = Sidecar {
        profile: item.profile,
        volume: item.volume,
        volume_serial: format!("{:016X}", item.volume_serial),
        path: item.path,
        file: item.file,
        restore: item.origin,
    };
    serde_json::to_vec_pretty(&s).unwrap_or_default()
}

/// A backup as a sink lists it for `[[restore]]` rules.
#[derive(Clone, Debug)]
pub struct Stored {
    /// Where it is, `/`-separated, as the sink names it (to fetch its content, and for people).
    pub at: String,
    /// The run that kept it, when the sink's layout says (run ids start with their time).
    pub run: Option<String>,
    /// Its sidecar JSON (`<backup>.json`).
    pub sidecar: Vec<u8>,
}

/// Where backups go (the stick on the agent, a folder on the host), and
/// where `[[restore]]` rules find those of earlier runs. Everything listed
/// or read back is data to check.
pub trait BackupSink {
    /// Stores a file durably; returns where it went. An error stops the change of that file.
    fn backup(&mut self, item: &BackupItem<'_>) -> Result<String, String>;
    /// The backups with a sidecar that may belong to the volume with
    /// `serial` (16 uppercase hex digits; a sink may list more, the
    /// sidecars decide). An error: the backups could not be read. By
    /// default there are none.
    fn list(&mut self, _serial: &str) -> Result<Vec<Stored>, String> {
        Ok(Vec::new())
    }
    /// The content of the backup at `at`, refused when longer than `max` bytes.
    fn content(&mut self, at: &str, _max: u64) -> Result<Vec<u8>, String> {
        Err(format!("{at}: no backups here"))
    }
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
        let item =
            BackupItem { profile, volume, volume_serial, path, file: &fr, content, origin: None, required: true };
        at.push(sink.backup(&item).map_err(|m| format!("{path}: {m}"))?);
    }
    Ok(at)
}
