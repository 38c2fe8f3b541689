//! The plugin trait, the per-request context, the runner and one module per
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
//!    it, and calls [`Plugin::access`]. A plugin returning
//!    [`Flow::Respond`] short-circuits: no further access handlers run, but
//!    the remaining names are still resolved and recorded.
//! 2. **response**, when the response head is known: [`Plugin::response`]
//!    runs for every recorded instance, in the same order, on proxied
//!    responses, on short-circuit responses and on the gateway's own errors
//!    produced after routing (502, 503, 504).
//!
//! Plugins are built once per configuration snapshot by a [`PluginFactory`]
//! (see [`factory`]): config parsing and precomputation happen there, not per
//! request.

pub mod context;
pub mod key_auth;
pub mod request_data;
pub mod request_termination;
pub mod runner;
pub mod session;
pub mod unavailable;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use schemas::model::Consumer;
use uuid::Uuid;

pub use context::{AuthCredential, Downstream, Matched, RequestCtx};
pub use runner::PluginRunner;

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
pub trait Plugin: Send + Sync + 'static {
    /// The plugin's name, e.g. `key-auth`.
    fn name(&self) -> &'static str;

    /// Kong's `PRIORITY`: higher runs first.
    fn priority(&self) -> u32;

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
    fn access(&self, ctx: &mut RequestCtx) -> Flow {
        let _ = ctx;
        Flow::Continue
    }

    /// The response-headers phase: runs once the response head is known,
    /// for every instance resolved during access (in the same order), on
    /// proxied responses, short-circuit responses and gateway errors after
    /// routing. `head` is what the client will receive, after the headers
    /// queued in [`RequestCtx::response_headers`] were added. Default: does
    /// nothing.
    fn response(&self, ctx: &mut RequestCtx, head: &mut http::response::Parts) {
        let _ = (ctx, head);
    }
}

/// Process-wide facts and shared services a factory may need.
#[derive(Debug, Clone, Default)]
pub struct PluginEnv {
    /// This node's id (request-termination's echo shows it).
    pub node_id: Uuid,
    /// This host's name (request-termination's echo shows it).
    pub hostname: String,
    /// Shared services by type, e.g. the session storage, inserted by
    /// `serve` before the first snapshot is built.
    pub shared: http::Extensions,
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

/// A plugin this gateway can run.
#[derive(Debug, Clone, Copy)]
pub struct Available {
    /// Its name, e.g. `key-auth`.
    pub name: &'static str,
    /// Its priority (the instances' [`Plugin::priority`]).
    pub priority: u32,
    /// Builds an instance from a row.
    pub build: PluginFactory,
}

/// The plugins this gateway can run.
const AVAILABLE: [Available; 3] = [
    Available {
        name: "key-auth",
        priority: key_auth::PRIORITY,
        build: key_auth::build,
    },
    Available {
        name: "request-termination",
        priority: request_termination::PRIORITY,
        build: request_termination::build,
    },
    Available {
        name: "session",
        priority: session::PRIORITY,
        build: session::build,
    },
];

/// The plugin of this name, if this gateway can run it.
pub fn available(name: &str) -> Option<Available> {
    AVAILABLE.into_iter().find(|plugin| plugin.name == name)
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
