//! The `$LogFile` reader against ntfs-3g's `ntfsrecover`: every record of
//! the Windows 7 (log version 1.1) and Windows 10 (2.0) `$LogFile` streams
//! of the corpus that ntfsrecover prints (`-f -v`, reading a log file copy)
//! reads here with the same header and NTFS fields (a record of an older lap
//! whose page a newer tail copy replaces is counted, and must stay rare).

use rescue_engine::formats::ntfs::journal::{client, Log};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

#[path = "../../tests/support/limits.rs"]
mod limits;

fn corpus_log(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/ntfs-logs").join(name);
    let out = limits::output(Command::new("xz").arg("-dc").arg(&p)).expect("xz");
    assert!(out.status.success(), "xz -dc {}", p.display());
    out.stdout
}

/// ntfsrecover's fields of each record it prints: LSN → (label → value).
fn ntfsrecover_records(raw: &[u8]) -> BTreeMap<u64, BTreeMap<String, u64>> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("LogFile");
    std::fs::write(&f, raw).unwrap();
    // -k: a 2.0 log is a "fast restart" log to ntfsrecover; it reads it only when told to.
    let out = limits::output(Command::new("ntfsrecover").args(["-f", "-v", "-n", "-k"]).arg(&f)).expect("ntfsrecover");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut all = BTreeMap::new();
    let mut cur: Option<(u64, BTreeMap<String, u64>)> = None;
    for line in text.lines() {
        let mut w = line.split_whitespace();
        let (Some(label), Some(value)) = (w.next(), w.next()) else { continue };
        let Ok(v) = u64::from_str_radix(value, 16) else { continue };
        if label == "this_lsn" {
            if let Some((l, m)) = cur.take() {
                all.insert(l, m);
            }
            cur = Some((v, BTreeMap::new()));
        } else if let Some((_, m)) = cur.as_mut() {
            m.entry(label.to_string()).or_insert(v);
        }
    }
    if let Some((l, m)) = cur {
        all.insert(l, m);
    }
    all
}

fn check(name: &str) {
    let raw = corpus_log(name);
    let theirs = ntfsrecover_records(&raw);
    assert!(theirs.len() > 100, "{name}: ntfsrecover printed {} records", theirs.len());
    let log = Log::read(&raw, 0).unwrap().expect("a log with restart pages");
    let (mut same, mut cut, mut superseded) = (0, 0, 0);
    for (lsn, f) in &theirs {
        // The corpus streams are cut short: a record whose end lies past the copy cannot be read whole.
        let len = f.get("client_data_length").copied().unwrap_or(0);
        if *lsn == 0 || log.lsn_to_offset(*lsn) + 0x30 + len > raw.len() as u64 {
            cut += 1;
            continue;
        }
        // ntfsrecover -f reads every page where it lies; the reader puts a newer staging copy
        // (2.0) or tail copy (1.1) over its home page, where an older lap's record then is gone.
        let rec = match log.record(*lsn) {
            Ok(r) => r,
            Err(e) if e.to_string().contains("does not carry the LSN") => {
                superseded += 1;
                continue;
            }
            Err(e) => panic!("{name}: LSN {lsn:#x}: {e}"),
        };
        let want = |k: &str| f.get(k).copied().unwrap_or_else(|| panic!("{name}: LSN {lsn:#x}: no {k} printed"));
        assert_eq!(rec.prev_lsn, want("client_previous_lsn"), "{name}: LSN {lsn:#x}");
        assert_eq!(rec.undo_next_lsn, want("client_undo_next_lsn"), "{name}: LSN {lsn:#x}");
        assert_eq!(rec.data.len() as u64, want("client_data_length"), "{name}: LSN {lsn:#x}");
        assert_eq!(rec.kind as u64, want("record_type"), "{name}: LSN {lsn:#x}");
        assert_eq!(rec.transaction as u64, want("transaction_id"), "{name}: LSN {lsn:#x}");
        if rec.kind == 1 {
            let u = client::parse_update(&rec.data, 0).unwrap();
            let fields = [
                ("redo_operation", u.redo_op as u64),
                ("undo_operation", u.undo_op as u64),
                ("target_attribute", u.target_attr as u64),
                ("lcns_to_follow", u.lcns.len() as u64),
                ("record_offset", u.record_offset as u64),
                ("attribute_offset", u.attribute_offset as u64),
                ("cluster_index", u.cluster_block_offset as u64),
                ("target_vcn", u.target_vcn),
            ];
            for (k, v) in fields {
                assert_eq!(v, want(k), "{name}: LSN {lsn:#x}: {k}");
            }
        }
        same += 1;
    }
    assert!(cut <= 3, "{name}: {cut} records past the end of the copy");
    // A 1.1 log has one tail copy in use; a 2.0 log stages up to 32 pages.
    let bound = if log.restart.major >= 2 { theirs.len() / 2 } else { theirs.len() / 20 };
    assert!(superseded <= bound, "{name}: {superseded} of {} records superseded", theirs.len());
    assert!(same > 100, "{name}: only {same} records compared");
    eprintln!(
        "{name}: {same} records read as ntfsrecover prints them ({superseded} superseded by newer copies, {cut} cut)"
    );
}

#[test]
fn windows_7_log_reads_as_ntfsrecover_prints_it() {
    check("LogFile_7.bin.xz");
}

#[test]
fn windows_10_logs_read_as_ntfsrecover_prints_them() {
    check("LogFile_10.bin.xz");
    check("LogFile_10_large.bin.xz");
}
