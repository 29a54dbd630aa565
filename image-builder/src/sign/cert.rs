//! Signing keys and certificates from files: RSA 2048–4096 bits in PEM
//! (PKCS#1 or PKCS#8), X.509 certificates in PEM or DER, checked to belong
//! together.

use anyhow::{bail, Context, Result};
use cms::cert::IssuerAndSerialNumber;
use der::{Decode, DecodePem, Encode};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use std::path::Path;
use x509_cert::Certificate;

/// Smallest and largest RSA modulus we sign with (UEFI firmware commonly
/// supports 2048; many also 3072 and 4096).
pub const MIN_BITS: usize = 2048;
pub const MAX_BITS: usize = 4096;

/// A certificate as parsed, with its exact DER encoding.
#[derive(Clone, Debug)]
pub struct Cert {
    pub der: Vec<u8>,
    pub cert: Certificate,
}

impl Cert {
    /// Parses a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Cert> {
        let cert = Certificate::from_der(der).map_err(|e| anyhow::anyhow!("not an X.509 certificate: {e}"))?;
        Ok(Cert { der: der.to_vec(), cert })
    }

    /// A parsed certificate with its DER re-encoded: the bytes it was read
    /// from whenever those were DER, as certificates are.
    pub fn from_certificate(cert: Certificate) -> Result<Cert> {
        Ok(Cert { der: cert.to_der()?, cert })
    }

    /// The subject in RFC 4514 form, e.g. `CN=Example`.
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    pub fn issuer(&self) -> String {
        self.cert.tbs_certificate.issuer.to_string()
    }

    /// SHA-256 over the DER certificate, as lowercase hex (what `openssl x509 -fingerprint -sha256` shows, without colons).
    pub fn fingerprint(&self) -> String {
        rescue_engine::util::hex::hex(&Sha256::digest(&self.der))
    }

    /// SHA-1 over the DER certificate, as colon-separated lowercase hex: the
    /// fingerprint MokManager and `mokutil --list-new` show, for comparing
    /// before enrolling.
    pub fn fingerprint_sha1(&self) -> String {
        use sha1::Digest as _;
        let d = sha1::Sha1::digest(&self.der);
        d.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
    }

    /// The certificate's RSA public key.
    pub fn rsa_public_key(&self) -> Result<RsaPublicKey> {
        let spki = self.cert.tbs_certificate.subject_public_key_info.to_der()?;
        RsaPublicKey::from_public_key_der(&spki)
            .map_err(|e| anyhow::anyhow!("the certificate's key is not an RSA key ({e})"))
    }

    /// Whether this certificate issued `child`: its subject is the child's
    /// issuer and its RSA key verifies the child's sha256WithRSAEncryption signature.
    pub fn issued(&self, child: &Cert) -> bool {
        use rsa::signature::Verifier;
        let c = &child.cert;
        if c.tbs_certificate.issuer != self.cert.tbs_certificate.subject
            || c.signature_algorithm.oid != der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11")
        {
            return false;
        }
        let (Ok(key), Ok(tbs), Some(sig)) = (self.rsa_public_key(), c.tbs_certificate.to_der(), c.signature.as_bytes())
        else {
            return false;
        };
        rsa::pkcs1v15::Signature::try_from(sig)
            .is_ok_and(|s| rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key).verify(&tbs, &s).is_ok())
    }

    /// The certificate's issuer and serial number, as a PKCS#7 SignerInfo names it.
    pub fn issuer_and_serial_number(&self) -> IssuerAndSerialNumber {
        let tbs = &self.cert.tbs_certificate;
        IssuerAndSerialNumber { issuer: tbs.issuer.clone(), serial_number: tbs.serial_number.clone() }
    }
}

/// Reads a certificate in PEM (`-----BEGIN CERTIFICATE-----`) or DER.
pub fn load_cert(path: &Path) -> Result<Cert> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read the certificate {}", path.display()))?;
    let parsed = if bytes.starts_with(b"-----BEGIN") || bytes.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        let text = std::str::from_utf8(&bytes).with_context(|| format!("{}: PEM that is not text", path.display()))?;
        let start = text.find("-----BEGIN CERTIFICATE-----").with_context(|| {
            format!("{}: no certificate (-----BEGIN CERTIFICATE-----) in this PEM file", path.display())
        })?;
        Certificate::from_pem(&text[start..])
            .map_err(|e| anyhow::anyhow!("{}: not a valid PEM certificate ({e})", path.display()))
            .and_then(|c| Ok(Cert { der: c.to_der()?, cert: c }))?
    } else {
        Cert::from_der(&bytes).with_context(|| format!("{}: neither a PEM nor a DER certificate", path.display()))?
    };
    Ok(parsed)
}

/// Reads an unencrypted RSA private key in PEM, PKCS#1 (`BEGIN RSA PRIVATE
/// KEY`) or PKCS#8 (`BEGIN PRIVATE KEY`), of 2048 to 4096 bits.
pub fn load_key(path: &Path) -> Result<RsaPrivateKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key {} (a PEM text file)", path.display()))?;
    let p = path.display();
    let key = if let Some(at) = text.find("-----BEGIN RSA PRIVATE KEY-----") {
        RsaPrivateKey::from_pkcs1_pem(&text[at..]).map_err(|e| anyhow::anyhow!("{p}: bad PKCS#1 RSA key ({e})"))?
    } else if let Some(at) = text.find("-----BEGIN PRIVATE KEY-----") {
        RsaPrivateKey::from_pkcs8_pem(&text[at..])
            .map_err(|e| anyhow::anyhow!("{p}: only RSA keys are supported, and this PKCS#8 key is not one ({e})"))?
    } else if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        bail!("{p}: the key is encrypted; decrypt it to a file only you can read first (openssl pkey -in {p} -out plain.key)")
    } else if text.contains("PRIVATE KEY-----") {
        bail!("{p}: only RSA keys are supported (UEFI Secure Boot verifies RSA signatures)")
    } else {
        bail!("{p}: not a PEM private key (expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)")
    };
    let bits = key.size() * 8;
    if !(MIN_BITS..=MAX_BITS).contains(&bits) {
        bail!("{p}: an RSA key of {bits} bits; Secure Boot signing needs {MIN_BITS} to {MAX_BITS} bits");
    }
    Ok(key)
}

/// A private key and the certificate of its public key.
pub struct Signer {
    pub key: RsaPrivateKey,
    pub cert: Cert,
}

impl Signer {
    /// Loads both files and checks that the certificate is for this key.
    pub fn load(key: &Path, cert: &Path) -> Result<Signer> {
        let k = load_key(key)?;
        let c = load_cert(cert)?;
        let public = c.rsa_public_key().with_context(|| format!("{}", cert.display()))?;
        if public != k.to_public_key() {
            bail!(
                "the certificate {} ({}) is not for the key {}: they do not belong together",
                cert.display(),
                c.subject(),
                key.display()
            );
        }
        Ok(Signer { key: k, cert: c })
    }
}
