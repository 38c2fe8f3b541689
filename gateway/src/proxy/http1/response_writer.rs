//! Writing a response on the connection.
//!
//! [`plan`] decides the framing as hyper did: no body for `HEAD` requests
//! and 1xx/204/304 statuses; else the response's `Content-Length`, or an
//! exact body size turned into one, or chunked (HTTP/1.1) or up to the
//! close (HTTP/1.0). It also decides whether the connection stays open,
//! and the writer adds `connection: close` / `connection: keep-alive` and
//! `date` accordingly; a `101` that switches to the protocol in its
//! `Upgrade` gets `connection: upgrade` instead.
//!
//! [`ResponseWriter`] formats the head into a buffer kept for the
//! connection's life and copies the body's frames behind it while they
//! are ready, so a small response leaves in one `write()`; it writes
//! whenever the body has to wait or the buffer is full, so larger bodies
//! stream frame by frame. Every write may stay blocked for the send
//! timeout (nginx's `send_timeout`); a client that takes nothing for that
//! long fails the write, and the connection closes (and with it the
//! upstream connection the body was read from).
//!
//! A response carrying [`BytesSent`] in its extensions (the log phase
//! wants nginx's `$bytes_sent`) gets the number of bytes written for it
//! recorded there before its body is dropped.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Response, StatusCode, Version};
use http_body_util::BodyExt as _;
use hyper::body::{Body as _, Frame};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

use super::date::{put_date, DATE_LEN};
use super::head::has_token;
use crate::pdk::body::{BoxError, ProxyBody};
use crate::proxy::log_phase::BytesSent;
use crate::proxy::timed_write;

/// Once the buffer holds this much, it is written out.
const WRITE_AT: usize = 64 * 1024;

/// A write buffer that grew beyond this is given back after the response.
const RETAINED_CAPACITY: usize = 16 * 1024;

/// What the connection knows about the request being answered.
#[derive(Debug, Clone, Copy)]
pub(super) struct RequestFacts {
    /// A `HEAD` request: no body goes out.
    pub(super) head: bool,
    /// HTTP/1.0 or HTTP/1.1; the response uses the same.
    pub(super) version: Version,
    /// Whether the connection may stay open after this exchange, as far as
    /// the request and the connection are concerned.
    pub(super) keep_alive: bool,
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body is written.
    None,
    /// This many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Up to the end of the connection (HTTP/1.0, size unknown).
    UntilClose,
}

/// The framing of a response and what its head says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) framing: Framing,
    /// The `content-length` to write, if any.
    pub(super) content_length: Option<u64>,
    /// Whether the connection stays open afterwards.
    pub(super) keep_alive: bool,
}

/// What the response head says about framing and the connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct ResponseFacts {
    /// A valid `Content-Length` (invalid or conflicting ones are dropped).
    pub(super) declared_length: Option<u64>,
    /// The body's exact size, when it knows it.
    pub(super) exact_size: Option<u64>,
    /// `Connection: close`.
    pub(super) closes: bool,
    /// `Connection: keep-alive`.
    pub(super) keeps_alive: bool,
}

/// Decides framing and keep-alive (see the module doc).
pub(super) fn plan(request: &RequestFacts, status: StatusCode, response: &ResponseFacts) -> Plan {
    let (framing, content_length) = if status.is_informational() || status == StatusCode::NO_CONTENT
    {
        (Framing::None, None)
    } else if status == StatusCode::NOT_MODIFIED {
        // The length of the representation the client already has.
        (Framing::None, response.declared_length)
    } else if request.head {
        let length = response
            .declared_length
            .or(response.exact_size.filter(|&size| size > 0));
        (Framing::None, length)
    } else if let Some(length) = response.declared_length.or(response.exact_size) {
        (Framing::Length(length), Some(length))
    } else if request.version == Version::HTTP_10 {
        (Framing::UntilClose, None)
    } else {
        (Framing::Chunked, None)
    };
    let keep_alive = request.keep_alive
        && !response.closes
        && framing != Framing::UntilClose
        && !status.is_informational();
    Plan {
        framing,
        content_length,
        keep_alive,
    }
}

