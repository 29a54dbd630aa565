//! A site's BitLocker recovery keys on the way to a keyed image: importing
//! the CSV exports of AD, Entra ID / Intune and MBAM ([`import`]), asking
//! for the site PIN ([`pin`]), and sealing them into the stick's key file.

pub mod import;
pub mod pin;

use anyhow::{Context, Result};
use rand_core::{OsRng, RngCore};
use rescue_engine::formats::keyring::{self, KdfParams, SiteKeys};

/// Fresh random bytes from the operating system's generator; an error, never a weak fallback.
fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    OsRng.try_fill_bytes(&mut b).context("the operating system's random generator failed")?;
    Ok(b)
}

/// The key file for the stick, sealed with `pin` under `kdf`, and an
/// estimate of what guessing the PIN offline would cost.
pub fn sealed_key_file(keys: &SiteKeys, pin: &str, kdf: KdfParams) -> Result<(Vec<u8>, String)> {
    let started = std::time::Instant::now();
    let file = keyring::seal(keys, pin, kdf, random()?, random()?).context("sealing the keys")?;
    let cost = pin::guessing_cost(pin, started.elapsed().as_secs_f64(), kdf.m_kib / 1024);
    Ok((file, cost))
}

/// The key file for the stick with the keys in clear (`--no-seal`).
pub fn unsealed_key_file(keys: &SiteKeys) -> Result<Vec<u8>> {
    keyring::unsealed(keys).context("writing the keys")
}
