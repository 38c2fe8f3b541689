//! Unit tests of the builder.

use std::ops::Deref;

use super::*;
use crate::config::id_of;
use crate::file::load::load_text;
use serde_json::json;

/// A build with its configuration unpacked, for assertions on values.
#[derive(Debug)]
struct Unpacked {
    config: Config,
    built: Built,
}

impl Deref for Unpacked {
    type Target = Built;
    fn deref(&self) -> &Built {
        &self.built
    }
}

impl From<Built> for Unpacked {
    fn from(built: Built) -> Self {
        Unpacked {
            config: built.config.unpack(),
            built,
        }
    }
}

/// [`super::build`], unpacked.
fn build(
    docs: &[SourceDoc],
    current: &Config,
    options: &BuildOptions,
) -> Result<Unpacked, Vec<Diagnostic>> {
    super::build(docs, current, options).map(Unpacked::from)
}

fn docs(text: &str) -> Vec<SourceDoc> {
    let no_env = |_: &str| None;
    load_text("kong.yaml", text, &no_env)
        .expect("test input parses")
        .docs
}

fn build_against(text: &str, current: &Config) -> Unpacked {
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
fn references_resolve_against_the_live_state_only_on_top_of_it() {
    let live = build_against(TUTORIAL, &Config::default()).config;
    let block = "plugins:\n  - name: key-auth\n    service: example-service\n";
    let on_top = BuildOptions {
        partial_apply: true,
        ..BuildOptions::default()
    };
    let built = build(&docs(block), &live, &on_top).expect("resolves in the live state");
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
        ..BuildOptions::default()
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

/// A full sync deletes the live entities the files leave out: a reference
/// to one is refused with decK's message, and a note says what to do.
#[test]
fn a_full_build_refuses_references_to_live_entities_it_would_delete() {
    let live = build_against(TUTORIAL, &Config::default()).config;
    let block = "plugins:\n  - name: key-auth\n    service: example-service\n";
    let errors = build(&docs(block), &live, &BuildOptions::default()).expect_err("refused");
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "kong.yaml:3:14: plugins[0] (key-auth).service: service example-service for plugin \
             key-auth: entity not found",
            "kong.yaml:3:14: note: service example-service is on the gateway, but a sync deletes \
             what the files leave out, so the files cannot refer to it: add it to the files, or \
             apply the files on top of the gateway with `gwctl sync --no-deletes`",
        ]
    );
}

/// By id, a reference may name a gateway entity outside the select tags:
/// the caller looks it up and passes it in.
#[test]
fn ids_outside_the_selection_are_looked_up_and_resolve() {
    let outside = build_against(TUTORIAL, &Config::default()).config;
    let service_id = id_of(&outside.services[0]).unwrap().to_owned();
    let text = format!(
        "_info:\n  select_tags: [t]\nservices:\n  - name: mine\n    host: h\n    routes:\n      \
         - name: r\n        paths: [/r]\n        plugins:\n          - name: key-auth\n            \
         service: {service_id}\n"
    );
    let flattened = flatten(docs(&text), &BuildOptions::default());
    assert_eq!(
        flattened.ids_to_look_up(&PackedConfig::default()),
        [(EntityKind::Service, service_id.clone())]
    );
    let built: Unpacked = flattened
        .build_with(&PackedConfig::default(), &PackedConfig::pack(&outside))
        .expect("the id resolves outside the selection")
        .into();
    assert_eq!(built.config.plugins[0]["service"]["id"], service_id);
    // Not found there either: decK's error, and no "already defined".
    let errors = build(&docs(&text), &Config::default(), &BuildOptions::default()).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].message.ends_with("entity not found"),
        "{errors:?}"
    );
}

fn page_docs(text: &str) -> Vec<SourceDoc> {
    let no_env = |_: &str| None;
    load_text("page.md", text, &no_env)
        .expect("test page parses")
        .docs
}

const PAGE: &str = "{% entity_examples %}
entities:
  services:
    - name: s
      url: https://example.com/v1
      retries: 3
  consumers:
    - username: anonymous
    - username: mahan
{% endentity_examples %}

{% entity_examples %}
entities:
  plugins:
    - name: key-auth
      service: s
      config: {hide_credentials: true}
{% endentity_examples %}

{% entity_examples %}
entities:
  services:
    - name: s
      host: upstream.internal
  consumers:
    - username: mahan
      keyauth_credentials:
        - key: mahan
    - username: anonymous
      plugins:
        - name: request-termination
          config: {status_code: 401}
  plugins:
    - name: key-auth
      service: s
      config: {key_names: [key]}
{% endentity_examples %}
";

