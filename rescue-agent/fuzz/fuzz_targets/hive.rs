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
    // Every value of the first keys rewritten, shorter and longer (cells
    // freed, reused, allocated): an edit that succeeds must leave a hive
    // whose edited key still reads whole — shared cells must be refused.
    let keys: Vec<_> = {
        let mut out = Vec::new();
        let mut stack: Vec<_> = h.root().into_iter().collect();
        while let Some(k) = stack.pop() {
            if out.len() >= 32 {
                break;
            }
            stack.extend(h.subkeys(&k).unwrap_or_default());
            out.push(k);
        }
        out
    };
    for k in keys {
        for v in h.values(&k).unwrap_or_default() {
            for data in [Data::Dword(4), Data::Sz("y".repeat(300))] {
                let Ok(mut ed) = Editor::new(h.clone()) else { return };
                if ed.set_value(&k, &v.name_string(), &data, 1).is_err() {
                    continue;
                }
                let after = Hive::open(ed.finish(1).unwrap()).expect("an edited hive opens");
                let key = after.key(k.off).expect("the edited key reads");
                for v in after.values(&key).expect("its values read") {
                    after.data(&v).expect("every value of the edited key reads");
                }
            }
        }
    }
    let _ = bcd::edit_store(data, SafeMode::Minimal, 1);
});
