//! What the agent asks the firmware: the machine's identity (SMBIOS), the
//! time, the Secure Boot state, and which boot entry is Windows.

use alloc::format;
use alloc::string::String;
use rescue_engine::formats::bootopt;
use rescue_engine::formats::smbios::{self, Machine};
use uefi::runtime::{self, VariableAttributes, VariableVendor};
use uefi::table::cfg::ConfigTableEntry;
use uefi::{cstr16, system, CString16};

/// Manufacturer, model, serial number and UUID from SMBIOS, if published.
pub fn machine() -> Option<Machine> {
    let entry = system::with_config_table(|t| {
        t.iter()
            .find(|e| e.guid == ConfigTableEntry::SMBIOS3_GUID)
            .or_else(|| t.iter().find(|e| e.guid == ConfigTableEntry::SMBIOS_GUID))
            .map(|e| e.address as usize)
    })?;
    // SAFETY: UEFI identity-maps memory; the entry point structure is at most 0x20 bytes.
    let ep = unsafe { core::slice::from_raw_parts(entry as *const u8, 0x20) };
    let (addr, len) = smbios::table_location(ep)?;
    // SAFETY: the firmware says the structure table lies there, `len` bytes long (capped at 1 MiB).
    let table = unsafe { core::slice::from_raw_parts(addr as usize as *const u8, len) };
    smbios::machine(table)
}

/// The firmware's clock as a FILETIME, in UTC when the firmware says its
/// time zone (UEFI: local = UTC - TimeZone minutes), else as it reads; 0
/// when it cannot be read.
pub fn filetime_now() -> u64 {
    runtime::get_time().map_or(0, |t| {
        let local = rescue_engine::util::time::filetime_from_civil(&rescue_engine::util::time::Civil {
            year: t.year() as i64,
            month: t.month(),
            day: t.day(),
            hour: t.hour(),
            minute: t.minute(),
            second: t.second(),
        });
        let tz_ticks = t.time_zone().map_or(0, |m| i64::from(m) * 60 * 10_000_000);
        local.saturating_add_signed(tz_ticks)
    })
}

/// The firmware's clock as `YYYY-MM-DDTHH:MM:SS`, and a compact form for file names.
pub fn now() -> (String, String) {
    match runtime::get_time() {
        Ok(t) => (
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            format!("{:04}{:02}{:02}-{:02}{:02}{:02}", t.year(), t.month(), t.day(), t.hour(), t.minute(), t.second()),
        ),
        Err(_) => (String::from("unknown"), String::from("unknown-time")),
    }
}

fn global_u8(name: &uefi::CStr16) -> Option<u8> {
    let mut buf = [0u8; 1];
    runtime::get_variable(name, &VariableVendor::GLOBAL_VARIABLE, &mut buf).ok().map(|(v, _)| v[0])
}

/// shim's SHIM_LOCK protocol: shim installs it before starting its second stage.
const SHIM_LOCK_GUID: uefi::Guid = uefi::guid!("605dab50-e046-4300-abb6-3dd810dd8b23");

/// Whether some handle carries shim's SHIM_LOCK protocol (the agent was started by shim).
fn shim_present() -> bool {
    uefi::boot::locate_handle_buffer(uefi::boot::SearchType::ByProtocol(&SHIM_LOCK_GUID)).is_ok_and(|h| !h.is_empty())
}

/// `SecureBoot=…, SetupMode=…, Shim=yes|no` as the firmware reports them.
pub fn secure_boot() -> String {
    let show = |v: Option<u8>| v.map_or(String::from("unknown"), |b| format!("{b}"));
    format!(
        "SecureBoot={}, SetupMode={}, Shim={}",
        show(global_u8(cstr16!("SecureBoot"))),
        show(global_u8(cstr16!("SetupMode"))),
        if shim_present() { "yes" } else { "no" }
    )
}

/// Sets `BootNext` to the Windows Boot Manager entry, so the next boot goes
/// to Windows once even with the stick left in. `BootOrder` is never changed.
/// Returns what was done, for the screen and the report.
pub fn boot_windows_next() -> String {
    let mut buf = [0u8; 512];
    let order = match runtime::get_variable(cstr16!("BootOrder"), &VariableVendor::GLOBAL_VARIABLE, &mut buf) {
        Ok((v, _)) => bootopt::boot_order(v),
        Err(_) => return String::from("no BootOrder variable: remove the stick before Windows restarts"),
    };
    let mut opt = alloc::vec![0u8; 4096];
    for n in order {
        let Ok(name) = CString16::try_from(format!("Boot{n:04X}").as_str()) else { continue };
        let Ok((bytes, _)) = runtime::get_variable(&name, &VariableVendor::GLOBAL_VARIABLE, &mut opt) else { continue };
        let Some(o) = bootopt::parse(bytes) else { continue };
        if o.active && o.is_windows_boot_manager() {
            let attrs = VariableAttributes::NON_VOLATILE
                | VariableAttributes::BOOTSERVICE_ACCESS
                | VariableAttributes::RUNTIME_ACCESS;
            return match runtime::set_variable(
                cstr16!("BootNext"),
                &VariableVendor::GLOBAL_VARIABLE,
                attrs,
                &n.to_le_bytes(),
            ) {
                Ok(()) => format!("next boot: Boot{n:04X} \"{}\" (BootNext)", o.description),
                Err(e) => {
                    format!("could not set BootNext ({:?}): remove the stick before Windows restarts", e.status())
                }
            };
        }
    }
    String::from("no Windows Boot Manager entry found: remove the stick so the PC boots Windows")
}
