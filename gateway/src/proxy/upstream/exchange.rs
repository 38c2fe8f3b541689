//! One HTTP/1.1 exchange on an upstream connection: the request head and
//! body out ([`write_request`]), the response head in ([`read_head`]).
//!
//! The head is encoded into the connection's write buffer and sent with the
//! body's first frame when that frame is ready, so a request with a small
//! body (or none) is one `write()`. Request body framing follows the
//! body's exact size (one `Content-Length`, the client's when it says that
//! size), else chunked encoding. Every write may stay blocked for the service's
//! `write_timeout` (nginx's `proxy_send_timeout`), then the exchange fails
//! (504). The response head is parsed with `httparse`; header values are
//! slices of the one buffer the head arrived in (no copy per value).
//! Interim `1xx` responses are skipped, as hyper's client did, except a
//! `101` to a WebSocket handshake, which ends the exchange and hands the
//! connection over (see `proxy/tunnel.rs`). The head leaves with at most
//! one `Content-Length`, the value its framing was read by, and none
//! beside `Transfer-Encoding`.

use std::future::poll_fn;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING,
};
use http::{Method, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Body;
use tokio::io::AsyncReadExt;

use super::connection::Connection;
use crate::pdk::body::{BoxError, ProxyBody};
use crate::proxy::framing::{content_length, ends_in_chunked, has_token, plain_length};
use crate::proxy::timed_write;

/// The largest response head accepted (nginx's default
/// `proxy_buffer_size` is 4 or 8 KiB; hyper's client allowed ~400 KiB).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The most response headers accepted (hyper's client's limit).
const MAX_HEADERS: usize = 100;

/// How much more room a read asks for.
const READ_CHUNK: usize = 8 * 1024;

/// A body frame up to this size is copied next to its chunk framing and
/// written with one `write()`; larger ones are written separately.
const COALESCE_BYTES: usize = 16 * 1024;

/// The request to send, its headers already prepared for the upstream.
pub struct Outgoing<'a> {
    pub method: &'a Method,
    /// The request target; empty means `/`.
    pub path_and_query: &'a str,
    pub headers: HeaderMap,
    /// How long a write may stay blocked (the service's `write_timeout`).
    pub write_timeout: Duration,
}

/// Why an exchange failed on the upstream's side.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The connection ended before a complete response head arrived.
    #[error("the upstream closed the connection before a complete response head")]
    Closed,
    /// Reading or writing the connection failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The response head is not HTTP/1.x.
    #[error("malformed response head: {0}")]
    Malformed(httparse::Error),
    /// The response head did not fit in [`MAX_HEAD_BYTES`].
    #[error("response head larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    /// The head parsed but says something the proxy cannot follow.
    #[error("{0}")]
    Invalid(&'static str),
    /// The upstream took nothing of the request for the write timeout.
    #[error("the upstream took nothing of the request for {0:?}")]
    WriteTimeout(Duration),
}

