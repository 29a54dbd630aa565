//! Shared helpers for the end-to-end tests: running `rescue`, external
//! checkers, and QEMU with OVMF.
#![allow(dead_code)]

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
    cmd.output().unwrap_or_else(|e| panic!("cannot run {name} ({e}); run scripts/test, which installs the test tools"))
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

/// How QEMU sees the image under test.
#[derive(Clone, Copy, Debug)]
pub enum Media {
    UsbStick,
    Cdrom,
}

/// A running QEMU, killed when dropped.
pub struct Qemu {
    child: Child,
    pub serial: PathBuf,
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

impl Qemu {
    /// Boots `image` as `media` on q35 with OVMF under TCG, with extra
    /// devices (`disks`: raw images attached as AHCI disks). Serial goes to a
    /// file; QEMU exits instead of rebooting.
    pub fn boot(image: &Path, media: Media, disks: &[&Path], extra: &[&str]) -> Qemu {
        let vars = tempfile::tempdir().unwrap();
        let vars_fd = vars.path().join("vars.fd");
        std::fs::copy(OVMF_VARS, &vars_fd).expect("OVMF is missing: run scripts/test, which installs ovmf");
        let serial = vars.path().join("serial.log");
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-machine", "q35", "-accel", "tcg", "-m", "512", "-display", "none", "-no-reboot", "-net", "none"])
            .arg("-drive")
            .arg(format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"))
            .arg("-drive")
            .arg(format!("if=pflash,format=raw,unit=1,file={}", vars_fd.display()))
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .args(["-monitor", "none"]);
        match media {
            Media::UsbStick => {
                cmd.arg("-drive").arg(format!("if=none,id=stick,format=raw,file={}", image.display()));
                cmd.args(["-device", "qemu-xhci", "-device", "usb-storage,drive=stick,removable=on,bootindex=0"]);
            }
            Media::Cdrom => {
                cmd.arg("-drive").arg(format!("if=none,id=cd,format=raw,media=cdrom,readonly=on,file={}", image.display()));
                cmd.args(["-device", "ide-cd,drive=cd,bus=ide.0,bootindex=0"]);
            }
        }
        for (i, d) in disks.iter().enumerate() {
            cmd.arg("-drive").arg(format!("if=none,id=disk{i},format=raw,file={}", d.display()));
            cmd.arg("-device").arg(format!("ide-hd,drive=disk{i},bus=ide.{}", i + 1));
        }
        cmd.args(extra).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd.spawn().expect("cannot start qemu-system-x86_64: run scripts/test, which installs qemu-system-x86");
        Qemu { child, serial, _vars: vars }
    }

    /// The serial output so far.
    pub fn serial_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.serial).unwrap_or_default()).into_owned()
    }

    /// The agent's prefixed serial lines so far, without the prefix.
    pub fn agent_lines(&self) -> Vec<String> {
        self.serial_text()
            .lines()
            .filter_map(|l| l.find("RESCUE: ").map(|i| l[i + 8..].trim_end().to_string()))
            .collect()
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
                panic!("the VM did not end by itself within {limit:?}\nserial:\n{}\nqemu stderr:\n{err}", self.serial_text());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
