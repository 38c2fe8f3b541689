//! How entities are named for people, as decK names them in its output:
//! `service svc1`, `plugin key-auth for service example-service`,
//! `plugin rate-limiting (global)`, `key-auth …world for consumer alex`.
//!
//! Plugin scopes and credentials name the entities they refer to, so the
//! [`Names`] index maps every id of the configurations involved (the files'
//! and the gateway's) to the name people know it by.

use std::collections::HashMap;

use schemas::config::{id_of, reference_of, Config};
use schemas::entities::descriptor::references_to;
use schemas::packed::PackedConfig;
use schemas::EntityKind;
use serde_json::Value;

/// Ids to names for services, routes and consumers.
#[derive(Debug, Default)]
pub struct Names {
    names: HashMap<(EntityKind, String), String>,
}

impl Names {
    /// An index of `configs`; an id named in several keeps the first name.
    /// Only the kinds others refer to are read (unpacked one by one).
    pub fn new(configs: &[&PackedConfig]) -> Self {
        let mut names = Self::default();
        for config in configs {
            for kind in referenced_kinds() {
                for packed in config.entities(kind) {
                    names.add(kind, &packed.unpack());
                }
            }
        }
        names
    }

    /// An index of one configuration of values.
    pub fn of_values(config: &Config) -> Self {
        let mut names = Self::default();
        for kind in referenced_kinds() {
            for entity in config.entities(kind) {
                names.add(kind, entity);
            }
        }
        names
    }

    fn add(&mut self, kind: EntityKind, entity: &Value) {
        if let (Some(id), Some(name)) = (id_of(entity), natural_name(kind, entity)) {
            self.names
                .entry((kind, id.to_owned()))
                .or_insert_with(|| name.to_owned());
        }
    }

    /// The name of the entity `id` of `kind`, if it has one.
    pub fn name_of(&self, kind: EntityKind, id: &str) -> Option<&str> {
        self.names.get(&(kind, id.to_owned())).map(String::as_str)
    }

    /// The name of the entity `id` of `kind`, else the id itself.
    pub fn name_or_id(&self, kind: EntityKind, id: &str) -> String {
        self.name_of(kind, id).unwrap_or(id).to_owned()
    }

    /// How decK names `entity` after its kind word: `svc1`,
    /// `key-auth for service s1 and consumer c1`, `…world for consumer alex`.
    pub fn display(&self, kind: EntityKind, entity: &Value) -> String {
        match kind {
            EntityKind::Plugin => self.plugin_display(entity),
            EntityKind::KeyAuthCredential => self.credential_display(entity),
            other => natural_name(other, entity)
                .or_else(|| id_of(entity))
                .unwrap_or("(no id)")
                .to_owned(),
        }
    }

    /// `<kind> <name>`, e.g. `plugin session for service example-service`.
    pub fn kind_and_name(&self, kind: EntityKind, entity: &Value) -> String {
        format!("{} {}", kind.deck_kind(), self.display(kind, entity))
    }

    fn plugin_display(&self, entity: &Value) -> String {
        let name = entity.get("name").and_then(Value::as_str).unwrap_or("?");
        let scopes: Vec<String> = plugin_scopes()
            .filter_map(|(field, kind)| {
                let id = reference_of(entity, field)?;
                Some(format!(
                    "{} {}",
                    kind.deck_kind(),
                    self.name_or_id(kind, id)
                ))
            })
            .collect();
        if scopes.is_empty() {
            format!("{name} (global)")
        } else {
            format!("{name} for {}", scopes.join(" and "))
        }
    }

    fn credential_display(&self, entity: &Value) -> String {
        let key = entity.get("key").and_then(Value::as_str).unwrap_or("");
        let tail: String = {
            let chars: Vec<char> = key.chars().collect();
            chars[chars.len().saturating_sub(5)..].iter().collect()
        };
        let consumer = reference_of(entity, "consumer")
            .map(|id| self.name_or_id(EntityKind::Consumer, id))
            .unwrap_or_else(|| "?".to_owned());
        format!("…{tail} for consumer {consumer}")
    }
}

/// The kinds other entities refer to: the only ones named by id.
fn referenced_kinds() -> impl Iterator<Item = EntityKind> {
    EntityKind::ALL
        .into_iter()
        .filter(|kind| references_to(*kind).next().is_some())
}

/// Plugin scope fields and the kinds they point at, in decK's naming order
/// (the order the plugin descriptor lists its references in).
pub fn plugin_scopes() -> impl Iterator<Item = (&'static str, EntityKind)> {
    EntityKind::Plugin
        .descriptor()
        .references
        .iter()
        .map(|reference| (reference.field, reference.parent))
}

/// The name an entity is known by: the first display name its kind
/// declares (a service's or route's `name`, a consumer's `username` else
/// `custom_id`, a plugin's `instance_name`; a credential has none).
pub fn natural_name(kind: EntityKind, entity: &Value) -> Option<&str> {
    kind.descriptor()
        .display_names
        .iter()
        .find_map(|field| entity.get(*field).and_then(Value::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names() -> Names {
        let config = Config {
            services: vec![json!({"id": "s1", "name": "example-service"})],
            routes: vec![json!({"id": "r1", "name": null})],
            consumers: vec![
                json!({"id": "c1", "username": "alex"}),
                json!({"id": "c2", "username": null, "custom_id": "ext-2"}),
            ],
            ..Config::default()
        };
        Names::new(&[&PackedConfig::pack(&config)])
    }

    #[test]
    fn plugins_are_named_by_scope() {
        let names = names();
        let global = json!({"name": "rate-limiting"});
        assert_eq!(
            names.kind_and_name(EntityKind::Plugin, &global),
            "plugin rate-limiting (global)"
        );
        let scoped = json!({"name": "key-auth", "service": {"id": "s1"}});
        assert_eq!(
            names.kind_and_name(EntityKind::Plugin, &scoped),
            "plugin key-auth for service example-service"
        );
        let multi = json!({"name": "request-termination", "service": {"id": "s1"},
            "route": {"id": "r1"}, "consumer": {"id": "c2"}});
        assert_eq!(
            names.display(EntityKind::Plugin, &multi),
            "request-termination for service example-service and route r1 and consumer ext-2"
        );
    }

    #[test]
    fn credentials_show_the_end_of_the_key() {
        let names = names();
        let credential = json!({"key": "hello_world", "consumer": {"id": "c1"}});
        assert_eq!(
            names.kind_and_name(EntityKind::KeyAuthCredential, &credential),
            "key-auth …world for consumer alex"
        );
        let short = json!({"key": "ab", "consumer": {"id": "zz"}});
        assert_eq!(
            names.display(EntityKind::KeyAuthCredential, &short),
            "…ab for consumer zz"
        );
    }

    #[test]
    fn nameless_entities_go_by_id() {
        let names = names();
        assert_eq!(
            names.display(EntityKind::Route, &json!({"id": "r1", "name": null})),
            "r1"
        );
        assert_eq!(
            names.display(
                EntityKind::Consumer,
                &json!({"id": "c2", "custom_id": "ext-2"})
            ),
            "ext-2"
        );
    }
}
