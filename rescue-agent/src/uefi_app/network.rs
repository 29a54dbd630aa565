//! Delivery over HTTP for a network-booted agent (PXE or UEFI HTTP Boot):
//! the report and the backups go to the profile's `[report] url` with HTTP
//! PUT, through the firmware's own network stack (DHCP via Ip4Config2, then
//! EFI_HTTP_PROTOCOL). Nothing here decides what to send; it only sends.

use super::console::Clock;
use super::disks::{self, open};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::time::Duration;
use rescue_engine::formats::dhcp;
use uefi::boot::{self, EventType, Tpl};
use uefi::proto::loaded_image::LoadedImage;
use uefi::proto::network::http::{Http, HttpBinding};
use uefi::proto::network::ip4config2::Ip4Config2;
use uefi::proto::network::pxe::BaseCode;
use uefi::{Event, Handle, Status};
use uefi_raw::protocol::network::http::{
    HttpAccessPoint, HttpConfigData, HttpHeader, HttpMessage, HttpMethod, HttpRequestData, HttpResponseData,
    HttpStatusCode, HttpToken, HttpV4AccessPoint, HttpVersion,
};
use uefi_raw::protocol::network::ip4_config2::{Ip4Config2DataType, Ip4Config2Policy};
use uefi_raw::Ipv4Address;

/// EFI_CONNECTION_FIN (UEFI spec, Appendix D): the peer closed the connection.
const CONNECTION_FIN: Status = Status(Status::ERROR_BIT | 104);
/// EFI_CONNECTION_RESET: the peer reset the connection.
const CONNECTION_RESET: Status = Status(Status::ERROR_BIT | 105);
/// EFI_CONNECTION_REFUSED: the peer refused the connection.
const CONNECTION_REFUSED: Status = Status(Status::ERROR_BIT | 106);

/// Longest wait for the request line and headers to go out, or for the answer.
const PHASE: u64 = 20_000;
/// A body may take this long per MiB on top of [`PHASE`] (a slow link still delivers).
const PER_MIB: u64 = 16_000;
/// Attempts per file before it counts as not delivered (5xx answers and
/// network errors; a 4xx answer is final).
pub const ATTEMPTS: u32 = 3;

/// A firmware status in words (never a raw number on screen).
fn words(s: Status) -> String {
    let w = match s.0 & !Status::ERROR_BIT {
        3 => "the network stack does not support this",
        6 => "the network is not ready",
        7 => "a device error",
        9 => "out of memory",
        15 => "access denied",
        16 => "no answer from the server",
        17 => "no IPv4 address (DHCP gave none)",
        18 => "timed out",
        22 => "an ICMP error came back",
        24 => "an HTTP protocol error",
        35 => "an HTTP error",
        100 => "the network is unreachable",
        101 => "the server is unreachable",
        102 => "the protocol is unreachable",
        103 => "the server's port is closed",
        104 => "the server closed the connection",
        105 => "the server reset the connection",
        106 => "the server refused the connection",
        _ => return format!("firmware status {:#x}", s.0 & !Status::ERROR_BIT),
    };
    String::from(w)
}

/// The moment an exchange must end, on the agent's clock.
#[derive(Clone, Copy)]
struct Deadline {
    clock: Clock,
    end_ms: u64,
}

impl Deadline {
    /// `ms` from now on `clock`.
    fn after(clock: Clock, ms: u64) -> Deadline {
        Deadline { clock, end_ms: clock.ms() + ms }
    }
    /// Milliseconds left (0 once passed).
    fn left(&self) -> u64 {
        self.end_ms.saturating_sub(self.clock.ms())
    }
}

