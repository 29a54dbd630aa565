//! UEFI entry point: firmware in, engine run, firmware out. Everything that
//! decides lives in the engine (`rescue_engine::run::session`).

mod console;
mod disks;
mod esp;
mod firmware;
mod keeper;
mod network;
mod screen;
mod stick;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use console::{Clock, Console};
use keeper::Keeper;
use rescue_engine::formats::embed;
use rescue_engine::formats::stick as layout;
use rescue_engine::rules::profile::{FinishAction, Profile};
use rescue_engine::rules::Options;
use rescue_engine::run::ports;
use rescue_engine::run::report::{Outcome, RunReport};
use rescue_engine::run::session::{self, Disk};
use rescue_engine::run::sitekeys::StickKeys;
use rescue_engine::util::version;
use screen::Verdict;
use sha2::{Digest, Sha256};
use stick::Stick;
use uefi::prelude::*;
use uefi::proto::console::text::Color;
use uefi::{boot, runtime};

/// The version string with its marker, kept in the binary for `rescue inspect`.
#[used]
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

/// shim's SBAT metadata (rhboot/shim SBAT.md): a CSV of component,
/// generation, vendor, package, version, URL. shim refuses to start a
/// second stage without an `.sbat` section, even when its signature is good.
const SBAT_CSV: &str = concat!(
    "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n",
    "rescue-agent,1,Rescue stick,rescue-agent,",
    env!("CARGO_PKG_VERSION"),
    ",rescue-agent\n"
);

#[used]
#[link_section = ".sbat"]
static SBAT: [u8; SBAT_CSV.len()] = {
    let mut out = [0u8; SBAT_CSV.len()];
    let b = SBAT_CSV.as_bytes();
    let mut i = 0;
    while i < b.len() {
        out[i] = b[i];
        i += 1;
    }
    out
};

/// The profile (and key-file digest) `rescue build` seals into this binary
/// before signing it; see `rescue_engine::formats::embed`. Empty as compiled.
#[used]
#[link_section = ".rprof"]
static EMBEDDED: [u8; embed::SECTION_LEN] = embed::empty_section();

/// The embedded-profile section as the builder filled it. Read volatile:
/// the compiler must not assume the bytes it compiled in.
fn embedded_section() -> Vec<u8> {
    let p = core::ptr::addr_of!(EMBEDDED).cast::<u8>();
    // SAFETY: `p` points at EMBEDDED, SECTION_LEN bytes of immutable static data.
    (0..embed::SECTION_LEN).map(|i| unsafe { core::ptr::read_volatile(p.add(i)) }).collect()
}