/// Why writing a response stopped; the connection must close.
#[derive(Debug, thiserror::Error)]
pub(super) enum WriteError {
    /// The connection failed.
    #[error("cannot write the response: {0}")]
    Io(#[from] io::Error),
    /// The response body failed (an upstream reset mid-body, ...).
    #[error("the response body failed: {0}")]
    Body(BoxError),
    /// The body was not as long as its `Content-Length`.
    #[error("the response body has {actual} bytes where {declared} were declared")]
    Length { declared: u64, actual: u64 },
}

/// The connection's write side and its buffer.
pub(super) struct ResponseWriter<W> {
    io: W,
    buf: Vec<u8>,
    /// How long a write may stay blocked.
    send_timeout: Duration,
    /// Bytes written for the current response.
    written: u64,
}

impl<W: AsyncWrite + Unpin> ResponseWriter<W> {
    /// A writer on `io` whose writes may stay blocked for `send_timeout`.
    pub(super) fn new(io: W, send_timeout: Duration) -> Self {
        ResponseWriter {
            io,
            buf: Vec::with_capacity(4096),
            send_timeout,
            written: 0,
        }
    }

    /// Sends `100 Continue` at once.
    pub(super) async fn write_continue(&mut self) -> io::Result<()> {
        let timeout = self.send_timeout;
        timed_write::write_all(&mut self.io, b"HTTP/1.1 100 Continue\r\n\r\n", timeout).await?;
        timed_write::flush(&mut self.io, timeout).await
    }

    /// Writes `response` to the request described by `request`; returns
    /// whether the connection may serve another request.
    pub(super) async fn write(
        &mut self,
        response: Response<ProxyBody>,
        request: &RequestFacts,
    ) -> Result<bool, WriteError> {
        let (mut parts, mut body) = response.into_parts();
        let sent = parts.extensions.remove::<BytesSent>();
        self.buf.clear();
        self.written = 0;
        let exact_size = body.size_hint().exact();
        let plan = encode_head(
            &mut self.buf,
            parts.status,
            &parts.headers,
            exact_size,
            request,
        );
        let written = match plan.framing {
            Framing::None => Ok(()),
            framing => self.write_body(&mut body, framing).await,
        };
        let flushed = self.flush().await;
        if let Some(sent) = sent {
            sent.record(self.written);
        }
        if self.buf.capacity() > RETAINED_CAPACITY {
            self.buf = Vec::with_capacity(4096);
        }
        written?;
        flushed?;
        Ok(plan.keep_alive)
    }

    /// The connection's write side, for a tunnel after a `101`.
    pub(super) fn io_mut(&mut self) -> &mut W {
        &mut self.io
    }

    /// The send timeout of writes to the client.
    pub(super) fn send_timeout(&self) -> Duration {
        self.send_timeout
    }

    /// Ends the connection's write direction.
    pub(super) async fn shutdown(&mut self) {
        // A TLS close_notify is a write too: bounded like the others.
        let _ = tokio::time::timeout(self.send_timeout, self.io.shutdown()).await;
    }

    /// Writes the body's frames behind the head, as the module doc says.
    async fn write_body(
        &mut self,
        body: &mut ProxyBody,
        framing: Framing,
    ) -> Result<(), WriteError> {
        let declared = match framing {
            Framing::Length(length) => Some(length),
            _ => None,
        };
        let mut sent = 0u64;
        loop {
            let frame = match poll_now(body).await {
                Some(frame) => frame,
                None => {
                    self.flush().await?;
                    body.frame().await
                }
            };
            let data = match frame {
                None => break,
                Some(Err(error)) => return Err(WriteError::Body(error)),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    // Trailers: not forwarded.
                    Err(_) => continue,
                },
            };
            if data.is_empty() {
                continue;
            }
            sent += data.len() as u64;
            if let Some(declared) = declared.filter(|&declared| sent > declared) {
                let allowed = data.len() - usize::try_from(sent - declared).unwrap_or(data.len());
                self.put_data(data.slice(..allowed), framing).await?;
                return Err(WriteError::Length {
                    declared,
                    actual: sent,
                });
            }
            self.put_data(data, framing).await?;
        }
        if let Some(declared) = declared.filter(|&declared| sent != declared) {
            return Err(WriteError::Length {
                declared,
                actual: sent,
            });
        }
        if framing == Framing::Chunked {
            self.buf.extend_from_slice(b"0\r\n\r\n");
        }
        Ok(())
    }

