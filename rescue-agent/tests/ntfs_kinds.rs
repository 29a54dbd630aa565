//! Every kind of file a real Windows volume holds: NTFS-compressed (LZNT1),
//! sparse, WOF/CompactOS, reparse points, hard links kept in extension
//! records, and in-place overwrites. Volumes are made by mkntfs + ntfs-3g
//! (which writes LZNT1 in compressed folders and keeps `$Extend\$Reparse`);
//! what we read is compared with `ntfscat`, what we delete with ntfs-3g
//! deleting the same file, and every volume we wrote is checked by
//! `ntfsfix -n` and a read-write mount.
//!
//! Needs root (FUSE mounts), mkntfs, ntfs-3g, ntfsprogs and attr.

mod common;
use common::ntfs3g::{bytes, copy, make_volume, run, with_mount};
use common::{differential, open, FileDev};
use rescue_engine::block::MemDisk;
use rescue_engine::formats::ntfs::plan::Plan;
use rescue_engine::rules::backup::{BackupItem, BackupSink, NoBackup};
use rescue_engine::rules::profile::Profile;
use rescue_engine::rules::report::FileAction;
use rescue_engine::rules::Options;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

/// The channel-file header the profiles check.
const HEADER: [u8; 8] = [0xAA, 0xAA, 0xAA, 0xAA, 0x01, 0x00, 0x23, 0x01];

/// Backups kept in memory: path -> content.
#[derive(Default)]
struct Kept(BTreeMap<String, Vec<u8>>);
impl BackupSink for Kept {
    fn backup(&mut self, item: &BackupItem<'_>) -> Result<String, String> {
        self.0.insert(item.path.to_string(), item.content.to_vec());
        Ok(item.path.to_string())
    }
}

/// Deterministic test bytes: `kind` 0 compressible text, 1 incompressible, 2 half and half.
fn content(kind: u8, size: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    let mut noise = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    };
    (0..size)
        .map(|i| match kind {
            0 => b"The quick brown fox jumps over the lazy channel file. "[i % 54] ^ (i / 4096 % 3) as u8,
            1 => noise(),
            _ if i % 8192 < 4096 => 0,
            _ => noise(),
        })
        .collect()
}

fn ntfscat(img: &Path, path: &str) -> Vec<u8> {
    bytes(Command::new("ntfscat").arg(img).arg(path))
}

fn profile(text: &str) -> Profile {
    Profile::parse(text).unwrap()
}

/// A volume with a compressed folder `c` (files of many sizes and kinds, made
/// by ntfs-3g's LZNT1 compressor) and a plain folder `s` of sparse files.
fn compressed_and_sparse(dir: &Path) -> (std::path::PathBuf, Vec<(String, Vec<u8>)>) {
    let img = make_volume(dir, "kinds.img", 64, &[], "");
    let sizes = [1usize, 700, 4095, 4096, 4097, 65535, 65536, 65537, 200_000, 1_000_000];
    let mut files = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        for kind in 0..3u8 {
            let mut data = content(kind, size, (i * 3 + kind as usize) as u32 + 1);
            if size >= 8 && kind != 1 {
                data[..8].copy_from_slice(&HEADER);
            }
            files.push((format!("c/f{size:07}_{kind}.sys"), data));
        }
    }
    let mut decoy = content(0, 30_000, 99);
    decoy[..4].copy_from_slice(b"NOPE");
    files.push((String::from("c/C-00000291-decoy.sys"), decoy));
    let mut hit = content(0, 90_000, 98);
    hit[..8].copy_from_slice(&HEADER);
    files.push((String::from("c/C-00000291-00000000-00000032.sys"), hit));
    with_mount(&img, &["compression"], |m| {
        fs::create_dir(m.join("c")).unwrap();
        // FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_COMPRESSED: new files in it are compressed.
        run(Command::new("setfattr").args(["-h", "-n", "system.ntfs_attrib_be", "-v", "0x00000810"]).arg(m.join("c")));
        for (p, d) in &files {
            fs::write(m.join(p), d).unwrap();
        }
        // Sparse files: holes by seeking past the end, data in between.
        fs::create_dir(m.join("s")).unwrap();
        run(Command::new("sh").arg("-ec").current_dir(m.join("s")).arg(
            "truncate -s 3M hole_all.bin; \
             truncate -s 5M mid.bin; dd if=/dev/urandom of=mid.bin bs=4096 seek=300 count=7 conv=notrunc status=none; \
             printf 'AAAA' > tail.bin; truncate -s 2M tail.bin; printf 'ZZ' >> tail.bin",
        ));
    });
    (img, files)
}

