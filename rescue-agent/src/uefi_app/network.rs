//! Delivery over HTTP for a network-booted agent (PXE or UEFI HTTP Boot):
//! the report and the backups go to the profile's `[report] url` with HTTP
//! PUT, through the firmware's own network stack (DHCP via Ip4Config2, then
//! EFI_HTTP_PROTOCOL). Nothing here decides what to send; it only sends.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::time::Duration;
use uefi::boot::{self, EventType, OpenProtocolAttributes, OpenProtocolParams, ScopedProtocol, Tpl};
use uefi::proto::network::http::{Http, HttpBinding};
use uefi::proto::network::ip4config2::Ip4Config2;
use uefi::{Event, Handle, Status};
use uefi_raw::protocol::network::http::{
    HttpAccessPoint, HttpConfigData, HttpHeader, HttpMessage, HttpMethod, HttpRequestData, HttpResponseData,
    HttpStatusCode, HttpToken, HttpV4AccessPoint, HttpVersion,
};

/// EFI_CONNECTION_FIN (UEFI spec, Appendix D): the peer closed the connection.
const CONNECTION_FIN: Status = Status(Status::ERROR_BIT | 104);

/// How long one request or response may take.
const TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts per file before it counts as not delivered.
pub const ATTEMPTS: u32 = 3;

fn open<P: uefi::proto::ProtocolPointer + ?Sized>(h: Handle) -> Option<ScopedProtocol<P>> {
    let params = OpenProtocolParams { handle: h, agent: boot::image_handle(), controller: None };
    // SAFETY: GetProtocol leaves the drivers bound; the protocol stays valid
    // while boot services run, and we drop it before the handle goes away.
    unsafe { boot::open_protocol::<P>(params, OpenProtocolAttributes::GetProtocol) }.ok()
}

/// The first network interface with an HTTP stack, brought up with DHCP.
fn interface() -> Result<Handle, String> {
    let nics = boot::find_handles::<HttpBinding>().map_err(|_| String::from("no network interface with HTTP"))?;
    let nic = *nics.first().ok_or("no network interface with HTTP")?;
    let mut ip = Ip4Config2::new(nic).map_err(|e| format!("no IPv4 configuration: {e:?}"))?;
    ip.ifup().map_err(|e| format!("no address from DHCP: {e:?}"))?;
    Ok(nic)
}

/// A token for `message` with its own completion event (the driver signals
/// it when the token completes; some completions are reported only so).
fn token(message: &mut HttpMessage) -> Result<(HttpToken, Event), String> {
    // SAFETY: a plain event without a notification function.
    let event = unsafe { boot::create_event(EventType::empty(), Tpl::CALLBACK, None, None) }
        .map_err(|e| format!("no event: {e:?}"))?;
    Ok((HttpToken { event: event.as_ptr(), status: Status::NOT_READY, message }, event))
}

