//! The proxy of `gateway serve`, end to end: entities created through the
//! Admin API, requests sent through the proxy listener to `gateway echo`,
//! and what the echo says it received compared with what Kong 3.x sends
//! (`../shared/reference/deck-admin-router.md`, section 5).
//!
//! - Forwarded headers upstream (`X-Forwarded-*`, `X-Real-IP`, `Via`) and
//!   Kong's headers downstream (`Via`, latencies, request id).
//! - Routing: hosts (exact, wildcard), methods, headers, regex paths with
//!   captures, and `traditional_compatible` precedence.
//! - The upstream URI from `strip_path` and `service.path`: one service and
//!   route per row of the reference's table; path escapes; the query string
//!   verbatim; `preserve_host`; `X-Forwarded-Prefix`; hop-by-hop headers.
//! - Kong's own answers: 404 no route, 426 / redirects for https-only
//!   routes, 502, 503, 504, an upstream status passed through, a disabled
//!   service.
//! - Connections: a keep-alive connection survives configuration changes,
//!   and a request in flight at SIGTERM is still answered.
//! - Bodies stream: 200 MiB up and down with the gateway's peak memory far
//!   below that.
//!
//! Every test starts its own gateway and echo upstream.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use e2e::{closed_port, send, Answer, Echo, Gateway, GatewayOptions};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Method;
use serde_json::{json, Value};

// ----- helpers -----------------------------------------------------------------

/// What proxy tests check on an [`Answer`] beyond the harness's basics
/// (the echo's view of the request is [`Answer::echoed`] and
/// [`Answer::upstream_header`]).
trait ProxyAnswer {
    fn assert_kong_upstream_error(&self, status: u16, message: &str);
    fn assert_kong_error(&self, status: u16, message: &str);
    fn assert_kong_error_body(&self, status: u16, message: &str);
}

impl ProxyAnswer for Answer {
    /// The gateway's own error for a failed upstream exchange (502, 504):
    /// as [`ProxyAnswer::assert_kong_error`], but with a proxied response's
    /// latency headers, as Kong's (`KONG_PROXIED`: `X-Kong-Upstream-Latency`
    /// and `X-Kong-Proxy-Latency`, no `X-Kong-Response-Latency`).
    #[track_caller]
    fn assert_kong_upstream_error(&self, status: u16, message: &str) {
        self.assert_kong_error_body(status, message);
        for latency in ["x-kong-upstream-latency", "x-kong-proxy-latency"] {
            assert!(
                self.header(latency)
                    .is_some_and(|latency| latency.parse::<u64>().is_ok()),
                "{latency} expected\n{self}"
            );
        }
        assert_eq!(self.header("x-kong-response-latency"), None, "{self}");
    }

    /// The gateway's own error: `status`, JSON with `message` and the
    /// request id, and Kong's headers.
    #[track_caller]
    fn assert_kong_error(&self, status: u16, message: &str) {
        self.assert_kong_error_body(status, message);
        assert!(
            self.header("x-kong-response-latency")
                .is_some_and(|latency| latency.parse::<u64>().is_ok()),
            "X-Kong-Response-Latency expected\n{self}"
        );
    }

    /// `status`, JSON with `message` and the request id, `Server` and
    /// `X-Kong-Request-Id`.
    #[track_caller]
    fn assert_kong_error_body(&self, status: u16, message: &str) {
        let body = self.expect_json(status);
        assert_eq!(body["message"], message, "error message\n{self}");
        assert_eq!(
            self.header("content-type"),
            Some("application/json; charset=utf-8"),
            "{self}"
        );
        assert!(
            self.header("server")
                .is_some_and(|server| server.starts_with("kong/")),
            "Server: kong/<version> expected\n{self}"
        );
        let request_id = self.header("x-kong-request-id").unwrap_or_default();
        assert!(!request_id.is_empty(), "no X-Kong-Request-Id\n{self}");
        assert_eq!(body["request_id"], request_id, "request_id\n{self}");
    }
}

/// A gateway, an echo upstream and clients for both of the gateway's APIs.
struct Setup {
    echo: Echo,
    gateway: Gateway,
    client: Client,
}

impl Setup {
    fn start() -> Self {
        let echo = Echo::start();
        let gateway = Gateway::start(GatewayOptions::default());
        Self {
            echo,
            gateway,
            client: e2e::http_client(),
        }
    }

    /// `POST` to the Admin API; must answer 201.
    #[track_caller]
    fn create(&self, path: &str, body: Value) -> Value {
        let answer = send(
            self.client
                .post(self.gateway.admin_url(path))
                .header("Content-Type", "application/json")
                .body(body.to_string()),
        );
        answer.expect_json(201)
    }

