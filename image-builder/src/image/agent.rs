//! The UEFI agent carried inside `rescue`: loading it, reading its version,
//! and sealing a profile into it (see [`rescue_engine::formats::embed`]).

use anyhow::{bail, Context, Result};
use rescue_engine::formats::embed::{self, Embedded};
use rescue_engine::util::version::MARKER;
use std::borrow::Cow;
use std::path::Path;

use super::stick;

/// The agents built with this `rescue` (release builds for both UEFI targets).
const EMBEDDED_X64: &[u8] = include_bytes!(env!("RESCUE_AGENT_EFI_PATH"));
const EMBEDDED_AA64: &[u8] = include_bytes!(env!("RESCUE_AGENT_AA64_EFI_PATH"));

/// The CPU architectures the agent runs on. Every stick and ISO carries both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Arch {
    /// x86-64 PCs (`BOOTX64.EFI`).
    #[value(name = "x86_64")]
    #[serde(rename = "x86_64")]
    X86_64,
    /// ARM64 PCs: Windows-on-ARM laptops (`BOOTAA64.EFI`).
    #[value(name = "aarch64")]
    #[serde(rename = "aarch64")]
    Aarch64,
}

impl Arch {
    /// Both, x86-64 first.
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The name people and `--arch` use.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// Where firmware of this architecture looks on removable media.
    pub fn boot_path(self) -> &'static str {
        match self {
            Arch::X86_64 => stick::AGENT_PATH,
            Arch::Aarch64 => stick::AGENT_AA64_PATH,
        }
    }

    /// The PE/COFF machine type of its binaries.
    fn machine(self) -> u16 {
        match self {
            Arch::X86_64 => 0x8664,
            Arch::Aarch64 => 0xAA64,
        }
    }

    /// The agent this `rescue` carries for it.
    pub fn embedded(self) -> &'static [u8] {
        match self {
            Arch::X86_64 => EMBEDDED_X64,
            Arch::Aarch64 => EMBEDDED_AA64,
        }
    }

    /// The architecture of a PE image, if it is one of ours.
    pub fn of(efi: &[u8]) -> Option<Arch> {
        let m = crate::sign::pe::parse(efi).ok()?.machine;
        Arch::ALL.into_iter().find(|a| a.machine() == m)
    }
}

/// The agent for `arch`: the embedded one, or the one in `path` (`--agent
/// FILE`), checked to be a PE image for that architecture that carries a
/// version tag.
pub fn load(arch: Arch, path: Option<&Path>) -> Result<Cow<'static, [u8]>> {
    let bytes: Cow<[u8]> = match path {
        None => Cow::Borrowed(arch.embedded()),
        Some(p) => Cow::Owned(std::fs::read(p).with_context(|| format!("cannot read the agent {}", p.display()))?),
    };
    if bytes.len() < 64 || &bytes[..2] != b"MZ" {
        bail!("the agent is not a UEFI application (no PE 'MZ' header); pass a rescue-agent.efi");
    }
    if Arch::of(&bytes) != Some(arch) {
        bail!(
            "the agent is not built for {} (a rescue-agent.efi for {}-unknown-uefi is needed)",
            arch.name(),
            arch.name()
        );
    }
    if version(&bytes).is_none() {
        bail!("the agent carries no rescue-agent version tag: is it really a rescue-agent build?");
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

/// The file range of the agent's embedded-profile section.
fn embed_range(efi: &[u8]) -> Result<std::ops::Range<usize>> {
    let info = crate::sign::pe::parse(efi).context("the agent is not a valid PE image")?;
    let s = info.sections.iter().find(|s| s.name == embed::SECTION_NAME).with_context(|| {
        format!("the agent has no {} section: use an agent built by this version of rescue", embed::SECTION_NAME)
    })?;
    let len = s.raw_size.min(s.virtual_size as usize);
    let range = s.raw_at..s.raw_at.saturating_add(len);
    if range.end > efi.len() || len < embed::SECTION_LEN {
        bail!("the agent's {} section is truncated", embed::SECTION_NAME);
    }
    Ok(range)
}

/// A copy of `efi` carrying `e` in its embedded-profile section (to be done
/// before signing, so that the signature covers it).
pub fn embed(efi: &[u8], e: &Embedded) -> Result<Vec<u8>> {
    let range = embed_range(efi)?;
    let mut out = efi.to_vec();
    embed::fill(&mut out[range], e)?;
    Ok(out)
}

/// What an agent binary carries in its embedded-profile section.
pub fn embedded(efi: &[u8]) -> Result<Embedded> {
    Ok(embed::read(&efi[embed_range(efi)?])?)
}
