//! One run, two front ends: the agent under QEMU + OVMF and `rescue apply
//! --report` on byte-identical copies of the same disk give the same
//! report, field by field — apart from the fields that name the front end
//! (its name, the disks as the firmware or the host names them, where
//! backups went) or the time (start, duration, times written into hives).

#[path = "support/mod.rs"]
mod support;

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use support::*;

/// A recovery password (every block a multiple of 11 below 720896).
const RP: &str = "466895-217492-569250-069608-104434-135707-527241-083622";

/// Both front ends' reports on copies of `disk`, with `profile`; the agent
/// is typed `RP` at its prompt when `typed`, the host reads it from a file.
fn both(dir: &Path, disk: &TestDisk, profile: &str, typed: bool) -> (Value, Value) {
    let profile_path = dir.join("profile.toml");
    std::fs::write(&profile_path, profile).unwrap();
    let host_disk = dir.join("host.img");
    std::fs::copy(&disk.path, &host_disk).unwrap();

    let stick = dir.join("stick.img");
    ok(rescue().arg("build").arg("--profile").arg(&profile_path).arg("--size").arg("40").arg("--out").arg(&stick));
    let mut vm = Qemu::boot(&stick, Media::UsbStick, &[(disk.path.as_path(), Bus::Ahci)], &[]);
    if typed {
        vm.wait_line(|l| l.starts_with("KEY: "), Duration::from_secs(120));
        vm.type_text(&format!("{}\r", RP.replace('-', "")));
    }
    let agent = Run::finish(vm, &stick, Duration::from_secs(240)).report;

    let report = dir.join("host.json");
    let mut apply = rescue();
    apply.arg("apply").arg("--profile").arg(&profile_path).arg("--report").arg(&report);
    apply.arg("--backup-dir").arg(dir.join("host-backups"));
    if typed {
        let f = dir.join("rp.txt");
        std::fs::write(&f, RP).unwrap();
        apply.arg("--recovery-password-file").arg(f);
    }
    let out = run(apply.arg(&host_disk));
    assert!(out.status.success(), "rescue apply: {}", String::from_utf8_lossy(&out.stderr));
    let host = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    // Without registry changes (whose pages record the time) the two copies end byte-identical.
    if !profile.contains("[[service]]") {
        let sha = |p: &Path| sha256_hex(&std::fs::read(p).unwrap());
        assert_eq!(sha(&disk.path), sha(&host_disk), "the two runs changed the disk differently");
    }
    (agent, host)
}

/// Removes what names the front end or the time; everything else must agree.
fn engine_part(mut r: Value) -> Value {
    let o = r.as_object_mut().unwrap();
    for k in ["front_end", "started", "duration_ms", "machine", "notes", "backups_written"] {
        o.remove(k);
    }
    for d in o["disks"].as_array_mut().unwrap() {
        for k in ["label", "model", "serial", "bus"] {
            d.as_object_mut().unwrap().remove(k);
        }
    }
    for v in o["volumes"].as_array_mut().unwrap() {
        for f in v["rules"].as_array_mut().unwrap().iter_mut().flat_map(|r| r["files"].as_array_mut().unwrap()) {
            f.as_object_mut().unwrap().remove("backup");
        }
        for h in v["hives"].as_array_mut().unwrap() {
            // Hives record the time they were written in their pages.
            for k in ["backup", "log_backups", "writes"] {
                h.as_object_mut().unwrap().remove(k);
            }
        }
    }
    r
}

/// Compares field by field, naming the first path that differs.
fn same(a: &Value, b: &Value, at: &str) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                same(x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), &format!("{at}.{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: agent has {} items, host {}", x.len(), y.len());
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                same(p, q, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(a, b, "{at} differs (agent, host)"),
    }
}

#[test]
fn agent_and_host_report_alike_on_a_plain_disk() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "win.img", &["--hives", "--decoy"]);
    let profile = std::fs::read_to_string(default_profile())
        .unwrap()
        .replace("[finish]\n", "[finish]\nsafe_mode = \"minimal\"\n")
        + "\n[[service]]\nname = \"CSAgent\"\nstart = \"disabled\"\n";
    let (agent, host) = both(dir.path(), &disk, &profile, false);
    assert_eq!(agent["outcome"], "FIXED", "{agent:#}");
    assert!(agent["registry_changes"].as_u64() > Some(0) && agent["safe_mode"][0]["action"] == "set", "{agent:#}");
    assert_eq!(host["front_end"], "rescue apply");
    assert!(agent["front_end"].as_str().unwrap().starts_with("agent"));
    same(&engine_part(agent), &engine_part(host), "report");
}

#[test]
fn agent_and_host_report_alike_on_a_bitlocker_disk() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "bl.img", &["--bitlocker", RP]);
    let profile = std::fs::read_to_string(default_profile()).unwrap();
    let (agent, host) = both(dir.path(), &disk, &profile, true);
    assert_eq!(agent["outcome"], "FIXED", "{agent:#}");
    assert!(agent["bitlocker"][0]["unlocked_by"].as_str().unwrap().starts_with("recovery password"), "{agent:#}");
    same(&engine_part(agent), &engine_part(host), "report");
}
