//! The prometheus plugin's metric families, with the names, labels and
//! bucket boundaries of Kong's `kong/plugins/prometheus/exporter.lua`
//! (registry prefix `kong_`), and the per-route handles that keep the
//! request path at one atomic addition per series.
//!
//! - [`KongMetrics`]: the five per-request families, one per process.
//! - [`RouteSeries`]: one route's handles. The snapshot makes one per route
//!   (labels `service` = the service's name, else its host, `""` without
//!   a service; `route` = the route's name, else its id; `workspace` =
//!   `default`), and the plugin's log phase records through it. Each
//!   series is registered in its family (a lock, a map lookup) the first
//!   time the route needs it, then found again in a small lock-free table
//!   of the route ([`HandleCache`]) keyed by (status code, source,
//!   consumer) or consumer: a request compares a few integers and pointers
//!   and adds to the series' atomics, and never hashes label strings. A
//!   new snapshot makes new tables, so a renamed service or route gets new
//!   series; Kong also keeps the old ones until restart.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use schemas::model::{Consumer, Route, Service};

use super::series::{Counter, Family, Histogram};

/// Kong's `KONG_LATENCY_BUCKETS` (milliseconds).
pub const KONG_LATENCY_BUCKETS: &[u64] = &[
    1, 2, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500, 750, 1000, 3000, 6000,
];

/// Kong's `UPSTREAM_LATENCY_BUCKETS` (milliseconds), also used for the
/// whole request's latency.
pub const UPSTREAM_LATENCY_BUCKETS: &[u64] = &[
    25, 50, 80, 100, 250, 400, 700, 1000, 2000, 5000, 10000, 30000, 60000,
];

/// The workspace label: this gateway has Kong's `default` workspace only.
pub const WORKSPACE: &str = "default";

/// The plugin's families, as Kong's exporter registers them in the http
/// subsystem.
pub struct KongMetrics {
    http_requests: Family<Counter>,
    kong_latency: Family<Histogram>,
    upstream_latency: Family<Histogram>,
    request_latency: Family<Histogram>,
    bandwidth: Family<Counter>,
}

impl Default for KongMetrics {
    fn default() -> Self {
        KongMetrics {
            http_requests: Family::new(
                "kong_http_requests_total",
                "HTTP status codes per consumer, service and route",
                &[
                    "service",
                    "route",
                    "code",
                    "source",
                    "workspace",
                    "consumer",
                ],
                Counter::default,
            ),
            kong_latency: Family::new(
                "kong_kong_latency_ms",
                "Latency added by the gateway and its plugins, per service and route",
                &["service", "route", "workspace"],
                || Histogram::new(KONG_LATENCY_BUCKETS),
            ),
            upstream_latency: Family::new(
                "kong_upstream_latency_ms",
                "Latency of the upstream's response, per service and route",
                &["service", "route", "workspace"],
                || Histogram::new(UPSTREAM_LATENCY_BUCKETS),
            ),
            request_latency: Family::new(
                "kong_request_latency_ms",
                "Latency of whole requests, per service and route",
                &["service", "route", "workspace"],
                || Histogram::new(UPSTREAM_LATENCY_BUCKETS),
            ),
            bandwidth: Family::new(
                "kong_bandwidth_bytes",
                "Bytes received (ingress) and sent (egress), per service and route",
                &["service", "route", "direction", "workspace", "consumer"],
                Counter::default,
            ),
        }
    }
}

impl KongMetrics {
    /// The families, in name order (Kong's exposition is sorted).
    pub fn render_into(&self, blocks: &mut Vec<(&'static str, String)>) {
        let mut render = |name: &'static str, write: &dyn Fn(&mut String)| {
            let mut text = String::new();
            write(&mut text);
            blocks.push((name, text));
        };
        render(self.bandwidth.name(), &|out| self.bandwidth.render(out));
        render(self.http_requests.name(), &|out| {
            self.http_requests.render(out)
        });
        render(self.kong_latency.name(), &|out| {
            self.kong_latency.render(out)
        });
        render(self.request_latency.name(), &|out| {
            self.request_latency.render(out)
        });
        render(self.upstream_latency.name(), &|out| {
            self.upstream_latency.render(out)
        });
    }
}

/// Who produced a response, as Kong's exporter labels it: `service` when
/// the upstream answered, `kong` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusSource {
    Service,
    Kong,
}

impl StatusSource {
    fn as_str(self) -> &'static str {
        match self {
            StatusSource::Service => "service",
            StatusSource::Kong => "kong",
        }
    }
}

/// One route's label values and lazily registered series.
pub struct RouteSeries {
    metrics: Arc<KongMetrics>,
    service: String,
    route: String,
    handles: OnceLock<Box<RouteHandles>>,
}

/// The series one route has used so far.
#[derive(Default)]
struct RouteHandles {
    /// kong, upstream, request; each registered when first observed.
    latencies: [OnceLock<Arc<Histogram>>; 3],
    statuses: HandleCache<StatusKey, Arc<Counter>>,
    /// ingress, egress; each registered when first added to.
    bandwidth: HandleCache<ConsumerKey, [OnceLock<Arc<Counter>>; 2]>,
}

