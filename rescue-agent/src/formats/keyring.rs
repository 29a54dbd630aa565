//! Site key files: the BitLocker recovery keys of a site, carried on the
//! stick at [`crate::formats::stick::KEYS_PATH`], sealed with a PIN (or, on explicit request,
//! unsealed).
//!
//! # Format (all integers little-endian)
//!
//! ```text
//! offset  size  field
//!      0     8  magic "RSCKEYS\x1a"
//!      8     2  format version (1)
//!     10     1  flags: bit 0 = sealed; other bits must be 0
//!     11     1  KDF: 0 = none (unsealed), 1 = Argon2id v1.3
//!     12     4  number of keys n (1..=MAX_KEYS)
//!     16     4  Argon2 memory in KiB     (0 when unsealed)
//!     20     4  Argon2 passes            (0 when unsealed)
//!     24     4  Argon2 lanes             (0 when unsealed)
//!     28    16  Argon2 salt              (0 when unsealed)
//!     44    12  ChaCha20-Poly1305 nonce  (0 when unsealed)
//!     56     8  reserved, 0
//!     64  16*n  Key IDs (GUIDs as BitLocker stores them), strictly ascending
//!      …  16*n  body: the 16-byte recovery keys, in Key ID order
//!                (ChaCha20-Poly1305 ciphertext when sealed)
//!      …    16  Poly1305 tag (sealed only)
//!      …    32  SHA-256 of every byte before it
//! ```
//!
//! When sealed, the AEAD key is Argon2id(PIN as UTF-8, salt) with the
//! parameters in the header, and the associated data is the header and the
//! Key IDs: they are readable without the PIN (so `rescue inspect` and the
//! agent's prompt can list them) but cannot be altered without the PIN.
//!
//! The trailing SHA-256 is unkeyed: it tells a damaged or carelessly edited
//! file ([`KeyringError::Tampered`]) from a wrong PIN
//! ([`KeyringError::WrongPin`]). Someone who alters the file *and* fixes the
//! checksum gets `WrongPin` — and still no keys.
//!
//! A recovery key is stored as the 16 bytes its 48-digit recovery password
//! encodes (block / 11, little-endian 16-bit each), never as digits;
//! [`SiteKeys::password`] gives the digits back for unlocking.
//!
//! Nothing here formats or logs key material; every buffer holding a key,
//! a PIN-derived key or Argon2's working memory is zeroized.

#![deny(clippy::indexing_slicing)]

use crate::util::guid::Guid;
use crate::util::le::{array, le16, le32};
use alloc::string::String;
use alloc::vec::Vec;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use core::fmt;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// The file's first eight bytes.
pub const MAGIC: [u8; 8] = *b"RSCKEYS\x1a";
/// The format version this engine writes and reads.
pub const VERSION: u16 = 1;
/// Bytes before the Key IDs.
pub const HEADER_LEN: usize = 64;
/// Most keys one file may hold (a large fleet; bounds every allocation).
pub const MAX_KEYS: usize = 100_000;
/// Largest file [`Keyring::parse`] accepts.
pub const MAX_FILE_LEN: usize = HEADER_LEN + MAX_KEYS * 32 + TAG_LEN + SUM_LEN;
/// Most Argon2 memory a file may ask for (KiB): the agent must find it free
/// in a PC's (or a small VM's) firmware memory.
pub const MAX_M_KIB: u32 = 1024 * 1024;
/// Most Argon2 passes a file may ask for.
pub const MAX_T: u32 = 64;
/// Most Argon2 lanes a file may ask for (the agent computes them one after another).
pub const MAX_P: u32 = 8;
/// Shortest site PIN a new key file may be sealed with.
pub const MIN_PIN_LEN: usize = 8;
/// Longest site PIN, in characters (printable ASCII, so also bytes): the
/// same limit for `rescue build` and the agent's prompt.
pub const MAX_PIN_LEN: usize = 64;

/// Why `pin` cannot seal a new key file, or `None` when it can: 8 to 64
/// printable ASCII characters (what the agent's keyboard input can type on
/// any PC, whatever its keyboard layout setting).
pub fn pin_problem(pin: &str) -> Option<&'static str> {
    if !pin.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
        Some("the PIN may hold only printable ASCII characters (letters, digits, punctuation, space)")
    } else if pin.len() < MIN_PIN_LEN {
        Some("the PIN must be at least 8 characters")
    } else if pin.len() > MAX_PIN_LEN {
        Some("the PIN must be at most 64 characters")
    } else {
        None
    }
}

const TAG_LEN: usize = 16;
const SUM_LEN: usize = 32;
const FLAG_SEALED: u8 = 1;
const KDF_NONE: u8 = 0;
const KDF_ARGON2ID: u8 = 1;

