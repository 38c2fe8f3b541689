//! Operability through the real binaries: the prometheus plugin's series
//! after a known mix of requests (exact counters by route, code, source
//! and consumer; histogram buckets and counts; bandwidth equal to the
//! bytes on the wire), the same exposition on the Status API's and the
//! Admin API's `/metrics`, the series Kong's Grafana dashboard (7424)
//! queries, readiness before and after the configuration loads, access
//! log lines parsed field by field (with a hostile user agent), the log
//! reopened on SIGUSR1, and a bad plugin config refused with Kong's
//! schema-violation body and by `gwctl validate`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::support;

use e2e::postgres::Postgres;
use e2e::{http_client, send, Answer, Echo, Gateway, GatewayOptions, Run};
use reqwest::Method;
use serde_json::{json, Value};
use support::Env;

/// Kong's `KONG_LATENCY_BUCKETS` and `UPSTREAM_LATENCY_BUCKETS`
/// (`kong/plugins/prometheus/exporter.lua`), as `le` values.
const KONG_LE: &[&str] = &[
    "1", "2", "5", "7", "10", "15", "20", "30", "50", "75", "100", "200", "500", "750", "1000",
    "3000", "6000", "+Inf",
];
const UPSTREAM_LE: &[&str] = &[
    "25", "50", "80", "100", "250", "400", "700", "1000", "2000", "5000", "10000", "30000",
    "60000", "+Inf",
];

/// Every per-request metric switch on.
fn all_metrics() -> Value {
    json!({
        "per_consumer": true,
        "status_code_metrics": true,
        "latency_metrics": true,
        "bandwidth_metrics": true,
        "upstream_health_metrics": true,
    })
}

/// A gateway with the Status API on and these more arguments.
fn observed(more: &[&str]) -> GatewayOptions {
    let mut extra_args = vec!["--status-listen".to_owned(), "127.0.0.1:0".to_owned()];
    extra_args.extend(more.iter().map(|arg| (*arg).to_owned()));
    GatewayOptions {
        extra_args,
        ..GatewayOptions::default()
    }
}

/// The service `echo-service` and, for each name, a route `name` on
/// `/name`.
fn routes(env: &Env, names: &[&str]) {
    env.admin_post(
        "/services",
        json!({"name": "echo-service", "url": env.echo.url("")}),
    );
    for name in names {
        env.admin_post(
            "/services/echo-service/routes",
            json!({"name": name, "paths": [format!("/{name}")]}),
        );
    }
}

// ----- the exposition -------------------------------------------------------------

/// A scrape: each series (name and labels, as written) with its value.
struct Scrape {
    text: String,
    series: BTreeMap<String, u64>,
}

impl Scrape {
    fn of(url: &str) -> Scrape {
        let answer = send(http_client().get(url));
        assert_eq!(answer.status, 200, "{answer}");
        assert_eq!(
            answer.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8"),
            "{answer}"
        );
        let text = answer.body.clone();
        let series = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (key, value) = line.rsplit_once(' ').unwrap_or((line, ""));
                let value = value
                    .parse()
                    .unwrap_or_else(|_| panic!("not an integer value: {line}"));
                (key.to_owned(), value)
            })
            .collect();
        Scrape { text, series }
    }

    /// The value of `name{labels}`; panics with the scrape when absent.
    #[track_caller]
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let key = series_key(name, labels);
        match self.series.get(&key) {
            Some(value) => *value,
            None => panic!("{key} not in the scrape:\n{}", self.text),
        }
    }

    /// The series of the family `name` (its exact name, or with a suffix).
    fn family(&self, name: &str) -> Vec<(&String, &u64)> {
        self.series
            .iter()
            .filter(|(key, _)| {
                key.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                    || key.as_str() == name
            })
            .collect()
    }

    /// The lines of the prometheus plugin's families (requests, latencies,
    /// bandwidth), which no scrape changes.
    fn plugin_lines(&self) -> Vec<&str> {
        self.text
            .lines()
            .filter(|line| {
                [
                    "kong_http_requests_total",
                    "kong_bandwidth_bytes",
                    "kong_kong_latency_ms",
                    "kong_upstream_latency_ms",
                    "kong_request_latency_ms",
                ]
                .iter()
                .any(|family| line.contains(family))
            })
            .collect()
    }
}

