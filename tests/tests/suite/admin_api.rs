//! The Admin API of `gateway serve`, end to end: real HTTP requests to the
//! real binary on a temporary data directory, compared with what Kong 3.x
//! answers (`../shared/reference/deck-admin-router.md`, section 4).
//!
//! - `GET /`, `/status`, `/plugins/enabled` and the schema endpoints.
//! - CRUD on services, routes, consumers, plugins and key-auth credentials:
//!   201 with every field (defaults filled, unset ones `null`) on `POST`,
//!   `PUT` upserting by id and by endpoint key, `PATCH`, `DELETE` answering
//!   204 even for a missing entity, `GET` by id and by endpoint key, and 404
//!   `{"message":"Not found"}`; the nested URLs.
//! - Pagination (`size`, `offset`, `next`) and `tags` filters.
//! - Errors in Kong's shapes (schema, unique and foreign key violations,
//!   405, 415, malformed JSON), and never a 500 for bad input.
//! - Store rules: a service with routes cannot be deleted, deleting a
//!   consumer removes its credentials and plugins, `POST /config` is all or
//!   nothing, data survives a restart and a crash.
//! - Access: `--admin-token` and the DNS-rebinding `Host` check.
//! - A write is in effect on the proxy's very next request.
//!
//! Every test starts its own gateway (and echo upstream when it proxies).

use e2e::{send, Answer, Echo, Gateway, GatewayOptions};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Method;
use serde_json::{json, Value};

// ----- helpers -----------------------------------------------------------------

/// An Admin API client for one gateway (re-create it after a restart: the
/// port changes).
struct Admin {
    client: Client,
    base: String,
    token: Option<String>,
}

impl Admin {
    fn new(gateway: &Gateway) -> Self {
        Self {
            client: e2e::http_client(),
            base: gateway.admin_url(""),
            token: None,
        }
    }

    fn with_token(gateway: &Gateway, token: &str) -> Self {
        Self {
            token: Some(token.to_owned()),
            ..Self::new(gateway)
        }
    }

    /// A request to `path`, with the token when there is one.
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.header("Kong-Admin-Token", token),
            None => request,
        }
    }

    #[track_caller]
    fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        let request = self.request(method, path);
        send(match body {
            Some(body) => request
                .header("Content-Type", "application/json")
                .body(body.to_string()),
            None => request,
        })
    }

    #[track_caller]
    fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None)
    }

    #[track_caller]
    fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(&body))
    }

    #[track_caller]
    fn put(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(&body))
    }

    #[track_caller]
    fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(&body))
    }

    #[track_caller]
    fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None)
    }

    /// `POST` that must answer 201; the created entity.
    #[track_caller]
    fn create(&self, path: &str, body: Value) -> Value {
        self.post(path, body).expect_json(201)
    }

    /// `GET` that must answer 200; the body.
    #[track_caller]
    fn fetch(&self, path: &str) -> Value {
        self.get(path).expect_json(200)
    }

    /// `GET path` must be Kong's 404.
    #[track_caller]
    fn assert_missing(&self, path: &str) {
        let answer = self.get(path);
        assert_eq!(
            (answer.status, answer.json()),
            (404, json!({"message": "Not found"})),
            "{answer}"
        );
    }
}

/// Every member of `expected` must be in `entity` with that value.
#[track_caller]
fn assert_fields(entity: &Value, expected: &Value) {
    let expected = expected.as_object().expect("expected fields as an object");
    let mismatches: Vec<String> = expected
        .iter()
        .filter(|(name, value)| entity.get(name.as_str()) != Some(value))
        .map(|(name, value)| {
            let actual = entity
                .get(name.as_str())
                .map_or("<absent>".to_owned(), Value::to_string);
            format!("  {name}: expected {value}, got {actual}")
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "fields differ:\n{}\nin {entity:#}",
        mismatches.join("\n")
    );
}

/// A canonical UUID string (8-4-4-4-12 lowercase hex).
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|group| group.len()).collect();
    lengths == [8, 4, 4, 4, 12]
        && groups
            .iter()
            .all(|group| group.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')))
}

/// The entity's `id`, checked to be a UUID.
#[track_caller]
fn id_of(entity: &Value) -> String {
    let id = entity["id"].as_str().unwrap_or_default();
    assert!(is_uuid(id), "no UUID id in {entity:#}");
    id.to_owned()
}

/// `created_at` (and `updated_at` when the kind has one) are integer
/// seconds of this era.
#[track_caller]
fn assert_timestamps(entity: &Value, with_updated_at: bool) {
    let created = entity["created_at"].as_i64();
    assert!(
        created.is_some_and(|seconds| seconds > 1_600_000_000),
        "created_at is not integer seconds in {entity:#}"
    );
    if with_updated_at {
        let updated = entity["updated_at"].as_i64();
        assert!(
            updated.is_some_and(|seconds| seconds >= created.unwrap_or_default()),
            "updated_at is not integer seconds >= created_at in {entity:#}"
        );
    }
}

/// The ids of a listing's `data`, in order.
#[track_caller]
fn ids(listing: &Value) -> Vec<String> {
    listing["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data array in {listing:#}"))
        .iter()
        .map(id_of)
        .collect()
}

/// The values of `field` in a listing's `data`, sorted.
#[track_caller]
fn sorted_field(listing: &Value, field: &str) -> Vec<String> {
    let mut values: Vec<String> = listing["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data array in {listing:#}"))
        .iter()
        .map(|entity| entity[field].as_str().unwrap_or_default().to_owned())
        .collect();
    values.sort();
    values
}

/// A Kong error body: `code`, `name` and `message`; `fields` when given.
#[track_caller]
fn assert_error(answer: &Answer, status: u16, code: i64, name: &str, fields: Option<Value>) {
    let body = answer.expect_json(status);
    assert_eq!(body["code"], code, "error code\n{answer}");
    assert_eq!(body["name"], name, "error name\n{answer}");
    assert!(body["message"].is_string(), "no message\n{answer}");
    if let Some(fields) = fields {
        assert_eq!(body["fields"], fields, "error fields\n{answer}");
    }
}

/// A service pointing at the echo upstream.
fn echo_service(name: &str, echo: &Echo) -> Value {
    json!({"name": name, "url": echo.url("")})
}

// ----- information endpoints -------------------------------------------------

#[test]
fn root_reports_version_node_id_and_plugins() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    let answer = admin.get("/");
    let root = answer.expect_json(200);

    let version = root["version"].as_str().unwrap_or_default();
    let numbers: Vec<&str> = version.split('.').collect();
    assert!(
        numbers.len() == 3 && numbers[0] == "3" && numbers.iter().all(|n| n.parse::<u32>().is_ok()),
        "version must be a Kong 3.x version\n{answer}"
    );
    assert_eq!(
        answer.header("server"),
        Some(format!("kong/{version}").as_str()),
        "{answer}"
    );
    assert_eq!(
        answer.header("content-type"),
        Some("application/json; charset=utf-8"),
        "{answer}"
    );
    assert_eq!(root["tagline"], "Welcome to kong", "{answer}");
    let node_id = root["node_id"].as_str().unwrap_or_default();
    assert!(is_uuid(node_id), "node_id must be a UUID\n{answer}");
    assert!(root["hostname"].is_string(), "{answer}");
    assert!(root["configuration"]["database"].is_string(), "{answer}");

    let available = &root["plugins"]["available_on_server"];
    for plugin in ["key-auth", "session", "request-termination"] {
        assert!(
            available[plugin]["priority"].is_number() && available[plugin]["version"].is_string(),
            "{plugin} missing from plugins.available_on_server\n{answer}"
        );
    }
    assert!(root["plugins"]["enabled_in_cluster"].is_array(), "{answer}");

    let again = admin.fetch("/");
    assert_eq!(again["node_id"], node_id, "node_id must be stable");

    let enabled = admin.fetch("/plugins/enabled");
    let names: Vec<&str> = enabled["enabled_plugins"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for plugin in ["key-auth", "session", "request-termination"] {
        assert!(names.contains(&plugin), "{plugin} not enabled: {enabled}");
    }
}

