//! The remediation profile: what a stick does to each Windows volume.
//!
//! A profile is TOML (see `profiles/README.md`). [`Profile::parse`] accepts
//! only a fully valid profile: unknown keys, bad globs, bad hex and missing
//! fields are [`ProfileError`]s carrying the line and column of the problem
//! and what to change. Both the image builder and the agent parse with this
//! one function, so a stick never carries a profile the agent would reject.

pub use crate::formats::ntfs::gate::UncleanJournal;
use crate::formats::registry::bcd::SafeMode;
use crate::formats::registry::edit::Data;
use crate::util::glob;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use serde::Deserialize;
use toml::Spanned;

/// A validated profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The profile's name: 1 to 64 ASCII letters, digits, `-`, `_` or `.`;
    /// it names reports and backup folders.
    pub name: String,
    /// Free text for people (empty when not given).
    pub description: String,
    /// The `[[delete]]` rules, in file order.
    pub delete: Vec<DeleteRule>,
    /// The `[[service]]` rules: services whose start type is set.
    pub services: Vec<ServiceRule>,
    /// The `[[registry]]` rules: values set.
    pub registry: Vec<RegistryRule>,
    /// The `[[restore]]` rules: what to put back from earlier runs' backups.
    pub restore: Vec<RestoreRule>,
    /// The `[ntfs]` options.
    pub ntfs: NtfsOptions,
    /// The `[finish]` options.
    pub finish: Finish,
    /// The `[prompt]` options.
    pub prompt: PromptOptions,
    /// `[bitlocker]`: what to do for a PC whose BitLocker volumes stay locked.
    pub bitlocker: BitLockerOptions,
    /// The `[report]` options.
    pub report: ReportOptions,
}

/// The `[report]` section: where a network-booted agent (or any agent, in
/// addition to the stick) delivers its report and backups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportOptions {
    /// `http://host[:port]/path`: the agent sends `<url>/<run id>/report.json`
    /// and `<url>/<run id>/backups/<volume>/<path>` with HTTP PUT.
    pub url: Option<String>,
    /// `deadline_seconds`: the longest all deliveries of one run may take
    /// together (backups sent during the run, then the report), default
    /// [`DEFAULT_DELIVERY_DEADLINE`]. The report is always tried once.
    pub deadline_seconds: u32,
}

/// Default of `[report] deadline_seconds`.
pub const DEFAULT_DELIVERY_DEADLINE: u32 = 60;
/// Range of `[report] deadline_seconds`.
pub const DELIVERY_DEADLINE_RANGE: core::ops::RangeInclusive<u32> = 10..=3600;

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions { url: None, deadline_seconds: DEFAULT_DELIVERY_DEADLINE }
    }
}

/// One `[[delete]]` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteRule {
    /// The path as written in the profile, with `\` separators.
    pub path: String,
    /// Directory components from the volume root, without wildcards.
    pub dir: Vec<String>,
    /// Last component; may hold `*` and `?`.
    pub pattern: String,
    /// Only files starting with these bytes match (empty: any file).
    pub header: Vec<u8>,
    /// Copy each file to the stick before deleting it.
    pub backup: bool,
}

/// One `[[restore]]` rule: which backups kept by earlier runs to put
/// back (deleted files, and the SYSTEM and SOFTWARE hives as they were
/// before a run changed them), found by the volume's serial number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreRule {
    /// Where the backups are: `"backups"`, the only source (the stick's
    /// `rescue/backups`; `rescue restore --from` on the host).
    pub from: String,
    /// Only backups whose path matches (directory components exactly, the
    /// last one a glob; case-insensitive); `None`: every backup.
    pub path: Option<(Vec<String>, String)>,
    /// Only backups kept by this run (the run id, as in the backup's folder).
    pub run: Option<String>,
}

impl RestoreRule {
    /// True when the rule takes the backup of `path` (`\`-separated) kept by run `run`.
    pub fn takes(&self, path: &str, run: Option<&str>) -> bool {
        if self.run.as_deref().is_some_and(|want| run.is_none_or(|r| !r.eq_ignore_ascii_case(want))) {
            return false;
        }
        let Some((dir, pattern)) = &self.path else { return true };
        let parts: Vec<&str> = path.split('\\').filter(|p| !p.is_empty()).collect();
        let Some((last, dirs)) = parts.split_last() else { return false };
        let fold = |u: u16| if u < 0x80 { u16::from((u as u8).to_ascii_uppercase()) } else { u };
        let utf16 = |s: &str| s.encode_utf16().collect::<Vec<u16>>();
        dirs.len() == dir.len()
            && dirs.iter().zip(dir).all(|(a, b)| a.eq_ignore_ascii_case(b))
            && glob::matches(&utf16(pattern), &utf16(last), fold)
    }
}

/// One `[[service]]` rule: the start type of a service (or driver), set in
/// every `ControlSetNNN` of the SYSTEM hive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRule {
    /// The key name under `ControlSetNNN\Services`.
    pub name: String,
    /// The start type.
    pub start: ServiceStart,
}

