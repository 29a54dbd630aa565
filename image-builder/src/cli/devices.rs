//! `rescue devices`: the disks a stick could be flashed to.

use crate::host::drives;
use anyhow::Result;
use rescue_engine::formats::diskid::human_size;

/// Arguments of `rescue devices`.
#[derive(clap::Args, Debug)]
pub struct DevicesArgs {
    /// List every disk, not only removable ones
    #[arg(long)]
    pub all: bool,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Runs `rescue devices`.
pub fn run(args: &DevicesArgs) -> Result<()> {
    let disks: Vec<_> = drives::disks().into_iter().filter(|d| args.all || d.removable).collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&disks)?);
        return Ok(());
    }
    if disks.is_empty() {
        say!("no removable disks found (plug in a stick, or use --all to see every disk)");
        return Ok(());
    }
    say!("{:<20} {:>10}  {:<6} {:<9} {:<28} MOUNTED", "DEVICE", "SIZE", "BUS", "REMOVABLE", "MODEL");
    for d in disks {
        let mounted = if d.mounts.is_empty() { "no".to_string() } else { d.mounts.join(", ") };
        say!(
            "{:<20} {:>10}  {:<6} {:<9} {:<28} {}{}",
            d.dev_path.display(),
            human_size(d.size),
            if d.bus.is_empty() { "-" } else { &d.bus },
            if d.removable { "yes" } else { "no" },
            if d.model.is_empty() { "-" } else { &d.model },
            mounted,
            if d.holds_system { " (system disk)" } else { "" }
        );
    }
    Ok(())
}
