//! Shared helpers for the end-to-end tests: running `rescue`, external
//! checkers, and QEMU with OVMF.
#![allow(dead_code)]

pub mod limits;
pub mod testkit;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The `rescue` binary under test.
pub fn rescue() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rescue"))
}

/// Runs a command, returning its output; panics if it cannot start (a missing tool).
pub fn run(cmd: &mut Command) -> Output {
    let name = format!("{:?}", cmd.get_program());
    limits::output(cmd)
        .unwrap_or_else(|e| panic!("cannot run {name} ({e}); run scripts/test, which installs the test tools"))
}

/// Runs a command and requires success; returns stdout as text.
pub fn ok(cmd: &mut Command) -> String {
    let desc = format!("{cmd:?}");
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{desc} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The default profile shipped in `profiles/`.
pub fn default_profile() -> PathBuf {
    root().join("profiles/crowdstrike-c00000291.toml")
}

/// Builds an image with `rescue build` and returns its path.
pub fn build_image(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = rescue();
    cmd.arg("build").arg("--profile").arg(default_profile()).arg("--out").arg(&out).args(extra);
    ok(&mut cmd);
    out
}

/// Runs `rescue build` with the default profile and `extra`; it must fail
/// and leave no image at `out`. Returns what it printed on stderr.
pub fn build_refused(out: &Path, extra: &[&str]) -> String {
    let o = run(rescue().arg("build").arg("--profile").arg(default_profile()).arg("--out").arg(out).args(extra));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{extra:?} was accepted");
    assert!(!out.exists(), "{extra:?} left an image behind");
    err
}

/// The controller a test disk sits behind.
#[derive(Clone, Copy, Debug)]
pub enum Bus {
    Ahci,
    Nvme,
    Virtio,
}

/// How QEMU sees the image under test.
#[derive(Clone, Copy, Debug)]
pub enum Media {
    UsbStick,
    /// A USB stick whose write-protect switch is on (QEMU `readonly=on`).
    ReadOnlyStick,
    Cdrom,
    /// No boot medium: the firmware boots from the network (`extra` sets up the NIC).
    Network,
}

/// A running QEMU, killed when dropped. Its serial port is its stdin and
/// stdout: tests read the agent's lines and type keys there.
pub struct Qemu {
    child: Child,
    serial: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    input: Option<std::process::ChildStdin>,
    /// The QEMU monitor's socket (for `screendump`).
    monitor: PathBuf,
    _vars: tempfile::TempDir,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// OVMF built with Secure Boot (needs SMM and a secure flash).
pub const OVMF_CODE_SECBOOT: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
/// A varstore with Microsoft's 2011 KEK and db (Windows and third-party UEFI CAs), Secure Boot on.
pub const OVMF_VARS_MS: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";

/// AAVMF, the ARM64 build of the UEFI firmware (Debian qemu-efi-aarch64).
pub const AAVMF_CODE: &str = "/usr/share/AAVMF/AAVMF_CODE.fd";
pub const AAVMF_VARS: &str = "/usr/share/AAVMF/AAVMF_VARS.fd";

impl Qemu {
    /// Boots the stick `image` on an ARM64 machine (`qemu-system-aarch64 -M
    /// virt`, Cortex-A72, AAVMF, TCG): the stick on xHCI, the test disks on
    /// NVMe. No graphics: the firmware's console is the serial port.
    pub fn boot_arm64(image: &Path, disks: &[&Path]) -> Qemu {
        let vars = tempfile::tempdir().unwrap();
        let vars_fd = vars.path().join("vars.fd");
        std::fs::copy(AAVMF_VARS, &vars_fd)
            .expect("AAVMF is missing: run scripts/test, which installs qemu-efi-aarch64");
        let mut cmd = Command::new("qemu-system-aarch64");
        cmd.args(["-machine", "virt", "-cpu", "cortex-a72", "-accel", "tcg", "-m", "1024"]);
        cmd.args(["-display", "none", "-no-reboot", "-net", "none"]);
        cmd.arg("-drive")
            .arg(format!("if=pflash,format=raw,unit=0,readonly=on,file={AAVMF_CODE}"))
            .arg("-drive")
            .arg(format!("if=pflash,format=raw,unit=1,file={}", vars_fd.display()))
            .args(["-serial", "stdio", "-monitor"])
            .arg(format!("unix:{},server=on,wait=off", vars.path().join("monitor.sock").display()));
        cmd.arg("-drive").arg(format!("if=none,id=stick,format=raw,file={}", image.display()));
        cmd.args(["-device", "qemu-xhci", "-device", "usb-storage,drive=stick,removable=on,bootindex=0"]);
        for (i, d) in disks.iter().enumerate() {
            cmd.arg("-drive").arg(format!("if=none,id=disk{i},format=raw,file={}", d.display()));
            cmd.arg("-device").arg(format!("nvme,drive=disk{i},serial=RESCUE{i}"));
        }
        Qemu::spawn(cmd, vars)
    }

    /// Boots `image` as `media` on q35 with OVMF under TCG, with test disks
    /// attached (raw images, each behind its bus). Serial goes to a file;
    /// QEMU exits instead of rebooting.
    pub fn boot(image: &Path, media: Media, disks: &[(&Path, Bus)], extra: &[&str]) -> Qemu {
        let vars = tempfile::tempdir().unwrap();
        let vars_fd = vars.path().join("vars.fd");
        std::fs::copy(OVMF_VARS, &vars_fd).expect("OVMF is missing: run scripts/test, which installs ovmf");
        Qemu::start(image, media, disks, extra, false, &vars_fd, vars)
    }

    /// Boots `image` with Secure Boot firmware (`OVMF_CODE_4M.secboot.fd`,
    /// q35 with SMM, secure flash) and the varstore `vars`, used in place:
    /// what the firmware or MokManager writes stays there for the next boot.
    /// Boots like [`Qemu::boot`] but with the varstore `vars`, used in place
    /// (so the test can read what the agent left in it, e.g. `BootNext`).
    pub fn boot_with_vars(image: &Path, media: Media, disks: &[(&Path, Bus)], vars: &Path) -> Qemu {
        Qemu::start(image, media, disks, &[], false, vars, tempfile::tempdir().unwrap())
    }

    pub fn boot_secure(image: &Path, media: Media, vars: &Path, extra: &[&str]) -> Qemu {
        assert!(
            Path::new(OVMF_CODE_SECBOOT).exists(),
            "OVMF (Secure Boot) is missing: run scripts/test, which installs ovmf"
        );
        Qemu::start(image, media, &[], extra, true, vars, tempfile::tempdir().unwrap())
    }

    fn start(
        image: &Path,
        media: Media,
        disks: &[(&Path, Bus)],
        extra: &[&str],
        secure: bool,
        vars_fd: &Path,
        vars: tempfile::TempDir,
    ) -> Qemu {
        let (machine, code) = if secure { ("q35,smm=on", OVMF_CODE_SECBOOT) } else { ("q35", OVMF_CODE) };
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-machine", machine, "-accel", "tcg", "-m", "512", "-display", "none", "-no-reboot", "-net", "none"]);
        if secure {
            cmd.args(["-global", "driver=cfi.pflash01,property=secure,value=on"]);
        }
        cmd.arg("-drive")
            .arg(format!("if=pflash,format=raw,unit=0,readonly=on,file={code}"))
            .arg("-drive")
            .arg(format!("if=pflash,format=raw,unit=1,file={}", vars_fd.display()))
            .args(["-serial", "stdio", "-monitor"])
            .arg(format!("unix:{},server=on,wait=off", vars.path().join("monitor.sock").display()));
        match media {
            Media::UsbStick | Media::ReadOnlyStick => {
                let ro = if matches!(media, Media::ReadOnlyStick) { ",readonly=on" } else { "" };
                cmd.arg("-drive").arg(format!("if=none,id=stick,format=raw{ro},file={}", image.display()));
                cmd.args(["-device", "qemu-xhci", "-device", "usb-storage,drive=stick,removable=on,bootindex=0"]);
            }
            Media::Cdrom => {
                cmd.arg("-drive")
                    .arg(format!("if=none,id=cd,format=raw,media=cdrom,readonly=on,file={}", image.display()));
                cmd.args(["-device", "ide-cd,drive=cd,bus=ide.0,bootindex=0"]);
            }
            Media::Network => {}
        }
        for (i, (d, bus)) in disks.iter().enumerate() {
            cmd.arg("-drive").arg(format!("if=none,id=disk{i},format=raw,file={}", d.display()));
            cmd.arg("-device").arg(match bus {
                Bus::Ahci => format!("ide-hd,drive=disk{i},bus=ide.{}", i + 1),
                Bus::Nvme => format!("nvme,drive=disk{i},serial=RESCUE{i}"),
                Bus::Virtio => format!("virtio-blk-pci,drive=disk{i}"),
            });
        }
        cmd.args(extra);
        Qemu::spawn(cmd, vars)
    }

    /// Runs `cmd`, which ends up as QEMU with its serial port on its stdin
    /// and stdout (e.g. `scripts/netboot-lab pc`, which execs QEMU).
    pub fn run(cmd: Command) -> Qemu {
        Qemu::spawn(cmd, tempfile::tempdir().unwrap())
    }

    /// Starts QEMU with its serial port on stdin/stdout, collected in the background.
    fn spawn(mut cmd: Command, vars: tempfile::TempDir) -> Qemu {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("cannot start QEMU: run scripts/test, which installs it");
        let serial = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut out = child.stdout.take().unwrap();
        let sink = serial.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let input = child.stdin.take();
        let monitor = vars.path().join("monitor.sock");
        Qemu { child, serial, input, monitor, _vars: vars }
    }

    /// Saves what the VM's screen shows now as a PPM image (the QEMU
    /// monitor's `screendump`: what a person in front of the PC would see).
    pub fn screendump(&self, out: &Path) {
        use std::io::{Read, Write};
        let _ = std::fs::remove_file(out);
        let mut mon = std::os::unix::net::UnixStream::connect(&self.monitor).expect("QEMU monitor socket");
        mon.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        writeln!(mon, "screendump {}", out.display()).unwrap();
        let start = Instant::now();
        let mut last = 0;
        loop {
            let mut buf = [0u8; 4096];
            let _ = mon.read(&mut buf);
            let len = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
            if len > 0 && len == last {
                return;
            }
            last = len;
            assert!(start.elapsed() < Duration::from_secs(30), "no screendump written to {}", out.display());
        }
    }

    /// The serial output so far.
    pub fn serial_text(&self) -> String {
        String::from_utf8_lossy(&self.serial.lock().unwrap()).into_owned()
    }

    /// Types `text` on the serial console (as a barcode scanner would: all at once).
    pub fn type_text(&mut self, text: &str) {
        use std::io::Write;
        let input = self.input.as_mut().expect("qemu stdin");
        input.write_all(text.as_bytes()).unwrap();
        input.flush().unwrap();
    }

    /// Waits until an agent line satisfies `pred`; panics with the serial log after `limit`.
    pub fn wait_line(&mut self, pred: impl Fn(&str) -> bool, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self.agent_lines().into_iter().find(|l| pred(l)) {
                return l;
            }
            if start.elapsed() > limit || self.child.try_wait().ok().flatten().is_some() {
                panic!("the awaited line never came within {limit:?}\nserial:\n{}", self.serial_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// How many agent lines satisfy `pred` so far.
    pub fn count_lines(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.agent_lines().iter().filter(|l| pred(l)).count()
    }

    /// The agent's prefixed serial lines so far, without the prefix.
    pub fn agent_lines(&self) -> Vec<String> {
        self.serial_text()
            .lines()
            .filter_map(|l| l.find("RESCUE: ").map(|i| l[i + 8..].trim_end().to_string()))
            .collect()
    }

    /// Waits until the raw serial text (firmware messages included) satisfies
    /// `pred`; returns false if QEMU ended or `limit` passed first.
    pub fn wait_serial(&mut self, pred: impl Fn(&str) -> bool, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            if pred(&self.serial_text()) {
                return true;
            }
            if start.elapsed() > limit || self.child.try_wait().ok().flatten().is_some() {
                return pred(&self.serial_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether QEMU is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// Waits for QEMU to exit by itself within `limit`; panics with the serial log if it does not.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let mut err = String::new();
                if let Some(e) = self.child.stderr.as_mut() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!(
                    "the VM did not end by itself within {limit:?}\nserial:\n{}\nqemu stderr:\n{err}",
                    self.serial_text()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A test disk made by `scripts/make-test-disk`, with its manifest.
pub struct TestDisk {
    pub path: PathBuf,
    pub part_offset: u64,
    pub part_size: u64,
    /// Path on the Windows volume (with `/`) → SHA-256 of its content.
    pub files: std::collections::BTreeMap<String, String>,
    /// The recovery password, when the volume is BitLocker-encrypted.
    pub recovery_password: Option<String>,
}

/// Runs `scripts/make-test-disk` with `args` into `dir/name`.
pub fn make_test_disk(dir: &Path, name: &str, args: &[&str]) -> TestDisk {
    let path = dir.join(name);
    ok(Command::new(root().join("scripts/make-test-disk"))
        .args(args)
        .arg(&path)
        .env("BITLOCKER_ENCRYPT", testkit::bitlocker_encrypt()));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    TestDisk {
        path,
        part_offset: m["windows_partition_offset"].as_u64().unwrap(),
        part_size: m["windows_partition_size"].as_u64().unwrap(),
        files: m["files"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect(),
        recovery_password: m["recovery_password"].as_str().map(String::from),
    }
}

/// SHA-256 of bytes, as lowercase hex.
pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

impl TestDisk {
    /// Copies the Windows partition into its own file (for the ntfs-3g
    /// tools); a BitLocker volume is decrypted with `dislocker-file`.
    pub fn extract_volume(&self, out: &Path) {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(&self.path).unwrap();
        let mut buf = vec![0u8; self.part_size as usize];
        f.read_exact_at(&mut buf, self.part_offset).unwrap();
        match &self.recovery_password {
            None => std::fs::write(out, buf).unwrap(),
            Some(rp) => {
                let enc = out.with_extension("bitlocker");
                std::fs::write(&enc, buf).unwrap();
                ok(Command::new("dislocker-file").arg("-V").arg(&enc).arg(format!("-p{rp}")).arg(out));
                std::fs::remove_file(&enc).unwrap();
                // The NTFS inside ends before the partition does (BitLocker's
                // metadata lies beyond it): cut the file where NTFS says it
                // ends, so its backup boot sector is last, as ntfsfix expects.
                let mut head = [0u8; 512];
                std::fs::File::open(out).unwrap().read_exact(&mut head).unwrap();
                let bps = u16::from_le_bytes([head[11], head[12]]) as u64;
                let sectors = u64::from_le_bytes(head[0x28..0x30].try_into().unwrap());
                std::fs::OpenOptions::new().write(true).open(out).unwrap().set_len((sectors + 1) * bps).unwrap();
            }
        }
    }

    /// The Key ID of the BitLocker volume's recovery-password protector, as
    /// libyal's `bdeinfo` reads it from the raw (encrypted) partition.
    pub fn recovery_key_id(&self) -> String {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("vol.img");
        let mut raw = vec![0u8; self.part_size as usize];
        std::os::unix::fs::FileExt::read_exact_at(
            &std::fs::File::open(&self.path).unwrap(),
            &mut raw,
            self.part_offset,
        )
        .unwrap();
        std::fs::write(&vol, raw).unwrap();
        let info = String::from_utf8(run(Command::new("bdeinfo").arg(&vol)).stdout).unwrap();
        let mut id = None;
        for line in info.lines() {
            if let Some(v) = line.trim().strip_prefix("Identifier") {
                id = Some(v.trim_start_matches([' ', '\t', ':']).trim().to_uppercase());
            }
            if line.contains("Type") && line.contains("Recovery password") {
                return id.unwrap_or_else(|| panic!("no identifier before the type:\n{info}"));
            }
        }
        panic!("bdeinfo shows no recovery password protector:\n{info}")
    }

    /// Checks the Windows volume with ntfs-3g's tools: `ntfsfix -n` passes,
    /// it mounts (read-only), every manifest file except `gone` is there with
    /// its content, and the `gone` files are not. Returns `ntfsinfo -m`'s text.
    pub fn check_with_ntfs3g(&self, gone: &[&str]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("vol");
        self.extract_volume(&vol);
        let fix = run(Command::new("ntfsfix").arg("-n").arg(&vol));
        let fix_text = String::from_utf8_lossy(&fix.stdout).into_owned() + &String::from_utf8_lossy(&fix.stderr);
        assert!(fix.status.success(), "ntfsfix -n failed:\n{fix_text}");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        ok(Command::new("ntfs-3g").arg("-o").arg("ro").arg(&vol).arg(&mnt));
        let mut problems = Vec::new();
        for (path, sha) in &self.files {
            let content = std::fs::read(mnt.join(path));
            let should_be_gone = gone.contains(&path.as_str());
            match (content, should_be_gone) {
                (Ok(_), true) => problems.push(format!("{path} is still there")),
                // Gone means not found: any other read error is a problem.
                (Err(e), true) if e.kind() == std::io::ErrorKind::NotFound => {}
                (Err(e), true) => problems.push(format!("{path} cannot be read ({e})")),
                (Ok(c), false) if &sha256_hex(&c) == sha => {}
                (Ok(_), false) => problems.push(format!("{path} changed")),
                (Err(e), false) => problems.push(format!("{path} is missing ({e})")),
            }
        }
        ok(Command::new("umount").arg(&mnt));
        assert!(problems.is_empty(), "after the run: {problems:?}");
        ok(Command::new("ntfsinfo").arg("-m").arg("-f").arg(&vol))
    }
}

/// Reads a file from a stick image's ESP (at 1 MiB) with mtools.
pub fn stick_file(image: &Path, path: &str) -> Option<Vec<u8>> {
    let out = tempfile::NamedTempFile::new().unwrap();
    let o = run(Command::new("mcopy")
        .args(["-n", "-o", "-i"])
        .arg(format!("{}@@1M", image.display()))
        .arg(format!("::/{path}"))
        .arg(out.path()));
    o.status.success().then(|| std::fs::read(out.path()).unwrap())
}

/// Every file under a folder of a stick image's ESP, with mtools (`mdir -/ -b`).
pub fn stick_list(image: &Path, dir: &str) -> Vec<String> {
    let o = run(Command::new("mdir")
        .args(["-/", "-b", "-i"])
        .arg(format!("{}@@1M", image.display()))
        .arg(format!("::/{dir}")));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.trim_start_matches("::/").to_string())
        .filter(|l| !l.ends_with('/'))
        .collect()
}

/// The text `tesseract` (OCR) reads in an image.
pub fn ocr(image: &Path) -> String {
    ok(Command::new("tesseract").arg(image).arg("stdout"))
}

/// A copy of a PPM (P6) image shrunk by `factor` in each direction (box filter).
pub fn shrink_ppm(input: &Path, output: &Path, factor: usize) {
    let data = std::fs::read(input).unwrap();
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while data[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !data[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&data[start..at]).into_owned());
    }
    assert_eq!(fields[0], "P6", "not a binary PPM");
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let px = &data[at + 1..];
    let (nw, nh) = (w / factor, h / factor);
    let mut out = format!("P6\n{nw} {nh}\n255\n").into_bytes();
    for y in 0..nh {
        for x in 0..nw {
            for c in 0..3 {
                let mut sum = 0usize;
                for dy in 0..factor {
                    for dx in 0..factor {
                        sum += px[((y * factor + dy) * w + x * factor + dx) * 3 + c] as usize;
                    }
                }
                out.push((sum / (factor * factor)) as u8);
            }
        }
    }
    std::fs::write(output, out).unwrap();
}

/// A Secure Boot signing key and its certificate, made once per test binary.
pub struct Key {
    pub key: PathBuf,
    pub crt: PathBuf,
    pub der: PathBuf,
}

/// The test signing key (`rescue secureboot genkey`).
pub fn key() -> &'static Key {
    static KEY: std::sync::OnceLock<Key> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        ok(rescue().args(["secureboot", "genkey", "--name", "Rescue Test"]).arg("--out").arg(&dir));
        Key { key: dir.join("Rescue-Test.key"), crt: dir.join("Rescue-Test.crt"), der: dir.join("Rescue-Test.der") }
    })
}

/// A varstore whose db holds only our certificate (and PK/KEK made up by
/// virt-fw-vars), Secure Boot enabled.
pub fn org_varstore(dir: &Path) -> PathBuf {
    let vars = dir.join("vars.fd");
    ok(Command::new("virt-fw-vars")
        .args(["--input", OVMF_VARS, "--output"])
        .arg(&vars)
        .args(["--enroll-generate", "Rescue Test Platform", "--no-microsoft", "--microsoft-kek", "none"])
        .args(["--add-db", "7c2a4d3e-8a65-4f0b-9d5e-2b1f0c6a9e11"])
        .arg(&key().crt)
        .arg("--sb"));
    vars
}

/// Runs `cmd` (a shell command line) on a pseudo-terminal made by `script`
/// (util-linux), as a person at a terminal would: waits for each prompt text
/// of `answers` to show, gives the program a second to turn echo off, types
/// the answer and Enter. `env` is added to the environment. Returns whether
/// the command succeeded, and everything the terminal showed.
pub fn on_terminal(cmd: &str, env: &[(&str, &str)], answers: &[(&str, &str)]) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", cmd, "/dev/null"])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run script (util-linux)");
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut stdin = child.stdin.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    for (prompt, answer) in answers {
        while !String::from_utf8_lossy(&seen).contains(prompt) {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(b) => seen.extend(b),
                Err(_) => assert!(
                    Instant::now() < deadline && child.try_wait().ok().flatten().is_none(),
                    "no prompt {prompt:?}:\n{}",
                    String::from_utf8_lossy(&seen)
                ),
            }
        }
        wait_for_echo_off(child.id());
        stdin.write_all(format!("{answer}\r").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    let status = child.wait().unwrap();
    drop(stdin);
    while let Ok(b) = rx.recv_timeout(Duration::from_millis(500)) {
        seen.extend(b);
    }
    (status.success(), String::from_utf8_lossy(&seen).into_owned())
}

/// Waits until a process under `script` (pid `root`) reads its terminal
/// with echo off, as a password prompt does (`stty` on the terminal its
/// standard input is), so typed secrets are never echoed by a race; at most
/// 10 seconds, then types anyway (a test that sees the echo fails).
fn wait_for_echo_off(root: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        for pid in descendants(root) {
            let Ok(tty) = std::fs::read_link(format!("/proc/{pid}/fd/0")) else { continue };
            if !tty.starts_with("/dev/pts") {
                continue;
            }
            let o = limits::output(Command::new("stty").arg("-F").arg(&tty).arg("-a"));
            if o.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().any(|w| w == "-echo")) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every process below `root`, from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|pid| {
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                    let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
                    Some((pid, ppid))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(pid, _)| *pid));
        i += 1;
    }
    found.split_off(1)
}

/// What one boot of the agent left: its serial lines and the report it wrote on the stick.
pub struct Run {
    pub stick: PathBuf,
    pub report: serde_json::Value,
    pub lines: Vec<String>,
}

impl Run {
    /// Waits (up to `limit`) for `vm` to end by itself, then reads the
    /// agent's lines (which must hold a verdict) and the one report on `stick`.
    pub fn finish(mut vm: Qemu, stick: &Path, limit: Duration) -> Run {
        vm.wait_exit(limit);
        let lines = vm.agent_lines();
        assert!(lines.iter().any(|l| l.starts_with("RESULT: ")), "no verdict on serial:\n{}", vm.serial_text());
        let reports: Vec<String> =
            stick_list(stick, "rescue/reports").into_iter().filter(|p| p.ends_with(".json")).collect();
        assert_eq!(
            reports.len(),
            1,
            "expected one report on the stick, found {reports:?}\nserial:\n{}",
            vm.serial_text()
        );
        let report = serde_json::from_slice(&stick_file(stick, &reports[0]).unwrap()).unwrap();
        Run { stick: stick.to_path_buf(), report, lines }
    }

    /// The verdict line's text (`FIXED`, `NOTHING TO DO`, `FAILED: ...`).
    pub fn verdict(&self) -> &str {
        self.lines.iter().find_map(|l| l.strip_prefix("RESULT: ")).unwrap()
    }
}
