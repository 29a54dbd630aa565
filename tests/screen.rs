//! The technician's screen, read as a person would: QEMU's `screendump` of
//! the agent's graphics screen, read back with OCR (tesseract). And the
//! serial port, which must never carry a typed key's digits, with the
//! graphics screen and with the text-console fallback (`-vga none`).

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

/// A recovery password (every block a multiple of 11 below 720896).
const RP: &str = "466895-217492-569250-069608-104434-135707-527241-083622";

/// The default profile, ending with `wait` so that the verdict stays on screen.
fn waiting_stick(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(default_profile()).unwrap().replace("action = \"reboot\"", "action = \"wait\"");
    assert!(text.contains("action = \"wait\""), "the default profile has no finish action to change");
    let profile = dir.join("wait.toml");
    std::fs::write(&profile, text).unwrap();
    let stick = dir.join("stick.img");
    ok(rescue().arg("build").arg("--profile").arg(&profile).args(["--size", "40", "--out"]).arg(&stick));
    stick
}

/// OCR text with the look-alikes of a hex font folded (O/0, I/l/1, S/5, B/8).
fn folded(s: &str) -> String {
    s.to_uppercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| match c {
            'O' | 'Q' | 'D' => '0',
            'I' | 'L' | '|' => '1',
            'S' => '5',
            'B' => '8',
            'Z' => '2',
            'G' => '6',
            c => c,
        })
        .collect()
}

/// The screen now, shrunk by `factor`, as OCR reads it.
/// True when `hay` holds `needle` with at most `slack` characters OCR got
/// wrong (after folding): tesseract now and then reads a 9 as G or S in a
/// random Key ID, which is OCR's limit, not the screen's.
fn reads_as(hay: &str, needle: &str, slack: usize) -> bool {
    let (h, n): (Vec<char>, Vec<char>) = (folded(hay).chars().collect(), folded(needle).chars().collect());
    h.windows(n.len()).any(|w| w.iter().zip(&n).filter(|(a, b)| a != b).count() <= slack)
}

/// The screen as OCR reads it, read again (each second, up to 30 s) until
/// `seen` holds: a loaded machine may draw late. Returns the last reading.
fn screen_until(vm: &Qemu, dir: &Path, name: &str, factor: usize, seen: impl Fn(&str) -> bool) -> String {
    let start = std::time::Instant::now();
    loop {
        let text = read_screen(vm, dir, name, factor);
        if seen(&text) || start.elapsed() > Duration::from_secs(30) {
            return text;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn read_screen(vm: &Qemu, dir: &Path, name: &str, factor: usize) -> String {
    let full = dir.join(format!("{name}.ppm"));
    vm.screendump(&full);
    if let Some(keep) = std::env::var_os("RESCUE_KEEP_SCREENS") {
        let _ = std::fs::copy(&full, Path::new(&keep).join(format!("{name}.ppm")));
    }
    if factor == 1 {
        return ocr(&full);
    }
    let small = dir.join(format!("{name}-small.ppm"));
    shrink_ppm(&full, &small, factor);
    ocr(&small)
}

/// Waits for the verdict line (the screen is read with [`screen_until`]).
fn wait_verdict(vm: &mut Qemu) -> String {
    vm.wait_line(|l| l.starts_with("RESULT: "), Duration::from_secs(240))
}

fn assert_no_key_digits(serial: &str) {
    for (i, block) in RP.split('-').enumerate() {
        assert!(!serial.contains(block), "block {} of the typed key is in the raw serial output", i + 1);
    }
    assert!(!serial.contains(&RP.replace('-', "")[..12]));
}

#[test]
fn bitlocker_prompt_shows_the_key_id_and_the_verdict_reads_from_afar() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "bl.img", &["--bitlocker", RP]);
    let stick = waiting_stick(dir.path());
    let mut vm = Qemu::boot(&stick, Media::UsbStick, &[(disk.path.as_path(), Bus::Ahci)], &[]);
    vm.wait_line(|l| l.starts_with("KEY: "), Duration::from_secs(120));
    assert!(vm.count_lines(|l| l == "screen: graphics") == 1, "{}", vm.serial_text());
    let key_id = vm
        .agent_lines()
        .iter()
        .find_map(|l| l.trim().strip_prefix("Key ID: ").map(|r| r[..8].to_string()))
        .expect("a Key ID line on serial");
    let prompt = screen_until(&vm, dir.path(), "prompt", 1, |t| reads_as(t, &key_id, 2));
    assert!(reads_as(&prompt, &key_id, 2), "the Key ID {key_id} is not on the screen:\n{prompt}");
    assert!(prompt.contains("recovery key"), "{prompt}");
    // Typed in blocks, as a person would.
    for block in RP.split('-') {
        vm.type_text(block);
        std::thread::sleep(Duration::from_millis(200));
    }
    let typed = screen_until(&vm, dir.path(), "typed", 1, |t| folded(t).contains(&folded(&RP[..13])));
    assert!(folded(&typed).contains(&folded(&RP[..13])), "the typed digits are not on the screen:\n{typed}");
    vm.type_text("\r");
    let result = wait_verdict(&mut vm);
    assert_eq!(result, "RESULT: FIXED", "{}", vm.serial_text());
    // Readable at a quarter of the size in each direction: from across the aisle.
    let far = screen_until(&vm, dir.path(), "verdict", 4, |t| t.contains("FIXED"));
    assert!(far.contains("FIXED"), "the verdict cannot be read at 1/4 size:\n{far}");
    assert_no_key_digits(&vm.serial_text());
    drop(vm);
    disk.check_with_ntfs3g(&["Windows/System32/drivers/CrowdStrike/C-00000291-00000000-00000032.sys"]);
}

#[test]
fn text_fallback_without_graphics_still_works_and_masks() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "bl.img", &["--bitlocker", RP]);
    let stick = waiting_stick(dir.path());
    let mut vm = Qemu::boot(&stick, Media::UsbStick, &[(disk.path.as_path(), Bus::Ahci)], &["-vga", "none"]);
    vm.wait_line(|l| l.starts_with("KEY: "), Duration::from_secs(120));
    assert!(vm.count_lines(|l| l == "screen: text console") == 1, "{}", vm.serial_text());
    // Two blocks first, then wait for their echo: the prompt takes every key
    // already queued before it redraws (scanners type fast), so typing the
    // whole key at once may show no partial field at all.
    vm.type_text(&RP[..13]);
    let masked = vm.wait_serial(|s| s.contains("######-######"), Duration::from_secs(60));
    assert!(masked, "the masked field is not on the console:\n{}", vm.serial_text());
    vm.type_text(&format!("{}\r", &RP[13..]));
    assert_eq!(wait_verdict(&mut vm), "RESULT: FIXED", "{}", vm.serial_text());
    assert_no_key_digits(&vm.serial_text());
}