#[test]
fn compressed_and_sparse_files_read_as_ntfscat_does() {
    let t = tempfile::tempdir().unwrap();
    let (img, files) = compressed_and_sparse(t.path());
    let mut dev = MemDisk::new(fs::read(&img).unwrap(), 512);
    let v = open(&mut dev);
    let mut compressed = 0;
    for (p, data) in &files {
        let r = v.lookup(&mut dev, p).unwrap();
        let f = v.load_file(&mut dev, r.record()).unwrap();
        let info = v.info_of(&f).unwrap();
        compressed += info.compressed as usize;
        let got = v.read_content(&mut dev, &f, u64::MAX).unwrap();
        assert!(&got == data, "{p}: our decompression differs from the bytes written");
        assert!(got == ntfscat(&img, p), "{p}: differs from ntfscat");
        let head = v.read_head(&mut dev, &f, 8).unwrap();
        assert_eq!(head, data[..data.len().min(8)], "{p}: header");
    }
    assert!(compressed >= 25, "ntfs-3g did not compress the folder ({compressed} compressed files)");
    for p in ["s/hole_all.bin", "s/mid.bin", "s/tail.bin"] {
        let r = v.lookup(&mut dev, p).unwrap();
        let f = v.load_file(&mut dev, r.record()).unwrap();
        assert!(v.info_of(&f).unwrap().sparse, "{p} is not sparse");
        assert!(v.read_content(&mut dev, &f, u64::MAX).unwrap() == ntfscat(&img, p), "{p}: differs from ntfscat");
    }
}

#[test]
fn compressed_and_sparse_deletes_match_ntfs3g() {
    let t = tempfile::tempdir().unwrap();
    let (img, _) = compressed_and_sparse(t.path());
    for name in ["f0000700_0.sys", "f0065537_0.sys", "f0065536_1.sys", "f0200000_2.sys", "f1000000_0.sys"] {
        differential(t.path(), &img, "/c", name);
    }
    for name in ["hole_all.bin", "mid.bin", "tail.bin"] {
        differential(t.path(), &img, "/s", name);
    }
}

#[test]
fn header_checks_and_backups_see_decompressed_bytes() {
    let t = tempfile::tempdir().unwrap();
    let (img, files) = compressed_and_sparse(t.path());
    let theirs = copy(&img, &t.path().join("theirs.img"));
    let mut dev = FileDev::open(&img);
    let p = profile(
        "name = \"t\"\n[[delete]]\npath = 'c\\C-00000291*.sys'\nheader = \"AAAAAAAA01002301\"\nbackup = true\n",
    );
    let mut kept = Kept::default();
    let r = common::apply(&p, &mut dev, Options::default(), &mut kept);
    drop(dev);
    assert!(r.ok() && r.files_deleted() == 1, "{r:#?}");
    let rule = &r.volume.rules[0];
    let decoy = rule.files.iter().find(|f| f.path.ends_with("decoy.sys")).unwrap();
    assert!(decoy.action != FileAction::Deleted && !decoy.header_match, "{decoy:#?}");
    let hit = "c/C-00000291-00000000-00000032.sys";
    let (_, data) = files.iter().find(|(p, _)| p == hit).unwrap();
    let backup = kept.0.values().next().expect("one backup");
    assert!(backup == data && *backup == ntfscat(&theirs, hit), "backup is not the decompressed content");
    let ls = run(Command::new("ntfsls").args(["-a", "-p", "/c"]).arg(&img));
    assert!(ls.contains("C-00000291-decoy.sys") && !ls.contains("00000032.sys"), "{ls}");
    common::ntfs3g::check_volume(&img);
}

#[test]
fn corrupt_compressed_data_is_an_error_and_nothing_is_written() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(t.path(), "cc.img", 16, &[], "");
    let mut data = content(0, 100_000, 5);
    data[..8].copy_from_slice(&HEADER);
    with_mount(&img, &["compression"], |m| {
        fs::create_dir(m.join("c")).unwrap();
        run(Command::new("setfattr").args(["-h", "-n", "system.ntfs_attrib_be", "-v", "0x00000810"]).arg(m.join("c")));
        fs::write(m.join("c/C-00000291-x.sys"), &data).unwrap();
    });
    let mut dev = MemDisk::new(fs::read(&img).unwrap(), 512);
    let v = open(&mut dev);
    let r = v.lookup(&mut dev, "c/C-00000291-x.sys").unwrap();
    let f = v.load_file(&mut dev, r.record()).unwrap();
    let Some(rescue_engine::formats::ntfs::file::Stream::NonResident { runs, .. }) = f.stream(0x80, &[]).unwrap()
    else {
        panic!("expected non-resident data")
    };
    let first = runs[0].lcn.unwrap() * v.cluster();
    // A back reference with a distance before the chunk start, at the very first token.
    dev.data[first as usize + 2] = 0x01;
    dev.data[first as usize + 3] = 0xFF;
    dev.data[first as usize + 4] = 0xFF;
    let before = dev.data.clone();
    let err = v.read_content(&mut dev, &f, u64::MAX).unwrap_err().to_string();
    assert!(err.contains("LZNT1"), "{err}");
    let p = profile(
        "name = \"t\"\n[[delete]]\npath = 'c\\C-00000291*.sys'\nheader = \"AAAAAAAA01002301\"\nbackup = false\n",
    );
    let r = common::apply(&p, &mut dev, Options::default(), &mut NoBackup);
    assert!(!r.ok() && r.files_deleted() == 0, "{r:#?}");
    assert!(r.errors.iter().any(|e| e.contains("LZNT1")), "{:?}", r.errors);
    assert!(dev.data == before, "a corrupt compressed file led to a write");
}

