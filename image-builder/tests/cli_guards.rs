//! The host CLI writes only where it is told, never races, and does not call
//! "nothing found" a success: device nodes, folders and inputs are refused as
//! outputs before any work; interrupted runs leave no temporary files; a
//! second writer on the same disk is refused (checked with util-linux's
//! `flock`); a disk without NTFS is an error.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

/// The corpus BitLocker volume (XTS-AES-128) copied into `dir`, and its recovery password.
fn bitlocker_copy(dir: &Path) -> (PathBuf, String) {
    let archive = root().join("../shared/corpus/bitlocker/bitlk-images.tar.xz");
    ok(Command::new("tar")
        .arg("xJf")
        .arg(&archive)
        .arg("-C")
        .arg(dir)
        .arg("bitlk-images/bitlk-aes-xts-128.img")
        .arg("bitlk-images/images.conf"));
    let conf = fs::read_to_string(dir.join("bitlk-images/images.conf")).unwrap();
    let section = conf.split("[bitlk-aes-xts-128]").nth(1).unwrap();
    let rp = section.lines().find_map(|l| l.trim().strip_prefix("RP=")).unwrap().trim().to_string();
    (dir.join("bitlk-images/bitlk-aes-xts-128.img"), rp)
}

fn refused(cmd: &mut Command, why: &str) -> String {
    let o = run(cmd);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "accepted: {cmd:?}\n{err}");
    assert!(err.contains(why), "{cmd:?}: expected {why:?} in:\n{err}");
    err
}

fn temporaries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".rescue-"))
        .collect()
}

#[test]
fn outputs_must_be_regular_files_and_never_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let profile = d.join("p.toml");
    fs::copy(default_profile(), &profile).unwrap();
    let before = fs::read(&profile).unwrap();
    let build = |out: &Path| {
        let mut c = rescue();
        c.arg("build").arg("--profile").arg(&profile).arg("--out").arg(out);
        c
    };
    refused(&mut build(Path::new("/dev/null")), "rescue flash");
    {
        use std::os::unix::fs::FileTypeExt;
        assert!(Path::new("/dev/null").metadata().unwrap().file_type().is_char_device(), "/dev/null was replaced");
    }
    refused(&mut build(d), "is a folder");
    refused(&mut build(&profile), "is also an input");
    refused(&mut build(&d.join("no/such/dir/x.img")), "does not exist");
    assert_eq!(fs::read(&profile).unwrap(), before, "the profile was changed");

    let (vol, rp) = bitlocker_copy(d);
    let vol_before = sha256_hex(&fs::read(&vol).unwrap());
    let rp_file = d.join("rp.txt");
    fs::write(&rp_file, format!("{rp}\n")).unwrap();
    let unlock = |out: &Path| {
        let mut c = rescue();
        c.args(["unlock", "--recovery-password-file"]).arg(&rp_file).arg("--out").arg(out).arg(&vol);
        c
    };
    refused(&mut unlock(&vol), "is also an input");
    refused(&mut unlock(d), "is a folder");
    assert_eq!(sha256_hex(&fs::read(&vol).unwrap()), vol_before, "the encrypted volume was changed");
    assert!(temporaries(d).is_empty() && temporaries(&d.join("bitlk-images")).is_empty());

    let report = d.join("r.json");
    fs::write(&report, "{}").unwrap();
    refused(rescue().arg("collect").arg(&report).arg("--out").arg(&report), "is also an input");
    assert_eq!(fs::read(&report).unwrap(), b"{}");
}

