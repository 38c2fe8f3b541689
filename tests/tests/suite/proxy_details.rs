//! Proxy details of Kong's router: wildcard route `snis` (`*.foo.test`,
//! `bar.*`), accepted as Kong's `typedefs.wildcard_host` and matched by
//! suffix / prefix as `kong/router/transform.lua` does
//! (spec/02-integration/05-proxy/02-router_spec.lua, "snis" with
//! wildcards; 09-routes_routes_spec.lua for the schema messages).

use e2e::{send, Gateway, GatewayOptions};
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
        ("a.*.test", "wildcard must be leftmost or rightmost character"),
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
