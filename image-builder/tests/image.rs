//! The images `rescue build` makes, checked by tools we did not write:
//! sgdisk, fsck.fat, mtools and xorriso. Also flashing and bad profiles.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::fs;
use std::path::Path;
use std::process::Command;
use support::*;

/// Copies `len` bytes at `offset` of `image` into a new file (for fsck.fat).
fn extract(image: &Path, offset: u64, len: u64, out: &Path) {
    use std::os::unix::fs::FileExt;
    let f = fs::File::open(image).unwrap();
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, offset).unwrap();
    fs::write(out, buf).unwrap();
}

fn mcopy(image: &Path, offset: u64, path: &str, out: &Path) -> Vec<u8> {
    ok(Command::new("mcopy")
        .args(["-n", "-o", "-i"])
        .arg(format!("{}@@{offset}", image.display()))
        .arg(format!("::/{path}"))
        .arg(out));
    fs::read(out).unwrap()
}

fn inspect_json(image: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(rescue().arg("inspect").arg("--json").arg(image))).unwrap()
}

/// The GPT of `img` as the `gpt` crate reads it (an independent reader that
/// checks both headers and the entry array CRCs): per partition, its type
/// GUID, first and last LBA and name.
fn gpt_partitions(img: &Path) -> Vec<(String, u64, u64, String)> {
    let disk = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .open(img)
        .unwrap_or_else(|e| panic!("the gpt crate cannot read {}: {e}", img.display()));
    disk.partitions()
        .values()
        .map(|p| (p.part_type_guid.guid.to_string().to_uppercase(), p.first_lba, p.last_lba, p.name.clone()))
        .collect()
}

const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

#[test]
fn usb_image_passes_sgdisk_fsck_and_mtools() {
    let dir = tempfile::tempdir().unwrap();
    let img = build_image(dir.path(), "stick.img", &[]);
    assert_eq!(fs::metadata(&img).unwrap().len(), 128 << 20, "default size is 128 MiB");

    let v = ok(Command::new("sgdisk").arg("-v").arg(&img));
    assert!(v.contains("No problems found"), "sgdisk -v:\n{v}");
    let p = ok(Command::new("sgdisk").arg("-p").arg(&img));
    assert!(p.contains("EF00"), "the partition is not an EFI System Partition:\n{p}");
    let parts = gpt_partitions(&img);
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!((parts[0].0.as_str(), parts[0].1, parts[0].3.as_str()), (ESP_TYPE, 2048, "RESCUE"), "{parts:?}");
    assert_eq!((parts[0].2 + 1) % 2048, 0, "the ESP ends on a 1 MiB boundary: {parts:?}");

    let info = inspect_json(&img);
    let esp_offset = info["boot_partition_offset"].as_u64().unwrap();
    let esp_size = info["partitions"][0]["size"].as_u64().unwrap();
    assert_eq!(esp_offset, 1 << 20);
    let esp = dir.path().join("esp.fat");
    extract(&img, esp_offset, esp_size, &esp);
    let fsck = run(Command::new("fsck.fat").arg("-n").arg("-v").arg(&esp));
    let fsck_text = String::from_utf8_lossy(&fsck.stdout).into_owned() + &String::from_utf8_lossy(&fsck.stderr);
    assert!(fsck.status.success(), "fsck.fat -n failed:\n{fsck_text}");
    assert!(!fsck_text.contains("Expected") && !fsck_text.contains("uninitialized"), "fsck.fat noticed:\n{fsck_text}");
    assert!(fsck_text.contains("32 bit entries"), "not FAT32:\n{fsck_text}");

    // Files read back with mtools, byte for byte.
    let profile = mcopy(&img, esp_offset, "rescue/profile.toml", &dir.path().join("p.toml"));
    assert_eq!(profile, fs::read(default_profile()).unwrap());
    let agent = mcopy(&img, esp_offset, "EFI/BOOT/BOOTX64.EFI", &dir.path().join("agent.efi"));
    assert_eq!(&agent[..2], b"MZ");
    // Both agents, each for its machine, as file(1) reads their PE headers.
    assert_arches(&img, esp_offset, dir.path());
    let dirs =
        ok(Command::new("mdir").arg("-b").arg("-i").arg(format!("{}@@{esp_offset}", img.display())).arg("::/rescue"));
    assert!(dirs.contains("reports") && dirs.contains("backups"), "{dirs}");

    // inspect agrees with what mtools read.
    let files = info["files"].as_array().unwrap();
    let sha = |path: &str| files.iter().find(|f| f["path"] == path).unwrap()["sha256"].as_str().unwrap().to_string();
    assert_eq!(sha("EFI/BOOT/BOOTX64.EFI"), sha256_hex(&agent));
    assert_eq!(sha("rescue/profile.toml"), sha256_hex(&profile));
    assert_eq!(info["profile"]["name"], "crowdstrike-c00000291");
    assert_eq!(info["agent_version"], env!("CARGO_PKG_VERSION"));

    // --agent puts exactly that file on the stick; --size sets the size.
    let mut other = agent.clone();
    other.extend_from_slice(b"padding that changes the hash");
    let other_path = dir.path().join("other.efi");
    fs::write(&other_path, &other).unwrap();
    let img2 = build_image(dir.path(), "stick2.img", &["--agent", other_path.to_str().unwrap(), "--size", "64"]);
    assert_eq!(fs::metadata(&img2).unwrap().len(), 64 << 20);
    assert_eq!(mcopy(&img2, 1 << 20, "EFI/BOOT/BOOTX64.EFI", &dir.path().join("a2.efi")), other);
}

