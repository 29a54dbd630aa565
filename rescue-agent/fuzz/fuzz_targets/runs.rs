//! Data runs (mapping pairs) and their mapping to extents.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_engine::formats::ntfs::runs;

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let total = u64::from_le_bytes(data[..8].try_into().unwrap()) % (1 << 40);
    if let Ok(r) = runs::decode(&data[8..], 0, total, 0) {
        let end = r.last().map_or(0, |x| x.vcn + x.len);
        let _ = runs::extents(&r, 4096, 0, end.saturating_mul(4096).min(1 << 30), 0);
    }
});
