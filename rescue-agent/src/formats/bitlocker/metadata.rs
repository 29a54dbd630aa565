//! FVE metadata: three copies of one block, each a 64-byte block header, a
//! 48-byte metadata header and a list of entries, followed by a validation
//! structure holding the CRC-32 of the block (and an AES-CCM authenticated
//! SHA-256 of it). [`Metadata::read`] validates every copy and uses the first
//! valid one.

#![deny(clippy::indexing_slicing)]

use super::datum::{entry, value, Datums};
use super::error::{corrupt, BitLockerError, Result};
use super::header::VolumeHeader;
use super::protector::{Protector, WrappedKey};
use crate::block::BlockDevice;
use crate::util::crc32::crc32;
use crate::util::guid::Guid;
use crate::util::le::{le16, le32, le64};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// Size of one FVE metadata area (the whole area reads as zeros when unlocked).
pub const AREA_SIZE: u64 = 64 * 1024;
/// Block header + metadata header.
pub const HEADERS_LEN: usize = 64 + 48;

/// The cipher a volume's sectors are encrypted with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncryptionMethod {
    /// AES-CBC with a 128-bit key and the Elephant diffuser (code 0x8000;
    /// Windows 7 and earlier).
    AesCbc128Diffuser,
    /// AES-CBC with a 256-bit key and the Elephant diffuser (code 0x8001).
    AesCbc256Diffuser,
    /// AES-CBC with a 128-bit key, no diffuser (code 0x8002).
    AesCbc128,
    /// AES-CBC with a 256-bit key, no diffuser (code 0x8003).
    AesCbc256,
    /// XTS-AES with two 128-bit keys (code 0x8004; the Windows 10 default).
    XtsAes128,
    /// XTS-AES with two 256-bit keys (code 0x8005).
    XtsAes256,
}

impl EncryptionMethod {
    /// From the encryption method field of the metadata header; `None` for a
    /// code this engine cannot decrypt.
    pub fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            0x8000 => EncryptionMethod::AesCbc128Diffuser,
            0x8001 => EncryptionMethod::AesCbc256Diffuser,
            0x8002 => EncryptionMethod::AesCbc128,
            0x8003 => EncryptionMethod::AesCbc256,
            0x8004 => EncryptionMethod::XtsAes128,
            0x8005 => EncryptionMethod::XtsAes256,
            _ => return None,
        })
    }
    /// The code stored on disk (0x8000 to 0x8005).
    pub fn code(self) -> u16 {
        match self {
            EncryptionMethod::AesCbc128Diffuser => 0x8000,
            EncryptionMethod::AesCbc256Diffuser => 0x8001,
            EncryptionMethod::AesCbc128 => 0x8002,
            EncryptionMethod::AesCbc256 => 0x8003,
            EncryptionMethod::XtsAes128 => 0x8004,
            EncryptionMethod::XtsAes256 => 0x8005,
        }
    }
}

impl fmt::Display for EncryptionMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncryptionMethod::AesCbc128Diffuser => "AES-CBC 128-bit with Elephant diffuser",
            EncryptionMethod::AesCbc256Diffuser => "AES-CBC 256-bit with Elephant diffuser",
            EncryptionMethod::AesCbc128 => "AES-CBC 128-bit",
            EncryptionMethod::AesCbc256 => "AES-CBC 256-bit",
            EncryptionMethod::XtsAes128 => "XTS-AES 128-bit",
            EncryptionMethod::XtsAes256 => "XTS-AES 256-bit",
        })
    }
}

/// Conversion state of the volume (block header "current"/"next" state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConversionState {
    /// Not encrypted (state 1).
    Decrypted,
    /// Encryption or decryption in progress.
    Converting,
    /// Used-space-only encryption: sectors are encrypted as they are written (state 3).
    EncryptOnWriteActivated,
    /// Fully encrypted (state 4).
    Encrypted,
    /// Conversion paused.
    Paused,
    /// A state code this engine does not know, as stored.
    Unknown(u16),
}

impl ConversionState {
    /// From a state field of the FVE block header; unknown codes are kept.
    pub fn from_code(c: u16) -> Self {
        match c {
            1 => ConversionState::Decrypted,
            2 => ConversionState::Converting,
            3 => ConversionState::EncryptOnWriteActivated,
            4 => ConversionState::Encrypted,
            5 => ConversionState::Paused,
            c => ConversionState::Unknown(c),
        }
    }
}

