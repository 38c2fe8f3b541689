//! Property tests of the canonical form: validating is idempotent, the
//! canonical form survives a JSON and a YAML round trip unchanged, and the
//! order of set members never matters.

use proptest::prelude::*;
use schemas::EntityKind;
use serde_json::{json, Value};

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,12}"
}

fn tags() -> impl Strategy<Value = Option<Vec<String>>> {
    proptest::option::of(proptest::collection::vec("[a-z]{1,6}", 0..4))
}

fn service() -> impl Strategy<Value = Value> {
    (name(), "[a-z]{1,10}\\.(com|org|local)", 1u16..65535, proptest::option::of("/[a-z]{1,8}"), tags(), any::<bool>())
        .prop_map(|(name, host, port, path, tags, enabled)| {
            json!({"name": name, "host": host, "port": port, "path": path, "tags": tags, "enabled": enabled})
        })
}

fn route() -> impl Strategy<Value = Value> {
    let methods = proptest::sample::subsequence(vec!["GET", "POST", "PUT", "DELETE"], 0..4);
    let paths = proptest::collection::vec("/[a-z]{1,8}", 1..3);
    (name(), methods, paths, any::<bool>(), -5i64..5, tags()).prop_map(
        |(name, methods, paths, strip_path, regex_priority, tags)| {
            json!({"name": name, "methods": methods, "paths": paths, "strip_path": strip_path,
                "regex_priority": regex_priority, "tags": tags})
        },
    )
}

fn plugin() -> impl Strategy<Value = Value> {
    let key_auth = (proptest::collection::vec("[a-z_-]{1,10}", 1..3), any::<bool>(), any::<bool>())
        .prop_map(|(key_names, hide, query)| {
            json!({"name": "key-auth", "config": {"key_names": key_names, "hide_credentials": hide, "key_in_query": query}})
        });
    let session = (
        proptest::sample::select(vec!["cookie", "kong"]),
        proptest::sample::select(vec!["Strict", "Lax", "None", "Default"]),
        0u32..100000,
        proptest::sample::subsequence(vec!["GET", "POST", "DELETE"], 1..3),
    )
        .prop_map(|(storage, same_site, rolling, logout_methods)| {
            json!({"name": "session", "config": {"storage": storage, "cookie_same_site": same_site,
                "rolling_timeout": rolling, "logout_methods": logout_methods, "secret": "s3cr3t"}})
        });
    let termination = (100u16..600, proptest::option::of("[A-Za-z ]{1,20}"), any::<bool>()).prop_map(
        |(status, message, echo)| {
            json!({"name": "request-termination", "config": {"status_code": status, "message": message, "echo": echo}})
        },
    );
    prop_oneof![key_auth, session, termination]
}

fn entity() -> impl Strategy<Value = (EntityKind, Value)> {
    prop_oneof![
        service().prop_map(|v| (EntityKind::Service, v)),
        route().prop_map(|v| (EntityKind::Route, v)),
        plugin().prop_map(|v| (EntityKind::Plugin, v)),
        (name(), tags()).prop_map(|(username, tags)| (
            EntityKind::Consumer,
            json!({"username": username, "tags": tags})
        )),
    ]
}

proptest! {
    #[test]
    fn canonical_form_is_a_fixed_point((kind, input) in entity()) {
        let canonical = kind.validate(&input).expect("generated input is valid");
        prop_assert_eq!(&kind.validate(&canonical).expect("canonical is valid"), &canonical);
    }

    #[test]
    fn canonical_form_survives_json_and_yaml((kind, input) in entity()) {
        let canonical = kind.validate(&input).expect("generated input is valid");
        let from_json: Value = serde_json::from_str(&serde_json::to_string(&canonical).unwrap()).unwrap();
        prop_assert_eq!(&kind.validate(&from_json).unwrap(), &canonical);
        let yaml = serde_yaml_ng::to_string(&canonical).unwrap();
        let from_yaml: Value = serde_yaml_ng::from_str(&yaml).unwrap();
        prop_assert_eq!(&kind.validate(&from_yaml).unwrap(), &canonical);
    }

    #[test]
    fn sets_keep_their_order_and_drop_repeats(tags in proptest::collection::vec("[a-z]{1,5}", 1..6)) {
        // Kong's `set`: the first of each value stays, in the order given.
        let mut expected: Vec<String> = Vec::new();
        for tag in &tags {
            if !expected.contains(tag) {
                expected.push(tag.clone());
            }
        }
        let canonical = EntityKind::Consumer.validate(&json!({"username": "u", "tags": tags})).unwrap();
        prop_assert_eq!(&canonical["tags"], &json!(expected));
    }

    #[test]
    fn defaults_stripped_then_validated_give_the_same_entity((kind, input) in entity()) {
        let canonical = kind.validate(&input).unwrap();
        let record = kind.record_for(&canonical).expect("known kind");
        let stripped = record.strip_defaults(&canonical);
        prop_assert_eq!(kind.validate(&stripped).unwrap(), canonical);
    }
}
