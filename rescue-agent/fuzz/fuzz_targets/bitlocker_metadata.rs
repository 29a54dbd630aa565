//! The BitLocker metadata parser on arbitrary bytes: the input becomes FVE
//! metadata copy 1 (with its CRC made right, so the parser goes past the
//! checksum) of a small volume, and also a .BEK file. Never panics, never
//! writes, and unlocking with the clear key either fails cleanly or gives a
//! device whose first sector can be read.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_engine::block::{BlockDevice, MemDisk};
use rescue_engine::formats::bitlocker::{parse_bek, BitLocker, UnlockKey};

const AREA: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let _ = parse_bek(data);
    let mut v = vec![0u8; 4 * AREA + 8192];
    v[0..3].copy_from_slice(&[0xEB, 0x58, 0x90]);
    v[3..11].copy_from_slice(b"-FVE-FS-");
    v[11..13].copy_from_slice(&512u16.to_le_bytes());
    v[0xA0..0xB0].copy_from_slice(&[
        0x3b, 0xd6, 0x67, 0x49, 0x29, 0x2e, 0xd8, 0x4a, 0x83, 0x99, 0xf6, 0xa3, 0x39, 0xe3, 0xd0, 0x01,
    ]);
    for i in 0..3u64 {
        let o = (i + 1) * AREA as u64;
        v[0xB0 + 8 * i as usize..0xB8 + 8 * i as usize].copy_from_slice(&o.to_le_bytes());
    }
    let n = data.len().min(AREA);
    v[AREA..AREA + n].copy_from_slice(&data[..n]);
    if n >= 10 {
        let len = u16::from_le_bytes([data[8], data[9]]) as usize * 16;
        if len + 8 <= AREA {
            let crc = rescue_engine::util::crc32::crc32(&v[AREA..AREA + len]);
            v[AREA + len + 4..AREA + len + 8].copy_from_slice(&crc.to_le_bytes());
        }
    }
    let before = v.clone();
    let disk = MemDisk::new(v, 512);
    if let Ok(bl) = BitLocker::open(disk) {
        for p in bl.protectors() {
            let _ = (p.short_key_id(), p.kind.to_string());
        }
        match bl.unlock_key(&UnlockKey::ClearKey) {
            Ok(k) => {
                if let Ok(mut u) = bl.with_key(k) {
                    let mut s = [0u8; 512];
                    let _ = u.read_at(0, &mut s);
                    assert!(u.into_inner().data == before, "reading wrote");
                }
            }
            Err(e) => {
                let _ = e.to_string();
                assert!(bl.into_inner().data == before, "a failed unlock wrote");
            }
        }
    }
});
