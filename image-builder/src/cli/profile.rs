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
        /// Print JSON: the rules and warnings (errors still go to stderr with a non-zero exit)
        #[arg(long)]
        json: bool,
    },
}

/// Runs `rescue profile …`.
pub fn run(cmd: &ProfileCommand) -> Result<()> {
    match cmd {
        ProfileCommand::Check { file, json } => {
            let (p, _) = read_profile(file)?;
            if *json {
                let v = serde_json::json!({
                    "file": file.display().to_string(),
                    "name": p.name,
                    "description": p.description,
                    "actions": p.actions(),
                    "rules": p.delete.iter().map(|r| serde_json::json!({
                        "path": r.path,
                        "header": rescue_engine::util::hex::hex(&r.header),
                        "backup": r.backup,
                    })).collect::<Vec<_>>(),
                    "warnings": p.warnings(),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            say!("{}: valid profile {:?} with {} rule(s):", file.display(), p.name, p.rule_count());
            for a in p.actions() {
                say!("  {a}");
            }
            for w in p.warnings() {
                say!("  warning: {w}");
            }
            Ok(())
        }
    }
}
