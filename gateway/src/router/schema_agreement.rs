//! The route schema and the router agree: whatever route the schema accepts,
//! [`Router::build`] compiles, its header names are usable, and its hosts
//! match the requests they name. Were it otherwise, the Admin API would
//! store a route that the proxy's next snapshot fails on, and every later
//! change would silently stop applying.
//!
//! Random field values mix regex syntax, wildcards, ports and control
//! characters, so that many are refused and many accepted. The router fuzz
//! target checks the same property on whole configurations; its first
//! crash is kept here as [`fuzz_crash_be01aa2d_is_refused_by_the_schema`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use proptest::prelude::*;
use schemas::model::Route;
use schemas::EntityKind;
use serde_json::{json, Value};

use super::matcher::header_name;
use super::{RequestInfo, Router, RouterError};

/// The route the schema makes of `input` (given an id, as the store gives
/// one), or `None` if it refuses it.
fn accepted(mut input: Value) -> Option<Route> {
    if let Some(object) = input.as_object_mut() {
        object
            .entry("id")
            .or_insert_with(|| json!("00000000-0000-4000-8000-000000000001"));
    }
    let canonical = EntityKind::Route.validate(&input).ok()?;
    match serde_json::from_value(canonical) {
        Ok(route) => Some(route),
        Err(error) => panic!("a validated route deserializes: {error}"),
    }
}

fn build(route: Route) -> Result<Router, RouterError> {
    Router::build(&[Arc::new(route)], &HashMap::new())
}

/// Regex text, valid or not: pieces of regex syntax (some unbalanced, some
/// only valid with a flag, some near the size limit) strung together.
fn regex_text() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "a",
        "Z",
        "/",
        "-",
        ".",
        "(",
        ")",
        "(?:",
        "(?<id>",
        "(?P<n>",
        "(?i)",
        "(?=",
        "[a-z]",
        "[",
        "]",
        "^",
        "$",
        "|",
        "*",
        "+",
        "?",
        "{2,3}",
        "{",
        "}",
        r"\d",
        r"\w",
        r"\p{L}",
        r"\p{Greek}",
        r"\",
        r"\b",
        r"\x{110000}",
        "k{60000}",
        "(a{1000}){1000}",
        "é",
        "\0",
        " ",
    ]);
    prop::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        regex_text().prop_map(|pattern| format!("~/{pattern}")),
        regex_text().prop_map(|pattern| format!("~{pattern}")),
        r"/[a-z0-9./%~-]{0,10}",
        regex_text(),
    ]
}

/// Header names, about half of them valid.
fn header_name_text() -> impl Strategy<Value = String> {
    prop_oneof![r"[A-Za-z0-9_-]{1,8}", r"[A-Za-z0-9_\- \x00:.é]{0,6}"]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        regex_text().prop_map(|pattern| format!("~*{pattern}")),
        r"[a-zA-Z0-9 ~*(]{0,6}",
    ]
}

fn host() -> impl Strategy<Value = String> {
    let name = r"(\*\.)?[a-zA-Z0-9_-]{1,6}(\.[a-z0-9*_-]{1,5}){0,2}\.?(\.\*)?";
    let port = r"(:[0-9]{1,5}|:[0-9+a-z]{0,3})?";
    prop_oneof![
        (name, port).prop_map(|(name, port)| format!("{name}{port}")),
        r"\[::[0-9a-f]{1,4}\](:[0-9]{0,6})?",
        r"::[0-9a-f]{1,4}",
        r"[a-z0-9.*:\[\]+ \x00-]{0,10}",
    ]
}

fn headers() -> impl Strategy<Value = BTreeMap<String, Vec<String>>> {
    prop::collection::btree_map(
        header_name_text(),
        prop::collection::vec(header_value(), 0..3),
        0..3,
    )
}

