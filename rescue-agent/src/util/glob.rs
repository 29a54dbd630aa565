//! Glob patterns for the last component of a path: `*` (any run of
//! characters) and `?` (exactly one). Matching works on UTF-16 code units,
//! as NTFS stores names, with a caller-supplied case fold (the volume's
//! `$UpCase` table), and runs in O(pattern × name) time with no recursion.

/// True when `name` matches `pattern`, comparing units after `fold`.
pub fn matches(pattern: &[u16], name: &[u16], fold: impl Fn(u16) -> u16) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && pattern[p] == b'*' as u16 {
            star = Some((p, n));
            p += 1;
        } else if p < pattern.len() && (pattern[p] == b'?' as u16 || fold(pattern[p]) == fold(name[n])) {
            p += 1;
            n += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*' as u16)
}

/// True when `s` holds a wildcard.
pub fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// ASCII-only case fold (the tests' stand-in for a volume's `$UpCase` table).
#[cfg(test)]
fn ascii_upcase(u: u16) -> u16 {
    if (b'a' as u16..=b'z' as u16).contains(&u) {
        u - 32
    } else {
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn m(p: &str, n: &str) -> bool {
        let p: Vec<u16> = p.encode_utf16().collect();
        let n: Vec<u16> = n.encode_utf16().collect();
        matches(&p, &n, ascii_upcase)
    }

    #[test]
    fn wildcards() {
        assert!(m("C-00000291*.sys", "C-00000291-00000000-00000032.sys"));
        assert!(m("c-00000291*.SYS", "C-00000291-00000000-00000032.sys"));
        assert!(!m("C-00000291*.sys", "C-00000290-00000000-00000032.sys"));
        assert!(!m("C-00000291*.sys", "C-00000291-00000000-00000032.sys.bak"));
        assert!(m("*", ""));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaab"));
        assert!(!m("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaa"));
        assert!(m("exact.txt", "EXACT.TXT"));
    }
}
