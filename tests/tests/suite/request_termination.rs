//! The request-termination plugin through the real proxy: status and
//! message, the default messages, empty bodies for statuses without one,
//! raw bodies with a content type, `echo`, `trigger`, consumer scoping, the
//! precedence of scoped instances, and the Admin API's schema rules.
//!
//! Each test starts its own gateway and echo upstream (a service on the
//! echo, a route on `/`) and adds the plugins it needs.

use crate::support;

use e2e::{send, Answer};
use reqwest::Method;
use serde_json::{json, Value};
use support::Env;

const JSON_UTF8: &str = "application/json; charset=utf-8";

// ----- helpers -------------------------------------------------------------------

/// A route `name` on `/name` of the default service, with a
/// request-termination scoped to it.
fn route_with_termination(env: &Env, name: &str, config: Value) -> Value {
    env.admin_post(
        "/services/echo-service/routes",
        json!({"name": name, "paths": [format!("/{name}")]}),
    );
    env.plugin(json!({
        "name": "request-termination",
        "route": {"name": name},
        "config": config,
    }))
}

/// `status` with exactly `body` and `Content-Length` matching it.
#[track_caller]
fn assert_terminated(reply: &Answer, status: u16, body: &str) {
    assert_eq!(reply.status, status, "{reply}");
    assert_eq!(reply.body, body, "{reply}");
    assert_eq!(
        reply.header("content-length"),
        Some(body.len().to_string().as_str()),
        "{reply}"
    );
}

/// `{"message": message}` as JSON.
#[track_caller]
fn assert_message(reply: &Answer, status: u16, message: &str) {
    assert_terminated(reply, status, &json!({ "message": message }).to_string());
    assert_eq!(reply.header("content-type"), Some(JSON_UTF8), "{reply}");
}

// ----- status, message, body ---------------------------------------------------------

#[test]
fn status_code_and_message_answer_instead_of_the_upstream() {
    let env = Env::start();
    env.global_plugin(
        "request-termination",
        json!({"status_code": 403, "message": "So it goes."}),
    );
    for method in [Method::GET, Method::POST, Method::DELETE] {
        let reply = send(env.proxy(method, "/anything"));
        assert_message(&reply, 403, "So it goes.");
        assert_eq!(reply.header("server"), Some("kong/3.10.0"), "{reply}");
    }
}

#[test]
fn default_config_answers_503_service_unavailable() {
    let env = Env::start();
    let plugin = env.global_plugin("request-termination", json!({}));
    assert_eq!(plugin["config"]["status_code"], 503, "{plugin}");
    let reply = send(env.get("/anything"));
    assert_message(&reply, 503, "Service unavailable");
}

#[test]
fn statuses_with_a_default_message_use_it() {
    let env = Env::start();
    let defaults = [
        (401, "Unauthorized"),
        (404, "Not found"),
        (405, "Method not allowed"),
        (500, "An unexpected error occurred"),
        (502, "Bad Gateway"),
        (503, "Service unavailable"),
    ];
    for (status, _) in defaults {
        route_with_termination(
            &env,
            &format!("s{status}"),
            json!({ "status_code": status }),
        );
    }
    for (status, message) in defaults {
        let reply = send(env.get(&format!("/s{status}")));
        assert_message(&reply, status, message);
    }
}

#[test]
fn statuses_without_a_default_message_have_an_empty_body() {
    let env = Env::start();
    let statuses = [418, 403, 451, 200, 302];
    for status in statuses {
        route_with_termination(
            &env,
            &format!("s{status}"),
            json!({ "status_code": status }),
        );
    }
    for status in statuses {
        let reply = send(env.get(&format!("/s{status}")));
        assert_terminated(&reply, status, "");
        assert_eq!(reply.header("content-type"), None, "{reply}");
    }
}

#[test]
fn body_is_sent_as_is_with_its_content_type() {
    let env = Env::start();
    env.global_plugin(
        "request-termination",
        json!({"status_code": 200, "body": "<h1>closed</h1>", "content_type": "text/html; charset=utf-8"}),
    );
    let reply = send(env.get("/anything"));
    assert_terminated(&reply, 200, "<h1>closed</h1>");
    assert_eq!(
        reply.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{reply}"
    );
}

