//! Entry points for the cargo-fuzz targets in `fuzz/`; not part of the
//! gateway's API.
//!
//! [`http1_connection`] runs what the HTTP/1.1 server does with the bytes a
//! client sends, without sockets: request heads parsed as
//! `http1/connection.rs` parses them (the input arriving in two reads, cut
//! where the caller says), each head through the request checks and the
//! client header preparation the pipeline runs before routing, each body
//! decoded by its framing, pipelined requests one after the other until the
//! connection would close. What happened is returned as [`Event`]s, for the
//! target to check its invariants on.

use bytes::BytesMut;

use super::framing::{Decoded, Decoder};
use super::http1::{BodyFraming, HeadParser};
use super::{headers, request_checks};

/// The request head limit the fuzz target runs with (the default's).
const HEAD_LIMIT: usize = 64 * 1024;

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked.
    Chunked,
}

/// One step of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A request head that passed the checks, with its headers as the
    /// plugins would see them.
    Head {
        method: String,
        target: String,
        headers: Vec<(String, Vec<u8>)>,
        framing: Framing,
        keep_alive: bool,
    },
    /// The request was refused with this status (by the head parser, or
    /// by the request checks).
    Refused(u16),
    /// A request body, decoded (as far as the input went).
    Body(Vec<u8>),
    /// The body's framing is broken.
    BodyError,
    /// The input ended inside a head or a body.
    Incomplete,
}

/// What the server makes of `input`, read in two parts cut at `split`
/// (clamped to the input).
pub fn http1_connection(input: &[u8], split: usize) -> Vec<Event> {
    let split = split.min(input.len());
    let mut reads = Reads {
        buf: BytesMut::from(&input[..split]),
        rest: &input[split..],
    };
    let mut parser = HeadParser::new(HEAD_LIMIT);
    let mut events = Vec::new();
    loop {
        let head = loop {
            match parser.parse(&mut reads.buf) {
                Ok(Some(head)) => break head,
                Ok(None) if reads.more() => {}
                Ok(None) => {
                    events.push(Event::Incomplete);
                    return events;
                }
                Err(error) => {
                    events.push(Event::Refused(error.status().as_u16()));
                    return events;
                }
            }
        };
        let mut parts = head.parts;
        let framing = match head.body {
            BodyFraming::Empty => Framing::Empty,
            BodyFraming::Length(length) => Framing::Length(length),
            BodyFraming::Chunked => Framing::Chunked,
        };
        match request_checks::check(&mut parts) {
            Ok(()) => {
                headers::prepare_client_request(&mut parts.headers);
                events.push(Event::Head {
                    method: parts.method.to_string(),
                    target: parts.uri.to_string(),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
                        .collect(),
                    framing,
                    keep_alive: head.keep_alive,
                });
            }
            Err(refusal) => {
                events.push(Event::Refused(refusal.status.as_u16()));
                if refusal.close {
                    return events;
                }
            }
        }
        let decoder = match framing {
            Framing::Empty => None,
            Framing::Length(length) => Some(Decoder::length(length)),
            Framing::Chunked => Some(Decoder::chunked()),
        };
        if let Some(decoder) = decoder {
            if !read_body(&mut reads, decoder, &mut events) {
                return events;
            }
        }
        if !head.keep_alive || (reads.buf.is_empty() && !reads.more()) {
            return events;
        }
    }
}

/// The bytes read so far and those still to come (one more read).
struct Reads<'a> {
    buf: BytesMut,
    rest: &'a [u8],
}

impl Reads<'_> {
    /// Takes the next read into the buffer; `false` when none is left.
    fn more(&mut self) -> bool {
        if self.rest.is_empty() {
            return false;
        }
        self.buf.extend_from_slice(self.rest);
        self.rest = &[];
        true
    }
}

/// Decodes one body; `false` when the connection cannot go on.
fn read_body(reads: &mut Reads<'_>, mut decoder: Decoder, events: &mut Vec<Event>) -> bool {
    let mut body = Vec::new();
    loop {
        match decoder.decode(&mut reads.buf) {
            Ok(Decoded::Data(data)) => body.extend_from_slice(&data),
            Ok(Decoded::End) => {
                events.push(Event::Body(body));
                return true;
            }
            Ok(Decoded::NeedMore) if reads.more() => {}
            Ok(Decoded::NeedMore) => {
                events.push(Event::Body(body));
                events.push(Event::Incomplete);
                return false;
            }
            Err(_) => {
                events.push(Event::BodyError);
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_requests_and_bodies() {
        let input = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
GET /b HTTP/1.1\r\nHost: b\r\nConnection: close, X-Gone\r\nX-Gone: 1\r\n\r\nGET /c HTTP/1.1\r\n\r\n";
        let events = http1_connection(input, 30);
        assert_eq!(events, http1_connection(input, input.len()));
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(events[1], Event::Body(b"abc".to_vec()));
        let Event::Head {
            headers,
            keep_alive,
            ..
        } = &events[2]
        else {
            panic!("{events:?}");
        };
        assert_eq!(headers, &[("host".to_owned(), b"b".to_vec())]);
        assert!(!keep_alive);
    }

    #[test]
    fn refusals_end_the_connection() {
        let events = http1_connection(
            b"GET / HTTP/1.1\r\nHost: a b\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            5,
        );
        assert_eq!(events, [Event::Refused(400)]);
        let events = http1_connection(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 0);
        assert_eq!(events, [Event::Refused(501)]);
    }
}
