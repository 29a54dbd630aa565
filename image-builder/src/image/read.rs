//! Reading an image or stick back: its boot partition, its files, its
//! profile, agent, key file and signatures — never any secret.

use super::{agent, fat, iso, stick};
use crate::host::disk::FileDisk;
use crate::sign;
use anyhow::{bail, Context, Result};
use rescue_engine::block::BlockDevice;
use rescue_engine::formats::embed::{self, Embedded};
use rescue_engine::formats::keyring;
use rescue_engine::formats::partition::{self, Partition, PartitionKind};
use rescue_engine::rules::profile::Profile;
use rescue_engine::util::guid::Guid;
use rescue_engine::util::hex::hex;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::path::Path;

/// A stick's or image's boot partition: where its FAT file system is.
pub struct BootPartition {
    /// What kind of image this is, for people.
    pub format: String,
    /// Byte offset of the FAT volume.
    pub offset: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// The boot partition: the El Torito UEFI image of an ISO, else the GPT
/// ESP, else an MBR FAT partition, else the whole device.
pub fn boot_partition(file: &File, parts: &[Partition]) -> Result<BootPartition> {
    if let Some(info) = iso::read_info(&mut |o, b| crate::fileio::read_exact_at(file, b, o)) {
        let (_, lba, count) = info
            .boot_entries
            .iter()
            .find(|e| e.0 == 0xEF)
            .copied()
            .context("the ISO has no UEFI (platform 0xEF) El Torito boot entry")?;
        let hybrid =
            if parts.iter().any(|p| matches!(p.kind, PartitionKind::Gpt { .. })) { ", hybrid GPT" } else { "" };
        return Ok(BootPartition {
            format: format!(
                "ISO 9660 volume {:?} of {} blocks, El Torito UEFI boot{hybrid}",
                info.volume_id, info.blocks
            ),
            offset: lba as u64 * iso::BLOCK,
            size: count as u64 * 512,
        });
    }
    let esp = parts
        .iter()
        .find(|p| matches!(&p.kind, PartitionKind::Gpt { type_guid, .. } if *type_guid == Guid::ESP))
        .or_else(|| parts.iter().find(|p| matches!(p.kind, PartitionKind::Mbr { type_code: 0xEF | 0x0B | 0x0C })))
        .or_else(|| parts.iter().find(|p| p.kind == PartitionKind::Whole))
        .context("no EFI System Partition or FAT volume found: this is not a rescue image")?;
    let format = match esp.kind {
        PartitionKind::Gpt { .. } => "USB disk image (GPT)",
        PartitionKind::Mbr { .. } => "disk image (MBR)",
        PartitionKind::Whole => "bare FAT volume",
    };
    Ok(BootPartition { format: format.into(), offset: esp.offset, size: esp.size })
}

/// Opens the FAT file system on the boot partition of the image or stick at `path`.
pub fn open_boot_fat(path: &Path) -> Result<(File, BootPartition)> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut disk = FileDisk::open(path, false)?;
    let parts = partition::discover(&mut disk).with_context(|| path.display().to_string())?;
    let boot = boot_partition(&file, &parts).with_context(|| path.display().to_string())?;
    Ok((file, boot))
}

/// One agent on a stick.
#[derive(Serialize)]
pub struct AgentInfo {
    pub path: String,
    pub arch: Option<agent::Arch>,
    pub version: Option<String>,
}

/// Everything `rescue inspect` shows of an image.
#[derive(Serialize)]
pub struct Report {
    pub format: String,
    pub size: u64,
    pub partitions: Vec<PartitionInfo>,
    pub boot_partition_offset: u64,
    /// The site key file (rescue/keys.sealed), if any: Key IDs, never keys.
    pub keys: Option<KeysInfo>,
    pub files: Vec<FileInfo>,
    pub profile: Option<ProfileInfo>,
    /// Whether the stick still holds what its agent was built with.
    pub integrity: Integrity,
    /// Certificates in `rescue/` for MokManager's "Enroll key from disk".
    pub mok_certificates: Vec<MokCertificate>,
    pub agent_version: Option<String>,
    /// Every agent on the stick: its boot path, architecture and version.
    pub agents: Vec<AgentInfo>,
    /// Authenticode signatures of every .efi file, checked against the file.
    pub efi_signatures: Vec<EfiSignatures>,
}

