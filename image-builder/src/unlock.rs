//! BitLocker on the host: `rescue bitlocker info`, `rescue unlock`, the
//! hidden test-support `rescue bitlocker encrypt`, and the pieces `rescue ls`
//! and `rescue apply` reuse ([`KeyArgs`], [`open_volume`]).

use crate::disk::FileDisk;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rescue_engine::bitlocker::{
    self, create, BitLocker, BitLockerError, EncryptionMethod, StartupKey, UnlockKey, Unlocked,
};
use rescue_engine::block::{BlockDevice, IoError, Slice};
use rescue_engine::partition::{self, Partition};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Keys for BitLocker volumes (clear-key volumes need none).
#[derive(Args, Debug, Clone, Default)]
pub struct KeyArgs {
    /// BitLocker recovery password (48 digits, dashes optional); repeat to try several
    #[arg(long = "recovery-password", value_name = "DIGITS")]
    pub recovery_password: Vec<String>,
    /// BitLocker password (as typed in Windows)
    #[arg(long, value_name = "PASSWORD")]
    pub password: Option<String>,
    /// BitLocker startup or recovery key file (.BEK)
    #[arg(long, value_name = "FILE")]
    pub bek: Option<PathBuf>,
}

impl KeyArgs {
    pub fn is_empty(&self) -> bool {
        self.recovery_password.is_empty() && self.password.is_none() && self.bek.is_none()
    }
}

/// A volume as the engine should see it: plain, or BitLocker unlocked.
#[allow(dead_code)] // for rescue ls / rescue apply
pub enum Volume<D: BlockDevice> {
    Plain(D),
    BitLocker(Box<Unlocked<D>>),
}

impl<D: BlockDevice> BlockDevice for Volume<D> {
    fn sector_size(&self) -> u32 {
        match self {
            Volume::Plain(d) => d.sector_size(),
            Volume::BitLocker(d) => d.sector_size(),
        }
    }
    fn size(&self) -> u64 {
        match self {
            Volume::Plain(d) => d.size(),
            Volume::BitLocker(d) => d.size(),
        }
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        match self {
            Volume::Plain(d) => d.read_at(offset, buf),
            Volume::BitLocker(d) => d.read_at(offset, buf),
        }
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        match self {
            Volume::Plain(d) => d.write_at(offset, buf),
            Volume::BitLocker(d) => d.write_at(offset, buf),
        }
    }
    fn flush(&mut self) -> Result<(), IoError> {
        match self {
            Volume::Plain(d) => d.flush(),
            Volume::BitLocker(d) => d.flush(),
        }
    }
}

fn read_bek(path: &Path) -> Result<StartupKey> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    bitlocker::parse_bek(&data).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Opens a partition: a BitLocker volume is unlocked with the clear key (if
/// protection is suspended) or the given keys; anything else is returned as
/// it is. Errors name the Key IDs a recovery password is asked for.
#[allow(dead_code)] // for rescue ls / rescue apply
pub fn open_volume<D: BlockDevice>(mut dev: D, keys: &KeyArgs) -> Result<Volume<D>> {
    if !bitlocker::detect(&mut dev).map_err(|e| anyhow::anyhow!("{e}"))? {
        return Ok(Volume::Plain(dev));
    }
    let bl = BitLocker::open(dev).map_err(|e| anyhow::anyhow!("{e}"))?;
    let bek = keys.bek.as_deref().map(read_bek).transpose()?;
    let mut list: Vec<UnlockKey<'_>> = Vec::new();
    if bl.protectors().iter().any(|p| p.kind == bitlocker::ProtectorKind::ClearKey) {
        list.push(UnlockKey::ClearKey);
    }
    for rp in &keys.recovery_password {
        list.push(UnlockKey::RecoveryPassword(rp));
    }
    if let Some(pw) = &keys.password {
        list.push(UnlockKey::Password(pw));
    }
    if let Some(sk) = &bek {
        list.push(UnlockKey::StartupKey(sk));
    }
    if list.is_empty() {
        let ids: Vec<String> = bl
            .protectors()
            .iter()
            .filter(|p| p.kind == bitlocker::ProtectorKind::RecoveryPassword)
            .map(|p| format!("{{{}}}", p.key_id))
            .collect();
        bail!(
            "BitLocker volume {} is locked: give --recovery-password (Key ID {}), --password or --bek",
            bl.metadata.volume_guid,
            if ids.is_empty() { "none".to_string() } else { ids.join(", ") }
        );
    }
    let u = bl.unlock_any(&list).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Volume::BitLocker(Box::new(u)))
}

