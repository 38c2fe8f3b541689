//! Body framing of HTTP/1.1 messages, shared by the client-facing server
//! (request bodies, `http1/request_body.rs`) and the upstream client
//! (response bodies, `upstream/response_body.rs`).
//!
//! [`Decoder`] undoes `Content-Length` or the chunked transfer coding over
//! a connection's read buffer, handing out data as slices of that buffer.
//! The chunked decoder is strict, as hyper's was: CRLF line endings, at most
//! 16 hex digits of size, chunk extensions and trailer fields skipped but
//! bounded in size. The header-value rules both sides share live here too:
//! `Content-Length` values (a request's must be one plain number, as nginx
//! requires; a response's may be a list of identical ones, RFC 9110 8.6),
//! `Connection` tokens, the transfer codings.

use bytes::Bytes;
use bytes::{Buf as _, BytesMut};
use hyper::body::SizeHint;

/// The most bytes of chunk extensions a body may carry (all chunks).
pub(crate) const MAX_EXTENSION_BYTES: u64 = 16 * 1024;

/// The most bytes of trailer fields a chunked body may end with.
pub(crate) const MAX_TRAILER_BYTES: u64 = 16 * 1024;

/// The longest chunk size, in hex digits (a `u64`).
const MAX_SIZE_DIGITS: u8 = 16;

/// Why a body's framing is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FramingError(pub &'static str);

/// What one decoding step yields.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The buffer holds no more of the body: read more.
    NeedMore,
    /// The body is complete (its framing consumed).
    End,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// In a chunk size line: the size so far and its digit count.
    Size { size: u64, digits: u8 },
    /// Whitespace after the size, before `;` or the line end.
    SizeSpace { size: u64 },
    /// In a chunk extension (ignored), up to the line end.
    Extension { size: u64 },
    /// The size line's CR was read: LF next.
    SizeLf { size: u64 },
    /// `remaining` bytes of chunk data to go.
    Data { remaining: u64 },
    /// After chunk data: CR next.
    DataCr,
    /// After chunk data and CR: LF next.
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// In a trailer field line (ignored).
    Trailer,
    /// A trailer line's CR was read: LF next.
    TrailerLf,
    /// The final empty line's CR was read: LF next.
    EndLf,
}

/// The state of a body's framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decoder {
    /// `remaining` bytes of a `Content-Length` body.
    Length { remaining: u64 },
    /// A chunked body, with the extension and trailer bytes seen so far.
    Chunked {
        state: Chunk,
        extension_bytes: u64,
        trailer_bytes: u64,
    },
    /// The body is complete.
    Done,
}

impl Decoder {
    /// A decoder for a body of `length` bytes.
    pub(crate) fn length(length: u64) -> Self {
        if length == 0 {
            Decoder::Done
        } else {
            Decoder::Length { remaining: length }
        }
    }

    /// A decoder for a chunked body.
    pub(crate) fn chunked() -> Self {
        Decoder::Chunked {
            state: Chunk::Size { size: 0, digits: 0 },
            extension_bytes: 0,
            trailer_bytes: 0,
        }
    }

    /// Whether the whole body has been decoded.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self, Decoder::Done)
    }

    /// The body's size hint: exact for the rest of a sized body.
    pub(crate) fn size_hint(&self) -> SizeHint {
        match self {
            Decoder::Length { remaining } => SizeHint::with_exact(*remaining),
            Decoder::Chunked { .. } => SizeHint::default(),
            Decoder::Done => SizeHint::with_exact(0),
        }
    }

    /// Decodes from the start of `buf`: body bytes (split off `buf`),
    /// [`Decoded::NeedMore`] once `buf` is used up, or the end.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, FramingError> {
        match self {
            Decoder::Done => Ok(Decoded::End),
            Decoder::Length { remaining } => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let take = buf
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                let data = buf.split_to(take).freeze();
                *remaining -= take as u64;
                if *remaining == 0 {
                    *self = Decoder::Done;
                }
                Ok(Decoded::Data(data))
            }
            Decoder::Chunked {
                state,
                extension_bytes,
                trailer_bytes,
            } => {
                let mut framing = ChunkedFraming {
                    state: *state,
                    extension_bytes: *extension_bytes,
                    trailer_bytes: *trailer_bytes,
                };
                let decoded = framing.decode(buf);
                *state = framing.state;
                *extension_bytes = framing.extension_bytes;
                *trailer_bytes = framing.trailer_bytes;
                if matches!(decoded, Ok(Decoded::End)) {
                    *self = Decoder::Done;
                }
                decoded
            }
        }
    }
}

/// The chunked decoder's working copy of its state.
struct ChunkedFraming {
    state: Chunk,
    extension_bytes: u64,
    trailer_bytes: u64,
}

