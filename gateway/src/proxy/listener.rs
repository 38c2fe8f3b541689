//! Accepting and serving proxy connections.
//!
//! Each accepted connection gets its own task: an optional TLS handshake
//! (bounded by `tls_handshake_timeout`), then hyper-util's auto builder,
//! which speaks HTTP/1.1 with keep-alive, or HTTP/2 when the client opens
//! with the HTTP/2 preface (after ALPN `h2` on TLS). An oversized first
//! request line gets 414 from [`RequestLineGuard`], other oversized request
//! heads get 431 from hyper, and heads slower than `header_read_timeout`
//! are cut off.
//!
//! On shutdown the listener stops accepting, open connections are asked to
//! finish their current request and close, and [`serve`] waits for them up
//! to `drain_timeout`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::request_line::RequestLineGuard;
use super::{body, Proxy, ProxySettings};
use crate::plugins::Downstream;

/// Pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// hyper refuses a read buffer smaller than this.
const MIN_BUF_SIZE: usize = 8192;

type ConnectionBuilder = auto::Builder<TokioExecutor>;

/// Serves proxy traffic on `listener` (TLS when `tls` is given) until
/// `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    proxy: Arc<Proxy>,
    shutdown: impl Future<Output = ()>,
) {
    let builder = Arc::new(connection_builder(proxy.settings()));
    let listen_port = listener.local_addr().map_or(0, |addr| addr.port());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let accepted = Accepted { stream, peer, listen_port };
                    spawn_connection(accepted, tls.clone(), &builder, &proxy, graceful.watcher());
                }
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    let drain = proxy.settings().drain_timeout;
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?drain,
            "connections still open after the drain timeout; closing them"
        );
    }
}

/// The size of hyper's HTTP/1.1 read buffer, which bounds a request head.
fn head_buffer_size(settings: &ProxySettings) -> usize {
    settings.max_header_bytes.max(MIN_BUF_SIZE)
}

/// HTTP/1.1 and HTTP/2 settings from `settings`.
fn connection_builder(settings: &ProxySettings) -> ConnectionBuilder {
    let max_header_bytes = head_buffer_size(settings);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// A freshly accepted TCP connection.
struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    listen_port: u16,
}

/// Serves one connection on its own task.
fn spawn_connection(
    accepted: Accepted,
    tls: Option<TlsAcceptor>,
    builder: &Arc<ConnectionBuilder>,
    proxy: &Arc<Proxy>,
    watcher: Watcher,
) {
    let builder = Arc::clone(builder);
    let proxy = Arc::clone(proxy);
    tokio::spawn(async move {
        let _ = accepted.stream.set_nodelay(true);
        let head_limit = head_buffer_size(proxy.settings());
        let mut downstream = Downstream {
            client_addr: accepted.peer,
            tls: tls.is_some(),
            listen_port: accepted.listen_port,
            sni: None,
        };
        let Some(acceptor) = tls else {
            let io = TokioIo::new(RequestLineGuard::new(accepted.stream, head_limit));
            return serve_io(&builder, watcher, io, proxy, downstream).await;
        };
        let handshake = proxy.settings().tls_handshake_timeout;
        match tokio::time::timeout(handshake, acceptor.accept(accepted.stream)).await {
            Ok(Ok(stream)) => {
                downstream.sni = stream.get_ref().1.server_name().map(Arc::from);
                let io = TokioIo::new(RequestLineGuard::new(stream, head_limit));
                serve_io(&builder, watcher, io, proxy, downstream).await;
            }
            Ok(Err(error)) => {
                tracing::debug!(peer = %accepted.peer, %error, "TLS handshake failed")
            }
            Err(_) => tracing::debug!(peer = %accepted.peer, "TLS handshake timed out"),
        }
    });
}

/// Runs hyper on `io` until the connection ends.
async fn serve_io<I>(
    builder: &ConnectionBuilder,
    watcher: Watcher,
    io: I,
    proxy: Arc<Proxy>,
    downstream: Downstream,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| {
        let proxy = Arc::clone(&proxy);
        let downstream = downstream.clone();
        async move {
            let response = proxy.handle(request.map(body::boxed), downstream).await;
            Ok::<_, Infallible>(response)
        }
    });
    let connection = builder.serve_connection(io, service).into_owned();
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%error, "connection ended with an error");
    }
}
