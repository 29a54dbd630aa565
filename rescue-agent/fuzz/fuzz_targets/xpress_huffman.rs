//! Fuzz target: `decompress::xpress_huffman::decompress` on any input must return
//! Ok or Err and never panic (libFuzzer reports a panic as a crash).
//! The first two bytes choose the output size (up to 65536 bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rescue_engine::formats::decompress::xpress_huffman;

fuzz_target!(|data: &[u8]| {
    let Some((size, input)) = data.split_first_chunk::<2>() else { return };
    let n = (u16::from_le_bytes(*size) as usize) % (65536 + 1);
    let mut out = vec![0xA5u8; n];
    let _ = xpress_huffman::decompress(input, &mut out);
});
