//! The index entries an entity owns, derived from its kind's descriptor
//! (`schemas::entities::EntityDescriptor`): unique keys and links to the
//! entities it references. The in-memory [`super::state`] keeps them; no
//! backend stores them.
//!
//! - A unique key is `<collection>␟<field>␟<value>` (ASCII unit separator),
//!   one per non-null unique field, plus for plugins Kong's cache key: one
//!   plugin of a name per exact (route, service, consumer) scope.
//! - A link says "child `id` of `kind` references `parent_id` through a
//!   reference": it is what listings of nested collections, restricted
//!   deletes and cascades read.

use schemas::config::reference_of;
use schemas::entities::Reference;
use schemas::EntityKind;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The separator inside unique keys (ASCII unit separator).
const SEP: u8 = 0x1f;

/// The field name of the plugin identity key (name + scope).
pub(crate) const PLUGIN_IDENTITY: &str = "identity";

/// A unique index entry of an entity, with Kong's `fields` for a conflict.
#[derive(Debug, Clone)]
pub(crate) struct UniqueKey {
    pub(crate) key: Vec<u8>,
    pub(crate) fields: Map<String, Value>,
}

/// The unique key of `field = value` in `kind`'s collection.
pub(crate) fn unique_index_key(kind: EntityKind, field: &str, value: &str) -> Vec<u8> {
    let collection = kind.collection();
    let mut key = Vec::with_capacity(collection.len() + field.len() + value.len() + 2);
    key.extend_from_slice(collection.as_bytes());
    key.push(SEP);
    key.extend_from_slice(field.as_bytes());
    key.push(SEP);
    key.extend_from_slice(value.as_bytes());
    key
}

/// Every unique key a canonical entity owns.
pub(crate) fn unique_keys(kind: EntityKind, entity: &Value) -> Vec<UniqueKey> {
    let mut keys: Vec<UniqueKey> = kind
        .descriptor()
        .unique
        .iter()
        .filter_map(|field| {
            let value = entity.get(*field)?.as_str()?;
            let mut fields = Map::new();
            fields.insert((*field).to_owned(), Value::from(value));
            Some(UniqueKey {
                key: unique_index_key(kind, field, value),
                fields,
            })
        })
        .collect();
    if kind == EntityKind::Plugin {
        keys.extend(plugin_identity(entity));
    }
    keys
}

/// Kong's plugin cache key: one plugin of a name per exact scope.
fn plugin_identity(entity: &Value) -> Option<UniqueKey> {
    let name = entity.get("name")?.as_str()?;
    let mut value = name.to_owned();
    let mut fields = Map::new();
    fields.insert("name".to_owned(), Value::from(name));
    for scope in ["route", "service", "consumer"] {
        value.push(SEP as char);
        value.push_str(reference_of(entity, scope).unwrap_or_default());
        let shown = entity.get(scope).cloned().unwrap_or(Value::Null);
        fields.insert(scope.to_owned(), shown);
    }
    Some(UniqueKey {
        key: unique_index_key(EntityKind::Plugin, PLUGIN_IDENTITY, &value),
        fields,
    })
}

/// The prefix every plugin identity key starts with.
pub(crate) fn plugin_identity_prefix() -> Vec<u8> {
    unique_index_key(EntityKind::Plugin, PLUGIN_IDENTITY, "")
}

/// The plugin name inside a plugin identity key.
pub(crate) fn plugin_name_of_identity(index_key: &[u8]) -> Option<&str> {
    let rest = index_key.strip_prefix(plugin_identity_prefix().as_slice())?;
    let end = rest.iter().position(|b| *b == SEP).unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()
}

/// The first plugin identity key after every key of plugin `name` (for
/// skipping from one plugin name to the next).
pub(crate) fn after_plugin_name(name: &str) -> Vec<u8> {
    let mut key = unique_index_key(EntityKind::Plugin, PLUGIN_IDENTITY, name);
    key.push(SEP + 1);
    key
}

/// A reference from one entity to another, as the children index keeps it
/// (ordered so that the children of one parent and kind are adjacent, in
/// id order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Link {
    pub(crate) parent_kind: EntityKind,
    pub(crate) parent: Uuid,
    pub(crate) child_kind: EntityKind,
    pub(crate) child: Uuid,
}

impl Link {
    /// The smallest link from `parent` to children of `child_kind`.
    pub(crate) fn first(parent_kind: EntityKind, parent: Uuid, child_kind: EntityKind) -> Self {
        Link {
            parent_kind,
            parent,
            child_kind,
            child: Uuid::nil(),
        }
    }
}

/// The links a canonical entity owns: one per non-null reference (in a
/// vector of that exact size: the state keeps it).
pub(crate) fn links(kind: EntityKind, entity: &Value) -> Vec<Link> {
    let Some(child) = entity_uuid(entity) else {
        return Vec::new();
    };
    let mut links: Vec<Link> = kind
        .descriptor()
        .references
        .iter()
        .filter_map(|reference| {
            let parent = Uuid::parse_str(reference_of(entity, reference.field)?).ok()?;
            Some(Link {
                parent_kind: reference.parent,
                parent,
                child_kind: kind,
                child,
            })
        })
        .collect();
    links.shrink_to_fit();
    links
}

/// The references of `kind` with the parent id each points at.
pub(crate) fn referenced<'a>(
    kind: EntityKind,
    entity: &'a Value,
) -> impl Iterator<Item = (&'static Reference, &'a str)> + 'a {
    kind.descriptor()
        .references
        .iter()
        .filter_map(|reference| Some((reference, reference_of(entity, reference.field)?)))
}

/// The `id` of a canonical entity as a UUID.
pub(crate) fn entity_uuid(entity: &Value) -> Option<Uuid> {
    let id = schemas::config::id_of(entity)?;
    Uuid::parse_str(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const S: &str = "81823632-10c0-4098-a4f7-31062520c1e6";
    const R: &str = "0f5a6a56-3c3e-4c2f-9b1c-1f1a2b3c4d5e";

    #[test]
    fn plugin_identity_covers_scope() {
        let plugin = json!({"id": R, "name": "key-auth", "service": {"id": S},
            "route": null, "consumer": null, "instance_name": null});
        let keys = unique_keys(EntityKind::Plugin, &plugin);
        assert_eq!(keys.len(), 1);
        assert_eq!(plugin_name_of_identity(&keys[0].key), Some("key-auth"));
        assert_eq!(keys[0].fields["service"], json!({"id": S}));
        assert_eq!(keys[0].fields["route"], Value::Null);
    }

    #[test]
    fn links_follow_references() {
        let route = json!({"id": R, "service": {"id": S}});
        let links = links(EntityKind::Route, &route);
        assert_eq!(
            links,
            vec![Link {
                parent_kind: EntityKind::Service,
                parent: Uuid::parse_str(S).unwrap(),
                child_kind: EntityKind::Route,
                child: Uuid::parse_str(R).unwrap(),
            }]
        );
        let serviceless = json!({"id": R, "service": null});
        assert!(super::links(EntityKind::Route, &serviceless).is_empty());
    }
}