#[test]
fn status_reports_database_and_connections() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    let answer = admin.get("/status");
    let status = answer.expect_json(200);
    assert_eq!(status["database"]["reachable"], true, "{answer}");
    let server = &status["server"];
    for counter in [
        "connections_accepted",
        "connections_active",
        "connections_handled",
        "total_requests",
    ] {
        assert!(server[counter].is_u64(), "server.{counter}\n{answer}");
    }
    assert!(
        server["total_requests"].as_u64() >= Some(1),
        "this request counts\n{answer}"
    );
}

#[test]
fn schema_endpoints_describe_and_validate() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    let services = admin.fetch("/schemas/services");
    assert!(services["fields"].is_array(), "{services:#}");
    let key_auth = admin.fetch("/schemas/plugins/key-auth");
    assert!(key_auth["fields"].is_array(), "{key_auth:#}");

    let missing = admin.get("/schemas/plugins/no-such-plugin");
    assert_eq!(
        missing.expect_json(404),
        json!({"message": "No plugin named 'no-such-plugin'"}),
        "{missing}"
    );
    let no_entity = admin.get("/schemas/widgets");
    assert_eq!(
        no_entity.expect_json(404),
        json!({"message": "No entity named 'widgets'"}),
        "{no_entity}"
    );

    let valid = admin.post("/schemas/routes/validate", json!({"paths": ["/ok"]}));
    assert_eq!(
        valid.expect_json(200),
        json!({"message": "schema validation successful"}),
        "{valid}"
    );
    let invalid = admin.post(
        "/schemas/services/validate",
        json!({"host": "h", "port": 70000}),
    );
    assert_error(
        &invalid,
        400,
        2,
        "schema violation",
        Some(json!({"port": "value should be between 0 and 65535"})),
    );
    let plugin = admin.post(
        "/schemas/plugins/validate",
        json!({"name": "key-auth", "config": {"key_names": ["k"]}}),
    );
    plugin.expect(200);
    assert!(
        admin.fetch("/services")["data"] == json!([]),
        "validation must not store anything"
    );
}

// ----- CRUD --------------------------------------------------------------------

#[test]
fn post_service_returns_201_with_every_field_and_defaults() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    let answer = admin.post(
        "/services",
        json!({"name": "billing", "url": "http://upstream.test:8080/v1"}),
    );
    let service = answer.expect_json(201);
    assert_eq!(
        answer.header("content-type"),
        Some("application/json; charset=utf-8"),
        "{answer}"
    );
    id_of(&service);
    assert_timestamps(&service, true);
    assert_fields(
        &service,
        &json!({
            "name": "billing",
            "protocol": "http",
            "host": "upstream.test",
            "port": 8080,
            "path": "/v1",
            "retries": 5,
            "connect_timeout": 60000,
            "write_timeout": 60000,
            "read_timeout": 60000,
            "enabled": true,
            "tags": null,
            "client_certificate": null,
            "tls_verify": null,
            "tls_verify_depth": null,
            "ca_certificates": null,
        }),
    );
    assert!(
        service.get("url").is_none(),
        "url is write-only\n{service:#}"
    );

    // The url shorthand's defaults: 443 for https, no path.
    let secure = admin.create("/services", json!({"url": "https://secure.test"}));
    assert_fields(
        &secure,
        &json!({"protocol": "https", "host": "secure.test", "port": 443, "path": null}),
    );

    // A service given by host: port 80 and a null path by default.
    let plain = admin.create("/services", json!({"host": "plain.test"}));
    assert_fields(
        &plain,
        &json!({"name": null, "protocol": "http", "port": 80, "path": null}),
    );
}

#[test]
fn services_get_put_patch_delete_by_id_and_name() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    let created = admin.create(
        "/services",
        json!({"name": "svc", "url": "http://a.test:81/p", "retries": 2, "tags": ["t1"]}),
    );
    let id = id_of(&created);

    // GET by id and by name give the same canonical entity.
    assert_eq!(admin.fetch(&format!("/services/{id}")), created);
    assert_eq!(admin.fetch("/services/svc"), created);

    // PATCH changes only what it names; JSON null clears an optional field.
    let patched = admin
        .patch(
            &format!("/services/{id}"),
            json!({"read_timeout": 1234, "path": null}),
        )
        .expect_json(200);
    assert_fields(
        &patched,
        &json!({"id": id, "name": "svc", "host": "a.test", "port": 81, "retries": 2,
            "read_timeout": 1234, "path": null, "tags": ["t1"]}),
    );
    assert_eq!(patched["created_at"], created["created_at"]);
    let patched_by_name = admin
        .patch("/services/svc", json!({"retries": 3}))
        .expect_json(200);
    assert_eq!(patched_by_name["retries"], 3);
    assert_eq!(patched_by_name["read_timeout"], 1234);

    // PUT by name replaces: unspecified fields go back to their defaults.
    let replaced = admin
        .put("/services/svc", json!({"host": "b.test"}))
        .expect_json(200);
    assert_fields(
        &replaced,
        &json!({"id": id, "name": "svc", "host": "b.test", "port": 80, "retries": 5,
            "read_timeout": 60000, "path": null, "tags": null}),
    );

    // PUT by an unknown name creates it (200, not 201).
    let by_name = admin
        .put("/services/new-by-name", json!({"host": "c.test"}))
        .expect_json(200);
    assert_fields(&by_name, &json!({"name": "new-by-name", "host": "c.test"}));
    assert_eq!(admin.fetch("/services/new-by-name"), by_name);

    // PUT by an unknown id creates it with that id.
    let fixed_id = "0b6a5c3e-5d8f-4a8a-9d55-2f1e1c0b7a01";
    let by_id = admin
        .put(
            &format!("/services/{fixed_id}"),
            json!({"name": "fixed", "host": "d.test"}),
        )
        .expect_json(200);
    assert_fields(
        &by_id,
        &json!({"id": fixed_id, "name": "fixed", "host": "d.test"}),
    );
    assert_eq!(admin.fetch("/services/fixed")["id"], fixed_id);

    // DELETE: 204 with an empty body, also when nothing is there.
    for path in [
        format!("/services/{id}"),
        format!("/services/{id}"),
        "/services/never-was".to_owned(),
    ] {
        let deleted = admin.delete(&path);
        deleted.expect(204);
        assert!(deleted.body.is_empty(), "204 must have no body\n{deleted}");
    }
    admin.assert_missing(&format!("/services/{id}"));
    admin.assert_missing("/services/svc");
    let missing_patch = admin.patch("/services/svc", json!({"retries": 1}));
    assert_eq!(
        (missing_patch.status, missing_patch.json()),
        (404, json!({"message": "Not found"})),
        "{missing_patch}"
    );
}

#[test]
fn utf8_names_work_percent_escaped() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    let created = admin.create("/services", json!({"name": "café", "host": "a.test"}));
    assert_eq!(admin.fetch("/services/caf%C3%A9"), created);
}

