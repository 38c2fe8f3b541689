//! Entity builders for tests across the crate, and the snapshot's own tests.

use super::*;
use crate::pdk::Protocol;
use schemas::model::ForeignKey;
use serde_json::{json, Value};

pub fn service(id: Uuid) -> Value {
    serde_json::to_value(Service {
        id,
        name: Some(format!("svc-{id}")),
        protocol: "http".into(),
        host: "127.0.0.1".into(),
        port: 9,
        path: None,
        retries: 5,
        connect_timeout: 60000,
        write_timeout: 60000,
        read_timeout: 60000,
        enabled: true,
        tls_verify: None,
        tls_verify_depth: None,
        tags: None,
        created_at: Some(1),
        updated_at: Some(1),
    })
    .unwrap()
}

pub fn route(id: Uuid, service: Option<Uuid>, path: &str) -> Value {
    serde_json::to_value(Route {
        id,
        name: None,
        protocols: vec!["http".into(), "https".into()],
        methods: None,
        hosts: None,
        paths: Some(vec![path.into()]),
        headers: None,
        snis: None,
        strip_path: true,
        preserve_host: false,
        regex_priority: 0,
        path_handling: "v0".into(),
        https_redirect_status_code: 426,
        request_buffering: true,
        response_buffering: true,
        service: service.map(|id| ForeignKey { id }),
        tags: None,
        created_at: Some(1),
        updated_at: Some(1),
    })
    .unwrap()
}

pub fn consumer(id: Uuid, username: &str) -> Value {
    json!({"id": id, "username": username, "custom_id": null, "tags": null,
           "created_at": 1, "updated_at": 1})
}

pub fn credential(id: Uuid, consumer: Uuid, key: &str, ttl: Option<u64>, created: i64) -> Value {
    json!({"id": id, "key": key, "consumer": {"id": consumer}, "ttl": ttl,
           "tags": null, "created_at": created})
}

pub fn plugin(name: &str, config: Value, scope: Scope) -> Value {
    let key = |id: Option<Uuid>| id.map(|id| json!({"id": id})).unwrap_or(Value::Null);
    json!({
        "id": Uuid::new_v4(), "name": name, "instance_name": null, "config": config,
        "enabled": true, "protocols": ["grpc", "grpcs", "http", "https"],
        "route": key(scope.route), "service": key(scope.service),
        "consumer": key(scope.consumer), "tags": null, "created_at": 1, "updated_at": 1
    })
}

#[test]
fn builds_lookups() {
    let (service_id, route_id, consumer_id) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let config = Config {
        services: vec![service(service_id)],
        routes: vec![route(route_id, Some(service_id), "/")],
        consumers: vec![consumer(consumer_id, "alice")],
        keyauth_credentials: vec![
            credential(Uuid::new_v4(), consumer_id, "k1", None, 1),
            credential(Uuid::new_v4(), Uuid::new_v4(), "orphan", None, 1),
        ],
        plugins: vec![],
    };
    let snapshot = Snapshot::build(&config, &PluginEnv::default()).unwrap();
    assert!(snapshot.service(&service_id).is_some());
    assert_eq!(
        snapshot.credential_by_key("k1").unwrap().consumer_id,
        consumer_id
    );
    assert!(snapshot.credential_by_key("k2").is_none());
    assert!(snapshot.credential_by_key("orphan").is_none());
    assert!(snapshot.load_consumer("alice", true).is_some());
    assert!(snapshot.load_consumer("alice", false).is_none());
    assert!(snapshot
        .load_consumer(&consumer_id.to_string(), false)
        .is_some());
}

#[test]
fn plugin_index_orders_by_priority_and_respects_protocols() {
    let mut https_only = plugin("key-auth", json!(key_auth_config()), Scope::default());
    https_only["protocols"] = json!(["https"]);
    let config = Config {
        plugins: vec![
            plugin(
                "request-termination",
                json!(termination_config(403)),
                Scope::default(),
            ),
            https_only,
        ],
        ..Config::default()
    };
    let snapshot = Snapshot::build(&config, &PluginEnv::default()).unwrap();
    let names: Vec<&str> = snapshot
        .plugins
        .tables()
        .iter()
        .map(|t| t.plugin.name)
        .collect();
    assert_eq!(names, ["key-auth", "request-termination"]);
    let key_auth = &snapshot.plugins.tables()[0];
    assert!(key_auth.get(Protocol::Http, &Scope::default()).is_none());
    assert!(key_auth.get(Protocol::Https, &Scope::default()).is_some());
}

#[test]
fn bad_entities_are_reported() {
    let config = Config {
        services: vec![json!({"id": "not-a-uuid"})],
        ..Config::default()
    };
    let error = Snapshot::build(&config, &PluginEnv::default())
        .err()
        .unwrap();
    assert!(error.to_string().starts_with("services not-a-uuid"));
}

pub fn key_auth_config() -> Value {
    json!({"key_names": ["apikey"], "hide_credentials": false, "anonymous": null,
           "key_in_header": true, "key_in_query": true, "key_in_body": false,
           "run_on_preflight": true, "realm": null})
}

