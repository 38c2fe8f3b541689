//! Accepting and serving proxy connections.
//!
//! [`serve`] accepts on the caller's runtime and hands each connection, in
//! turn, to one of the proxy's [`Workers`]: threads running one
//! single-threaded tokio runtime each, like nginx's worker processes. A
//! connection stays on its worker: its task, the request pipeline and the
//! upstream connections it uses all run on that thread, so they wake each
//! other without cross-thread notifications (futex wake-ups, work
//! stealing), which a multi-threaded runtime pays several times per
//! proxied request.
//!
//! Each accepted connection gets its own task: an optional TLS handshake
//! (bounded by `tls_handshake_timeout`), then the gateway's own HTTP/1.1
//! server (`http1/`), which also answers 414, 431 and 400 and enforces
//! `header_read_timeout`. hyper serves HTTP/2: connections that negotiated
//! `h2` by ALPN, and those that open with the HTTP/2 preface; their socket
//! writes are bounded by `send_timeout` and their request bodies by
//! `client_body_timeout`, as the HTTP/1.1 server's are.
//!
//! On shutdown the listener stops accepting, open connections are asked to
//! finish their current request and close (idle ones close at once), and
//! [`serve`] waits for them up to `drain_timeout`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::{Body as _, Incoming};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::http1::{self, Shutdown, Split};
use super::timed_write::TimedWriteIo;
use super::{Proxy, ProxySettings};
use crate::pdk::body;
use crate::pdk::body::IdleTimeout;
use crate::pdk::Downstream;

/// Pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

type Http2Builder = http2::Builder<TokioExecutor>;

/// Serves proxy traffic on `listener` (TLS when `tls` is given) until
/// `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    proxy: Arc<Proxy>,
    shutdown: impl Future<Output = ()>,
) {
    let http2 = Arc::new(http2_builder(proxy.settings()));
    let listen_port = listener.local_addr().map_or(0, |addr| addr.port());
    // `true` once the shutdown starts; every connection holds a receiver.
    let (stopping, _) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match stream.into_std() {
                    Ok(stream) => {
                        let accepted = Accepted { stream, peer, listen_port };
                        let shutdown = Shutdown::new(stopping.subscribe());
                        spawn_connection(accepted, tls.clone(), &http2, &proxy, shutdown);
                    }
                    Err(error) => tracing::debug!(%error, "cannot hand over a connection"),
                },
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    stopping.send_replace(true);
    let drain = proxy.settings().drain_timeout;
    if tokio::time::timeout(drain, stopping.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            ?drain,
            "connections still open after the drain timeout; closing them"
        );
    }
}

/// hyper's HTTP/2 settings from `settings`.
fn http2_builder(settings: &ProxySettings) -> Http2Builder {
    let max_header_bytes = http1::head_limit(settings);
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// The proxy's worker threads, each running a single-threaded tokio
/// runtime that serves the connections handed to it (see the module doc).
/// Dropping `Workers` stops the threads, and with their runtimes the
/// connections they still serve.
pub(super) struct Workers {
    runtimes: Vec<Handle>,
    next: AtomicUsize,
    /// Dropped with `Workers`, which ends every worker's `block_on`.
    _stop: watch::Sender<()>,
}

impl Workers {
    /// Starts `count` workers. If a thread or runtime cannot be created,
    /// the ones started are used (none: connections stay on the caller's
    /// runtime).
    pub(super) fn start(count: usize) -> Self {
        let (stop, stopped) = watch::channel(());
        let mut runtimes = Vec::with_capacity(count);
        for index in 0..count {
            match start_worker(index, stopped.clone()) {
                Ok(runtime) => runtimes.push(runtime),
                Err(error) => {
                    tracing::warn!(%error, "cannot start a proxy worker thread");
                    break;
                }
            }
        }
        Workers {
            runtimes,
            next: AtomicUsize::new(0),
            _stop: stop,
        }
    }

    /// The runtime for the next connection: the workers in turn (so
    /// connections spread evenly), or the caller's without workers.
    fn next(&self) -> Handle {
        if self.runtimes.is_empty() {
            return Handle::current();
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.runtimes.len();
        self.runtimes[index].clone()
    }
}

/// A thread `proxy-worker-<index>` running a single-threaded runtime until
/// `stopped`'s sender is dropped; returns that runtime's handle.
fn start_worker(index: usize, mut stopped: watch::Receiver<()>) -> io::Result<Handle> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name(format!("proxy-worker-{index}"))
        .spawn(move || runtime.block_on(async move { while stopped.changed().await.is_ok() {} }))?;
    Ok(handle)
}

impl Proxy {
    /// The runtime that serves the next connection (see [`Workers`]); the
    /// workers start on the first call.
    fn runtime_for_connection(&self) -> Handle {
        self.workers
            .get_or_init(|| Workers::start(self.settings.workers))
            .next()
    }
}

/// A freshly accepted TCP connection, not yet tied to a runtime.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    listen_port: u16,
}

