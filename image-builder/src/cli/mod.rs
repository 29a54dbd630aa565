//! The `rescue` verbs: one module each, holding its arguments and its `run`.
//! They parse and print; the work is done by [`crate::image`],
//! [`crate::host`], [`crate::sign`], [`crate::site_keys`] and the engine.

pub mod apply;
pub mod bitlocker;
pub mod build;
pub mod collect;
pub mod devices;
pub mod flash;
pub mod inspect;
pub mod journal;
pub mod keys;
pub mod ls;
pub mod profile;
pub mod reg;
pub mod restore;
pub mod secureboot;
pub mod unlock;
pub mod volume_keys;

use anyhow::{anyhow, bail, Context, Result};
use rescue_engine::rules::profile::{Profile, MAX_LEN as MAX_PROFILE_LEN};
use std::path::Path;

/// How a verb ended, as its exit status: the same codes for every verb
/// (documented in `rescue --help` and the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done (something was fixed, or the verb did its work).
    Done,
    /// 3: nothing to do (`apply` matched no file to delete).
    NothingToDo,
    /// 4: partly done (`apply` fixed some files, and this many errors stayed).
    Partial(usize),
}

impl Exit {
    /// The process exit status. 1 is an error (nothing changed); 2 a usage error.
    pub fn code(self) -> i32 {
        match self {
            Exit::Done => 0,
            Exit::NothingToDo => 3,
            Exit::Partial(_) => 4,
        }
    }
}

/// Reads and validates a profile file: every problem is listed with the
/// file, line and column. A UTF-16 file (as Notepad may save it) is read as
/// such ([`crate::text::decode`]); the text returned is UTF-8.
pub fn read_profile(path: &Path) -> Result<(Profile, String)> {
    let shown = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read profile {shown}"))?;
    if meta.is_dir() {
        bail!("profile {shown} is a folder: name a .toml file");
    }
    // UTF-16 takes twice the bytes of the text it holds.
    if meta.len() > 2 * MAX_PROFILE_LEN as u64 + 2 {
        bail!("profile {shown} is {} bytes: a profile is at most {} bytes", meta.len(), MAX_PROFILE_LEN);
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read profile {shown}"))?;
    let text = crate::text::decode(&bytes).map_err(|e| anyhow!("profile {shown}: {e}"))?.to_string();
    match Profile::parse_all(&text) {
        Ok(p) => Ok((p, text)),
        Err(errors) => {
            let list: Vec<String> = errors.iter().map(|e| format!("{shown}: {e}")).collect();
            bail!("{} problem(s) in the profile:\n  {}", list.len(), list.join("\n  "))
        }
    }
}