pub fn termination_config(status: u16) -> Value {
    json!({"status_code": status, "message": null, "content_type": null, "body": null,
           "echo": false, "trigger": null})
}

/// An entity's id and stored row.
struct Row(String, Vec<u8>);

fn row(value: &Value) -> Row {
    Row(
        value["id"].as_str().unwrap().to_owned(),
        serde_json::to_vec(value).unwrap(),
    )
}

/// A put row as the store's commit hook passes it.
fn put(kind: EntityKind, row: &Row) -> ChangedEntity<'_> {
    ChangedEntity {
        kind,
        id: &row.0,
        row: Some(&row.1),
    }
}

/// A removal as the store's commit hook passes it.
fn removed(kind: EntityKind, id: &str) -> ChangedEntity<'_> {
    ChangedEntity {
        kind,
        id,
        row: None,
    }
}

fn routes_path(snapshot: &Snapshot, path: &str) -> bool {
    let headers = http::HeaderMap::new();
    let info = crate::router::RequestInfo {
        method: "GET",
        host: "example.test",
        port: 8000,
        path,
        headers: &headers,
        tls: false,
        sni: None,
    };
    snapshot.router().find(&info).is_some()
}

#[test]
fn changes_update_only_the_parts_they_touch() {
    let (service_id, route_id, alice) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let key_id = Uuid::new_v4();
    let config = Config {
        services: vec![service(service_id)],
        routes: vec![route(route_id, Some(service_id), "/old")],
        consumers: vec![consumer(alice, "alice")],
        keyauth_credentials: vec![credential(key_id, alice, "k1", None, 1)],
        plugins: vec![],
    };
    let env = PluginEnv::default();
    let first = Snapshot::build(&config, &env).unwrap();

    // An update is the old row's removal then the new row: a renamed
    // consumer and a credential whose key changed, plus a new consumer.
    let (alicia, new_key) = (
        consumer(alice, "alicia"),
        credential(key_id, alice, "k2", None, 1),
    );
    let bob = Uuid::new_v4();
    let (bob_row, bob_key) = (
        consumer(bob, "bob"),
        credential(Uuid::new_v4(), bob, "k3", None, 1),
    );
    let rows = [row(&alicia), row(&new_key), row(&bob_row), row(&bob_key)];
    let (alice, key_id) = (alice.to_string(), key_id.to_string());
    let identities = [
        removed(EntityKind::Consumer, &alice),
        put(EntityKind::Consumer, &rows[0]),
        removed(EntityKind::KeyAuthCredential, &key_id),
        put(EntityKind::KeyAuthCredential, &rows[1]),
        put(EntityKind::Consumer, &rows[2]),
        put(EntityKind::KeyAuthCredential, &rows[3]),
    ];
    let second = first.with_changes(&identities, &env).unwrap();
    assert!(second.consumer_by_username("alice").is_none());
    assert_eq!(
        second
            .consumer_by_username("alicia")
            .unwrap()
            .id
            .to_string(),
        alice
    );
    assert!(second.credential_by_key("k1").is_none());
    assert_eq!(
        second
            .credential_by_key("k2")
            .unwrap()
            .consumer_id
            .to_string(),
        alice
    );
    assert_eq!(second.credential_by_key("k3").unwrap().consumer_id, bob);
    assert!(
        Arc::ptr_eq(&first.routing, &second.routing),
        "routing is shared"
    );
    assert!(
        Arc::ptr_eq(&first.plugins, &second.plugins),
        "plugins are shared"
    );
    // The first snapshot is untouched.
    assert!(first.credential_by_key("k1").is_some());
    assert!(first.consumer_by_username("alicia").is_none());

    // A new route and a removed one recompile the router; a new plugin
    // gets an instance; deleting a consumer with its key removes both.
    let new_route = route(Uuid::new_v4(), Some(service_id), "/new");
    let plugin_row = plugin("key-auth", key_auth_config(), Scope::default());
    let rows = [row(&new_route), row(&plugin_row)];
    let route_id = route_id.to_string();
    let routing_and_plugins = [
        removed(EntityKind::Route, &route_id),
        put(EntityKind::Route, &rows[0]),
        put(EntityKind::Plugin, &rows[1]),
        removed(EntityKind::KeyAuthCredential, &key_id),
        removed(EntityKind::Consumer, &alice),
    ];
    let third = second.with_changes(&routing_and_plugins, &env).unwrap();
    assert!(routes_path(&second, "/old") && !routes_path(&second, "/new"));
    assert!(!routes_path(&third, "/old") && routes_path(&third, "/new"));
    assert_eq!(third.plugins().tables()[0].plugin.name, "key-auth");
    assert!(third.consumer_by_username("alicia").is_none());
    assert!(third.credential_by_key("k2").is_none());
    assert!(third.credential_by_key("k3").is_some());
}

