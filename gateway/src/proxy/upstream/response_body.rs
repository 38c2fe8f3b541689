//! The upstream response body, read off the connection as the client takes
//! it: `Content-Length`, chunked, or until the upstream closes. The moment
//! its last byte is read, the connection goes back to the pool (when the
//! upstream keeps it alive), before the client has even been sent that
//! byte. A body dropped before its end closes the connection.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::connection::Connection;
use super::exchange::Framing;
use super::pool;
use crate::pdk::body::BoxError;
use crate::proxy::framing::{Decoded, Decoder, FramingError};

/// How much more room a read asks for.
const READ_CHUNK: usize = 16 * 1024;

/// Why a response body broke off.
#[derive(Debug, thiserror::Error)]
pub enum ResponseBodyError {
    /// The upstream closed before the body's declared end.
    #[error("the upstream closed the connection before the end of the response body")]
    Incomplete,
    /// The chunked transfer coding is broken.
    #[error("invalid chunked encoding in the upstream response: {0}")]
    Chunked(#[from] FramingError),
    /// Reading the connection failed.
    #[error("reading the upstream response body failed: {0}")]
    Io(#[from] io::Error),
}

/// How the body is delimited, and how far it has been read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reading {
    /// `Content-Length` or chunked (see [`Decoder`]).
    Framed(Decoder),
    /// Everything until the upstream closes.
    UntilClose,
    /// The body has ended (or failed).
    Done,
}

/// A response body streamed from its upstream connection.
pub struct UpstreamBody {
    /// `None` once the body has ended or failed.
    connection: Option<Connection>,
    reading: Reading,
    /// Whether the connection may be pooled after the body.
    keep_alive: bool,
}

impl UpstreamBody {
    /// The body that follows a response head on `connection`.
    pub fn new(connection: Connection, framing: Framing, keep_alive: bool) -> Self {
        let reading = match framing {
            Framing::Empty | Framing::Switched => Reading::Done,
            Framing::Length(len) => Reading::Framed(Decoder::length(len)),
            Framing::Chunked => Reading::Framed(Decoder::chunked()),
            Framing::UntilClose => Reading::UntilClose,
        };
        UpstreamBody {
            connection: Some(connection),
            reading,
            keep_alive,
        }
    }

    /// The body has ended: the connection goes back to the pool if it can
    /// carry another request.
    fn finish(&mut self) {
        self.reading = Reading::Done;
        if let Some(connection) = self.connection.take() {
            if self.keep_alive && connection.read_buf.is_empty() {
                pool::put(connection);
            }
        }
    }

    /// The body failed: the connection is closed.
    fn fail(&mut self, error: ResponseBodyError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.reading = Reading::Done;
        self.connection = None;
        Poll::Ready(Some(Err(Box::new(error))))
    }

    /// Decodes what the read buffer holds; the connection is released the
    /// moment the body's last byte is taken.
    fn decode(&mut self) -> Result<Decoded, FramingError> {
        let Some(connection) = self.connection.as_mut() else {
            return Ok(Decoded::End);
        };
        let buf = &mut connection.read_buf;
        match &mut self.reading {
            Reading::Done => Ok(Decoded::End),
            Reading::UntilClose if buf.is_empty() => Ok(Decoded::NeedMore),
            Reading::UntilClose => Ok(Decoded::Data(buf.split().freeze())),
            Reading::Framed(decoder) => {
                let decoded = decoder.decode(buf)?;
                if decoder.is_done() {
                    self.finish();
                }
                Ok(decoded)
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            match this.decode() {
                Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(Decoded::End) => return Poll::Ready(None),
                Ok(Decoded::NeedMore) => {}
                Err(error) => return this.fail(error.into()),
            }
            let Some(connection) = this.connection.as_mut() else {
                return Poll::Ready(None);
            };
            connection.read_buf.reserve(READ_CHUNK);
            let stream = Pin::new(&mut connection.stream);
            match ready!(tokio_util::io::poll_read_buf(
                stream,
                cx,
                &mut connection.read_buf
            )) {
                Ok(0) if this.reading == Reading::UntilClose => {
                    this.reading = Reading::Done;
                    this.connection = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(ResponseBodyError::Incomplete),
                Ok(_) => {}
                Err(error) => return this.fail(ResponseBodyError::Io(error)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.reading == Reading::Done
    }

    fn size_hint(&self) -> SizeHint {
        match &self.reading {
            Reading::Framed(decoder) => decoder.size_hint(),
            Reading::Done => SizeHint::with_exact(0),
            Reading::UntilClose => SizeHint::default(),
        }
    }
}
