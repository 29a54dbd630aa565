//! What the rules found and did on one volume: the report's vocabulary,
//! defined once. The agent and `rescue apply` write the same words (see
//! [`crate::run::report`] for the whole run); `rescue collect` and admins'
//! scripts read them. Every status is an enum, serialised as the word shown
//! in its doc; reports written by older versions read back through aliases.

use crate::formats::ntfs::PlanWrite;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// An enum whose values are words in the report: `as_str` and `Display`
/// give the word serde writes.
macro_rules! words {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $v:ident = $word:literal $(| $alias:literal)*,)+ }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $word $(, alias = $alias)*)] $v,)+
        }
        impl $name {
            /// The word the report and the screen use.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $word,)+ }
            }
        }
        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words! {
    /// What a volume holds, as far as the run could see.
    pub enum Filesystem {
        /// NTFS, plain or inside an unlocked BitLocker volume (see [`VolumeReport::bitlocker`]).
        Ntfs = "ntfs" | "ntfs (in BitLocker)" | "bitlocker",
        /// A BitLocker volume that stayed locked.
        LockedBitLocker = "bitlocker (locked)",
        /// An unlocked BitLocker volume holding something other than NTFS.
        NotNtfs = "not ntfs" | "not ntfs (in BitLocker)",
        /// The volume could not be read.
        #[default]
        Unreadable = "unreadable" | "unreadable (in BitLocker)",
    }
}

words! {
    /// What was done to one matched file.
    pub enum FileAction {
        /// Deleted (after its backup, when the rule asks for one).
        Deleted = "deleted",
        /// A dry run would delete it.
        WouldDelete = "would delete",
        /// Left alone on purpose (header differs, refused by a safety check, ...).
        #[default]
        Skipped = "skipped",
        /// Left alone because something went wrong.
        Failed = "failed",
    }
}

words! {
    /// What happened to a hive file or a BCD store.
    pub enum StoreAction {
        /// Written (hives), through a transaction log first.
        Written = "written",
        /// Set (the BCD store's Safe Mode element), through a transaction log first.
        Set = "set",
        /// A dry run would write it (hives).
        WouldWrite = "would write",
        /// A dry run would set it (the BCD store).
        WouldSet = "would set",
        /// Nothing needed changing.
        Unchanged = "unchanged",
        /// Not changed because something went wrong (see its reason).
        #[default]
        Failed = "failed",
    }
}

impl StoreAction {
    /// True when the store was written.
    pub fn changed(self) -> bool {
        matches!(self, StoreAction::Written | StoreAction::Set)
    }
    /// True when a dry run would write the store.
    pub fn would_change(self) -> bool {
        matches!(self, StoreAction::WouldWrite | StoreAction::WouldSet)
    }
}

words! {
    /// What a `[[restore]]` rule did with one backup.
    pub enum RestoreAction {
        /// Put back: the file created again, or the hive written back (through its log).
        Restored = "restored",
        /// A dry run would put it back.
        WouldRestore = "would restore",
        /// The same content is already there.
        AlreadyThere = "nothing to do",
        /// Not put back (see its reason); nothing of it was written.
        #[default]
        Failed = "failed",
    }
}

words! {
    /// What a rule did to one registry value.
    pub enum ValueOutcome {
        /// The value was set (or, on a dry run, would be).
        Set = "set",
        /// It already held the data.
        #[default]
        Unchanged = "unchanged",
        /// Its key does not exist (a `[[service]]` this control set lacks).
        NotFound = "not found",
    }
}

/// What was found and done on one volume.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeReport {
    /// Position of this volume in the run's list of volumes.
    pub index: usize,
    /// Partition number, 1-based (0 when the device holds a single volume).
    pub partition: u32,
    /// Byte offset of the volume on its disk.
    pub offset: u64,
    /// Length of the volume in bytes.
    pub size: u64,
    /// What the volume holds.
    pub filesystem: Filesystem,
    /// True for a BitLocker volume, unlocked or not.
    pub bitlocker: bool,
    /// True when the volume holds `Windows\System32`: only such volumes are changed.
    pub windows: bool,
    /// NTFS volume serial number, 16 uppercase hex digits (NTFS volumes only).
    pub serial: Option<String>,
    /// `$LogFile` state, `"empty"`, `"clean"` or `"unclean"` (when writes are cleared).
    pub journal: Option<String>,
    /// Why this volume may not be written (hibernated, unclean journal, ...).
    pub write_refused: Option<String>,
    /// One report per `[[delete]]` rule, in profile order.
    pub rules: Vec<RuleReport>,
    /// What the run noted (journal reset, not a Windows volume, ...).
    pub notes: Vec<String>,
    /// One report per hive the profile's registry rules edited.
    pub hives: Vec<HiveReport>,
    /// One report per backup the `[[restore]]` rules took for this volume.
    pub restores: Vec<RestoreReport>,
    /// Why the volume could not be opened or read.
    pub error: Option<String>,
}

impl VolumeReport {
    /// Every file matched on this volume, rule by rule.
    pub fn files(&self) -> impl Iterator<Item = &FileReport> {
        self.rules.iter().flat_map(|r| &r.files)
    }
}