#[test]
fn a_credential_of_a_missing_consumer_is_left_out_of_a_change_too() {
    let env = PluginEnv::default();
    let orphan = credential(Uuid::new_v4(), Uuid::new_v4(), "orphan", None, 1);
    let orphan = row(&orphan);
    let next = Snapshot::empty()
        .with_changes(&[put(EntityKind::KeyAuthCredential, &orphan)], &env)
        .unwrap();
    assert!(next.credential_by_key("orphan").is_none());
}

#[test]
fn a_changed_row_that_does_not_decode_is_an_error() {
    let change = ChangedEntity {
        kind: EntityKind::Consumer,
        id: "6f1b7a3c-5d7e-4d0e-9a62-1b1c8d9e0f11",
        row: Some(br#"{"id": "not-a-consumer"}"#),
    };
    let error = Snapshot::empty()
        .with_changes(&[change], &PluginEnv::default())
        .err()
        .unwrap();
    assert!(
        error.to_string().starts_with("consumers 6f1b7a3c"),
        "{error}"
    );
}

/// One step of the incremental-update property: a consumer (by slot) gets
/// a username and a key, or is deleted with its key.
#[derive(Debug, Clone)]
enum Step {
    Put { slot: usize, name: u8, key: u8 },
    Delete { slot: usize },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        (0..6usize, 0..4u8, 0..4u8).prop_map(|(slot, name, key)| Step::Put { slot, name, key }),
        (0..6usize).prop_map(|slot| Step::Delete { slot }),
    ]
}

proptest::proptest! {
    /// Applying writes one by one gives the snapshot a full compile of the
    /// final configuration gives, for every username and key lookup, even
    /// when names and keys move between consumers.
    #[test]
    fn changes_applied_one_by_one_equal_a_full_compile(steps in proptest::collection::vec(step(), 1..40)) {
        let env = PluginEnv::default();
        let consumer_ids: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
        let key_ids: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
        // The model: per slot, the (username, key) it has now.
        let mut live: Vec<Option<(String, String)>> = vec![None; 6];
        let mut snapshot = Snapshot::empty();
        for step in steps {
            let mut changes: Vec<(EntityKind, String, Option<Vec<u8>>)> = Vec::new();
            match step {
                Step::Put { slot, name, key } => {
                    let (name, key) = (format!("user-{name}"), format!("key-{key}"));
                    // The store's unique constraints: refuse a taken name or key.
                    let taken = live.iter().enumerate().any(|(other, entry)| {
                        other != slot && entry.as_ref().is_some_and(|(n, k)| *n == name || *k == key)
                    });
                    if taken {
                        continue;
                    }
                    let (consumer_id, key_id) = (consumer_ids[slot].to_string(), key_ids[slot].to_string());
                    if live[slot].is_some() {
                        changes.push((EntityKind::Consumer, consumer_id.clone(), None));
                        changes.push((EntityKind::KeyAuthCredential, key_id.clone(), None));
                    }
                    let consumer_row = consumer(consumer_ids[slot], &name);
                    let key_row = credential(key_ids[slot], consumer_ids[slot], &key, None, 1);
                    changes.push((EntityKind::Consumer, consumer_id, Some(serde_json::to_vec(&consumer_row).unwrap())));
                    changes.push((EntityKind::KeyAuthCredential, key_id, Some(serde_json::to_vec(&key_row).unwrap())));
                    live[slot] = Some((name, key));
                }
                Step::Delete { slot } => {
                    if live[slot].take().is_none() {
                        continue;
                    }
                    changes.push((EntityKind::KeyAuthCredential, key_ids[slot].to_string(), None));
                    changes.push((EntityKind::Consumer, consumer_ids[slot].to_string(), None));
                }
            }
            let changed: Vec<ChangedEntity<'_>> = changes
                .iter()
                .map(|(kind, id, row)| ChangedEntity { kind: *kind, id, row: row.as_deref() })
                .collect();
            snapshot = snapshot.with_changes(&changed, &env).unwrap();
        }
        let mut config = Config::default();
        for (slot, entry) in live.iter().enumerate() {
            if let Some((name, key)) = entry {
                config.consumers.push(consumer(consumer_ids[slot], name));
                config.keyauth_credentials.push(credential(key_ids[slot], consumer_ids[slot], key, None, 1));
            }
        }
        let full = Snapshot::build(&config, &env).unwrap();
        for n in 0..4 {
            let (name, key) = (format!("user-{n}"), format!("key-{n}"));
            let by_name = |s: &Snapshot| s.consumer_by_username(&name).map(|c| c.id);
            let by_key = |s: &Snapshot| s.credential_by_key(&key).map(|c| (c.id, c.consumer_id));
            proptest::prop_assert_eq!(by_name(&snapshot), by_name(&full), "username {}", name);
            proptest::prop_assert_eq!(by_key(&snapshot), by_key(&full), "key {}", key);
        }
        for id in &consumer_ids {
            proptest::prop_assert_eq!(snapshot.consumer(id).map(|c| c.id), full.consumer(id).map(|c| c.id));
        }
    }
}
