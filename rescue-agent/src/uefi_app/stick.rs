//! The stick the agent booted from: where backups and reports go.
//!
//! A stick that is read-only (a CD) or full does not stop the fix: the agent
//! says so on screen and carries on, and the report says the backup was not
//! kept. A copy that would not fit is not started (the firmware says how
//! much room there is); a partially written one is removed.

use alloc::format;
use alloc::string::{String, ToString};
use rescue_engine::formats::stick as layout;
use rescue_engine::rules::backup::{sidecar, BackupItem, BackupSink, Stored};
use rescue_engine::rules::restore::MAX_SIDECAR;
use uefi::fs::FileSystem;
use uefi::proto::media::file::{File, FileSystemInfo};
use uefi::{boot, CString16};

pub struct Stick {
    fs: Option<FileSystem>,
    /// Names this run's backups (time and machine), so that cloned PCs with
    /// the same volume serial never overwrite each other's copies.
    pub run_id: String,
    /// Set once a write failed: why the stick cannot take more.
    pub unwritable: Option<String>,
    /// Warnings for the screen, drained by the caller.
    pub warnings: alloc::vec::Vec<String>,
    /// Bytes the stick can still take, as the firmware said at the start
    /// less what this run wrote (each file and folder counted in whole
    /// clusters); `u64::MAX` when the firmware does not say.
    free: u64,
    /// The file system's allocation unit.
    cluster: u64,
}

/// A layout path (`/` separators) as a UEFI path.
fn path16(p: &str) -> Result<CString16, String> {
    CString16::try_from(layout::uefi_path(p).as_str()).map_err(|_| format!("{p}: not a valid UEFI path"))
}

impl Stick {
    pub fn open() -> Stick {
        let mut proto = boot::get_image_file_system(boot::image_handle()).ok();
        let info = proto.as_mut().and_then(|p| p.open_volume().ok()).and_then(|mut root| {
            root.get_boxed_info::<FileSystemInfo>().ok().map(|i| (i.free_space(), u64::from(i.block_size())))
        });
        let (free, cluster) = info.map_or((u64::MAX, 4096), |(free, bs)| (free, bs.clamp(512, 1 << 20)));
        let fs = proto.map(FileSystem::new);
        let unwritable = if fs.is_none() {
            Some(String::from("the boot medium has no file system the firmware can write"))
        } else {
            None
        };
        Stick { fs, run_id: String::from("run"), unwritable, warnings: alloc::vec::Vec::new(), free, cluster }
    }

    /// True when the agent booted from a medium with a file system (a
    /// stick or CD); false when it came over the network.
    pub fn present(&self) -> bool {
        self.fs.is_some()
    }

    /// Reads a file from the stick.
    pub fn read(&mut self, path: &str) -> Result<alloc::vec::Vec<u8>, String> {
        let fs = self.fs.as_mut().ok_or("no file system on the boot medium")?;
        fs.read(path16(path)?.as_ref()).map_err(|e| format!("{path}: {e:?}"))
    }

    /// Writes a new file (creating its folders) and returns its path: `path`,
    /// or `path.1`, `path.2`, ... when that exists. Never overwrites. On
    /// failure removes what was written, folders it made included (a full
    /// stick's firmware driver can leave a folder without a cluster, which
    /// would corrupt the stick's file system).
    pub fn write(&mut self, path: &str, data: &[u8]) -> Result<String, String> {
        if let Some(why) = &self.unwritable {
            return Err(why.clone());
        }
        let fs = self.fs.as_mut().ok_or("no file system on the boot medium")?;
        // The folders to make, outermost first.
        let mut missing: alloc::vec::Vec<(&str, CString16)> = alloc::vec::Vec::new();
        for (i, _) in path.match_indices('/') {
            let d = path16(&path[..i])?;
            if !fs.try_exists(d.as_ref()).unwrap_or(false) {
                missing.push((&path[..i], d));
            }
        }
        // Nothing is made on a stick that cannot take it all: a full stick's
        // firmware driver may leave a folder without a cluster behind.
        let clusters = (data.len() as u64).div_ceil(self.cluster) + missing.len() as u64 + 1;
        let need = clusters.saturating_mul(self.cluster);
        if need > self.free {
            let why = format!("the stick is full ({} bytes free, {need} needed for {path})", self.free);
            self.unwritable = Some(why.clone());
            return Err(why);
        }
        let mut made: alloc::vec::Vec<CString16> = alloc::vec::Vec::new();
        for (dir, d) in missing {
            if let Err(e) = fs.create_dir(d.as_ref()) {
                let why = format!("cannot make {dir} on the stick (read-only or full?): {e:?}");
                remove_all(fs, &made);
                self.unwritable = Some(why.clone());
                return Err(why);
            }
            made.push(d);
        }
        let mut chosen = String::from(path);
        let mut n = 0;
        while fs.try_exists(path16(&chosen)?.as_ref()).unwrap_or(true) {
            n += 1;
            if n > 100 {
                return Err(format!("{path}: 100 files of that name already exist"));
            }
            chosen = format!("{path}.{n}");
        }
        let p = path16(&chosen)?;
        if let Err(e) = fs.write(p.as_ref(), data) {
            let _ = fs.remove_file(p.as_ref());
            remove_all(fs, &made);
            let why = format!("cannot write {chosen} to the stick (read-only or full?): {e:?}");
            self.unwritable = Some(why.clone());
            return Err(why);
        }
        self.free = self.free.saturating_sub(need);
        Ok(chosen)
    }
}

