//! `$LogFile` replay against ntfsrecover (ntfs-3g), on crash states cut
//! from the corpus' Windows 10 volumes by `scripts/make-crash-state`:
//! `ntfsrecover -u K` puts Windows' before-images back for the last K
//! transaction sets and the restart areas point at the checkpoint before
//! them. Our replay must equal ntfsrecover's on every record it restores,
//! leave a journal ntfsrecover calls clean and a volume ntfsfix accepts,
//! not mark the volume dirty, and reach the same bytes when interrupted
//! after any write and run again.
//!
//! Needs ntfs-3g's ntfsrecover, ntfsfix and ntfsinfo (no mounts).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../tests/support/ntfs3g.rs"]
mod ntfs3g;
use ntfs3g::run;

const EXE: &str = env!("CARGO_BIN_EXE_rescue");

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/ntfs").join(name)
}

/// Makes the crash state of `disk` for K sets in `out`. The script exits 1 when ntfsrecover's own
/// replay leaves pages unlike the original (bytes Windows wrote without logging them): those pages
/// are listed as "unrestored" and have no verdict.
fn crash_state(disk: &str, k: u32, out: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-crash-state");
    let mut cmd = Command::new(script);
    let done = ntfs3g::limits::output(cmd.arg(corpus(disk)).arg(k.to_string()).arg(out)).unwrap();
    let text = String::from_utf8_lossy(&done.stdout).into_owned() + &String::from_utf8_lossy(&done.stderr);
    assert!(matches!(done.status.code(), Some(0 | 1)), "make-crash-state {disk} {k}: {text}");
    serde_json::from_str(&fs::read_to_string(out.join("touched.json")).unwrap()).unwrap()
}

/// A FILE record or INDX buffer with its update sequence undone, the update sequence array and
/// the slack past its used size zeroed (the tools advance the one and shift records differently
/// within the other); other pages as they are.
fn fixed(mut b: Vec<u8>) -> Vec<u8> {
    let le = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    if &b[..4] == b"FILE" || &b[..4] == b"INDX" {
        let uo = u16::from_le_bytes([b[4], b[5]]) as usize;
        let uc = u16::from_le_bytes([b[6], b[7]]) as usize;
        for i in 1..uc {
            let (s, d) = (uo + 2 * i, i * 512 - 2);
            let saved = [b[s], b[s + 1]];
            b[d..d + 2].copy_from_slice(&saved);
        }
        b[uo..uo + 2 * uc].fill(0);
        let used = if &b[..4] == b"FILE" { le(&b, 0x18) } else { 0x18 + le(&b, 0x1C) };
        let used = used.min(b.len());
        b[used..].fill(0);
    }
    b
}

fn page(img: &Path, offset: u64, size: usize) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = fs::File::open(img).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut b = vec![0u8; size];
    f.read_exact(&mut b).unwrap();
    fixed(b)
}

fn journal(img: &Path, extra: &[&str]) -> serde_json::Value {
    let out = run(Command::new(EXE).arg("journal").args(extra).arg("--json").arg(img));
    serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone()
}

/// ntfsrecover's own verdict on the journal (ntfsfix -n mounts read-only and never reads it).
fn ntfsrecover_says_clean(img: &Path) -> bool {
    let out = ntfs3g::limits::output(Command::new("ntfsrecover").args(["-n", "-s", "-v"]).arg(img)).unwrap();
    String::from_utf8_lossy(&out.stdout).contains("Volume is clean")
}

/// Replays the crash state of `disk` for K sets and compares; returns the operations redone.
fn replay_and_compare(disk: &str, k: u32) -> Vec<String> {
    let t = tempfile::tempdir().unwrap();
    let st = crash_state(disk, k, t.path());
    let crash = t.path().join("crash.img");
    assert!(!ntfsrecover_says_clean(&crash), "{disk} K={k}: the crash state is not unclean");
    let before = fs::read(&crash).unwrap();
    let view = journal(&crash, &[]);
    assert_eq!(view["state"], "unclean", "{view:#}");
    assert_eq!(fs::read(&crash).unwrap(), before, "rescue journal without --replay wrote");
    let touched = st["touched"].as_array().unwrap();
    let ours = t.path().join("ours.img");
    fs::copy(&crash, &ours).unwrap();
    let done = journal(&ours, &["--replay"]);
    let theirs = t.path().join("replayed-by-ntfsrecover.img");
    let unrestored = st["unrestored"].as_array().unwrap();
    assert!(unrestored.iter().all(|p| p["kind"] == "other"), "{disk} K={k}: ntfsrecover left records: {unrestored:?}");
    let mut compared = 0;
    for p in touched.iter().filter(|p| !unrestored.contains(p)) {
        let (o, n) = (p["offset"].as_u64().unwrap(), p["size"].as_u64().unwrap() as usize);
        assert_eq!(page(&ours, o, n), page(&theirs, o, n), "{disk} K={k}: {p} differs from ntfsrecover's replay");
        compared += 1;
    }
    let redone = done["replay"]["redone"].as_u64().unwrap();
    assert!(touched.is_empty() || redone > 0, "{disk} K={k}: nothing redone: {done:#}");
    assert!(ntfsrecover_says_clean(&ours), "{disk} K={k}: ntfsrecover still finds the journal unclean");
    run(Command::new("ntfsfix").arg("-n").arg(&ours));
    let info = run(Command::new("ntfsinfo").args(["-m", "-f"]).arg(&ours));
    let flags = info.lines().find(|l| l.contains("Volume Flags")).unwrap_or_default();
    assert!(!flags.contains("DIRTY"), "{disk} K={k}: volume marked dirty: {flags}");
    // Once replayed, the journal is clean (a second replay has nothing to do) and, as Windows
    // leaves a clean log, its current LSN is the log's last record: NTFS writes on from there.
    let after = journal(&ours, &[]);
    assert_eq!(after["state"], "clean");
    assert_eq!(after["current_lsn"], done["replay"]["end_lsn"], "{disk} K={k}: {after:#}");
    let ops = done["replay"]["by_op"].as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    eprintln!(
        "{disk} K={k}: {compared} pages equal ntfsrecover's ({} without a verdict), {redone} operations redone: {}",
        unrestored.len(),
        ops.join(", ")
    );
    ops
}

