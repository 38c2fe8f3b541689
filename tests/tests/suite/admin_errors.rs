//! The Admin API's error shapes and set order as Kong's tools read them,
//! from Kong's `spec/02-integration/04-admin_api/` specs:
//!
//! - errors on list items are lists positioned like the input
//!   (`protocols = { [2] = "..." }`, `[null, "..."]` in JSON), a foreign
//!   record is checked against its entity's schema, `url: "invalid url"`
//!   gets Kong's field errors (09-routes_routes_spec.lua "Invalid
//!   parameter", "Invalid foreign entity", 10-services_routes_spec.lua
//!   "handles invalid url");
//! - an explicit `null` for a required field with a default is `required
//!   field missing`, in the Admin API and in `/schemas/plugins/validate`;
//! - sets keep the order given and drop repeats (Kong's `set` type), so
//!   what a client sent reads back the same; a reorder is a change, also
//!   for `gwctl diff`.

use e2e::{send, Answer, Gateway, GatewayOptions};
use reqwest::Method;
use serde_json::{json, Value};

use crate::gwctl_support::Dir;

/// Kong 3.10 OSS's route protocols, in its message.
const PROTOCOLS: &str = "expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp";

fn call(gateway: &Gateway, method: Method, path: &str, body: &Value) -> Answer {
    let request = e2e::http_client()
        .request(method, gateway.admin_url(path))
        .json(body);
    send(request)
}

fn schema_violation(message: &str, fields: Value) -> Value {
    json!({"code": 2, "name": "schema violation", "message": message, "fields": fields})
}

#[test]
fn list_item_errors_are_positioned_and_foreign_records_are_checked() {
    let gateway = Gateway::start(GatewayOptions::default());
    let cases = [
        // 09-routes_routes_spec.lua: "Invalid parameter".
        (
            "/routes",
            json!({"methods": ["GET"], "protocols": ["foo", "http"]}),
            schema_violation(
                &format!("schema violation (protocols.1: {PROTOCOLS})"),
                json!({"protocols": [PROTOCOLS]}),
            ),
        ),
        // The second item: a list with a hole, as cjson writes Kong's.
        (
            "/routes",
            json!({"methods": ["GET"], "protocols": ["http", "foo"]}),
            schema_violation(
                &format!("schema violation (protocols.2: {PROTOCOLS})"),
                json!({"protocols": [null, PROTOCOLS]}),
            ),
        ),
        // 09-routes_routes_spec.lua: "Invalid foreign entity".
        (
            "/routes",
            json!({"methods": ["GET"], "protocols": ["foo", "http"], "service": {"protocol": "foo"}}),
            schema_violation(
                &format!(
                    "2 schema violations (protocols.1: {PROTOCOLS}; service.protocol: {PROTOCOLS})"
                ),
                json!({"protocols": [PROTOCOLS], "service": {"protocol": PROTOCOLS}}),
            ),
        ),
        // 09-routes_routes_spec.lua: "Foreign entity cannot be resolved".
        (
            "/routes",
            json!({"methods": ["GET"], "service": {"protocol": "http"}}),
            schema_violation(
                "schema violation (service.id: missing primary key)",
                json!({"service": {"id": "missing primary key"}}),
            ),
        ),
        (
            "/routes",
            json!({"methods": ["GET"], "service": {"name": null}}),
            schema_violation(
                "schema violation (service.id: missing primary key)",
                json!({"service": {"id": "missing primary key"}}),
            ),
        ),
        // 10-services_routes_spec.lua: "handles invalid url".
        (
            "/services",
            json!({"url": "invalid url"}),
            schema_violation(
                "2 schema violations (host: required field missing; path: should start with: /)",
                json!({"host": "required field missing", "path": "should start with: /"}),
            ),
        ),
    ];
    for (path, body, expected) in cases {
        let answer = call(&gateway, Method::POST, path, &body);
        assert_eq!(answer.status, 400, "{body}: {answer}");
        assert_eq!(answer.json(), expected, "{body}");
    }
}

