//! The proxy: listeners, the request pipeline and upstream forwarding.
//!
//! - [`serve`] accepts connections (plain TCP, or TLS with the acceptor
//!   given) and serves HTTP/1.1 and HTTP/2 on them until shutdown, then
//!   drains in-flight requests.
//! - [`Proxy::handle`] is the per-request pipeline (see `pipeline.rs`);
//!   [`phases`] runs the plugins' phases on it.
//!   `log_phase.rs` runs the access log and the plugins' log phase once a
//!   response body is done.
//! - [`upstream`] sends requests to services through pooled clients.
//! - [`headers`] holds the header rules, [`request_checks`] what a request
//!   must pass before routing; the gateway's own responses and the body
//!   types are the PDK's ([`crate::pdk::response`], [`crate::pdk::body`]).
//! - `http1/` is the HTTP/1.1 server; hyper serves HTTP/2.
//! - [`tunnel`] carries WebSocket connections after their `101`.

mod framing;
#[doc(hidden)]
pub mod fuzzing;
pub mod headers;
mod http1;
mod listener;
mod log_phase;
pub mod phases;
mod pipeline;
pub mod request_checks;
mod timed_write;
pub mod tunnel;
pub mod upstream;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use listener::serve;
use listener::Workers;
pub use pipeline::{new_request_id, NO_ROUTE_MESSAGE};

use crate::observability::{AccessLog, NodeStats};
use crate::proxy::phases::DEFAULT_BODY_CAP;
use crate::snapshot::SnapshotHandle;
use upstream::{PoolSettings, UpstreamClients};

/// Limits and timeouts of the proxy.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// The largest request body buffered for a plugin that asks for it.
    pub body_cap: usize,
    /// How long a client may take to send a request head (nginx's
    /// `client_header_timeout`).
    pub header_read_timeout: Duration,
    /// How long a request body may stay silent between two reads (nginx's
    /// `client_body_timeout`); then the client gets 408 if no response has
    /// started, and the connection closes.
    pub client_body_timeout: Duration,
    /// How long a write to the client may stay blocked without progress
    /// (nginx's `send_timeout`); then the connection closes.
    pub send_timeout: Duration,
    /// The largest request head (request line and headers), in bytes;
    /// beyond it HTTP/1.1 clients get 431, or 414 when the request line
    /// alone is that long (see `http1/head.rs`). At least 8192.
    pub max_header_bytes: usize,
    /// How long a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// How long in-flight requests may run after shutdown starts.
    pub drain_timeout: Duration,
    /// The upstream connection pool.
    pub pool: PoolSettings,
    /// How many worker threads serve proxy connections (see
    /// `listener.rs`); 0 serves them on the runtime that calls [`serve`].
    pub workers: usize,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            body_cap: DEFAULT_BODY_CAP,
            header_read_timeout: Duration::from_secs(60),
            client_body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            max_header_bytes: 64 * 1024,
            tls_handshake_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            pool: PoolSettings::default(),
            workers: default_workers(),
        }
    }
}

/// One worker per core.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The proxy's shared state: the current snapshot, the upstream pool and
/// the settings. One per process, shared by all listeners.
pub struct Proxy {
    snapshots: Arc<SnapshotHandle>,
    upstream: UpstreamClients,
    settings: ProxySettings,
    /// The worker threads, started by the first [`serve`].
    workers: OnceLock<Workers>,
    /// Connection and request counters (shared with the other listeners).
    stats: Arc<NodeStats>,
    /// The access log, when on.
    access_log: Option<Arc<AccessLog>>,
}

impl Proxy {
    /// A proxy serving whatever snapshot `snapshots` holds at each request.
    pub fn new(snapshots: Arc<SnapshotHandle>, settings: ProxySettings) -> Self {
        Proxy {
            snapshots,
            upstream: UpstreamClients::new(settings.pool.clone()),
            settings,
            workers: OnceLock::new(),
            stats: Arc::default(),
            access_log: None,
        }
    }

    /// Counts into `stats` instead of counters of its own.
    pub fn with_stats(mut self, stats: Arc<NodeStats>) -> Self {
        self.stats = stats;
        self
    }

    /// Writes a line per request into `log`.
    pub fn with_access_log(mut self, log: Arc<AccessLog>) -> Self {
        self.access_log = Some(log);
        self
    }

    /// The proxy's settings.
    pub fn settings(&self) -> &ProxySettings {
        &self.settings
    }

    /// The connection and request counters.
    pub fn stats(&self) -> &Arc<NodeStats> {
        &self.stats
    }
}

#[cfg(test)]
mod tests;