/// A service's `Start` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceStart {
    /// 0: loaded by the boot loader.
    Boot,
    /// 1: loaded by the kernel at initialisation.
    System,
    /// 2: started automatically.
    Automatic,
    /// 3: started on demand.
    Manual,
    /// 4: never started.
    Disabled,
}

impl ServiceStart {
    /// The `Start` DWORD.
    pub fn value(self) -> u32 {
        self as u32
    }
    /// The name as written in profiles.
    pub fn as_str(self) -> &'static str {
        ["boot", "system", "automatic", "manual", "disabled"][self as usize]
    }
}

/// The hives a `[[registry]]` rule may edit (`Windows\System32\config\<hive>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HiveName {
    /// `SYSTEM`: services, drivers, control sets.
    System,
    /// `SOFTWARE`: installed software and policies.
    Software,
}

impl HiveName {
    /// The file name in `Windows\System32\config`.
    pub fn file(self) -> &'static str {
        match self {
            HiveName::System => "SYSTEM",
            HiveName::Software => "SOFTWARE",
        }
    }
}

/// One `[[registry]]` rule: a value set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRule {
    /// The hive.
    pub hive: HiveName,
    /// The key, relative to the hive root, `\`-separated; in SYSTEM a first
    /// component `CurrentControlSet` means the set `Select\Current` names.
    pub key: String,
    /// The value's name (empty: the key's default value).
    pub value: String,
    /// The data (and so the type) to set.
    pub data: crate::formats::registry::edit::Data,
}

/// `[ntfs]` options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NtfsOptions {
    /// What to do when `$LogFile` is unclean (`unclean_journal`, default `replay`).
    pub unclean_journal: UncleanJournal,
}

/// What the agent does when it is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishAction {
    /// Reboot into Windows (the default).
    #[default]
    Reboot,
    /// Power the machine off.
    Shutdown,
    /// Wait for a key press, then reboot.
    Wait,
}

impl FinishAction {
    /// The value as written in the profile (`"reboot"`, `"shutdown"` or `"wait"`).
    pub fn as_str(self) -> &'static str {
        match self {
            FinishAction::Reboot => "reboot",
            FinishAction::Shutdown => "shutdown",
            FinishAction::Wait => "wait",
        }
    }
}

/// `[finish]` options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Finish {
    /// What to do at the end (`action`, default `reboot`).
    pub action: FinishAction,
    /// `safe_mode`: the next boot of each fixed Windows goes to Safe Mode
    /// (`minimal`, `network`) or back to normal (`off`); None leaves the BCD alone.
    pub safe_mode: Option<crate::formats::registry::bcd::SafeMode>,
}

/// `[prompt]` options: how the agent asks for BitLocker keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PromptOptions {
    /// Seconds to wait at a key prompt before skipping the volume; `None` waits forever.
    pub timeout_seconds: Option<u32>,
}

/// What the agent does for a disk whose BitLocker volumes all stay locked
/// (no key on the stick, Esc, the prompt timed out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenLocked {
    /// Leave the disk untouched; the run is FAILED (the default).
    #[default]
    Leave,
    /// Set Safe Mode on that disk's BCD store (on its unencrypted EFI System
    /// Partition): Windows' own TPM unlock still works there, and the faulty
    /// driver does not load. The run is SAFE MODE SET.
    SafeMode,
}

/// `[bitlocker]` options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitLockerOptions {
    /// `when_locked`.
    pub when_locked: WhenLocked,
    /// `safe_mode`: which Safe Mode (`minimal`, the default, or `network`).
    pub safe_mode: crate::formats::registry::bcd::SafeMode,
    /// `instructions`: what the technician and the PC's user must do next,
    /// shown on the SAFE MODE SET screen and kept in the report.
    pub instructions: String,
}

impl Default for BitLockerOptions {
    fn default() -> Self {
        BitLockerOptions {
            when_locked: WhenLocked::Leave,
            safe_mode: crate::formats::registry::bcd::SafeMode::Minimal,
            instructions: String::from(DEFAULT_LOCKED_INSTRUCTIONS),
        }
    }
}

/// The instructions shown when a profile gives none.
pub const DEFAULT_LOCKED_INSTRUCTIONS: &str = "Windows starts in Safe Mode: sign in as an administrator, \
     remove the faulty file or driver, then run: bcdedit /deletevalue {default} safeboot";
/// Longest `[bitlocker] instructions`, in characters.
pub const MAX_INSTRUCTIONS: usize = 400;

/// A profile that is not valid, with where and what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileError {
    /// 1-based line and column of the problem (0 when not tied to a place).
    pub line: usize,
    /// 1-based column, in characters (0 when not tied to a place).
    pub column: usize,
    /// What is wrong and how to fix it (may span lines).
    pub message: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
        } else {
            write!(f, "{}", self.message)
        }
    }
}

