//! Router-level tests: matching rules, precedence, build filtering and the
//! upstream URI table (Kong's `router_path_handling_tests` fixture, v0 rows).

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use schemas::model::{ForeignKey, Route, Service};
use uuid::Uuid;

use super::*;

// ---------------------------------------------------------------- helpers

fn route(id: u128) -> Route {
    Route {
        id: Uuid::from_u128(id),
        name: None,
        protocols: strings(&["http", "https"]).unwrap_or_default(),
        methods: None,
        hosts: None,
        paths: None,
        headers: None,
        snis: None,
        strip_path: true,
        preserve_host: false,
        regex_priority: 0,
        path_handling: "v0".to_owned(),
        https_redirect_status_code: 426,
        request_buffering: true,
        response_buffering: true,
        service: None,
        tags: None,
        created_at: None,
        updated_at: None,
    }
}

fn service(id: u128, path: Option<&str>, enabled: bool) -> Service {
    Service {
        id: Uuid::from_u128(id),
        name: None,
        protocol: "http".to_owned(),
        host: "upstream.test".to_owned(),
        port: 80,
        path: path.map(str::to_owned),
        retries: 5,
        connect_timeout: 60_000,
        write_timeout: 60_000,
        read_timeout: 60_000,
        enabled,
        tls_verify: None,
        tls_verify_depth: None,
        tags: None,
        created_at: None,
        updated_at: None,
    }
}

fn strings(values: &[&str]) -> Option<Vec<String>> {
    Some(values.iter().map(|v| (*v).to_owned()).collect())
}

fn paths(id: u128, values: &[&str]) -> Route {
    Route {
        paths: strings(values),
        ..route(id)
    }
}

fn hosts(id: u128, values: &[&str]) -> Route {
    Route {
        hosts: strings(values),
        ..route(id)
    }
}

fn header_map(pairs: &[(&str, &[&str])]) -> Option<BTreeMap<String, Vec<String>>> {
    Some(
        pairs
            .iter()
            .map(|(name, values)| ((*name).to_owned(), strings(values).unwrap_or_default()))
            .collect(),
    )
}

fn build(routes: Vec<Route>) -> Router {
    build_with_services(routes, Vec::new())
}

fn build_with_services(routes: Vec<Route>, services: Vec<Service>) -> Router {
    try_build(routes, services).expect("router builds")
}

fn try_build(routes: Vec<Route>, services: Vec<Service>) -> Result<Router, RouterError> {
    let routes: Vec<Arc<Route>> = routes.into_iter().map(Arc::new).collect();
    let services = services.into_iter().map(|s| (s.id, Arc::new(s))).collect();
    Router::build(&routes, &services)
}

/// An owned request, from which a [`RequestInfo`] is borrowed.
struct TestRequest {
    method: &'static str,
    host: String,
    port: u16,
    path: String,
    headers: HeaderMap,
    tls: bool,
    sni: Option<String>,
}

fn get(host: &str, path: &str) -> TestRequest {
    TestRequest {
        method: "GET",
        host: host.to_owned(),
        port: 8000,
        path: path.to_owned(),
        headers: HeaderMap::new(),
        tls: false,
        sni: None,
    }
}

impl TestRequest {
    fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }

    fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("valid name");
        let value = HeaderValue::from_str(value).expect("valid value");
        self.headers.append(name, value);
        self
    }

    fn tls(mut self, sni: Option<&str>) -> Self {
        self.tls = true;
        self.sni = sni.map(str::to_owned);
        self
    }

    fn info(&self) -> RequestInfo<'_> {
        RequestInfo {
            method: self.method,
            host: &self.host,
            port: self.port,
            path: &self.path,
            headers: &self.headers,
            tls: self.tls,
            sni: self.sni.as_deref(),
        }
    }
}

/// The low 64 bits of the matched route's id (tests use small ids).
fn matched(router: &Router, request: &TestRequest) -> Option<u128> {
    router.find(&request.info()).map(|m| m.route.id.as_u128())
}

fn find(router: &Router, request: &TestRequest) -> RouteMatch {
    router.find(&request.info()).expect("a route matches")
}

// ------------------------------------------------------------ path rules

#[test]
fn prefix_path_is_a_plain_character_prefix() {
    let router = build(vec![paths(1, &["/foo"])]);
    for path in ["/foo", "/foobar", "/foo/bar", "/foo/"] {
        assert_eq!(matched(&router, &get("a.test", path)), Some(1), "{path}");
    }
    for path in ["/fo", "/", "/bar/foo", "/FOO"] {
        assert_eq!(matched(&router, &get("a.test", path)), None, "{path}");
    }
}

#[test]
fn paths_match_after_normalization() {
    let router = build(vec![paths(1, &["/foo/bar"])]);
    for path in [
        "/foo/./bar",
        "/x/../foo/bar",
        "/%66oo/bar",
        "//foo//bar",
        "/foo/%2E/bar",
    ] {
        let m = find(&router, &get("a.test", path));
        assert_eq!(m.normalized_path, "/foo/bar", "{path}");
    }
    assert_eq!(matched(&router, &get("a.test", "/foo%2Fbar")), None);
    assert_eq!(
        matched(&router, &get("a.test", "/foo/baz/../../foo/bar")),
        Some(1)
    );
}

