//! `rescue ls`: list a folder on each NTFS volume of a disk, image or
//! device, found and unlocked as the run finds them ([`volumes::walk`]).

use crate::cli::volume_keys::KeyArgs;
use crate::host::disk::FileDisk;
use crate::host::volume::HostKeys;
use anyhow::{bail, Context, Result};
use rescue_engine::block::{BlockDevice, Counting};
use rescue_engine::formats::ntfs::{filename, Ntfs, NtfsError};
use rescue_engine::run::ports::{Console, Silent};
use rescue_engine::run::unlock::Unlocker;
use rescue_engine::run::volumes::{self, Closed, Found};
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
    let creds = args.keys.credentials()?;
    // A locked volume is only a failure when keys were given for it.
    let keys_given = !creds.is_empty();
    let mut keys = HostKeys::new(creds)?;
    let mut unlock = Unlocker { keys: &mut keys, console: &mut Silent, timeout_s: None, clear_key_first: true };
    let (mut found, mut failed) = (0, false);
    let path = args.path.clone().unwrap_or_default();
    let mut visit = |v: Found<'_>, _: &mut dyn Console| {
        let p = v.partition;
        let mut vol = match v.volume {
            Ok(vol) => vol,
            Err(Closed::Locked(why)) => {
                say_err!("partition {} (byte {}): BitLocker volume left locked: {why}", p.number, p.offset);
                failed |= keys_given;
                return;
            }
            Err(Closed::Unreadable(why)) => {
                say_err!("partition {} (byte {}): cannot be read: {why}", p.number, p.offset);
                failed = true;
                return;
            }
        };
        let ntfs = match Ntfs::open(&mut vol) {
            Ok(n) => n,
            Err(NtfsError::NotNtfs { .. }) => return,
            Err(e) => {
                say_err!("volume {} (partition {}, byte {}): {e}", v.index, p.number, p.offset);
                failed = true;
                return;
            }
        };
        let _ = writeln!(
            std::io::stdout(),
            "== volume {}: partition {} at byte {} ({} bytes), serial {:016X}: \\{path}",
            v.index,
            p.number,
            p.offset,
            p.size,
            ntfs.boot.serial
        );
        found += 1;
        if let Err(e) = list(&ntfs, &mut vol, &path, args.dos) {
            say_err!("volume {}: {e}", v.index);
            failed = true;
        }
    };
    volumes::walk(&mut disk, 1, 0, &mut unlock, &mut visit).context("reading the partition table")?;
    say_err!("read {} bytes in {} reads", disk.bytes_read, disk.reads);
    if found == 0 {
        bail!("no NTFS volume found in {}", args.target.display());
    }
    if failed {
        bail!("some volumes could not be listed");
    }
    Ok(())
}

/// Lists the folder `path` of one volume on standard output.
fn list(v: &Ntfs, vol: &mut impl BlockDevice, path: &str, dos: bool) -> Result<(), NtfsError> {
    let dir_ref = v.lookup(vol, path)?;
    let dir = match v.open_dir(vol, dir_ref) {
        Err(NtfsError::NotADirectory { .. }) => return Err(NtfsError::NotADirectory { path: path.to_string() }),
        r => r?,
    };
    let mut o = std::io::stdout().lock();
    for e in v.list_dir(vol, &dir)? {
        if e.namespace == filename::DOS && !dos {
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
        let when = filetime_rfc3339(e.modified);
        let when = when.get(..19).unwrap_or(&when);
        let line =
            format!("{:>12} {kind:5} {attrs} {when}  {ns:<9} rec {:>8}  {}", e.size, e.file_ref.record(), e.name);
        if writeln!(o, "{line}").is_err() {
            break; // stdout closed (e.g. piped into head)
        }
    }
    Ok(())
}