impl core::error::Error for ProfileError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    delete: Vec<RawDelete>,
    #[serde(default)]
    service: Vec<RawService>,
    #[serde(default)]
    registry: Vec<RawRegistry>,
    #[serde(default)]
    restore: Vec<RawRestore>,
    #[serde(default)]
    ntfs: RawNtfs,
    #[serde(default)]
    finish: RawFinish,
    #[serde(default)]
    prompt: RawPrompt,
    #[serde(default)]
    report: RawReport,
    #[serde(default)]
    bitlocker: RawBitLocker,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBitLocker {
    #[serde(default)]
    when_locked: WhenLocked,
    safe_mode: Option<Spanned<String>>,
    instructions: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReport {
    url: Option<Spanned<String>>,
    deadline_seconds: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelete {
    path: Spanned<String>,
    header: Option<Spanned<String>>,
    #[serde(default = "yes")]
    backup: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRestore {
    from: Spanned<String>,
    path: Option<Spanned<String>>,
    run: Option<Spanned<String>>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<String>,
    start: ServiceStart,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    hive: Spanned<String>,
    key: Spanned<String>,
    value: Spanned<String>,
    dword: Option<Spanned<i64>>,
    qword: Option<Spanned<i64>>,
    string: Option<Spanned<String>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawSafeMode {
    Minimal,
    Network,
    Off,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNtfs {
    #[serde(default)]
    unclean_journal: UncleanJournal,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFinish {
    #[serde(default)]
    action: FinishAction,
    safe_mode: Option<RawSafeMode>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPrompt {
    timeout_seconds: Option<u32>,
}

/// Checks a `[report] url` as the agent can use it: `http://` (the
/// firmware's HTTP protocol; its TLS needs certificates enrolled in the
/// firmware), then a host of letters, digits, `-` and `.` (an IPv4 address
/// or a name: the agent speaks IPv4 only), an optional port 1–65535, and a
/// path; no user name or password (they would travel in the clear, in the
/// Host header), no query or fragment, no percent-encoded control
/// character; at most 512 printable ASCII characters.
fn check_url(url: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!("report url {url:?} must start with http:// (e.g. http://rescue.example.internal/rescue)"));
    };
    if url.len() > 512 || !url.bytes().all(|b| b.is_ascii_graphic()) || url.contains(['?', '#']) {
        return Err(format!(
            "report url {url:?}: at most 512 printable ASCII characters, no spaces, no query or fragment"
        ));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        return Err(format!(
            "report url {url:?} must not carry a user name or password (they would be sent in the clear)"
        ));
    }
    if authority.starts_with('[') {
        return Err(format!("report url {url:?}: the agent speaks IPv4 only; use an IPv4 address or a host name"));
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err(format!("report url {url:?} names no host"));
    }
    if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
        return Err(format!("report url {url:?}: the host may hold only letters, digits, '-' and '.'"));
    }
    if let Some(p) = port {
        if !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().map_or(true, |n| n == 0) {
            return Err(format!("report url {url:?}: the port {p:?} must be a number from 1 to 65535"));
        }
    }
    let mut escapes = path.split('%').skip(1);
    if escapes.any(|e| {
        let hex = e.get(..2).and_then(|h| u8::from_str_radix(h, 16).ok());
        !hex.is_some_and(|b| b == b' ' || b.is_ascii_graphic())
    }) {
        return Err(format!(
            "report url {url:?}: each '%' must start an escape of a printable character (no %0d, %0a, ...)"
        ));
    }
    Ok(())
}

/// Longest header a rule may require, in bytes.
pub const MAX_HEADER: usize = 512;

/// 1-based line and column of byte `pos` in `text`.
fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(text.len());
    let before = &text.as_bytes()[..pos];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let column = text[line_start..pos].chars().count() + 1;
    (line, column)
}

impl Profile {
    /// Parses and validates a profile; the first problem is the error.
    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        Profile::parse_all(text).map_err(|mut errors| errors.remove(0))
    }

    /// Parses and validates a profile, reporting every problem found (at
    /// least one when it fails), each with its line and column.
    pub fn parse_all(text: &str) -> Result<Profile, Vec<ProfileError>> {
        if text.len() > MAX_LEN {
            return Err(alloc::vec![ProfileError {
                line: 0,
                column: 0,
                message: format!("the profile is {} bytes; a profile is at most {MAX_LEN} bytes", text.len()),
            }]);
        }
        let at = |pos: usize, message: String| {
            let (line, column) = line_col(text, pos);
            ProfileError { line, column, message }
        };
        let raw: RawProfile = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim_end().to_string();
            let hint = hint_for(&msg);
            let pos = e.span().map_or(0, |s| s.start);
            alloc::vec![at(pos, format!("{msg}{hint}"))]
        })?;
        let mut errors = Vec::new();

        let name_pos = raw.name.span().start;
        let name = raw.name.into_inner();
        if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            errors.push(at(
                name_pos,
                "`name` must be 1-64 characters of letters, digits, '-', '_' or '.' (it names reports and backups)"
                    .into(),
            ));
        }
        if raw.delete.is_empty()
            && raw.service.is_empty()
            && raw.registry.is_empty()
            && raw.restore.is_empty()
            && raw.finish.safe_mode.is_none()
        {
            errors.push(ProfileError { line: 0, column: 0, message: "the profile does nothing: add a [[delete]], [[service]], [[registry]] or [[restore]] rule, or [finish] safe_mode, e.g.\n[[delete]]\npath = 'Windows\\Temp\\bad.sys'".into() });
        }
        let mut delete = Vec::new();
        for r in raw.delete {
            let path_pos = r.path.span().start;
            let split = split_path(r.path.get_ref()).map_err(|m| at(path_pos, m));
            let header = match r.header {
                None => Ok(Vec::new()),
                Some(h) => parse_hex(h.get_ref()).map_err(|m| at(h.span().start, m)),
            };
            match (split, header) {
                (Ok((dir, pattern)), Ok(header)) => {
                    delete.push(DeleteRule { path: r.path.into_inner(), dir, pattern, header, backup: r.backup })
                }
                (split, header) => errors.extend(split.err().into_iter().chain(header.err())),
            }
        }
        let mut services = Vec::new();
        for r in raw.service {
            match check_key_name(r.name.get_ref()) {
                Ok(()) => services.push(ServiceRule { name: r.name.get_ref().clone(), start: r.start }),
                Err(m) => errors.push(at(r.name.span().start, format!("[[service]] name: {m}"))),
            }
        }
        let mut registry = Vec::new();
        for r in raw.registry {
            match registry_rule(r) {
                Ok(rule) => registry.push(rule),
                Err((pos, m)) => errors.push(at(pos, m)),
            }
        }
        let mut restore = Vec::new();
        for r in raw.restore {
            match restore_rule(r) {
                Ok(rule) => restore.push(rule),
                Err((pos, m)) => errors.push(at(pos, m)),
            }
        }
        let url = match raw.report.url {
            None => None,
            Some(u) => match check_url(u.get_ref()) {
                Ok(()) => Some(u.into_inner()),
                Err(m) => {
                    errors.push(at(u.span().start, m));
                    None
                }
            },
        };
        let deadline_seconds = match raw.report.deadline_seconds {
            None => DEFAULT_DELIVERY_DEADLINE,
            Some(d) if DELIVERY_DEADLINE_RANGE.contains(d.get_ref()) => d.into_inner(),
            Some(d) => {
                let (lo, hi) = (DELIVERY_DEADLINE_RANGE.start(), DELIVERY_DEADLINE_RANGE.end());
                errors.push(at(d.span().start, format!("[report] deadline_seconds must be from {lo} to {hi}")));
                DEFAULT_DELIVERY_DEADLINE
            }
        };
        let locked_mode = match raw.bitlocker.safe_mode.as_ref().map(|m| (m.get_ref().as_str(), m.span().start)) {
            None | Some(("minimal", _)) => crate::formats::registry::bcd::SafeMode::Minimal,
            Some(("network", _)) => crate::formats::registry::bcd::SafeMode::Network,
            Some((other, pos)) => {
                errors.push(at(pos, format!("[bitlocker] safe_mode {other:?} must be \"minimal\" or \"network\"")));
                crate::formats::registry::bcd::SafeMode::Minimal
            }
        };
        let instructions = match raw.bitlocker.instructions {
            None => String::from(DEFAULT_LOCKED_INSTRUCTIONS),
            Some(t) => {
                let text = t.get_ref();
                if text.trim().is_empty()
                    || text.chars().count() > MAX_INSTRUCTIONS
                    || text.chars().any(char::is_control)
                {
                    errors.push(at(
                        t.span().start,
                        format!("[bitlocker] instructions: 1 to {MAX_INSTRUCTIONS} characters on one line"),
                    ));
                }
                t.into_inner()
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Profile {
            name,
            description: raw.description,
            delete,
            services,
            registry,
            restore,
            ntfs: NtfsOptions { unclean_journal: raw.ntfs.unclean_journal },
            finish: Finish {
                action: raw.finish.action,
                safe_mode: raw.finish.safe_mode.map(|m| match m {
                    RawSafeMode::Minimal => crate::formats::registry::bcd::SafeMode::Minimal,
                    RawSafeMode::Network => crate::formats::registry::bcd::SafeMode::Network,
                    RawSafeMode::Off => crate::formats::registry::bcd::SafeMode::Off,
                }),
            },
            prompt: PromptOptions { timeout_seconds: raw.prompt.timeout_seconds },
            report: ReportOptions { url, deadline_seconds },
            bitlocker: BitLockerOptions {
                when_locked: raw.bitlocker.when_locked,
                safe_mode: locked_mode,
                instructions,
            },
        })
    }
}

