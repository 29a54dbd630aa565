//! The NTFS boot sector (`$Boot`, sector 0 of the volume): geometry checks.

#![deny(clippy::indexing_slicing)]

use super::{byte, corrupt, le16, le64, NtfsError, Result};
use crate::block::BlockDevice;

/// Validated geometry of a volume, from its boot sector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootSector {
    /// Bytes per sector: a power of two in 512..=4096.
    pub sector_size: u32,
    /// Bytes per cluster: a power of two, at least one sector, at most 2 MiB.
    pub cluster_size: u32,
    /// Bytes per MFT record: 1024 or 4096.
    pub record_size: u32,
    /// Bytes per index block as the boot sector states it (directories state their own).
    pub index_block_size: u32,
    /// Sectors in the volume (excluding the backup boot sector).
    pub total_sectors: u64,
    /// Clusters in the volume.
    pub total_clusters: u64,
    /// First cluster of `$MFT` and of `$MFTMirr`.
    pub mft_lcn: u64,
    /// First cluster of `$MFTMirr` (the copy of the first MFT records).
    pub mftmirr_lcn: u64,
    /// Volume serial number.
    pub serial: u64,
}

/// Largest cluster size we accept (Windows formats up to 2 MiB).
pub const MAX_CLUSTER: u32 = 2 * 1024 * 1024;

fn size_from_clusters(v: u8, cluster: u32, what: &'static str) -> Result<u32> {
    let v = v as i8;
    if v > 0 {
        (v as u32).checked_mul(cluster).ok_or(corrupt("boot sector", 0, what))
    } else if (-31..=-1).contains(&v) {
        Ok(1u32 << (-(v as i32)))
    } else {
        Err(corrupt("boot sector", 0, what))
    }
}

impl BootSector {
    /// Parses and checks a boot sector. `device_size` bounds the volume:
    /// a volume larger than its device (a truncated image) is an error.
    pub fn parse(b: &[u8], device_size: u64) -> Result<BootSector> {
        if b.len() < 512 || b.get(3..11) != Some(b"NTFS    ") {
            return Err(NtfsError::NotNtfs { offset: 0 });
        }
        if b.get(510..512) != Some(&[0x55, 0xAA]) {
            return Err(corrupt("boot sector", 510, "missing 55 AA signature"));
        }
        let bad = |d| corrupt("boot sector", 0, d);
        let sector_size = le16(b, 0x0B).ok_or(bad("short"))? as u32;
        if !(512..=4096).contains(&sector_size) || !sector_size.is_power_of_two() {
            return Err(corrupt("boot sector", 0x0B, "bytes per sector not a power of two in 512..=4096"));
        }
        let spc_raw = byte(b, 0x0D).ok_or(bad("short"))?;
        let spc: u32 = if spc_raw <= 0x80 {
            spc_raw as u32
        } else {
            let shift = 256 - spc_raw as u32;
            if shift > 20 {
                return Err(corrupt("boot sector", 0x0D, "sectors per cluster out of range"));
            }
            1 << shift
        };
        if spc == 0 || !spc.is_power_of_two() {
            return Err(corrupt("boot sector", 0x0D, "sectors per cluster not a power of two"));
        }
        let cluster_size = sector_size.checked_mul(spc).ok_or(bad("cluster size overflow"))?;
        if cluster_size > MAX_CLUSTER {
            return Err(NtfsError::Unsupported {
                structure: "boot sector",
                offset: 0x0D,
                detail: "cluster size above 2 MiB",
            });
        }
        let total_sectors = le64(b, 0x28).ok_or(bad("short"))?;
        let vol_bytes = total_sectors.checked_mul(sector_size as u64).ok_or(corrupt(
            "boot sector",
            0x28,
            "total sectors overflow",
        ))?;
        if vol_bytes > device_size {
            return Err(corrupt("boot sector", 0x28, "volume is larger than its device (truncated image?)"));
        }
        let total_clusters = total_sectors / spc as u64;
        let mft_lcn = le64(b, 0x30).ok_or(bad("short"))?;
        let mftmirr_lcn = le64(b, 0x38).ok_or(bad("short"))?;
        if mft_lcn >= total_clusters || mftmirr_lcn >= total_clusters || mft_lcn == 0 {
            return Err(corrupt("boot sector", 0x30, "$MFT or $MFTMirr cluster outside the volume"));
        }
        let record_size =
            size_from_clusters(byte(b, 0x40).ok_or(bad("short"))?, cluster_size, "bad clusters per MFT record")?;
        if record_size != 1024 && record_size != 4096 {
            return Err(NtfsError::Unsupported {
                structure: "boot sector",
                offset: 0x40,
                detail: "MFT record size is not 1 KiB or 4 KiB",
            });
        }
        if record_size < sector_size {
            return Err(NtfsError::Unsupported {
                structure: "boot sector",
                offset: 0x40,
                detail: "MFT record smaller than a sector",
            });
        }
        let index_block_size =
            size_from_clusters(byte(b, 0x44).ok_or(bad("short"))?, cluster_size, "bad clusters per index block")?;
        if !index_block_size.is_power_of_two() || !(512..=65536).contains(&index_block_size) {
            return Err(corrupt("boot sector", 0x44, "index block size out of range"));
        }
        let serial = le64(b, 0x48).ok_or(bad("short"))?;
        Ok(BootSector {
            sector_size,
            cluster_size,
            record_size,
            index_block_size,
            total_sectors,
            total_clusters,
            mft_lcn,
            mftmirr_lcn,
            serial,
        })
    }

    /// Reads sector 0 of `dev` and parses it.
    pub fn read(dev: &mut impl BlockDevice) -> Result<BootSector> {
        let mut b = [0u8; 512];
        dev.read_at(0, &mut b)?;
        BootSector::parse(&b, dev.size())
    }

    /// Size of the volume in bytes.
    pub fn volume_bytes(&self) -> u64 {
        self.total_sectors * self.sector_size as u64
    }
}
