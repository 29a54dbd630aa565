//! `rescue build`: a profile (and later keys) in, a bootable image out.

use crate::stick::StickFiles;
use crate::{agent, iso, secureboot, usb};
use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use rescue_engine::profile::Profile;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// An image as `(offset, bytes)` pieces over an all-zero file (they do not overlap).
pub type Writes = Vec<(u64, Vec<u8>)>;

/// Image formats `rescue build` makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Raw disk image for a USB stick: protective MBR, GPT, one FAT32 EFI System Partition
    Usb,
    /// Hybrid ISO 9660 with a UEFI El Torito entry; also boots when written to a stick
    Iso,
}

/// Default size of a USB image in MiB: room for a fleet's worth of backups and reports.
pub const DEFAULT_USB_MIB: u64 = 128;
/// Default (and largest) size of an ISO's boot partition in MiB.
pub const DEFAULT_ISO_MIB: u64 = 32;

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
    /// Use this agent (a rescue-agent.efi) instead of the one built into rescue
    #[arg(long, value_name = "FILE")]
    pub agent: Option<PathBuf>,
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
}

/// Reads and validates a profile file, naming the file in every error.
pub fn read_profile(path: &Path) -> Result<(Profile, String)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read profile {}", path.display()))?;
    let profile = Profile::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok((profile, text))
}

pub fn run(args: &BuildArgs) -> Result<()> {
    let (profile, text) = read_profile(&args.profile)?;
    let plan = secureboot::plan(args.sign_key.as_deref(), args.sign_cert.as_deref(), args.shim, args.shim_dir.as_deref())?;
    // Keys and PIN come first: a bad key file or PIN file stops the build before any work.
    let key_file = keyed(args)?;
    let agent = agent::load(args.agent.as_deref())?;
    let mut files = StickFiles::new(&agent, &text);
    if let Some((bytes, _)) = &key_file {
        files.file(rescue_engine::keyring::STICK_PATH, bytes.clone());
    }
    let secure_boot_notes = match &plan {
        Some(p) => secureboot::apply(p, &agent, &mut files)?,
        None => Vec::new(),
    };
    // GUIDs and volume serials come from the content: the same inputs give the same image.
    let seed: [u8; 32] = Sha256::new().chain_update(&*agent).chain_update(text.as_bytes()).finalize().into();

    let (len, writes) = match args.format {
        Format::Usb => {
            let mib = args.size.unwrap_or(DEFAULT_USB_MIB);
            if !(40..=1 << 20).contains(&mib) {
                bail!("--size {mib}: a USB image must be 40 MiB to 1 TiB (FAT32 needs at least 40 MiB)");
            }
            let len = mib << 20;
            (len, usb::build(&files, len, seed)?)
        }
        Format::Iso => {
            let mib = args.size.unwrap_or(DEFAULT_ISO_MIB);
            if !(2..=DEFAULT_ISO_MIB).contains(&mib) {
                bail!("--size {mib}: an ISO's boot partition must be 2-32 MiB (El Torito counts its size in 16 bits)");
            }
            let stamp = rescue_engine::time::civil_from_unix(
                std::env::var("SOURCE_DATE_EPOCH")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)),
            );
            iso::build(&files, (mib << 20).min(iso::MAX_BOOT_IMAGE), seed, stamp)?
        }
    };
    write_atomically(&args.out, len, &writes)?;
    println!(
        "built {} ({} image, {} MiB): profile {:?}, {} rule(s), agent {}",
        args.out.display(),
        match args.format {
            Format::Usb => "USB",
            Format::Iso => "ISO",
        },
        len >> 20,
        profile.name,
        profile.delete.len(),
        agent::version(&agent).unwrap_or_default()
    );
    for n in secure_boot_notes {
        println!("  {n}");
    }
    if let Some((_, summary)) = &key_file {
        println!("  {summary}");
    }
    Ok(())
}

/// The key file for `--keys` (sealed with the PIN, or unsealed with
/// `--no-seal`) and a one-line summary; `None` without `--keys`.
fn keyed(args: &BuildArgs) -> Result<Option<(Vec<u8>, String)>> {
    if args.keys.is_empty() {
        return Ok(None);
    }
    let (keys, set) = crate::keys::load(&args.keys)?;
    let files = set.files.len();
    let bytes = if args.no_seal {
        eprintln!("WARNING: --no-seal: the {} recovery key(s) are stored UNSEALED in {}.", keys.len(), rescue_engine::keyring::STICK_PATH);
        eprintln!("WARNING: anyone who finds or copies this stick can unlock those PCs' BitLocker volumes.");
        crate::keys::key_file(&keys, None)?
    } else {
        let pin = crate::keys::read_pin(args.pin_file.as_deref())?;
        crate::keys::key_file(&keys, Some(&pin))?
    };
    let how = if args.no_seal { "UNSEALED" } else { "sealed with the site PIN" };
    Ok(Some((bytes, format!("{} recovery key(s) from {files} file(s), {how}, in {}", keys.len(), rescue_engine::keyring::STICK_PATH))))
}

/// Writes a sparse image of `len` bytes from `(offset, bytes)` writes into a
/// temporary file beside `out`, syncs it, then renames it over `out`. Runs of
/// zeros are skipped, so the file takes only the space its data needs. On any
/// error the temporary file is removed and `out` is untouched.
pub fn write_atomically(out: &Path, len: u64, writes: &[(u64, Vec<u8>)]) -> Result<()> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".rescue-build-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    write_sparse(tmp.as_file(), len, writes).with_context(|| format!("writing {}", out.display()))?;
    tmp.as_file_mut().flush()?;
    tmp.as_file().sync_all()?;
    tmp.persist(out).map_err(|e| e.error).with_context(|| format!("cannot create {}", out.display()))?;
    Ok(())
}

fn write_sparse(file: &File, len: u64, writes: &[(u64, Vec<u8>)]) -> std::io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    file.set_len(len)?;
    for (offset, bytes) in writes {
        for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
            if chunk.iter().any(|&b| b != 0) {
                file.write_all_at(chunk, offset + (i * CHUNK) as u64)?;
            }
        }
    }
    Ok(())
}