#[test]
fn routes_crud_with_defaults_and_nested_urls() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    let service = admin.create("/services", json!({"name": "svc", "host": "a.test"}));
    let other = admin.create("/services", json!({"name": "other", "host": "b.test"}));
    let service_id = id_of(&service);

    let answer = admin.post(
        "/services/svc/routes",
        json!({"name": "r1", "paths": ["/a"]}),
    );
    let route = answer.expect_json(201);
    let route_id = id_of(&route);
    assert_timestamps(&route, true);
    assert_fields(
        &route,
        &json!({
            "name": "r1",
            "protocols": ["http", "https"],
            "methods": null,
            "hosts": null,
            "paths": ["/a"],
            "headers": null,
            "snis": null,
            "sources": null,
            "destinations": null,
            "strip_path": true,
            "preserve_host": false,
            "regex_priority": 0,
            "path_handling": "v0",
            "https_redirect_status_code": 426,
            "request_buffering": true,
            "response_buffering": true,
            "tags": null,
            "service": {"id": service_id},
        }),
    );

    // Top-level POST with the service given by name or by id.
    let by_name = admin.create(
        "/routes",
        json!({"name": "r2", "hosts": ["h.test"], "service": {"name": "svc"}}),
    );
    assert_eq!(by_name["service"], json!({"id": service_id}));
    let by_id = admin.create(
        "/routes",
        json!({"name": "r3", "methods": ["GET"], "service": {"id": id_of(&other)}}),
    );
    assert_eq!(by_id["service"], json!({"id": id_of(&other)}));
    let serviceless = admin.create("/routes", json!({"name": "r4", "paths": ["/none"]}));
    assert_eq!(serviceless["service"], Value::Null);

    // Reading: by id, by name, nested, and the route's service.
    assert_eq!(admin.fetch(&format!("/routes/{route_id}")), route);
    assert_eq!(admin.fetch("/routes/r1"), route);
    assert_eq!(admin.fetch("/services/svc/routes/r1"), route);
    assert_eq!(
        admin.fetch(&format!("/services/{service_id}/routes/{route_id}")),
        route
    );
    admin.assert_missing("/services/other/routes/r1");
    assert_eq!(
        sorted_field(&admin.fetch("/services/svc/routes"), "name"),
        ["r1", "r2"]
    );
    assert_eq!(
        sorted_field(&admin.fetch("/routes"), "name"),
        ["r1", "r2", "r3", "r4"]
    );
    assert_eq!(admin.fetch("/routes/r1/service"), service);
    admin.assert_missing("/routes/r4/service");
    admin.assert_missing("/services/nope/routes");

    // Writing through the nested URL keeps the parent.
    let patched = admin
        .patch(
            "/services/svc/routes/r1",
            json!({"paths": ["/b"], "strip_path": false}),
        )
        .expect_json(200);
    assert_fields(
        &patched,
        &json!({"id": route_id, "paths": ["/b"], "strip_path": false, "service": {"id": service_id}}),
    );
    let put = admin
        .put("/services/svc/routes/r5", json!({"paths": ["/five"]}))
        .expect_json(200);
    assert_fields(&put, &json!({"name": "r5", "service": {"id": service_id}}));

    // PUT by name on the top-level collection replaces (defaults back).
    let replaced = admin
        .put(
            "/routes/r1",
            json!({"hosts": ["x.test"], "service": {"id": service_id}}),
        )
        .expect_json(200);
    assert_fields(
        &replaced,
        &json!({"id": route_id, "paths": null, "hosts": ["x.test"], "strip_path": true}),
    );

    admin.delete("/services/svc/routes/r5").expect(204);
    admin.assert_missing("/routes/r5");
    admin.delete("/routes/r1").expect(204);
    admin.assert_missing(&format!("/routes/{route_id}"));
}

#[test]
fn consumers_and_key_auth_credentials_crud() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    let alice = admin.create(
        "/consumers",
        json!({"username": "alice", "custom_id": "a-1", "tags": ["staff"]}),
    );
    let alice_id = id_of(&alice);
    assert_timestamps(&alice, false);
    assert_fields(
        &alice,
        &json!({"username": "alice", "custom_id": "a-1", "tags": ["staff"]}),
    );
    assert_eq!(admin.fetch("/consumers/alice"), alice);
    assert_eq!(admin.fetch(&format!("/consumers/{alice_id}")), alice);
    assert_eq!(
        admin.fetch("/consumers?custom_id=a-1")["data"],
        json!([alice])
    );
    let only_custom_id = admin.create("/consumers", json!({"custom_id": "c-2"}));
    assert_eq!(only_custom_id["username"], Value::Null);

    // Credentials: given key, generated key, and reads by key and id.
    let given = admin.create(
        "/consumers/alice/key-auth",
        json!({"key": "alice-secret-1"}),
    );
    let given_id = id_of(&given);
    assert_timestamps(&given, false);
    assert_fields(
        &given,
        &json!({"key": "alice-secret-1", "consumer": {"id": alice_id}, "ttl": null, "tags": null}),
    );
    let generated = admin.create("/consumers/alice/key-auth", json!({}));
    let generated_key = generated["key"].as_str().unwrap_or_default().to_owned();
    assert!(
        generated_key.len() >= 32 && generated_key.chars().all(|c| c.is_ascii_alphanumeric()),
        "a generated key must be long and alphanumeric: {generated:#}"
    );
    let top_level = admin.create(
        "/key-auths",
        json!({"key": "alice-secret-3", "consumer": {"username": "alice"}}),
    );
    assert_eq!(top_level["consumer"], json!({"id": alice_id}));

    assert_eq!(admin.fetch("/key-auths/alice-secret-1"), given);
    assert_eq!(admin.fetch(&format!("/key-auths/{given_id}")), given);
    assert_eq!(
        admin.fetch("/consumers/alice/key-auth/alice-secret-1"),
        given
    );
    assert_eq!(
        admin.fetch(&format!("/consumers/alice/key-auth/{given_id}")),
        given
    );
    assert_eq!(admin.fetch("/key-auths/alice-secret-1/consumer"), alice);
    let mut keys = sorted_field(&admin.fetch("/consumers/alice/key-auth"), "key");
    keys.retain(|key| key != &generated_key);
    assert_eq!(keys, ["alice-secret-1", "alice-secret-3"]);
    assert_eq!(ids(&admin.fetch("/key-auths")).len(), 3);
    admin.assert_missing("/consumers/c-2/key-auth/alice-secret-1");

    // PUT under the consumer by id: create with that id, then replace.
    let fixed_id = "5f0c8a52-2b7e-4d7c-9a0f-3c4e8b1d2a11";
    let put = admin
        .put(
            &format!("/consumers/alice/key-auth/{fixed_id}"),
            json!({"key": "alice-secret-4"}),
        )
        .expect_json(200);
    assert_fields(
        &put,
        &json!({"id": fixed_id, "key": "alice-secret-4", "consumer": {"id": alice_id}}),
    );
    let patched = admin
        .patch(
            &format!("/key-auths/{fixed_id}"),
            json!({"tags": ["rotated"]}),
        )
        .expect_json(200);
    assert_fields(
        &patched,
        &json!({"key": "alice-secret-4", "tags": ["rotated"]}),
    );

    // PATCH and PUT of the consumer itself.
    let renamed = admin
        .patch("/consumers/alice", json!({"custom_id": "a-9"}))
        .expect_json(200);
    assert_fields(
        &renamed,
        &json!({"id": alice_id, "username": "alice", "custom_id": "a-9"}),
    );
    let upserted = admin
        .put("/consumers/bob", json!({"custom_id": "b-1"}))
        .expect_json(200);
    assert_fields(&upserted, &json!({"username": "bob", "custom_id": "b-1"}));

    admin
        .delete("/consumers/alice/key-auth/alice-secret-1")
        .expect(204);
    admin.assert_missing("/key-auths/alice-secret-1");
    admin.delete("/key-auths/alice-secret-3").expect(204);
    admin.delete("/key-auths/never-existed").expect(204);
    admin.assert_missing("/key-auths/alice-secret-3");
}