#[test]
fn iso_has_uefi_el_torito_entry_and_hybrid_gpt() {
    let dir = tempfile::tempdir().unwrap();
    let iso = build_image(dir.path(), "stick.iso", &["--format", "iso"]);
    let report = ok(Command::new("xorriso").arg("-indev").arg(&iso).args(["-report_el_torito", "plain"]));
    let boot_line = report
        .lines()
        .find(|l| l.starts_with("El Torito boot img"))
        .unwrap_or_else(|| panic!("no boot image:\n{report}"));
    assert!(
        boot_line.contains("UEFI") && boot_line.contains("none"),
        "not a no-emulation UEFI entry: {boot_line}\n{report}"
    );
    let v = ok(Command::new("sgdisk").arg("-v").arg(&iso));
    assert!(v.contains("No problems found"), "hybrid GPT: {v}");
    let parts = gpt_partitions(&iso);

    // The El Torito image is the same FAT the GPT's ESP points at, and it passes fsck.
    let info = inspect_json(&iso);
    assert!(info["format"].as_str().unwrap().contains("El Torito"));
    let offset = info["boot_partition_offset"].as_u64().unwrap();
    assert_eq!(info["partitions"][0]["offset"].as_u64().unwrap(), offset, "GPT ESP and El Torito image differ");
    assert_eq!((parts.len(), parts[0].0.as_str(), parts[0].1 * 512), (1, ESP_TYPE, offset), "gpt crate: {parts:?}");
    let fat = dir.path().join("eltorito.fat");
    extract(&iso, offset, info["partitions"][0]["size"].as_u64().unwrap(), &fat);
    ok(Command::new("fsck.fat").arg("-n").arg(&fat));
    let profile = mcopy(&iso, offset, "rescue/profile.toml", &dir.path().join("p.toml"));
    assert_eq!(profile, fs::read(default_profile()).unwrap());
    assert_arches(&iso, offset, dir.path());
    // xorriso reads the ISO 9660 tree: the boot image is a visible file.
    let ls = ok(Command::new("xorriso").arg("-indev").arg(&iso).args(["-ls", "/"]));
    assert!(ls.contains("EFIBOOT.IMG"), "{ls}");
}

/// The FAT at `offset` of `img` holds the x86-64 agent as BOOTX64.EFI and the ARM64 one as BOOTAA64.EFI.
fn assert_arches(img: &Path, offset: u64, dir: &Path) {
    for (name, machine) in [("BOOTX64.EFI", "x86-64"), ("BOOTAA64.EFI", "Aarch64")] {
        let out = dir.join(name);
        mcopy(img, offset, &format!("EFI/BOOT/{name}"), &out);
        let f = ok(Command::new("file").arg(&out));
        assert!(f.contains("EFI application") && f.contains(machine), "{name}: {f}");
    }
}

