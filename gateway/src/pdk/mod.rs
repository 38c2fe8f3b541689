//! The plugin development kit: everything a plugin sees of the gateway, in
//! the spirit of Kong's PDK. Plugins depend on this module only; the proxy
//! implements what it promises.
//!
//! - [`plugin`]: the [`Plugin`] phase trait (async `access` and `response`
//!   hooks), [`Flow`], [`PluginDescriptor`] (name, phases, factory,
//!   background task), [`PluginEnv`].
//! - [`context`]: [`RequestCtx`], one request as plugins see and change it
//!   (headers, query, body, the matched route, the authenticated consumer).
//! - [`identity`]: [`Identities`] (consumers and key-auth credentials by id,
//!   username and key), [`AuthCredential`], Kong's upstream identity
//!   headers.
//! - [`request_data`]: query, header and body arguments as Kong's PDK reads
//!   them (`kong.request.get_query_arg`, form and JSON bodies).
//! - [`response`]: `kong.response.error` / `kong.response.exit` with Kong's
//!   negotiated error bodies.
//! - [`body`]: the streaming body type of requests and responses.
//! - [`log`]: [`LogEntry`], a finished request as the log phase sees it.
//!
//! # Phases
//!
//! A request that matched a route goes through the plugins in two phases,
//! like Kong's (the proxy's `phases.rs` runs them):
//!
//! 1. **access**, before proxying. For each plugin name, in descending
//!    priority (ties: name descending), the most specific enabled instance
//!    for the matched route, its service and the consumer authenticated *so
//!    far* (Kong's 8-rank table) is resolved, recorded, and its
//!    [`Plugin::access`] awaited. A plugin returning [`Flow::Respond`]
//!    short-circuits: no further access handler runs, but the remaining
//!    names are still resolved and recorded.
//! 2. **response**, when the response head is known: [`Plugin::response`]
//!    runs for every recorded instance whose descriptor declares the phase,
//!    in the same order, on proxied responses, on short-circuit responses
//!    and on the gateway's own errors produced after routing (502, 503,
//!    504).
//! 3. **log**, once the response body is done (sent, or cut short by the
//!    client): [`Plugin::log`] runs for the recorded instances that declare
//!    it, in the same order, with the final status, sizes and latencies
//!    ([`LogEntry`]). It is synchronous and must not block.
//!
//! The first two hooks are async: a plugin may await a database or network
//! call without blocking the worker thread's other connections.

pub mod body;
pub mod context;
pub mod identity;
pub mod log;
pub mod plugin;
pub mod request_data;
pub mod response;

pub use context::{Downstream, Matched, Protocol, RequestCtx};
pub use identity::{set_identity_headers, AuthCredential, Credential, Identities};
pub use log::{LogEntry, LogLatencies, ResponseSource};
pub use plugin::{
    BackgroundTask, Flow, Phases, Plugin, PluginBuildError, PluginDescriptor, PluginEnv,
    PluginFactory, PluginResponse,
};
