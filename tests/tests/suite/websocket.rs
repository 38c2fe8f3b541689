//! WebSocket through the proxy, as Kong's
//! `spec/02-integration/05-proxy/09-websockets_spec.lua` checks it: the
//! handshake's headers (`101`, `Connection: upgrade`, `Upgrade: websocket`,
//! `Via: 1.1 kong/...`), text and ping/pong echoed through the gateway over
//! ws and wss, with the service `path: /ws` and the route `/up-ws` with
//! `strip_path` of the spec.
//!
//! - Raw bytes: the handshake's head, what the upstream receives (Kong's
//!   `Connection: keep-alive, Upgrade` and `Upgrade: websocket`), bytes
//!   both ways behind the `101`, and an upstream that does not switch
//!   relayed as an ordinary response.
//! - A real client (Python's `websockets`, `websocket_client.py`): echo
//!   over ws and wss with key-auth on the route, the handshake refused
//!   without a key, a socket idle past the service's `read_timeout` closed,
//!   a busy one kept open past it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use e2e::raw::{RawClient, RawUpstream, Reply};
use e2e::{Echo, Gateway, GatewayOptions};
use serde_json::{json, Value};

/// RFC 6455 1.3's example key and the accept value it gets.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The key the consumer of [`start`] holds.
const API_KEY: &str = "ws-secret";

/// POSTs `body` to the Admin API, which must answer 201.
#[track_caller]
fn admin_post(gateway: &Gateway, path: &str, body: Value) -> Value {
    let answer = e2e::send(e2e::http_client().post(gateway.admin_url(path)).json(&body));
    assert_eq!(answer.status, 201, "POST {path} {body}\n{}", answer.body);
    answer.json()
}

/// A TLS gateway and an echo, with Kong's spec's service (`path: /ws`) and
/// route (`/up-ws`, `strip_path`), and the `service` fields given.
fn start(service: Value) -> (Echo, Gateway) {
    let echo = Echo::start();
    let gateway = Gateway::start(GatewayOptions {
        tls: true,
        ..GatewayOptions::default()
    });
    let mut fields = json!({"name": "ws", "url": echo.url("/ws")});
    if let (Some(fields), Some(more)) = (fields.as_object_mut(), service.as_object()) {
        fields.extend(more.clone());
    }
    admin_post(&gateway, "/services", fields);
    admin_post(
        &gateway,
        "/services/ws/routes",
        json!({"name": "up-ws", "paths": ["/up-ws"], "strip_path": true}),
    );
    (echo, gateway)
}

/// [`start`] with key-auth on the route and a consumer holding [`API_KEY`].
fn start_with_key_auth(service: Value) -> (Echo, Gateway) {
    let (echo, gateway) = start(service);
    admin_post(
        &gateway,
        "/routes/up-ws/plugins",
        json!({"name": "key-auth"}),
    );
    admin_post(&gateway, "/consumers", json!({"username": "ws-user"}));
    admin_post(
        &gateway,
        "/consumers/ws-user/key-auth",
        json!({"key": API_KEY}),
    );
    (echo, gateway)
}

/// A handshake for `path` with RFC 6455's example key.
fn handshake(path: &str, host: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
         Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// A masked client text frame (RFC 6455 5.3).
fn masked_text(text: &str) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let payload = text.as_bytes();
    assert!(payload.len() < 126, "a short frame");
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(
        payload
            .iter()
            .enumerate()
            .map(|(i, byte)| byte ^ mask[i % 4]),
    );
    frame
}

