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
mod fileio;
mod host;
mod image;
mod output;
mod sign;
mod site_keys;
mod sweep;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
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
        rescue devices\n  rescue flash rescue.img /dev/sdX\n\n\
        Exit status: 0 done, 1 error (nothing changed), 2 usage error, 3 nothing to do (apply, restore), \
        4 partly done (apply or restore did some; errors remain)"
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
    /// Show each NTFS volume's journal ($LogFile): clean or not, and what a replay would do
    Journal(journal::JournalArgs),
    /// Run a profile's fixes on every Windows volume of a disk, image or device (the agent's run)
    Apply(apply::ApplyArgs),
    /// Put deleted files back from the backups a fix kept (dry run unless --yes)
    Restore(restore::RestoreArgs),
    /// List a registry key (SYSTEM, SOFTWARE or the BCD) inside a disk, image or device
    Reg(reg::RegArgs),
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    #[command(hide = true)]
    Man,
}

fn main() {
    output::remove_temporaries_on_interrupt();
    let done = |r: anyhow::Result<()>| r.map(|()| Exit::Done);
    // --version also names the agent this binary carries, by version and SHA-256.
    let agents: Vec<String> = image::agent::Arch::ALL
        .iter()
        .map(|a| {
            let bin = a.embedded();
            format!(
                "{} {}, sha256 {}",
                a.name(),
                image::agent::version(bin).unwrap_or_default(),
                rescue_engine::util::hex::hex(&<sha2::Sha256 as sha2::Digest>::digest(bin))
            )
        })
        .collect();
    let long_version = format!("{} (agents: {})", env!("CARGO_PKG_VERSION"), agents.join("; "));
    let matches = Cli::command().long_version(&*Box::leak(long_version.into_boxed_str())).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let result = match &cli.command {
        Command::Build(a) => done(build::run(a)),
        Command::Inspect(a) => done(inspect::run(a)),
        Command::Flash(a) => done(flash::run(a)),
        Command::Devices(a) => done(devices::run(a)),
        Command::Profile(c) => done(profile::run(c)),
        Command::Ls(a) => done(ls::run(a)),
        Command::Journal(a) => done(journal::run(a)),
        Command::Apply(a) => apply::run(a),
        Command::Restore(a) => restore::run(a),
        Command::Reg(a) => done(reg::run(a)),
        Command::Bitlocker(c) => done(bitlocker::run(c)),
        Command::Unlock(a) => done(unlock::run(a)),
        Command::Keys(c) => done(keys::run(c)),
        Command::Collect(a) => done(collect::run(a)),
        Command::Secureboot(c) => done(secureboot::run(c)),
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "rescue", &mut std::io::stdout());
            Ok(Exit::Done)
        }
        Command::Man => {
            // A closed pipe (`rescue man | head`) is not an error.
            let _ = clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout());
            Ok(Exit::Done)
        }
    };
    match result {
        Ok(Exit::Partial(n)) => {
            eprintln!("partly done: {n} error(s) remain");
            std::process::exit(Exit::Partial(n).code());
        }
        Ok(exit) => std::process::exit(exit.code()),
        Err(e) => {
            eprintln!("error: {}", text::printable(&format!("{e:#}")));
            std::process::exit(1);
        }
    }
}
