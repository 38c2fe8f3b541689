//! Parsing an HTTP/1.x request head into an `http` request.
//!
//! [`HeadParser::parse`] runs `httparse` over the connection's read buffer
//! and, once a head is complete, splits it off the buffer: the URI and the
//! header values are slices of that one allocation (no copy), the header
//! map is sized for the header count. It then decides what RFC 9112 says
//! about the message, as nginx does:
//!
//! - the body framing: `Transfer-Encoding: chunked` (one field, exactly
//!   that coding: any other coding gets 501, a repeated field or one in an
//!   HTTP/1.0 request 400), else `Content-Length` (one field holding one
//!   plain number: a list such as `31, 31` or a repeated field gets 400),
//!   else no body. With both, `Transfer-Encoding` wins, `Content-Length`
//!   is removed and the connection closes afterwards;
//! - keep-alive: HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
//!   `Connection: keep-alive`; never after a `CONNECT`, which is not
//!   tunnelled;
//! - `Expect: 100-continue` (HTTP/1.1 with a body only).
//!
//! A head that does not parse is refused: 414 when the request line alone
//! is longer than the limit, 431 when the head is (or has more than
//! [`MAX_HEADERS`] fields), 400 `Request header or cookie too large` for a
//! header line longer than [`MAX_HEADER_LINE`] (nginx's
//! `large_client_header_buffers`, whose 494 Kong turns into that 400), 400
//! for anything malformed. Up to [`STACK_HEADERS`] fields are parsed into
//! an array on the stack; a head with more is parsed again into a heap one.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{header, Method, Request, StatusCode, Uri, Version};

pub(in crate::proxy) use crate::proxy::framing::has_token;
use crate::proxy::framing::{is_only_chunked, plain_length};

/// The most header fields a request may have. Kong (nginx) has no count
/// limit, only the size ones; hyper's was 100. Beyond it: 431.
pub(in crate::proxy) const MAX_HEADERS: usize = 256;

/// Header fields parsed without a heap allocation (hyper's old limit, more
/// than any usual request has).
const STACK_HEADERS: usize = 100;

/// The longest header line (name, value, separators and CRLF), as nginx's
/// default `large_client_header_buffers 4 8k` allows.
pub(in crate::proxy) const MAX_HEADER_LINE: usize = 8 * 1024;

/// The message of the 400 for a header line over [`MAX_HEADER_LINE`]
/// (Kong's text for nginx's 494).
pub(in crate::proxy) const HEADER_TOO_LARGE: &str = "Request header or cookie too large";

/// The longest request target the `http` crate's `Uri` accepts.
const MAX_URI_LEN: usize = u16::MAX as usize - 1;

/// How the request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::proxy) enum BodyFraming {
    /// No body.
    Empty,
    /// `Content-Length` bytes (more than zero).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub(in crate::proxy) struct Head {
    /// Method, URI, version and headers.
    pub(in crate::proxy) parts: http::request::Parts,
    /// How the body that follows is delimited.
    pub(in crate::proxy) body: BodyFraming,
    /// Whether the connection may serve another request after this one.
    pub(in crate::proxy) keep_alive: bool,
    /// The client waits for `100 Continue` before sending the body.
    pub(in crate::proxy) expect_continue: bool,
}

/// Why a request head is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(in crate::proxy) enum HeadError {
    /// The request line (or the URI alone) is too long.
    #[error("the request line is longer than {0} bytes")]
    LineTooLong(usize),
    /// The head is longer than the limit.
    #[error("the request head is longer than {0} bytes")]
    TooLarge(usize),
    /// More header fields than [`MAX_HEADERS`].
    #[error("more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    /// One header line is longer than [`MAX_HEADER_LINE`].
    #[error("a header line is longer than {MAX_HEADER_LINE} bytes")]
    HeaderLineTooLong,
    /// A transfer coding the proxy does not implement.
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
    /// Not a valid HTTP/1.x request head.
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
}

