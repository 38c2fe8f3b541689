//! Kong's declarative `POST /config` and `GET /config`, case by case from
//! Kong's `spec/02-integration/04-admin_api/15-off_spec.lua` ("Admin API
//! #off", `/config`, and "[flattened errors]"): the file as a JSON body, a
//! YAML body, a JSON or YAML string under `config`; `?check_hash=1`; code
//! 14 errors with `fields` positioned like the input; `flatten_errors`;
//! `GET /config` as Kong's YAML export. Then Kong's nested form (what
//! DB-less users and the Ingress Controller post) applied and proxied, and
//! gwctl's flat form still answered as before.

use e2e::{send, Answer, Gateway, GatewayOptions};
use reqwest::blocking::RequestBuilder;
use serde_json::{json, Value};

use crate::support::Env;

fn gateway() -> Gateway {
    Gateway::start(GatewayOptions::default())
}

/// `POST /config{query}` with `body` as `content_type`.
fn post_raw(gateway: &Gateway, query: &str, content_type: &str, body: &str) -> Answer {
    let request = e2e::http_client()
        .post(gateway.admin_url(&format!("/config{query}")))
        .header("content-type", content_type)
        .body(body.to_owned());
    send(request)
}

/// `POST /config{query}` with a JSON body.
fn post_json(gateway: &Gateway, query: &str, body: &Value) -> Answer {
    post_raw(gateway, query, "application/json", &body.to_string())
}

fn get(gateway: &Gateway, path: &str) -> RequestBuilder {
    e2e::http_client().get(gateway.admin_url(path))
}

/// The one entity of `kind` in a 201 body keyed by id.
#[track_caller]
fn only(body: &Value, kind: &str) -> Value {
    let keyed = body[kind].as_object().unwrap_or_else(|| panic!("{body}"));
    assert_eq!(keyed.len(), 1, "{body}");
    let (id, entity) = keyed.iter().next().unwrap_or_else(|| panic!("{body}"));
    assert_eq!(entity["id"], id.as_str(), "keyed by id: {body}");
    entity.clone()
}

// 15-off_spec.lua: "accepts configuration as JSON body", "... as YAML
// body", "... as a JSON string under `config` JSON key", "... as a YAML
// string under `config` JSON key".
#[test]
fn the_file_is_accepted_as_json_yaml_and_a_string_under_config() {
    let gateway = gateway();
    let json_body =
        json!({"_format_version": "1.1", "consumers": [{"username": "bobby_in_json_body"}]});
    let answer = post_json(&gateway, "", &json_body);
    answer.expect(201);
    let consumer = only(&answer.json(), "consumers");
    assert_eq!(consumer["username"], "bobby_in_json_body");
    assert_eq!(consumer["custom_id"], Value::Null);
    assert_eq!(
        answer.header("content-type"),
        Some("application/json; charset=utf-8")
    );

    let yaml = "_format_version: \"1.1\"\nconsumers:\n  - username: \"bobby_in_yaml_body\"\n";
    let answer = post_raw(&gateway, "", "application/yaml", yaml);
    answer.expect(201);
    assert_eq!(
        only(&answer.json(), "consumers")["username"],
        "bobby_in_yaml_body"
    );

    let json_string = r#"{"_format_version" : "1.1", "consumers" : [{"username" : "bobby_in_json_under_config"}]}"#;
    let answer = post_json(&gateway, "", &json!({ "config": json_string }));
    answer.expect(201);
    assert_eq!(
        only(&answer.json(), "consumers")["username"],
        "bobby_in_json_under_config"
    );

    let yaml_string =
        "_format_version: \"1.1\"\nconsumers:\n  - username: \"bobby_in_yaml_under_config\"\n";
    let answer = post_json(&gateway, "", &json!({ "config": yaml_string }));
    answer.expect(201);
    assert_eq!(
        only(&answer.json(), "consumers")["username"],
        "bobby_in_yaml_under_config"
    );
    // The whole configuration was replaced each time.
    let consumers = send(get(&gateway, "/consumers")).expect_json(200);
    assert_eq!(consumers["data"].as_array().map(Vec::len), Some(1));
}

// 15-off_spec.lua: "returns 304 if checking hash and configuration is
// identical".
#[test]
fn check_hash_answers_304_for_the_configuration_in_place() {
    let gateway = gateway();
    let config =
        json!({"config": "_format_version: \"1.1\"\nconsumers:\n- username: bobby_tables\n"});
    post_json(&gateway, "?check_hash=1", &config).expect(201);
    let again = post_json(&gateway, "?check_hash=1", &config);
    again.expect(304);
    assert!(again.body.is_empty(), "{}", again.body);
    // Without check_hash it is applied again.
    post_json(&gateway, "", &config).expect(201);
    let changed = json!({"config": "_format_version: \"1.1\"\nconsumers:\n- username: other\n"});
    post_json(&gateway, "?check_hash=1", &changed).expect(201);
}