#[derive(Serialize)]
pub struct EfiSignatures {
    pub path: String,
    pub signed: bool,
    pub signatures: Vec<sign::SignatureCheck>,
}

#[derive(Serialize)]
pub struct PartitionInfo {
    pub number: u32,
    pub offset: u64,
    pub size: u64,
    pub kind: String,
}

#[derive(Serialize)]
pub struct FileInfo {
    pub path: String,
    pub size: u64,
    pub is_dir: bool,
    pub sha256: Option<String>,
}

#[derive(Serialize)]
pub struct ProfileInfo {
    pub name: String,
    pub description: String,
    pub actions: Vec<String>,
    pub unclean_journal: String,
    pub finish: String,
    /// Where the agent also delivers its report and backups (`[report] url`).
    pub report_url: Option<String>,
}

/// What `rescue inspect` shows of a site key file: whether it is sealed,
/// how many keys and their Key IDs (readable without the PIN), never a key.
#[derive(Serialize)]
pub struct KeysInfo {
    pub path: String,
    pub sealed: bool,
    pub count: usize,
    pub key_ids: Vec<String>,
    /// Argon2id parameters of a sealed file, e.g. "Argon2id 32768 KiB, t=3, p=1".
    pub kdf: Option<String>,
    /// Why the file cannot be read (damaged, altered, unknown version).
    pub error: Option<String>,
}

/// Reads a key file's clear header. Never needs or asks for the PIN.
pub fn keys_info(bytes: &[u8]) -> KeysInfo {
    let path = stick::KEYS_PATH.to_string();
    match keyring::Keyring::parse(bytes) {
        Ok(k) => KeysInfo {
            path,
            sealed: k.is_sealed(),
            count: k.key_ids().len(),
            key_ids: k.key_ids().iter().map(|g| format!("{g}")).collect(),
            kdf: k.kdf().map(|p| format!("Argon2id {} KiB, t={}, p={}", p.m_kib, p.t, p.p)),
            error: None,
        },
        Err(e) => {
            KeysInfo { path, sealed: false, count: 0, key_ids: Vec::new(), kdf: None, error: Some(e.to_string()) }
        }
    }
}