#[test]
fn regex_path_is_anchored_at_the_start_only() {
    let router = build(vec![
        paths(1, &[r"~/users/\d+"]),
        paths(2, &[r"~/items/\d+$"]),
    ]);
    assert_eq!(
        matched(&router, &get("a.test", "/users/12/profile")),
        Some(1)
    );
    assert_eq!(matched(&router, &get("a.test", "/api/users/12")), None);
    assert_eq!(matched(&router, &get("a.test", "/items/12")), Some(2));
    assert_eq!(matched(&router, &get("a.test", "/items/12/x")), None);
}

#[test]
fn regex_match_is_the_matched_prefix() {
    let router = build(vec![paths(1, &[r"~/users/\d+"])]);
    let m = find(&router, &get("a.test", "/users/42/profile"));
    assert_eq!(m.matched_prefix.as_deref(), Some("/users/42"));
    assert_eq!(m.captures, UriCaptures::default());
}

#[test]
fn regex_captures_named_in_both_syntaxes_and_positional() {
    let router = build(vec![paths(
        1,
        &[r"~/users/(?<id>\d+)/(?P<action>\w+)(/(\w+))?"],
    )]);
    let m = find(&router, &get("a.test", "/users/7/edit"));
    let named: BTreeMap<String, String> = [("id", "7"), ("action", "edit")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    assert_eq!(m.captures.named, named);
    assert_eq!(m.captures.unnamed, ["7", "edit", "", ""]);

    let m = find(&router, &get("a.test", "/users/7/edit/now"));
    assert_eq!(m.captures.unnamed, ["7", "edit", "/now", "now"]);
}

#[test]
fn a_route_with_several_paths_matches_any_of_them() {
    let router = build(vec![paths(1, &["/a", "/bb", r"~/c(\d)"])]);
    assert_eq!(
        find(&router, &get("h", "/a/x")).matched_prefix.as_deref(),
        Some("/a")
    );
    assert_eq!(
        find(&router, &get("h", "/bb")).matched_prefix.as_deref(),
        Some("/bb")
    );
    let m = find(&router, &get("h", "/c5/x"));
    assert_eq!(m.matched_prefix.as_deref(), Some("/c5"));
    assert_eq!(m.captures.unnamed, ["5"]);
    assert_eq!(matched(&router, &get("h", "/d")), None);
}

#[test]
fn regexes_of_one_route_are_tried_in_configured_order() {
    let router = build(vec![paths(
        1,
        &[r"~/x/(?<first>\d+)", r"~/x/(?<second>\d+)"],
    )]);
    let m = find(&router, &get("h", "/x/1"));
    assert!(m.captures.named.contains_key("first"));
}

// ------------------------------------------------------------ host rules

#[test]
fn exact_host_is_case_insensitive_and_ignores_the_port() {
    let router = build(vec![hosts(1, &["Domain-1.org", "domain-2.org"])]);
    for host in [
        "domain-1.org",
        "DOMAIN-1.ORG",
        "domain-1.org:80",
        "domain-2.org:1234",
    ] {
        assert_eq!(matched(&router, &get(host, "/")), Some(1), "{host}");
    }
    for host in ["domain-3.org", "www.domain-1.org", ""] {
        assert_eq!(matched(&router, &get(host, "/")), None, "{host}");
    }
}

#[test]
fn host_with_port_requires_that_port() {
    let router = build(vec![hosts(1, &["domain-3.org:321"])]);
    assert_eq!(matched(&router, &get("domain-3.org:321", "/")), Some(1));
    assert_eq!(matched(&router, &get("domain-3.org:123", "/")), None);
    // Without a port in the Host header, the listener port counts.
    assert_eq!(
        matched(&router, &get("domain-3.org", "/").port(321)),
        Some(1)
    );
    assert_eq!(matched(&router, &get("domain-3.org", "/")), None);
}

#[test]
fn wildcard_hosts_match_suffix_and_prefix() {
    let router = build(vec![hosts(1, &["*.example.com"]), hosts(2, &["example.*"])]);
    assert_eq!(matched(&router, &get("a.example.com", "/")), Some(1));
    assert_eq!(matched(&router, &get("A.B.Example.com:8000", "/")), Some(1));
    assert_eq!(matched(&router, &get("example.org", "/")), Some(2));
    assert_eq!(matched(&router, &get("example.co.uk", "/")), Some(2));
    assert_eq!(matched(&router, &get("notexample.com", "/")), None);
}

#[test]
fn wildcard_host_with_port() {
    let router = build(vec![hosts(1, &["*.example.com:8443"])]);
    assert_eq!(matched(&router, &get("a.example.com:8443", "/")), Some(1));
    assert_eq!(matched(&router, &get("a.example.com:8000", "/")), None);
}

#[test]
fn ipv6_hosts() {
    let router = build(vec![hosts(1, &["[::1]:8000"]), hosts(2, &["[::2]"])]);
    assert_eq!(matched(&router, &get("[::1]:8000", "/")), Some(1));
    assert_eq!(matched(&router, &get("[::1]:9000", "/")), None);
    assert_eq!(matched(&router, &get("[::2]:9000", "/")), Some(2));
}

#[test]
fn a_pathless_route_matches_without_a_host_header_only_if_hostless() {
    let router = build(vec![paths(1, &["/my-route"]), hosts(2, &["a.test"])]);
    assert_eq!(matched(&router, &get("", "/my-route")), Some(1));
    assert_eq!(matched(&router, &get("", "/")), None);
}

// ---------------------------------------------------- method/header/sni

#[test]
fn methods_match_exactly() {
    let router = build(vec![Route {
        methods: strings(&["GET", "POST"]),
        ..route(1)
    }]);
    assert_eq!(matched(&router, &get("h", "/")), Some(1));
    assert_eq!(matched(&router, &get("h", "/").method("POST")), Some(1));
    assert_eq!(matched(&router, &get("h", "/").method("PUT")), None);
    assert_eq!(matched(&router, &get("h", "/").method("get")), None);
}

#[test]
fn header_names_and_values_are_case_insensitive() {
    let router = build(vec![Route {
        headers: header_map(&[("Location", &["My-Location-1", "my-location-2"])]),
        ..route(1)
    }]);
    for value in ["my-location-1", "MY-LOCATION-1", "My-Location-2"] {
        let request = get("h", "/").header("location", value);
        assert_eq!(matched(&router, &request), Some(1), "{value}");
    }
    assert_eq!(
        matched(&router, &get("h", "/").header("location", "elsewhere")),
        None
    );
    assert_eq!(matched(&router, &get("h", "/")), None);
}

#[test]
fn headers_are_anded_across_names_and_ored_across_values() {
    let router = build(vec![Route {
        headers: header_map(&[("location", &["my-location-1"]), ("version", &["v1", "v2"])]),
        ..route(1)
    }]);
    let both = get("h", "/")
        .header("location", "my-location-1")
        .header("version", "v2");
    assert_eq!(matched(&router, &both), Some(1));
    let one = get("h", "/").header("location", "my-location-1");
    assert_eq!(matched(&router, &one), None);
    let wrong = get("h", "/")
        .header("location", "my-location-1")
        .header("version", "v3");
    assert_eq!(matched(&router, &wrong), None);
}

#[test]
fn any_of_several_request_header_values_may_match() {
    let router = build(vec![Route {
        headers: header_map(&[("version", &["v2"])]),
        ..route(1)
    }]);
    let request = get("h", "/")
        .header("version", "v1")
        .header("version", "V2");
    assert_eq!(matched(&router, &request), Some(1));
}

#[test]
fn header_regex_values_are_case_insensitive_and_unanchored() {
    let router = build(vec![Route {
        headers: header_map(&[(
            "user_agent",
            &[r"~*windows|linux|os\s+x\s*[\d\._]+|solaris|bsd"],
        )]),
        ..route(1)
    }]);
    let mac = get("h", "/").header(
        "user-agent",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)",
    );
    assert_eq!(matched(&router, &mac), Some(1));
    let linux = get("h", "/").header("User-Agent", "X11; LINUX x86_64");
    assert_eq!(matched(&router, &linux), Some(1));
    let other = get("h", "/").header("user-agent", "curl/8.0");
    assert_eq!(matched(&router, &other), None);
}

