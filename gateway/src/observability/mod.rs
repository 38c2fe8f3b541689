//! What the node tells its operators: Prometheus metrics with Kong's
//! names, connection counters, and access logs. Below the pdk: plugins,
//! the snapshot, the proxy and both APIs use it; it uses none of them.
//!
//! - [`series`]: counters, histograms and metric families, rendered in the
//!   text exposition format as Kong's `prometheus.lua` does.
//! - [`kong`]: the prometheus plugin's families (Kong's names, labels and
//!   buckets) and [`kong::RouteSeries`], a route's handles, resolved once
//!   per snapshot so that a request costs one atomic addition per series.
//! - [`node`]: [`node::NodeStats`], nginx's connection and request
//!   counters for `/status` and `kong_nginx_*`.
//! - [`exposition`]: `GET /metrics` (node-level series always, plugin
//!   series once recorded).
//! - [`access_log`]: one line per request in Kong's `kong_log_format`,
//!   queued to a writer thread, reopened on SIGUSR1.
//!
//! Why not the `metrics` crate with `metrics-exporter-prometheus`: its
//! counters cost two atomics (value and generation) and its histograms
//! keep every sample (16 bytes, an allocation every 64) until a scrape
//! or upkeep drains them, 55-96 ns per observation against 13-25 ns for
//! a bucket and a sum here (bench/metrics-cost).

pub mod access_log;
pub mod exposition;
pub mod kong;
pub mod node;
pub mod series;

pub use access_log::{AccessLog, AccessLogStats, Format, LineStart, Target};
pub use exposition::Exposition;
pub use kong::{KongMetrics, RouteSeries, StatusSource};
pub use node::NodeStats;
