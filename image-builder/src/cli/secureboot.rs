//! `rescue secureboot genkey` and `rescue secureboot sign`: a signing key
//! and certificate for agents, and signing any UEFI binary.

use crate::output;
use crate::sign::{self, cert::Cert, Signer};
use anyhow::{bail, Context, Result};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::RsaPrivateKey;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand, Debug)]
pub enum SecureBootCommand {
    /// Make an RSA key and a self-signed certificate for signing rescue agents (for db or MOK)
    Genkey(GenkeyArgs),
    /// Sign a UEFI binary with Authenticode (rescue build --sign-key does this for the agent)
    Sign(SignArgs),
}

#[derive(clap::Args, Debug)]
pub struct SignArgs {
    /// RSA private key (PEM, PKCS#1 or PKCS#8, 2048-4096 bits)
    #[arg(long, value_name = "KEY.pem")]
    pub key: PathBuf,
    /// Its certificate (PEM or DER)
    #[arg(long, value_name = "CERT.pem")]
    pub cert: PathBuf,
    /// The UEFI binary (PE) to sign
    pub input: PathBuf,
    /// Where to write the signed binary
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct GenkeyArgs {
    /// Name of the key: the certificate's CN and the files' base name (letters, digits, - _ . and spaces)
    #[arg(long)]
    pub name: String,
    /// Folder to write NAME.key, NAME.crt (PEM) and NAME.der into (created if missing)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// RSA key size; 2048 works on every UEFI firmware, 3072 and 4096 on most
    #[arg(long, default_value_t = 2048)]
    pub bits: usize,
    /// Years the certificate is valid (firmware does not check dates; signing tools may)
    #[arg(long, default_value_t = 15)]
    pub years: u64,
}

/// Runs `rescue secureboot …`.
pub fn run(cmd: &SecureBootCommand) -> Result<()> {
    match cmd {
        SecureBootCommand::Genkey(a) => genkey(a),
        SecureBootCommand::Sign(a) => sign_file(a),
    }
}

fn sign_file(a: &SignArgs) -> Result<()> {
    output::check_output("--out", &a.out, &[&a.input, &a.key, &a.cert])?;
    let signer = Signer::load(&a.key, &a.cert)?;
    let image = std::fs::read(&a.input).with_context(|| format!("cannot read {}", a.input.display()))?;
    let signed = sign::sign(&image, &signer).with_context(|| format!("{}", a.input.display()))?;
    let len = signed.len() as u64;
    output::write_pieces(&a.out, len, &[(0, signed)], output::Readers::AsUmaskSays)?;
    say!(
        "signed {} -> {} with {:?} (certificate SHA-256 {})",
        a.input.display(),
        a.out.display(),
        signer.cert.subject(),
        signer.cert.fingerprint()
    );
    Ok(())
}

fn genkey(a: &GenkeyArgs) -> Result<()> {
    use der::{Encode, EncodePem};
    use std::str::FromStr;
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::ext::pkix::ExtendedKeyUsage;
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::Validity;

    let name = a.name.trim();
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || " -_.".contains(c)) {
        bail!("--name {:?}: use 1-64 letters, digits, spaces, '-', '_' or '.'", a.name);
    }
    if ![2048, 3072, 4096].contains(&a.bits) {
        bail!("--bits {}: use 2048, 3072 or 4096", a.bits);
    }
    if !(1..=100).contains(&a.years) {
        bail!("--years {}: use 1 to 100", a.years);
    }
    let base = name.replace(' ', "-");
    let paths =
        [a.out.join(format!("{base}.key")), a.out.join(format!("{base}.crt")), a.out.join(format!("{base}.der"))];
    for p in &paths {
        if p.exists() {
            bail!("{} already exists: not overwriting a key or certificate", p.display());
        }
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;

    let mut rng = rand_core::OsRng;
    let key = RsaPrivateKey::new(&mut rng, a.bits).context("RSA key generation failed")?;
    let signing = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    let subject = Name::from_str(&format!("CN={name}")).context("bad name")?;
    let spki = SubjectPublicKeyInfoOwned::from_key(key.to_public_key())?;
    let validity = Validity::from_now(std::time::Duration::from_secs(a.years * 365 * 86400))?;
    let mut serial = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rng, &mut serial);
    serial[0] = (serial[0] & 0x7f) | 0x40;
    let serial = SerialNumber::new(&serial)?;
    let profile =
        Profile::Leaf { issuer: subject.clone(), enable_key_agreement: false, enable_key_encipherment: false };
    let mut b = CertificateBuilder::new(profile, serial, validity, subject, spki, &signing)?;
    b.add_extension(&ExtendedKeyUsage(vec![der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3")]))?;
    let cert = b.build::<rsa::pkcs1v15::Signature>().context("cannot make the certificate")?;
    let cert_der = cert.to_der()?;
    let cert_pem = cert.to_pem(LineEnding::LF)?;
    let key_pem = key.to_pkcs8_pem(LineEnding::LF)?;

    write_new(&paths[0], key_pem.as_bytes(), 0o600)?;
    write_new(&paths[1], cert_pem.as_bytes(), 0o644)?;
    write_new(&paths[2], &cert_der, 0o644)?;
    let c = Cert::from_der(&cert_der)?;
    say!("made a {}-bit RSA key and a self-signed certificate {:?}", a.bits, c.subject());
    say!("  private key:  {} (mode 0600)", paths[0].display());
    say!("  certificate:  {} (PEM, for --sign-cert and virt-fw-vars/KeyTool)", paths[1].display());
    say!("  certificate:  {} (DER, for db enrollment tools and MokManager)", paths[2].display());
    say!("  SHA-256 fingerprint: {}", c.fingerprint());
    say!();
    say!("Keep the private key safe: anyone who has it can make code that every PC");
    say!("trusting this certificate will boot with Secure Boot on.");
    say!("  - Move {} off this machine to offline storage (an encrypted USB", paths[0].display());
    say!("    key in a safe, or an HSM/vault); keep a second copy in another place.");
    say!("  - Sign on a trusted machine only; `rescue build` never copies the key to a stick.");
    say!("  - If it leaks: remove the certificate from db/MOK (or add it to dbx) on every PC.");
    Ok(())
}

/// Creates `path` (never overwriting) with `mode`, writing `bytes`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    #[cfg(not(unix))]
    let _ = mode; // Windows: the folder's ACL applies.
    let mut f = opts.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).with_context(|| format!("writing {}", path.display()))
}