/// Why a key file cannot be read or opened. Never carries key material.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyringError {
    /// The file is shorter than its structure needs (`len` bytes).
    TooShort {
        /// Length of the file in bytes.
        len: usize,
    },
    /// The file is larger than [`MAX_FILE_LEN`].
    TooLarge {
        /// Length of the file in bytes.
        len: usize,
    },
    /// The file does not start with [`MAGIC`]: it is not a key file.
    NotAKeyFile,
    /// A format version this engine does not read.
    UnsupportedVersion {
        /// The version field of the header (bytes 8–9).
        version: u16,
    },
    /// The SHA-256 over the file does not match: the file was damaged or altered.
    Tampered,
    /// A structure is inconsistent although the checksum matches (a file
    /// not written by `rescue`); `what` names it, `offset` is its byte position.
    Corrupt {
        /// Names the structure, as it appears in the message.
        what: &'static str,
        /// Byte position of the structure in the file.
        offset: usize,
    },
    /// The Argon2 parameters are outside what the agent can afford.
    KdfParams {
        /// Argon2 memory asked for, in KiB.
        m_kib: u32,
        /// Argon2 passes asked for.
        t: u32,
        /// Argon2 lanes asked for.
        p: u32,
    },
    /// The PIN does not open the sealed keys (or the file was altered and
    /// its checksum recomputed).
    WrongPin,
    /// The PIN is empty or longer than [`MAX_PIN_LEN`] (or, to seal, fails [`pin_problem`]).
    BadPin,
    /// The file is sealed: open it with a PIN.
    Sealed,
    /// Two keys for one Key ID were given to [`SiteKeys::insert`] (or found in a file).
    DuplicateKeyId {
        /// The Key ID given twice.
        key_id: Guid,
    },
    /// More than [`MAX_KEYS`] keys, or none.
    KeyCount {
        /// The number of keys given or found.
        count: usize,
    },
    /// Not enough memory for Argon2 (`kib` KiB asked).
    OutOfMemory {
        /// Argon2 memory the file asks for, in KiB.
        kib: u32,
    },
}

impl fmt::Display for KeyringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyringError::TooShort { len } => write!(f, "the key file is truncated ({len} bytes)"),
            KeyringError::TooLarge { len } => write!(f, "the key file is too large ({len} bytes, at most {MAX_FILE_LEN})"),
            KeyringError::NotAKeyFile => f.write_str("not a rescue key file (wrong magic)"),
            KeyringError::UnsupportedVersion { version } => {
                write!(f, "key file format version {version} is not supported (this agent reads version {VERSION})")
            }
            KeyringError::Tampered => f.write_str("the key file is damaged or was altered (checksum mismatch)"),
            KeyringError::Corrupt { what, offset } => write!(f, "the key file is corrupt: {what} at byte {offset}"),
            KeyringError::KdfParams { m_kib, t, p } => write!(
                f,
                "the key file asks for Argon2 parameters this agent cannot afford (memory {m_kib} KiB, {t} passes, {p} lanes)"
            ),
            KeyringError::WrongPin => f.write_str("wrong PIN"),
            KeyringError::BadPin => write!(f, "the PIN must be {MIN_PIN_LEN} to {MAX_PIN_LEN} printable ASCII characters"),
            KeyringError::Sealed => f.write_str("the key file is sealed: a PIN is needed"),
            KeyringError::DuplicateKeyId { key_id } => write!(f, "two keys for Key ID {{{key_id}}}"),
            KeyringError::KeyCount { count } => write!(f, "{count} keys: a key file holds 1 to {MAX_KEYS}"),
            KeyringError::OutOfMemory { kib } => write!(f, "not enough memory for the PIN check ({kib} KiB needed)"),
        }
    }
}

impl core::error::Error for KeyringError {}

/// Argon2id cost parameters, stored in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes over the memory.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// What `rescue build` uses unless told otherwise: 128 MiB, 3 passes, 1
    /// lane. About 0.45 s on one x86-64 core (argon2-cffi, AVX2), a second
    /// or two for the agent's software code on a PC, a few seconds under
    /// QEMU TCG; every PC that boots UEFI has the memory. `--kdf-memory`
    /// raises it to [`MAX_M_KIB`].
    pub const DEFAULT: KdfParams = KdfParams { m_kib: 128 * 1024, t: 3, p: 1 };

    /// Checks the parameters against what the agent can afford and what Argon2 accepts.
    pub fn check(&self) -> Result<(), KeyringError> {
        let bad = KeyringError::KdfParams { m_kib: self.m_kib, t: self.t, p: self.p };
        if !(1..=MAX_P).contains(&self.p)
            || !(1..=MAX_T).contains(&self.t)
            || self.m_kib > MAX_M_KIB
            || self.m_kib < 8 * self.p
        {
            return Err(bad);
        }
        Ok(())
    }
}

