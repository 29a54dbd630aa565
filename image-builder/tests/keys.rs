//! Site key files: `rescue keys check` on each accepted export format (with
//! bad lines, duplicates and conflicts), `rescue build --keys` sealed and
//! unsealed, read back with mtools and opened with the engine, and
//! `rescue inspect` — never showing a key anywhere.

#[path = "../../tests/support/mod.rs"]
mod support;

use rescue_engine::formats::bitlocker::keys::parse_recovery_password;
use rescue_engine::formats::keyring::{self, parse_guid, Keyring, KeyringError};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::*;

/// A valid recovery password and its Key ID, different for every `n`.
fn key(n: u8) -> (String, String) {
    let mut k = [0u8; 16];
    for (i, b) in k.iter_mut().enumerate() {
        *b = n.wrapping_mul(37).wrapping_add(i as u8 * 11).wrapping_add(1);
    }
    let id = format!("{:08X}-1111-4222-8333-{:012X}", 0xA0B0_0000u32 + n as u32, 0x1234_5600_0000u64 + n as u64);
    (id, password_of(&k))
}

/// The recovery password for a 16-byte key, written out here from the
/// format (eight blocks, each a little-endian 16-bit word times 11, six
/// digits) rather than taken from the engine that reads it.
fn password_of(key: &[u8; 16]) -> String {
    key.chunks(2)
        .map(|w| format!("{:06}", u32::from(u16::from_le_bytes([w[0], w[1]])) * 11))
        .collect::<Vec<_>>()
        .join("-")
}

/// The password with one digit changed so that its 3rd block fails the check.
fn mistyped(pw: &str) -> String {
    let mut c: Vec<char> = pw.chars().collect();
    // Block 3 starts at char 14; bump its last digit (a multiple of 11 plus 1 is not one).
    let i = 14 + 5;
    c[i] = if c[i] == '9' { '0' } else { ((c[i] as u8) + 1) as char };
    c.into_iter().collect()
}

/// Every way a password could leak into output.
fn leaks(text: &[u8], pw: &str) -> Vec<String> {
    let plain = pw.replace('-', "");
    // A mistyped password has no key (its digit forms are still checked).
    let key = parse_recovery_password(pw).map(|k| k.to_vec()).unwrap_or_else(|_| plain.as_bytes().to_vec());
    let hex_lower: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut forms: Vec<(String, Vec<u8>)> = vec![
        ("with dashes".into(), pw.as_bytes().to_vec()),
        ("digits only".into(), plain.as_bytes().to_vec()),
        ("with spaces".into(), pw.replace('-', " ").into_bytes()),
        ("UTF-16LE with dashes".into(), pw.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()),
        ("UTF-16LE digits".into(), plain.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()),
        ("16-byte key".into(), key.to_vec()),
        ("hex".into(), hex_lower.as_bytes().to_vec()),
        ("HEX".into(), hex_lower.to_uppercase().into_bytes()),
    ];
    // No two consecutive blocks either (a partial leak).
    for b in 0..7 {
        forms.push((format!("blocks {}-{}", b + 1, b + 2), pw.as_bytes()[b * 7..b * 7 + 13].to_vec()));
    }
    forms.into_iter().filter(|(_, f)| text.windows(f.len()).any(|w| w == &f[..])).map(|(n, _)| n).collect()
}

fn assert_no_leak(what: &str, text: &[u8], pws: &[&str]) {
    for pw in pws {
        let l = leaks(text, pw);
        assert!(l.is_empty(), "{what} holds a recovery password ({l:?})");
    }
}

/// The image without its all-zero 4 KiB blocks (each becomes one zero
/// byte), so that searching it is quick.
fn nonzero(img: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in img.chunks(4096) {
        if c.iter().any(|&b| b != 0) {
            out.extend_from_slice(c);
        } else if out.last() != Some(&0) {
            out.push(0);
        }
    }
    out
}

fn check(file: &Path) -> Output {
    run(rescue().arg("keys").arg("check").arg(file))
}