impl RouteSeries {
    /// The handles of `route` (of `service`), registering into `metrics`.
    pub fn new(metrics: &Arc<KongMetrics>, route: &Route, service: Option<&Service>) -> Self {
        RouteSeries {
            metrics: Arc::clone(metrics),
            service: service_label(service),
            route: route_label(route),
            handles: OnceLock::new(),
        }
    }

    /// Whether this route's labels are these (a route whose labels did not
    /// change keeps its handles across snapshots).
    pub fn has_labels(&self, route: &Route, service: Option<&Service>) -> bool {
        self.route == route_label(route) && self.service == service_label(service)
    }

    fn handles(&self) -> &RouteHandles {
        self.handles.get_or_init(Box::default)
    }

    /// Counts one request in `kong_http_requests_total`.
    pub fn count_request(&self, code: u16, source: StatusSource, consumer: Option<&Arc<Consumer>>) {
        let key = StatusKey {
            code,
            source,
            consumer: ConsumerKey(consumer.cloned()),
        };
        self.handles().statuses.with(
            key,
            |key| {
                let code = key.code.to_string();
                self.metrics.http_requests.series(&[
                    &self.service,
                    &self.route,
                    &code,
                    key.source.as_str(),
                    WORKSPACE,
                    key.consumer.label(),
                ])
            },
            |_, counter| counter.add(1),
        );
    }

    /// Observes the latencies (milliseconds) Kong's exporter observes; a
    /// `None` upstream latency (nothing was proxied) is not observed.
    pub fn observe_latencies(&self, kong: u64, upstream: Option<u64>, request: u64) {
        let [kong_slot, upstream_slot, request_slot] = &self.handles().latencies;
        let labels = || [self.service.as_str(), self.route.as_str(), WORKSPACE];
        request_slot
            .get_or_init(|| self.metrics.request_latency.series(&labels()))
            .observe(request);
        if let Some(upstream) = upstream {
            upstream_slot
                .get_or_init(|| self.metrics.upstream_latency.series(&labels()))
                .observe(upstream);
        }
        kong_slot
            .get_or_init(|| self.metrics.kong_latency.series(&labels()))
            .observe(kong);
    }

    /// Adds to `kong_bandwidth_bytes`; zero sizes are not counted, as
    /// Kong's.
    pub fn add_bandwidth(&self, ingress: u64, egress: u64, consumer: Option<&Arc<Consumer>>) {
        self.handles().bandwidth.with(
            ConsumerKey(consumer.cloned()),
            |_| Default::default(),
            |key, slots| {
                for ((slot, direction), bytes) in slots
                    .iter()
                    .zip(["ingress", "egress"])
                    .zip([ingress, egress])
                {
                    if bytes == 0 {
                        continue;
                    }
                    let counter = slot.get_or_init(|| {
                        self.metrics.bandwidth.series(&[
                            &self.service,
                            &self.route,
                            direction,
                            WORKSPACE,
                            key.label(),
                        ])
                    });
                    counter.add(bytes);
                }
            },
        );
    }
}

/// Kong: `service.name or service.host`, `""` without a service.
fn service_label(service: Option<&Service>) -> String {
    service.map_or_else(String::new, |service| {
        service.name.clone().unwrap_or_else(|| service.host.clone())
    })
}

/// Kong: `route.name or route.id`.
fn route_label(route: &Route) -> String {
    route.name.clone().unwrap_or_else(|| route.id.to_string())
}

/// A consumer by identity: the same `Arc` (a consumer of the current
/// configuration), or none. Its label is the username, `""` without one.
#[derive(Clone)]
struct ConsumerKey(Option<Arc<Consumer>>);

impl ConsumerKey {
    fn label(&self) -> &str {
        self.0
            .as_ref()
            .and_then(|consumer| consumer.username.as_deref())
            .unwrap_or("")
    }

    fn address(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |consumer| Arc::as_ptr(consumer) as usize)
    }
}

impl PartialEq for ConsumerKey {
    fn eq(&self, other: &Self) -> bool {
        self.address() == other.address()
    }
}

impl Eq for ConsumerKey {}

impl Hash for ConsumerKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.address().hash(state);
    }
}

/// The dynamic labels of `kong_http_requests_total` for one route.
#[derive(Clone, PartialEq, Eq, Hash)]
struct StatusKey {
    code: u16,
    source: StatusSource,
    consumer: ConsumerKey,
}

/// How many keys a route's table holds without locking.
const SLOTS: usize = 16;

/// An insert-only table from small keys to series handles: [`SLOTS`]
/// slots filled once each (`OnceLock`), scanned in order, so a lookup is a
/// few loads and comparisons; keys past the slots go to a locked map.
struct HandleCache<K, V> {
    slots: [OnceLock<(K, V)>; SLOTS],
    overflow: Mutex<HashMap<K, V>>,
}