/// K 6-8 take back sets that create files: InitializeFileRecordSegment, CreateAttribute,
/// Add/DeleteIndexEntry*, SetBitsInNonResidentBitMap, SetNewAttributeSizes (K = 8 is all the log holds).
#[test]
fn replay_equals_ntfsrecover_on_lastaccess() {
    let ops: Vec<String> = (1..=8).flat_map(|k| replay_and_compare("ntfs-lastaccess.raw.gz", k)).collect();
    for op in [
        "InitializeFileRecordSegment",
        "CreateAttribute",
        "DeleteAttribute",
        "AddIndexEntryRoot",
        "AddIndexEntryAllocation",
        "DeleteIndexEntryRoot",
        "DeleteIndexEntryAllocation",
        "SetBitsInNonResidentBitMap",
        "SetNewAttributeSizes",
        "UpdateNonResidentValue",
        "UpdateFileNameAllocation",
    ] {
        assert!(ops.iter().any(|o| o == op), "{op} never replayed: {ops:?}");
    }
}

#[test]
fn replay_equals_ntfsrecover_on_ptrn_and_2m() {
    for k in 1..=4 {
        replay_and_compare("ntfs-ptrn.raw.gz", k);
    }
    replay_and_compare("ntfs-2m.raw.gz", 1);
}

/// A transaction that never committed is undone: the log of the K = 3 crash state of
/// ntfs-lastaccess is cut before its last two records (the ForgetTransaction that ends the last
/// update's transaction and the checkpoint of the dismount), so that update is redone and then
/// undone. Its page must come back to Windows' before-image, which `ntfsrecover -u` put into the
/// crash state from Windows' undo data; every other page to ntfsrecover's replay.
#[test]
fn uncommitted_transaction_is_undone_to_windows_before_image() {
    let t = tempfile::tempdir().unwrap();
    let st = crash_state("ntfs-lastaccess.raw.gz", 3, t.path());
    let crash = t.path().join("crash.img");
    let mut b = fs::read(&crash).unwrap();
    // (LSN, offset in its log page) of the records cut off, in every page that holds them (the
    // page and its tail copies); the record's LSN field lies clear of the sector ends (fixups).
    let cut = [(0x107DE2u64, 0xF10usize), (0x107DED, 0xF68)];
    let mut patched = 0;
    let pages: Vec<usize> = (0..b.len()).step_by(4096).filter(|&o| &b[o..o + 4] == b"RCRD").collect();
    for page in pages {
        for (lsn, at) in cut {
            if b[page + at..page + at + 8] == lsn.to_le_bytes() {
                b[page + at..page + at + 8].fill(0);
                patched += 1;
            }
        }
    }
    assert!(patched >= 2, "the records to cut were not found: {patched}");
    let ours = t.path().join("ours.img");
    fs::write(&ours, &b).unwrap();
    let view = journal(&ours, &[]);
    assert_eq!(view["replay"]["uncommitted"], 1, "{view:#}");
    let done = journal(&ours, &["--replay"]);
    assert_eq!(done["replay"]["undone"], 1, "{done:#}");
    let theirs = t.path().join("replayed-by-ntfsrecover.img");
    let (mut as_theirs, mut as_before) = (0, 0);
    for p in st["touched"].as_array().unwrap() {
        let (o, n) = (p["offset"].as_u64().unwrap(), p["size"].as_u64().unwrap() as usize);
        let mine = page(&ours, o, n);
        let lsn_masked = |mut b: Vec<u8>| {
            b[8..16].fill(0);
            b
        };
        if mine == page(&theirs, o, n) {
            as_theirs += 1;
        } else if lsn_masked(mine) == lsn_masked(page(&crash, o, n)) {
            as_before += 1;
        } else {
            panic!("{p}: neither ntfsrecover's replay nor Windows' before-image");
        }
    }
    assert_eq!(as_before, 1, "the undone update's page");
    assert!(as_theirs > 0);
    assert!(ntfsrecover_says_clean(&ours));
    run(Command::new("ntfsfix").arg("-n").arg(&ours));
    eprintln!("undone: 1 page back to Windows' before-image, {as_theirs} equal ntfsrecover's replay");
}

