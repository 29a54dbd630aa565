//! What a rescue stick holds: one map of path → content that every image
//! format (USB disk, ISO) is produced from. Paths come from the engine's
//! [`rescue_engine::formats::stick`] layout, which the agent reads too.

use std::collections::{BTreeMap, BTreeSet};

pub use rescue_engine::formats::stick::{
    AGENT_AA64_PATH, AGENT_PATH, BACKUPS_DIR, KEYS_PATH, MOKMANAGER_PATH, PROFILE_PATH, REPORTS_DIR, RESCUE_DIR,
    SHIM_SECOND_STAGE_PATH,
};

/// The files and folders of a stick's boot partition. Paths use `/`.
#[derive(Default, Debug, Clone)]
pub struct StickFiles {
    /// `None` marks a folder; parents of files are implied.
    pub entries: BTreeMap<String, Option<Vec<u8>>>,
}

impl StickFiles {
    /// The standard layout: the agents (boot path, bytes), the validated
    /// profile, empty reports and backups folders.
    pub fn new(agents: &[(&str, &[u8])], profile_text: &str) -> StickFiles {
        let mut s = StickFiles::default();
        for (path, bytes) in agents {
            s.file(path, bytes.to_vec());
        }
        s.file(PROFILE_PATH, profile_text.as_bytes().to_vec());
        s.dir(REPORTS_DIR);
        s.dir(BACKUPS_DIR);
        s
    }

    /// Adds (or replaces) a file.
    pub fn file(&mut self, path: &str, bytes: Vec<u8>) {
        self.entries.insert(path.to_string(), Some(bytes));
    }

    /// Adds an empty folder.
    pub fn dir(&mut self, path: &str) {
        self.entries.insert(path.to_string(), None);
    }

    /// Every folder, parents first (explicit ones and those implied by files).
    pub fn dirs(&self) -> Vec<String> {
        let mut dirs = BTreeSet::new();
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