/// Checks one registry key name: 1 to 255 characters, no `\\`, no control characters.
fn check_key_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 255 {
        return Err(format!("{name:?} must be 1 to 255 characters"));
    }
    if name.contains('\\') || name.chars().any(|c| (c as u32) < 0x20) {
        return Err(format!("{name:?} must be one key name: no '\\' and no control characters"));
    }
    Ok(())
}

/// Validates one `[[registry]]` rule; an error carries its byte position.
fn registry_rule(r: RawRegistry) -> Result<RegistryRule, (usize, String)> {
    use crate::formats::registry::edit::Data;
    let hive = match r.hive.get_ref().to_ascii_uppercase().as_str() {
        "SYSTEM" => HiveName::System,
        "SOFTWARE" => HiveName::Software,
        other => {
            return Err((
                r.hive.span().start,
                format!("[[registry]] hive {other:?} is not one this tool edits: use \"SYSTEM\" or \"SOFTWARE\""),
            ));
        }
    };
    let key = r.key.get_ref();
    if key.is_empty() || key.starts_with(['\\', '/']) || key.contains(':') || key.contains('/') {
        return Err((r.key.span().start, format!("[[registry]] key {key:?} must be relative to the hive, with '\\' between names, e.g. 'CurrentControlSet\\Services\\CSAgent'")));
    }
    for part in key.split('\\') {
        check_key_name(part).map_err(|m| (r.key.span().start, format!("[[registry]] key {key:?}: {m}")))?;
    }
    if r.value.get_ref().chars().count() > 16383 || r.value.get_ref().chars().any(|c| (c as u32) < 0x20) {
        return Err((
            r.value.span().start,
            "[[registry]] value name: at most 16383 characters, no control characters".into(),
        ));
    }
    let given: Vec<usize> = [
        r.dword.as_ref().map(|d| d.span().start),
        r.qword.as_ref().map(|d| d.span().start),
        r.string.as_ref().map(|d| d.span().start),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() != 1 {
        let pos = given.get(1).copied().unwrap_or(r.value.span().start);
        return Err((pos, "[[registry]] needs exactly one of dword, qword or string (the value's type)".into()));
    }
    let data = match (r.dword, r.qword, r.string) {
        (Some(d), _, _) => Data::Dword(
            u32::try_from(*d.get_ref()).map_err(|_| (d.span().start, "dword must be 0 to 4294967295".to_string()))?,
        ),
        (_, Some(q), _) => Data::Qword(
            u64::try_from(*q.get_ref()).map_err(|_| (q.span().start, "qword must be 0 or more".to_string()))?,
        ),
        (_, _, Some(s)) => Data::Sz(s.into_inner()),
        _ => return Err((r.value.span().start, "[[registry]] needs a dword, qword or string".into())),
    };
    Ok(RegistryRule { hive, key: key.clone(), value: r.value.into_inner(), data })
}

/// Validates one `[[restore]]` rule; an error carries its byte position.
fn restore_rule(r: RawRestore) -> Result<RestoreRule, (usize, String)> {
    if r.from.get_ref() != "backups" {
        return Err((
            r.from.span().start,
            format!("[[restore]] from {:?}: the only source is \"backups\" (what earlier runs kept)", r.from.get_ref()),
        ));
    }
    let path = match r.path {
        None => None,
        Some(p) => Some(split_path(p.get_ref()).map_err(|m| (p.span().start, format!("[[restore]] {m}")))?),
    };
    if let Some(run) = &r.run {
        let id = run.get_ref();
        if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
            return Err((
                run.span().start,
                format!("[[restore]] run {id:?}: a run id, as in the backups' folder (letters, digits, '-', '_')"),
            ));
        }
    }
    Ok(RestoreRule { from: r.from.into_inner(), path, run: r.run.map(Spanned::into_inner) })
}

