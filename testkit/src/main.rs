//! `bitlocker-encrypt`: test support, never part of `rescue` or the agent.
//! Encrypts a copy of a plain NTFS volume image into a BitLocker volume
//! with the engine's test encrypter (`formats::bitlocker::create`), for
//! `scripts/make-test-disk --bitlocker` and the tests. dislocker, bdeinfo
//! and cryptsetup check what it makes; the engine never judges its own output.

use anyhow::{bail, Context, Result};
use clap::Parser;
use rescue_engine::block::{BlockDevice, IoError};
use rescue_engine::formats::bitlocker::create::{encrypt_in_place, CreateOptions};
use rescue_engine::formats::bitlocker::EncryptionMethod;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Encrypt a plain NTFS volume image into a BitLocker volume image (test support).
#[derive(Parser)]
struct Args {
    /// xts-aes-128, xts-aes-256, aes-cbc-128, aes-cbc-256, aes-cbc-128-diffuser or aes-cbc-256-diffuser
    #[arg(long, default_value = "xts-aes-128")]
    method: String,
    /// Recovery password of the recovery-password protector
    #[arg(long = "recovery-password")]
    recovery_password: String,
    /// Also add a password protector
    #[arg(long)]
    password: Option<String>,
    /// Leave the volume half-converted: encrypt only up to this byte offset
    #[arg(long = "encrypted-size")]
    encrypted_size: Option<u64>,
    /// The plain NTFS volume image
    input: PathBuf,
    /// The BitLocker volume image to write (replaced)
    output: PathBuf,
}

/// An image file as a block device.
struct FileDev(File, u64);

impl BlockDevice for FileDev {
    fn sector_size(&self) -> u32 {
        512
    }
    fn size(&self) -> u64 {
        self.1
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.0.read_exact_at(buf, offset).map_err(|_| IoError::Device { offset, code: 5 })
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        self.0.write_all_at(buf, offset).map_err(|_| IoError::Device { offset, code: 5 })
    }
    fn flush(&mut self) -> Result<(), IoError> {
        self.0.sync_data().map_err(|_| IoError::Device { offset: 0, code: 5 })
    }
}

fn method(name: &str) -> Result<EncryptionMethod> {
    Ok(match name {
        "xts-aes-128" => EncryptionMethod::XtsAes128,
        "xts-aes-256" => EncryptionMethod::XtsAes256,
        "aes-cbc-128" => EncryptionMethod::AesCbc128,
        "aes-cbc-256" => EncryptionMethod::AesCbc256,
        "aes-cbc-128-diffuser" => EncryptionMethod::AesCbc128Diffuser,
        "aes-cbc-256-diffuser" => EncryptionMethod::AesCbc256Diffuser,
        _ => bail!("unknown method {name:?}"),
    })
}

fn main() -> Result<()> {
    let a = Args::parse();
    let method = method(&a.method)?;
    let tmp = a.output.with_extension("encrypting");
    std::fs::copy(&a.input, &tmp).with_context(|| format!("cannot copy {}", a.input.display()))?;
    let f = File::options().read(true).write(true).open(&tmp)?;
    let size = f.metadata()?.len();
    let mut dev = FileDev(f, size);
    let mut random = |b: &mut [u8]| rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, b);
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let opts = CreateOptions {
        method,
        recovery_password: &a.recovery_password,
        password: a.password.as_deref(),
        description: "RESCUE-TEST C: test volume",
        filetime: (unix + 11_644_473_600) * 10_000_000,
        encrypted_size: a.encrypted_size,
    };
    let created = encrypt_in_place(&mut dev, &opts, &mut random, &mut |_, _| {})
        .with_context(|| format!("encrypting {}", a.input.display()))?;
    drop(dev);
    std::fs::rename(&tmp, &a.output)?;
    println!("{}: BitLocker {} volume {}", a.output.display(), method, created.volume_guid);
    println!("  recovery password Key ID {{{}}}", created.recovery_key_id);
    if let Some(id) = created.password_key_id {
        println!("  password Key ID {{{id}}}");
    }
    Ok(())
}
