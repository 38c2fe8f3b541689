//! The request body, read straight from the connection.
//!
//! [`Decoder`] undoes the framing of a body (`Content-Length` bytes, or the
//! chunked transfer coding) over the connection's read buffer, handing out
//! data as slices of that buffer. [`IncomingBody`] is the [`ProxyBody`] the
//! pipeline gets: it owns the connection's [`Reader`] while it is read, and
//! gives it back to the connection through a oneshot channel
//! ([`Returned`]) as soon as the body ends, fails, or is dropped unread;
//! the connection then goes on with the next request (draining what is
//! left of an unread body first).
//!
//! With `Expect: 100-continue` the body asks the connection to send
//! `100 Continue` when it is first polled, i.e. when the request is about
//! to be forwarded, and not for a request the gateway refuses first.
//!
//! A broken chunked coding, or the client closing mid-body, fails the body
//! with a [`BodyError`]; the pipeline answers 400 and the connection
//! closes. So does a client that sends nothing of the body for the client
//! body timeout (nginx's `client_body_timeout`, counted between two reads
//! as nginx counts it), with 408. The timer is armed only when the body has
//! to wait for the client: a body that came with its head never touches it.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::AsyncRead;
use tokio::sync::{oneshot, Notify};
use tokio::time::{Instant, Sleep};

use super::io::{Reader, MAX_BODY_READ, READ_CHUNK};
use crate::pdk::body::{BoxError, ClientBodyTimedOut, ProxyBody};
use crate::proxy::framing::FramingError;
pub(super) use crate::proxy::framing::{Decoded, Decoder};

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum BodyError {
    /// The chunked coding is broken.
    #[error("invalid chunked body: {0}")]
    Chunked(&'static str),
    /// The connection ended before the body did.
    #[error("the client closed the connection in the middle of the body")]
    Truncated,
    /// Reading from the connection failed.
    #[error("cannot read the request body: {0}")]
    Io(#[from] std::io::Error),
    /// The client sent nothing of the body for the client body timeout.
    #[error("{0}")]
    TimedOut(#[source] ClientBodyTimedOut),
}

impl From<FramingError> for BodyError {
    fn from(FramingError(reason): FramingError) -> Self {
        BodyError::Chunked(reason)
    }
}

/// How much room the next read of a body should have: up to the rest of a
/// sized body.
fn read_room(decoder: &Decoder) -> usize {
    match decoder {
        Decoder::Length { remaining } => usize::try_from(*remaining)
            .unwrap_or(usize::MAX)
            .clamp(READ_CHUNK, MAX_BODY_READ),
        Decoder::Chunked { .. } | Decoder::Done => READ_CHUNK * 2,
    }
}

/// How a body handed the reader back.
pub(super) enum BodyEnd {
    /// Read to its end: the buffer holds what follows the body.
    Complete,
    /// Dropped before its end; `decoder` is where it stopped.
    Unread { decoder: Decoder },
    /// Failed: the connection cannot be used any more.
    Failed,
}

/// The reader coming back from a body.
pub(super) struct Returned<R> {
    /// The connection's read side and its buffer.
    pub(super) reader: Reader<R>,
    /// How the body ended.
    pub(super) end: BodyEnd,
}

/// A request body read from the connection (see the module doc).
pub(super) struct IncomingBody<R> {
    /// Held while the body is read; sent back when it ends.
    reader: Option<Reader<R>>,
    decoder: Decoder,
    give_back: Option<oneshot::Sender<Returned<R>>>,
    /// Notified on the first poll when the client expects `100 Continue`.
    continue_wanted: Option<Arc<Notify>>,
    polled: bool,
    /// How long the client may send nothing.
    timeout: Duration,
    /// Armed at the first wait for the client.
    timer: Option<Pin<Box<Sleep>>>,
    /// Bytes arrived since the timer was armed.
    progressed: bool,
}

impl<R: AsyncRead + Unpin + Send + 'static> IncomingBody<R> {
    /// A body read by `decoder` from `reader`, failing after `timeout`
    /// without a byte; the reader comes back on the returned receiver.
    /// With `continue_wanted`, the first poll notifies it.
    pub(super) fn new(
        reader: Reader<R>,
        decoder: Decoder,
        continue_wanted: Option<Arc<Notify>>,
        timeout: Duration,
    ) -> (Self, oneshot::Receiver<Returned<R>>) {
        let (give_back, receiver) = oneshot::channel();
        let body = IncomingBody {
            reader: Some(reader),
            decoder,
            give_back: Some(give_back),
            continue_wanted,
            polled: false,
            timeout,
            timer: None,
            progressed: false,
        };
        (body, receiver)
    }

    /// Called while waiting for the client: ready once it has sent nothing
    /// for the whole timeout since the last bytes (or the first wait).
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let progressed = std::mem::take(&mut self.progressed);
        let timeout = self.timeout;
        let deadline = || {
            let now = Instant::now();
            now.checked_add(timeout)
                .unwrap_or(now + Duration::from_secs(1 << 32))
        };
        let timer = match &mut self.timer {
            Some(timer) => {
                if progressed {
                    timer.as_mut().reset(deadline());
                }
                timer
            }
            None => self
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline()))),
        };
        timer.as_mut().poll(cx)
    }

    /// This body as the pipeline's body type.
    pub(super) fn into_proxy_body(self) -> ProxyBody {
        self.map_err(BoxError::from).boxed_unsync()
    }

    /// Sends the reader back to the connection.
    fn give_back(&mut self, end: BodyEnd) {
        if let (Some(reader), Some(give_back)) = (self.reader.take(), self.give_back.take()) {
            // The connection may be gone; then the reader just closes.
            let _ = give_back.send(Returned { reader, end });
        }
    }
}

