//! `rescue flash`: write an image to a stick (or a file), then prove it.
//!
//! Guarantees: a disk that holds the running system, or a partition, is
//! never written; a non-removable disk only with `--force`; on Linux a
//! mounted disk is refused, on Windows the drive's volumes are locked and
//! dismounted first; writes are whole sectors; the target is read back
//! bypassing the cache and its SHA-256 must equal the image's, or the
//! command fails loudly.

use crate::host::drives::{self, Disk};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rescue_engine::formats::diskid::human_size;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// Arguments of `rescue flash`.
#[derive(clap::Args, Debug)]
pub struct FlashArgs {
    /// The image to write (from `rescue build`)
    pub image: PathBuf,
    /// A whole disk (e.g. /dev/sdb, or \\.\PhysicalDrive2 on Windows) or a regular file
    pub target: PathBuf,
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,
    /// Allow a target that is not removable, or an image that is not a rescue image
    #[arg(long)]
    pub force: bool,
}

const CHUNK: usize = 4 << 20;
/// O_DIRECT needs buffers, offsets and lengths aligned to the logical block size.
const ALIGN: usize = 4096;

/// What the target is, after the safety checks.
enum Target {
    File,
    Device(Disk),
}

fn check_target(args: &FlashArgs, image_len: u64) -> Result<Target> {
    match std::fs::metadata(&args.target) {
        Ok(m) if m.is_file() => return Ok(Target::File),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !drives::is_device(&args.target) => {
            return Ok(Target::File)
        }
        _ => {}
    }
    if !drives::is_device(&args.target) {
        bail!("{} is neither a disk device nor a regular file", args.target.display());
    }
    let (disk, is_partition) = drives::disk_of_node(&args.target)
        .with_context(|| format!("cannot examine the disk {}", args.target.display()))?;
    check_disk(&disk, is_partition, image_len, args.force)?;
    Ok(Target::Device(disk))
}

/// The checks every disk passes before it is written (the same on every
/// platform): whole disk, not the system's, removable unless `force`, big enough.
fn check_disk(disk: &Disk, is_partition: bool, image_len: u64, force: bool) -> Result<()> {
    let path = disk.dev_path.display();
    if is_partition {
        bail!("the target is a partition; give the whole disk, {path}");
    }
    if disk.holds_system {
        bail!("refusing {path}: it holds the running system (mounted at {})", disk.mounts.join(", "));
    }
    if cfg!(unix) && !disk.mounts.is_empty() {
        bail!(
            "refusing {path}: it is mounted at {}; unmount it first (e.g. `umount {}`)",
            disk.mounts.join(", "),
            disk.mounts[0]
        );
    }
    if !disk.removable && !force {
        bail!(
            "refusing {path} ({}, {}): it is not a removable disk. If you are sure, add --force",
            if disk.model.is_empty() { "no model" } else { &disk.model },
            human_size(disk.size)
        );
    }
    if disk.size < image_len {
        bail!("{path} holds {} but the image needs {}", human_size(disk.size), human_size(image_len));
    }
    Ok(())
}

fn confirm(args: &FlashArgs, target: &Target) -> Result<()> {
    if args.yes {
        return Ok(());
    }
    let what = match target {
        Target::File => format!("file {}", args.target.display()),
        Target::Device(d) => format!("{} ({}, {})", d.dev_path.display(), d.model, human_size(d.size)),
    };
    if !std::io::stdin().is_terminal() {
        bail!("about to overwrite {what}: pass --yes to confirm when not at a terminal");
    }
    eprint!("This ERASES everything on {what}.\nType 'yes' to continue: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != "yes" {
        bail!("cancelled: nothing was written");
    }
    Ok(())
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:8} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Why `image` cannot be written anywhere, whatever `--force` says: it is
/// empty, or shorter than its own partition table says (a copy cut short).
fn refuse_broken_image(image: &Path) -> Result<()> {
    use std::io::Read;
    let len = std::fs::metadata(image).with_context(|| format!("cannot read {}", image.display()))?.len();
    if len == 0 {
        bail!("{} is empty: nothing to flash", image.display());
    }
    let mut head = [0u8; 1024];
    let n = File::open(image)?.take(1024).read(&mut head)?;
    // A GPT header at LBA 1 names the last LBA, where its backup lives.
    if n == 1024 && &head[512..520] == b"EFI PART" {
        let backup_lba = u64::from_le_bytes(head[512 + 32..512 + 40].try_into()?);
        let needed = backup_lba.saturating_add(1).saturating_mul(512);
        if needed > len {
            bail!(
                "{} is truncated: its partition table ends at byte {needed}, the file at {len}; copy it again",
                image.display()
            );
        }
    }
    Ok(())
}

