//! Test support: turning a plain NTFS volume into a BitLocker volume, so
//! tests can make volumes of every shape and check them with independent
//! tools (dislocker, bdeinfo, cryptsetup). Not used by the agent.
//!
//! Layout: three 64 KiB metadata areas and the relocated boot sectors. When
//! the filesystem fills its volume (as Windows leaves it), they go where
//! Windows puts them: in free clusters of the NTFS, spread over the volume,
//! marked in use in `$Bitmap` (owned by no file) and zeroed first. When the
//! filesystem leaves room after its last sector (the NTFS backup boot
//! sector), they go there; that tail must be zero. Everything else is
//! encrypted in place, so the unlocked volume (which reads those areas as
//! zeros) equals the input byte for byte.

use super::cipher::SectorCipher;
use super::datum::{build, entry, value};
use super::error::{BitLockerError, Result};
use super::header::GUID_NORMAL;
use super::keys;
use super::metadata::{EncryptionMethod, AREA_SIZE};
use crate::block::BlockDevice;
use crate::formats::ntfs::file::Stream;
use crate::formats::ntfs::fs::BITMAP;
use crate::formats::ntfs::runs;
use crate::formats::ntfs::Ntfs;
use crate::util::crc32::crc32;
use crate::util::guid::Guid;
use crate::util::le::{le16, le64};
use alloc::vec;
use alloc::vec::Vec;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// What to make.
pub struct CreateOptions<'a> {
    /// The cipher the volume is encrypted with.
    pub method: EncryptionMethod,
    /// A recovery password (48 digits) for the recovery-password protector.
    pub recovery_password: &'a str,
    /// Optional password protector.
    pub password: Option<&'a str>,
    /// Description stored in the metadata.
    pub description: &'a str,
    /// Creation time (Windows FILETIME).
    pub filetime: u64,
    /// Stop encrypting at this byte offset, as a conversion in progress
    /// does (state "encryption in progress"); `None` encrypts everything.
    pub encrypted_size: Option<u64>,
}

/// What was made (no secrets).
#[derive(Debug, Clone)]
pub struct Created {
    /// The new volume's GUID.
    pub volume_guid: Guid,
    /// Key ID of the recovery-password protector (what Windows' recovery screen shows).
    pub recovery_key_id: Guid,
    /// Key ID of the password protector, when one was asked for.
    pub password_key_id: Option<Guid>,
    /// Byte offsets of the three FVE metadata copies in the volume.
    pub metadata_offsets: [u64; 3],
    /// Where the original boot sectors were relocated to (byte offset).
    pub volume_header_offset: u64,
}

fn fvek_len(m: EncryptionMethod) -> usize {
    match m {
        EncryptionMethod::AesCbc128 => 16,
        EncryptionMethod::AesCbc256 | EncryptionMethod::XtsAes128 => 32,
        _ => 64,
    }
}

struct Nonces {
    time: u64,
    counter: u32,
}
impl Nonces {
    fn next(&mut self) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&self.time.to_le_bytes());
        n[8..].copy_from_slice(&self.counter.to_le_bytes());
        self.counter += 1;
        n
    }
}

fn key_datum(method: u16, key: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(Vec::with_capacity(4 + key.len()));
    v.extend_from_slice(&(method as u32).to_le_bytes());
    v.extend_from_slice(key);
    Zeroizing::new(build(entry::PROPERTY, value::KEY, 1, &v))
}

fn ccm_datum(entry_type: u16, w: &super::protector::WrappedKey) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&w.nonce);
    v.extend_from_slice(&w.tag);
    v.extend_from_slice(&w.ciphertext);
    build(entry_type, value::AES_CCM, 1, &v)
}

#[allow(clippy::too_many_arguments)]
fn vmk_datum(
    guid: Guid,
    filetime: u64,
    kind: u16,
    salt: &[u8; 16],
    stretch_method: u32,
    stretched: &[u8; 32],
    vmk: &[u8; 32],
    n: &mut Nonces,
) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&guid.0);
    v.extend_from_slice(&filetime.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(&kind.to_le_bytes());
    let mut s = Vec::new();
    s.extend_from_slice(&stretch_method.to_le_bytes());
    s.extend_from_slice(salt);
    v.extend_from_slice(&build(entry::PROPERTY, value::STRETCH_KEY, 1, &s));
    let w = keys::wrap(stretched, n.next(), &key_datum(0x2000, vmk), 0);
    v.extend_from_slice(&ccm_datum(entry::PROPERTY, &w));
    build(entry::VMK, value::VMK, 1, &v)
}

