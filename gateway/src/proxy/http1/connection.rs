//! One HTTP/1.x connection, request after request, in one task.
//!
//! [`Connection::run`] loops over four phases:
//!
//! 1. [`Connection::read_head`]: parse the next head from the read buffer,
//!    reading more as needed, until the header read deadline. An idle
//!    connection closes quietly at the deadline, at the client's end of
//!    stream, or when a graceful shutdown starts.
//! 2. [`Connection::exchange`]: hand the request to the pipeline (its body,
//!    if any, takes the read side along; see `request_body.rs`), sending
//!    `100 Continue` when the body is first wanted, and write the response.
//! 3. [`Connection::take_reader_back`]: get the read side back from the
//!    body, draining a small unread rest so the connection stays in sync.
//! 4. keep alive, or, after a `101` that carries an upstream connection,
//!    [`Connection::tunnel`] (the WebSocket tunnel, `proxy/tunnel.rs`)
//!    until either side ends, or [`Connection::close`]: end the write direction and,
//!    when the client may still be sending (a refused head, an unread
//!    body), read and discard for a moment first ("lingering close", as
//!    nginx does), so that a reset does not destroy the response on its
//!    way.
//!
//! Malformed heads get 400, oversized ones 414, 431 or 400, unknown
//! transfer codings 501 (see `head.rs`), with Kong's error body, and the
//! connection closes.

use std::future::poll_fn;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::HeaderMap;
use http::{Method, Request, Response, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot::{self, error::TryRecvError};
use tokio::sync::Notify;

use super::head::{BodyFraming, Head, HeadError, HeadParser};
use super::io::{Reader, READ_CHUNK};
use super::request_body::{BodyEnd, Decoded, Decoder, IncomingBody, Returned};
use super::response_writer::{RequestFacts, ResponseWriter};
use super::signals::{HeadDeadline, Shutdown};
use crate::pdk::body::{self, ProxyBody};
use crate::pdk::response as respond;
use crate::pdk::Downstream;
use crate::proxy::{headers, new_request_id, tunnel, Proxy};

/// The most bytes of an unread request body read and discarded to keep
/// the connection; beyond it the connection closes instead.
const DRAIN_LIMIT: u64 = 64 * 1024;

/// How long draining an unread request body may take.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// How long a request body still held elsewhere (the upstream request
/// still sending it) is waited for after the response, before closing.
const RECLAIM_TIME: Duration = Duration::from_secs(1);

/// How long a lingering close reads and discards what the client sends.
const LINGER_TIME: Duration = Duration::from_secs(2);

/// What a wait for more bytes of a head ended with.
pub(super) enum Waited {
    /// More bytes arrived.
    Read,
    /// The client ended the stream (or it failed).
    Closed,
    /// The header read deadline passed.
    Expired,
    /// A graceful shutdown started while nothing of a request was read.
    ShuttingDown,
}

/// Reads more bytes into `reader`, unless the deadline passes or (with
/// nothing buffered) the shutdown starts first.
pub(super) async fn wait_for_bytes<R: AsyncRead + Unpin>(
    reader: &mut Reader<R>,
    deadline: &mut HeadDeadline,
    shutdown: &mut Shutdown,
) -> Waited {
    poll_fn(|cx| poll_bytes(cx, reader, deadline, shutdown)).await
}

fn poll_bytes<R: AsyncRead + Unpin>(
    cx: &mut Context<'_>,
    reader: &mut Reader<R>,
    deadline: &mut HeadDeadline,
    shutdown: &mut Shutdown,
) -> Poll<Waited> {
    if let Poll::Ready(read) = reader.poll_fill(cx, READ_CHUNK) {
        return Poll::Ready(match read {
            Ok(0) => Waited::Closed,
            Ok(_) => Waited::Read,
            Err(error) => {
                tracing::debug!(%error, "reading a request head failed");
                Waited::Closed
            }
        });
    }
    if reader.buf.is_empty() && shutdown.poll_started(cx).is_ready() {
        return Poll::Ready(Waited::ShuttingDown);
    }
    if deadline.poll_expired(cx).is_ready() {
        return Poll::Ready(Waited::Expired);
    }
    Poll::Pending
}

/// What follows an exchange.
enum Next {
    /// Read the next request.
    KeepAlive,
    /// Close; `linger` when the client may still be sending.
    Close { linger: bool },
}

/// A request body out with the pipeline.
struct PendingBody<R> {
    returned: oneshot::Receiver<Returned<R>>,
    /// Set with `Expect: 100-continue`.
    continue_wanted: Option<Arc<Notify>>,
    /// `100 Continue` went out.
    continue_sent: bool,
}

/// An HTTP/1.x connection (see the module doc).
pub(super) struct Connection<'a, R, W> {
    proxy: &'a Proxy,
    downstream: Downstream,
    /// `None` while a request body has it, or once it is lost.
    reader: Option<Reader<R>>,
    writer: ResponseWriter<W>,
    parser: HeadParser,
    deadline: HeadDeadline,
    shutdown: &'a mut Shutdown,
}

