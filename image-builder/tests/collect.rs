//! `rescue collect`: reports written (with mtools) into two stick images
//! and a folder, gathered into one CSV and one JSON table. The reports are
//! the engine's own `RunReport`, serialized as the agent does.

#[path = "../../tests/support/mod.rs"]
mod support;

use rescue_engine::formats::smbios::Machine;
use rescue_engine::rules::report::{FileAction, FileReport, Filesystem, RuleReport, VolumeReport};
use rescue_engine::run::report::{BitLockerReport, DiskReport, Outcome, Report, RunReport};
use std::fs;
use std::path::Path;
use std::process::Command;
use support::*;

const PLANTED: &str = "236808-089419-192665-495704-618299-073414-538373-542366";

/// An agent report: `deleted` files deleted on volume 0; `locked` a BitLocker volume skipped.
fn report(started: &str, serial: &str, outcome: Outcome, deleted: &[(&str, &str)], locked: Option<&str>) -> String {
    let files = deleted
        .iter()
        .map(|(path, sha)| FileReport {
            path: path.to_string(),
            sha256: Some(sha.to_string()),
            action: FileAction::Deleted,
            header_match: true,
            ..Default::default()
        })
        .chain([FileReport {
            path: "\\Windows\\System32\\drivers\\CrowdStrike\\C-00000291-keep.sys".into(),
            action: FileAction::Skipped,
            reason: Some("header does not match".into()),
            ..Default::default()
        }])
        .collect();
    let mut volumes = vec![VolumeReport {
        index: 0,
        partition: 3,
        filesystem: Filesystem::Ntfs,
        rules: vec![RuleReport {
            path: "\\Windows\\System32\\drivers\\CrowdStrike\\C-00000291*.sys".into(),
            directory_found: true,
            files,
            ..Default::default()
        }],
        ..Default::default()
    }];
    volumes.push(VolumeReport {
        index: 1,
        partition: 4,
        filesystem: Filesystem::Ntfs,
        write_refused: Some("Windows is hibernated (hiberfil.sys is live)".into()),
        ..Default::default()
    });
    let mut bitlocker = Vec::new();
    if let Some(why) = locked {
        volumes.push(VolumeReport {
            index: 2,
            partition: 5,
            filesystem: Filesystem::LockedBitLocker,
            ..Default::default()
        });
        bitlocker.push(BitLockerReport {
            volume: 2,
            recovery_key_ids: vec!["B5D1E0A1-6C0F-4E7E-9A4B-0123456789AB".into()],
            skipped: Some(why.into()),
            ..Default::default()
        });
    } else {
        bitlocker.push(BitLockerReport {
            volume: 0,
            unlocked_by: Some("recovery password for Key ID 0A0B0C0D-0000-4000-8000-000000000001".into()),
            ..Default::default()
        });
    }
    let r = RunReport {
        agent_version: "0.1.0".into(),
        front_end: "agent (x86_64)".into(),
        started: started.into(),
        machine: Some(Machine {
            manufacturer: "LENOVO".into(),
            model: "ThinkPad T14, Gen 3".into(),
            serial_number: serial.into(),
            uuid: "x".into(),
        }),
        disks: vec![DiskReport {
            label: "PciRoot(0x0)/Pci(0x1,0x0)".into(),
            model: "NVMe disk".into(),
            serial: "S1".into(),
            bus: "NVMe".into(),
            size: 1 << 30,
            partition_table: "GPT".into(),
            volumes: vec![0, 1],
            error: None,
        }],
        outcome,
        reason: Some(format!("{} file(s) deleted", deleted.len())),
        windows_volumes: 1,
        duration_ms: 1234,
        notes: vec![format!("typed key {PLANTED} (a careless note)")],
        bitlocker,
        result: Report {
            profile: "crowdstrike-c00000291".into(),
            volumes,
            files_deleted: deleted.len(),
            errors: vec![format!("volume 9: typed key {PLANTED} was wrong")],
            ok: true,
            ..Default::default()
        },
    };
    serde_json::to_string_pretty(&r).unwrap()
}