fn out_text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn utf16le_bom(s: &str) -> Vec<u8> {
    let mut b = vec![0xFF, 0xFE];
    b.extend(s.encode_utf16().flat_map(|u| u.to_le_bytes()));
    b
}

#[test]
fn active_directory_export_reports_bad_lines_duplicates_and_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let (id1, pw1) = key(1);
    let (id2, pw2) = key(2);
    let (id3, pw3) = key(3);
    let (_, pw4) = key(4);
    let (id5, pw5) = key(5);
    let obj = |id: &str, _pc: &str| format!("2024-07-19T10:11:12-08:00{{{id}}}");
    let dn = |id: &str, pc: &str| format!("CN={},CN={pc},OU=Laptops,DC=corp,DC=example", obj(id, pc));
    // Windows PowerShell 5: Get-ADObject ... | Export-Csv (with #TYPE), UTF-8 BOM, CRLF, all fields quoted.
    let mut csv = String::from("#TYPE Microsoft.ActiveDirectory.Management.ADObject\r\n");
    csv += "\"DistinguishedName\",\"msFVE-RecoveryPassword\",\"Name\",\"ObjectClass\",\"ObjectGUID\"\r\n";
    let row = |id: &str, pw: &str, pc: &str| {
        format!(
            "\"{}\",\"{pw}\",\"{}\",\"msFVE-RecoveryInformation\",\"0f0e0d0c-0000-4000-8000-000000000001\"\r\n",
            dn(id, pc),
            obj(id, pc)
        )
    };
    csv += &row(&id1, &pw1, "PC01"); // line 3
    csv += &row(&id2, &pw2, "PC02"); // line 4
    csv += &row(&id3, &mistyped(&pw3), "PC03"); // line 5: bad block 3
    csv += &row(&id1, &pw1, "PC01"); // line 6: duplicate of line 3
    csv += &row(&id2, &pw4, "PC02"); // line 7: conflict with line 4
    csv += "\"CN=PC09,OU=Laptops,DC=corp,DC=example\",\"";
    csv += &pw5;
    csv += "\",\"PC09\",\"computer\",\"x\"\r\n"; // line 8: no {Key ID} in the name
    csv += &row(&id5, "123456-654321", "PC05"); // line 9: too short
    csv += "\r\n";
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend_from_slice(csv.as_bytes());
    let f = dir.path().join("ad.csv");
    fs::write(&f, &bytes).unwrap();

    let o = check(&f);
    let text = out_text(&o);
    assert!(!o.status.success(), "errors must fail the check:\n{text}");
    assert!(text.contains("Active Directory"), "{text}");
    assert!(
        text.contains(":5: error") && text.contains("block 3") && text.contains("(device PC03)"),
        "bad block not reported on line 5:\n{text}"
    );
    assert!(
        text.contains(":6: warning") && text.contains("duplicate") && text.contains("line 3"),
        "duplicate not reported:\n{text}"
    );
    assert!(
        text.contains(":7: error") && text.contains("conflict") && text.contains("line 4"),
        "conflict not reported:\n{text}"
    );
    assert!(text.contains(":8: error") && text.contains("no {Key ID}"), "line 8:\n{text}");
    assert!(text.contains(":9: error") && text.contains("48 digits"), "line 9:\n{text}");
    assert!(text.contains("7 key line(s), 2 valid"), "{text}");
    assert!(text.contains("2 distinct Key ID(s)") && text.contains("4 error(s), 1 warning(s)"), "{text}");
    assert!(!text.contains(":3:") && !text.contains(":4:"), "good lines reported:\n{text}");
    assert_no_leak("keys check output", text.as_bytes(), &[&pw1, &pw2, &pw3, &pw4, &pw5]);
    assert_no_leak("keys check output", text.as_bytes(), &[&mistyped(&pw3)]);

    // The same file, fixed, passes.
    let good = format!("Name,msFVE-RecoveryPassword\n{},{pw1}\n{},{pw2}\n", obj(&id1, ""), obj(&id2, ""));
    fs::write(&f, good).unwrap();
    let o = check(&f);
    assert!(o.status.success(), "{}", out_text(&o));
    assert!(
        out_text(&o).contains("2 distinct Key ID(s) with a valid key; 0 error(s), 0 warning(s)"),
        "{}",
        out_text(&o)
    );
}

