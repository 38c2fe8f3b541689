//! The gateway library: everything `gateway serve` and `gateway echo` are made of.
//!
//! - [`store`]: entities (Kong's DAO rules, durable writes, revisions) and
//!   session rows, behind backend traits; sled is the embedded backend.
//! - [`admin`]: the Kong-compatible Admin API over the store.
//! - [`status_api`]: Kong's Status API (`/status`, `/status/ready`,
//!   `/metrics`).
//! - [`http_server`]: the hyper server loop both of them run on.
//! - [`observability`]: Prometheus metrics with Kong's names, connection
//!   counters, access logs.
//! - [`snapshot`]: the immutable, precompiled config the proxy reads per request.
//! - [`router`]: route matching and upstream URI construction.
//! - [`proxy`]: the proxy listener, request pipeline and upstream forwarding.
//! - [`plugins`]: the plugin trait and registry, the runner and one module
//!   per plugin.
//! - [`tls`]: rustls server and upstream client configuration.
//! - [`serve`]: `gateway serve`: wiring of store, snapshot, proxy and Admin API.
//! - [`echo`]: a small httpbin-like upstream for tutorials, tests and benchmarks.

pub mod admin;
pub mod echo;
pub mod http_server;
pub mod observability;
pub mod pdk;
pub mod plugins;
pub mod proxy;
pub mod router;
pub mod serve;
pub mod snapshot;
pub mod status_api;
pub mod store;
pub mod tls;
