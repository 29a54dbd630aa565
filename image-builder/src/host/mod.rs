//! Host verbs that run the engine against disks: `ls`, `apply`.
use anyhow::{bail, Result};
use std::path::PathBuf;

/// Arguments of `rescue ls`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Disk image, partition image or block device.
    pub target: PathBuf,
    /// Directory to list, relative to each volume's root (e.g. 'Windows\System32').
    pub path: Option<String>,
}

/// Arguments of `rescue apply`.
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// The profile whose fixes to run.
    #[arg(long)]
    pub profile: PathBuf,
    /// Disk image, partition image or block device.
    pub target: PathBuf,
}

pub fn ls(_args: &LsArgs) -> Result<()> {
    bail!("rescue ls is not implemented yet")
}

pub fn apply(_args: &ApplyArgs) -> Result<()> {
    bail!("rescue apply is not implemented yet")
}
