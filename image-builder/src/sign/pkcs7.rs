//! Authenticode's PKCS#7 SignedData: building one around an image hash, and
//! reading one back to check it. The ASN.1 is the `cms` crate's (RFC 5652)
//! plus the few Authenticode types below, encoded and decoded by `der`.
//!
//! ```text
//! ContentInfo { signedData, SignedData {
//!   version 1, digestAlgorithms { sha256 },
//!   contentInfo { SPC_INDIRECT_DATA, [0] EXPLICIT SpcIndirectDataContent {
//!       SpcAttributeTypeAndOptionalValue { SPC_PE_IMAGE_DATA, SpcPeImageData },
//!       DigestInfo { sha256, image hash } } },
//!   certificates [0] { signer certificate },
//!   signerInfos { SignerInfo { version 1, issuerAndSerialNumber, sha256,
//!       [0] { contentType, SpcStatementType, SpcSpOpusInfo, messageDigest },
//!       rsaEncryption, signature } } } }
//! ```
//!
//! Unlike CMS's id-data, the content is the SpcIndirectDataContent SEQUENCE
//! itself, not an OCTET STRING around it; and SignedData is version 1 although
//! RFC 5652 would ask for 3 with such a content type (so `cms`'s
//! `SignedDataBuilder`, which picks 3, is not used).

use super::cert::{Cert, Signer};
use anyhow::{anyhow, bail, Context, Result};
use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedAttributes, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{Any, BitString, BmpString, ObjectIdentifier, OctetString, SetOfVec};
use der::{Choice, Decode, Encode, Sequence, SliceReader, Tag, Tagged};
use rand_core::{OsRng, RngCore};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use sha2::{Digest, Sha256};
use x509_cert::attr::Attribute;
use x509_cert::spki::AlgorithmIdentifierOwned;

const fn oid(dotted: &str) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(dotted)
}

pub const OID_SIGNED_DATA: ObjectIdentifier = oid("1.2.840.113549.1.7.2");
pub const OID_SHA256: ObjectIdentifier = oid("2.16.840.1.101.3.4.2.1");
pub const OID_RSA: ObjectIdentifier = oid("1.2.840.113549.1.1.1");
pub const OID_SHA256_WITH_RSA: ObjectIdentifier = oid("1.2.840.113549.1.1.11");
pub const OID_CONTENT_TYPE: ObjectIdentifier = oid("1.2.840.113549.1.9.3");
pub const OID_MESSAGE_DIGEST: ObjectIdentifier = oid("1.2.840.113549.1.9.4");
pub const OID_SPC_INDIRECT_DATA: ObjectIdentifier = oid("1.3.6.1.4.1.311.2.1.4");
pub const OID_SPC_PE_IMAGE_DATA: ObjectIdentifier = oid("1.3.6.1.4.1.311.2.1.15");
pub const OID_SPC_SP_OPUS_INFO: ObjectIdentifier = oid("1.3.6.1.4.1.311.2.1.12");
pub const OID_SPC_STATEMENT_TYPE: ObjectIdentifier = oid("1.3.6.1.4.1.311.2.1.11");
pub const OID_SPC_INDIVIDUAL_SP_KEY_PURPOSE: ObjectIdentifier = oid("1.3.6.1.4.1.311.2.1.21");
pub const OID_NESTED_SIGNATURE: ObjectIdentifier = oid("1.3.6.1.4.1.311.2.4.1");

/// How many levels of nested signatures (inside unsigned attributes)
/// `check` follows below the outer one. Anything deeper is reported as a
/// problem of the signature that carries it and not read.
pub const MAX_NESTING: usize = 4;

/// The largest signature `check` reads. Microsoft's on shim are about
/// 10 KiB. The bound matters because `der` sorts each SET OF it decodes
/// with an insertion sort: a crafted signature of n bytes costs O(n²)
/// (about 2 s at this size in a release build).
pub const MAX_SIGNATURE_LEN: usize = 64 * 1024;

/// `SpcIndirectDataContent ::= SEQUENCE { data SpcAttributeTypeAndOptionalValue, messageDigest DigestInfo }`
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SpcIndirectDataContent {
    pub data: SpcAttributeTypeAndOptionalValue,
    pub message_digest: DigestInfo,
}

