//! `rescue reg`: list a registry key (its subkeys and values) of a hive
//! inside a disk or volume image — `SYSTEM` or `SOFTWARE` from each Windows
//! volume, or `BCD` from the disk's EFI System Partition — so that admins
//! can check a hive before and after a fix. Reads only; a dirty hive is
//! recovered from its transaction logs in memory first, as Windows would.

use crate::cli::volume_keys::KeyArgs;
use crate::host::disk::FileDisk;
use crate::host::esp;
use crate::host::volume::HostKeys;
use anyhow::{bail, Context, Result};
use rescue_engine::formats::ntfs::{self, Ntfs};
use rescue_engine::formats::partition;
use rescue_engine::formats::registry::cell::Hive;
use rescue_engine::formats::registry::log as hivelog;
use rescue_engine::run::ports::{Console, Silent};
use rescue_engine::run::unlock::Unlocker;
use rescue_engine::run::volumes::{self, Found};
use std::path::PathBuf;

/// Arguments of `rescue reg`.
#[derive(clap::Args)]
pub struct RegArgs {
    /// Disk image, partition image or block device.
    pub target: PathBuf,
    /// The key: the hive first (SYSTEM, SOFTWARE or BCD), then the path, e.g.
    /// 'SYSTEM\ControlSet001\Services\CSAgent' (CurrentControlSet is resolved).
    pub key: String,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// Runs `rescue reg`.
pub fn run(args: &RegArgs) -> Result<()> {
    let (hive, path) = args.key.split_once('\\').unwrap_or((&args.key, ""));
    let hive = hive.to_ascii_uppercase();
    if !["SYSTEM", "SOFTWARE", "BCD"].contains(&hive.as_str()) {
        bail!(
            "{:?} does not start with a hive this tool reads: SYSTEM, SOFTWARE or BCD (e.g. 'SYSTEM\\Select')",
            args.key
        );
    }
    let mut disk = FileDisk::open(&args.target, false)?;
    let parts = partition::discover(&mut disk).context("reading the partition table")?;
    let mut shown = 0;
    if hive == "BCD" {
        for p in parts.iter().filter(|p| esp::is_esp(p)) {
            let Ok((bytes, logs)) = esp::read_bcd(&mut disk, p) else { continue };
            say!("== partition {} (EFI System Partition): \\{}", p.number, esp::BCD_PATH.replace('/', "\\"));
            show_recovered(&bytes, &logs, "BCD", path).with_context(|| format!("partition {}: BCD", p.number))?;
            shown += 1;
        }
        if shown == 0 {
            bail!("no EFI System Partition with a BCD store in {}", args.target.display());
        }
        return Ok(());
    }
    let mut keys = HostKeys::new(args.keys.credentials()?)?;
    let mut unlock = Unlocker { keys: &mut keys, console: &mut Silent, timeout_s: None, clear_key_first: true };
    let mut result = Ok(());
    let mut visit = |v: Found<'_>, _: &mut dyn Console| {
        if result.is_ok() {
            result = show_volume(v, &hive, path).map(|shown_here| shown += shown_here as usize);
        }
    };
    volumes::walk(&mut disk, 1, 0, &mut unlock, &mut visit).context("reading the partition table")?;
    result?;
    if shown == 0 {
        bail!("no Windows volume with a {hive} hive in {}", args.target.display());
    }
    Ok(())
}

/// Shows the key of `hive` on one volume, if it is a Windows volume holding
/// that hive; returns whether it did. Volumes that are locked or not NTFS are passed over.
fn show_volume(v: Found<'_>, hive: &str, path: &str) -> Result<bool> {
    let Ok(mut vol) = v.volume else { return Ok(false) };
    let Ok(ntfs) = Ntfs::open(&mut vol) else { return Ok(false) };
    let Ok(dir) = ntfs.lookup(&mut vol, "Windows\\System32\\config") else { return Ok(false) };
    let mut read = |name: &str| -> Result<Option<Vec<u8>>> {
        let d = ntfs.open_dir(&mut vol, dir)?;
        let Some(r) = ntfs.lookup_in(&mut vol, &d, name)? else { return Ok(None) };
        let f = ntfs.load_file(&mut vol, r.record())?;
        Ok(Some(ntfs.read_content(&mut vol, &f, ntfs::MAX_READ_WHOLE)?))
    };
    let Some(bytes) = read(hive)? else { return Ok(false) };
    let logs = [read(&format!("{hive}.LOG1"))?.unwrap_or_default(), read(&format!("{hive}.LOG2"))?.unwrap_or_default()];
    say!("== volume {} (partition {}): Windows\\System32\\config\\{hive}", v.index, v.partition.number);
    show_recovered(&bytes, &logs, hive, path).with_context(|| format!("volume {}: {hive}", v.index))?;
    Ok(true)
}

/// Prints the key at `path` of a hive file as Windows would load it: a
/// dirty one as recovered from its `logs` (in memory; the file is unchanged).
fn show_recovered(bytes: &[u8], logs: &[Vec<u8>; 2], hive: &str, path: &str) -> Result<()> {
    let rec = hivelog::recover(bytes, &[&logs[0], &logs[1]])?;
    if rec.applied > 0 {
        say!(
            "   (dirty: read as recovered from its transaction logs, {} log entries; the file is unchanged)",
            rec.applied
        );
    }
    show(rec.bytes, hive, path)
}

/// Prints the key at `path` of a hive: subkeys, then values.
fn show(bytes: Vec<u8>, hive: &str, path: &str) -> Result<()> {
    let h = Hive::open(bytes).with_context(|| format!("reading {hive}"))?;
    let path = if hive == "SYSTEM" {
        rescue_engine::rules::registry::resolve(&h, rescue_engine::rules::profile::HiveName::System, path)?
    } else {
        path.to_string()
    };
    let k = h.open_path(&path).with_context(|| format!("{hive}\\{path}"))?;
    say!("{hive}\\{path}  (last written {})", rescue_engine::util::time::filetime_rfc3339(k.timestamp));
    for s in h.subkeys(&k)? {
        say!("  [{}]", crate::text::one_line(&s.name_string()));
    }
    for v in h.values(&k)? {
        let data = h.data(&v)?;
        let name = if v.name.is_empty() {
            "(default)".to_string()
        } else {
            crate::text::one_line(&v.name_string()).into_owned()
        };
        say!("  {name} = {}", rescue_engine::formats::registry::key::show(v.kind, &data));
    }
    Ok(())
}