impl HeadError {
    /// The status the client gets: 414, 431, 501 or 400.
    pub(in crate::proxy) fn status(&self) -> StatusCode {
        match self {
            HeadError::LineTooLong(_) => StatusCode::URI_TOO_LONG,
            HeadError::TooLarge(_) | HeadError::TooManyHeaders => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            HeadError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            HeadError::HeaderLineTooLong | HeadError::Malformed(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The message of the error body, when it is not the status's default.
    pub(in crate::proxy) fn message(&self) -> Option<&'static str> {
        match self {
            HeadError::HeaderLineTooLong => Some(HEADER_TOO_LARGE),
            _ => None,
        }
    }
}

/// Byte ranges of one header field within the head.
#[derive(Debug, Clone, Copy)]
struct FieldIndices {
    name: (usize, usize),
    value: (usize, usize),
}

/// Parses request heads of at most `limit` bytes; keeps its scratch space
/// across the requests of a connection.
pub(in crate::proxy) struct HeadParser {
    limit: usize,
    fields: Vec<FieldIndices>,
}

impl HeadParser {
    /// A parser refusing heads longer than `limit` bytes.
    pub(in crate::proxy) fn new(limit: usize) -> Self {
        HeadParser {
            limit,
            fields: Vec::new(),
        }
    }

    /// The longest head accepted, in bytes.
    pub(in crate::proxy) fn limit(&self) -> usize {
        self.limit
    }

    /// The head at the start of `buf`, split off it; `Ok(None)` when more
    /// bytes are needed (and may still fit the limit).
    pub(in crate::proxy) fn parse(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<Head>, HeadError> {
        let Some(line) = self.locate(buf)? else {
            return Ok(None);
        };
        let head = buf.split_to(line.head_len).freeze();
        self.build(&head, &line).map(Some)
    }

    /// Runs httparse: records where the parts are, or says why not. Parses
    /// into a stack array first, into a heap one only for a head with more
    /// fields than that holds.
    fn locate(&mut self, buf: &[u8]) -> Result<Option<RequestLine>, HeadError> {
        // Only the first `limit` bytes are looked at: a head that does not
        // end within them is refused for its size whatever follows, so the
        // answer never depends on how the bytes were split into reads.
        let buf = &buf[..buf.len().min(self.limit)];
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
        match self.locate_with(buf, &mut headers) {
            Err(HeadError::TooManyHeaders) => {
                let mut headers = Vec::with_capacity(MAX_HEADERS);
                headers.resize_with(MAX_HEADERS, MaybeUninit::uninit);
                self.locate_with(buf, &mut headers)
            }
            located => located,
        }
    }

    /// [`Self::locate`] with room for `headers.len()` fields.
    fn locate_with<'b>(
        &mut self,
        buf: &'b [u8],
        headers: &mut [MaybeUninit<httparse::Header<'b>>],
    ) -> Result<Option<RequestLine>, HeadError> {
        let mut request = httparse::Request::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
            &mut request,
            buf,
            headers,
        );
        let head_len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                // The head will be longer than what is here.
                return self.check_size(buf, buf.len() + 1).map(|()| None);
            }
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
            Err(error) => return Err(HeadError::Malformed(malformed_reason(error))),
        };
        let (Some(method), Some(path), Some(version)) =
            (request.method, request.path, request.version)
        else {
            return Err(HeadError::Malformed("incomplete request line"));
        };
        let base = buf.as_ptr() as usize;
        let range = |part: &[u8]| {
            let start = part.as_ptr() as usize - base;
            (start, start + part.len())
        };
        self.fields.clear();
        for field in request.headers.iter() {
            let indices = FieldIndices {
                name: range(field.name.as_bytes()),
                value: range(field.value),
            };
            // The line from the name to the value's end, `: ` and CRLF
            // (trailing spaces aside).
            if indices.value.1 - indices.name.0 + 2 > MAX_HEADER_LINE {
                return Err(HeadError::HeaderLineTooLong);
            }
            self.fields.push(indices);
        }
        Ok(Some(RequestLine {
            head_len,
            method: range(method.as_bytes()),
            path: range(path.as_bytes()),
            version: if version == 1 {
                Version::HTTP_11
            } else {
                Version::HTTP_10
            },
        }))
    }

