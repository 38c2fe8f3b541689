//! End-to-end tests of the proxy over real sockets: a proxy listener in
//! front of the echo server, driven by a hyper client.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use schemas::config::Config;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{serve, Proxy, ProxySettings};
use crate::pdk::PluginEnv;
use crate::snapshot::tests::{consumer, credential, key_auth_config, plugin, route, service};
use crate::snapshot::{Scope, Snapshot, SnapshotHandle};

/// A running proxy (and echo upstream); both stop when dropped.
struct Harness {
    proxy_addr: SocketAddr,
    echo_addr: SocketAddr,
    handle: Arc<SnapshotHandle>,
    _stop: Vec<oneshot::Sender<()>>,
}

impl Harness {
    async fn start() -> Harness {
        let (echo_stop, echo_stopped) = oneshot::channel::<()>();
        let echo_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo_listener.local_addr().unwrap();
        tokio::spawn(crate::echo::serve(echo_listener, async {
            let _ = echo_stopped.await;
        }));
        let handle = Arc::new(SnapshotHandle::new(Snapshot::empty()));
        let proxy = Arc::new(Proxy::new(Arc::clone(&handle), ProxySettings::default()));
        let (proxy_stop, proxy_stopped) = oneshot::channel::<()>();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, None, proxy, async {
            let _ = proxy_stopped.await;
        }));
        Harness {
            proxy_addr,
            echo_addr,
            handle,
            _stop: vec![echo_stop, proxy_stop],
        }
    }

    fn configure(&self, config: &Config) {
        let snapshot = Snapshot::build(config, &PluginEnv::default()).unwrap();
        self.handle.store(snapshot);
    }

    /// A service pointing at the echo server.
    fn echo_service(&self, id: Uuid) -> Value {
        let mut value = service(id);
        value["port"] = json!(self.echo_addr.port());
        value
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> (http::response::Parts, Bytes) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let (mut parts, body) = request.into_parts();
        let uri = format!("http://{}{}", self.proxy_addr, parts.uri);
        parts.uri = uri.parse().unwrap();
        let response = client
            .request(Request::from_parts(parts, body))
            .await
            .unwrap();
        let (head, body) = response.into_parts();
        (head, body.collect().await.unwrap().to_bytes())
    }

    async fn get(&self, path: &str) -> (http::response::Parts, Bytes) {
        self.send(Request::get(path).body(Full::default()).unwrap())
            .await
    }
}

/// Kong's `text/plain` error page (`error_default_type`, no `Accept`): the
/// message and the request id line, each ending in a line feed.
fn plain_message(head: &http::response::Parts, body: &Bytes) -> String {
    assert_eq!(head.headers["content-type"], "text/plain; charset=utf-8");
    let text = String::from_utf8_lossy(body).into_owned();
    let (message, rest) = text.split_once('\n').expect("two lines");
    assert!(
        rest.starts_with("request_id: ") && rest.ends_with('\n'),
        "{text:?}"
    );
    message.to_owned()
}

fn json_of(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| panic!("not JSON: {body:?}"))
}

fn simple_config(harness: &Harness, path: &str) -> (Config, Uuid) {
    let service_id = Uuid::new_v4();
    let route_id = Uuid::new_v4();
    let config = Config {
        services: vec![harness.echo_service(service_id)],
        routes: vec![route(route_id, Some(service_id), path)],
        ..Config::default()
    };
    (config, route_id)
}

#[tokio::test]
async fn unrouted_requests_get_kongs_404() {
    let harness = Harness::start().await;
    let (head, body) = harness.get("/nothing").await;
    assert_eq!(head.status, StatusCode::NOT_FOUND);
    assert_eq!(
        json_of(&body)["message"],
        "no Route matched with those values"
    );
    assert_eq!(head.headers["server"], "kong/3.10.0");
    let request_id = head.headers["x-kong-request-id"].to_str().unwrap();
    assert_eq!(request_id.len(), 32);
    assert_eq!(json_of(&body)["request_id"], request_id);
    assert!(head.headers.contains_key("x-kong-response-latency"));
    assert_eq!(
        head.headers["content-type"],
        "application/json; charset=utf-8"
    );
}

