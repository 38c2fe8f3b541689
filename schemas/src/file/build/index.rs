//! The indexes references and ids are looked up in: the live state
//! ([`LiveIndex`]) and the names the files give ([`FileNames`]).

use std::collections::hash_map::Entry;

use serde_json::Value;

use super::identity::{plugin_scope_of, PluginScope};
use super::RawEntity;
use crate::entities::EntityKind;
use crate::file::hash::{self, FastMap, FastSet};
use crate::packed::{EntityKeys, Packed, PackedConfig};

/// The fields an entity can be referred to by (besides its id), in the
/// order references are matched: its kind's unique fields.
pub(super) fn natural_fields(kind: EntityKind) -> &'static [&'static str] {
    kind.descriptor().unique
}

/// The live state indexed for matching: every entity by id and by each
/// natural name, and plugins by identity. Built once per build, so matching
/// thousands of file entities stays linear.
pub(super) struct LiveIndex<'a> {
    pub(super) by_field: FastMap<(EntityKind, &'static str, &'a str), &'a str>,
    pub(super) plugins_by_scope: FastMap<PluginScope<'a>, &'a str>,
}

/// The live plugins by id.
pub(super) type LivePlugins<'a> = FastMap<&'a str, &'a Packed>;

/// The plugins of `config` by id.
pub(super) fn plugins_by_id(config: &PackedConfig) -> LivePlugins<'_> {
    let plugins = config.plugins.iter();
    plugins
        .filter_map(|plugin| Some((plugin.id()?, plugin)))
        .collect()
}

impl<'a> LiveIndex<'a> {
    pub(super) fn new(config: &'a PackedConfig) -> Self {
        let mut index = LiveIndex {
            // An id and about one name per entity.
            by_field: hash::map_with_capacity(2 * config.len()),
            plugins_by_scope: hash::map_with_capacity(config.plugins.len()),
        };
        for kind in EntityKind::ALL {
            for entity in config.entities(kind) {
                index.add(kind, entity.keys(kind));
            }
        }
        index
    }

    fn add(&mut self, kind: EntityKind, keys: EntityKeys<'a>) {
        let Some(id) = keys.id else {
            return;
        };
        self.by_field.entry((kind, "id", id)).or_insert(id);
        for (field, value) in keys.unique.iter().flatten() {
            self.by_field.entry((kind, field, value)).or_insert(id);
        }
        if kind == EntityKind::Plugin {
            if let Some(scope) = plugin_scope_of(&keys) {
                self.plugins_by_scope.insert(scope, id);
            }
        }
    }

    /// The id of the live entity whose `field` is `value`.
    pub(super) fn get(&self, kind: EntityKind, field: &'static str, value: &str) -> Option<String> {
        self.by_field
            .get(&(kind, field, value))
            .map(|id| (*id).to_owned())
    }

    /// The id of the live entity with id or natural name `text`.
    pub(super) fn find(&self, kind: EntityKind, text: &str) -> Option<String> {
        std::iter::once(&"id")
            .chain(natural_fields(kind))
            .find_map(|field| self.get(kind, field, text))
    }
}

/// What the files' entities are named, for the few names references and
/// `anonymous` use: for each wanted (kind, text), the id of the entity a
/// reference written that way points at. A text names an entity by id
/// first, then by each natural field in turn (`username`, then
/// `custom_id`); of two entities alike, the first wins (the second is
/// reported as a duplicate later). One pass over the entities looks their
/// names up among the wanted texts, rather than indexing every entity.
/// Entities without an id yet (plugins) are left out.
pub(super) struct FileNames<'e> {
    ids: FastMap<(EntityKind, &'e str), &'e str>,
}

impl<'e> FileNames<'e> {
    pub(super) fn new(entities: &'e [RawEntity], wanted: &FastSet<(EntityKind, &str)>) -> Self {
        // For each text found: the rank of the field it was found in (the
        // id first) and the entity's id.
        let mut best: FastMap<(EntityKind, &'e str), (usize, &'e str)> = FastMap::default();
        let searched = if wanted.is_empty() { &[][..] } else { entities };
        for entity in searched {
            let Some(id) = entity.id.as_deref() else {
                continue;
            };
            let names = natural_fields(entity.kind)
                .iter()
                .map(|field| entity.input.get(*field).and_then(Value::as_str));
            for (rank, name) in std::iter::once(Some(id)).chain(names).enumerate() {
                let Some(key) = name.map(|name| (entity.kind, name)) else {
                    continue;
                };
                if !wanted.contains(&key) {
                    continue;
                }
                match best.entry(key) {
                    Entry::Vacant(slot) => {
                        slot.insert((rank, id));
                    }
                    Entry::Occupied(mut found) if rank < found.get().0 => {
                        found.insert((rank, id));
                    }
                    Entry::Occupied(_) => {}
                }
            }
        }
        let ids = best.into_iter().map(|(key, (_, id))| (key, id)).collect();
        FileNames { ids }
    }

    /// The id of the entity `text` names.
    pub(super) fn find(&self, kind: EntityKind, text: &str) -> Option<&'e str> {
        self.ids.get(&(kind, text)).copied()
    }
}
