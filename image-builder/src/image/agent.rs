//! The UEFI agent carried inside `rescue`, and reading an agent's version.

use anyhow::{Context, Result};
use rescue_engine::version::MARKER;
use std::borrow::Cow;
use std::path::Path;

/// The agent built with this `rescue` (x86_64-unknown-uefi, release).
pub const EMBEDDED: &[u8] = include_bytes!(env!("RESCUE_AGENT_EFI_PATH"));

/// The embedded agent, or the one in `path` (`--agent FILE`), checked to be a
/// PE image that carries a version tag.
pub fn load(path: Option<&Path>) -> Result<Cow<'static, [u8]>> {
    let bytes: Cow<[u8]> = match path {
        None => Cow::Borrowed(EMBEDDED),
        Some(p) => Cow::Owned(std::fs::read(p).with_context(|| format!("cannot read the agent {}", p.display()))?),
    };
    if bytes.len() < 64 || &bytes[..2] != b"MZ" {
        anyhow::bail!("the agent is not a UEFI application (no PE 'MZ' header); pass a rescue-agent.efi built for x86_64-unknown-uefi");
    }
    if version(&bytes).is_none() {
        anyhow::bail!("the agent carries no rescue-agent version tag: is it really a rescue-agent build?");
    }
    Ok(bytes)
}

/// The version tag an agent binary carries, if any.
pub fn version(efi: &[u8]) -> Option<String> {
    let at = efi.windows(MARKER.len()).position(|w| w == MARKER)? + MARKER.len();
    let tail = &efi[at..efi.len().min(at + 16)];
    let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
    let v = std::str::from_utf8(&tail[..end]).ok()?;
    (!v.is_empty()).then(|| v.to_string())
}