#[test]
fn entra_intune_mbam_plain_and_headerless_exports_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let k: Vec<(String, String)> = (10..16).map(key).collect();
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        // Intune/Entra script export, UTF-16LE with BOM (Windows PowerShell's "Unicode"), braces, lower case.
        (
            "intune.csv",
            utf16le_bom(&format!(
                "\"Device Name\",\"BitLocker Key ID\",\"BitLocker Recovery Key\"\r\n\"LAPTOP-1\",\"{{{}}}\",\"{}\"\r\n\"LAPTOP-2\",\"{{{}}}\",\"{}\"\r\n",
                k[0].0.to_lowercase(), k[0].1, k[1].0.to_lowercase(), k[1].1
            )),
            2,
        ),
        // Microsoft Graph (Get-MgInformationProtectionBitlockerRecoveryKey): Id, Key, DeviceId.
        (
            "graph.csv",
            format!("Id,CreatedDateTime,DeviceId,Key,VolumeType\n{},2024-07-19T10:11:12Z,6a1c2b3d-0000-4000-8000-00000000000a,{},1\n", k[2].0, k[2].1).into_bytes(),
            1,
        ),
        // MBAM, semicolon separated (European Excel), header with spaces and odd case, spaces around fields.
        (
            "mbam.csv",
            format!("Computer Name; Recovery Key ID ;RECOVERY KEY\r\nPC-7; {} ; {} \r\n", k[3].0, k[3].1).into_bytes(),
            1,
        ),
        // Plain two columns with a header; a key typed with spaces instead of dashes.
        ("plain.csv", format!("KeyID,RecoveryKey\n{},{}\n", k[4].0, k[4].1.replace('-', " ")).into_bytes(), 1),
        // Saved from Excel, which kept the key as text with a leading apostrophe; tab separated.
        ("excel.txt", format!("Key ID\tRecovery Key\r\n{}\t'{}\r\n", k[4].0, k[4].1).into_bytes(), 1),
        // No header at all, UTF-8 BOM, a blank line, no final newline.
        ("bare.csv", format!("\u{feff}{{{}}},{}\n\n{},{}", k[5].0, k[5].1, k[4].0, k[4].1).into_bytes(), 2),
    ];
    for (name, bytes, n) in cases {
        let f = dir.path().join(name);
        fs::write(&f, &bytes).unwrap();
        let o = check(&f);
        let text = out_text(&o);
        assert!(o.status.success(), "{name}:\n{text}");
        assert!(text.contains(&format!("{n} distinct Key ID(s) with a valid key; 0 error(s)")), "{name}:\n{text}");
        assert_no_leak(name, text.as_bytes(), &k.iter().map(|x| x.1.as_str()).collect::<Vec<_>>());
    }

    // A header without a key column, and one without any Key ID column, name what was found.
    let f = dir.path().join("bad-header.csv");
    fs::write(&f, "Device,Id,Secret\nx,y,z\n").unwrap();
    let o = check(&f);
    assert!(
        !o.status.success()
            && out_text(&o).contains("no recovery key column")
            && out_text(&o).contains("Device, Id, Secret"),
        "{}",
        out_text(&o)
    );
    fs::write(&f, "Device,RecoveryKey\nx,y\n").unwrap();
    let o = check(&f);
    assert!(!o.status.success() && out_text(&o).contains("no Key ID column"), "{}", out_text(&o));
    // Binary junk and an unclosed quote.
    fs::write(&f, [0x00u8, 0xC3, 0x28, 0xFF, 0x10]).unwrap();
    assert!(!check(&f).status.success());
    fs::write(&f, format!("KeyID,RecoveryKey\n{},\"{}\n", k[0].0, k[0].1)).unwrap();
    let o = check(&f);
    assert!(
        !o.status.success() && out_text(&o).contains(":2: error") && out_text(&o).contains("never closed"),
        "{}",
        out_text(&o)
    );
    assert!(!check(&dir.path().join("missing.csv")).status.success());
}

