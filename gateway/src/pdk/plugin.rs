//! The plugin contract: the [`Plugin`] phase trait (Pingora's
//! `ProxyHttp`, Kong's handler phases: access, response headers, log),
//! what an access handler decides
//! ([`Flow`]), how a plugin declares itself ([`PluginDescriptor`]: phases,
//! factory, background task) and what a factory gets ([`PluginEnv`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use schemas::plugins::PluginSchema;
use uuid::Uuid;

use super::context::RequestCtx;
use super::log::LogEntry;
use crate::observability::KongMetrics;
use crate::store::SessionStore;

/// A response produced by a plugin (Kong's `kong.response.exit` or
/// `kong.response.error`); build one with [`RequestCtx::error`] or
/// [`RequestCtx::exit`].
pub type PluginResponse = http::Response<Bytes>;

/// What an access handler decided.
#[derive(Debug)]
pub enum Flow {
    /// Go on: run the next plugin, then proxy the request.
    Continue,
    /// Answer the client with this response; no further access handler runs
    /// and the request is not proxied. Response handlers still run.
    Respond(PluginResponse),
}

/// A plugin instance: one plugin row's config, parsed and precomputed.
///
/// Instances are shared by all requests of a snapshot, so hooks take
/// `&self`; per-request state goes into [`RequestCtx::extensions`].
#[async_trait::async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// Whether [`Plugin::access`] needs the request body in memory. When
    /// true, the runner buffers the body (up to its cap) before calling
    /// `access`, and [`RequestCtx::body`] returns it; a body over the cap
    /// stays unbuffered and `body()` returns `None`, as for a body Kong
    /// cannot read. Default: false, the body streams.
    fn needs_body(&self) -> bool {
        false
    }

    /// The access phase: runs before proxying, in priority order, unless an
    /// earlier plugin already short-circuited. It may change the request
    /// (headers, query, body), authenticate a consumer, queue response
    /// headers, or answer with [`Flow::Respond`]. Default: continue.
    async fn access(&self, ctx: &mut RequestCtx) -> Flow {
        let _ = ctx;
        Flow::Continue
    }

    /// The response-headers phase: runs once the response head is known,
    /// for every instance resolved during access (in the same order) whose
    /// descriptor declares it, on proxied responses, short-circuit
    /// responses and gateway errors after routing. `head` is what the
    /// client will receive, after the headers queued in
    /// [`RequestCtx::response_headers`] were added. Default: does nothing.
    async fn response(&self, ctx: &mut RequestCtx, head: &mut http::response::Parts) {
        let _ = (ctx, head);
    }

    /// The log phase (Kong's `log`): runs once the response body has been
    /// handed to the connection (or the client went away before its end),
    /// for every instance resolved during access whose descriptor declares
    /// it, in the same order, on every response of a routed request. The
    /// response is gone: the hook returns nothing and changes nothing the
    /// client sees. It runs on the worker thread as the body completes, so
    /// it must not block: count, or hand the entry's data to a queue.
    /// Default: does nothing.
    fn log(&self, entry: &LogEntry<'_>) {
        let _ = entry;
    }
}

/// Process-wide facts and shared services a factory or background task
/// may need.
#[derive(Clone, Default)]
pub struct PluginEnv {
    /// This node's id (request-termination's echo shows it).
    pub node_id: Uuid,
    /// This host's name (request-termination's echo shows it).
    pub hostname: String,
    /// The database's session rows (Kong's `kong.db.sessions`), for the
    /// session plugin's `storage: kong`; `None` without a database.
    pub sessions: Option<Arc<dyn SessionStore>>,
    /// The prometheus plugin's metric families, one set per process; the
    /// snapshot makes each route's handles into it.
    pub metrics: Arc<KongMetrics>,
}

impl std::fmt::Debug for PluginEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEnv")
            .field("node_id", &self.node_id)
            .field("hostname", &self.hostname)
            .field("sessions", &self.sessions.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a plugin row could not be turned into an instance.
#[derive(Debug, thiserror::Error)]
pub enum PluginBuildError {
    /// The config does not have the plugin's canonical shape.
    #[error("invalid config: {0}")]
    Config(#[from] serde_json::Error),
    /// The config is well-formed but unusable.
    #[error("{0}")]
    Invalid(String),
}

/// Builds an instance from a plugin row.
pub type PluginFactory =
    fn(&schemas::model::Plugin, &PluginEnv) -> Result<Arc<dyn Plugin>, PluginBuildError>;

/// Work a plugin runs in the background for the node's lifetime (Kong's
/// `init_worker`), e.g. sweeping expired session rows. The server stops
/// it at shutdown by dropping it.
pub type BackgroundTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Which phases a plugin implements; the runner skips the others.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    /// It implements [`Plugin::access`].
    pub access: bool,
    /// It implements [`Plugin::response`].
    pub response: bool,
    /// It implements [`Plugin::log`]. Requests none of whose instances
    /// declares it cost the log phase nothing.
    pub log: bool,
}

/// A plugin this gateway can run. Its priority, version and config schema
/// live with its schema in [`schemas::plugins`], under the same name.
#[derive(Debug, Clone, Copy)]
pub struct PluginDescriptor {
    /// Its name, e.g. `key-auth` (the schema's own constant).
    pub name: &'static str,
    /// The phases its instances implement.
    pub phases: Phases,
    /// Builds an instance from a row.
    pub build: PluginFactory,
    /// Its background task, started once per node, if it needs one.
    pub background: Option<fn(&PluginEnv) -> Option<BackgroundTask>>,
}

impl PluginDescriptor {
    /// Its schema (every descriptor has one; a unit test holds this).
    pub fn schema(&self) -> Option<&'static PluginSchema> {
        schemas::plugins::lookup(self.name)
    }

    /// Kong's `PRIORITY`: higher runs first.
    pub fn priority(&self) -> u32 {
        self.schema().map_or(0, |schema| schema.priority)
    }
}
