//! The NTFS engine checked against volumes we did not write and tools we did
//! not write: volumes made at test time by mkntfs + ntfs-3g (FUSE), the
//! Windows-made corpus volumes in ../shared/corpus/ntfs, and ntfs-3g doing
//! the same deletion as a differential oracle (`$Bitmap`, the `$MFT` bitmap,
//! `ntfsls -a` of the parent), `ntfsfix -n` and read-write mounts.
//!
//! Needs root (FUSE mounts), mkntfs, ntfs-3g, ntfsprogs and attr.

use rescue_engine::block::{BlockDevice, IoError, MemDisk, Slice};
use rescue_engine::formats::ntfs::delete::plan_delete;
use rescue_engine::formats::ntfs::fs::Directory;
use rescue_engine::formats::ntfs::gate::clear_for_writing;
use rescue_engine::formats::ntfs::plan::{self};
use rescue_engine::formats::ntfs::{self, NtfsError};
use rescue_engine::rules::backup::NoBackup;
use rescue_engine::rules::profile::{Profile, UncleanJournal};
use rescue_engine::rules::report::FileAction;
use rescue_engine::rules::Options;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::ntfs3g::{bytes, check_volume, copy, make_volume, run, with_mount};
use common::{differential, observe, open, plan_for, utf16, FileDev};

/// Names of the keys in the root node and in the first level of index blocks of `parent`.
fn tree_keys(dev: &mut impl BlockDevice, parent: &str) -> (Vec<String>, Vec<Vec<String>>, Vec<Vec<String>>) {
    let v = open(dev);
    let r = v.lookup(dev, parent).unwrap();
    let d: Directory = v.open_dir(dev, r).unwrap();
    let keys = |es: &[rescue_engine::formats::ntfs::index::Entry]| {
        es.iter().filter_map(|e| e.key.as_ref().map(|k| k.name_string())).collect::<Vec<_>>()
    };
    let root = d.root.entries().unwrap();
    let mut level1 = Vec::new();
    let mut level2 = Vec::new();
    for e in &root {
        if let Some(vcn) = e.sub {
            let b = v.read_block(dev, &d, vcn).unwrap();
            let es = b.entries().unwrap();
            level1.push(keys(&es));
            for e2 in &es {
                if let Some(v2) = e2.sub {
                    level2.push(keys(&v.read_block(dev, &d, v2).unwrap().entries().unwrap()));
                }
            }
        }
    }
    (keys(&root), level1, level2)
}

/// Every key of `parent`, split into interior keys (entries with a sub-node) and leaf keys.
fn keys_by_kind(dev: &mut impl BlockDevice, parent: &str) -> (Vec<String>, Vec<String>) {
    let v = open(dev);
    let r = v.lookup(dev, parent).unwrap();
    let d = v.open_dir(dev, r).unwrap();
    let (mut interior, mut leaf) = (Vec::new(), Vec::new());
    let mut stack = vec![d.root.clone()];
    while let Some(n) = stack.pop() {
        for e in n.entries().unwrap() {
            if let Some(k) = &e.key {
                if e.sub.is_some() {
                    interior.push(k.name_string())
                } else {
                    leaf.push(k.name_string())
                }
            }
            if let Some(s) = e.sub {
                stack.push(v.read_block(dev, &d, s).unwrap());
            }
        }
    }
    (interior, leaf)
}

fn many_files(n: usize) -> String {
    format!("mkdir d && cd d && i=0; while [ $i -lt {n} ]; do echo $i > f$(printf %05d $i)_name.txt; i=$((i+1)); done")
}

#[test]
fn small_directory_root_only_with_dos_names() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(
        t.path(),
        "small.img",
        16,
        &[],
        "mkdir -p Windows/System32/drivers/CrowdStrike && cd Windows/System32/drivers/CrowdStrike && \
         echo alpha > alpha-long.sys && echo b > b.sys && echo c > c.sys && \
         setfattr -h -n system.ntfs_dos_name -v ALPHA-~1.SYS alpha-long.sys",
    );
    let mut dev = FileDev::open(&img);
    let (root, l1, _) = tree_keys(&mut dev, "Windows/System32/drivers/CrowdStrike");
    assert!(l1.is_empty(), "expected an index root only, got {root:?} {l1:?}");
    drop(dev);
    let parent = "/Windows/System32/drivers/CrowdStrike";
    for name in ["alpha-long.sys", "b.sys", "c.sys"] {
        let p = differential(t.path(), &img, parent, name);
        assert!(p.writes.iter().all(|w| w.structure != "index block"), "root-only index must not touch index blocks");
    }
}

#[test]
fn one_level_of_index_blocks_first_last_middle() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(t.path(), "one.img", 32, &[], &many_files(30));
    let mut dev = FileDev::open(&img);
    let (root, l1, l2) = tree_keys(&mut dev, "d");
    drop(dev);
    assert!(root.is_empty() && l1.len() == 1 && l2.is_empty(), "expected root -> one leaf block");
    let leaf = &l1[0];
    for name in [&leaf[0], &leaf[leaf.len() - 1], &leaf[leaf.len() / 2]] {
        differential(t.path(), &img, "/d", name);
    }
}