/// Writes a profile, runs `rescue build` on it, and returns stderr; asserts failure and no output.
fn rejected(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.toml");
    fs::write(&profile, text).unwrap();
    let out_img = dir.path().join("out.img");
    let out = run(rescue().arg("build").arg("--profile").arg(&profile).arg("--out").arg(&out_img));
    assert!(!out.status.success(), "accepted a bad profile:\n{text}");
    let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("p.toml")], "files left behind");
    let check = run(rescue().arg("profile").arg("check").arg(&profile));
    assert!(!check.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_profiles_give_clear_errors_and_no_image() {
    let good = fs::read_to_string(default_profile()).unwrap();
    let e = rejected(&good.replace("backup = true ", "bakup = false\nbackup = true "));
    assert!(e.contains("line 7, column 1") && e.contains("bakup"), "{e}");
    let e = rejected(&good.replace("drivers\\CrowdStrike", "drivers\\Crowd*"));
    assert!(e.contains("line 5") && e.contains("last component"), "{e}");
    let e = rejected(&good.replace("AAAAAAAA01002301", "AAAAAAAA0100230G"));
    assert!(e.contains("line 6") && e.contains("hex"), "{e}");
    let e = rejected(&good.replace("\"replay\"", "\"maybe\""));
    assert!(e.contains("line 10") && e.contains("refuse"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let out = run(rescue().args(["build", "--profile", "/nonexistent/p.toml", "--out"]).arg(dir.path().join("x.img")));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read profile /nonexistent/p.toml"));
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

    let ok_check = ok(rescue().arg("profile").arg("check").arg(default_profile()));
    assert!(ok_check.contains("valid profile"), "{ok_check}");
}

#[test]
fn flash_to_file_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let img = build_image(dir.path(), "stick.img", &["--size", "40"]);
    let target = dir.path().join("target.bin");
    let out = ok(rescue().arg("flash").arg(&img).arg(&target).arg("--yes"));
    assert!(out.contains("verified"), "{out}");
    assert_eq!(fs::read(&target).unwrap(), fs::read(&img).unwrap());
    // Without --yes and without a terminal, nothing is written.
    let target2 = dir.path().join("t2.bin");
    let o = run(rescue().arg("flash").arg(&img).arg(&target2).stdin(std::process::Stdio::null()));
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--yes"));
    assert!(!target2.exists());
    // Not a rescue image: refused unless --force.
    let junk = dir.path().join("junk.bin");
    fs::write(&junk, vec![0u8; 1 << 20]).unwrap();
    let o = run(rescue().arg("flash").arg(&junk).arg(&target2).arg("--yes"));
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("does not look like a rescue image"));
}

/// A loop device, detached when dropped.
struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

#[test]
fn flash_to_loop_device_verifies_and_guards() {
    let dir = tempfile::tempdir().unwrap();
    let img = build_image(dir.path(), "stick.img", &["--size", "40"]);
    let backing = dir.path().join("loop.bin");
    fs::File::create(&backing).unwrap().set_len(40 << 20).unwrap();
    let dev = ok(Command::new("losetup").args(["--find", "--show"]).arg(&backing)).trim().to_string();
    let _guard = Loop(dev.clone());
    // A loop device is not removable: refused without --force.
    let o = run(rescue().arg("flash").arg(&img).arg(&dev).arg("--yes"));
    assert!(!o.status.success(), "flashed a non-removable disk without --force");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a removable disk"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = ok(rescue().arg("flash").arg(&img).arg(&dev).args(["--yes", "--force"]));
    assert!(out.contains("verified"), "{out}");
    let written = fs::read(&backing).unwrap();
    let image = fs::read(&img).unwrap();
    assert_eq!(&written[..image.len()], &image[..]);
    // sgdisk reads the flashed device's table (same size as the image, so the backup GPT is at its end).
    let v = ok(Command::new("sgdisk").arg("-v").arg(&dev));
    assert!(v.contains("No problems found"), "{v}");
}

/// `rescue devices --all` lists every disk `lsblk` lists (size within 1%,
/// the same removable flag); plain `rescue devices` lists the removable ones,
/// or says there are none.
#[test]
fn devices_lists_what_lsblk_lists() {
    let all = ok(rescue().args(["devices", "--all"]));
    let plain = ok(rescue().arg("devices"));
    let lsblk = ok(Command::new("lsblk").args(["-d", "-n", "-b", "-o", "NAME,SIZE,RM,TYPE"]));
    let bytes = |shown: &str| -> f64 {
        let mut it = shown.split_whitespace();
        let n: f64 = it.next().unwrap().parse().unwrap();
        let unit = it.next();
        let unit = ["B", "KiB", "MiB", "GiB", "TiB"].iter().position(|u| Some(*u) == unit).unwrap();
        n * 1024f64.powi(unit as i32)
    };
    let mut removable = 0;
    for disk in lsblk.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()) {
        let (name, size, rm) = (disk[0], disk[1].parse::<f64>().unwrap(), disk[2] == "1");
        if disk[3] != "disk" || size == 0.0 {
            continue;
        }
        let row = all
            .lines()
            .find(|l| l.split_whitespace().next() == Some(&format!("/dev/{name}")))
            .unwrap_or_else(|| panic!("lsblk lists /dev/{name}, rescue devices --all does not:\n{all}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert!((bytes(&format!("{} {}", cols[1], cols[2])) - size).abs() / size < 0.01, "{row} vs {size} bytes");
        assert_eq!(cols[4] == "yes", rm, "{row}");
        if rm {
            removable += 1;
            assert!(plain.contains(&format!("/dev/{name}")), "{plain}");
        }
    }
    if removable == 0 {
        assert!(plain.contains("no removable disks found"), "{plain}");
    }
}

/// The same inputs give byte-identical images (USB and ISO), however far
/// apart the builds run; `SOURCE_DATE_EPOCH` sets the dates inside.
#[test]
fn two_builds_seconds_apart_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    for (format, extra) in [("usb", &["--size", "40"][..]), ("iso", &[][..])] {
        let args: Vec<&str> = ["--format", format].iter().chain(extra).copied().collect();
        let first = build_image(dir.path(), &format!("a.{format}"), &args);
        // FAT keeps times to 2 seconds: wait longer than that.
        std::thread::sleep(std::time::Duration::from_millis(2500));
        let second = build_image(dir.path(), &format!("b.{format}"), &args);
        assert!(fs::read(&first).unwrap() == fs::read(&second).unwrap(), "two {format} builds differ");
        let dated = dir.path().join(format!("c.{format}"));
        ok(rescue()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .arg("build")
            .arg("--profile")
            .arg(default_profile())
            .arg("--out")
            .arg(&dated)
            .args(&args));
        assert!(fs::read(&first).unwrap() != fs::read(&dated).unwrap(), "SOURCE_DATE_EPOCH changed nothing ({format})");
    }
    let listing =
        ok(Command::new("mdir").arg("-i").arg(format!("{}@@1M", dir.path().join("a.usb").display())).arg("::/rescue"));
    assert!(listing.contains("2024-07-19") || listing.contains("07-19-2024"), "{listing}");
}

/// Every kind of action a profile holds is shown, the same way, by
/// `profile check` (text and JSON), `build` and `inspect` (text and JSON);
/// an unsigned stick says what its binding is worth.
#[test]
fn every_action_is_shown_alike_by_check_build_and_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mixed.toml");
    fs::write(
        &p,
        "name = \"mixed\"\n[[delete]]\npath = 'Windows\\System32\\drivers\\CrowdStrike\\C-00000291*.sys'\n\
         [[service]]\nname = \"CSAgent\"\nstart = \"manual\"\n\
         [[registry]]\nhive = \"SOFTWARE\"\nkey = 'Policies\\Rescue'\nvalue = \"Done\"\nqword = 7\n\
         [ntfs]\nunclean_journal = \"reset\"\n[finish]\naction = \"wait\"\nsafe_mode = \"network\"\n\
         [report]\nurl = \"http://198.18.0.1/reports\"\n",
    )
    .unwrap();
    let both = |o: std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    let check: serde_json::Value =
        serde_json::from_str(&ok(rescue().args(["profile", "check", "--json"]).arg(&p))).unwrap();
    let actions: Vec<String> =
        check["actions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    for want in [
        "delete Windows\\System32\\drivers\\CrowdStrike\\C-00000291*.sys (backed up first)",
        "service CSAgent: Start = manual (3) in every control set of SYSTEM",
        "registry SOFTWARE\\Policies\\Rescue value \"Done\" = 7 (0x0000000000000007) (qword)",
        "Safe Mode: next boot of each fixed Windows in Safe Mode with networking",
        "report: to the stick and to http://198.18.0.1/reports (HTTP PUT, with backups; every delivery within 60 s)",
        "when done: wait",
    ] {
        assert!(actions.iter().any(|a| a == want), "{want:?} not in {actions:#?}");
    }
    assert!(actions.iter().any(|a| a.starts_with("unclean journal: reset")), "{actions:#?}");
    let img = dir.path().join("mixed.img");
    let texts = [
        both(run(rescue().args(["profile", "check"]).arg(&p))),
        both(run(rescue().arg("build").arg("--profile").arg(&p).arg("--out").arg(&img))),
        both(run(rescue().arg("inspect").arg(&img))),
    ];
    assert!(texts[0].contains("with 3 rule(s)") && texts[1].contains("3 rule(s)"), "{texts:#?}");
    for (text, a) in texts.iter().flat_map(|t| actions.iter().map(move |a| (t, a))) {
        assert!(text.lines().any(|l| l.trim() == a), "{a:?} missing from:\n{text}");
    }
    let info = inspect_json(&img);
    assert_eq!(info["profile"]["actions"], check["actions"]);
    assert_eq!(info["integrity"]["signed"], false);
    assert!(texts[2].contains("unsigned: protects against accidental edits only"), "{}", texts[2]);
}