/// `SpcAttributeTypeAndOptionalValue ::= SEQUENCE { type OBJECT IDENTIFIER, value ANY OPTIONAL }`
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SpcAttributeTypeAndOptionalValue {
    pub value_type: ObjectIdentifier,
    pub value: Option<Any>,
}

/// `DigestInfo ::= SEQUENCE { digestAlgorithm AlgorithmIdentifier, digest OCTET STRING }`
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct DigestInfo {
    pub digest_algorithm: AlgorithmIdentifierOwned,
    pub digest: OctetString,
}

/// `SpcPeImageData ::= SEQUENCE { flags SpcPeImageFlags, file [0] EXPLICIT SpcLink }`
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SpcPeImageData {
    flags: BitString,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    file: SpcLink,
}

/// `SpcLink ::= CHOICE { ..., file [2] EXPLICIT SpcString }` (the one choice written).
#[derive(Clone, Debug, Eq, PartialEq, Choice)]
enum SpcLink {
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    File(SpcString),
}

/// `SpcString ::= CHOICE { unicode [0] IMPLICIT BMPString, ... }` (the one choice written).
#[derive(Clone, Debug, Eq, PartialEq, Choice)]
enum SpcString {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    Unicode(BmpString),
}

fn sha256_alg() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid: OID_SHA256, parameters: Some(Any::null()) }
}

/// SpcIndirectDataContent for a PE image hash (SHA-256), as every signer
/// writes it: no flags and the file link "<<<Obsolete>>>".
fn indirect_data(image_hash: &[u8; 32]) -> der::Result<SpcIndirectDataContent> {
    let pe_image_data = SpcPeImageData {
        flags: BitString::new(0, [])?,
        file: SpcLink::File(SpcString::Unicode(BmpString::from_utf8("<<<Obsolete>>>")?)),
    };
    Ok(SpcIndirectDataContent {
        data: SpcAttributeTypeAndOptionalValue {
            value_type: OID_SPC_PE_IMAGE_DATA,
            value: Some(Any::encode_from(&pe_image_data)?),
        },
        message_digest: DigestInfo { digest_algorithm: sha256_alg(), digest: OctetString::new(image_hash.as_slice())? },
    })
}

fn attribute(oid: ObjectIdentifier, value: Any) -> der::Result<Attribute> {
    Ok(Attribute { oid, values: SetOfVec::try_from(vec![value])? })
}

/// The signed attributes: content type, statement type (individual code
/// signing), an empty SpcSpOpusInfo, and `messageDigest` = SHA-256 of the
/// content's value (the SpcIndirectDataContent without its tag and length).
fn signed_attributes(content_digest: &[u8]) -> der::Result<SignedAttributes> {
    SetOfVec::try_from(vec![
        attribute(OID_CONTENT_TYPE, Any::encode_from(&OID_SPC_INDIRECT_DATA)?)?,
        attribute(OID_SPC_STATEMENT_TYPE, Any::encode_from(&vec![OID_SPC_INDIVIDUAL_SP_KEY_PURPOSE])?)?,
        attribute(OID_SPC_SP_OPUS_INFO, Any::new(Tag::Sequence, Vec::new())?)?,
        attribute(OID_MESSAGE_DIGEST, Any::encode_from(&OctetString::new(content_digest)?)?)?,
    ])
}

/// A DER PKCS#7 SignedData (in its ContentInfo) over a PE image hash:
/// version 1, one SignerInfo of version 1 naming the signer by issuer and
/// serial number, the signer's certificate, and a PKCS#1 v1.5 RSA
/// signature made with blinding from the OS random generator.
pub fn build(image_hash: &[u8; 32], signer: &Signer) -> Result<Vec<u8>> {
    let mut rng = os_rng()?;
    let econtent = Any::encode_from(&indirect_data(image_hash)?)?;
    let signed_attrs = signed_attributes(&Sha256::digest(econtent.value()))?;
    // The signature covers the attributes' DER with the SET OF tag; the
    // SignerInfo carries them under [0] IMPLICIT.
    let signature = SigningKey::<Sha256>::new(signer.key.clone())
        .try_sign_with_rng(&mut rng, &signed_attrs.to_der()?)
        .map_err(|e| anyhow!("RSA signing failed: {e}"))?;
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(signer.cert.issuer_and_serial_number()),
        digest_alg: sha256_alg(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: AlgorithmIdentifierOwned { oid: OID_RSA, parameters: Some(Any::null()) },
        signature: OctetString::new(signature.to_vec())?,
        unsigned_attrs: None,
    };
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha256_alg()])?,
        encap_content_info: EncapsulatedContentInfo { econtent_type: OID_SPC_INDIRECT_DATA, econtent: Some(econtent) },
        certificates: Some(CertificateSet(SetOfVec::try_from(vec![CertificateChoices::Certificate(
            signer.cert.cert.clone(),
        )])?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
    };
    let content_info = ContentInfo { content_type: OID_SIGNED_DATA, content: Any::encode_from(&signed_data)? };
    Ok(content_info.to_der()?)
}

