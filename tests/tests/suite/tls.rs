//! The proxy's TLS listener, end to end: `gateway serve --tls-cert --tls-key`
//! with a certificate the harness issues from a CA made for the test.
//!
//! - The same `/anything` exchange as over plain HTTP, with
//!   `X-Forwarded-Proto: https` and the TLS port upstream.
//! - HTTP/2 when the client offers `h2` by ALPN (as browsers and curl do),
//!   HTTP/1.1 when it offers only `http/1.1`.
//! - An https-only route is served over TLS and refused (426) on plain HTTP.
//! - A client that does not trust the test CA is refused.
//!
//! Not tested: refusing TLS 1.1 clients (rustls cannot speak TLS 1.1 at
//! all, so there is no client to try with).

use e2e::{Echo, Gateway, GatewayOptions};
use reqwest::blocking::Client;
use reqwest::Version;
use serde_json::{json, Value};

/// A TLS gateway and an echo upstream with a service and a route
/// (`route` fields) pointing at it.
fn start(route: Value) -> (Echo, Gateway) {
    let echo = Echo::start();
    let gateway = Gateway::start(GatewayOptions {
        tls: true,
        ..GatewayOptions::default()
    });
    let admin = e2e::http_client();
    for (path, body) in [
        ("/services", json!({"name": "echo", "url": echo.url("")})),
        ("/services/echo/routes", route),
    ] {
        let response = admin
            .post(gateway.admin_url(path))
            .json(&body)
            .send()
            .expect("the Admin API answers");
        let status = response.status();
        let text = response.text().unwrap_or_default();
        assert_eq!(status, 201, "POST {path} {body}\n{text}");
    }
    (echo, gateway)
}

/// GET `url`: the response's HTTP version, status and JSON body.
#[track_caller]
fn get(client: &Client, url: &str) -> (Version, u16, Value, String) {
    let response = client
        .get(url)
        .send()
        .unwrap_or_else(|error| panic!("GET {url}: {error}"));
    let version = response.version();
    let status = response.status().as_u16();
    let via = response
        .headers()
        .get("via")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().unwrap_or_default();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("GET {url}: {status}, not JSON ({error}): {text}"));
    (version, status, body, via)
}

#[test]
fn tls_listener_proxies_with_the_generated_certificate() {
    let (_echo, gateway) = start(json!({"paths": ["/anything"]}));
    let url = gateway.proxy_tls_url("/anything?x=1");
    let (version, status, body, via) = get(&gateway.client(), &url);
    assert_eq!((version, status), (Version::HTTP_11, 200), "{body:#}");
    assert_eq!(via, "1.1 kong/3.10.0");
    let headers = &body["headers"];
    let tls_port = reqwest::Url::parse(&url)
        .ok()
        .and_then(|url| url.port())
        .expect("the TLS listener's port")
        .to_string();
    assert_eq!(headers["X-Forwarded-Proto"], "https", "{body:#}");
    assert_eq!(headers["X-Forwarded-Port"], tls_port.as_str(), "{body:#}");
    assert_eq!(headers["X-Forwarded-Path"], "/anything", "{body:#}");
    assert_eq!(headers["X-Real-Ip"], "127.0.0.1", "{body:#}");
    assert_eq!(headers["Via"], "1.1 kong/3.10.0", "{body:#}");
    assert_eq!(body["args"], json!({"x": "1"}), "{body:#}");

    // The plain listener still works next to it.
    let (_, status, body, _) = get(&gateway.client(), &gateway.proxy_url("/anything"));
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["headers"]["X-Forwarded-Proto"], "http", "{body:#}");
}

#[test]
fn tls_listener_negotiates_http2_by_alpn() {
    let (_echo, gateway) = start(json!({"paths": ["/anything"]}));
    let tls = gateway.tls_files().expect("started with TLS");
    let client = e2e::alpn_client_trusting(&tls.ca_pem);
    let url = gateway.proxy_tls_url("/anything");
    let (version, status, body, _) = get(&client, &url);
    assert_eq!(
        (version, status),
        (Version::HTTP_2, 200),
        "h2 offered by ALPN must be chosen\n{body:#}"
    );
    assert_eq!(
        body["headers"]["Via"], "2 kong/3.10.0",
        "Via names the client's HTTP version\n{body:#}"
    );
    assert_eq!(body["headers"]["X-Forwarded-Proto"], "https", "{body:#}");
    // Several requests on the one HTTP/2 connection.
    for _ in 0..3 {
        assert_eq!(get(&client, &url).1, 200);
    }
    // Kong's own answers over HTTP/2 too.
    let (version, status, body, _) = get(&client, &gateway.proxy_tls_url("/nowhere"));
    assert_eq!((version, status), (Version::HTTP_2, 404), "{body:#}");
    assert_eq!(
        body["message"], "no Route matched with those values",
        "{body:#}"
    );
}

#[test]
fn https_only_route_is_served_over_tls_only() {
    let (_echo, gateway) = start(json!({"paths": ["/secure"], "protocols": ["https"]}));
    let (_, status, body, _) = get(&gateway.client(), &gateway.proxy_tls_url("/secure"));
    assert_eq!(status, 200, "{body:#}");
    let (_, status, body, _) = get(&gateway.client(), &gateway.proxy_url("/secure"));
    assert_eq!(status, 426, "{body:#}");
    assert_eq!(body["message"], "Please use HTTPS protocol", "{body:#}");
}

#[test]
fn clients_not_trusting_the_ca_are_refused() {
    let (_echo, gateway) = start(json!({"paths": ["/anything"]}));
    let refused = e2e::http_client()
        .get(gateway.proxy_tls_url("/anything"))
        .send();
    assert!(
        refused.is_err(),
        "the test CA is not in the usual roots: {refused:?}"
    );
}