fn build(dir: &Path, name: &str, args: &[&str]) -> (PathBuf, Output) {
    let out = dir.join(name);
    let o = run(rescue()
        .arg("build")
        .arg("--profile")
        .arg(default_profile())
        .arg("--size")
        .arg("40")
        .arg("--out")
        .arg(&out)
        .args(args)
        .stdin(Stdio::null()));
    (out, o)
}

fn inspect_json(image: &Path) -> (serde_json::Value, String) {
    let json = ok(rescue().arg("inspect").arg("--json").arg(image));
    let text = ok(rescue().arg("inspect").arg(image));
    (serde_json::from_str(&json).unwrap(), json + &text)
}

#[test]
fn sealed_keys_on_a_built_image_hold_no_password_and_open_only_with_the_pin() {
    let dir = tempfile::tempdir().unwrap();
    let k: Vec<(String, String)> = (20..25).map(key).collect();
    let pws: Vec<&str> = k.iter().map(|x| x.1.as_str()).collect();
    let f1 = dir.path().join("site-a.csv");
    let f2 = dir.path().join("site-b.csv");
    fs::write(&f1, k[..3].iter().map(|(i, p)| format!("{i},{p}\n")).collect::<String>()).unwrap();
    // The second file repeats one key of the first (a duplicate, fine) and adds two.
    fs::write(
        &f2,
        format!("KeyID,RecoveryKey\r\n{},{}\r\n", k[2].0, k[2].1)
            + &k[3..].iter().map(|(i, p)| format!("{{{i}}},{p}\r\n")).collect::<String>(),
    )
    .unwrap();
    let pin = dir.path().join("pin.txt");
    fs::write(&pin, "7391-site-A\n").unwrap();

    let (img, o) = build(
        dir.path(),
        "keyed.img",
        &["--keys", f1.to_str().unwrap(), "--keys", f2.to_str().unwrap(), "--pin-file", pin.to_str().unwrap()],
    );
    let text = out_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("5 recovery key(s) from 2 file(s), sealed"), "{text}");
    assert!(text.contains("offline guessing: about") && text.contains("128 MiB"), "no guessing-cost estimate:\n{text}");
    assert!(text.contains("again, with the same key"), "the duplicate is not mentioned:\n{text}");
    assert_no_leak("rescue build output", text.as_bytes(), &pws);

    // Read back with mtools, not with our own FAT code.
    let sealed =
        stick_file(&img, rescue_engine::formats::stick::KEYS_PATH).expect("rescue/keys.sealed is on the stick");
    assert_no_leak("rescue/keys.sealed", &sealed, &pws);
    assert!(!sealed.windows(b"7391-site-A".len()).any(|w| w == b"7391-site-A"), "the PIN is in the file");
    // Nor anywhere else on the image.
    assert_no_leak("the whole image", &nonzero(&fs::read(&img).unwrap()), &pws);

    let kr = Keyring::parse(&sealed).unwrap();
    assert!(kr.is_sealed());
    let kdf = kr.kdf().unwrap();
    assert_eq!(kdf, keyring::KdfParams::DEFAULT);
    let mut want_ids: Vec<_> = k.iter().map(|(i, _)| parse_guid(i).unwrap()).collect();
    want_ids.sort_by_key(|g| g.0);
    assert_eq!(kr.key_ids(), &want_ids[..]);
    assert_eq!(kr.open("7391-site-a").unwrap_err(), KeyringError::WrongPin);
    assert_eq!(kr.open("7391-site-A ").unwrap_err(), KeyringError::WrongPin);
    let keys = kr.open("7391-site-A").unwrap();
    for (id, pw) in &k {
        assert_eq!(&keys.password(&parse_guid(id).unwrap()).unwrap()[..], pw.as_str());
    }
    // Tampered: any changed byte is detected before the PIN is even asked.
    for at in [12usize, 30, 70, sealed.len() / 2, sealed.len() - 40, sealed.len() - 1] {
        let mut t = sealed.clone();
        t[at] ^= 0x04;
        assert_eq!(Keyring::parse(&t).unwrap_err(), KeyringError::Tampered, "byte {at}");
    }
    assert!(Keyring::parse(&sealed[..sealed.len() - 1]).is_err());

    // inspect lists the Key IDs, never a key, without a PIN.
    let (info, shown) = inspect_json(&img);
    assert_eq!(info["keys"]["sealed"], true);
    assert_eq!(info["keys"]["count"], 5);
    let ids: Vec<&str> = info["keys"]["key_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for (id, _) in &k {
        assert!(ids.contains(&id.as_str()), "{id} not in {ids:?}");
        assert!(shown.contains(&format!("Key ID {{{id}}}")), "{shown}");
    }
    assert!(shown.contains("5 recovery key(s) in rescue/keys.sealed, sealed with a PIN"), "{shown}");
    assert_no_leak("rescue inspect", shown.as_bytes(), &pws);

    // A tampered key file on the stick: inspect says so (and still shows the rest).
    let mut t = sealed.clone();
    t[100] ^= 0x20;
    let tf = dir.path().join("tampered");
    fs::write(&tf, &t).unwrap();
    ok(Command::new("mcopy")
        .args(["-o", "-i"])
        .arg(format!("{}@@1M", img.display()))
        .arg(&tf)
        .arg("::/rescue/keys.sealed"));
    let (info, shown) = inspect_json(&img);
    assert!(info["keys"]["error"].as_str().unwrap().contains("damaged or was altered"), "{shown}");
    assert!(shown.contains("UNREADABLE") && shown.contains("crowdstrike-c00000291"), "{shown}");
}

