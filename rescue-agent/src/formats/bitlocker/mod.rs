//! BitLocker: detect, parse, unlock, and read/write through an encrypted volume.
//!
//! How the agent uses it:
//!
//! ```ignore
//! use rescue_engine::formats::bitlocker::{detect, BitLocker, UnlockKey};
//! if detect(&mut part)? {
//!     let bl = BitLocker::open(part)?;              // three metadata copies, CRC-checked
//!     for p in bl.protectors() {                     // Key IDs as Windows shows them
//!         println!("{} {}", p.key_id, p.kind);
//!     }
//!     let mut plain = bl.unlock(&UnlockKey::RecoveryPassword(typed))?; // a BlockDevice
//! }
//! ```
//!
//! Modules follow the on-disk structures: [`header`] (the volume boot
//! sector), [`metadata`] (the three FVE metadata copies), [`datum`]
//! (metadata entries), [`protector`] (VMK entries and Key IDs), [`keys`]
//! (recovery password, password, .BEK, key stretch, AES-CCM), [`cipher`]
//! (sector crypto), [`volume`] (the unlocked volume as a block device) and
//! `create` (a test-support encrypter, behind the `test-encrypter` feature).

pub mod cipher;
#[cfg(feature = "test-encrypter")]
pub mod create;
pub mod datum;
pub mod error;
pub mod header;
pub mod keys;
pub mod metadata;
pub mod protector;
pub mod volume;

pub use error::BitLockerError;
pub use keys::{parse_bek, parse_recovery_password, StartupKey};
pub use metadata::{ConversionState, CopyStatus, EncryptionMethod, Metadata};
pub use protector::{Protector, ProtectorKind};
pub use volume::{detect, BitLocker, UnlockKey, Unlocked, VolumeKey};
