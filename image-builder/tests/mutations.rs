//! Hostile input for the host side, on stable Rust: real inputs (a built
//! stick, an ISO, a signed network-boot rescue.efi, a recovery-key export,
//! recovery passwords) mutated a few hundred times each with a fixed seed,
//! and fed to the command that reads them (`inspect`, `collect`, `keys
//! check`, `unlock`). Every run must end with one of the documented exit
//! codes and a message, never a panic (exit 101) or a signal. The engine's
//! parsers have coverage-guided fuzz targets (`scripts/fuzz`); these are the
//! formats only the `rescue` binary reads (PE and Authenticode, FAT and ISO
//! 9660 as `inspect` and `collect` read them, CSV key files).

#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::Path;
use support::*;

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// `data` with 1-16 bytes changed inside `hot` (byte ranges), sometimes cut short.
fn mutate(rng: &mut Rng, data: &[u8], hot: &[(usize, usize)]) -> Vec<u8> {
    let mut out = data.to_vec();
    for _ in 0..1 + rng.below(16) {
        let (start, len) = hot[rng.below(hot.len())];
        let at = (start + rng.below(len)).min(out.len() - 1);
        out[at] = match rng.below(4) {
            0 => 0,
            1 => 0xFF,
            2 => out[at] ^ (1 << rng.below(8)),
            _ => rng.next() as u8,
        };
    }
    if rng.below(20) == 0 {
        out.truncate(rng.below(out.len()));
    }
    out
}

/// Runs `rescue` with `args` on each of `rounds` mutations of `input`
/// (written to `file`); asserts a documented exit code and no panic.
fn survive(dir: &Path, seed: u64, rounds: usize, input: &[u8], hot: &[(usize, usize)], name: &str, args: &[&str]) {
    let mut rng = Rng(seed);
    let file = dir.join(name);
    for round in 0..rounds {
        std::fs::write(&file, mutate(&mut rng, input, hot)).unwrap();
        let o = run(rescue().args(args).arg(&file));
        let err = String::from_utf8_lossy(&o.stderr);
        let code = o.status.code();
        assert!(
            matches!(code, Some(0..=4)) && !err.contains("panicked"),
            "{args:?} on mutation {round} (seed {seed}) ended with {code:?}:\n{err}"
        );
        assert!(code == Some(0) || !err.trim().is_empty(), "{args:?}: failed without a word (mutation {round})");
    }
}

/// Where `needle` starts in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn stick_and_iso_images_as_inspect_and_collect_read_them() {
    let dir = tempfile::tempdir().unwrap();
    let stick = std::fs::read(build_image(dir.path(), "stick.img", &["--size", "40"])).unwrap();
    // GPT and the FAT's boot sector and tables; the agent's PE headers.
    let pe = find(&stick, b"This program cannot be run in DOS mode").map_or(0, |at| at.saturating_sub(0x4E));
    let hot = [(0, 34 * 512), (1 << 20, 1 << 20), (pe, 4096)];
    survive(dir.path(), 0x5EED_0001, 70, &stick, &hot, "m.img", &["inspect"]);
    survive(dir.path(), 0x5EED_0002, 30, &stick, &hot, "m.img", &["collect", "--out", "-"]);
    let iso = std::fs::read(build_image(dir.path(), "stick.iso", &["--format", "iso"])).unwrap();
    // The volume descriptors, the El Torito catalog and the boot image's FAT.
    let hot = [(16 * 2048, 8 * 2048), (0, 64 * 1024)];
    survive(dir.path(), 0x5EED_0003, 60, &iso, &hot, "m.iso", &["inspect"]);
}

#[test]
fn signed_network_binary_as_inspect_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let efi = dir.path().join("rescue.efi");
    ok(rescue().args(["build", "--format", "efi", "--profile"]).arg(default_profile()).arg("--out").arg(&efi).args([
        "--sign-key",
        k.key.to_str().unwrap(),
        "--sign-cert",
        k.crt.to_str().unwrap(),
    ]));
    let bytes = std::fs::read(&efi).unwrap();
    let shown = ok(rescue().arg("inspect").arg(&efi));
    assert!(shown.contains("signature matches"), "{shown}");
    // PE headers and section table; the certificate table at the end (its
    // offset is in the security directory); the embedded profile section.
    let pe_at = u32::from_le_bytes(bytes[0x3C..0x40].try_into().unwrap()) as usize;
    let cert_at = u32::from_le_bytes(bytes[pe_at + 24 + 144..pe_at + 24 + 148].try_into().unwrap()) as usize;
    let rprof = find(&bytes, b"RESCUE-PROFILE").unwrap_or(0);
    let hot = [(0, 1024), (cert_at.min(bytes.len() - 1), bytes.len() - cert_at.min(bytes.len() - 1)), (rprof, 512)];
    survive(dir.path(), 0x5EED_0004, 200, &bytes, &hot, "m.efi", &["inspect"]);
}

#[test]
fn key_exports_as_keys_check_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "\"DistinguishedName\",\"msFVE-RecoveryPassword\",\"Name\"\r\n\
               \"CN=2024-07-19T10:00:00-00:00{11111111-2222-4333-8444-555555555555},CN=PC1,DC=example\",\
               \"466895-217492-569250-069608-104434-135707-527241-083622\",\
               \"2024-07-19T10:00:00-00:00{11111111-2222-4333-8444-555555555555}\"\r\n\
               KeyID,RecoveryKey\r\n\
               {AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE},236808-089419-192665-046024-405482-219285-362142-691911\r\n";
    let bytes = csv.as_bytes();
    survive(dir.path(), 0x5EED_0005, 300, bytes, &[(0, bytes.len())], "m.csv", &["keys", "check"]);
}

#[test]
fn recovery_passwords_as_unlock_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let disk = make_test_disk(
        dir.path(),
        "bl.img",
        &["--bitlocker", "466895-217492-569250-069608-104434-135707-527241-083622"],
    );
    let mut rng = Rng(0x5EED_0006);
    let good = b"466895-217492-569250-069608-104434-135707-527241-083622";
    let out = dir.path().join("out.img");
    for round in 0..60 {
        let pw = mutate(&mut rng, good, &[(0, good.len())]);
        let pw_file = dir.path().join("pw.txt");
        std::fs::write(&pw_file, &pw).unwrap();
        let o = run(rescue()
            .args(["unlock", "--recovery-password-file"])
            .arg(&pw_file)
            .arg("--out")
            .arg(&out)
            .arg(&disk.path));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(matches!(o.status.code(), Some(0..=2)) && !err.contains("panicked"), "round {round}: {err}");
        // Never echoed back, right or wrong.
        let shown = String::from_utf8_lossy(&o.stdout) + err.clone();
        let digits: String = String::from_utf8_lossy(&pw).chars().filter(|c| c.is_ascii_digit()).collect();
        assert!(digits.len() < 12 || !shown.contains(&digits[..12]), "round {round}: the password was printed");
        let _ = std::fs::remove_file(&out);
    }
}

/// The mutator really changes its input (else the tests above prove nothing).
#[test]
fn mutations_change_the_input() {
    let mut rng = Rng(1);
    let data = vec![0x55u8; 4096];
    let changed = (0..100).filter(|_| mutate(&mut rng, &data, &[(0, 4096)]) != data).count();
    assert!(changed > 90, "{changed}");
}