/// Recovery keys by Key ID. Keys are zeroized when dropped; `Debug` shows only the Key IDs.
#[derive(Default, Clone)]
pub struct SiteKeys {
    /// Sorted by Key ID bytes, no duplicates.
    entries: Vec<(Guid, Zeroizing<[u8; 16]>)>,
}

impl fmt::Debug for SiteKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiteKeys").field("key_ids", &self.entries.iter().map(|e| e.0).collect::<Vec<_>>()).finish()
    }
}

impl SiteKeys {
    /// An empty set of keys.
    pub fn new() -> SiteKeys {
        SiteKeys::default()
    }

    /// Adds the 16-byte recovery key for `key_id` (as
    /// [`crate::formats::bitlocker::keys::parse_recovery_password`] returns it).
    /// A second key for the same Key ID is refused, even when equal.
    pub fn insert(&mut self, key_id: Guid, key: &[u8; 16]) -> Result<(), KeyringError> {
        match self.entries.binary_search_by(|e| e.0 .0.cmp(&key_id.0)) {
            Ok(_) => Err(KeyringError::DuplicateKeyId { key_id }),
            Err(at) => {
                if self.entries.len() >= MAX_KEYS {
                    return Err(KeyringError::KeyCount { count: self.entries.len() + 1 });
                }
                self.entries.insert(at, (key_id, Zeroizing::new(*key)));
                Ok(())
            }
        }
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The Key IDs, in ascending byte order.
    pub fn key_ids(&self) -> impl Iterator<Item = Guid> + '_ {
        self.entries.iter().map(|e| e.0)
    }

    /// True when a key for `key_id` is held.
    pub fn contains(&self, key_id: &Guid) -> bool {
        self.find(key_id).is_some()
    }

    /// The 16-byte recovery key for `key_id`.
    pub fn key(&self, key_id: &Guid) -> Option<&[u8; 16]> {
        self.find(key_id).map(|k| &**k)
    }

    /// The 48-digit recovery password (8 dash-separated blocks) for `key_id`,
    /// ready for [`crate::formats::bitlocker::UnlockKey::RecoveryPassword`].
    pub fn password(&self, key_id: &Guid) -> Option<Zeroizing<String>> {
        self.find(key_id).map(|k| recovery_password(k))
    }

    /// The first of `key_ids` (e.g. a volume's recovery-password protectors)
    /// that has a key here, with its recovery password.
    pub fn find_any<'a>(&self, key_ids: impl IntoIterator<Item = &'a Guid>) -> Option<(Guid, Zeroizing<String>)> {
        key_ids.into_iter().find_map(|id| self.password(id).map(|pw| (*id, pw)))
    }

    fn find(&self, key_id: &Guid) -> Option<&Zeroizing<[u8; 16]>> {
        let i = self.entries.binary_search_by(|e| e.0 .0.cmp(&key_id.0)).ok()?;
        self.entries.get(i).map(|e| &e.1)
    }
}

/// The recovery password a 16-byte recovery key stands for (the inverse of
/// [`crate::formats::bitlocker::keys::parse_recovery_password`]).
pub fn recovery_password(key: &[u8; 16]) -> Zeroizing<String> {
    // Room for the whole password up front: the string never reallocates,
    // so no unzeroized copy is left behind.
    let mut s = Zeroizing::new(String::with_capacity(55));
    for (b, pair) in key.chunks_exact(2).enumerate() {
        let mut v = le16(pair, 0).unwrap_or(0) as u32 * 11;
        let mut digits = [0u8; 6];
        for d in digits.iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
        if b > 0 {
            s.push('-');
        }
        for d in digits {
            s.push(d as char);
        }
        digits.zeroize();
    }
    s
}

/// Reads a GUID written as text: `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX`,
/// any case, optionally in braces, surrounding spaces ignored. Returns the
/// GUID as BitLocker stores it (first three fields little-endian), so it
/// compares equal to a protector's Key ID.
pub fn parse_guid(text: &str) -> Option<Guid> {
    let t = text.trim();
    let t = match (t.strip_prefix('{'), t.strip_suffix('}')) {
        (Some(_), Some(_)) if t.len() >= 2 => t[1..t.len() - 1].trim(),
        (None, None) => t,
        _ => return None,
    };
    let b = t.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b.get(i) != Some(&b'-')) {
        return None;
    }
    let mut raw = [0u8; 16];
    let mut n = 0;
    let mut hi: Option<u8> = None;
    for (i, &c) in b.iter().enumerate() {
        if [8, 13, 18, 23].contains(&i) {
            continue;
        }
        let v = (c as char).to_digit(16)? as u8;
        match hi.take() {
            None => hi = Some(v),
            Some(h) => {
                *raw.get_mut(n)? = h << 4 | v;
                n += 1;
            }
        }
    }
    let a = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let b1 = u16::from_be_bytes([raw[4], raw[5]]);
    let c1 = u16::from_be_bytes([raw[6], raw[7]]);
    let mut d = [0u8; 8];
    d.copy_from_slice(&raw[8..]);
    Some(Guid::from_fields(a, b1, c1, d))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SealParams {
    kdf: KdfParams,
    salt: [u8; 16],
    nonce: [u8; 12],
}

