//! Sector encryption: AES-CBC (128/256, with or without the Elephant
//! diffuser) and XTS-AES (128/256). A sector's position is its byte offset in
//! the volume: CBC derives its IV from it (AES of the offset), XTS uses the
//! sector number (offset / sector size) as tweak.

use super::error::{BitLockerError, Result};
use super::metadata::EncryptionMethod;
use aes::cipher::{BlockDecrypt, BlockEncrypt, BlockSizeUser, KeyInit};
use aes::{Aes128, Aes256};
use cipher_gen::GenericArray;

mod cipher_gen {
    pub use aes::cipher::generic_array::GenericArray;
}

enum Inner {
    Cbc128 { key: Aes128, tweak: Option<Aes128> },
    Cbc256 { key: Aes256, tweak: Option<Aes256> },
    Xts128 { data: Aes128, tweak: Aes128 },
    Xts256 { data: Aes256, tweak: Aes256 },
}

/// Encrypts and decrypts whole sectors of one volume.
pub struct SectorCipher {
    inner: Inner,
    sector_size: usize,
}

const RA: [u32; 4] = [9, 0, 13, 0];
const RB: [u32; 4] = [0, 10, 0, 25];

impl SectorCipher {
    /// Builds the cipher from the FVEK key bytes as stored in the metadata.
    /// `sector_size` is 512, 1024, 2048 or 4096.
    pub fn new(method: EncryptionMethod, key: &[u8], sector_size: u32) -> Result<SectorCipher> {
        let bad = || BitLockerError::Corrupt { what: "FVEK length for its encryption method", offset: 0 };
        if !matches!(sector_size, 512 | 1024 | 2048 | 4096) {
            return Err(BitLockerError::BadSize { what: "unsupported sector size", size: sector_size as u64 });
        }
        let k = |range: core::ops::Range<usize>| key.get(range).ok_or_else(bad);
        let inner = match method {
            EncryptionMethod::AesCbc128 => {
                Inner::Cbc128 { key: Aes128::new_from_slice(k(0..16)?).map_err(|_| bad())?, tweak: None }
            }
            EncryptionMethod::AesCbc256 => {
                Inner::Cbc256 { key: Aes256::new_from_slice(k(0..32)?).map_err(|_| bad())?, tweak: None }
            }
            EncryptionMethod::AesCbc128Diffuser => Inner::Cbc128 {
                key: Aes128::new_from_slice(k(0..16)?).map_err(|_| bad())?,
                tweak: Some(Aes128::new_from_slice(k(32..48)?).map_err(|_| bad())?),
            },
            EncryptionMethod::AesCbc256Diffuser => Inner::Cbc256 {
                key: Aes256::new_from_slice(k(0..32)?).map_err(|_| bad())?,
                tweak: Some(Aes256::new_from_slice(k(32..64)?).map_err(|_| bad())?),
            },
            EncryptionMethod::XtsAes128 => Inner::Xts128 {
                data: Aes128::new_from_slice(k(0..16)?).map_err(|_| bad())?,
                tweak: Aes128::new_from_slice(k(16..32)?).map_err(|_| bad())?,
            },
            EncryptionMethod::XtsAes256 => Inner::Xts256 {
                data: Aes256::new_from_slice(k(0..32)?).map_err(|_| bad())?,
                tweak: Aes256::new_from_slice(k(32..64)?).map_err(|_| bad())?,
            },
        };
        Ok(SectorCipher { inner, sector_size: sector_size as usize })
    }

    /// Bytes per sector this cipher was built for (512, 1024, 2048 or 4096).
    pub fn sector_size(&self) -> usize {
        self.sector_size
    }

    /// Decrypts whole sectors in place; `pos` is the byte offset of the first.
    /// `buf.len()` must be a multiple of the sector size (extra bytes are left alone).
    pub fn decrypt(&self, pos: u64, buf: &mut [u8]) {
        self.crypt(pos, buf, false)
    }

    /// Encrypts whole sectors in place; `pos` is the byte offset of the first.
    pub fn encrypt(&self, pos: u64, buf: &mut [u8]) {
        self.crypt(pos, buf, true)
    }

