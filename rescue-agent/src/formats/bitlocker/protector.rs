//! Key protectors: the VMK entries of the metadata. Each wraps the volume
//! master key (VMK) under one way of unlocking (recovery password, password,
//! startup key, TPM, clear key, ...). Its GUID is the "Key ID" that Windows
//! shows on its recovery screen and `manage-bde -protectors -get` lists.

#![deny(clippy::indexing_slicing)]

use super::datum::{value, CcmBlob, Datum};
use super::error::{corrupt, Result};
use crate::util::guid::Guid;
use crate::util::le::{le16, le64};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use zeroize::Zeroizing;

/// How a protector unlocks the VMK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtectorKind {
    /// Protection suspended: the key lies in the clear beside the VMK.
    ClearKey,
    /// TPM only: the TPM unseals the VMK at boot (code 0x0100; not usable here).
    Tpm,
    /// A startup key on a USB stick, or an external recovery key (.BEK file) (code 0x0200).
    StartupKey,
    /// TPM plus a PIN typed at boot (code 0x0500; not usable here).
    TpmAndPin,
    /// TPM plus a startup key (code 0x0300; not usable here).
    TpmAndStartupKey,
    /// TPM plus a PIN and a startup key (code 0x0700; not usable here).
    TpmPinAndStartupKey,
    /// The 48-digit numerical recovery password (code 0x0800).
    RecoveryPassword,
    /// Smart card / public key (not supported for unlocking here).
    SmartCard,
    /// A user password, as on data and To Go volumes (code 0x2000).
    Password,
    /// A protection type code this engine does not know, as stored.
    Unknown(u16),
}

impl ProtectorKind {
    /// From the protection type field of a VMK entry.
    pub fn from_code(code: u16) -> Self {
        match code {
            0x0000 => ProtectorKind::ClearKey,
            0x0100 => ProtectorKind::Tpm,
            0x0200 => ProtectorKind::StartupKey,
            0x0500 => ProtectorKind::TpmAndPin,
            0x0300 => ProtectorKind::TpmAndStartupKey,
            0x0700 => ProtectorKind::TpmPinAndStartupKey,
            0x0800 => ProtectorKind::RecoveryPassword,
            0x1000 => ProtectorKind::SmartCard,
            0x2000 => ProtectorKind::Password,
            c => ProtectorKind::Unknown(c),
        }
    }
    /// The code stored on disk.
    pub fn code(self) -> u16 {
        match self {
            ProtectorKind::ClearKey => 0x0000,
            ProtectorKind::Tpm => 0x0100,
            ProtectorKind::StartupKey => 0x0200,
            ProtectorKind::TpmAndPin => 0x0500,
            ProtectorKind::TpmAndStartupKey => 0x0300,
            ProtectorKind::TpmPinAndStartupKey => 0x0700,
            ProtectorKind::RecoveryPassword => 0x0800,
            ProtectorKind::SmartCard => 0x1000,
            ProtectorKind::Password => 0x2000,
            ProtectorKind::Unknown(c) => c,
        }
    }
}

impl fmt::Display for ProtectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtectorKind::ClearKey => f.write_str("clear key (protection suspended)"),
            ProtectorKind::Tpm => f.write_str("TPM"),
            ProtectorKind::StartupKey => f.write_str("startup key"),
            ProtectorKind::TpmAndPin => f.write_str("TPM and PIN"),
            ProtectorKind::TpmAndStartupKey => f.write_str("TPM and startup key"),
            ProtectorKind::TpmPinAndStartupKey => f.write_str("TPM, PIN and startup key"),
            ProtectorKind::RecoveryPassword => f.write_str("recovery password"),
            ProtectorKind::SmartCard => f.write_str("smart card"),
            ProtectorKind::Password => f.write_str("password"),
            ProtectorKind::Unknown(c) => write!(f, "unknown ({c:#06x})"),
        }
    }
}

/// An AES-CCM encrypted key, copied out of the metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKey {
    /// The 12-byte CCM nonce.
    pub nonce: [u8; 12],
    /// The 16-byte CCM authentication tag.
    pub tag: [u8; 16],
    /// The encrypted key datum (the tag is separate).
    pub ciphertext: Vec<u8>,
    /// Byte position of the entry.
    pub offset: u64,
}

impl WrappedKey {
    pub(crate) fn from_blob(b: &CcmBlob<'_>) -> Self {
        WrappedKey { nonce: b.nonce, tag: b.tag, ciphertext: b.ciphertext.to_vec(), offset: b.offset }
    }
}

/// One key protector (a VMK entry).
#[derive(Clone)]
pub struct Protector {
    /// The protector GUID: Windows' "Key ID".
    pub key_id: Guid,
    /// How this protector unlocks the VMK (protection type, value bytes 26–27).
    pub kind: ProtectorKind,
    /// Last change, as a Windows FILETIME.
    pub modified: u64,
    /// A name stored with the protector, if any.
    pub name: Option<String>,
    /// Salt of the key stretch (password and recovery password protectors).
    pub salt: Option<[u8; 16]>,
    /// The VMK, encrypted under this protector's key.
    pub wrapped_vmk: Vec<WrappedKey>,
    /// For clear-key protectors: the key that unwraps the VMK (it is public
    /// by design, but treated as key material all the same).
    pub(crate) clear_key: Option<Zeroizing<Vec<u8>>>,
    /// Byte position of the entry.
    pub offset: u64,
}

impl fmt::Debug for Protector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protector")
            .field("key_id", &self.key_id)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl Protector {
    /// The short form Windows shows on its recovery screen: the first 8 hex digits of the Key ID.
    pub fn short_key_id(&self) -> String {
        let mut s = alloc::format!("{}", self.key_id);
        s.truncate(8);
        s
    }

    /// Parses a VMK entry.
    pub fn parse(d: &Datum<'_>) -> Result<Protector> {
        if d.value_type != value::VMK {
            return corrupt("VMK entry (wrong value type)", d.offset);
        }
        let data = d.data();
        if data.len() < 28 {
            return corrupt("VMK entry (too short)", d.offset);
        }
        let key_id = Guid::from_slice(data);
        let modified = le64(data, 16).unwrap_or(0);
        let kind = ProtectorKind::from_code(le16(data, 26).unwrap_or(0));
        let mut p = Protector {
            key_id,
            kind,
            modified,
            name: None,
            salt: None,
            wrapped_vmk: Vec::new(),
            clear_key: None,
            offset: d.offset,
        };
        for child in d.children()? {
            let c = child?;
            match c.value_type {
                value::STRETCH_KEY => p.salt = Some(c.stretch_salt()?),
                value::AES_CCM if p.wrapped_vmk.len() < 8 => p.wrapped_vmk.push(WrappedKey::from_blob(&c.ccm()?)),
                value::KEY => {
                    let (_, k) = c.key()?;
                    p.clear_key = Some(Zeroizing::new(k.to_vec()));
                }
                value::UNICODE if p.name.is_none() => p.name = Some(c.unicode()),
                _ => {}
            }
        }
        Ok(p)
    }
}