/// Reads everything `rescue inspect` shows.
pub fn inspect(path: &std::path::Path) -> Result<Report> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut disk = FileDisk::open(path, false)?;
    let size = disk.size();
    let parts = partition::discover(&mut disk).with_context(|| path.display().to_string())?;
    let partitions: Vec<PartitionInfo> = parts
        .iter()
        .map(|p| PartitionInfo {
            number: p.number,
            offset: p.offset,
            size: p.size,
            kind: match &p.kind {
                PartitionKind::Gpt { type_guid, .. } if *type_guid == Guid::ESP => "EFI System Partition (GPT)".into(),
                PartitionKind::Gpt { type_guid, name, .. } => format!("GPT type {type_guid} {name:?}"),
                PartitionKind::Mbr { type_code } => format!("MBR type {type_code:#04x}"),
                PartitionKind::Whole => "no partition table".into(),
            },
        })
        .collect();
    let boot = boot_partition(&file, &parts)?;
    let format = boot.format.clone();
    let fs = fat::open(fat::Window::new(&file, boot.offset, boot.size))?;
    let mut files = Vec::new();
    let (mut agent_bytes, mut profile_bytes, mut keys_bytes) = (None, None, None);
    let mut efi_signatures = Vec::new();
    let mut mok_certificates = Vec::new();
    let mut agents = Vec::new();
    for e in fat::walk(&fs)? {
        let is = |p: &str| e.path.eq_ignore_ascii_case(p);
        let mut sha256 = None;
        if !e.is_dir {
            sha256 = Some(hex(&fat::sha256(&fs, &e.path)?));
            if e.path.to_ascii_lowercase().ends_with(".efi") {
                let bytes = fat::read_file(&fs, &e.path, MAX_EFI_BYTES)?;
                let signatures = sign::verify(&bytes)
                    .unwrap_or_else(|err| vec![sign::SignatureCheck::unreadable(format!("{err:#}"))]);
                efi_signatures.push(EfiSignatures { path: e.path.clone(), signed: !signatures.is_empty(), signatures });
                // The agents: each architecture's boot file, or shim's second stage when shim boots first.
                if agent::version(&bytes).is_some() {
                    agents.push(AgentInfo {
                        path: e.path.clone(),
                        arch: agent::Arch::of(&bytes),
                        version: agent::version(&bytes),
                    });
                    if is(stick::AGENT_PATH) || is(stick::SHIM_SECOND_STAGE_PATH) {
                        agent_bytes = Some(bytes);
                    }
                }
            } else if e.path.to_ascii_lowercase().ends_with(".der") && e.path.starts_with(stick::RESCUE_DIR) {
                let der = fat::read_file(&fs, &e.path, 64 << 10)?;
                if let Ok(c) = crate::sign::cert::Cert::from_der(&der) {
                    let (sha1, sha256) = (c.fingerprint_sha1(), c.fingerprint());
                    mok_certificates.push(MokCertificate { path: e.path.clone(), subject: c.subject(), sha1, sha256 });
                }
            } else if is(stick::KEYS_PATH) {
                keys_bytes = Some(fat::read_file(&fs, &e.path, keyring::MAX_FILE_LEN as u64)?);
            } else if is(stick::PROFILE_PATH) {
                profile_bytes = Some(fat::read_file(&fs, &e.path, embed::MAX_PROFILE_LEN as u64)?);
            }
        }
        files.push(FileInfo { path: e.path, size: e.size, is_dir: e.is_dir, sha256 });
    }
    let Some(agent_bytes) = agent_bytes else {
        bail!("no rescue agent ({}) on the boot partition: this is not a rescue image", stick::AGENT_PATH);
    };
    let agent_version = agent::version(&agent_bytes);
    let embedded = agent::embedded(&agent_bytes);
    let mut integrity = Integrity::check(&embedded, profile_bytes.as_deref(), keys_bytes.as_deref());
    let signed = |path: &str| efi_signatures.iter().any(|f| f.path == path && f.signed);
    if !agents.is_empty() && agents.iter().all(|a| signed(&a.path)) {
        integrity.signed = true;
        integrity.protection = SIGNED_PROTECTION;
    }
    // What the agent will do is the profile it carries; an older agent's is the stick's file.
    let profile_text = match &embedded {
        Ok(e) => Some(e.profile.clone()),
        Err(_) => profile_bytes,
    };
    let profile = match profile_text {
        Some(b) => Some(profile_info(&b)?),
        None => None,
    };
    let keys = keys_bytes.as_deref().map(keys_info);
    Ok(Report {
        format,
        size,
        partitions,
        boot_partition_offset: boot.offset,
        keys,
        files,
        profile,
        integrity,
        mok_certificates,
        agent_version,
        agents,
        efi_signatures,
    })
}

/// Largest .efi file read whole (agents, shim and MokManager are a few MiB).
const MAX_EFI_BYTES: u64 = 64 << 20;

/// What `inspect` shows of a profile (the rules in words).
fn profile_info(bytes: &[u8]) -> Result<ProfileInfo> {
    let text = std::str::from_utf8(bytes).context("the profile is not UTF-8")?;
    let p = Profile::parse(text).context("the image's profile")?;
    Ok(ProfileInfo {
        actions: p.actions(),
        name: p.name,
        description: p.description,
        unclean_journal: format!("{:?}", p.ntfs.unclean_journal).to_lowercase(),
        finish: p.finish.action.as_str().into(),
        report_url: p.report.url,
    })
}

/// A certificate on the stick for MokManager (the shim route).
#[derive(Serialize)]
pub struct MokCertificate {
    /// Its path on the stick.
    pub path: String,
    /// The certificate's subject.
    pub subject: String,
    /// SHA-1 fingerprint, as MokManager shows it.
    pub sha1: String,
    /// SHA-256 fingerprint.
    pub sha256: String,
}

