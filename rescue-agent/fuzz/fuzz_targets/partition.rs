//! Partition tables (MBR, GPT and its backup) from any bytes as a disk:
//! discovery returns partitions inside the disk or an error, never panics;
//! a GPT that reads writes back to bytes that read the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_engine::block::{BlockDevice, MemDisk};
use rescue_engine::formats::partition::{self, Gpt};

fuzz_target!(|data: &[u8]| {
    for sector in [512u32, 4096] {
        let mut dev = MemDisk::new(data.to_vec(), sector);
        let size = dev.size();
        if let Ok(parts) = partition::discover(&mut dev) {
            for p in parts {
                assert!(p.offset.checked_add(p.size).is_some_and(|end| end <= size), "a partition past the disk's end");
            }
        }
        let mut dev = MemDisk::new(data.to_vec(), sector);
        if let Ok(gpt) = Gpt::read(&mut dev) {
            let _ = gpt.last_usable();
            let mut copy = MemDisk::new(data.to_vec(), sector);
            if gpt.to_writes().iter().all(|(at, bytes)| copy.write_at(*at, bytes).is_ok()) {
                let again = Gpt::read(&mut copy).expect("a GPT written back from a read one does not read");
                assert_eq!(again.partitions(), gpt.partitions(), "a GPT written back reads differently");
            }
        }
    }
});
