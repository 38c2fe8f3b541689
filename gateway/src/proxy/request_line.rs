//! 414 URI Too Long for an oversized request line.
//!
//! hyper reads a request head into a buffer of at most `max_header_bytes`
//! and answers 431 whenever a head does not fit, whatever part of it is
//! long. Kong (nginx) answers 414 when the request line itself is too long.
//! [`RequestLineGuard`] sits between the connection (TCP, or TLS once
//! decrypted) and hyper and watches the connection's first line: when
//! `limit` bytes (hyper's whole head buffer) have arrived without a line
//! feed, it keeps them from hyper, writes Kong's 414 itself and then ends
//! the stream, so hyper sees an incomplete head and closes without
//! answering. Once the first line feed has arrived, every read is a plain
//! pass-through (one `match` on the state).
//!
//! Only the first request of a connection is watched: knowing where a later
//! request starts on a kept-alive connection would mean parsing HTTP/1.1
//! framing (bodies, chunks) a second time next to hyper. A later request
//! with an oversized request line gets hyper's 431; both refuse it cleanly.
//! HTTP/2 is unaffected: its preface has a line feed at byte 16.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::HeaderMap;
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::headers;
use super::pipeline::new_request_id;
use super::respond;

/// Where the guard is in the connection.
enum State {
    /// Reading the first line: `len` bytes so far, no line feed yet.
    FirstLine { len: usize },
    /// The first line ended within the limit: reads pass through.
    Passing,
    /// The first line is too long: these bytes of the 414 are still to go.
    Refusing(Bytes),
    /// The 414 is out: reads report the end of the stream.
    Refused,
}

/// A connection whose first line, if longer than `limit` bytes, is
/// answered with 414 instead of reaching hyper (see the module doc).
pub struct RequestLineGuard<S> {
    inner: S,
    limit: usize,
    state: State,
}

impl<S> RequestLineGuard<S> {
    /// Watches the first line of `inner`; `limit` must be hyper's read
    /// buffer size, so that the guard acts before hyper would answer 431.
    pub fn new(inner: S, limit: usize) -> Self {
        RequestLineGuard {
            inner,
            limit,
            state: State::FirstLine { len: 0 },
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RequestLineGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Passing => return Pin::new(&mut this.inner).poll_read(cx, buf),
                State::FirstLine { len } => {
                    let before = buf.filled().len();
                    ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                    let read = &buf.filled()[before..];
                    if read.contains(&b'\n') {
                        this.state = State::Passing;
                    } else {
                        *len += read.len();
                        if *len >= this.limit {
                            // hyper must not see these bytes: its buffer
                            // would be full and it would answer 431.
                            buf.set_filled(before);
                            this.state = State::Refusing(uri_too_long());
                            continue;
                        }
                    }
                    return Poll::Ready(Ok(()));
                }
                State::Refusing(response) => {
                    while response.has_remaining() {
                        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, response))?;
                        if written == 0 {
                            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                        }
                        response.advance(written);
                    }
                    ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
                    this.state = State::Refused;
                }
                State::Refused => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RequestLineGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Kong's 414 `URI too long` as HTTP/1.1 bytes: the JSON error body (no
/// `Accept` header has been read), the gateway's usual headers, `Date` and
/// `Connection: close`.
fn uri_too_long() -> Bytes {
    let status = StatusCode::URI_TOO_LONG;
    let request_id = new_request_id();
    let response = respond::error(
        status,
        None,
        &HeaderMap::new(),
        &request_id,
        HeaderMap::new(),
    );
    let (mut head, body) = response.into_parts();
    headers::prepare_generated_response(&mut head.headers, Duration::ZERO, &request_id);
    let mut wire = BytesMut::with_capacity(512 + body.len());
    wire.put_slice(b"HTTP/1.1 ");
    wire.put_slice(status.as_str().as_bytes());
    wire.put_u8(b' ');
    wire.put_slice(status.canonical_reason().unwrap_or("").as_bytes());
    wire.put_slice(b"\r\n");
    for (name, value) in &head.headers {
        put_header(&mut wire, name.as_str(), value.as_bytes());
    }
    let date = httpdate::fmt_http_date(SystemTime::now());
    put_header(&mut wire, "date", date.as_bytes());
    put_header(&mut wire, "connection", b"close");
    wire.put_slice(b"\r\n");
    wire.put_slice(&body);
    wire.freeze()
}

/// Appends `name: value\r\n`.
fn put_header(wire: &mut BytesMut, name: &str, value: &[u8]) {
    wire.put_slice(name.as_bytes());
    wire.put_slice(b": ");
    wire.put_slice(value);
    wire.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Sends `request` to a guard with `limit` and returns what the guard
    /// let through and what it answered.
    async fn exchange(request: &[u8], limit: usize) -> (Vec<u8>, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        client.write_all(request).await.unwrap();
        client.shutdown().await.unwrap();
        let mut guard = RequestLineGuard::new(server, limit);
        let mut through = Vec::new();
        let mut chunk = [0u8; 100];
        loop {
            let read = guard.read(&mut chunk).await.unwrap();
            if read == 0 {
                break;
            }
            through.extend_from_slice(&chunk[..read]);
        }
        drop(guard);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        (through, answer)
    }

    #[tokio::test]
    async fn a_short_first_line_and_what_follows_pass_through() {
        let long_header = format!("x-long: {}\r\n", "h".repeat(500));
        let request = format!("GET / HTTP/1.1\r\nhost: a\r\n{long_header}\r\n");
        let (through, answer) = exchange(request.as_bytes(), 300).await;
        assert_eq!(through, request.as_bytes());
        assert!(answer.is_empty());
    }

    #[tokio::test]
    async fn a_first_line_reaching_the_limit_gets_414_and_is_withheld() {
        let request = format!("GET /{} HTTP/1.1\r\nhost: a\r\n\r\n", "a".repeat(1000));
        let (through, answer) = exchange(request.as_bytes(), 300).await;
        assert!(through.len() < 300, "{} bytes reached hyper", through.len());
        let answer = String::from_utf8(answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 414 URI Too Long\r\n"),
            "{answer}"
        );
        assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
        assert!(answer.contains("\r\nserver: kong/3.10.0\r\n"), "{answer}");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let length = format!("content-length: {}", body.len());
        assert!(head.contains(&length), "{answer}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["message"], "URI too long");
    }
}
