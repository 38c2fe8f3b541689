//! Tests of applying plans, against a small in-process HTTP server that
//! records the Admin API calls it gets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::*;
use crate::files;
use crate::plan::{plan, PlanOptions};

const SVC_OLD: &str = "11111111-1111-4111-8111-111111111111";
const SVC_NEW: &str = "22222222-2222-4222-8222-222222222222";
const ROUTE: &str = "33333333-3333-4333-8333-333333333333";
const CONSUMER: &str = "44444444-4444-4444-8444-444444444444";
const KEY: &str = "55555555-5555-4555-8555-555555555555";
const PLUGIN: &str = "66666666-6666-4666-8666-666666666666";

/// One recorded request: method, path (with query) and JSON body.
type Recorded = (String, String, Value);
/// Decides the status and body of the answer to a method and path.
type Responder = fn(&str, &str) -> (u16, Value);

/// An HTTP/1.1 server on a free loopback port, answering with `responder`.
struct MockGateway {
    addr: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl MockGateway {
    fn start(responder: Responder) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let recorded = Arc::clone(&recorded);
                std::thread::spawn(move || serve_connection(stream, responder, &recorded));
            }
        });
        Self { addr, requests }
    }

    fn client(&self) -> AdminClient {
        AdminClient::new(&self.addr, &[], Duration::from_secs(5)).unwrap()
    }

    /// `METHOD /path` of every request, in arrival order.
    fn calls(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(method, path, _)| format!("{method} {path}"))
            .collect()
    }

    fn body_of(&self, call: &str) -> Value {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .find(|(method, path, _)| format!("{method} {path}") == call)
            .map(|(_, _, body)| body.clone())
            .unwrap_or(Value::Null)
    }
}

fn serve_connection(stream: TcpStream, responder: Responder, recorded: &Mutex<Vec<Recorded>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        recorded
            .lock()
            .unwrap()
            .push((method.clone(), path.clone(), body));
        let (status, answer) = responder(&method, &path);
        let text = if status == 204 {
            String::new()
        } else {
            answer.to_string()
        };
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// A Kong without `/config`: 404 there, 200 for PUT, 204 for DELETE.
fn kong(method: &str, path: &str) -> (u16, Value) {
    match (method, path) {
        (_, "/config") => (404, json!({"message": "Not found"})),
        ("DELETE", _) => (204, Value::Null),
        _ => (200, json!({})),
    }
}

fn canonical(kind: EntityKind, raw: Value) -> Value {
    kind.validate(&raw).unwrap()
}

fn service(id: &str, name: &str) -> Value {
    canonical(
        EntityKind::Service,
        json!({"id": id, "name": name, "host": "example.com"}),
    )
}

fn route(service: &str) -> Value {
    canonical(
        EntityKind::Route,
        json!({"id": ROUTE, "name": "r1", "paths": ["/"], "service": {"id": service}}),
    )
}

fn run_per_entity(gateway: &MockGateway, target: &Config, current: &Config) -> RunReport {
    let (target, current) = (PackedConfig::pack(target), PackedConfig::pack(current));
    let planned = plan(&target, &current, &PlanOptions::default());
    let client = gateway.client();
    let origins = Origins::default();
    let applier = Applier::new(&client, &planned, &target, &current, &origins);
    assert!(matches!(
        applier.apply_atomic(&PackedConfig::default()).unwrap(),
        AtomicOutcome::Unsupported
    ));
    applier.apply_per_entity(1, false, &Progress::new(Style::default(), false, false))
}

#[test]
fn per_entity_calls_go_parent_first_and_delete_child_first() {
    let gateway = MockGateway::start(kong);
    let current = Config {
        services: vec![service(SVC_OLD, "old")],
        routes: vec![route(SVC_OLD)],
        ..Config::default()
    };
    let target = Config {
        services: vec![service(SVC_NEW, "new")],
        consumers: vec![canonical(
            EntityKind::Consumer,
            json!({"id": CONSUMER, "username": "alex"}),
        )],
        keyauth_credentials: vec![canonical(
            EntityKind::KeyAuthCredential,
            json!({"id": KEY, "key": "k1", "consumer": {"id": CONSUMER}}),
        )],
        plugins: vec![canonical(
            EntityKind::Plugin,
            json!({"id": PLUGIN, "name": "key-auth", "service": {"id": SVC_NEW}}),
        )],
        ..Config::default()
    };
    let report = run_per_entity(&gateway, &target, &current);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        gateway.calls(),
        vec![
            "POST /config".to_owned(),
            format!("PUT /consumers/{CONSUMER}"),
            format!("PUT /services/{SVC_NEW}"),
            format!("PUT /consumers/{CONSUMER}/key-auth/{KEY}"),
            format!("PUT /plugins/{PLUGIN}"),
            format!("DELETE /routes/{ROUTE}"),
            format!("DELETE /services/{SVC_OLD}"),
        ]
    );
    assert_eq!(
        report.counts,
        Counts {
            created: 4,
            updated: 0,
            deleted: 2
        }
    );
    let credential = gateway.body_of(&format!("PUT /consumers/{CONSUMER}/key-auth/{KEY}"));
    assert_eq!(credential, json!({"id": KEY, "key": "k1"}));
    let plugin = gateway.body_of(&format!("PUT /plugins/{PLUGIN}"));
    assert_eq!(plugin["service"], json!({"id": SVC_NEW}));
    assert!(plugin.get("created_at").is_none());
    assert!(
        plugin.get("instance_name").is_none(),
        "unset fields are not sent"
    );
}