/// Kong's code 14 body for `fields` and its Lua rendering.
fn declarative_error(fields: Value, lua: &str) -> Value {
    json!({
        "code": 14,
        "name": "invalid declarative configuration",
        "fields": fields,
        "message": format!("declarative config is invalid: {lua}"),
    })
}

// 15-off_spec.lua: "returns 400 on an invalid config string", "... on a
// validation error", "... on an primary key uniqueness error", "... on an
// endpoint key uniqueness error", "... on a regular key uniqueness error",
// "returns 400 when given no input".
#[test]
fn errors_are_kongs_code_14_with_fields_positioned_like_the_input() {
    let gateway = gateway();
    let cases = [
        (
            json!({"config": "bobby tables"}),
            declarative_error(
                json!({"error": "failed parsing declarative configuration: expected an object"}),
                r#"{error="failed parsing declarative configuration: expected an object"}"#,
            ),
        ),
        (
            json!({"config": "_format_version: \"1.1\"\nservices:\n- port: -12\n"}),
            declarative_error(
                json!({"services": [{"host": "required field missing",
                    "port": "value should be between 0 and 65535"}]}),
                r#"{services={{host="required field missing",port="value should be between 0 and 65535"}}}"#,
            ),
        ),
        (
            json!({"config": "_format_version: \"1.1\"\nservices:\n\
                - id: 0855b320-0dd2-547d-891d-601e9b38647f\n  name: foo\n  host: example.com\n  protocol: https\n\
                - id: 0855b320-0dd2-547d-891d-601e9b38647f\n  name: bar\n  host: example.test\n  port: 3000\n"}),
            declarative_error(
                json!({"services": [null, "uniqueness violation: 'services' entity with primary key set to '0855b320-0dd2-547d-891d-601e9b38647f' already declared"]}),
                r#"{services={[2]="uniqueness violation: 'services' entity with primary key set to '0855b320-0dd2-547d-891d-601e9b38647f' already declared"}}"#,
            ),
        ),
        (
            json!({"config": "_format_version: \"1.1\"\nservices:\n\
                - name: foo\n  host: example.com\n  protocol: https\n\
                - name: foo\n  host: example.test\n  port: 3000\n"}),
            declarative_error(
                json!({"services": [null, "uniqueness violation: 'services' entity with name set to 'foo' already declared"]}),
                r#"{services={[2]="uniqueness violation: 'services' entity with name set to 'foo' already declared"}}"#,
            ),
        ),
        (
            json!({"config": "_format_version: \"1.1\"\nconsumers:\n\
                - username: foo\n  custom_id: conflict\n- username: bar\n  custom_id: conflict\n"}),
            declarative_error(
                json!({"consumers": {"bar": "uniqueness violation: 'consumers' entity with custom_id set to 'conflict' already declared"}}),
                r#"{consumers={bar="uniqueness violation: 'consumers' entity with custom_id set to 'conflict' already declared"}}"#,
            ),
        ),
    ];
    for (body, expected) in cases {
        let answer = post_json(&gateway, "", &body);
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        assert_eq!(answer.json(), expected, "{body}");
    }
    let empty = send(e2e::http_client().post(gateway.admin_url("/config")));
    assert_eq!(empty.status, 400);
    assert_eq!(
        empty.json(),
        json!({"message": "expected a declarative configuration"})
    );
    // Nothing was applied.
    let services = send(get(&gateway, "/services")).expect_json(200);
    assert_eq!(services["data"], json!([]));
}