#[entry]
fn main() -> Status {
    if uefi::helpers::init().is_err() {
        return Status::ABORTED;
    }
    // The firmware resets the machine after five minutes unless told not to.
    let _ = boot::set_watchdog_timer(0, 0x10000, None);
    let clock = Clock::calibrate();
    let mut con = Console::open();
    let _ = core::hint::black_box(&VERSION_TAG);
    let _ = core::hint::black_box(&SBAT);
    con.line(&format!("rescue-agent {}", version::VERSION));
    con.line(if con.graphics() { "screen: graphics" } else { "screen: text console" });

    let mut stick = Stick::open();
    let (profile, embedded) = match load_profile(&mut stick) {
        Ok(p) => p,
        Err(why) => {
            verdict(&mut con, Outcome::Failed, Some(&why));
            con.wait_key("Press any key to restart.");
            runtime::reset(runtime::ResetType::COLD, Status::ABORTED, None);
        }
    };
    let machine = firmware::machine();
    let who = match &machine {
        Some(m) if m.serial_number.is_empty() => format!("{} {}", m.manufacturer, m.model),
        Some(m) => format!("{} {}  S/N {}", m.manufacturer, m.model, m.serial_number),
        None => String::from("machine: unknown (no SMBIOS)"),
    };
    con.header(&format!("rescue-agent {}  -  profile {}", version::VERSION, profile.name), &who);
    con.line(&format!("profile: {}", profile.name));
    if !profile.description.is_empty() {
        con.line(&profile.description);
    }
    let secure_boot = firmware::secure_boot();
    con.line(&format!("secure boot: {secure_boot}"));

    disks::connect_all();
    let skip = disks::boot_device_path();
    let mut found: Vec<Disk<disks::UefiDisk>> = disks::whole_disks(skip.as_deref())
        .into_iter()
        .map(|f| Disk {
            bus: String::from(rescue_engine::formats::diskid::bus_from_path(&f.label)),
            label: f.label,
            model: f.model,
            serial: f.serial,
            dev: f.disk,
        })
        .collect();
    con.line(&format!("disks: {}", found.len()));

    let (started, stamp) = firmware::now();
    let serial = machine.as_ref().map_or("", |m| m.serial_number.as_str());
    let uuid = machine.as_ref().map_or(String::new(), |m| m.uuid.replace('-', ""));
    let uuid = if uuid.bytes().all(|b| b == b'0') || uuid.bytes().all(|b| b == b'F') { String::new() } else { uuid };
    let which = firmware::mac().unwrap_or(uuid);
    stick.run_id = layout::run_id(&stamp, serial, &which, firmware::random(clock.counter()));
    con.line(&format!("run: {}", stick.run_id));
    // Site keys (keyed images): the PIN is asked only when a volume needs one.
    let mut key_file_note = None;
    // A network-booted agent carries its key file; a stick holds it.
    let key_file = embedded.keys.clone().or_else(|| stick.read(layout::KEYS_PATH).ok());
    let mut site_keys = match (key_file, embedded.keys_sha256) {
        (None, _) => None,
        (Some(b), Some(bound)) if <[u8; 32]>::from(Sha256::digest(&b)) == bound => Some(StickKeys::new(&b)),
        (Some(_), bound) => {
            let why = match bound {
                Some(_) => "the key file on the stick changed after the stick was built: not used",
                None => "the stick holds a key file that was not part of its build: not used",
            };
            con.colored(&format!("warning: {why}"), Color::Yellow);
            key_file_note = Some(why);
            None
        }
    };
    if let Some(k) = &site_keys {
        con.line(&format!("site keys: {}", k.describe()));
    }
    let keys: &mut dyn ports::KeySource = match &mut site_keys {
        Some(k) => k,
        None => &mut ports::NoKeys,
    };
    let url = profile.report.url.clone();
    let mut keeper = Keeper::new(&mut stick, url.as_deref(), clock, profile.report.deadline_seconds);
    let ports = session::Ports {
        console: &mut con,
        sink: &mut keeper,
        keys,
        esp: &mut esp::FirmwareEsp,
        clock_ms: &|| clock.ms(),
    };
    let opts = Options { dry_run: false, now: firmware::filetime_now() };
    let mut report = session::run(&profile, &mut found, opts, ports);
    report.front_end = String::from(if cfg!(target_arch = "aarch64") { "agent (aarch64)" } else { "agent (x86_64)" });
    let (uploads, uploader) = keeper.into_parts();
    if let Some(k) = &site_keys {
        report.notes.push(format!("site keys: {}", k.describe()));
    }
    report.notes.extend(key_file_note.map(String::from));
    for w in core::mem::take(&mut stick.warnings) {
        con.colored(&format!("warning: {w}"), Color::Yellow);
    }
    report.started = started;
    report.machine = machine;
    report.notes.push(format!("secure boot: {secure_boot}"));
    let boot_next = (profile.finish.action == FinishAction::Reboot && report.outcome != Outcome::Failed)
        .then(|| firmware::boot_windows_next(stick.present()));
    if let Some(b) = &boot_next {
        report.notes.push(b.clone());
    }

    keep_report(&mut con, &mut stick, uploader, &mut report, uploads);
    if let Some(b) = &boot_next {
        con.line(b);
    }
    verdict(&mut con, report.outcome, report.reason.as_deref());
    finish(&mut con, profile.finish.action)
}

/// The report: one JSON file per run, on the stick and/or delivered to the
/// report URL (through `uploader`) with the backups kept for upload. When it
/// is kept nowhere, the verdict's reason says so.
fn keep_report(
    con: &mut Console,
    stick: &mut Stick,
    uploader: Option<network::Uploader>,
    report: &mut RunReport,
    uploads: Vec<(String, Vec<u8>)>,
) {
    let json = match serde_json::to_vec_pretty(&report) {
        Ok(j) => j,
        Err(e) => {
            con.colored(&format!("warning: cannot encode the report: {e}"), Color::Yellow);
            Vec::new()
        }
    };
    let mut kept = false;
    if stick.present() {
        match stick.write(&layout::report_path(&stick.run_id), &json) {
            Ok(written) => {
                con.line(&format!("report: {written}"));
                kept = true;
            }
            Err(why) => con.colored(&format!("warning: no report kept on the stick: {why}"), Color::Yellow),
        }
    }
    if let Some(up) = uploader {
        kept |= deliver(con, up, &json, uploads);
    }
    if !kept {
        let why = "no report was kept (no writable stick and no report URL, or delivery failed)";
        con.colored(&format!("warning: {why}"), Color::Yellow);
        report.reason = Some(match report.reason.take() {
            Some(r) => format!("{r}; {why}"),
            None => String::from(why),
        });
    }
}

