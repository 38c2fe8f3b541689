//! Step 5 of the build: identities (ids, unique names, plugin scopes) that
//! two entities of the files may not share, and plugin identities.

use std::collections::hash_map::Entry;
use std::hash::Hash;

use serde_json::Value;

use super::{Builder, Diagnostic, RawEntity, Severity};
use crate::entities::EntityKind;
use crate::error::FieldPath;
use crate::file::hash::{self, FastMap};
use crate::packed::EntityKeys;

impl Builder {
    /// Two entities of a kind may not share an identity (id, unique name,
    /// plugin scope): the later one is reported. Identities are compared as
    /// borrowed values; only a duplicate's is put into words.
    pub(super) fn find_duplicates(&mut self) {
        // Kinds never share an identity: each is checked on its own, over
        // the indexes of its entities, one after the other (it is quick,
        // and a large build holds the most just here: one kind's tables at
        // a time rather than several).
        let mut by_kind: Vec<Vec<usize>> = EntityKind::ALL.iter().map(|_| Vec::new()).collect();
        for (index, entity) in self.entities.iter().enumerate() {
            by_kind[entity.kind.index()].push(index);
        }
        let entities = &self.entities;
        let per_kind = by_kind
            .iter()
            .map(|indexes| duplicates_of(entities, indexes));
        let mut duplicates: Vec<_> = per_kind.flatten().collect();
        // In entity order, as one pass over all of them would find them.
        duplicates.sort_by_key(|(index, _, _)| *index);
        if duplicates.is_empty() {
            return;
        }
        let labels: FastMap<&str, &str> = self
            .entities
            .iter()
            .filter_map(|entity| Some((entity.id.as_deref()?, entity.label.as_deref()?)))
            .collect();
        let name_of = |id: &str| labels.get(id).copied().unwrap_or(id).to_owned();
        let errors: Vec<Diagnostic> = duplicates
            .iter()
            .map(|(index, first, identity)| {
                let first_origin = self.origin(*first);
                let at = match first_origin.pos {
                    Some(pos) => format!("{}:{}:{}", first_origin.file, pos.line, pos.column),
                    None => first_origin.file.to_string(),
                };
                let message = format!(
                    "{} {} is already defined at {at} ({})",
                    self.entities[*index].kind.deck_kind(),
                    identity.describe(&name_of),
                    first_origin.entity_display()
                );
                self.entity_diagnostic(*index, Severity::Error, FieldPath::root(), message)
            })
            .collect();
        self.diagnostics.extend(errors);
    }
}

/// Of the entities at `indexes` (all of one kind, in order), those that
/// repeat an identity of an earlier one: the entity, the earlier one and
/// the identity, in entity order.
fn duplicates_of<'e>(
    entities: &'e [RawEntity],
    indexes: &[usize],
) -> Vec<(usize, usize, Identity<'e>)> {
    // The first entity with each id, with each unique field, and with each
    // plugin scope, each map sized for what it holds.
    let mut ids: FastMap<&str, usize> = hash::map_with_capacity(indexes.len());
    let mut unique: FastMap<(&'static str, &str), usize> = hash::map_with_capacity(indexes.len());
    let mut scopes: FastMap<PluginScope<'_>, usize> = FastMap::default();
    let mut duplicates = Vec::new();
    for &index in indexes {
        let entity = &entities[index];
        let kind = entity.kind;
        let Some(canonical) = entity.canonical.as_ref() else {
            continue;
        };
        for identity in identities(kind, canonical.keys(kind)) {
            let first = match identity {
                Identity::Field {
                    field: "id", value, ..
                } => first_with(&mut ids, value, index),
                Identity::Field { field, value, .. } => {
                    first_with(&mut unique, (field, value), index)
                }
                // A reference that points nowhere (reported) left the
                // scope short: it says nothing about duplicates.
                Identity::Scope(_) if entity.dangling => None,
                Identity::Scope(scope) => first_with(&mut scopes, scope, index),
            };
            if let Some(first) = first {
                duplicates.push((index, first, identity));
            }
        }
    }
    duplicates
}

/// One thing that must be unique among the entities of a kind.
#[derive(Debug, Clone, Copy)]
pub(super) enum Identity<'a> {
    /// The id or a unique field, how messages name it (`named`), and
    /// its value.
    Field {
        field: &'static str,
        label: &'static str,
        value: &'a str,
    },
    /// A plugin's name and the ids of its scope.
    Scope(PluginScope<'a>),
}

/// A plugin's name and the ids of its route, service and consumer.
pub(super) type PluginScope<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);