impl<'a, R, W> Connection<'a, R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin,
{
    /// A connection reading from `reader` and writing to `writer`;
    /// `deadline` runs for the first head already.
    pub(super) fn new(
        proxy: &'a Proxy,
        downstream: Downstream,
        reader: Reader<R>,
        writer: W,
        deadline: HeadDeadline,
        shutdown: &'a mut Shutdown,
    ) -> Self {
        let head_limit = super::head_limit(proxy.settings());
        Connection {
            proxy,
            downstream,
            reader: Some(reader),
            writer: ResponseWriter::new(writer, proxy.settings().send_timeout),
            parser: HeadParser::new(head_limit),
            deadline,
            shutdown,
        }
    }

    /// Serves requests until the connection ends.
    pub(super) async fn run(mut self) {
        let linger = loop {
            let head = match self.read_head().await {
                Ok(Some(head)) => head,
                Ok(None) => break false,
                Err(error) => {
                    tracing::debug!(client = %self.downstream.client_addr, %error, "refused a request head");
                    self.refuse(&error).await;
                    break true;
                }
            };
            match self.exchange(head).await {
                Next::KeepAlive => self.deadline.restart(),
                Next::Close { linger } => break linger,
            }
        };
        self.close(linger).await;
    }

    /// Phase 1: the next request head; `Ok(None)` closes quietly.
    async fn read_head(&mut self) -> Result<Option<Head>, HeadError> {
        let Connection {
            reader,
            parser,
            deadline,
            shutdown,
            ..
        } = self;
        let Some(reader) = reader.as_mut() else {
            return Ok(None);
        };
        // Bytes from the previous request's read may hold a whole head.
        let mut parse = !reader.buf.is_empty();
        loop {
            if parse {
                if let Some(head) = parser.parse(&mut reader.buf)? {
                    return Ok(Some(head));
                }
            }
            let before = reader.buf.len();
            match wait_for_bytes(reader, deadline, shutdown).await {
                // A head can only end with a line feed: parse again only
                // when one arrived (or the limit is reached), so that a
                // head trickling in is not parsed over and over.
                Waited::Read => {
                    parse =
                        reader.buf[before..].contains(&b'\n') || reader.buf.len() >= parser.limit();
                }
                Waited::Closed | Waited::Expired | Waited::ShuttingDown => return Ok(None),
            }
        }
    }