/// The largest profile accepted (it is carried inside the agent).
pub const MAX_LEN: usize = crate::formats::embed::MAX_PROFILE_LEN;

impl Profile {
    /// True when the profile changes registry hives or the BCD store
    /// (`[[service]]`, `[[registry]]`, `[finish] safe_mode`).
    pub fn changes_registry(&self) -> bool {
        !self.services.is_empty() || !self.registry.is_empty() || self.finish.safe_mode.is_some()
    }

    /// How many `[[delete]]`, `[[service]]`, `[[registry]]` and `[[restore]]` rules it has.
    pub fn rule_count(&self) -> usize {
        self.delete.len() + self.services.len() + self.registry.len() + self.restore.len()
    }

    /// Every action of the profile in words, one line each, in the order
    /// the agent takes them: deletions, services, registry values, Safe
    /// Mode, the unclean-journal policy, where reports go, what happens at
    /// the end. `rescue profile check`, `build` and `inspect` all show this
    /// list, so what a stick will do is never hidden.
    pub fn actions(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .restore
            .iter()
            .map(|r| {
                let what = match &r.path {
                    Some((dir, pattern)) if dir.is_empty() => pattern.clone(),
                    Some((dir, pattern)) => format!("{}\\{pattern}", dir.join("\\")),
                    None => String::from("every deleted file and changed hive"),
                };
                let run = r.run.as_ref().map(|id| format!(" of run {id}")).unwrap_or_default();
                format!("restore {what} from the backups{run} kept for this PC's volumes (found by serial number)")
            })
            .collect();
        out.extend(self.delete.iter().map(|r| {
            let mut a = format!("delete {}", r.path);
            if !r.header.is_empty() {
                a += &format!(" if it starts with {}", crate::util::hex::hex(&r.header).to_uppercase());
            }
            a + if r.backup { " (backed up first)" } else { " (no backup)" }
        }));
        for s in &self.services {
            out.push(format!(
                "service {}: Start = {} ({}) in every control set of SYSTEM",
                s.name,
                s.start.as_str(),
                s.start.value()
            ));
        }
        for r in &self.registry {
            let shown = crate::formats::registry::key::show(r.data.kind(), &r.data.bytes());
            let kind = match r.data {
                Data::Dword(_) => "dword",
                Data::Qword(_) => "qword",
                Data::Sz(_) => "string",
                Data::Binary(_) => "binary",
            };
            let value = if r.value.is_empty() { "(default)" } else { r.value.as_str() };
            out.push(format!("registry {}\\{} value {value:?} = {shown} ({kind})", r.hive.file(), r.key));
        }
        out.push(match self.finish.safe_mode {
            Some(SafeMode::Minimal) => "Safe Mode: next boot of each fixed Windows in Safe Mode (minimal)".into(),
            Some(SafeMode::Network) => "Safe Mode: next boot of each fixed Windows in Safe Mode with networking".into(),
            Some(SafeMode::Off) => "Safe Mode: off (each fixed Windows boots normally again)".into(),
            None => "Safe Mode: not changed".into(),
        });
        if self.bitlocker.when_locked == WhenLocked::SafeMode {
            let mode = match self.bitlocker.safe_mode {
                SafeMode::Network => "Safe Mode with networking",
                _ => "Safe Mode (minimal)",
            };
            out.push(format!(
                "BitLocker left locked: {mode} set on that disk's boot store; shown: {:?}",
                self.bitlocker.instructions
            ));
        } else {
            out.push("BitLocker left locked: the disk is left alone (FAILED)".into());
        }
        out.push(format!(
            "unclean journal: {}",
            match self.ntfs.unclean_journal {
                UncleanJournal::Replay =>
                    "replay (as Windows does at mount; a journal that cannot be replayed leaves the volume alone)",
                UncleanJournal::Refuse => "refuse (a volume Windows did not close cleanly is left alone)",
                UncleanJournal::Reset => "reset (emptied as ntfsfix does; Windows runs chkdsk at its next boot)",
            }
        ));
        out.push(match &self.report.url {
            Some(u) => format!(
                "report: to the stick and to {u} (HTTP PUT, with backups; every delivery within {} s)",
                self.report.deadline_seconds
            ),
            None => "report: to the stick".into(),
        });
        out.push(format!("when done: {}", self.finish.action.as_str()));
        out
    }