impl ChunkedFraming {
    /// Steps through framing bytes until data, the end, or an empty buffer.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, FramingError> {
        loop {
            if let Chunk::Data { remaining } = self.state {
                if remaining == 0 {
                    self.state = Chunk::DataCr;
                    continue;
                }
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let take = buf
                    .len()
                    .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                self.state = Chunk::Data {
                    remaining: remaining - take as u64,
                };
                return Ok(Decoded::Data(buf.split_to(take).freeze()));
            }
            let Some(&byte) = buf.first() else {
                return Ok(Decoded::NeedMore);
            };
            buf.advance(1);
            if self.step(byte)? {
                return Ok(Decoded::End);
            }
        }
    }

    /// Takes one framing byte; `true` once the body has ended.
    fn step(&mut self, byte: u8) -> Result<bool, FramingError> {
        self.state = match (self.state, byte) {
            (Chunk::Size { size, digits }, _) if byte.is_ascii_hexdigit() => {
                if digits == MAX_SIZE_DIGITS {
                    return Err(FramingError("chunk size too large"));
                }
                Chunk::Size {
                    size: size * 16 + u64::from(hex_value(byte)),
                    digits: digits + 1,
                }
            }
            (Chunk::Size { digits: 0, .. }, _) => {
                return Err(FramingError("invalid chunk size"));
            }
            (Chunk::Size { size, .. } | Chunk::SizeSpace { size }, b' ' | b'\t') => {
                Chunk::SizeSpace { size }
            }
            (Chunk::Size { size, .. } | Chunk::SizeSpace { size }, b';') => {
                Chunk::Extension { size }
            }
            (
                Chunk::Size { size, .. } | Chunk::SizeSpace { size } | Chunk::Extension { size },
                b'\r',
            ) => Chunk::SizeLf { size },
            (Chunk::Size { .. } | Chunk::SizeSpace { .. }, _) => {
                return Err(FramingError("invalid chunk size line"));
            }
            (Chunk::Extension { .. }, b'\n') => {
                return Err(FramingError("line feed in a chunk extension"));
            }
            (Chunk::Extension { size }, _) => {
                self.extension_bytes += 1;
                if self.extension_bytes > MAX_EXTENSION_BYTES {
                    return Err(FramingError("chunk extensions too long"));
                }
                Chunk::Extension { size }
            }
            (Chunk::SizeLf { size: 0 }, b'\n') => Chunk::TrailerStart,
            (Chunk::SizeLf { size }, b'\n') => Chunk::Data { remaining: size },
            (Chunk::DataCr, b'\r') => Chunk::DataLf,
            (Chunk::DataLf, b'\n') => Chunk::Size { size: 0, digits: 0 },
            (Chunk::TrailerStart, b'\r') => Chunk::EndLf,
            (Chunk::EndLf, b'\n') => return Ok(true),
            (Chunk::TrailerStart | Chunk::Trailer, b'\n') => {
                return Err(FramingError("bare line feed in the trailer"));
            }
            (Chunk::Trailer, b'\r') => Chunk::TrailerLf,
            (Chunk::TrailerStart | Chunk::Trailer, _) => {
                self.trailer_bytes += 1;
                if self.trailer_bytes > MAX_TRAILER_BYTES {
                    return Err(FramingError("trailer fields too long"));
                }
                Chunk::Trailer
            }
            (Chunk::TrailerLf, b'\n') => Chunk::TrailerStart,
            (
                Chunk::SizeLf { .. }
                | Chunk::DataCr
                | Chunk::DataLf
                | Chunk::TrailerLf
                | Chunk::EndLf,
                _,
            ) => {
                return Err(FramingError("missing line ending"));
            }
            (Chunk::Data { .. }, _) => {
                return Err(FramingError("decoder state out of order"));
            }
        };
        Ok(false)
    }
}

/// The value of an ASCII hex digit.
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// A `Content-Length` value: digits, or a list of identical ones (what an
/// upstream response may carry; RFC 9110 8.6).
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    let mut length = None;
    for item in value.split(|&byte| byte == b',') {
        let parsed = plain_length(item.trim_ascii())?;
        if length.is_some_and(|previous| previous != parsed) {
            return None;
        }
        length = Some(parsed);
    }
    length
}

/// A request's `Content-Length` value: one plain decimal number of at most
/// 19 digits, nothing else (no list, sign or inner space). nginx refuses
/// anything else with 400, and so does the proxy: an upstream that reads a
/// list differently would read the body differently (RFC 9110 8.6).
pub(crate) fn plain_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |total, digit| total * 10 + u64::from(digit - b'0')),
    )
}

/// Whether the comma-separated list `value` holds `token` (any case).
pub(crate) fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&byte| byte == b',')
        .any(|item| token_is(item, token))
}

/// Whether `item`, without surrounding whitespace, is `token` (any case).
fn token_is(item: &[u8], token: &[u8]) -> bool {
    item.trim_ascii().eq_ignore_ascii_case(token)
}

/// Whether a `Transfer-Encoding` value is exactly `chunked` (any case):
/// the only transfer coding the proxy accepts on a request, as nginx
/// (any other gets 501, RFC 9112 6.1).
pub(crate) fn is_only_chunked(value: &[u8]) -> bool {
    token_is(value, b"chunked")
}

/// Whether a `Transfer-Encoding` value's last coding is `chunked`.
pub(crate) fn ends_in_chunked(value: &[u8]) -> bool {
    value
        .rsplit(|&byte| byte == b',')
        .next()
        .is_some_and(|coding| token_is(coding, b"chunked"))
}
