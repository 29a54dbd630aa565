//! Secure Boot: our Authenticode signatures checked by tools we did not
//! write (sbverify, osslsigncode, openssl), and by OVMF with Secure Boot on:
//! a varstore with our certificate in db (made by virt-fw-vars) boots the
//! signed stick and refuses an unsigned one and one altered by a byte; with
//! Microsoft's keys, shim starts, MokManager enrolls our certificate from the
//! stick, and the agent then runs under shim.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

fn signed_stick(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let k = key();
    let mut args = vec!["--sign-key", k.key.to_str().unwrap(), "--sign-cert", k.crt.to_str().unwrap()];
    args.extend_from_slice(extra);
    build_image(dir, name, &args)
}

fn agent_of(stick: &Path, path: &str, out: &Path) -> PathBuf {
    std::fs::write(out, stick_file(stick, path).unwrap_or_else(|| panic!("no {path} on the stick"))).unwrap();
    out.to_path_buf()
}

/// Replaces a file on a stick image's ESP (mtools).
fn put_on_stick(stick: &Path, path: &str, from: &Path) {
    ok(Command::new("mcopy")
        .args(["-o", "-i"])
        .arg(format!("{}@@1M", stick.display()))
        .arg(from)
        .arg(format!("::/{path}")));
}

fn sbverify(cert: &Path, efi: &Path) -> bool {
    run(Command::new("sbverify").arg("--cert").arg(cert).arg(efi)).status.success()
}

fn osslsigncode(cert: &Path, efi: &Path) -> (bool, String) {
    let o = run(Command::new("osslsigncode").arg("verify").arg("-CAfile").arg(cert).arg("-in").arg(efi));
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
}

fn inspect_json(image: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(rescue().arg("inspect").arg("--json").arg(image))).unwrap()
}

fn signatures_of<'a>(report: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    report["efi_signatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("no {path} in {report}"))
}

fn openssl_fingerprint(crt: &Path) -> String {
    let out = ok(Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha256", "-in"]).arg(crt));
    out.trim().rsplit('=').next().unwrap().replace(':', "").to_lowercase()
}

/// Flips one byte in the middle of a file.
fn alter_one_byte(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    let at = b.len() / 3;
    b[at] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

#[test]
fn genkey_makes_a_code_signing_key_and_certificate() {
    let k = key();
    let text = ok(Command::new("openssl").args(["x509", "-noout", "-text", "-in"]).arg(&k.crt));
    assert!(text.contains("Subject: CN = Rescue Test"), "{text}");
    assert!(text.contains("Code Signing"), "no code-signing EKU:\n{text}");
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
    ok(Command::new("openssl").args(["rsa", "-check", "-noout", "-in"]).arg(&k.key));
    // The DER file is the same certificate.
    let der_pem = ok(Command::new("openssl").args(["x509", "-inform", "der", "-in"]).arg(&k.der));
    assert_eq!(der_pem.trim(), std::fs::read_to_string(&k.crt).unwrap().trim());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&k.key).unwrap().permissions().mode() & 0o777, 0o600);
    // Never overwrites a key.
    let again =
        run(rescue().args(["secureboot", "genkey", "--name", "Rescue Test"]).arg("--out").arg(k.key.parent().unwrap()));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn signed_agent_verifies_with_sbverify_and_osslsigncode() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let stick = signed_stick(dir.path(), "signed.img", &[]);
    let agent = agent_of(&stick, "EFI/BOOT/BOOTX64.EFI", &dir.path().join("agent.efi"));
    assert!(sbverify(&k.crt, &agent), "sbverify refused our signature");
    let (good, text) = osslsigncode(&k.crt, &agent);
    assert!(good, "osslsigncode refused our signature:\n{text}");
    assert!(text.contains("Signature verification: ok"), "{text}");
    // osslsigncode recomputes the PE checksum and flags a wrong one.
    assert!(text.contains("PE checksum") && !text.contains("MISMATCH"), "{text}");

    // Another certificate does not verify it: the checks above can fail.
    let other = tempfile::tempdir().unwrap();
    ok(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=Someone Else", "-keyout"])
        .arg(other.path().join("o.key"))
        .arg("-out")
        .arg(other.path().join("o.crt")));
    assert!(!sbverify(&other.path().join("o.crt"), &agent));

    // inspect: signed, by whom, and the signature matches the image.
    let r = inspect_json(&stick);
    let s = &signatures_of(&r, "EFI/BOOT/BOOTX64.EFI")["signatures"][0];
    assert_eq!(s["signer_subject"], "CN=Rescue Test");
    assert_eq!(s["signer_sha256"].as_str().unwrap(), openssl_fingerprint(&k.crt));
    assert_eq!(s["hash_matches"], true);
    assert_eq!(s["signature_valid"], true);
    let text = ok(rescue().arg("inspect").arg(&stick));
    assert!(text.contains("signed by CN=Rescue Test: signature matches the image"), "{text}");
    assert_eq!(r["integrity"]["signed"], true);
    assert!(text.contains("signed: an edit of the agent or of the profile sealed in it breaks"), "{text}");

    // The agent still carries its version, .sbat and NX compatibility.
    assert_eq!(r["agent_version"], env!("CARGO_PKG_VERSION"));
    let headers = ok(Command::new("objdump").arg("-h").arg(&agent));
    assert!(headers.contains(".sbat"), "no .sbat section:\n{headers}");
    let p = ok(Command::new("objdump").arg("-p").arg(&agent));
    assert!(p.contains("NX_COMPAT"), "not NX-compatible:\n{p}");
}