impl ExchangeError {
    /// Whether the connection closed or was reset before any response
    /// (an upstream closing an idle keep-alive connection as the request
    /// arrived): the request may be sent again if it is idempotent.
    pub fn closed_before_response(&self) -> bool {
        match self {
            ExchangeError::Closed => true,
            ExchangeError::Io(error) => matches!(
                error.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}

/// Why sending the request failed.
#[derive(Debug)]
pub enum SendFailure {
    /// The upstream connection failed.
    Exchange(ExchangeError),
    /// The client's own body failed (a broken chunked encoding).
    RequestBody(BoxError),
}

impl SendFailure {
    /// A failed write of the request: a timeout, or the connection's error.
    fn write(error: io::Error, timeout: Duration) -> Self {
        SendFailure::Exchange(match error.kind() {
            io::ErrorKind::TimedOut => ExchangeError::WriteTimeout(timeout),
            _ => ExchangeError::Io(error),
        })
    }
}

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestFraming {
    /// No body.
    None,
    /// `Content-Length` (the client's, or added for a body of known size).
    Length,
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Writes the request head and body. The body is taken out of `body` once
/// it is about to be read; an empty body stays there (it can be sent
/// again as it is).
pub async fn write_request(
    connection: &mut Connection,
    request: &mut Outgoing<'_>,
    body: &mut Option<ProxyBody>,
) -> Result<(), SendFailure> {
    let mut sending = body.take_if(|body| !body.is_end_stream());
    let framing = request_framing(&mut request.headers, sending.as_ref());
    connection.write_buf.clear();
    encode_head(&mut connection.write_buf, request);
    let mut ended = true;
    if let Some(body) = sending.as_mut() {
        // The first frame goes with the head when it is already there.
        match poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await {
            Poll::Ready(Some(frame)) => {
                let frame = frame.map_err(SendFailure::RequestBody)?;
                if let Ok(data) = frame.into_data() {
                    encode_data(&mut connection.write_buf, framing, &data);
                }
                ended = body.is_end_stream();
            }
            Poll::Ready(None) => {}
            Poll::Pending => ended = false,
        }
    }
    if ended && framing == RequestFraming::Chunked {
        connection.write_buf.extend_from_slice(b"0\r\n\r\n");
    }
    let timeout = request.write_timeout;
    let Connection {
        stream, write_buf, ..
    } = &mut *connection;
    timed_write::write_all(stream, write_buf, timeout)
        .await
        .map_err(|error| SendFailure::write(error, timeout))?;
    if let (false, Some(body)) = (ended, sending) {
        write_body(connection, framing, body, timeout).await?;
    }
    timed_write::flush(&mut connection.stream, timeout)
        .await
        .map_err(|error| SendFailure::write(error, timeout))
}

/// Decides the body's framing and sets the one header that says it: the
/// body's exact size as `Content-Length` (the client's field is kept when
/// it is that one plain value, as it is after the HTTP/1.1 server's and
/// hyper's checks), else chunked with no `Content-Length`. Without a body,
/// only a single `Content-Length: 0` may stay. The upstream never gets a
/// length other than the body sent, nor two of them.
fn request_framing(headers: &mut HeaderMap, body: Option<&ProxyBody>) -> RequestFraming {
    let Some(body) = body else {
        if !is_single_length(headers, 0) {
            headers.remove(CONTENT_LENGTH);
        }
        return RequestFraming::None;
    };
    if let Some(len) = body.size_hint().exact() {
        if !is_single_length(headers, len) {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
        return RequestFraming::Length;
    }
    headers.remove(CONTENT_LENGTH);
    headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    RequestFraming::Chunked
}

/// Whether `headers` hold exactly one `Content-Length`, the plain number
/// `length`.
fn is_single_length(headers: &HeaderMap, length: u64) -> bool {
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => plain_length(value.as_bytes()) == Some(length),
        _ => false,
    }
}

/// `METHOD target HTTP/1.1`, the headers and the blank line.
fn encode_head(buf: &mut Vec<u8>, request: &Outgoing<'_>) {
    buf.extend_from_slice(request.method.as_str().as_bytes());
    buf.push(b' ');
    let target = match request.path_and_query {
        "" => "/",
        target => target,
    };
    buf.extend_from_slice(target.as_bytes());
    buf.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &request.headers {
        buf.extend_from_slice(name.as_str().as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    buf.extend_from_slice(b"\r\n");
}

/// Appends `data` with its chunk framing when chunked.
fn encode_data(buf: &mut Vec<u8>, framing: RequestFraming, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    if framing == RequestFraming::Chunked {
        encode_chunk_size(buf, data.len());
        buf.extend_from_slice(data);
        buf.extend_from_slice(b"\r\n");
    } else {
        buf.extend_from_slice(data);
    }
}

fn encode_chunk_size(buf: &mut Vec<u8>, len: usize) {
    use std::io::Write as _;
    // Writing into a Vec cannot fail.
    let _ = write!(buf, "{len:x}\r\n");
}

/// Streams the rest of a body after its first frame; each write may stay
/// blocked for `timeout`.
async fn write_body(
    connection: &mut Connection,
    framing: RequestFraming,
    mut body: ProxyBody,
    timeout: Duration,
) -> Result<(), SendFailure> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(SendFailure::RequestBody)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers are not forwarded
        };
        write_data(connection, framing, data, timeout)
            .await
            .map_err(|error| SendFailure::write(error, timeout))?;
    }
    if framing == RequestFraming::Chunked {
        timed_write::write_all(&mut connection.stream, b"0\r\n\r\n", timeout)
            .await
            .map_err(|error| SendFailure::write(error, timeout))?;
    }
    Ok(())
}

/// Writes one body frame: small ones with their framing in one write.
async fn write_data(
    connection: &mut Connection,
    framing: RequestFraming,
    data: Bytes,
    timeout: Duration,
) -> io::Result<()> {
    let Connection {
        stream, write_buf, ..
    } = &mut *connection;
    write_buf.clear();
    if data.len() <= COALESCE_BYTES {
        encode_data(write_buf, framing, &data);
        return timed_write::write_all(stream, write_buf, timeout).await;
    }
    let chunked = framing == RequestFraming::Chunked;
    if chunked {
        encode_chunk_size(write_buf, data.len());
        timed_write::write_all(stream, write_buf, timeout).await?;
    }
    timed_write::write_all(stream, &data, timeout).await?;
    if chunked {
        timed_write::write_all(stream, b"\r\n", timeout).await?;
    }
    Ok(())
}

/// A response head and how its body is delimited.
pub struct Head {
    pub response: Response<()>,
    pub framing: Framing,
    /// Whether the connection may carry another request afterwards.
    pub keep_alive: bool,
}

/// How a response body is delimited (RFC 9112 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: a response to HEAD, 1xx, 204, 304, or `Content-Length: 0`.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the upstream closes.
    UntilClose,
    /// No body: the upstream switched to the protocol a WebSocket
    /// handshake asked for, the connection now carries that (a `101`).
    Switched,
}

/// Reads the final response head to a `method` request; `upgrade` when
/// the request was a WebSocket handshake, which a `101` may answer.
pub async fn read_head(
    connection: &mut Connection,
    method: &Method,
    upgrade: bool,
) -> Result<Head, ExchangeError> {
    loop {
        if let Some(response) = parse_head(&mut connection.read_buf)? {
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                return switched(response, upgrade);
            }
            if response.status().is_informational() {
                continue; // 100 Continue and friends: the real head follows
            }
            let mut response = response;
            let framing = response_framing(method, response.status(), response.headers())?;
            one_length(response.headers_mut());
            let keep_alive = framing != Framing::UntilClose
                && keeps_alive(response.version(), response.headers());
            return Ok(Head {
                response,
                framing,
                keep_alive,
            });
        }
        if connection.read_buf.len() >= MAX_HEAD_BYTES {
            return Err(ExchangeError::HeadTooLarge);
        }
        connection.read_buf.reserve(READ_CHUNK);
        if connection.stream.read_buf(&mut connection.read_buf).await? == 0 {
            return Err(ExchangeError::Closed);
        }
    }
}

/// A `101`: the end of the exchange when it answers a WebSocket handshake
/// and switches to `websocket`; a broken exchange otherwise.
fn switched(response: Response<()>, upgrade: bool) -> Result<Head, ExchangeError> {
    if !upgrade {
        return Err(ExchangeError::Invalid("the upstream switched protocols"));
    }
    if crate::proxy::tunnel::switched_protocol(response.headers()).is_none() {
        return Err(ExchangeError::Invalid(
            "the upstream switched to another protocol than websocket",
        ));
    }
    Ok(Head {
        response,
        framing: Framing::Switched,
        keep_alive: false,
    })
}

/// A header's name and the bytes of its value within the head.
type HeaderSlot = Option<(HeaderName, Range<usize>)>;

/// Takes a complete response head off the front of `buf`, if there is one.
fn parse_head(buf: &mut BytesMut) -> Result<Option<Response<()>>, ExchangeError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut slots);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(ExchangeError::Malformed(error)),
    };
    let status = parsed
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or(ExchangeError::Invalid("invalid response status"))?;
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    // Names now; values once the head is frozen, as slices of it.
    let start = buf.as_ptr() as usize;
    let mut names: [HeaderSlot; MAX_HEADERS] = [const { None }; MAX_HEADERS];
    let count = parsed.headers.len();
    for (slot, header) in names.iter_mut().zip(parsed.headers.iter()) {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| ExchangeError::Invalid("invalid response header name"))?;
        let offset = header.value.as_ptr() as usize - start;
        *slot = Some((name, offset..offset + header.value.len()));
    }
    let head = buf.split_to(head_len).freeze();
    let mut headers = HeaderMap::with_capacity(count);
    for (name, range) in names.into_iter().take(count).flatten() {
        let value = HeaderValue::from_maybe_shared(head.slice(range))
            .map_err(|_| ExchangeError::Invalid("invalid response header value"))?;
        headers.append(name, value);
    }
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    Ok(Some(response))
}

