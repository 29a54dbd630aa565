//! `rescue journal`: a view of each NTFS volume's `$LogFile` — clean or
//! not, the checkpoint, the transactions pending and what a replay would do
//! (operations by kind, pages) — like `ntfsrecover -n`, in our words; with
//! `--replay`, the replay itself (what `rescue apply` does before a fix).

use crate::cli::volume_keys::KeyArgs;
use crate::host::disk::FileDisk;
use crate::host::in_use::refuse_if_in_use;
use crate::host::volume::HostKeys;
use anyhow::{bail, Context, Result};
use rescue_engine::block::Counting;
use rescue_engine::formats::ntfs::journal::{self, Summary};
use rescue_engine::formats::ntfs::{execute, Ntfs, NtfsError};
use rescue_engine::run::ports::{Console, Silent};
use rescue_engine::run::unlock::Unlocker;
use rescue_engine::run::volumes::{self, Closed, Found};
use std::path::PathBuf;

/// Arguments of `rescue journal`.
#[derive(clap::Args)]
pub struct JournalArgs {
    /// Disk image, partition image or block device (opened read-only).
    pub target: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Replay each unclean journal now (writes to TARGET), as Windows does at mount
    #[arg(long)]
    pub replay: bool,
    /// Stop after this many writes (interruption tests).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// One volume's journal, as shown.
#[derive(serde::Serialize)]
struct VolumeJournal {
    volume: usize,
    partition: u32,
    offset: u64,
    /// "empty", "clean" or "unclean".
    state: &'static str,
    /// Log version (e.g. "2.0").
    version: Option<String>,
    current_lsn: Option<u64>,
    /// What a replay does (unclean journals).
    replay: Option<Summary>,
    /// Why it cannot be replayed.
    replay_refused: Option<String>,
    /// Writes done by `--replay`.
    replayed_writes: Option<usize>,
}

/// Runs `rescue journal`.
pub fn run(args: &JournalArgs) -> Result<()> {
    if args.replay {
        refuse_if_in_use(&args.target)?;
    }
    let mut disk = Counting::new(FileDisk::open(&args.target, args.replay)?);
    let mut keys = HostKeys::new(args.keys.credentials()?)?;
    let mut unlock = Unlocker { keys: &mut keys, console: &mut Silent, timeout_s: None, clear_key_first: true };
    let mut shown = Vec::new();
    let mut failed = false;
    let mut visit = |v: Found<'_>, _: &mut dyn Console| {
        let p = v.partition;
        let mut vol = match v.volume {
            Ok(vol) => vol,
            Err(Closed::Locked(why)) => return say_err!("partition {}: BitLocker volume left locked: {why}", p.number),
            Err(Closed::Unreadable(why)) => {
                failed = true;
                return say_err!("partition {}: cannot be read: {why}", p.number);
            }
        };
        let ntfs = match Ntfs::open(&mut vol) {
            Ok(n) => n,
            Err(NtfsError::NotNtfs { .. }) => return,
            Err(e) => {
                failed = true;
                return say_err!("volume {} (partition {}): {e}", v.index, p.number);
            }
        };
        let mut row = VolumeJournal {
            volume: v.index,
            partition: p.number,
            offset: p.offset,
            state: "empty",
            version: None,
            current_lsn: None,
            replay: None,
            replay_refused: None,
            replayed_writes: None,
        };
        let j = match journal::read(&ntfs, &mut vol) {
            Ok(j) => j,
            Err(e) => {
                failed = true;
                return say_err!("volume {}: $LogFile cannot be read: {e}", v.index);
            }
        };
        if let Some(log) = &j.log {
            row.state = if j.clean() { "clean" } else { "unclean" };
            row.version = Some(format!("{}.{}", log.restart.major, log.restart.minor));
            row.current_lsn = Some(log.restart.current_lsn);
        }
        match journal::plan_replay(&ntfs, &mut vol, &j) {
            Ok(Some((plan, s))) => {
                if args.replay {
                    match execute(&mut vol, &plan, args.stop_after) {
                        Ok(n) => row.replayed_writes = Some(n),
                        Err(e) => {
                            failed = true;
                            say_err!("volume {}: replay failed part-way: {e}", v.index);
                        }
                    }
                }
                row.replay = Some(s);
            }
            Ok(None) => {}
            Err(e) => {
                failed |= args.replay;
                row.replay_refused = Some(e.to_string());
            }
        }
        shown.push(row);
    };
    volumes::walk(&mut disk, 1, 0, &mut unlock, &mut visit).context("reading the partition table")?;
    if shown.is_empty() && !failed {
        bail!("no NTFS volume found in {}", args.target.display());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&shown)?);
    } else {
        for r in &shown {
            print_text(r);
        }
    }
    if failed {
        bail!("some volumes could not be read");
    }
    Ok(())
}

fn print_text(r: &VolumeJournal) {
    println!("== volume {}: partition {} at byte {}", r.volume, r.partition, r.offset);
    match (&r.version, r.current_lsn) {
        (Some(v), Some(l)) => println!("journal:      {} (log version {v}, current LSN {l})", r.state),
        _ => println!("journal:      empty (all 0xFF: nothing to replay)"),
    }
    if let Some(why) = &r.replay_refused {
        println!("replay:       impossible: {why}");
    }
    if let Some(n) = r.replayed_writes {
        println!("replayed:     {n} writes done; the journal is now clean");
    }
    let Some(s) = &r.replay else { return };
    println!(
        "checkpoint:   LSN {} (analysis from LSN {}, log ends at LSN {})",
        s.checkpoint_lsn, s.analysis_lsn, s.end_lsn
    );
    println!("records:      {} after the checkpoint start", s.records);
    println!("transactions: {} committed, {} not committed (undone)", s.committed, s.uncommitted);
    if s.redo_lsn == 0 {
        println!("redo:         nothing (no dirty pages)");
    } else {
        println!("redo:         from LSN {}", s.redo_lsn);
    }
    println!(
        "replay:       {} transactions, {} operations ({} redone, {} undone), {} pages",
        s.redone_transactions,
        s.redone + s.undone,
        s.redone,
        s.undone,
        s.pages
    );
    for (name, n) in &s.by_op {
        println!("  {n:>6}  {name}");
    }
}
