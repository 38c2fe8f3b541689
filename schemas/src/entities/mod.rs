//! The entity kinds of the model and the one entry point that turns raw
//! JSON for any of them into its canonical form.
//!
//! Each kind lives in its own file: its schema and its [`EntityDescriptor`]
//! (collection and Admin API names, endpoint key, unique fields,
//! references, generated fields). The list in [`entity_kinds!`] below is the
//! only other place a kind is named.

pub mod consumer;
pub mod descriptor;
pub mod keyauth_credential;
pub mod plugin;
pub mod route;
pub mod service;

use once_cell::sync::Lazy;
use serde_json::Value;

pub use crate::typedefs::Generated;
pub use descriptor::{EntityDescriptor, OnDelete, Reference};

use crate::error::{FieldError, FieldPath, SchemaViolation};
use crate::plugins;
use crate::schema::Record;

/// Declares [`EntityKind`], [`EntityKind::ALL`] and
/// [`EntityKind::descriptor`] from one list of `Kind => DESCRIPTOR`.
macro_rules! entity_kinds {
    ($($kind:ident => $descriptor:path),+ $(,)?) => {
        /// The kinds of entity the gateway stores.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EntityKind {
            $($kind),+
        }

        impl EntityKind {
            /// Every kind, in dependency order: parents before the
            /// entities that refer to them.
            pub const ALL: [EntityKind; [$(EntityKind::$kind),+].len()] = [$(EntityKind::$kind),+];

            /// What the kind declares about itself.
            pub fn descriptor(self) -> &'static EntityDescriptor {
                match self {
                    $(EntityKind::$kind => &$descriptor),+
                }
            }
        }
    };
}

entity_kinds! {
    Consumer => consumer::DESCRIPTOR,
    Service => service::DESCRIPTOR,
    KeyAuthCredential => keyauth_credential::DESCRIPTOR,
    Route => route::DESCRIPTOR,
    Plugin => plugin::DESCRIPTOR,
}

impl EntityKind {
    /// The DAO / declarative name: `services`, `keyauth_credentials`, ...
    pub fn collection(self) -> &'static str {
        self.descriptor().collection
    }

    /// The Admin API collection path: `services`, `key-auths`, ...
    pub fn admin_path(self) -> &'static str {
        self.descriptor().admin_path
    }

    /// decK's kind word in diff output: `service`, `key-auth`, ...
    pub fn deck_kind(self) -> &'static str {
        self.descriptor().deck_kind
    }

    /// The kind whose collection name or Admin API path is `name`.
    pub fn from_collection(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.collection() == name || kind.admin_path() == name)
    }

    /// The position of the kind in [`EntityKind::ALL`], for per-kind arrays
    /// (the variants are declared in that order).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The unique field that the Admin API accepts in place of an id.
    pub fn endpoint_key(self) -> &'static str {
        self.descriptor().endpoint_key
    }

    /// The schema of this kind. For plugins it is the record without a
    /// plugin-specific config; use [`plugin_record`] for a named plugin.
    pub fn schema(self) -> &'static Record {
        static SCHEMAS: Lazy<Vec<Record>> = Lazy::new(|| {
            EntityKind::ALL
                .iter()
                .map(|kind| (kind.descriptor().schema)())
                .collect()
        });
        &SCHEMAS[self.index()]
    }

    /// The record a canonical entity of this kind follows (plugins by name).
    pub fn record_for(self, canonical: &Value) -> Option<&'static Record> {
        match self {
            Self::Plugin => canonical
                .get("name")
                .and_then(Value::as_str)
                .and_then(plugin_record),
            other => Some(other.schema()),
        }
    }

    /// Validate raw input (shorthands allowed) and return the canonical form.
    pub fn validate(self, input: &Value) -> Result<Value, SchemaViolation> {
        let result = match self {
            Self::Service => service::expand_shorthands(input)
                .map_err(|error| vec![error])
                .and_then(|expanded| self.schema().validate(&expanded)),
            Self::Route => self
                .schema()
                .validate(&route::grpc_default_strip_path(input)),
            Self::Plugin => validate_plugin(input),
            other => other.schema().validate(input),
        };
        result.map_err(SchemaViolation::new)
    }
}

/// The full record of a plugin entity named `name`, if the plugin exists.
pub fn plugin_record(name: &str) -> Option<&'static Record> {
    static RECORDS: Lazy<std::collections::HashMap<&'static str, Record>> = Lazy::new(|| {
        plugins::all()
            .iter()
            .map(|plugin| (plugin.name, plugin::schema(plugin)))
            .collect()
    });
    RECORDS.get(name)
}