/// The network interface the agent was booted from (else the first with an
/// HTTP stack), with an address: the one the firmware's boot DHCP got
/// (kept after UEFI HTTP Boot, taken over from PXE), else from DHCP.
fn interface() -> Result<Handle, String> {
    let nics = boot::find_handles::<HttpBinding>().map_err(|_| String::from("no network interface with HTTP"))?;
    let booted = disks::boot_device_path();
    let from_boot =
        |&h: &Handle| booted.as_deref().zip(disks::path_bytes(h)).is_some_and(|(b, nic)| b.starts_with(&nic));
    let nic = nics.iter().copied().find(from_boot).or(nics.first().copied()).ok_or("no network interface with HTTP")?;
    let mut ip = Ip4Config2::new(nic).map_err(|e| format!("no IPv4 configuration: {}", words(e.status())))?;
    if ip.get_interface_info().is_ok_and(|i| i.station_addr == Ipv4Address::default()) {
        if let Some(lease) = pxe_lease() {
            take_lease(&mut ip, &lease);
        }
    }
    ip.ifup().map_err(|e| format!("no address from DHCP: {}", words(e.status())))?;
    Ok(nic)
}

/// The lease PXE's boot DHCP got, when the agent was started by PXE (its
/// device holds the PXE Base Code, which keeps the DHCP reply).
fn pxe_lease() -> Option<dhcp::Lease> {
    let image = open::<LoadedImage>(boot::image_handle())?;
    let pxe = open::<BaseCode>(image.device()?)?;
    let mode = pxe.mode();
    if !mode.dhcp_ack_received() || mode.using_ipv6() {
        return None;
    }
    let packet: &[u8; 1472] = mode.dhcp_ack().as_ref();
    dhcp::lease(packet)
}

/// Configures `lease` as the interface's static address (and default route).
/// Best effort: on any refusal the caller falls back to DHCP.
fn take_lease(ip: &mut Ip4Config2, lease: &dhcp::Lease) {
    if ip.set_policy(Ip4Config2Policy::STATIC).is_err() {
        return;
    }
    let mut manual = [0u8; 8];
    manual[..4].copy_from_slice(&lease.address);
    manual[4..].copy_from_slice(&lease.mask);
    if ip.set_data(Ip4Config2DataType::MANUAL_ADDRESS, &mut manual).is_err() {
        let _ = ip.set_policy(Ip4Config2Policy::DHCP);
        return;
    }
    if let Some(mut router) = lease.router {
        let _ = ip.set_data(Ip4Config2DataType::GATEWAY, &mut router);
    }
}

/// A token for `message` with its own completion event (the driver signals
/// it when the token completes; some completions are reported only so).
fn token(message: &mut HttpMessage) -> Result<(HttpToken, Event), String> {
    // SAFETY: a plain event without a notification function.
    let event = unsafe { boot::create_event(EventType::empty(), Tpl::CALLBACK, None, None) }
        .map_err(|e| format!("no event: {}", words(e.status())))?;
    Ok((HttpToken { event: event.as_ptr(), status: Status::NOT_READY, message }, event))
}

/// Polls `http` until `token` completes (its status set or its event
/// signalled) or `limit_ms` pass on `clock`; closes the token's event.
/// A completion by the server closing or resetting the connection is not an
/// error here: whether the answer had arrived by then is the caller's to judge.
fn wait(http: &mut Http, token: &mut HttpToken, event: Event, clock: Clock, limit_ms: u64) -> Result<Status, String> {
    let end = clock.ms() + limit_ms;
    let mut outcome = Err(String::from("timed out"));
    loop {
        let _ = http.poll();
        let signalled = boot::check_event(&event).unwrap_or(false);
        if token.status != Status::NOT_READY || signalled {
            outcome = match token.status {
                s @ (Status::SUCCESS | Status::HTTP_ERROR | CONNECTION_FIN | CONNECTION_RESET) => Ok(s),
                s => Err(words(s)),
            };
            break;
        }
        if clock.ms() >= end {
            break;
        }
        boot::stall(Duration::from_millis(2));
    }
    if outcome.is_err() && token.status == Status::NOT_READY {
        let _ = http.cancel(token);
    }
    let _ = boot::close_event(event);
    outcome
}