#[test]
fn no_seal_stores_keys_unsealed_with_a_loud_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (id, pw) = key(30);
    let f = dir.path().join("k.csv");
    fs::write(&f, format!("KeyID,RecoveryKey\n{id},{pw}\n")).unwrap();
    let (img, o) = build(dir.path(), "open.img", &["--keys", f.to_str().unwrap(), "--no-seal"]);
    let text = out_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("WARNING") && text.contains("UNSEALED"), "{text}");
    let file = stick_file(&img, rescue_engine::formats::stick::KEYS_PATH).unwrap();
    // The leak detector finds the key in an unsealed file (so its silence on sealed ones means something).
    assert_eq!(leaks(&file, &pw), vec!["16-byte key".to_string()]);
    let kr = Keyring::parse(&file).unwrap();
    assert!(!kr.is_sealed());
    assert_eq!(&kr.open_unsealed().unwrap().password(&parse_guid(&id).unwrap()).unwrap()[..], pw.as_str());
    let (info, shown) = inspect_json(&img);
    assert_eq!(info["keys"]["sealed"], false);
    assert!(shown.contains("UNSEALED"), "{shown}");
    assert_no_leak("rescue inspect of an unsealed stick", shown.as_bytes(), &[&pw]);

    // An ISO carries the key file in its El Torito boot image too.
    let iso = dir.path().join("k.iso");
    ok(rescue()
        .arg("build")
        .arg("--profile")
        .arg(default_profile())
        .args(["--format", "iso", "--no-seal", "--keys"])
        .arg(&f)
        .arg("--out")
        .arg(&iso));
    let (info, _) = inspect_json(&iso);
    assert_eq!(info["keys"]["count"], 1);
    assert_eq!(info["keys"]["key_ids"][0], id.as_str());

    // Without --keys there is no key file, and inspect says so.
    let (plain, o) = build(dir.path(), "plain.img", &[]);
    assert!(o.status.success(), "{}", out_text(&o));
    assert!(stick_file(&plain, rescue_engine::formats::stick::KEYS_PATH).is_none());
    let (info, _) = inspect_json(&plain);
    assert!(info["keys"].is_null());
}

