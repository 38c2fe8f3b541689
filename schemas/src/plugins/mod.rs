//! Plugin config schemas and their typed forms: one module per plugin.
//!
//! A [`PluginSchema`] says what a plugin's `config` may hold, its priority
//! (the order the gateway runs plugins in) and where it may be attached.

use once_cell::sync::Lazy;
use serde_json::Value;

use crate::schema::Record;
use crate::typedefs::Generated;

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
    /// `config` fields the server generates when left out (the session
    /// plugin's `secret`).
    pub generated: &'static [Generated],
}

/// The one list of the plugins this gateway has, by module name: each is a
/// module here (its config schema, `schemas/src/plugins/<name>.rs`) and a
/// module of the gateway (its handler, `gateway/src/plugins/<name>.rs`).
/// It hands the names to the macro `$then`, which declares the modules of
/// one side and its registry. Adding a plugin: its two files, one name
/// here.
#[macro_export]
macro_rules! with_plugin_modules {
    ($then:ident) => {
        $then! { key_auth, prometheus, request_termination, session }
    };
}

/// Declares the schema modules and [`PLUGINS`], highest priority first.
macro_rules! declare_schemas {
    ($($module:ident),*) => {
        $(pub mod $module;)*

        static PLUGINS: Lazy<Vec<PluginSchema>> = Lazy::new(|| {
            let mut plugins = vec![$($module::plugin_schema()),*];
            plugins.sort_by_key(|plugin| std::cmp::Reverse(plugin.priority));
            plugins
        });
    };
}

with_plugin_modules!(declare_schemas);

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

#[cfg(test)]
mod tests {
    use super::*;

    /// `PRIORITY` of every plugin bundled with Kong 3.10 (each
    /// `kong/plugins/<name>/handler.lua`), for the plugins this gateway
    /// has and those it may add.
    const KONG_PRIORITIES: &[(&str, u32)] = &[
        ("correlation-id", 100_001),
        ("zipkin", 100_000),
        ("bot-detection", 2500),
        ("cors", 2000),
        ("session", 1900),
        ("acme", 1705),
        ("jwt", 1450),
        ("oauth2", 1400),
        ("key-auth", 1250),
        ("ldap-auth", 1200),
        ("basic-auth", 1100),
        ("hmac-auth", 1030),
        ("grpc-gateway", 998),
        ("ip-restriction", 990),
        ("request-size-limiting", 951),
        ("acl", 950),
        ("rate-limiting", 910),
        ("response-ratelimiting", 900),
        ("request-transformer", 801),
        ("response-transformer", 800),
        ("redirect", 779),
        ("aws-lambda", 750),
        ("azure-functions", 749),
        ("proxy-cache", 100),
        ("opentelemetry", 14),
        ("prometheus", 13),
        ("http-log", 12),
        ("statsd", 11),
        ("datadog", 10),
        ("file-log", 9),
        ("udp-log", 8),
        ("tcp-log", 7),
        ("loggly", 6),
        ("syslog", 4),
        ("grpc-web", 3),
        ("request-termination", 2),
    ];

    #[test]
    fn priorities_are_kongs() {
        for plugin in all() {
            let kong = KONG_PRIORITIES
                .iter()
                .find(|(name, _)| *name == plugin.name)
                .map(|(_, priority)| *priority);
            assert_eq!(kong, Some(plugin.priority), "{}", plugin.name);
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = all().iter().map(|plugin| plugin.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all().len());
    }
}