/// Every key of `$Extend\$Reparse:$R`, from the raw root and index blocks
/// `ntfscat` reads (blocks its `$BITMAP` marks in use, fixups applied):
/// (reparse tag, file reference) pairs.
fn reparse_keys(img: &Path) -> std::collections::BTreeSet<(u32, u64)> {
    // An attribute ntfscat says is absent (a small index has no allocation)
    // is empty; any other failure fails the test.
    let cat = |a: &str| {
        let o = common::ntfs3g::limits::output(
            Command::new("ntfscat").args(["-a", a, "-n", "$R"]).arg(img).arg("/$Extend/$Reparse"),
        )
        .unwrap();
        let said = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() || said.contains("Cannot find attribute"), "ntfscat -a {a} failed: {said}");
        o.stdout
    };
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let mut keys = std::collections::BTreeSet::new();
    let mut entries = |b: &[u8], start: usize, end: usize| {
        let mut o = start;
        while o + 16 <= end {
            let (len, klen, flags) = (u16_at(b, o + 8), u16_at(b, o + 10), u16_at(b, o + 12));
            if flags & 2 != 0 || len == 0 {
                break;
            }
            assert_eq!(klen, 12, "$R key length");
            let fref = u64::from_le_bytes(b[o + 20..o + 28].try_into().unwrap());
            keys.insert((u32_at(b, o + 16), fref));
            o += len;
        }
    };
    let root = cat("0x90");
    let hdr = 16; // index header after the 16-byte root header
    entries(&root, hdr + u32_at(&root, hdr) as usize, hdr + u32_at(&root, hdr + 4) as usize);
    let (alloc, bitmap) = (cat("0xa0"), cat("0xb0"));
    for (i, block) in alloc.chunks(4096).enumerate() {
        if bitmap.get(i / 8).is_none_or(|b| b >> (i % 8) & 1 == 0) {
            continue;
        }
        let mut b = block.to_vec();
        assert_eq!(&b[..4], b"INDX");
        let (usa, n) = (u16_at(&b, 4), u16_at(&b, 6));
        for k in 1..n {
            let (at, fix) = (k * 512 - 2, usa + 2 * k);
            b[at] = b[fix];
            b[at + 1] = b[fix + 1];
        }
        entries(&b, 0x18 + u32_at(&b, 0x18) as usize, 0x18 + u32_at(&b, 0x1C) as usize);
    }
    keys
}

/// libyal's fsntfsinfo must read the whole volume, and see `record` as free.
fn fsntfsinfo_sees_free(img: &Path, record: u64) {
    let out = run(Command::new("fsntfsinfo").args(["-E", &record.to_string()]).arg(img));
    assert!(out.contains("Is allocated\t\t\t: false"), "fsntfsinfo: record {record} still allocated:\n{out}");
    run(Command::new("fsntfsinfo").args(["-F", "\\$Extend\\$Reparse"]).arg(img));
    run(Command::new("fsntfsinfo").arg("-H").arg(img));
}

