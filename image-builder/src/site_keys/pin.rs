//! The site PIN that seals a keyed image's recovery keys.

use anyhow::{bail, Context, Result};
use rescue_engine::formats::keyring;
use std::path::Path;
use zeroize::Zeroizing;

/// The site PIN: the first line of `pin_file`, or asked twice on the
/// terminal without echo. Never from the command line or the environment.
pub fn read_pin(pin_file: Option<&Path>) -> Result<Zeroizing<String>> {
    let pin = match pin_file {
        Some(p) => {
            let len = std::fs::metadata(p).with_context(|| format!("cannot read the PIN file {}", p.display()))?.len();
            if len > 4096 {
                bail!("the PIN file {} is {len} bytes: it must hold one line, the PIN", p.display());
            }
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
    if let Some(why) = keyring::pin_problem(&pin) {
        bail!("{why}; nothing was built");
    }
    Ok(pin)
}

/// An estimate of what guessing `pin` offline costs, when one guess costs
/// `seconds` of one core (one Argon2id derivation as measured here) and
/// `mib` MiB of memory. Assumes every character was chosen at random from
/// the classes the PIN uses; a word or a pattern falls much sooner.
pub fn guessing_cost(pin: &str, seconds: f64, mib: u32) -> String {
    let has = |is: fn(&char) -> bool| pin.chars().any(|c| is(&c));
    let alphabet = [
        (has(char::is_ascii_lowercase), 26.0),
        (has(char::is_ascii_uppercase), 26.0),
        (has(char::is_ascii_digit), 10.0),
        (pin.chars().any(|c| c.is_ascii_punctuation() || c == ' '), 33.0),
    ]
    .iter()
    .filter(|(used, _)| *used)
    .map(|(_, n)| n)
    .sum::<f64>();
    let guesses = alphabet.max(1.0).powi(pin.chars().count() as i32) / 2.0;
    let core_years = guesses * seconds / (365.25 * 86400.0);
    let when = if core_years >= 1.0 {
        format!("{core_years:.1e} core-years")
    } else {
        format!("{:.1} core-hours", core_years * 365.25 * 24.0)
    };
    format!(
        "offline guessing: about {guesses:.1e} guesses on average at {seconds:.2} s and {mib} MiB each = {when} \
         (if the PIN were random; a word or pattern falls much sooner)"
    )
}

#[cfg(test)]
mod tests {
    use super::guessing_cost;

    #[test]
    fn longer_and_richer_pins_cost_more() {
        let digits = guessing_cost("12345678", 0.5, 128);
        assert!(digits.contains("5.0e7 guesses"), "{digits}");
        assert!(guessing_cost("Ab1!Ab1!Ab1!", 0.5, 128).contains("core-years"));
    }
}