pub fn run(args: &FlashArgs) -> Result<()> {
    if crate::output::same_file(&args.image, &args.target) {
        bail!("{} is the image itself: give the stick to write it to", args.target.display());
    }
    refuse_broken_image(&args.image)?;
    if let Err(e) = crate::image::read::inspect(&args.image) {
        if !args.force {
            bail!("{} does not look like a rescue image ({e:#}); add --force to write it anyway", args.image.display());
        }
    }
    let image_len =
        std::fs::metadata(&args.image).with_context(|| format!("cannot read {}", args.image.display()))?.len();
    let target = check_target(args, image_len)?;
    confirm(args, &target)?;
    // Windows: the drive's volumes stay locked and dismounted until verified.
    let _locks = match &target {
        Target::Device(d) => platform::prepare(d)?,
        Target::File => Vec::new(),
    };
    let digest = write(&args.image, &args.target, matches!(target, Target::File))?;
    verify(&args.target, image_len, &digest)?;
    say!("flashed and verified {} (sha256 {})", args.target.display(), rescue_engine::util::hex::hex(&digest));
    Ok(())
}

/// Copies the image to the target, syncs, and returns the image's SHA-256.
pub fn write(image: &Path, target: &Path, is_file: bool) -> Result<[u8; 32]> {
    let mut src = File::open(image).with_context(|| format!("cannot open {}", image.display()))?;
    let len = src.metadata()?.len();
    let mut opts = OpenOptions::new();
    opts.write(true);
    if is_file {
        opts.create(true);
    } else {
        platform::exclusive(&mut opts);
    }
    let mut dst = opts.open(target).with_context(|| format!("cannot open {} for writing", target.display()))?;
    let pb = bar(len, "writing");
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        // Devices take whole sectors: the last piece is padded with zeros (beyond the image, never verified).
        let whole = if is_file { n } else { whole_sectors(n).min(buf.len()) };
        buf[n..whole].fill(0);
        dst.write_all(&buf[..whole]).with_context(|| format!("write error on {} at byte {done}", target.display()))?;
        done += n as u64;
        pb.set_position(done);
    }
    if is_file {
        dst.set_len(len)?;
    }
    dst.sync_all().with_context(|| format!("flushing {}", target.display()))?;
    pb.finish_and_clear();
    Ok(hasher.finalize().into())
}

/// Reads the first `len` bytes of `target` back with O_DIRECT (or, where the
/// file system refuses O_DIRECT, after dropping its pages from the cache) and
/// fails unless their SHA-256 equals `expected`.
pub fn verify(target: &Path, len: u64, expected: &[u8; 32]) -> Result<()> {
    let mut f = platform::open_uncached(target).with_context(|| format!("cannot reopen {}", target.display()))?;
    let pb = bar(len, "verifying");
    let mut raw = vec![0u8; CHUNK + ALIGN];
    let shift = raw.as_ptr().align_offset(ALIGN);
    let buf = &mut raw[shift..shift + CHUNK];
    let mut hasher = Sha256::new();
    let mut done = 0u64;
    while done < len {
        let want = ((len - done) as usize).min(CHUNK).next_multiple_of(ALIGN).min(CHUNK);
        let n = read_full(&mut f, &mut buf[..want])
            .with_context(|| format!("read error on {} at byte {done} while verifying", target.display()))?;
        if n == 0 {
            bail!("VERIFY FAILED: {} ends at byte {done}, before the image's {len} bytes", target.display());
        }
        let take = (n as u64).min(len - done) as usize;
        hasher.update(&buf[..take]);
        done += take as u64;
        pb.set_position(done);
    }
    pb.finish_and_clear();
    let got: [u8; 32] = hasher.finalize().into();
    if &got != expected {
        bail!(
            "VERIFY FAILED: {} does not hold the image (sha256 {} read back, {} expected). Do not use this stick; flash it again or replace it",
            target.display(),
            rescue_engine::util::hex::hex(&got),
            rescue_engine::util::hex::hex(expected)
        );
    }
    Ok(())
}

/// `n` rounded up to whole sectors ([`ALIGN`] covers 512- and 4096-byte sectors).
fn whole_sectors(n: usize) -> usize {
    n.next_multiple_of(ALIGN)
}

#[cfg(unix)]
mod platform {
    use super::Disk;
    use std::fs::{File, OpenOptions};
    use std::os::unix::fs::OpenOptionsExt;

    /// Nothing to do on Linux: a mounted disk was refused.
    pub fn prepare(_: &Disk) -> anyhow::Result<Vec<File>> {
        Ok(Vec::new())
    }

    /// An exclusive open fails if anything else (a mount, another tool) holds the device.
    pub fn exclusive(opts: &mut OpenOptions) {
        opts.custom_flags(libc::O_EXCL);
    }