/// The BitLocker volume of a target: a whole disk (first BitLocker
/// partition, or partition `number`), a partition image or a block device.
pub fn find_bitlocker(target: &Path, writable: bool, number: Option<u32>) -> Result<(Partition, Slice<FileDisk>)> {
    let mut disk = FileDisk::open(target, writable)?;
    let parts = partition::discover(&mut disk)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("reading the partition table of {}", target.display()))?;
    let mut chosen = None;
    for p in parts {
        if let Some(n) = number {
            if p.number == n {
                chosen = Some(p);
                break;
            }
            continue;
        }
        let mut s = Slice::new(&mut disk, p.offset, p.size);
        if bitlocker::detect(&mut s).unwrap_or(false) {
            chosen = Some(p);
            break;
        }
    }
    let p = match chosen {
        Some(p) => p,
        None if number.is_some() => bail!("{} has no partition {}", target.display(), number.unwrap_or(0)),
        None => bail!("{} holds no BitLocker volume", target.display()),
    };
    let (off, size) = (p.offset, p.size);
    Ok((p, Slice::new(disk, off, size)))
}

#[derive(Subcommand)]
pub enum BitLockerCommand {
    /// Show a BitLocker volume's metadata and key protectors (no secrets)
    Info {
        /// Disk, partition image or block device
        volume: PathBuf,
        /// Use this partition number instead of the first BitLocker one
        #[arg(long)]
        partition: Option<u32>,
    },
    /// Test support: encrypt a plain NTFS volume image into a BitLocker volume
    #[command(hide = true)]
    Encrypt(EncryptArgs),
}

#[derive(Args)]
pub struct EncryptArgs {
    /// xts-aes-128, xts-aes-256, aes-cbc-128, aes-cbc-256, aes-cbc-128-diffuser or aes-cbc-256-diffuser
    #[arg(long, default_value = "xts-aes-128")]
    pub method: String,
    /// Recovery password of the recovery-password protector
    #[arg(long = "recovery-password")]
    pub recovery_password: String,
    /// Also add a password protector
    #[arg(long)]
    pub password: Option<String>,
    /// Leave the volume half-converted: encrypt only up to this byte offset
    #[arg(long = "encrypted-size")]
    pub encrypted_size: Option<u64>,
    /// The plain NTFS volume image
    pub input: PathBuf,
    /// The BitLocker volume image to write
    pub output: PathBuf,
}

#[derive(Args)]
pub struct UnlockArgs {
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Unlock with the clear key (protection suspended)
    #[arg(long = "clear-key")]
    pub clear_key: bool,
    /// Where to write the decrypted volume
    #[arg(long, value_name = "FILE", required_unless_present = "test_key")]
    pub out: Option<PathBuf>,
    /// Only check that the key opens the volume; write nothing
    #[arg(long = "test-key", conflicts_with = "out")]
    pub test_key: bool,
    /// Use this partition number instead of the first BitLocker one
    #[arg(long)]
    pub partition: Option<u32>,
    /// Disk, partition image or block device holding the BitLocker volume
    pub volume: PathBuf,
}

pub fn bitlocker_command(c: &BitLockerCommand) -> Result<()> {
    match c {
        BitLockerCommand::Info { volume, partition } => info(volume, *partition),
        BitLockerCommand::Encrypt(a) => encrypt(a),
    }
}

fn filetime_str(ft: u64) -> String {
    let (secs, _) = rescue_engine::time::filetime_to_unix(ft);
    if ft == 0 || secs < 0 {
        return "-".into();
    }
    let c = rescue_engine::time::civil_from_unix(secs);
    format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC", c.year, c.month, c.day, c.hour, c.minute, c.second)
}

