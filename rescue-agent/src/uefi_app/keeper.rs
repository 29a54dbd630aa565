//! Where backups are kept: on the stick, and for delivery to the profile's
//! report URL (sent after the run, with the report). A network-booted agent
//! has only the URL; with neither, the stick's rule for a full or read-only
//! medium applies: the fix goes on, and the report says the copy was not kept.

use super::stick::Stick;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use rescue_engine::rules::backup::{BackupItem, BackupSink};
use rescue_engine::util::win32_name::relative_path_problem;

/// The backup sink of a run: the stick (when there is one) and the upload queue.
pub struct Keeper<'a> {
    stick: &'a mut Stick,
    url: Option<String>,
    uploads: Vec<(String, Vec<u8>)>,
}

impl<'a> Keeper<'a> {
    /// Backups go to `stick` (when present) and, with a `url`, are queued for it.
    pub fn new(stick: &'a mut Stick, url: Option<&str>) -> Keeper<'a> {
        Keeper { stick, url: url.map(String::from), uploads: Vec::new() }
    }

    /// The queued backups: (path under the run's URL, content).
    pub fn into_uploads(self) -> Vec<(String, Vec<u8>)> {
        self.uploads
    }
}

impl BackupSink for Keeper<'_> {
    fn backup(&mut self, item: &BackupItem<'_>) -> Result<String, String> {
        if let Some(why) = relative_path_problem(item.path) {
            return Err(format!("{:?} cannot be a backup path ({why}): not deleted", item.path));
        }
        let Some(url) = &self.url else { return self.stick.backup(item) };
        let rel = format!("backups/{:016X}/{}", item.volume_serial, item.path.replace('\\', "/"));
        let sent = format!("{}/{}/{rel} (sent after the run)", url.trim_end_matches('/'), self.stick.run_id);
        self.uploads.push((rel, item.content.to_vec()));
        if !self.stick.present() {
            if item.required {
                // An upload after the run is no copy before an in-place edit.
                return Err(format!("no stick to keep a copy of {} on before editing it", item.path));
            }
            return Ok(sent);
        }
        self.stick.backup(item).map(|on_stick| format!("{on_stick}; {sent}"))
    }
}