#[test]
fn two_levels_of_index_blocks_interior_and_leaves() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(t.path(), "two.img", 32, &[], &many_files(300));
    let mut dev = FileDev::open(&img);
    let (_, l1, l2) = tree_keys(&mut dev, "d");
    drop(dev);
    assert!(l1.len() == 1 && l2.len() > 2, "expected root -> interior block -> leaves");
    let interior = &l1[0][l1[0].len() / 2];
    let first = &l2[0][0];
    let last = l2.last().unwrap().last().unwrap();
    let middle = &l2[1][l2[1].len() / 2];
    for name in [interior, first, last, middle, &l1[0][0]] {
        differential(t.path(), &img, "/d", name);
    }
    // 1000 entries: the root itself holds keys (interior entries in $INDEX_ROOT).
    let img = make_volume(t.path(), "thousand.img", 32, &[], &many_files(1000));
    let mut dev = FileDev::open(&img);
    let (root, _, _) = tree_keys(&mut dev, "d");
    drop(dev);
    assert!(!root.is_empty(), "expected keys in the index root");
    differential(t.path(), &img, "/d", &root[0]);
}

#[test]
fn three_levels_5000_entries() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(t.path(), "five.img", 64, &[], &many_files(5000));
    let mut dev = FileDev::open(&img);
    let (_, l1, l2) = tree_keys(&mut dev, "d");
    drop(dev);
    assert!(!l1.is_empty() && !l2.is_empty());
    for name in [&l1[0][l1[0].len() / 2], &l2[0][l2[0].len() / 2], &l2[3][0]] {
        differential(t.path(), &img, "/d", name);
    }
}

#[test]
fn emptied_leaf_is_unlinked_and_tree_stays_sorted() {
    // Delete every entry of one leaf, one at a time, with the engine; after each
    // step the directory lists exactly the remaining names, in order.
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(t.path(), "empty.img", 32, &[], &many_files(300));
    let mut dev = FileDev::open(&img);
    let (_, _, l2) = tree_keys(&mut dev, "d");
    let mut victims = l2[1].clone();
    victims.extend(l2.last().unwrap().iter().cloned());
    let mut expect: Vec<String> = {
        let v = open(&mut dev);
        let r = v.lookup(&mut dev, "d").unwrap();
        let d = v.open_dir(&mut dev, r).unwrap();
        v.list_dir(&mut dev, &d).unwrap().into_iter().map(|e| e.name).collect()
    };
    for name in &victims {
        let p = plan_for(&mut dev, "d", name);
        plan::execute(&mut dev, &p, None).unwrap();
        expect.retain(|n| n != name);
        let v = open(&mut dev);
        let r = v.lookup(&mut dev, "d").unwrap();
        let d = v.open_dir(&mut dev, r).unwrap();
        let got: Vec<String> = v.list_dir(&mut dev, &d).unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(got, expect);
    }
    drop(dev);
    check_volume(&img);
    let listing = run(Command::new("ntfsls").args(["-a", "-p", "/d"]).arg(&img));
    let names: Vec<&str> = listing.lines().filter(|l| l.starts_with('f')).collect();
    assert_eq!(names.len(), 300 - victims.len());
}

#[test]
fn resident_nonresident_fragmented_hardlinks_attribute_list() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(
        t.path(),
        "kinds.img",
        24,
        &[],
        "mkdir k && cd k && echo tiny > resident.txt && head -c 200000 /dev/urandom > big.bin && \
         i=0; while [ $i -lt 200 ]; do head -c 8192 /dev/zero > fill$i; i=$((i+1)); done && \
         i=0; while [ $i -lt 200 ]; do rm fill$i; i=$((i+2)); done && \
         for i in 9 8 7 6 5 4 3 2 1 0; do dd if=/dev/urandom of=frag.bin bs=40960 seek=$i count=1 conv=notrunc status=none; done && \
         echo linked > link1.txt && ln link1.txt link2.txt && \
         echo many > ads.txt && i=0; while [ $i -lt 40 ]; do setfattr -n user.stream$i -v $(head -c 60 /dev/zero | tr '\\0' a) ads.txt; i=$((i+1)); done",
    );
    let mut dev = FileDev::open(&img);
    let v = open(&mut dev);
    let r = v.lookup(&mut dev, "k").unwrap();
    let d = v.open_dir(&mut dev, r).unwrap();
    let get = |dev: &mut FileDev, n: &str| {
        let r = v.lookup_in(dev, &d, n).unwrap().unwrap();
        v.load_file(dev, r.record()).unwrap()
    };
    let frag = get(&mut dev, "frag.bin");
    let runs = match frag.stream(0x80, &[]).unwrap().unwrap() {
        ntfs::file::Stream::NonResident { runs, .. } => runs.len(),
        _ => 0,
    };
    assert!(runs > 1, "frag.bin should be fragmented ({runs} runs)");
    let ads = get(&mut dev, "ads.txt");
    assert!(ads.records.len() > 1, "ads.txt should have extension records via an attribute list");
    // Content read by the engine equals what ntfs-3g reads.
    let content = v.read_content(&mut dev, &frag, 1 << 30).unwrap();
    assert_eq!(content, bytes(Command::new("ntfscat").arg(&img).arg("/k/frag.bin")));
    drop(dev);
    for name in ["resident.txt", "big.bin", "frag.bin", "ads.txt", "link1.txt"] {
        let p = differential(t.path(), &img, "/k", name);
        if name == "link1.txt" {
            assert!(p.notes.iter().any(|n| n.contains("kept")), "hard link keeps its record: {p}");
        }
    }
    // The other link still reads.
    let ours = t.path().join("ours.img");
    assert_eq!(bytes(Command::new("ntfscat").arg(&ours).arg("/k/link2.txt")), b"linked\n");
}