/// Encrypts the plain NTFS volume on `dev` in place. `random` fills buffers
/// with random bytes (keys, salts, GUIDs). `progress` is told bytes done.
///
/// Test support only (never in the agent or `rescue`), kept as one
/// function that follows Windows' conversion step by step: layout, keys,
/// metadata, then the data, so the tests' oracles can be compared to it.
pub fn encrypt_in_place<D: BlockDevice>(
    dev: &mut D,
    opts: &CreateOptions<'_>,
    random: &mut dyn FnMut(&mut [u8]),
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Created> {
    let size = dev.size();
    let mut boot = [0u8; 512];
    if size < 1024 * 1024 {
        return Err(BitLockerError::BadSize { what: "volume too small to encrypt", size });
    }
    dev.read_at(0, &mut boot)?;
    if &boot[3..11] != b"NTFS    " {
        return Err(BitLockerError::Unsupported { what: "only NTFS volumes can be encrypted by the test tool" });
    }
    let ss = le16(&boot, 11).unwrap_or(0) as u64;
    if !matches!(ss, 512 | 4096) {
        return Err(BitLockerError::BadSize { what: "unsupported sector size", size: ss });
    }
    let fs_end = le64(&boot, 0x28).unwrap_or(0).saturating_add(1).saturating_mul(ss);
    let vh_size = 8192u64.max(ss);
    if !size.is_multiple_of(ss) {
        return Err(BitLockerError::BadSize { what: "volume size is not a multiple of its sector size", size });
    }
    let t = fs_end.div_ceil(AREA_SIZE) * AREA_SIZE;
    let (offsets, vh_off) = if t + 3 * AREA_SIZE + vh_size <= size {
        (([t, t + AREA_SIZE, t + 2 * AREA_SIZE]), t + 3 * AREA_SIZE)
    } else {
        let o = reserve_inside(dev, &[AREA_SIZE, AREA_SIZE, AREA_SIZE, vh_size])?;
        ([o[0], o[1], o[2]], o[3])
    };
    let reserved: Vec<(u64, u64)> =
        offsets.iter().map(|&o| (o, o + AREA_SIZE)).chain(core::iter::once((vh_off, vh_off + vh_size))).collect();
    let boundary = opts.encrypted_size.map(|b| b.min(size) / ss * ss).unwrap_or(size);
    // The reserved areas must be zero so that the unlocked view equals the input.
    let mut buf = vec![0u8; 1 << 20];
    for &(a, b) in &reserved {
        let mut p = a;
        while p < b {
            let n = ((b - p) as usize).min(buf.len());
            dev.read_at(p, &mut buf[..n])?;
            if buf[..n].iter().any(|&b| b != 0) {
                return Err(BitLockerError::Unsupported { what: "bytes after the filesystem are not zero" });
            }
            p += n as u64;
        }
    }

    let mut rnd = |n: usize| {
        let mut v = Zeroizing::new(vec![0u8; n]);
        random(&mut v);
        v
    };
    let fvek = rnd(fvek_len(opts.method));
    let mut vmk = Zeroizing::new([0u8; 32]);
    vmk.copy_from_slice(&rnd(32));
    let g = |b: &[u8]| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[..16]);
        Guid::from_random(a)
    };
    let volume_guid = g(&rnd(16));
    let rp_guid = g(&rnd(16));
    let pw_guid = opts.password.map(|_| g(&rnd(16)));
    let mut nonces = Nonces { time: opts.filetime, counter: 1 };

    // Protectors.
    let mut entries = Vec::new();
    let mut desc: Vec<u8> = Vec::new();
    for u in opts.description.encode_utf16().chain(core::iter::once(0)) {
        desc.extend_from_slice(&u.to_le_bytes());
    }
    entries.extend_from_slice(&build(entry::DESCRIPTION, value::UNICODE, 1, &desc));
    if let (Some(pw), Some(guid)) = (opts.password, pw_guid) {
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&rnd(16));
        let k = keys::stretch(&keys::password_initial(pw), &salt);
        entries.extend_from_slice(&vmk_datum(guid, opts.filetime, 0x2000, &salt, 0x1001, &k, &vmk, &mut nonces));
    }
    {
        let rk = keys::parse_recovery_password(opts.recovery_password)?;
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&rnd(16));
        let k = keys::stretch(&keys::recovery_initial(&rk), &salt);
        entries.extend_from_slice(&vmk_datum(rp_guid, opts.filetime, 0x0800, &salt, 0x1000, &k, &vmk, &mut nonces));
    }
    let w = keys::wrap(&vmk, nonces.next(), &key_datum(opts.method.code(), &fvek), 0);
    entries.extend_from_slice(&ccm_datum(entry::FVEK, &w));
    let mut vh = Vec::new();
    vh.extend_from_slice(&vh_off.to_le_bytes());
    vh.extend_from_slice(&vh_size.to_le_bytes());
    entries.extend_from_slice(&build(entry::VOLUME_HEADER, value::OFFSET_SIZE, 1, &vh));

    // Block header + metadata header + entries.
    let meta_size = 48 + entries.len();
    let block_len = (64 + meta_size).div_ceil(16) * 16;
    if block_len + 8 + 80 > AREA_SIZE as usize {
        return Err(BitLockerError::BadSize { what: "metadata too large", size: block_len as u64 });
    }
    let mut block = vec![0u8; block_len];
    block[..8].copy_from_slice(b"-FVE-FS-");
    block[8..10].copy_from_slice(&((block_len / 16) as u16).to_le_bytes());
    block[10..12].copy_from_slice(&2u16.to_le_bytes());
    let state: u16 = if boundary < size { 2 } else { 4 };
    block[12..14].copy_from_slice(&state.to_le_bytes());
    block[14..16].copy_from_slice(&4u16.to_le_bytes());
    block[16..24].copy_from_slice(&boundary.to_le_bytes());
    block[28..32].copy_from_slice(&((vh_size / ss) as u32).to_le_bytes());
    for (i, o) in offsets.iter().enumerate() {
        block[32 + 8 * i..40 + 8 * i].copy_from_slice(&o.to_le_bytes());
    }
    block[56..64].copy_from_slice(&vh_off.to_le_bytes());
    block[64..68].copy_from_slice(&(meta_size as u32).to_le_bytes());
    block[68..72].copy_from_slice(&1u32.to_le_bytes());
    block[72..76].copy_from_slice(&48u32.to_le_bytes());
    block[76..80].copy_from_slice(&(meta_size as u32).to_le_bytes());
    block[80..96].copy_from_slice(&volume_guid.0);
    let next_nonce = nonces.counter + 1;
    block[96..100].copy_from_slice(&next_nonce.to_le_bytes());
    block[100..102].copy_from_slice(&opts.method.code().to_le_bytes());
    block[104..112].copy_from_slice(&opts.filetime.to_le_bytes());
    block[112..112 + entries.len()].copy_from_slice(&entries);
    // Validation: CRC-32 and the SHA-256 of the block, authenticated under the VMK.
    let hash = Sha256::digest(&block);
    let vw = keys::wrap(&vmk, nonces.next(), &key_datum(0x2005, &hash), 0);
    let mut area = vec![0u8; AREA_SIZE as usize];
    area[..block_len].copy_from_slice(&block);
    let vsize = (AREA_SIZE as usize - block_len) as u16;
    area[block_len..block_len + 2].copy_from_slice(&vsize.to_le_bytes());
    area[block_len + 2..block_len + 4].copy_from_slice(&2u16.to_le_bytes());
    area[block_len + 4..block_len + 8].copy_from_slice(&crc32(&block).to_le_bytes());
    let vd = ccm_datum(entry::PROPERTY, &vw);
    area[block_len + 8..block_len + 8 + vd.len()].copy_from_slice(&vd);

    // Encrypt: first the original boot sectors into their new home.
    let cipher = SectorCipher::new(opts.method, &fvek, ss as u32)?;
    let mut head = vec![0u8; vh_size as usize];
    dev.read_at(0, &mut head)?;
    cipher.encrypt(vh_off, &mut head);
    dev.write_at(vh_off, &head)?;
    // Then every other sector outside the reserved areas, in place (up to
    // the conversion boundary).
    let mut p = vh_size;
    while p < boundary {
        if let Some(&(_, b)) = reserved.iter().find(|&&(a, b)| p >= a && p < b) {
            p = b;
            continue;
        }
        let next = reserved.iter().map(|&(a, _)| a).filter(|&a| a > p).min().unwrap_or(u64::MAX);
        let end = (p + buf.len() as u64).min(next).min(boundary);
        let n = (end - p) as usize;
        dev.read_at(p, &mut buf[..n])?;
        cipher.encrypt(p, &mut buf[..n]);
        dev.write_at(p, &buf[..n])?;
        p = end;
        progress(p, size);
    }
    for o in offsets {
        dev.write_at(o, &area)?;
    }
    // Finally the BitLocker boot sector (sectors 1.. of the head are cleared).
    let mut bs = vec![0u8; vh_size as usize];
    bs[0..3].copy_from_slice(&[0xEB, 0x58, 0x90]);
    bs[3..11].copy_from_slice(b"-FVE-FS-");
    bs[11..13].copy_from_slice(&(ss as u16).to_le_bytes());
    bs[13] = boot[13];
    bs[21] = 0xF8;
    bs[24..28].copy_from_slice(&boot[24..28]);
    bs[28..32].copy_from_slice(&boot[28..32]);
    bs[0x40] = 0x80;
    bs[0x42] = 0x29;
    bs[0x43..0x47].copy_from_slice(&volume_guid.0[..4]);
    bs[0x47..0x52].copy_from_slice(b"NO NAME    ");
    bs[0x52..0x5A].copy_from_slice(b"FAT32   ");
    bs[0xA0..0xB0].copy_from_slice(&GUID_NORMAL.0);
    for (i, o) in offsets.iter().enumerate() {
        bs[0xB0 + 8 * i..0xB8 + 8 * i].copy_from_slice(&o.to_le_bytes());
    }
    bs[510] = 0x55;
    bs[511] = 0xAA;
    dev.write_at(0, &bs)?;
    dev.flush()?;
    Ok(Created {
        volume_guid,
        recovery_key_id: rp_guid,
        password_key_id: pw_guid,
        metadata_offsets: offsets,
        volume_header_offset: vh_off,
    })
}