#[test]
fn plugins_crud_global_and_scoped() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    let service = admin.create("/services", json!({"name": "svc", "host": "a.test"}));
    let route = admin.create(
        "/services/svc/routes",
        json!({"name": "r", "paths": ["/r"]}),
    );
    let consumer = admin.create("/consumers", json!({"username": "carol"}));

    let answer = admin.post("/plugins", json!({"name": "key-auth"}));
    let global = answer.expect_json(201);
    let global_id = id_of(&global);
    assert_timestamps(&global, false);
    assert_fields(
        &global,
        &json!({
            "name": "key-auth",
            "instance_name": null,
            "enabled": true,
            "protocols": ["grpc", "grpcs", "http", "https"],
            "route": null,
            "service": null,
            "consumer": null,
            "tags": null,
        }),
    );
    assert_fields(
        &global["config"],
        &json!({
            "key_names": ["apikey"],
            "hide_credentials": false,
            "key_in_header": true,
            "key_in_query": true,
            "key_in_body": false,
            "run_on_preflight": true,
        }),
    );

    // Scoped through nested URLs.
    let on_service = admin.create(
        "/services/svc/plugins",
        json!({"name": "key-auth", "config": {"key_names": ["x-key"]}}),
    );
    assert_eq!(on_service["service"], json!({"id": id_of(&service)}));
    assert_eq!(on_service["config"]["key_names"], json!(["x-key"]));
    let on_route = admin.create(
        "/routes/r/plugins",
        json!({"name": "request-termination", "config": {"status_code": 418}}),
    );
    assert_eq!(on_route["route"], json!({"id": id_of(&route)}));
    let on_consumer = admin.create(
        "/consumers/carol/plugins",
        json!({"name": "request-termination"}),
    );
    assert_eq!(on_consumer["consumer"], json!({"id": id_of(&consumer)}));
    assert_eq!(on_consumer["config"]["status_code"], 503);

    assert_eq!(ids(&admin.fetch("/plugins")).len(), 4);
    assert_eq!(
        ids(&admin.fetch("/services/svc/plugins")),
        [id_of(&on_service)]
    );
    assert_eq!(ids(&admin.fetch("/routes/r/plugins")), [id_of(&on_route)]);
    assert_eq!(
        ids(&admin.fetch("/consumers/carol/plugins")),
        [id_of(&on_consumer)]
    );
    let enabled_in_cluster = admin.fetch("/")["plugins"]["enabled_in_cluster"].clone();
    for name in ["key-auth", "request-termination"] {
        assert!(
            enabled_in_cluster
                .as_array()
                .is_some_and(|names| names.contains(&json!(name))),
            "{name} is in use: {enabled_in_cluster}"
        );
    }

    // PATCH keeps the rest of the config; PUT by instance_name upserts.
    let disabled = admin
        .patch(&format!("/plugins/{global_id}"), json!({"enabled": false}))
        .expect_json(200);
    assert_eq!(disabled["enabled"], false);
    assert_eq!(disabled["config"], global["config"]);
    let patched_config = admin
        .patch(
            &format!("/plugins/{global_id}"),
            json!({"config": {"hide_credentials": true}}),
        )
        .expect_json(200);
    assert_eq!(patched_config["config"]["hide_credentials"], true);
    assert_eq!(patched_config["config"]["key_names"], json!(["apikey"]));

    let named = admin
        .put(
            "/plugins/teapot",
            json!({"name": "request-termination", "service": {"id": id_of(&service)},
                "config": {"status_code": 418, "message": "short and stout"}}),
        )
        .expect_json(200);
    assert_fields(
        &named,
        &json!({"instance_name": "teapot", "name": "request-termination"}),
    );
    assert_eq!(admin.fetch("/plugins/teapot"), named);

    // An unknown plugin is a schema violation on `name`.
    let unknown = admin.post("/plugins", json!({"name": "no-such-plugin"}));
    assert_error(
        &unknown,
        400,
        2,
        "schema violation",
        Some(
            json!({"name": "plugin 'no-such-plugin' not enabled; add it to the 'plugins' configuration property"}),
        ),
    );
    // A second plugin of a name on the same scope is a unique violation.
    let twice = admin.post("/plugins", json!({"name": "key-auth"}));
    assert_error(
        &twice,
        409,
        5,
        "unique constraint violation",
        Some(json!({"consumer": null, "name": "key-auth", "route": null, "service": null})),
    );
    assert_eq!(
        twice.json()["message"],
        "UNIQUE violation detected on '{consumer=null,name=\"key-auth\",route=null,service=null}'",
        "{twice}"
    );

    admin.delete(&format!("/plugins/{global_id}")).expect(204);
    admin.assert_missing(&format!("/plugins/{global_id}"));
    admin.delete("/plugins/teapot").expect(204);
    admin.assert_missing("/plugins/teapot");
}

// ----- listing -------------------------------------------------------------------

#[test]
fn pagination_follows_size_offset_and_next() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);

    // Exactly Kong's empty page.
    assert_eq!(admin.fetch("/services"), json!({"data": [], "next": null}));

    for n in 1..=5 {
        admin.create(
            "/services",
            json!({"name": format!("s{n}"), "host": "a.test"}),
        );
    }
    let mut seen = Vec::new();
    let mut path = "/services?size=2".to_owned();
    let mut pages = 0;
    loop {
        let page = admin.fetch(&path);
        pages += 1;
        let page_ids = ids(&page);
        assert!(
            page_ids.len() <= 2,
            "a page holds at most size entities: {page:#}"
        );
        seen.extend(page_ids);
        match page["next"].as_str() {
            Some(next) => {
                let offset = page["offset"].as_str().unwrap_or_default();
                assert!(!offset.is_empty(), "next without offset: {page:#}");
                assert!(
                    next.starts_with("/services?offset=") && next.contains("size=2"),
                    "next must carry the offset and size: {page:#}"
                );
                path = next.to_owned();
            }
            None => {
                assert_eq!(page["next"], Value::Null, "{page:#}");
                assert!(
                    page.get("offset").is_none(),
                    "no offset on the last page: {page:#}"
                );
                break;
            }
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3, "5 entities in pages of 2");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        (seen.len(), unique.len()),
        (5, 5),
        "every entity exactly once: {seen:?}"
    );

    // Nested collections page the same way.
    for n in 1..=3 {
        admin.create("/services/s1/routes", json!({"paths": [format!("/r{n}")]}));
    }
    let first = admin.fetch("/services/s1/routes?size=2");
    assert_eq!(ids(&first).len(), 2, "{first:#}");
    let next = first["next"].as_str().unwrap_or_default().to_owned();
    assert!(next.starts_with("/services/s1/routes?offset="), "{first:#}");
    let second = admin.fetch(&next);
    assert_eq!(ids(&second).len(), 1, "{second:#}");
    assert_eq!(second["next"], Value::Null);

    // Bad sizes and offsets are 400s in Kong's shapes.
    let not_a_number = admin.get("/services?size=abc");
    assert_eq!(
        not_a_number.expect_json(400),
        json!({"code": 9, "name": "invalid size", "message": "size must be a number"}),
        "{not_a_number}"
    );
    for size in ["0", "1001"] {
        let out_of_range = admin.get(&format!("/services?size={size}"));
        assert_eq!(
            out_of_range.expect_json(400),
            json!({"code": 9, "name": "invalid size",
                "message": "size must be an integer between 1 and 1000"}),
            "{out_of_range}"
        );
    }
    let bad_offset = admin.get("/services?offset=x");
    assert_eq!(
        bad_offset.expect_json(400),
        json!({"code": 7, "name": "invalid offset",
            "message": "'x' is not a valid offset: bad base64 encoding"}),
        "{bad_offset}"
    );
    // Unknown query arguments are ignored.
    assert_eq!(ids(&admin.fetch("/services?whatever=1")).len(), 5);
}

#[test]
fn tags_filter_with_and_or() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    for (name, tags) in [
        ("ab", json!(["a", "b"])),
        ("a", json!(["a"])),
        ("b", json!(["b"])),
        ("c", json!(["c"])),
        ("none", Value::Null),
    ] {
        admin.create(
            "/services",
            json!({"name": name, "host": "h.test", "tags": tags}),
        );
    }
    let names =
        |query: &str| sorted_field(&admin.fetch(&format!("/services?tags={query}")), "name");
    assert_eq!(names("a"), ["a", "ab"]);
    assert_eq!(names("a,b"), ["ab"], "comma means AND");
    assert_eq!(names("a/c"), ["a", "ab", "c"], "slash means OR");
    assert_eq!(names("zzz"), Vec::<String>::new());

    let page = admin.fetch("/services?tags=a&size=1");
    assert_eq!(ids(&page).len(), 1, "{page:#}");
    let next = page["next"].as_str().unwrap_or_default().to_owned();
    assert!(
        next.contains("tags=a"),
        "next must carry the tags: {page:#}"
    );
    let rest = admin.fetch(&next);
    assert_eq!(ids(&rest).len(), 1, "{rest:#}");
    assert_eq!(rest["next"], Value::Null, "{rest:#}");

    for bad in ["a,b/c", "1,2,3,4,5,6"] {
        let answer = admin.get(&format!("/services?tags={bad}"));
        assert_eq!(answer.status, 400, "tags={bad} must be refused\n{answer}");
    }
}

// ----- errors ------------------------------------------------------------------------