// 15-off_spec.lua [flattened errors]: "flattens nested, entity field
// errors" (the route with `protocols: [nope]`, the plugin with an unknown
// config field); Kong keeps the rest of `fields` (here none) and adds
// `flattened_errors`.
#[test]
fn flatten_errors_lists_each_entity_with_its_errors() {
    let gateway = gateway();
    let input = json!({
        "_format_version": "3.0",
        "services": [{
            "name": "svc",
            "url": "https://localhost:1234",
            "tags": ["service-01"],
            "routes": [
                {"hosts": ["test"], "paths": ["/"], "protocols": ["http"], "tags": ["route-01"],
                 "plugins": [{"name": "key-auth", "config": {"a": 1}, "tags": ["plugin-01"]}]},
                {"hosts": ["invalid"], "paths": ["/"], "protocols": ["nope"], "tags": ["route-02"]}
            ]
        }]
    });
    let answer = post_json(&gateway, "?flatten_errors=1", &input);
    assert_eq!(answer.status, 400, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["code"], 14);
    assert_eq!(body["name"], "invalid declarative configuration");
    assert_eq!(body["fields"], json!({}));
    assert_eq!(body["message"], "declarative config is invalid: {}");
    let mut flattened = body["flattened_errors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    flattened.sort_by_key(|entry| entry["entity_type"].to_string());
    assert_eq!(
        flattened,
        [
            json!({
                "entity_type": "plugin",
                "entity_name": "key-auth",
                "entity_tags": ["plugin-01"],
                "entity": {"name": "key-auth", "config": {"a": 1}, "tags": ["plugin-01"]},
                "errors": [{"type": "field", "field": "config.a", "message": "unknown field"}],
            }),
            json!({
                "entity_type": "route",
                "entity_tags": ["route-02"],
                "entity": {"hosts": ["invalid"], "paths": ["/"], "protocols": ["nope"], "tags": ["route-02"]},
                "errors": [{"type": "field", "field": "protocols",
                    "message": "expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp"}],
            }),
        ],
        "{body:#}"
    );
}

// 15-off_spec.lua: "returns back the configuration".
#[test]
fn get_config_answers_kongs_yaml_export() {
    let gateway = gateway();
    let posted = json!({
        "_format_version": "1.1",
        "consumers": [{"username": "bobo", "id": "d885e256-1abe-5e24-80b6-8f68fe59ea8e",
            "created_at": 1_566_863_706}],
    });
    post_json(&gateway, "", &posted).expect(201);
    let answer = send(get(&gateway, "/config"));
    let body = answer.expect_json(200);
    let yaml = body["config"].as_str().unwrap_or_else(|| panic!("{body}"));
    let config: Value = serde_yaml_ng::from_str(yaml).expect("YAML");
    let updated_at = config["consumers"][0]["updated_at"].clone();
    assert!(updated_at.is_u64(), "{config}");
    assert_eq!(
        config,
        json!({
            "_format_version": "3.0",
            "_transform": false,
            "consumers": [{
                "id": "d885e256-1abe-5e24-80b6-8f68fe59ea8e",
                "created_at": 1_566_863_706,
                "updated_at": updated_at,
                "username": "bobo",
                "custom_id": null,
                "tags": null,
            }],
        })
    );
    // The export posts back as it is (Kong's round trip), a no-op.
    post_json(&gateway, "?check_hash=1", &json!({ "config": yaml })).expect(304);
}

// Kong's nested form, as DB-less users and the Ingress Controller post it:
// routes and plugins under their service, credentials under their
// consumer, no ids; the gateway serves it at once.
#[test]
fn the_nested_form_is_applied_and_proxied() {
    let env = Env::bare(GatewayOptions::default());
    let file = format!(
        "_format_version: \"3.0\"\n\
         services:\n\
         - name: echo\n  url: {}\n  routes:\n  - name: r1\n    paths: [/nested]\n    \
           plugins:\n    - name: key-auth\n\
         consumers:\n\
         - username: alex\n  keyauth_credentials:\n  - key: hello_world\n",
        env.echo.url("")
    );
    let answer = post_raw(&env.gateway, "", "application/yaml", &file);
    answer.expect(201);
    let body = answer.json();
    let service = only(&body, "services");
    let route = only(&body, "routes");
    let plugin = only(&body, "plugins");
    let consumer = only(&body, "consumers");
    let credential = only(&body, "keyauth_credentials");
    assert_eq!(route["service"], json!({"id": service["id"]}));
    assert_eq!(plugin["route"], json!({"id": route["id"]}));
    assert_eq!(credential["consumer"], json!({"id": consumer["id"]}));
    assert_eq!(credential["key"], "hello_world");

    send(env.get("/nested")).expect(401);
    let answer = send(env.get("/nested").header("apikey", "hello_world"));
    answer.expect(200);
    assert_eq!(
        answer.upstream_header("X-Consumer-Username").as_deref(),
        Some("alex")
    );

    // Posting it again keeps the ids (entities match by name).
    let again = post_raw(&env.gateway, "", "application/yaml", &file).json();
    assert_eq!(only(&again, "services")["id"], service["id"]);
    assert_eq!(only(&again, "routes")["id"], route["id"]);
}

// gwctl's flat form (no `_format_version`) is still answered as before,
// and `GET /config?format=flat` still returns it.
#[test]
fn gwctls_flat_form_still_works() {
    let gateway = gateway();
    let id = "6f8c5e0c-4a7e-4d3e-9d59-1f1b8a4e2c11";
    let flat = json!({"consumers": [{"id": id, "username": "flat"}]});
    let answer = post_json(&gateway, "", &flat);
    let body = answer.expect_json(201);
    assert!(body.get("summary").is_some(), "{body}");
    let exported = send(get(&gateway, "/config?format=flat")).expect_json(200);
    assert_eq!(exported["config"]["consumers"][0]["id"], id);
    assert_eq!(exported["config"]["consumers"][0]["username"], "flat");
}
