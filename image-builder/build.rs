//! Builds the UEFI agent (`rescue-agent`, release) for both UEFI targets,
//! `x86_64-unknown-uefi` and `aarch64-unknown-uefi`, so that the `rescue`
//! binary carries both (every stick boots on x86-64 and ARM64 PCs): `cargo install --path image-builder`
//! gives one self-contained tool. The agent is built by a nested cargo with its
//! own target directory, from a clean environment.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// (target, the env var naming a prebuilt agent, the env var this script sets for the code).
const TARGETS: [(&str, &str, &str); 2] = [
    ("x86_64-unknown-uefi", "RESCUE_AGENT_EFI", "RESCUE_AGENT_EFI_PATH"),
    ("aarch64-unknown-uefi", "RESCUE_AGENT_AA64_EFI", "RESCUE_AGENT_AA64_EFI_PATH"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let agent_dir = manifest_dir.join("../rescue-agent");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed={}", agent_dir.join("src").display());
    println!("cargo:rerun-if-changed={}", agent_dir.join("Cargo.toml").display());
    println!("cargo:rerun-if-changed={}", manifest_dir.join("../.cargo/config.toml").display());
    for (_, prebuilt, _) in TARGETS {
        println!("cargo:rerun-if-env-changed={prebuilt}");
    }
    let target_dir = out_dir.join("agent-target");
    // Prebuilt agents may be supplied (e.g. by packagers); the others are built, in one cargo run.
    let to_build: Vec<&str> = TARGETS.iter().filter(|(_, pre, _)| env::var_os(pre).is_none()).map(|t| t.0).collect();
    if !to_build.is_empty() {
        build(&agent_dir, &target_dir, &to_build);
    }
    for (target, prebuilt, var) in TARGETS {
        let efi = env::var_os(prebuilt)
            .map(PathBuf::from)
            .unwrap_or_else(|| target_dir.join(target).join("release").join("rescue-agent.efi"));
        println!("cargo:rustc-env={var}={}", efi.display());
    }
}

fn build(agent_dir: &std::path::Path, target_dir: &std::path::Path, targets: &[&str]) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    // Run from the agent's folder so the workspace's .cargo/config.toml applies.
    cmd.current_dir(agent_dir).arg("build").arg("--release");
    for t in targets {
        cmd.args(["--target", t]);
    }
    cmd.args(["--bin", "rescue-agent"])
        .arg("--manifest-path")
        .arg(agent_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
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
        // rust-toolchain.toml names the targets, but rustup adds them only when it
        // installs the toolchain: add them now and try once more.
        let added = Command::new("rustup").args(["target", "add"]).args(targets).status().is_ok_and(|s| s.success());
        if added {
            status = cmd.status().expect("could not run cargo to build the UEFI agent");
        }
    }
    if !status.success() {
        panic!(
            "building the UEFI agent failed; are the targets installed? Run: rustup target add {}",
            targets.join(" ")
        );
    }
}