#[test]
fn a_name_taken_over_by_another_id_is_freed_first() {
    let gateway = MockGateway::start(kong);
    let current = Config {
        services: vec![service(SVC_OLD, "svc")],
        routes: vec![route(SVC_OLD)],
        ..Config::default()
    };
    let target = Config {
        services: vec![service(SVC_NEW, "svc")],
        routes: vec![route(SVC_NEW)],
        ..Config::default()
    };
    let report = run_per_entity(&gateway, &target, &current);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        gateway.calls(),
        vec![
            "POST /config".to_owned(),
            format!("DELETE /routes/{ROUTE}"),
            format!("DELETE /services/{SVC_OLD}"),
            format!("PUT /services/{SVC_NEW}"),
            format!("PUT /routes/{ROUTE}"),
        ]
    );
    assert_eq!(
        report.counts,
        Counts {
            created: 1,
            updated: 1,
            deleted: 1
        }
    );
}

#[test]
fn swapped_names_do_not_trip_the_unique_index() {
    let gateway = MockGateway::start(kong);
    let current = Config {
        services: vec![service(SVC_OLD, "a"), service(SVC_NEW, "b")],
        ..Config::default()
    };
    let target = Config {
        services: vec![service(SVC_OLD, "b"), service(SVC_NEW, "a")],
        ..Config::default()
    };
    let report = run_per_entity(&gateway, &target, &current);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let calls = gateway.calls();
    let deletes = calls
        .iter()
        .filter(|call| call.starts_with("DELETE"))
        .count();
    assert_eq!(deletes, 2, "{calls:?}");
    assert!(
        calls[1].starts_with("DELETE") && calls[2].starts_with("DELETE"),
        "{calls:?}"
    );
    assert_eq!(report.counts.updated, 2);
}

#[test]
fn the_first_failure_stops_the_run() {
    fn refuse_services(method: &str, path: &str) -> (u16, Value) {
        if method == "PUT" && path.starts_with("/services/") {
            return (
                409,
                json!({"code": 5, "message": "UNIQUE violation detected on '{name=\"svc\"}'"}),
            );
        }
        kong(method, path)
    }
    let gateway = MockGateway::start(refuse_services);
    let target = Config {
        services: vec![service(SVC_NEW, "svc")],
        routes: vec![route(SVC_NEW)],
        consumers: vec![canonical(
            EntityKind::Consumer,
            json!({"id": CONSUMER, "username": "alex"}),
        )],
        ..Config::default()
    };
    let report = run_per_entity(&gateway, &target, &Config::default());
    assert_eq!(report.counts.created, 1, "the consumer went in");
    assert_eq!(report.dropped, 1, "the route was not attempted");
    assert_eq!(report.errors.len(), 1);
    assert!(
        report.errors[0].starts_with("creating service svc"),
        "{}",
        report.errors[0]
    );
    assert!(
        report.errors[0].contains("HTTP status 409"),
        "{}",
        report.errors[0]
    );
    assert!(!gateway
        .calls()
        .iter()
        .any(|call| call.starts_with("PUT /routes")));
}