    /// Adds `data` in `framing`: copied into the buffer when it fits, else
    /// written on its own after what is buffered.
    async fn put_data(&mut self, data: Bytes, framing: Framing) -> io::Result<()> {
        if framing == Framing::Chunked {
            put_hex(&mut self.buf, data.len() as u64);
            self.buf.extend_from_slice(b"\r\n");
        }
        let timeout = self.send_timeout;
        if self.buf.len() + data.len() <= WRITE_AT {
            self.buf.extend_from_slice(&data);
        } else {
            timed_write::write_all(&mut self.io, &self.buf, timeout).await?;
            self.written += self.buf.len() as u64;
            self.buf.clear();
            timed_write::write_all(&mut self.io, &data, timeout).await?;
            self.written += data.len() as u64;
        }
        if framing == Framing::Chunked {
            self.buf.extend_from_slice(b"\r\n");
        }
        if self.buf.len() >= WRITE_AT {
            timed_write::write_all(&mut self.io, &self.buf, timeout).await?;
            self.written += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes out what is buffered.
    async fn flush(&mut self) -> io::Result<()> {
        let timeout = self.send_timeout;
        if !self.buf.is_empty() {
            timed_write::write_all(&mut self.io, &self.buf, timeout).await?;
            self.written += self.buf.len() as u64;
            self.buf.clear();
        }
        timed_write::flush(&mut self.io, timeout).await
    }
}

/// The body's next frame if it is ready now, without waiting (`None`
/// when it would wait).
async fn poll_now(body: &mut ProxyBody) -> Option<Option<Result<Frame<Bytes>, BoxError>>> {
    poll_fn(|cx| match Pin::new(&mut *body).poll_frame(cx) {
        Poll::Ready(frame) => Poll::Ready(Some(frame)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// Formats the status line and headers, deciding the framing and
/// keep-alive on the way (see the module doc); `exact_size` is the body's
/// size when it knows it.
pub(super) fn encode_head(
    buf: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    exact_size: Option<u64>,
    request: &RequestFacts,
) -> Plan {
    let http_10 = request.version == Version::HTTP_10;
    if status == StatusCode::OK && !http_10 {
        buf.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        buf.extend_from_slice(if http_10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
        buf.extend_from_slice(status.as_str().as_bytes());
        buf.push(b' ');
        // A reason must be written: some parsers expect one.
        buf.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    let mut facts = ResponseFacts {
        exact_size,
        ..ResponseFacts::default()
    };
    let mut lengths = DeclaredLength::None;
    let mut has_date = false;
    for (name, value) in headers {
        match *name {
            header::CONTENT_LENGTH => {
                lengths.add(value.as_bytes());
                continue;
            }
            header::TRANSFER_ENCODING => continue,
            header::CONNECTION => {
                facts.closes |= has_token(value.as_bytes(), b"close");
                facts.keeps_alive |= has_token(value.as_bytes(), b"keep-alive");
            }
            header::DATE => has_date = true,
            _ => {}
        }
        put_field(buf, name.as_str().as_bytes(), value.as_bytes());
    }
    if let DeclaredLength::Valid(length) = lengths {
        facts.declared_length = Some(length);
    }
    let plan = plan(request, status, &facts);
    if let Some(length) = plan.content_length {
        buf.extend_from_slice(b"content-length: ");
        put_decimal(buf, length);
        buf.extend_from_slice(b"\r\n");
    }
    if plan.framing == Framing::Chunked {
        buf.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if status == StatusCode::SWITCHING_PROTOCOLS && headers.contains_key(header::UPGRADE) {
        // The connection switches (see `proxy/tunnel.rs`): nginx's word.
        buf.extend_from_slice(b"connection: upgrade\r\n");
    } else if !plan.keep_alive && !http_10 && !facts.closes {
        buf.extend_from_slice(b"connection: close\r\n");
    }
    if plan.keep_alive && http_10 && !facts.keeps_alive {
        buf.extend_from_slice(b"connection: keep-alive\r\n");
    }
    if !has_date {
        buf.reserve(DATE_LEN + 8);
        buf.extend_from_slice(b"date: ");
        put_date(buf);
        buf.extend_from_slice(b"\r\n");
    }
    buf.extend_from_slice(b"\r\n");
    plan
}

/// The `Content-Length` of a response, from its header fields: one valid
/// value, repeated or not; invalid or conflicting ones count as none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeclaredLength {
    None,
    Valid(u64),
    Invalid,
}

impl DeclaredLength {
    /// Takes one `Content-Length` field value into account.
    fn add(&mut self, value: &[u8]) {
        let parsed = std::str::from_utf8(value)
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok());
        *self = match (*self, parsed) {
            (DeclaredLength::None, Some(length)) => DeclaredLength::Valid(length),
            (DeclaredLength::Valid(previous), Some(length)) if previous == length => *self,
            _ => DeclaredLength::Invalid,
        };
    }
}

/// Appends `name: value\r\n`.
fn put_field(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    buf.extend_from_slice(name);
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value);
    buf.extend_from_slice(b"\r\n");
}

/// Appends `value` in decimal.
fn put_decimal(buf: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[start..]);
}

/// Appends `value` in lowercase hex (a chunk size).
fn put_hex(buf: &mut Vec<u8>, mut value: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = HEX[(value & 0xf) as usize];
        value >>= 4;
        if value == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdk::body;
    use http::HeaderValue;
    use tokio::io::AsyncReadExt as _;

    const GET_11: RequestFacts = RequestFacts {
        head: false,
        version: Version::HTTP_11,
        keep_alive: true,
    };

    fn facts(declared: Option<u64>, exact: Option<u64>) -> ResponseFacts {
        ResponseFacts {
            declared_length: declared,
            exact_size: exact,
            ..ResponseFacts::default()
        }
    }

    #[test]
    fn framing_decisions() {
        let ok = StatusCode::OK;
        assert_eq!(
            plan(&GET_11, ok, &facts(Some(5), None)).framing,
            Framing::Length(5)
        );
        let exact = plan(&GET_11, ok, &facts(None, Some(0)));
        assert_eq!(
            (exact.framing, exact.content_length),
            (Framing::Length(0), Some(0))
        );
        assert_eq!(
            plan(&GET_11, ok, &facts(None, None)).framing,
            Framing::Chunked
        );
        let http_10 = RequestFacts {
            version: Version::HTTP_10,
            ..GET_11
        };
        let until_close = plan(&http_10, ok, &facts(None, None));
        assert_eq!(until_close.framing, Framing::UntilClose);
        assert!(!until_close.keep_alive);
        for status in [StatusCode::NO_CONTENT, StatusCode::CONTINUE] {
            let bodiless = plan(&GET_11, status, &facts(Some(5), Some(5)));
            assert_eq!(
                (bodiless.framing, bodiless.content_length),
                (Framing::None, None)
            );
        }
        let not_modified = plan(&GET_11, StatusCode::NOT_MODIFIED, &facts(Some(5), None));
        assert_eq!(
            (not_modified.framing, not_modified.content_length),
            (Framing::None, Some(5))
        );
        let head = RequestFacts {
            head: true,
            ..GET_11
        };
        let head_plan = plan(&head, ok, &facts(None, Some(7)));
        assert_eq!(
            (head_plan.framing, head_plan.content_length),
            (Framing::None, Some(7))
        );
        let head_empty = plan(&head, ok, &facts(None, Some(0)));
        assert_eq!(head_empty.content_length, None);
    }

    #[test]
    fn keep_alive_decisions() {
        let ok = StatusCode::OK;
        assert!(plan(&GET_11, ok, &facts(None, Some(1))).keep_alive);
        let closing = ResponseFacts {
            closes: true,
            ..facts(None, Some(1))
        };
        assert!(!plan(&GET_11, ok, &closing).keep_alive);
        let client_closes = RequestFacts {
            keep_alive: false,
            ..GET_11
        };
        assert!(!plan(&client_closes, ok, &facts(None, Some(1))).keep_alive);
    }

    #[test]
    fn the_head_says_what_framing_and_connection_headers_mean() {
        let mut headers = HeaderMap::new();
        headers.append(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        headers.append(
            header::CONNECTION,
            HeaderValue::from_static("Upgrade, Close"),
        );
        let mut buf = Vec::new();
        let plan = encode_head(&mut buf, StatusCode::OK, &headers, Some(0), &GET_11);
        assert_eq!(plan.framing, Framing::Length(12), "the header wins");
        assert!(!plan.keep_alive);
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.contains("\r\nconnection: Upgrade, Close\r\ncontent-length: 12\r\n"),
            "{text}"
        );
        assert!(!text.contains("connection: close"), "{text}");
        headers.append(header::CONTENT_LENGTH, HeaderValue::from_static("13"));
        let plan = encode_head(&mut Vec::new(), StatusCode::OK, &headers, None, &GET_11);
        assert_eq!(
            plan.framing,
            Framing::Chunked,
            "conflicting lengths count as none"
        );
    }

    #[test]
    fn numbers() {
        let mut buf = Vec::new();
        put_decimal(&mut buf, 0);
        buf.push(b' ');
        put_decimal(&mut buf, u64::MAX);
        buf.push(b' ');
        put_hex(&mut buf, 0);
        buf.push(b' ');
        put_hex(&mut buf, 0x1f2e);
        assert_eq!(buf, b"0 18446744073709551615 0 1f2e");
    }

    /// Writes `response` for `request` and returns the bytes and the
    /// keep-alive verdict.
    async fn written(response: Response<ProxyBody>, request: RequestFacts) -> (String, bool) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut writer = ResponseWriter::new(server, Duration::from_secs(5));
        let keep_alive = writer.write(response, &request).await.unwrap();
        drop(writer);
        let mut text = String::new();
        let mut client = client;
        client.read_to_string(&mut text).await.unwrap();
        (text, keep_alive)
    }

    #[tokio::test]
    async fn a_full_response_gets_its_length_and_a_date() {
        let mut response = Response::new(body::full("hello"));
        response
            .headers_mut()
            .insert("x-a", HeaderValue::from_static("1"));
        let (text, keep_alive) = written(response, GET_11).await;
        assert!(keep_alive);
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 5\r\ndate: "),
            "{text}"
        );
        assert!(text.ends_with(" GMT\r\n\r\nhello"), "{text}");
    }

    #[tokio::test]
    async fn a_streamed_response_is_chunked() {
        let frames = chunks(&["ab", "", "cde"]);
        let (text, _) = written(Response::new(frames), GET_11).await;
        let body = text.split_once("\r\n\r\n").unwrap().1;
        assert!(
            text.contains("\r\ntransfer-encoding: chunked\r\n"),
            "{text}"
        );
        assert_eq!(body, "2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n");
    }

    #[tokio::test]
    async fn http_1_0_gets_http_1_0_and_close_delimited_bodies() {
        let http_10 = RequestFacts {
            version: Version::HTTP_10,
            keep_alive: true,
            head: false,
        };
        let (text, keep_alive) = written(Response::new(chunks(&["x"])), http_10).await;
        assert!(!keep_alive);
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nx"), "{text}");
        let (text, keep_alive) = written(Response::new(body::full("y")), http_10).await;
        assert!(keep_alive);
        assert!(text.contains("\r\nconnection: keep-alive\r\n"), "{text}");
    }

    #[tokio::test]
    async fn head_responses_have_no_body_and_closing_ones_say_so() {
        let head = RequestFacts {
            head: true,
            keep_alive: false,
            version: Version::HTTP_11,
        };
        let mut response = Response::new(body::full("body"));
        *response.status_mut() = StatusCode::NOT_FOUND;
        let (text, keep_alive) = written(response, head).await;
        assert!(!keep_alive);
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("\r\ncontent-length: 4\r\n"), "{text}");
        assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }

    #[tokio::test]
    async fn a_body_longer_than_its_length_is_cut_and_fails() {
        let mut response = Response::new(chunks(&["abc", "def"]));
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("4"));
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut writer = ResponseWriter::new(server, Duration::from_secs(5));
        let error = writer.write(response, &GET_11).await.unwrap_err();
        assert!(
            matches!(error, WriteError::Length { declared: 4, .. }),
            "{error}"
        );
        drop(writer);
        let mut text = String::new();
        let mut client = client;
        client.read_to_string(&mut text).await.unwrap();
        assert!(text.ends_with("\r\n\r\nabcd"), "{text}");
    }

    /// A body yielding `chunks` one per poll, with no size hint.
    fn chunks(chunks: &[&'static str]) -> ProxyBody {
        Chunks(
            chunks
                .iter()
                .map(|chunk| Bytes::from_static(chunk.as_bytes()))
                .collect(),
        )
        .boxed_unsync()
    }

    /// A body of one frame per chunk.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl hyper::body::Body for Chunks {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
        }
    }
}
