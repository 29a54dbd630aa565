//! UEFI entry point: banner, profile, finish action.

mod console;

use alloc::string::String;
use console::Console;
use rescue_engine::profile::{FinishAction, Profile};
use rescue_engine::version;
use uefi::prelude::*;
use uefi::{boot, cstr16, runtime};

/// The version string with its marker, kept in the binary for `rescue inspect`.
#[used]
#[unsafe(link_section = ".rdata")]
static VERSION_TAG: [u8; version::MARKER.len() + 16] = version_tag();

const fn version_tag() -> [u8; version::MARKER.len() + 16] {
    let mut out = [0u8; version::MARKER.len() + 16];
    let mut i = 0;
    while i < version::MARKER.len() {
        out[i] = version::MARKER[i];
        i += 1;
    }
    let v = version::VERSION.as_bytes();
    let mut j = 0;
    while j < v.len() && j < 16 {
        out[i + j] = v[j];
        j += 1;
    }
    out
}

#[entry]
fn main() -> Status {
    if uefi::helpers::init().is_err() {
        return Status::ABORTED;
    }
    // The firmware resets the machine after five minutes unless told not to.
    let _ = boot::set_watchdog_timer(0, 0x10000, None);
    let mut con = Console::open();
    // Keep the tag alive through the optimiser.
    let _ = core::hint::black_box(&VERSION_TAG);
    con.line(&alloc::format!("rescue-agent {}", version::VERSION));

    let profile = match load_profile() {
        Ok(p) => p,
        Err(why) => {
            con.line(&alloc::format!("FAILED: {why}"));
            con.wait_key("Press any key to reboot.");
            runtime::reset(runtime::ResetType::COLD, Status::ABORTED, None);
        }
    };
    con.line(&alloc::format!("profile: {}", profile.name));
    finish(&mut con, profile.finish.action)
}

/// Reads and validates `rescue\profile.toml` from the stick the agent booted from.
fn load_profile() -> Result<Profile, String> {
    let sfs = boot::get_image_file_system(boot::image_handle())
        .map_err(|e| alloc::format!("cannot open the boot stick's file system ({:?})", e.status()))?;
    let mut fs = uefi::fs::FileSystem::new(sfs);
    let text = fs
        .read_to_string(cstr16!("\\rescue\\profile.toml"))
        .map_err(|e| alloc::format!("cannot read rescue\\profile.toml on the stick: {e:?}"))?;
    Profile::parse(&text).map_err(|e| alloc::format!("rescue\\profile.toml: {e}"))
}

fn finish(con: &mut Console, action: FinishAction) -> ! {
    con.line(&alloc::format!("finish: {}", action.as_str()));
    match action {
        FinishAction::Reboot => runtime::reset(runtime::ResetType::COLD, Status::SUCCESS, None),
        FinishAction::Shutdown => runtime::reset(runtime::ResetType::SHUTDOWN, Status::SUCCESS, None),
        FinishAction::Wait => {
            con.wait_key("Press any key to reboot.");
            runtime::reset(runtime::ResetType::COLD, Status::SUCCESS, None)
        }
    }
}