fn put(image: &Path, name: &str, json: &str) {
    let f = tempfile::NamedTempFile::new().unwrap();
    fs::write(f.path(), json).unwrap();
    ok(Command::new("mcopy")
        .args(["-o", "-i"])
        .arg(format!("{}@@1M", image.display()))
        .arg(f.path())
        .arg(format!("::/rescue/reports/{name}")));
}

#[test]
fn collect_gathers_reports_from_two_sticks_and_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let a = build_image(dir.path(), "a.img", &["--size", "40"]);
    let b = build_image(dir.path(), "b.img", &["--size", "40"]);
    let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    put(
        &a,
        "run-0001.json",
        &report(
            "2026-11-28T09:00:00Z",
            "PF-AAA1",
            Outcome::Fixed,
            &[("\\Windows\\System32\\drivers\\CrowdStrike\\C-00000291-00000000-00000032.sys", sha)],
            None,
        ),
    );
    put(&a, "run-0002.json", &report("2026-11-28T11:00:00Z", "PF-AAA2", Outcome::NothingToDo, &[], None));
    put(
        &b,
        "run-0001.json",
        &report("2026-11-28T10:00:00Z", "PF-BBB1", Outcome::Failed, &[], Some("no key typed within 60 s")),
    );
    put(&b, "notes.txt", "not a report");
    let folder = dir.path().join("from-email");
    fs::create_dir(&folder).unwrap();
    fs::write(
        folder.join("pc42.json"),
        report(
            "2026-11-28T08:00:00Z",
            "PF-CCC4",
            Outcome::Fixed,
            &[("\\Windows\\a.sys", sha), ("\\Windows\\b.sys", sha)],
            None,
        ),
    )
    .unwrap();
    fs::write(folder.join("broken.json"), "{\"started\": ").unwrap();
    fs::write(folder.join("other.json"), "{\"hello\": 1}").unwrap();

    let csv = dir.path().join("fleet.csv");
    let out = run(rescue().arg("collect").arg(&a).arg(&b).arg(&folder).arg("--out").arg(&csv));
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("4 report(s) from 3 source(s): 2 FIXED, 1 NOTHING TO DO, 1 FAILED, 0 SAFE MODE SET"),
        "{said}"
    );
    assert!(said.contains("broken.json: not valid JSON") && said.contains("other.json: not a rescue report"), "{said}");

    let text = fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines[0].starts_with("started,manufacturer,model,serial,outcome,reason,files_deleted,deleted,skipped"),
        "{}",
        lines[0]
    );
    // Sorted by start time across sources.
    let serials: Vec<&str> = ["PF-CCC4", "PF-AAA1", "PF-BBB1", "PF-AAA2"].to_vec();
    for (line, serial) in lines[1..].iter().zip(&serials) {
        assert!(line.contains(serial), "{serial} expected in {line}");
    }
    // A model with a comma stays one quoted cell; deleted files carry their SHA-256.
    assert!(lines[2].contains("\"ThinkPad T14, Gen 3\""), "{}", lines[2]);
    assert!(
        lines[2].contains(",FIXED,") && lines[2].contains(&format!("C-00000291-00000000-00000032.sys sha256={sha}")),
        "{}",
        lines[2]
    );
    assert!(lines[2].contains("volume 1 (partition 4): not written: Windows is hibernated"), "{}", lines[2]);
    assert!(
        lines[2].contains(
            "file \\Windows\\System32\\drivers\\CrowdStrike\\C-00000291-keep.sys: skipped: header does not match"
        ),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].contains(",FAILED,") && lines[3].contains("BitLocker volume 2: locked: no key typed within 60 s"),
        "{}",
        lines[3]
    );
    assert!(lines[1].contains(",2,"), "two files deleted on PF-CCC4: {}", lines[1]);
    assert!(
        lines[1].contains("volume 0: recovery password for Key ID 0A0B0C0D-0000-4000-8000-000000000001"),
        "{}",
        lines[1]
    );

    // The same as JSON, with structured lists.
    let js = dir.path().join("fleet.json");
    ok(rescue().arg("collect").arg(&a).arg(&b).arg(&folder).arg("--out").arg(&js));
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&js).unwrap()).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[1]["serial"], "PF-AAA1");
    assert_eq!(rows[1]["manufacturer"], "LENOVO");
    assert_eq!(rows[1]["started"], "2026-11-28T09:00:00Z");
    assert_eq!(rows[1]["deleted"][0]["sha256"], sha);
    assert_eq!(rows[1]["source"], a.display().to_string());
    assert_eq!(rows[1]["report"], "run-0001.json");
    assert_eq!(
        rows[2]["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["reason"].as_str().unwrap().starts_with("locked"))
            .count(),
        1
    );

    // Never a key: the Key ID may appear nowhere but the planted password never does, in any form.
    for t in [text.clone(), fs::read_to_string(&js).unwrap(), said] {
        assert!(
            !t.contains(PLANTED) && !t.contains(&PLANTED.replace('-', "")),
            "a recovery password got into the table"
        );
    }

    // The error line that held it is kept, masked.
    assert!(text.contains("volume 9: typed key [recovery password removed] was wrong"), "{text}");
    assert!(fs::read_to_string(&js).unwrap().contains("volume 9: typed key [recovery password removed] was wrong"));

    // A folder that is a mounted stick (rescue/reports inside) works too; a bad --out is refused.
    let mnt = dir.path().join("mnt");
    fs::create_dir_all(mnt.join("rescue/reports")).unwrap();
    fs::write(mnt.join("rescue/reports/r.json"), report("2026-11-28T12:00:00Z", "PF-DDD", Outcome::Fixed, &[], None))
        .unwrap();
    let j2 = dir.path().join("one.json");
    ok(rescue().arg("collect").arg(&mnt).arg("--out").arg(&j2));
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&j2).unwrap()).unwrap();
    assert_eq!(v[0]["serial"], "PF-DDD");
    let bad = run(rescue().arg("collect").arg(&mnt).arg("--out").arg(dir.path().join("t.xlsx")));
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains(".csv or .json"));
    assert!(!dir.path().join("t.xlsx").exists());
    let bad = run(rescue()
        .arg("collect")
        .arg(dir.path().join("nothing-here.img"))
        .arg("--out")
        .arg(dir.path().join("t.csv")));
    assert!(!bad.status.success());
}

