//! WebSocket upgrades: the handshake's headers and the tunnel that carries
//! the bytes afterwards, as Kong proxies them (nginx's upgraded
//! connections).
//!
//! - [`note_request`]: before the client's hop-by-hop fields go, a request
//!   whose `Upgrade` is `websocket` (any case; Kong's `runloop/handler.lua`
//!   reads only that field) is marked in its extensions ([`Requested`]).
//!   Plugins then run on the handshake as on any request: key-auth,
//!   session or request-termination may answer it instead.
//! - [`prepare_upstream`]: a marked request goes upstream with
//!   `Connection: keep-alive, Upgrade` and `Upgrade: websocket` (Kong's
//!   `upstream_connection` / `upstream_upgrade`).
//! - The upstream client (`upstream/`) hands a `101` to a marked request
//!   back with its connection in the response's extensions ([`attach`]);
//!   any other status is an ordinary response, relayed as such (and a `101`
//!   to an unmarked request is a broken exchange, 502).
//! - The HTTP/1.1 server takes the connection out ([`take`]), which puts
//!   the upstream's `Upgrade` back in the head (the hop-by-hop rules removed
//!   it; Kong keeps it when it is the one asked for), writes the `101` with
//!   `Connection: upgrade`, as nginx does, then [`run`]s the tunnel.
//! - [`run`] copies bytes both ways until either side ends its stream
//!   (what it sent is delivered first) or fails, then closes both, as
//!   nginx's `ngx_http_upstream_process_upgraded` does. No byte either
//!   way for the service's `read_timeout` closes both (nginx re-arms the
//!   `proxy_read_timeout` timer on every event); a write to the upstream
//!   blocked for `write_timeout` (`proxy_send_timeout`), or to the client
//!   for the send timeout (`send_timeout`), closes both too.
//!
//! HTTP/2 clients cannot ask for an upgrade (`Upgrade` is a connection
//! field HTTP/2 forbids); extended CONNECT (RFC 8441) is not served, as
//! Kong's nginx does not serve it either.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderValue, CONNECTION, UPGRADE};
use http::{Extensions, Response, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::time::Instant;

use super::timed_write;

/// The one protocol Kong upgrades to.
const WEBSOCKET: &str = "websocket";

/// How many bytes one read of a tunnel takes at most.
const TUNNEL_READ: usize = 16 * 1024;

/// In a request's extensions: the client asked for a WebSocket upgrade.
#[derive(Debug, Clone, Copy)]
pub struct Requested;

/// Marks `parts` as a WebSocket handshake when its first `Upgrade` field
/// says `websocket` and it came over HTTP/1.x (the only version that can
/// switch protocols). Runs before the client's hop-by-hop fields are
/// removed.
pub fn note_request(parts: &mut http::request::Parts) {
    if !matches!(parts.version, Version::HTTP_10 | Version::HTTP_11) {
        return;
    }
    let asked = parts
        .headers
        .get(UPGRADE)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(WEBSOCKET.as_bytes()));
    if asked {
        parts.extensions.insert(Requested);
    }
}

/// Whether the request was marked by [`note_request`].
pub fn is_requested(extensions: &Extensions) -> bool {
    extensions.get::<Requested>().is_some()
}

/// Sets the upgrade fields of a marked request's upstream headers (Kong's
/// `proxy_set_header Upgrade $upstream_upgrade` and `Connection
/// $upstream_connection`).
pub fn prepare_upstream(headers: &mut HeaderMap, extensions: &Extensions) {
    if is_requested(extensions) {
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static(WEBSOCKET));
    }
}

/// A byte stream to the upstream.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// The upstream end of a switched connection and its timeouts.
pub struct Upstream {
    /// The connection the `101` came on.
    pub stream: Box<dyn Stream>,
    /// Bytes the upstream sent behind the `101` head.
    pub early: Bytes,
    /// The upstream's `Upgrade` value.
    pub protocol: HeaderValue,
    /// No byte either way for this long closes the tunnel (the service's
    /// `read_timeout`).
    pub idle_timeout: Duration,
    /// A write to the upstream blocked this long closes the tunnel (the
    /// service's `write_timeout`).
    pub write_timeout: Duration,
}

/// In a `101` response's extensions: the upstream connection, until the
/// server takes it.
#[derive(Clone)]
struct Pending(Arc<Mutex<Option<Upstream>>>);

