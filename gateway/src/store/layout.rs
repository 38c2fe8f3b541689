//! How the store lays entities out in sled.
//!
//! A configuration lives in one *generation*: seven trees named
//! `g<N>.<name>`:
//!
//! - one tree per entity kind (`g7.services`, ...): id → canonical JSON;
//! - `g7.unique`: unique index, `<collection>␟<field>␟<value>` → id;
//! - `g7.children`: parent → child links,
//!   `<parent collection>␟<parent id>␟<child collection>␟<child id>` → ``.
//!
//! The `meta` tree holds `current_generation`. `POST /config` writes a new
//! generation beside the current one and flips that key, so a whole
//! configuration is replaced atomically; single-entity writes change the
//! current generation's trees in one multi-tree transaction.

use schemas::config::reference_of;
use schemas::EntityKind;
use serde_json::{Map, Value};
use sled::{Db, Tree};

use super::error::StoreError;

/// The tree holding `current_generation`.
pub(crate) const META_TREE: &str = "meta";
/// The key of the current generation number (u64, big endian).
pub(crate) const CURRENT_GENERATION_KEY: &[u8] = b"current_generation";
/// The separator inside index keys (ASCII unit separator).
const SEP: u8 = 0x1f;

/// Which tree of a generation an operation touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Entity(EntityKind),
    Unique,
    Children,
}

impl Slot {
    /// Position in [`Generation::all_trees`].
    pub(crate) fn index(self) -> usize {
        match self {
            Slot::Entity(kind) => kind_index(kind),
            Slot::Unique => 5,
            Slot::Children => 6,
        }
    }
}

/// Position of `kind` in [`EntityKind::ALL`].
pub(crate) fn kind_index(kind: EntityKind) -> usize {
    EntityKind::ALL
        .iter()
        .position(|candidate| *candidate == kind)
        .unwrap_or_default()
}

/// The trees of one generation (cheap to clone: sled trees are handles).
#[derive(Clone)]
pub(crate) struct Generation {
    pub(crate) number: u64,
    trees: Vec<Tree>,
}

impl Generation {
    /// Open (creating if needed) the trees of generation `number`.
    pub(crate) fn open(db: &Db, number: u64) -> Result<Self, StoreError> {
        let trees = tree_names(number)
            .iter()
            .map(|name| db.open_tree(name))
            .collect::<Result<Vec<Tree>, sled::Error>>()
            .map_err(StoreError::database("opening generation trees"))?;
        Ok(Self { number, trees })
    }

    pub(crate) fn entities(&self, kind: EntityKind) -> &Tree {
        &self.trees[kind_index(kind)]
    }

    pub(crate) fn unique(&self) -> &Tree {
        &self.trees[Slot::Unique.index()]
    }

    pub(crate) fn children(&self) -> &Tree {
        &self.trees[Slot::Children.index()]
    }

    /// Every tree, in [`Slot::index`] order (for multi-tree transactions).
    pub(crate) fn all_trees(&self) -> Vec<&Tree> {
        self.trees.iter().collect()
    }
}

/// The tree names of generation `number`, in [`Slot::index`] order.
pub(crate) fn tree_names(number: u64) -> Vec<String> {
    let mut names: Vec<String> = EntityKind::ALL
        .iter()
        .map(|kind| format!("g{number}.{}", kind.collection()))
        .collect();
    names.push(format!("g{number}.unique"));
    names.push(format!("g{number}.children"));
    names
}

/// The generation a tree name belongs to, if it is a generation tree.
pub(crate) fn generation_of(tree_name: &[u8]) -> Option<u64> {
    let name = std::str::from_utf8(tree_name).ok()?;
    let (prefix, _) = name.split_once('.')?;
    let digits = prefix.strip_prefix('g')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A unique index entry of an entity, with Kong's `fields` for a conflict.
#[derive(Debug, Clone)]
pub(crate) struct UniqueKey {
    pub(crate) key: Vec<u8>,
    pub(crate) fields: Map<String, Value>,
}

/// The unique index key of `field = value` in `kind`'s collection.
pub(crate) fn unique_index_key(kind: EntityKind, field: &str, value: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(kind.collection().len() + field.len() + value.len() + 2);
    key.extend_from_slice(kind.collection().as_bytes());
    key.push(SEP);
    key.extend_from_slice(field.as_bytes());
    key.push(SEP);
    key.extend_from_slice(value.as_bytes());
    key
}

/// The string-valued unique fields of each kind.
fn unique_fields(kind: EntityKind) -> &'static [&'static str] {
    match kind {
        EntityKind::Service | EntityKind::Route => &["name"],
        EntityKind::Consumer => &["username", "custom_id"],
        EntityKind::Plugin => &["instance_name"],
        EntityKind::KeyAuthCredential => &["key"],
    }
}

/// The field name of the plugin identity index (name + scope).
pub(crate) const PLUGIN_IDENTITY: &str = "identity";

