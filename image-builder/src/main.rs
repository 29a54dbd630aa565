//! `rescue`: build, inspect and flash rescue sticks, and run the rescue
//! engine against disks attached to this machine.

mod agent;
mod build;
mod collect;
mod disk;
mod fat;
mod flash;
mod host;
mod inspect;
mod iso;
mod keys;
mod secureboot;
mod sign;
mod stick;
mod sysblock;
mod unlock;
mod usb;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "rescue",
    version,
    about = "Build USB sticks that fix Windows PCs stuck in a boot loop",
    long_about = "Build USB sticks that fix Windows PCs stuck in a boot loop.\n\n\
        A stick boots a small UEFI agent that finds the Windows volumes, unlocks BitLocker, \
        applies the fixes of a profile (e.g. deletes a faulty driver file after backing it \
        up to the stick), writes a report and reboots into Windows.",
    after_help = "Typical use:\n  rescue build --profile profiles/crowdstrike-c00000291.toml --out rescue.img\n  \
        rescue devices\n  rescue flash rescue.img /dev/sdX"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a bootable USB image or ISO from a profile
    Build(build::BuildArgs),
    /// Show what an image or stick holds: layout, files, profile, agent version
    Inspect(inspect::InspectArgs),
    /// Write an image to a stick, then read it back and verify it
    Flash(flash::FlashArgs),
    /// List removable disks (candidate sticks)
    Devices {
        /// List every disk, not only removable ones
        #[arg(long)]
        all: bool,
    },
    /// Work with profiles
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// List a directory on each NTFS volume of a disk, image or device
    Ls(host::LsArgs),
    /// Run a profile's fixes on every NTFS volume of a disk, image or device
    Apply(host::ApplyArgs),
    /// BitLocker volumes: show metadata and key protectors
    #[command(subcommand)]
    Bitlocker(unlock::BitLockerCommand),
    /// Write the decrypted contents of a BitLocker volume to a file
    Unlock(unlock::UnlockArgs),
    /// Site recovery-key files: check them before building a keyed image
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Gather the agent's reports from sticks, images or folders into one CSV or JSON table
    Collect(collect::CollectArgs),
    /// Secure Boot: make a key and certificate for signing agents
    #[command(subcommand)]
    Secureboot(secureboot::SecureBootCommand),
}

#[derive(Subcommand)]
enum ProfileCommand {
    /// Check that a profile is valid; errors name the line and column
    Check {
        /// The profile (TOML)
        file: PathBuf,
    },
}

fn devices(all: bool) -> Result<()> {
    let disks: Vec<_> = sysblock::disks().into_iter().filter(|d| all || d.removable).collect();
    if disks.is_empty() {
        println!("no removable disks found (plug in a stick, or use --all to see every disk)");
        return Ok(());
    }
    println!("{:<14} {:>10}  {:<9} {:<28} MOUNTED", "DEVICE", "SIZE", "REMOVABLE", "MODEL");
    for d in disks {
        let mounted = if d.mounts.is_empty() { "no".to_string() } else { d.mounts.join(", ") };
        println!(
            "{:<14} {:>10}  {:<9} {:<28} {}{}",
            d.dev_path.display(),
            sysblock::human(d.size),
            if d.removable { "yes" } else { "no" },
            if d.model.is_empty() { "-" } else { &d.model },
            mounted,
            if d.holds_system { " (system disk)" } else { "" }
        );
    }
    Ok(())
}

fn profile_check(file: &std::path::Path) -> Result<()> {
    let (p, _) = build::read_profile(file)?;
    println!("{}: valid profile {:?} with {} rule(s)", file.display(), p.name, p.delete.len());
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Build(a) => build::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Flash(a) => flash::run(a),
        Command::Devices { all } => devices(*all),
        Command::Profile(ProfileCommand::Check { file }) => profile_check(file),
        Command::Ls(a) => host::ls(a),
        Command::Apply(a) => host::apply(a),
        Command::Bitlocker(c) => unlock::bitlocker_command(c),
        Command::Unlock(a) => unlock::unlock(a),
        Command::Keys(c) => keys::command(c),
        Command::Collect(a) => collect::run(a),
        Command::Secureboot(c) => secureboot::run(c),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