impl<R: AsyncRead + Unpin + Send + 'static> Body for IncomingBody<R> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if !this.polled {
            this.polled = true;
            if let Some(continue_wanted) = this.continue_wanted.take() {
                continue_wanted.notify_one();
            }
        }
        loop {
            let Some(reader) = this.reader.as_mut() else {
                return Poll::Ready(None);
            };
            let failure = match this.decoder.decode(&mut reader.buf) {
                Ok(Decoded::Data(data)) => {
                    if this.decoder.is_done() {
                        this.give_back(BodyEnd::Complete);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Decoded::End) => {
                    this.give_back(BodyEnd::Complete);
                    return Poll::Ready(None);
                }
                Ok(Decoded::NeedMore) => match reader.poll_fill(cx, read_room(&this.decoder)) {
                    Poll::Ready(Ok(0)) => BodyError::Truncated,
                    Poll::Ready(Ok(_)) => {
                        this.progressed = true;
                        continue;
                    }
                    Poll::Ready(Err(error)) => BodyError::Io(error),
                    Poll::Pending => {
                        ready!(this.poll_stalled(cx));
                        BodyError::TimedOut(ClientBodyTimedOut(this.timeout))
                    }
                },
                Err(error) => BodyError::from(error),
            };
            this.give_back(BodyEnd::Failed);
            return Poll::Ready(Some(Err(failure)));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        self.decoder.size_hint()
    }
}

impl<R> Drop for IncomingBody<R> {
    fn drop(&mut self) {
        if let (Some(reader), Some(give_back)) = (self.reader.take(), self.give_back.take()) {
            let end = if self.decoder.is_done() {
                BodyEnd::Complete
            } else {
                BodyEnd::Unread {
                    decoder: self.decoder.clone(),
                }
            };
            let _ = give_back.send(Returned { reader, end });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use tokio::io::AsyncWriteExt as _;

    /// Decodes all of `wire` in one buffer: the data and the rest.
    fn decode_all(
        decoder: &mut Decoder,
        wire: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>, bool), BodyError> {
        let mut buf = BytesMut::from(wire);
        let mut data = Vec::new();
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Data(bytes) => data.extend_from_slice(&bytes),
                Decoded::NeedMore => return Ok((data, buf.to_vec(), false)),
                Decoded::End => return Ok((data, buf.to_vec(), true)),
            }
        }
    }

    #[test]
    fn length_bodies_stop_at_their_length() {
        let mut decoder = Decoder::length(5);
        let (data, rest, done) = decode_all(&mut decoder, b"helloGET /").unwrap();
        assert_eq!(
            (&data[..], &rest[..], done),
            (&b"hello"[..], &b"GET /"[..], true)
        );
    }

    #[test]
    fn chunked_bodies_decode_with_extensions_and_trailers() {
        let wire = b"5;name=value\r\nhello\r\n6 \r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        let mut decoder = Decoder::chunked();
        let (data, rest, done) = decode_all(&mut decoder, wire).unwrap();
        assert_eq!(data, b"hello world");
        assert_eq!(rest, b"NEXT");
        assert!(done);
        assert!(decoder.is_done());
    }

    #[test]
    fn chunked_bodies_decode_byte_by_byte() {
        let wire = b"A\r\n0123456789\r\n1\r\nx\r\n000\r\n\r\n";
        let mut decoder = Decoder::chunked();
        let mut data = Vec::new();
        let mut done = false;
        for &byte in wire {
            let mut buf = BytesMut::from(&[byte][..]);
            loop {
                match decoder.decode(&mut buf).unwrap() {
                    Decoded::Data(bytes) => data.extend_from_slice(&bytes),
                    Decoded::NeedMore => break,
                    Decoded::End => {
                        done = true;
                        break;
                    }
                }
            }
        }
        assert_eq!(data, b"0123456789x");
        assert!(done);
    }