#[test]
fn snis_only_constrain_tls_requests() {
    let router = build(vec![Route {
        snis: strings(&["Secure.test."]),
        paths: strings(&["/s"]),
        ..route(1)
    }]);
    assert_eq!(matched(&router, &get("h", "/s")), Some(1));
    assert_eq!(
        matched(&router, &get("h", "/s").tls(Some("secure.test"))),
        Some(1)
    );
    assert_eq!(
        matched(&router, &get("h", "/s").tls(Some("other.test"))),
        None
    );
    assert_eq!(matched(&router, &get("h", "/s").tls(None)), None);
}

// ------------------------------------------------------------- protocols

#[test]
fn https_only_route_on_a_plain_request_needs_https() {
    let router = build(vec![Route {
        protocols: strings(&["https"]).unwrap_or_default(),
        https_redirect_status_code: 301,
        ..paths(1, &["/secure"])
    }]);
    let plain = find(&router, &get("h", "/secure"));
    assert!(plain.needs_https);
    assert_eq!(plain.route.https_redirect_status_code, 301);
    assert!(!find(&router, &get("h", "/secure").tls(Some("h"))).needs_https);
}

#[test]
fn http_only_route_still_matches_tls_requests_like_kong() {
    let router = build(vec![Route {
        protocols: strings(&["http"]).unwrap_or_default(),
        ..paths(1, &["/"])
    }]);
    let m = find(&router, &get("h", "/").tls(Some("h")));
    assert!(!m.needs_https);
    assert!(!find(&router, &get("h", "/")).needs_https);
}

#[test]
fn https_only_route_wins_over_a_lower_ranked_http_route() {
    let router = build(vec![
        Route {
            protocols: strings(&["https"]).unwrap_or_default(),
            ..paths(1, &["/api/v1"])
        },
        paths(2, &["/api"]),
    ]);
    let m = find(&router, &get("h", "/api/v1/users"));
    assert_eq!(m.route.id.as_u128(), 1);
    assert!(m.needs_https);
}

#[test]
fn stream_routes_are_left_out_and_grpc_routes_kept() {
    let router = build(vec![
        Route {
            protocols: strings(&["tcp", "tls"]).unwrap_or_default(),
            ..paths(1, &["/"])
        },
        Route {
            protocols: strings(&["grpc", "grpcs"]).unwrap_or_default(),
            ..paths(2, &["/grpc"])
        },
    ]);
    assert_eq!(matched(&router, &get("h", "/")), None);
    assert_eq!(matched(&router, &get("h", "/grpc.Service/Method")), Some(2));
}