/// Frees the response headers the driver allocated.
fn free_headers(msg: &HttpMessage) {
    if msg.header.is_null() {
        return;
    }
    for i in 0..msg.header_count {
        // SAFETY: the driver wrote `header_count` entries, each with two
        // strings from the pool; each is freed once.
        unsafe {
            let h = &*msg.header.add(i);
            for field in [h.field_name, h.field_value] {
                if let Some(p) = core::ptr::NonNull::new(field.cast_mut()) {
                    let _ = boot::free_pool(p);
                }
            }
        }
    }
    if let Some(p) = core::ptr::NonNull::new(msg.header.cast::<u8>()) {
        // SAFETY: the array came from the pool, as the UEFI specification says.
        let _ = unsafe { boot::free_pool(p) };
    }
}

/// Runs `f` on a fresh HTTP child of `nic`, configured for IPv4 and
/// HTTP/1.1; the child is destroyed after.
fn on_child<T>(nic: Handle, f: impl FnOnce(&mut Http) -> Result<T, String>) -> Result<T, String> {
    let mut binding = open::<HttpBinding>(nic).ok_or("the HTTP service is gone")?;
    let child = binding.create_child().map_err(|e| format!("HTTP: {}", words(e.status())))?;
    let result = (|| {
        let mut http = open::<Http>(child).ok_or("HTTP protocol missing")?;
        let mut ip4 = HttpV4AccessPoint { use_default_addr: true.into(), ..Default::default() };
        let config = HttpConfigData {
            http_version: HttpVersion::HTTP_VERSION_11,
            time_out_millisec: 10_000,
            local_addr_is_ipv6: false.into(),
            access_point: HttpAccessPoint { ipv4_node: &mut ip4 },
        };
        http.configure(&config).map_err(|e| format!("HTTP configure: {}", words(e.status())))?;
        f(&mut http)
    })();
    let _ = binding.destroy_child(child);
    result
}

/// Sends the request line and headers of `method` to `url` (with `Host`,
/// `Connection: close` and `more` headers); waits at most `limit_ms`.
fn send_head(
    http: &mut Http,
    method: HttpMethod,
    url: &str,
    more: &[HttpHeader],
    clock: Clock,
    limit_ms: u64,
) -> Result<(), String> {
    let host = url.split('/').nth(2).ok_or("the URL names no host")?;
    let url16 = uefi::CString16::try_from(url).map_err(|_| String::from("the URL is not UCS-2"))?;
    let host_z = format!("{host}\0");
    let mut headers = alloc::vec![
        HttpHeader { field_name: c"Host".as_ptr().cast(), field_value: host_z.as_ptr() },
        // One request per connection: a server that keeps connections
        // open by default (nginx) then ends the answer by closing.
        HttpHeader { field_name: c"Connection".as_ptr().cast(), field_value: c"close".as_ptr().cast() },
    ];
    headers.extend(more.iter().map(|h| HttpHeader { field_name: h.field_name, field_value: h.field_value }));
    let request = HttpRequestData { method, url: url16.as_ptr().cast() };
    let mut tx = HttpMessage::default();
    tx.data.request = &request;
    tx.header_count = headers.len();
    tx.header = headers.as_mut_ptr();
    let (mut tx_token, ev) = token(&mut tx)?;
    http.request(&mut tx_token).map_err(|e| match e.status() {
        // Refused or reset while connecting: nothing serves that port.
        CONNECTION_RESET | CONNECTION_REFUSED => format!("nothing answers at {host} (the connection was refused)"),
        s => format!("HTTP request: {}", words(s)),
    })?;
    // A close while sending (a server that answered early) still leaves its answer to read.
    let _ended = wait(http, &mut tx_token, ev, clock, limit_ms).map_err(|e| format!("sending the headers: {e}"))?;
    Ok(())
}

