//! BitLocker end to end, checked against Windows-made volumes (the corpus)
//! and against independent tools (dislocker-file, bdeinfo, cryptsetup).

use rescue_engine::block::{BlockDevice, IoError, MemDisk};
use rescue_engine::formats::bitlocker::{BitLocker, BitLockerError, UnlockKey};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

#[path = "../../tests/support/mod.rs"]
mod support;

const RESCUE: &str = env!("CARGO_BIN_EXE_rescue");

fn corpus_archive() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/bitlocker/bitlk-images.tar.xz");
    assert!(p.exists(), "BitLocker corpus missing: {}", p.display());
    p
}

/// Unpacks the corpus once per test binary.
fn corpus() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let st = Command::new("tar").arg("xJf").arg(corpus_archive()).arg("-C").arg(d.path()).status().unwrap();
        assert!(st.success(), "tar failed");
        d
    })
    .path()
}

fn images_conf() -> Vec<(String, BTreeMap<String, String>)> {
    let text = std::fs::read_to_string(corpus().join("bitlk-images/images.conf")).unwrap();
    let mut out: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.push((name.to_string(), BTreeMap::new()));
        } else if let Some((k, v)) = line.split_once('=') {
            if let Some(last) = out.last_mut() {
                last.1.insert(k.to_string(), v.to_string());
            }
        }
    }
    out
}

fn sha256_file(p: &Path) -> String {
    let data = std::fs::read(p).unwrap();
    hex(&Sha256::digest(&data))
}
fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn rescue(args: &[&str]) -> std::process::Output {
    support::limits::output(Command::new(RESCUE).args(args)).unwrap()
}

/// Every protector of every corpus image unlocks; the output hashes to
/// SHA256SUM, or (where no tool could decrypt the image) starts with an
/// NTFS/FAT boot sector.
#[test]
fn corpus_every_protector_unlocks() {
    let dir = corpus().join("bitlk-images");
    let mut jobs = Vec::new();
    for (name, c) in images_conf() {
        let img = dir.join(format!("{name}.img"));
        let get = |k: &str| c.get(k).filter(|v| !v.is_empty()).cloned();
        let mut keys: Vec<(String, Vec<String>, Option<String>)> = Vec::new();
        for (rp, guid) in [("RP", "RP_VMK_GUID"), ("RP2", "RP2_VMK_GUID")] {
            if let Some(v) = get(rp) {
                keys.push(("recovery password".into(), vec!["--recovery-password".into(), v], get(guid)));
            }
        }
        if let Some(v) = get("PW") {
            keys.push(("password".into(), vec!["--password".into(), v], get("PW_VMK_GUID")));
        }
        if let Some(g) = get("SK_VMK_GUID") {
            let bek = dir.join(format!("{}.BEK", g.to_uppercase()));
            keys.push(("startup key".into(), vec!["--bek".into(), bek.display().to_string()], Some(g)));
        }
        if let Some(g) = get("CLEARKEY_VMK_GUID") {
            keys.push(("clear key".into(), vec!["--clear-key".into()], Some(g)));
        }
        assert!(!keys.is_empty(), "{name}: no protector in images.conf");
        for (kind, args, guid) in keys {
            jobs.push((name.clone(), img.clone(), kind, args, guid, get("SHA256SUM")));
        }
    }
    assert!(jobs.len() >= 40, "expected every corpus protector, got {}", jobs.len());
    let jobs = Mutex::new(jobs);
    let failures = Mutex::new(Vec::<String>::new());
    let out_dir = tempfile::tempdir().unwrap();
    std::thread::scope(|s| {
        for w in 0..2 {
            let (jobs, failures, out_dir) = (&jobs, &failures, out_dir.path());
            s.spawn(move || loop {
                let Some((name, img, kind, args, guid, sum)) = jobs.lock().unwrap().pop() else { break };
                let out = out_dir.join(format!("out{w}.img"));
                let mut a: Vec<&str> = vec!["unlock"];
                a.extend(args.iter().map(|s| s.as_str()));
                let (o, i) = (out.display().to_string(), img.display().to_string());
                a.extend(["--out", &o, &i]);
                let r = rescue(&a);
                let stderr = String::from_utf8_lossy(&r.stderr);
                if !r.status.success() {
                    failures.lock().unwrap().push(format!("{name} {kind}: {stderr}"));
                    continue;
                }
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&out).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
                if mode != 0o600 {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{name} {kind}: decrypted volume has mode {mode:o}, not 600"));
                }
                if let Some(g) = &guid {
                    if !stderr.to_lowercase().contains(&g.to_lowercase()) {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{name} {kind}: unlocked by another protector: {stderr}"));
                    }
                }
                match &sum {
                    Some(sum) => {
                        let h = sha256_file(&out);
                        if &h != sum {
                            failures.lock().unwrap().push(format!("{name} {kind}: sha256 {h} != {sum}"));
                        }
                    }
                    None => {
                        let data = std::fs::read(&out).unwrap();
                        let oem = &data[3..11];
                        if !(oem == b"NTFS    " || oem == b"MSDOS5.0" || oem == b"MSWIN4.1")
                            || data[510..512] != [0x55, 0xAA]
                        {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("{name} {kind}: boot sector did not decrypt: {oem:?}"));
                        }
                    }
                }
                std::fs::remove_file(&out).ok();
            });
        }
    });
    let f = failures.into_inner().unwrap();
    assert!(f.is_empty(), "{} failure(s):\n{}", f.len(), f.join("\n"));
}

