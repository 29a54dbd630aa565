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
pub mod keys;
pub mod ls;
pub mod profile;
pub mod secureboot;
pub mod unlock;
pub mod volume_keys;

use anyhow::{Context, Result};
use rescue_engine::profile::Profile;
use std::path::Path;

/// Reads and validates a profile file, naming the file in every error.
pub fn read_profile(path: &Path) -> Result<(Profile, String)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read profile {}", path.display()))?;
    let profile = Profile::parse(&text).with_context(|| path.display().to_string())?;
    Ok((profile, text))
}