/// One HTTP PUT of `body` to `url` on a fresh HTTP child; the response's status code.
fn put_once(nic: Handle, url: &str, body: &[u8], deadline: Deadline) -> Result<u16, String> {
    let phase = |extra: u64| (PHASE + extra).min(deadline.left()).max(1);
    on_child(nic, |http| {
        let length_z = format!("{}\0", body.len());
        let more = [
            HttpHeader { field_name: c"Content-Length".as_ptr().cast(), field_value: length_z.as_ptr() },
            HttpHeader {
                field_name: c"Content-Type".as_ptr().cast(),
                field_value: c"application/octet-stream".as_ptr().cast(),
            },
        ];
        let clock = deadline.clock;
        // EDK2's HTTP driver sends the request line and headers, then the
        // body as a second message whose request data is NULL (UEFI spec,
        // EFI_HTTP_PROTOCOL.Request()).
        send_head(http, HttpMethod::PUT, url, &more, clock, phase(0))?;
        let mut payload = body.to_vec();
        let mut body_msg = HttpMessage::default();
        body_msg.data.request = core::ptr::null();
        body_msg.body_length = payload.len();
        body_msg.body = payload.as_mut_ptr().cast::<c_void>();
        if !payload.is_empty() {
            let (mut body_token, ev) = token(&mut body_msg)?;
            http.request(&mut body_token).map_err(|e| format!("HTTP request body: {}", words(e.status())))?;
            let extra = (body.len() as u64 * PER_MIB) >> 20;
            let _ended =
                wait(http, &mut body_token, ev, clock, phase(extra)).map_err(|e| format!("sending the body: {e}"))?;
        }
        // Only the status line and headers are asked for (no body buffer):
        // EDK2's driver then ends the exchange once the headers are in,
        // instead of reading on into a close it may already have seen.
        let (code, _) = receive_head(http, &mut [], clock, phase(0))?;
        Ok(code)
    })
}

/// Receives the status line and headers of the answer, and the first part
/// of its body into `buf` (empty: none asked for): the status code and,
/// when the answer says it, its Content-Length; plus the body bytes received.
fn receive_head(
    http: &mut Http,
    buf: &mut [u8],
    clock: Clock,
    limit_ms: u64,
) -> Result<(u16, Option<(u64, usize)>), String> {
    let mut status = HttpResponseData { status_code: HttpStatusCode::STATUS_UNSUPPORTED };
    let mut rx = HttpMessage::default();
    rx.data.response = &mut status;
    if !buf.is_empty() {
        rx.body_length = buf.len();
        rx.body = buf.as_mut_ptr().cast::<c_void>();
    }
    let (mut rx_token, ev) = token(&mut rx)?;
    let ended = match http.response(&mut rx_token) {
        Ok(()) => wait(http, &mut rx_token, ev, clock, limit_ms),
        // The driver may read the answer within the call and report the
        // close that followed it as the call's error.
        Err(e) => {
            let _ = boot::close_event(ev);
            Ok(e.status())
        }
    };
    let length = content_length(&rx);
    free_headers(&rx);
    let ended = ended.map_err(|e| format!("waiting for the answer: {e}"))?;
    // A status line that arrived is the server's answer, whatever
    // happened to the connection after it (a close, a reset).
    if status.status_code == HttpStatusCode::STATUS_UNSUPPORTED {
        return Err(match ended {
            Status::SUCCESS => String::from("the server's answer had no status this agent knows"),
            e => format!("no answer: {}", words(e)),
        });
    }
    let got = if buf.is_empty() { 0 } else { rx.body_length.min(buf.len()) };
    Ok((status_number(status.status_code), length.map(|l| (l, got))))
}

