//! Opening a BitLocker volume, unlocking it, and the unlocked volume as a
//! [`BlockDevice`] of plaintext.
//!
//! The plaintext view is the one Linux tools (cryptsetup, dislocker) give:
//! the first bytes hold the original boot sectors, decrypted from where
//! BitLocker relocated them; the three 64 KiB FVE metadata areas and the
//! relocated-boot-sector area read as zeros and refuse writes; every other
//! sector is decrypted in place. On a volume whose conversion is paused or in
//! progress, sectors beyond the encrypted size are plain on disk and are
//! read and written as such.

use super::cipher::SectorCipher;
use super::error::{BitLockerError, Result};
use super::header::{self, VolumeHeader};
use super::keys::{self, StartupKey};
use super::metadata::{ConversionState, EncryptionMethod, Metadata, AREA_SIZE};
use super::protector::{Protector, ProtectorKind};
use crate::block::{check_range, BlockDevice, IoError};
use crate::formats::partition::is_volume_boot_sector;
use crate::util::guid::Guid;
use alloc::vec;
use alloc::vec::Vec;
use zeroize::Zeroizing;

/// A way to unlock a volume.
#[derive(Clone, Copy)]
pub enum UnlockKey<'a> {
    /// 48 digits, dashes optional.
    RecoveryPassword(&'a str),
    /// A user password (any Unicode text).
    Password(&'a str),
    /// A startup or recovery key from a .BEK file ([`keys::parse_bek`]).
    StartupKey(&'a StartupKey),
    /// The clear key of a volume whose protection is suspended.
    ClearKey,
}

impl core::fmt::Debug for UnlockKey<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            UnlockKey::RecoveryPassword(_) => "RecoveryPassword(..)",
            UnlockKey::Password(_) => "Password(..)",
            UnlockKey::StartupKey(_) => "StartupKey(..)",
            UnlockKey::ClearKey => "ClearKey",
        })
    }
}

/// The full volume encryption key, ready to use. Holds no printable key.
pub struct VolumeKey {
    /// The protector that opened it.
    pub key_id: Guid,
    /// The sector cipher the key is for.
    pub method: EncryptionMethod,
    key: Zeroizing<Vec<u8>>,
}

/// Reads the first sector and says whether the device holds a BitLocker
/// volume (Vista ones included).
pub fn detect<D: BlockDevice + ?Sized>(dev: &mut D) -> Result<bool> {
    if dev.size() < 512 {
        return Ok(false);
    }
    let mut s = [0u8; 512];
    dev.read_at(0, &mut s)?;
    Ok(header::is_bitlocker(&s))
}

/// A BitLocker volume, opened but still locked: its header and metadata.
pub struct BitLocker<D> {
    dev: D,
    /// The parsed BitLocker boot sector.
    pub header: VolumeHeader,
    /// The first valid FVE metadata copy.
    pub metadata: Metadata,
    compress: keys::Compress,
}

impl<D: BlockDevice> BitLocker<D> {
    /// Reads and validates the boot sector and the FVE metadata. Never writes.
    pub fn open(mut dev: D) -> Result<Self> {
        if dev.size() < 512 {
            return Err(BitLockerError::NotBitLocker);
        }
        let mut s = [0u8; 512];
        dev.read_at(0, &mut s)?;
        let header = header::parse(&s)?;
        let metadata = Metadata::read(&mut dev, &header)?;
        Ok(BitLocker { dev, header, metadata, compress: keys::stretch_compress_default() })
    }

    /// Uses `compress` (a SHA-256 compression function, e.g. one using the
    /// CPU's SHA extensions) for the 2^20-round key stretch.
    pub fn set_compress(&mut self, compress: keys::Compress) {
        self.compress = compress;
    }

    /// The key protectors, in metadata order.
    pub fn protectors(&self) -> &[Protector] {
        &self.metadata.protectors
    }

    /// Gives the device back.
    pub fn into_inner(self) -> D {
        self.dev
    }