/// Host runs land in the same table: a `rescue apply --report` file from a
/// real run on an NTFS image; a report seen twice counts once; a BOM is fine;
/// an unknown outcome is a warning, not a miscount.
#[test]
fn collect_reads_host_reports_dedups_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let folder = d.join("reports");
    fs::create_dir(&folder).unwrap();
    // A real `rescue apply` report, on an NTFS image made by mkntfs + ntfs-3g.
    let vol = d.join("vm.img");
    fs::File::create(&vol).unwrap().set_len(16 << 20).unwrap();
    ok(Command::new("mkntfs").args(["-F", "-Q", "-q"]).arg(&vol));
    let mnt = d.join("mnt");
    fs::create_dir(&mnt).unwrap();
    ok(Command::new("ntfs-3g").arg(&vol).arg(&mnt));
    fs::create_dir_all(mnt.join("Windows/System32")).unwrap();
    fs::write(mnt.join("C-00000291-1.sys"), b"\xaa\xaa\xaa\xaa\x01\x00\x23\x01x").unwrap();
    ok(Command::new("umount").arg(&mnt));
    let profile = d.join("p.toml");
    fs::write(&profile, "name = \"cs\"\n[[delete]]\npath = 'C-00000291*.sys'\nbackup = false\n").unwrap();
    ok(rescue().arg("apply").arg("--profile").arg(&profile).arg("--report").arg(folder.join("vm.json")).arg(&vol));
    let agent = report("2026-11-28T10:00:00Z", "SN-1", Outcome::Fixed, &[("a.sys", "00")], None);
    fs::write(folder.join("pc.json"), format!("\u{feff}{agent}")).unwrap();
    fs::write(d.join("pc.json"), &agent).unwrap();
    fs::write(folder.join("odd.json"), agent.replace("\"FIXED\"", "\"MAYBE\"")).unwrap();
    // Reports of earlier versions, with their words for an unlocked BitLocker volume, still count.
    let old = agent.replace("SN-1", "SN-OLD").replace("\"filesystem\": \"ntfs\"", "\"filesystem\": \"bitlocker\"");
    assert!(old.contains("\"bitlocker\""));
    fs::write(folder.join("old-agent.json"), old).unwrap();
    let old_host = fs::read_to_string(folder.join("vm.json"))
        .unwrap()
        .replace("\"filesystem\": \"ntfs\"", "\"filesystem\": \"ntfs (in BitLocker)\"");
    fs::write(folder.join("old-host.json"), old_host).unwrap();
    let out = d.join("fleet.json");
    let o = run(rescue().arg("collect").arg(&folder).arg(d.join("pc.json")).arg("--out").arg(&out));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("unknown outcome") && err.contains("seen twice"), "{err}");
    let rows: serde_json::Value = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4, "{rows:#?}");
    assert!(rows.iter().any(|r| r["report"] == "old-agent.json" && r["outcome"] == "FIXED"), "{rows:#?}");
    assert!(rows.iter().any(|r| r["report"] == "old-host.json"), "{rows:#?}");
    let host = rows.iter().find(|r| r["report"] == "vm.json").expect("the host report is a row");
    assert_eq!(host["outcome"], "FIXED");
    assert_eq!(host["deleted"][0]["path"], "C-00000291-1.sys");
    assert!(host["agent_version"].as_str().unwrap().starts_with("host "));
    // `--out -`: the CSV on standard output, the summary on stderr.
    let csv = run(rescue().arg("collect").arg(&folder).args(["--out", "-"]));
    let text = String::from_utf8_lossy(&csv.stdout);
    assert!(text.starts_with("started,manufacturer") && text.contains("vm.json"), "{text}");
}

