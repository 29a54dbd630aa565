//! The ISO image: ISO 9660 with an El Torito boot entry for UEFI (platform
//! 0xEF, no emulation) pointing at a FAT image of the stick's files. It is
//! also a hybrid: a protective MBR and a GPT in the ISO's system area list
//! that same FAT image as an EFI System Partition, so the file boots when
//! burnt to a CD and when written to a USB stick.

use super::fat;
use super::pieces::Pieces;
use super::stick::StickFiles;
use anyhow::{bail, Result};
use rescue_engine::formats::partition::{Gpt, GptEntry};
use rescue_engine::util::guid::Guid;
use rescue_engine::util::time::Civil;

/// ISO 9660 logical block size.
pub const BLOCK: u64 = 2048;
/// Largest El Torito boot image: the catalog counts 512-byte sectors in 16 bits.
pub const MAX_BOOT_IMAGE: u64 = 0xFFFF * 512 / BLOCK * BLOCK;

const PVD_LBA: u32 = 16;
const BOOT_RECORD_LBA: u32 = 17;
const TERMINATOR_LBA: u32 = 18;
const CATALOG_LBA: u32 = 19;
const L_PATH_LBA: u32 = 20;
const M_PATH_LBA: u32 = 21;
const ROOT_LBA: u32 = 22;
const IMAGE_LBA: u32 = 23;
/// Room left after the ISO for the backup GPT (33 sectors of 512 bytes, rounded up).
const GPT_TAIL: u64 = 32 * 1024;
/// Name of the boot image in the ISO's root folder.
pub const BOOT_IMAGE_NAME: &str = "EFIBOOT.IMG;1";

/// A directory record's 7-byte date.
fn record_date(c: &Civil) -> [u8; 7] {
    [(c.year - 1900).clamp(0, 255) as u8, c.month, c.day, c.hour, c.minute, c.second, 0]
}

/// A volume descriptor's 17-byte date ("YYYYMMDDHHMMSScc" and a zone offset of 0).
fn volume_date(c: &Civil) -> [u8; 17] {
    let s = format!("{:04}{:02}{:02}{:02}{:02}{:02}00", c.year, c.month, c.day, c.hour, c.minute, c.second);
    let mut out = [0u8; 17];
    out[..16].copy_from_slice(s.as_bytes());
    out
}

fn both16(v: u16) -> [u8; 4] {
    let (l, b) = (v.to_le_bytes(), v.to_be_bytes());
    [l[0], l[1], b[0], b[1]]
}

fn both32(v: u32) -> [u8; 8] {
    let (l, b) = (v.to_le_bytes(), v.to_be_bytes());
    [l[0], l[1], l[2], l[3], b[0], b[1], b[2], b[3]]
}

/// A directory record for `name` (`\0` is ".", `\1` is "..").
fn dir_record(name: &[u8], lba: u32, len: u32, is_dir: bool, stamp: &Civil) -> Vec<u8> {
    let mut r = vec![0u8; 33 + name.len() + (name.len() + 1) % 2];
    r[0] = r.len() as u8;
    r[2..10].copy_from_slice(&both32(lba));
    r[10..18].copy_from_slice(&both32(len));
    r[18..25].copy_from_slice(&record_date(stamp));
    r[25] = if is_dir { 0x02 } else { 0 };
    r[28..32].copy_from_slice(&both16(1));
    r[32] = name.len() as u8;
    r[33..33 + name.len()].copy_from_slice(name);
    r
}

fn padded<const N: usize>(s: &str, pad: u8) -> [u8; N] {
    let mut out = [pad; N];
    for (o, b) in out.iter_mut().zip(s.bytes()) {
        *o = b;
    }
    out
}

