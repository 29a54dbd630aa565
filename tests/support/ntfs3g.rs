//! ntfs-3g as a test tool: make NTFS volumes with mkntfs and files written
//! through a FUSE mount, and the independent checks every volume we wrote
//! must pass. Shared by the engine's NTFS tests and the CLI's.
#![allow(dead_code)] // each test crate uses its own subset

#[path = "limits.rs"]
pub mod limits;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// ntfs-3g mounts are serialised: FUSE under load on 2 cores is the slow part anyway.
static MOUNT: Mutex<()> = Mutex::new(());

pub fn run(cmd: &mut Command) -> String {
    let out = limits::output(cmd).unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn bytes(cmd: &mut Command) -> Vec<u8> {
    let out = limits::output(cmd).unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Makes an NTFS volume of `mib` MiB with mkntfs (`extra` options), mounts
/// it with ntfs-3g and runs `script` (sh) inside it, then unmounts.
pub fn make_volume(dir: &Path, name: &str, mib: u64, extra: &[&str], script: &str) -> PathBuf {
    let img = dir.join(name);
    let f = fs::File::create(&img).unwrap();
    f.set_len(mib << 20).unwrap();
    drop(f);
    run(Command::new("mkntfs").args(["-F", "-Q", "-q"]).args(extra).arg(&img));
    if !script.is_empty() {
        with_mount(&img, &[], |m| {
            run(Command::new("sh").arg("-ec").arg(script).current_dir(m));
        });
    }
    img
}

/// Mounts `img` with ntfs-3g, runs `f`, unmounts.
pub fn with_mount<T>(img: &Path, opts: &[&str], f: impl FnOnce(&Path) -> T) -> T {
    let _g = MOUNT.lock().unwrap_or_else(|e| e.into_inner());
    let m = tempfile::tempdir().unwrap();
    let mut c = Command::new("ntfs-3g");
    for o in opts {
        c.args(["-o", o]);
    }
    run(c.arg(img).arg(m.path()));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(m.path())));
    run(Command::new("umount").arg(m.path()));
    match r {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

pub fn copy(src: &Path, dst: &Path) -> PathBuf {
    run(Command::new("cp").arg("--sparse=always").arg(src).arg(dst));
    dst.to_path_buf()
}

/// The independent checks every volume we wrote must pass.
pub fn check_volume(img: &Path) {
    let out = run(Command::new("ntfsfix").arg("-n").arg(img));
    assert!(out.contains("processed successfully"), "ntfsfix -n: {out}");
    with_mount(img, &[], |m| {
        // read-write: create and remove a file
        fs::write(m.join("rw-probe"), b"x").unwrap();
        fs::remove_file(m.join("rw-probe")).unwrap();
        run(Command::new("find").arg(m).arg("-xdev"));
    });
}
