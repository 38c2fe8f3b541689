use serde_json::json;

use super::*;

#[test]
fn the_text_is_serde_jsons_and_unpacks_to_the_same_value() {
    let entity = json!({"id": "a", "created_at": 1, "name": "s\"1", "n": 1.5e-7,
                        "config": {"b": [1, {"z": null}], "a": "é"}});
    let packed = Packed::new(&entity);
    assert_eq!(packed.text(), serde_json::to_string(&entity).unwrap());
    assert_eq!(packed.unpack(), entity);
    assert_eq!(packed.id(), Some("a"));
}

#[test]
fn ids_with_escapes_are_kept_whole() {
    let packed = Packed::new(&json!({"name": "x", "id": "a\"b"}));
    assert_eq!(packed.id(), Some("a\"b"));
    assert_eq!(Packed::new(&json!({"id": 5})).id(), None);
    assert_eq!(Packed::new(&json!([1])).id(), None);
}

#[test]
fn timestamps_are_left_out_of_comparisons_wherever_they_are() {
    let bare = Packed::new(&json!({"id": "a", "name": "s"}));
    let cases = [
        json!({"id": "a", "created_at": 1, "updated_at": 2, "name": "s"}),
        json!({"created_at": 1, "updated_at": 2, "id": "a", "name": "s"}),
        json!({"created_at": 1, "id": "a", "updated_at": 2, "name": "s"}),
        json!({"id": "a", "name": "s", "created_at": 1, "updated_at": 2}),
        json!({"id": "a", "name": "s", "updated_at": 9}),
    ];
    for case in cases {
        let packed = Packed::new(&case);
        assert!(packed.same_fields(&bare), "{case}");
        assert!(bare.same_fields(&packed), "{case}");
    }
    let only = Packed::new(&json!({"created_at": 1}));
    assert!(only.same_fields(&Packed::new(&json!({}))));
}

#[test]
fn any_other_difference_is_one() {
    let base = Packed::new(&json!({"id": "a", "created_at": 1, "name": "s", "tags": ["x"]}));
    let others = [
        json!({"id": "a", "created_at": 1, "name": "t", "tags": ["x"]}),
        json!({"id": "a", "created_at": 1, "tags": ["x"], "name": "s"}),
        json!({"id": "a", "created_at": 1, "name": "s", "tags": null}),
        json!({"id": "b", "created_at": 1, "name": "s", "tags": ["x"]}),
        json!({"id": "a", "created_at": 1, "name": "s", "tags": ["x"], "config": {"created_at": 1}}),
    ];
    for other in others {
        assert!(!base.same_fields(&Packed::new(&other)), "{other}");
    }
}

#[test]
fn keys_are_read_from_the_text() {
    let consumer = Packed::new(&json!({"id": "c1", "custom_id": "x\\y", "username": "alex"}));
    let keys = consumer.keys(EntityKind::Consumer);
    assert_eq!(keys.id, Some("c1"));
    assert_eq!(
        keys.unique,
        [Some(("username", "alex")), Some(("custom_id", "x\\y"))]
    );

    let plugin = Packed::new(&json!({"id": "p1", "name": "key-auth", "route": null,
        "service": {"id": "s1"}, "consumer": null, "config": {"name": "inner"}}));
    let keys = plugin.keys(EntityKind::Plugin);
    assert_eq!(keys.name, Some("key-auth"));
    assert_eq!(keys.scope, [None, Some("s1"), None]);
}

#[test]
fn a_config_packs_and_writes_the_flat_body() {
    let mut config = Config::default();
    config.services.push(json!({"id": "s1", "name": "a"}));
    config.plugins.push(json!({"id": "p1", "name": "key-auth"}));
    let packed = PackedConfig::pack(&config);
    assert_eq!(packed.len(), 2);
    assert_eq!(packed.unpack(), config);
    let body = PackedConfig::write_flat(|kind| packed.entities(kind).iter().map(Packed::text));
    let parsed: Config = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed, config);
}

#[test]
fn a_servers_text_packs_as_its_parsed_value_does() {
    let sent =
        r#"{"id":"a\u0062","created_at":1,"name":"x\/y","config":{"a": [1, 2]},"tags":null}"#;
    let packed = Packed::from_json(sent).unwrap();
    assert_eq!(packed.id(), Some("ab"));
    // Values are kept as sent; keys are written compactly.
    assert_eq!(
        packed.text(),
        r#"{"id":"a\u0062","created_at":1,"name":"x\/y","config":{"a": [1, 2]},"tags":null}"#
    );
    let value: Value = serde_json::from_str(sent).unwrap();
    assert_eq!(packed.unpack(), value);
    let compact = Packed::from_json(&value.to_string()).unwrap();
    assert_eq!(compact, Packed::new(&value));
    assert!(Packed::from_json("[1]").is_err());
}

#[test]
fn keys_written_with_escapes_read_unescaped() {
    let credential = json!({"id": "k\"1", "key": "a\\b", "consumer": {"id": "c1"}});
    let packed = Packed::new(&credential);
    assert_eq!(packed.id(), Some("k\"1"));
    assert_eq!(
        packed.keys(EntityKind::KeyAuthCredential).unique[0],
        Some(("key", "a\\b"))
    );
    assert_eq!(packed.text(), credential.to_string());
    assert_eq!(packed.unpack(), credential);
    // A reference sent with spaces is read all the same.
    let sent = r#"{"id":"p1","name":"key-auth","service": { "id" : "s\u0031" },"route":null}"#;
    let packed = Packed::from_json(sent).unwrap();
    let keys = packed.keys(EntityKind::Plugin);
    assert_eq!(keys.scope, [None, Some("s1"), None]);
    assert_eq!(keys.name, Some("key-auth"));
}

/// Past 64 KiB the offsets take four bytes: the same text, id, keys and
/// comparisons as a short entity's, and an escaped key placed past the
/// JSON still reads.
#[test]
fn a_large_entity_reads_as_a_small_one_does() {
    let large_list: Vec<String> = (0..9000).map(|n| format!("tag-{n}")).collect();
    let entity = json!({"id": "p1", "created_at": 1, "name": "key-auth", "instance_name": "a\"b",
        "service": {"id": "s1"}, "config": {"key_names": large_list}, "updated_at": 2});
    let packed = Packed::new(&entity);
    assert!(packed.text().len() > 65_536, "{}", packed.text().len());
    assert!(matches!(packed.spans, Spans::Wide(_)));
    assert_eq!(packed.text(), serde_json::to_string(&entity).unwrap());
    assert_eq!(packed.id(), Some("p1"));
    let keys = packed.keys(EntityKind::Plugin);
    assert_eq!(keys.name, Some("key-auth"));
    assert_eq!(keys.scope, [None, Some("s1"), None]);
    assert_eq!(packed.key("instance_name"), Some("a\"b"));
    let mut without_timestamps = entity.clone();
    let fields = without_timestamps.as_object_mut().unwrap();
    fields.shift_remove("created_at");
    fields.shift_remove("updated_at");
    assert!(packed.same_fields(&Packed::new(&without_timestamps)));
    assert_eq!(packed.unpack(), entity);
}

/// What a large build holds two of per entity.
#[test]
fn a_packed_entity_takes_64_bytes_besides_its_text() {
    assert_eq!(std::mem::size_of::<Packed>(), 64);
}