/// Whether a stick's files are still the ones its agent was built with.
#[derive(Serialize)]
pub struct Integrity {
    /// The agent carries its profile (it applies only that one).
    pub profile_embedded: bool,
    /// `rescue/profile.toml` is byte-identical to the embedded profile
    /// (when it is not, the agent refuses to run).
    pub profile_matches: bool,
    /// The agent is bound to a key file (a keyed image).
    pub keys_bound: bool,
    /// The key file on the stick has the digest the agent was built with;
    /// `None` when there is neither a key file nor a bound digest.
    pub keys_match: Option<bool>,
    /// Why the embedded profile could not be read.
    pub error: Option<String>,
    /// Every agent on the stick carries an Authenticode signature.
    pub signed: bool,
    /// What the binding protects against, in words: a signature makes an
    /// edit of the agent (and so of the profile sealed in it) visible to
    /// Secure Boot; without one, anyone can rewrite the agent's profile
    /// section and the stick's file together.
    pub protection: &'static str,
}

/// [`Integrity::protection`] of a signed stick.
pub const SIGNED_PROTECTION: &str =
    "signed: an edit of the agent or of the profile sealed in it breaks the signature (Secure Boot refuses it)";
/// [`Integrity::protection`] of an unsigned stick.
pub const UNSIGNED_PROTECTION: &str = "unsigned: protects against accidental edits only; \
     sign for Secure Boot (rescue build --sign-key/--sign-cert) to bind it";

impl Integrity {
    fn check(embedded: &Result<Embedded>, profile: Option<&[u8]>, keys: Option<&[u8]>) -> Integrity {
        match embedded {
            Ok(e) => Integrity {
                profile_embedded: true,
                profile_matches: profile == Some(e.profile.as_slice()),
                keys_bound: e.keys_sha256.is_some(),
                keys_match: match (keys, e.keys_sha256) {
                    (None, None) => None,
                    (Some(k), Some(bound)) => Some(<[u8; 32]>::from(Sha256::digest(k)) == bound),
                    _ => Some(false),
                },
                error: None,
                signed: false,
                protection: UNSIGNED_PROTECTION,
            },
            Err(err) => Integrity {
                profile_embedded: false,
                profile_matches: false,
                keys_bound: false,
                keys_match: None,
                error: Some(format!("{err:#}")),
                signed: false,
                protection: UNSIGNED_PROTECTION,
            },
        }
    }
}

/// What `rescue inspect` shows of a network-boot binary (`--format efi`).
#[derive(Serialize)]
pub struct EfiReport {
    /// The agent's version tag.
    pub agent_version: Option<String>,
    /// The architecture it runs on.
    pub arch: Option<agent::Arch>,
    /// Its Authenticode signatures, checked against it.
    pub signatures: Vec<sign::SignatureCheck>,
    /// The profile it carries (with its report URL).
    pub profile: Option<ProfileInfo>,
    /// The site key file it carries: Key IDs, never keys.
    pub keys: Option<KeysInfo>,
    /// Why its embedded profile could not be read.
    pub error: Option<String>,
}

/// True when `path` holds a PE image (a `.efi` binary) rather than a disk image.
pub fn is_efi_binary(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 2];
    File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"MZ"
}

/// Reads a network-boot binary: agent, signatures, embedded profile and keys.
pub fn inspect_efi(path: &Path) -> Result<EfiReport> {
    let len = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    if len > MAX_EFI_BYTES {
        bail!("{} is {len} bytes: not a rescue agent", path.display());
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let signatures =
        sign::verify(&bytes).unwrap_or_else(|err| vec![sign::SignatureCheck::unreadable(format!("{err:#}"))]);
    let (profile, keys, error) = match agent::embedded(&bytes) {
        Ok(e) => (Some(profile_info(&e.profile)?), e.keys.as_deref().map(keys_info), None),
        Err(err) => (None, None, Some(format!("{err:#}"))),
    };
    Ok(EfiReport {
        agent_version: agent::version(&bytes),
        arch: agent::Arch::of(&bytes),
        signatures,
        profile,
        keys,
        error,
    })
}