/// The OS random generator, checked to answer (there is no other source).
fn os_rng() -> Result<OsRng> {
    OsRng.try_fill_bytes(&mut [0u8; 16]).map_err(|e| anyhow!("the operating system's random generator failed: {e}"))?;
    Ok(OsRng)
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

/// Checks a PKCS#7 SignedData against `image_hash` (the Authenticode
/// SHA-256 of the image): one `SignatureCheck` per SignerInfo, each
/// followed by the checks of the nested signatures it carries (Microsoft's
/// way of carrying several), to at most `MAX_NESTING` levels.
///
/// Bytes after the DER ContentInfo (a WIN_CERTIFICATE's padding) are
/// ignored. Malformed input, or more than `MAX_SIGNATURE_LEN` bytes, is an
/// error, never a panic; a malformed nested signature is an unreadable
/// entry, not an error.
pub fn check(p7: &[u8], image_hash: &[u8; 32]) -> Result<Vec<SignatureCheck>> {
    if p7.len() > MAX_SIGNATURE_LEN {
        bail!("the signature is {} bytes; more than {MAX_SIGNATURE_LEN} are not read", p7.len());
    }
    let mut reader = SliceReader::new(p7).map_err(|e| anyhow!("PKCS#7: {e}"))?;
    let content_info = ContentInfo::decode(&mut reader).map_err(|e| anyhow!("PKCS#7 ContentInfo: {e}"))?;
    check_content_info(&content_info, image_hash, 0)
}

fn check_content_info(content_info: &ContentInfo, image_hash: &[u8; 32], depth: usize) -> Result<Vec<SignatureCheck>> {
    if content_info.content_type != OID_SIGNED_DATA {
        bail!("the signature is not a PKCS#7 SignedData");
    }
    let sd: SignedData = content_info.content.decode_as().map_err(|e| anyhow!("PKCS#7 SignedData: {e}"))?;
    let eci = &sd.encap_content_info;
    if eci.econtent_type != OID_SPC_INDIRECT_DATA {
        bail!("SignedData: the content is not an Authenticode SpcIndirectDataContent");
    }
    let econtent = eci.econtent.as_ref().context("SignedData: no content")?;
    if econtent.tag() != Tag::Sequence {
        bail!("SignedData: the content is a {} where Authenticode has a SEQUENCE", econtent.tag());
    }
    let indirect: SpcIndirectDataContent = econtent.decode_as().map_err(|e| anyhow!("SpcIndirectDataContent: {e}"))?;
    // messageDigest covers the SpcIndirectDataContent's value, without its tag and length.
    let content_digest = Sha256::digest(econtent.value());

    let certs: Vec<Cert> = sd
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|choice| match choice {
            CertificateChoices::Certificate(c) => Cert::from_certificate(c.clone()).ok(),
            CertificateChoices::Other(_) => None,
        })
        .collect();

    let signer_infos = sd.signer_infos.0.as_slice();
    if signer_infos.is_empty() {
        bail!("SignedData: no SignerInfo");
    }
    let mut all = Vec::new();
    for si in signer_infos {
        let mut out = SignatureCheck::default();
        let digest = &indirect.message_digest;
        if digest.digest_algorithm.oid == OID_SHA256 {
            out.hash_matches = digest.digest.as_bytes() == image_hash;
            if !out.hash_matches {
                out.problems.push("the image hash in the signature differs from the image's hash: the image was changed after signing".into());
            }
        } else {
            out.problems.push("the image hash is not SHA-256 (not checked)".into());
        }
        let signer_cert = find_signer(&certs, &si.sid, &mut out);
        check_signer_info(si, signer_cert, &content_digest, &mut out);
        let nested = nested_signatures(si, image_hash, depth, &mut out);
        all.push(out);
        all.extend(nested);
    }
    Ok(all)
}

