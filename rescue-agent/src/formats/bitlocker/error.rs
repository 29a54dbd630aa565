//! The one error type of the BitLocker engine.
//!
//! Variants carry byte offsets (relative to the start of the BitLocker
//! volume) where the problem was found, and protector Key IDs where a key was
//! wrong. No variant ever carries key material.

use crate::block::IoError;
use crate::util::guid::Guid;
use alloc::vec::Vec;
use core::fmt;

/// Why a BitLocker volume could not be read, unlocked or written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BitLockerError {
    /// The device below failed.
    Io(IoError),
    /// The first sector carries no BitLocker signature.
    NotBitLocker,
    /// A Windows Vista (version 1) BitLocker volume: recognised, not supported.
    VistaUnsupported,
    /// A structure is inconsistent; `what` names it, `offset` is its byte position.
    Corrupt {
        /// Names the structure, as it appears in the message.
        what: &'static str,
        /// Byte position of the structure in the volume.
        offset: u64,
    },
    /// None of the three FVE metadata copies is valid; `offsets` are where they were looked for.
    NoValidMetadata {
        /// Byte offsets of the three copies, as the boot sector gives them.
        offsets: [u64; 3],
    },
    /// The volume uses an encryption method this engine does not know.
    UnsupportedMethod {
        /// The method code from the metadata header.
        method: u16,
    },
    /// The volume is in a state or layout this engine does not handle.
    Unsupported {
        /// What is not supported, as it appears in the message.
        what: &'static str,
    },
    /// A recovery password is not 48 digits in 8 blocks.
    RecoveryPasswordFormat,
    /// Block `block` (1-based) of a recovery password fails Windows' check
    /// (divisible by 11 and below 720896).
    RecoveryPasswordBlock {
        /// The failing block, counted from 1.
        block: u8,
    },
    /// The volume has no protector of this kind.
    NoProtector {
        /// The protector kind asked for, in words (e.g. "password").
        kind: &'static str,
    },
    /// No recovery-password protector accepted the recovery password.
    WrongRecoveryPassword {
        /// Key IDs of the recovery-password protectors tried.
        key_ids: Vec<Guid>,
    },
    /// No password protector accepted the password.
    WrongPassword {
        /// Key IDs of the password protectors tried.
        key_ids: Vec<Guid>,
    },
    /// The startup key file does not open this volume (its Key ID is given).
    WrongStartupKey {
        /// The Key ID stored in the startup key file.
        key_id: Guid,
    },
    /// A startup key (.BEK) file is malformed.
    BadKeyFile {
        /// What is wrong with the file, as it appears in the message.
        what: &'static str,
        /// Byte position in the file (for a bad file size: the file's length).
        offset: u64,
    },
    /// A protector opened the VMK, but the VMK does not open the FVEK or the
    /// metadata validation (the metadata was altered).
    MetadataAuthentication {
        /// Key ID of the protector whose VMK was opened.
        key_id: Guid,
    },
    /// A write would touch an FVE metadata area or the relocated boot sectors.
    ProtectedArea {
        /// Byte position of the refused write in the unlocked volume.
        offset: u64,
    },
    /// The volume is too small or too large for what was asked.
    BadSize {
        /// What size is wrong, as it appears in the message.
        what: &'static str,
        /// The size found, in bytes (a sector size for `unsupported sector size`).
        size: u64,
    },
}

impl From<IoError> for BitLockerError {
    fn from(e: IoError) -> Self {
        BitLockerError::Io(e)
    }
}

struct Ids<'a>(&'a [Guid]);
impl fmt::Display for Ids<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{{{g}}}")?;
        }
        Ok(())
    }
}

impl fmt::Display for BitLockerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use BitLockerError::*;
        match self {
            Io(e) => write!(f, "{e}"),
            NotBitLocker => f.write_str("not a BitLocker volume (no -FVE-FS- signature)"),
            VistaUnsupported => f.write_str("BitLocker volume from Windows Vista (metadata version 1) is not supported"),
            Corrupt { what, offset } => write!(f, "corrupt BitLocker {what} at byte {offset}"),
            NoValidMetadata { offsets } => write!(
                f,
                "no valid BitLocker metadata copy (checked bytes {}, {} and {}: signature, structure and CRC-32)",
                offsets[0], offsets[1], offsets[2]
            ),
            UnsupportedMethod { method } => write!(f, "unsupported BitLocker encryption method {method:#06x}"),
            Unsupported { what } => write!(f, "unsupported BitLocker volume: {what}"),
            RecoveryPasswordFormat => f.write_str(
                "a recovery password has 48 digits in 8 blocks of 6 (dashes optional)",
            ),
            RecoveryPasswordBlock { block } => write!(
                f,
                "recovery password block {block} is not valid (each 6-digit block is divisible by 11 and below 720896): check it for a typo"
            ),
            NoProtector { kind } => write!(f, "this volume has no {kind} protector"),
            WrongRecoveryPassword { key_ids } => write!(f, "wrong recovery password for Key ID {}", Ids(key_ids)),
            WrongPassword { key_ids } => write!(f, "wrong password for Key ID {}", Ids(key_ids)),
            WrongStartupKey { key_id } => write!(f, "the startup key {{{key_id}}} does not open this volume"),
            BadKeyFile { what, offset } => write!(f, "malformed BitLocker key file: {what} at byte {offset}"),
            MetadataAuthentication { key_id } => write!(
                f,
                "the key of protector {{{key_id}}} was accepted, but the volume's metadata does not authenticate with it"
            ),
            ProtectedArea { offset } => {
                write!(f, "refusing to write BitLocker metadata or relocated boot sectors at byte {offset}")
            }
            BadSize { what, size } => write!(f, "{what}: {size} bytes"),
        }
    }
}

impl core::error::Error for BitLockerError {}

/// Shorthand used by the parsers.
pub type Result<T> = core::result::Result<T, BitLockerError>;

pub(crate) fn corrupt<T>(what: &'static str, offset: u64) -> Result<T> {
    Err(BitLockerError::Corrupt { what, offset })
}