/// A key file read without a PIN: whether it is sealed and which Key IDs it
/// holds. The checksum has been verified.
#[derive(Clone)]
pub struct Keyring {
    seal: Option<SealParams>,
    key_ids: Vec<Guid>,
    /// Header and Key IDs (the AEAD associated data).
    aad: Vec<u8>,
    /// Keys (plain or ciphertext), 16 bytes each. Zeroized on drop: unsealed, they are keys.
    body: Zeroizing<Vec<u8>>,
    tag: [u8; TAG_LEN],
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("sealed", &self.is_sealed())
            .field("kdf", &self.kdf())
            .field("key_ids", &self.key_ids)
            .finish()
    }
}

impl Keyring {
    /// Reads a key file's structure, never panicking and allocating at most
    /// about the file's size. Checks, in order: length, magic, version,
    /// checksum ([`KeyringError::Tampered`]), then every header field.
    pub fn parse(bytes: &[u8]) -> Result<Keyring, KeyringError> {
        let len = bytes.len();
        if len > MAX_FILE_LEN {
            return Err(KeyringError::TooLarge { len });
        }
        if bytes.get(..8) != Some(&MAGIC[..]) {
            return if len < 8 && MAGIC.starts_with(bytes) {
                Err(KeyringError::TooShort { len })
            } else {
                Err(KeyringError::NotAKeyFile)
            };
        }
        if len < HEADER_LEN + SUM_LEN {
            return Err(KeyringError::TooShort { len });
        }
        let version = le16(bytes, 8).unwrap_or(0);
        if version != VERSION {
            return Err(KeyringError::UnsupportedVersion { version });
        }
        let (content, sum) = bytes.split_at(len - SUM_LEN);
        if Sha256::digest(content).as_slice() != sum {
            return Err(KeyringError::Tampered);
        }
        let corrupt = |what, offset| Err(KeyringError::Corrupt { what, offset });
        // The header is inside `content` (its length was checked above).
        let field = |from: usize, to: usize| content.get(from..to).unwrap_or_default();
        let flags = field(10, 11).first().copied().unwrap_or(0);
        if flags & !FLAG_SEALED != 0 {
            return corrupt("unknown flags", 10);
        }
        let sealed = flags & FLAG_SEALED != 0;
        let kdf_id = field(11, 12).first().copied().unwrap_or(0);
        let count = le32(content, 12).unwrap_or(0) as usize;
        if count == 0 || count > MAX_KEYS {
            return Err(KeyringError::KeyCount { count });
        }
        if field(56, 64).iter().any(|&b| b != 0) {
            return corrupt("reserved bytes not zero", 56);
        }
        let seal = if sealed {
            if kdf_id != KDF_ARGON2ID {
                return corrupt("unknown key derivation", 11);
            }
            let kdf = KdfParams {
                m_kib: le32(content, 16).unwrap_or(0),
                t: le32(content, 20).unwrap_or(0),
                p: le32(content, 24).unwrap_or(0),
            };
            kdf.check()?;
            let (Some(salt), Some(nonce)) = (array(content, 28), array(content, 44)) else {
                return Err(KeyringError::TooShort { len });
            };
            Some(SealParams { kdf, salt, nonce })
        } else {
            if kdf_id != KDF_NONE {
                return corrupt("key derivation in an unsealed file", 11);
            }
            if field(16, 56).iter().any(|&b| b != 0) {
                return corrupt("sealing parameters in an unsealed file", 16);
            }
            None
        };
        let tag_len = if sealed { TAG_LEN } else { 0 };
        // count <= MAX_KEYS, so this cannot overflow.
        let want = HEADER_LEN + 32 * count + tag_len;
        if content.len() != want {
            return if content.len() < want {
                Err(KeyringError::TooShort { len })
            } else {
                corrupt("bytes after the keys", want)
            };
        }
        let ids_end = HEADER_LEN + 16 * count;
        let mut key_ids = Vec::with_capacity(count);
        for (i, raw) in field(HEADER_LEN, ids_end).chunks_exact(16).enumerate() {
            let id = Guid::from_slice(raw);
            if let Some(prev) = key_ids.last() {
                let prev: &Guid = prev;
                if prev.0 >= id.0 {
                    return if prev.0 == id.0 {
                        Err(KeyringError::DuplicateKeyId { key_id: id })
                    } else {
                        corrupt("Key IDs out of order", HEADER_LEN + 16 * i)
                    };
                }
            }
            key_ids.push(id);
        }
        let body_end = ids_end + 16 * count;
        let tag = if sealed { array(content, body_end).ok_or(KeyringError::TooShort { len })? } else { [0u8; TAG_LEN] };
        Ok(Keyring {
            seal,
            key_ids,
            aad: field(0, ids_end).to_vec(),
            body: Zeroizing::new(field(ids_end, body_end).to_vec()),
            tag,
        })
    }