/// The Content-Length header of a received message, when it has a valid one.
fn content_length(msg: &HttpMessage) -> Option<u64> {
    if msg.header.is_null() {
        return None;
    }
    (0..msg.header_count).find_map(|i| {
        // SAFETY: the driver wrote `header_count` entries of NUL-terminated ASCII strings.
        let (name, value) = unsafe {
            let h = &*msg.header.add(i);
            if h.field_name.is_null() || h.field_value.is_null() {
                return None;
            }
            (core::ffi::CStr::from_ptr(h.field_name.cast()), core::ffi::CStr::from_ptr(h.field_value.cast()))
        };
        let name = name.to_str().ok()?;
        name.eq_ignore_ascii_case("Content-Length").then(|| value.to_str().ok()?.trim().parse().ok()).flatten()
    })
}

/// Largest piece of a body read at a time.
const CHUNK: usize = 64 * 1024;

/// One HTTP GET of `url` on a fresh HTTP child: the status code and, for a
/// 200, the body (its Content-Length at most `max` bytes, else refused).
fn get_once(nic: Handle, url: &str, max: u64, deadline: Deadline) -> Result<(u16, Vec<u8>), String> {
    let phase = |extra: u64| (PHASE + extra).min(deadline.left()).max(1);
    on_child(nic, |http| {
        let clock = deadline.clock;
        send_head(http, HttpMethod::GET, url, &[], clock, phase(0))?;
        let mut buf = alloc::vec![0u8; CHUNK];
        let (code, length) = receive_head(http, &mut buf, clock, phase(0))?;
        if code != 200 {
            return Ok((code, Vec::new()));
        }
        let (length, first) = length.ok_or("the server's answer has no Content-Length")?;
        if length > max {
            return Err(format!("the server offers {length} bytes, more than the {max} expected"));
        }
        let mut body = Vec::new();
        body.try_reserve_exact(length as usize).map_err(|_| String::from("out of memory for the download"))?;
        body.extend_from_slice(&buf[..first.min(length as usize)]);
        while (body.len() as u64) < length {
            let want = CHUNK.min(length as usize - body.len());
            let mut more = HttpMessage::default();
            more.data.response = core::ptr::null_mut();
            more.body_length = want;
            more.body = buf.as_mut_ptr().cast::<c_void>();
            let (mut t, ev) = token(&mut more)?;
            http.response(&mut t).map_err(|e| format!("reading the body: {}", words(e.status())))?;
            let extra = (want as u64 * PER_MIB) >> 20;
            let _ended = wait(http, &mut t, ev, clock, phase(extra)).map_err(|e| format!("reading the body: {e}"))?;
            let got = more.body_length.min(want);
            if got == 0 {
                return Err(format!("the server stopped after {} of {length} bytes", body.len()));
            }
            body.extend_from_slice(&buf[..got]);
        }
        Ok((code, body))
    })
}

/// HTTP status codes in the order of EFI_HTTP_STATUS_CODE (UEFI spec
/// 2.10, 29.6.6), from its value 1; 0 is "unsupported".
const STATUS_CODES: [u16; 42] = [
    100, 101, 200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303, 304, 305, 307, 400, 401, 402, 403, 404, 405, 406,
    407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 500, 501, 502, 503, 504, 505, 308, 429,
];

/// The numeric HTTP status (0 when the firmware does not know it).
fn status_number(code: HttpStatusCode) -> u16 {
    (code.0 as usize).checked_sub(1).and_then(|i| STATUS_CODES.get(i)).copied().unwrap_or(0)
}

/// Sends files to a base URL within one time budget for all of them;
/// remembers what could not be delivered.
pub struct Uploader {
    base: String,
    nic: Result<Handle, String>,
    clock: Clock,
    /// Milliseconds of delivery time left for the run.
    budget_ms: u64,
    /// `(relative path, why)` of every file not delivered.
    pub failed: Vec<(String, String)>,
    /// How many files were delivered.
    pub sent: usize,
    /// `(URL, why the first try failed)` of every file that took more than one try.
    pub retried: Vec<(String, String)>,
    /// URLs where the server already had a file (HTTP 204 to a first
    /// attempt): something else was there, and the server replaced it.
    pub replaced: Vec<String>,
}