/// Puts `upstream` in `response`'s extensions for the server.
pub fn attach<B>(response: &mut Response<B>, upstream: Upstream) {
    let pending = Pending(Arc::new(Mutex::new(Some(upstream))));
    response.extensions_mut().insert(pending);
}

/// The upstream connection of a `101` response, if it carries one; its
/// `Upgrade` goes back in the head.
pub fn take<B>(response: &mut Response<B>) -> Option<Upstream> {
    let pending = response.extensions_mut().remove::<Pending>()?;
    let upstream = pending.0.lock().ok()?.take()?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return None;
    }
    response
        .headers_mut()
        .insert(UPGRADE, upstream.protocol.clone());
    Some(upstream)
}

/// The protocol the upstream switched to, when it is the one asked for;
/// `None` refuses the switch.
pub fn switched_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    headers
        .get(UPGRADE)
        .filter(|value| value.as_bytes().eq_ignore_ascii_case(WEBSOCKET.as_bytes()))
        .cloned()
}

/// The client end of a tunnel: its two halves, what was read from it
/// already, and the send timeout of writes to it.
pub struct Client<R, W> {
    pub read: R,
    pub early: BytesMut,
    pub write: W,
    pub send_timeout: Duration,
}

/// Why a tunnel ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The client ended its stream.
    ClientClosed,
    /// The upstream ended its stream.
    UpstreamClosed,
    /// No byte either way for the idle timeout.
    Idle,
    /// A read or write failed (a reset, a write timeout).
    Failed,
}

/// Carries bytes both ways until one side ends or fails, or the tunnel
/// idles (see the module doc); then both are closed.
pub async fn run<R, W>(client: Client<R, W>, upstream: Upstream) -> Ended
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Client {
        read: mut client_read,
        early: client_early,
        write: mut client_write,
        send_timeout,
    } = client;
    let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream.stream);
    let activity = Activity::new();
    let ended = {
        let up = copy(
            &mut client_read,
            client_early.freeze(),
            &mut upstream_write,
            upstream.write_timeout,
            &activity,
        );
        let down = copy(
            &mut upstream_read,
            upstream.early,
            &mut client_write,
            send_timeout,
            &activity,
        );
        tokio::select! {
            result = up => if result.is_ok() { Ended::ClientClosed } else { Ended::Failed },
            result = down => if result.is_ok() { Ended::UpstreamClosed } else { Ended::Failed },
            () = activity.idle(upstream.idle_timeout) => Ended::Idle,
        }
    };
    let _ = tokio::time::timeout(send_timeout, client_write.shutdown()).await;
    let _ = tokio::time::timeout(upstream.write_timeout, upstream_write.shutdown()).await;
    ended
}

/// Copies `from` to `to` (after `early`) until `from` ends; every read
/// counts as activity.
async fn copy<R, W>(
    from: &mut R,
    early: Bytes,
    to: &mut W,
    write_timeout: Duration,
    activity: &Activity,
) -> io::Result<()>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    if !early.is_empty() {
        timed_write::write_all(to, &early, write_timeout).await?;
        timed_write::flush(to, write_timeout).await?;
    }
    let mut buf = vec![0u8; TUNNEL_READ];
    loop {
        let read = poll_fn(|cx| poll_read(from, cx, &mut buf)).await?;
        if read == 0 {
            return Ok(());
        }
        activity.touch();
        timed_write::write_all(to, &buf[..read], write_timeout).await?;
        timed_write::flush(to, write_timeout).await?;
        activity.touch();
    }
}