#[test]
fn altered_agent_no_longer_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let stick = signed_stick(dir.path(), "altered.img", &[]);
    let agent = agent_of(&stick, "EFI/BOOT/BOOTX64.EFI", &dir.path().join("agent.efi"));
    alter_one_byte(&agent);
    assert!(!sbverify(&k.crt, &agent), "sbverify accepted an altered agent");
    assert!(!osslsigncode(&k.crt, &agent).0, "osslsigncode accepted an altered agent");
    put_on_stick(&stick, "EFI/BOOT/BOOTX64.EFI", &agent);
    let r = inspect_json(&stick);
    let s = &signatures_of(&r, "EFI/BOOT/BOOTX64.EFI")["signatures"][0];
    assert_eq!(s["hash_matches"], false);
    assert!(ok(rescue().arg("inspect").arg(&stick)).contains("SIGNATURE DOES NOT MATCH"));
}

#[test]
fn keys_made_by_openssl_sign_too_pkcs1_and_4096_bits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:4096",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=Org 4096/O=Example Org",
            "-keyout",
        ])
        .arg(d.join("k8.pem"))
        .arg("-out")
        .arg(d.join("c.pem")));
    ok(Command::new("openssl")
        .args(["rsa", "-traditional", "-in"])
        .arg(d.join("k8.pem"))
        .arg("-out")
        .arg(d.join("k1.pem")));
    assert!(std::fs::read_to_string(d.join("k1.pem")).unwrap().contains("BEGIN RSA PRIVATE KEY"));
    let unsigned = build_image(d, "plain.img", &[]);
    let plain = agent_of(&unsigned, "EFI/BOOT/BOOTX64.EFI", &d.join("plain.efi"));
    for key in ["k8.pem", "k1.pem"] {
        let out = d.join(format!("signed-{key}.efi"));
        ok(rescue()
            .args(["secureboot", "sign", "--key"])
            .arg(d.join(key))
            .arg("--cert")
            .arg(d.join("c.pem"))
            .arg(&plain)
            .arg("--out")
            .arg(&out));
        assert!(sbverify(&d.join("c.pem"), &out), "sbverify refused a {key} signature");
        let (good, text) = osslsigncode(&d.join("c.pem"), &out);
        assert!(good, "{text}");
    }
}

