//! Backups of deleted files into a folder on the host (`rescue apply --backup-dir`),
//! each with its sidecar JSON (`<file>.json`: what `rescue restore` needs);
//! and the backups a folder holds, listed for `[[restore]]` rules (a
//! `--backup-dir`, a stick's `rescue/backups`, or what `rescue collect` gathered).
//!
//! Guarantees: every file is created inside the backup folder (paths from the
//! disk are checked component by component, and the folder they land in is
//! checked after symlinks are resolved), nothing there is ever overwritten,
//! and a backup reads back identical before the engine may delete the original.

use rescue_engine::rules::backup::{sidecar, BackupItem, BackupSink, Stored};
use rescue_engine::rules::restore::MAX_SIDECAR;
use std::fs::{File, OpenOptions};
use std::io::{Error, Write};
use std::path::{Path, PathBuf};

/// Backups as files: `DIR/vol<N>-<serial>/<path>` plus `<path>.json` metadata.
pub struct DirSink {
    /// The backup folder.
    pub dir: PathBuf,
    /// What listing the folder passed over, and why (symbolic links, ...).
    pub skipped: Vec<String>,
}

/// Folders below the backup folder walked at most (a stick's is `<serial>/<run>/<path…>`).
const MAX_DEPTH: usize = 64;

/// Creates `path`, which must not exist yet, with `bytes`, synced.
fn create_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f: File = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

impl DirSink {
    /// Backups go to (and are listed from) `dir`.
    pub fn new(dir: PathBuf) -> DirSink {
        DirSink { dir, skipped: Vec::new() }
    }

    /// Every backup with a sidecar below `dir` (symbolic links are not followed).
    fn walk(&mut self, dir: &Path, depth: usize, out: &mut Vec<Stored>) -> std::io::Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::other(format!("{}: folders nested deeper than {MAX_DEPTH}", dir.display())));
        }
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.file_type().is_symlink() {
                self.skipped.push(format!("{}: a symbolic link, not followed", path.display()));
            } else if meta.is_dir() {
                self.walk(&path, depth + 1, out)?;
            } else if let Some(content) = path.to_str().and_then(|p| p.strip_suffix(".json")) {
                if !std::fs::symlink_metadata(content).is_ok_and(|m| m.is_file()) {
                    continue; // a report or other JSON, not a sidecar
                }
                // One too large to be ours is listed empty: the engine names it.
                let sidecar = if meta.len() > MAX_SIDECAR as u64 { Vec::new() } else { std::fs::read(&path)? };
                let run = rescue_engine::rules::restore::run_in_stick_layout(content);
                out.push(Stored { at: content.to_string(), run, sidecar });
            }
        }
        Ok(())
    }
    fn write(&self, item: &BackupItem<'_>) -> std::io::Result<PathBuf> {
        let path = item.relative_path().map_err(Error::other)?;
        let mut rel = PathBuf::from(format!("vol{}-{:016X}", item.volume, item.volume_serial));
        rel.extend(path.split('/'));
        let first = self.dir.join(&rel);
        let parent = first.parent().ok_or_else(|| Error::other("backup path has no folder"))?;
        std::fs::create_dir_all(parent)?;
        // A symlinked folder could still lead elsewhere: compare real paths.
        if !parent.canonicalize()?.starts_with(self.dir.canonicalize()?) {
            return Err(Error::other(format!("{} leads outside the backup folder", parent.display())));
        }
        // Never overwrite: the first free name of `path`, `path.1`, `path.2`, ... (with its `.json`).
        let mut path = first.clone();
        for n in 1.. {
            let meta = PathBuf::from(format!("{}.json", path.display()));
            if !path.exists() && !meta.exists() {
                break;
            }
            path = PathBuf::from(format!("{}.{n}", first.display()));
        }
        create_new(&path, item.content)?;
        create_new(Path::new(&format!("{}.json", path.display())), &sidecar(item))?;
        // The content must read back identical before we let the engine delete the original.
        if std::fs::read(&path)? != item.content {
            return Err(Error::other("backup read back differs"));
        }
        Ok(path)
    }
}

impl BackupSink for DirSink {
    fn backup(&mut self, item: &BackupItem<'_>) -> Result<String, String> {
        self.write(item).map(|p| p.display().to_string()).map_err(|e| e.to_string())
    }

    /// Every backup in the folder (the engine matches serials by sidecar).
    fn list(&mut self, _serial: &str) -> Result<Vec<Stored>, String> {
        let mut out = Vec::new();
        if !self.dir.exists() {
            return Ok(out);
        }
        let dir = self.dir.clone();
        self.walk(&dir, 0, &mut out).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(out)
    }

    fn content(&mut self, at: &str, max: u64) -> Result<Vec<u8>, String> {
        let meta = std::fs::symlink_metadata(at).map_err(|e| format!("{at}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{at}: not a plain file"));
        }
        if meta.len() > max {
            return Err(format!("{at}: {} bytes, more than the {max} expected", meta.len()));
        }
        std::fs::read(at).map_err(|e| format!("{at}: {e}"))
    }
}