    /// Refuses a head of `len` bytes (at least that many, when incomplete)
    /// that is longer than the limit: 414 when its first line alone does
    /// not fit in the limit, 400 when one of its header lines is longer
    /// than [`MAX_HEADER_LINE`] (nginx would have refused that line alone),
    /// else 431.
    fn check_size(&self, buf: &[u8], len: usize) -> Result<(), HeadError> {
        if len <= self.limit {
            return Ok(());
        }
        let within_limit = &buf[..self.limit.min(buf.len())];
        let mut lines = within_limit.split(|&byte| byte == b'\n');
        let request_line = lines.next().unwrap_or_default();
        if request_line.len() == within_limit.len() {
            return Err(HeadError::LineTooLong(self.limit));
        }
        if lines.any(|line| line.len() + 1 > MAX_HEADER_LINE) {
            return Err(HeadError::HeaderLineTooLong);
        }
        Err(HeadError::TooLarge(self.limit))
    }

    /// The request parts from the split-off `head`.
    fn build(&self, head: &Bytes, line: &RequestLine) -> Result<Head, HeadError> {
        let method = Method::from_bytes(slice(head, line.method))
            .map_err(|_| HeadError::Malformed("invalid method"))?;
        let target = head.slice(line.path.0..line.path.1);
        let target_len = target.len();
        let uri = Uri::from_maybe_shared(target).map_err(|_| {
            if target_len > MAX_URI_LEN {
                HeadError::LineTooLong(MAX_URI_LEN)
            } else {
                HeadError::Malformed("invalid request target")
            }
        })?;
        let mut message = Message::new(line.version);
        let mut headers = HeaderMap::with_capacity(self.fields.len());
        for field in &self.fields {
            let name = HeaderName::from_bytes(slice(head, field.name))
                .map_err(|_| HeadError::Malformed("invalid header name"))?;
            let value = HeaderValue::from_maybe_shared(head.slice(field.value.0..field.value.1))
                .map_err(|_| HeadError::Malformed("invalid header value"))?;
            message.take(&name, &value)?;
            headers.append(name, value);
        }
        let body = message.framing()?;
        if body == BodyFraming::Chunked && message.content_length.is_some() {
            headers.remove(header::CONTENT_LENGTH);
        }
        let keep_alive = message.keep_alive && method != Method::CONNECT;
        let expect_continue = message.expect_continue
            && line.version == Version::HTTP_11
            && body != BodyFraming::Empty;
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = method;
        parts.uri = uri;
        parts.version = line.version;
        parts.headers = headers;
        Ok(Head {
            parts,
            body,
            keep_alive,
            expect_continue,
        })
    }
}

/// Where the request line's parts are in the buffer, and the head's length.
struct RequestLine {
    head_len: usize,
    method: (usize, usize),
    path: (usize, usize),
    version: Version,
}

/// `bytes[range]`.
fn slice(bytes: &[u8], range: (usize, usize)) -> &[u8] {
    &bytes[range.0..range.1]
}

/// What the message's header fields say about its framing and connection.
struct Message {
    version: Version,
    content_length: Option<u64>,
    /// Whether the `Transfer-Encoding` field is exactly `chunked`; `None`
    /// without the header.
    chunked: Option<bool>,
    keep_alive: bool,
    closing: bool,
    expect_continue: bool,
}

impl Message {
    fn new(version: Version) -> Self {
        Message {
            version,
            content_length: None,
            chunked: None,
            keep_alive: version == Version::HTTP_11,
            closing: false,
            expect_continue: false,
        }
    }

