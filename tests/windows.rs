//! `rescue.exe` (target x86_64-pc-windows-gnu, linked by Debian's mingw-w64)
//! under wine: it builds an image byte-identical to the Linux build's,
//! inspects images, checks key files, fixes a disk image, and fails cleanly
//! (a message, exit code 1, never a panic), and asks the site PIN on a
//! Windows console without echo (wine's console on a pseudo-terminal). Wine
//! 8 lacks Windows 10's bcryptprimitives.dll: a stand-in
//! (tests/support/wine) is put beside the exe. The physical-drive code (devices, flash) is covered by unit tests of
//! its checks; wine has no real drives to write.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use support::*;

const BAD: &str = "Windows/System32/drivers/CrowdStrike/C-00000291-00000000-00000032.sys";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A folder holding rescue.exe (built, or checked fresh, by cargo) and the DLL stand-in.
fn exe_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Always through cargo: a stale rescue.exe would carry other agents (nothing to do when fresh).
        ok(Command::new(env!("CARGO")).current_dir(root()).args([
            "build",
            "--release",
            "--locked",
            "--target",
            "x86_64-pc-windows-gnu",
            "-p",
            "image-builder",
        ]));
        let exe = root().join("target/x86_64-pc-windows-gnu/release/rescue.exe");
        let dir = root().join("target/wine-test");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&exe, dir.join("rescue.exe")).unwrap();
        ok(Command::new("x86_64-w64-mingw32-gcc")
            .args(["-shared", "-o"])
            .arg(dir.join("bcryptprimitives.dll"))
            .arg(root().join("tests/support/wine/bcryptprimitives.c"))
            .arg("-ladvapi32"));
        // The wine prefix is made by the first run: once, before the tests run in parallel.
        let _ = support::limits::output(
            Command::new("/usr/lib/wine/wine64")
                .arg(dir.join("rescue.exe"))
                .arg("--version")
                .env("WINEDEBUG", "-all")
                .env("WINEPREFIX", root().join("target/wine-prefix")),
        );
        dir
    })
}

