//! `rescue keys check`: check recovery-key export files before building a keyed image.

use crate::site_keys::import::KeySet;
use anyhow::{bail, Result};
use std::path::PathBuf;

/// `rescue keys check`: a summary per file and every problem; never a key.
fn check(files: &[PathBuf], json: bool) -> Result<()> {
    let mut set = KeySet::default();
    for f in files {
        set.add_file(f)?;
    }
    if json {
        let errors = set.errors();
        let v = serde_json::json!({
            "files": set.files.iter().map(|(path, kind, rows)| serde_json::json!({
                "path": path.display().to_string(),
                "kind": kind.to_string(),
                "key_lines": rows,
                "valid": set.entries.iter().filter(|e| &e.file == path).count(),
            })).collect::<Vec<_>>(),
            "key_ids": set.entries.len(),
            "problems": set.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "errors": errors,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        if errors > 0 {
            bail!("{errors} error(s) in the key file(s)");
        }
        return Ok(());
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
        /// Print JSON (counts, problems and Key ID count; never a key)
        #[arg(long)]
        json: bool,
    },
}

/// Runs `rescue keys …`.
pub fn run(c: &KeysCommand) -> Result<()> {
    match c {
        KeysCommand::Check { files, json } => check(files, *json),
    }
}
