//! `GET /metrics`: the Prometheus text exposition of the node, shared by
//! the Status API and the Admin API (Kong's `api.lua` and
//! `status_api.lua` serve the same collector).
//!
//! What it holds, sorted by name as Kong's output is:
//!
//! - the prometheus plugin's families (see `kong.rs`), once a plugin
//!   instance has recorded into them;
//! - Kong's node-level gauges, always: `kong_datastore_reachable`,
//!   `kong_memory_workers_lua_vms_bytes{node_id,pid,kong_subsystem}` (no
//!   Lua VM here: the process's resident memory, so that dashboards'
//!   memory panels show the process), `kong_nginx_connections_total
//!   {node_id,subsystem,state}` (accepted, handled, total, active,
//!   reading, writing, waiting: see `node.rs`),
//!   `kong_nginx_metric_errors_total` (always 0),
//!   `kong_nginx_requests_total{node_id,subsystem}`,
//!   `kong_nginx_timers{state}` (0: no nginx timers) and
//!   `kong_node_info{node_id,version}`;
//! - ours: `gateway_access_log_dropped_total{log}` and
//!   `process_resident_memory_bytes` (the usual process collector name).

use std::fmt::Write as _;
use std::sync::Arc;

use uuid::Uuid;

use super::access_log::AccessLogStats;
use super::kong::KongMetrics;
use super::node::{resident_memory_bytes, NodeStats};
use super::series::write_labels;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything `/metrics` reports.
pub struct Exposition {
    /// This node's id (`node_id` labels).
    pub node_id: Uuid,
    /// The version `kong_node_info` reports.
    pub version: &'static str,
    /// Connection and request counters.
    pub stats: Arc<NodeStats>,
    /// The prometheus plugin's families.
    pub kong: Arc<KongMetrics>,
    /// The access logs' counters, by log name (`proxy`, `admin`).
    pub access_logs: Vec<(&'static str, Arc<AccessLogStats>)>,
}

impl Exposition {
    /// The exposition text; `datastore_reachable` is what the caller's
    /// store says.
    pub fn render(&self, datastore_reachable: bool) -> String {
        let mut blocks: Vec<(&'static str, String)> = Vec::with_capacity(16);
        self.kong.render_into(&mut blocks);
        self.node_gauges(&mut blocks, datastore_reachable);
        self.own_metrics(&mut blocks);
        blocks.sort_by_key(|(name, _)| *name);
        let mut out = String::with_capacity(blocks.iter().map(|(_, text)| text.len()).sum());
        for (_, text) in blocks {
            out.push_str(&text);
        }
        out
    }

    fn node_gauges(&self, blocks: &mut Vec<(&'static str, String)>, reachable: bool) {
        let node_id = self.node_id.to_string();
        let counts = self.stats.counts();
        blocks.push(gauge(
            "kong_datastore_reachable",
            "Datastore reachable from the gateway, 0 is unreachable",
            &[],
            &[(&[], u64::from(reachable))],
        ));
        let pid = std::process::id().to_string();
        let memory = resident_memory_bytes().unwrap_or(0);
        blocks.push(gauge(
            "kong_memory_workers_lua_vms_bytes",
            "Resident memory of the gateway process (it has no Lua VMs)",
            &["node_id", "pid", "kong_subsystem"],
            &[(&[&node_id, &pid, "http"], memory)],
        ));
        let states = [
            ("accepted", counts.connections_accepted),
            ("active", counts.connections_active),
            ("handled", counts.connections_handled),
            ("reading", counts.connections_reading),
            ("total", counts.total_requests),
            ("waiting", counts.connections_waiting),
            ("writing", counts.connections_writing),
        ];
        let labelled: Vec<([&str; 3], u64)> = states
            .iter()
            .map(|(state, value)| ([node_id.as_str(), "http", *state], *value))
            .collect();
        let series: Vec<(&[&str], u64)> = labelled
            .iter()
            .map(|(labels, value)| (&labels[..], *value))
            .collect();
        blocks.push(gauge(
            "kong_nginx_connections_total",
            "Number of connections by subsystem",
            &["node_id", "subsystem", "state"],
            &series,
        ));
        blocks.push(counter(
            "kong_nginx_metric_errors_total",
            "Number of errors while recording metrics",
            0,
        ));
        blocks.push(gauge(
            "kong_nginx_requests_total",
            "Number of requests total",
            &["node_id", "subsystem"],
            &[(&[&node_id, "http"], counts.total_requests)],
        ));
        blocks.push(gauge(
            "kong_nginx_timers",
            "Number of timers (the gateway has none)",
            &["state"],
            &[(&["pending"], 0), (&["running"], 0)],
        ));
        blocks.push(gauge(
            "kong_node_info",
            "Node metadata",
            &["node_id", "version"],
            &[(&[&node_id, self.version], 1)],
        ));
        blocks.push(gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            &[],
            &[(&[], memory)],
        ));
    }

    fn own_metrics(&self, blocks: &mut Vec<(&'static str, String)>) {
        if self.access_logs.is_empty() {
            return;
        }
        let mut text = String::new();
        text.push_str("# HELP gateway_access_log_dropped_total Access log lines dropped because the log's queue was full\n");
        text.push_str("# TYPE gateway_access_log_dropped_total counter\n");
        for (name, stats) in &self.access_logs {
            text.push_str("gateway_access_log_dropped_total");
            write_labels(&mut text, &["log"], &[*name], None);
            let _ = writeln!(text, " {}", stats.dropped());
        }
        blocks.push(("gateway_access_log_dropped_total", text));
    }
}

/// A gauge family with these series.
fn gauge(
    name: &'static str,
    help: &str,
    labels: &[&str],
    series: &[(&[&str], u64)],
) -> (&'static str, String) {
    let mut text = format!("# HELP {name} {help}\n# TYPE {name} gauge\n");
    for (values, value) in series {
        text.push_str(name);
        write_labels(&mut text, labels, values, None);
        let _ = writeln!(text, " {value}");
    }
    (name, text)
}

/// A counter family with one unlabelled series.
fn counter(name: &'static str, help: &str, value: u64) -> (&'static str, String) {
    (
        name,
        format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_level_series_are_always_there() {
        let exposition = Exposition {
            node_id: Uuid::nil(),
            version: "3.10.0",
            stats: Arc::new(NodeStats::default()),
            kong: Arc::new(KongMetrics::default()),
            access_logs: vec![("proxy", Arc::new(AccessLogStats::default()))],
        };
        let _connection = exposition.stats.connection_opened();
        let text = exposition.render(true);
        let node = "node_id=\"00000000-0000-0000-0000-000000000000\"";
        for line in [
            "kong_datastore_reachable 1".to_owned(),
            format!(
                "kong_nginx_connections_total{{{node},subsystem=\"http\",state=\"accepted\"}} 1"
            ),
            format!(
                "kong_nginx_connections_total{{{node},subsystem=\"http\",state=\"waiting\"}} 1"
            ),
            format!("kong_nginx_requests_total{{{node},subsystem=\"http\"}} 0"),
            format!("kong_node_info{{{node},version=\"3.10.0\"}} 1"),
            "kong_nginx_timers{state=\"running\"} 0".to_owned(),
            "gateway_access_log_dropped_total{log=\"proxy\"} 0".to_owned(),
        ] {
            assert!(
                text.lines().any(|candidate| candidate == line),
                "{line} not in\n{text}"
            );
        }
        assert!(!text.contains("kong_http_requests_total"));
        let names: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .map(|line| line.split(' ').next().unwrap_or(""))
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }
}
