//! The indexes references and ids are looked up in: the live state
//! ([`LiveIndex`]) and the names the files give ([`FileNames`]).

use std::collections::hash_map::Entry;

use serde_json::Value;

use super::identity::{plugin_scope_of, PluginScope};
use super::RawEntity;
use crate::entities::EntityKind;
use crate::file::hash::{self, FastMap, FastSet};
use crate::file::parallel;
use crate::packed::{EntityKeys, Packed, PackedConfig};

/// The fields an entity can be referred to by (besides its id), in the
/// order references are matched: its kind's unique fields.
pub(super) fn natural_fields(kind: EntityKind) -> &'static [&'static str] {
    kind.descriptor().unique
}

/// The live state indexed for matching: every entity by id and by each
/// natural name, and plugins by identity. Built once per build, a kind per
/// core, so matching thousands of file entities stays linear.
pub(super) struct LiveIndex<'a> {
    /// For each kind (by [`EntityKind::index`]): its entities by (field,
    /// text), the field as its place in [`field_slots`].
    by_field: Vec<FastMap<(u8, &'a str), &'a str>>,
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

/// The fields entities of `kind` are found by: the id, then its kind's
/// unique fields; a field's place here is its slot in the index.
fn field_slots(kind: EntityKind) -> impl Iterator<Item = &'static str> {
    std::iter::once("id").chain(natural_fields(kind).iter().copied())
}

fn slot_of(kind: EntityKind, field: &str) -> Option<u8> {
    let slot = field_slots(kind).position(|known| known == field)?;
    u8::try_from(slot).ok()
}

impl<'a> LiveIndex<'a> {
    pub(super) fn new(config: &'a PackedConfig) -> Self {
        let mut kinds = EntityKind::ALL;
        let mut parts = parallel::map_each_mut(&mut kinds, |kind| {
            let entities = config.entities(*kind);
            let fields = field_slots(*kind).count().min(2);
            let mut by_field = hash::map_with_capacity(entities.len() * fields);
            let mut by_scope = FastMap::default();
            for entity in entities {
                add(&mut by_field, &mut by_scope, *kind, entity.keys(*kind));
            }
            (kind.index(), by_field, by_scope)
        });
        parts.sort_by_key(|(index, _, _)| *index);
        let plugins_by_scope = std::mem::take(&mut parts[EntityKind::Plugin.index()].2);
        let by_field = parts.into_iter().map(|(_, by_field, _)| by_field).collect();
        LiveIndex {
            by_field,
            plugins_by_scope,
        }
    }

    /// Free the index by field; [`LiveIndex::get`] and
    /// [`LiveIndex::find`] find nothing after this (plugin scopes stay).
    pub(super) fn forget_names(&mut self) {
        self.by_field = Vec::new();
    }

    /// The id of the live entity whose `field` is `value`.
    pub(super) fn get(&self, kind: EntityKind, field: &'static str, value: &str) -> Option<String> {
        let slot = slot_of(kind, field)?;
        self.by_field
            .get(kind.index())?
            .get(&(slot, value))
            .map(|id| (*id).to_owned())
    }

    /// The id of the live entity with id or natural name `text`.
    pub(super) fn find(&self, kind: EntityKind, text: &str) -> Option<String> {
        field_slots(kind).find_map(|field| self.get(kind, field, text))
    }
}

/// Index one live entity of `kind` by its keys.
fn add<'a>(
    by_field: &mut FastMap<(u8, &'a str), &'a str>,
    by_scope: &mut FastMap<PluginScope<'a>, &'a str>,
    kind: EntityKind,
    keys: EntityKeys<'a>,
) {
    let Some(id) = keys.id else {
        return;
    };
    by_field.entry((0, id)).or_insert(id);
    for (field, value) in keys.unique.iter().flatten() {
        if let Some(slot) = slot_of(kind, field) {
            by_field.entry((slot, value)).or_insert(id);
        }
    }
    if kind == EntityKind::Plugin {
        if let Some(scope) = plugin_scope_of(&keys) {
            by_scope.insert(scope, id);
        }
    }
}

/// What the files' entities are named, for the few names references and
/// `anonymous` use: for each wanted (kind, text), the id of the entity a
/// reference written that way points at. A text names an entity by id
/// first, then by each natural field in turn (`username`, then
/// `custom_id`); of two entities alike, the first wins (the second is
/// reported as a duplicate later). One pass over the entities looks their
/// names up among the wanted texts, rather than indexing every entity.
/// Entities without an id yet (plugins) are left out. The few texts and
/// ids are copied, so the entities can change while it is in use.
pub(super) struct FileNames {
    /// For each kind (by [`EntityKind::index`]): text to id.
    ids: Vec<FastMap<String, String>>,
}

impl FileNames {
    pub(super) fn new(entities: &[RawEntity], wanted: &FastSet<(EntityKind, &str)>) -> Self {
        // For each text found: the rank of the field it was found in (the
        // id first) and the entity's id.
        let mut best: FastMap<(EntityKind, &str), (usize, &str)> = FastMap::default();
        let searched = if wanted.is_empty() { &[][..] } else { entities };
        for entity in searched {
            let Some(id) = entity.id.as_deref() else {
                continue;
            };
            let names = natural_fields(entity.kind)
                .iter()
                .map(|field| entity.input.get(field).and_then(Value::as_str));
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
        let mut ids: Vec<FastMap<String, String>> =
            EntityKind::ALL.map(|_| FastMap::default()).into();
        for ((kind, text), (_, id)) in best {
            if let Some(names) = ids.get_mut(kind.index()) {
                names.insert(text.to_owned(), id.to_owned());
            }
        }
        FileNames { ids }
    }

    /// The id of the entity `text` names.
    pub(super) fn find(&self, kind: EntityKind, text: &str) -> Option<&str> {
        self.ids.get(kind.index())?.get(text).map(String::as_str)
    }
}