impl fmt::Display for ConversionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConversionState::Decrypted => f.write_str("decrypted"),
            ConversionState::Converting => f.write_str("conversion in progress"),
            ConversionState::EncryptOnWriteActivated => f.write_str("encrypt-on-write activated"),
            ConversionState::Encrypted => f.write_str("fully encrypted"),
            ConversionState::Paused => f.write_str("conversion paused"),
            ConversionState::Unknown(c) => write!(f, "unknown state {c}"),
        }
    }
}

/// What was found at one metadata copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyStatus {
    /// Signature, version, sizes, CRC-32 and entries all check out.
    Valid,
    /// Unreadable (outside the device or an I/O error).
    Unreadable,
    /// No `-FVE-FS-` signature (or too short for the headers).
    BadSignature,
    /// Wrong version, inconsistent sizes or offsets, or malformed entries.
    BadStructure,
    /// The CRC-32 of the block does not match the validation structure.
    BadCrc,
}

/// The parsed FVE metadata of a volume.
#[derive(Clone, Debug)]
pub struct Metadata {
    /// Which copy (0, 1 or 2) was used.
    pub copy_used: usize,
    /// What each copy looked like.
    pub copies: [CopyStatus; 3],
    /// Metadata version (2 for Windows 7 and later).
    pub version: u16,
    /// Conversion state now (block header bytes 12–13).
    pub current_state: ConversionState,
    /// Conversion state being moved to (block header bytes 14–15).
    pub next_state: ConversionState,
    /// Bytes from the start of the volume that are encrypted.
    pub encrypted_size: u64,
    /// Byte offsets of the three metadata blocks (from the valid copy).
    pub offsets: [u64; 3],
    /// Where the original boot sectors were moved to, and how many bytes.
    pub volume_header_offset: u64,
    /// Length in bytes of the relocated boot sector area.
    pub volume_header_size: u64,
    /// The volume GUID (as cryptsetup and bdeinfo show it).
    pub volume_guid: Guid,
    /// Cipher of the volume's sectors (metadata header bytes 36–37).
    pub method: EncryptionMethod,
    /// Creation time (Windows FILETIME).
    pub created: u64,
    /// Description, typically "COMPUTER-NAME C: date".
    pub description: Option<String>,
    /// The key protectors (VMK entries), in metadata order (at most 64 are kept).
    pub protectors: Vec<Protector>,
    /// The FVEK, encrypted under the VMK.
    pub wrapped_fvek: WrappedKey,
    /// The authenticated hash of the metadata block, encrypted under the VMK.
    pub validation: Option<WrappedKey>,
    /// SHA-256 of the validated block (compared with the decrypted validation).
    pub block_sha256: [u8; 32],
}

/// Checks one copy: signature, version, sizes, CRC-32, then parses it.
fn parse_copy(block: &[u8], at: u64, index: usize) -> core::result::Result<Metadata, CopyStatus> {
    if block.len() < HEADERS_LEN || block.get(..8) != Some(b"-FVE-FS-") {
        return Err(CopyStatus::BadSignature);
    }
    let version = le16(block, 10).unwrap_or(0);
    if version != 2 {
        return Err(CopyStatus::BadStructure);
    }
    let block_len = le16(block, 8).unwrap_or(0) as usize * 16;
    if block_len < HEADERS_LEN || block_len + 8 > block.len() {
        return Err(CopyStatus::BadStructure);
    }
    let vsize = le16(block, block_len).unwrap_or(0) as usize;
    let vversion = le16(block, block_len + 2).unwrap_or(0);
    if vsize < 8 || vversion > 2 {
        return Err(CopyStatus::BadStructure);
    }
    let covered = block.get(..block_len).ok_or(CopyStatus::BadStructure)?;
    if crc32(covered) != le32(block, block_len + 4).unwrap_or(0) {
        return Err(CopyStatus::BadCrc);
    }
    parse_block(block, block_len, at, index).map_err(|_| CopyStatus::BadStructure)
}

