//! What `rescue build` seals into the agent binary before it is signed: the
//! profile the stick was built with, and the SHA-256 of its key file.
//!
//! The agent reserves [`SECTION_LEN`] bytes in a PE section named
//! [`SECTION_NAME`], starting with [`MAGIC`] and otherwise empty. The
//! builder fills it in place; Secure Boot's signature then covers it. The
//! agent applies only this profile: a profile file on the stick that differs
//! means the stick was altered after it was built, and a key file whose
//! digest differs is not used.
//!
//! Layout (all little-endian): magic (16 bytes), format version (u32),
//! profile length (u32), flags (u32; bit 0: a key file is bound), length of
//! a carried key file (u32; a network-boot agent has no stick to hold it),
//! key-file SHA-256 (32 bytes), then the profile's bytes, then the key file's.

use crate::util::le::{le32, put32};
use alloc::vec::Vec;
use core::fmt;

/// The PE section the agent reserves for the embedded profile.
pub const SECTION_NAME: &str = ".rprof";
/// Bytes reserved: the header and the largest profile an image can carry.
pub const SECTION_LEN: usize = 64 * 1024;
/// The first bytes of the section, filled or not.
pub const MAGIC: [u8; 16] = *b"RESCUE-PROFILE\x00\x01";
/// The format version written by this engine.
pub const VERSION: u32 = 1;
const HEADER_LEN: usize = 64;
/// The largest profile that fits the section.
pub const MAX_PROFILE_LEN: usize = SECTION_LEN - HEADER_LEN;
/// Room for a profile and a carried key file together.
const MAX_PAYLOAD: usize = SECTION_LEN - HEADER_LEN;
const FLAG_KEYS: u32 = 1;

/// The section as the agent is built: the magic, nothing embedded yet.
pub const fn empty_section() -> [u8; SECTION_LEN] {
    let mut s = [0u8; SECTION_LEN];
    let mut i = 0;
    while i < MAGIC.len() {
        s[i] = MAGIC[i];
        i += 1;
    }
    s
}

/// What a built agent carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Embedded {
    /// The profile's exact bytes, as put on the stick.
    pub profile: Vec<u8>,
    /// SHA-256 of the stick's key file, when the image is keyed.
    pub keys_sha256: Option<[u8; 32]>,
    /// The key file itself, when the agent carries it (network boot: no stick).
    pub keys: Option<Vec<u8>>,
}

/// Why a section cannot be read or filled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmbedError {
    /// The section does not start with [`MAGIC`]: not a rescue agent's section.
    NoMagic,
    /// The agent was never filled by `rescue build` (profile length 0).
    Empty,
    /// A format version this engine does not know.
    Version(u32),
    /// The profile length does not fit the section.
    Length(usize),
}

impl From<crate::util::le::OutOfBounds> for EmbedError {
    fn from(e: crate::util::le::OutOfBounds) -> Self {
        EmbedError::Length(e.offset.saturating_add(e.len))
    }
}

impl fmt::Display for EmbedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmbedError::NoMagic => write!(f, "the agent has no embedded-profile section"),
            EmbedError::Empty => write!(f, "the agent carries no profile: it was not built by `rescue build`"),
            EmbedError::Version(v) => write!(f, "embedded profile format {v} is not known to this version"),
            EmbedError::Length(n) => {
                write!(f, "a {n}-byte profile does not fit the agent (at most {MAX_PROFILE_LEN} bytes)")
            }
        }
    }
}

impl core::error::Error for EmbedError {}

/// Reads the embedded profile from a section's bytes. Never panics.
pub fn read(section: &[u8]) -> Result<Embedded, EmbedError> {
    if section.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(EmbedError::NoMagic);
    }
    let field = |o| le32(section, o).unwrap_or(0);
    let (version, len, flags, keys_len) = (field(16), field(20) as usize, field(24), field(28) as usize);
    if version == 0 && len == 0 {
        return Err(EmbedError::Empty);
    }
    if version != VERSION {
        return Err(EmbedError::Version(version));
    }
    let profile = section.get(HEADER_LEN..HEADER_LEN.saturating_add(len)).ok_or(EmbedError::Length(len))?;
    if profile.is_empty() {
        return Err(EmbedError::Empty);
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&section[32..64]);
    let keys = match keys_len {
        0 => None,
        n => {
            let at = HEADER_LEN + len;
            Some(section.get(at..at.saturating_add(n)).ok_or(EmbedError::Length(len.saturating_add(n)))?.to_vec())
        }
    };
    Ok(Embedded { profile: profile.to_vec(), keys_sha256: (flags & FLAG_KEYS != 0).then_some(digest), keys })
}

/// Fills a section (which must start with [`MAGIC`]) with `e`; the rest of it is zeroed.
pub fn fill(section: &mut [u8], e: &Embedded) -> Result<(), EmbedError> {
    if section.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(EmbedError::NoMagic);
    }
    let len = e.profile.len();
    let keys = e.keys.as_deref().unwrap_or_default();
    let total = len + keys.len();
    if len == 0 || total > MAX_PAYLOAD || HEADER_LEN + total > section.len() {
        return Err(if len == 0 { EmbedError::Empty } else { EmbedError::Length(total) });
    }
    section[MAGIC.len()..].fill(0);
    put32(section, 16, VERSION)?;
    put32(section, 20, len as u32)?;
    put32(section, 24, if e.keys_sha256.is_some() { FLAG_KEYS } else { 0 })?;
    put32(section, 28, keys.len() as u32)?;
    section[32..64].copy_from_slice(&e.keys_sha256.unwrap_or([0; 32]));
    section[HEADER_LEN..HEADER_LEN + len].copy_from_slice(&e.profile);
    section[HEADER_LEN + len..HEADER_LEN + total].copy_from_slice(keys);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn fill_then_read_round_trips() {
        let mut s = empty_section();
        assert_eq!(read(&s), Err(EmbedError::Empty));
        let e = Embedded { profile: b"name = \"x\"\n".to_vec(), keys_sha256: Some([7; 32]), keys: Some(vec![1, 2, 3]) };
        fill(&mut s, &e).unwrap();
        assert_eq!(read(&s).unwrap(), e);
        let plain = Embedded { profile: b"y".to_vec(), keys_sha256: None, keys: None };
        fill(&mut s, &plain).unwrap();
        assert_eq!(read(&s).unwrap(), plain);
    }

    #[test]
    fn hostile_sections_are_errors() {
        assert_eq!(read(&[0u8; 8]), Err(EmbedError::NoMagic));
        let mut s = empty_section();
        put32(&mut s, 16, VERSION).unwrap();
        put32(&mut s, 20, u32::MAX).unwrap();
        assert_eq!(read(&s), Err(EmbedError::Length(u32::MAX as usize)));
        put32(&mut s, 16, 9).unwrap();
        assert_eq!(read(&s), Err(EmbedError::Version(9)));
        let big = Embedded { profile: vec![b'a'; MAX_PROFILE_LEN + 1], keys_sha256: None, keys: None };
        assert_eq!(fill(&mut empty_section(), &big), Err(EmbedError::Length(MAX_PROFILE_LEN + 1)));
        assert_eq!(read(&s[..40]), Err(EmbedError::Version(9)));
    }
}
