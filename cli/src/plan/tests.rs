//! Tests of the diff engine: field-level updates, no phantom updates,
//! masking, ordering, renames, and files built against their own result.

use serde_json::{json, Value};

use schemas::config::Config;

use super::*;
use crate::files;

/// [`super::plan`] of two configurations of values, packed first.
fn plan(target: &Config, current: &Config, options: &PlanOptions) -> Plan {
    super::plan(
        &PackedConfig::pack(target),
        &PackedConfig::pack(current),
        options,
    )
}

const S1: &str = "11111111-1111-4111-8111-111111111111";
const S2: &str = "22222222-2222-4222-8222-222222222222";
const R1: &str = "33333333-3333-4333-8333-333333333333";
const C1: &str = "44444444-4444-4444-8444-444444444444";
const K1: &str = "55555555-5555-4555-8555-555555555555";
const P1: &str = "66666666-6666-4666-8666-666666666666";
const P2: &str = "77777777-7777-4777-8777-777777777777";

fn canonical(kind: EntityKind, raw: Value) -> Value {
    kind.validate(&raw)
        .unwrap_or_else(|error| panic!("{raw}: {error}"))
}

fn service(id: &str, name: &str) -> Value {
    canonical(
        EntityKind::Service,
        json!({"id": id, "name": name, "host": "example.com"}),
    )
}

fn sample() -> Config {
    Config {
        services: vec![service(S1, "svc1"), service(S2, "svc2")],
        routes: vec![canonical(
            EntityKind::Route,
            json!({"id": R1, "name": "r1", "paths": ["/a"], "service": {"id": S1}}),
        )],
        consumers: vec![canonical(
            EntityKind::Consumer,
            json!({"id": C1, "username": "alex"}),
        )],
        plugins: vec![
            canonical(
                EntityKind::Plugin,
                json!({"id": P1, "name": "key-auth", "service": {"id": S1}}),
            ),
            canonical(
                EntityKind::Plugin,
                json!({"id": P2, "name": "session", "service": {"id": S1},
                    "config": {"secret": "live-secret"}}),
            ),
        ],
        keyauth_credentials: vec![canonical(
            EntityKind::KeyAuthCredential,
            json!({"id": K1, "key": "hello_world", "consumer": {"id": C1}}),
        )],
    }
}

fn titles(plan: &Plan) -> Vec<String> {
    plan.changes.iter().map(Change::title).collect()
}

fn only_update(plan: &Plan) -> &Change {
    assert_eq!(plan.changes.len(), 1, "{:?}", titles(plan));
    assert_eq!(plan.changes[0].action, Action::Update);
    &plan.changes[0]
}

#[test]
fn equal_configurations_plan_nothing() {
    let config = sample();
    assert!(plan(&config, &config, &PlanOptions::default()).is_empty());
}

#[test]
fn timestamps_and_empty_lists_are_not_changes() {
    let target = sample();
    let mut current = sample();
    current.services[0]["created_at"] = json!(1_700_000_000);
    current.services[0]["updated_at"] = json!(1_700_000_100);
    current.services[0]["tags"] = json!([]);
    current.routes[0]["headers"] = json!({});
    let planned = plan(&target, &current, &PlanOptions::default());
    assert!(planned.is_empty(), "{:?}", titles(&planned));
}

#[test]
fn updates_list_only_the_changed_fields() {
    let current = sample();
    let mut target = sample();
    target.plugins[0]["config"]["key_names"] = json!(["key"]);
    target.services[1]["port"] = json!(8080);
    let planned = plan(&target, &current, &PlanOptions::default());
    assert_eq!(
        titles(&planned),
        vec![
            "updating service svc2",
            "updating plugin key-auth for service svc1"
        ]
    );
    assert_eq!(
        planned.changes[0].fields,
        vec![FieldChange {
            path: "port".into(),
            old: json!(80),
            new: json!(8080)
        }]
    );
    assert_eq!(
        planned.changes[1].fields,
        vec![FieldChange {
            path: "config.key_names".into(),
            old: json!(["apikey"]),
            new: json!(["key"])
        }]
    );
}

#[test]
fn nested_maps_are_spelled_out() {
    let current = sample();
    let mut target = sample();
    target.routes[0]["headers"] = json!({"x-version": ["2"]});
    let planned = plan(&target, &current, &PlanOptions::default());
    let change = only_update(&planned);
    assert_eq!(change.fields[0].path, "headers.x-version");
    assert_eq!(
        (&change.fields[0].old, &change.fields[0].new),
        (&Value::Null, &json!(["2"]))
    );
}

#[test]
fn references_are_shown_by_name() {
    let current = sample();
    let mut target = sample();
    target.routes[0]["service"] = json!({"id": S2});
    let planned = plan(&target, &current, &PlanOptions::default());
    let change = only_update(&planned);
    assert_eq!(change.title(), "updating route r1");
    assert_eq!(
        change.fields,
        vec![FieldChange {
            path: "service".into(),
            old: json!("svc1"),
            new: json!("svc2")
        }]
    );
}