    fn crypt(&self, pos: u64, buf: &mut [u8], encrypt: bool) {
        let ss = self.sector_size;
        match &self.inner {
            Inner::Xts128 { data, tweak } => xts_area(data, tweak, pos / ss as u64, ss, buf, encrypt),
            Inner::Xts256 { data, tweak } => xts_area(data, tweak, pos / ss as u64, ss, buf, encrypt),
            Inner::Cbc128 { key, tweak } => cbc_area(key, tweak.as_ref(), pos, ss, buf, encrypt),
            Inner::Cbc256 { key, tweak } => cbc_area(key, tweak.as_ref(), pos, ss, buf, encrypt),
        }
    }
}

type Block = GenericArray<u8, <Aes128 as BlockSizeUser>::BlockSize>;

fn offset_block(pos: u64) -> Block {
    let mut b = Block::default();
    b[..8].copy_from_slice(&pos.to_le_bytes());
    b
}

/// The Elephant sector key: AES of the offset and of the offset with its last byte 0x80.
fn sector_key<C: BlockEncrypt + BlockSizeUser<BlockSize = <Aes128 as BlockSizeUser>::BlockSize>>(
    tweak: &C,
    pos: u64,
) -> [u8; 32] {
    let mut a = offset_block(pos);
    let mut b = offset_block(pos);
    b[15] = 0x80;
    tweak.encrypt_block(&mut a);
    tweak.encrypt_block(&mut b);
    let mut k = [0u8; 32];
    k[..16].copy_from_slice(&a);
    k[16..].copy_from_slice(&b);
    k
}