/// Reparse data for `setfattr`: tag, length, reserved, then `data`.
fn reparse_hex(tag: u32, data: &[u8]) -> String {
    let mut v = tag.to_le_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u16).to_le_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(data);
    format!("0x{}", v.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Makes `n` reparse-point files `r/pNNNN.sys` (third-party tags, as
/// OneDrive placeholders and other filters leave them) with ntfs-3g, which
/// adds each to `$Reparse:$R`; returns the image.
fn reparse_volume(dir: &Path, n: usize) -> std::path::PathBuf {
    let img = make_volume(dir, "rp.img", 32, &[], "");
    with_mount(&img, &[], |m| {
        fs::create_dir(m.join("r")).unwrap();
        for i in 0..n {
            let p = m.join(format!("r/p{i:04}.sys"));
            let mut data = content(1, 3000 + i * 7, i as u32 + 7);
            data[..8].copy_from_slice(&HEADER);
            fs::write(&p, data).unwrap();
            // Cloud-files tag (0x9000x01A) with a few bytes of its own data.
            let tag = 0x9000_001A | ((i as u32 % 16) << 12);
            run(Command::new("setfattr")
                .args(["-n", "system.ntfs_reparse_data", "-v", &reparse_hex(tag, &(i as u32).to_le_bytes())])
                .arg(&p));
        }
    });
    img
}

/// Deletes `r/name` with the engine (through `rules::apply`) and with ntfs-3g on
/// copies of `img`; their `$Reparse` indexes, bitmaps and listings must agree.
fn reparse_differential(dir: &Path, img: &Path, name: &str) {
    // `differential` leaves both copies: ours.img and theirs.img.
    let plan = differential(dir, img, "/r", name);
    assert!(plan.writes.iter().any(|w| w.reason.contains("$Reparse")), "{plan}");
    let (ours, theirs) = (dir.join("ours.img"), dir.join("theirs.img"));
    let (a, b) = (reparse_keys(&ours), reparse_keys(&theirs));
    assert!(a == b, "$Reparse keys differ from ntfs-3g's after deleting {name}");
    assert_eq!(a.len(), reparse_keys(img).len() - 1, "one $Reparse key goes");
    let rec = plan.writes.iter().find(|w| w.reason.contains("free the file's MFT record")).unwrap();
    let n: u64 = rec.reason.split_whitespace().nth(5).unwrap().parse().unwrap();
    fsntfsinfo_sees_free(&ours, n);
}

#[test]
fn reparse_points_leave_the_reparse_index() {
    let t = tempfile::tempdir().unwrap();
    // A root-only $R: the first, a middle and the last entry.
    let img = reparse_volume(t.path(), 6);
    for name in ["p0000.sys", "p0003.sys", "p0005.sys"] {
        reparse_differential(t.path(), &img, name);
    }
    // 400 entries: $R has index blocks, entries in the leaves and the root.
    let img = reparse_volume(t.path(), 400);
    assert!(
        run(Command::new("ntfsinfo").args(["-v", "-F", "/$Extend/$Reparse"]).arg(&img)).contains("INDEX_ALLOCATION")
    );
    assert_eq!(reparse_keys(&img).len(), 400);
    for name in ["p0000.sys", "p0123.sys", "p0399.sys"] {
        reparse_differential(t.path(), &img, name);
    }
}

#[test]
fn reparse_delete_interrupted_after_every_write() {
    let t = tempfile::tempdir().unwrap();
    let img = reparse_volume(t.path(), 300);
    let mut dev = FileDev::open(&img);
    let full = common::plan_for(&mut dev, "r", "p0150.sys");
    drop(dev);
    let before = reparse_keys(&img);
    let done = copy(&img, &t.path().join("done.img"));
    rescue_engine::formats::ntfs::plan::execute(&mut FileDev::open(&done), &full, None).unwrap();
    let after = reparse_keys(&done);
    assert_eq!(before.len(), after.len() + 1, "{full}");
    for k in 0..=full.len() {
        let part = copy(&img, &t.path().join(format!("k{k}.img")));
        rescue_engine::formats::ntfs::plan::execute(&mut FileDev::open(&part), &full, Some(k)).unwrap();
        common::ntfs3g::check_volume(&part);
        let now = reparse_keys(&part);
        assert!(now.is_subset(&before) && after.is_subset(&now), "k={k}: a $Reparse entry was lost or invented");
        fs::remove_file(part).unwrap();
    }
}

/// A file with so many long hard-link names that ntfs-3g moves some of them
/// into extension records (listed by an attribute list).
fn many_links(dir: &Path) -> std::path::PathBuf {
    let long = "L".repeat(120);
    make_volume(
        dir,
        "links.img",
        16,
        &[],
        &format!("mkdir h && printf 'AAAA' > h/base.sys && i=0; while [ $i -lt 14 ]; do ln h/base.sys h/{long}$(printf %02d $i).sys; i=$((i+1)); done"),
    )
}

/// Names of `h/base.sys` by the record holding them: (record index in the file, name).
fn names_by_record(img: &Path) -> Vec<(usize, String)> {
    let mut dev = FileDev::open(img);
    let v = open(&mut dev);
    let r = v.lookup(&mut dev, "h/base.sys").unwrap();
    let f = v.load_file(&mut dev, r.record()).unwrap();
    f.names().unwrap().into_iter().map(|(ri, _, n)| (ri, n.name_string())).collect()
}

#[test]
fn hard_link_names_in_extension_records() {
    let t = tempfile::tempdir().unwrap();
    let img = many_links(t.path());
    let names = names_by_record(&img);
    let in_ext: Vec<&(usize, String)> = names.iter().filter(|(ri, _)| *ri > 0).collect();
    assert!(in_ext.len() >= 4, "ntfs-3g kept the names in the base record: {names:?}");
    let in_base = names.iter().find(|(ri, _)| *ri == 0).unwrap();
    // A name in an extension record, and one in the base record (its attribute list entry goes too).
    for (_, name) in [in_ext[0], in_base] {
        let plan = differential(t.path(), &img, "/h", name);
        assert!(plan.notes.iter().any(|n| n.contains("other name")), "{plan}");
    }
    // Interrupted after every write: the volume passes ntfsfix and mounts, and
    // the file reads under every name its parent still lists.
    let mut dev = FileDev::open(&img);
    let plan = common::plan_for(&mut dev, "h", &in_ext[0].1);
    drop(dev);
    assert!(plan.writes.iter().any(|w| w.structure == "attribute list"), "{plan}");
    for k in 0..=plan.len() {
        let part = copy(&img, &t.path().join(format!("k{k}.img")));
        rescue_engine::formats::ntfs::plan::execute(&mut FileDev::open(&part), &plan, Some(k)).unwrap();
        common::ntfs3g::check_volume(&part);
        with_mount(&part, &[], |m| {
            for e in fs::read_dir(m.join("h")).unwrap() {
                assert_eq!(fs::read(e.unwrap().path()).unwrap(), b"AAAA", "k={k}");
            }
        });
        fs::remove_file(part).unwrap();
    }
    // Every name of one extension record, one after the other: the emptied record is freed.
    let ri = in_ext[0].0;
    let mut cur = copy(&img, &t.path().join("cur.img"));
    let mut freed = false;
    for (_, name) in names.iter().filter(|(r, _)| *r == ri) {
        let plan = differential(t.path(), &cur, "/h", name);
        freed |= plan.writes.iter().any(|w| w.reason.contains("free the emptied extension record"));
        cur = copy(&t.path().join("ours.img"), &t.path().join("cur.img"));
    }
    assert!(freed, "the emptied extension record was not freed");
    // The file still reads, under every name left.
    let left = names_by_record(&cur);
    assert_eq!(left.len(), names.len() - names.iter().filter(|(r, _)| *r == ri).count());
    with_mount(&cur, &[], |m| {
        for (_, n) in &left {
            assert_eq!(fs::read(m.join("h").join(n)).unwrap(), b"AAAA");
        }
    });
}

/// Plans an overwrite of `path` in `img` with the engine.
fn overwrite_plan(
    img: &Path,
    path: &str,
    edits: &[(u64, &[u8])],
) -> Result<rescue_engine::formats::ntfs::plan::Plan, rescue_engine::formats::ntfs::NtfsError> {
    let mut dev = FileDev::open(img);
    let v = open(&mut dev);
    let gate = rescue_engine::formats::ntfs::gate::clear_for_writing(&v, &mut dev, Default::default()).unwrap();
    let r = v.lookup(&mut dev, path).unwrap();
    rescue_engine::formats::ntfs::overwrite::plan_overwrite(&v, &mut dev, &gate, r, edits)
}

#[test]
fn in_place_overwrite_resident_and_fragmented() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(
        t.path(),
        "ov.img",
        8,
        &[],
        "head -c 300 /dev/urandom > r.bin; i=0; while [ $i -lt 30 ]; do \
         head -c 50000 /dev/urandom >> big.bin; head -c 20000 /dev/urandom > g$i; i=$((i+1)); done",
    );
    let bitmap = |img: &Path| ntfscat(img, "$Bitmap");
    let (old_big, old_r) = (ntfscat(&img, "big.bin"), ntfscat(&img, "r.bin"));
    let new1 = content(1, 50_000, 77);
    let edits: Vec<(u64, &[u8])> =
        vec![(0, &new1[..4096]), (123_457, &new1[..30_000]), (700_001, &new1[..50_000]), (1_499_990, &new1[..10])];
    let plan = overwrite_plan(&img, "big.bin", &edits).unwrap();
    assert!(plan.len() > edits.len(), "big.bin is not fragmented where written: {plan}");
    let mut expect = old_big.clone();
    for (p, b) in &edits {
        expect[*p as usize..*p as usize + b.len()].copy_from_slice(b);
    }
    for k in 0..=plan.len() {
        let part = copy(&img, &t.path().join(format!("o{k}.img")));
        rescue_engine::formats::ntfs::plan::execute(&mut FileDev::open(&part), &plan, Some(k)).unwrap();
        assert!(bitmap(&part) == bitmap(&img), "k={k}: clusters changed");
        common::ntfs3g::check_volume(&part);
        let now = ntfscat(&part, "big.bin");
        assert_eq!(now.len(), old_big.len());
        // Every byte is either old or new: the file never holds anything else.
        assert!(now.iter().zip(&old_big).zip(&expect).all(|((n, o), e)| n == o || n == e), "k={k}");
        if k == plan.len() {
            assert!(now == expect, "the overwrite did not land");
        }
        fs::remove_file(part).unwrap();
    }
    // Resident: one record write.
    let plan = overwrite_plan(&img, "r.bin", &[(10, b"0123456789")]).unwrap();
    assert_eq!(plan.len(), 1, "{plan}");
    let part = copy(&img, &t.path().join("r.img"));
    rescue_engine::formats::ntfs::plan::execute(&mut FileDev::open(&part), &plan, None).unwrap();
    common::ntfs3g::check_volume(&part);
    let mut expect = old_r.clone();
    expect[10..20].copy_from_slice(b"0123456789");
    assert_eq!(ntfscat(&part, "r.bin"), expect);
    // Beyond the end: refused (the size never changes).
    let e = overwrite_plan(&img, "r.bin", &[(295, b"0123456789")]).unwrap_err();
    assert!(e.to_string().contains("beyond the end"), "{e}");
}

#[test]
fn overwrite_refuses_what_it_cannot_do_in_place() {
    let t = tempfile::tempdir().unwrap();
    let (img, _) = compressed_and_sparse(t.path());
    let before = fs::read(&img).unwrap();
    for (path, why) in [("c/f0200000_0.sys", "compressed"), ("s/mid.bin", "sparse")] {
        let e = overwrite_plan(&img, path, &[(0, b"x")]).unwrap_err().to_string();
        assert!(e.contains(why), "{path}: {e}");
    }
    let img2 = reparse_volume(t.path(), 1);
    let e = overwrite_plan(&img2, "r/p0000.sys", &[(0, b"x")]).unwrap_err().to_string();
    assert!(e.contains("reparse"), "{e}");
    assert!(fs::read(&img).unwrap() == before);
}

/// A directory of names of random lengths (7 to 244 characters), made in
/// random order (so nodes are anywhere from half to completely full), so
/// that some interior keys are much shorter than both of their neighbours.
fn ragged_directory(dir: &Path, n: usize, name_of_dir: &str) -> std::path::PathBuf {
    let py = format!(
        "import random; r = random.Random(12345); o = list(range({n})); r.shuffle(o); \
         [open('p%05d' % i + 'x' * r.randint(1, 238), 'w').close() for i in o]"
    );
    make_volume(dir, "ragged.img", 64, &[], &format!("mkdir {name_of_dir} && cd {name_of_dir} && python3 -c \"{py}\""))
}

/// Interior keys of the index blocks of `parent` (the root left out), by
/// the free bytes of their block plus their own size, smallest first; or
/// with `root`, the root's keys by their size.
fn crowded_interior_keys(img: &Path, parent: &str, root: bool) -> Vec<(usize, String)> {
    let mut dev = FileDev::open(img);
    let v = open(&mut dev);
    let r = v.lookup(&mut dev, parent).unwrap();
    let d = v.open_dir(&mut dev, r).unwrap();
    let mut out = Vec::new();
    let mut todo: Vec<u64> = d.root.entries().unwrap().iter().filter_map(|e| e.sub).collect();
    if root {
        let keys = d.root.entries().unwrap().into_iter().filter(|e| e.sub.is_some());
        return keys.filter_map(|e| e.key.map(|k| (e.len, k.name_string()))).collect();
    }
    while let Some(vcn) = todo.pop() {
        let b = v.read_block(&mut dev, &d, vcn).unwrap();
        let free = b.allocated() - b.index_length();
        for x in b.entries().unwrap() {
            if let Some(s) = x.sub {
                todo.push(s);
                if let Some(k) = &x.key {
                    out.push((free + x.len, k.name_string()));
                }
            }
        }
    }
    out.sort();
    out
}

/// The listing of `parent` as ntfs-3g reads it through the index, names only, sorted.
fn names(img: &Path, parent: &str) -> Vec<String> {
    let mut v: Vec<String> = run(Command::new("ntfsls").args(["-a", "-p", parent]).arg(img))
        .lines()
        .filter(|l| *l != "." && *l != "..")
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// Gives one of the interior keys `candidates` of `d` a 250-character
/// successor and predecessor (made by ntfs-3g), so that neither fits where
/// the key was; returns the first key whose delete then needs a split, its
/// plan, and the volume.
fn force_split(dir: &Path, img: &Path, candidates: Vec<(usize, String)>) -> (String, Plan, std::path::PathBuf) {
    for (_, k) in candidates.into_iter().take(12) {
        let trial = copy(img, &dir.join("trial.img"));
        let succ = format!("{k}{}", "y".repeat(250 - k.len()));
        let pred = format!("{}w{}", &k[..k.len() - 1], "z".repeat(250 - k.len()));
        with_mount(&trial, &[], |m| {
            fs::write(m.join("d").join(&succ), b"s").unwrap();
            fs::write(m.join("d").join(&pred), b"p").unwrap();
        });
        let mut dev = FileDev::open(&trial);
        let plan = common::plan_for(&mut dev, "d", &k);
        if plan.writes.iter().any(|w| w.reason.contains("split") || w.reason.contains("root is full")) {
            return (k, plan, copy(&trial, &dir.join("split.img")));
        }
    }
    panic!("no interior key could be made to need a split");
}

/// Runs a split plan stopped after every write: ntfsfix and a mount pass
/// and no other name is lost; at the end the listing is exactly the old one
/// without `k`, the engine reads the tree back in order and fsntfsinfo
/// walks it.
fn check_split(dir: &Path, img: &Path, k: &str, plan: &Plan) {
    let before = names(img, "/d");
    let expect: Vec<String> = before.iter().filter(|n| *n != k).cloned().collect();
    for i in 0..=plan.len() {
        let part = copy(img, &dir.join(format!("s{i}.img")));
        rescue_engine::formats::ntfs::plan::execute(&mut FileDev::open(&part), plan, Some(i)).unwrap();
        common::ntfs3g::check_volume(&part);
        let now = names(&part, "/d");
        assert!(expect.iter().all(|n| now.contains(n)), "i={i}: a name was lost");
        if i == plan.len() {
            assert_eq!(now, expect, "after deleting {k}");
            let mut dev = FileDev::open(&part);
            let v = open(&mut dev);
            let r = v.lookup(&mut dev, "d").unwrap();
            let d = v.open_dir(&mut dev, r).unwrap();
            let ours: Vec<String> = v.list_dir(&mut dev, &d).unwrap().into_iter().map(|e| e.name).collect();
            let mut sorted = ours.clone();
            sorted.sort_by_key(|a| a.to_uppercase());
            assert_eq!(ours, sorted, "the tree is out of order");
            assert_eq!(ours.len(), expect.len());
            run(Command::new("fsntfsinfo").arg("-H").arg(&part));
        }
        fs::remove_file(part).unwrap();
    }
}

#[test]
fn full_index_block_splits() {
    let t = tempfile::tempdir().unwrap();
    let img = ragged_directory(t.path(), 3000, "d");
    let (k, plan, img) = force_split(t.path(), &img, crowded_interior_keys(&img, "d", false));
    assert!(plan.writes.iter().any(|w| w.reason.contains("split a full index block")), "{plan}");
    check_split(t.path(), &img, &k, &plan);
}

#[test]
fn full_index_root_moves_into_a_new_block() {
    let t = tempfile::tempdir().unwrap();
    let img = ragged_directory(t.path(), 30, "d");
    let (k, plan, img) = force_split(t.path(), &img, crowded_interior_keys(&img, "d", true));
    assert!(plan.writes.iter().any(|w| w.reason.contains("root is full")), "{plan}");
    check_split(t.path(), &img, &k, &plan);
}

/// The WOF algorithms: (name for `scripts/wof-blob`, `FILE_PROVIDER_COMPRESSION_*` code).
const WOF: [(&str, u32); 4] = [("xpress4k", 0), ("lzx", 1), ("xpress8k", 2), ("xpress16k", 3)];

/// The `WofCompressedData` stream wimlib makes for `data`, or `None` when
/// wimlib stored it uncompressed (incompressible or tiny data).
fn wof_blob(dir: &Path, algorithm: &str, data: &[u8]) -> Option<Vec<u8>> {
    let (input, output) = (dir.join("wof-in"), dir.join("wof-out"));
    fs::write(&input, data).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/wof-blob");
    let out =
        common::ntfs3g::limits::output(Command::new(script).args(["--algorithm", algorithm]).arg(&input).arg(&output))
            .unwrap();
    match out.status.code() {
        Some(0) => Some(fs::read(&output).unwrap()),
        Some(3) => None,
        _ => panic!("wof-blob failed: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// Makes `rel` a WOF file holding `data` (compressed by wimlib), as Windows
/// lays one out: the blob in the `WofCompressedData` stream, the unnamed
/// `$DATA` only carrying the size, and the WOF reparse point (which ntfs-3g
/// adds to `$Reparse`). Run inside a mount with `streams_interface=windows`.
fn make_wof(m: &Path, rel: &str, data: &[u8], blob: &[u8], code: u32) {
    let p = m.join(rel);
    fs::write(&p, b"").unwrap();
    fs::write(m.join(format!("{rel}:WofCompressedData")), blob).unwrap();
    fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(data.len() as u64).unwrap();
    let mut rp = 1u32.to_le_bytes().to_vec(); // WOF_EXTERNAL_INFO: version 1, provider 2 (file)
    for v in [2u32, 1, code] {
        rp.extend_from_slice(&v.to_le_bytes()); // FILE_PROVIDER_EXTERNAL_INFO_V1: version 1, algorithm
    }
    run(Command::new("setfattr")
        .args(["-n", "system.ntfs_reparse_data", "-v", &reparse_hex(0x8000_0017, &rp)])
        .arg(&p));
}

/// A volume with WOF files of every algorithm in `w`: (path, contents).
fn wof_volume(dir: &Path) -> (std::path::PathBuf, Vec<(String, Vec<u8>)>) {
    let img = make_volume(dir, "wof.img", 32, &[], "mkdir w");
    let mut files = Vec::new();
    for (name, code) in WOF {
        for (i, size) in [5000usize, 4096, 40_000, 100_000, 1_000_000].into_iter().enumerate() {
            let mut data = content(if i == 4 { 2 } else { 0 }, size, i as u32 + code * 10);
            data[..8].copy_from_slice(&HEADER);
            if let Some(blob) = wof_blob(dir, name, &data) {
                files.push((format!("w/C-00000291-{name}-{size}.sys"), data, blob, code));
            }
        }
    }
    let mut decoy = content(0, 30_000, 3);
    decoy[..4].copy_from_slice(b"NOPE");
    let blob = wof_blob(dir, "lzx", &decoy).unwrap();
    files.push((String::from("w/C-00000291-decoy.sys"), decoy, blob, 1));
    with_mount(&img, &["streams_interface=windows"], |m| {
        for (rel, data, blob, code) in &files {
            make_wof(m, rel, data, blob, *code);
        }
    });
    (img, files.into_iter().map(|(p, d, _, _)| (p, d)).collect())
}

#[test]
fn wof_files_read_as_wimlib_wrote_them() {
    // wimlib compressed each file (scripts/wof-blob): our decompression must give back its input.
    // (Debian's fsntfsmount, libyal's WOF reader, is built without FUSE, so it cannot serve as a second oracle.)
    let t = tempfile::tempdir().unwrap();
    let (img, files) = wof_volume(t.path());
    assert!(files.len() >= 16, "wimlib compressed too few test files: {}", files.len());
    let mut dev = MemDisk::new(fs::read(&img).unwrap(), 512);
    let v = open(&mut dev);
    for (p, data) in &files {
        let r = v.lookup(&mut dev, p).unwrap();
        let f = v.load_file(&mut dev, r.record()).unwrap();
        assert!(v.info_of(&f).unwrap().reparse, "{p}: not a reparse point");
        assert_eq!(v.info_of(&f).unwrap().size, data.len() as u64, "{p}: size");
        assert!(v.read_content(&mut dev, &f, u64::MAX).unwrap() == *data, "{p}: decompressed bytes differ");
    }
}

#[test]
fn wof_files_checked_backed_up_and_deleted_like_ntfs3g() {
    let t = tempfile::tempdir().unwrap();
    let (img, files) = wof_volume(t.path());
    // Deletes match ntfs-3g's, $Reparse included.
    for (p, _) in files.iter().step_by(5) {
        let name = p.trim_start_matches("w/");
        let plan = differential(t.path(), &img, "/w", name);
        assert!(plan.writes.iter().any(|w| w.reason.contains("$Reparse")), "{plan}");
        let (ours, theirs) = (t.path().join("ours.img"), t.path().join("theirs.img"));
        assert!(reparse_keys(&ours) == reparse_keys(&theirs), "{p}: $Reparse differs from ntfs-3g's");
    }
    // The profile's header check sees decompressed bytes; backups are the contents.
    let mut dev = FileDev::open(&img);
    let prof = profile("name = \"t\"\n[[delete]]\npath = 'w\\C-00000291*.sys'\nheader = \"AAAAAAAA01002301\"\n");
    let mut kept = Kept::default();
    let r = common::apply(&prof, &mut dev, Options::default(), &mut kept);
    drop(dev);
    assert!(r.ok() && r.files_deleted() == files.len() - 1, "{r:#?}");
    for (p, data) in &files {
        if p.ends_with("decoy.sys") {
            continue;
        }
        let key = p.replace('/', "\\");
        assert!(kept.0.get(&key).is_some_and(|b| b == data), "{p}: backup is not the file's contents");
    }
    assert_eq!(reparse_keys(&img).len(), 1, "only the decoy keeps its $Reparse entry");
    common::ntfs3g::check_volume(&img);
    run(Command::new("fsntfsinfo").arg("-H").arg(&img));
}

#[test]
fn corrupt_wof_data_is_an_error_and_nothing_is_written() {
    let t = tempfile::tempdir().unwrap();
    let (img, files) = wof_volume(t.path());
    let mut dev = MemDisk::new(fs::read(&img).unwrap(), 512);
    let v = open(&mut dev);
    let (p, _) = files.iter().find(|(p, _)| p.contains("lzx-100000")).unwrap();
    let r = v.lookup(&mut dev, p).unwrap();
    let f = v.load_file(&mut dev, r.record()).unwrap();
    let name: Vec<u16> = "WofCompressedData".encode_utf16().collect();
    let Some(rescue_engine::formats::ntfs::file::Stream::NonResident { runs, .. }) = f.stream(0x80, &name).unwrap()
    else {
        panic!("expected a non-resident WofCompressedData")
    };
    // Scramble the first chunk's Huffman table (after the 4-byte chunk table entries).
    let at = (runs[0].lcn.unwrap() * v.cluster()) as usize + 16;
    for b in &mut dev.data[at..at + 64] {
        *b = 0xFF;
    }
    let before = dev.data.clone();
    let err = v.read_content(&mut dev, &f, u64::MAX).unwrap_err().to_string();
    assert!(err.contains("WofCompressedData"), "{err}");
    let prof = profile(
        "name = \"t\"\n[[delete]]\npath = 'w\\C-00000291-lzx*.sys'\nheader = \"AAAAAAAA01002301\"\nbackup = false\n",
    );
    let r = common::apply(&prof, &mut dev, Options::default(), &mut NoBackup);
    assert!(!r.ok() && r.errors.iter().any(|e| e.contains("WofCompressedData")), "{r:#?}");
    let dv = r.volume.rules[0].files.iter().find(|f| f.path.replace('\\', "/") == *p).unwrap();
    assert_eq!(dv.action, FileAction::Failed);
    // The corrupt file led to no write of its own (only the other lzx
    // files' deletes changed the disk): ntfs-3g still lists it.
    drop(before);
    let after = t.path().join("after.img");
    fs::write(&after, &dev.data).unwrap();
    let (dir, name) = p.rsplit_once('/').unwrap();
    let listed = common::ntfs3g::run(Command::new("ntfsls").arg("-p").arg(format!("/{dir}")).arg(&after));
    assert!(listed.lines().any(|l| l == name), "the corrupt WOF file was deleted:\n{listed}");
}