#[tokio::test]
async fn proxies_with_upstream_headers_and_stripped_path() {
    let harness = Harness::start().await;
    let (config, _) = simple_config(&harness, "/api");
    harness.configure(&config);
    let request = Request::get("/api/anything/x?b=2&a=1")
        .header("host", "example.com")
        .header("x-forwarded-for", "1.2.3.4")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "gone")
        .body(Full::default())
        .unwrap();
    let (head, body) = harness.send(request).await;
    assert_eq!(head.status, StatusCode::OK);
    let echo = json_of(&body);
    assert_eq!(echo["path"], "/anything/x");
    assert_eq!(echo["args"], json!({"a": "1", "b": "2"}));
    let headers = &echo["headers"];
    assert_eq!(
        headers["Host"],
        format!("127.0.0.1:{}", harness.echo_addr.port())
    );
    assert_eq!(headers["X-Forwarded-For"], "1.2.3.4, 127.0.0.1");
    assert_eq!(headers["X-Forwarded-Proto"], "http");
    assert_eq!(headers["X-Forwarded-Host"], "example.com");
    assert_eq!(
        headers["X-Forwarded-Port"],
        harness.proxy_addr.port().to_string()
    );
    assert_eq!(headers["X-Forwarded-Path"], "/api/anything/x");
    assert_eq!(headers["X-Forwarded-Prefix"], "/api");
    assert_eq!(headers["X-Real-Ip"], "127.0.0.1");
    assert_eq!(headers["Via"], "1.1 kong/3.10.0");
    assert!(headers.get("X-Hop").is_none());
    assert_eq!(
        headers["X-Kong-Request-Id"],
        head.headers["x-kong-request-id"].to_str().unwrap()
    );
    assert_eq!(head.headers["via"], "1.1 kong/3.10.0");
    assert!(head.headers.contains_key("x-kong-upstream-latency"));
    assert!(head.headers.contains_key("x-kong-proxy-latency"));
}

#[tokio::test]
async fn bare_question_mark_is_kept() {
    let harness = Harness::start().await;
    let (config, _) = simple_config(&harness, "/");
    harness.configure(&config);
    let (_, body) = harness.get("/anything?").await;
    assert!(json_of(&body)["url"]
        .as_str()
        .unwrap()
        .ends_with("/anything?"));
}

#[tokio::test]
async fn serviceless_route_is_503_and_dead_upstream_502() {
    let harness = Harness::start().await;
    let service_id = Uuid::new_v4();
    let mut dead = service(service_id);
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    dead["port"] = json!(free_port);
    dead["retries"] = json!(1);
    let config = Config {
        services: vec![dead],
        routes: vec![
            route(Uuid::new_v4(), None, "/lonely"),
            route(Uuid::new_v4(), Some(service_id), "/dead"),
        ],
        ..Config::default()
    };
    harness.configure(&config);
    let (head, body) = harness.get("/lonely").await;
    assert_eq!(head.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        json_of(&body),
        serde_json::json!({"message": "no Service found with those values"})
    );
    assert_eq!(head.headers["server"], "kong/3.10.0");
    let (head, body) = harness.get("/dead").await;
    assert_eq!(head.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        plain_message(&head, &body),
        "An invalid response was received from the upstream server"
    );
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let harness = Harness::start().await;
    let (mut config, _) = simple_config(&harness, "/");
    config.services[0]["read_timeout"] = json!(200);
    harness.configure(&config);
    let (head, body) = harness.get("/delay/2").await;
    assert_eq!(head.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        plain_message(&head, &body),
        "The upstream server is timing out"
    );
}

