//! Fuzz target: `decompress::lzx::decompress` on any input must return
//! Ok or Err and never panic (libFuzzer reports a panic as a crash).
//! The first two bytes choose the output size (up to 32768 bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rescue_engine::formats::decompress::lzx;

fuzz_target!(|data: &[u8]| {
    let Some((size, input)) = data.split_first_chunk::<2>() else { return };
    let n = (u16::from_le_bytes(*size) as usize) % (32768 + 1);
    let mut out = vec![0xA5u8; n];
    let _ = lzx::decompress(input, &mut out);
});