// Kong: 09-websockets_spec.lua, "returns correct headers on handshake with
// Kong" and "sends and gets text with Kong".
#[test]
fn the_handshake_switches_with_kongs_headers_and_frames_flow() {
    let (_echo, gateway) = start(json!({}));
    let mut client = RawClient::connect(gateway.proxy_addr());
    client.send(&handshake("/up-ws", "localhost", "apikey: none\r\n"));
    let response = client.read_reply(Duration::from_secs(10)).expect(101);
    assert!(
        response
            .head
            .starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{}",
        response.head
    );
    assert_eq!(response.header_values("connection"), ["upgrade"]);
    assert_eq!(response.header_values("upgrade"), ["websocket"]);
    assert_eq!(response.header("via"), Some("1.1 kong/3.10.0"));
    assert_eq!(response.header("sec-websocket-accept"), Some(ACCEPT));
    assert_eq!(response.header("content-length"), None);
    assert_eq!(response.header("transfer-encoding"), None);
    assert!(response.header("x-kong-upstream-latency").is_some());
    assert!(response.body.is_empty());

    client.send(&masked_text("hello websocket"));
    let echoed = client.read_bytes(2 + 15, Duration::from_secs(5));
    let mut expected = vec![0x81, 15];
    expected.extend_from_slice(b"hello websocket");
    assert_eq!(echoed, expected, "the echo's unmasked frame");
    // A close frame: the echo answers it and closes; so does the gateway.
    client.send(&[0x88, 0x80, 1, 2, 3, 4]);
    assert_eq!(
        client.read_bytes(2, Duration::from_secs(5)),
        [0x88, 0x00],
        "the close echoed"
    );
    assert!(client.closed_within(Duration::from_secs(5)));
}

#[test]
fn the_upstream_gets_kongs_upgrade_fields_and_bytes_flow_both_ways() {
    let switching = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nEARLY";
    let upstream = RawUpstream::start(Reply::Bytes(switching.to_vec()));
    let gateway = Gateway::start(GatewayOptions::default());
    admin_post(
        &gateway,
        "/services",
        json!({"name": "raw", "url": upstream.url("/socket")}),
    );
    admin_post(
        &gateway,
        "/services/raw/routes",
        json!({"paths": ["/raw"], "strip_path": true}),
    );
    let mut client = RawClient::connect(gateway.proxy_addr());
    client.send(&handshake(
        "/raw",
        "localhost",
        "Sec-WebSocket-Protocol: chat\r\n",
    ));
    let response = client.read_reply(Duration::from_secs(10)).expect(101);
    assert_eq!(response.header_values("connection"), ["upgrade"]);
    assert_eq!(response.header_values("upgrade"), ["websocket"]);
    assert_eq!(client.read_bytes(5, Duration::from_secs(5)), b"EARLY");

    let request = upstream.request_for("/socket");
    assert_eq!(request.request_line(), "GET /socket HTTP/1.1");
    assert_eq!(request.header_values("connection"), ["keep-alive, Upgrade"]);
    assert_eq!(request.header_values("upgrade"), ["websocket"]);
    assert_eq!(request.header("sec-websocket-key"), Some(KEY));
    assert_eq!(request.header("sec-websocket-version"), Some("13"));
    assert_eq!(request.header("sec-websocket-protocol"), Some("chat"));

    client.send(b"client bytes, not HTTP");
    let recorded = upstream.wait_for(Duration::from_secs(5), |connections| {
        connections
            .iter()
            .any(|connection| connection.text().ends_with("client bytes, not HTTP"))
    });
    assert!(
        recorded.iter().any(|connection| connection
            .text()
            .ends_with("\r\n\r\nclient bytes, not HTTP")),
        "{:?}",
        recorded.iter().map(|c| c.text()).collect::<Vec<_>>()
    );
}