#[test]
fn four_k_sectors_and_large_clusters() {
    let t = tempfile::tempdir().unwrap();
    for (name, extra) in [("s4k.img", &["-s", "4096"][..]), ("c64k.img", &["-c", "65536"][..])] {
        let img = make_volume(t.path(), name, 64, extra, &many_files(400));
        let mut dev = FileDev::open(&img);
        let v = open(&mut dev);
        if name == "s4k.img" {
            assert_eq!((v.boot.sector_size, v.boot.record_size), (4096, 4096));
        }
        let (interior, leaf) = keys_by_kind(&mut dev, "d");
        drop(dev);
        differential(t.path(), &img, "/d", &interior[interior.len() / 2]);
        differential(t.path(), &img, "/d", &leaf[1]);
    }
}

/// Interruption: stop after the k-th write, for every k; each state must pass
/// ntfsfix, mount read-write, list the directory, and never have a cluster
/// free that the final state keeps or a cluster in use beyond the original.
#[test]
fn interrupted_after_every_write() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(
        t.path(),
        "int.img",
        32,
        &[],
        &format!("{} && head -c 300000 /dev/urandom > big_0150.bin && setfattr -h -n system.ntfs_dos_name -v BIG_01~1.BIN big_0150.bin", many_files(300)),
    );
    // An interior key: its delete moves a predecessor up (most writes).
    let mut dev = FileDev::open(&img);
    let (_, l1, _) = tree_keys(&mut dev, "d");
    let name = l1[0][l1[0].len() / 2].clone();
    let full = plan_for(&mut dev, "d", &name);
    drop(dev);
    let orig = observe(&img, "/d");
    let done = copy(&img, &t.path().join("final.img"));
    plan::execute(&mut FileDev::open(&done), &full, None).unwrap();
    let fin = observe(&done, "/d");
    assert!(full.len() >= 4, "{full}");
    eprintln!("interior delete plan:\n{full}");
    for k in 0..=full.len() {
        let part = copy(&img, &t.path().join(format!("k{k}.img")));
        plan::execute(&mut FileDev::open(&part), &full, Some(k)).unwrap();
        check_volume(&part);
        let o = observe(&part, "/d");
        let names = |l: &str| {
            l.lines()
                .filter_map(|x| x.split_whitespace().nth(1).map(String::from))
                .collect::<std::collections::BTreeSet<_>>()
        };
        let (now, before, after) = (names(&o.listing), names(&orig.listing), names(&fin.listing));
        assert!(now.is_subset(&before) && after.is_subset(&now), "k={k}: another file's entry was lost or invented");
        for (i, ((p, f), b)) in o.bitmap.iter().zip(&fin.bitmap).zip(&orig.bitmap).enumerate() {
            assert_eq!(p & !b, 0, "k={k}: cluster byte {i} in use beyond the original");
            assert_eq!(f & !p, 0, "k={k}: cluster byte {i} freed before the final state (cross-link risk)");
        }
        fs::remove_file(part).unwrap();
    }
    // The last key of a leaf: the leaf is unlinked, a separator moves down, the block is freed.
    let base = copy(&img, &t.path().join("leaf-base.img"));
    let mut dev = FileDev::open(&base);
    let (_, _, l2) = tree_keys(&mut dev, "d");
    let leaf = &l2[1];
    for name in &leaf[..leaf.len() - 1] {
        let p = plan_for(&mut dev, "d", name);
        plan::execute(&mut dev, &p, None).unwrap();
    }
    let last = plan_for(&mut dev, "d", &leaf[leaf.len() - 1]);
    drop(dev);
    assert!(last.writes.iter().any(|w| w.reason.contains("free the emptied index block")), "{last}");
    let lorig = observe(&base, "/d");
    for k in 0..=last.len() {
        let part = copy(&base, &t.path().join(format!("l{k}.img")));
        plan::execute(&mut FileDev::open(&part), &last, Some(k)).unwrap();
        check_volume(&part);
        let o = observe(&part, "/d");
        let names = |l: &str| {
            l.lines()
                .filter_map(|x| x.split_whitespace().nth(1).map(String::from))
                .collect::<std::collections::BTreeSet<_>>()
        };
        let mut expect = names(&lorig.listing);
        expect.remove(&leaf[leaf.len() - 1]);
        assert!(expect.is_subset(&names(&o.listing)), "k={k}: another entry was lost");
        fs::remove_file(part).unwrap();
    }
    // The big file too (clusters freed last).
    let mut dev = FileDev::open(&img);
    let big = plan_for(&mut dev, "d", "big_0150.bin");
    drop(dev);
    assert_eq!(big.writes.last().unwrap().structure, "$Bitmap");
    for k in 0..=big.len() {
        let part = copy(&img, &t.path().join(format!("b{k}.img")));
        plan::execute(&mut FileDev::open(&part), &big, Some(k)).unwrap();
        check_volume(&part);
        fs::remove_file(part).unwrap();
    }
}

fn corpus(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/ntfs").join(name);
    p.exists().then_some(p)
}

/// Unpacks a corpus disk and returns (disk image, partition offset, partition length).
fn unpack(dir: &Path, name: &str) -> Option<(PathBuf, u64, u64)> {
    let gz = corpus(&format!("{name}.raw.gz"))?;
    let out = dir.join(format!("{name}.raw"));
    run(Command::new("sh").arg("-c").arg(format!(
        "gunzip -c '{}' | dd of='{}' bs=64K conv=sparse status=none",
        gz.display(),
        out.display()
    )));
    let mut dev = FileDev::open(&out);
    let parts = rescue_engine::formats::partition::discover(&mut dev).unwrap();
    Some((out, parts[0].offset, parts[0].size))
}

fn extract(img: &Path, off: u64, len: u64, out: &Path) {
    run(Command::new("dd")
        .arg(format!("if={}", img.display()))
        .arg(format!("of={}", out.display()))
        .args(["bs=64K", "iflag=skip_bytes,count_bytes", "conv=sparse", "status=none"])
        .arg(format!("skip={off}"))
        .arg(format!("count={len}")));
}