// Kong fills defaults for absent fields only (`handle_missing_field`);
// an explicit null for a required field fails (schema/init.lua: `required
// field missing`), in the DAO and in `/schemas/plugins/validate`
// (13-plugin-endpoints_spec.lua validates with the same schema).
#[test]
fn an_explicit_null_for_a_required_field_with_a_default_is_refused() {
    let gateway = Gateway::start(GatewayOptions::default());
    let plugin = json!({"name": "request-termination", "config": {"status_code": null}});
    let expected = schema_violation(
        "schema violation (config.status_code: required field missing)",
        json!({"config": {"status_code": "required field missing"}}),
    );
    for path in ["/plugins", "/schemas/plugins/validate"] {
        let answer = call(&gateway, Method::POST, path, &plugin);
        assert_eq!(answer.status, 400, "{path}: {answer}");
        assert_eq!(answer.json(), expected, "{path}");
    }
    // Absent, the default fills it.
    let created = call(
        &gateway,
        Method::POST,
        "/plugins",
        &json!({"name": "request-termination"}),
    );
    assert_eq!(created.status, 201, "{created}");
    assert_eq!(created.json()["config"]["status_code"], 503);
    // A PATCH to null is refused too.
    let id = created.json()["id"].as_str().unwrap_or_default().to_owned();
    let patched = call(
        &gateway,
        Method::PATCH,
        &format!("/plugins/{id}"),
        &json!({"config": {"status_code": null}}),
    );
    assert_eq!(patched.status, 400, "{patched}");
    assert_eq!(patched.json()["fields"], expected["fields"]);
}

// Kong's `set` removes repeats and keeps the order given
// (kong/db/schema/init.lua `make_set`); a client comparing what it sent
// with what it reads back sees no difference.
#[test]
fn sets_keep_the_order_given_without_repeats() {
    let gateway = Gateway::start(GatewayOptions::default());
    let route = json!({"name": "r", "methods": ["POST", "GET", "POST"], "paths": ["/b", "/a"],
        "hosts": ["z.test", "a.test"], "tags": ["z", "a", "z"]});
    let created = call(&gateway, Method::POST, "/routes", &route);
    assert_eq!(created.status, 201, "{created}");
    let read = send(e2e::http_client().get(gateway.admin_url("/routes/r"))).expect_json(200);
    for entity in [created.json(), read] {
        assert_eq!(entity["methods"], json!(["POST", "GET"]), "{entity}");
        assert_eq!(entity["tags"], json!(["z", "a"]), "{entity}");
        assert_eq!(entity["paths"], json!(["/b", "/a"]), "{entity}");
        assert_eq!(entity["hosts"], json!(["z.test", "a.test"]), "{entity}");
        assert_eq!(entity["protocols"], json!(["http", "https"]), "{entity}");
    }
    let reordered = call(
        &gateway,
        Method::PATCH,
        "/routes/r",
        &json!({"methods": ["GET", "POST"]}),
    );
    assert_eq!(reordered.json()["methods"], json!(["GET", "POST"]));
}

// A reorder of a set is a change for gwctl too, as for Kong (and decK,
// which compares what Kong returns).
#[test]
fn gwctl_diff_sees_a_reordered_set() {
    let gateway = Gateway::start(GatewayOptions::default());
    let dir = Dir::new();
    let file = |methods: &str| {
        format!(
            "_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://s.test\n  routes:\n  \
             - name: r\n    paths: [/r]\n    methods: [{methods}]\n"
        )
    };
    let first = dir.write("first.yaml", &file("GET, POST"));
    let synced = gateway.gwctl(&["sync", &first]).run();
    synced.assert_status(0);
    let same = gateway.gwctl(&["diff", &first]).run();
    same.assert_status(0);
    assert!(same.stdout.contains("Summary:"), "{}", same.stdout);
    assert!(
        !same.stdout.contains("updating"),
        "no change: {}",
        same.stdout
    );
    let second = dir.write("second.yaml", &file("POST, GET"));
    let diff = gateway.gwctl(&["diff", &second]).run();
    assert!(diff.stdout.contains("updating route r"), "{}", diff.stdout);
    assert!(diff.stdout.contains("Updated: 1"), "{}", diff.stdout);
}
