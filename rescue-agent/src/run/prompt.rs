//! The recovery-password field of the agent's BitLocker prompt, as a state
//! machine fed one key at a time, so that it is tested on the host.
//!
//! Digits may come with or without dashes or spaces (barcode scanners type
//! fast and end with Enter). Each 6-digit block is checked as soon as it is
//! complete, as Windows does (divisible by 11, below 720896): a wrong block is
//! named and its digits are dropped so the technician retypes just that block.
//! The digits are wiped from memory when the entry is dropped.

use crate::formats::bitlocker::keys::check_block;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use zeroize::Zeroizing;

/// A key press, as the front end decodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// A printable character (digits are taken; dashes, spaces and others are ignored).
    Char(char),
    /// Enter: submit the password when complete.
    Enter,
    /// Backspace: remove the last digit.
    Backspace,
    /// Escape: skip the volume.
    Escape,
    /// Any other key (function keys, arrows...).
    Other,
}

/// Digits in a recovery password.
pub const DIGITS: usize = 48;
const BLOCK: usize = 6;

/// What a key did to the entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// The field changed (or nothing happened); redraw it.
    Edited,
    /// Block `n` (1-based) was wrong and has been cleared.
    BadBlock {
        /// The block's number, 1 to 8.
        n: usize,
        /// Why it is wrong, as [`check_block`] says it.
        why: &'static str,
    },
    /// Enter with fewer than 48 digits.
    Incomplete {
        /// Digits typed so far.
        digits: usize,
    },
    /// Enter with 48 valid digits: the password is ready.
    Submit,
    /// Escape: skip this volume.
    Skip,
}

/// The digits typed so far (wiped when dropped or cleared).
#[derive(Default)]
pub struct Entry {
    digits: Zeroizing<Vec<u8>>,
}

impl Entry {
    /// Feeds one key.
    pub fn key(&mut self, key: Key) -> Event {
        match key {
            Key::Escape => Event::Skip,
            Key::Enter if self.digits.len() == DIGITS => Event::Submit,
            Key::Enter => Event::Incomplete { digits: self.digits.len() },
            Key::Backspace => {
                self.digits.pop();
                Event::Edited
            }
            Key::Char(c) if c.is_ascii_digit() && self.digits.len() < DIGITS => {
                self.digits.push(c as u8 - b'0');
                if self.digits.len().is_multiple_of(BLOCK) {
                    let n = self.digits.len() / BLOCK;
                    let block = self.digits[(n - 1) * BLOCK..].iter().fold(0u32, |a, &d| a * 10 + d as u32);
                    if let Err(why) = check_block(block) {
                        self.digits.truncate((n - 1) * BLOCK);
                        return Event::BadBlock { n, why };
                    }
                }
                Event::Edited
            }
            _ => Event::Edited,
        }
    }

    /// The field as shown: typed digits in blocks, the rest as underscores.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(DIGITS + 7);
        for i in 0..DIGITS {
            if i > 0 && i % BLOCK == 0 {
                s.push('-');
            }
            s.push(self.digits.get(i).map_or('_', |d| (b'0' + d) as char));
        }
        s
    }

    /// The complete password (`Submit` was returned), with dashes, for the unlocker.
    pub fn password(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(DIGITS + 7));
        for (i, d) in self.digits.iter().enumerate() {
            if i > 0 && i % BLOCK == 0 {
                s.push('-');
            }
            s.push((b'0' + d) as char);
        }
        s
    }

    /// Clears the field for another attempt.
    pub fn clear(&mut self) {
        self.digits = Zeroizing::default();
    }
}

/// A message for an event, for the status line under the field.
pub fn describe(e: &Event) -> Option<String> {
    match e {
        Event::BadBlock { n, why } => Some(format!("Block {n} is wrong: {why}. Type block {n} again.")),
        Event::Incomplete { digits } => Some(format!("{digits} of 48 digits typed: type the rest, then Enter.")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(e: &mut Entry, s: &str) -> Vec<Event> {
        s.chars()
            .map(|c| match c {
                '\n' => Key::Enter,
                '\x1b' => Key::Escape,
                '\x08' => Key::Backspace,
                c => Key::Char(c),
            })
            .map(|k| e.key(k))
            .filter(|ev| *ev != Event::Edited)
            .collect()
    }

    const GOOD: &str = "111111-222222-333333-444444-555555-666666-700007-000011";

    #[test]
    fn dashes_optional_and_submit() {
        let mut e = Entry::default();
        assert_eq!(feed(&mut e, &format!("{GOOD}\n")), [Event::Submit]);
        assert_eq!(e.password().as_str(), GOOD);
        let mut e = Entry::default();
        assert_eq!(feed(&mut e, &format!("{}\n", GOOD.replace('-', ""))), [Event::Submit]);
        assert_eq!(e.password().as_str(), GOOD);
    }

    #[test]
    fn wrong_block_is_named_and_cleared() {
        let mut e = Entry::default();
        let ev = feed(&mut e, "111111-222223");
        assert_eq!(ev, [Event::BadBlock { n: 2, why: "it is not a multiple of 11, so a digit is mistyped" }]);
        assert_eq!(e.render(), "111111-______-______-______-______-______-______-______");
        assert!(matches!(feed(&mut e, "720907")[..], [Event::BadBlock { n: 2, .. }]));
        assert_eq!(feed(&mut e, "\n"), [Event::Incomplete { digits: 6 }]);
        assert_eq!(feed(&mut e, "\x08\x08"), []);
        assert_eq!(e.render().chars().filter(|c| c.is_ascii_digit()).count(), 4);
        assert_eq!(feed(&mut e, "\x1b"), [Event::Skip]);
    }
}