fn info(volume: &Path, number: Option<u32>) -> Result<()> {
    let (p, dev) = find_bitlocker(volume, false, number)?;
    let bl = BitLocker::open(dev).map_err(|e| anyhow::anyhow!("{e}"))?;
    let m = &bl.metadata;
    let h = &bl.header;
    println!("BitLocker volume at byte {} ({} bytes){}", p.offset, p.size, if p.number > 0 { format!(", partition {}", p.number) } else { String::new() });
    println!("  flavour:        {}", match h.flavour { bitlocker::header::Flavour::Fixed => "fixed/OS volume", bitlocker::header::Flavour::ToGo => "BitLocker To Go" });
    println!("  volume GUID:    {}", m.volume_guid);
    println!("  metadata:       version {}", m.version);
    println!("  encryption:     {} ({:#06x})", m.method, m.method.code());
    println!("  sector size:    {}", h.sector_size);
    println!("  state:          {} (next: {}){}", m.current_state, m.next_state, if h.encrypt_on_write() { ", used space only (encrypt-on-write)" } else { "" });
    println!("  encrypted size: {} bytes", m.encrypted_size);
    println!("  created:        {}", filetime_str(m.created));
    if let Some(d) = &m.description {
        println!("  description:    {d}");
    }
    for i in 0..3 {
        println!(
            "  metadata copy {}: byte {} {:?}{}",
            i + 1,
            h.metadata_offsets[i],
            m.copies[i],
            if m.copy_used == i { " (used)" } else { "" }
        );
    }
    println!("  boot sectors:   relocated to byte {} ({} bytes)", m.volume_header_offset, m.volume_header_size);
    println!("  key protectors:");
    for pr in bl.protectors() {
        println!(
            "    Key ID {{{}}}  {}{}  modified {}{}",
            pr.key_id,
            pr.kind,
            pr.name.as_deref().map(|n| format!(" \"{n}\"")).unwrap_or_default(),
            filetime_str(pr.modified),
            if pr.kind == bitlocker::ProtectorKind::RecoveryPassword {
                format!("  (recovery screen shows Key ID {})", pr.short_key_id())
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

fn method_from_name(s: &str) -> Result<EncryptionMethod> {
    Ok(match s {
        "xts-aes-128" => EncryptionMethod::XtsAes128,
        "xts-aes-256" => EncryptionMethod::XtsAes256,
        "aes-cbc-128" => EncryptionMethod::AesCbc128,
        "aes-cbc-256" => EncryptionMethod::AesCbc256,
        "aes-cbc-128-diffuser" => EncryptionMethod::AesCbc128Diffuser,
        "aes-cbc-256-diffuser" => EncryptionMethod::AesCbc256Diffuser,
        _ => bail!("unknown method {s:?}"),
    })
}

fn now_filetime() -> u64 {
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    (unix + 11_644_473_600) * 10_000_000
}

fn encrypt(a: &EncryptArgs) -> Result<()> {
    let method = method_from_name(&a.method)?;
    let tmp = tmp_beside(&a.output)?;
    std::fs::copy(&a.input, tmp.path()).with_context(|| format!("cannot copy {}", a.input.display()))?;
    let mut dev = FileDisk::open(tmp.path(), true)?;
    let mut urandom = std::fs::File::open("/dev/urandom").context("cannot open /dev/urandom")?;
    let mut random = |b: &mut [u8]| {
        use std::io::Read;
        if urandom.read_exact(b).is_err() {
            b.fill(0x5A); // never reached on Linux; keys would still be valid, just weak
        }
    };
    let opts = create::CreateOptions {
        method,
        recovery_password: &a.recovery_password,
        password: a.password.as_deref(),
        description: "RESCUE-TEST C: test volume",
        filetime: now_filetime(),
        encrypted_size: a.encrypted_size,
    };
    let created = create::encrypt_in_place(&mut dev, &opts, &mut random, &mut |_, _| {})
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("encrypting {}", a.input.display()))?;
    drop(dev);
    tmp.persist(&a.output).with_context(|| format!("cannot write {}", a.output.display()))?;
    println!("{}: BitLocker {} volume {}", a.output.display(), method, created.volume_guid);
    println!("  recovery password Key ID {{{}}}", created.recovery_key_id);
    if let Some(id) = created.password_key_id {
        println!("  password Key ID {{{id}}}");
    }
    Ok(())
}

fn tmp_beside(out: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(".rescue-unlock-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))
}

static ZEROS: [u8; 64 * 1024] = [0u8; 64 * 1024];

/// `rescue unlock`: writes the decrypted volume to `--out`, atomically.
pub fn unlock(a: &UnlockArgs) -> Result<()> {
    if a.keys.is_empty() && !a.clear_key {
        bail!("give --recovery-password, --password, --bek or --clear-key");
    }
    let (p, dev) = find_bitlocker(&a.volume, false, a.partition)?;
    let bl = BitLocker::open(dev).map_err(|e| anyhow::anyhow!("{e}"))?;
    let bek = a.keys.bek.as_deref().map(read_bek).transpose()?;
    let mut list: Vec<UnlockKey<'_>> = Vec::new();
    if a.clear_key {
        list.push(UnlockKey::ClearKey);
    }
    for rp in &a.keys.recovery_password {
        list.push(UnlockKey::RecoveryPassword(rp));
    }
    if let Some(pw) = &a.keys.password {
        list.push(UnlockKey::Password(pw));
    }
    if let Some(sk) = &bek {
        list.push(UnlockKey::StartupKey(sk));
    }
    let mut vol = bl.unlock_any(&list).map_err(|e: BitLockerError| anyhow::anyhow!("{e}"))?;
    eprintln!("unlocked with Key ID {{{}}} (partition at byte {})", vol.key_id(), p.offset);
    let Some(out) = a.out.as_deref() else { return Ok(()) };
    let size = vol.size();
    let tmp = tmp_beside(out)?;
    let file = tmp.as_file();
    file.set_len(size)?;
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut buf = vec![0u8; 4 << 20];
    let mut pos = 0u64;
    use std::os::unix::fs::FileExt;
    while pos < size {
        let n = ((size - pos) as usize).min(buf.len());
        vol.read_at(pos, &mut buf[..n]).map_err(|e| anyhow::anyhow!("{e}"))?;
        // Zero runs stay holes: the output is sparse, like the input usually is.
        for (i, c) in buf[..n].chunks(64 * 1024).enumerate() {
            if c != &ZEROS[..c.len()] {
                file.write_all_at(c, pos + (i * 64 * 1024) as u64)?;
            }
        }
        pos += n as u64;
        bar.set_position(pos);
    }
    bar.finish_and_clear();
    tmp.as_file().sync_all()?;
    tmp.persist(out).with_context(|| format!("cannot write {}", out.display()))?;
    let _ = std::io::stderr().flush();
    eprintln!("wrote {} ({} bytes)", out.display(), size);
    Ok(())
}
