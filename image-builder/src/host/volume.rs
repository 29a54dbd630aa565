//! BitLocker on the host: the credentials the admin gave, as the run's key
//! source ([`HostKeys`]), and unlocking one volume with them (`rescue unlock`).

use crate::host::disk::FileDisk;
use anyhow::{bail, Context, Result};
use rescue_engine::block::Slice;
use rescue_engine::formats::bitlocker::{self, StartupKey};
use rescue_engine::formats::partition::{self, Partition};
use rescue_engine::run::ports::{Console, Credential, KeySource};
use rescue_engine::util::guid::Guid;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// What the admin gave to unlock BitLocker volumes. Deliberately not
/// `Debug`; the secrets are zeroized when dropped.
#[derive(Clone, Default)]
pub struct Credentials {
    /// Recovery passwords (48 digits, dashes optional), tried in order.
    pub recovery_passwords: Vec<Zeroizing<String>>,
    /// A BitLocker password, as typed in Windows.
    pub password: Option<Zeroizing<String>>,
    /// A startup or recovery key file (.BEK).
    pub bek: Option<PathBuf>,
    /// Use the clear key of a volume whose protection is suspended.
    pub clear_key: bool,
    /// With nothing given, ask on the terminal (without echo) when a locked
    /// volume needs a key.
    pub ask: bool,
}

impl Credentials {
    /// True when no key was given (asking on the terminal is not a key).
    pub fn is_empty(&self) -> bool {
        self.recovery_passwords.is_empty() && self.password.is_none() && self.bek.is_none() && !self.clear_key
    }

    /// Reads the .BEK file, if one was given.
    fn startup_key(&self) -> Result<Option<StartupKey>> {
        let Some(path) = &self.bek else { return Ok(None) };
        // A .BEK file is a few hundred bytes: never read a large file whole.
        let len = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
        if len > 64 << 10 {
            bail!("{} is {len} bytes: not a BitLocker startup key (.BEK) file", path.display());
        }
        let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Some(bitlocker::parse_bek(&data).with_context(|| path.display().to_string())?))
    }
}

/// The admin's credentials as the run's key source: every key given is
/// tried on each locked volume; with none given, a terminal is asked
/// (without echo) once per locked volume, when `ask` allows.
pub struct HostKeys {
    creds: Credentials,
    bek: Option<StartupKey>,
}

impl HostKeys {
    /// Reads the .BEK file, if one was given (an unreadable one is an error before any disk is touched).
    pub fn new(creds: Credentials) -> Result<HostKeys> {
        let bek = creds.startup_key()?;
        Ok(HostKeys { creds, bek })
    }
}

impl KeySource for HostKeys {
    fn keys(&mut self, key_ids: &[Guid], _: &mut dyn Console) -> Vec<Credential> {
        let c = &self.creds;
        let mut keys: Vec<Credential> = c.clear_key.then_some(Credential::ClearKey).into_iter().collect();
        keys.extend(c.recovery_passwords.iter().map(|p| Credential::RecoveryPassword(p.clone())));
        keys.extend(c.password.iter().map(|p| Credential::Password(p.clone())));
        keys.extend(self.bek.iter().map(|k| Credential::StartupKey(k.clone())));
        if keys.is_empty() && c.ask {
            let ids: Vec<String> = key_ids.iter().map(|id| format!("{{{id}}}")).collect();
            let ids = if ids.is_empty() { "none".to_string() } else { ids.join(", ") };
            let asked = rpassword::prompt_password(format!(
                "A BitLocker volume is locked. Recovery password for Key ID {ids} (not shown; Enter to skip): "
            ));
            if let Some(typed) = asked.ok().map(Zeroizing::new).filter(|t| !t.trim().is_empty()) {
                keys.push(Credential::RecoveryPassword(Zeroizing::new(typed.trim().to_string())));
            }
        }
        keys
    }
}

/// The BitLocker volume of a target: a whole disk (first BitLocker
/// partition, or partition `number`), a partition image or a block device.
pub fn find_bitlocker(target: &Path, writable: bool, number: Option<u32>) -> Result<(Partition, Slice<FileDisk>)> {
    let mut disk = FileDisk::open(target, writable)?;
    let parts = partition::discover(&mut disk)
        .with_context(|| format!("reading the partition table of {}", target.display()))?;
    let mut chosen = None;
    for p in parts {
        let wanted = match number {
            Some(n) => p.number == n,
            None => bitlocker::detect(&mut Slice::new(&mut disk, p.offset, p.size)).unwrap_or(false),
        };
        if wanted {
            chosen = Some(p);
            break;
        }
    }
    let p = match (chosen, number) {
        (Some(p), _) => p,
        (None, Some(n)) => bail!("{} has no partition {n}", target.display()),
        (None, None) => bail!("{} holds no BitLocker volume", target.display()),
    };
    let (off, size) = (p.offset, p.size);
    Ok((p, Slice::new(disk, off, size)))
}
