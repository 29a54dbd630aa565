//! A whole (small) volume through the remediation run: never panics, and a
//! failed run leaves the bytes unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_engine::block::MemDisk;
use rescue_engine::rules::profile::Profile;
use rescue_engine::rules::delete::{remediate, NoBackup, Options};

fuzz_target!(|data: &[u8]| {
    let p = Profile::parse("name = \"f\"\n[[delete]]\npath = 'd\\*.sys'\nbackup = false\n").unwrap();
    let mut dev = MemDisk::new(data.to_vec(), 512);
    let r = remediate(&p, &mut dev, &Options::default(), &mut NoBackup, &mut |_| {});
    if !r.ok && r.files_deleted == 0 {
        assert!(dev.data == data, "a failed run wrote");
    }
});
