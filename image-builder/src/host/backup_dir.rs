//! Backups of deleted files into a folder on the host (`rescue apply --backup-dir`),
//! each with its sidecar JSON (`<file>.json`: what `rescue restore` needs).
//!
//! Guarantees: every file is created inside the backup folder (paths from the
//! disk are checked component by component, and the folder they land in is
//! checked after symlinks are resolved), nothing there is ever overwritten,
//! and a backup reads back identical before the engine may delete the original.

use rescue_engine::rules::backup::{sidecar, BackupItem, BackupSink};
use std::fs::{File, OpenOptions};
use std::io::{Error, Write};
use std::path::{Path, PathBuf};

/// Backups as files: `DIR/vol<N>-<serial>/<path>` plus `<path>.json` metadata.
pub struct DirSink {
    /// The backup folder.
    pub dir: PathBuf,
}

/// Creates `path`, which must not exist yet, with `bytes`, synced.
fn create_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f: File = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

impl DirSink {
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
}
