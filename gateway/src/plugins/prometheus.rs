//! The prometheus plugin (priority 13): records each routed request into
//! Kong's metric families, in the log phase, as Kong's `handler.lua` and
//! `exporter.lua` do. `GET /metrics` (Status API and Admin API) exposes
//! them with the node-level series.
//!
//! Per request, with the matched route's handles ([`RouteSeries`]):
//! - `status_code_metrics`: `kong_http_requests_total` +1 with the final
//!   status and its source (`service` when the upstream answered, `kong`
//!   for the gateway's and plugins' own answers);
//! - `latency_metrics`: `kong_request_latency_ms`, `kong_kong_latency_ms`
//!   and, when something was proxied, `kong_upstream_latency_ms`;
//! - `bandwidth_metrics`: `kong_bandwidth_bytes` ingress (request size)
//!   and egress (response size);
//! - `per_consumer`: the `consumer` label of the first and last is the
//!   authenticated consumer's username (`""` otherwise).
//!
//! Requests that matched no route never reach a plugin, so they are not
//! counted, as in Kong. `ai_metrics`, `upstream_health_metrics` and
//! `wasm_metrics` are accepted and fill nothing: this gateway has no AI
//! plugins, no upstream entities and no Wasm filters.

use std::sync::Arc;

use schemas::plugins::prometheus::PrometheusConfig;

use crate::observability::StatusSource;
use crate::pdk::{
    LogEntry, Phases, Plugin, PluginBuildError, PluginDescriptor, PluginEnv, ResponseSource,
};

pub use schemas::plugins::prometheus::NAME;

/// prometheus runs in the log phase only.
pub const DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    name: NAME,
    phases: Phases {
        access: false,
        response: false,
        log: true,
    },
    build,
    background: None,
};

/// One prometheus instance: which families it fills.
#[derive(Debug)]
pub struct Prometheus {
    config: PrometheusConfig,
}

/// Builds an instance from a plugin row (the [`crate::pdk::PluginFactory`]).
pub fn build(
    row: &schemas::model::Plugin,
    _env: &PluginEnv,
) -> Result<Arc<dyn Plugin>, PluginBuildError> {
    let config: PrometheusConfig = serde_json::from_value(row.config.clone())?;
    Ok(Arc::new(Prometheus { config }))
}

#[async_trait::async_trait]
impl Plugin for Prometheus {
    fn log(&self, entry: &LogEntry<'_>) {
        let Some(series) = entry.series else {
            return;
        };
        let config = &self.config;
        let consumer = if config.per_consumer {
            entry.ctx.consumer()
        } else {
            None
        };
        if config.bandwidth_metrics {
            series.add_bandwidth(entry.request_size, entry.response_size, consumer);
        }
        if config.latency_metrics {
            let latencies = entry.latencies;
            series.observe_latencies(latencies.kong, latencies.proxy, latencies.request);
        }
        // Counted last: once a request shows in `kong_http_requests_total`,
        // its other series are recorded too.
        if config.status_code_metrics {
            let source = match entry.source {
                ResponseSource::Service => StatusSource::Service,
                ResponseSource::Exit | ResponseSource::Error => StatusSource::Kong,
            };
            series.count_request(entry.status.as_u16(), source, consumer);
        }
    }
}