fn profile(path: &str, extra: &str) -> Profile {
    Profile::parse(&format!("name = \"t\"\n[[delete]]\npath = '{path}'\nbackup = false\n{extra}")).unwrap()
}

/// The Windows-made volumes: delete a file through the rules (`rules::apply`) on
/// the partition of the whole MBR disk, compare with ntfs-3g deleting it on the partition.
#[test]
fn windows_corpus_volumes() {
    let t = tempfile::tempdir().unwrap();
    let mut seen = 0;
    for (disk, parent, name) in [
        ("ntfs-lastaccess", "/test", "1.txt"),
        ("ntfs-ptrn", "/", "2.txt"),
        ("ntfs-ptrn", "/", "os_version.txt"),
        ("ntfs-2m", "/", ""),
    ] {
        let Some((raw, off, len)) = unpack(t.path(), disk) else { continue };
        seen += 1;
        let part = t.path().join("part.img");
        extract(&raw, off, len, &part);
        let name = if name.is_empty() {
            // 2 MiB clusters: add a file with ntfs-3g first.
            with_mount(&part, &[], |m| fs::write(m.join("added.bin"), vec![7u8; 5_000_000]).unwrap());
            fs::remove_file(&raw).unwrap();
            let mut dev = FileDev::open(&part);
            assert_eq!(open(&mut dev).boot.cluster_size, 2 << 20);
            "added.bin"
        } else {
            name
        };
        let theirs = copy(&part, &t.path().join("theirs.img"));
        let rule = format!("{}\\{name}", parent.trim_start_matches('/')).trim_start_matches('\\').to_string();
        let report = if raw.exists() {
            let mut dev = FileDev::open(&raw);
            let r = common::apply(&profile(&rule, ""), &mut dev, Options::default(), &mut NoBackup);
            drop(dev);
            extract(&raw, off, len, &part);
            fs::remove_file(&raw).unwrap();
            r
        } else {
            let mut dev = FileDev::open(&part);
            common::apply(&profile(&rule, ""), &mut dev, Options::default(), &mut NoBackup)
        };
        assert!(report.ok() && report.files_deleted() == 1, "{disk}: {report:#?}");
        with_mount(&theirs, &[], |m| fs::remove_file(m.join(parent.trim_start_matches('/')).join(name)).unwrap());
        let a = observe(&part, parent);
        let b = observe(&theirs, parent);
        assert_eq!(a.listing, b.listing, "{disk}");
        assert!(a.bitmap == b.bitmap && a.mft_bitmap == b.mft_bitmap, "{disk}: bitmaps differ");
        // Windows gave these files object IDs: $ObjId:$O must lose the same entry as with ntfs-3g.
        let objid = |img: &Path| {
            bytes(Command::new("ntfscat").args(["-a", "0x90", "-n", "$O"]).arg(img).arg("/$Extend/$ObjId"))
        };
        assert!(objid(&part) == objid(&theirs), "{disk}: $ObjId index differs");
        check_volume(&part);
    }
    assert!(seen > 0, "corpus not found at ../shared/corpus/ntfs");
}

/// Clears the clean flag in both restart areas of `$LogFile`, as a crash leaves them.
fn make_crash_like(dev: &mut impl BlockDevice) {
    let v = open(dev);
    let lf = v.load_file(dev, 2).unwrap();
    let s = lf.stream(0x80, &[]).unwrap().unwrap();
    for page in [0u64, 4096] {
        let mut head = vec![0u8; 4096];
        v.read_stream(dev, &s, page, &mut head).unwrap();
        assert_eq!(&head[..4], b"RSTR");
        let ra = u16::from_le_bytes([head[0x18], head[0x19]]) as usize;
        let flags = u16::from_le_bytes([head[ra + 0xE], head[ra + 0xF]]);
        assert!(flags & 2 != 0, "corpus journal page at {page} should be clean");
        let ex = ntfs::runs::extents(
            match &s {
                ntfs::file::Stream::NonResident { runs, .. } => runs,
                _ => panic!(),
            },
            v.cluster(),
            page + ra as u64 + 0xE,
            2,
            0,
        )
        .unwrap();
        dev.write_at(ex[0].0.unwrap(), &(flags & !2).to_le_bytes()).unwrap();
    }
}