fn parse_block(block: &[u8], block_len: usize, at: u64, index: usize) -> Result<Metadata> {
    let mut offsets = [0u64; 3];
    for (i, o) in offsets.iter_mut().enumerate() {
        *o = le64(block, 32 + 8 * i).unwrap_or(0);
    }
    if offsets.get(index) != Some(&at) {
        return corrupt("metadata block location", at + 32);
    }
    let meta_size = le32(block, 64).unwrap_or(0) as usize;
    if le32(block, 72).unwrap_or(0) != 48 || meta_size < 48 || 64 + meta_size > block_len {
        return corrupt("metadata header size", at + 64);
    }
    let code = le16(block, 64 + 36).unwrap_or(0);
    let method = EncryptionMethod::from_code(code).ok_or(BitLockerError::UnsupportedMethod { method: code })?;
    let volume_guid = Guid::at(block, 64 + 16).unwrap_or_default();
    let created = le64(block, 64 + 40).unwrap_or(0);
    let mut description = None;
    let mut protectors = Vec::new();
    let mut wrapped_fvek = None;
    let mut vh = None;
    let entries = block.get(HEADERS_LEN..64 + meta_size).unwrap_or_default();
    for d in Datums::new(entries, at + HEADERS_LEN as u64) {
        let d = d?;
        match (d.entry_type, d.value_type) {
            (entry::VMK, value::VMK) if protectors.len() < 64 => protectors.push(Protector::parse(&d)?),
            (entry::FVEK, value::AES_CCM) if wrapped_fvek.is_none() => {
                wrapped_fvek = Some(WrappedKey::from_blob(&d.ccm()?));
            }
            (entry::DESCRIPTION, value::UNICODE) if description.is_none() => description = Some(d.unicode()),
            (entry::VOLUME_HEADER, value::OFFSET_SIZE) => vh = Some(d.offset_size()?),
            _ => {}
        }
    }
    let wrapped_fvek = match wrapped_fvek {
        Some(w) => w,
        None => return corrupt("metadata (no FVEK entry)", at + HEADERS_LEN as u64),
    };
    let (volume_header_offset, volume_header_size) = match vh {
        Some(v) => v,
        // Older metadata has no entry: the block header says it.
        None => (le64(block, 56).unwrap_or(0), le32(block, 28).unwrap_or(0) as u64 * 512),
    };
    // The validation structure: size, version, CRC-32, then an AES-CCM datum.
    let after = block.get(block_len + 8..).unwrap_or_default();
    let validation = Datums::new(after.get(..120).unwrap_or(after), at + block_len as u64 + 8)
        .next()
        .and_then(|d| d.ok())
        .filter(|d| d.value_type == value::AES_CCM)
        .and_then(|d| d.ccm().ok())
        .map(|b| WrappedKey::from_blob(&b));
    let block_sha256 = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(block.get(..block_len).unwrap_or_default());
        h.finalize().into()
    };
    Ok(Metadata {
        copy_used: index,
        copies: [CopyStatus::Unreadable; 3],
        version: 2,
        current_state: ConversionState::from_code(le16(block, 12).unwrap_or(0)),
        next_state: ConversionState::from_code(le16(block, 14).unwrap_or(0)),
        encrypted_size: le64(block, 16).unwrap_or(0),
        offsets,
        volume_header_offset,
        volume_header_size,
        volume_guid,
        method,
        created,
        description,
        protectors,
        wrapped_fvek,
        validation,
        block_sha256,
    })
}

impl Metadata {
    /// Reads the three copies named by the boot sector and returns the first
    /// valid one (signature, version 2, sizes, CRC-32, entry structure,
    /// location). Reads at most 3 × 64 KiB.
    pub fn read<D: BlockDevice>(dev: &mut D, header: &VolumeHeader) -> Result<Metadata> {
        let size = dev.size();
        let mut copies = [CopyStatus::Unreadable; 3];
        let mut found: Option<Metadata> = None;
        let mut buf = vec![0u8; AREA_SIZE as usize];
        for (i, &at) in header.metadata_offsets.iter().enumerate() {
            if at == 0 || at >= size || at % 512 != 0 {
                continue;
            }
            let len = (size - at).min(AREA_SIZE) as usize;
            let (area, rest) = buf.split_at_mut(len);
            rest.fill(0);
            if dev.read_at(at, area).is_err() {
                continue;
            }
            if len >= 12 && area.get(..8) == Some(b"-FVE-FS-") && le16(area, 10).unwrap_or(0) == 1 {
                return Err(BitLockerError::VistaUnsupported);
            }
            let status = match parse_copy(area, at, i) {
                Ok(m) => {
                    found.get_or_insert(m);
                    CopyStatus::Valid
                }
                Err(s) => s,
            };
            if let Some(c) = copies.get_mut(i) {
                *c = status;
            }
        }
        match found {
            Some(mut m) => {
                m.copies = copies;
                if m.volume_header_size > size || m.volume_header_offset > size - m.volume_header_size {
                    return corrupt(
                        "relocated boot sector range",
                        m.offsets.get(m.copy_used).copied().unwrap_or(0) + 56,
                    );
                }
                Ok(m)
            }
            None => Err(BitLockerError::NoValidMetadata { offsets: header.metadata_offsets }),
        }
    }
}