/// The bytes of a hybrid ISO whose boot image is a FAT volume of `fat_size`
/// bytes holding `files`, as `(offset, bytes)` writes over an all-zero file of
/// [`total_len`] bytes.
pub fn build(files: &StickFiles, fat_size: u64, seed: [u8; 32], stamp: Civil) -> Result<(u64, Pieces)> {
    if !fat_size.is_multiple_of(BLOCK) || !((1 << 20)..=MAX_BOOT_IMAGE).contains(&fat_size) {
        bail!("the ISO's boot image must be 1-32 MiB (El Torito counts it in 16 bits)");
    }
    let volume_id = u32::from_le_bytes(seed[..4].try_into()?);
    let image = fat::build(files, fat_size, fat::Variant::Auto, volume_id, &stamp)?;
    let image_blocks = (fat_size / BLOCK) as u32;
    let iso_blocks = IMAGE_LBA + image_blocks;
    let iso_len = iso_blocks as u64 * BLOCK;
    let total_len = iso_len + GPT_TAIL;

    let block = |lba: u32| lba as u64 * BLOCK;
    let mut writes: Pieces = Vec::new();

    // Primary volume descriptor.
    let root = dir_record(&[0], ROOT_LBA, BLOCK as u32, true, &stamp);
    let mut pvd = vec![0u8; BLOCK as usize];
    pvd[0] = 1;
    pvd[1..6].copy_from_slice(b"CD001");
    pvd[6] = 1;
    pvd[8..40].copy_from_slice(&padded::<32>("UEFI", b' '));
    pvd[40..72].copy_from_slice(&padded::<32>("RESCUE", b' '));
    pvd[80..88].copy_from_slice(&both32(iso_blocks));
    pvd[120..124].copy_from_slice(&both16(1));
    pvd[124..128].copy_from_slice(&both16(1));
    pvd[128..132].copy_from_slice(&both16(BLOCK as u16));
    pvd[132..140].copy_from_slice(&both32(10));
    pvd[140..144].copy_from_slice(&L_PATH_LBA.to_le_bytes());
    pvd[148..152].copy_from_slice(&M_PATH_LBA.to_be_bytes());
    pvd[156..190].copy_from_slice(&root);
    pvd[190..318].copy_from_slice(&padded::<128>("", b' '));
    pvd[318..446].copy_from_slice(&padded::<128>("", b' '));
    pvd[446..574].copy_from_slice(&padded::<128>("", b' '));
    pvd[574..702].copy_from_slice(&padded::<128>("RESCUE IMAGE BUILDER", b' '));
    pvd[702..813].fill(b' ');
    pvd[813..830].copy_from_slice(&volume_date(&stamp));
    pvd[830..847].copy_from_slice(&volume_date(&stamp));
    pvd[847..863].fill(b'0');
    pvd[864..880].fill(b'0');
    pvd[881] = 1;
    writes.push((block(PVD_LBA), pvd));

    // El Torito boot record.
    let mut br = vec![0u8; BLOCK as usize];
    br[1..6].copy_from_slice(b"CD001");
    br[6] = 1;
    br[7..39].copy_from_slice(&padded::<32>("EL TORITO SPECIFICATION", 0));
    br[71..75].copy_from_slice(&CATALOG_LBA.to_le_bytes());
    writes.push((block(BOOT_RECORD_LBA), br));

    let mut term = vec![0u8; BLOCK as usize];
    term[0] = 255;
    term[1..6].copy_from_slice(b"CD001");
    term[6] = 1;
    writes.push((block(TERMINATOR_LBA), term));

    // Boot catalog: validation entry for platform 0xEF (UEFI), then the default entry.
    let mut cat = vec![0u8; BLOCK as usize];
    cat[0] = 1;
    cat[1] = 0xEF;
    cat[30] = 0x55;
    cat[31] = 0xAA;
    let sum = cat[..32].chunks_exact(2).fold(0u16, |s, w| s.wrapping_add(u16::from_le_bytes([w[0], w[1]])));
    cat[28..30].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
    cat[32] = 0x88; // bootable
    cat[33] = 0; // no emulation
    cat[38..40].copy_from_slice(&((fat_size / 512) as u16).to_le_bytes());
    cat[40..44].copy_from_slice(&IMAGE_LBA.to_le_bytes());
    writes.push((block(CATALOG_LBA), cat));

    // Path tables: the root folder only.
    let path_entry = |lba: [u8; 4], parent: [u8; 2]| {
        let mut p = vec![0u8; BLOCK as usize];
        p[0] = 1;
        p[2..6].copy_from_slice(&lba);
        p[6..8].copy_from_slice(&parent);
        p
    };
    writes.push((block(L_PATH_LBA), path_entry(ROOT_LBA.to_le_bytes(), 1u16.to_le_bytes())));
    writes.push((block(M_PATH_LBA), path_entry(ROOT_LBA.to_be_bytes(), 1u16.to_be_bytes())));

    // Root folder: ".", "..", and the boot image as a visible file.
    let mut dir = Vec::new();
    dir.extend(dir_record(&[0], ROOT_LBA, BLOCK as u32, true, &stamp));
    dir.extend(dir_record(&[1], ROOT_LBA, BLOCK as u32, true, &stamp));
    dir.extend(dir_record(BOOT_IMAGE_NAME.as_bytes(), IMAGE_LBA, fat_size as u32, false, &stamp));
    dir.resize(BLOCK as usize, 0);
    writes.push((block(ROOT_LBA), dir));

    // Hybrid: a GPT (512-byte sectors) whose ESP is the boot image.
    let mut gpt = Gpt {
        sector_size: 512,
        disk_guid: Guid::from_random(seed[..16].try_into()?),
        disk_sectors: total_len / 512,
        entries: vec![],
    };
    let first_lba = block(IMAGE_LBA) / 512;
    gpt.entries.push(GptEntry {
        type_guid: Guid::ESP,
        guid: Guid::from_random(seed[16..].try_into()?),
        first_lba,
        last_lba: first_lba + fat_size / 512 - 1,
        attributes: 0,
        name: "RESCUE".into(),
    });
    writes.extend(gpt.to_writes());
    writes.push((block(IMAGE_LBA), image));
    Ok((total_len, writes))
}

