//! `/ws` of `gateway echo`: a WebSocket echo server (RFC 6455), what
//! Kong's mock upstream serves on `/ws` for its WebSocket specs.
//!
//! - [`is_handshake`] / [`accept`]: a `GET` with `Upgrade: websocket`,
//!   `Sec-WebSocket-Version: 13` and a key is answered `101` with the
//!   key's `Sec-WebSocket-Accept`; the connection is then served by
//!   [`serve`] once hyper hands it over.
//! - [`serve`]: each data frame (text, binary, continuation) comes back
//!   as it came, unmasked; a ping gets a pong with its payload; a close is
//!   answered with a close carrying the same payload, and the connection
//!   ends. A frame larger than [`MAX_PAYLOAD`], or a client frame without
//!   a mask, closes it (status 1009 / 1002).

use base64::Engine as _;
use http::header::{HeaderValue, CONNECTION, UPGRADE};
use http::{Method, Request, Response, StatusCode};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The GUID a key is hashed with (RFC 6455 1.3).
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The largest frame payload echoed.
pub const MAX_PAYLOAD: u64 = 1024 * 1024;

const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Whether `request` opens a WebSocket.
pub fn is_handshake<B>(request: &Request<B>) -> bool {
    let headers = request.headers();
    let upgrade = headers
        .get(UPGRADE)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"));
    request.method() == Method::GET
        && upgrade
        && headers
            .get("sec-websocket-version")
            .is_some_and(|value| value == "13")
        && headers.contains_key("sec-websocket-key")
}

/// The `101` answering a handshake, or `None` when the key is unusable.
pub fn accept<B>(request: &Request<B>) -> Option<Response<()>> {
    let key = request.headers().get("sec-websocket-key")?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(key.as_bytes());
    context.update(ACCEPT_GUID.as_bytes());
    let accept = base64::engine::general_purpose::STANDARD.encode(context.finish());
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert("sec-websocket-accept", HeaderValue::from_str(&accept).ok()?);
    Some(response)
}

/// One frame as read.
struct Frame {
    /// The first byte: FIN, RSV and opcode.
    first: u8,
    payload: Vec<u8>,
}

impl Frame {
    fn opcode(&self) -> u8 {
        self.first & 0x0F
    }
}

/// Why a connection stops.
enum Stop {
    /// The client went away or the stream failed.
    Gone,
    /// A protocol problem: close with this status.
    Close(u16),
}

/// Echoes frames on `upgraded` until a close or an error.
pub async fn serve(upgraded: Upgraded) {
    let mut io = TokioIo::new(upgraded);
    loop {
        let frame = match read_frame(&mut io).await {
            Ok(frame) => frame,
            Err(Stop::Gone) => return,
            Err(Stop::Close(status)) => {
                let _ = write_frame(&mut io, 0x80 | OP_CLOSE, &status.to_be_bytes()).await;
                return;
            }
        };
        let opcode = frame.opcode();
        let first = match opcode {
            OP_PING => 0x80 | OP_PONG,
            OP_PONG => continue,
            _ => frame.first,
        };
        if write_frame(&mut io, first, &frame.payload).await.is_err() {
            return;
        }
        if opcode == OP_CLOSE {
            let _ = io.shutdown().await;
            return;
        }
    }
}

/// Reads one masked client frame.
async fn read_frame(io: &mut TokioIo<Upgraded>) -> Result<Frame, Stop> {
    let mut head = [0u8; 2];
    io.read_exact(&mut head).await.map_err(|_| Stop::Gone)?;
    if head[1] & 0x80 == 0 {
        return Err(Stop::Close(1002));
    }
    let length = match head[1] & 0x7F {
        126 => u64::from(io.read_u16().await.map_err(|_| Stop::Gone)?),
        127 => io.read_u64().await.map_err(|_| Stop::Gone)?,
        short => u64::from(short),
    };
    if length > MAX_PAYLOAD {
        return Err(Stop::Close(1009));
    }
    let mut mask = [0u8; 4];
    io.read_exact(&mut mask).await.map_err(|_| Stop::Gone)?;
    let mut payload = vec![0u8; usize::try_from(length).map_err(|_| Stop::Close(1009))?];
    io.read_exact(&mut payload).await.map_err(|_| Stop::Gone)?;
    for (index, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[index % 4];
    }
    Ok(Frame {
        first: head[0],
        payload,
    })
}

/// Writes one unmasked server frame.
async fn write_frame(io: &mut TokioIo<Upgraded>, first: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(first);
    match payload.len() {
        len @ 0..=125 => frame.push(len as u8),
        len @ 126..=0xFFFF => {
            frame.push(126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    io.write_all(&frame).await?;
    io.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_value_is_the_rfc_example() {
        let request = Request::get("/ws")
            .header(UPGRADE, "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .unwrap();
        assert!(is_handshake(&request));
        let response = accept(&request).unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        // RFC 6455 1.3.
        assert_eq!(
            response.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let plain = Request::get("/ws").body(()).unwrap();
        assert!(!is_handshake(&plain));
    }
}
