//! Proxy details of Kong's router: wildcard route `snis` (`*.foo.test`,
//! `bar.*`), accepted as Kong's `typedefs.wildcard_host` and matched by
//! suffix / prefix as `kong/router/transform.lua` does
//! (spec/02-integration/05-proxy/02-router_spec.lua, "snis" with
//! wildcards; 09-routes_routes_spec.lua for the schema messages).

use e2e::{send, Gateway};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::Env;

/// A client that reaches the gateway's TLS port under `name` (the test
/// certificate names only localhost, so it is not verified here: the
/// point is the SNI the client sends).
fn client_for(gateway: &Gateway, name: &str) -> reqwest::blocking::Client {
    let tls_url = gateway.proxy_tls_url("/");
    let port = reqwest::Url::parse(&tls_url)
        .ok()
        .and_then(|url| url.port())
        .expect("the TLS port");
    reqwest::blocking::Client::builder()
        .resolve(name, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .danger_accept_invalid_certs(true)
        .build()
        .expect("a client")
}

fn status_for(gateway: &Gateway, name: &str) -> u16 {
    let port = reqwest::Url::parse(&gateway.proxy_tls_url("/"))
        .ok()
        .and_then(|url| url.port())
        .expect("the TLS port");
    let url = format!("https://{name}:{port}/sni");
    send(client_for(gateway, name).get(url)).status
}

#[test]
fn wildcard_snis_route_by_suffix_and_prefix() {
    let env = Env::start_tls();
    env.admin_post(
        "/services/echo-service/routes",
        json!({"name": "wild", "protocols": ["https"], "paths": ["/sni"],
            "snis": ["*.foo.test", "bar.*"]}),
    );
    env.admin_patch(
        "/routes/echo-route",
        json!({"protocols": ["http"], "paths": ["/other"]}),
    );
    for (name, expected) in [
        ("a.foo.test", 200),
        ("deep.a.foo.test", 200),
        ("bar.example", 200),
        ("bar.example.com", 200),
        ("foo.test", 404),
        ("foobar.test", 404),
        ("other.test", 404),
    ] {
        assert_eq!(status_for(&env.gateway, name), expected, "SNI {name}");
    }
    // Stored as given.
    let route = env.admin_get("/routes/wild");
    assert_eq!(route["snis"], json!(["*.foo.test", "bar.*"]));
}

#[test]
fn snis_follow_kongs_wildcard_host_rules() {
    let env = Env::start();
    let cases = [
        (
            "a.*.test",
            "wildcard must be leftmost or rightmost character",
        ),
        ("*.a.*", "only one wildcard must be specified"),
        ("127.0.0.1", "must not be an IP"),
        ("a.test:443", "must not have a port"),
    ];
    for (sni, message) in cases {
        let (status, body) = env.admin(
            Method::POST,
            "/routes",
            Some(json!({"protocols": ["https"], "snis": [sni]})),
        );
        assert_eq!(status, 400, "{sni}: {body}");
        assert_eq!(body["fields"], json!({"snis": [message]}), "{sni}: {body}");
        assert_eq!(
            body["message"],
            Value::from(format!("schema violation (snis.1: {message})"))
        );
    }
}

/// A raw `GET path` with `extra` header lines: the response.
fn raw_get(env: &Env, path: &str, extra: &str) -> e2e::raw::RawResponse {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n");
    e2e::raw::RawClient::exchange(env.gateway.proxy_addr(), request.as_bytes()).response()
}

// 12-error_default_type_spec.lua: the errors nginx produces (here the
// upstream timing out, 504) are rendered by Kong's error_handlers.lua:
// `Accept`, else the request's `Content-Type`, else `error_default_type`
// (`text/plain`). The templates end with a line feed (kong/tools/http.lua;
// the spec strips bodies before comparing). `kong.response.error` (404 no
// route) keeps JSON without `Accept`.
#[test]
fn nginx_errors_without_accept_use_kongs_error_default_type() {
    let env = Env::start();
    env.admin_patch("/services/echo-service", json!({"read_timeout": 200}));
    let plain = raw_get(&env, "/delay/2", "");
    assert_eq!(plain.status, 504, "{}", plain.head);
    let id = plain
        .header("x-kong-request-id")
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        plain.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        plain.text(),
        format!("The upstream server is timing out\nrequest_id: {id}\n")
    );
    let html = raw_get(&env, "/delay/2", "Accept: text/html\r\n");
    let id = html
        .header("x-kong-request-id")
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        html.text(),
        format!(
            "<!doctype html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n    \
             <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n    \
             <p>The upstream server is timing out.</p>\n    <p>request_id: {id}</p>\n  \
             </body>\n</html>\n"
        )
    );
    let by_content_type = raw_get(&env, "/delay/2", "Content-Type: application/xml\r\n");
    let id = by_content_type
        .header("x-kong-request-id")
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        by_content_type.text(),
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  \
             <message>The upstream server is timing out</message>\n  \
             <requestid>{id}</requestid>\n</error>\n"
        )
    );
    let json_accept = raw_get(&env, "/delay/2", "Accept: */*\r\n");
    assert_eq!(
        json_accept.json()["message"],
        "The upstream server is timing out"
    );
    // kong.response.error: JSON by default.
    env.admin_patch("/routes/echo-route", json!({"paths": ["/delay"]}));
    let no_route_after = raw_get(&env, "/nowhere-at-all", "");
    assert_eq!(no_route_after.status, 404, "{}", no_route_after.head);
    assert_eq!(
        no_route_after.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        no_route_after.json()["message"],
        "no Route matched with those values"
    );
}