    /// Phase 2: the pipeline's response to `head`, written out.
    async fn exchange(&mut self, head: Head) -> Next {
        let Head {
            parts,
            body: framing,
            keep_alive,
            expect_continue,
        } = head;
        let request = RequestFacts {
            head: parts.method == Method::HEAD,
            version: parts.version,
            keep_alive,
        };
        let (body, mut pending) = match framing {
            BodyFraming::Empty => (body::empty(), None),
            BodyFraming::Length(length) => {
                self.lend_reader(Decoder::length(length), expect_continue)
            }
            BodyFraming::Chunked => self.lend_reader(Decoder::chunked(), expect_continue),
        };
        let proxy: &'a Proxy = self.proxy;
        let handled = proxy.handle(Request::from_parts(parts, body), self.downstream.clone());
        let mut response = match pending.as_mut() {
            Some(pending) if pending.continue_wanted.is_some() => {
                self.handle_with_continue(handled, pending).await
            }
            _ => handled.await,
        };
        // A handshake that came with a body is not switched: the body
        // would have to be read first.
        let switched = match pending {
            None => tunnel::take(&mut response),
            Some(_) => None,
        };
        let request = RequestFacts {
            keep_alive: request.keep_alive && !self.shutdown.is_started(),
            ..request
        };
        let keep_alive = match self.writer.write(response, &request).await {
            Ok(keep_alive) => keep_alive,
            Err(error) => {
                tracing::debug!(client = %self.downstream.client_addr, %error, "the response was cut short");
                return Next::Close { linger: false };
            }
        };
        if let Some(upstream) = switched {
            self.tunnel(upstream).await;
            return Next::Close { linger: false };
        }
        let next = match pending {
            Some(pending) => self.take_reader_back(pending, keep_alive).await,
            None => Next::KeepAlive,
        };
        match next {
            Next::KeepAlive if keep_alive => Next::KeepAlive,
            Next::KeepAlive => Next::Close {
                linger: self
                    .reader
                    .as_ref()
                    .is_some_and(|reader| !reader.buf.is_empty()),
            },
            close => close,
        }
    }

    /// Moves the read side into a request body decoded by `decoder`.
    fn lend_reader(
        &mut self,
        decoder: Decoder,
        expect_continue: bool,
    ) -> (ProxyBody, Option<PendingBody<R>>) {
        let Some(reader) = self.reader.take() else {
            return (body::empty(), None);
        };
        let continue_wanted = expect_continue.then(|| Arc::new(Notify::new()));
        let timeout = self.proxy.settings().client_body_timeout;
        let (body, returned) = IncomingBody::new(reader, decoder, continue_wanted.clone(), timeout);
        let pending = PendingBody {
            returned,
            continue_wanted,
            continue_sent: false,
        };
        (body.into_proxy_body(), Some(pending))
    }

    /// Awaits the pipeline, sending `100 Continue` if the request body is
    /// wanted before the response is ready.
    async fn handle_with_continue(
        &mut self,
        handled: impl std::future::Future<Output = Response<ProxyBody>>,
        pending: &mut PendingBody<R>,
    ) -> Response<ProxyBody> {
        let mut handled = pin!(handled);
        let Some(wanted) = pending.continue_wanted.clone() else {
            return handled.await;
        };
        tokio::select! {
            biased;
            response = &mut handled => response,
            () = wanted.notified() => {
                match self.writer.write_continue().await {
                    Ok(()) => pending.continue_sent = true,
                    Err(error) => tracing::debug!(%error, "cannot send 100 Continue"),
                }
                handled.await
            }
        }
    }

    /// Phase 3: the read side back from the request body, with the body
    /// drained if the pipeline left some of it unread.
    async fn take_reader_back(&mut self, pending: PendingBody<R>, keep_alive: bool) -> Next {
        let PendingBody {
            mut returned,
            continue_wanted,
            continue_sent,
        } = pending;
        let returned = match returned.try_recv() {
            Ok(returned) => returned,
            // Something still holds the body (the upstream request sending
            // it): wait a little if the connection is to go on.
            Err(TryRecvError::Empty) if keep_alive => {
                match tokio::time::timeout(RECLAIM_TIME, returned).await {
                    Ok(Ok(returned)) => returned,
                    _ => return Next::Close { linger: false },
                }
            }
            Err(_) => return Next::Close { linger: false },
        };
        let Returned { mut reader, end } = returned;
        let next = match end {
            BodyEnd::Complete => Next::KeepAlive,
            BodyEnd::Failed => Next::Close { linger: true },
            // The client may be waiting for a `100 Continue` that never
            // came: it may never send the body.
            BodyEnd::Unread { .. } if continue_wanted.is_some() && !continue_sent => {
                Next::Close { linger: true }
            }
            BodyEnd::Unread { .. } if !keep_alive => Next::Close { linger: true },
            BodyEnd::Unread { mut decoder, .. } => {
                if drain(&mut reader, &mut decoder).await {
                    Next::KeepAlive
                } else {
                    Next::Close { linger: true }
                }
            }
        };
        self.reader = Some(reader);
        next
    }