    /// Things that are valid but deserve a second look before a fleet runs
    /// them: a wildcard at the volume root, a rule that deletes registry hives.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.delete {
            if r.dir.is_empty() && glob::is_pattern(&r.pattern) {
                out.push(format!("rule {:?}: a wildcard at the volume root matches any file there", r.path));
            }
            let dir: Vec<String> = r.dir.iter().map(|d| d.to_ascii_lowercase()).collect();
            if dir.len() >= 3 && dir[..3] == ["windows", "system32", "config"] {
                out.push(format!(
                    "rule {:?} deletes from Windows\\System32\\config, where the registry hives live: \
                     a PC without them does not boot",
                    r.path
                ));
            }
        }
        out
    }
}

fn hint_for(msg: &str) -> &'static str {
    if msg.contains("unknown field") {
        "\n  remove or rename this key (see profiles/README.md for every key)"
    } else if msg.contains("unknown variant") {
        "\n  use one of the values listed"
    } else if msg.contains("missing field") {
        "\n  add the missing key"
    } else {
        ""
    }
}

/// The NTFS metadata files in a volume's root: no rule may name them.
const METADATA: [&str; 11] = [
    "$MFT", "$MFTMirr", "$LogFile", "$Volume", "$AttrDef", "$Bitmap", "$Boot", "$BadClus", "$Secure", "$UpCase",
    "$Extend",
];

/// Characters Windows forbids in file names (besides control characters).
const FORBIDDEN: &[char] = &['"', '<', '>', '|', ':'];

