//! Authenticode's PKCS#7 SignedData: building one around an image hash, and
//! reading one back to check it.
//!
//! ```text
//! ContentInfo { signedData, SignedData {
//!   version 1, digestAlgorithms { sha256 },
//!   contentInfo { SPC_INDIRECT_DATA, SpcIndirectDataContent {
//!       SpcAttributeTypeAndOptionalValue { SPC_PE_IMAGE_DATA, SpcPeImageData },
//!       DigestInfo { sha256, image hash } } },
//!   certificates [0] { signer certificate },
//!   signerInfos { SignerInfo { version 1, issuerAndSerialNumber, sha256,
//!       [0] { contentType, SpcSpOpusInfo, messageDigest }, rsaEncryption, signature } } } }
//! ```

use super::der::{self, cons, ctx, ctx_prim, oid, set_of, tlv, Element, BIT_STRING, INTEGER, NULL, OCTET_STRING, SEQUENCE, SET};
use super::cert::{Cert, Signer};
use anyhow::{bail, Context, Result};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{SignatureEncoding, Signer as _, Verifier as _};
use sha2::{Digest, Sha256};

pub const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
pub const OID_SHA256: &str = "2.16.840.1.101.3.4.2.1";
pub const OID_RSA: &str = "1.2.840.113549.1.1.1";
pub const OID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
pub const OID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
pub const OID_SPC_INDIRECT_DATA: &str = "1.3.6.1.4.1.311.2.1.4";
pub const OID_SPC_PE_IMAGE_DATA: &str = "1.3.6.1.4.1.311.2.1.15";
pub const OID_SPC_SP_OPUS_INFO: &str = "1.3.6.1.4.1.311.2.1.12";
pub const OID_SPC_STATEMENT_TYPE: &str = "1.3.6.1.4.1.311.2.1.11";
pub const OID_SPC_INDIVIDUAL_SP_KEY_PURPOSE: &str = "1.3.6.1.4.1.311.2.1.21";
pub const OID_NESTED_SIGNATURE: &str = "1.3.6.1.4.1.311.2.4.1";

fn sha256_alg() -> Vec<u8> {
    cons(SEQUENCE, &[&oid(OID_SHA256), &tlv(NULL, &[])])
}

/// SpcIndirectDataContent for a PE image hash (SHA-256).
fn indirect_data(image_hash: &[u8; 32]) -> Vec<u8> {
    // SpcPeImageData { flags BIT STRING {}, file [0] SpcLink.file [2] SpcString.unicode [0] "<<<Obsolete>>>" }
    let obsolete: Vec<u8> = "<<<Obsolete>>>".encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
    let link = tlv(ctx(0), &tlv(ctx(2), &tlv(ctx_prim(0), &obsolete)));
    let pe_image_data = cons(SEQUENCE, &[&tlv(BIT_STRING, &[0]), &link]);
    let data = cons(SEQUENCE, &[&oid(OID_SPC_PE_IMAGE_DATA), &pe_image_data]);
    let digest_info = cons(SEQUENCE, &[&sha256_alg(), &tlv(OCTET_STRING, image_hash)]);
    cons(SEQUENCE, &[&data, &digest_info])
}

fn attribute(type_oid: &str, value: &[u8]) -> Vec<u8> {
    cons(SEQUENCE, &[&oid(type_oid), &tlv(SET, value)])
}