    /// Carries the switched connection's bytes to and from `upstream` until
    /// either side ends it.
    async fn tunnel(&mut self, upstream: tunnel::Upstream) {
        let Some(reader) = self.reader.take() else {
            return;
        };
        let (read, early) = reader.into_parts();
        let send_timeout = self.writer.send_timeout();
        let client = tunnel::Client {
            read,
            early,
            write: self.writer.io_mut(),
            send_timeout,
        };
        let ended = tunnel::run(client, upstream).await;
        tracing::debug!(client = %self.downstream.client_addr, ?ended, "tunnel closed");
    }

    /// Answers a refused head with its status and Kong's error body.
    async fn refuse(&mut self, error: &HeadError) {
        let request = RequestFacts {
            head: false,
            version: Version::HTTP_11,
            keep_alive: false,
        };
        let response = refusal(error.status(), error.message());
        if let Err(error) = self.writer.write(response, &request).await {
            tracing::debug!(%error, "cannot send a refusal");
        }
    }

    /// Phase 4: ends the connection, lingering if asked to.
    async fn close(mut self, linger: bool) {
        self.writer.shutdown().await;
        if let (true, Some(reader)) = (linger, self.reader.as_mut()) {
            let _ = tokio::time::timeout(LINGER_TIME, discard(reader)).await;
        }
    }
}

/// Reads and discards the rest of an unread body, if it is small enough
/// and comes quickly (see [`DRAIN_LIMIT`], [`DRAIN_TIME`]); `true` when
/// the connection is in sync again.
async fn drain<R: AsyncRead + Unpin>(reader: &mut Reader<R>, decoder: &mut Decoder) -> bool {
    if matches!(decoder, Decoder::Length { remaining } if *remaining > DRAIN_LIMIT) {
        return false;
    }
    let mut drained = 0u64;
    let draining = poll_fn(|cx| loop {
        match decoder.decode(&mut reader.buf) {
            Ok(Decoded::Data(data)) => {
                drained += data.len() as u64;
                if drained > DRAIN_LIMIT {
                    return Poll::Ready(false);
                }
            }
            Ok(Decoded::End) => return Poll::Ready(true),
            Ok(Decoded::NeedMore) => match reader.poll_fill(cx, READ_CHUNK) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(false),
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => return Poll::Pending,
            },
            Err(_) => return Poll::Ready(false),
        }
    });
    tokio::time::timeout(DRAIN_TIME, draining)
        .await
        .unwrap_or(false)
}

/// Reads and drops whatever arrives until the client ends the stream.
async fn discard<R: AsyncRead + Unpin>(reader: &mut Reader<R>) -> io::Result<()> {
    loop {
        reader.buf.clear();
        if poll_fn(|cx| reader.poll_fill(cx, READ_CHUNK)).await? == 0 {
            return Ok(());
        }
    }
}

/// Kong's error response for a refused head, as its `error_handlers.lua`
/// renders nginx's errors: no header of the request has been read, so
/// `error_default_type` (`text/plain`) decides the format; the gateway's
/// usual headers. A message of its own (431's) is kept.
fn refusal(status: StatusCode, message: Option<&str>) -> Response<ProxyBody> {
    let request_id = new_request_id();
    let mut plain = HeaderMap::new();
    plain.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let response = match message {
        Some(message) => {
            respond::error(status, Some(message), &HeaderMap::new(), &request_id, plain)
        }
        None => respond::nginx_error(status, &HeaderMap::new(), &request_id, HeaderMap::new()),
    };
    let (mut head, bytes) = response.into_parts();
    headers::prepare_generated_response(&mut head.headers, Duration::ZERO, &request_id);
    Response::from_parts(head, body::full(bytes))
}
