//! Backups of deleted files into a folder on the host (`rescue apply --backup-dir`).

use rescue_engine::remediate::{BackupItem, BackupSink};
use std::io::Write;
use std::path::PathBuf;

/// Backups as files: `DIR/vol<N>-<serial>/<path>` plus `<path>.json` metadata.
pub struct DirSink {
    /// The backup folder.
    pub dir: PathBuf,
}

impl BackupSink for DirSink {
    fn backup(&mut self, item: &BackupItem<'_>) -> Result<String, String> {
        let write = || -> std::io::Result<PathBuf> {
            let mut rel = PathBuf::from(format!("vol{}-{:016X}", item.volume, item.volume_serial));
            for c in item.path.split('\\') {
                rel.push(c.replace(['/', '\0'], "_"));
            }
            let mut path = self.dir.join(&rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut n = 1;
            while path.exists() {
                path = self.dir.join(format!("{}.{n}", rel.display()));
                n += 1;
            }
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
            f.write_all(item.content)?;
            f.sync_all()?;
            let meta = serde_json::json!({ "profile": item.profile, "volume": item.volume, "path": item.path, "file": item.file });
            let mut m = std::fs::File::create(format!("{}.json", path.display()))?;
            m.write_all(serde_json::to_string_pretty(&meta).unwrap_or_default().as_bytes())?;
            m.sync_all()?;
            // The content must read back identical before we let the engine delete the original.
            if std::fs::read(&path)? != item.content {
                return Err(std::io::Error::other("backup read back differs"));
            }
            Ok(path)
        };
        write().map(|p| p.display().to_string()).map_err(|e| e.to_string())
    }
}
