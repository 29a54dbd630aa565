//! `rescue inspect`: what an image holds — never any secret.

use crate::{agent, fat, iso, stick};
use anyhow::{bail, Context, Result};
use rescue_engine::block::BlockDevice;
use rescue_engine::keyring;
use rescue_engine::partition::{self, Guid, PartitionKind};
use rescue_engine::profile::Profile;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Arguments of `rescue inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// A USB image, ISO, or a flashed stick's block device
    pub image: PathBuf,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

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
    pub agent_version: Option<String>,
    /// Authenticode signatures of every .efi file, checked against the file.
    pub efi_signatures: Vec<EfiSignatures>,
}

#[derive(Serialize)]
pub struct EfiSignatures {
    pub path: String,
    pub signed: bool,
    pub signatures: Vec<crate::sign::SignatureCheck>,
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
    let path = keyring::STICK_PATH.to_string();
    match keyring::Keyring::parse(bytes) {
        Ok(k) => KeysInfo {
            path,
            sealed: k.is_sealed(),
            count: k.key_ids().len(),
            key_ids: k.key_ids().iter().map(|g| format!("{g}")).collect(),
            kdf: k.kdf().map(|p| format!("Argon2id {} KiB, t={}, p={}", p.m_kib, p.t, p.p)),
            error: None,
        },
        Err(e) => KeysInfo { path, sealed: false, count: 0, key_ids: Vec::new(), kdf: None, error: Some(e.to_string()) },
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads everything `rescue inspect` shows.
pub fn inspect(path: &std::path::Path) -> Result<Report> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut disk = crate::disk::FileDisk::open(path, false)?;
    let size = disk.size();

    let iso_info = iso::read_info(&mut |o, b| file.read_exact_at(b, o));
    let parts = partition::discover(&mut disk).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
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

    // The boot partition: the El Torito image of an ISO, else the ESP, else the whole device.
    let (format, boot) = match &iso_info {
        Some(info) => {
            let (_, lba, count) = info
                .boot_entries
                .iter()
                .find(|e| e.0 == 0xEF)
                .copied()
                .context("the ISO has no UEFI (platform 0xEF) El Torito boot entry")?;
            let hybrid = if parts.iter().any(|p| matches!(p.kind, PartitionKind::Gpt { .. })) { ", hybrid GPT" } else { "" };
            (format!("ISO 9660 volume {:?} of {} blocks, El Torito UEFI boot{hybrid}", info.volume_id, info.blocks), (lba as u64 * iso::BLOCK, count as u64 * 512))
        }
        None => {
            let esp = parts
                .iter()
                .find(|p| matches!(&p.kind, PartitionKind::Gpt { type_guid, .. } if *type_guid == Guid::ESP))
                .or_else(|| parts.iter().find(|p| matches!(p.kind, PartitionKind::Mbr { type_code: 0xEF | 0x0B | 0x0C })))
                .or_else(|| parts.iter().find(|p| p.kind == PartitionKind::Whole))
                .context("no EFI System Partition found: this is not a rescue image")?;
            let fmt = match esp.kind {
                PartitionKind::Gpt { .. } => "USB disk image (GPT)",
                PartitionKind::Mbr { .. } => "disk image (MBR)",
                PartitionKind::Whole => "bare FAT volume",
            };
            (fmt.to_string(), (esp.offset, esp.size))
        }
    };

    let fs = fat::open(fat::Window::new(&file, boot.0, boot.1))?;
    let mut files = Vec::new();
    let mut profile = None;
    let mut keys = None;
    let mut agent_version = None;
    let mut efi_signatures = Vec::new();
    for e in fat::walk(&fs)? {
        let mut sha256 = None;
        if !e.is_dir {
            let bytes = fat::read_file(&fs, &e.path)?;
            sha256 = Some(hex(&Sha256::digest(&bytes)));
            if e.path.eq_ignore_ascii_case(stick::AGENT_PATH)
                || (e.path.eq_ignore_ascii_case(stick::SHIM_SECOND_STAGE_PATH) && agent_version.is_none())
            {
                agent_version = agent::version(&bytes).or(agent_version);
            }
            if e.path.to_ascii_lowercase().ends_with(".efi") {
                let signatures = crate::sign::verify(&bytes).unwrap_or_else(|err| {
                    vec![crate::sign::SignatureCheck::unreadable(format!("{err:#}"))]
                });
                efi_signatures.push(EfiSignatures { path: e.path.clone(), signed: !signatures.is_empty(), signatures });
            }
            if e.path.eq_ignore_ascii_case(keyring::STICK_PATH) {
                keys = Some(keys_info(&bytes));
            }
            if e.path.eq_ignore_ascii_case(stick::PROFILE_PATH) {
                let text = String::from_utf8(bytes).context("rescue/profile.toml is not UTF-8")?;
                let p = Profile::parse(&text).map_err(|err| anyhow::anyhow!("rescue/profile.toml on the image: {err}"))?;
                profile = Some(ProfileInfo {
                    actions: p
                        .delete
                        .iter()
                        .map(|r| {
                            let mut a = format!("delete {}", r.path);
                            if !r.header.is_empty() {
                                a += &format!(" if it starts with {}", hex(&r.header).to_uppercase());
                            }
                            a += if r.backup { " (backed up first)" } else { " (no backup)" };
                            a
                        })
                        .collect(),
                    name: p.name,
                    description: p.description,
                    unclean_journal: format!("{:?}", p.ntfs.unclean_journal).to_lowercase(),
                    finish: p.finish.action.as_str().into(),
                });
            }
        }
        files.push(FileInfo { path: e.path, size: e.size, is_dir: e.is_dir, sha256 });
    }
    if agent_version.is_none() && !files.iter().any(|f| f.path.eq_ignore_ascii_case(stick::AGENT_PATH)) {
        bail!("no {} on the boot partition: this is not a rescue image", stick::AGENT_PATH);
    }
    Ok(Report { format, size, partitions, boot_partition_offset: boot.0, keys, files, profile, agent_version, efi_signatures })
}

pub fn run(args: &InspectArgs) -> Result<()> {
    let r = inspect(&args.image)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("image:    {}", args.image.display());
    println!("format:   {}", r.format);
    println!("size:     {} bytes ({} MiB)", r.size, r.size >> 20);
    println!("agent:    rescue-agent {}", r.agent_version.as_deref().unwrap_or("(unknown version)"));
    match &r.profile {
        Some(p) => {
            println!("profile:  {} — {}", p.name, p.description);
            for a in &p.actions {
                println!("          {a}");
            }
            println!("          unclean journal: {}; when done: {}", p.unclean_journal, p.finish);
        }
        None => println!("profile:  (none)"),
    }
    println!("signatures:");
    for f in &r.efi_signatures {
        if !f.signed {
            println!("  {:<26} not signed (Secure Boot refuses it unless its hash is in db)", f.path);
        }
        for s in &f.signatures {
            let verdict = if s.ok() { "signature matches the image" } else { "SIGNATURE DOES NOT MATCH" };
            println!("  {:<26} signed by {}: {verdict}", f.path, s.signer_subject.as_deref().unwrap_or("(unknown signer)"));
            if let Some(i) = &s.signer_issuer {
                println!("  {:<26}   issuer {i}", "");
            }
            if let Some(fp) = &s.signer_sha256 {
                println!("  {:<26}   certificate SHA-256 {fp}", "");
            }
            for p in &s.problems {
                println!("  {:<26}   {p}", "");
            }
        }
    }
    match &r.keys {
        None => println!("keys:     none (BitLocker volumes need a typed recovery key)"),
        Some(k) if k.error.is_some() => println!("keys:     {}: UNREADABLE: {}", k.path, k.error.as_deref().unwrap_or_default()),
        Some(k) => {
            let how = if k.sealed { format!("sealed with a PIN ({})", k.kdf.as_deref().unwrap_or_default()) } else { "UNSEALED: anyone with the stick can read them".to_string() };
            println!("keys:     {} recovery key(s) in {}, {how}", k.count, k.path);
            for id in &k.key_ids {
                println!("          Key ID {{{id}}}");
            }
        }
    }
    println!("partitions:");
    for p in &r.partitions {
        println!("  {:>2}  at {:>10} bytes  {:>10} bytes  {}", p.number, p.offset, p.size, p.kind);
    }
    println!("files on the boot partition (at byte {}):", r.boot_partition_offset);
    for f in &r.files {
        match &f.sha256 {
            Some(h) => println!("  {:<40} {:>10}  sha256 {h}", f.path, f.size),
            None => println!("  {:<40} {:>10}", format!("{}/", f.path), "folder"),
        }
    }
    Ok(())
}