#[test]
fn bad_key_files_and_pins_build_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (id, pw) = key(40);
    let (_, other) = key(41);
    let good = dir.path().join("good.csv");
    fs::write(&good, format!("KeyID,RecoveryKey\n{id},{pw}\n")).unwrap();
    let bad = dir.path().join("bad.csv");
    fs::write(&bad, format!("KeyID,RecoveryKey\n{id},{}\n", mistyped(&pw))).unwrap();
    let conflict = dir.path().join("conflict.csv");
    fs::write(&conflict, format!("KeyID,RecoveryKey\n{id},{other}\n")).unwrap();
    let pin = dir.path().join("pin");
    fs::write(&pin, "12345678\n").unwrap();
    let short_pin = dir.path().join("short");
    // Seven characters: a weak PIN, refused before anything is written.
    fs::write(&short_pin, "1234567\n").unwrap();
    let non_ascii_pin = dir.path().join("non-ascii");
    fs::write(&non_ascii_pin, "pässwörter\n").unwrap();
    let empty_pin = dir.path().join("empty");
    fs::write(&empty_pin, "").unwrap();
    let two_lines = dir.path().join("two");
    fs::write(&two_lines, "1234\n5678\n").unwrap();
    let p = |x: &Path| x.to_str().unwrap().to_string();

    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--keys".into(), p(&bad), "--pin-file".into(), p(&pin)], "block 3"),
        (vec!["--keys".into(), p(&good), "--keys".into(), p(&conflict), "--pin-file".into(), p(&pin)], "conflict"),
        (vec!["--keys".into(), p(&dir.path().join("nope.csv")), "--pin-file".into(), p(&pin)], "nope.csv"),
        (vec!["--keys".into(), p(&good), "--pin-file".into(), p(&short_pin)], "at least 8"),
        (vec!["--keys".into(), p(&good), "--pin-file".into(), p(&empty_pin)], "at least 8"),
        (vec!["--keys".into(), p(&good), "--pin-file".into(), p(&non_ascii_pin)], "printable ASCII"),
        (
            vec!["--keys".into(), p(&good), "--pin-file".into(), p(&pin), "--kdf-memory".into(), "4096".into()],
            "1024 MiB",
        ),
        (vec!["--keys".into(), p(&good), "--pin-file".into(), p(&two_lines)], "one line"),
        (vec!["--keys".into(), p(&good), "--pin-file".into(), p(&dir.path().join("no-pin"))], "PIN file"),
        // No terminal and no --pin-file: refuses rather than reading the PIN from a pipe.
        (vec!["--keys".into(), p(&good)], "--pin-file"),
        (vec!["--pin-file".into(), p(&pin)], "--keys"),
        (vec!["--keys".into(), p(&good), "--no-seal".into(), "--pin-file".into(), p(&pin)], "cannot be used with"),
    ];
    for (i, (args, why)) in cases.iter().enumerate() {
        let name = format!("out{i}.img");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (img, o) = build(dir.path(), &name, &args);
        let text = out_text(&o);
        assert!(!o.status.success(), "case {i} {args:?} built an image:\n{text}");
        assert!(text.contains(why), "case {i} {args:?}: expected {why:?} in:\n{text}");
        assert!(!img.exists(), "case {i}: an image was left behind");
        assert_no_leak("a failed build's output", text.as_bytes(), &[&pw, &other]);
    }
    // No temporary files left either.
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".img") || n.starts_with(".rescue"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The PIN never comes from the command line: there is no such option.
    let o = run(rescue().args(["build", "--help"]));
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("--pin-file") && !help.contains("--pin <") && !help.contains("--pin="), "{help}");
}