fn series_key(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_owned();
    }
    let labels: Vec<String> = labels
        .iter()
        .map(|(label, value)| format!("{label}=\"{value}\""))
        .collect();
    format!("{name}{{{}}}", labels.join(","))
}

/// `kong_http_requests_total`'s labels for a route of `echo-service`.
fn request_labels<'a>(
    route: &'a str,
    code: &'a str,
    source: &'a str,
    consumer: &'a str,
) -> [(&'a str, &'a str); 6] {
    [
        ("service", "echo-service"),
        ("route", route),
        ("code", code),
        ("source", source),
        ("workspace", "default"),
        ("consumer", consumer),
    ]
}

fn route_labels(route: &str) -> [(&str, &str); 3] {
    [
        ("service", "echo-service"),
        ("route", route),
        ("workspace", "default"),
    ]
}

/// Scrapes `url` until `ready` holds for the scrape (the log phase runs
/// as each response body is dropped, just after the client has it).
fn scrape_until(url: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    let started = Instant::now();
    loop {
        let scrape = Scrape::of(url);
        if ready(&scrape) || started.elapsed() > Duration::from_secs(5) {
            return scrape;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn requests_counted(scrape: &Scrape) -> u64 {
    scrape
        .family("kong_http_requests_total")
        .iter()
        .map(|(_, value)| **value)
        .sum()
}

/// Checks a histogram series: Kong's `le` values in order, cumulative
/// counts, `+Inf` equal to `_count`, and that count.
#[track_caller]
fn assert_histogram(scrape: &Scrape, name: &str, route: &str, le: &[&str], count: u64) {
    let labels = route_labels(route);
    let mut previous = 0;
    for bound in le {
        let mut with_le = labels.to_vec();
        with_le.push(("le", bound));
        let cumulative = scrape.value(&format!("{name}_bucket"), &with_le);
        assert!(
            cumulative >= previous,
            "{name} le={bound} decreases:\n{}",
            scrape.text
        );
        previous = cumulative;
    }
    let buckets = scrape
        .family(&format!("{name}_bucket"))
        .into_iter()
        .filter(|(key, _)| key.contains(&format!("route=\"{route}\"")))
        .count();
    assert_eq!(
        buckets,
        le.len(),
        "{name}: only Kong's buckets\n{}",
        scrape.text
    );
    assert_eq!(
        previous, count,
        "{name} le=+Inf for {route}\n{}",
        scrape.text
    );
    assert_eq!(
        scrape.value(&format!("{name}_count"), &labels),
        count,
        "{name}_count"
    );
    scrape.value(&format!("{name}_sum"), &labels);
}

#[test]
fn a_known_mix_of_requests_gives_exact_series() {
    let env = Env::bare(observed(&[]));
    routes(&env, &["open", "keyed", "forbidden", "plain-keyed"]);
    for route in ["keyed", "plain-keyed"] {
        env.plugin(json!({"name": "key-auth", "route": {"name": route}}));
    }
    env.plugin(json!({
        "name": "request-termination",
        "route": {"name": "forbidden"},
        "config": {"status_code": 403, "message": "Forbidden"},
    }));
    env.consumer("alice");
    env.key("alice", "alice-key");
    env.global_plugin("prometheus", all_metrics());
    // The route's own instance wins over the global one: status codes
    // only, no consumer label.
    env.plugin(json!({
        "name": "prometheus",
        "route": {"name": "plain-keyed"},
        "config": {"status_code_metrics": true},
    }));

    let get = |path: &str, key: Option<&str>| {
        let mut request = env.get(path);
        if let Some(key) = key {
            request = request.header("apikey", key);
        }
        send(request)
    };
    for _ in 0..3 {
        get("/open/anything", None).expect(200);
    }
    get("/open/status/404", None).expect(404);
    for _ in 0..2 {
        get("/keyed/anything", None).expect(401);
    }
    get("/keyed/anything", Some("alice-key")).expect(200);
    for _ in 0..2 {
        get("/forbidden/x", None).expect(403);
        get("/nowhere", None).expect(404);
    }
    get("/plain-keyed/anything", Some("alice-key")).expect(200);

    let url = env.gateway.status_url("/metrics");
    let scrape = scrape_until(&url, |scrape| requests_counted(scrape) >= 10);
    let expected = [
        (request_labels("open", "200", "service", ""), 3),
        (request_labels("open", "404", "service", ""), 1),
        (request_labels("keyed", "401", "kong", ""), 2),
        (request_labels("keyed", "200", "service", "alice"), 1),
        (request_labels("forbidden", "403", "kong", ""), 2),
        (request_labels("plain-keyed", "200", "service", ""), 1),
    ];
    for (labels, count) in &expected {
        assert_eq!(
            scrape.value("kong_http_requests_total", labels),
            *count,
            "{labels:?}\n{}",
            scrape.text
        );
    }
    assert_eq!(
        scrape.family("kong_http_requests_total").len(),
        expected.len(),
        "unrouted requests are not counted, nothing else is\n{}",
        scrape.text
    );
    assert!(!scrape.text.contains("/nowhere"));

    // Histograms: every request observed, the upstream only when proxied;
    // the route-scoped instance observes nothing.
    for name in ["kong_request_latency_ms", "kong_kong_latency_ms"] {
        let le = if name == "kong_kong_latency_ms" {
            KONG_LE
        } else {
            UPSTREAM_LE
        };
        assert_histogram(&scrape, name, "open", le, 4);
        assert_histogram(&scrape, name, "keyed", le, 3);
        assert_histogram(&scrape, name, "forbidden", le, 2);
    }
    assert_histogram(&scrape, "kong_upstream_latency_ms", "open", UPSTREAM_LE, 4);
    assert_histogram(&scrape, "kong_upstream_latency_ms", "keyed", UPSTREAM_LE, 1);
    assert!(
        !scrape.text.contains(
            "kong_upstream_latency_ms_count{service=\"echo-service\",route=\"forbidden\""
        ),
        "nothing was proxied for route forbidden\n{}",
        scrape.text
    );
    assert!(
        !scrape.text.contains("route=\"plain-keyed\",workspace"),
        "{}",
        scrape.text
    );

    // Bandwidth per consumer: alice's request apart from the anonymous ones.
    for consumer in ["", "alice"] {
        for direction in ["ingress", "egress"] {
            let labels = [
                ("service", "echo-service"),
                ("route", "keyed"),
                ("direction", direction),
                ("workspace", "default"),
                ("consumer", consumer),
            ];
            assert!(scrape.value("kong_bandwidth_bytes", &labels) > 0);
        }
    }

    // Node-level series, and the same plugin series on the Admin API.
    let admin = Scrape::of(&env.gateway.admin_url("/metrics"));
    assert_eq!(admin.plugin_lines(), scrape.plugin_lines());
    assert!(!scrape.plugin_lines().is_empty());
    let node_id = env.admin_get("/")["node_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for scrape in [&scrape, &admin] {
        assert_eq!(scrape.value("kong_datastore_reachable", &[]), 1);
        assert_eq!(
            scrape.value(
                "kong_node_info",
                &[("node_id", &node_id), ("version", "3.10.0")]
            ),
            1
        );
        let total = scrape.value(
            "kong_nginx_requests_total",
            &[("node_id", &node_id), ("subsystem", "http")],
        );
        assert!(total >= 12, "12 proxied requests and more\n{}", scrape.text);
        let total_state = [
            ("node_id", node_id.as_str()),
            ("subsystem", "http"),
            ("state", "total"),
        ];
        assert_eq!(
            scrape.value("kong_nginx_connections_total", &total_state),
            total
        );
    }
}

/// Sends `request` on a fresh connection that closes after the answer;
/// the bytes received.
fn exchange_raw(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("a connection to the proxy");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).unwrap();
    received
}

#[test]
fn bandwidth_is_the_bytes_on_the_wire() {
    let env = Env::bare(observed(&[]));
    routes(&env, &["wire"]);
    env.plugin(json!({
        "name": "prometheus",
        "route": {"name": "wire"},
        "config": {"bandwidth_metrics": true},
    }));
    let body = vec![b'x'; 1000];
    let mut post = b"POST /wire/anything HTTP/1.1\r\nHost: gw\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n".to_vec();
    post.extend_from_slice(&body);
    let requests: Vec<Vec<u8>> = vec![
        b"GET /wire/anything?a=1 HTTP/1.1\r\nHost: gw\r\nUser-Agent: raw\r\nConnection: close\r\n\r\n".to_vec(),
        post,
        b"GET /wire/bytes/200000 HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /wire/status/204 HTTP/1.0\r\nHost: gw\r\n\r\n".to_vec(),
    ];
    let (mut sent, mut received) = (0, 0);
    for request in &requests {
        let answer = exchange_raw(env.gateway.proxy_addr(), request);
        assert!(
            answer.starts_with(b"HTTP/1."),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        sent += request.len() as u64;
        received += answer.len() as u64;
    }
    assert!(received > 200_000);

    let url = env.gateway.status_url("/metrics");
    let labels = |direction| {
        [
            ("service", "echo-service"),
            ("route", "wire"),
            ("direction", direction),
            ("workspace", "default"),
            ("consumer", ""),
        ]
    };
    let scrape = scrape_until(&url, |scrape| {
        scrape
            .series
            .get(&series_key("kong_bandwidth_bytes", &labels("egress")))
            == Some(&received)
    });
    assert_eq!(
        scrape.value("kong_bandwidth_bytes", &labels("ingress")),
        sent,
        "{}",
        scrape.text
    );
    assert_eq!(
        scrape.value("kong_bandwidth_bytes", &labels("egress")),
        received,
        "{}",
        scrape.text
    );
    // The switches that are off fill nothing.
    assert!(
        scrape.family("kong_http_requests_total").is_empty(),
        "{}",
        scrape.text
    );
    assert!(!scrape.text.contains("latency_ms"), "{}", scrape.text);
}

#[test]
fn http2_requests_are_recorded_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let mut options = observed(&["--proxy-access-log", log.to_str().unwrap()]);
    options.tls = true;
    let env = Env::start_with(options);
    env.global_plugin("prometheus", all_metrics());
    let tls = env.gateway.tls_files().expect("started with TLS");
    let client = e2e::alpn_client_trusting(&tls.ca_pem);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let response = client
            .get(env.gateway.proxy_tls_url("/anything"))
            .send()
            .expect("an HTTP/2 answer");
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.status(), 200);
        ids.push(
            response.headers()["x-kong-request-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        let body = response.bytes().unwrap();
        assert!(!body.is_empty());
    }
    let url = env.gateway.status_url("/metrics");
    let scrape = scrape_until(&url, |scrape| requests_counted(scrape) >= 2);
    let labels = request_labels("echo-route", "200", "service", "");
    assert_eq!(
        scrape.value("kong_http_requests_total", &labels),
        2,
        "{}",
        scrape.text
    );
    assert_histogram(
        &scrape,
        "kong_request_latency_ms",
        "echo-route",
        UPSTREAM_LE,
        2,
    );
    let egress = [
        ("service", "echo-service"),
        ("route", "echo-route"),
        ("direction", "egress"),
        ("workspace", "default"),
        ("consumer", ""),
    ];
    assert!(scrape.value("kong_bandwidth_bytes", &egress) > 0);
    let lines = lines_of(&log, 2);
    for (line, id) in lines.iter().zip(&ids) {
        let line = parse_line(line);
        assert_eq!(line.request, "GET /anything HTTP/2.0");
        assert_eq!(line.request_id.as_ref(), Some(id));
    }
}

/// The series (with the labels) that Kong's official Grafana dashboard,
/// grafana.com dashboard 7424, queries: read from its source,
/// `kong/plugins/prometheus/grafana/kong-official.json` (revision 9, Kong
/// at 22246ef2; its README says it is the source of 7424). `instance`,
/// which Prometheus adds, is left out, as are the series this gateway
/// cannot have (see docs/observability.md): `kong_upstream_target_health`
/// (no upstream entities) and `kong_memory_lua_shared_dict_*` (no Lua).
const DASHBOARD_7424: &[(&str, &[&str])] = &[
    ("kong_http_requests_total", &["service", "route", "code"]),
    ("kong_kong_latency_ms_bucket", &["service", "route", "le"]),
    (
        "kong_request_latency_ms_bucket",
        &["service", "route", "le"],
    ),
    (
        "kong_upstream_latency_ms_bucket",
        &["service", "route", "le"],
    ),
    ("kong_bandwidth_bytes", &["service", "route", "direction"]),
    ("kong_memory_workers_lua_vms_bytes", &[]),
    ("kong_nginx_connections_total", &["state"]),
];

/// The `state` values the dashboard selects.
const DASHBOARD_STATES: &[&str] = &[
    "active", "reading", "writing", "waiting", "total", "handled", "accepted",
];

#[test]
fn the_grafana_dashboard_finds_its_series() {
    let env = Env::start_with(observed(&[]));
    env.global_plugin("prometheus", all_metrics());
    send(env.get("/anything")).expect(200);
    let url = env.gateway.status_url("/metrics");
    let scrape = scrape_until(&url, |scrape| requests_counted(scrape) >= 1);
    for (name, labels) in DASHBOARD_7424 {
        let found = scrape.family(name).into_iter().any(|(key, _)| {
            labels.iter().all(|label| {
                key.contains(&format!("{{{label}=\"")) || key.contains(&format!(",{label}=\""))
            })
        });
        assert!(found, "no {name} with labels {labels:?}\n{}", scrape.text);
    }
    for state in DASHBOARD_STATES {
        assert!(
            scrape.text.contains(&format!("state=\"{state}\"}}")),
            "kong_nginx_connections_total{{state={state}}}\n{}",
            scrape.text
        );
    }
    assert!(scrape.text.contains(",direction=\"egress\","));
    assert!(scrape.text.contains(",direction=\"ingress\","));
}

// ----- the Status API ----------------------------------------------------------------

#[test]
fn the_status_api_reports_status_readiness_and_metrics() {
    let env = Env::start_with(observed(&[]));
    let gateway = &env.gateway;
    let ready = send(http_client().get(gateway.status_url("/status/ready")));
    assert_eq!(ready.expect_json(200), json!({"message": "ready"}));
    let status = send(http_client().get(gateway.status_url("/status"))).expect_json(200);
    assert_eq!(status["database"]["reachable"], true, "{status}");
    for counter in [
        "connections_accepted",
        "connections_handled",
        "connections_active",
        "connections_reading",
        "connections_writing",
        "connections_waiting",
        "total_requests",
    ] {
        assert!(
            status["server"][counter].is_u64(),
            "server.{counter}: {status}"
        );
    }
    assert!(
        status["server"]["total_requests"].as_u64() >= Some(3),
        "{status}"
    );
    // The Admin API's /status reads the same counters.
    let admin = env.admin_get("/status");
    assert!(
        admin["server"]["total_requests"].as_u64() > status["server"]["total_requests"].as_u64()
    );
    let missing = send(http_client().get(gateway.status_url("/services")));
    assert_eq!(missing.expect_json(404), json!({"message": "Not found"}));
    let post = send(http_client().post(gateway.status_url("/status/ready")));
    assert_eq!(
        post.expect_json(405),
        json!({"message": "Method not allowed"})
    );
    let metrics = Scrape::of(&gateway.status_url("/metrics"));
    assert_eq!(metrics.value("kong_datastore_reachable", &[]), 1);
}

fn migrations(url: &str) {
    Run::gateway(&["migrations", "bootstrap"])
        .args(&["--database", url])
        .run()
        .assert_status(0);
}

fn wait_for(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < limit,
            "gave up waiting for {what} after {limit:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Answers of the Status API while the start waits for a frozen database.
struct DuringStart {
    ready: Answer,
    status: Value,
    reachable: u64,
}

#[test]
fn readiness_waits_for_the_configuration() {
    let pg = Postgres::start();
    let url = pg.create_database();
    migrations(&url);
    let echo = Echo::start();
    let options = observed(&["--database", &url, "--pg-timeout", "1500", "--workers", "1"]);
    let (mut node, _) = Gateway::start_probing(options, |_| ());
    let admin = |method: Method, path: &str, body: Value| {
        send(
            http_client()
                .request(method, node.admin_url(path))
                .json(&body),
        )
    };
    admin(
        Method::POST,
        "/services",
        json!({"name": "s", "url": echo.url("")}),
    )
    .expect(201);
    admin(
        Method::POST,
        "/services/s/routes",
        json!({"name": "r", "paths": ["/r"]}),
    )
    .expect(201);
    let ready = send(http_client().get(node.status_url("/status/ready")));
    assert_eq!(ready.expect_json(200), json!({"message": "ready"}));
    let revision = node_revision(&node);
    let copy = node.data_dir().join("last-config");
    wait_for(Duration::from_secs(5), "the local copy", || {
        std::fs::read_to_string(&copy)
            .is_ok_and(|text| text.contains(&format!("revision {revision}\n")))
    });

    // A silent database: the start waits for it (up to twice the timeout)
    // before it serves its local copy. Meanwhile the Status API answers.
    node.kill9();
    pg.freeze();
    let during = node.restart_probing(|status| {
        let get = |path: &str| send(http_client().get(format!("http://{status}{path}")));
        DuringStart {
            ready: get("/status/ready"),
            status: get("/status").expect_json(200),
            reachable: Scrape::of(&format!("http://{status}/metrics"))
                .value("kong_datastore_reachable", &[]),
        }
    });
    let during = during.expect("the node was started with --status-listen");
    assert_eq!(
        during.ready.expect_json(503),
        json!({"message": "opening the store"}),
        "{}",
        during.ready
    );
    assert_eq!(
        during.status["database"]["reachable"], false,
        "{}",
        during.status
    );
    assert_eq!(during.reachable, 0);

    // Served from the local copy: ready, although the database is still
    // unreachable (the node serves its last configuration).
    let ready = send(http_client().get(node.status_url("/status/ready")));
    assert_eq!(ready.expect_json(200), json!({"message": "ready"}));
    send(http_client().get(node.proxy_url("/r/anything"))).expect(200);
    pg.thaw();
}

fn node_revision(node: &Gateway) -> u64 {
    let status = send(http_client().get(node.admin_url("/status"))).expect_json(200);
    status["configuration_revision"]
        .as_u64()
        .unwrap_or_default()
}

// ----- access logs -----------------------------------------------------------------

/// One line of `kong_log_format` (or `combined`, without the id), split
/// into its fields.
#[derive(Debug, PartialEq, Eq)]
struct LogLine {
    remote_addr: String,
    remote_user: String,
    time_local: String,
    request: String,
    status: u16,
    body_bytes_sent: u64,
    referer: String,
    user_agent: String,
    request_id: Option<String>,
}

/// Splits a line; quoted values end at the next `"` (nginx escapes the
/// ones inside).
fn parse_line(line: &str) -> LogLine {
    let (remote_addr, rest) = line.split_once(" - ").unwrap_or_else(|| not_a_line(line));
    let (remote_user, rest) = rest.split_once(" [").unwrap_or_else(|| not_a_line(line));
    let (time_local, rest) = rest.split_once("] \"").unwrap_or_else(|| not_a_line(line));
    let (request, rest) = rest.split_once("\" ").unwrap_or_else(|| not_a_line(line));
    let (status, rest) = rest.split_once(' ').unwrap_or_else(|| not_a_line(line));
    let (bytes, rest) = rest.split_once(" \"").unwrap_or_else(|| not_a_line(line));
    let (referer, rest) = rest.split_once("\" \"").unwrap_or_else(|| not_a_line(line));
    let (user_agent, rest) = rest.split_once('"').unwrap_or_else(|| not_a_line(line));
    let request_id = match rest {
        "" => None,
        rest => Some(
            rest.strip_prefix(" kong_request_id: \"")
                .and_then(|id| id.strip_suffix('"'))
                .unwrap_or_else(|| not_a_line(line))
                .to_owned(),
        ),
    };
    LogLine {
        remote_addr: remote_addr.to_owned(),
        remote_user: remote_user.to_owned(),
        time_local: time_local.to_owned(),
        request: request.to_owned(),
        status: status.parse().unwrap_or_else(|_| not_a_line(line)),
        body_bytes_sent: bytes.parse().unwrap_or_else(|_| not_a_line(line)),
        referer: referer.to_owned(),
        user_agent: user_agent.to_owned(),
        request_id,
    }
}

#[track_caller]
fn not_a_line<T>(line: &str) -> T {
    panic!("not an access log line: {line:?}")
}

/// `10/Oct/2000:13:55:36 +0000`.
#[track_caller]
fn assert_time_local(time: &str) {
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let bytes = time.as_bytes();
    assert_eq!(time.len(), 26, "{time}");
    assert!(months.contains(&&time[3..6]), "{time}");
    for (index, byte) in bytes.iter().enumerate() {
        let expected_digit =
            matches!(index, 0 | 1 | 7..=10 | 12 | 13 | 15 | 16 | 18 | 19 | 22..=25);
        if expected_digit {
            assert!(byte.is_ascii_digit(), "{time}");
        }
    }
    assert_eq!(&time[2..3], "/");
    assert_eq!(&time[6..7], "/");
    assert_eq!(&time[20..], " +0000");
}

/// The lines of `path` once it has at least `count`.
fn lines_of(path: &Path, count: usize) -> Vec<String> {
    let mut lines = Vec::new();
    wait_for(Duration::from_secs(5), "the access log lines", || {
        lines = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        lines.len() >= count
    });
    lines
}

/// The response's head and body, split.
fn split_response(bytes: &[u8]) -> (String, Vec<u8>) {
    let end = bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a response head");
    (
        String::from_utf8_lossy(&bytes[..end]).into_owned(),
        bytes[end + 4..].to_vec(),
    )
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
}

#[test]
fn access_log_lines_have_kongs_fields() {
    let dir = tempfile::tempdir().unwrap();
    let proxy_log = dir.path().join("access.log");
    let admin_log = dir.path().join("admin_access.log");
    let options = observed(&[
        "--proxy-access-log",
        proxy_log.to_str().unwrap(),
        "--admin-access-log",
        admin_log.to_str().unwrap(),
    ]);
    let env = Env::bare(options);
    routes(&env, &["logged"]);

    let proxy = env.gateway.proxy_addr();
    let hostile = b"GET /logged/anything?x=1&y=%22 HTTP/1.1\r\nHost: gw\r\n\
        User-Agent: evil \"quote\" \\ back\xff\tend\r\nReferer: http://ref.test/a b\r\n\
        Authorization: Basic YWxpY2U6cHc=\r\nConnection: close\r\n\r\n";
    let (hostile_head, hostile_body) = split_response(&exchange_raw(proxy, hostile));
    let (unrouted_head, unrouted_body) = split_response(&exchange_raw(
        proxy,
        b"GET /nowhere HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
    ));
    let (head_head, _) = split_response(&exchange_raw(
        proxy,
        b"HEAD /logged/anything HTTP/1.0\r\nHost: gw\r\nUser-Agent: probe\r\n\r\n",
    ));

    let lines = lines_of(&proxy_log, 3);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let id = |head: &str| header(head, "x-kong-request-id").map(str::to_owned);
    let first = parse_line(&lines[0]);
    assert_time_local(&first.time_local);
    assert_eq!(
        first,
        LogLine {
            remote_addr: "127.0.0.1".into(),
            remote_user: "alice".into(),
            time_local: first.time_local.clone(),
            request: "GET /logged/anything?x=1&y=%22 HTTP/1.1".into(),
            status: 200,
            body_bytes_sent: hostile_body.len() as u64,
            referer: "http://ref.test/a b".into(),
            user_agent: "evil \\x22quote\\x22 \\x5C back\\xFF\\x09end".into(),
            request_id: id(&hostile_head),
        }
    );
    assert!(first.request_id.as_ref().is_some_and(|id| id.len() == 32));
    let second = parse_line(&lines[1]);
    assert_eq!(
        (
            second.remote_user.as_str(),
            second.request.as_str(),
            second.status
        ),
        ("-", "GET /nowhere HTTP/1.1", 404)
    );
    assert_eq!(second.body_bytes_sent, unrouted_body.len() as u64);
    assert_eq!(
        (second.referer.as_str(), second.user_agent.as_str()),
        ("-", "-")
    );
    assert_eq!(second.request_id, id(&unrouted_head));
    let third = parse_line(&lines[2]);
    assert_eq!(
        (
            third.request.as_str(),
            third.status,
            third.body_bytes_sent,
            third.user_agent.as_str()
        ),
        ("HEAD /logged/anything HTTP/1.0", 200, 0, "probe")
    );
    assert_eq!(third.request_id, id(&head_head));

    // The Admin API's lines: nginx's combined format, no request id.
    let admin_lines = lines_of(&admin_log, 2);
    let services = parse_line(&admin_lines[0]);
    assert_eq!(
        (
            services.request.as_str(),
            services.status,
            services.request_id
        ),
        ("POST /services HTTP/1.1", 201, None)
    );
    assert!(services.body_bytes_sent > 0);
    assert_eq!(
        parse_line(&admin_lines[1]).request,
        "POST /services/echo-service/routes HTTP/1.1"
    );
}

#[test]
fn the_access_log_is_reopened_on_sigusr1() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let env = Env::start_with(observed(&["--proxy-access-log", log.to_str().unwrap()]));
    send(env.get("/before")).expect(200);
    assert_eq!(lines_of(&log, 1).len(), 1);

    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let pid = env.gateway.pid().expect("running").to_string();
    Run::new("kill")
        .args(&["-USR1", &pid])
        .run()
        .assert_status(0);
    wait_for(Duration::from_secs(5), "a new access.log", || log.exists());
    send(env.get("/after")).expect(200);

    let after = lines_of(&log, 1);
    assert_eq!(after.len(), 1, "{after:#?}");
    assert!(
        after[0].contains("\"GET /after HTTP/1.1\" 200 "),
        "{}",
        after[0]
    );
    let before = std::fs::read_to_string(&rotated).unwrap();
    assert_eq!(before.lines().count(), 1, "{before}");
    assert!(before.contains("\"GET /before HTTP/1.1\" 200 "), "{before}");
    // The gateway is still up and serving.
    send(env.get("/still")).expect(200);
}

// ----- validation ------------------------------------------------------------------------

#[test]
fn a_bad_prometheus_config_is_refused() {
    let env = Env::start_with(GatewayOptions::default());
    let (status, body) = env.admin(
        Method::POST,
        "/plugins",
        Some(json!({"name": "prometheus", "config": {"per_consumer": "yes"}})),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body,
        json!({
            "code": 2,
            "name": "schema violation",
            "message": "schema violation (config.per_consumer: expected a boolean)",
            "fields": {"config": {"per_consumer": "expected a boolean"}},
        })
    );
    let created = env.global_plugin("prometheus", json!({}));
    assert_eq!(
        created["config"],
        json!({
            "per_consumer": false,
            "status_code_metrics": false,
            "ai_metrics": false,
            "latency_metrics": false,
            "bandwidth_metrics": false,
            "upstream_health_metrics": false,
            "wasm_metrics": false,
        }),
        "Kong's defaults"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kong.yaml");
    std::fs::write(
        &file,
        "plugins:\n- name: prometheus\n  config:\n    per_consumer: \"yes\"\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let refused = Run::gwctl(&["validate", file]).run();
    refused.assert_status(1);
    assert_eq!(
        refused.stderr_lines(),
        [
            format!("{file}:4:19: plugins[0] (prometheus).config.per_consumer: expected a boolean")
                .as_str(),
            "Error: the files are invalid: 1 error",
        ],
        "{refused}"
    );
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "plugins:\n- name: prometheus\n  config:\n    status_code_metrics: true\n",
    )
    .unwrap();
    Run::gwctl(&["validate", good.to_str().unwrap()])
        .run()
        .assert_status(0);
}
