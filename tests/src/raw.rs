//! Raw HTTP/1.1 on loopback, for tests that must control or see the exact
//! bytes on the wire.
//!
//! - [`RawUpstream`]: an upstream that records every byte each connection
//!   brings, splits it into requests by its own strict reading of the
//!   framing (`Content-Length` digits or chunked; a smuggled request shows
//!   up as one more request), and answers as its [`Reply`] says. Tests
//!   assert on [`RawUpstream::recorded`]: what reached the upstream, or
//!   that nothing did.
//! - [`RawClient`]: a client connection that sends bytes as given and
//!   reads responses ([`RawReply`]) framed by `Content-Length`, chunked
//!   coding or the close.
//!
//! Both are blocking (threads and `std::net`), like the rest of the
//! harness.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a [`RawClient`] waits for a response by default.
pub const RAW_TIMEOUT: Duration = Duration::from_secs(10);

/// How a [`RawUpstream`] answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// These bytes after every complete request.
    Bytes(Vec<u8>),
    /// Nothing: requests are read and recorded, never answered.
    Nothing,
    /// Reads the first request head, then stops reading for this long
    /// (writes to it block once the socket buffers are full), then reads
    /// and records until the peer closes, answering nothing.
    StopReadingFor(Duration),
    /// A chunked `200` whose body never ends: 64 KiB chunks until a write
    /// fails.
    Endless,
}

/// One request as the upstream read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The head, from the request line to the blank line, as received.
    pub head: String,
    /// The body, framing removed.
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The request line.
    pub fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }

    /// The request target, as in the request line.
    pub fn target(&self) -> &str {
        self.request_line().split(' ').nth(1).unwrap_or("")
    }

    /// Every value of the header `name` (any case), in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim())
            .collect()
    }

    /// The one value of the header `name`; panics if it came twice.
    #[track_caller]
    pub fn header(&self, name: &str) -> Option<&str> {
        let values = self.header_values(name);
        assert!(
            values.len() <= 1,
            "{name} came {} times:\n{}",
            values.len(),
            self.head
        );
        values.first().copied()
    }

    /// The header names, lowercase, in order.
    pub fn header_names(&self) -> Vec<String> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .map(|(name, _)| name.to_ascii_lowercase())
            .collect()
    }
}

/// One connection the upstream accepted.
#[derive(Debug, Clone, Default)]
pub struct RecordedConnection {
    /// Every byte received, in order.
    pub bytes: Vec<u8>,
    /// The complete requests in `bytes`.
    pub requests: Vec<RecordedRequest>,
    /// The peer closed it (or it failed).
    pub closed: bool,
}

impl RecordedConnection {
    /// The bytes received as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// A recording upstream on 127.0.0.1 (see the module doc).
pub struct RawUpstream {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<RecordedConnection>>>,
    stop: Arc<AtomicBool>,
}

impl RawUpstream {
    /// Listens on a free port and answers with `reply`.
    pub fn start(reply: Reply) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let addr = listener.local_addr().expect("the bound address");
        let connections = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (recorded, stopping) = (Arc::clone(&connections), Arc::clone(&stop));
        thread::spawn(move || accept_loop(listener, reply, recorded, stopping));
        RawUpstream {
            addr,
            connections,
            stop,
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What every connection brought so far.
    pub fn recorded(&self) -> Vec<RecordedConnection> {
        self.connections.lock().expect("not poisoned").clone()
    }

    /// Every complete request so far, over all connections (in the order
    /// of the connections, which need not be the order they were sent in:
    /// each proxy worker has its own upstream connections; see
    /// [`RawUpstream::request_for`]).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.recorded()
            .into_iter()
            .flat_map(|connection| connection.requests)
            .collect()
    }

