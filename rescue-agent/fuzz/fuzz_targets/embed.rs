//! The agent's embedded-profile section from any bytes (what a tampered
//! binary could hold): reading returns the sealed parts or an error, never
//! panics, and what reads seals back to a section that reads the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_engine::formats::embed;

fuzz_target!(|data: &[u8]| {
    let mut section = embed::empty_section();
    let n = data.len().min(section.len());
    section[..n].copy_from_slice(&data[..n]);
    for bytes in [data, &section[..]] {
        if let Ok(e) = embed::read(bytes) {
            let mut again = embed::empty_section();
            embed::fill(&mut again, &e).expect("a section that reads does not seal again");
            let back = embed::read(&again).expect("a resealed section does not read");
            assert!(back.profile == e.profile && back.keys == e.keys && back.keys_sha256 == e.keys_sha256);
        }
    }
});
