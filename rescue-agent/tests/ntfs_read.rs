//! The engine's read side on Windows-made volumes (../shared/corpus/ntfs),
//! checked against ntfs-3g's tools (ntfsls, ntfscat), plus dry runs that
//! must not write. Engine-only: no FUSE, no `rescue` binary.

mod common;

use rescue_engine::block::{BlockDevice, MemDisk, Slice};
use rescue_engine::formats::ntfs::{self, Ntfs, NtfsError};
use rescue_engine::formats::partition;
use rescue_engine::rules::backup::NoBackup;
use rescue_engine::rules::profile::Profile;
use rescue_engine::rules::Options;
use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus_disk(name: &str) -> Option<Vec<u8>> {
    let gz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/ntfs").join(format!("{name}.raw.gz"));
    if !gz.exists() {
        return None;
    }
    let out = common::ntfs3g::limits::output(Command::new("gunzip").arg("-c").arg(&gz)).unwrap();
    assert!(out.status.success());
    Some(out.stdout)
}

/// Writes the first partition of `disk` to a temp file for ntfs-3g's tools.
fn partition_file(disk: &mut MemDisk, tag: &str) -> (PathBuf, u64, u64) {
    let p = partition::discover(disk).unwrap().remove(0);
    let path = std::env::temp_dir().join(format!("ntfs-read-{}-{tag}.img", std::process::id()));
    // Sparse: only non-zero 64 KiB chunks are written.
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(p.size).unwrap();
    for (i, c) in disk.data[p.offset as usize..(p.offset + p.size) as usize].chunks(65536).enumerate() {
        if c.iter().any(|&x| x != 0) {
            f.write_all_at(c, i as u64 * 65536).unwrap();
        }
    }
    (path, p.offset, p.size)
}

