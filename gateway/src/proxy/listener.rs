//! Accepting and serving proxy connections.
//!
//! [`serve`] accepts on the caller's runtime and hands each connection, in
//! turn, to one of the proxy's [`Workers`]: threads running one
//! single-threaded tokio runtime each, like nginx's worker processes. A
//! connection stays on its worker: hyper's connection task, the request
//! pipeline and the upstream connections it uses all run on that thread,
//! so they wake each other without cross-thread notifications (futex
//! wake-ups, work stealing), which a multi-threaded runtime pays several
//! times per proxied request.
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
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::watch;
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
                Ok((stream, peer)) => match stream.into_std() {
                    Ok(stream) => {
                        let accepted = Accepted { stream, peer, listen_port };
                        spawn_connection(accepted, tls.clone(), &builder, &proxy, graceful.watcher());
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
        .max_buf_size(max_header_bytes)
        // hyper copies the body into its head buffer and makes one write()
        // instead of a writev() of both: cheaper for the small responses
        // most APIs send (measured in bench/README.md); large bodies pay a
        // copy, which costs less than the system call.
        .writev(false);
    builder
        .http2()
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
    builder: &Arc<ConnectionBuilder>,
    proxy: &Arc<Proxy>,
    watcher: Watcher,
) {
    let builder = Arc::clone(builder);
    let proxy = Arc::clone(proxy);
    proxy
        .runtime_for_connection()
        .spawn(serve_connection(accepted, tls, builder, proxy, watcher));
}

/// Serves one connection until it ends: registers it with the current
/// runtime, runs the TLS handshake if any, then hyper.
async fn serve_connection(
    accepted: Accepted,
    tls: Option<TlsAcceptor>,
    builder: Arc<ConnectionBuilder>,
    proxy: Arc<Proxy>,
    watcher: Watcher,
) {
    let Accepted {
        stream,
        peer,
        listen_port,
    } = accepted;
    let stream = match TcpStream::from_std(stream) {
        Ok(stream) => stream,
        Err(error) => return tracing::debug!(%peer, %error, "cannot register a connection"),
    };
    let _ = stream.set_nodelay(true);
    let head_limit = head_buffer_size(proxy.settings());
    let mut downstream = Downstream {
        client_addr: peer,
        tls: tls.is_some(),
        listen_port,
        sni: None,
    };
    let Some(acceptor) = tls else {
        let io = TokioIo::new(RequestLineGuard::new(stream, head_limit));
        return serve_io(&builder, watcher, io, proxy, downstream).await;
    };
    let handshake = proxy.settings().tls_handshake_timeout;
    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            downstream.sni = stream.get_ref().1.server_name().map(Arc::from);
            let io = TokioIo::new(RequestLineGuard::new(stream, head_limit));
            serve_io(&builder, watcher, io, proxy, downstream).await;
        }
        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
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