    /// The target opened for reading past the page cache: O_DIRECT, or
    /// where the file system refuses it, after dropping its cached pages.
    pub fn open_uncached(target: &std::path::Path) -> std::io::Result<File> {
        match OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(target) {
            Ok(f) => Ok(f),
            Err(_) => {
                use std::os::fd::AsRawFd;
                let f = File::open(target)?;
                // SAFETY: plain syscall on an open descriptor.
                unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
                Ok(f)
            }
        }
    }
}

#[cfg(windows)]
mod platform {
    use super::Disk;
    use crate::host::drives;
    use anyhow::Context;
    use std::fs::{File, OpenOptions};
    use std::os::windows::fs::OpenOptionsExt;
    use windows_sys::Win32::Storage::FileSystem::{
        FILE_FLAG_NO_BUFFERING, FILE_FLAG_WRITE_THROUGH, FILE_SHARE_READ, FILE_SHARE_WRITE,
    };

    /// Locks and dismounts every volume of the drive (held until dropped).
    pub fn prepare(d: &Disk) -> anyhow::Result<Vec<File>> {
        let n = drives::drive_number(&d.dev_path).context("not a physical drive")?;
        drives::lock_volumes(n).with_context(|| format!("preparing {}", d.dev_path.display()))
    }

    /// Writes go straight to the drive.
    pub fn exclusive(opts: &mut OpenOptions) {
        opts.read(true).share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE).custom_flags(FILE_FLAG_WRITE_THROUGH);
    }

    /// The target opened for reading past the cache (FILE_FLAG_NO_BUFFERING: aligned buffers and sizes).
    pub fn open_uncached(target: &std::path::Path) -> std::io::Result<File> {
        let f = OpenOptions::new()
            .read(true)
            .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE)
            .custom_flags(FILE_FLAG_NO_BUFFERING)
            .open(target);
        f.or_else(|_| File::open(target))
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(removable: bool, system: bool, mounts: &[&str]) -> Disk {
        Disk {
            dev_path: PathBuf::from("/dev/sdz"),
            model: String::from("Stick"),
            size: 64 << 20,
            removable,
            bus: String::from("USB"),
            mounts: mounts.iter().map(|m| m.to_string()).collect(),
            holds_system: system,
        }
    }

    /// The checks every target disk passes, on every platform.
    #[test]
    fn target_checks() {
        let err =
            |d: &Disk, part: bool, len: u64, force: bool| check_disk(d, part, len, force).unwrap_err().to_string();
        assert!(check_disk(&disk(true, false, &[]), false, 40 << 20, false).is_ok());
        assert!(err(&disk(true, false, &[]), true, 1, false).contains("partition"));
        assert!(err(&disk(true, true, &["/"]), false, 1, true).contains("running system"), "--force never allows it");
        assert!(err(&disk(false, false, &[]), false, 1, false).contains("--force"));
        assert!(check_disk(&disk(false, false, &[]), false, 1, true).is_ok());
        assert!(err(&disk(true, false, &[]), false, 65 << 20, false).contains("needs"));
        if cfg!(unix) {
            assert!(err(&disk(true, false, &["/media/x"]), false, 1, false).contains("mounted"));
        }
    }

    /// Device writes are whole sectors.
    #[test]
    fn writes_are_sector_aligned() {
        for (n, want) in [(0, 0), (1, 4096), (4096, 4096), (4097, 8192), (CHUNK, CHUNK)] {
            assert_eq!(whole_sectors(n), want);
            assert_eq!(whole_sectors(n) % 512, 0);
        }
    }

    #[test]
    fn corruption_between_write_and_verify_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("img");
        let target = dir.path().join("target");
        let data: Vec<u8> = (0..3 * CHUNK + 1234).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&image, &data).unwrap();
        let digest = write(&image, &target, true).unwrap();
        verify(&target, data.len() as u64, &digest).expect("an intact copy verifies");
        // Flip one byte on the target, as a failing stick would.
        let f = OpenOptions::new().write(true).open(&target).unwrap();
        crate::fileio::write_all_at(&f, &[data[CHUNK + 5] ^ 0x40], CHUNK as u64 + 5).unwrap();
        f.sync_all().unwrap();
        let err = verify(&target, data.len() as u64, &digest).unwrap_err();
        assert!(format!("{err:#}").contains("VERIFY FAILED"), "{err:#}");
        // A truncated target fails too.
        std::fs::OpenOptions::new().write(true).open(&target).unwrap().set_len(1000).unwrap();
        let err = verify(&target, data.len() as u64, &digest).unwrap_err();
        assert!(format!("{err:#}").contains("VERIFY FAILED"), "{err:#}");
    }
}
