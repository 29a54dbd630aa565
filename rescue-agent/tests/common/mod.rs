//! Helpers shared by the engine's NTFS tests: a file-backed block device,
//! and the differential oracle (the engine and ntfs-3g delete the same file
//! on two copies of a volume; the bitmaps and the parent listing must agree).
#![allow(dead_code)] // each test crate uses its own subset

#[path = "../../../tests/support/ntfs3g.rs"]
pub mod ntfs3g;

use ntfs3g::{bytes, check_volume, copy, run, with_mount};
use rescue_engine::block::{check_range, BlockDevice, Counting, IoError, Slice};
use rescue_engine::formats::ntfs::delete::plan_delete;
use rescue_engine::formats::ntfs::gate::clear_for_writing;
use rescue_engine::formats::ntfs::plan::{self, Plan};
use rescue_engine::formats::ntfs::Ntfs;
use rescue_engine::formats::partition;
use rescue_engine::rules::backup::BackupSink;
use rescue_engine::rules::profile::{Profile, UncleanJournal};
use rescue_engine::rules::report::VolumeReport;
use rescue_engine::rules::{self, Applied, Env, Options};
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

pub struct FileDev {
    f: fs::File,
    size: u64,
}
impl FileDev {
    pub fn open(p: &Path) -> FileDev {
        let f = fs::OpenOptions::new().read(true).write(true).open(p).unwrap();
        let size = f.metadata().unwrap().len();
        FileDev { f, size }
    }
}
impl BlockDevice for FileDev {
    fn sector_size(&self) -> u32 {
        512
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, o: u64, b: &mut [u8]) -> Result<(), IoError> {
        check_range(o, b.len(), self.size)?;
        self.f.read_exact_at(b, o).map_err(|_| IoError::Device { offset: o, code: 5 })
    }
    fn write_at(&mut self, o: u64, b: &[u8]) -> Result<(), IoError> {
        check_range(o, b.len(), self.size)?;
        self.f.write_all_at(b, o).map_err(|_| IoError::Device { offset: o, code: 5 })
    }
}

/// What the differential oracle compares.
#[derive(PartialEq, Eq, Debug)]
pub struct Observed {
    pub bitmap: Vec<u8>,
    pub mft_bitmap: Vec<u8>,
    pub listing: String,
}

pub fn observe(img: &Path, parent: &str) -> Observed {
    Observed {
        bitmap: bytes(Command::new("ntfscat").arg(img).arg("$Bitmap")),
        mft_bitmap: bytes(Command::new("ntfscat").args(["-a", "0xb0"]).arg(img).arg("$MFT")),
        listing: run(Command::new("ntfsls").args(["-a", "-i", "-p", parent]).arg(img)),
    }
}

pub fn open(dev: &mut impl BlockDevice) -> Ntfs {
    Ntfs::open(dev).unwrap()
}

pub fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

/// Plans deleting `dir\name` with the engine (the name as listed; its DOS partner goes too).
pub fn plan_for(dev: &mut impl BlockDevice, dir: &str, name: &str) -> Plan {
    let v = open(dev);
    let mut gate = clear_for_writing(&v, dev, UncleanJournal::Refuse).unwrap();
    assert!(gate.take_reset().is_none());
    let dref = v.lookup(dev, dir).unwrap();
    let d = v.open_dir(dev, dref).unwrap();
    let fref = v.lookup_in(dev, &d, name).unwrap().unwrap_or_else(|| panic!("{name} not found"));
    plan_delete(&v, dev, &gate, dref, fref, &[utf16(name)]).unwrap()
}

/// Deletes `dir/name` with the engine on one copy and with ntfs-3g on
/// another, compares them, and checks ours with ntfsfix and a rw mount.
pub fn differential(dir: &Path, img: &Path, parent: &str, name: &str) -> Plan {
    let ours = copy(img, &dir.join("ours.img"));
    let theirs = copy(img, &dir.join("theirs.img"));
    let mut dev = FileDev::open(&ours);
    let p = plan_for(&mut dev, parent, name);
    plan::execute(&mut dev, &p, None).unwrap();
    drop(dev);
    with_mount(&theirs, &[], |m| fs::remove_file(m.join(parent.trim_start_matches('/')).join(name)).unwrap());
    let a = observe(&ours, parent);
    let b = observe(&theirs, parent);
    assert_eq!(a.listing, b.listing, "parent listing differs after deleting {name}");
    assert!(a.bitmap == b.bitmap, "$Bitmap differs after deleting {name}");
    assert!(a.mft_bitmap == b.mft_bitmap, "$MFT bitmap differs after deleting {name}");
    assert!(!a.listing.contains(&format!(" {name}\n")), "{name} still listed");
    check_volume(&ours);
    p
}

/// What the rules did on a test volume, and what they read and wrote.
#[derive(Debug)]
pub struct Ran {
    pub applied: Applied,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl std::ops::Deref for Ran {
    type Target = Applied;
    fn deref(&self) -> &Applied {
        &self.applied
    }
}

/// The profile's rules on the NTFS volume of `dev` (a volume, or a disk
/// whose first NTFS partition is taken), exactly as the run applies them to
/// a Windows volume ([`rules::apply`]); a volume NTFS cannot open is an error.
pub fn apply(profile: &Profile, dev: &mut impl BlockDevice, opts: Options, sink: &mut dyn BackupSink) -> Ran {
    let mut dev = Counting::new(dev);
    let parts = partition::discover(&mut dev).unwrap_or_default();
    let ntfs_part = parts.iter().find(|p| {
        let mut head = [0u8; 11];
        Slice::new(&mut dev, p.offset, p.size).read_at(0, &mut head).is_ok() && &head[3..11] == b"NTFS    "
    });
    let (offset, size) = ntfs_part.map_or((0, dev.size()), |p| (p.offset, p.size));
    let mut vol = Slice::new(&mut dev, offset, size);
    let report = VolumeReport { offset, size, ..Default::default() };
    let applied = match Ntfs::open(&mut vol) {
        Ok(ntfs) => {
            let mut env = Env { profile, opts, sink, log: &mut |_| {} };
            rules::apply(&mut env, &ntfs, &mut vol, report)
        }
        Err(e) => Applied { volume: report, errors: vec![format!("cannot open NTFS: {e}")], backups: Vec::new() },
    };
    Ran { applied, bytes_read: dev.bytes_read, bytes_written: dev.bytes_written }
}
