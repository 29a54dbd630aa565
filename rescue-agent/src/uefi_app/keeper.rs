//! Where backups are kept: on the stick, and at the profile's report URL.
//!
//! Guarantee: a copy the change relies on exists before the change. With a
//! writable stick the stick holds it, and the URL gets it after the run with
//! the report. Without one (network boot, or a stick that is full or
//! read-only) and with a URL, the copy is sent at once and the file is
//! changed only after the server answered 2xx for it: a receiver that is
//! down or refuses means the file is left alone, and the report says why.
//! With neither, the stick's rule for a full or read-only medium applies
//! (the fix goes on, the report says the copy was not kept).

use super::console::Clock;
use super::network::Uploader;
use super::stick::Stick;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use rescue_engine::rules::backup::{BackupItem, BackupSink, Stored};

/// The backup sink of a run: the stick (when there is one) and the report URL.
pub struct Keeper<'a> {
    stick: &'a mut Stick,
    url: Option<String>,
    clock: Clock,
    /// Seconds all deliveries of the run may take (`[report] deadline_seconds`).
    budget_s: u32,
    /// Copies kept on the stick, to send after the run: (path under the run's URL, content).
    queued: Vec<(String, Vec<u8>)>,
    /// The connection to the URL, made when a copy must be sent at once.
    uploader: Option<Uploader>,
}

impl<'a> Keeper<'a> {
    /// Backups go to `stick` (when present) and, with a `url`, to it; all
    /// deliveries together within `budget_s` seconds on `clock`.
    pub fn new(stick: &'a mut Stick, url: Option<&str>, clock: Clock, budget_s: u32) -> Keeper<'a> {
        Keeper { stick, url: url.map(String::from), clock, budget_s, queued: Vec::new(), uploader: None }
    }

    /// The copies still to send, and the uploader to send them with (the
    /// one used during the run, with the time it left; `None` without a URL).
    pub fn into_parts(self) -> (Vec<(String, Vec<u8>)>, Option<Uploader>) {
        let Keeper { stick, url, clock, budget_s, queued, uploader } = self;
        let uploader = uploader.or_else(|| url.map(|u| Uploader::new(&run_url(&u, &stick.run_id), clock, budget_s)));
        (queued, uploader)
    }
}

/// The base URL of one run: `<url>/<run id>`.
pub fn run_url(url: &str, run_id: &str) -> String {
    format!("{}/{run_id}", url.trim_end_matches('/'))
}

impl BackupSink for Keeper<'_> {
    /// Backups of earlier runs come from the stick.
    fn list(&mut self, serial: &str) -> Result<Vec<Stored>, String> {
        if !self.stick.present() {
            return Err(String::from(
                "booted from the network, with no stick holding backups: a restore runs from a restore stick",
            ));
        }
        self.stick.list(serial)
    }

    fn content(&mut self, at: &str, max: u64) -> Result<Vec<u8>, String> {
        self.stick.content(at, max)
    }

    fn backup(&mut self, item: &BackupItem<'_>) -> Result<String, String> {
        let path = item.relative_path().map_err(|e| format!("{e}: not deleted"))?;
        let Some(url) = &self.url else { return self.stick.backup(item) };
        let rel = format!("backups/{:016X}/{path}", item.volume_serial);
        let base = run_url(url, &self.stick.run_id);
        if self.stick.present() {
            if let Ok(on_stick) = self.stick.keep(item) {
                self.queued.push((rel.clone(), item.content.to_vec()));
                return Ok(format!("{on_stick}; {base}/{rel} (sent after the run)"));
            }
        }
        // No copy on a stick: the server's is the only one, so it must have arrived first.
        let (clock, budget_s) = (self.clock, self.budget_s);
        let up = self.uploader.get_or_insert_with(|| Uploader::new(&base, clock, budget_s));
        match up.put(&rel, item.content, false) {
            Ok(code) => Ok(format!("{} (delivered: {code})", up.url(&rel))),
            Err(why) => Err(format!("the copy could not be delivered to {} ({why})", up.url(&rel))),
        }
    }
}