    /// Waits until `done` holds for the recorded connections, up to
    /// `timeout`; returns them either way.
    pub fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[RecordedConnection]) -> bool,
    ) -> Vec<RecordedConnection> {
        let deadline = Instant::now() + timeout;
        loop {
            let recorded = self.recorded();
            if done(&recorded) || Instant::now() >= deadline {
                return recorded;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The one request for `target`; panics with everything received when
    /// there is none or more than one.
    #[track_caller]
    pub fn request_for(&self, target: &str) -> RecordedRequest {
        let requests = self.requests();
        let matching: Vec<&RecordedRequest> = requests
            .iter()
            .filter(|request| request.target() == target)
            .collect();
        match matching.as_slice() {
            [request] => (*request).clone(),
            other => panic!(
                "expected one request for {target}, got {}:\n{requests:#?}",
                other.len()
            ),
        }
    }

    /// Waits for `count` complete requests (up to [`RAW_TIMEOUT`]).
    #[track_caller]
    pub fn wait_for_requests(&self, count: usize) -> Vec<RecordedRequest> {
        self.wait_for(RAW_TIMEOUT, |connections| {
            connections.iter().map(|c| c.requests.len()).sum::<usize>() >= count
        });
        let requests = self.requests();
        assert!(
            requests.len() >= count,
            "expected {count} requests upstream, got {}:\n{:#?}",
            requests.len(),
            self.recorded()
        );
        requests
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop.
        let _ = TcpStream::connect(self.addr);
    }
}

fn accept_loop(
    listener: TcpListener,
    reply: Reply,
    connections: Arc<Mutex<Vec<RecordedConnection>>>,
    stop: Arc<AtomicBool>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let index = {
            let mut connections = connections.lock().expect("not poisoned");
            connections.push(RecordedConnection::default());
            connections.len() - 1
        };
        let (reply, connections, stop) =
            (reply.clone(), Arc::clone(&connections), Arc::clone(&stop));
        thread::spawn(move || serve_connection(stream, &reply, &connections, index, &stop));
    }
}

/// Records and answers one connection until it closes.
fn serve_connection(
    mut stream: TcpStream,
    reply: &Reply,
    connections: &Mutex<Vec<RecordedConnection>>,
    index: usize,
    stop: &AtomicBool,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let record = |change: &mut dyn FnMut(&mut RecordedConnection)| {
        change(&mut connections.lock().expect("not poisoned")[index]);
    };
    let mut unparsed = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut paused = false;
    while !stop.load(Ordering::SeqCst) {
        let read = match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                continue
            }
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        record(&mut |connection| connection.bytes.extend_from_slice(&chunk[..read]));
        unparsed.extend_from_slice(&chunk[..read]);
        if let Reply::StopReadingFor(pause) = reply {
            if !paused && find(&unparsed, b"\r\n\r\n").is_some() {
                paused = true;
                thread::sleep(*pause);
            }
            continue;
        }
        while let Some((request, used)) = split_request(&unparsed) {
            unparsed.drain(..used);
            record(&mut |connection| connection.requests.push(request.clone()));
            if !answer(&mut stream, reply) {
                record(&mut |connection| connection.closed = true);
                return;
            }
        }
    }
    record(&mut |connection| connection.closed = true);
}

/// Sends the reply to one request; `false` once the connection failed.
fn answer(stream: &mut TcpStream, reply: &Reply) -> bool {
    match reply {
        Reply::Bytes(bytes) => stream.write_all(bytes).is_ok(),
        Reply::Nothing | Reply::StopReadingFor(_) => true,
        Reply::Endless => {
            let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            if stream.write_all(head).is_err() {
                return false;
            }
            let mut chunk = b"10000\r\n".to_vec();
            chunk.extend(std::iter::repeat_n(b'e', 0x10000));
            chunk.extend_from_slice(b"\r\n");
            while stream.write_all(&chunk).is_ok() {}
            let _ = stream.shutdown(Shutdown::Both);
            false
        }
    }
}

/// The first complete request in `bytes` and how many bytes it took.
fn split_request(bytes: &[u8]) -> Option<(RecordedRequest, usize)> {
    let head_end = find(bytes, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let request = RecordedRequest {
        head,
        body: Vec::new(),
    };
    if request
        .header_values("transfer-encoding")
        .iter()
        .any(|value| value.eq_ignore_ascii_case("chunked"))
    {
        let (body, used) = dechunk(&bytes[head_end..])?;
        return Some((RecordedRequest { body, ..request }, head_end + used));
    }
    let length = match request.header_values("content-length").as_slice() {
        [] => 0,
        [value] if value.bytes().all(|byte| byte.is_ascii_digit()) => value.parse().ok()?,
        // Anything else is not a framing this reader trusts: all the rest
        // is taken as this request's body.
        _ => bytes.len() - head_end,
    };
    let end = head_end.checked_add(length)?;
    let body = bytes.get(head_end..end)?.to_vec();
    Some((RecordedRequest { body, ..request }, end))
}

/// A complete chunked body at the start of `bytes`: the data and the bytes
/// it took, trailers included.
fn dechunk(bytes: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + find(&bytes[at..], b"\r\n")?;
        let line = std::str::from_utf8(&bytes[at..line_end]).ok()?;
        let size_text = line.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailer lines up to the blank one.
            loop {
                let end = at + find(&bytes[at..], b"\r\n")?;
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some((body, at));
                }
            }
        }
        body.extend_from_slice(bytes.get(at..at + size)?);
        at += size;
        if bytes.get(at..at + 2)? != b"\r\n" {
            return None;
        }
        at += 2;
    }
}

/// The first index of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

// ----- client ------------------------------------------------------------------------