#[test]
fn unclean_journal_refused_or_reset() {
    let t = tempfile::tempdir().unwrap();
    let Some((raw, off, len)) = unpack(t.path(), "ntfs-lastaccess") else { panic!("corpus missing") };
    let part = t.path().join("crash.img");
    extract(&raw, off, len, &part);
    fs::remove_file(&raw).unwrap();
    make_crash_like(&mut FileDev::open(&part));
    let before = fs::read(&part).unwrap();
    // Refuse: error, zero writes.
    let mut dev = MemDisk::new(before.clone(), 512);
    let refuse = profile("test\\1.txt", "[ntfs]\nunclean_journal = \"refuse\"\n");
    let r = common::apply(&refuse, &mut dev, Options::default(), &mut NoBackup);
    assert!(
        !r.ok() && r.files_deleted() == 0 && r.volume.write_refused.as_deref().unwrap_or("").contains("LogFile"),
        "{r:#?}"
    );
    assert!(dev.data == before, "refused run changed the image");
    let v = open(&mut dev);
    assert!(matches!(clear_for_writing(&v, &mut dev, UncleanJournal::Refuse), Err(NtfsError::UncleanJournal { .. })));
    // Reset: journal filled with 0xFF, volume marked dirty, file deleted.
    let mut dev = FileDev::open(&part);
    let r = common::apply(
        &profile("test\\1.txt", "[ntfs]\nunclean_journal = \"reset\"\n"),
        &mut dev,
        Options::default(),
        &mut NoBackup,
    );
    assert!(r.ok() && r.files_deleted() == 1, "{r:#?}");
    let v = open(&mut dev);
    let (_, vi) = ntfs::volume::read(&v, &mut dev).unwrap();
    assert!(vi.flags & 1 != 0, "dirty flag set");
    drop(dev);
    let log = bytes(Command::new("ntfscat").arg("-f").arg(&part).arg("$LogFile"));
    assert!(!log.is_empty() && log.iter().all(|&b| b == 0xFF), "journal reset to 0xFF");
    let info = run(Command::new("ntfsinfo").args(["-f", "-m"]).arg(&part));
    assert!(info.contains("Volume is dirty") || info.to_lowercase().contains("dirty"), "{info}");
    let out = run(Command::new("ntfsls").args(["-f", "-a", "-p", "/test"]).arg(&part));
    assert!(!out.contains("1.txt"), "{out}");
    // The dirty volume still mounts (forced, as ntfs-3g requires) read-write.
    with_mount(&part, &["force"], |m| {
        fs::write(m.join("probe"), b"x").unwrap();
        assert!(!m.join("test/1.txt").exists());
    });
}

#[test]
fn hibernated_volume_refused_broken_wof_failed() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(t.path(), "hib.img", 16, &[], "printf 'xxxxxxxx' > hiberfil.sys && mkdir x && echo a > x/a.sys && ln -s a.sys x/b.sys && echo c > x/c.sys && \
         setfattr -n system.ntfs_reparse_data -v 0x1700008004000000aabbccdd x/c.sys");
    let clean = fs::read(&img).unwrap();
    // Stamp "HIBR" into hiberfil.sys's (resident) data, as Windows fast startup leaves it.
    let mut dev = MemDisk::new(clean.clone(), 512);
    let v = open(&mut dev);
    let h = v.lookup(&mut dev, "hiberfil.sys").unwrap();
    let f = v.load_file(&mut dev, h.record()).unwrap();
    let (ri, a) = f.find(0x80, &[]).next().unwrap();
    let ntfs::attr::Form::Resident { value_offset, .. } = a.form else { panic!("expected resident data") };
    let at = f.records[*ri].offset as usize + value_offset;
    assert_eq!(&dev.data[at..at + 4], b"xxxx");
    // Every signature Windows writes while the file holds a session to
    // resume, in both cases: refused, nothing written, the state named.
    for (sig, says) in [
        (b"hibr", "hibernation or Fast Startup"),
        (b"HIBR", "hibernation or Fast Startup"),
        (b"wake", "did not finish"),
        (b"WAKE", "did not finish"),
        (b"RSTR", "in progress"),
        (b"rstr", "in progress"),
    ] {
        let mut stamped = clean.clone();
        stamped[at..at + 4].copy_from_slice(sig);
        let mut dev = MemDisk::new(stamped.clone(), 512);
        let r = common::apply(&profile("x\\a.sys", ""), &mut dev, Options::default(), &mut NoBackup);
        let why = r.volume.write_refused.as_deref().unwrap_or("");
        assert!(!r.ok() && why.contains("hibernat") && why.contains(says), "{sig:?}: {r:#?}");
        assert!(dev.data == stamped, "{sig:?}: written");
        if sig.eq_ignore_ascii_case(b"hibr") {
            // ntfs-3g, which knows this signature, refuses to write it too
            // (it falls back to a read-only mount).
            let copy = t.path().join("stamped.img");
            fs::write(&copy, &stamped).unwrap();
            let m = tempfile::tempdir().unwrap();
            let o = common::ntfs3g::limits::output(Command::new("ntfs-3g").arg(&copy).arg(m.path())).unwrap();
            if o.status.success() {
                common::ntfs3g::run(Command::new("umount").arg(m.path()));
            }
            let said = String::from_utf8_lossy(&o.stderr).to_lowercase();
            assert!(said.contains("hibernated") && said.contains("could not mount read-write"), "ntfs-3g: {said}");
        }
    }
    // Other content (here `xxxx`; Windows 8 and later zero it after a
    // resume) passes; c.sys, a WOF reparse point
    // whose reparse data is too short to say how it is compressed, fails alone.
    fs::write(&img, &clean).unwrap();
    let mut dev = FileDev::open(&img);
    let r = common::apply(&profile("x\\*.sys", ""), &mut dev, Options::default(), &mut NoBackup);
    assert!(!r.ok() && r.files_deleted() == 2 && r.errors.len() == 1 && r.errors[0].contains("WOF"), "{r:#?}");
    let b = &r.volume.rules[0].files.iter().find(|f| f.path.ends_with("c.sys")).unwrap();
    assert_eq!(b.action, FileAction::Failed);
    assert!(b.reason.as_deref().unwrap().contains("reparse data too short"));
    drop(dev);
    assert!(run(Command::new("ntfsls").args(["-a", "-p", "/x"]).arg(&img)).contains("c.sys"));
}

