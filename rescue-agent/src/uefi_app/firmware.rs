//! What the agent asks the firmware: the machine's identity (SMBIOS, the
//! NIC's MAC), the time, random bits, the Secure Boot state, and which boot
//! entry is Windows.

use alloc::format;
use alloc::string::String;
use rescue_engine::formats::bootopt;
use rescue_engine::formats::smbios::{self, Machine};
use sha2::{Digest, Sha256};
use uefi::proto::network::snp::SimpleNetwork;
use uefi::proto::rng::Rng;
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

/// The MAC address of the first network interface, as hex digits (none
/// without a NIC, or one that gives no address).
pub fn mac() -> Option<String> {
    let nics = uefi::boot::find_handles::<SimpleNetwork>().ok()?;
    nics.iter().find_map(|&h| {
        let snp = super::disks::open::<SimpleNetwork>(h)?;
        let mode = snp.mode();
        let len = usize::try_from(mode.hw_address_size).ok()?.min(32);
        let bytes = mode.current_address.0.get(..len)?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        (!hex.is_empty() && bytes.iter().any(|&b| b != 0)).then_some(hex)
    })
}

/// 32 random bits for telling runs apart (not a secret): the firmware's
/// RNG when it has one, else a digest of the CPU's free-running counter,
/// which differs between PCs and boots.
pub fn random(counter: u64) -> u32 {
    let mut buf = [0u8; 4];
    let from_rng = uefi::boot::get_handle_for_protocol::<Rng>()
        .ok()
        .and_then(super::disks::open::<Rng>)
        .is_some_and(|mut rng| rng.get_rng(None, &mut buf).is_ok());
    if !from_rng {
        let digest = Sha256::digest(counter.to_le_bytes());
        buf.copy_from_slice(&digest[..4]);
    }
    u32::from_le_bytes(buf)
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
/// to Windows once even with the stick left in (or the network still first
/// in the boot order). `BootOrder` is never changed. Returns what was done,
/// for the screen and the report; `from_stick` picks the advice when it fails.
pub fn boot_windows_next(from_stick: bool) -> String {
    let advice = if from_stick {
        "remove the stick before Windows restarts"
    } else {
        "choose Windows Boot Manager in the boot menu if the PC boots from the network again"
    };
    let mut buf = [0u8; 512];
    let order = match runtime::get_variable(cstr16!("BootOrder"), &VariableVendor::GLOBAL_VARIABLE, &mut buf) {
        Ok((v, _)) => bootopt::boot_order(v),
        Err(_) => return format!("no BootOrder variable: {advice}"),
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
                Err(_) => format!("the firmware refused to set BootNext: {advice}"),
            };
        }
    }
    format!("no Windows Boot Manager entry found: {advice}")
}
