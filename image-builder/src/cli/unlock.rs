//! `rescue unlock`: write the decrypted contents of a BitLocker volume to a file.

use crate::cli::volume_keys::KeyArgs;
use crate::host::volume::{find_bitlocker, HostKeys};
use crate::output;
use anyhow::{bail, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rescue_engine::block::BlockDevice;
use rescue_engine::run::ports::Silent;
use rescue_engine::run::unlock::{self, Unlocker};
use std::io::Write;
use std::path::{Path, PathBuf};

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

/// `rescue unlock`: writes the decrypted volume to `--out`, atomically.
pub fn run(a: &UnlockArgs) -> Result<()> {
    let mut creds = a.keys.credentials()?;
    creds.clear_key = a.clear_key;
    if creds.is_empty() && !creds.ask {
        bail!("give --recovery-password-file, --password-file, --bek or --clear-key (or run it on a terminal to be asked)");
    }
    if let Some(out) = &a.out {
        // Before any decryption: a bad output path must not cost a full pass.
        let inputs: Vec<&Path> = [
            Some(&a.volume),
            a.keys.bek.as_ref(),
            a.keys.recovery_password_file.as_ref(),
            a.keys.password_file.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(PathBuf::as_path)
        .collect();
        output::check_output("--out", out, &inputs)?;
    }
    let (p, dev) = find_bitlocker(&a.volume, false, a.partition)?;
    // The engine's unlock with exactly the admin's keys (checking a key must not
    // pass on a suspended volume's clear key), no screen prompt.
    let mut keys = HostKeys::new(creds)?;
    let mut unlocker = Unlocker { keys: &mut keys, console: &mut Silent, timeout_s: None, clear_key_first: false };
    let name = format!("partition {} of {}", p.number, a.volume.display());
    let mut vol = unlock::open(dev, &name, &mut unlocker, &mut Default::default()).map_err(anyhow::Error::msg)?;
    say_err!("unlocked with Key ID {{{}}} (partition at byte {})", vol.key_id(), p.offset);
    let Some(out) = a.out.as_deref() else { return Ok(()) };
    let size = vol.size();
    let tmp = output::temp_beside(out)?;
    let file = tmp.as_file();
    file.set_len(size)?;
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut buf = vec![0u8; 4 << 20];
    let mut pos = 0u64;
    while pos < size {
        let n = ((size - pos) as usize).min(buf.len());
        vol.read_at(pos, &mut buf[..n])?;
        // Zero runs stay holes: the output is sparse, like the input usually is.
        output::write_sparse_at(file, pos, &buf[..n])?;
        pos += n as u64;
        bar.set_position(pos);
    }
    bar.finish_and_clear();
    // A decrypted volume: everything BitLocker protected, in clear.
    output::persist(tmp, out, output::Readers::OwnerOnly)?;
    let _ = std::io::stderr().flush();
    say_err!("wrote {} ({} bytes)", out.display(), size);
    Ok(())
}
