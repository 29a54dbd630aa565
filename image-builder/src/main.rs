//! `rescue`: build, inspect and flash rescue sticks, and run the rescue
//! engine against disks attached to this machine.
//!
//! Layout: [`cli`] holds one module per verb (its arguments and its `run`);
//! [`image`] makes and reads images; [`sign`] is Authenticode; [`host`] is
//! this machine's disks; [`site_keys`] imports and seals recovery keys;
//! [`output`] writes files atomically.

#![deny(clippy::undocumented_unsafe_blocks)]

#[macro_use]
mod text;
mod cli;
mod clock;
mod host;
mod image;
mod output;
mod sign;
mod site_keys;

use clap::{Parser, Subcommand};
use cli::*;

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
    Devices(devices::DevicesArgs),
    /// Work with profiles
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// List a directory on each NTFS volume of a disk, image or device
    Ls(ls::LsArgs),
    /// Run a profile's fixes on every NTFS volume of a disk, image or device
    Apply(apply::ApplyArgs),
    /// BitLocker volumes: show metadata and key protectors
    #[command(subcommand)]
    Bitlocker(bitlocker::BitLockerCommand),
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

fn main() {
    output::remove_temporaries_on_interrupt();
    let result = match &Cli::parse().command {
        Command::Build(a) => build::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Flash(a) => flash::run(a),
        Command::Devices(a) => devices::run(a),
        Command::Profile(c) => profile::run(c),
        Command::Ls(a) => ls::run(a),
        Command::Apply(a) => apply::run(a),
        Command::Bitlocker(c) => bitlocker::run(c),
        Command::Unlock(a) => unlock::run(a),
        Command::Keys(c) => keys::run(c),
        Command::Collect(a) => collect::run(a),
        Command::Secureboot(c) => secureboot::run(c),
    };
    if let Err(e) = result {
        eprintln!("error: {}", text::printable(&format!("{e:#}")));
        std::process::exit(1);
    }
}