#[tokio::test]
async fn https_only_routes_answer_426_or_redirect() {
    let harness = Harness::start().await;
    let service_id = Uuid::new_v4();
    let mut upgrade = route(Uuid::new_v4(), Some(service_id), "/secure");
    upgrade["protocols"] = json!(["https"]);
    let mut redirect = route(Uuid::new_v4(), Some(service_id), "/moved");
    redirect["protocols"] = json!(["https"]);
    redirect["https_redirect_status_code"] = json!(301);
    let config = Config {
        services: vec![harness.echo_service(service_id)],
        routes: vec![upgrade, redirect],
        ..Config::default()
    };
    harness.configure(&config);
    let (head, body) = harness.get("/secure").await;
    assert_eq!(head.status, StatusCode::UPGRADE_REQUIRED);
    assert_eq!(json_of(&body)["message"], "Please use HTTPS protocol");
    assert_eq!(head.headers["upgrade"], "TLS/1.2, HTTP/1.1");
    let request = Request::get("/moved/x?y=1")
        .header("host", "example.com:8000")
        .body(Full::default())
        .unwrap();
    let (head, _) = harness.send(request).await;
    assert_eq!(head.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(head.headers["location"], "https://example.com/moved/x?y=1");
}

#[tokio::test]
async fn key_auth_and_termination_through_the_proxy() {
    let harness = Harness::start().await;
    let (mut config, route_id) = simple_config(&harness, "/");
    let alice = Uuid::new_v4();
    config.consumers = vec![consumer(alice, "alice")];
    config.keyauth_credentials = vec![credential(Uuid::new_v4(), alice, "secret", None, 1)];
    let mut auth = key_auth_config();
    auth["hide_credentials"] = json!(true);
    config.plugins = vec![
        plugin("key-auth", auth, Scope::default()),
        plugin(
            "request-termination",
            json!({"status_code": 418, "message": "teapot", "content_type": null, "body": null,
                   "echo": false, "trigger": "x-stop"}),
            Scope {
                route: Some(route_id),
                ..Scope::default()
            },
        ),
    ];
    harness.configure(&config);

    let (head, body) = harness.get("/anything").await;
    assert_eq!(head.status, StatusCode::UNAUTHORIZED);
    assert_eq!(head.headers["www-authenticate"], "Key");
    assert_eq!(head.headers["server"], "kong/3.10.0");
    assert_eq!(json_of(&body)["message"], "No API key found in request");

    let (head, body) = harness.get("/anything?apikey=secret&keep=1").await;
    assert_eq!(head.status, StatusCode::OK);
    let echo = json_of(&body);
    assert_eq!(echo["args"], json!({"keep": "1"}));
    assert_eq!(echo["headers"]["X-Consumer-Username"], "alice");

    let (head, body) = harness.get("/anything?apikey=secret&x-stop").await;
    assert_eq!(head.status.as_u16(), 418);
    assert_eq!(body, r#"{"message":"teapot"}"#);
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let harness = Harness::start().await;
    let (config, _) = simple_config(&harness, "/");
    harness.configure(&config);
    let upload = Bytes::from(vec![b'u'; 16 * 1024 * 1024]);
    let request = Request::post("/stream-upload")
        .body(Full::new(upload))
        .unwrap();
    let (head, body) = harness.send(request).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(json_of(&body)["received_bytes"], 16 * 1024 * 1024);
    let (head, body) = harness.get("/bytes/20000000").await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(body.len(), 20_000_000);
}

#[tokio::test]
async fn config_swaps_apply_to_new_requests() {
    let harness = Harness::start().await;
    let (head, _) = harness.get("/anything").await;
    assert_eq!(head.status, StatusCode::NOT_FOUND);
    let (config, _) = simple_config(&harness, "/");
    harness.configure(&config);
    let (head, _) = harness.get("/anything").await;
    assert_eq!(head.status, StatusCode::OK);
}
