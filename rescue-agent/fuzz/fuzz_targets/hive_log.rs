//! Transaction-log recovery from any bytes: the input is split into a
//! primary file and one log. Where recovery succeeds, a change to the
//! recovered hive is planned through the journal. Must return errors,
//! never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_engine::formats::registry::{base, journal, log::recover};

fuzz_target!(|data: &[u8]| {
    let Some((cut, rest)) = data.split_first_chunk::<4>() else { return };
    let cut = (u32::from_le_bytes(*cut) as usize) % (rest.len() + 1);
    let (primary, log) = rest.split_at(cut);
    let logs: [&[u8]; 2] = [log, &[]];
    let Ok(r) = recover(primary, &logs) else { return };
    // A change: the last byte flipped, sequence numbers moved on.
    let mut edited = r.bytes.clone();
    if let Some(b) = edited.last_mut() {
        *b ^= 0x5A;
    }
    if edited.len() >= base::SIZE {
        let next = r.seq.wrapping_add(1);
        base::stamp(&mut edited, next, next, 1).expect("a base block fits");
    }
    let _ = journal::plan(primary, &r, &edited, &logs);
});
