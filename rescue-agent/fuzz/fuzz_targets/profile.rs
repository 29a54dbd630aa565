//! Profiles (TOML) from any text: parsing returns a profile or an error
//! naming the problem, never panics; a parsed profile lists its actions and
//! survives being sealed into the agent's section and read back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_engine::formats::embed::{self, Embedded};
use rescue_engine::rules::profile::Profile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else { return };
    match Profile::parse(text) {
        Ok(p) => {
            let _ = (p.actions(), p.rule_count());
            let mut section = embed::empty_section();
            let e = Embedded { profile: data.to_vec(), keys_sha256: None, keys: None };
            if embed::fill(&mut section, &e).is_ok() {
                let back = embed::read(&section).expect("a sealed profile does not read back");
                assert_eq!(back.profile, data, "the sealed profile came back different");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