/// A route moved from a service to another of the same name (a service
/// replaced, the new one with another id) names both with their ids: an
/// update never reads `"svc1" -> "svc1"`.
#[test]
fn a_reference_to_a_namesake_shows_the_ids() {
    let mut current = sample();
    current.services[1]["name"] = json!("svc1");
    let mut target = current.clone();
    target.routes[0]["service"] = json!({"id": S2});
    let planned = plan(&target, &current, &PlanOptions::default());
    let change = only_update(&planned);
    assert_eq!(
        change.fields,
        vec![FieldChange {
            path: "service".into(),
            old: json!(format!("svc1 (id {S1})")),
            new: json!(format!("svc1 (id {S2})")),
        }]
    );
}

/// Values taken from `DECK_*` variables are masked in the changed fields.
#[test]
fn env_values_are_masked_in_changes() {
    let current = sample();
    let mut target = sample();
    target.services[0]["host"] = json!("upstream.internal");
    let mut planned = plan(&target, &current, &PlanOptions::default());
    planned.mask_env_values(&["upstream.internal".to_owned()]);
    let change = only_update(&planned);
    assert_eq!(
        change.fields,
        vec![FieldChange {
            path: "host".into(),
            old: json!("example.com"),
            new: json!(crate::secrets::MASK),
        }]
    );
}

#[test]
fn secrets_are_masked_unless_asked() {
    let current = sample();
    let mut target = sample();
    target.plugins[1]["config"]["secret"] = json!("new-secret");
    let masked = plan(&target, &current, &PlanOptions::default());
    let change = only_update(&masked);
    assert_eq!(change.title(), "updating plugin session for service svc1");
    assert_eq!(
        change.fields,
        vec![FieldChange {
            path: "config.secret".into(),
            old: json!("[masked]"),
            new: json!("[masked]")
        }]
    );
    let shown = plan(
        &target,
        &current,
        &PlanOptions {
            show_secrets: true,
            ..PlanOptions::default()
        },
    );
    assert_eq!(only_update(&shown).fields[0].new, json!("new-secret"));
}

#[test]
fn created_credentials_mask_their_key() {
    let current = Config::default();
    let target = sample();
    let options = PlanOptions {
        entity_fields: true,
        ..PlanOptions::default()
    };
    let planned = plan(&target, &current, &options);
    let credential = planned
        .changes
        .iter()
        .find(|change| change.kind == EntityKind::KeyAuthCredential)
        .unwrap();
    assert_eq!(
        credential.title(),
        "creating key-auth …world for consumer alex"
    );
    let key = credential.fields.iter().find(|f| f.path == "key").unwrap();
    assert_eq!(key.new, json!("[masked]"));
    let consumer = credential
        .fields
        .iter()
        .find(|f| f.path == "consumer")
        .unwrap();
    assert_eq!(consumer.new, json!("alex"));
}

#[test]
fn creates_go_parent_first_and_deletes_child_first() {
    let created = plan(&sample(), &Config::default(), &PlanOptions::default());
    assert_eq!(
        titles(&created),
        vec![
            "creating consumer alex",
            "creating service svc1",
            "creating service svc2",
            "creating key-auth …world for consumer alex",
            "creating route r1",
            "creating plugin key-auth for service svc1",
            "creating plugin session for service svc1",
        ]
    );
    let deleted = plan(&Config::default(), &sample(), &PlanOptions::default());
    assert_eq!(
        titles(&deleted),
        vec![
            "deleting plugin key-auth for service svc1",
            "deleting plugin session for service svc1",
            "deleting route r1",
            "deleting key-auth …world for consumer alex",
            "deleting service svc1",
            "deleting service svc2",
            "deleting consumer alex",
        ]
    );
    assert_eq!(
        deleted.counts(),
        Counts {
            created: 0,
            updated: 0,
            deleted: 7
        }
    );
}

#[test]
fn no_deletes_plans_creates_and_updates_only() {
    let mut target = Config::default();
    target.services.push(service(S1, "renamed"));
    let options = PlanOptions {
        no_deletes: true,
        ..PlanOptions::default()
    };
    let planned = plan(&target, &sample(), &options);
    assert_eq!(titles(&planned), vec!["updating service renamed"]);
}

#[test]
fn a_rename_keeping_the_id_is_an_update_of_the_name() {
    let current = sample();
    let mut target = sample();
    target.services[0]["name"] = json!("svc1-renamed");
    let planned = plan(&target, &current, &PlanOptions::default());
    let change = only_update(&planned);
    assert_eq!(change.title(), "updating service svc1-renamed");
    assert_eq!(change.fields[0].path, "name");
    assert_eq!(change.fields[0].old, json!("svc1"));
}