// ------------------------------------------------------------ build rules

#[test]
fn routes_of_disabled_services_are_left_out() {
    let with_service = |id: u128, path: &str, service_id: u128| Route {
        service: Some(ForeignKey {
            id: Uuid::from_u128(service_id),
        }),
        ..paths(id, &[path])
    };
    let router = build_with_services(
        vec![
            with_service(1, "/off", 100),
            with_service(2, "/on", 200),
            paths(3, &["/none"]),
        ],
        vec![service(100, None, false), service(200, None, true)],
    );
    assert_eq!(matched(&router, &get("h", "/off")), None);
    let on = find(&router, &get("h", "/on"));
    assert_eq!(on.service_id, Some(Uuid::from_u128(200)));
    let serviceless = find(&router, &get("h", "/none"));
    assert_eq!(serviceless.service_id, None);
}

#[test]
fn a_disabled_service_does_not_shadow_lower_routes() {
    let router = build_with_services(
        vec![
            Route {
                service: Some(ForeignKey {
                    id: Uuid::from_u128(100),
                }),
                ..paths(1, &["/api/v1"])
            },
            paths(2, &["/api"]),
        ],
        vec![service(100, None, false)],
    );
    assert_eq!(matched(&router, &get("h", "/api/v1")), Some(2));
}

#[test]
fn missing_service_is_an_error() {
    let route = Route {
        service: Some(ForeignKey {
            id: Uuid::from_u128(9),
        }),
        ..paths(1, &["/"])
    };
    let error = try_build(vec![route], Vec::new()).unwrap_err();
    assert!(
        matches!(error, RouterError::MissingService { .. }),
        "{error}"
    );
}

#[test]
fn invalid_regexes_are_errors() {
    let lookaround = try_build(vec![paths(1, &["~/(?=x)"])], Vec::new()).unwrap_err();
    assert!(
        matches!(lookaround, RouterError::InvalidPathRegex { .. }),
        "{lookaround}"
    );
    let header = Route {
        headers: header_map(&[("x", &["~*("])]),
        ..route(2)
    };
    let error = try_build(vec![header], Vec::new()).unwrap_err();
    assert!(
        matches!(error, RouterError::InvalidHeaderRegex { .. }),
        "{error}"
    );
}

#[test]
fn empty_router_matches_nothing() {
    let router = Router::default();
    assert_eq!(matched(&router, &get("h", "/")), None);
    assert_eq!(matched(&build(Vec::new()), &get("h", "/")), None);
}

#[test]
fn router_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Router>();
    assert_send_sync::<RouteMatch>();
}

// ------------------------------------------------------------ precedence

#[test]
fn host_and_path_beat_path_alone() {
    let router = build(vec![
        paths(9, &["/route-4/with/a/longer/prefix"]),
        Route {
            hosts: strings(&["domain-1.org"]),
            ..paths(1, &["/route-4"])
        },
    ]);
    let request = get("domain-1.org", "/route-4/with/a/longer/prefix");
    assert_eq!(matched(&router, &request), Some(1));
    assert_eq!(
        matched(&router, &get("other.org", "/route-4/with/a/longer/prefix")),
        Some(9)
    );
}

#[test]
fn more_headers_beat_a_longer_path() {
    let router = build(vec![
        Route {
            headers: header_map(&[("version", &["v1"])]),
            ..paths(1, &["/my-route/hello"])
        },
        Route {
            headers: header_map(&[("version", &["v1"]), ("location", &["us-east"])]),
            ..paths(2, &["/my-route"])
        },
    ]);
    let request = get("h", "/my-route/hello")
        .header("version", "v1")
        .header("location", "us-east");
    assert_eq!(matched(&router, &request), Some(2));
    let fewer = get("h", "/my-route/hello").header("version", "v1");
    assert_eq!(matched(&router, &fewer), Some(1));
}

#[test]
fn regex_beats_prefix_even_on_an_exact_prefix_hit() {
    let router = build(vec![paths(9, &["/my-route"]), paths(1, &[r"~/my-route"])]);
    let m = find(&router, &get("h", "/my-route"));
    assert_eq!(m.route.id.as_u128(), 1);
}

#[test]
fn higher_regex_priority_wins() {
    let router = build(vec![
        Route {
            regex_priority: 5,
            ..paths(1, &[r"~/api/.*"])
        },
        Route {
            regex_priority: 10,
            ..paths(2, &[r"~/api/v\d+"])
        },
        Route {
            regex_priority: -1,
            ..paths(9, &[r"~/api"])
        },
    ]);
    assert_eq!(matched(&router, &get("h", "/api/v1")), Some(2));
    assert_eq!(matched(&router, &get("h", "/api/x")), Some(1));
    assert_eq!(matched(&router, &get("h", "/apix")), Some(9));
}

#[test]
fn negative_regex_priority_ranks_below_zero() {
    let router = build(vec![
        Route {
            regex_priority: -5,
            ..paths(9, &[r"~/a"])
        },
        paths(1, &[r"~/a"]),
    ]);
    assert_eq!(matched(&router, &get("h", "/a")), Some(1));
}