    /// True when the keys need a PIN.
    pub fn is_sealed(&self) -> bool {
        self.seal.is_some()
    }

    /// The Argon2id parameters (sealed files only).
    pub fn kdf(&self) -> Option<KdfParams> {
        self.seal.map(|s| s.kdf)
    }

    /// The Key IDs the file holds keys for, ascending; readable without a PIN.
    pub fn key_ids(&self) -> &[Guid] {
        &self.key_ids
    }

    /// The keys of an unsealed file; [`KeyringError::Sealed`] for a sealed one.
    pub fn open_unsealed(&self) -> Result<SiteKeys, KeyringError> {
        if self.is_sealed() {
            return Err(KeyringError::Sealed);
        }
        Ok(self.keys_from(&self.body))
    }

    /// The keys: a sealed file is opened with `pin` (Argon2id with the file's
    /// parameters, then ChaCha20-Poly1305; takes about a second in the
    /// agent); an unsealed file ignores `pin`. [`KeyringError::WrongPin`]
    /// when the PIN does not open it; [`KeyringError::OutOfMemory`] when
    /// Argon2's memory cannot be had.
    pub fn open(&self, pin: &str) -> Result<SiteKeys, KeyringError> {
        let Some(seal) = self.seal else {
            return self.open_unsealed();
        };
        let key = derive(pin, &seal.kdf, &seal.salt)?;
        let mut body = Zeroizing::new(self.body.to_vec());
        ChaCha20Poly1305::new(Key::from_slice(&key[..]))
            .decrypt_in_place_detached(Nonce::from_slice(&seal.nonce), &self.aad, &mut body, Tag::from_slice(&self.tag))
            .map_err(|_| KeyringError::WrongPin)?;
        Ok(self.keys_from(&body))
    }

    fn keys_from(&self, body: &[u8]) -> SiteKeys {
        let mut entries = Vec::with_capacity(self.key_ids.len());
        for (id, k) in self.key_ids.iter().zip(body.chunks_exact(16)) {
            let mut key = Zeroizing::new([0u8; 16]);
            key.copy_from_slice(k);
            entries.push((*id, key));
        }
        // Key IDs were checked strictly ascending by `parse`.
        SiteKeys { entries }
    }
}

/// Argon2id(PIN, salt) → 32-byte AEAD key. The working memory is reserved
/// fallibly (an error, not an abort, when the firmware has too little) and
/// zeroized afterwards.
fn derive(pin: &str, kdf: &KdfParams, salt: &[u8; 16]) -> Result<Zeroizing<[u8; 32]>, KeyringError> {
    if pin.is_empty() || pin.len() > MAX_PIN_LEN {
        return Err(KeyringError::BadPin);
    }
    kdf.check()?;
    let bad = KeyringError::KdfParams { m_kib: kdf.m_kib, t: kdf.t, p: kdf.p };
    let params = argon2::Params::new(kdf.m_kib, kdf.t, kdf.p, Some(32)).map_err(|_| bad.clone())?;
    let blocks = params.block_count();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut memory: Vec<argon2::Block> = Vec::new();
    memory.try_reserve_exact(blocks).map_err(|_| KeyringError::OutOfMemory { kib: kdf.m_kib })?;
    memory.resize(blocks, argon2::Block::default());
    let mut key = Zeroizing::new([0u8; 32]);
    let r = argon.hash_password_into_with_memory(pin.as_bytes(), salt, &mut key[..], &mut memory[..]);
    memory.iter_mut().for_each(Zeroize::zeroize);
    r.map_err(|_| bad)?;
    Ok(key)
}

