//! The prometheus plugin's config (Kong 3.10's
//! `kong/plugins/prometheus/schema.lua`): which per-request metric
//! families the plugin fills. Every switch defaults to off, as Kong's;
//! the node-level metrics of `GET /metrics` do not depend on them.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::PluginSchema;
use crate::schema::{Field, Record};

/// The plugin's name.
pub const NAME: &str = "prometheus";

pub fn plugin_schema() -> PluginSchema {
    PluginSchema {
        name: NAME,
        priority: 13,
        version: "3.10.0",
        config: config_schema(),
        no_consumer: false,
        // Kong's schema takes `typedefs.protocols`: every protocol.
        http_only: false,
        translate_shorthands: super::no_shorthands,
        generated: &[],
    }
}

fn config_schema() -> Record {
    let switch = |name| Field::boolean(name).default(json!(false));
    Record::new(vec![
        switch("per_consumer"),
        switch("status_code_metrics"),
        switch("ai_metrics"),
        switch("latency_metrics"),
        switch("bandwidth_metrics"),
        switch("upstream_health_metrics"),
        switch("wasm_metrics"),
    ])
}

/// prometheus' canonical config. Kong's switches are not `required`, so a
/// canonical config may hold `null` for one: that reads as off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PrometheusConfig {
    /// Fill the `consumer` label of `kong_http_requests_total` and
    /// `kong_bandwidth_bytes` with the authenticated consumer's username.
    #[serde(deserialize_with = "null_is_off")]
    pub per_consumer: bool,
    /// Count `kong_http_requests_total`.
    #[serde(deserialize_with = "null_is_off")]
    pub status_code_metrics: bool,
    /// Kong's AI metrics; this gateway has no AI plugins, so nothing fills
    /// them.
    #[serde(deserialize_with = "null_is_off")]
    pub ai_metrics: bool,
    /// Observe `kong_kong_latency_ms`, `kong_upstream_latency_ms` and
    /// `kong_request_latency_ms`.
    #[serde(deserialize_with = "null_is_off")]
    pub latency_metrics: bool,
    /// Count `kong_bandwidth_bytes`.
    #[serde(deserialize_with = "null_is_off")]
    pub bandwidth_metrics: bool,
    /// Kong's `kong_upstream_target_health`; this gateway has no upstream
    /// entities (no health checks), so nothing fills it.
    #[serde(deserialize_with = "null_is_off")]
    pub upstream_health_metrics: bool,
    /// Kong's Wasm filter metrics; no Wasm here either.
    #[serde(deserialize_with = "null_is_off")]
    pub wasm_metrics: bool,
}

/// `null` (or a missing switch) is off.
fn null_is_off<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::plugin_record;

    #[test]
    fn every_switch_defaults_to_off() {
        let record = plugin_record(NAME).unwrap();
        let canonical = record
            .validate(&json!({"name": NAME, "config": {}}))
            .unwrap();
        let config: PrometheusConfig = serde_json::from_value(canonical["config"].clone()).unwrap();
        assert_eq!(config, PrometheusConfig::default());
        assert_eq!(
            canonical["protocols"],
            json!(["grpc", "grpcs", "http", "https"])
        );
    }

    #[test]
    fn a_null_switch_is_off() {
        let record = plugin_record(NAME).unwrap();
        let canonical = record
            .validate(&json!({"name": NAME, "config": {"per_consumer": null, "status_code_metrics": true}}))
            .unwrap();
        let config: PrometheusConfig = serde_json::from_value(canonical["config"].clone()).unwrap();
        assert!(!config.per_consumer);
        assert!(config.status_code_metrics);
    }

    #[test]
    fn switches_are_booleans() {
        let record = plugin_record(NAME).unwrap();
        let errors = record
            .validate(&json!({"name": NAME, "config": {"per_consumer": "yes", "latency": true}}))
            .unwrap_err();
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "config.latency: unknown field",
                "config.per_consumer: expected a boolean"
            ]
        );
    }
}