/// Outputs are readable as the umask says (a web or TFTP server running as
/// its own user serves `rescue.efi`), except those holding keys in clear.
#[test]
fn outputs_get_the_mode_the_umask_gives_and_clear_keys_stay_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys = d.join("keys.csv");
    fs::write(&keys, "KeyID,RecoveryKey\n{B5D1E0A1-6C0F-4E7E-9A4B-0123456789AB},111111-222222-333333-444444-555555-666666-700007-000011\n").unwrap();
    let exe = env!("CARGO_BIN_EXE_rescue");
    let profile = default_profile();
    let build = |umask: &str, out: &str, extra: &str| {
        let cmd = format!("umask {umask} && exec \"$0\" build --profile \"$1\" --out \"$2\" {extra}");
        ok(Command::new("sh").arg("-c").arg(cmd).arg(exe).arg(&profile).arg(d.join(out)));
        fs::metadata(d.join(out)).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(build("022", "stick.img", ""), 0o644);
    assert_eq!(build("022", "rescue.efi", "--format efi"), 0o644);
    assert_eq!(build("027", "group.img", ""), 0o640);
    let clear = format!("--keys {} --no-seal", keys.display());
    assert_eq!(build("022", "clear-keys.img", &clear), 0o600, "keys in clear must stay private");
}