fn tool(args: &[&str], img: &Path) -> Vec<u8> {
    let out = common::ntfs3g::limits::output(Command::new(args[0]).args(&args[1..]).arg(img)).unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn corpus_listings_and_contents_match_ntfs3g() {
    let mut seen = 0;
    for (disk, dirs) in [("ntfs-lastaccess", &["", "test"][..]), ("ntfs-2m", &[""][..])] {
        let Some(data) = corpus_disk(disk) else { continue };
        seen += 1;
        let mut d = MemDisk::new(data, 512);
        let (img, off, size) = partition_file(&mut d, disk);
        let mut vol = Slice::new(&mut d, off, size);
        let v = Ntfs::open(&mut vol).unwrap();
        for dir in dirs {
            let r = v.lookup(&mut vol, dir).unwrap();
            let dd = v.open_dir(&mut vol, r).unwrap();
            let mut ours: Vec<String> = v
                .list_dir(&mut vol, &dd)
                .unwrap()
                .into_iter()
                .filter(|e| e.namespace != ntfs::filename::DOS)
                .map(|e| e.name)
                .filter(|n| n != ".")
                .collect();
            let listing = String::from_utf8(tool(&["ntfsls", "-a", "-s", "-p", &format!("/{dir}")], &img)).unwrap();
            let mut theirs: Vec<String> = listing.lines().map(String::from).filter(|n| n != "." && n != "..").collect();
            ours.sort();
            theirs.sort();
            assert_eq!(ours, theirs, "{disk} /{dir}");
            for e in v.list_dir(&mut vol, &dd).unwrap() {
                if e.is_dir || e.name.starts_with('$') || e.namespace == ntfs::filename::DOS {
                    continue;
                }
                let f = v.load_file(&mut vol, e.file_ref.record()).unwrap();
                let info = v.info_of(&f).unwrap();
                let content = v.read_content(&mut vol, &f, 1 << 30).unwrap();
                let path = if dir.is_empty() { format!("/{}", e.name) } else { format!("/{dir}/{}", e.name) };
                let cat = common::ntfs3g::limits::output(Command::new("ntfscat").arg(&img).arg(&path)).unwrap();
                assert!(cat.status.success(), "ntfscat {path}");
                assert_eq!(content, cat.stdout, "{disk} {path}");
                assert_eq!(info.size, content.len() as u64);
                assert!(!info.compressed && !info.encrypted && !info.reparse);
                // Case-insensitive lookup through $UpCase.
                let upper = path.to_uppercase();
                assert_eq!(v.lookup(&mut vol, &upper).unwrap().record(), e.file_ref.record());
            }
        }
        let _ = std::fs::remove_file(img);
    }
    assert!(seen > 0, "corpus missing");
}

#[test]
fn dry_runs_and_misses_write_nothing() {
    let Some(data) = corpus_disk("ntfs-lastaccess") else { panic!("corpus missing") };
    let before = data.clone();
    for (rule, expect) in [("test\\*.txt", "would delete"), ("missing\\x.sys", ""), ("test\\nothing*.sys", "")] {
        let p = Profile::parse(&format!("name = \"t\"\n[[delete]]\npath = '{rule}'\n")).unwrap();
        let mut d = MemDisk::new(data.clone(), 512);
        let r = common::apply(&p, &mut d, Options { dry_run: true, ..Default::default() }, &mut NoBackup);
        assert!(d.data == before, "{rule}: a dry run wrote");
        assert!(r.ok(), "{rule}: {:?}", r.errors);
        assert_eq!(r.bytes_written, 0);
        let files = &r.volume.rules[0].files;
        if expect.is_empty() {
            assert!(files.is_empty());
        } else {
            assert_eq!(files.len(), 1);
            assert_eq!(files[0].action.as_str(), expect);
            assert!(files[0].sha256.as_ref().is_some_and(|h| h.len() == 64));
            assert!(files[0].writes.iter().any(|w| w.structure == "index block" || w.structure == "MFT record"));
        }
        assert!(r.bytes_read > 0 && r.bytes_read < 1 << 20, "read {}", r.bytes_read);
    }
}

#[test]
fn bad_geometry_and_truncation_are_typed_errors() {
    let Some(data) = corpus_disk("ntfs-2m") else { panic!("corpus missing") };
    let mut d = MemDisk::new(data, 512);
    let p = partition::discover(&mut d).unwrap().remove(0);
    let vol_bytes = d.data[p.offset as usize..(p.offset + p.size) as usize].to_vec();
    let open = |b: Vec<u8>| {
        let mut m = MemDisk::new(b, 512);
        Ntfs::open(&mut m).map(|_| ())
    };
    assert!(open(vol_bytes.clone()).is_ok());
    // A truncated image: the volume is larger than its device.
    let e = open(vol_bytes[..vol_bytes.len() / 2].to_vec()).unwrap_err();
    assert!(matches!(e, NtfsError::Corrupt { structure: "boot sector", offset: 0x28, .. }), "{e}");
    // Absurd sector and cluster sizes.
    let mut b = vol_bytes.clone();
    b[0x0B..0x0D].copy_from_slice(&8192u16.to_le_bytes());
    assert!(matches!(open(b).unwrap_err(), NtfsError::Corrupt { offset: 0x0B, .. }));
    let mut b = vol_bytes.clone();
    b[0x0D] = 0xF0; // 2^16 sectors per cluster = 32 MiB
    assert!(matches!(open(b).unwrap_err(), NtfsError::Unsupported { .. }));
    let mut b = vol_bytes.clone();
    b[0x40] = 0xF6; // 1 << 10... valid 1 KiB; try 2 KiB records
    b[0x40] = 0xF5;
    assert!(matches!(open(b).unwrap_err(), NtfsError::Unsupported { offset: 0x40, .. }));
    // Not NTFS at all.
    assert!(matches!(open(vec![0u8; 1 << 20]).unwrap_err(), NtfsError::NotNtfs { .. }));
    let _ = d.size();
}
