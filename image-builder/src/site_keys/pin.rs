//! The site PIN that seals a keyed image's recovery keys.

use anyhow::{bail, Context, Result};
use rescue_engine::keyring;
use std::path::Path;
use zeroize::Zeroizing;

/// The shortest PIN `rescue build` accepts.
pub const MIN_PIN_CHARS: usize = 4;

/// The site PIN: the first line of `pin_file`, or asked twice on the
/// terminal without echo. Never from the command line or the environment.
pub fn read_pin(pin_file: Option<&Path>) -> Result<Zeroizing<String>> {
    let pin = match pin_file {
        Some(p) => {
            let bytes =
                Zeroizing::new(std::fs::read(p).with_context(|| format!("cannot read the PIN file {}", p.display()))?);
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| anyhow::anyhow!("the PIN file {} is not UTF-8 text", p.display()))?;
            let text = text.strip_prefix('\u{feff}').unwrap_or(text);
            let line = text.strip_suffix('\n').unwrap_or(text);
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.contains('\n') || line.contains('\r') {
                bail!("the PIN file {} must hold one line (the PIN)", p.display());
            }
            Zeroizing::new(line.to_string())
        }
        None => {
            use std::io::IsTerminal;
            if !std::io::stdin().is_terminal() {
                bail!("no terminal to ask for the PIN: pass --pin-file FILE (or --no-seal to store the keys unsealed)");
            }
            let a = Zeroizing::new(
                rpassword::prompt_password("Site PIN for the keys on this stick: ").context("reading the PIN")?,
            );
            let b = Zeroizing::new(rpassword::prompt_password("The same PIN again: ").context("reading the PIN")?);
            if *a != *b {
                bail!("the two PINs differ; nothing was built");
            }
            a
        }
    };
    if pin.chars().count() < MIN_PIN_CHARS {
        bail!("the PIN must be at least {MIN_PIN_CHARS} characters");
    }
    if pin.len() > keyring::MAX_PIN_LEN {
        bail!("the PIN must be at most {} bytes", keyring::MAX_PIN_LEN);
    }
    if pin.chars().any(|c| c.is_control()) {
        bail!("the PIN must not hold control characters (the agent's keyboard cannot type them)");
    }
    Ok(pin)
}
