//! The UEFI front end of the rescue agent: firmware in, engine calls, firmware out.
//! Everything that decides lives in the engine library (`rescue_engine`).
#![cfg_attr(target_os = "uefi", no_std, no_main)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(target_os = "uefi")]
extern crate alloc;
#[cfg(target_os = "uefi")]
mod uefi_app;

#[cfg(not(target_os = "uefi"))]
fn main() {
    eprintln!("rescue-agent is a UEFI application: build it with --target x86_64-unknown-uefi");
    std::process::exit(2);
}