    /// Takes note of one header field.
    fn take(&mut self, name: &HeaderName, value: &HeaderValue) -> Result<(), HeadError> {
        match *name {
            header::CONTENT_LENGTH => {
                if self.content_length.is_some() {
                    return Err(HeadError::Malformed("repeated Content-Length"));
                }
                let length = plain_length(value.as_bytes().trim_ascii())
                    .ok_or(HeadError::Malformed("invalid Content-Length"))?;
                self.content_length = Some(length);
            }
            header::TRANSFER_ENCODING => {
                if self.version != Version::HTTP_11 {
                    return Err(HeadError::Malformed("Transfer-Encoding in HTTP/1.0"));
                }
                if self.chunked.is_some() {
                    return Err(HeadError::Malformed("repeated Transfer-Encoding"));
                }
                self.chunked = Some(is_only_chunked(value.as_bytes()));
            }
            header::CONNECTION => {
                if self.closing || has_token(value.as_bytes(), b"close") {
                    self.closing = true;
                    self.keep_alive = false;
                } else if !self.keep_alive {
                    self.keep_alive = has_token(value.as_bytes(), b"keep-alive");
                }
            }
            header::EXPECT => {
                self.expect_continue = value.as_bytes().eq_ignore_ascii_case(b"100-continue");
            }
            _ => {}
        }
        Ok(())
    }

    /// The body framing, once every field was seen.
    fn framing(&mut self) -> Result<BodyFraming, HeadError> {
        match (self.chunked, self.content_length) {
            (Some(false), _) => Err(HeadError::NotImplemented(
                "a transfer coding other than chunked",
            )),
            (Some(true), length) => {
                if length.is_some() {
                    // Both framings: the message is suspect (RFC 9112 6.3).
                    self.keep_alive = false;
                }
                Ok(BodyFraming::Chunked)
            }
            (None, Some(0) | None) => Ok(BodyFraming::Empty),
            (None, Some(length)) => Ok(BodyFraming::Length(length)),
        }
    }
}