/// A DER PKCS#7 SignedData (in its ContentInfo) over a PE image hash.
pub fn build(image_hash: &[u8; 32], signer: &Signer) -> Result<Vec<u8>> {
    let content = indirect_data(image_hash);
    // messageDigest covers the SpcIndirectDataContent's contents, without its tag and length.
    let content_digest = Sha256::digest(der::parse(&content)?.contents);
    let attrs = vec![
        attribute(OID_CONTENT_TYPE, &oid(OID_SPC_INDIRECT_DATA)),
        attribute(OID_SPC_STATEMENT_TYPE, &cons(SEQUENCE, &[&oid(OID_SPC_INDIVIDUAL_SP_KEY_PURPOSE)])),
        attribute(OID_SPC_SP_OPUS_INFO, &tlv(SEQUENCE, &[])),
        attribute(OID_MESSAGE_DIGEST, &tlv(OCTET_STRING, &content_digest)),
    ];
    // The signature covers the attributes encoded as a SET OF; the
    // SignerInfo carries the same bytes under the [0] IMPLICIT tag.
    let signed_attrs = set_of(SET, attrs);
    let signature = SigningKey::<Sha256>::new(signer.key.clone())
        .try_sign(&signed_attrs)
        .map_err(|e| anyhow::anyhow!("RSA signing failed: {e}"))?
        .to_vec();
    let mut implicit_attrs = signed_attrs.clone();
    implicit_attrs[0] = ctx(0);

    let (issuer, serial) = signer.cert.issuer_and_serial()?;
    let signer_info = cons(
        SEQUENCE,
        &[
            &tlv(INTEGER, &[1]),
            &cons(SEQUENCE, &[&issuer, &serial]),
            &sha256_alg(),
            &implicit_attrs,
            &cons(SEQUENCE, &[&oid(OID_RSA), &tlv(NULL, &[])]),
            &tlv(OCTET_STRING, &signature),
        ],
    );
    let signed_data = cons(
        SEQUENCE,
        &[
            &tlv(INTEGER, &[1]),
            &tlv(SET, &sha256_alg()),
            &cons(SEQUENCE, &[&oid(OID_SPC_INDIRECT_DATA), &tlv(ctx(0), &content)]),
            &tlv(ctx(0), &signer.cert.der),
            &tlv(SET, &signer_info),
        ],
    );
    Ok(cons(SEQUENCE, &[&oid(OID_SIGNED_DATA), &tlv(ctx(0), &signed_data)]))
}

/// What one Authenticode signature says, and whether it holds.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SignatureCheck {
    /// The signer's certificate subject, issuer and SHA-256 fingerprint
    /// (`None` when the signer's certificate is not in the signature).
    pub signer_subject: Option<String>,
    pub signer_issuer: Option<String>,
    pub signer_sha256: Option<String>,
    /// The image hash in the signature equals the image's hash now.
    pub hash_matches: bool,
    /// The signer's RSA signature over the signed attributes is valid and
    /// the attributes' messageDigest matches the signed content.
    pub signature_valid: bool,
    /// SHA-256 fingerprint of the certificate (carried in the signature)
    /// that issued and verifiably signed the signer's certificate.
    pub issuer_cert_sha256: Option<String>,
    /// Why something could not be checked or did not hold.
    pub problems: Vec<String>,
    /// The signer's certificate.
    #[serde(skip)]
    pub signer_cert: Option<Cert>,
}

impl SignatureCheck {
    /// A signature that could not be read at all.
    pub fn unreadable(why: String) -> SignatureCheck {
        SignatureCheck { problems: vec![why], ..Default::default() }
    }

    pub fn ok(&self) -> bool {
        self.hash_matches && self.signature_valid
    }
}

fn oid_is(e: &Element, dotted: &str) -> bool {
    e.tag == der::OID && e.raw == oid(dotted).as_slice()
}