fn validate_plugin(input: &Value) -> Result<Value, Vec<FieldError>> {
    let Some(name) = input.get("name").and_then(Value::as_str) else {
        let error = if input.is_object() {
            FieldError::new(FieldPath::root().key("name"), "required field missing")
        } else {
            FieldError::new(FieldPath::root(), "expected a record")
        };
        return Err(vec![error]);
    };
    let (Some(plugin), Some(record)) = (plugins::lookup(name), plugin_record(name)) else {
        return Err(vec![plugin::unknown_plugin(name)]);
    };
    let mut translated = input.clone();
    if let Some(config) = translated.get_mut("config") {
        *config = (plugin.translate_shorthands)(config);
    }
    let mut errors = match record.validate(&translated) {
        Ok(canonical) if plugin::consumer_scope_error(plugin, input).is_none() => {
            return Ok(canonical)
        }
        Ok(_) => Vec::new(),
        Err(errors) => errors,
    };
    errors.extend(plugin::consumer_scope_error(plugin, input));
    Err(errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(kind: EntityKind, input: Value) -> Vec<String> {
        match kind.validate(&input) {
            Ok(_) => Vec::new(),
            Err(violation) => violation.errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn tutorial_plugins_are_valid_and_filled() {
        let key_auth = EntityKind::Plugin
            .validate(
                &json!({"name": "key-auth", "config": {"key_names": ["apikey"],
                "anonymous": "81823632-10c0-4098-a4f7-31062520c1e6"}}),
            )
            .unwrap();
        assert_eq!(key_auth["config"]["key_in_query"], true);
        assert_eq!(
            key_auth["protocols"],
            json!(["grpc", "grpcs", "http", "https"])
        );
        let session = EntityKind::Plugin
            .validate(
                &json!({"name": "session", "config": {"storage": "kong", "cookie_secure": false}}),
            )
            .unwrap();
        assert_eq!(session["config"]["cookie_same_site"], "Strict");
        assert_eq!(
            session["config"]["logout_methods"],
            json!(["POST", "DELETE"])
        );
        assert_eq!(session["config"]["secret"], Value::Null);
    }

    #[test]
    fn plugin_rules() {
        assert_eq!(
            messages(EntityKind::Plugin, json!({"name": "nope"})),
            vec!["name: plugin 'nope' not enabled; add it to the 'plugins' configuration property"]
        );
        assert_eq!(
            messages(EntityKind::Plugin, json!({"name": "key-auth", "config": {"key_names": ["a b"]}})),
            vec!["config.key_names[0]: bad header name 'a b', allowed characters are A-Z, a-z, 0-9, '_', and '-'"]
        );
        assert_eq!(
            messages(
                EntityKind::Plugin,
                json!({"name": "key-auth", "consumer": {"id": "81823632-10c0-4098-a4f7-31062520c1e6"}})
            ),
            vec!["consumer: value must be null"]
        );
        assert_eq!(
            messages(
                EntityKind::Plugin,
                json!({"name": "session", "config": {"bogus": 1}})
            ),
            vec!["config.bogus: unknown field"]
        );
        assert_eq!(
            messages(
                EntityKind::Plugin,
                json!({"name": "request-termination", "config": {"status_code": 600}})
            ),
            vec!["config.status_code: value should be between 100 and 599"]
        );
        assert_eq!(
            messages(
                EntityKind::Plugin,
                json!({"name": "request-termination", "config": {"message": "x", "body": "y"}})
            ),
            vec!["config: message cannot be used with content_type or body"]
        );
    }

    #[test]
    fn deprecated_session_fields_are_translated() {
        let session = EntityKind::Plugin
            .validate(&json!({"name": "session", "config": {"cookie_lifetime": 60, "cookie_samesite": "off"}}))
            .unwrap();
        assert_eq!(session["config"]["rolling_timeout"], 60);
        assert_eq!(session["config"]["cookie_same_site"], "Lax");
    }

    #[test]
    fn consumers_need_a_name() {
        assert_eq!(
            messages(EntityKind::Consumer, json!({"tags": ["a"]})),
            vec!["at least one of these fields must be non-empty: 'custom_id', 'username'"]
        );
    }

    #[test]
    fn typed_views_read_canonical_entities() {
        let service = EntityKind::Service
            .validate(
                &json!({"id": "81823632-10c0-4098-a4f7-31062520c1e6", "name": "s",
                "url": "http://127.0.0.1:9000"}),
            )
            .unwrap();
        let typed: crate::model::Service = serde_json::from_value(service).unwrap();
        assert_eq!(
            (typed.port, typed.retries, typed.read_timeout),
            (9000, 5, 60000)
        );
    }
}