    /// A service named `name` for the echo, with `fields` added (e.g.
    /// `path`, `read_timeout`), and a route on it with `route` fields.
    #[track_caller]
    fn service_and_route(&self, name: &str, fields: Value, route: Value) {
        let mut service = json!({"name": name, "url": self.echo.url("")});
        merge(&mut service, fields);
        self.create("/services", service);
        self.create(&format!("/services/{name}/routes"), route);
    }

    /// A request to the proxy listener.
    fn proxy(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.gateway.proxy_url(path))
    }

    /// `GET path` through the proxy, with extra headers.
    #[track_caller]
    fn get(&self, path: &str, headers: Headers) -> Answer {
        let mut request = self.proxy(Method::GET, path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request)
    }
}

/// Request headers as name/value pairs.
type Headers<'a> = &'a [(&'a str, &'a str)];

/// Add the members of `extra` to the object `base`.
fn merge(base: &mut Value, extra: Value) {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
}

/// Which service answered: the first segment of the path the echo saw
/// (each test gives its services a distinct `path`), or `404`.
#[track_caller]
fn served_by(answer: &Answer) -> String {
    if answer.status == 404 {
        return "404".to_owned();
    }
    let path = answer.echoed()["path"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    path.trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

// ----- the basic exchange -----------------------------------------------------------

#[test]
fn proxied_request_reaches_the_echo_with_forwarded_headers() {
    let setup = Setup::start();
    setup.service_and_route("echo", json!({}), json!({"paths": ["/anything"]}));
    let proxy_port = setup.gateway.proxy_addr().port().to_string();

    let answer = setup.get(
        "/anything/sub?x=1",
        &[("Via", "1.0 client-proxy"), ("X-Forwarded-For", "10.1.2.3")],
    );
    let doc = answer.echoed();
    let headers = &doc["headers"];
    let expected_upstream = json!({
        "X-Forwarded-For": "10.1.2.3, 127.0.0.1",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": "127.0.0.1",
        "X-Forwarded-Port": proxy_port,
        "X-Forwarded-Path": "/anything/sub",
        "X-Forwarded-Prefix": "/anything",
        "X-Real-Ip": "127.0.0.1",
        "Via": "1.0 client-proxy, 1.1 kong/3.10.0",
        "Host": setup.echo.addr().to_string(),
    });
    for (name, value) in expected_upstream.as_object().into_iter().flatten() {
        assert_eq!(&headers[name], value, "upstream header {name}\n{answer}");
    }
    assert_eq!(doc["method"], "GET", "{answer}");
    assert_eq!(
        doc["path"], "/sub",
        "strip_path removed /anything\n{answer}"
    );
    assert_eq!(doc["args"], json!({"x": "1"}), "{answer}");

    // Downstream: Kong's headers on a proxied response.
    assert_eq!(answer.header("via"), Some("1.1 kong/3.10.0"), "{answer}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "{answer}"
    );
    for latency in ["x-kong-upstream-latency", "x-kong-proxy-latency"] {
        assert!(
            answer
                .header(latency)
                .is_some_and(|ms| ms.parse::<u64>().is_ok()),
            "{latency} must be milliseconds\n{answer}"
        );
    }
    let request_id = answer.header("x-kong-request-id").unwrap_or_default();
    assert!(!request_id.is_empty(), "{answer}");
    assert_eq!(
        headers["X-Kong-Request-Id"], request_id,
        "the same request id up and down\n{answer}"
    );

    // The same request without a client Via or X-Forwarded-For.
    let plain = setup.get("/anything", &[]);
    let headers = plain.echoed()["headers"].clone();
    assert_eq!(headers["X-Forwarded-For"], "127.0.0.1", "{plain}");
    assert_eq!(headers["Via"], "1.1 kong/3.10.0", "{plain}");
    assert_eq!(headers["X-Forwarded-Path"], "/anything", "{plain}");
    assert_eq!(plain.echoed()["path"], "/", "{plain}");

    // Spoofed forwarding headers are replaced, not passed on.
    let spoofed = setup.get(
        "/anything",
        &[
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "spoof.test"),
            ("X-Forwarded-Port", "1"),
            ("X-Real-IP", "6.6.6.6"),
        ],
    );
    let headers = spoofed.echoed()["headers"].clone();
    assert_eq!(headers["X-Forwarded-Proto"], "http", "{spoofed}");
    assert_eq!(headers["X-Forwarded-Host"], "127.0.0.1", "{spoofed}");
    assert_eq!(
        headers["X-Forwarded-Port"],
        proxy_port.as_str(),
        "{spoofed}"
    );
    assert_eq!(headers["X-Real-Ip"], "127.0.0.1", "{spoofed}");
}

#[test]
fn request_method_and_body_reach_the_upstream() {
    let setup = Setup::start();
    setup.service_and_route("echo", json!({}), json!({"paths": ["/"]}));
    let answer = send(
        setup
            .proxy(Method::POST, "/submit")
            .header("Content-Type", "application/json")
            .body(r#"{"a": [1, 2]}"#),
    );
    let doc = answer.echoed();
    assert_eq!(doc["method"], "POST", "{answer}");
    assert_eq!(doc["json"], json!({"a": [1, 2]}), "{answer}");
    let deleted = send(setup.proxy(Method::DELETE, "/thing/1"));
    assert_eq!(deleted.echoed()["method"], "DELETE", "{deleted}");
}

#[test]
fn unmatched_request_is_404_no_route_matched() {
    let setup = Setup::start();
    let empty = setup.get("/anything", &[]);
    empty.assert_kong_error(404, "no Route matched with those values");

    setup.service_and_route("echo", json!({}), json!({"paths": ["/anything"]}));
    let other = setup.get("/something-else", &[]);
    other.assert_kong_error(404, "no Route matched with those values");
    assert!(other.header("via").is_none(), "not proxied\n{other}");

    let plain = setup.get("/nothing", &[("Accept", "text/plain")]);
    assert_eq!(plain.status, 404, "{plain}");
    assert!(
        plain
            .body
            .starts_with("no Route matched with those values\n"),
        "Accept: text/plain gives a text body\n{plain}"
    );
}

// ----- the upstream URI ----------------------------------------------------------------

/// One row of the reference's strip_path / service.path table (section 5.3).
struct UriRow {
    service_path: Option<&'static str>,
    /// `None`: a host-only route.
    route_path: Option<&'static str>,
    strip_path: bool,
    request: &'static str,
    upstream: &'static str,
}

const fn row(
    service_path: Option<&'static str>,
    route_path: Option<&'static str>,
    strip_path: bool,
    request: &'static str,
    upstream: &'static str,
) -> UriRow {
    UriRow {
        service_path,
        route_path,
        strip_path,
        request,
        upstream,
    }
}

/// `router_path_handling_tests.lua` rows (v0, as traditional_compatible
/// uses), both strip values where the table says "any", plus null service
/// paths.
const URI_TABLE: &[UriRow] = &[
    row(Some("/"), Some("/"), true, "/route/req", "/route/req"),
    row(Some("/"), Some("/"), false, "/route/req", "/route/req"),
    row(Some("/"), Some("/route"), false, "/routereq", "/routereq"),
    row(Some("/"), Some("/route"), true, "/route", "/"),
    row(Some("/"), Some("/route"), true, "/route/", "/"),
    row(Some("/"), Some("/route"), true, "/routereq", "/req"),
    row(Some("/"), Some("/route/"), true, "/route/req", "/req"),
    row(Some("/srv"), Some("/rou"), false, "/roureq", "/srv/roureq"),
    row(Some("/srv"), Some("/rou"), true, "/roureq", "/srv/req"),
    row(Some("/srv/"), Some("/rou"), true, "/rou", "/srv"),
    row(Some("/service"), Some("/"), true, "/", "/service"),
    row(Some("/service"), Some("/"), false, "/", "/service"),
    row(
        Some("/service"),
        Some("/"),
        true,
        "/route",
        "/service/route",
    ),
    row(
        Some("/service"),
        Some("/"),
        false,
        "/route",
        "/service/route",
    ),
    row(
        Some("/service"),
        Some("/route"),
        false,
        "/route/",
        "/service/route/",
    ),
    row(Some("/service"), Some("/route"), true, "/route", "/service"),
    row(
        Some("/service"),
        Some("/route"),
        true,
        "/route/",
        "/service/",
    ),
    row(
        Some("/service"),
        Some("/route"),
        true,
        "/routereq",
        "/service/req",
    ),
    row(
        Some("/service/"),
        Some("/route"),
        true,
        "/route",
        "/service",
    ),
    row(
        Some("/service/"),
        Some("/route/"),
        true,
        "/route/req",
        "/service/req",
    ),
    row(Some("/service"), None, true, "/route/", "/service/route/"),
    row(Some("/service"), None, false, "/route/", "/service/route/"),
    row(
        Some("/service"),
        Some("/route"),
        true,
        "/route%2E/req",
        "/service/req",
    ),
    row(
        Some("/service"),
        Some("/route"),
        true,
        "/route../req",
        "/service/req",
    ),
    row(
        Some("/service"),
        Some("/route"),
        false,
        "/route%2e/req",
        "/service/route./req",
    ),
    row(None, Some("/route"), true, "/route/req", "/req"),
    row(None, Some("/route"), false, "/route/req", "/route/req"),
    row(None, Some("/route"), true, "/route", "/"),
];

#[test]
fn upstream_path_follows_the_strip_path_table() {
    let setup = Setup::start();
    for (index, row) in URI_TABLE.iter().enumerate() {
        let mut route =
            json!({"hosts": [format!("row{index}.test")], "strip_path": row.strip_path});
        if let Some(path) = row.route_path {
            route["paths"] = json!([path]);
        }
        let service = json!({"path": row.service_path});
        setup.service_and_route(&format!("row{index}"), service, route);
    }
    let mut failures = Vec::new();
    for (index, row) in URI_TABLE.iter().enumerate() {
        let host = format!("row{index}.test");
        let answer = setup.get(row.request, &[("Host", &host)]);
        let received = if answer.status == 200 {
            answer.json()["path"]
                .as_str()
                .unwrap_or("<no path>")
                .to_owned()
        } else {
            format!("<status {}: {}>", answer.status, answer.body)
        };
        if received != row.upstream {
            failures.push(format!(
                "row {index}: service.path {:?}, route path {:?}, strip_path {}, request {:?}: \
                 expected upstream {:?}, got {received:?}",
                row.service_path, row.route_path, row.strip_path, row.request, row.upstream
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows differ:\n{}",
        failures.len(),
        URI_TABLE.len(),
        failures.join("\n")
    );
}

#[test]
fn query_string_is_passed_verbatim() {
    let setup = Setup::start();
    setup.service_and_route("svc", json!({"path": "/base"}), json!({"paths": ["/q"]}));
    let echo = setup.echo.addr();
    for (request, upstream) in [
        ("/q/x?b=2&a=1&a=%20x&flag", "/base/x?b=2&a=1&a=%20x&flag"),
        ("/q?z=%2F%3F&empty=", "/base?z=%2F%3F&empty="),
        ("/q/x?", "/base/x?"),
    ] {
        let answer = setup.get(request, &[]);
        assert_eq!(
            answer.echoed()["url"],
            format!("http://{echo}{upstream}"),
            "request {request}\n{answer}"
        );
    }
    let answer = setup.get("/q/x?b=2&a=1&a=3", &[]);
    assert_eq!(
        answer.echoed()["args"],
        json!({"b": "2", "a": ["1", "3"]}),
        "{answer}"
    );
}

#[test]
fn path_escapes_are_normalized_and_sent_escaped() {
    let setup = Setup::start();
    setup.service_and_route("svc", json!({"path": "/base"}), json!({"paths": ["/q"]}));
    let mut failures = Vec::new();
    for (request, upstream) in [
        ("/q/a%20b", "/base/a%20b"),
        ("/q/%7Euser", "/base/~user"),
        ("/q/x%2Fy", "/base/x%2Fy"),
        ("/q/caf%C3%A9", "/base/caf%C3%A9"),
        ("/q/%61bc", "/base/abc"),
    ] {
        let answer = setup.get(request, &[]);
        let received = answer.echoed()["path"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if received != upstream {
            failures.push(format!(
                "{request}: expected upstream {upstream}, got {received}"
            ));
        }
    }
    // An encoded prefix still selects the route (routing sees the decoded path).
    let encoded_prefix = setup.get("/%71/z", &[]);
    assert_eq!(
        encoded_prefix.echoed()["path"],
        "/base/z",
        "{encoded_prefix}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hop_by_hop_headers_are_not_forwarded() {
    let setup = Setup::start();
    setup.service_and_route("svc", json!({}), json!({"paths": ["/"]}));
    let answer = setup.get(
        "/x",
        &[
            ("Connection", "keep-alive, X-Private"),
            ("X-Private", "secret"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("X-Kept", "yes"),
        ],
    );
    let headers = answer.echoed()["headers"].clone();
    for gone in ["X-Private", "Keep-Alive", "Proxy-Connection"] {
        assert!(
            headers.get(gone).is_none(),
            "{gone} is hop-by-hop\n{answer}"
        );
    }
    assert_eq!(headers["X-Kept"], "yes", "{answer}");
}

#[test]
fn preserve_host_chooses_the_host_sent_upstream() {
    let setup = Setup::start();
    setup.service_and_route(
        "keep",
        json!({}),
        json!({"hosts": ["keep.test"], "preserve_host": true}),
    );
    setup.service_and_route(
        "swap",
        json!({}),
        json!({"hosts": ["swap.test"], "preserve_host": false}),
    );
    let kept = setup.get("/", &[("Host", "keep.test:8123")]);
    assert_eq!(
        kept.upstream_header("Host").as_deref(),
        Some("keep.test:8123"),
        "{kept}"
    );
    assert_eq!(
        kept.upstream_header("X-Forwarded-Host").as_deref(),
        Some("keep.test"),
        "{kept}"
    );
    let swapped = setup.get("/", &[("Host", "swap.test")]);
    assert_eq!(
        swapped.upstream_header("Host"),
        Some(setup.echo.addr().to_string()),
        "the service's host:port\n{swapped}"
    );
    assert_eq!(
        swapped.upstream_header("X-Forwarded-Host").as_deref(),
        Some("swap.test"),
        "{swapped}"
    );
}

#[test]
fn x_forwarded_prefix_only_when_strip_path_removed_something() {
    let setup = Setup::start();
    setup.service_and_route("pre", json!({}), json!({"paths": ["/pre"]}));
    setup.service_and_route(
        "nostrip",
        json!({}),
        json!({"paths": ["/nostrip"], "strip_path": false}),
    );
    setup.service_and_route(
        "root",
        json!({}),
        json!({"hosts": ["root.test"], "paths": ["/"]}),
    );
    setup.service_and_route("hostonly", json!({}), json!({"hosts": ["hostonly.test"]}));
    let spoof = ("X-Forwarded-Prefix", "/spoofed");

    let stripped = setup.get("/pre/x", &[spoof]);
    assert_eq!(
        stripped.upstream_header("X-Forwarded-Prefix").as_deref(),
        Some("/pre"),
        "{stripped}"
    );
    assert_eq!(stripped.echoed()["path"], "/x", "{stripped}");
    for (path, host) in [
        ("/nostrip/x", None),
        ("/x", Some("root.test")),
        ("/x", Some("hostonly.test")),
    ] {
        let mut headers = vec![spoof];
        if let Some(host) = host {
            headers.push(("Host", host));
        }
        let answer = setup.get(path, &headers);
        assert_eq!(
            answer.upstream_header("X-Forwarded-Prefix"),
            None,
            "nothing was stripped: no X-Forwarded-Prefix, not even the client's\n{answer}"
        );
    }
}

// ----- matching ------------------------------------------------------------------------

#[test]
fn hosts_match_exactly_and_by_wildcard() {
    let setup = Setup::start();
    setup.service_and_route(
        "exact",
        json!({"path": "/exact"}),
        json!({"hosts": ["api.example.com"]}),
    );
    setup.service_and_route(
        "suffix",
        json!({"path": "/suffix"}),
        json!({"hosts": ["*.example.com"]}),
    );
    setup.service_and_route(
        "prefix",
        json!({"path": "/prefix"}),
        json!({"hosts": ["example.*"]}),
    );
    setup.service_and_route(
        "withport",
        json!({"path": "/withport"}),
        json!({"hosts": ["ported.test:8443"]}),
    );
    let cases = [
        ("api.example.com", "exact"),
        ("api.example.com:9999", "exact"),
        ("a.example.com", "suffix"),
        ("a.b.example.com", "suffix"),
        ("example.com", "prefix"),
        ("example.org", "prefix"),
        ("notexample.com", "404"),
        ("other.test", "404"),
        ("ported.test:8443", "withport"),
        ("ported.test:8444", "404"),
        ("ported.test", "404"),
    ];
    let mut failures = Vec::new();
    for (host, expected) in cases {
        let answer = setup.get("/x", &[("Host", host)]);
        let got = served_by(&answer);
        if got != expected {
            failures.push(format!(
                "Host {host}: expected {expected}, got {got}\n{answer}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn methods_and_headers_narrow_the_match() {
    let setup = Setup::start();
    setup.service_and_route(
        "writes",
        json!({"path": "/writes"}),
        json!({"paths": ["/m"], "methods": ["POST", "PUT"], "strip_path": false}),
    );
    setup.service_and_route(
        "v2",
        json!({"path": "/v2"}),
        json!({"paths": ["/h"], "headers": {"X-Version": ["v2", "v3"]}, "strip_path": false}),
    );
    setup.service_and_route(
        "beta",
        json!({"path": "/beta"}),
        json!({"paths": ["/h"], "headers": {"x-version": ["~*^beta-\\d+$"]}, "strip_path": false}),
    );
    setup.service_and_route(
        "long",
        json!({"path": "/long"}),
        json!({"paths": ["/h/a/much/longer/path"], "strip_path": false}),
    );

    let by_method = |method: Method| served_by(&send(setup.proxy(method, "/m")));
    assert_eq!(by_method(Method::GET), "404");
    assert_eq!(by_method(Method::POST), "writes");
    assert_eq!(by_method(Method::PUT), "writes");
    assert_eq!(by_method(Method::DELETE), "404");

    // (request headers, path, expected service)
    let cases: [(Headers, &str, &str); 7] = [
        (&[], "/h", "404"),
        (&[("X-Version", "v2")], "/h", "v2"),
        (&[("x-version", "V3")], "/h", "v2"),
        (&[("X-Version", "v1")], "/h", "404"),
        (&[("X-Version", "Beta-12")], "/h", "beta"),
        (&[("X-Version", "beta-x")], "/h", "404"),
        (&[("X-Version", "v2")], "/h/a/much/longer/path", "v2"),
    ];
    for (headers, path, expected) in cases {
        let answer = setup.get(path, headers);
        assert_eq!(
            served_by(&answer),
            expected,
            "{path} with {headers:?}\n{answer}"
        );
    }
    let longer = setup.get("/h/a/much/longer/path", &[]);
    assert_eq!(served_by(&longer), "long", "{longer}");
}

#[test]
fn precedence_follows_traditional_compatible() {
    let setup = Setup::start();
    let routes = [
        ("catchall", json!({"paths": ["/"]})),
        ("short", json!({"paths": ["/api"]})),
        ("long", json!({"paths": ["/api/v1"]})),
        ("regex", json!({"paths": ["~/api/v1/\\d+$"]})),
        ("hostpath", json!({"hosts": ["h.test"], "paths": ["/api"]})),
        (
            "regexlow",
            json!({"paths": ["~/api/v1/\\d+/x$"], "regex_priority": 0}),
        ),
        (
            "regexhigh",
            json!({"paths": ["~/api/v1/\\d/x$"], "regex_priority": 5}),
        ),
        ("method", json!({"methods": ["GET"]})),
    ];
    for (name, mut route) in routes {
        route["strip_path"] = json!(false);
        setup.service_and_route(name, json!({"path": format!("/{name}")}), route);
    }
    let cases: [(&str, Option<&str>, &str, &str); 8] = [
        (
            "/other",
            None,
            "catchall",
            "`/` catches everything (and beats a method-only route)",
        ),
        ("/api/x", None, "short", "prefix"),
        ("/api/v1/x", None, "long", "the longer prefix wins"),
        (
            "/api/v1/123",
            None,
            "regex",
            "a regex beats an equally weighted prefix, even a longer one",
        ),
        (
            "/api/v1/123",
            Some("h.test"),
            "hostpath",
            "host+path beats path, even a regex",
        ),
        (
            "/api/v1/7/x",
            None,
            "regexhigh",
            "the higher regex_priority wins",
        ),
        ("/api/v1/77/x", None, "regexlow", "only one regex matches"),
        (
            "/api/v1/x",
            Some("h.test"),
            "hostpath",
            "more fields beat a longer prefix",
        ),
    ];
    let mut failures = Vec::new();
    for (path, host, expected, why) in cases {
        let mut headers = Vec::new();
        if let Some(host) = host {
            headers.push(("Host", host));
        }
        let answer = setup.get(path, &headers);
        let got = served_by(&answer);
        if got != expected {
            failures.push(format!(
                "{path} (Host {host:?}): {why}: expected {expected}, got {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn regex_paths_expose_named_captures_and_strip_the_whole_match() {
    let setup = Setup::start();
    setup.create(
        "/services",
        json!({"name": "svc", "url": setup.echo.url("")}),
    );
    let captured = setup.create(
        "/services/svc/routes",
        json!({"name": "posts", "paths": ["~/users/(?<user>[a-z]+)/posts/(\\d+)$"]}),
    );
    setup.create(
        &format!(
            "/routes/{}/plugins",
            captured["id"].as_str().unwrap_or_default()
        ),
        json!({"name": "request-termination", "config": {"status_code": 200, "echo": true}}),
    );
    let answer = setup.get("/users/alice/posts/42", &[]);
    let doc = answer.expect_json(200);
    assert_eq!(
        doc["request"]["uri_captures"],
        json!({"named": {"user": "alice"}, "unnamed": ["alice", "42"]}),
        "{answer}"
    );
    assert_eq!(
        setup.get("/users/alice/posts/42/more", &[]).status,
        404,
        "anchored by $"
    );
    assert_eq!(
        setup.get("/users/Alice/posts/42", &[]).status,
        404,
        "[a-z] is case-sensitive"
    );
    assert_eq!(
        setup.get("/x/users/alice/posts/42", &[]).status,
        404,
        "anchored at the start"
    );

    setup.create(
        "/services/svc/routes",
        json!({"name": "items", "paths": ["~/items/(?<id>\\d+)"]}),
    );
    let stripped = setup.get("/items/42/details?full=1", &[]);
    let doc = stripped.echoed();
    assert_eq!(
        doc["path"], "/details",
        "the whole regex match is stripped\n{stripped}"
    );
    assert_eq!(
        doc["headers"]["X-Forwarded-Prefix"], "/items/42",
        "{stripped}"
    );
    assert_eq!(doc["args"], json!({"full": "1"}), "{stripped}");
}

// ----- the gateway's own answers ----------------------------------------------------

#[test]
fn https_only_route_on_plain_http_is_426() {
    let setup = Setup::start();
    setup.service_and_route(
        "secure",
        json!({}),
        json!({"paths": ["/secure"], "protocols": ["https"]}),
    );
    let answer = setup.get("/secure/x?q=1", &[]);
    answer.assert_kong_error(426, "Please use HTTPS protocol");
    assert_eq!(
        answer.header("upgrade"),
        Some("TLS/1.2, HTTP/1.1"),
        "{answer}"
    );
    assert!(
        answer
            .header("connection")
            .is_some_and(|value| value.to_ascii_lowercase().contains("upgrade")),
        "Connection: Upgrade expected\n{answer}"
    );
}

#[test]
fn https_redirect_status_code_redirects_to_https() {
    let setup = Setup::start();
    for code in [301, 308] {
        setup.service_and_route(
            &format!("moved{code}"),
            json!({}),
            json!({"paths": [format!("/moved{code}")], "protocols": ["https"],
                "https_redirect_status_code": code}),
        );
    }
    let answer = setup.get("/moved301/x?q=1", &[("Host", "shop.test:8000")]);
    assert_eq!(answer.status, 301, "{answer}");
    assert_eq!(
        answer.header("location"),
        Some("https://shop.test/moved301/x?q=1"),
        "{answer}"
    );
    assert!(
        answer
            .header("server")
            .is_some_and(|server| server.starts_with("kong/")),
        "{answer}"
    );
    let answer = setup.get("/moved308", &[]);
    assert_eq!(answer.status, 308, "{answer}");
    assert_eq!(
        answer.header("location"),
        Some("https://127.0.0.1/moved308"),
        "{answer}"
    );
}

#[test]
fn refused_upstream_connection_is_502() {
    let setup = Setup::start();
    let port = closed_port();
    setup.create(
        "/services",
        json!({"name": "dead", "url": format!("http://127.0.0.1:{port}"), "retries": 2,
            "connect_timeout": 1000}),
    );
    setup.create("/services/dead/routes", json!({"paths": ["/dead"]}));
    let answer = setup.get("/dead", &[]);
    answer.assert_kong_upstream_error(
        502,
        "An invalid response was received from the upstream server",
    );

    // An upstream that closes the connection without answering.
    setup.service_and_route(
        "drops",
        json!({"path": "/drop"}),
        json!({"paths": ["/drops"]}),
    );
    let dropped = setup.get("/drops", &[]);
    dropped.assert_kong_upstream_error(
        502,
        "An invalid response was received from the upstream server",
    );
}

#[test]
fn upstream_slower_than_read_timeout_is_504() {
    let setup = Setup::start();
    setup.service_and_route(
        "slow",
        json!({"path": "/delay/2", "read_timeout": 500}),
        json!({"paths": ["/slow"]}),
    );
    let started = Instant::now();
    let answer = setup.get("/slow", &[]);
    let took = started.elapsed();
    answer.assert_kong_upstream_error(504, "The upstream server is timing out");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1800),
        "the 504 must come after read_timeout (500 ms), not the upstream's 2 s: took {took:?}"
    );
    // A fast enough upstream on the same settings is fine.
    setup.service_and_route(
        "quick",
        json!({"path": "/delay/0.1", "read_timeout": 500}),
        json!({"paths": ["/quick"]}),
    );
    assert_eq!(setup.get("/quick", &[]).status, 200);
}

#[test]
fn route_without_service_is_503() {
    let setup = Setup::start();
    setup.create("/routes", json!({"paths": ["/orphan"]}));
    let answer = setup.get("/orphan", &[]);
    let body = answer.expect_json(503);
    assert_eq!(
        body["message"], "no Service found with those values",
        "{answer}"
    );
    assert!(
        answer
            .header("server")
            .is_some_and(|server| server.starts_with("kong/")),
        "{answer}"
    );
}

#[test]
fn upstream_status_passes_through() {
    let setup = Setup::start();
    setup.service_and_route(
        "teapot",
        json!({"path": "/status/418"}),
        json!({"paths": ["/teapot"]}),
    );
    setup.service_and_route(
        "broken",
        json!({"path": "/status/500"}),
        json!({"paths": ["/broken"]}),
    );
    let answer = setup.get("/teapot", &[]);
    assert_eq!(answer.status, 418, "{answer}");
    assert!(answer.body.is_empty(), "the echo's empty body\n{answer}");
    assert_eq!(
        answer.header("via"),
        Some("1.1 kong/3.10.0"),
        "proxied\n{answer}"
    );
    assert!(
        answer.header("x-kong-upstream-latency").is_some(),
        "{answer}"
    );
    let answer = setup.get("/broken", &[]);
    assert_eq!(answer.status, 500, "{answer}");
    assert!(
        answer.body.is_empty(),
        "an upstream 500 is passed on as is\n{answer}"
    );
}

#[test]
fn disabled_service_is_not_routed() {
    let setup = Setup::start();
    setup.service_and_route("off", json!({"enabled": false}), json!({"paths": ["/off"]}));
    setup.service_and_route("on", json!({}), json!({"paths": ["/on"]}));
    setup
        .get("/off", &[])
        .assert_kong_error(404, "no Route matched with those values");
    assert_eq!(setup.get("/on", &[]).status, 200);
}

// ----- connections -------------------------------------------------------------------

/// One HTTP/1.1 exchange on an open connection: the status and body. Bodies
/// with `Content-Length` or chunked encoding are read whole, so the
/// connection is ready for the next request.
fn exchange(connection: &mut BufReader<TcpStream>, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    connection
        .get_mut()
        .write_all(request.as_bytes())
        .unwrap_or_else(|error| panic!("GET {path}: the connection was closed: {error}"));
    let mut line = String::new();
    connection.read_line(&mut line).expect("a status line");
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: no status line (connection closed?): {line:?}"));
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        connection.read_line(&mut line).expect("a header line");
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((header, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            connection.read_line(&mut line).expect("a chunk size");
            let size = usize::from_str_radix(line.trim(), 16).expect("a hex chunk size");
            let mut chunk = vec![0; size + 2];
            connection.read_exact(&mut chunk).expect("a chunk");
            body.extend_from_slice(&chunk[..size]);
            if size == 0 {
                break;
            }
        }
    } else {
        body.resize(length.unwrap_or(0), 0);
        connection.read_exact(&mut body).expect("the body");
    }
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn config_changes_keep_client_connections_open() {
    let setup = Setup::start();
    let stream = TcpStream::connect(setup.gateway.proxy_addr()).expect("a connection");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    let mut connection = BufReader::new(stream);
    assert_eq!(exchange(&mut connection, "/live").0, 404);

    setup.service_and_route("svc", json!({}), json!({"name": "r", "paths": ["/live"]}));
    let (status, body) = exchange(&mut connection, "/live/x");
    assert_eq!(status, 200, "same connection, new route: {body}");

    let answer = send(
        setup
            .client
            .patch(setup.gateway.admin_url("/routes/r"))
            .header("Content-Type", "application/json")
            .body(json!({"paths": ["/moved"]}).to_string()),
    );
    answer.expect_json(200);
    assert_eq!(exchange(&mut connection, "/live/x").0, 404);
    let (status, body) = exchange(&mut connection, "/moved/y");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("the echo's JSON")["path"],
        "/y"
    );
}

#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let mut setup = Setup::start();
    setup.service_and_route(
        "slow",
        json!({"path": "/delay/1.5"}),
        json!({"paths": ["/slow"]}),
    );
    let url = setup.gateway.proxy_url("/slow");
    let client = setup.client.clone();
    let in_flight = std::thread::spawn(move || client.get(url).send().map(|r| r.status().as_u16()));
    std::thread::sleep(Duration::from_millis(400));
    // SIGTERM; `restart` requires exit code 0 within 15 s.
    setup.gateway.restart();
    let status = in_flight.join().expect("the request thread");
    assert_eq!(
        status.map_err(|error| error.to_string()),
        Ok(200),
        "the request in flight at SIGTERM must be answered"
    );
    assert_eq!(
        setup.get("/slow", &[]).status,
        200,
        "served again after the restart"
    );
}

// ----- streaming -------------------------------------------------------------------

/// 200 MiB: far more than the gateway may hold, small enough for a debug
/// build to move in a few seconds.
const BIG: u64 = 200 * 1024 * 1024;

/// The most memory the gateway may have needed (peak RSS).
const MEMORY_LIMIT: u64 = 150 * 1024 * 1024;

/// A request body of `remaining` bytes, made as it is read.
struct Generated {
    remaining: u64,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        buf[..n].fill(b'g');
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[test]
fn large_bodies_stream_through_in_bounded_memory() {
    let setup = Setup::start();
    setup.service_and_route(
        "up",
        json!({"path": "/stream-upload"}),
        json!({"paths": ["/upload"]}),
    );
    setup.service_and_route(
        "down",
        json!({"path": "/bytes"}),
        json!({"paths": ["/download"]}),
    );

    let started = Instant::now();
    let upload = send(
        setup
            .proxy(Method::POST, "/upload")
            .header("Content-Type", "application/octet-stream")
            .body(reqwest::blocking::Body::sized(
                Generated { remaining: BIG },
                BIG,
            )),
    );
    assert_eq!(
        upload.expect_json(200),
        json!({"received_bytes": BIG}),
        "the whole upload must arrive\n{upload}"
    );
    let chunked = send(
        setup
            .proxy(Method::POST, "/upload")
            .body(reqwest::blocking::Body::new(Generated {
                remaining: BIG / 4,
            })),
    );
    assert_eq!(
        chunked.expect_json(200),
        json!({"received_bytes": BIG / 4}),
        "a chunked upload too\n{chunked}"
    );

    let mut response = setup
        .proxy(Method::GET, &format!("/download/{BIG}"))
        .send()
        .expect("the download starts");
    assert_eq!(response.status(), 200);
    let received = std::io::copy(&mut response, &mut std::io::sink()).expect("the whole download");
    assert_eq!(received, BIG, "the whole download must arrive");
    eprintln!("400 MiB through the proxy in {:?}", started.elapsed());

    let pid = setup.gateway.pid().expect("the gateway is running");
    if let Some(peak) = e2e::peak_rss_bytes(pid) {
        eprintln!("the gateway's peak RSS: {} MiB", peak >> 20);
        assert!(
            peak < MEMORY_LIMIT,
            "the gateway's peak RSS was {} MiB moving {} MiB each way: bodies must stream",
            peak >> 20,
            BIG >> 20
        );
    }
}
