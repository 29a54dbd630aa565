//! Text in and out: files admins save, decoded one way ([`decode`]), and
//! text from disks, sticks, reports and profiles, made safe for a terminal.
//!
//! Such strings are data: an escape sequence in a profile's description or
//! a file name could clear the screen or print a fake "FIXED". Everything
//! `rescue` prints from them goes through [`printable`].

use std::borrow::Cow;
use zeroize::Zeroizing;

/// `println!` for text that may hold data from outside: control characters escaped.
macro_rules! say {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout());
    }};
    ($($t:tt)*) => {{
        use std::io::Write as _;
        // A closed pipe (`rescue reg ... | head`) ends the output, not the run.
        let _ = writeln!(std::io::stdout(), "{}", $crate::text::printable(&format!($($t)*)));
    }};
}

/// `eprintln!` for text that may hold data from outside: control characters escaped.
macro_rules! say_err {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "{}", $crate::text::printable(&format!($($t)*)));
    }};
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

/// `s` on one line: every control character, newline and tab included,
/// shown as a `\u{..}` escape (names from a disk or a report must not
/// start a line of their own and pass for the tool's output).
pub fn one_line(s: &str) -> Cow<'_, str> {
    let control = |c: char| c.is_control() || ('\u{80}'..='\u{9f}').contains(&c);
    if !s.chars().any(control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(|c| if control(c) { c.escape_unicode().to_string() } else { c.to_string() }).collect())
}

/// Text from a file an admin saved (key exports, profiles, secrets files):
/// UTF-8 (with or without BOM), or UTF-16 with a BOM (Windows PowerShell's
/// `Export-Csv -Encoding Unicode`, `Out-File`, Notepad's "Unicode"), or
/// UTF-16LE without BOM when every other byte is zero. Zeroized when
/// dropped, intermediate buffers too: such files may hold secrets.
pub fn decode(bytes: &[u8]) -> std::result::Result<Zeroizing<String>, String> {
    let utf16 = |body: &[u8], le: bool| -> std::result::Result<Zeroizing<String>, String> {
        if !body.len().is_multiple_of(2) {
            return Err("UTF-16 file with an odd number of bytes (truncated?)".into());
        }
        let units: Zeroizing<Vec<u16>> = Zeroizing::new(
            body.chunks_exact(2)
                .map(|c| if le { u16::from_le_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], c[1]]) })
                .collect(),
        );
        String::from_utf16(&units).map(Zeroizing::new).map_err(|_| "invalid UTF-16 text".to_string())
    };
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return std::str::from_utf8(rest)
            .map(|s| Zeroizing::new(s.to_string()))
            .map_err(|e| format!("invalid UTF-8 at byte {}", 3 + e.valid_up_to()));
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, true);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, false);
    }
    if bytes.len() >= 4
        && bytes.len().is_multiple_of(2)
        && bytes.iter().skip(1).step_by(2).all(|&b| b == 0)
        && bytes[0] != 0
    {
        return utf16(bytes, true);
    }
    std::str::from_utf8(bytes).map(|s| Zeroizing::new(s.to_string())).map_err(|e| {
        format!(
            "not UTF-8 or UTF-16 text (invalid byte at {}); save it as UTF-8 (or UTF-16, Windows' \"Unicode\")",
            e.valid_up_to()
        )
    })
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
