//! Text from disks, sticks, reports and profiles, made safe for a terminal.
//!
//! Such strings are data: an escape sequence in a profile's description or
//! a file name could clear the screen or print a fake "FIXED". Everything
//! `rescue` prints from them goes through [`printable`].

use std::borrow::Cow;

/// `println!` for text that may hold data from outside: control characters escaped.
macro_rules! say {
    () => { println!() };
    ($($t:tt)*) => { println!("{}", $crate::text::printable(&format!($($t)*))) };
}

/// `eprintln!` for text that may hold data from outside: control characters escaped.
macro_rules! say_err {
    ($($t:tt)*) => { eprintln!("{}", $crate::text::printable(&format!($($t)*))) };
}

/// `s` with every control character (C0 but newline and tab, DEL, C1)
/// shown as a `\u{..}` escape; unchanged (borrowed) when there is none.
pub fn printable(s: &str) -> Cow<'_, str> {
    let control = |c: char| (c.is_control() && c != '\n' && c != '\t') || ('\u{80}'..='\u{9f}').contains(&c);
    if !s.chars().any(control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(|c| if control(c) { c.escape_unicode().to_string() } else { c.to_string() }).collect())
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn escapes_reach_the_terminal_as_text() {
        assert_eq!(printable("plain ü\ttext\n"), "plain ü\ttext\n");
        assert_eq!(printable("\u{1b}[2J\u{1b}[32mFIXED"), "\\u{1b}[2J\\u{1b}[32mFIXED");
        assert_eq!(printable("a\u{9b}b\rc\u{7f}"), "a\\u{9b}b\\u{d}c\\u{7f}");
    }
}