#[test]
fn corpus_crc_corrupted_image_uses_copy_3() {
    let img = corpus().join("bitlk-images/bitlk-aes-xts-128-crc.img");
    let r = rescue(&["bitlocker", "info", img.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(out.contains("metadata copy 1: byte 35213312 BadCrc"), "{out}");
    assert!(out.contains("metadata copy 2: byte 46256128 BadCrc"), "{out}");
    assert!(out.contains("metadata copy 3: byte 57909248 Valid (used)"), "{out}");
    assert!(out.contains("Key ID {64311DEA-4587-4029-924A-BA299647998E}  recovery password"), "{out}");
    assert!(!out.to_lowercase().contains("235818"), "info must not print secrets");
}

#[test]
fn info_lists_protectors_and_description() {
    let img = corpus().join("bitlk-images/bitlk-aes-xts-128-two-recovery.img");
    let r = rescue(&["bitlocker", "info", img.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(out.contains("{E7E48BAE-FF13-4F14-8222-971D469FAE0D}  recovery password"), "{out}");
    assert!(out.contains("{B7ADC334-FE6D-4AE4-B5C4-1C1D0DBC335B}  recovery password"), "{out}");
    assert!(out.contains("{2A9089BC-1E0F-4DB4-AB28-323D58789D4B}  password"), "{out}");
    assert!(out.contains("XTS-AES 128-bit"), "{out}");
    assert!(out.contains("description:"), "{out}");
}

#[test]
fn wrong_keys_give_clear_errors_and_no_output() {
    let img = corpus().join("bitlk-images/bitlk-aes-xts-128.img");
    let before = sha256_file(&img);
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("o.img");
    let (o, i) = (out.to_str().unwrap(), img.to_str().unwrap());
    // A well-formed recovery password of another volume.
    let r = rescue(&[
        "unlock",
        "--recovery-password",
        "404558-436711-420860-678557-638220-018909-039941-695321",
        "--out",
        o,
        i,
    ]);
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(e.contains("wrong recovery password for Key ID {64311DEA-4587-4029-924A-BA299647998E}"), "{e}");
    assert!(!e.contains("404558"), "error must not echo the key: {e}");
    // A typo in block 3 (not divisible by 11) is caught before the stretch.
    let r = rescue(&[
        "unlock",
        "--recovery-password",
        "235818-357951-253978-013365-241120-245575-342914-591910",
        "--out",
        o,
        i,
    ]);
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(e.contains("block 3"), "{e}");
    let r = rescue(&["unlock", "--recovery-password", "235818-357951", "--out", o, i]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("48 digits"));
    let r = rescue(&["unlock", "--password", "not-it", "--out", o, i]);
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(e.contains("wrong password for Key ID {3E55195C-8811-4D9B-97B4-2B9E5F8F5384}"), "{e}");
    // A startup key of another volume.
    let bek = corpus().join("bitlk-images/4381F759-C4F8-4DE0-BB61-FC33A831BDA5.BEK");
    let r = rescue(&["unlock", "--bek", bek.to_str().unwrap(), "--out", o, i]);
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("no startup key protector"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let r = rescue(&["unlock", "--clear-key", "--out", o, i]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("no clear key protector"));
    assert!(!out.exists(), "no output may be left behind");
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0, "no temporary file may be left behind");
    assert_eq!(sha256_file(&img), before, "the volume must not change");
}

/// A device that counts writes.
struct Counting {
    inner: MemDisk,
    writes: usize,
}
impl BlockDevice for Counting {
    fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&mut self, o: u64, b: &mut [u8]) -> Result<(), IoError> {
        self.inner.read_at(o, b)
    }
    fn write_at(&mut self, o: u64, b: &[u8]) -> Result<(), IoError> {
        self.writes += 1;
        self.inner.write_at(o, b)
    }
}

#[test]
fn truncated_and_corrupted_metadata_fail_cleanly() {
    let img = std::fs::read(corpus().join("bitlk-images/bitlk-aes-xts-128.img")).unwrap();
    let offsets = [35213312usize, 46256128, 57909248];
    // Truncated before the first metadata copy: nothing valid.
    let mut d = Counting { inner: MemDisk::new(img[..30 << 20].to_vec(), 512), writes: 0 };
    let e = BitLocker::open(&mut d).err().expect("must fail");
    assert!(matches!(e, BitLockerError::NoValidMetadata { .. }), "{e}");
    assert!(e.to_string().contains("35213312"));
    // Truncated inside copy 2: copy 1 still serves.
    let mut d = Counting { inner: MemDisk::new(img[..offsets[1] + 100].to_vec(), 512), writes: 0 };
    assert!(BitLocker::open(&mut d).is_ok());
    // One byte flipped in each copy's entries: CRC catches every one.
    let mut bad = img.clone();
    for o in offsets {
        bad[o + 300] ^= 0x40;
    }
    let mut d = Counting { inner: MemDisk::new(bad, 512), writes: 0 };
    let e = BitLocker::open(&mut d).err().expect("must fail");
    assert!(e.to_string().contains("no valid BitLocker metadata copy"), "{e}");
    // Garbage everywhere with fixed-up CRCs must not panic either.
    let mut rng = 0x1234_5678_9abc_def0u64;
    for round in 0..300 {
        let mut v = img[..64 << 20].to_vec();
        for _ in 0..(1 + round % 16) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let o = offsets[(rng % 3) as usize] + (rng >> 8) as usize % 1024;
            v[o] = (rng >> 40) as u8;
        }
        // Make copy 1's CRC right again so the parser goes deep.
        let len = u16::from_le_bytes([v[offsets[0] + 8], v[offsets[0] + 9]]) as usize * 16;
        if len >= 112 && offsets[0] + len + 8 <= v.len() {
            let crc = rescue_engine::util::crc32::crc32(&v[offsets[0]..offsets[0] + len]);
            v[offsets[0] + len + 4..offsets[0] + len + 8].copy_from_slice(&crc.to_le_bytes());
        }
        let mut d = Counting { inner: MemDisk::new(v, 512), writes: 0 };
        let _ = BitLocker::open(&mut d).map(|b| b.protectors().len());
        assert_eq!(d.writes, 0);
    }
}

#[test]
fn engine_unlocks_and_refuses_metadata_writes() {
    let img = std::fs::read(corpus().join("bitlk-images/bitlk-aes-xts-128.img")).unwrap();
    let disk = Counting { inner: MemDisk::new(img, 512), writes: 0 };
    let bl = BitLocker::open(disk).unwrap();
    let mut u = bl.unlock(&UnlockKey::Password("anaconda")).unwrap();
    let mut s = [0u8; 512];
    u.read_at(0, &mut s).unwrap();
    assert_eq!(&s[3..11], b"NTFS    ");
    for (a, b) in u.protected_ranges() {
        assert_eq!(u.write_at(a, &[1, 2, 3]), Err(IoError::ReadOnly { offset: a }));
        // A write that ends inside the area is refused too, before anything is written.
        assert!(u.write_at(a - 1024, &[7u8; 2048]).is_err());
        let mut z = vec![1u8; (b - a) as usize];
        u.read_at(a, &mut z).unwrap();
        assert!(z.iter().all(|&x| x == 0));
    }
    assert_eq!(u.into_inner().writes, 0);
}

// --- Volumes we encrypt ourselves, checked with dislocker, bdeinfo and cryptsetup ---

const RP: &str = "236808-089419-192665-046024-405482-219285-362142-691911";

fn have(tool: &str) -> bool {
    support::limits::output(Command::new("sh").arg("-c").arg(format!("command -v {tool}")))
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A 24 MiB NTFS volume whose filesystem leaves the last MiB free, with a file in it.
fn plain_ntfs(dir: &Path) -> PathBuf {
    let vol = dir.join("plain.img");
    std::fs::File::create(&vol).unwrap().set_len(24 << 20).unwrap();
    let sectors = ((23u64 << 20) / 512 - 1).to_string();
    let o = support::limits::output(
        Command::new("mkntfs").args(["-F", "-Q", "-q", "-s", "512", "-L", "Windows"]).arg(&vol).arg(&sectors),
    )
    .unwrap();
    assert!(o.status.success(), "mkntfs: {}", String::from_utf8_lossy(&o.stderr));
    // Some content so the volume is not mostly zeros.
    let f = dir.join("hello.txt");
    std::fs::write(&f, b"hello from a BitLocker test volume\n".repeat(2000)).unwrap();
    let o =
        support::limits::output(Command::new("ntfscp").args(["-f", "-q"]).arg(&vol).arg(&f).arg("hello.txt")).unwrap();
    assert!(o.status.success(), "ntfscp: {}", String::from_utf8_lossy(&o.stderr));
    vol
}

fn encrypt(dir: &Path, plain: &Path, method: &str) -> PathBuf {
    let enc = dir.join(format!("enc-{method}.img"));
    let r = support::limits::output(
        Command::new(support::testkit::bitlocker_encrypt())
            .args(["--method", method, "--recovery-password", RP, "--password", "pässwörd"])
            .arg(plain)
            .arg(&enc),
    )
    .unwrap();
    assert!(r.status.success(), "encrypt: {}", String::from_utf8_lossy(&r.stderr));
    enc
}

fn dislocker(enc: &Path, out: &Path) {
    std::fs::remove_file(out).ok();
    let o = support::limits::output(Command::new("dislocker-file").arg("-V").arg(enc).arg(format!("-p{RP}")).arg(out))
        .unwrap();
    assert!(
        o.status.success() && out.exists(),
        "dislocker-file failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn our_volumes_open_in_dislocker_bdeinfo_cryptsetup_and_round_trip() {
    for t in ["mkntfs", "ntfscp", "dislocker-file", "bdeinfo", "bdemount", "cryptsetup"] {
        assert!(have(t), "{t} is not installed (scripts/test installs it)");
    }
    let d = tempfile::tempdir().unwrap();
    let plain = plain_ntfs(d.path());
    let plain_sum = sha256_file(&plain);
    for method in ["xts-aes-128", "aes-cbc-128", "xts-aes-256", "aes-cbc-256-diffuser"] {
        let enc = encrypt(d.path(), &plain, method);
        assert_ne!(sha256_file(&enc), plain_sum);
        // dislocker decrypts it to the original bytes.
        let out = d.path().join("dis.img");
        dislocker(&enc, &out);
        assert_eq!(sha256_file(&out), plain_sum, "{method}: dislocker-file output differs from the plaintext");
        // bdeinfo opens it with the recovery password (libbde 20190102 cannot
        // set XTS-AES-256 keys, for Windows-made volumes too); cryptsetup dumps the header.
        let o = support::limits::output(Command::new("bdeinfo").arg(format!("-r{RP}")).arg(&enc)).unwrap();
        let so = String::from_utf8_lossy(&o.stdout);
        if method != "xts-aes-256" {
            assert!(o.status.success(), "{method}: bdeinfo: {so}{}", String::from_utf8_lossy(&o.stderr));
            assert!(so.contains("Recovery password"), "{method}: bdeinfo: {so}");
            assert!(!so.contains("Is locked"), "{method}: bdeinfo says locked: {so}");
            // bdemount (FUSE) decrypts the encrypted part (the NTFS, not the
            // metadata MiB after it) to the original bytes.
            let m = tempfile::tempdir().unwrap();
            support::ok(Command::new("bdemount").arg(format!("-r{RP}")).arg(&enc).arg(m.path()));
            let read = std::fs::read(m.path().join("bde1"));
            support::ok(Command::new("umount").arg(m.path()));
            let (read, original) = (read.unwrap(), std::fs::read(&plain).unwrap());
            assert!(read.len() > 22 << 20, "{method}: bdemount shows {} bytes", read.len());
            assert!(read[..] == original[..read.len()], "{method}: bdemount reads other bytes than the plaintext");
        } else {
            assert!(String::from_utf8_lossy(&o.stderr).contains("tweak key"), "{so}");
        }
        // No device-mapper in these containers: cryptsetup can read the
        // header (bitlkDump) but not open the volume.
        let o = support::limits::output(Command::new("cryptsetup").arg("bitlkDump").arg(&enc)).unwrap();
        let so = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{method}: cryptsetup bitlkDump: {so}{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            so.contains("VMK protected with recovery passphrase") && so.contains("VMK protected with passphrase"),
            "{so}"
        );
        // rescue unlock gives back the plaintext, with either protector.
        let ours = d.path().join("ours.img");
        for key in [["--recovery-password", RP], ["--password", "pässwörd"]] {
            let r = rescue(&["unlock", key[0], key[1], "--out", ours.to_str().unwrap(), enc.to_str().unwrap()]);
            assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
            assert_eq!(sha256_file(&ours), plain_sum, "{method}: rescue unlock output differs");
        }

        // Write round trip through the unlocked device, checked by dislocker.
        let mut expected = std::fs::read(&plain).unwrap();
        let disk = MemDisk::new(std::fs::read(&enc).unwrap(), 512);
        let mut u = BitLocker::open(disk).unwrap().unlock(&UnlockKey::RecoveryPassword(RP)).unwrap();
        let patches: [(u64, usize); 5] = [(3, 8), (511, 3), (4000, 9000), (5 << 20, 4096), ((23 << 20) - 700, 600)];
        for (i, (off, len)) in patches.into_iter().enumerate() {
            let data: Vec<u8> = (0..len).map(|j| (j as u8).wrapping_mul(31).wrapping_add(i as u8 + 1)).collect();
            u.write_at(off, &data).unwrap();
            expected[off as usize..off as usize + len].copy_from_slice(&data);
        }
        // Refused writes leave no trace.
        for (a, _) in u.protected_ranges() {
            assert!(u.write_at(a, &[9u8; 10]).is_err());
        }
        let mut back = vec![0u8; expected.len()];
        u.read_at(0, &mut back).unwrap();
        assert!(back == expected, "{method}: read-back after writes differs");
        let raw = u.into_inner().data;
        // Re-open from scratch and read again.
        let mut u2 =
            BitLocker::open(MemDisk::new(raw.clone(), 512)).unwrap().unlock(&UnlockKey::Password("pässwörd")).unwrap();
        let mut back2 = vec![0u8; expected.len()];
        u2.read_at(0, &mut back2).unwrap();
        assert!(back2 == expected, "{method}: re-opened volume differs");
        let written = d.path().join("written.img");
        std::fs::write(&written, &raw).unwrap();
        dislocker(&written, &out);
        let got = std::fs::read(&out).unwrap();
        assert!(got == expected, "{method}: dislocker-file disagrees with our writes");
    }
}

/// `scripts/make-test-disk --bitlocker`: a whole GPT disk whose Windows
/// partition is BitLocker. `rescue unlock` finds the partition on the whole
/// disk and agrees with dislocker-file; the channel files are inside.
#[test]
fn make_test_disk_bitlocker_opens_everywhere() {
    for t in ["ntfs-3g", "sgdisk", "mkfs.fat", "mcopy", "dislocker-file", "ntfsls"] {
        assert!(have(t), "{t} is not installed (scripts/test installs it)");
    }
    let d = tempfile::tempdir().unwrap();
    let disk = d.path().join("pc.img");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-test-disk");
    let o = support::limits::output(
        Command::new(&script)
            .args([
                "--size",
                "200",
                "--bitlocker",
                RP,
                "--bitlocker-method",
                "aes-cbc-128",
                "--bitlocker-password",
                "pw",
            ])
            .arg(&disk)
            .env("RESCUE", RESCUE),
    )
    .unwrap();
    assert!(o.status.success(), "make-test-disk: {}", String::from_utf8_lossy(&o.stderr));
    let manifest = std::fs::read_to_string(d.path().join("pc.img.json")).unwrap();
    assert!(manifest.contains("\"bitlocker\": true") && manifest.contains("aes-cbc-128"), "{manifest}");
    let info = rescue(&["bitlocker", "info", disk.to_str().unwrap()]);
    let so = String::from_utf8_lossy(&info.stdout);
    assert!(so.contains("partition 3") && so.contains("AES-CBC 128-bit"), "{so}");
    // Each Key ID in the manifest is a protector of the volume.
    for line in manifest.lines().filter(|l| l.trim().starts_with('"') && l.contains('-') && l.len() < 60) {
        let id = line.trim().trim_matches(|c| c == '"' || c == ',');
        if id.len() == 36 {
            assert!(so.contains(id), "{id} not in {so}");
        }
    }
    let ours = d.path().join("ours.img");
    let r = rescue(&["unlock", "--password", "pw", "--out", ours.to_str().unwrap(), disk.to_str().unwrap()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // dislocker-file on the partition, cut out with the manifest's offsets.
    let v: Vec<u64> = ["windows_partition_offset", "windows_partition_size"]
        .iter()
        .map(|k| {
            let l = manifest.lines().find(|l| l.contains(k)).unwrap();
            l.split(':').nth(1).unwrap().trim().trim_end_matches(',').parse().unwrap()
        })
        .collect();
    let raw = std::fs::read(&disk).unwrap();
    let part = d.path().join("part.img");
    std::fs::write(&part, &raw[v[0] as usize..(v[0] + v[1]) as usize]).unwrap();
    let dis = d.path().join("dis.img");
    dislocker(&part, &dis);
    assert!(std::fs::read(&dis).unwrap() == std::fs::read(&ours).unwrap(), "rescue unlock and dislocker-file disagree");
    let o = support::limits::output(
        Command::new("ntfsls").arg(&ours).arg("-p").arg("/Windows/System32/drivers/CrowdStrike"),
    )
    .unwrap();
    let ls = String::from_utf8_lossy(&o.stdout);
    assert!(ls.contains("C-00000291-00000000-00000032.sys"), "ntfsls: {ls}{}", String::from_utf8_lossy(&o.stderr));
    // Laid out as Windows does: the filesystem fills the partition (its
    // alternate boot sector is the partition's last sector), and the three
    // FVE metadata areas (offsets in the BitLocker boot sector) lie inside
    // it, in clusters marked in use that belong to no file.
    let o = support::limits::output(Command::new("ntfsfix").arg("-n").arg(&ours)).unwrap();
    let fix = String::from_utf8_lossy(&o.stdout);
    assert!(
        fix.contains("Checking the alternate boot sector... OK") && fix.contains("processed successfully"),
        "{fix}"
    );
    let bitmap = support::limits::output(Command::new("ntfscat").arg(&ours).arg("$Bitmap")).unwrap().stdout;
    let fve = &raw[v[0] as usize..v[0] as usize + 512];
    for i in 0..3 {
        let at = u64::from_le_bytes(fve[0xB0 + 8 * i..0xB8 + 8 * i].try_into().unwrap());
        assert!(at + 65536 <= v[1], "metadata area {i} at {at} lies outside the filesystem");
        let (first, last) = (at / 4096, (at + 65535) / 4096);
        for c in first..=last {
            assert!(bitmap[(c / 8) as usize] >> (c % 8) & 1 == 1, "metadata cluster {c} not marked in use");
        }
        let o =
            support::limits::output(Command::new("ntfscluster").arg("-c").arg(format!("{first}-{last}")).arg(&ours))
                .unwrap();
        assert!(String::from_utf8_lossy(&o.stdout).contains("no inode found"), "metadata area {i} belongs to a file");
    }
}

/// A used-space-only (encrypt-on-write) Windows volume keeps its relocated
/// boot sectors unencrypted: they read as the NTFS boot sector and refuse
/// writes; the rest of the volume is written encrypted.
#[test]
fn encrypt_on_write_volume_reads_boot_sector_and_guards_it() {
    let img = std::fs::read(corpus().join("bitlk-images/bitlk-aes-xts-128-eow.img")).unwrap();
    let bl = BitLocker::open(MemDisk::new(img.clone(), 512)).unwrap();
    assert!(bl.header.encrypt_on_write());
    let mut u =
        bl.unlock(&UnlockKey::RecoveryPassword("685839-373538-494868-036223-326590-515064-328416-685102")).unwrap();
    let mut s = [0u8; 512];
    u.read_at(0, &mut s).unwrap();
    assert_eq!(&s[3..11], b"NTFS    ");
    assert!(matches!(u.write_at(100, b"x"), Err(IoError::ReadOnly { .. })));
    let at = 20 << 20;
    u.write_at(at, b"written through BitLocker").unwrap();
    let mut b = [0u8; 25];
    u.read_at(at, &mut b).unwrap();
    assert_eq!(&b, b"written through BitLocker");
    let raw = u.into_inner().data;
    assert_ne!(&raw[at as usize..at as usize + 25], b"written through BitLocker", "data must be encrypted on disk");
    assert_eq!(raw[..at as usize], img[..at as usize], "nothing else may change");
}

/// Secrets off the command line: a recovery password from a file, from
/// standard input, and typed at a no-echo prompt on a terminal (driven
/// through `script`); the command-line value still works, with a warning.
#[test]
fn recovery_password_from_file_stdin_and_prompt() {
    use std::io::Write;
    use std::process::Stdio;
    let conf = images_conf();
    let rp = conf.iter().find(|(n, _)| n == "bitlk-aes-xts-128").and_then(|(_, c)| c.get("RP")).unwrap().clone();
    let img = corpus().join("bitlk-images/bitlk-aes-xts-128.img");
    let i = img.to_str().unwrap();
    let unlocked = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).contains("unlocked with Key ID");
    let info = rescue(&["bitlocker", "info", "--json", i]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("bitlocker info --json");
    assert!(info["protectors"].as_array().is_some_and(|p| p.len() >= 2), "{info}");
    assert!(!info.to_string().contains(&rp[..13]));

    let r = rescue(&["unlock", "--test-key", "--recovery-password", &rp, i]);
    assert!(unlocked(&r) && String::from_utf8_lossy(&r.stderr).contains("visible to other users"), "{r:?}");

    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("rp.txt");
    std::fs::write(&f, format!("\u{feff}{rp}\r\n")).unwrap();
    let r = rescue(&["unlock", "--test-key", "--recovery-password-file", f.to_str().unwrap(), i]);
    assert!(unlocked(&r) && !String::from_utf8_lossy(&r.stderr).contains("visible"), "{r:?}");

    let mut child = Command::new(RESCUE)
        .args(["unlock", "--test-key", "--recovery-password-file", "-", i])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{rp}\n").as_bytes()).unwrap();
    let r = child.wait_with_output().unwrap();
    assert!(unlocked(&r), "{r:?}");

    // On a terminal with no key given: asked without echo.
    let cmd = format!("{RESCUE} unlock --test-key {i}");
    let (ok, text) = support::on_terminal(&cmd, &[], &[("(not shown; Enter to skip)", rp.as_str())]);
    assert!(ok && text.contains("Key ID {"), "{text}");
    assert!(text.contains("unlocked with Key ID"), "{text}");
    assert!(!text.contains(&rp[..13]), "the typed key was echoed:\n{text}");
}