/// A short reason for an httparse error, for the log.
fn malformed_reason(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Token => "invalid method or request target",
        httparse::Error::Version => "invalid HTTP version",
        _ => "invalid request head",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8]) -> Result<Option<Head>, HeadError> {
        HeadParser::new(8192).parse(&mut BytesMut::from(text))
    }

    fn parsed(text: &[u8]) -> Head {
        parse(text).unwrap().expect("a complete head")
    }

    #[test]
    fn a_simple_get() {
        let mut buf = BytesMut::from(
            &b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\n\r\nNEXT"[..],
        );
        let head = HeadParser::new(8192).parse(&mut buf).unwrap().unwrap();
        assert_eq!(head.parts.method, Method::GET);
        assert_eq!(head.parts.uri, "/a?b=c");
        assert_eq!(head.parts.version, Version::HTTP_11);
        assert_eq!(head.parts.headers["host"], "x");
        let twos: Vec<_> = head.parts.headers.get_all("x-two").iter().collect();
        assert_eq!(twos, ["1", "2"]);
        assert_eq!(head.body, BodyFraming::Empty);
        assert!(head.keep_alive);
        assert!(!head.expect_continue);
        assert_eq!(&buf[..], b"NEXT", "the rest stays in the buffer");
    }

    #[test]
    fn partial_heads_need_more() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
        assert!(parse(b"GE").unwrap().is_none());
    }

    #[test]
    fn body_framing() {
        let length = parsed(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(length.body, BodyFraming::Length(5));
        let zero = parsed(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(zero.body, BodyFraming::Empty);
        let spaced = parsed(b"POST / HTTP/1.1\r\nContent-Length:  7 \r\n\r\n");
        assert_eq!(spaced.body, BodyFraming::Length(7));
        let chunked = parsed(b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(chunked.body, BodyFraming::Chunked);
        assert!(chunked.keep_alive);
        let both =
            parsed(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(both.body, BodyFraming::Chunked);
        assert!(!both.parts.headers.contains_key("content-length"));
        assert!(
            !both.keep_alive,
            "a request with both framings closes the connection"
        );
    }

    #[test]
    fn bad_framing_is_refused() {
        for text in [
            &b"POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            // RFC 9110 8.6 allows a list of identical values; nginx does
            // not, and an upstream may read it differently.
            b"POST / HTTP/1.1\r\nContent-Length: 31, 31\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 5,5\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let error = parse(text).expect_err(&String::from_utf8_lossy(text));
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{error}");
        }
    }

    #[test]
    fn transfer_codings_other_than_chunked_get_501() {
        for coding in [
            &b"gzip, chunked"[..],
            b"chunked, gzip",
            b"chunked, chunked",
            b"gzip",
            b"identity",
            b"chunked;q=1",
            b"xchunked",
        ] {
            let mut text = b"POST / HTTP/1.1\r\nTransfer-Encoding: ".to_vec();
            text.extend_from_slice(coding);
            text.extend_from_slice(b"\r\n\r\n");
            let error = parse(&text).expect_err(&String::from_utf8_lossy(&text));
            assert_eq!(error.status(), StatusCode::NOT_IMPLEMENTED, "{error}");
        }
    }

    #[test]
    fn a_header_line_over_8_kib_gets_400_header_too_large() {
        let line = |value_len: usize| {
            format!(
                "GET / HTTP/1.1\r\nHost: a\r\nCookie: {}\r\n\r\n",
                "c".repeat(value_len)
            )
        };
        let parse =
            |text: String| HeadParser::new(64 * 1024).parse(&mut BytesMut::from(text.as_bytes()));
        // `Cookie: ` and CRLF take 10 bytes: 8182 of value fill 8 KiB.
        assert!(parse(line(8182)).unwrap().is_some());
        let error = parse(line(8183)).unwrap_err();
        assert_eq!(error, HeadError::HeaderLineTooLong);
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error.message(), Some(HEADER_TOO_LARGE));
        // Also when the line makes the head too long before it ends.
        let mut parser = HeadParser::new(16 * 1024);
        let partial = format!("GET / HTTP/1.1\r\nX-Long: {}", "h".repeat(20 * 1024));
        let error = parser
            .parse(&mut BytesMut::from(partial.as_bytes()))
            .unwrap_err();
        assert_eq!(error, HeadError::HeaderLineTooLong);
        // Many lines under 8 KiB each are fine up to the head limit.
        let mut text = String::from("GET / HTTP/1.1\r\n");
        for n in 0..6 {
            text.push_str(&format!("X-{n}: {}\r\n", "v".repeat(8000)));
        }
        text.push_str("\r\n");
        assert!(HeadParser::new(64 * 1024)
            .parse(&mut BytesMut::from(text.as_bytes()))
            .unwrap()
            .is_some());
    }

    #[test]
    fn more_than_100_headers_parse_up_to_the_limit() {
        let mut text = String::from("GET / HTTP/1.1\r\n");
        for n in 0..MAX_HEADERS {
            text.push_str(&format!("X-{n}: v\r\n"));
        }
        text.push_str("\r\n");
        let head = HeadParser::new(64 * 1024)
            .parse(&mut BytesMut::from(text.as_bytes()))
            .unwrap()
            .unwrap();
        assert_eq!(head.parts.headers.len(), MAX_HEADERS);
        assert_eq!(head.parts.headers["x-255"], "v");
    }

    #[test]
    fn keep_alive_rules() {
        assert!(parsed(b"GET / HTTP/1.1\r\n\r\n").keep_alive);
        assert!(!parsed(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keep_alive);
        assert!(
            !parsed(b"GET / HTTP/1.1\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n")
                .keep_alive
        );
        assert!(!parsed(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(parsed(b"GET / HTTP/1.0\r\nConnection: foo, Keep-Alive\r\n\r\n").keep_alive);
        assert!(!parsed(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n").keep_alive);
    }

    #[test]
    fn expect_continue_needs_http_1_1_and_a_body() {
        let with_body = b"PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n";
        assert!(parsed(with_body).expect_continue);
        assert!(!parsed(b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n").expect_continue);
        assert!(
            !parsed(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
                .expect_continue
        );
    }

    #[test]
    fn malformed_heads_get_400() {
        for text in [
            &b"HELLO THERE\r\n\r\n"[..],
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
            b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/7.3\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nX-Bad: a\x01b\r\n\r\n",
            b"GET / HTTP/1.1\r\nX-Bad: a\x7fb\r\n\r\n",
            b"GET / HTTP/1.1\r\nX-Bad: a\rb\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
        ] {
            let error = parse(text).expect_err(&String::from_utf8_lossy(text));
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{error}");
        }
    }

    #[test]
    fn obs_text_values_are_kept() {
        let head = parsed(b"GET / HTTP/1.1\r\nX-Latin: caf\xe9\r\n\r\n");
        assert_eq!(head.parts.headers["x-latin"].as_bytes(), b"caf\xe9");
    }

    #[test]
    fn a_request_line_over_the_limit_gets_414() {
        let mut parser = HeadParser::new(100);
        let mut buf = BytesMut::from(format!("GET /{}", "a".repeat(200)).as_bytes());
        let error = parser.parse(&mut buf).unwrap_err();
        assert_eq!(error.status(), StatusCode::URI_TOO_LONG);
        // Just under the limit, the line may still end.
        let mut buf = BytesMut::from(format!("GET /{}", "a".repeat(90)).as_bytes());
        assert!(parser.parse(&mut buf).unwrap().is_none());
    }

    #[test]
    fn a_head_over_the_limit_gets_431() {
        let mut parser = HeadParser::new(100);
        let text = format!("GET / HTTP/1.1\r\nX-Long: {}\r\n\r\n", "h".repeat(200));
        let error = parser
            .parse(&mut BytesMut::from(text.as_bytes()))
            .unwrap_err();
        assert_eq!(error.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let partial = format!("GET / HTTP/1.1\r\nX-Long: {}", "h".repeat(200));
        let error = parser
            .parse(&mut BytesMut::from(partial.as_bytes()))
            .unwrap_err();
        assert_eq!(error.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        // Complete within the limit, followed by more bytes: fine.
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
        buf.extend_from_slice(&[b'x'; 300]);
        assert!(parser.parse(&mut buf).unwrap().is_some());
    }

    #[test]
    fn too_many_headers_get_431() {
        let mut text = String::from("GET / HTTP/1.1\r\n");
        for n in 0..=MAX_HEADERS {
            text.push_str(&format!("X-{n}: v\r\n"));
        }
        text.push_str("\r\n");
        let error = HeadParser::new(64 * 1024)
            .parse(&mut BytesMut::from(text.as_bytes()))
            .unwrap_err();
        assert_eq!(error, HeadError::TooManyHeaders);
        assert_eq!(error.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    #[test]
    fn a_uri_too_long_for_the_uri_type_gets_414() {
        let text = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI_LEN));
        let error = HeadParser::new(128 * 1024)
            .parse(&mut BytesMut::from(text.as_bytes()))
            .unwrap_err();
        assert_eq!(error.status(), StatusCode::URI_TOO_LONG);
    }

    #[test]
    fn content_length_values() {
        assert_eq!(plain_length(b"0"), Some(0));
        assert_eq!(plain_length(b"42"), Some(42));
        assert_eq!(plain_length(b"007"), Some(7));
        assert_eq!(plain_length(b"7,7"), None);
        assert_eq!(plain_length(b"+1"), None);
        assert_eq!(plain_length(b"1 2"), None);
        assert_eq!(plain_length(b""), None);
    }
}
