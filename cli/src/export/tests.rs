//! Tests of the dump document: nesting, ids, defaults, sanitizing, and the
//! round trip dump → load → build → plan = nothing.

use std::path::PathBuf;

use schemas::config::Config;
use schemas::packed::PackedConfig;
use serde_json::{json, Value};

use super::*;
use crate::files;
use crate::plan::{self, PlanOptions};
use crate::reconcile;

/// The tutorial's configuration as the gateway would hold it.
fn tutorial() -> Config {
    let docs = files::read(&["../fixtures/tutorial".to_owned()], files::Purpose::Sync)
        .unwrap()
        .docs;
    let mut config = files::build_config(docs, &Config::default(), &[])
        .unwrap()
        .config
        .unpack();
    for plugin in &mut config.plugins {
        if plugin["name"] == "session" {
            plugin["config"]["secret"] = json!("generated-by-the-gateway");
        }
    }
    config
}

/// A file in a fresh temporary directory, removed on drop.
struct TempFile {
    dir: PathBuf,
    path: PathBuf,
}

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("gwctl-export-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        Self { dir, path }
    }

    fn path(&self) -> String {
        self.path.display().to_string()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Dump `live`, read the dump back as files and plan it against `live`.
fn round_trip(live: &Config, options: &ExportOptions, as_json: bool) -> plan::Plan {
    let doc = document(live, options);
    let (name, text) = if as_json {
        ("dump.json", serde_json::to_string_pretty(&doc).unwrap())
    } else {
        ("dump.yaml", serde_yaml_ng::to_string(&doc).unwrap())
    };
    let file = TempFile::new(name, &text);
    let docs = files::read(&[file.path()], files::Purpose::Sync)
        .unwrap()
        .docs;
    let mut built = files::build_config(docs, live, &[]).unwrap();
    let live = PackedConfig::pack(live);
    plan::keep_generated_values(&mut built.config, &live);
    plan::plan(&built.config, &live, &PlanOptions::default())
}

#[test]
fn the_tutorial_is_nested_the_way_people_write_it() {
    let doc = document(&tutorial(), &ExportOptions::default());
    assert_eq!(doc["_format_version"], "3.0");
    let service = &doc["services"][0];
    assert_eq!(service["name"], "example-service");
    assert!(service.get("id").is_none());
    assert_eq!(service["host"], "127.0.0.1");
    assert_eq!(service["port"], 9000);
    assert!(service.get("retries").is_none(), "defaults are left out");
    assert_eq!(service["routes"][0]["name"], "example-route");
    assert!(service["routes"][0].get("service").is_none());
    let nested: Vec<&str> = service["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|plugin| plugin["name"].as_str().unwrap())
        .collect();
    assert_eq!(nested, vec!["key-auth", "session"]);
    assert!(service["plugins"][0].get("service").is_none());
    let consumers = doc["consumers"].as_array().unwrap();
    assert_eq!(consumers[0]["username"], "alex");
    assert!(consumers[0].get("id").is_none());
    assert_eq!(
        consumers[0]["keyauth_credentials"],
        json!([{"key": "hello_world"}])
    );
    assert_eq!(consumers[1]["username"], "anonymous_users");
    assert_eq!(
        consumers[1]["id"], "81823632-10c0-4098-a4f7-31062520c1e6",
        "the anonymous consumer keeps the id key-auth refers to"
    );
    assert_eq!(
        doc["plugins"],
        json!([{"name": "request-termination", "service": "example-service",
            "consumer": "anonymous_users",
            "config": {"status_code": 403, "message": "Forbidden"}}])
    );
}

#[test]
fn dumps_sync_back_to_no_change() {
    let live = tutorial();
    let variants = [
        ExportOptions::default(),
        ExportOptions {
            with_id: true,
            ..ExportOptions::default()
        },
        ExportOptions {
            with_defaults: true,
            ..ExportOptions::default()
        },
    ];
    for (index, options) in variants.iter().enumerate() {
        let planned = round_trip(&live, options, index == 1);
        let titles: Vec<String> = planned.changes.iter().map(|c| c.title()).collect();
        assert!(planned.is_empty(), "{options:?}: {titles:?}");
    }
}

#[test]
fn nameless_and_multi_scope_entities_round_trip() {
    let mut live = tutorial();
    let service = live.services[0]["id"].as_str().unwrap().to_owned();
    let route = live.routes[0]["id"].as_str().unwrap().to_owned();
    let extra_route = schemas::EntityKind::Route
        .validate(
            &json!({"id": uuid::Uuid::new_v4().to_string(), "paths": ["/nameless"],
            "service": {"id": service}, "tags": ["b", "a"]}),
        )
        .unwrap();
    let serviceless = schemas::EntityKind::Route
        .validate(
            &json!({"id": uuid::Uuid::new_v4().to_string(), "name": "loose",
            "hosts": ["example.org"]}),
        )
        .unwrap();
    let route_plugin = schemas::EntityKind::Plugin
        .validate(
            &json!({"id": uuid::Uuid::new_v4().to_string(), "name": "request-termination",
            "route": {"id": route}, "config": {"status_code": 418}}),
        )
        .unwrap();
    let custom_only = schemas::EntityKind::Consumer
        .validate(&json!({"id": uuid::Uuid::new_v4().to_string(), "custom_id": "ext-7"}))
        .unwrap();
    live.routes.extend([extra_route, serviceless]);
    live.plugins.push(route_plugin);
    live.consumers.push(custom_only);
    let doc = document(&live, &ExportOptions::default());
    let routes = doc["services"][0]["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 2);
    assert!(
        routes[0].get("id").is_some(),
        "a nameless route keeps its id"
    );
    assert_eq!(
        routes[1]["plugins"][0]["name"], "request-termination",
        "a route-scoped plugin sits under its route"
    );
    assert_eq!(doc["routes"][0]["name"], "loose");
    let planned = round_trip(&live, &ExportOptions::default(), false);
    let titles: Vec<String> = planned.changes.iter().map(|c| c.title()).collect();
    assert!(planned.is_empty(), "{titles:?}");
}

#[test]
fn dumps_are_deterministic_and_carry_select_tags() {
    let mut live = tutorial();
    live.consumers.reverse();
    live.plugins.reverse();
    let options = ExportOptions {
        select_tags: vec!["team-a".to_owned()],
        ..ExportOptions::default()
    };
    let first = document(&live, &options);
    let mut shuffled = live.clone();
    shuffled.consumers.reverse();
    shuffled.plugins.reverse();
    assert_eq!(first, document(&shuffled, &options));
    assert_eq!(first["_info"], json!({"select_tags": ["team-a"]}));
}

#[test]
fn sanitized_dumps_hide_secrets_and_are_refused_by_sync() {
    let options = ExportOptions {
        sanitize: true,
        ..ExportOptions::default()
    };
    let doc = document(&tutorial(), &options);
    let text = serde_yaml_ng::to_string(&doc).unwrap();
    assert!(!text.contains("hello_world"), "{text}");
    assert!(!text.contains("generated-by-the-gateway"), "{text}");
    assert!(text.contains("[sanitized:"), "{text}");
    let file = TempFile::new("sanitized.yaml", &text);
    let docs = files::read(&[file.path()], files::Purpose::Sync)
        .unwrap()
        .docs;
    let error = reconcile::refuse_sanitized(&docs).unwrap_err();
    assert!(error.message.contains("--sanitize"), "{}", error.message);
    assert!(
        error.message.contains("sanitized.yaml:"),
        "the message names the file and position: {}",
        error.message
    );
    let plain = document(&tutorial(), &ExportOptions::default());
    let plain_file = TempFile::new("plain.yaml", &serde_yaml_ng::to_string(&plain).unwrap());
    let plain_docs = files::read(&[plain_file.path()], files::Purpose::Sync)
        .unwrap()
        .docs;
    assert!(reconcile::refuse_sanitized(&plain_docs).is_ok());
}

#[test]
fn an_empty_gateway_dumps_only_the_version() {
    let doc = document(&Config::default(), &ExportOptions::default());
    assert_eq!(doc, json!({"_format_version": "3.0"}));
    let _: Value = doc;
}