/// Polls `http` until `token` completes (its status set or its event
/// signalled) or [`TIMEOUT`] passes; closes the token's event.
fn wait(http: &mut Http, token: &mut HttpToken, event: Event) -> Result<(), String> {
    let mut waited = Duration::ZERO;
    let mut outcome = Err(String::from("timed out"));
    while waited <= TIMEOUT {
        let _ = http.poll();
        let signalled = boot::check_event(&event).unwrap_or(false);
        if token.status != Status::NOT_READY || signalled {
            outcome = match token.status {
                // A server that closes after its answer ("Connection: close")
                // ends the exchange with FIN: the answer has been read.
                Status::SUCCESS | Status::HTTP_ERROR | CONNECTION_FIN => Ok(()),
                s => Err(format!("{s:?}")),
            };
            break;
        }
        boot::stall(Duration::from_millis(2));
        waited += Duration::from_millis(2);
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

/// One HTTP PUT of `body` to `url` on a fresh HTTP child; the response's status code.
fn put_once(nic: Handle, url: &str, body: &[u8]) -> Result<u16, String> {
    let mut binding = open::<HttpBinding>(nic).ok_or("the HTTP service is gone")?;
    let child = binding.create_child().map_err(|e| format!("HTTP: {e:?}"))?;
    let result = (|| {
        let mut http = open::<Http>(child).ok_or("HTTP protocol missing")?;
        let mut ip4 = HttpV4AccessPoint { use_default_addr: true.into(), ..Default::default() };
        let config = HttpConfigData {
            http_version: HttpVersion::HTTP_VERSION_11,
            time_out_millisec: 10_000,
            local_addr_is_ipv6: false.into(),
            access_point: HttpAccessPoint { ipv4_node: &mut ip4 },
        };
        http.configure(&config).map_err(|e| format!("HTTP configure: {e:?}"))?;

        let host = url.split('/').nth(2).ok_or("the URL names no host")?;
        let url16 = uefi::CString16::try_from(url).map_err(|_| String::from("the URL is not UCS-2"))?;
        let host_z = format!("{host}\0");
        let length_z = format!("{}\0", body.len());
        let mut headers = [
            HttpHeader { field_name: c"Host".as_ptr().cast(), field_value: host_z.as_ptr() },
            HttpHeader { field_name: c"Content-Length".as_ptr().cast(), field_value: length_z.as_ptr() },
            HttpHeader {
                field_name: c"Content-Type".as_ptr().cast(),
                field_value: c"application/octet-stream".as_ptr().cast(),
            },
        ];
        let request = HttpRequestData { method: HttpMethod::PUT, url: url16.as_ptr().cast() };
        // EDK2's HTTP driver sends the request line and headers, then the
        // body as a second message whose request data is NULL (UEFI spec,
        // EFI_HTTP_PROTOCOL.Request()).
        let mut tx = HttpMessage::default();
        tx.data.request = &request;
        tx.header_count = headers.len();
        tx.header = headers.as_mut_ptr();
        let (mut tx_token, ev) = token(&mut tx)?;
        http.request(&mut tx_token).map_err(|e| format!("HTTP request: {e:?}"))?;
        wait(&mut http, &mut tx_token, ev).map_err(|e| format!("sending the headers: {e}"))?;
        let mut payload = body.to_vec();
        let mut body_msg = HttpMessage::default();
        body_msg.data.request = core::ptr::null();
        body_msg.body_length = payload.len();
        body_msg.body = payload.as_mut_ptr().cast::<c_void>();
        if !payload.is_empty() {
            let (mut body_token, ev) = token(&mut body_msg)?;
            http.request(&mut body_token).map_err(|e| format!("HTTP request body: {e:?}"))?;
            wait(&mut http, &mut body_token, ev).map_err(|e| format!("sending the body: {e}"))?;
        }
        let mut status = HttpResponseData { status_code: HttpStatusCode::STATUS_UNSUPPORTED };
        let mut buf = vec![0u8; 1024];
        let mut rx = HttpMessage::default();
        rx.data.response = &mut status;
        rx.body_length = buf.len();
        rx.body = buf.as_mut_ptr().cast::<c_void>();
        let (mut rx_token, ev) = token(&mut rx)?;
        http.response(&mut rx_token).map_err(|e| format!("HTTP response: {e:?}"))?;
        let waited = wait(&mut http, &mut rx_token, ev);
        free_headers(&rx);
        waited.map_err(|e| format!("waiting for the answer: {e}"))?;
        Ok(status_number(status.status_code))
    })();
    let _ = binding.destroy_child(child);
    result
}

/// The numeric HTTP status of the codes a server answers a PUT with.
fn status_number(code: HttpStatusCode) -> u16 {
    match code {
        HttpStatusCode::STATUS_200_OK => 200,
        HttpStatusCode::STATUS_201_CREATED => 201,
        HttpStatusCode::STATUS_204_NO_CONTENT => 204,
        HttpStatusCode::STATUS_403_FORBIDDEN => 403,
        HttpStatusCode::STATUS_404_NOT_FOUND => 404,
        HttpStatusCode::STATUS_405_METHOD_NOT_ALLOWED => 405,
        HttpStatusCode::STATUS_411_LENGTH_REQUIRED => 411,
        HttpStatusCode::STATUS_413_REQUEST_ENTITY_TOO_LARGE => 413,
        HttpStatusCode::STATUS_500_INTERNAL_SERVER_ERROR => 500,
        _ => 0,
    }
}

/// Sends files to a base URL; remembers what could not be delivered.
pub struct Uploader {
    base: String,
    nic: Result<Handle, String>,
    /// `(relative path, why)` of every file not delivered.
    pub failed: Vec<(String, String)>,
    /// How many files were delivered.
    pub sent: usize,
}

impl Uploader {
    /// An uploader to `base` (no trailing `/`), with the network brought up.
    pub fn new(base: &str) -> Uploader {
        Uploader { base: String::from(base.trim_end_matches('/')), nic: interface(), failed: Vec::new(), sent: 0 }
    }

    /// The URL a relative path goes to.
    pub fn url(&self, rel: &str) -> String {
        format!("{}/{rel}", self.base)
    }

    /// PUTs `body` to `<base>/<rel>`, trying [`ATTEMPTS`] times.
    pub fn put(&mut self, rel: &str, body: &[u8]) -> bool {
        let nic = match &self.nic {
            Ok(n) => *n,
            Err(why) => {
                self.failed.push((String::from(rel), why.clone()));
                return false;
            }
        };
        let url = self.url(rel);
        let mut why = String::new();
        for attempt in 0..ATTEMPTS {
            match put_once(nic, &url, body) {
                Ok(200 | 201 | 204) => {
                    self.sent += 1;
                    return true;
                }
                Ok(code) => why = format!("the server answered {code}"),
                Err(e) => why = e,
            }
            boot::stall(Duration::from_millis(500 << attempt));
        }
        self.failed.push((String::from(rel), why));
        false
    }
}