#[test]
fn a_rename_without_id_is_a_create_and_a_delete() {
    let current = sample();
    let mut target = sample();
    target.services[1] = service("88888888-8888-4888-8888-888888888888", "svc3");
    let planned = plan(&target, &current, &PlanOptions::default());
    assert_eq!(
        titles(&planned),
        vec!["creating service svc3", "deleting service svc2"]
    );
}

#[test]
fn generated_values_are_kept_from_the_gateway() {
    let current = sample();
    let mut target = sample();
    target.plugins[1]["config"]["secret"] = Value::Null;
    let mut packed = PackedConfig::default();
    for kind in EntityKind::ALL {
        let entities = target.entities(kind).iter();
        let marked = entities.map(|entity| Packed::of_entity(kind, entity));
        packed.entities_mut(kind).extend(marked);
    }
    keep_generated_values(&mut packed, &PackedConfig::pack(&current));
    let target = packed.unpack();
    assert_eq!(target.plugins[1]["config"]["secret"], "live-secret");
    assert!(plan(&target, &current, &PlanOptions::default()).is_empty());
}

#[test]
fn equivalence_treats_empty_as_absent() {
    assert!(equivalent(&json!(null), &json!([])));
    assert!(equivalent(&json!({"a": null}), &json!({})));
    assert!(equivalent(&json!({"a": [1]}), &json!({"a": [1], "b": {}})));
    assert!(!equivalent(&json!([1]), &json!([1, 2])));
    assert!(!equivalent(&json!(0), &json!(null)));
    assert!(!equivalent(&json!(false), &json!(null)));
}

/// The tutorial's files, built against the state they produce, plan nothing:
/// ids are matched by name, scope and key, and the session secret the
/// gateway generated is kept.
#[test]
fn files_built_against_their_own_result_plan_nothing() {
    let docs = files::read(&["../fixtures/tutorial".to_owned()], files::Purpose::Sync)
        .unwrap()
        .docs;
    let first = files::build_config(docs.clone(), &Config::default(), &[]).unwrap();
    let mut live = first.config.unpack();
    for plugin in &mut live.plugins {
        if plugin["name"] == "session" {
            plugin["config"]["secret"] = json!("generated-by-the-gateway");
        }
        plugin["created_at"] = json!(1_700_000_000);
    }
    let mut again = files::build_config(docs, &live, &[]).unwrap();
    let live = PackedConfig::pack(&live);
    keep_generated_values(&mut again.config, &live);
    let planned = super::plan(&again.config, &live, &PlanOptions::default());
    assert!(planned.is_empty(), "{:?}", titles(&planned));
}

/// Planning is linear: 10,000 consumers with credentials and 1,000
/// services with routes and plugins, compared with themselves.
#[test]
fn large_configurations_plan_quickly() {
    let mut config = Config::default();
    for index in 0..10_000 {
        let consumer = uuid::Uuid::new_v4().to_string();
        config.consumers.push(canonical(
            EntityKind::Consumer,
            json!({"id": consumer, "username": format!("user-{index}")}),
        ));
        config.keyauth_credentials.push(canonical(
            EntityKind::KeyAuthCredential,
            json!({"id": uuid::Uuid::new_v4().to_string(), "key": format!("key-{index}"),
                "consumer": {"id": consumer}}),
        ));
    }
    for index in 0..1_000 {
        let id = uuid::Uuid::new_v4().to_string();
        config
            .services
            .push(service(&id, &format!("service-{index}")));
        config.plugins.push(canonical(
            EntityKind::Plugin,
            json!({"id": uuid::Uuid::new_v4().to_string(), "name": "key-auth",
                "service": {"id": id}}),
        ));
    }
    let started = std::time::Instant::now();
    assert!(plan(&config, &config, &PlanOptions::default()).is_empty());
    let created = plan(&config, &Config::default(), &PlanOptions::default());
    assert_eq!(created.counts().created, 22_000);
    // Generous for a debug build on a loaded machine; release is far faster.
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
}

/// The side-by-side shortcut only ever says "no change" for entities the
/// full comparison finds equal: timestamps aside, same fields in the same
/// order; anything else is left to the full comparison.
#[test]
fn identical_entities_are_recognised_without_a_false_no_change() {
    let live = service(S1, "svc1");
    let mut same = live.clone();
    same["created_at"] = json!(1_700_000_000);
    assert!(identical(&live, &same));
    let mut renamed = live.clone();
    renamed["name"] = json!("svc2");
    assert!(!identical(&live, &renamed));
    // Another order, or `null` against `[]`: not identical, and the full
    // comparison decides (here: no change).
    let reordered: Value = {
        let mut fields: Vec<(String, Value)> = live
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        fields.reverse();
        Value::Object(fields.into_iter().collect())
    };
    assert!(!identical(&live, &reordered));
    let differ = Differ {
        configs: [&PackedConfig::default(), &PackedConfig::default()],
        names: OnceLock::new(),
        show_secrets: false,
        entity_fields: false,
    };
    assert!(differ
        .field_changes(EntityKind::Service, &live, &reordered)
        .is_empty());
}
