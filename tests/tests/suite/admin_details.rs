//! Admin API details Kong's tools rely on, each from a Kong spec:
//!
//! - key-auth `ttl`: an expired credential is 404 and gone from listings,
//!   `ttl` reads back as the seconds left (spec/03-plugins/09-key-auth/
//!   01-api_spec.lua "creates a key-auth credential with a ttl", "GET #ttl");
//! - `/tags`, `/tags/{tag}` and `?tags=` (04-admin_api/14-tags_spec.lua);
//! - `/endpoints` (04-admin_api/02-kong_routes_spec.lua);
//! - an empty JSON body (kong/api/api_helpers.lua `parse_params`), more
//!   than 1000 arguments (04-admin_api/21-truncated_arguments_spec.lua);
//! - `OPTIONS` and CORS, with and without `--admin-gui-url`
//!   (04-admin_api/23-cors_spec.lua), foreign origins still refused.

use std::time::Duration;

use e2e::{send, Answer, Gateway, GatewayOptions};
use reqwest::Method;
use serde_json::{json, Value};

fn call(gateway: &Gateway, method: Method, path: &str, body: Option<&Value>) -> Answer {
    let mut request = e2e::http_client().request(method, gateway.admin_url(path));
    if let Some(body) = body {
        request = request.json(body);
    }
    send(request)
}

#[track_caller]
fn created(gateway: &Gateway, path: &str, body: Value) -> Value {
    let answer = call(gateway, Method::POST, path, Some(&body));
    answer.expect_json(201)
}

