//! A whole (small) disk through the run (partitions, BitLocker detection,
//! the Windows check), then the profile's rules on it as one volume: never
//! panics, and a failed run leaves the bytes unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_engine::block::MemDisk;
use rescue_engine::formats::ntfs::Ntfs;
use rescue_engine::rules::backup::NoBackup;
use rescue_engine::rules::profile::Profile;
use rescue_engine::rules::report::VolumeReport;
use rescue_engine::rules::{self, Env, Options};
use rescue_engine::run::ports::{NoEsp, NoKeys, Silent};
use rescue_engine::run::session::{self, Disk, Ports};

fuzz_target!(|data: &[u8]| {
    let p = Profile::parse("name = \"f\"\n[[delete]]\npath = 'd\\*.sys'\nbackup = false\n").unwrap();
    let dev = MemDisk::new(data.to_vec(), 512);
    let mut disks =
        [Disk { label: "fuzz".into(), model: String::new(), serial: String::new(), bus: String::new(), dev }];
    let ports =
        Ports { console: &mut Silent, sink: &mut NoBackup, keys: &mut NoKeys, esp: &mut NoEsp, clock_ms: &|| 0 };
    let r = session::run(&p, &mut disks, Options::default(), ports);
    if !r.result.ok && r.result.files_deleted == 0 {
        assert!(disks[0].dev.data == data, "a failed run wrote");
    }
    let mut dev = MemDisk::new(data.to_vec(), 512);
    let Ok(ntfs) = Ntfs::open(&mut dev) else { return };
    let mut env = Env { profile: &p, opts: Options::default(), sink: &mut NoBackup, log: &mut |_| {} };
    let a = rules::apply(&mut env, &ntfs, &mut dev, VolumeReport::default());
    if !a.ok() && a.files_deleted() == 0 {
        assert!(dev.data == data, "a failed rule wrote");
    }
});