#[test]
fn regex_priority_is_ignored_for_prefix_paths() {
    let router = build(vec![
        Route {
            regex_priority: 100,
            ..paths(9, &["/a"])
        },
        paths(1, &["/a/b"]),
    ]);
    assert_eq!(matched(&router, &get("h", "/a/b/c")), Some(1));
}

#[test]
fn longest_prefix_wins() {
    let router = build(vec![
        paths(1, &["/my-route/hello"]),
        paths(9, &["/my-route"]),
        paths(5, &["/"]),
    ]);
    assert_eq!(matched(&router, &get("h", "/my-route/hello")), Some(1));
    assert_eq!(
        matched(&router, &get("h", "/my-route/hello/world")),
        Some(1)
    );
    assert_eq!(matched(&router, &get("h", "/my-route")), Some(9));
    assert_eq!(matched(&router, &get("h", "/my-route/world")), Some(9));
}

#[test]
fn each_path_of_a_route_competes_with_its_own_length() {
    // Kong's split_routes_and_services_by_path: `/a` does not borrow the
    // length of `/bbbbbbb`, so `/a/bb` wins on `/a/bb/foobar`.
    let router = build(vec![paths(9, &["/a", "/bbbbbbb"]), paths(1, &["/a/bb"])]);
    assert_eq!(matched(&router, &get("h", "/a/bb/foobar")), Some(1));
    assert_eq!(matched(&router, &get("h", "/bbbbbbb")), Some(9));
}

#[test]
fn port_specific_host_beats_a_port_less_one() {
    // Whichever way the ids are ordered.
    for (specific, portless) in [(1, 9), (9, 1)] {
        let router = build(vec![
            hosts(portless, &["domain-1.org", "domain-2.org"]),
            hosts(specific, &["domain-1.org:321", "domain-2.org"]),
        ]);
        assert_eq!(
            matched(&router, &get("domain-1.org:321", "/")),
            Some(specific)
        );
        assert_eq!(
            matched(&router, &get("domain-1.org:322", "/")),
            Some(portless)
        );
        // Through its port-less host the port route is an ordinary tie.
        assert_eq!(matched(&router, &get("domain-2.org", "/")), Some(9));
    }
}

#[test]
fn ties_go_to_the_higher_route_id() {
    let router = build(vec![
        paths(3, &["/same"]),
        paths(7, &["/same"]),
        paths(5, &["/same"]),
    ]);
    assert_eq!(matched(&router, &get("h", "/same")), Some(7));
    // Ids compare as UUIDs, byte by byte.
    let high = Uuid::parse_str("f0000000-0000-0000-0000-000000000000")
        .unwrap()
        .as_u128();
    let router = build(vec![paths(7, &["/same"]), paths(high, &["/same"])]);
    assert_eq!(matched(&router, &get("h", "/same")), Some(high));
}

#[test]
fn root_path_is_a_catch_all() {
    let router = build(vec![paths(1, &["/"]), paths(2, &["/my-route"])]);
    assert_eq!(matched(&router, &get("h", "/foobar/baz")), Some(1));
    assert_eq!(matched(&router, &get("h", "/")), Some(1));
    assert_eq!(matched(&router, &get("h", "/my-route/hello")), Some(2));
}

#[test]
fn method_only_route_does_not_supersede_a_prefix_route() {
    let method_only = Route {
        methods: strings(&["GET"]),
        ..route(9)
    };
    let router = build(vec![method_only, paths(1, &["/example"])]);
    assert_eq!(matched(&router, &get("h", "/example")), Some(1));
    assert_eq!(matched(&router, &get("h", "/example/status/200")), Some(1));
    assert_eq!(matched(&router, &get("h", "/other")), Some(9));
}

#[test]
fn method_only_route_does_not_supersede_a_wildcard_host_route() {
    // Equal priority (one field each, no plain-host bit): the higher id wins,
    // exactly as in Kong's test.
    let method_only = Route {
        methods: strings(&["GET"]),
        ..route(0x8101)
    };
    let router = build(vec![method_only, hosts(0x8102, &["domain.*"])]);
    assert_eq!(matched(&router, &get("nothing.com", "/")), Some(0x8101));
    assert_eq!(matched(&router, &get("domain.com", "/")), Some(0x8102));
}

#[test]
fn plain_host_beats_wildcard_host() {
    let router = build(vec![
        Route {
            hosts: strings(&["*.example.com"]),
            ..paths(9, &["/a/much/longer/path"])
        },
        Route {
            hosts: strings(&["api.example.com"]),
            ..paths(1, &["/"])
        },
    ]);
    assert_eq!(
        matched(&router, &get("api.example.com", "/a/much/longer/path")),
        Some(1)
    );
    assert_eq!(
        matched(&router, &get("www.example.com", "/a/much/longer/path")),
        Some(9)
    );
}

#[test]
fn more_fields_beat_a_longer_prefix() {
    let router = build(vec![
        paths(9, &["/users/profile/settings"]),
        Route {
            methods: strings(&["GET"]),
            ..paths(1, &["/users"])
        },
    ]);
    assert_eq!(
        matched(&router, &get("h", "/users/profile/settings")),
        Some(1)
    );
    let post = get("h", "/users/profile/settings").method("POST");
    assert_eq!(matched(&router, &post), Some(9));
}

