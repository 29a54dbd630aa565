//! `rescue build`: a profile (and later keys) in, a bootable image out.

use crate::cli::read_profile;
use crate::image::agent::Arch;
use crate::image::stick::{self, StickFiles};
use crate::image::{self, agent, shim};
use crate::{clock, output, site_keys};
use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use rescue_engine::formats::embed::Embedded;
use rescue_engine::formats::keyring::{self, KdfParams};
use rescue_engine::rules::profile::Profile;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Image formats `rescue build` makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Raw disk image for a USB stick: protective MBR, GPT, one FAT32 EFI System Partition
    Usb,
    /// Hybrid ISO 9660 with a UEFI El Torito entry; also boots when written to a stick
    Iso,
    /// One self-contained EFI binary for network boot (PXE or UEFI HTTP Boot): the profile and keys inside
    Efi,
}

impl From<Format> for image::Format {
    fn from(f: Format) -> image::Format {
        match f {
            Format::Usb => image::Format::Usb,
            Format::Iso => image::Format::Iso,
            Format::Efi => image::Format::Efi,
        }
    }
}

/// Arguments of `rescue build`.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// The profile to put on the stick (TOML; see profiles/README.md)
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,
    /// Image format
    #[arg(long, value_enum, default_value_t = Format::Usb)]
    pub format: Format,
    /// Image size in MiB [default: 128 for usb; 32 for iso, its maximum]
    #[arg(long, value_name = "MIB")]
    pub size: Option<u64>,
    /// Use this agent (a rescue-agent.efi) instead of the one built into rescue for its architecture
    #[arg(long, value_name = "FILE")]
    pub agent: Option<PathBuf>,
    /// With --format efi: the PCs' architecture (a stick or ISO carries both agents)
    #[arg(long, value_enum, value_name = "ARCH")]
    pub arch: Option<Arch>,
    /// Where to write the image (written to a temporary file, then renamed)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Sign the agent for Secure Boot (Authenticode) with this RSA private key (PEM, PKCS#1 or PKCS#8); never copied to the image
    #[arg(long, value_name = "KEY.pem")]
    pub sign_key: Option<PathBuf>,
    /// The certificate (PEM or DER) of --sign-key, as enrolled in db or MOK
    #[arg(long, value_name = "CERT.pem")]
    pub sign_cert: Option<PathBuf>,
    /// Boot through Microsoft-signed shim: shim as BOOTX64.EFI, the signed agent as grubx64.efi, MokManager, and the certificate (DER) in rescue/ for "Enroll key from disk"
    #[arg(long)]
    pub shim: bool,
    /// Where shimx64.efi.signed and mmx64.efi.signed are [default: /usr/lib/shim]
    #[arg(long, value_name = "DIR")]
    pub shim_dir: Option<PathBuf>,
    /// Site recovery keys to carry, sealed with a PIN (CSV exports from Active Directory, Entra ID / Intune, MBAM, or KeyID,RecoveryKey; repeat for several files; see docs/keys.md)
    #[arg(long = "keys", value_name = "FILE")]
    pub keys: Vec<PathBuf>,
    /// Read the site PIN from the first line of this file instead of asking on the terminal
    #[arg(long, value_name = "FILE", requires = "keys", conflicts_with = "no_seal")]
    pub pin_file: Option<PathBuf>,
    /// Store the keys UNSEALED (anyone holding the stick can read them)
    #[arg(long, requires = "keys")]
    pub no_seal: bool,
    /// Argon2id memory for sealing the keys, in MiB (default 128, at most 1024): more makes
    /// guessing a lost stick's PIN costlier; every PC the stick boots must have it free
    #[arg(long, value_name = "MIB", requires = "keys", conflicts_with = "no_seal")]
    pub kdf_memory: Option<u32>,
    /// A restore stick: carry the backups in this folder (a stick's rescue/backups, or a
    /// `rescue apply --backup-dir`) for the profile's [[restore]] rules
    #[arg(long, value_name = "DIR")]
    pub backups: Option<PathBuf>,
}