/// A Linux path as wine names it (drive Z: is `/`).
fn win(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

/// Runs `rescue.exe ARGS` under wine.
fn wine(args: &[&str]) -> Output {
    support::limits::output(
        Command::new("/usr/lib/wine/wine64")
            .arg(exe_dir().join("rescue.exe"))
            .args(args)
            .env("WINEDEBUG", "-all")
            .env("WINEPREFIX", root().join("target/wine-prefix"))
            .env("SOURCE_DATE_EPOCH", "1721347200"),
    )
    .expect("wine64 is missing: run scripts/test, which installs it")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

#[test]
fn windows_build_is_byte_identical_to_the_linux_build() {
    let dir = tempfile::tempdir().unwrap();
    let profile = root().join("profiles/crowdstrike-c00000291.toml");
    for (format, name) in [("usb", "stick.img"), ("iso", "stick.iso")] {
        let (w, l) = (dir.path().join(format!("win-{name}")), dir.path().join(format!("lin-{name}")));
        let o = wine(&["build", "--profile", &win(&profile), "--format", format, "--out", &win(&w)]);
        assert!(o.status.success(), "{}", text(&o));
        ok(rescue()
            .env("SOURCE_DATE_EPOCH", "1721347200")
            .arg("build")
            .arg("--profile")
            .arg(&profile)
            .args(["--format", format])
            .arg("--out")
            .arg(&l));
        assert!(
            std::fs::read(&w).unwrap() == std::fs::read(&l).unwrap(),
            "{format}: the Windows and Linux builds differ"
        );
        // And rescue.exe reads the image back.
        let o = wine(&["inspect", &win(&w)]);
        let t = text(&o);
        assert!(
            o.status.success() && t.contains("BOOTX64.EFI (x86_64)") && t.contains("BOOTAA64.EFI (aarch64)"),
            "{t}"
        );
        assert!(t.contains("crowdstrike-c00000291"), "{t}");
    }
}

#[test]
fn windows_checks_key_files_and_fixes_a_disk_image() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("site.csv");
    std::fs::write(
        &keys,
        "KeyID,RecoveryKey\r\n{11111111-2222-3333-4444-555555555555},236808-089419-192665-046024-405482-219285-362142-691911\r\n",
    )
    .unwrap();
    let o = wine(&["keys", "check", &win(&keys)]);
    let t = text(&o);
    assert!(o.status.success() && t.contains("1 distinct Key ID(s) with a valid key"), "{t}");
    assert!(!t.contains("236808"), "the key was printed");
    // apply on a disk image, then ntfs-3g checks what it did.
    let disk = make_test_disk(dir.path(), "pc.img", &["--decoy"]);
    let profile = root().join("profiles/crowdstrike-c00000291.toml");
    let backups = dir.path().join("backups");
    let o = wine(&["apply", "--profile", &win(&profile), "--backup-dir", &win(&backups), &win(&disk.path)]);
    let t = text(&o);
    assert!(o.status.success() && t.contains("1 deleted"), "{t}");
    disk.check_with_ntfs3g(&[BAD]);
    let o = wine(&["ls", &win(&disk.path), "Windows\\System32\\drivers\\CrowdStrike"]);
    assert!(o.status.success() && text(&o).contains("C-00000291-decoy.sys"), "{}", text(&o));
}

#[test]
fn windows_errors_are_messages_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\n[[delete]]\npath = 'C:\\Windows\\x.sys'\n").unwrap();
    let missing = dir.path().join("missing.img");
    let img = dir.path().join("x.img");
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    for (args, want) in [
        (vec!["build", "--profile", &win(&missing), "--out", &win(&img)], "missing.img"),
        (vec!["profile", "check", &win(&bad)], "line 3"),
        (vec!["inspect", &win(&img)], "FAT"),
        (vec!["apply", "--profile", &win(&bad), &win(&img)], "line 3"),
        (vec!["flash", &win(&img), "\\\\.\\PhysicalDrive99", "--yes"], "rescue image"),
    ] {
        let o = wine(&args);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {t}");
        assert!(t.contains(want) && !t.contains("panicked"), "{args:?}: {t}");
    }
    // devices lists what wine has (no physical drives, or wine's own), without failing.
    let o = wine(&["devices", "--all"]);
    assert!(o.status.success() && !text(&o).contains("panicked"), "{}", text(&o));
}

/// The site PIN is asked on a Windows console (wine's, on a pseudo-terminal
/// made by `script`), twice and without echo, and seals the keys: the
/// Linux side opens them with that PIN.
#[test]
fn windows_console_asks_the_pin_without_echo() {
    use rescue_engine::formats::keyring::{parse_guid, Keyring};
    let dir = tempfile::tempdir().unwrap();
    let (id, pw) = ("3F1F65A8-DE52-7100-7814-E8A25F2DD97F", "368291-516923-041811-671330-359073-074756-226138-163218");
    let keys = dir.path().join("k.csv");
    std::fs::write(&keys, format!("KeyID,RecoveryKey\n{id},{pw}\n")).unwrap();
    let img = dir.path().join("pin.img");
    let cmd = format!(
        "/usr/lib/wine/wine64 '{}' build --profile '{}' --size 40 --keys '{}' --out '{}'",
        exe_dir().join("rescue.exe").display(),
        win(&default_profile()),
        win(&keys),
        win(&img)
    );
    let prefix = root().join("target/wine-prefix");
    let env = [("WINEDEBUG", "-all"), ("WINEPREFIX", prefix.to_str().unwrap()), ("SOURCE_DATE_EPOCH", "1721347200")];
    let pin = "Tr0ub4dor-77";
    let (ok, shown) = on_terminal(&cmd, &env, &[("Site PIN", pin), ("PIN again", pin)]);
    assert!(ok && shown.contains("sealed with the site PIN"), "{shown}");
    assert!(!shown.contains("Tr0ub4dor"), "the PIN was echoed:\n{shown}");
    let kr = Keyring::parse(&stick_file(&img, rescue_engine::formats::stick::KEYS_PATH).unwrap()).unwrap();
    assert_eq!(&kr.open(pin).unwrap().password(&parse_guid(id).unwrap()).unwrap()[..], pw);
}
