//! `rescue ls`: list a folder on each NTFS volume of a disk, image or device.

use crate::cli::volume_keys::KeyArgs;
use crate::host::disk::FileDisk;
use crate::host::volume::open_volume;
use anyhow::{bail, Context, Result};
use rescue_engine::block::Slice;
use rescue_engine::formats::ntfs::{self, Ntfs};
use rescue_engine::formats::partition;
use rescue_engine::rules::delete::Counting;
use rescue_engine::util::time::filetime_rfc3339;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `rescue ls`.
#[derive(clap::Args)]
pub struct LsArgs {
    /// Disk image, partition image or block device.
    pub target: PathBuf,
    /// Directory to list, relative to each volume's root (e.g. 'Windows\System32').
    pub path: Option<String>,
    /// Also list DOS (8.3) names.
    #[arg(long)]
    pub dos: bool,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// Runs `rescue ls`.
pub fn run(args: &LsArgs) -> Result<()> {
    let mut disk = Counting::new(FileDisk::open(&args.target, false)?);
    let parts = partition::discover(&mut disk).context("reading the partition table")?;
    let creds = args.keys.credentials()?;
    let mut found = 0;
    let mut failed = false;
    // Volumes are numbered by partition position, as `apply` and its report number them.
    for (index, p) in parts.into_iter().enumerate() {
        let mut vol = match open_volume(Slice::new(&mut disk, p.offset, p.size), &creds) {
            Ok(v) => v,
            Err(e) => {
                say_err!("partition {} (byte {}): {e:#}", p.number, p.offset);
                // A locked volume is only a failure when keys were given for it.
                failed |= !creds.is_empty();
                continue;
            }
        };
        let v = match Ntfs::open(&mut vol) {
            Ok(v) => v,
            Err(ntfs::NtfsError::NotNtfs { .. }) => continue,
            Err(e) => {
                say_err!("volume {index} (partition {}, byte {}): {e}", p.number, p.offset);
                failed = true;
                continue;
            }
        };
        let path = args.path.clone().unwrap_or_default();
        let mut o = std::io::stdout().lock();
        let _ = writeln!(
            o,
            "== volume {index}: partition {} at byte {} ({} bytes), serial {:016X}: \\{}",
            p.number, p.offset, p.size, v.boot.serial, path
        );
        found += 1;
        let r = (|| -> Result<(), ntfs::NtfsError> {
            let dir_ref = v.lookup(&mut vol, &path)?;
            let dir = match v.open_dir(&mut vol, dir_ref) {
                Err(ntfs::NtfsError::NotADirectory { .. }) => {
                    return Err(ntfs::NtfsError::NotADirectory { path: path.clone() })
                }
                r => r?,
            };
            for e in v.list_dir(&mut vol, &dir)? {
                if e.namespace == ntfs::filename::DOS && !args.dos {
                    continue;
                }
                let kind = if e.is_dir { "<DIR>" } else { "" };
                let ns = match e.namespace {
                    0 => "posix",
                    1 => "win32",
                    2 => "dos",
                    _ => "win32+dos",
                };
                // C compressed, S sparse, R reparse point (WOF, link, placeholder), E encrypted (EFS).
                let attrs: String = [(0x800, 'C'), (0x200, 'S'), (0x400, 'R'), (0x4000, 'E')]
                    .iter()
                    .map(|&(bit, c)| if e.attributes & bit != 0 { c } else { '-' })
                    .collect();
                if writeln!(
                    o,
                    "{:>12} {:5} {attrs} {}  {:<9} rec {:>8}  {}",
                    e.size,
                    kind,
                    &filetime_rfc3339(e.modified)[..19],
                    ns,
                    e.file_ref.record(),
                    e.name
                )
                .is_err()
                {
                    break; // stdout closed (e.g. piped into head)
                }
            }
            Ok(())
        })();
        if let Err(e) = r {
            say_err!("volume {index}: {e}");
            failed = true;
        }
    }
    say_err!("read {} bytes in {} reads", disk.bytes_read, disk.reads);
    if found == 0 {
        bail!("no NTFS volume found in {}", args.target.display());
    }
    if failed {
        bail!("some volumes could not be listed");
    }
    Ok(())
}