#[test]
fn an_expired_credential_is_gone_and_ttl_reads_as_the_seconds_left() {
    let gateway = Gateway::start(GatewayOptions::default());
    created(&gateway, "/consumers", json!({"username": "bob"}));
    let short = created(
        &gateway,
        "/consumers/bob/key-auth",
        json!({"key": "short", "ttl": 2}),
    );
    let long = created(
        &gateway,
        "/consumers/bob/key-auth",
        json!({"key": "long", "ttl": 1000}),
    );
    created(
        &gateway,
        "/consumers/bob/key-auth",
        json!({"key": "forever"}),
    );
    let short_id = short["id"].as_str().unwrap_or_default().to_owned();
    let read = call(
        &gateway,
        Method::GET,
        &format!("/key-auths/{short_id}"),
        None,
    );
    let ttl = read.expect_json(200)["ttl"].as_i64().unwrap_or(-1);
    assert!((1..=2).contains(&ttl), "ttl {ttl}: {read}");
    let long_ttl = call(&gateway, Method::GET, "/consumers/bob/key-auth/long", None)
        .expect_json(200)["ttl"]
        .as_i64()
        .unwrap_or(-1);
    assert!((998..=1000).contains(&long_ttl), "{long_ttl}");
    assert_eq!(long["ttl"].as_i64().map(|ttl| ttl >= 999), Some(true));

    std::thread::sleep(Duration::from_millis(3100));
    for path in [
        format!("/key-auths/{short_id}"),
        format!("/consumers/bob/key-auth/{short_id}"),
        "/key-auths/short".to_owned(),
    ] {
        let gone = call(&gateway, Method::GET, &path, None);
        assert_eq!(gone.status, 404, "{path}: {gone}");
        assert_eq!(gone.json(), json!({"message": "Not found"}));
    }
    for path in ["/key-auths", "/consumers/bob/key-auth"] {
        let listed = call(&gateway, Method::GET, path, None).expect_json(200);
        let mut keys: Vec<&str> = listed["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|credential| credential["key"].as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["forever", "long"], "{path}: {listed}");
        let forever = listed["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|credential| credential["key"] == "forever")
            .cloned()
            .unwrap_or_default();
        assert_eq!(forever["ttl"], Value::Null);
    }
}

#[test]
fn tags_list_every_tagged_entity_and_tags_arguments_are_checked() {
    let gateway = Gateway::start(GatewayOptions::default());
    for i in 1..=2 {
        created(
            &gateway,
            "/consumers",
            json!({"username": format!("adminapi-filter-by-tag-{i}"),
                "tags": ["corp_ a", format!("consumer_ {i}")]}),
        );
    }
    let consumer = created(
        &gateway,
        "/consumers",
        json!({"username": "plain", "tags": ["other"]}),
    );
    created(
        &gateway,
        "/consumers/plain/plugins",
        json!({"name": "request-termination", "tags": ["consumer_ 2"]}),
    );
    // 14-tags_spec.lua: "/tags", "/tags/:tags", "... with a not exist tag",
    // "/tags ignores ?tags= query".
    let all = call(&gateway, Method::GET, "/tags?tags=not_a_tag", None).expect_json(200);
    assert_eq!(all["data"].as_array().map(Vec::len), Some(6), "{all}");
    assert_eq!(all["next"], Value::Null);
    let corp = call(&gateway, Method::GET, "/tags/corp_%20a", None).expect_json(200);
    let rows = corp["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 2, "{corp}");
    for row in &rows {
        assert_eq!(row["entity_name"], "consumers");
        assert_eq!(row["tag"], "corp_ a");
        assert!(row["entity_id"].is_string(), "{row}");
    }
    let none = call(&gateway, Method::GET, "/tags/does-not-exist", None).expect_json(200);
    assert_eq!(none, json!({"data": [], "next": null}));
    // Paged: one row per page, following `next`.
    let mut path = "/tags?size=1".to_owned();
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let page = call(&gateway, Method::GET, &path, None).expect_json(200);
        seen.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => path = format!("{next}&size=1"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(seen, all["data"].as_array().cloned().unwrap_or_default());
    // "/tags/:tags with invalid :tags value".
    let invalid = call(&gateway, Method::GET, "/tags/%FF", None);
    assert_eq!(invalid.status, 400, "{invalid}");
    assert!(
        invalid.json()["message"]
            .as_str()
            .is_some_and(|message| message.contains("invalid utf-8")),
        "{invalid}"
    );
    // "filter by empty tag", invalid UTF-8 in `?tags=`.
    let empty = call(&gateway, Method::GET, "/consumers?tags=", None);
    assert_eq!(empty.status, 400, "{empty}");
    assert_eq!(
        empty.json()["message"],
        "invalid option (tags: cannot be null)"
    );
    let bad = call(&gateway, Method::GET, "/consumers?tags=%FF", None);
    assert_eq!(bad.status, 400, "{bad}");
    assert_eq!(
        bad.json()["message"],
        "invalid option (tags: invalid filter syntax)"
    );
    // "ignores tags when filtering by multiple filters #6779": nested
    // collections ignore `?tags=`.
    let nested = call(
        &gateway,
        Method::GET,
        "/consumers/plain/plugins?tags=not-there",
        None,
    )
    .expect_json(200);
    assert_eq!(nested["data"].as_array().map(Vec::len), Some(1), "{nested}");
    assert_eq!(nested["data"][0]["consumer"]["id"], consumer["id"]);
}

// 02-kong_routes_spec.lua: "/endpoints".
#[test]
fn endpoints_lists_every_path_with_kongs_placeholders() {
    let gateway = Gateway::start(GatewayOptions::default());
    let answer = call(&gateway, Method::GET, "/endpoints", None).expect_json(200);
    let data: Vec<&str> = answer["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for expected in [
        "/",
        "/plugins",
        "/services/{services}/routes/{routes}",
        "/consumers/{consumers}/key-auth/{keyauth_credentials}",
        "/key-auths/{keyauth_credentials}",
        "/routes/{routes}/service",
        "/tags/{tags}",
        "/config",
        "/schemas/plugins/{name}",
    ] {
        assert!(data.contains(&expected), "{expected} missing: {data:?}");
    }
    let mut sorted = data.clone();
    sorted.sort_by_key(|path| path.replace('/', "\u{0}"));
    assert_eq!(data, sorted, "Kong's segment order");
    assert!(
        data.iter().position(|p| *p == "/routes")
            < data.iter().position(|p| *p == "/routes/{routes}")
    );
}

#[test]
fn empty_json_bodies_and_too_many_arguments_are_refused() {
    let gateway = Gateway::start(GatewayOptions::default());
    let empty = send(
        e2e::http_client()
            .post(gateway.admin_url("/services"))
            .header("content-type", "application/json"),
    );
    assert_eq!(empty.status, 400, "{empty}");
    assert_eq!(empty.json(), json!({"message": "Cannot parse JSON body"}));
    // 21-truncated_arguments_spec.lua.
    let query: Vec<String> = (1..=1001).map(|i| format!("a={i}")).collect();
    let uri = call(
        &gateway,
        Method::GET,
        &format!("/plugins?{}", query.join("&")),
        None,
    );
    assert_eq!(uri.status, 400, "{uri}");
    assert_eq!(uri.json(), json!({"message": "Too many arguments"}));
    let fields: Vec<String> = (1..=1001).map(|i| format!("config.allow={i}")).collect();
    let form = send(
        e2e::http_client()
            .post(gateway.admin_url("/plugins"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("name=ip-restriction&{}", fields.join("&"))),
    );
    assert_eq!(form.status, 400, "{form}");
    assert_eq!(form.json(), json!({"message": "Too many arguments"}));
    // 1000 arguments are fine.
    let thousand: Vec<String> = (1..=1000).map(|i| format!("a{i}=1")).collect();
    let fine = call(
        &gateway,
        Method::GET,
        &format!("/plugins?{}", thousand.join("&")),
        None,
    );
    assert_eq!(fine.status, 200, "{fine}");
}

/// `OPTIONS path` (and extra headers): the answer.
fn options(gateway: &Gateway, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = e2e::http_client().request(Method::OPTIONS, gateway.admin_url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request)
}

// 23-cors_spec.lua, `admin_gui_url` unset: "should return different
// allow-methods for specific route", "should allow headers from the
// request", "... |AC-Allow-Origin| ... absent"; an own origin is echoed, a
// foreign one still refused (Kong would echo it).
#[test]
fn options_and_cors_without_a_gui_url() {
    let gateway = Gateway::start(GatewayOptions::default());
    for (path, methods) in [
        ("/", "GET, HEAD, OPTIONS"),
        ("/routes", "GET, HEAD, OPTIONS, POST"),
        ("/routes/test", "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"),
    ] {
        let answer = options(&gateway, path, &[]);
        assert_eq!(answer.status, 204, "{answer}");
        assert_eq!(answer.header("allow"), Some(methods), "{path}");
        assert_eq!(
            answer.header("access-control-allow-methods"),
            Some(methods),
            "{path}"
        );
        assert_eq!(
            answer.header("access-control-allow-headers"),
            Some("Content-Type")
        );
        assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
        assert_eq!(
            answer.header("access-control-allow-credentials"),
            Some("true")
        );
    }
    let asked = options(
        &gateway,
        "/",
        &[("access-control-request-headers", "X-Header-1,X-Header-2")],
    );
    assert_eq!(
        asked.header("access-control-allow-headers"),
        Some("X-Header-1,X-Header-2")
    );
    // "Main request": no allow-methods/allow-headers.
    let main = send(
        e2e::http_client()
            .get(gateway.admin_url("/"))
            .header("access-control-request-method", "PATCH"),
    );
    main.expect(200);
    assert_eq!(main.header("access-control-allow-methods"), None);
    assert_eq!(main.header("access-control-allow-headers"), None);
    assert_eq!(main.header("access-control-allow-origin"), Some("*"));
    let own = format!("http://{}", gateway.admin_addr());
    let own_answer = send(
        e2e::http_client()
            .get(gateway.admin_url("/"))
            .header("origin", own.as_str()),
    );
    own_answer.expect(200);
    assert_eq!(
        own_answer.header("access-control-allow-origin"),
        Some(own.as_str())
    );
    let foreign = send(
        e2e::http_client()
            .get(gateway.admin_url("/"))
            .header("origin", "http://example.com"),
    );
    assert_eq!(foreign.status, 403, "{foreign}");
    assert_eq!(foreign.header("access-control-allow-origin"), None);
}

// 23-cors_spec.lua, `admin_gui_url = http://admin.api:9100/path/to/any/way`:
// the GUI's origin is echoed, a request without Origin gets it too;
// other origins are refused here (Kong answers them with the GUI's origin,
// which browsers then refuse).
#[test]
fn cors_with_an_admin_gui_url() {
    let gateway = Gateway::start(GatewayOptions {
        extra_args: vec![
            "--admin-gui-url".to_owned(),
            "http://admin.api:9100/path/to/any/way,https://manager.example".to_owned(),
        ],
        ..GatewayOptions::default()
    });
    for origin in ["http://admin.api:9100", "https://manager.example"] {
        let preflight = options(
            &gateway,
            "/services",
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "content-type,kong-admin-token",
                ),
            ],
        );
        assert_eq!(preflight.status, 204, "{preflight}");
        assert_eq!(
            preflight.header("access-control-allow-origin"),
            Some(origin)
        );
        assert_eq!(
            preflight.header("access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(
            preflight.header("access-control-allow-methods"),
            Some("GET, HEAD, OPTIONS, POST")
        );
        assert_eq!(
            preflight.header("access-control-allow-headers"),
            Some("content-type,kong-admin-token")
        );
        let created = send(
            e2e::http_client()
                .post(gateway.admin_url("/consumers"))
                .header("origin", origin)
                .json(&json!({"username": origin.replace([':', '/', '.'], "-")})),
        );
        assert_eq!(created.status, 201, "{created}");
        assert_eq!(created.header("access-control-allow-origin"), Some(origin));
    }
    let no_origin = options(&gateway, "/", &[]);
    assert_eq!(
        no_origin.header("access-control-allow-origin"),
        Some("http://admin.api:9100")
    );
    let foreign = send(
        e2e::http_client()
            .post(gateway.admin_url("/consumers"))
            .header("origin", "http://evil.example")
            .json(&json!({"username": "evil"})),
    );
    assert_eq!(foreign.status, 403, "{foreign}");
    let consumers = call(&gateway, Method::GET, "/consumers/evil", None);
    assert_eq!(consumers.status, 404, "nothing created: {consumers}");
}

#[test]
fn a_malformed_admin_gui_url_stops_the_gateway_at_start() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data_dir = dir.path().join("data");
    let out = e2e::Run::gateway(&[
        "serve",
        "--proxy-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-gui-url",
        "admin.api:9100",
    ])
    .arg("--data-dir")
    .arg(&data_dir)
    .timeout(Duration::from_secs(20))
    .try_run();
    assert_ne!(out.status, 0, "{out}");
    assert!(
        out.stderr
            .contains("--admin-gui-url \"admin.api:9100\": expected scheme://host[:port][/path]"),
        "{out}"
    );
}

// 02-kong_routes_spec.lua "/schemas/:entity": every entity's schema has
// `fields` and `entity_checks`; Kong's consumers check, services' and
// routes' conditionals; plugin schemas too.
#[test]
fn schemas_carry_kongs_entity_checks() {
    let gateway = Gateway::start(GatewayOptions::default());
    for entity in [
        "services",
        "routes",
        "consumers",
        "plugins",
        "keyauth_credentials",
    ] {
        let schema =
            call(&gateway, Method::GET, &format!("/schemas/{entity}"), None).expect_json(200);
        assert!(schema["fields"].is_array(), "{entity}: {schema}");
        assert!(schema["entity_checks"].is_array(), "{entity}: {schema}");
    }
    let consumers = call(&gateway, Method::GET, "/schemas/consumers", None).expect_json(200);
    assert_eq!(
        consumers["entity_checks"],
        json!([{"at_least_one_of": ["custom_id", "username"]}])
    );
    let services = call(&gateway, Method::GET, "/schemas/services", None).expect_json(200);
    assert_eq!(
        services["entity_checks"][0],
        json!({"conditional": {"if_field": "protocol",
            "if_match": {"one_of": ["tcp", "tls", "udp", "grpc", "grpcs"]},
            "then_field": "path", "then_match": {"eq": null}}})
    );
    assert_eq!(services["entity_checks"].as_array().map(Vec::len), Some(5));
    let routes = call(&gateway, Method::GET, "/schemas/routes", None).expect_json(200);
    assert_eq!(
        routes["entity_checks"][0]["conditional"]["then_field"],
        "snis"
    );
    for plugin in ["key-auth", "session", "request-termination"] {
        let schema = call(
            &gateway,
            Method::GET,
            &format!("/schemas/plugins/{plugin}"),
            None,
        )
        .expect_json(200);
        assert_eq!(schema["entity_checks"], json!([]), "{plugin}");
        assert!(schema["fields"].is_array(), "{plugin}");
    }
}