fn header(sealed: Option<&SealParams>, keys: &SiteKeys) -> Result<Vec<u8>, KeyringError> {
    let count = keys.len();
    if count == 0 || count > MAX_KEYS {
        return Err(KeyringError::KeyCount { count });
    }
    let mut out = Vec::with_capacity(HEADER_LEN + 32 * count + TAG_LEN + SUM_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    match sealed {
        Some(s) => {
            out.extend_from_slice(&[FLAG_SEALED, KDF_ARGON2ID]);
            out.extend_from_slice(&(count as u32).to_le_bytes());
            out.extend_from_slice(&s.kdf.m_kib.to_le_bytes());
            out.extend_from_slice(&s.kdf.t.to_le_bytes());
            out.extend_from_slice(&s.kdf.p.to_le_bytes());
            out.extend_from_slice(&s.salt);
            out.extend_from_slice(&s.nonce);
        }
        None => {
            out.extend_from_slice(&[0, KDF_NONE]);
            out.extend_from_slice(&(count as u32).to_le_bytes());
            out.extend_from_slice(&[0u8; 40]);
        }
    }
    out.extend_from_slice(&[0u8; 8]);
    debug_assert_eq!(out.len(), HEADER_LEN);
    for id in keys.key_ids() {
        out.extend_from_slice(&id.0);
    }
    Ok(out)
}

fn finish(mut out: Vec<u8>) -> Vec<u8> {
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// A sealed key file holding `keys`, readable with `pin`. `salt` and
/// `nonce` must be fresh random bytes for every file (the caller supplies
/// them: the engine has no random source).
pub fn seal(
    keys: &SiteKeys,
    pin: &str,
    kdf: KdfParams,
    salt: [u8; 16],
    nonce: [u8; 12],
) -> Result<Vec<u8>, KeyringError> {
    if pin_problem(pin).is_some() {
        return Err(KeyringError::BadPin);
    }
    let params = SealParams { kdf, salt, nonce };
    let mut out = header(Some(&params), keys)?;
    let key = derive(pin, &kdf, &salt)?;
    let mut body = Zeroizing::new(Vec::with_capacity(16 * keys.len()));
    for (_, k) in &keys.entries {
        body.extend_from_slice(&k[..]);
    }
    let tag = ChaCha20Poly1305::new(Key::from_slice(&key[..]))
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), &out, &mut body)
        .map_err(|_| KeyringError::KeyCount { count: keys.len() })?;
    out.extend_from_slice(&body);
    out.extend_from_slice(&tag);
    Ok(finish(out))
}