/// An independent reader of `rescue/keys.sealed`, written from the layout
/// documented in rescue-agent/src/keyring.rs with Debian's python3-argon2
/// (argon2-cffi) and python3-cryptography: checks the SHA-256, derives the
/// key with Argon2id, opens ChaCha20-Poly1305 with the header as associated
/// data, and compares every key with the expected ones (given on stdin as
/// `KEYID HEX` lines). Prints only a count.
const PY_READER: &str = r#"
import sys, struct, hashlib, uuid
from argon2.low_level import hash_secret_raw, Type
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
data = open(sys.argv[1], 'rb').read()
pin = sys.argv[2].encode()
body, s = data[:-32], data[-32:]
assert hashlib.sha256(body).digest() == s, 'checksum'
assert body[:8] == b'RSCKEYS\x1a', 'magic'
ver, flags, kdf, n, m, t, p = struct.unpack_from('<HBBIIII', body, 8)
assert (ver, flags, kdf) == (1, 1, 1), (ver, flags, kdf)
salt, nonce = body[28:44], body[44:56]
ids_end = 64 + 16 * n
ids = [str(uuid.UUID(bytes_le=body[64 + 16 * i:80 + 16 * i])).upper() for i in range(n)]
key = hash_secret_raw(pin, salt, time_cost=t, memory_cost=m, parallelism=p, hash_len=32, type=Type.ID, version=19)
plain = ChaCha20Poly1305(key).decrypt(nonce, body[ids_end:], body[:ids_end])
got = {ids[i]: plain[16 * i:16 * i + 16].hex() for i in range(n)}
want = dict(x.split() for x in sys.stdin.read().splitlines() if x.strip())
assert got == want, 'keys differ'
print('OK', n)
"#;

