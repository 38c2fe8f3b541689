//! The Plugin entity: name, scope, protocols and a per-plugin `config`
//! record looked up in [`crate::plugins`].

use serde_json::{json, Value};

use super::common;
use crate::error::{FieldError, FieldPath};
use crate::plugins::PluginSchema;
use crate::schema::{Field, Record, Type};

pub const HTTP_PROTOCOLS: &[&str] = &["grpc", "grpcs", "http", "https"];
pub const ALL_PROTOCOLS: &[&str] = &[
    "grpc",
    "grpcs",
    "http",
    "https",
    "tcp",
    "tls",
    "tls_passthrough",
    "udp",
    "ws",
    "wss",
];

/// The full record of a plugin entity whose `config` is `plugin`'s schema.
pub fn schema(plugin: &PluginSchema) -> Record {
    let protocols = if plugin.http_only {
        HTTP_PROTOCOLS
    } else {
        ALL_PROTOCOLS
    };
    Record::new(vec![
        common::id(),
        Field::string("name").required(),
        common::utf8_name("instance_name"),
        common::created_at(),
        common::updated_at(),
        Field::foreign("route", "routes"),
        Field::foreign("service", "services"),
        Field::foreign("consumer", "consumers"),
        Field::record("config", plugin.config.clone())
            .required()
            .default(json!({})),
        Field::set("protocols", Field::item(Type::String).one_of(protocols))
            .required()
            .default(json!(HTTP_PROTOCOLS)),
        Field::boolean("enabled").required().default(json!(true)),
        common::tags(),
    ])
}

/// The error for a plugin name this gateway does not have.
pub fn unknown_plugin(name: &str) -> FieldError {
    FieldError::new(
        FieldPath::root().key("name"),
        format!("plugin '{name}' not enabled; add it to the 'plugins' configuration property"),
    )
}

/// Plugins that authenticate may not be scoped to a consumer.
pub fn consumer_scope_error(plugin: &PluginSchema, input: &Value) -> Option<FieldError> {
    let scoped = input
        .get("consumer")
        .is_some_and(|consumer| !consumer.is_null());
    (plugin.no_consumer && scoped)
        .then(|| FieldError::new(FieldPath::root().key("consumer"), "value must be null"))
}