#[test]
fn half_matching_regex_routes_do_not_supersede_each_other() {
    let router = build(vec![
        Route {
            methods: strings(&["GET"]),
            ..paths(1, &[r"~/users/\d+/profile"])
        },
        Route {
            methods: strings(&["POST"]),
            ..paths(2, &[r"~/users/\d*/profile"])
        },
    ]);
    assert_eq!(matched(&router, &get("h", "/users/123/profile")), Some(1));
    let post = get("h", "/users/123/profile").method("POST");
    assert_eq!(matched(&router, &post), Some(2));
}

#[test]
fn priority_layout_follows_kong() {
    use super::matcher::priority;
    let regex = Route {
        regex_priority: 3,
        ..route(1)
    };
    assert_eq!(priority(&route(1), Some("/abc")), (1 << 61) | 4);
    assert_eq!(
        priority(&regex, Some("~/x")),
        (1 << 61) | (1 << 51) | ((3 + (1u64 << 31)) << 19)
    );
    let everything = Route {
        methods: strings(&["GET"]),
        hosts: strings(&["a.test"]),
        headers: header_map(&[("a", &["1"]), ("b", &["2"])]),
        snis: strings(&["a.test"]),
        ..route(1)
    };
    assert_eq!(
        priority(&everything, Some("/ab")),
        (5 << 61) | (1 << 60) | (2 << 52) | 3
    );
}

// ------------------------------------------------------------ scalability

#[test]
fn lookups_only_consider_plausible_candidates() {
    let mut routes = Vec::new();
    for i in 0..1000u128 {
        routes.push(Route {
            hosts: strings(&[&format!("host-{i}.test")]),
            ..paths(10_000 + i, &["/", &format!("/api/{i}")])
        });
        routes.push(paths(20_000 + i, &[&format!("/svc-{i}/v1")]));
    }
    routes.push(paths(30_000, &[r"~/regex/\d+"]));
    routes.push(paths(30_001, &[r"~/(a|b)/\d+"]));
    let router = build(routes);

    let request = get("host-500.test", "/api/500/items");
    assert_eq!(matched(&router, &request), Some(10_500));
    let mut scratch = Vec::new();
    let candidates = router
        .index
        .candidates("host-500.test", "/api/500/items", &mut scratch);
    // `/api/500` and `/` of host-500, plus the opaque regex `~/(a|b)/...`;
    // `~/regex/...` is indexed under `/regex/`.
    assert_eq!(candidates.count(), 3);

    let request = get("unknown.test", "/svc-999/v1/x");
    assert_eq!(matched(&router, &request), Some(20_999));
    let candidates = router
        .index
        .candidates("unknown.test", "/svc-999/v1/x", &mut scratch);
    assert_eq!(candidates.count(), 2);
}

#[test]
fn regex_routes_are_indexed_by_their_literal_prefix() {
    let mut routes: Vec<Route> = (0..1000u128)
        .map(|i| paths(i, &[&format!(r"~/re-{i}/(\d+)$")]))
        .collect();
    routes.push(paths(5000, &[r"~/(?<any>[\w-]+)/x"]));
    let router = build(routes);
    assert_eq!(matched(&router, &get("h", "/re-7/42")), Some(7));
    assert_eq!(matched(&router, &get("h", "/re-7/x")), Some(5000));
    let mut scratch = Vec::new();
    // `~/re-7/...` (key `/re-7/`) and `~/(?<any>...)` (key `/`).
    let candidates = router.index.candidates("h", "/re-7/42", &mut scratch);
    assert_eq!(candidates.count(), 2);
}

#[test]
fn top_level_alternation_is_unanchored_like_kong() {
    // Kong prepends `^` without a group, so `^/foo|/bar` finds `/bar`
    // anywhere; such regexes must stay out of the literal-prefix index.
    let router = build(vec![paths(1, &["~/foo|/bar"])]);
    assert_eq!(matched(&router, &get("h", "/foo/x")), Some(1));
    assert_eq!(matched(&router, &get("h", "/x/bar")), Some(1));
    assert_eq!(matched(&router, &get("h", "/x/foo")), None);
}

#[test]
#[ignore = "timing report; run with --ignored --nocapture"]
fn lookup_timing_with_thousands_of_routes() {
    let by_host = (0..1000u128)
        .map(|i| Route {
            hosts: strings(&[&format!("host-{i}.test")]),
            ..paths(i, &[&format!("/api/{i}"), &format!(r"~/re/{i}/(\d+)")])
        })
        .collect();
    report(
        "1000 hosts, prefix + regex each",
        by_host,
        get("host-999.test", "/re/999/42"),
    );

    let prefixes = (0..1000u128)
        .map(|i| paths(i, &[&format!("/svc-{i}/v1")]))
        .collect();
    report(
        "1000 host-less prefixes",
        prefixes,
        get("h", "/svc-0/v1/items"),
    );

    let regexes = (0..1000u128)
        .map(|i| paths(i, &[&format!(r"~/re-{i}/(\d+)$")]))
        .collect();
    report(
        "1000 host-less regexes (worst)",
        regexes,
        get("h", "/re-0/42"),
    );
}

fn report(label: &str, routes: Vec<Route>, request: TestRequest) {
    let router = build(routes);
    let rounds = 10_000u32;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        assert!(router.find(&request.info()).is_some());
    }
    println!("{label}: {:?} per lookup", started.elapsed() / rounds);
}

// ------------------------------------------------------------ upstream URI