// Kong relays what the upstream answers when it does not switch (nginx
// proxies the response as any other).
#[test]
fn an_upstream_that_does_not_switch_is_relayed_as_an_ordinary_response() {
    let echo = Echo::start();
    let gateway = Gateway::start(GatewayOptions::default());
    admin_post(
        &gateway,
        "/services",
        json!({"name": "plain", "url": echo.url("")}),
    );
    admin_post(
        &gateway,
        "/services/plain/routes",
        json!({"paths": ["/anything"], "strip_path": false}),
    );
    let mut client = RawClient::connect(gateway.proxy_addr());
    client.send(&handshake("/anything", "localhost", ""));
    let response = client.read_reply(Duration::from_secs(10)).expect(200);
    assert_eq!(response.header("upgrade"), None);
    assert_eq!(response.header("connection"), None, "kept alive");
    let echoed = response.json();
    assert_eq!(echoed["headers"]["Connection"], "keep-alive, Upgrade");
    assert_eq!(echoed["headers"]["Upgrade"], "websocket");
    // The connection goes on with HTTP.
    client.send(b"GET /anything?again=1 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let again = client.read_reply(Duration::from_secs(10)).expect(200);
    assert_eq!(again.json()["args"]["again"], "1");
    assert_eq!(again.json()["headers"]["Upgrade"], Value::Null);
}

/// Runs `websocket_client.py SCENARIO URL CA APIKEY SECONDS`: its JSON line.
#[track_caller]
fn python(args: &[&str]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/suite/websocket_client.py");
    let output = Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .expect("python3 runs (install it and `pip install websockets`; .ci/run does)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "websocket_client.py {args:?} failed ({}): {stdout}\n{stderr}\n\
         (it needs Python's websockets: pip install websockets)",
        output.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("not JSON ({error}): {stdout}\n{stderr}"))
}

/// `ws://` and `wss://` URLs of `path` on `gateway`.
fn socket_urls(gateway: &Gateway, path: &str) -> [String; 2] {
    [
        gateway.proxy_url(path).replacen("http://", "ws://", 1),
        gateway
            .proxy_tls_url(path)
            .replacen("https://", "wss://", 1),
    ]
}

// Kong: 09-websockets_spec.lua, "sends and gets text with Kong (under
// HTTPS)" and "plays ping-pong with Kong (under HTTPS)"; key-auth on the
// route refuses a handshake without a key as any request (Kong's
// plugins run on the handshake).
#[test]
fn a_real_client_echoes_over_ws_and_wss_with_key_auth() {
    let (_echo, gateway) = start_with_key_auth(json!({}));
    let ca = gateway.tls_files().expect("tls").ca_cert.clone();
    let ca = ca.to_str().expect("a UTF-8 path");
    for url in socket_urls(&gateway, "/up-ws") {
        let result = python(&["echo", &url, ca, API_KEY]);
        assert_eq!(
            result["text"], r#"{"message": "hello websocket"}"#,
            "{url}: {result}"
        );
        assert_eq!(result["pong"], true, "{url}: {result}");
        assert_eq!(result["binary_length"], 256 * 300, "{url}: {result}");
        assert_eq!(result["binary_ok"], true, "{url}: {result}");
        assert_eq!(result["close_code"], 1000, "{url}: {result}");
        let handshake = &result["handshake"];
        assert_eq!(handshake["upgrade"], "websocket", "{url}: {result}");
        assert_eq!(handshake["connection"], "upgrade", "{url}: {result}");
        assert_eq!(handshake["via"], "1.1 kong/3.10.0", "{url}: {result}");
        assert_eq!(
            handshake["sec-websocket-accept"].as_str().map(str::len),
            Some(28)
        );

        let refused = python(&["echo", &url, ca, "-"]);
        assert_eq!(refused["refused"], 401, "{url}: {refused}");
        let body: Value =
            serde_json::from_str(refused["body"].as_str().unwrap_or_default()).unwrap_or_default();
        assert_eq!(
            body["message"], "No API key found in request",
            "{url}: {refused}"
        );
        assert_eq!(
            body["request_id"].as_str().map(str::len),
            Some(32),
            "{refused}"
        );
        assert_eq!(refused["content_type"], "application/json; charset=utf-8");
        let wrong = python(&["echo", &url, ca, "not-a-key"]);
        assert_eq!(wrong["refused"], 401, "{url}: {wrong}");
    }
}

// The tunnel's idle timeout is the service's `read_timeout` (nginx's
// `proxy_read_timeout` on an upgraded connection, re-armed by traffic
// either way).
#[test]
fn an_idle_socket_closes_at_the_read_timeout_and_a_busy_one_stays() {
    let (_echo, gateway) = start_with_key_auth(json!({"read_timeout": 1000}));
    let ca = gateway.tls_files().expect("tls").ca_cert.clone();
    let ca = ca.to_str().expect("a UTF-8 path");
    for url in socket_urls(&gateway, "/up-ws") {
        let idle = python(&["idle", &url, ca, API_KEY, "6"]);
        assert_eq!(idle["closed"], true, "{url}: {idle}");
        let after = idle["after"].as_f64().unwrap_or(-1.0);
        assert!((0.9..2.5).contains(&after), "{url}: closed after {after} s");
        assert_eq!(idle["code"], Value::Null, "no close frame: {idle}");

        let busy = python(&["busy", &url, ca, API_KEY, "2.5"]);
        assert!(busy["echoed"].as_u64().unwrap_or(0) >= 6, "{url}: {busy}");
    }
}