/// Whether a plain request for `host` (its wildcard filled in) finds a
/// route in `router`.
fn finds_a_route(router: &Router, host: &str) -> bool {
    let host = host.replace('*', "x");
    let headers = http::HeaderMap::new();
    let info = RequestInfo {
        method: "GET",
        host: &host,
        port: 8000,
        path: "/",
        headers: &headers,
        tls: false,
        sni: None,
    };
    router.find(&info).is_some()
}

/// The property itself: if the schema accepts `input`, the router
/// compiles it.
fn assert_compiles_if_accepted(input: Value) {
    if let Some(route) = accepted(input.clone()) {
        if let Err(error) = build(route) {
            panic!("the schema accepted {input} but the router fails: {error}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_path_the_schema_accepts_compiles(path in path()) {
        assert_compiles_if_accepted(json!({"paths": [path]}));
    }

    #[test]
    fn every_header_the_schema_accepts_compiles(
        name in header_name_text(),
        values in prop::collection::vec(header_value(), 0..3),
    ) {
        assert_compiles_if_accepted(json!({"headers": {name: values}}));
    }

    #[test]
    fn every_route_the_schema_accepts_compiles(
        paths in prop::collection::vec(path(), 0..3),
        hosts in prop::collection::vec(host(), 0..3),
        headers in headers(),
        https_only in any::<bool>(),
    ) {
        let protocols = if https_only { json!(["https"]) } else { json!(["http", "https"]) };
        assert_compiles_if_accepted(json!({
            "paths": paths,
            "hosts": hosts,
            "headers": headers,
            "protocols": protocols,
        }));
    }

    #[test]
    fn accepted_header_names_are_usable(name in header_name_text()) {
        if accepted(json!({"headers": {name.clone(): ["v"]}})).is_some() {
            prop_assert!(header_name(&name).is_some(), "accepted {:?} cannot be looked up", name);
        }
    }

    #[test]
    fn accepted_hosts_match_the_requests_they_name(host in host()) {
        let Some(route) = accepted(json!({"hosts": [host.clone()]})) else {
            return Ok(());
        };
        let router = match build(route) {
            Ok(router) => router,
            Err(error) => panic!("the schema accepted {host:?} but the router fails: {error}"),
        };
        prop_assert!(
            finds_a_route(&router, &host),
            "a request to {:?} does not match its route",
            host
        );
    }
}

/// `fuzz/artifacts/router/crash-be01aa2d26dede497e18288543b82992b084fd38`,
/// decoded: an empty header name with the `~*?` regex, beside names with
/// NUL bytes. The schema accepted it all, and the router cannot compile
/// the regex.
#[test]
fn fuzz_crash_be01aa2d_is_refused_by_the_schema() {
    let headers = json!({
        "": ["~*?"],
        "\0\0\0o\0\0S\0ddddd?ddd*r-*r9?o\0\0": [],
        "\0\0S\09?": [],
        "\0dd*r-*r9?ddd*r-": [],
        "[-*r9?": [],
    });
    let input = json!({
        "id": "00000000-0000-4000-8000-000000000000",
        "headers": headers,
        "regex_priority": -36,
        "protocols": ["https"],
    });
    let errors = match EntityKind::Route.validate(&input) {
        Ok(_) => panic!("the schema accepts the fuzz crash's route"),
        Err(violation) => violation.errors,
    };
    let bad_value = errors.iter().find(|error| {
        error.to_string()
            == "headers.[0]: invalid regex: '?' (error: repetition operator missing expression)"
    });
    assert!(bad_value.is_some(), "{errors:?}");
    let bad_names = errors
        .iter()
        .filter(|error| error.message.contains("header name"))
        .count();
    assert_eq!(bad_names, 5, "every header name is refused: {errors:?}");

    // What the router made of it before the schema refused it.
    let minimal = json!({
        "id": "00000000-0000-4000-8000-000000000000",
        "paths": ["/"],
        "protocols": ["https"],
    });
    let route = Route {
        headers: serde_json::from_value(headers).ok(),
        ..accepted(minimal).expect("a minimal route")
    };
    assert!(matches!(
        build(route),
        Err(RouterError::InvalidHeaderRegex { .. })
    ));
}
