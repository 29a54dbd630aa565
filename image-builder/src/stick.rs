//! What a rescue stick holds: one map of path → content that every image
//! format (USB disk, ISO) is produced from.

use std::collections::BTreeMap;

/// Path of the agent on the stick (the removable-media boot path).
pub const AGENT_PATH: &str = "EFI/BOOT/BOOTX64.EFI";
/// Path of the profile on the stick.
pub const PROFILE_PATH: &str = "rescue/profile.toml";
/// Where the agent writes its reports.
pub const REPORTS_DIR: &str = "rescue/reports";
/// Where the agent copies files before deleting them.
pub const BACKUPS_DIR: &str = "rescue/backups";
/// The stick's own folder (profile, reports, backups, certificate for MokManager).
pub const RESCUE_DIR: &str = "rescue";
/// Shim route: shim is at [`AGENT_PATH`] and starts this file (the signed agent) …
pub const SHIM_SECOND_STAGE_PATH: &str = "EFI/BOOT/grubx64.efi";
/// … or MokManager, when the second stage is not trusted yet.
pub const MOKMANAGER_PATH: &str = "EFI/BOOT/mmx64.efi";

/// The files and folders of a stick's boot partition. Paths use `/`.
#[derive(Default, Debug, Clone)]
pub struct StickFiles {
    /// `None` marks a folder; parents of files are implied.
    pub entries: BTreeMap<String, Option<Vec<u8>>>,
}

impl StickFiles {
    /// The standard layout: agent, validated profile, empty reports and backups folders.
    pub fn new(agent: &[u8], profile_text: &str) -> StickFiles {
        let mut s = StickFiles::default();
        s.file(AGENT_PATH, agent.to_vec());
        s.file(PROFILE_PATH, profile_text.as_bytes().to_vec());
        s.dir(REPORTS_DIR);
        s.dir(BACKUPS_DIR);
        s
    }

    pub fn file(&mut self, path: &str, bytes: Vec<u8>) {
        self.entries.insert(path.to_string(), Some(bytes));
    }

    pub fn dir(&mut self, path: &str) {
        self.entries.insert(path.to_string(), None);
    }

    /// Every folder, parents first (explicit ones and those implied by files).
    pub fn dirs(&self) -> Vec<String> {
        let mut dirs = std::collections::BTreeSet::new();
        for (path, content) in &self.entries {
            let mut parts: Vec<&str> = path.split('/').collect();
            if content.is_some() {
                parts.pop();
            }
            for i in 1..=parts.len() {
                dirs.insert(parts[..i].join("/"));
            }
        }
        dirs.into_iter().collect()
    }

    /// Every file with its bytes.
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().filter_map(|(p, c)| c.as_deref().map(|c| (p.as_str(), c)))
    }
}