/// Serves one connection on its own task, on the runtime of the next
/// worker.
fn spawn_connection(
    accepted: Accepted,
    tls: Option<TlsAcceptor>,
    http2: &Arc<Http2Builder>,
    proxy: &Arc<Proxy>,
    shutdown: Shutdown,
) {
    let http2 = Arc::clone(http2);
    let proxy = Arc::clone(proxy);
    proxy
        .runtime_for_connection()
        .spawn(serve_connection(accepted, tls, http2, proxy, shutdown));
}

/// Serves one connection until it ends: counts it open, registers it with
/// the current runtime, runs the TLS handshake if any, then HTTP/1.1 or
/// HTTP/2.
async fn serve_connection(
    accepted: Accepted,
    tls: Option<TlsAcceptor>,
    http2: Arc<Http2Builder>,
    proxy: Arc<Proxy>,
    shutdown: Shutdown,
) {
    let Accepted {
        stream,
        peer,
        listen_port,
    } = accepted;
    let _open = proxy.stats().connection_opened();
    let stream = match TcpStream::from_std(stream) {
        Ok(stream) => stream,
        Err(error) => return tracing::debug!(%peer, %error, "cannot register a connection"),
    };
    let _ = stream.set_nodelay(true);
    let mut downstream = Downstream {
        client_addr: peer,
        tls: tls.is_some(),
        listen_port,
        sni: None,
    };
    let Some(acceptor) = tls else {
        return serve_stream(stream, &http2, proxy, downstream, shutdown).await;
    };
    let handshake = proxy.settings().tls_handshake_timeout;
    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            let (_, session) = stream.get_ref();
            downstream.sni = session.server_name().map(Arc::from);
            if session.alpn_protocol() == Some(b"h2") {
                serve_http2(stream, &http2, proxy, downstream, shutdown).await;
            } else {
                serve_stream(stream, &http2, proxy, downstream, shutdown).await;
            }
        }
        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// Serves HTTP/1.1 on `stream`, or HTTP/2 if it opens with the preface.
async fn serve_stream<S: Split>(
    stream: S,
    http2: &Http2Builder,
    proxy: Arc<Proxy>,
    downstream: Downstream,
    mut shutdown: Shutdown,
) {
    let rewound = http1::serve(stream, &proxy, downstream.clone(), &mut shutdown).await;
    if let Some(stream) = rewound {
        serve_http2(stream, http2, proxy, downstream, shutdown).await;
    }
}

/// Runs hyper's HTTP/2 server on `io` until the connection ends; on
/// shutdown, hyper finishes the streams in flight and closes.
async fn serve_http2<I>(
    io: I,
    builder: &Http2Builder,
    proxy: Arc<Proxy>,
    downstream: Downstream,
    mut shutdown: Shutdown,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let settings = proxy.settings();
    let (body_timeout, send_timeout) = (settings.client_body_timeout, settings.send_timeout);
    let service = service_fn(move |request: Request<Incoming>| {
        let proxy = Arc::clone(&proxy);
        let downstream = downstream.clone();
        async move {
            let request = request.map(|incoming| {
                let incoming = body::boxed(incoming);
                if incoming.is_end_stream() {
                    incoming
                } else {
                    IdleTimeout::client_body(incoming, body_timeout).into_body()
                }
            });
            let response = proxy.handle(request, downstream).await;
            Ok::<_, Infallible>(response)
        }
    });
    let io = TimedWriteIo::new(io, send_timeout);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = shutdown.started() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = ended {
        tracing::debug!(%error, "HTTP/2 connection ended with an error");
    }
}