/// Shows the verdict: filling the screen, and as one line on serial.
fn verdict(con: &mut Console, outcome: Outcome, reason: Option<&str>) {
    let (look, color) = match outcome {
        Outcome::Fixed => (Verdict::Fixed, Color::LightGreen),
        Outcome::NothingToDo => (Verdict::NothingToDo, Color::LightCyan),
        Outcome::Failed => (Verdict::Failed, Color::LightRed),
        Outcome::SafeModeSet => (Verdict::SafeModeSet, Color::Yellow),
    };
    con.verdict(look, outcome.word(), reason, color);
}

/// Sends the report, then the backups kept on the stick, with `up` (whose
/// base is `<url>/<run id>`; backups without a stick copy went during the
/// run); says on screen what went where and what was not delivered (the fix
/// itself stands). True when the report arrived.
fn deliver(con: &mut Console, mut up: network::Uploader, report: &[u8], backups: Vec<(String, Vec<u8>)>) -> bool {
    let left = up.seconds_left();
    ports::Console::progress(con, &format!("Sending the report to {} ({left} s left for deliveries) ...", up.url("")));
    let report_sent = up.put("report.json", report, true).is_ok();
    for (rel, bytes) in &backups {
        let _ = up.put(rel, bytes, false);
    }
    if report_sent {
        con.line(&format!("report: {}", up.url("report.json")));
    }
    let backups_sent = up.sent - usize::from(report_sent);
    if backups_sent > 0 {
        con.line(&format!(
            "files delivered: {backups_sent} (backups and their restore data) to {}",
            up.url("backups/")
        ));
    }
    for (url, why) in &up.retried {
        con.line(&format!("tried again: {url} (the first try: {why})"));
    }
    for url in &up.replaced {
        con.colored(
            &format!("warning: the server already had a file at {url} (HTTP 204): it was replaced"),
            Color::Yellow,
        );
    }
    for (rel, why) in &up.failed {
        con.colored(&format!("NOT DELIVERED: {} ({why})", up.url(rel)), Color::Yellow);
    }
    report_sent
}

/// The profile this agent carries, and what else it carries (the key
/// file's digest; the key file itself when built for network boot). A
/// stick's `rescue/profile.toml` must be byte-identical to the embedded
/// profile: a stick altered after it was built does nothing. Booted from the
/// network there is no stick: the embedded profile is all there is.
fn load_profile(stick: &mut Stick) -> Result<(Profile, embed::Embedded), String> {
    let e = embed::read(&embedded_section()).map_err(|e| format!("{e}; rebuild the stick with `rescue build`"))?;
    let on_stick = if stick.present() { Some(stick.read(layout::PROFILE_PATH)) } else { None };
    match on_stick {
        None => {}
        Some(Ok(bytes)) if bytes == e.profile => {}
        Some(Ok(_)) => {
            return Err(format!(
                "{} on the stick differs from the profile this agent was built with: the stick was \
                 altered after it was built, so nothing was done; rebuild it with `rescue build`",
                layout::PROFILE_PATH
            ))
        }
        Some(Err(why)) => {
            return Err(format!("{} is missing from the stick ({why}); nothing was done", layout::PROFILE_PATH))
        }
    }
    let text = core::str::from_utf8(&e.profile).map_err(|_| String::from("the embedded profile is not UTF-8 text"))?;
    let profile = Profile::parse(text).map_err(|e| format!("the embedded profile: {e}"))?;
    Ok((profile, e))
}

fn finish(con: &mut Console, action: FinishAction) -> ! {
    con.line(&format!("finish: {}", action.as_str()));
    match action {
        FinishAction::Reboot => runtime::reset(runtime::ResetType::COLD, Status::SUCCESS, None),
        FinishAction::Shutdown => runtime::reset(runtime::ResetType::SHUTDOWN, Status::SUCCESS, None),
        FinishAction::Wait => {
            con.wait_key("Press any key to restart.");
            runtime::reset(runtime::ResetType::COLD, Status::SUCCESS, None)
        }
    }
}