/// The signer's certificate among `certs`, filling in who it is.
fn find_signer<'a>(certs: &'a [Cert], sid: &SignerIdentifier, out: &mut SignatureCheck) -> Option<&'a Cert> {
    let SignerIdentifier::IssuerAndSerialNumber(ias) = sid else {
        out.problems
            .push("the signer is named by key identifier; Authenticode names it by issuer and serial number".into());
        return None;
    };
    let Some(c) = certs.iter().find(|c| &c.issuer_and_serial_number() == ias) else {
        out.problems.push("the signer's certificate is not in the signature".into());
        return None;
    };
    out.signer_subject = Some(c.subject());
    out.signer_issuer = Some(c.issuer());
    out.signer_sha256 = Some(c.fingerprint());
    out.signer_cert = Some(c.clone());
    out.issuer_cert_sha256 = certs.iter().find(|ca| ca.issued(c)).map(Cert::fingerprint);
    Some(c)
}

/// The single value of the signed attribute `oid`, if there is exactly one.
fn attribute_value(attrs: &SignedAttributes, oid: ObjectIdentifier) -> Option<&Any> {
    let mut matching = attrs.iter().filter(|a| a.oid == oid);
    let (Some(a), None) = (matching.next(), matching.next()) else {
        return None;
    };
    match a.values.as_slice() {
        [v] => Some(v),
        _ => None,
    }
}

/// Sets `signature_valid` when the signed attributes name the content
/// type, carry the content's digest, and the RSA signature over them
/// verifies with the signer's key.
fn check_signer_info(si: &SignerInfo, signer_cert: Option<&Cert>, content_digest: &[u8], out: &mut SignatureCheck) {
    let Some(attrs) = &si.signed_attrs else {
        out.problems.push("the SignerInfo has no authenticated attributes".into());
        return;
    };
    let content_type = attribute_value(attrs, OID_CONTENT_TYPE).and_then(|v| v.decode_as::<ObjectIdentifier>().ok());
    let message_digest = attribute_value(attrs, OID_MESSAGE_DIGEST).and_then(|v| v.decode_as::<OctetString>().ok());
    let sig_alg = si.signature_algorithm.oid;
    if si.digest_alg.oid != OID_SHA256 {
        out.problems.push("the signature's digest is not SHA-256 (not checked)".into());
    } else if sig_alg != OID_RSA && sig_alg != OID_SHA256_WITH_RSA {
        out.problems.push(format!("the signature algorithm {sig_alg} is not RSA (not checked)"));
    } else if content_type != Some(OID_SPC_INDIRECT_DATA) {
        out.problems.push("the signed contentType attribute is missing or is not SpcIndirectDataContent".into());
    } else if message_digest.as_ref().map(OctetString::as_bytes) != Some(content_digest) {
        out.problems.push("messageDigest does not match the signed content".into());
    } else if let Some(c) = signer_cert {
        // RFC 5652 5.4: the signature is over the DER of the SET OF
        // attributes, which this re-encoding is. It equals the bytes received
        // whenever those were DER, as signers write them; `der` would have
        // sorted an unsorted SET, so such a signature fails here.
        let verified = c.rsa_public_key().and_then(|k| {
            let signed = attrs.to_der()?;
            let s = Signature::try_from(si.signature.as_bytes())?;
            Ok(VerifyingKey::<Sha256>::new(k).verify(&signed, &s).is_ok())
        });
        match verified {
            Ok(true) => out.signature_valid = true,
            Ok(false) => out.problems.push("the RSA signature does not verify with the signer's certificate".into()),
            Err(e) => out.problems.push(format!("{e:#}")),
        }
    }
}

