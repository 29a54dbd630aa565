//! A registry hive from any bytes: open, walk every key and value (bounded),
//! then try the edits the engine makes (a value set, Safe Mode in a BCD).
//! Must return errors, never panic or loop.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_engine::formats::registry::bcd::{self, SafeMode};
use rescue_engine::formats::registry::cell::Hive;
use rescue_engine::formats::registry::edit::{Data, Editor};

fuzz_target!(|data: &[u8]| {
    let Ok(h) = Hive::open(data.to_vec()) else { return };
    let mut stack = match h.root() {
        Ok(r) => vec![r],
        Err(_) => return,
    };
    let mut seen = 0;
    while let Some(k) = stack.pop() {
        seen += 1;
        if seen > 10_000 {
            break;
        }
        if let Ok(vs) = h.values(&k) {
            for v in vs {
                let _ = h.data(&v);
            }
        }
        if let Ok(s) = h.subkeys(&k) {
            stack.extend(s);
        }
    }
    if let Ok(mut ed) = Editor::new(h.clone()) {
        if let Ok(root) = ed.hive().root() {
            let _ = ed.set_value(&root, "Fuzz", &Data::Sz("x".repeat(40)), 1);
        }
        let _ = ed.finish(1);
    }
    let _ = bcd::edit_store(data, SafeMode::Minimal, 1);
});