/// Removes the folders `made` (outermost first), innermost first.
fn remove_all(fs: &mut FileSystem, made: &[CString16]) {
    for d in made.iter().rev() {
        let _ = fs.remove_dir(d.as_ref());
    }
}

impl Stick {
    /// Where the copy of `item` goes on the stick (its path checked).
    fn backup_path(&self, item: &BackupItem<'_>) -> Result<String, String> {
        let rel = item.relative_path().map_err(|e| format!("{e}: not deleted"))?;
        Ok(format!("{}/{:016X}/{}/{rel}", layout::BACKUPS_DIR, item.volume_serial, self.run_id))
    }

    /// Writes the copy of `item` to the stick's backups folder, then its
    /// sidecar (`<copy>.json`: what a restore needs); where the copy went. A
    /// sidecar that does not fit is a warning: the copy itself is kept.
    pub fn keep(&mut self, item: &BackupItem<'_>) -> Result<String, String> {
        let path = self.backup_path(item)?;
        let written = self.write(&path, item.content)?;
        if let Err(why) = self.write(&format!("{path}.json"), &sidecar(item)) {
            self.warnings.push(format!("restore data of {} not kept: {why}", item.path));
        }
        Ok(written)
    }
}

/// Folders below a volume's backup folder walked at most (`<run>/<path…>`).
const MAX_DEPTH: usize = 40;
/// Entries of the backup folders looked at at most: a stick is not a fleet's archive.
const MAX_ENTRIES: usize = 100_000;

/// Every backup with a sidecar below `dir` (stick path, `/` separators):
/// a file `x` beside a file `x.json`.
fn walk(
    fs: &mut FileSystem,
    dir: &str,
    depth: usize,
    seen: &mut usize,
    out: &mut alloc::vec::Vec<Stored>,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("{dir}: folders nested deeper than {MAX_DEPTH}"));
    }
    let mut files = alloc::vec::Vec::new();
    let mut dirs = alloc::vec::Vec::new();
    let entries = fs.read_dir(path16(dir)?.as_ref()).map_err(|e| format!("{dir}: {e:?}"))?;
    for entry in entries {
        *seen += 1;
        if *seen > MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} files and folders below {}", layout::BACKUPS_DIR));
        }
        let info = entry.map_err(|_| format!("{dir}: a folder entry cannot be read"))?;
        let name = info.file_name().to_string();
        if name == "." || name == ".." || name.contains(['/', '\\']) {
            continue;
        }
        if info.is_directory() {
            dirs.push(name);
        } else {
            files.push((name, info.file_size()));
        }
    }
    for (name, size) in &files {
        let Some(stem) = name.strip_suffix(".json") else { continue };
        if !files.iter().any(|f| f.0 == stem) {
            continue; // a report or other JSON, not a sidecar
        }
        let at = format!("{dir}/{stem}");
        let sidecar = if *size as usize > MAX_SIDECAR {
            alloc::vec::Vec::new() // too large to be ours: the engine names it
        } else {
            fs.read(path16(&format!("{at}.json"))?.as_ref()).map_err(|e| format!("{at}.json: {e:?}"))?
        };
        let run = rescue_engine::rules::restore::run_in_stick_layout(&at);
        out.push(Stored { at, run, sidecar });
    }
    for d in dirs {
        walk(fs, &format!("{dir}/{d}"), depth + 1, seen, out)?;
    }
    Ok(())
}

impl BackupSink for Stick {
    /// The backups kept on this stick for the volume: `rescue/backups/<serial>/…`.
    fn list(&mut self, serial: &str) -> Result<alloc::vec::Vec<Stored>, String> {
        let mut out = alloc::vec::Vec::new();
        let Some(fs) = self.fs.as_mut() else { return Ok(out) };
        let root = format!("{}/{serial}", layout::BACKUPS_DIR);
        if fs.try_exists(path16(&root)?.as_ref()).unwrap_or(false) {
            walk(fs, &root, 0, &mut 0, &mut out)?;
        }
        Ok(out)
    }

    fn content(&mut self, at: &str, max: u64) -> Result<alloc::vec::Vec<u8>, String> {
        let fs = self.fs.as_mut().ok_or("no file system on the boot medium")?;
        let p = path16(at)?;
        let size = fs.metadata(p.as_ref()).map_err(|e| format!("{at}: {e:?}"))?.file_size();
        if size > max {
            return Err(format!("{at}: {size} bytes, more than the {max} expected"));
        }
        fs.read(p.as_ref()).map_err(|e| format!("{at}: {e:?}"))
    }

    fn backup(&mut self, item: &BackupItem<'_>) -> Result<String, String> {
        // A bad path is an error; only a stick that cannot take the copy lets the fix go on.
        self.backup_path(item)?;
        match self.keep(item) {
            Ok(written) => Ok(written),
            Err(why) if item.required => Err(format!("cannot keep a copy of {} on the stick: {why}", item.path)),
            Err(why) => {
                // The fix matters more than the copy of a faulty file: carry on, and say so.
                self.warnings.push(format!("backup of {} not kept: {why}", item.path));
                Ok(format!("not kept: {why}"))
            }
        }
    }
}