#[test]
fn the_atomic_path_sends_one_request_keeping_what_it_must() {
    fn accept(_: &str, _: &str) -> (u16, Value) {
        (
            201,
            json!({"summary": {"created": 1, "updated": 0, "deleted": 0}}),
        )
    }
    let gateway = MockGateway::start(accept);
    let mut live_service = service(SVC_OLD, "kept");
    live_service["created_at"] = json!(1_700_000_000);
    live_service["updated_at"] = json!(1_700_000_001);
    let current = Config {
        services: vec![live_service.clone()],
        ..Config::default()
    };
    let outside = Config {
        consumers: vec![canonical(
            EntityKind::Consumer,
            json!({"id": CONSUMER, "username": "other-team"}),
        )],
        ..Config::default()
    };
    let target = Config {
        services: vec![service(SVC_OLD, "kept"), service(SVC_NEW, "added")],
        ..Config::default()
    };
    let (target, current) = (PackedConfig::pack(&target), PackedConfig::pack(&current));
    let planned = plan(&target, &current, &PlanOptions::default());
    let client = gateway.client();
    let origins = Origins::default();
    let applier = Applier::new(&client, &planned, &target, &current, &origins);
    assert!(matches!(
        applier.apply_atomic(&PackedConfig::pack(&outside)).unwrap(),
        AtomicOutcome::Applied
    ));
    assert_eq!(gateway.calls(), vec!["POST /config"]);
    let body = gateway.body_of("POST /config");
    assert_eq!(
        body["services"][0], live_service,
        "unchanged entities keep their timestamps"
    );
    assert_eq!(body["services"][1]["name"], "added");
    assert_eq!(body["consumers"][0]["username"], "other-team");
}

#[test]
fn a_rejected_configuration_names_the_entity_and_its_file_position() {
    fn reject(_: &str, _: &str) -> (u16, Value) {
        (
            400,
            json!({"code": 2, "message": "schema violation (paths.1: bad)",
                "entity": {"kind": "routes", "id": ROUTE, "name": "example-route"}}),
        )
    }
    let gateway = MockGateway::start(reject);
    let docs = files::read(
        &["../fixtures/tutorial/00-prerequisites.yaml".to_owned()],
        files::Purpose::Sync,
    )
    .unwrap()
    .docs;
    let mut built = files::build_config(docs, &Config::default(), &[]).unwrap();
    let mut config = built.config.unpack();
    config.routes[0]["id"] = json!(ROUTE);
    built.config = PackedConfig::pack(&config);
    let current = PackedConfig::default();
    let planned = plan(&built.config, &current, &PlanOptions::default());
    let client = gateway.client();
    let applier = Applier::new(&client, &planned, &built.config, &current, &built.origins);
    let error = applier.apply_atomic(&PackedConfig::default()).unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with(
            "the gateway rejected the configuration, nothing was changed: route example-route ("
        ),
        "{text}"
    );
    assert!(text.contains("00-prerequisites.yaml:"), "{text}");
    assert!(text.contains("services[0].routes[0]"), "{text}");
    assert!(text.ends_with("schema violation (paths.1: bad)"), "{text}");
}

#[test]
fn replaced_entities_include_their_dependents() {
    let current = Config {
        services: vec![service(SVC_OLD, "svc")],
        routes: vec![route(SVC_OLD)],
        plugins: vec![canonical(
            EntityKind::Plugin,
            json!({"id": PLUGIN, "name": "key-auth", "route": {"id": ROUTE}}),
        )],
        ..Config::default()
    };
    let target = Config {
        services: vec![service(SVC_NEW, "svc")],
        ..Config::default()
    };
    let replaced = replaced_entities(&target, &current);
    assert_eq!(replaced.len(), 3, "{replaced:?}");
    assert!(replaced.contains(&(EntityKind::Plugin, PLUGIN.to_owned())));
}

#[test]
fn a_clash_with_a_kept_entity_names_the_file_entity() {
    fn reject(_: &str, _: &str) -> (u16, Value) {
        (
            409,
            json!({"code": 5, "message": "UNIQUE violation detected on '{name=\"r1\"}'",
                "entity": {"kind": "routes", "id": ROUTE, "name": "r1"}}),
        )
    }
    let gateway = MockGateway::start(reject);
    let keep = Config {
        services: vec![service(SVC_OLD, "theirs")],
        routes: vec![route(SVC_OLD)],
        ..Config::default()
    };
    let docs = files::read(
        &["../fixtures/tutorial/00-prerequisites.yaml".to_owned()],
        files::Purpose::Sync,
    )
    .unwrap()
    .docs;
    let mut built = files::build_config(docs, &Config::default(), &[]).unwrap();
    let mut config = built.config.unpack();
    config.routes[0]["name"] = json!("r1");
    built.config = PackedConfig::pack(&config);
    let current = PackedConfig::default();
    let planned = plan(&built.config, &current, &PlanOptions::default());
    let client = gateway.client();
    let applier = Applier::new(&client, &planned, &built.config, &current, &built.origins);
    let text = applier
        .apply_atomic(&PackedConfig::pack(&keep))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("route r1 (../fixtures/tutorial/00-prerequisites.yaml:"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "clashes with route r1 (id {ROUTE}, kept as it is on the gateway)"
        )),
        "{text}"
    );
    let body = gateway.body_of("POST /config");
    assert_eq!(body["routes"][0]["id"], ROUTE, "kept entities come first");
}
