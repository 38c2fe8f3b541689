//! The Plugin entity: name, scope, protocols and a per-plugin `config`
//! record looked up in [`crate::plugins`].

use serde_json::{json, Value};

use super::{EntityDescriptor, EntityKind, OnDelete, Reference};
use crate::error::{FieldError, FieldPath};
use crate::plugins::PluginSchema;
use crate::schema::{Field, Record, Type};
use crate::typedefs;

/// Plugins (Kong's `plugins`, endpoint key `instance_name`); deleted with
/// the route, service or consumer they are scoped to. Their `config`
/// follows the named plugin's schema ([`crate::plugins`]).
pub const DESCRIPTOR: EntityDescriptor = EntityDescriptor {
    collection: "plugins",
    admin_path: "plugins",
    deck_kind: "plugin",
    nested_path: "plugins",
    endpoint_key: "instance_name",
    unique: &["instance_name"],
    display_names: &["instance_name"],
    references: &[
        Reference {
            field: "service",
            parent: EntityKind::Service,
            on_delete: OnDelete::Cascade,
        },
        Reference {
            field: "route",
            parent: EntityKind::Route,
            on_delete: OnDelete::Cascade,
        },
        Reference {
            field: "consumer",
            parent: EntityKind::Consumer,
            on_delete: OnDelete::Cascade,
        },
    ],
    generated: &[],
    schema: generic_schema,
    entity_checks,
};

/// Kong's plugins entity declares no entity checks.
fn entity_checks() -> Value {
    json!([])
}

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
    record(plugin.config.clone(), protocols)
}

/// The plugin entity's fields with an empty `config` (which depends on the
/// plugin named).
pub fn generic_schema() -> Record {
    record(Record::default(), ALL_PROTOCOLS)
}

fn record(config: Record, protocols: &'static [&'static str]) -> Record {
    Record::new(vec![
        typedefs::id(),
        Field::string("name").required(),
        typedefs::utf8_name("instance_name"),
        typedefs::created_at(),
        typedefs::updated_at(),
        Field::foreign("route", "routes"),
        Field::foreign("service", "services"),
        Field::foreign("consumer", "consumers"),
        Field::record("config", config)
            .required()
            .default(json!({})),
        Field::set("protocols", Field::item(Type::String).one_of(protocols))
            .required()
            .default(json!(HTTP_PROTOCOLS)),
        Field::boolean("enabled").required().default(json!(true)),
        typedefs::tags(),
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