#[test]
fn schema_violations_are_400_with_fields() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);

    let port = admin.post("/services", json!({"host": "a.test", "port": 70000}));
    assert_eq!(
        port.expect_json(400),
        json!({
            "code": 2,
            "name": "schema violation",
            "message": "schema violation (port: value should be between 0 and 65535)",
            "fields": {"port": "value should be between 0 and 65535"},
        }),
        "{port}"
    );
    let unknown = admin.post("/services", json!({"host": "a.test", "foo": 1}));
    assert_eq!(
        unknown.expect_json(400),
        json!({
            "code": 2,
            "name": "schema violation",
            "message": "schema violation (foo: unknown field)",
            "fields": {"foo": "unknown field"},
        }),
        "{unknown}"
    );
    let missing_host = admin.post("/services", json!({"name": "x"}));
    assert_error(
        &missing_host,
        400,
        2,
        "schema violation",
        Some(json!({"host": "required field missing"})),
    );
    let no_matcher = admin.post("/routes", json!({"name": "bare"}));
    assert_error(
        &no_matcher,
        400,
        2,
        "schema violation",
        Some(json!({"@entity": [
            "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'"
        ]})),
    );
    let integer = admin.post(
        "/routes",
        json!({"paths": ["/a"], "regex_priority": "high"}),
    );
    assert_error(
        &integer,
        400,
        2,
        "schema violation",
        Some(json!({"regex_priority": "expected an integer"})),
    );
    let protocol = admin.post(
        "/routes",
        json!({"paths": ["/a"], "protocols": ["http", "gopher"]}),
    );
    assert!(
        !protocol.expect_json(400)["fields"]["protocols"].is_null(),
        "{protocol}"
    );
    let nobody = admin.post("/consumers", json!({"tags": ["t"]}));
    assert_error(
        &nobody,
        400,
        2,
        "schema violation",
        Some(json!({"@entity": [
            "at least one of these fields must be non-empty: 'custom_id', 'username'"
        ]})),
    );
    let several = admin.post(
        "/services",
        json!({"host": "a.test", "port": -1, "retries": "x"}),
    );
    let body = several.expect_json(400);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|message| message.starts_with("2 schema violations (")),
        "{several}"
    );
    assert_eq!(
        body["fields"].as_object().map(|fields| fields.len()),
        Some(2),
        "{several}"
    );
    assert_eq!(
        admin.fetch("/services")["data"],
        json!([]),
        "nothing invalid may be stored"
    );
}

#[test]
fn unique_violations_are_409() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    admin.create("/services", json!({"name": "svc1", "host": "a.test"}));
    let taken = admin.post("/services", json!({"name": "svc1", "host": "b.test"}));
    assert_eq!(
        taken.expect_json(409),
        json!({
            "code": 5,
            "name": "unique constraint violation",
            "message": "UNIQUE violation detected on '{name=\"svc1\"}'",
            "fields": {"name": "svc1"},
        }),
        "{taken}"
    );
    let existing = admin.create("/services", json!({"name": "svc2", "host": "a.test"}));
    let renamed = admin.patch("/services/svc2", json!({"name": "svc1"}));
    assert_error(
        &renamed,
        409,
        5,
        "unique constraint violation",
        Some(json!({"name": "svc1"})),
    );
    assert_eq!(
        admin.fetch("/services/svc2"),
        existing,
        "a refused PATCH changes nothing"
    );

    admin.create("/consumers", json!({"username": "dave", "custom_id": "d"}));
    let username = admin.post("/consumers", json!({"username": "dave"}));
    assert_error(
        &username,
        409,
        5,
        "unique constraint violation",
        Some(json!({"username": "dave"})),
    );
    let custom_id = admin.post("/consumers", json!({"username": "other", "custom_id": "d"}));
    assert_error(
        &custom_id,
        409,
        5,
        "unique constraint violation",
        Some(json!({"custom_id": "d"})),
    );

    admin.create("/consumers/dave/key-auth", json!({"key": "same-key"}));
    let key = admin.post("/consumers/other-one/key-auth", json!({"key": "same-key"}));
    key.expect(404);
    admin.create("/consumers", json!({"username": "erin"}));
    let key = admin.post("/consumers/erin/key-auth", json!({"key": "same-key"}));
    assert_error(
        &key,
        409,
        5,
        "unique constraint violation",
        Some(json!({"key": "same-key"})),
    );
}

#[test]
fn foreign_key_violations_are_400() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    let missing = "3d9c2f5e-0a4b-4c61-8e2d-7f1a9b6c5d40";
    let by_id = admin.post(
        "/routes",
        json!({"paths": ["/a"], "service": {"id": missing}}),
    );
    assert_eq!(
        by_id.expect_json(400),
        json!({
            "code": 4,
            "name": "foreign key violation",
            "message": format!("the foreign key '{{id=\"{missing}\"}}' does not reference an existing 'services' entity."),
            "fields": {"service": {"id": missing}},
        }),
        "{by_id}"
    );
    let by_name = admin.post(
        "/routes",
        json!({"paths": ["/a"], "service": {"name": "non-existing"}}),
    );
    let body = by_name.expect_json(400);
    assert_eq!(body["code"], 13, "{by_name}");
    assert_eq!(
        body["message"],
        "foreign key unresolved (service.name: the foreign key cannot be resolved with '{name=\"non-existing\"}' for an existing 'services' entity)",
        "{by_name}"
    );
    let credential = admin.post(
        "/key-auths",
        json!({"key": "k", "consumer": {"id": missing}}),
    );
    assert_error(
        &credential,
        400,
        4,
        "foreign key violation",
        Some(json!({"consumer": {"id": missing}})),
    );
    assert_eq!(admin.fetch("/routes")["data"], json!([]));
}

#[test]
fn wrong_methods_are_405_and_unknown_paths_404() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    admin.create("/services", json!({"name": "svc", "host": "a.test"}));
    let cases = [
        (Method::DELETE, "/services"),
        (Method::PUT, "/services"),
        (Method::PATCH, "/routes"),
        (Method::POST, "/services/svc"),
        (Method::POST, "/"),
        (Method::DELETE, "/status"),
    ];
    for (method, path) in cases {
        let answer = admin.call(method, path, None);
        assert_eq!(
            (answer.status, answer.json()),
            (405, json!({"message": "Method not allowed"})),
            "{answer}"
        );
    }
    for path in ["/nothing-here", "/services/svc/widgets", "/upstreams"] {
        let answer = admin.get(path);
        assert_eq!(answer.status, 404, "{answer}");
        assert_eq!(answer.json(), json!({"message": "Not found"}), "{answer}");
    }
}

#[test]
fn non_json_bodies_are_415_and_malformed_json_400() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    let text = send(
        admin
            .request(Method::POST, "/services")
            .header("Content-Type", "text/plain")
            .body("host=a.test"),
    );
    assert_eq!(text.status, 415, "{text}");
    assert!(text.json()["message"].is_string(), "{text}");
    let no_type = send(
        admin
            .request(Method::POST, "/services")
            .body("{\"host\":\"a.test\"}"),
    );
    assert!(
        matches!(no_type.status, 400 | 415),
        "a body without Content-Type is not JSON\n{no_type}"
    );

    for broken in [
        "{\"host\": ",
        "[1, 2]",
        "null",
        "\"text\"",
        "{\"host\": \"a\"} trailing",
    ] {
        let answer = send(
            admin
                .request(Method::POST, "/services")
                .header("Content-Type", "application/json")
                .body(broken),
        );
        assert_eq!(
            (answer.status, answer.json()),
            (400, json!({"message": "Cannot parse JSON body"})),
            "body {broken:?}\n{answer}"
        );
    }
    let invalid_utf8 = send(
        admin
            .request(Method::POST, "/services")
            .header("Content-Type", "application/json")
            .body(vec![b'{', b'"', 0xff, 0xfe, b'"', b'}']),
    );
    assert_eq!(invalid_utf8.status, 400, "{invalid_utf8}");

    // Forms are accepted, typed by the schema, as Kong does.
    let form = send(
        admin
            .request(Method::POST, "/services")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("name=formed&host=f.test&port=8080&tags[]=x"),
    );
    let created = form.expect_json(201);
    assert_fields(
        &created,
        &json!({"name": "formed", "port": 8080, "tags": ["x"]}),
    );
    assert_eq!(ids(&admin.fetch("/services")).len(), 1);
}

