//! The ports between the engine's agent run and the world around it: the
//! screen and keyboard ([`Console`]) and the site's recovery keys
//! ([`KeySource`]). The session uses them; the UEFI front end and the
//! keyed-stick adapter (`sitekeys`) implement them.

use crate::partition::Guid;
use crate::prompt::Key;
use alloc::string::String;
use zeroize::Zeroizing;

/// What the agent shows and reads.
pub trait Console {
    /// A status line (screen and serial).
    fn line(&mut self, text: &str);
    /// The key-entry field, redrawn in place on screen (a line on serial).
    fn field(&mut self, text: &str) {
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
