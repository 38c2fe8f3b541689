//! Plugin config schemas and their typed forms: one module per plugin.
//!
//! A [`PluginSchema`] says what a plugin's `config` may hold, its priority
//! (the order the gateway runs plugins in) and where it may be attached.

pub mod key_auth;
pub mod request_termination;
pub mod session;

use once_cell::sync::Lazy;
use serde_json::Value;

use crate::schema::Record;

/// Everything the model knows about one plugin.
#[derive(Debug, Clone)]
pub struct PluginSchema {
    pub name: &'static str,
    /// Higher runs first (Kong's PRIORITY).
    pub priority: u32,
    pub version: &'static str,
    pub config: Record,
    /// Authentication plugins may not be scoped to a consumer.
    pub no_consumer: bool,
    /// Limited to grpc, grpcs, http and https.
    pub http_only: bool,
    /// Rewrites deprecated config fields to their current names.
    pub translate_shorthands: fn(&Value) -> Value,
}

static PLUGINS: Lazy<Vec<PluginSchema>> = Lazy::new(|| {
    vec![
        session::plugin_schema(),
        key_auth::plugin_schema(),
        request_termination::plugin_schema(),
    ]
});

/// The schema of a plugin this gateway has, by name.
pub fn lookup(name: &str) -> Option<&'static PluginSchema> {
    PLUGINS.iter().find(|plugin| plugin.name == name)
}

/// Every plugin this gateway has, highest priority first.
pub fn all() -> &'static [PluginSchema] {
    &PLUGINS
}

/// Plugin names, sorted, as `GET /plugins/enabled` lists them.
pub fn enabled_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = PLUGINS.iter().map(|plugin| plugin.name).collect();
    names.sort_unstable();
    names
}

/// No deprecated fields to translate.
pub fn no_shorthands(config: &Value) -> Value {
    config.clone()
}