/// Random corruption of metadata: every run either succeeds or fails with a
/// typed error and leaves the image byte-identical; never panics or hangs.
/// A run that succeeds is judged by ntfs-3g on the same corrupted copy:
/// `ntfsfix -n` is no worse after than before, and where ntfs-3g itself can
/// delete the file, the folder then lists the same as after ours.
#[test]
fn corruption_many_seeds() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(t.path(), "c.img", 8, &[], &format!("{} && echo x > target.sys", many_files(150)));
    let clean = fs::read(&img).unwrap();
    let v = open(&mut MemDisk::new(clean.clone(), 512));
    // Metadata regions: boot sector, the first 64 MFT records, the directory's index blocks.
    let mft = v.boot.mft_lcn * v.cluster();
    let mut regions = vec![(0u64, 512u64), (mft, 64 * v.boot.record_size as u64)];
    {
        let mut dev = MemDisk::new(clean.clone(), 512);
        let r = v.lookup(&mut dev, "d").unwrap();
        let d = v.open_dir(&mut dev, r).unwrap();
        if let Some(ntfs::file::Stream::NonResident { runs, .. }) = &d.alloc {
            for run in runs {
                regions.push((run.lcn.unwrap() * v.cluster(), run.len * v.cluster()));
            }
        }
    }
    let prof = profile("d\\target.sys", "");
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut ok, mut err, mut compared) = (0, 0, 0);
    for seed in 0..400 {
        let mut data = clean.clone();
        let flips = 1 + next() % 8;
        for _ in 0..flips {
            let (start, len) = regions[(next() % regions.len() as u64) as usize];
            let at = (start + next() % len) as usize;
            data[at] ^= 1 << (next() % 8);
        }
        if seed % 50 == 49 {
            data.truncate((next() % clean.len() as u64) as usize);
        }
        let before = data.clone();
        let mut dev = MemDisk::new(data, 512);
        let r = common::apply(&prof, &mut dev, Options::default(), &mut NoBackup);
        if r.ok() && r.files_deleted() == 1 {
            ok += 1;
            compared += usize::from(judged_by_ntfs3g(t.path(), seed, &before, &dev.data));
        } else {
            err += 1;
            assert!(dev.data == before, "seed {seed}: failed run wrote to the image: {:?}", r.errors);
        }
    }
    assert!(ok > 0 && err > 0 && compared > 0, "ok {ok} err {err}, compared with ntfs-3g {compared}");
}

/// ntfs-3g's judgement of a run that deleted `d/target.sys` from a corrupted
/// volume (`before`) giving `after`; see [`corruption_many_seeds`]. True
/// when ntfs-3g could delete it too and the listings were compared.
fn judged_by_ntfs3g(dir: &Path, seed: u64, before: &[u8], after: &[u8]) -> bool {
    let (b, a) = (dir.join("before.img"), dir.join("after.img"));
    fs::write(&b, before).unwrap();
    fs::write(&a, after).unwrap();
    let fix = |img: &Path| common::ntfs3g::limits::output(Command::new("ntfsfix").arg("-n").arg(img)).unwrap();
    let fix_before = fix(&b);
    let fix_after = fix(&a);
    assert!(
        !fix_before.status.success() || fix_after.status.success(),
        "seed {seed}: ntfsfix -n passed before our run and fails after it:\n{}",
        String::from_utf8_lossy(&fix_after.stdout)
    );
    let ls = |img: &Path| {
        let o = common::ntfs3g::limits::output(Command::new("ntfsls").args(["-a", "-p", "/d"]).arg(img)).unwrap();
        o.status.success().then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let ours = ls(&a);
    // ntfs-3g deletes the file on its own copy of the corrupted volume, if it can.
    let m = tempfile::tempdir().unwrap();
    let mounted = common::ntfs3g::limits::output(Command::new("ntfs-3g").arg(&b).arg(m.path())).unwrap();
    if !mounted.status.success() {
        return false;
    }
    let removed = fs::remove_file(m.path().join("d/target.sys")).is_ok();
    common::ntfs3g::run(Command::new("umount").arg(m.path()));
    let Some(theirs) = ls(&b).filter(|_| removed) else { return false };
    assert_eq!(ours.as_deref(), Some(theirs.as_str()), "seed {seed}: the folder lists differently after ours");
    true
}

/// Loops in index pointers and run lists are errors, not hangs.
#[test]
fn index_loop_is_an_error() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(t.path(), "loop.img", 16, &[], &many_files(1000));
    let mut dev = MemDisk::new(fs::read(&img).unwrap(), 512);
    let v = open(&mut dev);
    let r = v.lookup(&mut dev, "d").unwrap();
    let d = v.open_dir(&mut dev, r).unwrap();
    // Point the first block's first sub-node... the root's first entry points to a
    // block; make that block's END entry (a leaf) claim a sub-node: flags disagree -> error.
    // Instead, point two root entries at the same block: a visited-twice loop.
    let es = d.root.entries().unwrap();
    assert!(es.len() >= 2);
    let rec = v.read_record(&mut dev, r.record()).unwrap();
    let vcn0 = es[0].sub.unwrap();
    let root_at = d.root.offset as usize; // attribute header position on the volume
    let vo = u16::from_le_bytes([dev.data[root_at + 0x14], dev.data[root_at + 0x15]]) as usize;
    let e1_end = root_at + vo + es[1].off + es[1].len;
    dev.data[e1_end - 8..e1_end].copy_from_slice(&vcn0.to_le_bytes());
    let _ = rec;
    let v = open(&mut dev);
    let d = v.open_dir(&mut dev, r).unwrap();
    match v.list_dir(&mut dev, &d) {
        Err(NtfsError::Corrupt { structure, .. }) => {
            assert!(structure.contains("index") || structure == "MFT record", "{structure}")
        }
        other => panic!("expected a loop error, got {other:?}"),
    }
}

