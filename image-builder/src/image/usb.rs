//! The USB stick image: protective MBR, GPT, one FAT32 EFI System Partition.

use super::fat;
use super::pieces::Pieces;
use super::stick::StickFiles;
use anyhow::Result;
use rescue_engine::formats::partition::{Gpt, GptEntry};
use rescue_engine::util::guid::Guid;
use rescue_engine::util::time::Civil;

/// Where the ESP starts: 1 MiB, aligned for every flash medium.
pub const ESP_START: u64 = 1 << 20;
const SECTOR: u64 = 512;

/// The bytes of a USB image of `size` bytes (files dated `stamp`), as `(offset, bytes)` writes
/// over an all-zero file (so the image stays sparse on disk).
pub fn build(files: &StickFiles, size: u64, seed: [u8; 32], stamp: &Civil) -> Result<Pieces> {
    let disk_sectors = size / SECTOR;
    let mut gpt = Gpt {
        sector_size: SECTOR as u32,
        disk_guid: Guid::from_random(seed[..16].try_into()?),
        disk_sectors,
        entries: vec![],
    };
    let first = ESP_START / SECTOR;
    // End the ESP on a 1 MiB boundary before the backup GPT.
    let last = (gpt.last_usable() + 1) / 2048 * 2048 - 1;
    gpt.entries.push(GptEntry {
        type_guid: Guid::ESP,
        guid: Guid::from_random(seed[16..].try_into()?),
        first_lba: first,
        last_lba: last,
        attributes: 0,
        name: "RESCUE".into(),
    });
    let esp_size = (last - first + 1) * SECTOR;
    let volume_id = u32::from_le_bytes(seed[..4].try_into()?);
    let esp = fat::build(files, esp_size, fat::Variant::Fat32, volume_id, stamp)?;
    let mut writes = gpt.to_writes();
    writes.push((ESP_START, esp));
    Ok(writes)
}
