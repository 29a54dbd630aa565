//! `rescue`: build, inspect and flash rescue sticks, and run the rescue
//! engine against disks attached to this machine.

mod host;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "rescue", version, about = "Build rescue sticks that fix Windows PCs stuck in a boot loop", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List a directory on each NTFS volume of a disk, image or device
    Ls(host::LsArgs),
    /// Run a profile's fixes on every NTFS volume of a disk, image or device
    Apply(host::ApplyArgs),
}

fn main() {
    let cli = Cli::parse();
    let result: Result<()> = match &cli.command {
        Command::Ls(a) => host::ls(a),
        Command::Apply(a) => host::apply(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