#[test]
fn failed_and_nothing_to_do_screens_are_readable() {
    let dir = tempfile::tempdir().unwrap();
    let stick = waiting_stick(dir.path());
    // A PC without Windows: FAILED, with the reason below.
    let data = make_test_disk(dir.path(), "data.img", &["--no-windows"]);
    let mut vm = Qemu::boot(&stick, Media::UsbStick, &[(data.path.as_path(), Bus::Ahci)], &[]);
    assert!(wait_verdict(&mut vm).starts_with("RESULT: FAILED"), "{}", vm.serial_text());
    let failed = screen_until(&vm, dir.path(), "failed", 4, |t| t.contains("FAILED"));
    assert!(failed.contains("FAILED"), "{failed}");
    let failed_full = screen_until(&vm, dir.path(), "failed-full", 1, |t| t.contains("volume found on any disk"));
    assert!(failed_full.contains("volume found on any disk"), "the reason is not on the screen:\n{failed_full}");
    drop(vm);
    // A Windows PC without the faulty file: NOTHING TO DO.
    let clean = make_test_disk(dir.path(), "clean.img", &["--seed", "5"]);
    let profile = dir.path().join("none.toml");
    std::fs::write(
        &profile,
        "name = \"nothing\"\n[[delete]]\npath = 'Windows\\no-such-file.sys'\n[finish]\naction = \"wait\"\n",
    )
    .unwrap();
    let stick2 = dir.path().join("none.img");
    ok(rescue().arg("build").arg("--profile").arg(&profile).args(["--size", "40", "--out"]).arg(&stick2));
    let mut vm = Qemu::boot(&stick2, Media::UsbStick, &[(clean.path.as_path(), Bus::Ahci)], &[]);
    assert_eq!(wait_verdict(&mut vm), "RESULT: NOTHING TO DO", "{}", vm.serial_text());
    let nothing = screen_until(&vm, dir.path(), "nothing", 4, |t| t.contains("NOTHING TO DO"));
    assert!(nothing.contains("NOTHING TO DO"), "{nothing}");
}

/// The BCD store on a test disk's ESP, as mtools reads it and hivex reads that:
/// the `safeboot` element of the default loader, if any.
fn safeboot(disk: &TestDisk) -> Option<String> {
    let esp = format!("{}@@1M", disk.path.display());
    let o = run(std::process::Command::new("mtype").args(["-i", &esp, "::/EFI/Microsoft/Boot/BCD"]));
    assert!(o.status.success(), "mtype: {}", String::from_utf8_lossy(&o.stderr));
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), &o.stdout).unwrap();
    let dump =
        ok(std::process::Command::new("/usr/bin/python3").arg(root().join("tests/support/hive_dump.py")).arg(f.path()));
    dump.lines()
        .find(|l| l.contains("\\Elements\\25000080\tElement\t"))
        .map(|l| l.rsplit('\t').next().unwrap().to_string())
}