/// A report folder is hostile input: links are not followed, control
/// characters never reach the terminal raw, a formula behind spaces is
/// defused, an oversized report is refused, and long lists are capped.
#[test]
fn collect_treats_a_report_folder_as_hostile() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let folder = d.join("received");
    fs::create_dir(&folder).unwrap();
    let secret = d.join("secret.json");
    fs::write(&secret, report("2026-11-28T09:00:00Z", "SECRET", Outcome::Fixed, &[], None)).unwrap();
    std::os::unix::fs::symlink(&secret, folder.join("link.json")).unwrap();
    let outside = d.join("outside-run");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("report.json"), report("2026-11-28T09:00:00Z", "OUTSIDE", Outcome::Fixed, &[], None))
        .unwrap();
    std::os::unix::fs::symlink(&outside, folder.join("run-link")).unwrap();
    let many: Vec<(String, String)> = (0..300).map(|i| (format!("f{i}.sys"), "00".to_string())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let hostile =
        report("2026-11-28T10:00:00Z", "  =HYPERLINK(\"http://x\")\u{1b}[2J\u{7}", Outcome::Fixed, &many, None);
    fs::write(folder.join("pc.json"), hostile).unwrap();
    fs::write(folder.join("huge.json"), vec![b' '; 5 << 20]).unwrap();
    let o = run(rescue().arg("collect").arg(&folder).args(["--out", "-"]));
    let (csv, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{err}");
    assert!(!csv.contains("SECRET") && !csv.contains("OUTSIDE"), "a link was followed:\n{csv}");
    assert!(err.contains("link.json: a symbolic link, not followed") && err.contains("run-link"), "{err}");
    assert!(err.contains("huge.json") && err.contains("too large"), "{err}");
    assert!(!csv.contains('\u{1b}') && !csv.contains('\u{7}') && csv.contains("\\u{1b}"), "{csv}");
    assert!(csv.contains("'  =HYPERLINK("), "{csv}");
    let row = csv.lines().nth(1).unwrap();
    assert!(row.contains(",300,") && row.contains("… and 251 more"), "{row}");
}