/// A page means what its blocks applied in turn leave behind: a block
/// that names an entity again replaces its fields; children accumulate.
#[test]
fn a_pages_blocks_are_applied_in_turn() {
    let built = build(
        &page_docs(PAGE),
        &Config::default(),
        &BuildOptions::default(),
    )
    .expect("re-declarations are not duplicates");
    let config = &built.config;
    assert_eq!(config.services.len(), 1);
    let service = &config.services[0];
    // The last block's declaration, with defaults: not https, not 3 retries.
    assert_eq!(
        (
            &service["host"],
            &service["protocol"],
            &service["port"],
            &service["retries"]
        ),
        (
            &json!("upstream.internal"),
            &json!("http"),
            &json!(80),
            &json!(5)
        )
    );
    assert!(service["path"].is_null());
    assert_eq!(config.consumers.len(), 2);
    assert_eq!(config.keyauth_credentials.len(), 1);
    let key_auth: Vec<&Value> = config
        .plugins
        .iter()
        .filter(|p| p["name"] == "key-auth")
        .collect();
    assert_eq!(key_auth.len(), 1, "the second key-auth replaces the first");
    assert_eq!(key_auth[0]["config"]["key_names"], json!(["key"]));
    assert_eq!(key_auth[0]["config"]["hide_credentials"], json!(false));
    assert_eq!(key_auth[0]["service"]["id"], service["id"]);
    let anonymous = config
        .consumers
        .iter()
        .find(|c| c["username"] == "anonymous")
        .unwrap();
    let termination = config
        .plugins
        .iter()
        .find(|p| p["name"] == "request-termination")
        .unwrap();
    assert_eq!(termination["consumer"]["id"], anonymous["id"]);
    // Positions point at the declaration in force.
    let origin = built
        .origin_of(EntityKind::Service, id_of(service).unwrap())
        .unwrap();
    assert_eq!(origin.pos.map(|p| p.line), Some(23));
}

/// Separate files (and one block) still may not repeat an entity.
#[test]
fn repeats_across_files_and_within_a_block_are_duplicates() {
    let file = "services:\n  - name: s\n    host: h\n  - name: s\n    host: h\n";
    let errors = build(&docs(file), &Config::default(), &BuildOptions::default()).unwrap_err();
    assert!(errors[0].message.contains("already defined"), "{errors:?}");
    let mut both = page_docs(PAGE);
    both.extend(docs("services:\n  - name: s\n    host: h\n"));
    let errors = build(&both, &Config::default(), &BuildOptions::default()).unwrap_err();
    assert!(errors[0].message.contains("already defined"), "{errors:?}");
}

/// A service's bad id is reported once, not again under each route.
#[test]
fn a_bad_parent_id_is_reported_once() {
    let text = "services:\n  - name: s\n    id: not-a-uuid\n    host: h\n    routes:\n      - name: r1\n        paths: [/a]\n      - name: r2\n        paths: [/b]\n";
    let errors = build(&docs(text), &Config::default(), &BuildOptions::default()).unwrap_err();
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        ["kong.yaml:3:9: services[0] (s).id: expected a valid UUID"]
    );
}

#[test]
fn sections_decks_knows_are_named_as_not_supported() {
    let text = "_konnect: {control_plane_name: cp}\n_plugin_configs: {a: {}}\ncloned_plugins: []\nconsumers:\n  - username: a\n    acls: [{group: g}]\n    groups: [{name: g}]\nservices:\n  - name: s\n    host: h\n    filter_chains: []\n";
    let errors = build(&docs(text), &Config::default(), &BuildOptions::default()).unwrap_err();
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "kong.yaml:1:11: _konnect: '_konnect' (Konnect control-plane settings) is not supported by this gateway",
            "kong.yaml:2:18: _plugin_configs: '_plugin_configs' (named plugin config fragments) is not supported by this gateway",
            "kong.yaml:3:17: cloned_plugins: 'cloned_plugins' entities are not supported by this gateway",
            "kong.yaml:6:11: consumers[0] (a).acls: 'acls' entities are not supported by this gateway",
            "kong.yaml:7:13: consumers[0] (a).groups: 'groups' (consumer-group membership) is not supported by this gateway",
            "kong.yaml:11:20: services[0] (s).filter_chains: 'filter_chains' entities are not supported by this gateway",
        ]
    );
}

#[test]
fn files_naming_different_workspaces_are_refused() {
    let mut both = docs("_workspace: a\nservices: []\n");
    both.extend(docs("_workspace: a\n"));
    assert!(build(&both, &Config::default(), &BuildOptions::default()).is_ok());
    both.extend(docs("_workspace: b\n"));
    let errors = build(&both, &Config::default(), &BuildOptions::default()).unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        "kong.yaml:1:13: _workspace: 'b' differs from the _workspace 'a' of kong.yaml: it seems \
         like you are trying to sync multiple workspaces at the same time; sync one workspace at \
         a time"
    );
}

#[test]
fn an_unknown_plugin_is_not_supported_here() {
    let text = "plugins:\n  - name: rate-limiting\n    config: {minute: 5}\n";
    let errors = build(&docs(text), &Config::default(), &BuildOptions::default()).unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        "kong.yaml:2:11: plugins[0] (rate-limiting).name: plugin 'rate-limiting' is not supported \
         by this gateway; its plugins are: key-auth, prometheus, request-termination, session"
    );
}