fn words(s: &[u8], w: &mut [u32]) {
    for (d, c) in w.iter_mut().zip(s.chunks_exact(4)) {
        *d = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
}
fn unwords(w: &[u32], s: &mut [u8]) {
    for (d, c) in w.iter().zip(s.chunks_exact_mut(4)) {
        c.copy_from_slice(&d.to_le_bytes());
    }
}

fn diffuser_a_decrypt(d: &mut [u32]) {
    let n = d.len();
    for _ in 0..5 {
        for i in 0..n {
            d[i] = d[i].wrapping_add(d[(i + n - 2) % n] ^ d[(i + n - 5) % n].rotate_left(RA[i % 4]));
        }
    }
}
fn diffuser_a_encrypt(d: &mut [u32]) {
    let n = d.len();
    for _ in 0..5 {
        for i in (0..n).rev() {
            d[i] = d[i].wrapping_sub(d[(i + n - 2) % n] ^ d[(i + n - 5) % n].rotate_left(RA[i % 4]));
        }
    }
}
fn diffuser_b_decrypt(d: &mut [u32]) {
    let n = d.len();
    for _ in 0..3 {
        for i in 0..n {
            d[i] = d[i].wrapping_add(d[(i + 2) % n] ^ d[(i + 5) % n].rotate_left(RB[i % 4]));
        }
    }
}
fn diffuser_b_encrypt(d: &mut [u32]) {
    let n = d.len();
    for _ in 0..3 {
        for i in (0..n).rev() {
            d[i] = d[i].wrapping_sub(d[(i + 2) % n] ^ d[(i + 5) % n].rotate_left(RB[i % 4]));
        }
    }
}

const MAX_BLOCKS: usize = 4096 / 16;

/// XTS (IEEE 1619) over whole sectors: the tweak of sector `n` is
/// AES(tweak key, n as a 128-bit little-endian number), multiplied by x in
/// GF(2^128) from block to block. Sector sizes are multiples of 16, so no
/// ciphertext stealing. Blocks of a sector go through AES together, which
/// lets AES-NI pipeline them.
fn xts_area<C, T>(data: &C, tweak: &T, first_sector: u64, ss: usize, buf: &mut [u8], encrypt: bool)
where
    C: BlockEncrypt + BlockDecrypt + BlockSizeUser<BlockSize = <Aes128 as BlockSizeUser>::BlockSize>,
    T: BlockEncrypt + BlockSizeUser<BlockSize = <Aes128 as BlockSizeUser>::BlockSize>,
{
    let mut blocks: [Block; MAX_BLOCKS] = core::array::from_fn(|_| Block::default());
    let mut tweaks = [0u128; MAX_BLOCKS];
    for (i, s) in buf.chunks_exact_mut(ss).enumerate() {
        let n = (s.len() / 16).min(MAX_BLOCKS);
        let mut t = offset_block(first_sector + i as u64);
        tweak.encrypt_block(&mut t);
        let mut tw = u128::from_le_bytes(t.into());
        for j in 0..n {
            tweaks[j] = tw;
            let mut x = [0u8; 16];
            x.copy_from_slice(&s[j * 16..j * 16 + 16]);
            blocks[j] = (u128::from_le_bytes(x) ^ tw).to_le_bytes().into();
            tw = (tw << 1) ^ if tw >> 127 == 1 { 0x87 } else { 0 };
        }
        if encrypt {
            data.encrypt_blocks(&mut blocks[..n]);
        } else {
            data.decrypt_blocks(&mut blocks[..n]);
        }
        for j in 0..n {
            let x: [u8; 16] = blocks[j].into();
            s[j * 16..j * 16 + 16].copy_from_slice(&(u128::from_le_bytes(x) ^ tweaks[j]).to_le_bytes());
        }
    }
}

/// AES-CBC (with the Elephant diffuser when `tweak` is set) over whole sectors.
fn cbc_area<C: BlockEncrypt + BlockDecrypt + BlockSizeUser<BlockSize = <Aes128 as BlockSizeUser>::BlockSize>>(
    key: &C,
    tweak: Option<&C>,
    pos: u64,
    ss: usize,
    buf: &mut [u8],
    encrypt: bool,
) {
    for (i, s) in buf.chunks_exact_mut(ss).enumerate() {
        let at = pos + (i * ss) as u64;
        if encrypt {
            cbc_encrypt_sector(key, tweak, at, s)
        } else {
            cbc_decrypt_sector(key, tweak, at, s)
        }
    }
}

fn cbc_decrypt_sector<
    C: BlockEncrypt + BlockDecrypt + BlockSizeUser<BlockSize = <Aes128 as BlockSizeUser>::BlockSize>,
>(
    key: &C,
    tweak: Option<&C>,
    pos: u64,
    s: &mut [u8],
) {
    let n = (s.len() / 16).min(MAX_BLOCKS);
    let mut iv = offset_block(pos);
    key.encrypt_block(&mut iv);
    let mut blocks: [Block; MAX_BLOCKS] = core::array::from_fn(|_| Block::default());
    for (b, c) in blocks[..n].iter_mut().zip(s.chunks_exact(16)) {
        b.copy_from_slice(c);
    }
    key.decrypt_blocks(&mut blocks[..n]);
    // XOR each block with the previous ciphertext block (the IV for the first).
    for i in (0..n).rev() {
        let prev: [u8; 16] = if i == 0 {
            iv.into()
        } else {
            let mut p = [0u8; 16];
            p.copy_from_slice(&s[(i - 1) * 16..i * 16]);
            p
        };
        for (j, x) in s[i * 16..i * 16 + 16].iter_mut().enumerate() {
            *x = blocks[i][j] ^ prev[j];
        }
    }
    if let Some(t) = tweak {
        let mut w = [0u32; 1024];
        let w = &mut w[..s.len() / 4];
        words(s, w);
        diffuser_b_decrypt(w);
        diffuser_a_decrypt(w);
        unwords(w, s);
        let k = sector_key(t, pos);
        for (i, x) in s.iter_mut().enumerate() {
            *x ^= k[i % 32];
        }
    }
}

fn cbc_encrypt_sector<
    C: BlockEncrypt + BlockDecrypt + BlockSizeUser<BlockSize = <Aes128 as BlockSizeUser>::BlockSize>,
>(
    key: &C,
    tweak: Option<&C>,
    pos: u64,
    s: &mut [u8],
) {
    if let Some(t) = tweak {
        let k = sector_key(t, pos);
        for (i, x) in s.iter_mut().enumerate() {
            *x ^= k[i % 32];
        }
        let mut w = [0u32; 1024];
        let w = &mut w[..s.len() / 4];
        words(s, w);
        diffuser_a_encrypt(w);
        diffuser_b_encrypt(w);
        unwords(w, s);
    }
    let mut prev = offset_block(pos);
    key.encrypt_block(&mut prev);
    for c in s.chunks_exact_mut(16) {
        let mut b = Block::default();
        for j in 0..16 {
            b[j] = c[j] ^ prev[j];
        }
        key.encrypt_block(&mut b);
        c.copy_from_slice(&b);
        prev = b;
    }
}