    fn ids(&self, kind: ProtectorKind) -> Vec<Guid> {
        self.protectors().iter().filter(|p| p.kind == kind).map(|p| p.key_id).collect()
    }

    /// Tries `unwrap_key` (a 32-byte key) on every wrapped VMK of `p`.
    fn open_vmk(p: &Protector, unwrap_key: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
        for w in &p.wrapped_vmk {
            if let Some(d) = keys::unwrap(unwrap_key, w) {
                if let Some((_, k)) = keys::key_bytes(&d) {
                    if k.len() == 32 {
                        let mut vmk = Zeroizing::new([0u8; 32]);
                        vmk.copy_from_slice(k);
                        return Some(vmk);
                    }
                }
            }
        }
        None
    }

    /// Finds the VMK with `key`: recovery passwords are checked for format
    /// first (no stretch is run on a mistyped one) and tried on every
    /// recovery-password protector; passwords on every password protector.
    pub fn unlock_vmk(&self, key: &UnlockKey<'_>) -> Result<(Guid, Zeroizing<[u8; 32]>)> {
        match key {
            UnlockKey::RecoveryPassword(s) => {
                let rk = keys::parse_recovery_password(s)?;
                let initial = keys::recovery_initial(&rk);
                self.try_stretched(ProtectorKind::RecoveryPassword, &initial, "recovery password").map_err(
                    |e| match e {
                        BitLockerError::NoProtector { .. } => e,
                        _ => {
                            BitLockerError::WrongRecoveryPassword { key_ids: self.ids(ProtectorKind::RecoveryPassword) }
                        }
                    },
                )
            }
            UnlockKey::Password(s) => {
                let initial = keys::password_initial(s);
                self.try_stretched(ProtectorKind::Password, &initial, "password").map_err(|e| match e {
                    BitLockerError::NoProtector { .. } => e,
                    _ => BitLockerError::WrongPassword { key_ids: self.ids(ProtectorKind::Password) },
                })
            }
            UnlockKey::StartupKey(sk) => {
                let candidates: Vec<&Protector> = self
                    .protectors()
                    .iter()
                    .filter(|p| matches!(p.kind, ProtectorKind::StartupKey) || p.key_id == sk.key_id)
                    .collect();
                if candidates.is_empty() {
                    return Err(BitLockerError::NoProtector { kind: "startup key" });
                }
                // The protector with the key file's GUID first, then the others.
                for p in candidates
                    .iter()
                    .filter(|p| p.key_id == sk.key_id)
                    .chain(candidates.iter().filter(|p| p.key_id != sk.key_id))
                {
                    if let Some(v) = Self::open_vmk(p, &sk.key[..]) {
                        return Ok((p.key_id, v));
                    }
                }
                Err(BitLockerError::WrongStartupKey { key_id: sk.key_id })
            }
            UnlockKey::ClearKey => {
                let mut any = false;
                for p in self.protectors().iter().filter(|p| p.kind == ProtectorKind::ClearKey) {
                    any = true;
                    if let Some(ck) = &p.clear_key {
                        if let Some(v) = Self::open_vmk(p, ck) {
                            return Ok((p.key_id, v));
                        }
                    }
                }
                if any {
                    Err(BitLockerError::Corrupt { what: "clear key protector", offset: 0 })
                } else {
                    Err(BitLockerError::NoProtector { kind: "clear key" })
                }
            }
        }
    }

    fn try_stretched(
        &self,
        kind: ProtectorKind,
        initial: &[u8; 32],
        name: &'static str,
    ) -> Result<(Guid, Zeroizing<[u8; 32]>)> {
        let mut any = false;
        for p in self.protectors().iter().filter(|p| p.kind == kind) {
            any = true;
            let Some(salt) = p.salt else { continue };
            let k = keys::stretch_with(initial, &salt, self.compress);
            if let Some(v) = Self::open_vmk(p, &k[..]) {
                return Ok((p.key_id, v));
            }
        }
        if any {
            Err(BitLockerError::WrongPassword { key_ids: Vec::new() })
        } else {
            Err(BitLockerError::NoProtector { kind: name })
        }
    }

