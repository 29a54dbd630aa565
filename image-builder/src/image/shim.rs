//! The Secure Boot parts of an image: the agent signed with the site's key,
//! and for the shim route, Microsoft-signed shim + MokManager laid out so
//! that shim starts the signed agent (checked before they go on a stick).

use super::agent::Arch;
use super::stick::{self, StickFiles};
use crate::sign::{self, cert::Cert, Signer};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// One line of a summary about a signed EFI binary.
fn describe(what: &str, image: &[u8]) -> String {
    let versions: Vec<String> = sign::sbat(image)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("sbat,"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() >= 5).then(|| format!("{} {} ({})", f[3], f[4], f[2]))
        })
        .collect();
    format!("{what}: {}", if versions.is_empty() { "no SBAT version data".to_string() } else { versions.join(", ") })
}

/// Reads a signed EFI binary and checks that at least one of its signatures
/// holds. Returns the bytes and the checks.
fn signed_binary(path: &Path) -> Result<(Vec<u8>, Vec<sign::SignatureCheck>)> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "cannot read {} (install shim-signed and shim-helpers-amd64-signed, or pass --shim-dir)",
            path.display()
        )
    })?;
    let checks = sign::verify(&bytes).with_context(|| format!("{}", path.display()))?;
    if checks.is_empty() {
        bail!("{} is not signed: firmware with Secure Boot would refuse it", path.display());
    }
    if !checks.iter().any(|c| c.ok()) {
        bail!(
            "{}: no signature holds ({})",
            path.display(),
            checks.iter().flat_map(|c| c.problems.clone()).collect::<Vec<_>>().join("; ")
        );
    }
    Ok((bytes, checks))
}

/// The signing options of `rescue build`, checked.
pub struct SecureBootPlan {
    pub signer: Signer,
    pub cert_name: String,
    pub shim_dir: Option<PathBuf>,
}

/// Signs the agent, and for the shim route lays out shim, MokManager, the
/// signed agent as shim's second stage and the certificate for MokManager.
/// Returns lines to print.
pub fn apply(plan: &SecureBootPlan, agents: &[(Arch, Vec<u8>)], files: &mut StickFiles) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let mut x64 = None;
    for (arch, agent) in agents {
        let (signed, n) = sign_agent(plan, agent)?;
        notes.extend(n.into_iter().map(|n| format!("{}: {n}", arch.name())));
        match arch {
            // shim exists for x86-64 only here: an ARM64 PC boots the signed agent directly.
            Arch::Aarch64 => files.file(arch.boot_path(), signed),
            Arch::X86_64 => x64 = Some((agent, signed)),
        }
    }
    let Some((agent, signed)) = x64 else { return Ok(notes) };
    let Some(dir) = &plan.shim_dir else {
        files.file(stick::AGENT_PATH, signed);
        return Ok(notes);
    };
    if sign::sbat(agent).is_none() {
        bail!("the agent has no .sbat section: shim would refuse it; use an agent built by this version of rescue");
    }
    let (shim, shim_checks) = signed_binary(&dir.join("shimx64.efi.signed"))?;
    let by_microsoft = |c: &sign::SignatureCheck| {
        c.ok()
            && c.issuer_cert_sha256
                .as_deref()
                .is_some_and(|fp| MICROSOFT_UEFI_CAS.iter().any(|(_, known)| *known == fp))
    };
    if !shim_checks.iter().any(by_microsoft) {
        bail!(
            "{}: not signed under Microsoft's third-party UEFI CA (signers: {}); PCs with Secure Boot would refuse it",
            dir.join("shimx64.efi.signed").display(),
            shim_checks.iter().filter_map(|c| c.signer_subject.clone()).collect::<Vec<_>>().join("; ")
        );
    }
    // MokManager is signed by the shim vendor's CA, whose certificate shim carries in .vendor_cert.
    let vendor = vendor_cert(&shim).with_context(|| {
        format!("{}: no vendor certificate in .vendor_cert", dir.join("shimx64.efi.signed").display())
    })?;
    let (mm, mm_checks) = signed_binary(&dir.join("mmx64.efi.signed"))?;
    if !mm_checks
        .iter()
        .any(|c| c.ok() && c.signer_cert.as_ref().is_some_and(|s| vendor.issued(s) || s.der == vendor.der))
    {
        bail!(
            "{}: not signed by the key shim trusts ({}); shim would refuse to start it",
            dir.join("mmx64.efi.signed").display(),
            vendor.subject()
        );
    }
    let signer_list = |cs: &[sign::SignatureCheck]| {
        cs.iter().filter(|c| c.ok()).filter_map(|c| c.signer_issuer.clone()).collect::<Vec<_>>().join("; ")
    };
    notes.push(format!("{}; signed by {} (checked)", describe("shim", &shim), signer_list(&shim_checks)));
    notes.push(format!(
        "{}; signed by {} (checked against shim's vendor certificate)",
        describe("MokManager", &mm),
        signer_list(&mm_checks)
    ));
    let der_path = format!("{}/{}.der", stick::RESCUE_DIR, plan.cert_name);
    notes.push(format!("certificate for \"Enroll key from disk\": {der_path}"));
    notes.push(format!(
        "  compare in MokManager before enrolling: SHA-1 fingerprint {}",
        plan.signer.cert.fingerprint_sha1()
    ));
    files.file(stick::AGENT_PATH, shim);
    files.file(stick::SHIM_SECOND_STAGE_PATH, signed);
    files.file(stick::MOKMANAGER_PATH, mm);
    files.file(&der_path, plan.signer.cert.der.clone());
    Ok(notes)
}