/// Ctrl-C or SIGTERM in the middle of `unlock` leaves no decrypted temporary file.
#[test]
fn interrupted_unlock_leaves_no_decrypted_data() {
    let dir = tempfile::tempdir().unwrap();
    let (vol, rp) = bitlocker_copy(dir.path());
    let rp_file = dir.path().join("rp.txt");
    fs::write(&rp_file, format!("{rp}\n")).unwrap();
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let mut child = rescue()
        .args(["unlock", "--recovery-password-file"])
        .arg(&rp_file)
        .arg("--out")
        .arg(out_dir.join("plain.img"))
        .arg(&vol)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while temporaries(&out_dir).is_empty() {
        assert!(std::time::Instant::now() < deadline, "unlock never started writing");
        assert!(child.try_wait().unwrap().is_none(), "unlock ended before it could be interrupted");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    ok(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let status = child.wait().unwrap();
    assert!(!status.success(), "unlock was not interrupted");
    assert!(temporaries(&out_dir).is_empty(), "left behind: {:?}", temporaries(&out_dir));
    assert!(!out_dir.join("plain.img").exists());
}

#[test]
fn apply_checks_its_outputs_first_and_nothing_found_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let disk = d.join("zeros.img");
    fs::File::create(&disk).unwrap().set_len(16 << 20).unwrap();
    // A disk with no NTFS volume: an error, not "0 deleted".
    refused(rescue().arg("apply").arg("--profile").arg(default_profile()).arg(&disk), "no NTFS volume found");
    let random = d.join("random.img");
    fs::write(&random, (0..4 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<u8>>())
        .unwrap();
    refused(rescue().arg("apply").arg("--profile").arg(default_profile()).arg(&random), "no NTFS volume found");
    // A report that cannot be written stops the run before the disk is touched.
    let before = fs::read(&random).unwrap();
    refused(
        rescue().arg("apply").arg("--profile").arg(default_profile()).arg("--report").arg(d).arg(&random),
        "--report",
    );
    refused(
        rescue().arg("apply").arg("--profile").arg(default_profile()).arg("--report").arg(&random).arg(&random),
        "is also an input",
    );
    assert_eq!(fs::read(&random).unwrap(), before);
}

/// A second writer on the same image is refused while the first holds it
/// (the first here is util-linux's `flock`, an independent lock holder).
#[test]
fn one_disk_one_writer() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    fs::File::create(&img).unwrap().set_len(16 << 20).unwrap();
    let mut holder = Command::new("flock").args(["--no-fork", "-x"]).arg(&img).args(["sleep", "60"]).spawn().unwrap();
    // Wait until it holds the lock (a second `flock -n` fails), however loaded the machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while Command::new("flock").args(["-n", "-x"]).arg(&img).arg("true").status().unwrap().success() {
        assert!(std::time::Instant::now() < deadline, "flock never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let err = refused(rescue().arg("apply").arg("--profile").arg(default_profile()).arg(&img), "in use by another");
    assert!(err.contains(&img.display().to_string()), "{err}");
    refused(rescue().arg("ls").arg(&img), "in use by another");
    let _ = holder.kill();
    let _ = holder.wait();
    // Free again: the run goes on (and finds no NTFS volume).
    refused(rescue().arg("apply").arg("--profile").arg(default_profile()).arg(&img), "no NTFS volume found");
}

#[test]
fn flash_refuses_itself_empty_and_truncated_images_even_forced() {
    let dir = tempfile::tempdir().unwrap();
    let img = build_image(dir.path(), "stick.img", &["--size", "40"]);
    let flash = |image: &Path, target: &Path| {
        let mut c = rescue();
        c.arg("flash").arg(image).arg(target).args(["--yes", "--force"]);
        c
    };
    refused(&mut flash(&img, &img), "is the image itself");
    let empty = dir.path().join("empty.img");
    fs::write(&empty, b"").unwrap();
    refused(&mut flash(&empty, &dir.path().join("t1")), "is empty");
    let cut = dir.path().join("cut.img");
    fs::write(&cut, &fs::read(&img).unwrap()[..20 << 20]).unwrap();
    refused(&mut flash(&cut, &dir.path().join("t2")), "is truncated");
    assert!(!dir.path().join("t1").exists() && !dir.path().join("t2").exists());
}

/// Strings from profiles and images reach the terminal escaped: a profile
/// whose description clears the screen and prints a fake verdict is shown
/// as text. `profile check` lists every problem and warns about risky rules.
#[test]
fn printed_text_is_escaped_and_profile_check_reports_everything() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let evil = d.join("evil.toml");
    fs::write(&evil, "name = \"evil\"\ndescription = \"\\u001b[2J\\u001b[32mFIXED\"\n[[delete]]\npath = 'x.sys'\n")
        .unwrap();
    let img = d.join("evil.img");
    ok(rescue().arg("build").arg("--profile").arg(&evil).args(["--size", "40", "--out"]).arg(&img));
    let shown = run(rescue().arg("inspect").arg(&img));
    assert!(!shown.stdout.contains(&0x1b), "a raw escape reached the terminal");
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("\\u{1b}[2J"),
        "{}",
        String::from_utf8_lossy(&shown.stdout)
    );

    let bad = d.join("bad.toml");
    fs::write(&bad, "name = \"bad\"\n[[delete]]\npath = \"Windows\\foo.sys\"\n[[delete]]\npath = 'CON'\n").unwrap();
    let err = refused(rescue().args(["profile", "check"]).arg(&bad), "2 problem(s)");
    assert!(err.contains("line 3, column 8") && err.contains("single quotes") && err.contains("line 5"), "{err}");
    let risky = d.join("risky.toml");
    fs::write(
        &risky,
        "name = \"r\"\n[[delete]]\npath = '*.sys'\n[[delete]]\npath = 'Windows\\System32\\config\\SAM'\n",
    )
    .unwrap();
    let out = ok(rescue().args(["profile", "check"]).arg(&risky));
    assert!(out.contains("warning:") && out.contains("volume root") && out.contains("registry hives"), "{out}");
    // A profile saved as UTF-16 (Notepad's "Unicode") is read as such.
    let utf16 = d.join("utf16.toml");
    let text = fs::read_to_string(default_profile()).unwrap();
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
    fs::write(&utf16, bytes).unwrap();
    ok(rescue().args(["profile", "check"]).arg(&utf16));
}