impl Identity<'_> {
    /// `with id ...`, `named 'svc1'`, `'key-auth' for the same scope
    /// (service svc1)`; `name_of` names the entities of a plugin's scope.
    pub(super) fn describe(&self, name_of: &dyn Fn(&str) -> String) -> String {
        match *self {
            Identity::Field {
                field: "id", value, ..
            } => format!("with id {value}"),
            Identity::Field { label, value, .. } => format!("{label} '{value}'"),
            Identity::Scope((name, route, service, consumer)) => {
                let scope: Vec<String> = [
                    ("route", route),
                    ("service", service),
                    ("consumer", consumer),
                ]
                .into_iter()
                .filter_map(|(what, id)| id.map(|id| format!("{what} {}", name_of(id))))
                .collect();
                let scope_text = if scope.is_empty() {
                    "global".to_owned()
                } else {
                    scope.join(" and ")
                };
                format!("'{name}' for the same scope ({scope_text})")
            }
        }
    }
}

/// The identities of a canonical entity (its `keys`), in the order they
/// are checked: the id, the unique fields, a plugin's scope.
pub(super) fn identities(
    kind: EntityKind,
    keys: EntityKeys<'_>,
) -> impl Iterator<Item = Identity<'_>> {
    let id = keys.id.map(|id| Identity::Field {
        field: "id",
        label: "with id",
        value: id,
    });
    let fields = keys
        .unique
        .into_iter()
        .flatten()
        .map(|(field, value)| Identity::Field {
            field,
            label: unique_label(field),
            value,
        });
    let scope = (kind == EntityKind::Plugin)
        .then(|| plugin_scope_of(&keys))
        .flatten()
        .map(Identity::Scope);
    id.into_iter().chain(fields).chain(scope)
}

/// How a duplicate message names a unique field: "named" for names,
/// "with the same key" for a secret key, "with <field>" otherwise.
fn unique_label(field: &str) -> &'static str {
    match field {
        "name" | "instance_name" => "named",
        "key" => "with the same key",
        "username" => "with username",
        "custom_id" => "with custom_id",
        _ => "with the same value",
    }
}

/// The entity first seen with `key`, or `None` when `index` is the first
/// (and is recorded).
pub(super) fn first_with<K: Hash + Eq>(
    seen: &mut FastMap<K, usize>,
    key: K,
    index: usize,
) -> Option<usize> {
    match seen.entry(key) {
        Entry::Occupied(first) => Some(*first.get()),
        Entry::Vacant(slot) => {
            slot.insert(index);
            None
        }
    }
}

/// A plugin's name and the ids of its route, service and consumer scope:
/// at most one plugin per identity.
pub type PluginIdentity = (String, Option<String>, Option<String>, Option<String>);

/// A plugin's identity: its name and the ids of its scope.
pub fn plugin_identity(plugin: &Value) -> Option<PluginIdentity> {
    let (name, route, service, consumer) = plugin_scope_by(|field| plugin.get(field))?;
    let owned = |id: Option<&str>| id.map(str::to_owned);
    Some((
        name.to_owned(),
        owned(route),
        owned(service),
        owned(consumer),
    ))
}

/// [`plugin_identity`] borrowed from a plugin whose fields `get` gives
/// (a canonical entity, or the fields of one still being built): matching
/// and duplicate checks need not copy the ids.
pub(super) fn plugin_scope_by<'v>(
    get: impl Fn(&str) -> Option<&'v Value>,
) -> Option<PluginScope<'v>> {
    let name = get("name")?.as_str()?;
    let scope = |field: &str| get(field)?.get("id")?.as_str();
    Some((name, scope("route"), scope("service"), scope("consumer")))
}

/// [`plugin_scope_by`] from the keys read from a packed plugin.
pub(super) fn plugin_scope_of<'t>(keys: &EntityKeys<'t>) -> Option<PluginScope<'t>> {
    let [route, service, consumer] = keys.scope;
    Some((keys.name?, route, service, consumer))
}