/// An unsealed key file (`rescue build --no-seal`): the keys in clear, for
/// sites that accept that a lost stick gives them away.
pub fn unsealed(keys: &SiteKeys) -> Result<Vec<u8>, KeyringError> {
    let mut out = header(None, keys)?;
    for (_, k) in &keys.entries {
        out.extend_from_slice(&k[..]);
    }
    Ok(finish(out))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index what they built
mod tests {
    use super::*;
    use crate::formats::bitlocker::keys::parse_recovery_password;
    use alloc::vec;

    const PW1: &str = "236808-089419-192665-495704-618299-073414-538373-542366";
    const PW2: &str = "000000-000011-720874-111111-222222-333333-444444-555555";
    const ID1: &str = "{B5D1E0A1-6C0F-4E7E-9A4B-0123456789AB}";
    const ID2: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
    /// Cheap parameters so the tests run fast (the real ones are tested once).
    const FAST: KdfParams = KdfParams { m_kib: 64, t: 1, p: 1 };

    fn site() -> SiteKeys {
        let mut s = SiteKeys::new();
        s.insert(parse_guid(ID1).unwrap(), &parse_recovery_password(PW1).unwrap()).unwrap();
        s.insert(parse_guid(ID2).unwrap(), &parse_recovery_password(PW2).unwrap()).unwrap();
        s
    }

    fn sealed_file() -> Vec<u8> {
        seal(&site(), "4711-site", FAST, [7; 16], [9; 12]).unwrap()
    }

    /// Recomputes the trailing checksum (a tamperer who knows the format).
    fn fix_sum(b: &mut [u8]) {
        let n = b.len() - 32;
        let sum = Sha256::digest(&b[..n]);
        b[n..].copy_from_slice(&sum);
    }

    #[test]
    fn pins_must_be_8_to_64_printable_ascii() {
        for ok in ["2468-site", "correct horse", "Abc!1234", &"x".repeat(64)] {
            assert_eq!(pin_problem(ok), None, "{ok}");
        }
        for bad in ["", "1234", "1234567", "ab\tcdefgh", "pässwörter", &"x".repeat(65)] {
            assert!(pin_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(seal(&site(), "1234", FAST, [0; 16], [0; 12]).unwrap_err(), KeyringError::BadPin);
    }

    #[test]
    fn guid_text_round_trips_and_matches_display() {
        let g = parse_guid(ID1).unwrap();
        assert_eq!(alloc::format!("{g}"), "B5D1E0A1-6C0F-4E7E-9A4B-0123456789AB");
        assert_eq!(parse_guid(" b5d1e0a1-6c0f-4e7e-9a4b-0123456789ab "), Some(g));
        assert_eq!(parse_guid("{ B5D1E0A1-6C0F-4E7E-9A4B-0123456789AB }"), Some(g));
        for bad in [
            "",
            "{}",
            "{B5D1E0A1-6C0F-4E7E-9A4B-0123456789AB",
            "B5D1E0A1-6C0F-4E7E-9A4B-0123456789A",
            "B5D1E0A16C0F-4E7E-9A4B-0123456789ABC",
            "G5D1E0A1-6C0F-4E7E-9A4B-0123456789AB",
            "B5D1E0A1-6C0F-4E7E-9A4B-0123456789ÄB",
        ] {
            assert_eq!(parse_guid(bad), None, "{bad}");
        }
        // Same layout as a protector's Key ID on disk.
        assert_eq!(g.0[..4], [0xA1, 0xE0, 0xD1, 0xB5]);
    }

    #[test]
    fn recovery_password_is_the_inverse_of_parsing() {
        for pw in [PW1, PW2] {
            let k = parse_recovery_password(pw).unwrap();
            assert_eq!(&recovery_password(&k)[..], pw);
        }
        let max = recovery_password(&[0xFF; 16]);
        assert_eq!(&max[..7], "720885-");
        assert!(parse_recovery_password(&max).is_ok());
    }

    #[test]
    fn sealed_round_trip_lists_ids_without_pin() {
        let file = sealed_file();
        assert_eq!(file.len(), HEADER_LEN + 2 * 32 + 16 + 32);
        let kr = Keyring::parse(&file).unwrap();
        assert!(kr.is_sealed());
        assert_eq!(kr.kdf(), Some(FAST));
        let ids: Vec<Guid> = kr.key_ids().to_vec();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&parse_guid(ID1).unwrap()) && ids.contains(&parse_guid(ID2).unwrap()));
        assert_eq!(kr.open_unsealed().unwrap_err(), KeyringError::Sealed);
        let keys = kr.open("4711-site").unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(&keys.password(&parse_guid(ID1).unwrap()).unwrap()[..], PW1);
        assert_eq!(&keys.password(&parse_guid(ID2).unwrap()).unwrap()[..], PW2);
        assert_eq!(keys.key(&parse_guid(ID2).unwrap()), Some(&*parse_recovery_password(PW2).unwrap()));
        assert!(keys.password(&Guid([1; 16])).is_none());
        let (id, pw) = keys.find_any(&[Guid([1; 16]), parse_guid(ID2).unwrap(), parse_guid(ID1).unwrap()]).unwrap();
        assert_eq!((id, &pw[..]), (parse_guid(ID2).unwrap(), PW2));
        assert!(keys.find_any(&[Guid([1; 16])]).is_none());
        // Debug never shows keys.
        let dbg = alloc::format!("{keys:?} {kr:?}");
        assert!(!dbg.contains("236808") && !dbg.contains("4711-site"), "{dbg}");
    }

    #[test]
    fn wrong_pin_and_bad_pin() {
        let kr = Keyring::parse(&sealed_file()).unwrap();
        assert_eq!(kr.open("4712").unwrap_err(), KeyringError::WrongPin);
        assert_eq!(kr.open("47111").unwrap_err(), KeyringError::WrongPin);
        assert_eq!(kr.open("").unwrap_err(), KeyringError::BadPin);
        assert_eq!(seal(&site(), "", FAST, [0; 16], [0; 12]).unwrap_err(), KeyringError::BadPin);
    }

    #[test]
    fn ciphertext_holds_no_key_material() {
        let file = sealed_file();
        for pw in [PW1, PW2] {
            let k = parse_recovery_password(pw).unwrap();
            assert!(!file.windows(16).any(|w| w == &k[..]));
            assert!(!file.windows(6).any(|w| w == &pw.as_bytes()[..6]));
        }
    }

    #[test]
    fn every_flipped_bit_is_tampered_and_every_truncation_fails() {
        let file = sealed_file();
        for i in 0..file.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = file.clone();
                b[i] ^= bit;
                let e = Keyring::parse(&b).unwrap_err();
                match i {
                    0..=7 => assert_eq!(e, KeyringError::NotAKeyFile, "byte {i}"),
                    8 | 9 => assert!(matches!(e, KeyringError::UnsupportedVersion { .. }), "byte {i}: {e:?}"),
                    _ => assert_eq!(e, KeyringError::Tampered, "byte {i}"),
                }
            }
        }
        for n in 0..file.len() {
            assert!(Keyring::parse(&file[..n]).is_err(), "length {n}");
        }
        let mut longer = file.clone();
        longer.push(0);
        assert!(Keyring::parse(&longer).is_err());
    }

    #[test]
    fn altered_with_fixed_checksum_is_wrong_pin_or_corrupt() {
        let file = sealed_file();
        // Key IDs, ciphertext and tag: AEAD catches it.
        for i in HEADER_LEN..file.len() - 32 {
            let mut b = file.clone();
            b[i] ^= 0x40;
            fix_sum(&mut b);
            match Keyring::parse(&b) {
                Ok(kr) => assert_eq!(kr.open("4711-site").unwrap_err(), KeyringError::WrongPin, "byte {i}"),
                Err(e) => assert!(matches!(e, KeyringError::Corrupt { .. }), "byte {i}: {e:?}"),
            }
        }
        // Salt and nonce: also bound into the result.
        for i in 28..56 {
            let mut b = file.clone();
            b[i] ^= 1;
            fix_sum(&mut b);
            assert_eq!(Keyring::parse(&b).unwrap().open("4711-site").unwrap_err(), KeyringError::WrongPin, "byte {i}");
        }
        // Dropping the seal flag does not reveal anything.
        let mut b = file.clone();
        b[10] = 0;
        fix_sum(&mut b);
        assert!(Keyring::parse(&b).is_err());
    }

    #[test]
    fn kdf_bounds_are_enforced_before_any_allocation() {
        let mut b = sealed_file();
        b[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        fix_sum(&mut b);
        assert!(matches!(Keyring::parse(&b).unwrap_err(), KeyringError::KdfParams { .. }));
        let mut b = sealed_file();
        b[24..28].copy_from_slice(&0u32.to_le_bytes());
        fix_sum(&mut b);
        assert!(matches!(Keyring::parse(&b).unwrap_err(), KeyringError::KdfParams { .. }));
        let mut b = sealed_file();
        b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        fix_sum(&mut b);
        assert!(matches!(Keyring::parse(&b).unwrap_err(), KeyringError::KeyCount { .. }));
        let too_big = KdfParams { m_kib: MAX_M_KIB + 1, t: 1, p: 1 };
        assert!(seal(&site(), "1234-5678", too_big, [0; 16], [0; 12]).is_err());
    }

    #[test]
    fn unsealed_round_trip() {
        let file = unsealed(&site()).unwrap();
        let kr = Keyring::parse(&file).unwrap();
        assert!(!kr.is_sealed());
        assert_eq!(kr.kdf(), None);
        let keys = kr.open_unsealed().unwrap();
        assert_eq!(&keys.password(&parse_guid(ID1).unwrap()).unwrap()[..], PW1);
        assert_eq!(kr.open("anything").unwrap().len(), 2);
        let mut b = file.clone();
        b[70] ^= 1;
        assert_eq!(Keyring::parse(&b).unwrap_err(), KeyringError::Tampered);
    }

    #[test]
    fn duplicates_and_empty_sets_are_refused() {
        let mut s = site();
        let e = s.insert(parse_guid(ID1).unwrap(), &[0; 16]).unwrap_err();
        assert_eq!(e, KeyringError::DuplicateKeyId { key_id: parse_guid(ID1).unwrap() });
        assert_eq!(unsealed(&SiteKeys::new()).unwrap_err(), KeyringError::KeyCount { count: 0 });
        // A file with a repeated Key ID (not written by us) is refused.
        let mut b = unsealed(&site()).unwrap();
        let (a, c) = (HEADER_LEN, HEADER_LEN + 16);
        let first: Vec<u8> = b[a..c].to_vec();
        b[c..c + 16].copy_from_slice(&first);
        fix_sum(&mut b);
        assert!(matches!(Keyring::parse(&b).unwrap_err(), KeyringError::DuplicateKeyId { .. }));
    }

    #[test]
    fn garbage_never_panics() {
        // A small deterministic generator: random bytes, and random bytes behind a valid magic.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..2000 {
            let len = (next() % 300) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 && len >= 8 {
                b[..8].copy_from_slice(&MAGIC);
                if len >= 10 {
                    b[8..10].copy_from_slice(&VERSION.to_le_bytes());
                }
                if len >= 32 {
                    fix_sum(&mut b);
                }
            }
            if let Ok(kr) = Keyring::parse(&b) {
                let _ = kr.open("1234");
            }
        }
        assert!(Keyring::parse(&vec![0u8; MAX_FILE_LEN + 1]).is_err());
    }

    #[test]
    #[ignore = "measures the default Argon2 parameters (run with --ignored --nocapture)"]
    fn default_params_cost() {
        let t0 = std::time::Instant::now();
        let file = seal(&site(), "4711-site", KdfParams::DEFAULT, [1; 16], [2; 12]).unwrap();
        let t1 = std::time::Instant::now();
        Keyring::parse(&file).unwrap().open("4711-site").unwrap();
        std::println!("seal {:?}, open {:?}", t1 - t0, t1.elapsed());
    }
}