impl<K, V> Default for HandleCache<K, V> {
    fn default() -> Self {
        HandleCache {
            slots: std::array::from_fn(|_| OnceLock::new()),
            overflow: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Clone + Eq + Hash, V> HandleCache<K, V> {
    /// Runs `apply` on the handle of `key`, made by `make` the first time.
    /// Two threads racing on a new key may both make it: `make` must
    /// return the same series (a family lookup does).
    fn with(&self, key: K, make: impl Fn(&K) -> V, apply: impl FnOnce(&K, &V)) {
        for slot in &self.slots {
            let (found, handle) = match slot.get() {
                Some(entry) => entry,
                None => slot.get_or_init(|| (key.clone(), make(&key))),
            };
            if *found == key {
                return apply(found, handle);
            }
        }
        let mut overflow = self.overflow.lock().unwrap_or_else(PoisonError::into_inner);
        match overflow.entry(key) {
            Entry::Occupied(entry) => apply(entry.key(), entry.get()),
            Entry::Vacant(entry) => {
                let key = entry.key().clone();
                let handle = entry.insert(make(&key));
                apply(&key, handle);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::tests as snapshot;
    use uuid::Uuid;

    fn route(name: Option<&str>) -> Route {
        let id = Uuid::from_u128(0xa);
        let mut route: Route = serde_json::from_value(snapshot::route(id, None, "/")).unwrap();
        route.name = name.map(str::to_owned);
        route
    }

    fn service(name: Option<&str>) -> Service {
        let mut service: Service =
            serde_json::from_value(snapshot::service(Uuid::from_u128(0xb))).unwrap();
        service.name = name.map(str::to_owned);
        service.host = "upstream.test".to_owned();
        service
    }

    fn consumer(username: Option<&str>) -> Arc<Consumer> {
        let mut consumer: Consumer =
            serde_json::from_value(snapshot::consumer(Uuid::from_u128(0xc), "x")).unwrap();
        consumer.username = username.map(str::to_owned);
        Arc::new(consumer)
    }

    fn rendered(metrics: &KongMetrics) -> String {
        let mut blocks = Vec::new();
        metrics.render_into(&mut blocks);
        blocks.into_iter().map(|(_, text)| text).collect()
    }

    #[test]
    fn labels_fall_back_as_kongs_do() {
        let metrics = Arc::new(KongMetrics::default());
        let named = RouteSeries::new(&metrics, &route(Some("r")), Some(&service(Some("s"))));
        named.count_request(200, StatusSource::Service, None);
        let unnamed = RouteSeries::new(&metrics, &route(None), Some(&service(None)));
        unnamed.count_request(401, StatusSource::Kong, Some(&consumer(Some("alice"))));
        let serviceless = RouteSeries::new(&metrics, &route(Some("t")), None);
        serviceless.count_request(404, StatusSource::Kong, Some(&consumer(None)));
        let text = rendered(&metrics);
        for line in [
            "kong_http_requests_total{service=\"s\",route=\"r\",code=\"200\",source=\"service\",workspace=\"default\",consumer=\"\"} 1",
            "kong_http_requests_total{service=\"upstream.test\",route=\"00000000-0000-0000-0000-00000000000a\",code=\"401\",source=\"kong\",workspace=\"default\",consumer=\"alice\"} 1",
            "kong_http_requests_total{service=\"\",route=\"t\",code=\"404\",source=\"kong\",workspace=\"default\",consumer=\"\"} 1",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn more_keys_than_slots_still_count_once_each() {
        let metrics = Arc::new(KongMetrics::default());
        let series = RouteSeries::new(&metrics, &route(Some("r")), None);
        for round in 0..3 {
            for code in 200..(200 + 2 * SLOTS as u16) {
                series.count_request(code, StatusSource::Service, None);
            }
            let text = rendered(&metrics);
            let count = format!(
                "code=\"{}\",source=\"service\",workspace=\"default\",consumer=\"\"}} {}",
                200 + 2 * SLOTS - 1,
                round + 1
            );
            assert!(text.contains(&count), "{text}");
        }
    }

    #[test]
    fn only_used_families_appear() {
        let metrics = Arc::new(KongMetrics::default());
        let series = RouteSeries::new(&metrics, &route(Some("r")), None);
        series.add_bandwidth(10, 0, None);
        let text = rendered(&metrics);
        assert!(text.contains("kong_bandwidth_bytes{service=\"\",route=\"r\",direction=\"ingress\",workspace=\"default\",consumer=\"\"} 10"));
        assert!(!text.contains("direction=\"egress\""));
        assert!(!text.contains("kong_http_requests_total"));
        assert!(!text.contains("latency"));
        series.observe_latencies(3, None, 30);
        let text = rendered(&metrics);
        assert!(text.contains("kong_kong_latency_ms_bucket{service=\"\",route=\"r\",workspace=\"default\",le=\"5\"} 1"));
        assert!(!text.contains("kong_upstream_latency_ms"));
        assert!(text.contains(
            "kong_request_latency_ms_sum{service=\"\",route=\"r\",workspace=\"default\"} 30"
        ));
    }
}
