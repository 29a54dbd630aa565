//! Output files that appear whole or not at all.
//!
//! Every file `rescue` writes (images, decrypted volumes, signed binaries,
//! tables) is first written to a hidden temporary file beside its final
//! path, synced, then renamed over it. A failed run never leaves a
//! half-written output, and the temporary file is removed on every error
//! and on an interrupt (see [`remove_temporaries_on_interrupt`]). Outputs
//! are checked before any work ([`check_output`]).
//!
//! Who may read an output is chosen by the caller ([`Readers`]): an image, a
//! `rescue.efi` or a table gets the mode any new file gets under the user's
//! umask (0644 under 0022), so that a web or TFTP server running as its own
//! user can serve it; a secret (a decrypted volume, keys in clear) stays
//! readable by its owner only (0600).

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// A temporary file in the folder of `out`, removed when dropped unless persisted.
pub fn temp_beside(out: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".rescue-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {} for {}", dir.display(), out.display()))?;
    track(tmp.path(), true);
    Ok(tmp)
}

/// Who may read an output file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readers {
    /// Whoever the umask lets read a new file (images, binaries, reports, tables).
    AsUmaskSays,
    /// The owner only (0600): decrypted volumes, recovery keys in clear.
    OwnerOnly,
}

/// The process's file-creation mask (Linux: from /proc/self/status; 0o022
/// where it cannot be read).
#[cfg(unix)]
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Umask:").map(|v| v.trim().to_string())))
        .and_then(|v| u32::from_str_radix(&v, 8).ok())
        .unwrap_or(0o022)
}

/// Gives `file` the mode `readers` asks for (temporary files start at 0600).
fn set_readers(file: &File, readers: Readers) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match readers {
            Readers::AsUmaskSays => 0o666 & !umask(),
            Readers::OwnerOnly => 0o600,
        };
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (file, readers);
    Ok(())
}

/// Syncs `tmp`, gives it the mode `readers` asks for, and renames it to `out`.
pub fn persist(tmp: tempfile::NamedTempFile, out: &Path, readers: Readers) -> Result<()> {
    set_readers(tmp.as_file(), readers).with_context(|| format!("setting who may read {}", out.display()))?;
    tmp.as_file().sync_all().with_context(|| format!("writing {}", out.display()))?;
    let path = tmp.path().to_path_buf();
    let result = tmp.persist(out).map_err(|e| e.error).with_context(|| format!("cannot create {}", out.display()));
    track(&path, false);
    result.map(|_| ())
}

/// Writes a sparse file of `len` bytes from non-overlapping `pieces` and
/// renames it to `out`. Runs of zeros are skipped, so the file takes only
/// the space its data needs. On any error `out` is untouched.
pub fn write_pieces(out: &Path, len: u64, pieces: &[(u64, Vec<u8>)], readers: Readers) -> Result<()> {
    let mut tmp = temp_beside(out)?;
    tmp.as_file().set_len(len).with_context(|| format!("writing {}", out.display()))?;
    for (offset, bytes) in pieces {
        write_sparse_at(tmp.as_file(), *offset, bytes).with_context(|| format!("writing {}", out.display()))?;
    }
    tmp.as_file_mut().flush()?;
    persist(tmp, out, readers)
}

/// Writes `bytes` at `offset`, skipping 64 KiB chunks that are all zero
/// (the file must already read as zeros there).
pub fn write_sparse_at(file: &File, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
        if chunk.iter().any(|&b| b != 0) {
            crate::fileio::write_all_at(file, chunk, offset + (i * CHUNK) as u64)?;
        }
    }
    Ok(())
}

/// True when `a` and `b` name the same file (same device and inode, which
/// also catches hard links and symlinks), or the same canonical path.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Checks, before any work, that `out` can take an output: an existing
/// regular file (replaced whole) or a new name in an existing folder; never
/// a device node or a folder, and never one of `inputs` (which the output
/// would destroy). `what` names the option in messages.
pub fn check_output(what: &str, out: &Path, inputs: &[&Path]) -> Result<()> {
    let shown = out.display();
    match std::fs::metadata(out) {
        Ok(m) if m.is_dir() => bail!("{what} {shown} is a folder: name a file in it"),
        Ok(m) if !m.is_file() => bail!(
            "{what} {shown} is a device or special file, not a regular file: nothing was written \
             (to write an image to a stick, use `rescue flash IMAGE {shown}`)"
        ),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = match out.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if !dir.is_dir() {
                bail!("{what} {shown}: the folder {} does not exist", dir.display());
            }
        }
        Err(e) => return Err(e).with_context(|| format!("{what} {shown}")),
    }
    if let Some(input) = inputs.iter().find(|i| same_file(out, i)) {
        bail!("{what} {shown} is also an input ({}): writing it would destroy it", input.display());
    }
    Ok(())
}

/// Temporary files to remove if the process is interrupted (Ctrl-C, SIGTERM):
/// a half-written output, or decrypted data, is never left behind.
static PENDING: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Removes the pending temporary files on SIGINT, SIGTERM and SIGHUP, then
/// exits with 130. Called once at start.
pub fn remove_temporaries_on_interrupt() {
    let _ = ctrlc::set_handler(|| {
        if let Ok(paths) = PENDING.lock() {
            for p in paths.iter() {
                let _ = std::fs::remove_file(p);
            }
        }
        eprintln!("\ninterrupted: temporary files removed, nothing was written");
        std::process::exit(130);
    });
}

fn track(path: &Path, add: bool) {
    if let Ok(mut paths) = PENDING.lock() {
        paths.retain(|p| p != path);
        if add {
            paths.push(path.to_path_buf());
        }
    }
}
