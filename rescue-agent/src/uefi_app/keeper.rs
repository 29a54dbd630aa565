//! Where backups are kept: on the stick, and at the profile's report URL.
//!
//! Guarantee: a copy the change relies on exists before the change. With a
//! writable stick the stick holds it, and the URL gets it after the run with
//! the report. Without one (network boot, or a stick that is full or
//! read-only) and with a URL, the copy is sent at once and the file is
//! changed only after the server answered 2xx for it: a receiver that is
//! down or refuses means the file is left alone, and the report says why.
//! With neither, the stick's rule for a full or read-only medium applies
//! (the fix goes on, the report says the copy was not kept). Each copy's
//! sidecar goes wherever the copy goes.
//!
//! `[[restore]]` rules find earlier runs' backups on the stick; booted from
//! the network, at the report URL: `<url>/restore/<serial>.json` (written by
//! `rescue collect --restore-index`) lists them, each fetched with HTTP GET
//! as `<url>/<path>` beside `<url>/<path>.json`.

use super::console::Clock;
use super::network::Uploader;
use super::stick::Stick;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use rescue_engine::rules::backup::{sidecar, BackupItem, BackupSink, Stored};
use rescue_engine::rules::restore::MAX_SIDECAR;
use rescue_engine::util::win32_name::component_problem;

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
    /// The connection to the URL's root, made when backups are fetched for a restore.
    fetcher: Option<Uploader>,
    /// What the URL listed for each volume serial (each index and sidecar is fetched once per run).
    listed: Vec<(String, Vec<Stored>)>,
}

impl<'a> Keeper<'a> {
    /// Backups go to `stick` (when present) and, with a `url`, to it; all
    /// deliveries together within `budget_s` seconds on `clock`.
    pub fn new(stick: &'a mut Stick, url: Option<&str>, clock: Clock, budget_s: u32) -> Keeper<'a> {
        let url = url.map(String::from);
        Keeper { stick, url, clock, budget_s, queued: Vec::new(), uploader: None, fetcher: None, listed: Vec::new() }
    }

    /// The copies still to send, and the uploader to send them with (the
    /// one used during the run, with the time it left; `None` without a URL).
    pub fn into_parts(self) -> (Vec<(String, Vec<u8>)>, Option<Uploader>) {
        let Keeper { stick, url, clock, budget_s, queued, uploader, .. } = self;
        let uploader = uploader.or_else(|| url.map(|u| Uploader::new(&run_url(&u, &stick.run_id), clock, budget_s)));
        (queued, uploader)
    }
}

/// The largest restore index fetched.
const MAX_INDEX: u64 = 4 << 20;

impl Keeper<'_> {
    /// The connection to the report URL's root (for restores).
    fn fetcher(&mut self) -> Result<&mut Uploader, String> {
        let url = self.url.as_deref().ok_or("booted from the network without a [report] url: no backups to restore")?;
        let (clock, budget_s) = (self.clock, self.budget_s);
        Ok(self.fetcher.get_or_insert_with(|| Uploader::new(url, clock, budget_s)))
    }
}

/// The entries of a restore index (`{"backups": [{"run": …, "at": …}, …]}`),
/// each `at` checked to be a relative path of plain names and returned
/// percent-encoded for a URL.
fn parse_index(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    #[derive(serde::Deserialize)]
    struct Index {
        backups: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        run: String,
        at: String,
    }
    let index: Index = serde_json::from_slice(bytes).map_err(|e| format!("not a restore index ({e})"))?;
    let mut out = Vec::new();
    for e in index.backups {
        let mut encoded = Vec::new();
        for part in e.at.split('/') {
            if let Some(why) = component_problem(part) {
                return Err(format!("{:?} is not a path of plain names ({why})", e.at));
            }
            encoded.push(percent_encode(part));
        }
        out.push((e.run, encoded.join("/")));
    }
    Ok(out)
}

/// A path component as a URL spells it: every byte outside `A-Z a-z 0-9 - . _ ~` as `%XX`.
fn percent_encode(part: &str) -> String {
    part.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                String::from(b as char)
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The base URL of one run: `<url>/<run id>`.
pub fn run_url(url: &str, run_id: &str) -> String {
    format!("{}/{run_id}", url.trim_end_matches('/'))
}

impl BackupSink for Keeper<'_> {
    /// Backups of earlier runs: on the stick; without one, at the report URL.
    fn list(&mut self, serial: &str) -> Result<Vec<Stored>, String> {
        if self.stick.present() {
            return self.stick.list(serial);
        }
        if let Some((_, known)) = self.listed.iter().find(|l| l.0 == serial) {
            return Ok(known.clone());
        }
        let index = format!("restore/{serial}.json");
        let fetch = self.fetcher()?;
        // No index for this serial: nothing kept for this volume.
        let bytes = fetch.get(&index, MAX_INDEX)?.unwrap_or_else(|| br#"{"backups": []}"#.to_vec());
        let entries = parse_index(&bytes).map_err(|why| format!("{}: {why}", fetch.url(&index)))?;
        let mut out = Vec::new();
        for (run, at) in entries {
            let sidecar = fetch.get(&format!("{at}.json"), MAX_SIDECAR as u64)?.unwrap_or_default();
            out.push(Stored { at, run: Some(run), sidecar });
        }
        self.listed.push((String::from(serial), out.clone()));
        Ok(out)
    }

    fn content(&mut self, at: &str, max: u64) -> Result<Vec<u8>, String> {
        if self.stick.present() {
            return self.stick.content(at, max);
        }
        let fetch = self.fetcher()?;
        fetch.get(at, max)?.ok_or_else(|| format!("{}: not on the server (HTTP 404)", fetch.url(at)))
    }

    fn backup(&mut self, item: &BackupItem<'_>) -> Result<String, String> {
        let path = item.relative_path().map_err(|e| format!("{e}: not deleted"))?;
        let Some(url) = &self.url else { return self.stick.backup(item) };
        let rel = format!("backups/{:016X}/{path}", item.volume_serial);
        let base = run_url(url, &self.stick.run_id);
        if self.stick.present() {
            if let Ok(on_stick) = self.stick.keep(item) {
                self.queued.push((rel.clone(), item.content.to_vec()));
                self.queued.push((format!("{rel}.json"), sidecar(item)));
                return Ok(format!("{on_stick}; {base}/{rel} (sent after the run)"));
            }
        }
        // No copy on a stick: the server's is the only one, so it must have arrived first.
        let (clock, budget_s) = (self.clock, self.budget_s);
        let up = self.uploader.get_or_insert_with(|| Uploader::new(&base, clock, budget_s));
        match up.put(&rel, item.content, false) {
            Ok(code) => {
                // Its sidecar (what a restore needs) after it: a copy without one is still a copy.
                if let Err(why) = up.put(&format!("{rel}.json"), &sidecar(item), false) {
                    self.stick.warnings.push(format!("restore data of {} not delivered: {why}", item.path));
                }
                Ok(format!("{} (delivered: {code})", up.url(&rel)))
            }
            Err(why) => Err(format!("the copy could not be delivered to {} ({why})", up.url(&rel))),
        }
    }
}
