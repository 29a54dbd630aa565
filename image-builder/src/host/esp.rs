//! The EFI System Partition of a disk being fixed: its BCD store
//! (`EFI\Microsoft\Boot\BCD`) and the store's logs, read and written in
//! place through `fatfs`.
//!
//! Guarantees: files are rewritten with bytes of the same length (their
//! clusters do not change), only after the engine edited the store without
//! error and after the originals went to the backup folder; a dry run writes
//! nothing; the stick's own FAT is never touched (this opens the target disk).

use rescue_engine::block::BlockDevice;
use rescue_engine::formats::partition::{self, Partition, PartitionKind};
use rescue_engine::formats::registry::edit::FileEdit;
use rescue_engine::rules::safe_mode::BootFile;
use rescue_engine::run::ports::EspFiles;
use rescue_engine::util::guid::Guid;
use std::io::{Read, Seek, SeekFrom, Write};

/// Where Windows keeps its boot configuration on the ESP: the folder, and the BCD store in it.
const BOOT_DIR: &str = "EFI/Microsoft/Boot";
pub const BCD_PATH: &str = "EFI/Microsoft/Boot/BCD";

/// A window of a block device as a stream `fatfs` can open (read and write).
struct DevWindow<'a, D: BlockDevice + ?Sized> {
    dev: &'a mut D,
    start: u64,
    len: u64,
    pos: u64,
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl<D: BlockDevice + ?Sized> Read for DevWindow<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        self.dev.read_at(self.start + self.pos, &mut buf[..n]).map_err(io_err)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D: BlockDevice + ?Sized> Write for DevWindow<'_, D> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        self.dev.write_at(self.start + self.pos, &buf[..n]).map_err(io_err)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.dev.flush().map_err(io_err)
    }
}

impl<D: BlockDevice + ?Sized> Seek for DevWindow<'_, D> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => self.len as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if !(0..=self.len as i128).contains(&new) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek outside the partition"));
        }
        self.pos = new as u64;
        Ok(self.pos)
    }
}

/// True for an EFI System Partition (GPT type, or MBR type 0xEF).
pub fn is_esp(p: &Partition) -> bool {
    matches!(&p.kind, PartitionKind::Gpt { type_guid, .. } if *type_guid == Guid::ESP)
        || matches!(p.kind, PartitionKind::Mbr { type_code: 0xEF })
}

/// The FAT file system of `esp` on `disk`.
fn open_fs<'a, D: BlockDevice + ?Sized>(
    disk: &'a mut D,
    esp: &Partition,
) -> anyhow::Result<fatfs::FileSystem<DevWindow<'a, D>>> {
    use anyhow::Context;
    let w = DevWindow { dev: disk, start: esp.offset, len: esp.size, pos: 0 };
    fatfs::FileSystem::new(w, fatfs::FsOptions::new()).context("the EFI System Partition is not readable FAT")
}

/// Largest BCD store or log read (real stores are tens of KiB), as on the agent.
const MAX_FILE: u64 = 16 << 20;

/// The whole of `f`; a file over [`MAX_FILE`] is an error, never cut short.
fn read_store(f: &mut impl Read) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    let mut out = Vec::new();
    f.take(MAX_FILE + 1).read_to_end(&mut out).context("reading the BCD store")?;
    if out.len() as u64 > MAX_FILE {
        anyhow::bail!("the BCD store or its log is larger than 16 MiB");
    }
    Ok(out)
}

/// The path of `file` on the ESP.
fn path(file: BootFile) -> String {
    format!("{BOOT_DIR}/{}", file.name())
}

/// The BCD store of an open ESP, and its two logs (a missing log reads as empty).
fn read_files<IO: fatfs::ReadWriteSeek>(fs: &fatfs::FileSystem<IO>) -> anyhow::Result<(Vec<u8>, [Vec<u8>; 2])> {
    use anyhow::Context;
    let mut f =
        fs.root_dir().open_file(BCD_PATH).with_context(|| format!("no {BCD_PATH} on the EFI System Partition"))?;
    let store = read_store(&mut f)?;
    let mut logs = [Vec::new(), Vec::new()];
    for (log, file) in logs.iter_mut().zip(BootFile::LOGS) {
        if let Ok(mut f) = fs.root_dir().open_file(&path(file)) {
            *log = read_store(&mut f)?;
        }
    }
    Ok((store, logs))
}

/// Reads the BCD store of `esp` on `disk`, and its two logs.
pub fn read_bcd<D: BlockDevice + ?Sized>(disk: &mut D, esp: &Partition) -> anyhow::Result<(Vec<u8>, [Vec<u8>; 2])> {
    read_files(&open_fs(disk, esp)?)
}

/// The ESPs of the disk being fixed, as the run's [`EspFiles`] port: the
/// store and its logs found on the disk's ESP (the first one holding
/// `EFI\Microsoft\Boot\BCD`) and written in place through `fatfs`.
pub struct DiskEsp;

/// The ESP of `disk` that holds a BCD store, opened.
fn disk_esp<'a>(
    disk: &'a mut (dyn BlockDevice + 'a),
) -> Option<fatfs::FileSystem<DevWindow<'a, dyn BlockDevice + 'a>>> {
    let parts = partition::discover(&mut &mut *disk).ok()?;
    let esp = parts
        .iter()
        .filter(|p| is_esp(p))
        .find(|p| matches!(open_fs(disk, p), Ok(fs) if fs.root_dir().open_file(BCD_PATH).is_ok()))?;
    open_fs(disk, esp).ok()
}

impl EspFiles for DiskEsp {
    fn read(&mut self, disk: &mut dyn BlockDevice, _: &str, file: BootFile) -> Option<Result<Vec<u8>, String>> {
        let fs = disk_esp(disk)?;
        let mut f = fs.root_dir().open_file(&path(file)).ok()?;
        Some(read_store(&mut f).map_err(|e| format!("{e:#}")))
    }

    fn write(&mut self, disk: &mut dyn BlockDevice, _: &str, file: BootFile, edits: &[FileEdit]) -> Result<(), String> {
        let name = file.name();
        let fs = disk_esp(disk).ok_or("the EFI System Partition is no longer readable")?;
        let mut f = fs.root_dir().open_file(&path(file)).map_err(|e| format!("opening {name}: {e}"))?;
        for (at, bytes) in edits {
            f.seek(SeekFrom::Start(*at)).map_err(|e| e.to_string())?;
            f.write_all(bytes).and_then(|()| f.flush()).map_err(|e| format!("writing {name}: {e}"))?;
        }
        drop(f);
        fs.unmount().map_err(|e| format!("closing the EFI System Partition: {e}"))
    }
}