/// Routes `request_path` through a single route and returns the upstream
/// path for `service_path`. `route_path: None` makes a host-only route.
fn upstream_for(
    service_path: &str,
    route_path: Option<&str>,
    strip_path: bool,
    request_path: &str,
) -> String {
    let route = Route {
        hosts: strings(&["upstream.test"]),
        paths: route_path.and_then(|p| strings(&[p])),
        strip_path,
        ..route(1)
    };
    let router = build(vec![route]);
    let m = find(&router, &get("upstream.test", request_path));
    upstream_path(Some(service_path), &m, m.route.strip_path)
}

/// One test per row of the reference table; `any` rows run both ways.
macro_rules! upstream_rows {
    ($($name:ident: $service:expr, $route:expr, $strip:tt, $request:expr => $expected:expr;)*) => {
        $(
            #[test]
            fn $name() {
                for strip in upstream_rows!(@strip $strip) {
                    let actual = upstream_for($service, $route, strip, $request);
                    assert_eq!(actual, $expected, "strip_path={strip}");
                }
            }
        )*
    };
    (@strip any) => { [false, true] };
    (@strip $strip:literal) => { [$strip] };
}

upstream_rows! {
    row_01_root_service_root_route: "/", Some("/"), any, "/route/req" => "/route/req";
    row_02_root_service_no_strip: "/", Some("/route"), false, "/routereq" => "/routereq";
    row_03_root_service_strip_whole_path: "/", Some("/route"), true, "/route" => "/";
    row_04_root_service_strip_trailing_slash: "/", Some("/route"), true, "/route/" => "/";
    row_05_root_service_strip_mid_segment: "/", Some("/route"), true, "/routereq" => "/req";
    row_06_root_service_slash_route: "/", Some("/route/"), true, "/route/req" => "/req";
    row_07_bare_service_no_strip: "/srv", Some("/rou"), false, "/roureq" => "/srv/roureq";
    row_08_bare_service_strip: "/srv", Some("/rou"), true, "/roureq" => "/srv/req";
    row_09_slash_service_strip_whole_path: "/srv/", Some("/rou"), true, "/rou" => "/srv";
    row_10_service_root_route_root_request: "/service", Some("/"), any, "/" => "/service";
    row_11_service_root_route: "/service", Some("/"), any, "/route" => "/service/route";
    row_12_service_no_strip_trailing_slash: "/service", Some("/route"), false, "/route/" => "/service/route/";
    row_13_service_strip_whole_path: "/service", Some("/route"), true, "/route" => "/service";
    row_14_service_strip_keeps_trailing_slash: "/service", Some("/route"), true, "/route/" => "/service/";
    row_15_service_strip_mid_segment: "/service", Some("/route"), true, "/routereq" => "/service/req";
    row_16_slash_service_strip_whole_path: "/service/", Some("/route"), true, "/route" => "/service";
    row_17_slash_service_slash_route: "/service/", Some("/route/"), true, "/route/req" => "/service/req";
    row_18_host_only_route: "/service", None, any, "/route/" => "/service/route/";
    row_19_encoded_dot_is_dropped: "/service", Some("/route"), true, "/route%2E/req" => "/service/req";
    row_20_dot_dot_is_dropped: "/service", Some("/route"), true, "/route../req" => "/service/req";
    row_21_encoded_dot_kept_without_strip: "/service", Some("/route"), false, "/route%2e/req" => "/service/route./req";
}

/// `(service.path, route path, strip_path values, request, expected)`.
type FixtureRow = (
    &'static str,
    Option<&'static str>,
    &'static [bool],
    &'static str,
    &'static str,
);

