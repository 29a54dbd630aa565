//! The stick's site keys as the agent uses them (keyed images): the PIN is
//! asked once per boot, when the first locked volume whose Key ID the stick
//! holds is found; then every such volume opens with no typing. A wrong PIN
//! can be retyped; Esc falls back to typing recovery keys. A damaged or
//! altered key file is reported and the agent falls back to the prompt.

use crate::formats::keyring::{self, Keyring, KeyringError, SiteKeys};
use crate::run::ports::{Console, Credential, KeySource};
use crate::run::prompt::Key;
use crate::util::guid::Guid;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use zeroize::Zeroizing;

/// Site keys from the stick's key file, opened on first need.
pub struct StickKeys {
    ring: Result<Keyring, KeyringError>,
    opened: Option<SiteKeys>,
    /// The technician chose to type keys instead (Esc), or the file is unusable.
    gave_up: bool,
    warned: bool,
}

impl StickKeys {
    /// From the bytes of `rescue/keys.sealed` (never fails: problems surface at first use).
    pub fn new(bytes: &[u8]) -> StickKeys {
        StickKeys { ring: Keyring::parse(bytes), opened: None, gave_up: false, warned: false }
    }

    /// What the stick holds, for the screen and the report (never a key).
    pub fn describe(&self) -> String {
        match &self.ring {
            Ok(r) => format!(
                "{} site key(s), {}",
                r.key_ids().len(),
                if r.is_sealed() { "sealed with a PIN" } else { "NOT sealed" }
            ),
            Err(e) => format!("site key file unusable: {e}"),
        }
    }

    /// Asks for the PIN until it opens the keys, or Esc.
    fn ask_pin(ring: &Keyring, console: &mut dyn Console) -> Option<SiteKeys> {
        console.line("This stick holds this site's BitLocker keys. Type the site PIN, then Enter (Esc: type recovery keys instead):");
        loop {
            let mut pin = Zeroizing::new(String::new());
            loop {
                console.field(&format!("PIN: {}", "*".repeat(pin.chars().count())));
                match console.key(None)? {
                    Key::Enter if !pin.is_empty() => break,
                    Key::Escape => return None,
                    Key::Backspace => {
                        pin.pop();
                    }
                    Key::Char(c) if pin.len() < keyring::MAX_PIN_LEN && c.is_ascii() && !c.is_ascii_control() => {
                        pin.push(c)
                    }
                    _ => {}
                }
            }
            console.line("Checking the PIN (a few seconds)...");
            match ring.open(&pin) {
                Ok(keys) => return Some(keys),
                Err(KeyringError::WrongPin) => {
                    console.line("Wrong PIN. Type it again (Esc: type recovery keys instead):")
                }
                Err(e) => {
                    console.line(&format!("The site keys cannot be opened: {e}. Type recovery keys instead."));
                    return None;
                }
            }
        }
    }
}

impl KeySource for StickKeys {
    fn keys(&mut self, key_ids: &[Guid], console: &mut dyn Console) -> Vec<Credential> {
        self.recovery_password(key_ids, console).map(Credential::RecoveryPassword).into_iter().collect()
    }
    fn label(&self) -> Option<&'static str> {
        Some("site key")
    }
}

impl StickKeys {
    /// The stick's recovery password for a volume protected by one of
    /// `key_ids`, if it holds one (asking for the PIN the first time).
    pub fn recovery_password(&mut self, key_ids: &[Guid], console: &mut dyn Console) -> Option<Zeroizing<String>> {
        let ring = match &self.ring {
            Ok(r) => r,
            Err(e) => {
                if !self.warned {
                    self.warned = true;
                    console.line(&format!(
                        "The site key file on the stick is unusable ({e}): type recovery keys instead."
                    ));
                }
                return None;
            }
        };
        let Some(id) = key_ids.iter().find(|id| ring.key_ids().contains(id)) else {
            console.line("The stick holds no key for this volume.");
            return None;
        };
        if self.opened.is_none() && !self.gave_up {
            self.opened = if ring.is_sealed() { Self::ask_pin(ring, console) } else { ring.open_unsealed().ok() };
            self.gave_up = self.opened.is_none();
        }
        self.opened.as_ref()?.password(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::keyring::{seal, KdfParams};
    use alloc::collections::VecDeque;
    use alloc::vec::Vec;

    struct Script {
        keys: VecDeque<Key>,
        lines: Vec<String>,
    }

    impl Console for Script {
        fn line(&mut self, text: &str) {
            self.lines.push(text.into());
        }
        fn key(&mut self, _: Option<u32>) -> Option<Key> {
            self.keys.pop_front()
        }
    }

    fn typed(s: &str) -> VecDeque<Key> {
        s.chars()
            .map(|c| match c {
                '\n' => Key::Enter,
                '\x1b' => Key::Escape,
                c => Key::Char(c),
            })
            .collect()
    }

    const ID: Guid = Guid([7; 16]);
    const CHEAP: KdfParams = KdfParams { m_kib: 64, t: 1, p: 1 };

    fn file() -> Vec<u8> {
        let mut keys = SiteKeys::new();
        keys.insert(ID, &[1; 16]).unwrap();
        seal(&keys, "2468-site", CHEAP, [3; 16], [4; 12]).unwrap()
    }

    #[test]
    fn wrong_pin_then_right_once_per_boot() {
        let mut sk = StickKeys::new(&file());
        let mut con = Script { keys: typed("1111\n2468-site\n"), lines: Vec::new() };
        let pw = sk.recovery_password(&[Guid([9; 16]), ID], &mut con).expect("opened");
        assert_eq!(pw.len(), 55);
        assert!(con.lines.iter().any(|l| l.starts_with("Wrong PIN")), "{:?}", con.lines);
        assert!(con.lines.iter().all(|l| !l.contains("2468")));
        // A second volume: no second PIN.
        let mut con2 = Script { keys: VecDeque::new(), lines: Vec::new() };
        assert!(sk.recovery_password(&[ID], &mut con2).is_some());
        // A volume the stick has no key for falls back to the prompt.
        assert!(sk.recovery_password(&[Guid([8; 16])], &mut con2).is_none());
    }

    #[test]
    fn escape_and_tampering_fall_back() {
        let mut sk = StickKeys::new(&file());
        let mut con = Script { keys: typed("12\x1b"), lines: Vec::new() };
        assert!(sk.recovery_password(&[ID], &mut con).is_none());
        assert!(sk.recovery_password(&[ID], &mut con).is_none(), "asked again after Esc");
        let mut bad = file();
        let n = bad.len();
        bad[n - 40] ^= 1;
        let mut sk = StickKeys::new(&bad);
        let mut con = Script { keys: typed("2468-site\n"), lines: Vec::new() };
        assert!(sk.recovery_password(&[ID], &mut con).is_none());
        assert!(con.lines.iter().any(|l| l.contains("unusable") && l.contains("altered")), "{:?}", con.lines);
    }
}
