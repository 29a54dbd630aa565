//! `rescue profile check`: validate a profile; errors name line and column.

use crate::cli::read_profile;
use anyhow::Result;
use std::path::PathBuf;

/// `rescue profile` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ProfileCommand {
    /// Check that a profile is valid; errors name the line and column
    Check {
        /// The profile (TOML)
        file: PathBuf,
    },
}

/// Runs `rescue profile …`.
pub fn run(cmd: &ProfileCommand) -> Result<()> {
    match cmd {
        ProfileCommand::Check { file } => {
            let (p, _) = read_profile(file)?;
            say!("{}: valid profile {:?} with {} rule(s)", file.display(), p.name, p.delete.len());
            for w in p.warnings() {
                say!("  warning: {w}");
            }
            Ok(())
        }
    }
}
