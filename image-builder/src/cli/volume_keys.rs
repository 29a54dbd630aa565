//! The BitLocker options shared by `ls`, `apply`, `unlock` and `bitlocker`.

use crate::host::volume::Credentials;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Keys for BitLocker volumes (clear-key volumes need none).
#[derive(Args, Clone, Default)]
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
    /// True when no key was given.
    pub fn is_empty(&self) -> bool {
        self.recovery_password.is_empty() && self.password.is_none() && self.bek.is_none()
    }

    /// The credentials these options name.
    pub fn credentials(&self) -> Result<Credentials> {
        Ok(Credentials {
            recovery_passwords: self.recovery_password.iter().map(|s| Zeroizing::new(s.clone())).collect(),
            password: self.password.clone().map(Zeroizing::new),
            bek: self.bek.clone(),
            clear_key: false,
        })
    }
}