/// A response read off a [`RawClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The head, from the status line to the blank line.
    pub head: String,
    /// The body, chunked coding removed.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Every value of the header `name` (any case).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim())
            .collect()
    }

    /// The first value of the header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).first().copied()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The message of Kong's `text/plain` error page, what a request that
    /// says nothing about the format (no `Accept`, no `Content-Type`) gets
    /// (Kong's `error_default_type`): `MESSAGE\nrequest_id: ID\n`. Panics
    /// with the response if it is not one.
    #[track_caller]
    pub fn plain_message(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{}{}",
            self.head,
            self.text()
        );
        let text = self.text();
        let Some((message, rest)) = text.split_once('\n') else {
            panic!("not Kong's plain error page:\n{}{text}", self.head);
        };
        let request_id = rest
            .strip_prefix("request_id: ")
            .and_then(|id| id.strip_suffix('\n'));
        assert!(
            request_id.is_some_and(|id| Some(id) == self.header("x-kong-request-id")),
            "request id line:\n{}{text}",
            self.head
        );
        message.to_owned()
    }

    /// The body as JSON; panics with the response if it is not.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}):\n{}{}", self.head, self.text()))
    }
}

/// What came back on a [`RawClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawReply {
    /// A complete response.
    Response(RawResponse),
    /// The connection closed (or was reset) first; what partly arrived.
    Closed(String),
    /// Nothing complete in time; what partly arrived.
    TimedOut(String),
}

impl RawReply {
    /// The response; panics with what came instead.
    #[track_caller]
    pub fn response(self) -> RawResponse {
        match self {
            RawReply::Response(response) => response,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// The response, which must have `status`.
    #[track_caller]
    pub fn expect(self, status: u16) -> RawResponse {
        let response = self.response();
        assert_eq!(
            response.status,
            status,
            "status\n{}{}",
            response.head,
            response.text()
        );
        response
    }
}

/// A raw client connection (see the module doc).
pub struct RawClient {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl RawClient {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("a connection to the proxy");
        stream.set_write_timeout(Some(RAW_TIMEOUT)).unwrap();
        RawClient {
            stream,
            buffer: Vec::new(),
        }
    }

    /// One request on a fresh connection: its reply.
    pub fn exchange(addr: SocketAddr, request: &[u8]) -> RawReply {
        let mut client = RawClient::connect(addr);
        client.send(request);
        client.read_reply(RAW_TIMEOUT)
    }

    /// Sends `bytes`; a server that already hung up is not an error here.
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// The stream, e.g. for a writer thread (`try_clone`).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Reads one response, waiting up to `timeout`.
    pub fn read_reply(&mut self, timeout: Duration) -> RawReply {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((response, used)) = parse_response(&self.buffer) {
                self.buffer.drain(..used);
                return RawReply::Response(response);
            }
            let partial = String::from_utf8_lossy(&self.buffer).into_owned();
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return RawReply::TimedOut(partial);
            };
            match self.read_some(left) {
                Ok(true) => {}
                Ok(false) => {
                    // The close delimits a response without framing.
                    if let Some(response) = parse_until_close(&self.buffer) {
                        self.buffer.clear();
                        return RawReply::Response(response);
                    }
                    return RawReply::Closed(partial);
                }
                Err(ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return RawReply::TimedOut(partial)
                }
                Err(_) => return RawReply::Closed(partial),
            }
        }
    }

    /// The next `count` bytes after what was read as responses (e.g. a
    /// tunnel's), or fewer if the connection ends or `timeout` passes.
    pub fn read_bytes(&mut self, count: usize, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        while self.buffer.len() < count {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            if !matches!(self.read_some(left), Ok(true)) {
                break;
            }
        }
        let take = count.min(self.buffer.len());
        self.buffer.drain(..take).collect()
    }

    /// Whether the server closes the connection within `timeout` (reading
    /// and dropping whatever comes first).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            match self.read_some(left) {
                Ok(true) => self.buffer.clear(),
                Ok(false) => return true,
                Err(ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
                Err(_) => return true,
            }
        }
    }

    /// One read into the buffer: `Ok(false)` at the end of the stream.
    fn read_some(&mut self, timeout: Duration) -> Result<bool, ErrorKind> {
        let timeout = timeout.max(Duration::from_millis(1));
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(|error| error.kind())?;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(read) => {
                    self.buffer.extend_from_slice(&chunk[..read]);
                    return Ok(true);
                }
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => return Err(error.kind()),
            }
        }
    }
}

/// A complete framed response at the start of `bytes`, and its length.
fn parse_response(bytes: &[u8]) -> Option<(RawResponse, usize)> {
    let head_end = find(bytes, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut response = RawResponse {
        status,
        head,
        body: Vec::new(),
    };
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Some((response, head_end));
    }
    if response
        .header_values("transfer-encoding")
        .iter()
        .any(|value| value.eq_ignore_ascii_case("chunked"))
    {
        let (body, used) = dechunk(&bytes[head_end..])?;
        response.body = body;
        return Some((response, head_end + used));
    }
    let length: usize = response.header("content-length")?.parse().ok()?;
    response.body = bytes.get(head_end..head_end + length)?.to_vec();
    Some((response, head_end + length))
}

/// A response delimited by the close.
fn parse_until_close(bytes: &[u8]) -> Option<RawResponse> {
    let head_end = find(bytes, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(RawResponse {
        status,
        head,
        body: bytes[head_end..].to_vec(),
    })
}
