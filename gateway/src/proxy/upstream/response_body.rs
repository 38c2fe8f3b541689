//! The upstream response body, read off the connection as the client takes
//! it: `Content-Length`, chunked, or until the upstream closes. The moment
//! its last byte is read, the connection goes back to the pool (when the
//! upstream keeps it alive), before the client has even been sent that
//! byte. A body dropped before its end closes the connection.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use hyper::body::{Body, Frame, SizeHint};

use super::connect::Connection;
use super::exchange::Framing;
use super::pool;
use crate::proxy::body::BoxError;

/// How much more room a read asks for.
const READ_CHUNK: usize = 16 * 1024;

/// The longest chunk-size or trailer line accepted.
const MAX_LINE_BYTES: usize = 4096;

/// Why a response body broke off.
#[derive(Debug, thiserror::Error)]
pub enum ResponseBodyError {
    /// The upstream closed before the body's declared end.
    #[error("the upstream closed the connection before the end of the response body")]
    Incomplete,
    /// The chunked transfer coding is broken.
    #[error("invalid chunked encoding in the upstream response: {0}")]
    Chunked(&'static str),
    /// Reading the connection failed.
    #[error("reading the upstream response body failed: {0}")]
    Io(#[from] io::Error),
}

/// Where the body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoder {
    /// This many bytes are still to come.
    Length(u64),
    /// Within a chunked body.
    Chunked(Chunk),
    /// Everything until the upstream closes.
    UntilClose,
    /// The body has ended (or failed).
    Done,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Within a chunk's data; this many bytes are still to come.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

/// What the buffered bytes gave.
enum Step {
    Data(Bytes),
    End,
    NeedMore,
}

/// A response body streamed from its upstream connection.
pub struct UpstreamBody {
    /// `None` once the body has ended or failed.
    connection: Option<Connection>,
    decoder: Decoder,
    /// Whether the connection may be pooled after the body.
    keep_alive: bool,
}

impl UpstreamBody {
    /// The body that follows a response head on `connection`. `framing`
    /// is not [`Framing::Empty`] (such a response has no body to read).
    pub fn new(connection: Connection, framing: Framing, keep_alive: bool) -> Self {
        let decoder = match framing {
            Framing::Empty => Decoder::Done,
            Framing::Length(len) => Decoder::Length(len),
            Framing::Chunked => Decoder::Chunked(Chunk::Size),
            Framing::UntilClose => Decoder::UntilClose,
        };
        UpstreamBody {
            connection: Some(connection),
            decoder,
            keep_alive,
        }
    }

    /// The body has ended: the connection goes back to the pool if it can
    /// carry another request.
    fn finish(&mut self) {
        self.decoder = Decoder::Done;
        if let Some(connection) = self.connection.take() {
            if self.keep_alive && connection.read_buf.is_empty() {
                pool::put(connection);
            }
        }
    }

    /// The body failed: the connection is closed.
    fn fail(&mut self, error: ResponseBodyError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.decoder = Decoder::Done;
        self.connection = None;
        Poll::Ready(Some(Err(Box::new(error))))
    }

    /// Decodes what the read buffer holds.
    fn decode(&mut self) -> Result<Step, ResponseBodyError> {
        let Some(connection) = self.connection.as_mut() else {
            return Ok(Step::End);
        };
        let buf = &mut connection.read_buf;
        loop {
            match self.decoder {
                Decoder::Done => return Ok(Step::End),
                Decoder::UntilClose if buf.is_empty() => return Ok(Step::NeedMore),
                Decoder::UntilClose => return Ok(Step::Data(buf.split().freeze())),
                Decoder::Length(0) => return Ok(Step::End),
                Decoder::Length(_) | Decoder::Chunked(Chunk::Data(_)) if buf.is_empty() => {
                    return Ok(Step::NeedMore)
                }
                Decoder::Length(remaining) => {
                    let (data, left) = take_up_to(buf, remaining);
                    self.decoder = Decoder::Length(left);
                    if left == 0 {
                        self.finish();
                    }
                    return Ok(Step::Data(data));
                }
                Decoder::Chunked(Chunk::Data(remaining)) => {
                    let (data, left) = take_up_to(buf, remaining);
                    self.decoder = Decoder::Chunked(match left {
                        0 => Chunk::DataEnd,
                        left => Chunk::Data(left),
                    });
                    return Ok(Step::Data(data));
                }
                Decoder::Chunked(chunk) => match next_chunk_state(buf, chunk)? {
                    Some(Decoder::Done) => {
                        self.finish();
                        return Ok(Step::End);
                    }
                    Some(next) => self.decoder = next,
                    None => return Ok(Step::NeedMore),
                },
            }
        }
    }
}

/// Up to `remaining` bytes off the front of `buf`, and how many are left.
fn take_up_to(buf: &mut bytes::BytesMut, remaining: u64) -> (Bytes, u64) {
    let len = usize::try_from(remaining).map_or(buf.len(), |remaining| remaining.min(buf.len()));
    (buf.split_to(len).freeze(), remaining - len as u64)
}

/// Consumes a chunk-size line, a chunk's CRLF or a trailer line from
/// `buf`; `None` when `buf` does not hold all of it yet.
fn next_chunk_state(
    buf: &mut bytes::BytesMut,
    chunk: Chunk,
) -> Result<Option<Decoder>, ResponseBodyError> {
    let Some(line_len) = buf.iter().position(|&byte| byte == b'\n') else {
        if buf.len() > MAX_LINE_BYTES {
            return Err(ResponseBodyError::Chunked("line too long"));
        }
        return Ok(None);
    };
    let line = buf[..line_len]
        .strip_suffix(b"\r")
        .unwrap_or(&buf[..line_len]);
    let next = match chunk {
        Chunk::Size => match chunk_size(line)? {
            0 => Chunk::Trailers,
            size => Chunk::Data(size),
        },
        Chunk::DataEnd if line.is_empty() => Chunk::Size,
        Chunk::DataEnd => {
            return Err(ResponseBodyError::Chunked(
                "data longer than its chunk size",
            ))
        }
        Chunk::Trailers if line.is_empty() => {
            buf.advance(line_len + 1);
            return Ok(Some(Decoder::Done));
        }
        Chunk::Trailers => Chunk::Trailers,
        // Data is taken by length, never as a line (see `decode`).
        Chunk::Data(_) => return Err(ResponseBodyError::Chunked("data read as a line")),
    };
    buf.advance(line_len + 1);
    Ok(Some(Decoder::Chunked(next)))
}

/// The hexadecimal size at the start of a chunk-size line (extensions after
/// `;` are ignored).
fn chunk_size(line: &[u8]) -> Result<u64, ResponseBodyError> {
    let digits = line
        .split(|&byte| byte == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 16 {
        return Err(ResponseBodyError::Chunked("invalid chunk size"));
    }
    digits.iter().try_fold(0u64, |size, &digit| {
        let value = char::from(digit)
            .to_digit(16)
            .ok_or(ResponseBodyError::Chunked("invalid chunk size"))?;
        Ok(size << 4 | u64::from(value))
    })
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
                Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(Step::End) => return Poll::Ready(None),
                Ok(Step::NeedMore) => {}
                Err(error) => return this.fail(error),
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
                Ok(0) if this.decoder == Decoder::UntilClose => {
                    this.decoder = Decoder::Done;
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
        self.decoder == Decoder::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder {
            Decoder::Length(remaining) => SizeHint::with_exact(remaining),
            Decoder::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_chunked(input: &[u8]) -> Result<(Vec<u8>, Decoder), ResponseBodyError> {
        let mut buf = bytes::BytesMut::from(input);
        let mut decoder = Decoder::Chunked(Chunk::Size);
        let mut out = Vec::new();
        loop {
            match decoder {
                Decoder::Chunked(Chunk::Data(remaining)) if !buf.is_empty() => {
                    let (data, left) = take_up_to(&mut buf, remaining);
                    out.extend_from_slice(&data);
                    decoder = Decoder::Chunked(if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    });
                }
                Decoder::Chunked(chunk) if !matches!(chunk, Chunk::Data(_)) => {
                    match next_chunk_state(&mut buf, chunk)? {
                        Some(next) => decoder = next,
                        None => return Ok((out, decoder)),
                    }
                }
                _ => return Ok((out, decoder)),
            }
        }
    }

    #[test]
    fn chunked_bodies_decode() {
        let (data, end) =
            decode_chunked(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n").unwrap();
        assert_eq!(data, b"hello world");
        assert_eq!(end, Decoder::Done);
        let (data, end) = decode_chunked(b"A\nabcdefghij\n0\n\n").unwrap();
        assert_eq!(data, b"abcdefghij");
        assert_eq!(end, Decoder::Done);
    }

    #[test]
    fn partial_chunked_bodies_wait_for_more() {
        let (data, state) = decode_chunked(b"5\r\nhel").unwrap();
        assert_eq!(data, b"hel");
        assert_eq!(state, Decoder::Chunked(Chunk::Data(2)));
        let (_, state) = decode_chunked(b"5").unwrap();
        assert_eq!(state, Decoder::Chunked(Chunk::Size));
    }

    #[test]
    fn broken_chunked_bodies_fail() {
        assert!(decode_chunked(b"zz\r\n").is_err());
        assert!(decode_chunked(b"\r\n").is_err());
        assert!(decode_chunked(b"2\r\nabc\r\n").is_err());
        assert!(decode_chunked(b"11111111111111111\r\n").is_err());
        assert!(decode_chunked(&[b'1'; 5000]).is_err());
    }
}
