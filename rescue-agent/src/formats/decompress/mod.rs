//! Decompressors for the compressed files a Windows volume holds. Each
//! works on one independently compressed piece (an NTFS compression unit,
//! a WOF chunk) and fills a caller-sized output exactly.
//!
//! - [`lznt1`]: NTFS compression (`$DATA` with the compressed flag),
//!   [MS-XCA] section 2.5 "LZNT1".
//! - [`xpress_huffman`]: WOF/CompactOS XPRESS4K/8K/16K, [MS-XCA] section 2.1–2.2.
//! - [`lzx`]: WOF/CompactOS LZX (the WIM variant of LZX).
//!
//! Guarantees shared by all three: no panic and no allocation on any input;
//! time linear in the input and the output; a match that would reach before the start of
//! the output or past its end is [`Corrupt`], never clamped.

mod huffman;
pub mod lznt1;
pub mod lzx;
pub mod xpress_huffman;

/// Compressed data that does not decode; says what is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt(pub &'static str);

impl core::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0)
    }
}