/// Every row of Kong's spec/fixtures/router_path_handling_tests.lua, in its
/// current form (v0 only; earlier versions had since-corrected v0 rows such
/// as `/service/` + `/` + strip on `/` giving `/service`).
#[test]
fn kong_path_handling_fixture() {
    const ANY: &[bool] = &[false, true];
    const STRIP: &[bool] = &[true];
    const KEEP: &[bool] = &[false];
    #[rustfmt::skip]
    let rows: &[FixtureRow] = &[
        ("/", Some("/"), ANY, "/", "/"),
        ("/", Some("/"), ANY, "/route", "/route"),
        ("/", Some("/"), ANY, "/route/", "/route/"),
        ("/", Some("/"), ANY, "/routereq", "/routereq"),
        ("/", Some("/"), ANY, "/route/req", "/route/req"),
        ("/", Some("/route"), KEEP, "/route", "/route"),
        ("/", Some("/route"), KEEP, "/route/", "/route/"),
        ("/", Some("/route"), KEEP, "/routereq", "/routereq"),
        ("/", Some("/route"), STRIP, "/route", "/"),
        ("/", Some("/route"), STRIP, "/route/", "/"),
        ("/", Some("/route"), STRIP, "/routereq", "/req"),
        ("/", Some("/route/"), KEEP, "/route/", "/route/"),
        ("/", Some("/route/"), KEEP, "/route/req", "/route/req"),
        ("/", Some("/route/"), STRIP, "/route/", "/"),
        ("/", Some("/route/"), STRIP, "/route/req", "/req"),
        ("/srv", Some("/rou"), KEEP, "/roureq", "/srv/roureq"),
        ("/srv", Some("/rou"), STRIP, "/roureq", "/srv/req"),
        ("/srv/", Some("/rou"), KEEP, "/rou", "/srv/rou"),
        ("/srv/", Some("/rou"), STRIP, "/rou", "/srv"),
        ("/service", Some("/"), ANY, "/", "/service"),
        ("/service", Some("/"), ANY, "/route", "/service/route"),
        ("/service", Some("/"), ANY, "/route/", "/service/route/"),
        ("/service", Some("/"), ANY, "/routereq", "/service/routereq"),
        ("/service", Some("/"), ANY, "/route/req", "/service/route/req"),
        ("/service", Some("/route"), KEEP, "/route", "/service/route"),
        ("/service", Some("/route"), KEEP, "/route/", "/service/route/"),
        ("/service", Some("/route"), KEEP, "/routereq", "/service/routereq"),
        ("/service", Some("/route"), STRIP, "/route", "/service"),
        ("/service", Some("/route"), STRIP, "/route/", "/service/"),
        ("/service", Some("/route"), STRIP, "/routereq", "/service/req"),
        ("/service", Some("/route/"), KEEP, "/route/", "/service/route/"),
        ("/service", Some("/route/"), KEEP, "/route/req", "/service/route/req"),
        ("/service", Some("/route/"), STRIP, "/route/", "/service/"),
        ("/service", Some("/route/"), STRIP, "/route/req", "/service/req"),
        ("/service/", Some("/"), ANY, "/route/", "/service/route/"),
        ("/service/", Some("/"), ANY, "/", "/service/"),
        ("/service/", Some("/"), ANY, "/route", "/service/route"),
        ("/service/", Some("/"), ANY, "/routereq", "/service/routereq"),
        ("/service/", Some("/"), ANY, "/route/req", "/service/route/req"),
        ("/service/", Some("/route"), KEEP, "/route", "/service/route"),
        ("/service/", Some("/route"), KEEP, "/route/", "/service/route/"),
        ("/service/", Some("/route"), KEEP, "/routereq", "/service/routereq"),
        ("/service/", Some("/route"), STRIP, "/route", "/service"),
        ("/service/", Some("/route"), STRIP, "/route/", "/service/"),
        ("/service/", Some("/route"), STRIP, "/routereq", "/service/req"),
        ("/service/", Some("/route/"), KEEP, "/route/", "/service/route/"),
        ("/service/", Some("/route/"), KEEP, "/route/req", "/service/route/req"),
        ("/service/", Some("/route/"), STRIP, "/route/", "/service/"),
        ("/service/", Some("/route/"), STRIP, "/route/req", "/service/req"),
        ("/", None, ANY, "/", "/"),
        ("/", None, ANY, "/route", "/route"),
        ("/", None, ANY, "/route/", "/route/"),
        ("/service", None, ANY, "/", "/service"),
        ("/service", None, ANY, "/route", "/service/route"),
        ("/service", None, ANY, "/route/", "/service/route/"),
        ("/service/", None, ANY, "/", "/service/"),
        ("/service/", None, ANY, "/route", "/service/route"),
        ("/service/", None, ANY, "/route/", "/service/route/"),
    ];
    for &(service_path, route_path, strips, request, expected) in rows {
        for &strip in strips {
            let actual = upstream_for(service_path, route_path, strip, request);
            assert_eq!(
                actual, expected,
                "service {service_path}, route {route_path:?}, strip {strip}, request {request}"
            );
        }
    }
}

#[test]
fn null_service_path_means_root() {
    let router = build(vec![paths(1, &["/route"])]);
    let m = find(&router, &get("h", "/route/req"));
    assert_eq!(upstream_path(None, &m, true), "/req");
    assert_eq!(upstream_path(None, &m, false), "/route/req");
}

#[test]
fn regex_strip_removes_the_whole_match() {
    let router = build(vec![paths(1, &[r"~/users/(?<id>\d+)"])]);
    let m = find(&router, &get("h", "/users/42/profile"));
    assert_eq!(upstream_path(Some("/svc"), &m, true), "/svc/profile");
    assert_eq!(
        upstream_path(Some("/svc"), &m, false),
        "/svc/users/42/profile"
    );
}

#[test]
fn upstream_path_is_reescaped() {
    let router = build(vec![paths(1, &["/route"])]);
    let m = find(&router, &get("h", "/route/a%20b/caf%C3%A9/x%2Fy/%ff"));
    assert_eq!(m.normalized_path, "/route/a b/café/x%2Fy/%FF");
    assert_eq!(
        upstream_path(Some("/service"), &m, true),
        "/service/a%20b/caf%C3%A9/x%2Fy/%FF"
    );
}

#[test]
fn forwarded_prefix_only_when_something_was_stripped() {
    let router = build(vec![
        paths(1, &["/route"]),
        paths(2, &["/"]),
        paths(3, &[r"~/re/\d+"]),
        hosts(4, &["host-only.test"]),
    ]);
    let prefix = find(&router, &get("h", "/route/x"));
    assert_eq!(forwarded_prefix(&prefix, true), Some("/route"));
    assert_eq!(forwarded_prefix(&prefix, false), None);
    let root = find(&router, &get("h", "/other"));
    assert_eq!(forwarded_prefix(&root, true), None);
    let regex = find(&router, &get("h", "/re/12/x"));
    assert_eq!(forwarded_prefix(&regex, true), Some("/re/12"));
    let host_only = find(&router, &get("host-only.test", "/x"));
    assert_eq!(forwarded_prefix(&host_only, true), None);
}
