//! The BitLocker volume boot sector: what replaces the NTFS/FAT boot sector
//! of an encrypted volume. It tells the sector size and where the three FVE
//! metadata copies are.

#![deny(clippy::indexing_slicing)]

use super::error::{corrupt, BitLockerError, Result};
use crate::util::guid::Guid;
use crate::util::le::{le16, le64};

/// Volume identifier of a BitLocker volume (Windows 7 and later).
pub const GUID_NORMAL: Guid =
    Guid::from_fields(0x4967d63b, 0x2e29, 0x4ad8, [0x83, 0x99, 0xf6, 0xa3, 0x39, 0xe3, 0xd0, 0x01]);
/// Volume identifier of a volume encrypted "used space only" (encrypt-on-write).
pub const GUID_EOW: Guid =
    Guid::from_fields(0x92a84d3b, 0xdd80, 0x4d0e, [0x9e, 0x4e, 0xb1, 0xe3, 0x28, 0x4e, 0xae, 0xd8]);

/// Where the BitLocker fields sit in the boot sector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// A fixed or operating-system volume (`-FVE-FS-`).
    Fixed,
    /// BitLocker To Go: a FAT boot sector (`MSWIN4.1`) with the fields further on.
    ToGo,
}

/// The parsed BitLocker boot sector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeHeader {
    /// Which boot-sector layout the volume uses (fixed volume or To Go).
    pub flavour: Flavour,
    /// Bytes per sector from the boot sector (512 or 4096).
    pub sector_size: u32,
    /// The volume identifier GUID ([`GUID_NORMAL`] or [`GUID_EOW`]).
    pub identifier: Guid,
    /// Byte offsets of the three FVE metadata blocks.
    pub metadata_offsets: [u64; 3],
}

impl VolumeHeader {
    /// True when the volume was encrypted "used space only" (encrypt-on-write).
    pub fn encrypt_on_write(&self) -> bool {
        self.identifier == GUID_EOW
    }
}

/// Quick test: does this first sector look like a BitLocker volume (any version)?
pub fn is_bitlocker(sector: &[u8]) -> bool {
    let signature = sector.get(3..11);
    sector.len() >= 512
        && (signature == Some(b"-FVE-FS-")
            || (signature == Some(b"MSWIN4.1")
                && Guid::at(sector, 424).is_some_and(|g| g == GUID_NORMAL || g == GUID_EOW)))
}

/// Parses the first sector of a volume. Vista volumes give
/// [`BitLockerError::VistaUnsupported`]; anything else that is not
/// BitLocker gives [`BitLockerError::NotBitLocker`].
pub fn parse(sector: &[u8]) -> Result<VolumeHeader> {
    if !is_bitlocker(sector) {
        return Err(BitLockerError::NotBitLocker);
    }
    let fixed = sector.get(3..11) == Some(b"-FVE-FS-");
    let (flavour, at) = if fixed { (Flavour::Fixed, 160) } else { (Flavour::ToGo, 424) };
    if flavour == Flavour::Fixed && sector.get(0..3) == Some(&[0xEB, 0x52, 0x90]) {
        // Vista keeps NTFS-like fields and points at its metadata by cluster number.
        return Err(BitLockerError::VistaUnsupported);
    }
    let identifier = Guid::at(sector, at).unwrap_or_default();
    if identifier != GUID_NORMAL && identifier != GUID_EOW {
        if flavour == Flavour::Fixed && sector.first() == Some(&0xEB) {
            return Err(BitLockerError::VistaUnsupported);
        }
        return corrupt("volume identifier in the boot sector", at as u64);
    }
    let sector_size = match le16(sector, 11).unwrap_or(0) {
        0 => 512,
        s @ (512 | 1024 | 2048 | 4096) => s as u32,
        _ => return corrupt("bytes per sector in the boot sector", 11),
    };
    let mut metadata_offsets = [0u64; 3];
    for (i, o) in metadata_offsets.iter_mut().enumerate() {
        *o = le64(sector, at + 16 + 8 * i).unwrap_or(0);
    }
    Ok(VolumeHeader { flavour, sector_size, identifier, metadata_offsets })
}
