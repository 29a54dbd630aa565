//! The site key file parser on arbitrary bytes. The input is taken as is and
//! also with its trailing SHA-256 made right (so the parser goes past the
//! checksum into the header). Never panics; a parsed file opens or fails
//! cleanly (with cheap Argon2 parameters only, to keep runs fast); and an
//! unsealed file written from the keys it yields parses back to the same
//! Key IDs.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_engine::formats::keyring::{unsealed, Keyring, MAGIC, VERSION};
use sha2::{Digest, Sha256};

fn check(bytes: &[u8]) {
    let Ok(kr) = Keyring::parse(bytes) else { return };
    let ids = kr.key_ids().to_vec();
    let keys = match kr.kdf() {
        Some(p) if p.m_kib <= 256 && p.t <= 2 => kr.open("1234"),
        Some(_) => return,
        None => kr.open_unsealed(),
    };
    if let Ok(keys) = keys {
        assert_eq!(keys.key_ids().collect::<Vec<_>>(), ids);
        for id in &ids {
            assert!(keys.password(id).is_some());
        }
        let again = unsealed(&keys).expect("keys from a file can be written again");
        assert_eq!(Keyring::parse(&again).expect("a written file parses").key_ids(), &ids[..]);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut v = Vec::with_capacity(data.len() + 42);
    v.extend_from_slice(&MAGIC);
    v.extend_from_slice(&VERSION.to_le_bytes());
    v.extend_from_slice(data);
    let sum = Sha256::digest(&v);
    v.extend_from_slice(&sum);
    check(&v);
});