#[test]
fn reads_only_what_it_needs() {
    // The CrowdStrike profile on a 1 GiB volume reads well under 1 MiB.
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(t.path(), "gib.img", 1024, &[], "mkdir -p Windows/System32/drivers/CrowdStrike && printf '\\252\\252\\252\\252\\001\\000\\043\\001' > Windows/System32/drivers/CrowdStrike/C-00000291-1.sys");
    let mut dev = FileDev::open(&img);
    let p = Profile::parse("name = \"cs\"\n[[delete]]\npath = 'Windows\\System32\\drivers\\CrowdStrike\\C-00000291*.sys'\nheader = \"AAAAAAAA01002301\"\nbackup = false\n").unwrap();
    let r = common::apply(&p, &mut dev, Options::default(), &mut NoBackup);
    assert!(r.ok() && r.files_deleted() == 1, "{r:#?}");
    assert!(r.bytes_read < 1 << 20, "read {} bytes", r.bytes_read);
    drop(dev);
    check_volume(&img);
}

#[allow(dead_code)]
fn slice_of(dev: &mut MemDisk, off: u64, len: u64) -> Slice<&mut MemDisk> {
    Slice::new(dev, off, len)
}

#[test]
#[ignore]
fn shapes() {
    let t = tempfile::tempdir().unwrap();
    for n in [3usize, 8, 30, 100, 300, 1000, 2000, 5000] {
        let img = make_volume(t.path(), "s.img", 64, &[], &many_files(n));
        let mut dev = FileDev::open(&img);
        let (r, l1, l2) = tree_keys(&mut dev, "d");
        eprintln!(
            "n={n}: root {} keys, l1 {} nodes {:?}, l2 {} nodes",
            r.len(),
            l1.len(),
            l1.iter().map(|x| x.len()).collect::<Vec<_>>(),
            l2.len()
        );
    }
}

