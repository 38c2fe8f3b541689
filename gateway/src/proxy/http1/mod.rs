//! The proxy's own HTTP/1.1 server, in place of hyper's.
//!
//! One task per connection, as nginx does it: the connection's task parses
//! each request head from a read buffer it keeps, calls
//! [`Proxy::handle`](crate::proxy::Proxy::handle) in place (no channel, no
//! spawned task), writes the response and loops for keep-alive. hyper
//! still serves HTTP/2: [`serve`] hands a connection that opens with the
//! HTTP/2 preface back to the listener.
//!
//! - `connection.rs`: the per-connection loop (read head, exchange, take
//!   the read side back, keep alive or close);
//! - `head.rs`: request head parsing (httparse), framing and keep-alive
//!   rules, 400/414/431/501;
//! - `request_body.rs`: `Content-Length` and chunked request bodies that
//!   own the read side while they are read, `100 Continue`, the client
//!   body timeout;
//! - `response_writer.rs`: response framing and writing, under the send
//!   timeout;
//! - `signals.rs`: the header read deadline and graceful shutdown;
//! - `io.rs`: the read buffer, splitting a stream, replaying bytes;
//! - `date.rs`: the cached `Date` header.

mod connection;
mod date;
mod head;
mod io;
mod request_body;
mod response_writer;
mod signals;

use bytes::BytesMut;

pub(in crate::proxy) use head::{BodyFraming, HeadParser};
pub(in crate::proxy) use io::{Rewind, Split};
pub(in crate::proxy) use signals::Shutdown;

use super::{Proxy, ProxySettings};
use crate::pdk::Downstream;
use connection::{wait_for_bytes, Connection, Waited};
use io::{Reader, READ_CHUNK};
use signals::HeadDeadline;

/// The smallest request head limit (hyper's smallest read buffer, which
/// the setting used to be).
const MIN_HEAD_LIMIT: usize = 8192;

/// What HTTP/2 connections open with (RFC 9113 3.4).
const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The longest request head accepted: `max_header_bytes`, at least 8 KiB.
pub(in crate::proxy) fn head_limit(settings: &ProxySettings) -> usize {
    settings.max_header_bytes.max(MIN_HEAD_LIMIT)
}

/// What a connection's first bytes say.
enum Opening {
    /// The HTTP/2 preface.
    Http2,
    /// Anything else: HTTP/1.x (or garbage, which gets a 400).
    Http1,
    /// Nothing came (end of stream, deadline, shutdown).
    Gone,
}

/// Serves HTTP/1.x on `stream` until it closes. Returns the stream, with
/// the bytes read from it put back, when it opened with the HTTP/2 preface
/// instead.
pub(in crate::proxy) async fn serve<S: Split>(
    stream: S,
    proxy: &Proxy,
    downstream: Downstream,
    shutdown: &mut Shutdown,
) -> Option<Rewind<S>> {
    let mut deadline = HeadDeadline::new(proxy.settings().header_read_timeout);
    let mut reader = Reader::new(stream, BytesMut::with_capacity(READ_CHUNK));
    let opening = sniff(&mut reader, &mut deadline, shutdown).await;
    let (stream, buf) = reader.into_parts();
    match opening {
        Opening::Http2 => return Some(Rewind::new(stream, buf.freeze())),
        Opening::Gone => return None,
        Opening::Http1 => {}
    }
    let (read, write) = stream.split();
    let reader = Reader::new(read, buf);
    Connection::new(proxy, downstream, reader, write, deadline, shutdown)
        .run()
        .await;
    None
}

/// Reads until the first bytes tell HTTP/2 from HTTP/1.x (usually the
/// first read does).
async fn sniff<S: Split>(
    reader: &mut Reader<S>,
    deadline: &mut HeadDeadline,
    shutdown: &mut Shutdown,
) -> Opening {
    loop {
        let seen = reader.buf.len().min(HTTP2_PREFACE.len());
        if reader.buf[..seen] != HTTP2_PREFACE[..seen] {
            return Opening::Http1;
        }
        if seen == HTTP2_PREFACE.len() {
            return Opening::Http2;
        }
        match wait_for_bytes(reader, deadline, shutdown).await {
            Waited::Read => {}
            Waited::Closed | Waited::Expired | Waited::ShuttingDown => return Opening::Gone,
        }
    }
}

#[cfg(test)]
mod tests;
