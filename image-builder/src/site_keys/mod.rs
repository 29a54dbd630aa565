//! A site's BitLocker recovery keys on the way to a keyed image: importing
//! the CSV exports of AD, Entra ID / Intune and MBAM ([`import`]), asking
//! for the site PIN ([`pin`]), and sealing them into the stick's key file.

pub mod import;
pub mod pin;

use anyhow::{Context, Result};
use rand_core::{OsRng, RngCore};
use rescue_engine::keyring::{self, SiteKeys};

/// Fresh random bytes from the operating system's generator; an error, never a weak fallback.
fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    OsRng.try_fill_bytes(&mut b).context("the operating system's random generator failed")?;
    Ok(b)
}

/// The key file for the stick: sealed with `pin`, or unsealed when `pin` is `None`.
pub fn key_file(keys: &SiteKeys, pin: Option<&str>) -> Result<Vec<u8>> {
    match pin {
        Some(pin) => {
            keyring::seal(keys, pin, keyring::KdfParams::DEFAULT, random()?, random()?).context("sealing the keys")
        }
        None => keyring::unsealed(keys).context("writing the keys"),
    }
}
