//! Names from a disk are data, not paths: whether a name can be one Win32
//! path component, and a relative path made only of such components.
//!
//! NTFS stores names as UTF-16 and allows almost anything in the POSIX
//! namespace (ntfs-3g writes `\` and control characters on request). A name
//! like `x\..\..\escaped.sys` must never become a path on a stick or host.

/// Why `name` cannot be a single Win32 path component, or `None` when it can.
pub fn component_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty name");
    }
    if name == "." || name == ".." {
        return Some("a `.` or `..` component");
    }
    if name.chars().any(|c| (c as u32) < 0x20 || c == '\u{7f}') {
        return Some("a control character in the name");
    }
    if name.contains(['\\', '/']) {
        return Some("a path separator in the name");
    }
    if name.contains(['<', '>', ':', '"', '|', '?', '*']) {
        return Some("a character Windows does not allow in names");
    }
    None
}

/// Why `path` (components separated by `\`) is not a relative path of valid
/// components, or `None` when it is one. Such a path stays inside any folder
/// it is joined to.
pub fn relative_path_problem(path: &str) -> Option<&'static str> {
    path.split('\\').find_map(component_problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names() {
        for ok in ["C-00000291-00000000-00000032.sys", "a b.txt", "été", "x.y.z", "..."] {
            assert_eq!(component_problem(ok), None, "{ok}");
        }
        for bad in ["", ".", "..", "a\\b", "a/b", "x\u{1}", "a:b", "C-00000291-x\\..\\..\\escaped.sys"] {
            assert!(component_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(relative_path_problem("Windows\\System32\\x.sys"), None);
        assert!(relative_path_problem("Windows\\..\\x").is_some());
        assert!(relative_path_problem("\\abs").is_some());
        assert!(relative_path_problem("a\\\\b").is_some());
    }
}