/// Splits a profile path into directory components and a last-component pattern.
fn split_path(path: &str) -> Result<(Vec<String>, String), String> {
    if path.starts_with(['\\', '/']) || path.as_bytes().get(1) == Some(&b':') {
        return Err(format!("path {path:?} must be relative to the volume root, without a drive letter or leading '\\' (e.g. 'Windows\\System32\\x.sys')"));
    }
    let parts: Vec<&str> = path.split(['\\', '/']).collect();
    let last = parts.len() - 1;
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() {
            return Err(format!("path {path:?} has an empty component (a doubled or trailing '\\')"));
        }
        if *p == "." || *p == ".." {
            return Err(format!("path {path:?} may not contain '.' or '..' components"));
        }
        if p.chars().any(|c| (c as u32) < 0x20) {
            return Err(format!(
                "path component {p:?} holds a control character: in double quotes, TOML reads \\f, \\t, \\n... \
                 as escapes; write Windows paths in single quotes, e.g. path = 'Windows\\foo.sys'"
            ));
        }
        if p.chars().any(|c| FORBIDDEN.contains(&c)) {
            return Err(format!("path component {p:?} holds a character Windows forbids in names (\" < > | :)"));
        }
        if p.ends_with([' ', '.']) {
            return Err(format!("path component {p:?} ends with a space or a dot: Windows cannot hold such a name"));
        }
        let stem = p.split('.').next().unwrap_or(p).to_ascii_uppercase();
        let reserved = ["CON", "PRN", "AUX", "NUL"].contains(&stem.as_str())
            || (stem.len() == 4
                && (stem.starts_with("COM") || stem.starts_with("LPT"))
                && stem.as_bytes()[3].is_ascii_digit()
                && stem.as_bytes()[3] != b'0');
        if reserved {
            return Err(format!("path component {p:?} is a reserved device name in Windows (CON, NUL, COM1, ...)"));
        }
        if i == 0 && METADATA.iter().any(|m| m.eq_ignore_ascii_case(p)) {
            return Err(format!(
                "path {path:?} reaches NTFS metadata ({p}): rules may not touch the volume's own structures"
            ));
        }
        if p.contains(['[', ']']) {
            return Err(format!("path component {p:?}: character classes [..] are not supported; use '*' or '?'"));
        }
        if i < last && glob::is_pattern(p) {
            return Err(format!("path {path:?}: wildcards are allowed only in the last component, not in {p:?}"));
        }
        if p.len() > 255 {
            return Err(format!("path component {p:?} is longer than 255 characters"));
        }
    }
    let dir = parts[..last].iter().map(|s| s.to_string()).collect();
    Ok((dir, parts[last].to_string()))
}