/// The body framing of a response (RFC 9112 6.3).
pub fn response_framing(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<Framing, ExchangeError> {
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    if let Some(codings) = headers.get_all(TRANSFER_ENCODING).iter().next_back() {
        return Ok(if ends_in_chunked(codings.as_bytes()) {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    Ok(match response_length(headers)? {
        Some(0) => Framing::Empty,
        Some(len) => Framing::Length(len),
        None => Framing::UntilClose,
    })
}

/// The `Content-Length`, if any; repeated values (in one field or in
/// several) must agree.
fn response_length(headers: &HeaderMap) -> Result<Option<u64>, ExchangeError> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let parsed = content_length(value.as_bytes())
            .ok_or(ExchangeError::Invalid("invalid content-length"))?;
        if length.is_some_and(|known| known != parsed) {
            return Err(ExchangeError::Invalid("conflicting content-length values"));
        }
        length = Some(parsed);
    }
    Ok(length)
}

/// Leaves the response at most one `Content-Length`, holding the one value
/// the framing was validated against (RFC 9110 8.6, 9112 6.3): none next
/// to a `Transfer-Encoding` (which overrides it), the parsed number in
/// place of a list of identical values (`5, 5`) or of repeated fields, and
/// none when the value is invalid on a response whose framing did not need
/// it (HEAD, 304). A single plain value is left as it is.
fn one_length(headers: &mut HeaderMap) {
    if headers.contains_key(TRANSFER_ENCODING) {
        headers.remove(CONTENT_LENGTH);
        return;
    }
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    match (values.next(), values.next()) {
        (None, _) => {}
        (Some(value), None) if plain_length(value.as_bytes()).is_some() => {}
        _ => match response_length(headers) {
            Ok(Some(length)) => {
                headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
            }
            _ => {
                headers.remove(CONTENT_LENGTH);
            }
        },
    }
}

/// Whether the upstream keeps the connection open after this response:
/// HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
/// `Connection: keep-alive`.
fn keeps_alive(version: Version, headers: &HeaderMap) -> bool {
    let listed = |token: &[u8]| {
        headers
            .get_all(CONNECTION)
            .iter()
            .any(|value| has_token(value.as_bytes(), token))
    };
    if version == Version::HTTP_10 {
        listed(b"keep-alive")
    } else {
        !listed(b"close")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<Response<()>>, ExchangeError> {
        parse_head(&mut BytesMut::from(text))
    }

    #[test]
    fn heads_parse_with_their_headers() {
        let mut buf = BytesMut::from("HTTP/1.1 201 Created\r\nA: 1\r\nB: x y\r\nA: 2\r\n\r\nbody");
        let response = parse_head(&mut buf).unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.version(), Version::HTTP_11);
        let values: Vec<_> = response.headers().get_all("a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(response.headers()["b"], "x y");
        assert_eq!(&buf[..], b"body", "the body stays in the buffer");
    }

    #[test]
    fn partial_and_broken_heads() {
        assert!(head("HTTP/1.1 200 OK\r\nA: 1\r\n").unwrap().is_none());
        assert!(head("").unwrap().is_none());
        assert!(matches!(
            head("SSH-2.0-OpenSSH\r\n\r\n"),
            Err(ExchangeError::Malformed(_))
        ));
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(*name, HeaderValue::from_static(value));
            }
            map
        };
        let ok = StatusCode::OK;
        let framing = |method, status, pairs| response_framing(&method, status, &headers(pairs));
        assert_eq!(
            framing(Method::GET, ok, &[("content-length", "5")]).unwrap(),
            Framing::Length(5)
        );
        assert_eq!(
            framing(Method::HEAD, ok, &[("content-length", "5")]).unwrap(),
            Framing::Empty
        );
        assert_eq!(
            framing(Method::GET, StatusCode::NO_CONTENT, &[]).unwrap(),
            Framing::Empty
        );
        assert_eq!(
            framing(
                Method::GET,
                StatusCode::NOT_MODIFIED,
                &[("content-length", "5")]
            )
            .unwrap(),
            Framing::Empty
        );
        assert_eq!(
            framing(Method::GET, ok, &[("content-length", "0")]).unwrap(),
            Framing::Empty
        );
        assert_eq!(framing(Method::GET, ok, &[]).unwrap(), Framing::UntilClose);
        let chunked = [
            ("transfer-encoding", "gzip, Chunked"),
            ("content-length", "5"),
        ];
        assert_eq!(
            framing(Method::GET, ok, &chunked).unwrap(),
            Framing::Chunked
        );
        assert_eq!(
            framing(Method::GET, ok, &[("transfer-encoding", "gzip")]).unwrap(),
            Framing::UntilClose
        );
        assert_eq!(
            framing(Method::GET, ok, &[("content-length", "5, 5")]).unwrap(),
            Framing::Length(5)
        );
        assert!(framing(
            Method::GET,
            ok,
            &[("content-length", "5"), ("content-length", "6")]
        )
        .is_err());
        assert!(framing(Method::GET, ok, &[("content-length", "+5")]).is_err());
    }

    #[test]
    fn responses_keep_one_validated_content_length() {
        let normalised = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(*name, HeaderValue::from_static(value));
            }
            one_length(&mut map);
            let lengths: Vec<_> = map
                .get_all(CONTENT_LENGTH)
                .iter()
                .map(|value| value.to_str().unwrap().to_owned())
                .collect();
            lengths
        };
        assert_eq!(normalised(&[("content-length", "31")]), ["31"]);
        assert_eq!(normalised(&[("content-length", "31, 31")]), ["31"]);
        assert_eq!(
            normalised(&[("content-length", "31"), ("content-length", "31")]),
            ["31"]
        );
        assert_eq!(
            normalised(&[("transfer-encoding", "chunked"), ("content-length", "5")]),
            Vec::<String>::new()
        );
        assert_eq!(
            normalised(&[("content-length", "abc")]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn keep_alive_by_version_and_connection() {
        let with = |value: &'static str| {
            let mut map = HeaderMap::new();
            map.insert(CONNECTION, HeaderValue::from_static(value));
            map
        };
        assert!(keeps_alive(Version::HTTP_11, &HeaderMap::new()));
        assert!(!keeps_alive(Version::HTTP_11, &with("Close")));
        assert!(!keeps_alive(Version::HTTP_10, &HeaderMap::new()));
        assert!(keeps_alive(Version::HTTP_10, &with("Keep-Alive")));
    }

    #[test]
    fn the_request_length_is_the_body_size_and_one_field() {
        let lengths = |headers: &HeaderMap| -> Vec<String> {
            headers
                .get_all(CONTENT_LENGTH)
                .iter()
                .map(|value| value.to_str().unwrap().to_owned())
                .collect()
        };
        let with = |pairs: &[&'static str]| {
            let mut headers = HeaderMap::new();
            for value in pairs {
                headers.append(CONTENT_LENGTH, HeaderValue::from_static(value));
            }
            headers
        };
        let body = crate::pdk::body::full("hello");
        let mut kept = with(&["5"]);
        assert_eq!(
            request_framing(&mut kept, Some(&body)),
            RequestFraming::Length
        );
        assert_eq!(lengths(&kept), ["5"]);
        let mut two = with(&["5", "500"]);
        assert_eq!(
            request_framing(&mut two, Some(&body)),
            RequestFraming::Length
        );
        assert_eq!(lengths(&two), ["5"]);
        let mut wrong = with(&["7"]);
        request_framing(&mut wrong, Some(&body));
        assert_eq!(lengths(&wrong), ["5"]);
        let mut unknown = with(&["5"]);
        let streamed = crate::pdk::body::boxed(UnknownSize);
        assert_eq!(
            request_framing(&mut unknown, Some(&streamed)),
            RequestFraming::Chunked
        );
        assert!(lengths(&unknown).is_empty());
        assert_eq!(unknown[TRANSFER_ENCODING], "chunked");
        let mut none = with(&["7"]);
        assert_eq!(request_framing(&mut none, None), RequestFraming::None);
        assert!(lengths(&none).is_empty());
        let mut zero = with(&["0"]);
        request_framing(&mut zero, None);
        assert_eq!(lengths(&zero), ["0"]);
    }

    /// A body of unknown size that never yields.
    struct UnknownSize;

    impl Body for UnknownSize {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
            Poll::Pending
        }
    }

    #[test]
    fn heads_encode_with_their_framing() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("upstream"));
        let body = crate::pdk::body::full("hello");
        assert_eq!(
            request_framing(&mut headers, Some(&body)),
            RequestFraming::Length
        );
        let mut buf = Vec::new();
        let request = Outgoing {
            method: &Method::POST,
            path_and_query: "",
            headers,
            write_timeout: Duration::from_secs(1),
        };
        encode_head(&mut buf, &request);
        assert_eq!(
            buf,
            b"POST / HTTP/1.1\r\nhost: upstream\r\ncontent-length: 5\r\n\r\n"
        );
        let mut chunk = Vec::new();
        encode_data(&mut chunk, RequestFraming::Chunked, &[b'x'; 26]);
        assert!(chunk.starts_with(b"1a\r\nxxx"));
        assert!(chunk.ends_with(b"x\r\n"));
    }
}
