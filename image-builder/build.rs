//! Builds the UEFI agent (`rescue-agent`, target `x86_64-unknown-uefi`, release)
//! so that the `rescue` binary carries it: `cargo install --path image-builder`
//! gives one self-contained tool. The agent is built by a nested cargo with its
//! own target directory, from a clean environment.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const TARGET: &str = "x86_64-unknown-uefi";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let agent_dir = manifest_dir.join("../rescue-agent");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed={}", agent_dir.join("src").display());
    println!("cargo:rerun-if-changed={}", agent_dir.join("Cargo.toml").display());
    println!("cargo:rerun-if-changed={}", manifest_dir.join("../.cargo/config.toml").display());
    println!("cargo:rerun-if-env-changed=RESCUE_AGENT_EFI");

    // A prebuilt agent may be supplied (e.g. by packagers); otherwise build it.
    let efi = if let Some(prebuilt) = env::var_os("RESCUE_AGENT_EFI") {
        PathBuf::from(prebuilt)
    } else {
        let target_dir = out_dir.join("agent-target");
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        // Run from the agent's folder so the workspace's .cargo/config.toml applies.
        cmd.current_dir(&agent_dir)
            .arg("build")
            .arg("--release")
            .args(["--target", TARGET])
            .args(["--bin", "rescue-agent"])
            .arg("--manifest-path")
            .arg(agent_dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir);
        // The outer build's flags and job server are not for this build.
        for (key, _) in env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if key.starts_with("CARGO_") && key != "CARGO_HOME"
                || key == "RUSTFLAGS"
                || key == "RUSTC_WRAPPER"
                || key == "RUSTC_WORKSPACE_WRAPPER"
                || key == "RUSTDOC"
                || key == "RUSTC"
                || key == "MAKEFLAGS"
                || key == "CARGO_MAKEFLAGS"
                || key == "MFLAGS"
                || key == "DEBUG"
                || key == "PROFILE"
                || key == "OPT_LEVEL"
                || key == "TARGET"
                || key == "HOST"
                || key == "NUM_JOBS"
                || key == "OUT_DIR"
            {
                cmd.env_remove(&key);
            }
        }
        let mut status = cmd.status().expect("could not run cargo to build the UEFI agent");
        if !status.success() {
            // rust-toolchain.toml names the target, but rustup adds it only when it
            // installs the toolchain: add it now and try once more.
            let added = Command::new("rustup").args(["target", "add", TARGET]).status().is_ok_and(|s| s.success());
            if added {
                status = cmd.status().expect("could not run cargo to build the UEFI agent");
            }
        }
        if !status.success() {
            panic!("building the UEFI agent failed; is the target installed? Run: rustup target add {TARGET}");
        }
        target_dir.join(TARGET).join("release").join("rescue-agent.efi")
    };
    println!("cargo:rustc-env=RESCUE_AGENT_EFI_PATH={}", efi.display());
}