/// JSON bodies that must be refused: method, path, body, status.
#[rustfmt::skip]
const BAD_JSON_BODIES: &[(&str, &str, &str, u16)] = &[
    ("POST", "/services", r#"{"host": 123}"#, 400),
    ("POST", "/services", r#"{"host": "h", "port": "eighty"}"#, 400),
    ("POST", "/services", r#"{"host": "h", "port": 1e40}"#, 400),
    ("POST", "/services", r#"{"url": "not a url"}"#, 400),
    ("POST", "/services", r#"{"url": "http://"}"#, 400),
    ("POST", "/services", r#"{"host": "h", "tags": "x"}"#, 400),
    ("POST", "/services", r#"{"host": "h", "connect_timeout": 0}"#, 400),
    ("POST", "/services", r#"{"host": "h", "path": "//x"}"#, 400),
    ("POST", "/services", r#"{"host": "h", "protocol": "tcp", "path": "/x"}"#, 400),
    ("POST", "/services", r#"{"host": "h", "name": "has space"}"#, 400),
    ("POST", "/services", r#"{"host": "h", "id": "not-a-uuid"}"#, 400),
    ("POST", "/services", r#"{"host": "h", "enabled": "yes"}"#, 400),
    ("POST", "/services", r#"{"host": "h:80"}"#, 400),
    ("POST", "/routes", r#"{"paths": ["~/(unclosed"]}"#, 400),
    ("POST", "/routes", r#"{"paths": ["no-slash"]}"#, 400),
    ("POST", "/routes", r#"{"hosts": ["*.*.example.com"]}"#, 400),
    ("POST", "/routes", r#"{"paths": "/single"}"#, 400),
    ("POST", "/routes", r#"{"paths": ["/a"], "methods": ["get"]}"#, 400),
    ("POST", "/routes", r#"{"paths": ["/a"], "headers": {"host": ["x"]}}"#, 400),
    ("POST", "/routes", r#"{"paths": ["/a"], "headers": {"x": "not-an-array"}}"#, 400),
    ("POST", "/routes", r#"{"paths": ["/a"], "service": {"id": "not-a-uuid"}}"#, 400),
    ("POST", "/routes", r#"{"paths": ["/a"], "service": "no-such-service"}"#, 400),
    ("POST", "/routes", r#"{"paths": ["/a"], "service": 42}"#, 400),
    ("POST", "/routes", r#"{"paths": ["/a"], "protocols": ["http"], "snis": ["x.test"]}"#, 400),
    ("POST", "/routes", r#"{"paths": ["/a"], "protocols": []}"#, 400),
    ("POST", "/routes", r#"{"paths": ["/a"], "https_redirect_status_code": 200}"#, 400),
    ("POST", "/plugins", r#"{"name": 5}"#, 400),
    ("POST", "/plugins", r#"{"name": "key-auth", "config": "x"}"#, 400),
    ("POST", "/plugins", r#"{"name": "key-auth", "config": {"nope": 1}}"#, 400),
    ("POST", "/plugins", r#"{"name": "key-auth", "consumer": {"username": "u"}}"#, 400),
    ("POST", "/plugins", r#"{"name": "request-termination", "config": {"status_code": 99}}"#, 400),
    ("POST", "/plugins", r#"{"name": "request-termination", "route": {"id": "9a1e0a56-7f3c-4b8e-a1d2-c3b4a5968778"}}"#, 400),
    ("POST", "/consumers", r#"{}"#, 400),
    ("POST", "/consumers", r#"{"username": ["a"]}"#, 400),
    ("POST", "/key-auths", r#"{"key": "k"}"#, 400),
    ("POST", "/key-auths", r#"{"key": 7, "consumer": {"username": "u"}}"#, 400),
    ("POST", "/consumers/nobody/key-auth", r#"{}"#, 404),
    ("POST", "/services/nope/routes", r#"{"paths": ["/x"]}"#, 404),
    ("PUT", "/routes/r", r#"{}"#, 400),
    ("PUT", "/services/svc", r#"{"host": "h", "port": 99999}"#, 400),
    ("PATCH", "/services/svc", r#"{"port": "x"}"#, 400),
    ("PATCH", "/routes/r", r#"{"paths": null}"#, 400),
    ("PATCH", "/routes/r", r#"{"service": {"id": "9a1e0a56-7f3c-4b8e-a1d2-c3b4a5968778"}}"#, 400),
    ("POST", "/schemas/routes/validate", r#"{}"#, 400),
    ("POST", "/config", r#"{"services": {}}"#, 400),
    ("POST", "/config", r#"{"upstreams": []}"#, 400),
    ("POST", "/config", r#"{"services": [{"host": 1}]}"#, 400),
];

/// Other bodies that must be refused with a 4xx: path, content type, body.
const BAD_RAW_BODIES: &[(&str, &str, &[u8])] = &[
    (
        "/services",
        "application/x-www-form-urlencoded",
        b"host=h&port=abc",
    ),
    ("/services", "application/x-www-form-urlencoded", b"%%%=%%%"),
    ("/services", "multipart/form-data", b"--x\r\n"),
    (
        "/services",
        "multipart/form-data; boundary=x",
        b"--x\r\nbroken",
    ),
    ("/config", "application/json", b"[]"),
    (
        "/config",
        "application/x-www-form-urlencoded",
        b"services=1",
    ),
];

/// Odd URLs that must be refused with a 4xx: method, path.
const BAD_URLS: &[(&str, &str)] = &[
    ("GET", "/services/%FF"),
    ("GET", "/services/%"),
    ("GET", "/services?size=-1"),
    ("GET", "/services?size=1e400"),
    ("GET", "/services?offset=bm90IGpzb24%3D"),
    ("GET", "/services?tags=,,,"),
    ("GET", "/consumers?custom_id="),
    ("GET", "/schemas/plugins/..%2F..%2Fetc"),
    ("DELETE", "/routes/r/service"),
];

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("an HTTP method")
}

/// A 4xx with a JSON body (with a `message` when `needs_message`), or a
/// description of what came instead.
fn refusal_problem(answer: &Answer, expected: Option<u16>, needs_message: bool) -> Option<String> {
    let json = serde_json::from_str::<Value>(&answer.body).ok();
    let status_ok = match expected {
        Some(status) => answer.status == status,
        None => (400..500).contains(&answer.status),
    };
    let body_ok = json.is_some_and(|json| !needs_message || json["message"].is_string());
    if status_ok && body_ok {
        return None;
    }
    let mut text = answer.to_string();
    text.truncate(2000);
    let wanted = expected.map_or("a 4xx".to_owned(), |status| status.to_string());
    Some(format!("expected {wanted} with a JSON message:\n{text}\n"))
}

/// Bad input of many kinds: each must get a 4xx with a JSON message,
/// never a 5xx (a 500 means the gateway did not check something).
#[test]
fn bad_input_never_gives_a_server_error() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    admin.create("/services", json!({"name": "svc", "host": "a.test"}));
    admin.create(
        "/services/svc/routes",
        json!({"name": "r", "paths": ["/r"]}),
    );
    admin.create("/consumers", json!({"username": "u"}));

    let mut failures = Vec::new();
    for (name, path, body, expected) in BAD_JSON_BODIES {
        let body: Value = serde_json::from_str(body).expect("test bodies are JSON");
        let answer = admin.call(method(name), path, Some(&body));
        failures.extend(refusal_problem(&answer, Some(*expected), true));
    }
    for (path, content_type, body) in BAD_RAW_BODIES {
        let request = admin.request(Method::POST, path);
        let answer = send(
            request
                .header("Content-Type", *content_type)
                .body(body.to_vec()),
        );
        failures.extend(refusal_problem(&answer, None, false));
    }
    for (name, path) in BAD_URLS {
        let answer = admin.call(method(name), path, None);
        failures.extend(refusal_problem(&answer, None, false));
    }

    // JSON nested far deeper than any parser should follow.
    let deep = format!(
        "{{\"host\": {}1{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let request = admin.request(Method::POST, "/services");
    let answer = send(
        request
            .header("Content-Type", "application/json")
            .body(deep),
    );
    failures.extend(refusal_problem(&answer, Some(400), true));

    // A body over the limit: a server may answer 413 and close before
    // reading it all, and the client then sees the connection reset.
    let huge = admin
        .request(Method::POST, "/services")
        .header("Content-Type", "application/json")
        .body(vec![b' '; 2 << 20])
        .send();
    match huge {
        Ok(response) => {
            let answer = Answer::of(Method::POST, "/services (2 MiB)".to_owned(), response);
            failures.extend(refusal_problem(&answer, None, true));
        }
        Err(error) => eprintln!("2 MiB body: connection closed early ({error}); fine"),
    }

    assert!(
        failures.is_empty(),
        "{} bad requests were not refused properly:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The gateway is still fine and nothing bad was stored.
    assert_eq!(ids(&admin.fetch("/services")).len(), 1);
    assert_eq!(admin.fetch("/routes/r")["paths"], json!(["/r"]));
}

// ----- store rules -------------------------------------------------------------------

#[test]
fn deleting_a_service_with_routes_is_refused() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    let service = admin.create("/services", json!({"name": "svc", "host": "a.test"}));
    admin.create(
        "/services/svc/routes",
        json!({"name": "r", "paths": ["/r"]}),
    );

    let refused = admin.delete("/services/svc");
    let body = refused.expect_json(400);
    assert_eq!(body["code"], 4, "{refused}");
    assert_eq!(body["name"], "foreign key violation", "{refused}");
    assert_eq!(
        body["message"], "an existing 'routes' entity references this 'services' entity",
        "{refused}"
    );
    assert_eq!(
        body["fields"],
        json!({"@referenced_by": "routes"}),
        "{refused}"
    );
    assert_eq!(admin.fetch("/services/svc"), service);
    assert_eq!(
        admin.fetch("/routes/r")["service"],
        json!({"id": id_of(&service)})
    );

    admin.delete("/routes/r").expect(204);
    admin.delete("/services/svc").expect(204);
    admin.assert_missing("/services/svc");
}

#[test]
fn deleting_a_service_or_route_removes_its_plugins() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    admin.create("/services", json!({"name": "svc", "host": "a.test"}));
    admin.create(
        "/services/svc/routes",
        json!({"name": "r", "paths": ["/r"]}),
    );
    let on_route = admin.create("/routes/r/plugins", json!({"name": "key-auth"}));
    let on_service = admin.create("/services/svc/plugins", json!({"name": "key-auth"}));
    admin.delete("/routes/r").expect(204);
    admin.assert_missing(&format!("/plugins/{}", id_of(&on_route)));
    admin.delete("/services/svc").expect(204);
    admin.assert_missing(&format!("/plugins/{}", id_of(&on_service)));
    assert_eq!(admin.fetch("/plugins")["data"], json!([]));
}

#[test]
fn deleting_a_consumer_removes_its_credentials_and_plugins() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    admin.create("/consumers", json!({"username": "gone"}));
    admin.create("/consumers", json!({"username": "stays"}));
    let gone_key = admin.create("/consumers/gone/key-auth", json!({"key": "gone-key"}));
    let stays_key = admin.create("/consumers/stays/key-auth", json!({"key": "stays-key"}));
    let gone_plugin = admin.create(
        "/consumers/gone/plugins",
        json!({"name": "request-termination"}),
    );
    let stays_plugin = admin.create(
        "/consumers/stays/plugins",
        json!({"name": "request-termination"}),
    );
    let global = admin.create("/plugins", json!({"name": "key-auth"}));

    admin.delete("/consumers/gone").expect(204);
    admin.assert_missing("/consumers/gone");
    admin.assert_missing("/key-auths/gone-key");
    admin.assert_missing(&format!("/key-auths/{}", id_of(&gone_key)));
    admin.assert_missing(&format!("/plugins/{}", id_of(&gone_plugin)));
    assert_eq!(admin.fetch("/key-auths")["data"], json!([stays_key]));
    let mut left = ids(&admin.fetch("/plugins"));
    left.sort();
    let mut expected = vec![id_of(&stays_plugin), id_of(&global)];
    expected.sort();
    assert_eq!(left, expected);
}

#[test]
fn post_config_replaces_everything_atomically() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    admin.create("/services", json!({"name": "old", "host": "old.test"}));
    admin.create("/consumers", json!({"username": "old-user"}));

    let service_id = "6c0c3f1e-1111-4a4a-8b8b-000000000001";
    let route_id = "6c0c3f1e-2222-4a4a-8b8b-000000000002";
    let consumer_id = "6c0c3f1e-3333-4a4a-8b8b-000000000003";
    // gwctl's flat form (no `_format_version`; Kong's form, with it, is
    // answered as Kong does: see declarative_config.rs).
    let config = json!({
        "services": [{"id": service_id, "name": "new", "host": "new.test", "port": 8080}],
        "routes": [{"id": route_id, "name": "new-route", "paths": ["/new"],
            "service": {"id": service_id}}],
        "consumers": [{"id": consumer_id, "username": "new-user"}],
        "keyauth_credentials": [{"key": "new-key", "consumer": {"id": consumer_id}}],
    });
    let answer = admin.post("/config", config);
    let summary = answer.expect_json(201);
    assert_eq!(summary["changes"]["services"]["created"], 1, "{answer}");
    assert_eq!(summary["changes"]["services"]["deleted"], 1, "{answer}");
    assert_eq!(summary["changes"]["consumers"]["deleted"], 1, "{answer}");

    let services = admin.fetch("/services");
    assert_eq!(ids(&services), [service_id], "the old service must be gone");
    assert_fields(
        &services["data"][0],
        &json!({"name": "new", "port": 8080, "retries": 5, "protocol": "http"}),
    );
    assert_timestamps(&services["data"][0], true);
    assert_eq!(
        admin.fetch("/routes/new-route")["service"],
        json!({"id": service_id})
    );
    assert_eq!(
        admin.fetch("/key-auths/new-key")["consumer"],
        json!({"id": consumer_id})
    );
    admin.assert_missing("/consumers/old-user");
    let before = (
        admin.fetch("/services"),
        admin.fetch("/routes"),
        admin.fetch("/consumers"),
        admin.fetch("/key-auths"),
    );

    // An invalid entity in the middle: nothing of the file is applied.
    let invalid = json!({
        "services": [
            {"name": "first", "host": "a.test"},
            {"name": "broken", "host": "b.test", "port": 99999},
            {"name": "last", "host": "c.test"},
        ],
        "consumers": [{"username": "would-be"}],
    });
    let refused = admin.post("/config", invalid);
    let body = refused.expect_json(400);
    assert_eq!(body["code"], 2, "{refused}");
    assert!(body["message"].is_string(), "{refused}");
    let after = (
        admin.fetch("/services"),
        admin.fetch("/routes"),
        admin.fetch("/consumers"),
        admin.fetch("/key-auths"),
    );
    assert_eq!(
        after, before,
        "a refused /config must leave the store unchanged"
    );

    // A reference to an entity that is not in the file is refused too.
    let dangling = json!({
        "routes": [{"name": "dangling", "paths": ["/d"],
            "service": {"id": "6c0c3f1e-9999-4a4a-8b8b-000000000009"}}],
    });
    let refused = admin.post("/config", dangling);
    assert_eq!(refused.status, 400, "{refused}");
    // So is a unique key used twice.
    let duplicate = json!({
        "services": [{"name": "twin", "host": "a.test"}, {"name": "twin", "host": "b.test"}],
    });
    let refused = admin.post("/config", duplicate);
    assert!(matches!(refused.status, 400 | 409), "{refused}");
    let unchanged = (
        admin.fetch("/services"),
        admin.fetch("/routes"),
        admin.fetch("/consumers"),
        admin.fetch("/key-auths"),
    );
    assert_eq!(unchanged, before);

    // An empty configuration empties the store.
    admin
        .post("/config", json!({"_format_version": "3.0"}))
        .expect(201);
    for collection in [
        "/services",
        "/routes",
        "/consumers",
        "/key-auths",
        "/plugins",
    ] {
        assert_eq!(
            admin.fetch(collection),
            json!({"data": [], "next": null}),
            "{collection}"
        );
    }
}

// ----- access ----------------------------------------------------------------------

/// `POST /config` reads each entity from its own slice of the body (never
/// the body as one tree): escapes, odd spacing and a repeated kind key must
/// come out as a parsed body would, and refusals keep their order.
#[test]
fn post_config_reads_entities_from_the_raw_body() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    let post = |text: &str| {
        let request = admin.request(Method::POST, "/config");
        send(
            request
                .header("Content-Type", "application/json; charset=utf-8")
                .body(text.as_bytes().to_vec()),
        )
    };
    // A repeated key replaces the earlier one, as in a parsed object; the
    // escapes are decoded per entity.
    let text = r#"{ "_comment" : "flat",
        "consumers": [ {"username": "dropped"} ],
        "services" : [ { "name" : "caf\u00e9" , "host":"a.test",
                         "tags": ["t\"q", "\ud83d\ude00"] } ],
        "consumers"	:[{"username":"zo\u00eb","custom_id":"c\/d"}] }"#;
    post(text).expect(201);
    let service = admin.fetch("/services/caf%C3%A9");
    assert_eq!(service["name"], "café");
    assert_eq!(service["tags"], json!(["t\"q", "😀"]));
    let consumers = admin.fetch("/consumers")["data"].clone();
    assert_eq!(consumers.as_array().map(Vec::len), Some(1), "{consumers}");
    assert_eq!(consumers[0]["username"], "zoë");
    assert_eq!(consumers[0]["custom_id"], "c/d");

    // An unknown kind is named even after a malformed kind; a malformed
    // kind is named without a position; a broken body is not JSON.
    let unknown = post(r#"{"services": 1, "upstreams": []}"#);
    assert_eq!(
        unknown.expect_json(400),
        json!({"message": "unknown entity kind 'upstreams'"})
    );
    let not_a_list = post(r#"{"services": {"name": "x"}}"#);
    assert_eq!(
        not_a_list.expect_json(400),
        json!({"message": "invalid configuration: invalid type: map, expected a sequence"})
    );
    for broken in [
        r#"{"services": [{"name": "x"}"#,
        r#"{"services": []} []"#,
        "[]",
    ] {
        let answer = post(broken);
        assert_eq!(
            answer.expect_json(400),
            json!({"message": "Cannot parse JSON body"}),
            "{broken}"
        );
    }
    // Nothing of the refused bodies was applied.
    assert_eq!(
        admin.fetch("/services")["data"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn admin_token_is_required_when_configured() {
    let gateway = Gateway::start(GatewayOptions {
        admin_token: Some("s3cret-token".to_owned()),
        ..GatewayOptions::default()
    });
    let anonymous = Admin::new(&gateway);
    let wrong = Admin::with_token(&gateway, "not-the-token");
    let right = Admin::with_token(&gateway, "s3cret-token");

    for admin in [&anonymous, &wrong] {
        for path in ["/", "/status", "/services"] {
            let answer = admin.get(path);
            assert_eq!(answer.status, 401, "{answer}");
            assert!(answer.json()["message"].is_string(), "{answer}");
        }
        let write = admin.post("/services", json!({"name": "sneaky", "host": "a.test"}));
        assert_eq!(write.status, 401, "{write}");
    }
    right.fetch("/");
    right.create("/services", json!({"name": "allowed", "host": "a.test"}));
    assert_eq!(sorted_field(&right.fetch("/services"), "name"), ["allowed"]);
}

#[test]
fn requests_naming_another_host_are_refused() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    let port = gateway.admin_addr().port();

    let rebound = send(
        admin
            .request(Method::GET, "/services")
            .header("Host", "evil.example"),
    );
    assert_eq!(
        rebound.status, 403,
        "a foreign Host must be refused\n{rebound}"
    );
    let rebound_write = send(
        admin
            .request(Method::POST, "/services")
            .header("Host", format!("evil.example:{port}"))
            .header("Content-Type", "application/json")
            .body(json!({"name": "planted", "host": "a.test"}).to_string()),
    );
    assert_eq!(rebound_write.status, 403, "{rebound_write}");
    let cross_site = send(
        admin
            .request(Method::POST, "/services")
            .header("Origin", "http://evil.example")
            .header("Content-Type", "application/json")
            .body(json!({"name": "planted", "host": "a.test"}).to_string()),
    );
    assert_eq!(
        cross_site.status, 403,
        "a foreign Origin must be refused\n{cross_site}"
    );

    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "localhost".to_owned(),
    ] {
        let answer = send(
            admin
                .request(Method::GET, "/services")
                .header("Host", host.as_str()),
        );
        assert_eq!(answer.status, 200, "Host {host} is this node\n{answer}");
    }
    assert_eq!(
        admin.fetch("/services")["data"],
        json!([]),
        "nothing was planted"
    );
}

// ----- persistence and effect ------------------------------------------------------

#[test]
fn data_survives_a_restart_and_a_crash() {
    let mut gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    admin.create(
        "/services",
        json!({"name": "svc", "host": "a.test", "tags": ["keep"]}),
    );
    admin.create(
        "/services/svc/routes",
        json!({"name": "r", "paths": ["/r"]}),
    );
    admin.create("/consumers", json!({"username": "ursula"}));
    admin.create("/consumers/ursula/key-auth", json!({"key": "ursula-key"}));
    admin.create("/services/svc/plugins", json!({"name": "key-auth"}));
    let snapshot = |admin: &Admin| {
        [
            "/services",
            "/routes",
            "/consumers",
            "/key-auths",
            "/plugins",
        ]
        .map(|collection| admin.fetch(collection))
    };
    let before = snapshot(&admin);

    gateway.restart();
    let admin = Admin::new(&gateway);
    assert_eq!(snapshot(&admin), before, "after a clean restart");
    assert_eq!(admin.fetch("/services/svc")["tags"], json!(["keep"]));

    // A write acknowledged with 2xx survives SIGKILL right after.
    admin.create("/consumers", json!({"username": "after-restart"}));
    admin.delete("/key-auths/ursula-key").expect(204);
    let acknowledged = snapshot(&admin);
    gateway.kill9();
    gateway.restart();
    let admin = Admin::new(&gateway);
    assert_eq!(snapshot(&admin), acknowledged, "after SIGKILL");
    admin.fetch("/consumers/after-restart");
    admin.assert_missing("/key-auths/ursula-key");
}

#[test]
fn admin_writes_take_effect_on_the_next_proxied_request() {
    let echo = Echo::start();
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = Admin::new(&gateway);
    let proxy = |path: &str| send(e2e::http_client().get(gateway.proxy_url(path)));

    assert_eq!(proxy("/live").status, 404);
    admin.create("/services", echo_service("svc", &echo));
    admin.create(
        "/services/svc/routes",
        json!({"name": "r", "paths": ["/live"]}),
    );
    let answer = proxy("/live/x");
    assert_eq!(
        answer.status, 200,
        "the new route must serve at once\n{answer}"
    );
    assert_eq!(answer.json()["path"], "/x", "{answer}");

    admin
        .patch("/routes/r", json!({"paths": ["/moved"]}))
        .expect(200);
    assert_eq!(
        proxy("/live/x").status,
        404,
        "the old path must stop at once"
    );
    assert_eq!(proxy("/moved/y").json()["path"], "/y");

    admin
        .patch("/services/svc", json!({"path": "/prefixed"}))
        .expect(200);
    assert_eq!(proxy("/moved/y").json()["path"], "/prefixed/y");

    admin
        .patch("/services/svc", json!({"enabled": false}))
        .expect(200);
    assert_eq!(
        proxy("/moved/y").status,
        404,
        "a disabled service is not routed"
    );
    admin
        .patch("/services/svc", json!({"enabled": true}))
        .expect(200);
    assert_eq!(proxy("/moved/y").status, 200);

    admin.create(
        "/routes/r/plugins",
        json!({"name": "request-termination", "config": {"status_code": 418}}),
    );
    assert_eq!(
        proxy("/moved/y").status,
        418,
        "a new plugin applies at once"
    );

    admin.delete("/routes/r").expect(204);
    assert_eq!(
        proxy("/moved/y").status,
        404,
        "a deleted route stops at once"
    );

    let config = json!({"services": [{"name": "cfg", "host": echo.addr().ip().to_string(),
        "port": echo.addr().port(), "id": "7d1e2f3a-0000-4b4b-8c8c-000000000001"}],
        "routes": [{"paths": ["/from-config"],
        "service": {"id": "7d1e2f3a-0000-4b4b-8c8c-000000000001"}}]});
    admin.post("/config", config).expect(201);
    assert_eq!(
        proxy("/from-config/z").json()["path"],
        "/z",
        "POST /config applies at once"
    );
}