    /// Unlocks the volume key with `key`: opens the VMK, checks the
    /// metadata's authenticated hash with it (where present) and unwraps the FVEK.
    pub fn unlock_key(&self, key: &UnlockKey<'_>) -> Result<VolumeKey> {
        let (key_id, vmk) = self.unlock_vmk(key)?;
        let m = &self.metadata;
        if let Some(v) = &m.validation {
            let ok = keys::unwrap(&vmk[..], v)
                .and_then(|d| keys::key_bytes(&d).map(|(meth, h)| meth == 0x2005 && h == m.block_sha256))
                .unwrap_or(false);
            if !ok {
                return Err(BitLockerError::MetadataAuthentication { key_id });
            }
        }
        let d = keys::unwrap(&vmk[..], &m.wrapped_fvek).ok_or(BitLockerError::MetadataAuthentication { key_id })?;
        let (_, k) =
            keys::key_bytes(&d).ok_or(BitLockerError::Corrupt { what: "FVEK entry", offset: m.wrapped_fvek.offset })?;
        Ok(VolumeKey { key_id, method: m.method, key: Zeroizing::new(k.to_vec()) })
    }

    /// Unlocks with `key` and returns the plaintext device.
    pub fn unlock(self, key: &UnlockKey<'_>) -> Result<Unlocked<D>> {
        let vk = self.unlock_key(key)?;
        self.with_key(vk)
    }