#[test]
fn body_without_content_type_has_no_content_type_unverified_in_kong() {
    let env = Env::start();
    env.global_plugin(
        "request-termination",
        json!({"status_code": 410, "body": "gone for good"}),
    );
    let reply = send(env.get("/anything"));
    assert_terminated(&reply, 410, "gone for good");
    assert_eq!(reply.header("content-type"), None, "{reply}");
}

// ----- echo --------------------------------------------------------------------------

#[test]
fn echo_answers_a_json_description_of_the_request() {
    let env = Env::start();
    env.global_plugin(
        "request-termination",
        json!({"status_code": 404, "echo": true}),
    );
    let reply = send(
        env.proxy(Method::POST, "/anything/x?a=1&a=2&flag")
            .header("X-Test", "yes")
            .json(&json!({"k": "v"})),
    );
    assert_eq!(reply.status, 404, "{reply}");
    assert_eq!(reply.header("content-type"), Some(JSON_UTF8), "{reply}");
    let document = reply.json();
    assert_eq!(document["message"], "Not found", "{reply}");
    let kong = &document["kong"];
    assert!(
        kong["node_id"].as_str().is_some_and(|id| id.len() == 36),
        "kong.node_id must be a UUID\n{reply}"
    );
    assert!(kong["hostname"].is_string(), "{reply}");
    assert!(kong["worker_pid"].is_number(), "{reply}");
    let request = &document["request"];
    assert_eq!(request["scheme"], "http", "{reply}");
    assert_eq!(request["host"], "127.0.0.1", "{reply}");
    assert_eq!(request["port"], env.gateway.proxy_addr().port(), "{reply}");
    assert_eq!(request["method"], "POST", "{reply}");
    assert_eq!(request["path"], "/anything/x", "{reply}");
    assert_eq!(
        request["query"],
        json!({"a": ["1", "2"], "flag": true}),
        "{reply}"
    );
    assert_eq!(
        request["headers"]["x-test"], "yes",
        "lower-cased names\n{reply}"
    );
    assert_eq!(request["body"], json!({"k": "v"}), "{reply}");
    assert_eq!(request["raw_body"], r#"{"k":"v"}"#, "{reply}");
    assert_eq!(document["matched_route"]["id"], env.route["id"], "{reply}");
    assert_eq!(
        document["matched_service"]["id"], env.service["id"],
        "{reply}"
    );
}

#[test]
fn echo_carries_the_configured_message() {
    let env = Env::start();
    env.global_plugin(
        "request-termination",
        json!({"status_code": 418, "echo": true, "message": "short and stout"}),
    );
    let reply = send(env.get("/anything"));
    assert_eq!(reply.status, 418, "{reply}");
    let document = reply.json();
    assert_eq!(document["message"], "short and stout", "{reply}");
    assert_eq!(document["request"]["method"], "GET", "{reply}");
}

// ----- trigger -------------------------------------------------------------------------

#[test]
fn trigger_in_a_header_or_the_query_terminates_and_its_absence_proxies() {
    let env = Env::start();
    env.global_plugin(
        "request-termination",
        json!({"status_code": 503, "trigger": "x-stop"}),
    );
    let proxied = send(env.get("/anything?other=1").header("x-go", "1"));
    proxied.expect(200);
    assert_eq!(proxied.echoed()["args"], json!({"other": "1"}), "{proxied}");

    for request in [
        env.get("/anything").header("X-Stop", "1"),
        env.get("/anything").header("x-stop", ""),
        env.get("/anything?x-stop=1"),
        env.get("/anything?x-stop="),
        env.get("/anything?x-stop"),
    ] {
        let reply = send(request);
        assert_message(&reply, 503, "Service unavailable");
    }
}

#[test]
fn underscore_trigger_matches_a_dashed_header() {
    let env = Env::start();
    env.global_plugin(
        "request-termination",
        json!({"status_code": 403, "message": "stopped", "trigger": "x_stop"}),
    );
    assert_message(
        &send(env.get("/anything").header("x-stop", "1")),
        403,
        "stopped",
    );
    assert_message(&send(env.get("/anything?x_stop")), 403, "stopped");
    send(env.get("/anything?x-stop")).expect(200);
}

// ----- consumer scoping and precedence ---------------------------------------------------

#[test]
fn consumer_scoped_termination_stops_only_that_authenticated_consumer() {
    let env = Env::start();
    env.consumer("alice");
    env.key("alice", "alice-key");
    env.consumer("bob");
    env.key("bob", "bob-key");
    env.global_plugin("key-auth", json!({}));
    env.plugin(json!({
        "name": "request-termination",
        "consumer": {"username": "alice"},
        "config": {"status_code": 451, "message": "not you, alice"},
    }));
    let alice = send(env.get("/anything").header("apikey", "alice-key"));
    assert_message(&alice, 451, "not you, alice");
    let bob = send(env.get("/anything").header("apikey", "bob-key"));
    bob.expect(200);
    assert_eq!(
        bob.upstream_header("x-consumer-username").as_deref(),
        Some("bob"),
        "{bob}"
    );
    // Without a key, key-auth answers before the scoped instance could run.
    let nobody = send(env.get("/anything"));
    assert_eq!(nobody.status, 401, "{nobody}");
    assert_eq!(
        nobody.json()["message"],
        "No API key found in request",
        "{nobody}"
    );
}

#[test]
fn consumer_scoped_termination_applies_to_the_anonymous_consumer() {
    let env = Env::start();
    env.consumer("alice");
    env.key("alice", "alice-key");
    env.consumer("anonymous");
    env.global_plugin("key-auth", json!({"anonymous": "anonymous"}));
    env.plugin(json!({
        "name": "request-termination",
        "consumer": {"username": "anonymous"},
        "config": {"status_code": 403, "message": "So it goes."},
    }));
    assert_message(&send(env.get("/anything")), 403, "So it goes.");
    assert_message(
        &send(env.get("/anything").header("apikey", "wrong")),
        403,
        "So it goes.",
    );
    send(env.get("/anything").header("apikey", "alice-key")).expect(200);
}

#[test]
fn route_scoped_beats_service_scoped_beats_global() {
    let env = Env::start();
    env.admin_post(
        "/services/echo-service/routes",
        json!({"name": "r1", "paths": ["/r1"]}),
    );
    env.admin_post(
        "/services/echo-service/routes",
        json!({"name": "r2", "paths": ["/r2"]}),
    );
    env.admin_post(
        "/services",
        json!({"name": "other", "url": env.echo.url("")}),
    );
    env.admin_post(
        "/services/other/routes",
        json!({"name": "r3", "paths": ["/r3"]}),
    );
    let terminate = |scope: Value, message: &str| {
        let mut body = json!({
            "name": "request-termination",
            "config": {"status_code": 409, "message": message},
        });
        for (key, value) in scope.as_object().expect("a scope object") {
            body[key] = value.clone();
        }
        env.plugin(body);
    };
    terminate(json!({}), "global");
    terminate(json!({"service": {"name": "echo-service"}}), "service");
    terminate(json!({"route": {"name": "r1"}}), "route");
    assert_message(&send(env.get("/r1")), 409, "route");
    assert_message(&send(env.get("/r2")), 409, "service");
    assert_message(&send(env.get("/r3")), 409, "global");
}

#[test]
fn consumer_scopes_rank_as_kong_ranks_them() {
    let env = Env::start();
    for name in ["alice", "bob", "carol"] {
        env.consumer(name);
        env.key(name, &format!("{name}-key"));
    }
    env.global_plugin("key-auth", json!({}));
    env.admin_post(
        "/services/echo-service/routes",
        json!({"name": "r1", "paths": ["/r1"]}),
    );
    env.admin_post(
        "/services/echo-service/routes",
        json!({"name": "r2", "paths": ["/r2"]}),
    );
    let terminate = |scope: Value, message: &str| {
        let mut body = json!({
            "name": "request-termination",
            "config": {"status_code": 409, "message": message},
        });
        for (key, value) in scope.as_object().expect("a scope object") {
            body[key] = value.clone();
        }
        env.plugin(body);
    };
    terminate(json!({}), "8 global");
    terminate(json!({"service": {"name": "echo-service"}}), "7 service");
    terminate(json!({"route": {"name": "r1"}}), "6 route");
    terminate(json!({"consumer": {"username": "bob"}}), "5 consumer");
    terminate(
        json!({"service": {"name": "echo-service"}, "consumer": {"username": "alice"}}),
        "3 service+consumer",
    );
    terminate(
        json!({"route": {"name": "r1"}, "consumer": {"username": "alice"}}),
        "2 route+consumer",
    );
    let as_consumer =
        |path: &str, name: &str| send(env.get(path).header("apikey", format!("{name}-key")));
    assert_message(&as_consumer("/r1", "alice"), 409, "2 route+consumer");
    assert_message(&as_consumer("/r2", "alice"), 409, "3 service+consumer");
    assert_message(&as_consumer("/r1", "bob"), 409, "5 consumer");
    assert_message(&as_consumer("/r1", "carol"), 409, "6 route");
    assert_message(&as_consumer("/r2", "carol"), 409, "7 service");
}

// ----- a row that cannot run ----------------------------------------------------------

/// A `content_type` the schema accepts but no header can carry: the Admin
/// API stores the row (as Kong does), the proxy fails closed on the route it
/// guards with 500, other routes keep working, and later changes still
/// reach the proxy.
#[test]
fn a_plugin_that_cannot_run_fails_closed_and_later_changes_still_apply() {
    let env = Env::start();
    let (status, body) = env.admin(
        Method::POST,
        "/services/echo-service/routes",
        Some(json!({"name": "guarded", "paths": ["/guarded"]})),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = env.admin(
        Method::POST,
        "/routes/guarded/plugins",
        Some(json!({"name": "request-termination",
                    "config": {"status_code": 200, "body": "x", "content_type": "text/plain\nX-Evil: 1"}})),
    );
    if status == 400 {
        return; // Refused up front: nothing to fail closed.
    }
    assert_eq!(status, 201, "{body}");
    let reply = send(env.get("/guarded"));
    assert_eq!(reply.status, 500, "{reply}");
    assert_eq!(
        reply.json()["message"],
        "An unexpected error occurred",
        "{reply}"
    );
    assert_eq!(send(env.get("/anything")).status, 200);

    env.admin_post(
        "/services/echo-service/routes",
        json!({"name": "later", "paths": ["/later"]}),
    );
    env.plugin(
        json!({"name": "request-termination", "route": {"name": "later"},
                      "config": {"status_code": 418}}),
    );
    assert_eq!(
        send(env.get("/later")).status,
        418,
        "a later change reaches the proxy"
    );
    assert_eq!(send(env.get("/guarded")).status, 500);
}

// ----- schema --------------------------------------------------------------------------

#[test]
fn admin_api_enforces_the_schema_rules_with_kongs_messages() {
    let env = Env::start();
    let cases = [
        (
            json!({"message": "m", "body": "b"}),
            "message cannot be used with content_type or body",
        ),
        (
            json!({"message": "m", "content_type": "text/plain", "body": "b"}),
            "message cannot be used with content_type or body",
        ),
        (
            json!({"content_type": "text/plain"}),
            "content_type requires a body",
        ),
        (
            json!({"echo": true, "body": "b"}),
            "echo cannot be used with content_type and body",
        ),
        (
            json!({"status_code": 600}),
            "value should be between 100 and 599",
        ),
        (
            json!({"status_code": 99}),
            "value should be between 100 and 599",
        ),
        (json!({"status_code": "abc"}), "expected an integer"),
        (json!({"trigger": "bad name!"}), "trigger"),
    ];
    for (config, expected) in cases {
        let (status, answer) = env.admin(
            Method::POST,
            "/plugins",
            Some(json!({"name": "request-termination", "config": config})),
        );
        assert_eq!(status, 400, "config {config} must be refused\n{answer}");
        assert!(
            answer.to_string().contains(expected),
            "config {config}: expected {expected:?} in\n{answer}"
        );
    }
    // Allowed: echo with a message, trigger without echo.
    env.global_plugin(
        "request-termination",
        json!({"echo": true, "message": "m", "trigger": "x-stop"}),
    );
    send(env.get("/anything")).expect(200);
}