/// The shell completions and the man page, as the shell and `man` read them:
/// bash parses the script, and completing `rescue bu` and `rescue build --pr`
/// offers `build` and `--profile`; `man -l` renders the page with every
/// command in it.
#[test]
fn completions_and_man_page_work() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("rescue.bash");
    std::fs::write(&script, ok(rescue().args(["completions", "bash"]))).unwrap();
    ok(Command::new("bash").arg("-n").arg(&script));
    let complete = |words: &str, cword: usize| {
        ok(Command::new("bash").arg("-c").arg(format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}; \
             _rescue rescue; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        )))
    };
    assert!(complete("rescue bu", 1).lines().any(|l| l == "build"), "{}", complete("rescue bu", 1));
    assert!(complete("rescue build --pr", 2).lines().any(|l| l == "--profile"));
    let page = dir.path().join("rescue.1");
    std::fs::write(&page, ok(rescue().arg("man"))).unwrap();
    let shown = ok(Command::new("man").args(["-l", "-P", "cat"]).arg(&page).env("MANWIDTH", "100"));
    assert!(shown.contains("NAME") && shown.contains("rescue - Build USB sticks"), "{shown}");
    let help = ok(rescue().arg("--help"));
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.strip_prefix("  ").filter(|r| !r.starts_with(' '))?.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 14 && commands.contains(&"collect"), "{commands:?}");
    for c in commands {
        assert!(shown.contains(&format!("rescue-{c}")), "the man page lacks {c}:\n{shown}");
    }
}
