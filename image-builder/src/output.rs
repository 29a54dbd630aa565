//! Output files that appear whole or not at all.
//!
//! Every file `rescue` writes (images, decrypted volumes, signed binaries,
//! tables) is first written to a hidden temporary file beside its final
//! path, synced, then renamed over it. A failed run never leaves a
//! half-written output, and the temporary file is removed on every error.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A temporary file in the folder of `out`, removed when dropped unless persisted.
pub fn temp_beside(out: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".rescue-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))
}

/// Syncs `tmp` and renames it to `out`.
pub fn persist(tmp: tempfile::NamedTempFile, out: &Path) -> Result<()> {
    tmp.as_file().sync_all().with_context(|| format!("writing {}", out.display()))?;
    tmp.persist(out).map_err(|e| e.error).with_context(|| format!("cannot create {}", out.display()))?;
    Ok(())
}

/// Writes a sparse file of `len` bytes from non-overlapping `pieces` and
/// renames it to `out`. Runs of zeros are skipped, so the file takes only
/// the space its data needs. On any error `out` is untouched.
pub fn write_pieces(out: &Path, len: u64, pieces: &[(u64, Vec<u8>)]) -> Result<()> {
    let mut tmp = temp_beside(out)?;
    tmp.as_file().set_len(len).with_context(|| format!("writing {}", out.display()))?;
    for (offset, bytes) in pieces {
        write_sparse_at(tmp.as_file(), *offset, bytes).with_context(|| format!("writing {}", out.display()))?;
    }
    tmp.as_file_mut().flush()?;
    persist(tmp, out)
}

/// Writes `bytes` at `offset`, skipping 64 KiB chunks that are all zero
/// (the file must already read as zeros there).
pub fn write_sparse_at(file: &File, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
        if chunk.iter().any(|&b| b != 0) {
            file.write_all_at(chunk, offset + (i * CHUNK) as u64)?;
        }
    }
    Ok(())
}