/// Runs `rescue build`.
pub fn run(args: &BuildArgs) -> Result<()> {
    let mut inputs: Vec<&Path> = vec![&args.profile];
    inputs.extend(args.keys.iter().map(PathBuf::as_path));
    inputs.extend(
        [&args.pin_file, &args.agent, &args.sign_key, &args.sign_cert].into_iter().flatten().map(PathBuf::as_path),
    );
    output::check_output("--out", &args.out, &inputs)?;
    let (profile, text) = read_profile(&args.profile)?;
    let plan = shim::plan(args.sign_key.as_deref(), args.sign_cert.as_deref(), args.shim, args.shim_dir.as_deref())?;
    // Keys and PIN come first: a bad key file or PIN file stops the build before any work.
    let key_file = keyed(args)?;
    // The profile and the key file's digest go into the agent before it is
    // signed: the agent applies only what it carries (see rescue_engine::formats::embed).
    let format = image::Format::from(args.format);
    let network = format == image::Format::Efi;
    if network && args.shim {
        bail!("--shim makes a stick layout; a network-boot binary is signed directly with --sign-key/--sign-cert");
    }
    let embedded = Embedded {
        profile: text.as_bytes().to_vec(),
        keys_sha256: key_file.as_ref().map(|(bytes, _)| Sha256::digest(bytes).into()),
        // With no stick to hold it, a network-boot agent carries the sealed key file itself.
        keys: key_file.as_ref().filter(|_| network).map(|(bytes, _)| bytes.clone()),
    };
    // --agent FILE replaces the built-in agent of its own architecture.
    let custom = match &args.agent {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read the agent {}", p.display()))?;
            let arch = Arch::of(&bytes)
                .with_context(|| format!("the agent {} is not an x86_64 or aarch64 UEFI application", p.display()))?;
            Some((arch, p.as_path()))
        }
        None => None,
    };
    let agent_for = |arch: Arch| -> Result<Vec<u8>> {
        let file = custom.filter(|(a, _)| *a == arch).map(|(_, p)| p);
        agent::embed(&agent::load(arch, file)?, &embedded)
    };
    if args.arch.is_some() && !network {
        bail!("--arch is for --format efi: a stick or ISO carries the agents for both x86_64 and aarch64");
    }
    if network {
        let agent = agent_for(args.arch.unwrap_or(Arch::X86_64))?;
        return build_efi(args, &profile, agent, plan.as_ref(), key_file.as_ref().map(|(_, s)| s.as_str()));
    }
    let agents: Vec<(Arch, Vec<u8>)> = Arch::ALL.into_iter().map(|a| Ok((a, agent_for(a)?))).collect::<Result<_>>()?;
    let boot: Vec<(&str, &[u8])> = agents.iter().map(|(a, b)| (a.boot_path(), b.as_slice())).collect();
    let mut files = StickFiles::new(&boot, &text);
    if let Some((bytes, _)) = &key_file {
        files.file(stick::KEYS_PATH, bytes.clone());
    }
    let carried = match &args.backups {
        Some(dir) if profile.restore.is_empty() => {
            bail!("--backups {}: the profile has no [[restore]] rule to use them", dir.display())
        }
        Some(dir) => Some(carry_backups(dir, &mut files)?),
        None if !profile.restore.is_empty() => {
            say_err!("note: no --backups: the stick restores only what is in its rescue/backups when it boots");
            None
        }
        None => None,
    };
    let secure_boot_notes = match &plan {
        Some(p) => shim::apply(p, &agents, &mut files)?,
        None => Vec::new(),
    };
    let agent = &agents[0].1;
    // GUIDs and volume serials come from the content: the same inputs give the same image.
    let mut seed = Sha256::new();
    for (_, b) in &agents {
        seed.update(b);
    }
    let seed: [u8; 32] = seed.chain_update(text.as_bytes()).finalize().into();
    let stamp = rescue_engine::util::time::civil_from_unix(clock::image_time());
    let (len, pieces) = image::build(format, &files, args.size.unwrap_or(format.default_mib()), seed, stamp)?;
    output::write_pieces(&args.out, len, &pieces, readers(args))?;
    say!(
        "built {} ({} image, {} MiB): profile {:?}, {} rule(s), agents {} for x86_64 and aarch64",
        args.out.display(),
        format.name(),
        len >> 20,
        profile.name,
        profile.rule_count(),
        agent::version(agent).unwrap_or_default()
    );
    for a in profile.actions() {
        say!("  {a}");
    }
    for w in profile.warnings() {
        say!("  warning: {w}");
    }
    for n in secure_boot_notes {
        say!("  {n}");
    }
    if let Some((_, summary)) = &key_file {
        say!("  {summary}");
    }
    if let Some((n, bytes)) = carried {
        say!("  carries {n} backup(s) ({bytes} bytes) in {}", stick::BACKUPS_DIR);
    }
    Ok(())
}