/// What one `[[delete]]` rule found and did on a volume.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RuleReport {
    /// The rule's path as written in the profile.
    pub path: String,
    /// The rule's required header, as lowercase hex (empty: any file).
    pub header: String,
    /// Whether the rule backs files up before deleting them.
    pub backup: bool,
    /// True when the rule's directory exists on the volume.
    pub directory_found: bool,
    /// One report per matching file (several names of one file count once).
    pub files: Vec<FileReport>,
    /// Why the rule's directory could not be looked up or listed; `None` when it could.
    /// (A file that failed has its own reason, and is among the run's errors.)
    pub error: Option<String>,
}

/// What was found and done for one matching file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FileReport {
    /// Path from the volume root, `\`-separated, by the first matching name.
    pub path: String,
    /// MFT record number of the file.
    pub record: u64,
    /// Every name of the file (all directories, all name spaces).
    pub names: Vec<String>,
    /// Size of the unnamed `$DATA` stream in bytes.
    pub size: u64,
    /// Creation time from `$STANDARD_INFORMATION`, RFC 3339 UTC.
    pub created: String,
    /// Last data change from `$STANDARD_INFORMATION`, RFC 3339 UTC.
    pub modified: String,
    /// Last MFT record change from `$STANDARD_INFORMATION`, RFC 3339 UTC.
    pub mft_modified: String,
    /// Last access from `$STANDARD_INFORMATION`, RFC 3339 UTC.
    pub accessed: String,
    /// SHA-256 of the content, lowercase hex (`None` when the content was not read).
    pub sha256: Option<String>,
    /// True when the file starts with the rule's header bytes.
    pub header_match: bool,
    /// What was done to the file.
    pub action: FileAction,
    /// Why the file was skipped or failed.
    pub reason: Option<String>,
    /// Where its backup went, as the backup sink reported it.
    pub backup: Option<String>,
    /// The plan (dry run) or the writes done (real run). Not read back.
    #[serde(skip_deserializing)]
    pub writes: Vec<PlanWrite>,
    /// Notes of the delete plan (e.g. hard links kept).
    pub notes: Vec<String>,
}

/// What a `[[restore]]` rule did with one backup.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RestoreReport {
    /// Where the file goes back, from the volume root, `\`-separated.
    pub path: String,
    /// `file` (a deleted file created again) or `hive` (written back in place).
    pub kind: String,
    /// Where the backup is, as the backup source names it.
    pub backup: String,
    /// The run that kept the backup, when its folder says.
    pub run: Option<String>,
    /// What was done.
    pub action: RestoreAction,
    /// Why it was not put back, or why there was nothing to do.
    pub reason: Option<String>,
    /// Notes of the plan (e.g. a compressed file written plain).
    pub notes: Vec<String>,
    /// Where the hive as it was before the restore went (hives only).
    pub backup_of_current: Option<String>,
    /// The NTFS writes (planned on a dry run, done on a real one). Not read back.
    #[serde(skip_deserializing)]
    pub writes: Vec<PlanWrite>,
}

/// What happened to one hive file of a volume.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HiveReport {
    /// `SYSTEM` or `SOFTWARE`.
    pub hive: String,
    /// Its path on the volume.
    pub path: String,
    /// SHA-256 of the file before, lowercase hex.
    pub sha256: Option<String>,
    /// Log entries applied to recover a dirty hive (0: it was clean).
    pub recovered_entries: usize,
    /// `written`, `would write`, `unchanged` or `failed`.
    pub action: StoreAction,
    /// Why it failed.
    pub reason: Option<String>,
    /// Where the original went, as the backup sink said.
    pub backup: Option<String>,
    /// How the change went through a transaction log (see
    /// `registry::journal`), e.g. `log entry 2131 in SYSTEM.LOG2, written first`.
    pub journal: Option<String>,
    /// Where the originals of the logs written went.
    pub log_backups: Vec<String>,
    /// One entry per value a rule set (or would set).
    pub changes: Vec<ValueChange>,
    /// The NTFS writes (planned on a dry run, done on a real one). Not read back.
    #[serde(skip_deserializing)]
    pub writes: Vec<PlanWrite>,
}

/// One value a rule touched.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ValueChange {
    /// The key, as found (control sets resolved).
    pub key: String,
    /// The value's name.
    pub value: String,
    /// The data before, for people (None: the value did not exist).
    pub before: Option<String>,
    /// The data after, for people.
    pub after: String,
    /// What the rule did to it.
    pub outcome: ValueOutcome,
}

/// What `[finish] safe_mode` did to one BCD store.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SafeModeReport {
    /// Where the store is (e.g. `disk 1: \EFI\Microsoft\Boot\BCD`).
    pub store: String,
    /// The default loader's object GUID.
    pub loader: String,
    /// `safeboot` before: `minimal`, `network` or `off`.
    pub before: String,
    /// `safeboot` after.
    pub after: String,
    /// `set`, `would set`, `unchanged` or `failed`.
    pub action: StoreAction,
    /// Why it failed.
    pub reason: Option<String>,
    /// How to undo it.
    pub undo: String,
    /// How the change went through a transaction log (see
    /// `registry::journal`), e.g. `log entry 35 in BCD.LOG1, written first`.
    pub journal: Option<String>,
    /// Set because the disk's BitLocker volumes stayed locked
    /// (`[bitlocker] when_locked = "safe_mode"`), not by `[finish] safe_mode`.
    pub for_locked_bitlocker: bool,
}
