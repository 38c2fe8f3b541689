//! Plugins: the phase trait every plugin implements, the registry of the
//! plugins this gateway can run ([`DESCRIPTORS`]), and one module per
//! plugin.
//!
//! # Phases
//!
//! A request that matched a route goes through the plugins in two phases,
//! like Kong's:
//!
//! 1. **access**, before proxying. The [`runner`] walks the plugin names in
//!    descending priority (ties: name descending). For each name it resolves
//!    the most specific enabled instance for the matched route, its service
//!    and the consumer authenticated *so far* (Kong's 8-rank table), records
//!    it, and awaits [`Plugin::access`]. A plugin returning
//!    [`Flow::Respond`] short-circuits: no further access handlers run, but
//!    the remaining names are still resolved and recorded.
//! 2. **response**, when the response head is known: [`Plugin::response`]
//!    runs for every recorded instance whose descriptor declares the phase,
//!    in the same order, on proxied responses, on short-circuit responses
//!    and on the gateway's own errors produced after routing (502, 503,
//!    504).
//!
//! Both hooks are async: a plugin may await a database or network call
//! without blocking the worker thread's other connections.
//!
//! # Adding a plugin
//!
//! Its config schema in `schemas/src/plugins/<name>.rs` (name, priority,
//! version, fields; one line in that registry), its handler here in
//! `<name>.rs` (a [`PluginFactory`] building a [`Plugin`]), and one line in
//! [`DESCRIPTORS`].

pub mod context;
pub mod key_auth;
pub mod request_data;
pub mod request_termination;
pub mod runner;
pub mod session;
pub mod unavailable;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use schemas::model::Consumer;
use schemas::plugins::PluginSchema;
use uuid::Uuid;

pub use context::{AuthCredential, Downstream, Matched, RequestCtx};
pub use runner::PluginRunner;

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
}

impl std::fmt::Debug for PluginEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEnv")
            .field("node_id", &self.node_id)
            .field("hostname", &self.hostname)
            .field("sessions", &self.sessions.is_some())
            .finish()
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

/// The plugins this gateway can run.
pub const DESCRIPTORS: &[PluginDescriptor] = &[
    key_auth::DESCRIPTOR,
    request_termination::DESCRIPTOR,
    session::DESCRIPTOR,
];

/// The plugin of this name, if this gateway can run it.
pub fn descriptor(name: &str) -> Option<&'static PluginDescriptor> {
    DESCRIPTORS.iter().find(|plugin| plugin.name == name)
}

/// The background tasks of every plugin that has one.
pub fn background_tasks(env: &PluginEnv) -> Vec<BackgroundTask> {
    DESCRIPTORS
        .iter()
        .filter_map(|plugin| plugin.background)
        .filter_map(|start| start(env))
        .collect()
}

/// Upstream header carrying the consumer's id.
pub const CONSUMER_ID: HeaderName = HeaderName::from_static("x-consumer-id");
/// Upstream header carrying the consumer's custom_id.
pub const CONSUMER_CUSTOM_ID: HeaderName = HeaderName::from_static("x-consumer-custom-id");
/// Upstream header carrying the consumer's username.
pub const CONSUMER_USERNAME: HeaderName = HeaderName::from_static("x-consumer-username");
/// Upstream header carrying the credential's id.
pub const CREDENTIAL_IDENTIFIER: HeaderName = HeaderName::from_static("x-credential-identifier");
/// Upstream header set to `true` for an anonymous consumer.
pub const ANONYMOUS_CONSUMER: HeaderName = HeaderName::from_static("x-anonymous-consumer");

/// Sets or clears the upstream identity headers as Kong's auth plugins do:
/// `X-Consumer-ID`, `X-Consumer-Custom-ID` and `X-Consumer-Username` from the
/// consumer (cleared when absent), `X-Credential-Identifier` from the
/// credential, and `X-Anonymous-Consumer: true` only without a credential.
/// Any client-sent copy is replaced or removed.
pub fn set_identity_headers(
    headers: &mut HeaderMap,
    consumer: Option<&Consumer>,
    credential: Option<&AuthCredential>,
) {
    let mut buffer = Uuid::encode_buffer();
    let consumer_id = consumer.map(|consumer| &*consumer.id.hyphenated().encode_lower(&mut buffer));
    set_or_clear(headers, CONSUMER_ID, consumer_id);
    let custom_id = consumer.and_then(|consumer| consumer.custom_id.as_deref());
    set_or_clear(headers, CONSUMER_CUSTOM_ID, custom_id);
    let username = consumer.and_then(|consumer| consumer.username.as_deref());
    set_or_clear(headers, CONSUMER_USERNAME, username);
    let mut buffer = Uuid::encode_buffer();
    let credential_id =
        credential.map(|credential| &*credential.id.hyphenated().encode_lower(&mut buffer));
    set_or_clear(headers, CREDENTIAL_IDENTIFIER, credential_id);
    let anonymous = credential.is_none().then_some("true");
    set_or_clear(headers, ANONYMOUS_CONSUMER, anonymous);
}

/// Replaces every `name` header with `value`, or removes them for `None` (or
/// a value that cannot be a header value).
fn set_or_clear(headers: &mut HeaderMap, name: HeaderName, value: Option<&str>) {
    match value.and_then(|value| HeaderValue::from_str(value).ok()) {
        Some(value) => {
            headers.insert(name, value);
        }
        None => {
            headers.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_has_a_handler_and_every_handler_a_schema() {
        let mut handlers: Vec<&str> = DESCRIPTORS.iter().map(|plugin| plugin.name).collect();
        let mut schemas: Vec<&str> = schemas::plugins::all()
            .iter()
            .map(|schema| schema.name)
            .collect();
        handlers.sort_unstable();
        schemas.sort_unstable();
        assert_eq!(handlers, schemas);
    }
}