    /// Tries each key in turn; returns the first success, or the first error
    /// that is not "no protector of this kind" (so a wrong password is
    /// reported rather than a missing startup key).
    pub fn unlock_any(self, keys: &[UnlockKey<'_>]) -> Result<Unlocked<D>> {
        let mut err: Option<BitLockerError> = None;
        for k in keys {
            match self.unlock_key(k) {
                Ok(vk) => return self.with_key(vk),
                Err(e) => {
                    let weak = matches!(e, BitLockerError::NoProtector { .. });
                    if err.is_none() || (!weak && matches!(err, Some(BitLockerError::NoProtector { .. }))) {
                        err = Some(e);
                    }
                }
            }
        }
        Err(err.unwrap_or(BitLockerError::NoProtector { kind: "usable" }))
    }

    /// Builds the plaintext device from an unlocked key.
    pub fn with_key(self, vk: VolumeKey) -> Result<Unlocked<D>> {
        let cipher = SectorCipher::new(vk.method, &vk.key, self.header.sector_size)?;
        Unlocked::new(self.dev, self.header, self.metadata, cipher, vk.key_id)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Reads as zeros, refuses writes.
    Zero,
    /// Encrypted at `src + (pos - start)` (the relocated boot sectors).
    Relocated { src: u64 },
    /// Encrypted in place.
    Crypt,
    /// Not yet encrypted (beyond the conversion boundary).
    Plain,
    /// The relocated boot sectors, stored unencrypted at `src + (pos - start)`
    /// (seen on used-space-only volumes). Read-only.
    RelocatedPlain { src: u64 },
}

#[derive(Clone, Copy, Debug)]
struct Region {
    start: u64,
    end: u64,
    kind: Kind,
}

const CHUNK: usize = 256 * 1024;

/// An unlocked BitLocker volume: reads give plaintext, writes are encrypted.
pub struct Unlocked<D> {
    dev: D,
    header: VolumeHeader,
    metadata: Metadata,
    cipher: SectorCipher,
    key_id: Guid,
    regions: Vec<Region>,
    size: u64,
    scratch: Vec<u8>,
}

impl<D: BlockDevice> Unlocked<D> {
    fn new(dev: D, header: VolumeHeader, metadata: Metadata, cipher: SectorCipher, key_id: Guid) -> Result<Self> {
        let size = dev.size();
        let ss = header.sector_size as u64;
        let m = &metadata;
        let mut zero: Vec<(u64, u64)> = m.offsets.iter().map(|&o| (o, o.saturating_add(AREA_SIZE))).collect();
        zero.push((m.volume_header_offset, m.volume_header_offset + m.volume_header_size));
        for z in zero.iter_mut() {
            z.0 = z.0.min(size) / ss * ss;
            z.1 = z.1.min(size).div_ceil(ss) * ss;
            z.1 = z.1.min(size);
        }
        let converting = !matches!(m.current_state, ConversionState::Encrypted) && m.encrypted_size < size;
        let boundary = if converting { m.encrypted_size / ss * ss } else { size };
        let vh = m.volume_header_size.min(size) / ss * ss;
        let mut cuts: Vec<u64> = vec![0, size, vh, boundary];
        for z in &zero {
            cuts.push(z.0);
            cuts.push(z.1);
        }
        cuts.sort_unstable();
        cuts.dedup();
        let mut regions: Vec<Region> = Vec::new();
        for w in cuts.windows(2) {
            let (start, end) = (w[0], w[1]);
            if start >= end {
                continue;
            }
            let kind = if zero.iter().any(|z| start >= z.0 && start < z.1) {
                Kind::Zero
            } else if start < vh {
                Kind::Relocated { src: m.volume_header_offset + start }
            } else if start >= boundary {
                Kind::Plain
            } else {
                Kind::Crypt
            };
            match regions.last_mut() {
                Some(r) if r.kind == kind && r.end == start && !matches!(kind, Kind::Relocated { .. }) => r.end = end,
                _ => regions.push(Region { start, end, kind }),
            }
        }
        let mut u = Unlocked { dev, header, metadata, cipher, key_id, regions, size, scratch: vec![0u8; CHUNK] };
        u.probe_relocated()?;
        Ok(u)
    }

    /// Used-space-only (encrypt-on-write) volumes may keep the relocated boot
    /// sectors unencrypted: when the first relocated sector is a volume boot
    /// sector as stored but not once decrypted, read that region as plain.
    fn probe_relocated(&mut self) -> Result<()> {
        let ss = self.cipher.sector_size();
        let Some(i) = self.regions.iter().position(|r| matches!(r.kind, Kind::Relocated { .. }) && r.start == 0) else {
            return Ok(());
        };
        let Kind::Relocated { src } = self.regions[i].kind else { return Ok(()) };
        if (self.regions[i].end as usize) < ss || src.saturating_add(ss as u64) > self.size {
            return Ok(());
        }
        let mut raw = vec![0u8; ss];
        self.dev.read_at(src, &mut raw)?;
        let mut dec = raw.clone();
        self.cipher.decrypt(src, &mut dec);
        if !is_volume_boot_sector(&dec) && is_volume_boot_sector(&raw) {
            for r in self.regions.iter_mut() {
                if let Kind::Relocated { src } = r.kind {
                    r.kind = Kind::RelocatedPlain { src };
                }
            }
        }
        Ok(())
    }

    /// The Key ID of the protector that unlocked the volume.
    pub fn key_id(&self) -> Guid {
        self.key_id
    }
    /// The FVE metadata the volume was unlocked with.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }
    /// The BitLocker boot sector as read from disk.
    pub fn header(&self) -> &VolumeHeader {
        &self.header
    }
    /// Gives the encrypted device back; the sector cipher is dropped.
    pub fn into_inner(self) -> D {
        self.dev
    }
    /// Byte ranges that read as zeros and refuse writes.
    pub fn protected_ranges(&self) -> Vec<(u64, u64)> {
        self.regions.iter().filter(|r| r.kind == Kind::Zero).map(|r| (r.start, r.end)).collect()
    }

    /// The next piece of a transfer of `len` bytes at `offset`, `done` bytes
    /// in: its region, first sector-aligned byte, bytes spanned (whole
    /// sectors, within one region and [`CHUNK`]), bytes to skip and to take.
    fn window(&self, offset: u64, len: usize, done: usize) -> (Region, u64, usize, usize, usize) {
        let ss = self.cipher.sector_size() as u64;
        let pos = offset + done as u64;
        let start = pos / ss * ss;
        let r = self.region(start);
        let want_end = (offset + len as u64).div_ceil(ss) * ss;
        let end = (start + CHUNK as u64).min(r.end).min(want_end).min(self.size);
        let n = (end - start) as usize;
        let skip = (pos - start) as usize;
        (r, start, n, skip, (n - skip).min(len - done))
    }

    fn region(&self, pos: u64) -> Region {
        // Regions cover [0, size) without gaps.
        let i = self.regions.partition_point(|r| r.end <= pos);
        self.regions.get(i).copied().unwrap_or(Region { start: pos, end: self.size, kind: Kind::Zero })
    }

    /// Reads whole sectors `[start, start + n)` (one region) as plaintext into scratch.
    fn load(&mut self, r: Region, start: u64, n: usize) -> core::result::Result<(), IoError> {
        let ss = self.cipher.sector_size();
        let buf = &mut self.scratch[..n];
        match r.kind {
            Kind::Zero => buf.fill(0),
            Kind::Plain => self.dev.read_at(start, buf)?,
            Kind::Crypt => {
                self.dev.read_at(start, buf)?;
                let whole = n / ss * ss;
                self.cipher.decrypt(start, &mut buf[..whole]);
            }
            Kind::Relocated { src } => {
                let at = src + (start - r.start);
                self.dev.read_at(at, buf)?;
                let whole = n / ss * ss;
                self.cipher.decrypt(at, &mut buf[..whole]);
            }
            Kind::RelocatedPlain { src } => self.dev.read_at(src + (start - r.start), buf)?,
        }
        Ok(())
    }
}

impl<D: BlockDevice> BlockDevice for Unlocked<D> {
    fn sector_size(&self) -> u32 {
        self.header.sector_size
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> core::result::Result<(), IoError> {
        check_range(offset, buf.len(), self.size)?;
        let mut done = 0usize;
        while done < buf.len() {
            let (r, start, n, skip, take) = self.window(offset, buf.len(), done);
            self.load(r, start, n)?;
            buf[done..done + take].copy_from_slice(&self.scratch[skip..skip + take]);
            done += take;
        }
        Ok(())
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> core::result::Result<(), IoError> {
        check_range(offset, buf.len(), self.size)?;
        let end_all = offset + buf.len() as u64;
        // Refuse before writing anything.
        for r in &self.regions {
            let refused = matches!(r.kind, Kind::Zero | Kind::RelocatedPlain { .. });
            if refused && r.start < end_all && offset < r.end && !buf.is_empty() {
                return Err(IoError::ReadOnly { offset: offset.max(r.start) });
            }
        }
        let ss = self.cipher.sector_size() as u64;
        let mut done = 0usize;
        while done < buf.len() {
            let (r, start, n, skip, take) = self.window(offset, buf.len(), done);
            if skip != 0 || take != n {
                self.load(r, start, n)?;
            }
            self.scratch[skip..skip + take].copy_from_slice(&buf[done..done + take]);
            let whole = n / ss as usize * ss as usize;
            let data = &mut self.scratch[..n];
            let at = match r.kind {
                Kind::Zero => return Err(IoError::ReadOnly { offset: start }),
                Kind::Plain => start,
                Kind::Crypt => {
                    self.cipher.encrypt(start, &mut data[..whole]);
                    start
                }
                Kind::Relocated { src } => {
                    let at = src + (start - r.start);
                    self.cipher.encrypt(at, &mut data[..whole]);
                    at
                }
                // Windows would encrypt a rewrite of these sectors, and we
                // cannot tell how it marks that: refuse rather than guess.
                Kind::RelocatedPlain { .. } => return Err(IoError::ReadOnly { offset: start }),
            };
            self.dev.write_at(at, &self.scratch[..n])?;
            done += take;
        }
        Ok(())
    }

    fn flush(&mut self) -> core::result::Result<(), IoError> {
        self.dev.flush()
    }
}
