//! Hexadecimal text for digests and byte strings.

use alloc::string::String;
use core::fmt::Write;

/// `bytes` as lowercase hex, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn lowercase_pairs() {
        assert_eq!(super::hex(&[0xAA, 0x01, 0x00]), "aa0100");
        assert_eq!(super::hex(&[]), "");
    }
}
