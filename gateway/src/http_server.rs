//! The small HTTP server the Admin API and the Status API share: hyper
//! (HTTP/1.1 and HTTP/2) on one listener, every connection counted in the
//! node's counters (nginx's `connections_*`), and a graceful stop that lets
//! in-flight requests finish for a while. The proxy has its own server
//! (`proxy/`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

use crate::observability::NodeStats;

/// What differs between the servers.
pub struct ServerSettings {
    /// Names the server in log lines (`admin`, `status`).
    pub name: &'static str,
    /// How long a client may take to send a request head.
    pub header_read_timeout: Duration,
    /// How long in-flight requests may run on after `shutdown`.
    pub shutdown_grace: Duration,
}

/// Serves `handle` (given each request and its client's address) on
/// `listener` until `shutdown` completes, then lets in-flight requests
/// finish for up to `shutdown_grace`.
pub async fn serve<H, F>(
    listener: TcpListener,
    settings: ServerSettings,
    stats: Arc<NodeStats>,
    handle: H,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let connection = Connection { builder: &builder, graceful: &graceful, stats: &stats, name: settings.name };
                    connection.spawn(stream, peer, handle.clone());
                }
                Err(error) => {
                    tracing::warn!(%error, server = settings.name, "listener failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    if tokio::time::timeout(settings.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            server = settings.name,
            "shutdown timed out with requests in flight"
        );
    }
}

/// What a new connection is served with.
struct Connection<'a> {
    builder: &'a auto::Builder<TokioExecutor>,
    graceful: &'a GracefulShutdown,
    stats: &'a Arc<NodeStats>,
    name: &'static str,
}

impl Connection<'_> {
    /// Serves one accepted connection on its own task.
    fn spawn<H, F>(self, stream: TcpStream, peer: SocketAddr, handle: H)
    where
        H: Fn(Request<Incoming>, SocketAddr) -> F + Send + Sync + 'static,
        F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let open = self.stats.connection_opened();
        let service = service_fn(move |request: Request<Incoming>| {
            let answer = handle(request, peer);
            async move { Ok::<_, Infallible>(answer.await) }
        });
        let connection = self
            .builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let watched = self.graceful.watch(connection);
        let name = self.name;
        tokio::spawn(async move {
            if let Err(error) = watched.await {
                tracing::debug!(%error, server = name, "connection ended with an error");
            }
            drop(open);
        });
    }
}