/// Parses a hex byte string such as `"AAAAAAAA01002301"` (spaces allowed between bytes).
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    if digits.is_empty() {
        return Err(
            "`header` is empty: give the file's first bytes in hex, e.g. \"AAAAAAAA01002301\", or remove the key"
                .into(),
        );
    }
    if let Some(bad) = digits.iter().find(|b| !b.is_ascii_hexdigit()) {
        return Err(format!("`header` must be hex digits (0-9, A-F); found {:?}", *bad as char));
    }
    if !digits.len().is_multiple_of(2) {
        return Err(format!("`header` has an odd number of hex digits ({}): each byte takes two", digits.len()));
    }
    if digits.len() / 2 > MAX_HEADER {
        return Err(format!("`header` is longer than {MAX_HEADER} bytes"));
    }
    let nib = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
    Ok(digits.chunks_exact(2).map(|c| nib(c[0]) << 4 | nib(c[1])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CS: &str = r#"name = "crowdstrike-c00000291"
description = "Remove the faulty CrowdStrike channel file 291 (July 2024)"

[[delete]]
path = 'Windows\System32\drivers\CrowdStrike\C-00000291*.sys'
header = "AAAAAAAA01002301"
backup = true

[ntfs]
unclean_journal = "reset"

[finish]
action = "reboot"
"#;

    #[test]
    fn crowdstrike_profile() {
        let p = Profile::parse(CS).unwrap();
        assert_eq!(p.name, "crowdstrike-c00000291");
        assert_eq!(p.delete[0].dir, ["Windows", "System32", "drivers", "CrowdStrike"]);
        assert_eq!(p.delete[0].pattern, "C-00000291*.sys");
        assert_eq!(p.delete[0].header, [0xAA, 0xAA, 0xAA, 0xAA, 1, 0, 0x23, 1]);
        assert_eq!(p.ntfs.unclean_journal, UncleanJournal::Reset);
        assert_eq!(p.finish.action, FinishAction::Reboot);
    }

    fn err(text: &str) -> ProfileError {
        Profile::parse(text).unwrap_err()
    }

    #[test]
    fn paths_windows_cannot_hold_or_metadata_are_refused_all_at_once() {
        let rule = |p: &str| format!("[[delete]]\npath = '{p}'\n");
        let text = format!(
            "name = \"x\"\n{}{}{}{}{}{}",
            rule("Windows\\CON"),
            rule("Windows\\x.sys."),
            rule("$MFT"),
            rule("$Extend\\$Quota"),
            rule("Windows\\lpt1.txt"),
            rule("ok\\fine.sys")
        );
        let errors = Profile::parse_all(&text).unwrap_err();
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors[0].message.contains("reserved device name") && errors[0].line == 3, "{errors:?}");
        assert!(errors[1].message.contains("ends with a space or a dot"));
        assert!(errors[2].message.contains("metadata") && errors[3].message.contains("metadata"));
        let quoted = err("name = \"x\"\n[[delete]]\npath = \"Windows\\foo.sys\"\n");
        assert!(quoted.message.contains("single quotes"), "{quoted}");
        assert!(Profile::parse("name = \"x\"\n[[delete]]\npath = '$Recycle.Bin\\x.sys'\n").is_ok());
        let big = format!("name = \"x\"\ndescription = \"{}\"\n{}", "a".repeat(MAX_LEN), rule("a.sys"));
        assert!(Profile::parse(&big).unwrap_err().message.contains("at most"));
    }

    #[test]
    fn bitlocker_section_is_checked() {
        let base = "name = \"x\"\n[[delete]]\npath = 'a.sys'\n[bitlocker]\n";
        let p = Profile::parse(base).unwrap();
        assert_eq!(p.bitlocker, BitLockerOptions::default());
        let p = Profile::parse(&format!(
            "{base}when_locked = \"safe_mode\"\nsafe_mode = \"network\"\ninstructions = \"Call 555\"\n"
        ))
        .unwrap();
        assert_eq!(p.bitlocker.when_locked, WhenLocked::SafeMode);
        assert_eq!(p.bitlocker.safe_mode, SafeMode::Network);
        assert_eq!(p.bitlocker.instructions, "Call 555");
        for (bad, line) in [
            ("when_locked = \"reboot\"\n", 5),
            ("safe_mode = \"off\"\n", 5),
            ("instructions = \"\"\n", 5),
            ("instructions = \"a\\nb\"\n", 5),
        ] {
            let e = Profile::parse(&format!("{base}{bad}")).unwrap_err();
            assert_eq!(e.line, line, "{bad}: {e}");
        }
    }

    #[test]
    fn report_url_is_checked() {
        let with = |u: &str| format!("name = \"x\"\n[[delete]]\npath = 'a.sys'\n[report]\nurl = \"{u}\"\n");
        let p = Profile::parse(&with("http://10.0.2.100:8080/rescue")).unwrap();
        assert_eq!(p.report.url.as_deref(), Some("http://10.0.2.100:8080/rescue"));
        for good in ["http://rescue-1.example.internal/r%20x", "http://198.18.0.1:65535", "http://h:1/"] {
            assert!(Profile::parse(&with(good)).is_ok(), "{good}");
        }
        for bad in [
            "https://x/y",
            "ftp://x",
            "http:///path",
            "http://x/a b",
            "http://x/?q=1",
            "http://user:pw@x/r",
            "http://x:0/r",
            "http://x:99999/r",
            "http://x:-1/r",
            "http://x:abc/r",
            "http://:80/r",
            "http://x/r%0d%0aHost:%20evil",
            "http://x/r%zz",
            "http://[::1]/r",
            "http://a_b/r",
        ] {
            let e = Profile::parse(&with(bad)).unwrap_err();
            assert!(e.line == 5 && e.message.contains("report url"), "{bad}: {e}");
        }
    }

    #[test]
    fn warnings_for_root_wildcards_and_hives() {
        let p = Profile::parse(
            "name = \"x\"\n[[delete]]\npath = '*.sys'\n[[delete]]\npath = 'Windows\\System32\\config\\SAM'\n",
        )
        .unwrap();
        let w = p.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("volume root") && w[1].contains("registry hives"));
    }

    #[test]
    fn errors_carry_position() {
        let e = err(&CS.replace("backup = true", "backup = true\ncolour = 1"));
        assert_eq!((e.line, e.column), (8, 1), "{e}");
        assert!(e.message.contains("colour"), "{e}");
        let e = err(&CS.replace("AAAAAAAA01002301", "AAAAAAAA0100230"));
        assert_eq!(e.line, 6, "{e}");
        assert!(e.message.contains("odd"), "{e}");
        let e = err(&CS.replace("AAAAAAAA01002301", "AAAAAAAA0100230Z"));
        assert!(e.message.contains("hex"), "{e}");
        let e = err(&CS.replace("drivers\\CrowdStrike", "drivers\\Crowd*"));
        assert_eq!((e.line, e.column), (5, 8), "{e}");
        assert!(e.message.contains("last component"), "{e}");
        let e = err(&CS.replace("\"reset\"", "\"fix\""));
        assert_eq!(e.line, 10, "{e}");
        let e = err(&CS.replace("name = \"crowdstrike-c00000291\"\n", ""));
        assert!(e.message.contains("name"), "{e}");
        let e = err("name = \"x\"\n[[delete]]\npath = \"a\\\\..\\\\b\"\n");
        assert!(e.message.contains(".."), "{e}");
        let e = err("name = \"x\"\n");
        assert!(e.message.contains("[[delete]]"), "{e}");
        let e = err("name = \"x\"\n[[delete]\n");
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn defaults() {
        let p = Profile::parse("name = \"x\"\n[[delete]]\npath = 'a\\b.txt'\n").unwrap();
        assert!(p.delete[0].backup);
        assert!(p.delete[0].header.is_empty());
        assert_eq!(p.ntfs.unclean_journal, UncleanJournal::Replay);
        assert_eq!(p.finish.action, FinishAction::Reboot);
    }
}