/// What an ISO's volume descriptors and boot catalog say.
#[derive(Debug)]
pub struct IsoInfo {
    pub volume_id: String,
    pub blocks: u32,
    /// (platform id, boot image LBA, sector count) of each bootable catalog entry.
    pub boot_entries: Vec<(u8, u32, u16)>,
}

/// Reads the primary volume descriptor and El Torito catalog of an ISO, if `read` finds one.
pub fn read_info(read: &mut dyn FnMut(u64, &mut [u8]) -> std::io::Result<()>) -> Option<IsoInfo> {
    let mut b = vec![0u8; BLOCK as usize];
    let mut info: Option<IsoInfo> = None;
    let mut catalog = None;
    for lba in 16..64u64 {
        read(lba * BLOCK, &mut b).ok()?;
        if &b[1..6] != b"CD001" {
            return None;
        }
        match b[0] {
            1 => {
                info = Some(IsoInfo {
                    volume_id: String::from_utf8_lossy(&b[40..72]).trim_end().to_string(),
                    blocks: u32::from_le_bytes(b[80..84].try_into().ok()?),
                    boot_entries: vec![],
                })
            }
            0 if &b[7..30] == b"EL TORITO SPECIFICATION" => {
                catalog = Some(u32::from_le_bytes(b[71..75].try_into().ok()?))
            }
            255 => break,
            _ => {}
        }
    }
    let mut info = info?;
    if let Some(lba) = catalog {
        read(lba as u64 * BLOCK, &mut b).ok()?;
        if b[0] == 1 && b[30..32] == [0x55, 0xAA] {
            let mut platform = b[1];
            for e in b.chunks_exact(32).skip(1) {
                match e[0] {
                    0x88 => info.boot_entries.push((
                        platform,
                        u32::from_le_bytes(e[8..12].try_into().ok()?),
                        u16::from_le_bytes([e[6], e[7]]),
                    )),
                    0x90 | 0x91 => platform = e[1],
                    0x00 => {}
                    _ => {}
                }
            }
        }
    }
    Some(info)
}
