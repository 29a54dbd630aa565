//! Turning what a person types or carries into keys: recovery passwords,
//! passwords, startup key (.BEK) files; the 2^20-round SHA-256 key stretch;
//! AES-CCM unwrapping of the VMK and FVEK.
//!
//! Every buffer that holds key material is [`Zeroizing`]; nothing here
//! formats or logs a key.

#![deny(clippy::indexing_slicing)]

use super::datum::{entry, value, Datums};
use super::error::{BitLockerError, Result};
use super::protector::WrappedKey;
use crate::util::guid::Guid;
use crate::util::le::{le16, le32};
use aes::Aes256;
use alloc::vec::Vec;
use ccm::aead::generic_array::GenericArray;
use ccm::aead::{AeadInPlace, KeyInit};
use ccm::consts::{U12, U16};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// Number of SHA-256 rounds of the key stretch.
pub const STRETCH_ROUNDS: u64 = 1 << 20;

/// A 256-bit key.
pub type Key32 = Zeroizing<[u8; 32]>;

/// Why a 6-digit block cannot be part of a recovery password (Windows' own
/// check: every block is a multiple of 11 below 720896).
pub fn check_block(block: u32) -> core::result::Result<(), &'static str> {
    if !block.is_multiple_of(11) {
        Err("it is not a multiple of 11, so a digit is mistyped")
    } else if block >= 720_896 {
        Err("it is too large (every block is below 720896)")
    } else {
        Ok(())
    }
}

/// Parses a recovery password: 48 digits in 8 blocks of 6, separated by
/// dashes, spaces or nothing. Checks each block as Windows does (a multiple
/// of 11, below 720896) and says which block is wrong. Returns the 16-byte
/// key the password encodes (block / 11, little-endian 16-bit each).
pub fn parse_recovery_password(s: &str) -> Result<Zeroizing<[u8; 16]>> {
    let mut digits = Zeroizing::new([0u8; 48]);
    let mut n = 0usize;
    for c in s.trim().chars() {
        match c {
            '0'..='9' => {
                *digits.get_mut(n).ok_or(BitLockerError::RecoveryPasswordFormat)? = c as u8 - b'0';
                n += 1;
            }
            '-' | ' ' => {}
            _ => return Err(BitLockerError::RecoveryPasswordFormat),
        }
    }
    if n != 48 {
        return Err(BitLockerError::RecoveryPasswordFormat);
    }
    let mut key = Zeroizing::new([0u8; 16]);
    for (b, (block, out)) in digits.chunks_exact(6).zip(key.chunks_exact_mut(2)).enumerate() {
        let mut v: u32 = 0;
        for d in block {
            v = v * 10 + *d as u32;
        }
        if check_block(v).is_err() {
            v.zeroize();
            return Err(BitLockerError::RecoveryPasswordBlock { block: b as u8 + 1 });
        }
        let q = (v / 11) as u16;
        out.copy_from_slice(&q.to_le_bytes());
        v.zeroize();
    }
    Ok(key)
}

/// The BitLocker key stretch: 2^20 rounds of SHA-256 over
/// (last hash, initial hash, salt, round counter).
pub fn stretch(initial: &[u8; 32], salt: &[u8; 16]) -> Key32 {
    stretch_with(initial, salt, sha2_compress)
}

/// The compression function [`stretch`] uses (the `sha2` crate's).
pub fn stretch_compress_default() -> Compress {
    sha2_compress
}

fn sha2_compress(state: &mut [u32; 8], blocks: &[[u8; 64]; 2]) {
    sha2::compress256(state, &[*GenericArray::from_slice(&blocks[0]), *GenericArray::from_slice(&blocks[1])]);
}

/// A SHA-256 compression function over two 64-byte blocks.
pub type Compress = fn(&mut [u32; 8], &[[u8; 64]; 2]);

/// The key stretch with a caller-supplied SHA-256 compression function: the
/// UEFI front end, where the `sha2` crate runs its software code, can pass
/// one that uses the SHA extensions after checking CPUID (see
/// [`super::BitLocker::set_compress`]).
#[allow(clippy::indexing_slicing)] // constant ranges of fixed-size SHA-256 blocks, in the hot loop
pub fn stretch_with(initial: &[u8; 32], salt: &[u8; 16], compress: Compress) -> Key32 {
    // The 88-byte message is two SHA-256 blocks: (last hash, initial hash),
    // then (salt, counter, padding, length). Calling the compression function
    // directly skips the hasher's buffering; on the host `sha2` uses SHA-NI
    // when the CPU has it (runtime detection inside the crate).
    const IV: [u32; 8] =
        [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut blocks = Zeroizing::new([[0u8; 64]; 2]);
    blocks[0][32..64].copy_from_slice(initial);
    blocks[1][..16].copy_from_slice(salt);
    blocks[1][24] = 0x80;
    blocks[1][56..64].copy_from_slice(&(88u64 * 8).to_be_bytes());
    let mut state = Zeroizing::new([0u32; 8]);
    for i in 0..STRETCH_ROUNDS {
        blocks[1][16..24].copy_from_slice(&i.to_le_bytes());
        *state = IV;
        compress(&mut state, &blocks);
        for (j, w) in state.iter().enumerate() {
            blocks[0][j * 4..j * 4 + 4].copy_from_slice(&w.to_be_bytes());
        }
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&blocks[0][..32]);
    out
}

/// The stretch written the plain way (one SHA-256 per round), kept to check
/// [`stretch`] against.
#[allow(clippy::indexing_slicing)] // constant ranges of fixed-size SHA-256 blocks, in the hot loop
pub fn stretch_reference(initial: &[u8; 32], salt: &[u8; 16], rounds: u64) -> Key32 {
    let mut block = Zeroizing::new([0u8; 88]);
    block[32..64].copy_from_slice(initial);
    block[64..80].copy_from_slice(salt);
    for i in 0..rounds {
        block[80..88].copy_from_slice(&i.to_le_bytes());
        let h = Sha256::digest(&block[..]);
        block[..32].copy_from_slice(&h);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&block[..32]);
    out
}

/// The initial hash of a recovery password: SHA-256 of its 16-byte key.
pub fn recovery_initial(key: &[u8; 16]) -> Key32 {
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&Sha256::digest(key));
    out
}

