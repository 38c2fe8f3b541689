//! Admin API tests through [`handle`] (full request path minus the socket)
//! and one over a real listener.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use uuid::Uuid;

use super::*;
use crate::store::Store;

fn context_with(token: Option<&str>, listen: &str) -> Arc<Context> {
    let state = AdminState {
        store: Arc::new(Store::open_temporary().expect("store")),
        admin_token: token.map(str::to_owned),
        node_id: Uuid::new_v4(),
        version: "3.10.0",
        listen_addr: listen.parse().expect("address"),
        exposition: Arc::new(exposition()),
        access_log: None,
        gui_origins: Vec::new(),
    };
    Arc::new(Context {
        state: Arc::new(state),
    })
}

fn exposition() -> crate::observability::Exposition {
    crate::observability::Exposition {
        node_id: Uuid::nil(),
        version: "3.10.0",
        stats: Arc::default(),
        kong: Arc::default(),
        access_logs: Vec::new(),
    }
}

fn context() -> Arc<Context> {
    context_with(None, "127.0.0.1:8001")
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn send(context: &Arc<Context>, request: Request<Full<Bytes>>) -> Answer {
    let response = handle(Arc::clone(context), request).await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn request(method: &str, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost:8001")
}

async fn call(context: &Arc<Context>, method: &str, path: &str, body: Option<Value>) -> Answer {
    let request = match body {
        Some(body) => request(method, path)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string()))),
        None => request(method, path).body(Full::new(Bytes::new())),
    };
    send(context, request.expect("request")).await
}

async fn call_form(context: &Arc<Context>, method: &str, path: &str, form: &str) -> Answer {
    let request = request(method, path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form.to_owned())))
        .expect("request");
    send(context, request).await
}