impl Uploader {
    /// An uploader to `base` (no trailing `/`), with the network brought up;
    /// all its deliveries together may take `budget_s` seconds.
    pub fn new(base: &str, clock: Clock, budget_s: u32) -> Uploader {
        let base = String::from(base.trim_end_matches('/'));
        let budget_ms = u64::from(budget_s) * 1000;
        Uploader {
            base,
            nic: interface(),
            clock,
            budget_ms,
            failed: Vec::new(),
            sent: 0,
            retried: Vec::new(),
            replaced: Vec::new(),
        }
    }

    /// The URL a relative path goes to.
    pub fn url(&self, rel: &str) -> String {
        format!("{}/{rel}", self.base)
    }

    /// Seconds of delivery time left.
    pub fn seconds_left(&self) -> u64 {
        self.budget_ms / 1000
    }

    /// PUTs `body` to `<base>/<rel>`: up to [`ATTEMPTS`] times with a
    /// growing pause, within the budget left (`always_once`: one attempt of
    /// at most [`PHASE`] per step even when none is left, for the report).
    /// Any 2xx is success; a 4xx is the server's final refusal; a 204 to a
    /// first attempt is noted in [`Uploader::replaced`]. Returns the
    /// status code, or why not.
    pub fn put(&mut self, rel: &str, body: &[u8], always_once: bool) -> Result<u16, String> {
        let started = self.clock.ms();
        let result = self.try_put(rel, body, always_once);
        self.budget_ms = self.budget_ms.saturating_sub(self.clock.ms().saturating_sub(started));
        match &result {
            Ok(_) => self.sent += 1,
            Err(why) => self.failed.push((String::from(rel), why.clone())),
        }
        result
    }

    /// GETs `<base>/<rel>`, at most `max` bytes, within the budget left:
    /// the body of a 200; `None` for a 404; an error for anything else.
    pub fn get(&mut self, rel: &str, max: u64) -> Result<Option<Vec<u8>>, String> {
        let nic = self.nic.clone()?;
        let url = self.url(rel);
        let started = self.clock.ms();
        let deadline = Deadline::after(self.clock, self.budget_ms.max(PHASE));
        let got = get_once(nic, &url, max, deadline);
        self.budget_ms = self.budget_ms.saturating_sub(self.clock.ms().saturating_sub(started));
        match got.map_err(|e| format!("{url}: {e}"))? {
            (200, body) => Ok(Some(body)),
            (404, _) => Ok(None),
            (code, _) => Err(format!("{url}: the server answered HTTP {code}")),
        }
    }

    fn try_put(&mut self, rel: &str, body: &[u8], always_once: bool) -> Result<u16, String> {
        let nic = self.nic.clone()?;
        let url = self.url(rel);
        let budget = if self.budget_ms == 0 && always_once { PHASE } else { self.budget_ms };
        let deadline = Deadline::after(self.clock, budget);
        let mut why = String::from("the time for deliveries had run out");
        for attempt in 0..ATTEMPTS {
            if deadline.left() == 0 {
                break;
            }
            if attempt == 1 {
                self.retried.push((url.clone(), why.clone()));
            }
            match put_once(nic, &url, body, deadline) {
                Ok(204) if attempt == 0 => {
                    // Run ids are unique, so a file already there is someone
                    // else's (a retry's 204 is our own earlier copy).
                    self.replaced.push(url);
                    return Ok(204);
                }
                Ok(code @ 200..=299) => return Ok(code),
                Ok(code @ 400..=499) => return Err(format!("refused by the server (HTTP {code})")),
                Ok(0) => why = String::from("the server answered with a status this agent does not know"),
                Ok(code) => why = format!("the server answered HTTP {code}"),
                Err(e) => why = e,
            }
            let pause = 500u64 << attempt;
            if attempt + 1 < ATTEMPTS && deadline.left() > pause {
                boot::stall(Duration::from_millis(pause));
            }
        }
        Err(why)
    }
}