/// Stopped after each write and run again, the replay reaches the bytes of an uninterrupted one.
#[test]
fn interrupted_replay_replays_again_to_the_same_bytes() {
    let t = tempfile::tempdir().unwrap();
    crash_state("ntfs-lastaccess.raw.gz", 3, t.path());
    let crash = t.path().join("crash.img");
    let whole = t.path().join("whole.img");
    fs::copy(&crash, &whole).unwrap();
    journal(&whole, &["--replay"]);
    let want = fs::read(&whole).unwrap();
    let writes = {
        let v = journal(&crash, &[]);
        v["replay"]["pages"].as_u64().unwrap() + 2
    };
    assert!(writes > 2);
    for n in 0..writes {
        let img = t.path().join("cut.img");
        fs::copy(&crash, &img).unwrap();
        journal(&img, &["--replay", "--stop-after", &n.to_string()]);
        assert_ne!(fs::read(&img).unwrap(), want, "stopped after {n} of {writes} writes, yet complete");
        journal(&img, &["--replay"]);
        assert!(fs::read(&img).unwrap() == want, "stopped after {n} writes and replayed again: other bytes");
    }
}

/// Logs that lie are refused with a message and no write.
#[test]
fn hostile_logs_are_refused_without_writes() {
    let t = tempfile::tempdir().unwrap();
    crash_state("ntfs-lastaccess.raw.gz", 3, t.path());
    let crash = t.path().join("crash.img");
    assert_eq!(journal(&crash, &[])["state"], "unclean");
    let img = fs::read(&crash).unwrap();
    // Find the restart pages and the record pages by their magic, then damage them.
    let rstr: Vec<usize> = (0..img.len()).step_by(4096).filter(|&o| &img[o..o + 4] == b"RSTR").collect();
    let rcrd: Vec<usize> = (0..img.len()).step_by(4096).filter(|&o| &img[o..o + 4] == b"RCRD").collect();
    assert_eq!(rstr.len(), 2, "restart pages");
    type Damage<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;
    let cases: Vec<(&str, Damage)> = vec![
        ("every record page torn", Box::new(|b: &mut Vec<u8>| rcrd.iter().for_each(|&o| b[o + 510] ^= 0xFF))),
        (
            "client restart LSN pointing nowhere",
            Box::new(|b: &mut Vec<u8>| {
                rstr.iter().for_each(|&o| {
                    let ra = u16::from_le_bytes([b[o + 0x18], b[o + 0x19]]) as usize;
                    let ca = ra + u16::from_le_bytes([b[o + ra + 0x16], b[o + ra + 0x17]]) as usize;
                    b[o + ca + 8..o + ca + 16].copy_from_slice(&0x0123_4567u64.to_le_bytes());
                })
            }),
        ),
        (
            "update records naming clusters far beyond the volume",
            Box::new(|b: &mut Vec<u8>| {
                rcrd.iter().for_each(|&o| {
                    for r in (o + 0x40..o + 4096 - 0x58).step_by(8) {
                        // A client record (type 1) with one LCN: that LCN becomes the largest there is.
                        if b[r + 0x20..r + 0x24] == [1, 0, 0, 0] && b[r + 0x3E..r + 0x40] == [1, 0] {
                            b[r + 0x50..r + 0x58].copy_from_slice(&u64::MAX.to_le_bytes());
                        }
                    }
                })
            }),
        ),
        (
            "record lengths lying",
            Box::new(|b: &mut Vec<u8>| {
                rcrd.iter().for_each(|&o| {
                    for r in (o + 0x40..o + 4096 - 0x30).step_by(8) {
                        if b[r + 0x20] == 1 && b[r + 0x21..r + 0x24] == [0, 0, 0] {
                            b[r + 0x18..r + 0x1C].copy_from_slice(&0x00FF_FFF0u32.to_le_bytes());
                        }
                    }
                })
            }),
        ),
    ];
    for (what, damage) in cases {
        let mut b = img.clone();
        damage(&mut b);
        let path = t.path().join("hostile.img");
        fs::write(&path, &b).unwrap();
        let out = ntfs3g::limits::output(Command::new(EXE).args(["journal", "--replay"]).arg(&path)).unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: replay succeeded:\n{text}");
        assert!(text.contains("impossible") || text.contains("corrupt") || text.contains("cannot"), "{what}: {text}");
        assert!(fs::read(&path).unwrap() == b, "{what}: a refused replay wrote");
        eprintln!("{what}: {}", text.lines().find(|l| l.contains("impossible")).unwrap_or_default());
    }
}