/// The agent signed with the plan's key (checked to verify), and lines to print.
pub fn sign_agent(plan: &SecureBootPlan, agent: &[u8]) -> Result<(Vec<u8>, Vec<String>)> {
    let signed = sign::sign(agent, &plan.signer)?;
    let checks = sign::verify(&signed)?;
    if !checks.iter().all(|c| c.ok()) || checks.len() != 1 {
        bail!("internal error: the agent's new signature does not verify");
    }
    let mut notes = vec![format!(
        "agent signed by {:?} (certificate SHA-256 {})",
        plan.signer.cert.subject(),
        plan.signer.cert.fingerprint()
    )];
    let nx = sign::pe::parse(agent).map(|i| sign::pe::nx_problems(&i)).unwrap_or_default();
    if !nx.is_empty() {
        notes.push(format!(
            "warning: the agent is not NX-compatible ({}); firmware that enforces NX may refuse it",
            nx.join("; ")
        ));
    }
    Ok((signed, notes))
}

/// Checks `rescue build`'s signing options and loads the key and certificate.
pub fn plan(
    key: Option<&Path>,
    cert: Option<&Path>,
    shim: bool,
    shim_dir: Option<&Path>,
) -> Result<Option<SecureBootPlan>> {
    let (key, cert) = match (key, cert) {
        (None, None) => {
            if shim {
                bail!("--shim needs --sign-key and --sign-cert: shim runs only a second stage signed with a key it trusts");
            }
            if shim_dir.is_some() {
                bail!("--shim-dir needs --shim");
            }
            return Ok(None);
        }
        (Some(k), Some(c)) => (k, c),
        _ => bail!("--sign-key and --sign-cert go together"),
    };
    if shim_dir.is_some() && !shim {
        bail!("--shim-dir needs --shim");
    }
    let signer = Signer::load(key, cert)?;
    let stem = cert.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut cert_name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(40)
        .collect();
    if cert_name.is_empty() {
        cert_name = "rescue".into();
    }
    Ok(Some(SecureBootPlan {
        signer,
        cert_name,
        shim_dir: shim.then(|| shim_dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(DEFAULT_SHIM_DIR))),
    }))
}

/// Microsoft's third-party UEFI CAs (SHA-256 of the certificates that sign
/// shim; the same ones Microsoft ships for firmware db).
pub const MICROSOFT_UEFI_CAS: [(&str, &str); 2] = [
    ("Microsoft Corporation UEFI CA 2011", "48e99b991f57fc52f76149599bff0a58c47154229b9f8d603ac40d3500248507"),
    ("Microsoft UEFI CA 2023", "f6124e34125bee3fe6d79a574eaa7b91c0e7bd9d929c1a321178efd611dad901"),
];

/// The certificate shim trusts for its vendor's binaries: shim's
/// `.vendor_cert` section starts with the sizes and offsets (u32 each) of
/// the authorized and deauthorized lists; the authorized one is a DER certificate.
fn vendor_cert(shim: &[u8]) -> Option<Cert> {
    let info = sign::pe::parse(shim).ok()?;
    let s = sign::pe::section(shim, &info, ".vendor_cert")?;
    let u = |at: usize| s.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let (size, offset) = (u(0)?, u(8)?);
    Cert::from_der(s.get(offset..offset.checked_add(size)?)?).ok()
}

/// Where Debian's shim-signed and shim-helpers-amd64-signed put their files.
pub const DEFAULT_SHIM_DIR: &str = "/usr/lib/shim";