    #[test]
    fn broken_chunked_bodies_fail() {
        for wire in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"5\r\nhelloXX",
            b"5\nhello\r\n",
            b"5;ext\nhello\r\n",
            b"5 x\r\n",
            b"11111111111111111\r\n",
            b"0\r\nX: y\n\r\n",
            b"0\r\n\rX",
        ] {
            let result = decode_all(&mut Decoder::chunked(), wire);
            assert!(
                matches!(result, Err(BodyError::Chunked(_))),
                "{:?}: {result:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn endless_extensions_and_trailers_are_cut_off() {
        let mut extensions = b"1;".to_vec();
        extensions.extend(std::iter::repeat_n(
            b'e',
            crate::proxy::framing::MAX_EXTENSION_BYTES as usize + 1,
        ));
        assert!(decode_all(&mut Decoder::chunked(), &extensions).is_err());
        let mut trailers = b"0\r\n".to_vec();
        trailers.extend(std::iter::repeat_n(
            b't',
            crate::proxy::framing::MAX_TRAILER_BYTES as usize + 1,
        ));
        assert!(decode_all(&mut Decoder::chunked(), &trailers).is_err());
    }

    /// A body over a duplex stream, and the client's end.
    fn body_over_duplex(
        prefix: &[u8],
        decoder: Decoder,
        continue_wanted: Option<Arc<Notify>>,
    ) -> (
        IncomingBody<tokio::io::DuplexStream>,
        oneshot::Receiver<Returned<tokio::io::DuplexStream>>,
        tokio::io::DuplexStream,
    ) {
        let (client, server) = tokio::io::duplex(1024);
        let reader = Reader::new(server, BytesMut::from(prefix));
        let (body, returned) =
            IncomingBody::new(reader, decoder, continue_wanted, Duration::from_millis(300));
        (body, returned, client)
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_gives_the_reader_back_with_what_follows() {
        let (body, returned, mut client) =
            body_over_duplex(b"3\r\nabc\r\n", Decoder::chunked(), None);
        client
            .write_all(b"0\r\n\r\nGET / HTTP/1.1\r\n")
            .await
            .unwrap();
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected, "abc");
        let returned = returned.await.unwrap();
        assert!(matches!(returned.end, BodyEnd::Complete));
        assert_eq!(&returned.reader.buf[..], b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn a_dropped_body_gives_the_reader_back_unread() {
        let notify = Arc::new(Notify::new());
        let (body, returned, _client) =
            body_over_duplex(b"", Decoder::length(10), Some(Arc::clone(&notify)));
        assert_eq!(body.size_hint().exact(), Some(10));
        drop(body);
        let returned = returned.await.unwrap();
        let BodyEnd::Unread { decoder } = returned.end else {
            panic!("expected an unread body");
        };
        assert_eq!(decoder, Decoder::length(10));
    }

    #[tokio::test]
    async fn the_first_poll_asks_for_100_continue() {
        let notify = Arc::new(Notify::new());
        let (body, _returned, mut client) =
            body_over_duplex(b"", Decoder::length(2), Some(Arc::clone(&notify)));
        let reading = tokio::spawn(body.collect());
        notify.notified().await;
        client.write_all(b"ok").await.unwrap();
        let collected = reading.await.unwrap().unwrap().to_bytes();
        assert_eq!(collected, "ok");
    }

    #[tokio::test]
    async fn a_client_silent_mid_body_times_it_out() {
        let (body, returned, mut client) = body_over_duplex(b"ab", Decoder::length(10), None);
        let writing = tokio::spawn(async move {
            // Bytes every 200 ms keep it alive (the timeout is 300 ms).
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                client.write_all(b"c").await.unwrap();
            }
            client
        });
        let started = std::time::Instant::now();
        let error = body.collect().await.expect_err("the client stalls");
        assert!(matches!(error, BodyError::TimedOut(_)), "{error}");
        assert!(crate::pdk::body::is_client_body_timeout(&error), "{error}");
        assert!(started.elapsed() >= Duration::from_millis(900));
        assert!(matches!(returned.await.unwrap().end, BodyEnd::Failed));
        drop(writing.await.unwrap());
    }

    #[tokio::test]
    async fn a_client_gone_mid_body_fails_it() {
        let (body, returned, client) = body_over_duplex(b"ab", Decoder::length(10), None);
        drop(client);
        let error = body.collect().await.expect_err("the body is cut short");
        assert!(matches!(error, BodyError::Truncated), "{error}");
        assert!(matches!(returned.await.unwrap().end, BodyEnd::Failed));
    }
}
