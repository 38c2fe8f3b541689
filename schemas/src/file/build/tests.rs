//! Unit tests of the builder.

use super::*;
use crate::file::load::load_text;
use serde_json::json;

fn docs(text: &str) -> Vec<SourceDoc> {
    let no_env = |_: &str| None;
    load_text("kong.yaml", text, &no_env)
        .expect("test input parses")
        .docs
}

fn build_against(text: &str, current: &Config) -> Built {
    build(&docs(text), current, &BuildOptions::default()).expect("test input builds")
}

const TUTORIAL: &str = r#"_format_version: "3.0"
services:
  - name: example-service
    url: http://127.0.0.1:9000
    routes:
      - name: example-route
        paths: [/anything]
    plugins:
      - name: session
        config: {storage: kong}
consumers:
  - username: alex
    keyauth_credentials:
      - key: hello_world
"#;

#[test]
fn nested_entities_get_their_parent_reference() {
    let built = build_against(TUTORIAL, &Config::default());
    let service_id = id_of(&built.config.services[0]).unwrap();
    assert_eq!(built.config.routes[0]["service"]["id"], service_id);
    assert_eq!(built.config.plugins[0]["service"]["id"], service_id);
    let consumer_id = id_of(&built.config.consumers[0]).unwrap();
    assert_eq!(
        built.config.keyauth_credentials[0]["consumer"]["id"],
        consumer_id
    );
    assert_eq!(built.config.len(), 5);
}

#[test]
fn ids_and_generated_secrets_come_from_the_live_state() {
    let first = build_against(TUTORIAL, &Config::default());
    let mut live = first.config.clone();
    live.plugins[0]["config"]["secret"] = json!("live-secret");
    let second = build_against(TUTORIAL, &live);
    for kind in EntityKind::ALL {
        let ids = |config: &Config| -> Vec<String> {
            config
                .entities(kind)
                .iter()
                .filter_map(id_of)
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(ids(&second.config), ids(&live), "{kind:?} ids are reused");
    }
    assert_eq!(second.config.plugins[0]["config"]["secret"], "live-secret");
}

#[test]
fn references_resolve_against_the_live_state() {
    let live = build_against(TUTORIAL, &Config::default()).config;
    let block = "plugins:\n  - name: key-auth\n    service: example-service\n";
    let built = build_against(block, &live);
    assert_eq!(
        built.config.plugins[0]["service"]["id"],
        live.services[0]["id"]
    );
    let offline = build(&docs(block), &Config::default(), &BuildOptions::default());
    let errors = offline.expect_err("dangling offline");
    assert_eq!(
        errors[0].to_string(),
        "kong.yaml:3:14: plugins[0] (key-auth).service: service example-service for plugin key-auth: entity not found"
    );
}

#[test]
fn references_prefer_ids_then_names_in_order() {
    let text = "consumers:
  - username: alex
    custom_id: bob
  - username: bob
plugins:
  - name: request-termination
    consumer: bob
    config: {status_code: 403}
";
    let built = build_against(text, &Config::default());
    let bob = id_of(&built.config.consumers[1]).unwrap();
    // `bob` is the second consumer's username and the first one's
    // custom_id: the username comes first.
    assert_eq!(built.config.plugins[0]["consumer"]["id"], bob);
    let by_id = format!("{text}keyauth_credentials:\n  - key: k1\n    consumer: {bob}\n");
    let built = build(&docs(&by_id), &built.config, &BuildOptions::default()).unwrap();
    assert_eq!(built.config.keyauth_credentials[0]["consumer"]["id"], bob);
}

#[test]
fn select_tags_are_added_and_must_agree() {
    let text = "_info:\n  select_tags: [team-a]\nconsumers:\n  - username: bob\n";
    let built = build_against(text, &Config::default());
    assert_eq!(built.config.consumers[0]["tags"], json!(["team-a"]));
    let options = BuildOptions {
        select_tags: vec!["team-b".into()],
    };
    assert!(build(&docs(text), &Config::default(), &options).is_err());
}

#[test]
fn anonymous_consumer_absent_is_a_warning() {
    let text = "plugins:\n  - name: key-auth\n    config:\n      anonymous: ghost\n";
    let built = build_against(text, &Config::default());
    assert_eq!(built.warnings.len(), 1);
    assert!(built.warnings[0]
        .to_string()
        .contains("warning: plugins[0] (key-auth).config.anonymous"));
}
