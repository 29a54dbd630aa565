//! Authenticode signing of UEFI images, natively (no sbsign at run time):
//! the PE image hash, a PKCS#7 SignedData around it, the certificate table
//! appended and pointed to, the PE checksum updated. And the reverse, for
//! `rescue inspect` and for checking shim before it goes on a stick.

pub mod cert;
pub mod pe;
pub mod pkcs7;

use anyhow::{bail, Context, Result};
pub use cert::Signer;
pub use pkcs7::SignatureCheck;

fn put_u32(d: &mut [u8], at: usize, v: u32) {
    d[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Signs a PE image. An existing signature is replaced. The result's
/// Authenticode hash covers the image padded with zeros to 8 bytes; the
/// certificate table (one WIN_CERTIFICATE, revision 2.0, PKCS_SIGNED_DATA,
/// 8-byte aligned) follows, and the PE checksum is recomputed.
pub fn sign(image: &[u8], signer: &Signer) -> Result<Vec<u8>> {
    let info = pe::parse(image).context("cannot sign: not a valid UEFI (PE) image")?;
    let mut out = match info.cert_table {
        Some((at, _)) => image[..at].to_vec(),
        None => image.to_vec(),
    };
    put_u32(&mut out, info.cert_dir_at, 0);
    put_u32(&mut out, info.cert_dir_at + 4, 0);
    out.resize(out.len().next_multiple_of(8), 0);
    let info = pe::parse(&out)?;
    let hash = pe::authenticode_sha256(&out, &info);
    let mut p7 = pkcs7::build(&hash, signer)?;
    p7.resize(p7.len().next_multiple_of(8), 0);
    let table_at = out.len();
    let len = 8 + p7.len();
    let (Ok(table_at32), Ok(len32)) = (u32::try_from(table_at), u32::try_from(len)) else {
        bail!("the image is too large to sign")
    };
    out.extend_from_slice(&len32.to_le_bytes());
    out.extend_from_slice(&pe::WIN_CERT_REVISION_2_0.to_le_bytes());
    out.extend_from_slice(&pe::WIN_CERT_TYPE_PKCS_SIGNED_DATA.to_le_bytes());
    out.extend_from_slice(&p7);
    put_u32(&mut out, info.cert_dir_at, table_at32);
    put_u32(&mut out, info.cert_dir_at + 4, len32);
    let sum = pe::checksum(&out, info.checksum_at);
    put_u32(&mut out, info.checksum_at, sum);
    Ok(out)
}

/// Every Authenticode signature of a PE image, each checked against the
/// image's hash recomputed now. Empty when the image is unsigned.
pub fn verify(image: &[u8]) -> Result<Vec<SignatureCheck>> {
    let info = pe::parse(image)?;
    let hash = pe::authenticode_sha256(image, &info);
    let mut out = Vec::new();
    for p7 in pe::signatures(image, &info)? {
        match pkcs7::check(p7, &hash) {
            Ok(checks) => out.extend(checks),
            Err(e) => out.push(SignatureCheck::unreadable(format!("unreadable signature: {e:#}"))),
        }
    }
    Ok(out)
}

/// The text of a PE image's `.sbat` section (shim's revocation metadata), if any.
pub fn sbat(image: &[u8]) -> Option<String> {
    let info = pe::parse(image).ok()?;
    let s = pe::section(image, &info, ".sbat")?;
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    Some(String::from_utf8_lossy(&s[..end]).into_owned())
}