#[test]
fn bad_signing_inputs_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let k = key();
    let openssl = |args: &[&str]| ok(Command::new("openssl").args(args).current_dir(d));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "30",
        "-subj",
        "/CN=Other",
        "-keyout",
        "other.key",
        "-out",
        "other.crt",
    ]);
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ec.key"]);
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", "small.key"]);
    openssl(&["pkcs8", "-topk8", "-in", "other.key", "-passout", "pass:secret", "-out", "enc.key"]);
    std::fs::write(
        d.join("notpe.efi"),
        b"MZ but not really a PE image, just text padding it out to more than 64 bytes....",
    )
    .unwrap();
    let kk = k.key.to_str().unwrap();
    let kc = k.crt.to_str().unwrap();
    let p = |n: &str| d.join(n).to_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--sign-key".into(), kk.into(), "--sign-cert".into(), p("other.crt")], "do not belong together"),
        (vec!["--sign-key".into(), p("ec.key"), "--sign-cert".into(), kc.into()], "only RSA"),
        (vec!["--sign-key".into(), p("small.key"), "--sign-cert".into(), kc.into()], "1024 bits"),
        (vec!["--sign-key".into(), p("enc.key"), "--sign-cert".into(), kc.into()], "encrypted"),
        (vec!["--sign-key".into(), kc.into(), "--sign-cert".into(), kc.into()], "not a PEM private key"),
        (vec!["--sign-key".into(), kk.into(), "--sign-cert".into(), kk.into()], "certificate"),
        (vec!["--sign-key".into(), kk.into()], "go together"),
        (vec!["--shim".into()], "--shim needs --sign-key"),
        (
            vec!["--sign-key".into(), kk.into(), "--sign-cert".into(), kc.into(), "--agent".into(), p("notpe.efi")],
            "agent",
        ),
        (
            vec![
                "--sign-key".into(),
                kk.into(),
                "--sign-cert".into(),
                kc.into(),
                "--shim".into(),
                "--shim-dir".into(),
                p(""),
            ],
            "shimx64.efi.signed",
        ),
    ];
    for (i, (args, want)) in cases.iter().enumerate() {
        let out = d.join(format!("out{i}.img"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = build_refused(&out, &args);
        assert!(err.contains(want), "{args:?}: expected an error about {want:?}, got:\n{err}");
    }
    let o = run(rescue()
        .args(["secureboot", "sign", "--key", kk, "--cert", kc])
        .arg(d.join("notpe.efi"))
        .arg("--out")
        .arg(d.join("x.efi")));
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("PE"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!d.join("x.efi").exists());
}

#[test]
fn shim_layout_uses_checked_shim_and_keeps_the_key_off_the_stick() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let stick = signed_stick(dir.path(), "shim.img", &["--shim"]);
    let shim_dir = Path::new("/usr/lib/shim");
    assert_eq!(
        stick_file(&stick, "EFI/BOOT/BOOTX64.EFI").unwrap(),
        std::fs::read(shim_dir.join("shimx64.efi.signed")).unwrap()
    );
    assert_eq!(
        stick_file(&stick, "EFI/BOOT/mmx64.efi").unwrap(),
        std::fs::read(shim_dir.join("mmx64.efi.signed")).unwrap()
    );
    assert_eq!(stick_file(&stick, "rescue/Rescue-Test.der").unwrap(), std::fs::read(&k.der).unwrap());
    let second = agent_of(&stick, "EFI/BOOT/grubx64.efi", &dir.path().join("grubx64.efi"));
    assert!(sbverify(&k.crt, &second));
    let r = inspect_json(&stick);
    assert_eq!(r["agent_version"], env!("CARGO_PKG_VERSION"));
    let shim = &signatures_of(&r, "EFI/BOOT/BOOTX64.EFI")["signatures"];
    assert!(shim.as_array().unwrap().iter().any(|s| s["signer_issuer"]
        .as_str()
        .unwrap_or("")
        .contains("Microsoft Corporation UEFI CA 2011")
        && s["hash_matches"] == true
        && s["signature_valid"] == true));
    // The MOK certificate's fingerprints, as openssl computes them (MokManager shows the SHA-1).
    let sha1 = ok(Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha1", "-in"]).arg(&k.crt));
    let sha1 = sha1.trim().rsplit('=').next().unwrap().to_lowercase();
    assert_eq!(r["mok_certificates"][0]["sha1"], sha1.as_str(), "{}", r["mok_certificates"]);
    assert_eq!(r["mok_certificates"][0]["sha256"], openssl_fingerprint(&k.crt).as_str());

    // The private key is nowhere on the image, in PEM or DER.
    let image = std::fs::read(&stick).unwrap();
    let der =
        run(Command::new("openssl").args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"]).arg(&k.key)).stdout;
    assert!(der.len() > 1000);
    assert!(!image.windows(der.len()).any(|w| w == der.as_slice()), "the private key (DER) is on the image");
    assert!(!image.windows(11).any(|w| w == b"PRIVATE KEY"), "a PEM private key is on the image");

    // A shim that is not validly signed is refused.
    let fake = tempfile::tempdir().unwrap();
    let mut bad = std::fs::read(shim_dir.join("shimx64.efi.signed")).unwrap();
    let at = bad.len() / 3;
    bad[at] ^= 1;
    std::fs::write(fake.path().join("shimx64.efi.signed"), bad).unwrap();
    std::fs::copy(shim_dir.join("mmx64.efi.signed"), fake.path().join("mmx64.efi.signed")).unwrap();
    let out = dir.path().join("badshim.img");
    let (key, crt, fake_dir) = (k.key.to_str().unwrap(), k.crt.to_str().unwrap(), fake.path().to_str().unwrap());
    let err = build_refused(&out, &["--sign-key", key, "--sign-cert", crt, "--shim", "--shim-dir", fake_dir]);
    assert!(err.contains("no signature holds"), "a tampered shim was accepted: {err}");

    // An agent without .sbat would be refused by shim: the build says so first.
    let plain = build_image(dir.path(), "plain.img", &[]);
    let mut efi = stick_file(&plain, "EFI/BOOT/BOOTX64.EFI").unwrap();
    let at = efi.windows(8).position(|w| w == b".sbat\0\0\0").expect("the agent has an .sbat section header");
    efi[at..at + 8].copy_from_slice(b".nosbat\0");
    std::fs::write(dir.path().join("nosbat.efi"), efi).unwrap();
    let out = dir.path().join("nosbat.img");
    let nosbat = dir.path().join("nosbat.efi");
    let err =
        build_refused(&out, &["--sign-key", key, "--sign-cert", crt, "--shim", "--agent", nosbat.to_str().unwrap()]);
    assert!(err.contains("no .sbat section"), "{err}");

    // Validly signed, but by the wrong keys: shim by us (not under Microsoft's
    // UEFI CA), or MokManager by us (not by the vendor key shim carries).
    let sign_with_ours = |from: &Path, to: &Path| {
        ok(rescue()
            .args(["secureboot", "sign", "--key"])
            .arg(&k.key)
            .arg("--cert")
            .arg(&k.crt)
            .arg(from)
            .arg("--out")
            .arg(to));
    };
    let build_with = |shim: &Path, mm: &Path| {
        let d = tempfile::tempdir().unwrap();
        std::fs::copy(shim, d.path().join("shimx64.efi.signed")).unwrap();
        std::fs::copy(mm, d.path().join("mmx64.efi.signed")).unwrap();
        let (key, crt, shim_dir) = (k.key.to_str().unwrap(), k.crt.to_str().unwrap(), d.path().to_str().unwrap());
        build_refused(
            &d.path().join("o.img"),
            &["--sign-key", key, "--sign-cert", crt, "--shim", "--shim-dir", shim_dir],
        )
    };
    let our_shim = dir.path().join("our-shim.efi");
    sign_with_ours(&shim_dir.join("shimx64.efi"), &our_shim);
    let err = build_with(&our_shim, &shim_dir.join("mmx64.efi.signed"));
    assert!(err.contains("not signed under Microsoft"), "{err}");
    let our_mm = dir.path().join("our-mm.efi");
    sign_with_ours(&shim_dir.join("mmx64.efi"), &our_mm);
    let err = build_with(&shim_dir.join("shimx64.efi.signed"), &our_mm);
    assert!(err.contains("not signed by the key shim trusts"), "{err}");
}

// ---- QEMU with Secure Boot on ----

const BANNER: &str = concat!("rescue-agent ", env!("CARGO_PKG_VERSION"));

/// Boots a stick that the firmware must refuse: the firmware says "Access
/// Denied" for the stick, and the agent never starts. The VM does not end
/// by itself (the firmware waits), so it is killed after the check.
fn refused(stick: &Path, vars: &Path) {
    let mut vm = Qemu::boot_secure(stick, Media::UsbStick, vars, &[]);
    let said = vm.wait_serial(|s| s.contains("No bootable option") || s.contains(BANNER), Duration::from_secs(60));
    let serial = vm.serial_text();
    assert!(said, "the firmware said nothing within 60 s:\n{serial}");
    assert!(!vm.agent_lines().iter().any(|l| l.starts_with("rescue-agent")), "the agent ran:\n{serial}");
    assert!(
        serial.lines().any(|l| l.contains("failed to load") && l.contains("USB") && l.contains("Access Denied")),
        "the firmware did not refuse the stick with Access Denied:\n{serial}"
    );
}

#[test]
fn secure_boot_runs_the_signed_agent() {
    let dir = tempfile::tempdir().unwrap();
    let vars = org_varstore(dir.path());
    let stick = signed_stick(dir.path(), "signed.img", &[]);
    let vm = Qemu::boot_secure(&stick, Media::UsbStick, &vars, &[]);
    let Run { lines, report, .. } = Run::finish(vm, &stick, Duration::from_secs(120));
    assert!(lines.iter().any(|l| l == BANNER), "no banner:\n{lines:#?}");
    assert!(lines.iter().any(|l| l == "secure boot: SecureBoot=1, SetupMode=0, Shim=no"), "{lines:#?}");
    assert!(
        report["notes"].as_array().unwrap().iter().any(|n| n == "secure boot: SecureBoot=1, SetupMode=0, Shim=no"),
        "report notes: {}",
        report["notes"]
    );
}

#[test]
fn secure_boot_runs_the_signed_iso_as_cdrom() {
    let dir = tempfile::tempdir().unwrap();
    let vars = org_varstore(dir.path());
    let iso = signed_stick(dir.path(), "signed.iso", &["--format", "iso"]);
    let mut vm = Qemu::boot_secure(&iso, Media::Cdrom, &vars, &[]);
    vm.wait_exit(Duration::from_secs(120));
    let lines = vm.agent_lines();
    assert!(lines.iter().any(|l| l == BANNER), "no banner:\n{}", vm.serial_text());
    assert!(lines.iter().any(|l| l == "secure boot: SecureBoot=1, SetupMode=0, Shim=no"), "{lines:?}");
}

#[test]
fn secure_boot_refuses_an_unsigned_agent() {
    let dir = tempfile::tempdir().unwrap();
    let vars = org_varstore(dir.path());
    let stick = build_image(dir.path(), "unsigned.img", &[]);
    refused(&stick, &vars);
}

#[test]
fn secure_boot_refuses_an_agent_altered_by_one_byte() {
    let dir = tempfile::tempdir().unwrap();
    let vars = org_varstore(dir.path());
    let stick = signed_stick(dir.path(), "altered.img", &[]);
    let agent = agent_of(&stick, "EFI/BOOT/BOOTX64.EFI", &dir.path().join("agent.efi"));
    alter_one_byte(&agent);
    put_on_stick(&stick, "EFI/BOOT/BOOTX64.EFI", &agent);
    refused(&stick, &vars);
}

// ---- shim + MOK, with Microsoft's keys ----

/// The serial text with terminal escape sequences removed.
fn screen(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                while let Some(&n) = chars.peek() {
                    chars.next();
                    if n.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Drives a text-mode firmware UI over the serial console: each step waits
/// for text that appears after the previous step's keys, then types.
struct Driver {
    mark: usize,
}

impl Driver {
    /// The screen text that arrived since the last keys were typed.
    fn since(&self, vm: &Qemu) -> String {
        let s = vm.serial_text();
        let mut m = self.mark.min(s.len());
        while !s.is_char_boundary(m) {
            m += 1;
        }
        screen(&s[m..])
    }

    fn wait(&self, vm: &mut Qemu, text: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let seen = self.since(vm);
            if seen.contains(text) {
                // MokManager reads keys once it has drawn the whole screen:
                // wait until the console has been quiet for a moment.
                let mut len = vm.serial_text().len();
                loop {
                    std::thread::sleep(Duration::from_millis(400));
                    let now = vm.serial_text().len();
                    if now == len {
                        return self.since(vm);
                    }
                    len = now;
                }
            }
            assert!(
                std::time::Instant::now() < deadline && vm.running(),
                "waited in vain for {text:?}; the screen since the last keys:\n{seen}\nwhole serial:\n{}",
                screen(&vm.serial_text())
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn keys(&mut self, vm: &mut Qemu, keys: &str) {
        self.mark = vm.serial_text().len();
        vm.type_text(keys);
    }
}

const DOWN: &str = "\u{1b}[B";
const ENTER: &str = "\r";

/// The position of `name` among the entries MokManager lists after
/// `header`: each entry sits in its own box, drawn with code page 437
/// bytes (not ASCII once read as UTF-8); the first repeated entry ends the list.
fn menu_index(screen: &str, header: &str, name: &str) -> usize {
    let tail = &screen[screen.rfind(header).map_or(0, |i| i + header.len())..];
    let mut items: Vec<&str> = Vec::new();
    for part in tail.split(|c: char| !c.is_ascii()).map(str::trim).filter(|t| !t.is_empty()) {
        if items.contains(&part) {
            break;
        }
        items.push(part);
    }
    items.iter().position(|t| *t == name).unwrap_or_else(|| panic!("{name:?} not in the menu {items:?}"))
}

/// Takes the agent without its `.sbat` section (renamed), signed with our key.
fn signed_agent_without_sbat(dir: &Path) -> PathBuf {
    let plain = build_image(dir, "plain.img", &[]);
    let mut efi = stick_file(&plain, "EFI/BOOT/BOOTX64.EFI").unwrap();
    let at = efi.windows(8).position(|w| w == b".sbat\0\0\0").expect("the agent has an .sbat section header");
    efi[at..at + 8].copy_from_slice(b".nosbat\0");
    let unsigned = dir.join("nosbat.efi");
    std::fs::write(&unsigned, efi).unwrap();
    let signed = dir.join("nosbat-signed.efi");
    let k = key();
    ok(rescue()
        .args(["secureboot", "sign", "--key"])
        .arg(&k.key)
        .arg("--cert")
        .arg(&k.crt)
        .arg(&unsigned)
        .arg("--out")
        .arg(&signed));
    assert!(sbverify(&k.crt, &signed), "the no-.sbat agent must carry a good signature for this test to mean anything");
    signed
}

#[test]
fn shim_mokmanager_enrolls_our_key_then_the_agent_runs() {
    let dir = tempfile::tempdir().unwrap();
    let vars = dir.path().join("vars.fd");
    std::fs::copy(OVMF_VARS_MS, &vars).expect("OVMF_VARS_4M.ms.fd is missing: run scripts/test, which installs ovmf");
    let stick = signed_stick(dir.path(), "shim.img", &["--shim"]);

    // First boot: shim starts, refuses our (not yet trusted) agent, runs MokManager.
    let mut vm = Qemu::boot_secure(&stick, Media::UsbStick, &vars, &[]);
    let mut ui = Driver { mark: 0 };
    ui.wait(&mut vm, "Verification failed: (0x1A) Security Violation");
    assert!(
        !vm.agent_lines().iter().any(|l| l.starts_with("rescue-agent")),
        "the agent ran before its key was enrolled"
    );
    ui.keys(&mut vm, ENTER);
    ui.wait(&mut vm, "Press any key to perform MOK management");
    ui.keys(&mut vm, " ");
    let menu = ui.wait(&mut vm, "Enroll hash from disk");
    let i = menu_index(&menu, "Perform MOK management", "Enroll key from disk");
    ui.keys(&mut vm, &(DOWN.repeat(i) + ENTER));
    ui.wait(&mut vm, "Remember to make sure it is a genuine key before Enrolling it");
    ui.keys(&mut vm, ENTER); // the only volume: the stick
    let root = ui.wait(&mut vm, "rescue/");
    let i = menu_index(&root, "Enrolling it", "rescue/");
    ui.keys(&mut vm, &(DOWN.repeat(i) + ENTER));
    let folder = ui.wait(&mut vm, "Rescue-Test.der");
    let i = menu_index(&folder, "Enrolling it", "Rescue-Test.der");
    ui.keys(&mut vm, &(DOWN.repeat(i) + ENTER));
    ui.wait(&mut vm, "[Enroll MOK]");
    ui.keys(&mut vm, &(DOWN.to_string() + ENTER)); // Continue
    ui.wait(&mut vm, "Enroll the key(s)?");
    ui.keys(&mut vm, &(DOWN.to_string() + ENTER)); // Yes
    ui.wait(&mut vm, "Reboot");
    ui.keys(&mut vm, ENTER);
    vm.wait_exit(Duration::from_secs(60));
    drop(vm);

    // Second boot, same varstore (MokList lives there): shim runs the agent.
    let mut vm = Qemu::boot_secure(&stick, Media::UsbStick, &vars, &[]);
    vm.wait_exit(Duration::from_secs(120));
    let lines = vm.agent_lines();
    assert!(lines.iter().any(|l| l == BANNER), "no banner after enrolling:\n{}", screen(&vm.serial_text()));
    assert!(lines.iter().any(|l| l == "secure boot: SecureBoot=1, SetupMode=0, Shim=yes"), "{lines:?}");
    drop(vm);

    // Same varstore, an agent signed with the same (now trusted) key but
    // without .sbat: shim refuses it.
    let nosbat = signed_agent_without_sbat(dir.path());
    put_on_stick(&stick, "EFI/BOOT/grubx64.efi", &nosbat);
    let mut vm = Qemu::boot_secure(&stick, Media::UsbStick, &vars, &[]);
    let said = vm.wait_serial(|s| s.contains("Security Violation") || s.contains(BANNER), Duration::from_secs(60));
    assert!(said, "shim said nothing within 60 s:\n{}", screen(&vm.serial_text()));
    assert!(
        !vm.agent_lines().iter().any(|l| l.starts_with("rescue-agent")),
        "shim ran an agent without .sbat:\n{}",
        screen(&vm.serial_text())
    );
    assert!(screen(&vm.serial_text()).contains("Verification failed: (0x1A) Security Violation"));
}
