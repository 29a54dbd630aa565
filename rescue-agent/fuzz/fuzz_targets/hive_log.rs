//! Transaction-log recovery from any bytes: the input is split into a
//! primary file and one log. Must return errors, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_engine::registry::log::recover;

fuzz_target!(|data: &[u8]| {
    let Some((cut, rest)) = data.split_first_chunk::<4>() else { return };
    let cut = (u32::from_le_bytes(*cut) as usize) % (rest.len() + 1);
    let (primary, log) = rest.split_at(cut);
    let _ = recover(primary, &[log, &[]]);
});