/// The checks of the nested signatures in the SignerInfo's unsigned
/// attributes; those below `MAX_NESTING` levels become a problem of `out`.
fn nested_signatures(
    si: &SignerInfo,
    image_hash: &[u8; 32],
    depth: usize,
    out: &mut SignatureCheck,
) -> Vec<SignatureCheck> {
    let values = si
        .unsigned_attrs
        .iter()
        .flat_map(|a| a.iter())
        .filter(|a| a.oid == OID_NESTED_SIGNATURE)
        .flat_map(|a| a.values.iter());
    let mut checks = Vec::new();
    for value in values {
        if depth >= MAX_NESTING {
            out.problems.push(format!("a nested signature deeper than {MAX_NESTING} levels was not read"));
            break;
        }
        let nested = value.decode_as::<ContentInfo>().map_err(|e| anyhow!("PKCS#7 ContentInfo: {e}"));
        match nested.and_then(|ci| check_content_info(&ci, image_hash, depth + 1)) {
            Ok(c) => checks.extend(c),
            Err(e) => checks.push(SignatureCheck::unreadable(format!("unreadable nested signature: {e:#}"))),
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(v: &[u8]) -> String {
        v.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn oids_encode_to_known_bytes() {
        assert_eq!(OID_SHA256.to_der().unwrap(), [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01]);
        assert_eq!(
            OID_SPC_INDIRECT_DATA.to_der().unwrap(),
            [0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x04]
        );
    }

    /// The content and signed attributes are byte for byte what the
    /// hand-written encoder (checked by sbverify, osslsigncode and OVMF) wrote.
    #[test]
    fn authenticode_content_matches_known_bytes() {
        let econtent = Any::encode_from(&indirect_data(&[0x11; 32]).unwrap()).unwrap();
        assert_eq!(
            hex(&econtent.to_der().unwrap()),
            "30683033060a2b06010401823702010f3025030100a020a21e801c003c003c003c004f00620073006f006c006500740065003e003e003e\
             3031300d0609608648016503040201050004201111111111111111111111111111111111111111111111111111111111111111"
        );
        let attrs = signed_attributes(&Sha256::digest(econtent.value())).unwrap();
        assert_eq!(
            hex(&attrs.to_der().unwrap()),
            "317c3010060a2b06010401823702010c31023000301906092a864886f70d010903310c060a2b060104018237020104301c060a2b06010401\
             823702010b310e300c060a2b060104018237020115302f06092a864886f70d0109043122042092929a45f046bea02962d2352d61d969599b\
             366f47ec3b7bc1c844372ae09c46"
        );
    }

    fn test_signer() -> Signer {
        use rsa::pkcs8::DecodePrivateKey;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(include_str!("testdata/test-key.pem")).unwrap();
        let cert =
            <x509_cert::Certificate as der::DecodePem>::from_pem(include_str!("testdata/test-cert.pem")).unwrap();
        Signer { key, cert: Cert::from_certificate(cert).unwrap() }
    }

    fn signed_data(p7: &[u8]) -> SignedData {
        ContentInfo::from_der(p7).unwrap().content.decode_as().unwrap()
    }

    /// `outer` with `inner` added as a nested signature of its SignerInfo.
    fn nest(outer: &[u8], inner: &[u8]) -> Vec<u8> {
        let mut sd = signed_data(outer);
        let mut si = sd.signer_infos.0.as_slice()[0].clone();
        si.unsigned_attrs = Some(
            SetOfVec::try_from(vec![attribute(OID_NESTED_SIGNATURE, Any::from_der(inner).unwrap()).unwrap()]).unwrap(),
        );
        sd.signer_infos = SignerInfos(SetOfVec::try_from(vec![si]).unwrap());
        ContentInfo { content_type: OID_SIGNED_DATA, content: Any::encode_from(&sd).unwrap() }.to_der().unwrap()
    }

    #[test]
    fn built_signature_checks() {
        let p7 = build(&[7; 32], &test_signer()).unwrap();
        let checks = check(&p7, &[7; 32]).unwrap();
        assert_eq!(checks.len(), 1);
        let c = &checks[0];
        assert!(c.ok() && c.problems.is_empty(), "{c:?}");
        assert_eq!(c.signer_subject.as_deref(), Some("CN=Sign Unit Test"));
        // Self-signed: the signer's certificate issued itself.
        assert_eq!(c.issuer_cert_sha256, c.signer_sha256);

        let other = &check(&p7, &[8; 32]).unwrap()[0];
        assert!(!other.hash_matches && other.signature_valid, "{other:?}");
    }

    #[test]
    fn built_signature_is_authenticode_shaped() {
        let sd = signed_data(&build(&[7; 32], &test_signer()).unwrap());
        assert_eq!(sd.version, CmsVersion::V1);
        let si = &sd.signer_infos.0.as_slice()[0];
        assert_eq!(si.version, CmsVersion::V1);
        assert!(matches!(si.sid, SignerIdentifier::IssuerAndSerialNumber(_)));
        assert_eq!(sd.encap_content_info.econtent.as_ref().map(Any::tag), Some(Tag::Sequence));
    }

    #[test]
    fn altered_signed_attributes_do_not_verify() {
        let p7 = build(&[7; 32], &test_signer()).unwrap();
        let mut sd = signed_data(&p7);
        let mut si = sd.signer_infos.0.as_slice()[0].clone();
        let attrs = si.signed_attrs.take().unwrap();
        let kept: Vec<Attribute> = attrs.iter().filter(|a| a.oid != OID_SPC_SP_OPUS_INFO).cloned().collect();
        si.signed_attrs = Some(SetOfVec::try_from(kept).unwrap());
        sd.signer_infos = SignerInfos(SetOfVec::try_from(vec![si]).unwrap());
        let altered =
            ContentInfo { content_type: OID_SIGNED_DATA, content: Any::encode_from(&sd).unwrap() }.to_der().unwrap();
        let c = &check(&altered, &[7; 32]).unwrap()[0];
        assert!(c.hash_matches && !c.signature_valid, "{c:?}");
    }

    #[test]
    fn nested_signatures_are_read_to_a_limited_depth() {
        let p7 = build(&[7; 32], &test_signer()).unwrap();
        let one = check(&nest(&p7, &p7), &[7; 32]).unwrap();
        assert_eq!(one.len(), 2);
        assert!(one.iter().all(|c| c.ok() && c.problems.is_empty()), "{one:?}");

        let mut deep = p7.clone();
        for _ in 0..MAX_NESTING + 2 {
            deep = nest(&p7, &deep);
        }
        let checks = check(&deep, &[7; 32]).unwrap();
        assert_eq!(checks.len(), 1 + MAX_NESTING);
        assert!(checks.iter().all(SignatureCheck::ok));
        assert!(checks[..MAX_NESTING].iter().all(|c| c.problems.is_empty()));
        assert!(
            checks[MAX_NESTING].problems.iter().any(|p| p.contains("deeper than 4 levels")),
            "{:?}",
            checks[MAX_NESTING]
        );
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let p7 = build(&[7; 32], &test_signer()).unwrap();
        // Padding after the ContentInfo is ignored, as in a WIN_CERTIFICATE.
        let mut padded = p7.clone();
        padded.extend([0; 7]);
        assert!(check(&padded, &[7; 32]).unwrap()[0].ok());
        for n in 0..p7.len() {
            assert!(check(&p7[..n], &[7; 32]).is_err(), "a prefix of {n} bytes was read");
        }
        assert!(check(&vec![0x30; MAX_SIGNATURE_LEN + 1], &[7; 32]).unwrap_err().to_string().contains("not read"));
        for garbage in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 0, 0, 0, 0, 1],
            &[0x30, 0x80, 0, 0],
            &[0xff; 64],
            &[0x30, 0x03, 0x06, 0x01, 0x00],
        ] {
            assert!(check(garbage, &[7; 32]).is_err());
        }
        // Bytes changed here and there (each check verifies RSA; debug builds are slow at that).
        for at in (0..p7.len()).step_by(5) {
            let mut bad = p7.clone();
            bad[at] ^= 0x5a;
            let _ = check(&bad, &[7; 32]);
        }
        // A nested signature that is not one is an unreadable entry.
        let mut sd = signed_data(&p7);
        let mut si = sd.signer_infos.0.as_slice()[0].clone();
        si.unsigned_attrs =
            Some(SetOfVec::try_from(vec![attribute(OID_NESTED_SIGNATURE, Any::null()).unwrap()]).unwrap());
        sd.signer_infos = SignerInfos(SetOfVec::try_from(vec![si]).unwrap());
        let bad_nested =
            ContentInfo { content_type: OID_SIGNED_DATA, content: Any::encode_from(&sd).unwrap() }.to_der().unwrap();
        let checks = check(&bad_nested, &[7; 32]).unwrap();
        assert_eq!(checks.len(), 2);
        assert!(checks[0].ok() && !checks[1].ok() && checks[1].problems[0].contains("unreadable nested signature"));
    }
}