fn poll_read<R: AsyncRead + Unpin + ?Sized>(
    from: &mut R,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<io::Result<usize>> {
    let mut read_buf = ReadBuf::new(buf);
    match Pin::new(from).poll_read(cx, &mut read_buf) {
        Poll::Ready(Ok(())) => Poll::Ready(Ok(read_buf.filled().len())),
        Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
        Poll::Pending => Poll::Pending,
    }
}

/// When bytes last moved, in milliseconds since the tunnel opened.
struct Activity {
    opened: Instant,
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Bytes moved now.
    fn touch(&self) {
        let elapsed = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(elapsed, Ordering::Relaxed);
    }

    /// Completes once nothing moved for `timeout`.
    async fn idle(&self, timeout: Duration) {
        loop {
            let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = self.opened + last + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    fn request(version: Version, upgrade: Option<&'static str>) -> http::request::Parts {
        let mut builder = http::Request::builder().version(version);
        if let Some(upgrade) = upgrade {
            builder = builder.header(UPGRADE, upgrade);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn only_websocket_over_http1_is_marked() {
        for (version, upgrade, marked) in [
            (Version::HTTP_11, Some("websocket"), true),
            (Version::HTTP_11, Some("WebSocket"), true),
            (Version::HTTP_10, Some("websocket"), true),
            (Version::HTTP_11, Some("h2c"), false),
            (Version::HTTP_11, None, false),
            (Version::HTTP_2, Some("websocket"), false),
        ] {
            let mut parts = request(version, upgrade);
            note_request(&mut parts);
            assert_eq!(
                is_requested(&parts.extensions),
                marked,
                "{version:?} {upgrade:?}"
            );
            let mut headers = HeaderMap::new();
            prepare_upstream(&mut headers, &parts.extensions);
            assert_eq!(headers.contains_key(UPGRADE), marked);
            if marked {
                assert_eq!(headers[CONNECTION], "keep-alive, Upgrade");
                assert_eq!(headers[UPGRADE], "websocket");
            }
        }
    }

    fn upstream(stream: tokio::io::DuplexStream, idle: Duration) -> Upstream {
        Upstream {
            stream: Box::new(stream),
            early: Bytes::from_static(b"hello"),
            protocol: HeaderValue::from_static("websocket"),
            idle_timeout: idle,
            write_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn take_restores_the_upgrade_of_a_101_only() {
        let (stream, _peer) = tokio::io::duplex(64);
        let mut switching = Response::builder().status(101).body(()).unwrap();
        attach(&mut switching, upstream(stream, Duration::from_secs(1)));
        assert!(take(&mut switching).is_some());
        assert_eq!(switching.headers()[UPGRADE], "websocket");
        assert!(take(&mut switching).is_none(), "taken once");

        let (stream, _peer) = tokio::io::duplex(64);
        let mut replaced = Response::builder().status(200).body(()).unwrap();
        attach(&mut replaced, upstream(stream, Duration::from_secs(1)));
        assert!(take(&mut replaced).is_none());
        assert!(!replaced.headers().contains_key(UPGRADE));
    }

    #[tokio::test]
    async fn bytes_flow_both_ways_until_a_side_closes() {
        let (client_side, mut client) = tokio::io::duplex(1024);
        let (upstream_side, mut server) = tokio::io::duplex(1024);
        let (read, write) = tokio::io::split(client_side);
        let tunnel = tokio::spawn(run(
            Client {
                read,
                early: BytesMut::from(&b"early"[..]),
                write,
                send_timeout: Duration::from_secs(1),
            },
            upstream(upstream_side, Duration::from_secs(5)),
        ));
        let mut got = [0u8; 5];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello", "the upstream's early bytes first");
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"early", "the client's early bytes first");
        client.write_all(b"ping").await.unwrap();
        let mut ping = [0u8; 4];
        server.read_exact(&mut ping).await.unwrap();
        assert_eq!(&ping, b"ping");
        server.write_all(b"pong").await.unwrap();
        client.read_exact(&mut ping).await.unwrap();
        assert_eq!(&ping, b"pong");
        drop(server);
        assert_eq!(tunnel.await.unwrap(), Ended::UpstreamClosed);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "the client's side is closed");
    }

    #[tokio::test]
    async fn an_idle_tunnel_closes_at_the_timeout_and_traffic_rearms_it() {
        let (client_side, mut client) = tokio::io::duplex(1024);
        let (upstream_side, mut server) = tokio::io::duplex(1024);
        let (read, write) = tokio::io::split(client_side);
        let opened = Instant::now();
        let tunnel = tokio::spawn(run(
            Client {
                read,
                early: BytesMut::new(),
                write,
                send_timeout: Duration::from_secs(1),
            },
            upstream(upstream_side, Duration::from_millis(300)),
        ));
        let mut hello = [0u8; 5];
        client.read_exact(&mut hello).await.unwrap();
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            client.write_all(b"x").await.unwrap();
            let mut x = [0u8; 1];
            server.read_exact(&mut x).await.unwrap();
        }
        assert_eq!(tunnel.await.unwrap(), Ended::Idle);
        let lasted = opened.elapsed();
        assert!(
            lasted >= Duration::from_millis(900) && lasted < Duration::from_millis(1500),
            "{lasted:?}"
        );
    }
}