#[tokio::test]
async fn crud_round_trip() {
    let context = context();
    let created = call(
        &context,
        "POST",
        "/services",
        Some(json!({"name": "svc", "url": "http://127.0.0.1:9000/x"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["path"], "/x");
    assert_eq!(created.body["tls_verify"], Value::Null);
    assert_eq!(
        created.headers["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(created.headers["server"], "kong/3.10.0");
    assert!(created.headers.contains_key("x-kong-admin-latency"));

    let fetched = call(&context, "GET", "/services/svc", None).await;
    assert_eq!(fetched.body, created.body);
    let by_id = format!("/services/{}", created.body["id"].as_str().unwrap());
    let patched = call(&context, "PATCH", &by_id, Some(json!({"retries": 1}))).await;
    assert_eq!(
        (patched.status, patched.body["retries"].clone()),
        (StatusCode::OK, json!(1))
    );
    let replaced = call(
        &context,
        "PUT",
        "/services/svc",
        Some(json!({"host": "example.com"})),
    )
    .await;
    assert_eq!(
        (replaced.status, replaced.body["retries"].clone()),
        (StatusCode::OK, json!(5))
    );
    assert_eq!(replaced.body["id"], created.body["id"]);

    let deleted = call(&context, "DELETE", "/services/svc", None).await;
    assert_eq!(
        (deleted.status, deleted.body.clone()),
        (StatusCode::NO_CONTENT, Value::Null)
    );
    assert_eq!(
        call(&context, "DELETE", "/services/svc", None).await.status,
        StatusCode::NO_CONTENT
    );
    let missing = call(&context, "GET", "/services/svc", None).await;
    assert_eq!(
        (missing.status, missing.body),
        (StatusCode::NOT_FOUND, json!({"message": "Not found"}))
    );
    let patch_missing = call(&context, "PATCH", "/services/svc", Some(json!({}))).await;
    assert_eq!(patch_missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn errors_read_like_kong() {
    let context = context();
    call(
        &context,
        "POST",
        "/services",
        Some(json!({"name": "svc", "host": "h"})),
    )
    .await;
    let taken = call(
        &context,
        "POST",
        "/services",
        Some(json!({"name": "svc", "host": "h"})),
    )
    .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(
        taken.body["message"],
        "UNIQUE violation detected on '{name=\"svc\"}'"
    );
    let invalid = call(&context, "POST", "/services", Some(json!({"name": "x"}))).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        invalid.body["fields"],
        json!({"host": "required field missing"})
    );

    let wrong_method = call(&context, "DELETE", "/services", None).await;
    assert_eq!(
        (wrong_method.status, wrong_method.body),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"message": "Method not allowed"})
        )
    );
    assert_eq!(
        call(&context, "GET", "/upstreams", None).await.status,
        StatusCode::NOT_FOUND
    );

    let broken = request("POST", "/services")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{nope")))
        .unwrap();
    let broken = send(&context, broken).await;
    assert_eq!(
        (broken.status, broken.body),
        (
            StatusCode::BAD_REQUEST,
            json!({"message": "Cannot parse JSON body"})
        )
    );
    let text = request("POST", "/services")
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(b"x")))
        .unwrap();
    assert_eq!(
        send(&context, text).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let huge = request("POST", "/services")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(vec![b' '; MAX_BODY_BYTES + 1])))
        .unwrap();
    assert_eq!(
        send(&context, huge).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    let size = call(&context, "GET", "/services?size=abc", None).await;
    assert_eq!(
        size.body,
        json!({"code": 9, "name": "invalid size", "message": "size must be a number"})
    );
    let offset = call(&context, "GET", "/services?offset=x", None).await;
    assert_eq!(offset.body["code"], 7);
}

#[tokio::test]
async fn pagination_and_tags_over_http() {
    let context = context();
    for index in 0..5 {
        let consumer = json!({"username": format!("u{index}"), "tags": if index % 2 == 0 { json!(["even"]) } else { json!(["odd"]) }});
        call(&context, "POST", "/consumers", Some(consumer)).await;
    }
    let empty_tag = call(&context, "GET", "/consumers?tags=none", None).await;
    assert_eq!(empty_tag.body, json!({"data": [], "next": null}));

    let mut path = "/consumers?size=2".to_owned();
    let mut seen = 0;
    for _ in 0..3 {
        let page = call(&context, "GET", &path, None).await;
        seen += page.body["data"].as_array().unwrap().len();
        match page.body["next"].as_str() {
            Some(next) => {
                assert!(next.starts_with("/consumers?offset=") && next.ends_with("&size=2"));
                assert!(page.body["offset"].is_string());
                path = next.to_owned();
            }
            None => assert!(page.body.get("offset").is_none()),
        }
    }
    assert_eq!(seen, 5);
    let even = call(&context, "GET", "/consumers?tags=even", None).await;
    assert_eq!(even.body["data"].as_array().unwrap().len(), 3);
    let either = call(&context, "GET", "/consumers?tags=even/odd", None).await;
    assert_eq!(either.body["data"].as_array().unwrap().len(), 5);
    let by_custom_id = call(&context, "GET", "/consumers?custom_id=none", None).await;
    assert_eq!(by_custom_id.body, json!({"data": [], "next": null}));
}

#[tokio::test]
async fn nested_routes_of_a_service() {
    let context = context();
    call(
        &context,
        "POST",
        "/services",
        Some(json!({"name": "svc", "host": "h"})),
    )
    .await;
    call(
        &context,
        "POST",
        "/services",
        Some(json!({"name": "other", "host": "h"})),
    )
    .await;
    let route = call_form(
        &context,
        "POST",
        "/services/svc/routes",
        "name=r1&paths[]=/a&strip_path=false",
    )
    .await;
    assert_eq!(route.status, StatusCode::CREATED, "{}", route.body);
    assert_eq!(route.body["paths"], json!(["/a"]));
    assert_eq!(route.body["strip_path"], false);
    let service = call(&context, "GET", "/routes/r1/service", None).await;
    assert_eq!(route.body["service"]["id"], service.body["id"]);

    let listed = call(&context, "GET", "/services/svc/routes", None).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        call(&context, "GET", "/services/other/routes", None)
            .await
            .body["data"],
        json!([])
    );
    assert_eq!(
        call(&context, "GET", "/services/svc/routes/r1", None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        call(&context, "GET", "/services/other/routes/r1", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&context, "GET", "/services/nope/routes", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&context, "DELETE", "/routes/r1/service", None)
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );

    let refused = call(&context, "DELETE", "/services/svc", None).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.body["message"],
        "an existing 'routes' entity references this 'services' entity"
    );
    let plugin = call(
        &context,
        "POST",
        "/routes/r1/plugins",
        Some(json!({"name": "key-auth"})),
    )
    .await;
    assert_eq!(plugin.body["route"]["id"], route.body["id"]);
    assert_eq!(
        call(&context, "DELETE", "/services/other/routes/r1", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&context, "DELETE", "/services/svc/routes/r1", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&context, "GET", "/plugins", None).await.body["data"],
        json!([])
    );
}

#[tokio::test]
async fn consumers_credentials_and_name_references() {
    let context = context();
    call(
        &context,
        "POST",
        "/consumers",
        Some(json!({"username": "alice"})),
    )
    .await;
    let credential = call(
        &context,
        "POST",
        "/consumers/alice/key-auth",
        Some(json!({})),
    )
    .await;
    assert_eq!(credential.status, StatusCode::CREATED);
    let key = credential.body["key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 32);
    let owner = call(&context, "GET", &format!("/key-auths/{key}/consumer"), None).await;
    assert_eq!(owner.body["username"], "alice");
    let nested = call(
        &context,
        "GET",
        &format!("/consumers/alice/key-auth/{key}"),
        None,
    )
    .await;
    assert_eq!(nested.body["id"], credential.body["id"]);

    let scoped = json!({"name": "request-termination", "consumer": "alice"});
    let plugin = call(&context, "POST", "/plugins", Some(scoped)).await;
    assert_eq!(plugin.body["consumer"]["id"], owner.body["id"]);
    let by_username = json!({"name": "request-termination", "consumer": {"username": "alice"}, "instance_name": "rt2"});
    let conflict = call(&context, "POST", "/plugins", Some(by_username)).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    let unknown = json!({"paths": ["/x"], "service": {"name": "non-existing"}});
    let unresolved = call(&context, "POST", "/routes", Some(unknown)).await;
    assert_eq!(unresolved.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        unresolved.body["message"],
        "foreign key unresolved (service.name: the foreign key cannot be resolved with '{name=\"non-existing\"}' for an existing 'services' entity)"
    );
    assert_eq!(unresolved.body["code"], 13);

    call(&context, "DELETE", "/consumers/alice", None).await;
    assert_eq!(
        call(&context, "GET", "/key-auths", None).await.body["data"],
        json!([])
    );
    assert_eq!(
        call(&context, "GET", "/plugins", None).await.body["data"],
        json!([])
    );
}

#[tokio::test]
async fn form_plugin_config_is_typed() {
    let context = context();
    let form =
        "name=key-auth&config.key_names=apikey&config.key_names=x-key&config.hide_credentials=true";
    let plugin = call_form(&context, "POST", "/plugins", form).await;
    assert_eq!(plugin.status, StatusCode::CREATED, "{}", plugin.body);
    assert_eq!(
        plugin.body["config"]["key_names"],
        json!(["apikey", "x-key"])
    );
    assert_eq!(plugin.body["config"]["hide_credentials"], true);
    let path = format!("/plugins/{}", plugin.body["id"].as_str().unwrap());
    let patched = call_form(&context, "PATCH", &path, "config.key_in_body=true").await;
    assert_eq!(patched.body["config"]["key_in_body"], true);
    assert_eq!(patched.body["config"]["hide_credentials"], true);
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let context = context();
    let request = Request::get("/metrics")
        .header("host", "127.0.0.1:8001")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = handle(Arc::clone(&context), request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("\nkong_datastore_reachable 1\n"), "{text}");
    assert!(
        text.contains("kong_nginx_requests_total{node_id=\"00000000-0000-0000-0000-000000000000\",subsystem=\"http\"} 1\n"),
        "the scrape itself is a request in progress: {text}"
    );
    let post = call(&context, "POST", "/metrics", Some(json!({}))).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn info_and_schema_endpoints() {
    let context = context();
    let root = call(&context, "GET", "/", None).await;
    assert_eq!(root.body["version"], "3.10.0");
    assert_eq!(root.body["tagline"], "Welcome to kong");
    assert_eq!(root.body["configuration"]["database"], "sled");
    assert_eq!(
        root.body["plugins"]["available_on_server"]["key-auth"]["priority"],
        1250
    );
    assert_eq!(root.body["plugins"]["enabled_in_cluster"], json!([]));
    let status = call(&context, "GET", "/status", None).await;
    assert_eq!(status.body["database"]["reachable"], true);
    let enabled = call(&context, "GET", "/plugins/enabled", None).await;
    assert_eq!(
        enabled.body,
        json!({"enabled_plugins": ["key-auth", "prometheus", "request-termination", "session"]})
    );

    assert!(call(&context, "GET", "/schemas/services", None).await.body["fields"].is_array());
    assert!(call(&context, "GET", "/schemas/plugins", None).await.body["fields"].is_array());
    assert!(call(&context, "GET", "/schemas/plugins/session", None)
        .await
        .body["fields"]
        .is_array());
    let no_plugin = call(&context, "GET", "/schemas/plugins/nope", None).await;
    assert_eq!(no_plugin.body, json!({"message": "No plugin named 'nope'"}));
    let no_entity = call(&context, "POST", "/schemas/nope/validate", Some(json!({}))).await;
    assert_eq!(
        (no_entity.status, no_entity.body),
        (
            StatusCode::NOT_FOUND,
            json!({"message": "No entity named 'nope'"})
        )
    );
    let valid = call(
        &context,
        "POST",
        "/schemas/routes/validate",
        Some(json!({"paths": ["/"]})),
    )
    .await;
    assert_eq!(
        valid.body,
        json!({"message": "schema validation successful"})
    );
    let invalid = call(
        &context,
        "POST",
        "/schemas/plugins/validate",
        Some(json!({"name": "key-auth", "config": {"x": 1}})),
    )
    .await;
    assert_eq!(
        invalid.body["message"],
        "schema violation (config.x: unknown field)"
    );
}

#[tokio::test]
async fn config_replace_and_export() {
    let context = context();
    let service_id = Uuid::new_v4().to_string();
    // gwctl's flat form (Kong's, with `_format_version`, is declarative.rs').
    let config = json!({
        "services": [{"id": service_id, "name": "svc", "host": "h"}],
        "routes": [{"id": Uuid::new_v4().to_string(), "paths": ["/"], "service": {"id": service_id}}],
    });
    let posted = call(&context, "POST", "/config", Some(config.clone())).await;
    assert_eq!(posted.status, StatusCode::CREATED);
    assert_eq!(posted.body["summary"]["created"], 2);
    assert_eq!(posted.body["changes"]["routes"]["created"], 1);
    let again = call(&context, "POST", "/config", Some(config)).await;
    assert_eq!(again.body["summary"]["unchanged"], 2);
    let exported = call(&context, "GET", "/config?format=flat", None).await;
    assert_eq!(exported.body["config"]["services"][0]["name"], "svc");
    let kong = call(&context, "GET", "/config", None).await;
    let yaml = kong.body["config"].as_str().unwrap_or_default();
    assert!(
        yaml.starts_with("_format_version: '3.0'\n_transform: false\n"),
        "{yaml}"
    );

    let bad = json!({"services": [{"id": Uuid::new_v4().to_string(), "name": "bad", "port": "x", "host": "h"}]});
    let refused = call(&context, "POST", "/config", Some(bad)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.body["entity"]["name"], "bad");
    assert_eq!(
        refused.body["fields"],
        json!({"port": "expected an integer"})
    );
    assert_eq!(
        call(&context, "GET", "/services/svc", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn host_origin_and_token_checks() {
    let context = context_with(Some("s3cret"), "127.0.0.1:8001");
    let evil = Request::get("/")
        .header("host", "evil.example:8001")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let forbidden = send(&context, evil).await;
    assert_eq!(
        (forbidden.status, forbidden.body),
        (
            StatusCode::FORBIDDEN,
            json!({"message": "Forbidden: unexpected Host header"})
        )
    );
    let no_token = send(
        &context,
        request("GET", "/").body(Full::new(Bytes::new())).unwrap(),
    )
    .await;
    assert_eq!(
        (no_token.status, no_token.body),
        (StatusCode::UNAUTHORIZED, json!({"message": "Unauthorized"}))
    );
    let wrong = request("GET", "/")
        .header("kong-admin-token", "nope")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&context, wrong).await.status, StatusCode::UNAUTHORIZED);
    for host in ["127.0.0.1:8001", "localhost", "[::1]:8001", "LOCALHOST:1"] {
        let good = Request::get("/status")
            .header("host", host)
            .header("kong-admin-token", "s3cret")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(send(&context, good).await.status, StatusCode::OK, "{host}");
    }
    let cross_site = request("POST", "/consumers")
        .header("kong-admin-token", "s3cret")
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(b"username=x")))
        .unwrap();
    assert_eq!(
        send(&context, cross_site).await.status,
        StatusCode::FORBIDDEN
    );

    let open = context_with(None, "0.0.0.0:8001");
    let any_host = Request::get("/")
        .header("host", "gateway.internal")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&open, any_host).await.status, StatusCode::OK);
}

#[tokio::test]
async fn serves_over_tcp_and_shuts_down() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let state = Arc::new(AdminState {
        store: Arc::new(Store::open_temporary().unwrap()),
        admin_token: None,
        node_id: Uuid::new_v4(),
        version: "3.10.0",
        listen_addr: address,
        exposition: Arc::new(exposition()),
        access_log: None,
        gui_origins: Vec::new(),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async {
        let _ = stopped.await;
    }));
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET /services HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(
        response.ends_with(r#"{"data":[],"next":null}"#),
        "{response}"
    );
    let _ = stop.send(());
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .unwrap();
}