/// Takes free clusters of the NTFS filesystem on `dev` for each of `lens`
/// (bytes), the i-th searched from i/n of the volume on (Windows spreads its
/// metadata copies), marks them in use in `$Bitmap` and zeroes them, as
/// Windows does when it encrypts. Returns their byte offsets.
fn reserve_inside<D: BlockDevice>(dev: &mut D, lens: &[u64]) -> Result<Vec<u64>> {
    let no_room = BitLockerError::Unsupported { what: "the NTFS filesystem has no free space for BitLocker metadata" };
    let not_ntfs =
        |_| BitLockerError::Unsupported { what: "the NTFS filesystem could not be read to place BitLocker metadata" };
    let v = Ntfs::open(dev).map_err(not_ntfs)?;
    let f = v.load_file(dev, BITMAP).map_err(not_ntfs)?;
    let s = f.stream(0x80, &[]).map_err(not_ntfs)?.ok_or(no_room.clone())?;
    let mut bits = v.read_all(dev, &s, 64 << 20).map_err(not_ntfs)?;
    let total = v.boot.total_clusters;
    let cs = v.cluster();
    let free = |bits: &[u8], c: u64| bits.get((c / 8) as usize).is_some_and(|b| b >> (c % 8) & 1 == 0);
    let mut out = Vec::new();
    for (i, &len) in lens.iter().enumerate() {
        let n = len.div_ceil(cs);
        let from = total * i as u64 / lens.len() as u64;
        let start = (from..total.saturating_sub(n))
            .chain(0..from)
            .find(|&c| (c..c + n).all(|k| free(&bits, k)))
            .ok_or(no_room.clone())?;
        for c in start..start + n {
            bits[(c / 8) as usize] |= 1 << (c % 8);
        }
        let zeros = vec![0u8; (n * cs) as usize];
        dev.write_at(start * cs, &zeros)?;
        out.push(start * cs);
    }
    let Stream::NonResident { runs, offset, .. } = &s else { return Err(no_room) };
    let mut o = 0usize;
    for (p, l) in runs::extents(runs, cs, 0, bits.len() as u64, *offset).map_err(not_ntfs)? {
        let p = p.ok_or(no_room.clone())?;
        dev.write_at(p, &bits[o..o + l as usize])?;
        o += l as usize;
    }
    Ok(out)
}
