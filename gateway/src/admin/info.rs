//! Informational endpoints: `GET /`, `GET /status`, `GET /metrics`,
//! `GET /plugins/enabled`
//! and the schema endpoints (`GET /schemas/...`, `POST .../validate`).

use schemas::entities::plugin_record;
use schemas::{plugins, EntityKind};
use serde_json::{json, Map, Value};

use super::body::Body;
use super::input::record_for;
use super::response::{ApiError, Reply};
use super::Context;
use crate::observability::exposition::CONTENT_TYPE as EXPOSITION_TYPE;
use crate::observability::node::status_document;

/// `GET /`: version, node, plugins and a sanitized configuration.
pub fn root(context: &Context) -> Result<Reply, ApiError> {
    let state = &context.state;
    let available: Map<String, Value> = plugins::all()
        .iter()
        .map(|plugin| {
            let about = json!({"version": plugin.version, "priority": plugin.priority});
            (plugin.name.to_owned(), about)
        })
        .collect();
    let pid = std::process::id();
    Ok(Reply::ok(json!({
        "version": state.version,
        "tagline": "Welcome to kong",
        "hostname": hostname(),
        "node_id": state.node_id.to_string(),
        "edition": "community",
        "plugins": {
            "available_on_server": available,
            "enabled_in_cluster": state.store.plugin_names_in_use()?,
        },
        "configuration": configuration(context),
        "timers": {"running": 0, "pending": 0},
        "pids": {"master": pid, "workers": [pid]},
    })))
}

/// The parts of the node's configuration that are safe to show.
fn configuration(context: &Context) -> Value {
    let loaded: Map<String, Value> = plugins::enabled_names()
        .into_iter()
        .map(|name| (name.to_owned(), Value::Bool(true)))
        .collect();
    json!({
        "database": context.state.store.backend_name(),
        "role": "traditional",
        "router_flavor": "traditional_compatible",
        "admin_listen": [context.state.listen_addr.to_string()],
        "plugins": ["bundled"],
        "loaded_plugins": loaded,
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `GET /status`: database reachability, the node's connection counters,
/// and the revision of the configuration this node serves
/// (`configuration_revision`, ours: nodes sharing a database converge on
/// the same one).
pub fn status(context: &Context) -> Result<Reply, ApiError> {
    let state = &context.state;
    Ok(Reply::ok(status_document(
        state.exposition.stats.counts(),
        state.store.is_reachable(),
        Some(state.store.revision()),
    )))
}

/// `GET /metrics`: the Prometheus exposition (the same as the Status
/// API's).
pub fn metrics(context: &Context) -> Reply {
    let state = &context.state;
    Reply::text(
        EXPOSITION_TYPE,
        state.exposition.render(state.store.is_reachable()),
    )
}

/// `GET /plugins/enabled`.
pub fn plugins_enabled() -> Reply {
    Reply::ok(json!({ "enabled_plugins": plugins::enabled_names() }))
}

/// The kind a schema URL names (`services`, `keyauth_credentials`, ...).
fn kind_named(name: &str) -> Result<EntityKind, ApiError> {
    EntityKind::from_collection(name).ok_or_else(|| ApiError::NoSuchEntity(name.to_owned()))
}

/// `GET /schemas/{entity}`: the fields and Kong's `entity_checks`.
pub fn entity_schema(name: &str) -> Result<Reply, ApiError> {
    let kind = kind_named(name)?;
    let mut described = if kind == EntityKind::Plugin {
        generic_plugin_schema()
    } else {
        kind.schema().describe()
    };
    with_entity_checks(&mut described, (kind.descriptor().entity_checks)());
    Ok(Reply::ok(described))
}

/// Adds `entity_checks` after the fields.
fn with_entity_checks(described: &mut Value, checks: Value) {
    if let Some(object) = described.as_object_mut() {
        object.insert("entity_checks".to_owned(), checks);
    }
}

/// The plugin entity's fields, with `config` left abstract (it depends on
/// the plugin; see `/schemas/plugins/{name}`).
fn generic_plugin_schema() -> Value {
    let Some(first) = plugins::all()
        .first()
        .and_then(|plugin| plugin_record(plugin.name))
    else {
        return json!({"fields": []});
    };
    let mut described = first.describe();
    if let Some(fields) = described.get_mut("fields").and_then(Value::as_array_mut) {
        for field in fields.iter_mut() {
            if let Some(config) = field.get_mut("config") {
                *config = json!({"type": "record", "abstract": true, "required": true});
            }
        }
    }
    described
}

/// `GET /schemas/plugins/{name}`.
pub fn plugin_schema(name: &str) -> Result<Reply, ApiError> {
    let record = plugin_record(name).ok_or_else(|| ApiError::NoSuchPlugin(name.to_owned()))?;
    let mut described = record.describe();
    // key-auth, session and request-termination declare none in Kong.
    with_entity_checks(&mut described, json!([]));
    Ok(Reply::ok(described))
}

/// `POST /schemas/{entity}/validate`: schema rules only, nothing stored.
pub fn validate(name: &str, body: &Body) -> Result<Reply, ApiError> {
    let kind = kind_named(name)?;
    let mut input = body.value.clone();
    if body.form {
        if let Some(record) = record_for(kind, &input, None) {
            input = super::body::infer_types(input, record);
        }
    }
    kind.validate(&input)
        .map_err(|violation| ApiError::Store(violation.into()))?;
    Ok(Reply::ok(
        json!({"message": "schema validation successful"}),
    ))
}