/// A PC whose BitLocker key is not at hand: the technician presses Esc, and
/// with `[bitlocker] when_locked = "safe_mode"` the agent sets Safe Mode on
/// that disk's BCD store only — the encrypted volume stays byte for byte —
/// and fills the screen with SAFE MODE SET and the profile's instructions.
/// A later stick that has the key and says `safe_mode = "off"` undoes it.
#[test]
fn locked_pc_gets_safe_mode_set_on_its_boot_store_and_undone_later() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(dir.path(), "bl.img", &["--bitlocker", RP, "--hives"]);
    let (vol, vol_after) = (dir.path().join("vol"), dir.path().join("vol-after"));
    disk.extract_volume(&vol);
    assert_eq!(safeboot(&disk), None, "the test disk starts without safeboot");
    let text = std::fs::read_to_string(default_profile()).unwrap().replace("action = \"reboot\"", "action = \"wait\"")
        + "\n[bitlocker]\nwhen_locked = \"safe_mode\"\n\
           instructions = \"Sign in as an administrator and delete the channel file, then run bcdedit\"\n";
    let profile = dir.path().join("locked.toml");
    std::fs::write(&profile, text).unwrap();
    let stick = dir.path().join("stick.img");
    ok(rescue().arg("build").arg("--profile").arg(&profile).args(["--size", "40", "--out"]).arg(&stick));
    let mut vm = Qemu::boot(&stick, Media::UsbStick, &[(disk.path.as_path(), Bus::Ahci)], &[]);
    vm.wait_line(|l| l.starts_with("KEY: "), Duration::from_secs(120));
    vm.type_text("\x1b");
    let result = wait_verdict(&mut vm);
    assert!(result.starts_with("RESULT: SAFE MODE SET"), "{}", vm.serial_text());
    let far = screen_until(&vm, dir.path(), "safe-mode", 4, |t| t.contains("SAFE MODE SET"));
    assert!(far.contains("SAFE MODE SET"), "not readable at a quarter of the size:\n{far}");
    let near = screen_until(&vm, dir.path(), "safe-mode-full", 1, |t| t.contains("administrator"));
    assert!(near.contains("Sign in as an administrator"), "the instructions are not on the screen:\n{near}");
    drop(vm);
    // The report says so; hivex reads safeboot = minimal (0) on the default loader.
    let reports: Vec<String> =
        stick_list(&stick, "rescue/reports").into_iter().filter(|p| p.ends_with(".json")).collect();
    let report: serde_json::Value = serde_json::from_slice(&stick_file(&stick, &reports[0]).unwrap()).unwrap();
    assert_eq!(report["outcome"], "SAFE MODE SET", "{report:#}");
    assert!(report["reason"].as_str().unwrap().starts_with("Sign in as an administrator"), "{report:#}");
    assert_eq!(report["safe_mode"][0]["for_locked_bitlocker"], true, "{report:#}");
    assert_eq!(report["safe_mode"][0]["action"], "set", "{report:#}");
    assert_eq!(safeboot(&disk).as_deref(), Some("0000000000000000"));
    disk.extract_volume(&vol_after);
    assert!(std::fs::read(&vol).unwrap() == std::fs::read(&vol_after).unwrap(), "the BitLocker volume was written");

    // Later, with the key: a stick whose profile turns Safe Mode off removes it.
    let undo = std::fs::read_to_string(default_profile())
        .unwrap()
        .replace("action = \"reboot\"", "action = \"reboot\"\nsafe_mode = \"off\"");
    assert!(undo.contains("safe_mode = \"off\""));
    let undo_profile = dir.path().join("undo.toml");
    std::fs::write(&undo_profile, undo).unwrap();
    let stick2 = dir.path().join("undo.img");
    ok(rescue().arg("build").arg("--profile").arg(&undo_profile).args(["--size", "40", "--out"]).arg(&stick2));
    let mut vm = Qemu::boot(&stick2, Media::UsbStick, &[(disk.path.as_path(), Bus::Ahci)], &[]);
    vm.wait_line(|l| l.starts_with("KEY: "), Duration::from_secs(120));
    vm.type_text(&format!("{}\r", RP.replace('-', "")));
    assert_eq!(wait_verdict(&mut vm), "RESULT: FIXED", "{}", vm.serial_text());
    vm.wait_exit(Duration::from_secs(60));
    assert_eq!(safeboot(&disk), None, "safeboot is still set");
}