/// Checks a PKCS#7 SignedData against `image_hash` (the Authenticode
/// SHA-256 of the image). Nested signatures (Microsoft's way of carrying
/// several) are checked too and returned after the outer one.
pub fn check(p7: &[u8], image_hash: &[u8; 32]) -> Result<Vec<SignatureCheck>> {
    let ci = der::Reader::new(p7).read()?.expect(SEQUENCE, "ContentInfo")?.children()?;
    if ci.len() != 2 || !oid_is(&ci[0], OID_SIGNED_DATA) {
        bail!("the signature is not a PKCS#7 SignedData");
    }
    let sd = der::parse(ci[1].expect(ctx(0), "ContentInfo content")?.contents)?.expect(SEQUENCE, "SignedData")?.children()?;
    let mut it = sd.iter();
    let _version = it.next().context("SignedData: empty")?;
    let _digest_algs = it.next().context("SignedData: no digestAlgorithms")?;
    let content_info = it.next().context("SignedData: no contentInfo")?.children()?;
    if content_info.len() != 2 || !oid_is(&content_info[0], OID_SPC_INDIRECT_DATA) {
        bail!("SignedData: the content is not an Authenticode SpcIndirectDataContent");
    }
    let indirect = der::parse(content_info[1].expect(ctx(0), "contentInfo content")?.contents)?.expect(SEQUENCE, "SpcIndirectDataContent")?;
    let parts = indirect.children()?;
    let digest_info = parts.get(1).context("SpcIndirectDataContent: no DigestInfo")?.children()?;
    let alg = digest_info.first().context("DigestInfo: empty")?.children()?;
    let signed_hash = digest_info.get(1).context("DigestInfo: no digest")?.expect(OCTET_STRING, "DigestInfo digest")?.contents;

    let mut certs = Vec::new();
    let mut rest: Vec<Element> = it.copied().collect();
    if rest.first().is_some_and(|e| e.tag == ctx(0)) {
        let c = rest.remove(0);
        for cert in c.children()? {
            if let Ok(parsed) = Cert::from_der(cert.raw) {
                certs.push(parsed);
            }
        }
    }
    if rest.first().is_some_and(|e| e.tag == ctx(1)) {
        rest.remove(0);
    }
    let signer_infos = rest.first().context("SignedData: no signerInfos")?.expect(SET, "signerInfos")?.children()?;
    let si = signer_infos.first().context("SignedData: no SignerInfo")?.children()?;

    let mut out = SignatureCheck::default();
    let mut nested = Vec::new();
    if alg.first().is_some_and(|a| oid_is(a, OID_SHA256)) {
        out.hash_matches = signed_hash == image_hash;
        if !out.hash_matches {
            out.problems.push("the image hash in the signature differs from the image's hash: the image was changed after signing".into());
        }
    } else {
        out.problems.push("the image hash is not SHA-256 (not checked)".into());
    }

    // SignerInfo { version, issuerAndSerialNumber, digestAlgorithm, [0] attrs, digestEncryptionAlgorithm, signature, [1] unsigned }
    let ias = si.get(1).context("SignerInfo: no issuerAndSerialNumber")?.children()?;
    let (issuer, serial) = (ias.first().context("no issuer")?.raw, ias.get(1).context("no serial")?.raw);
    let signer_cert = certs.iter().find(|c| c.issuer_and_serial().is_ok_and(|(i, s)| i == issuer && s == serial));
    if let Some(c) = signer_cert {
        out.signer_subject = Some(c.subject());
        out.signer_issuer = Some(c.issuer());
        out.signer_sha256 = Some(c.fingerprint());
        out.signer_cert = Some(c.clone());
        out.issuer_cert_sha256 = certs.iter().find(|ca| ca.issued(c)).map(Cert::fingerprint);
    } else {
        out.problems.push("the signer's certificate is not in the signature".into());
    }
    let si_digest = si.get(2).context("SignerInfo: no digestAlgorithm")?.children()?;
    let attrs = si.get(3).filter(|e| e.tag == ctx(0)).context("SignerInfo: no authenticated attributes")?;
    let mut message_digest = None;
    for a in attrs.children()? {
        let kv = a.children()?;
        if kv.len() == 2 && oid_is(&kv[0], OID_MESSAGE_DIGEST) {
            message_digest = kv[1].children()?.first().map(|v| v.contents.to_vec());
        }
    }
    let sig = si.get(5).context("SignerInfo: no signature")?.expect(OCTET_STRING, "signature")?.contents;
    if let Some(unsigned) = si.get(6).filter(|e| e.tag == ctx(1)) {
        for a in unsigned.children()? {
            let kv = a.children()?;
            if kv.len() == 2 && oid_is(&kv[0], OID_NESTED_SIGNATURE) {
                for inner in kv[1].children()? {
                    nested.extend(check(inner.raw, image_hash)?);
                }
            }
        }
    }

    let content_ok = message_digest.as_deref() == Some(Sha256::digest(indirect.contents).as_slice());
    if !si_digest.first().is_some_and(|a| oid_is(a, OID_SHA256)) {
        out.problems.push("the signature's digest is not SHA-256 (not checked)".into());
    } else if !content_ok {
        out.problems.push("messageDigest does not match the signed content".into());
    } else if let Some(c) = signer_cert {
        let mut signed = attrs.raw.to_vec();
        signed[0] = SET;
        match c.rsa_public_key() {
            Ok(k) => {
                let valid = Signature::try_from(sig).is_ok_and(|s| VerifyingKey::<Sha256>::new(k).verify(&signed, &s).is_ok());
                out.signature_valid = valid;
                if !valid {
                    out.problems.push("the RSA signature does not verify with the signer's certificate".into());
                }
            }
            Err(e) => out.problems.push(format!("{e}")),
        }
    }
    let mut all = vec![out];
    all.extend(nested);
    Ok(all)
}