/// Emptying a whole leaf, compared with ntfs-3g deleting the same names in the same order.
#[test]
fn emptied_leaf_differential() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(t.path(), "el.img", 32, &[], &many_files(300));
    let mut dev = FileDev::open(&img);
    let (_, _, l2) = tree_keys(&mut dev, "d");
    drop(dev);
    for victims in [l2[1].clone(), l2.last().unwrap().clone()] {
        let ours = copy(&img, &t.path().join("ours.img"));
        let theirs = copy(&img, &t.path().join("theirs.img"));
        let mut dev = FileDev::open(&ours);
        let mut unlinked = false;
        for name in &victims {
            let p = plan_for(&mut dev, "d", name);
            unlinked |= p.writes.iter().any(|w| w.reason.contains("unlink the emptied leaf"));
            plan::execute(&mut dev, &p, None).unwrap();
        }
        drop(dev);
        assert!(victims.len() > 3 && unlinked, "the emptied leaf was not unlinked");
        with_mount(&theirs, &[], |m| {
            for name in &victims {
                fs::remove_file(m.join("d").join(name)).unwrap();
            }
        });
        let a = observe(&ours, "/d");
        let b = observe(&theirs, "/d");
        let sorted = |s: &str| {
            let mut v: Vec<String> = s.lines().map(String::from).collect();
            v.sort();
            v
        };
        assert_eq!(sorted(&a.listing), sorted(&b.listing));
        assert!(a.bitmap == b.bitmap && a.mft_bitmap == b.mft_bitmap, "bitmaps differ");
        if a.listing != b.listing {
            eprintln!(
                "index shape differs from ntfs-3g after emptying a leaf:\nours:\n{}\ntheirs:\n{}",
                a.listing, b.listing
            );
        }
        assert_eq!(a.listing, b.listing);
        check_volume(&ours);
    }
    // Emptying a directory whose root has one child block: the root becomes a small index again.
    let img = make_volume(t.path(), "el1.img", 16, &[], &many_files(30));
    let ours = copy(&img, &t.path().join("ours1.img"));
    let theirs = copy(&img, &t.path().join("theirs1.img"));
    let names: Vec<String> = (0..30).map(|i| format!("f{i:05}_name.txt")).collect();
    let mut dev = FileDev::open(&ours);
    for name in &names {
        let p = plan_for(&mut dev, "d", name);
        plan::execute(&mut dev, &p, None).unwrap();
    }
    let v = open(&mut dev);
    let r = v.lookup(&mut dev, "d").unwrap();
    assert!(!v.open_dir(&mut dev, r).unwrap().root.is_large(), "root should be a small index again");
    drop(dev);
    with_mount(&theirs, &[], |m| names.iter().for_each(|n| fs::remove_file(m.join("d").join(n)).unwrap()));
    assert_eq!(observe(&ours, "/d"), observe(&theirs, "/d"));
    let dump = |img: &Path| {
        run(Command::new("ntfsinfo").args(["-F", "/d"]).arg(img))
            .lines()
            .filter(|l| l.contains("Index") || l.contains("size"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(dump(&ours), dump(&theirs), "directory index attributes differ from ntfs-3g's");
    check_volume(&ours);
}

/// Interruption of a run that first resets an unclean journal (crash-like
/// Windows volume): after every write the volume is usable by ntfs-3g. The
/// one window where `$MFT` and `$MFTMirr` differ (record 3 written, its
/// mirror not yet) is repaired by `ntfsfix`, as chkdsk would on Windows.
#[test]
fn interrupted_journal_reset_and_delete() {
    let t = tempfile::tempdir().unwrap();
    let Some((raw, off, len)) = unpack(t.path(), "ntfs-lastaccess") else { panic!("corpus missing") };
    let part = t.path().join("crash.img");
    extract(&raw, off, len, &part);
    fs::remove_file(&raw).unwrap();
    make_crash_like(&mut FileDev::open(&part));
    let mut dev = FileDev::open(&part);
    let v = open(&mut dev);
    let mut gate = clear_for_writing(&v, &mut dev, UncleanJournal::Reset).unwrap();
    let mut full = gate.take_reset().expect("reset plan");
    let dref = v.lookup(&mut dev, "test").unwrap();
    let d = v.open_dir(&mut dev, dref).unwrap();
    let fref = v.lookup_in(&mut dev, &d, "1.txt").unwrap().unwrap();
    full.extend(plan_delete(&v, &mut dev, &gate, dref, fref, &[utf16("1.txt")]).unwrap());
    drop(dev);
    assert_eq!(full.writes[0].structure, "MFT record");
    assert_eq!(full.writes[1].structure, "$MFTMirr");
    for k in 0..=full.len() {
        let img = copy(&part, &t.path().join(format!("k{k}.img")));
        plan::execute(&mut FileDev::open(&img), &full, Some(k)).unwrap();
        if k == 1 {
            let o = common::ntfs3g::limits::output(Command::new("ntfsfix").arg("-n").arg(&img)).unwrap();
            assert!(
                !o.status.success() || !String::from_utf8_lossy(&o.stdout).contains("processed successfully"),
                "expected a mirror mismatch at k=1"
            );
            run(Command::new("ntfsfix").arg(&img));
        }
        with_mount(&img, &["force"], |m| {
            run(Command::new("find").arg(m).arg("-xdev"));
            fs::write(m.join("probe"), b"x").unwrap();
        });
        let out = run(Command::new("ntfsls").args(["-f", "-a", "-p", "/test"]).arg(&img));
        if k == full.len() {
            assert!(!out.contains("1.txt"), "{out}");
        }
        fs::remove_file(img).unwrap();
    }
}

/// An interior key of the index root whose successor is a 200-character name
/// that does not fit the root's MFT record: the predecessor replaces it. The
/// tree stays valid (ntfs-3g lists exactly the other names, ntfsfix passes).
#[test]
fn interior_successor_too_big_uses_predecessor() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(t.path(), "big.img", 32, &[], &many_files(1000));
    let mut dev = FileDev::open(&img);
    let (root, _, _) = tree_keys(&mut dev, "d");
    drop(dev);
    let k = root[0].clone();
    let long = format!("{k}{}", "~".repeat(200));
    with_mount(&img, &[], |m| fs::write(m.join("d").join(&long), b"long").unwrap());
    let mut dev = FileDev::open(&img);
    let p = plan_for(&mut dev, "d", &k);
    assert!(p.writes.iter().any(|w| w.reason.contains("predecessor")), "{p}");
    let before: Vec<String> = {
        let v = open(&mut dev);
        let r = v.lookup(&mut dev, "d").unwrap();
        let d = v.open_dir(&mut dev, r).unwrap();
        v.list_dir(&mut dev, &d).unwrap().into_iter().map(|e| e.name).collect()
    };
    plan::execute(&mut dev, &p, None).unwrap();
    let v = open(&mut dev);
    let r = v.lookup(&mut dev, "d").unwrap();
    let d = v.open_dir(&mut dev, r).unwrap();
    let after: Vec<String> = v.list_dir(&mut dev, &d).unwrap().into_iter().map(|e| e.name).collect();
    let expect: Vec<String> = before.into_iter().filter(|n| *n != k).collect();
    assert_eq!(after, expect, "sorted order kept");
    drop(dev);
    check_volume(&img);
    let listing = run(Command::new("ntfsls").args(["-a", "-p", "/d"]).arg(&img));
    let mut theirs: Vec<&str> = listing.lines().filter(|l| *l != "." && *l != "..").collect();
    theirs.sort();
    let mut ours: Vec<&str> = expect.iter().map(|s| s.as_str()).collect();
    ours.sort();
    assert_eq!(theirs, ours);
    assert!(!with_mount(&img, &[], |m| m.join("d").join(&k).exists()));
    assert!(with_mount(&img, &[], |m| m.join("d").join(&long).exists()));
}

/// A device whose writes fail from the `fail_at`-th on (a stick pulled, a
/// disk error), counting every write attempted.
struct FailingDev {
    inner: FileDev,
    fail_at: usize,
    attempts: usize,
}

impl BlockDevice for FailingDev {
    fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&mut self, o: u64, b: &mut [u8]) -> Result<(), IoError> {
        self.inner.read_at(o, b)
    }
    fn write_at(&mut self, o: u64, b: &[u8]) -> Result<(), IoError> {
        self.attempts += 1;
        if self.attempts >= self.fail_at {
            return Err(IoError::Device { offset: o, code: 5 });
        }
        self.inner.write_at(o, b)
    }
}

/// A write that fails part-way through one file's plan stops the run on
/// that volume: no write is even attempted for the next matching file, and
/// the volume is left as the interrupted plan left it (which every prefix of
/// a plan keeps mountable: see `interrupted_after_every_write`).
#[test]
fn a_failed_write_stops_all_writes_to_the_volume() {
    let t = tempfile::tempdir().unwrap();
    let img = make_volume(t.path(), "two.img", 16, &[], "echo a > x-1.sys && echo b > x-2.sys");
    let mut dev = FailingDev { inner: FileDev::open(&img), fail_at: 2, attempts: 0 };
    let r = common::apply(&profile("x-*.sys", ""), &mut dev, Options::default(), &mut NoBackup);
    assert_eq!(r.files_deleted(), 0, "{:?}", r.errors);
    assert_eq!(dev.attempts, 2, "writes were attempted after the failure");
    let files = &r.volume.rules[0].files;
    assert_eq!(files.len(), 2);
    assert!(files.iter().all(|f| f.action == FileAction::Failed), "{files:?}");
    assert_eq!(r.errors.len(), 2, "{:?}", r.errors);
}