/// Puts every backup with a sidecar below `dir` on the stick, where the
/// agent looks for a volume's backups: `rescue/backups/<serial>/<run>/<path>`
/// (`<run>` from a stick's layout; `host` for a `--backup-dir`'s), each
/// beside its sidecar. Paths come from the folder and the sidecars: every
/// component is checked. Returns how many backups, and their bytes.
fn carry_backups(dir: &Path, files: &mut StickFiles) -> Result<(usize, u64)> {
    use rescue_engine::rules::backup::BackupSink;
    use rescue_engine::util::win32_name::component_problem;
    let mut sink = crate::host::backup_dir::DirSink::new(dir.to_path_buf());
    let listed = sink.list("").map_err(anyhow::Error::msg)?;
    let (mut n, mut bytes) = (0, 0);
    for s in listed {
        let side: serde_json::Value =
            serde_json::from_slice(&s.sidecar).with_context(|| format!("{}.json: not a sidecar of ours", s.at))?;
        let serial = side.pointer("/restore/volume_serial").or_else(|| side.get("volume_serial"));
        let serial = serial.and_then(|v| v.as_str()).unwrap_or("").to_ascii_uppercase();
        if serial.len() != 16 || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("{}.json names no volume serial number (made by an older rescue?)", s.at);
        }
        let rel = Path::new(&s.at).strip_prefix(dir).unwrap_or(Path::new(&s.at));
        let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        let after: Vec<String> = match parts.iter().position(|p| p.eq_ignore_ascii_case(&serial)) {
            Some(i) => parts[i + 1..].to_vec(),
            None => {
                let path = side.get("path").and_then(|p| p.as_str()).unwrap_or("");
                std::iter::once("host").chain(path.split('\\')).map(String::from).collect()
            }
        };
        if let Some(bad) = after.iter().find(|p| component_problem(p).is_some()) {
            bail!("{}: {bad:?} cannot be part of a path on the stick", s.at);
        }
        let on_stick = format!("{}/{serial}/{}", stick::BACKUPS_DIR, after.join("/"));
        let content = std::fs::read(&s.at).with_context(|| format!("cannot read the backup {}", s.at))?;
        bytes += content.len() as u64;
        n += 1;
        files.file(&format!("{on_stick}.json"), s.sidecar);
        files.file(&on_stick, content);
    }
    if n == 0 {
        bail!("--backups {}: no backup with a sidecar there", dir.display());
    }
    Ok((n, bytes))
}

/// The key file for `--keys` (sealed with the PIN, or unsealed with
/// `--no-seal`) and a one-line summary; `None` without `--keys`.
fn keyed(args: &BuildArgs) -> Result<Option<(Vec<u8>, String)>> {
    if args.keys.is_empty() {
        return Ok(None);
    }
    let (keys, set) = site_keys::import::load(&args.keys)?;
    let what = format!("{} recovery key(s) from {} file(s)", keys.len(), set.files.len());
    if args.no_seal {
        say_err!("WARNING: --no-seal: the {} recovery key(s) are stored UNSEALED in {}.", keys.len(), stick::KEYS_PATH);
        say_err!("WARNING: anyone who finds or copies this stick can unlock those PCs' BitLocker volumes.");
        let bytes = site_keys::unsealed_key_file(&keys)?;
        return Ok(Some((bytes, format!("{what}, UNSEALED, in {}", stick::KEYS_PATH))));
    }
    let mut kdf = KdfParams::DEFAULT;
    if let Some(mib) = args.kdf_memory {
        if !(KdfParams::DEFAULT.m_kib / 1024..=keyring::MAX_M_KIB / 1024).contains(&mib) {
            bail!(
                "--kdf-memory {mib}: use {} to {} MiB (the agent must find it free on every PC)",
                KdfParams::DEFAULT.m_kib / 1024,
                keyring::MAX_M_KIB / 1024
            );
        }
        kdf.m_kib = mib * 1024;
    }
    let pin = site_keys::pin::read_pin(args.pin_file.as_deref())?;
    let (bytes, cost) = site_keys::sealed_key_file(&keys, &pin, kdf)?;
    Ok(Some((bytes, format!("{what}, sealed with the site PIN, in {}\n  {cost}", stick::KEYS_PATH))))
}

/// Who may read the image: anyone the umask allows (a web or TFTP server
/// serves it), but the owner only when it carries recovery keys in clear.
fn readers(args: &BuildArgs) -> output::Readers {
    if args.no_seal {
        output::Readers::OwnerOnly
    } else {
        output::Readers::AsUmaskSays
    }
}

/// `--format efi`: the agent alone, carrying its profile (and keys), signed
/// when asked, for PXE or UEFI HTTP Boot.
fn build_efi(
    args: &BuildArgs,
    profile: &Profile,
    agent: Vec<u8>,
    plan: Option<&shim::SecureBootPlan>,
    keys: Option<&str>,
) -> Result<()> {
    let (bytes, notes) = match plan {
        Some(p) => shim::sign_agent(p, &agent)?,
        None => (agent, Vec::new()),
    };
    output::write_pieces(&args.out, bytes.len() as u64, &[(0, bytes.clone())], readers(args))?;
    say!(
        "built {} (network-boot EFI binary for {}, {} KiB): profile {:?}, {} rule(s), agent {}",
        args.out.display(),
        args.arch.unwrap_or(Arch::X86_64).name(),
        bytes.len() >> 10,
        profile.name,
        profile.rule_count(),
        agent::version(&bytes).unwrap_or_default()
    );
    for a in profile.actions() {
        say!("  {a}");
    }
    match &profile.report.url {
        Some(url) => say!("  reports and backups go to {url}/<run id>/ (HTTP PUT)"),
        None => say!("  warning: the profile has no [report] url: reports are shown on screen only"),
    }
    for n in notes.iter().map(String::as_str).chain(keys) {
        say!("  {n}");
    }
    Ok(())
}
