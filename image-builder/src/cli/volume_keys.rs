//! The BitLocker options shared by `ls`, `apply`, `unlock` and `bitlocker`.
//!
//! Secrets are best kept off the command line (where `ps`, `/proc` and shell
//! history show them): `--recovery-password-file` and `--password-file` read
//! them from a file or standard input (`-`), and with neither, a terminal is
//! asked without echo when a locked volume needs a key. Values given on the
//! command line still work, for scripts, with a warning.

use crate::host::volume::Credentials;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

/// Keys for BitLocker volumes (clear-key volumes need none). Deliberately
/// not `Debug`; the values are zeroized when dropped.
#[derive(Args, Clone, Default)]
pub struct KeyArgs {
    /// BitLocker recovery password (48 digits, dashes optional); repeat to try several.
    /// Visible to other users on the command line: prefer --recovery-password-file
    #[arg(long = "recovery-password", value_name = "DIGITS")]
    pub recovery_password: Vec<String>,
    /// Read recovery passwords from FILE, one per line (`-`: standard input)
    #[arg(long, value_name = "FILE")]
    pub recovery_password_file: Option<PathBuf>,
    /// BitLocker password (as typed in Windows). Visible to other users: prefer --password-file
    #[arg(long, value_name = "PASSWORD")]
    pub password: Option<String>,
    /// Read the BitLocker password from the first line of FILE (`-`: standard input)
    #[arg(long, value_name = "FILE", conflicts_with = "password")]
    pub password_file: Option<PathBuf>,
    /// BitLocker startup or recovery key file (.BEK)
    #[arg(long, value_name = "FILE")]
    pub bek: Option<PathBuf>,
}

impl Drop for KeyArgs {
    fn drop(&mut self) {
        self.recovery_password.iter_mut().for_each(Zeroize::zeroize);
        self.password.zeroize();
    }
}

/// The text of a secrets file (or of standard input for `-`), at most 64 KiB.
fn read_secret_file(path: &Path) -> Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new(Vec::new());
    let what = path.display();
    if path == Path::new("-") {
        std::io::stdin().take(64 << 10).read_to_end(&mut bytes).context("reading standard input")?;
    } else {
        std::fs::File::open(path)
            .with_context(|| format!("cannot read {what}"))?
            .take(64 << 10)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {what}"))?;
    }
    crate::text::decode(&bytes).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

impl KeyArgs {
    /// The credentials these options name, reading the secrets files.
    /// Warns (on stderr) about secrets given on the command line.
    pub fn credentials(&self) -> Result<Credentials> {
        if !self.recovery_password.is_empty() || self.password.is_some() {
            say_err!(
                "warning: a BitLocker secret on the command line is visible to other users (ps, /proc) \
                 and stays in shell history; prefer --recovery-password-file, --password-file or the prompt"
            );
        }
        let mut creds = Credentials {
            recovery_passwords: self.recovery_password.iter().map(|s| Zeroizing::new(s.clone())).collect(),
            password: self.password.clone().map(Zeroizing::new),
            bek: self.bek.clone(),
            clear_key: false,
            ask: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
        };
        if let Some(f) = &self.recovery_password_file {
            let text = read_secret_file(f)?;
            let found: Vec<_> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            if found.is_empty() {
                bail!("{} holds no recovery password", f.display());
            }
            creds.recovery_passwords.extend(found.into_iter().map(|l| Zeroizing::new(l.to_string())));
        }
        if let Some(f) = &self.password_file {
            let text = read_secret_file(f)?;
            let line = text.lines().next().unwrap_or_default();
            if line.is_empty() {
                bail!("{} holds no password on its first line", f.display());
            }
            creds.password = Some(Zeroizing::new(line.to_string()));
        }
        if self.recovery_password_file.as_deref() == Some(Path::new("-"))
            || self.password_file.as_deref() == Some(Path::new("-"))
        {
            creds.ask = false; // standard input is taken
        }
        Ok(creds)
    }
}
