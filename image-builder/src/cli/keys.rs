//! `rescue keys check`: check recovery-key export files before building a keyed image.

use crate::site_keys::import::KeySet;
use anyhow::{bail, Result};
use std::path::PathBuf;

/// `rescue keys check`: a summary per file and every problem; never a key.
fn check(files: &[PathBuf]) -> Result<()> {
    let mut set = KeySet::default();
    for f in files {
        set.add_file(f)?;
    }
    for (path, kind, rows) in &set.files {
        let valid = set.entries.iter().filter(|e| &e.file == path).count();
        say!("{}: {kind}: {rows} key line(s), {valid} valid", path.display());
    }
    for p in &set.problems {
        say!("  {p}");
    }
    let errors = set.errors();
    let warnings = set.problems.len() - errors;
    say!("{} distinct Key ID(s) with a valid key; {errors} error(s), {warnings} warning(s)", set.entries.len());
    if errors > 0 {
        bail!("{errors} error(s) in the key file(s): fix them before building a keyed image");
    }
    Ok(())
}

/// `rescue keys` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// Check recovery-key export files: counts, bad lines, duplicates, conflicts (never prints a key)
    Check {
        /// Key files (CSV from Active Directory, Entra ID / Intune, MBAM, or KeyID,RecoveryKey)
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Runs `rescue keys …`.
pub fn run(c: &KeysCommand) -> Result<()> {
    match c {
        KeysCommand::Check { files } => check(files),
    }
}