/// Every unique index entry a canonical entity owns.
pub(crate) fn unique_keys(kind: EntityKind, entity: &Value) -> Vec<UniqueKey> {
    let mut keys: Vec<UniqueKey> = unique_fields(kind)
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
        let reference = reference_of(entity, scope);
        value.push_str(reference.unwrap_or_default());
        let shown = entity.get(scope).cloned().unwrap_or(Value::Null);
        fields.insert(scope.to_owned(), shown);
    }
    Some(UniqueKey {
        key: unique_index_key(EntityKind::Plugin, PLUGIN_IDENTITY, &value),
        fields,
    })
}

/// The plugin name inside a plugin identity index key's value part.
pub(crate) fn plugin_name_of_identity(index_key: &[u8]) -> Option<&str> {
    let prefix = unique_index_key(EntityKind::Plugin, PLUGIN_IDENTITY, "");
    let rest = index_key.strip_prefix(prefix.as_slice())?;
    let end = rest.iter().position(|b| *b == SEP).unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()
}

/// The first plugin identity index key after every key of plugin `name`
/// (for skipping from one plugin name to the next).
pub(crate) fn after_plugin_name(name: &str) -> Vec<u8> {
    let mut key = unique_index_key(EntityKind::Plugin, PLUGIN_IDENTITY, name);
    key.push(SEP + 1);
    key
}

/// A reference field: `child.field` points at a `parent`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Link {
    pub(crate) child: EntityKind,
    pub(crate) field: &'static str,
    pub(crate) parent: EntityKind,
}

/// Every reference between the kinds.
pub(crate) const LINKS: [Link; 5] = [
    Link {
        child: EntityKind::Route,
        field: "service",
        parent: EntityKind::Service,
    },
    Link {
        child: EntityKind::Plugin,
        field: "service",
        parent: EntityKind::Service,
    },
    Link {
        child: EntityKind::Plugin,
        field: "route",
        parent: EntityKind::Route,
    },
    Link {
        child: EntityKind::Plugin,
        field: "consumer",
        parent: EntityKind::Consumer,
    },
    Link {
        child: EntityKind::KeyAuthCredential,
        field: "consumer",
        parent: EntityKind::Consumer,
    },
];

/// The references a kind has.
pub(crate) fn links_of(child: EntityKind) -> impl Iterator<Item = &'static Link> {
    LINKS.iter().filter(move |link| link.child == child)
}

/// The prefix of every link from `parent_id` to children of `child`.
pub(crate) fn children_prefix(parent: EntityKind, parent_id: &str, child: EntityKind) -> Vec<u8> {
    let mut key = Vec::with_capacity(96);
    key.extend_from_slice(parent.collection().as_bytes());
    key.push(SEP);
    key.extend_from_slice(parent_id.as_bytes());
    key.push(SEP);
    key.extend_from_slice(child.collection().as_bytes());
    key.push(SEP);
    key
}

/// The link keys a canonical entity owns (one per non-null reference).
pub(crate) fn child_link_keys(kind: EntityKind, entity: &Value) -> Vec<Vec<u8>> {
    let Some(child_id) = entity.get("id").and_then(Value::as_str) else {
        return Vec::new();
    };
    links_of(kind)
        .filter_map(|link| {
            let parent_id = reference_of(entity, link.field)?;
            let mut key = children_prefix(link.parent, parent_id, kind);
            key.extend_from_slice(child_id.as_bytes());
            Some(key)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generation_names_round_trip() {
        for name in tree_names(42) {
            assert_eq!(generation_of(name.as_bytes()), Some(42));
        }
        assert_eq!(generation_of(b"sessions"), None);
        assert_eq!(generation_of(b"meta"), None);
        assert_eq!(generation_of(b"gx.services"), None);
    }

    #[test]
    fn plugin_identity_covers_scope() {
        let plugin = json!({"id": "p", "name": "key-auth", "service": {"id": "s"},
            "route": null, "consumer": null, "instance_name": null});
        let keys = unique_keys(EntityKind::Plugin, &plugin);
        assert_eq!(keys.len(), 1);
        assert_eq!(plugin_name_of_identity(&keys[0].key), Some("key-auth"));
        assert_eq!(keys[0].fields["service"], json!({"id": "s"}));
        assert_eq!(keys[0].fields["route"], Value::Null);
    }

    #[test]
    fn links_follow_references() {
        let route = json!({"id": "r", "service": {"id": "s"}});
        let keys = child_link_keys(EntityKind::Route, &route);
        let prefix = children_prefix(EntityKind::Service, "s", EntityKind::Route);
        assert_eq!(keys.len(), 1);
        assert!(keys[0].starts_with(&prefix));
        assert!(
            child_link_keys(EntityKind::Route, &json!({"id": "r", "service": null})).is_empty()
        );
    }
}