#[test]
fn sealed_file_opens_with_an_independent_argon2id_and_chacha20poly1305() {
    let dir = tempfile::tempdir().unwrap();
    let k: Vec<(String, String)> = (50..53).map(key).collect();
    let f = dir.path().join("k.csv");
    fs::write(&f, k.iter().map(|(i, p)| format!("{i},{p}\n")).collect::<String>()).unwrap();
    let pin = dir.path().join("pin");
    fs::write(&pin, "correct horse 42\r\n").unwrap();
    let (img, o) = build(dir.path(), "k.img", &["--keys", f.to_str().unwrap(), "--pin-file", pin.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out_text(&o));
    let sealed = dir.path().join("keys.sealed");
    fs::write(&sealed, stick_file(&img, rescue_engine::formats::stick::KEYS_PATH).unwrap()).unwrap();
    let want: String = k
        .iter()
        .map(|(i, p)| {
            format!(
                "{i} {}\n",
                parse_recovery_password(p).unwrap().iter().map(|b| format!("{b:02x}")).collect::<String>()
            )
        })
        .collect();
    let py = |pin: &str| {
        use std::io::Write;
        // Debian's interpreter, where python3-argon2 and python3-cryptography are installed.
        let mut child = std::process::Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(PY_READER)
            .arg(&sealed)
            .arg(pin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect(
                "cannot run /usr/bin/python3; run scripts/test, which installs python3-argon2 and python3-cryptography",
            );
        child.stdin.take().unwrap().write_all(want.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    // The PIN file's CRLF is not part of the PIN.
    let o = py("correct horse 42");
    assert!(o.status.success(), "independent reader failed:\n{}", out_text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "OK 3");
    let o = py("correct horse 43");
    assert!(
        !o.status.success() && out_text(&o).contains("InvalidTag"),
        "a wrong PIN opened the file:\n{}",
        out_text(&o)
    );
}

/// Runs `rescue build` on a pseudo-terminal (util-linux `script`), typing
/// each of `pins` after the prompt for it appears. Returns the exit status
/// and everything the terminal showed.
fn build_on_terminal(dir: &Path, out: &Path, keys: &Path, pins: &[&str]) -> (bool, String) {
    let cmd = format!(
        "cd {} && {} build --profile {} --size 40 --out {} --keys {}",
        dir.display(),
        env!("CARGO_BIN_EXE_rescue"),
        default_profile().display(),
        out.display(),
        keys.display()
    );
    let prompts = ["Site PIN", "PIN again"];
    let answers: Vec<(&str, &str)> = prompts.iter().copied().zip(pins.iter().copied()).collect();
    on_terminal(&cmd, &[], &answers)
}

#[test]
fn pin_is_asked_twice_on_the_terminal_without_echo() {
    let dir = tempfile::tempdir().unwrap();
    let (id, pw) = key(60);
    let f = dir.path().join("k.csv");
    fs::write(&f, format!("KeyID,RecoveryKey\n{id},{pw}\n")).unwrap();

    let img = dir.path().join("tty.img");
    let (ok_, shown) = build_on_terminal(dir.path(), &img, &f, &["Tr0ub4dor-77", "Tr0ub4dor-77"]);
    assert!(ok_, "{shown}");
    assert!(shown.contains("sealed with the site PIN"), "{shown}");
    assert!(!shown.contains("Tr0ub4dor"), "the PIN was echoed:\n{shown}");
    let kr = Keyring::parse(&stick_file(&img, rescue_engine::formats::stick::KEYS_PATH).unwrap()).unwrap();
    assert_eq!(&kr.open("Tr0ub4dor-77").unwrap().password(&parse_guid(&id).unwrap()).unwrap()[..], pw.as_str());

    // Two different PINs: nothing is built.
    let img2 = dir.path().join("tty2.img");
    let (ok_, shown) = build_on_terminal(dir.path(), &img2, &f, &["Tr0ub4dor-77", "Tr0ub4dor-78"]);
    assert!(!ok_ && shown.contains("the two PINs differ"), "{shown}");
    assert!(!img2.exists());
}

/// A file whose first line is neither a header nor a Key ID (here: a computer
/// name and a key) is reported without echoing the key, by `keys check` and
/// by `build --keys`.
#[test]
fn problems_never_echo_a_recovery_key() {
    let dir = tempfile::tempdir().unwrap();
    let (id, pw) = key(40);
    let f = dir.path().join("odd.csv");
    std::fs::write(&f, format!("PC-0042,{pw}\nPC-0043,{pw},{id}\n")).unwrap();
    let pin = dir.path().join("pin.txt");
    std::fs::write(&pin, "12345678\n").unwrap();
    let checked = out_text(&check(&f));
    let json = run(rescue().args(["keys", "check", "--json"]).arg(&f));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("keys check --json");
    assert!(v["errors"].as_u64().unwrap() > 0 && !v.to_string().contains(&pw[..13]), "{v}");
    let (_, built) = build(dir.path(), "o.img", &["--keys", f.to_str().unwrap(), "--pin-file", pin.to_str().unwrap()]);
    for text in [checked, out_text(&built)] {
        assert!(text.contains("header"), "the problem is not named:\n{text}");
        for block in pw.split('-') {
            assert!(!text.contains(&format!("{block}-")), "a key block is echoed:\n{text}");
        }
        assert!(!text.contains(&pw.replace('-', "")[..12]));
    }
}

/// Every CSV example in docs/keys.md passes `rescue keys check`.
#[test]
fn the_documented_examples_are_valid() {
    let doc = std::fs::read_to_string(root().join("docs/keys.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let blocks: Vec<&str> = doc.split("```csv\n").skip(1).map(|b| b.split("```").next().unwrap()).collect();
    assert!(!blocks.is_empty(), "no CSV examples found in docs/keys.md");
    for (i, block) in blocks.iter().enumerate() {
        let f = dir.path().join(format!("example{i}.csv"));
        std::fs::write(&f, block).unwrap();
        let o = check(&f);
        assert!(o.status.success(), "docs/keys.md example {i} fails:\n{block}\n{}", out_text(&o));
    }
}