/// The initial hash of a user password: SHA-256(SHA-256(UTF-16LE(password))).
pub fn password_initial(password: &str) -> Key32 {
    let mut utf16 = Zeroizing::new(Vec::with_capacity(password.len() * 2));
    for u in password.encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    let mut first = Zeroizing::new([0u8; 32]);
    first.copy_from_slice(&Sha256::digest(&utf16[..]));
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&Sha256::digest(&first[..]));
    out
}

/// Decrypts an AES-CCM wrapped key datum with a 256-bit key. Returns the
/// decrypted datum (header included) after checking the tag and that the
/// datum's size field matches; `None` when the key is wrong.
pub fn unwrap(key: &[u8], w: &WrappedKey) -> Option<Zeroizing<Vec<u8>>> {
    if key.len() != 32 || w.ciphertext.len() < 12 || w.ciphertext.len() > 4096 {
        return None;
    }
    let cipher = ccm::Ccm::<Aes256, U16, U12>::new_from_slice(key).ok()?;
    let mut buf = Zeroizing::new(w.ciphertext.clone());
    cipher
        .decrypt_in_place_detached(
            GenericArray::from_slice(&w.nonce),
            &[],
            &mut buf[..],
            GenericArray::from_slice(&w.tag),
        )
        .ok()?;
    if le16(&buf, 0).unwrap_or(0) as usize != buf.len() {
        return None;
    }
    Some(buf)
}

/// Encrypts a key datum with AES-CCM (test-support writer).
pub fn wrap(key: &[u8; 32], nonce: [u8; 12], datum: &[u8], offset: u64) -> WrappedKey {
    // A 32-byte key always builds a cipher.
    let cipher = ccm::Ccm::<Aes256, U16, U12>::new(GenericArray::from_slice(key));
    let mut buf = datum.to_vec();
    let tag = cipher
        .encrypt_in_place_detached(GenericArray::from_slice(&nonce), &[], &mut buf)
        .map(|t| {
            let mut a = [0u8; 16];
            a.copy_from_slice(&t);
            a
        })
        .unwrap_or([0u8; 16]);
    WrappedKey { nonce, tag, ciphertext: buf, offset }
}

/// From a decrypted key datum: the key bytes after the 12-byte header.
pub fn key_bytes(datum: &[u8]) -> Option<(u16, &[u8])> {
    if datum.len() < 12 || le16(datum, 4).unwrap_or(0) != value::KEY {
        return None;
    }
    Some((le16(datum, 8).unwrap_or(0), datum.get(12..)?))
}

/// A startup key read from a .BEK file (its key zeroized when dropped, copies too).
#[derive(Clone)]
pub struct StartupKey {
    /// The GUID of the external key: it equals the Key ID of the protector it opens.
    pub key_id: Guid,
    pub(crate) key: Key32,
}

impl core::fmt::Debug for StartupKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "StartupKey {{ key_id: {} }}", self.key_id)
    }
}

/// Parses a .BEK startup/recovery key file (Windows 7 to 11 layouts: a
/// 48-byte header, then an external key entry whose nested entries hold a
/// 32-byte key entry among others).
pub fn parse_bek(file: &[u8]) -> Result<StartupKey> {
    let bad = |what, offset| BitLockerError::BadKeyFile { what, offset };
    if file.len() < 48 + 8 || file.len() > 64 * 1024 {
        return Err(bad("file size", file.len() as u64));
    }
    let size = le32(file, 0).unwrap_or(0) as usize;
    let header_size = le32(file, 8).unwrap_or(0) as usize;
    let entries = file.get(48..size).filter(|_| header_size == 48).ok_or(bad("header", 0))?;
    for d in Datums::new(entries, 48) {
        let d = d.map_err(|_| bad("entry size", 48))?;
        if d.entry_type != entry::STARTUP_KEY || d.value_type != value::EXTERNAL_KEY {
            continue;
        }
        let key_id = d.guid().map_err(|_| bad("external key entry", d.offset))?;
        for c in d.children().map_err(|_| bad("external key entry", d.offset))? {
            let c = c.map_err(|_| bad("nested entry", d.offset))?;
            if c.value_type == value::KEY {
                if let Ok((_, k)) = c.key() {
                    if k.len() == 32 {
                        let mut key = Zeroizing::new([0u8; 32]);
                        key.copy_from_slice(k);
                        return Ok(StartupKey { key_id, key });
                    }
                }
            }
        }
        return Err(bad("no 32-byte key in the external key entry", d.offset));
    }
    Err(bad("no external key entry", 48))
}
