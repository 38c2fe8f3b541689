//! Reads: one entity by id or endpoint key, listings (top-level and nested
//! under a parent), the whole configuration, and small index lookups.
//!
//! Entity rows come from the in-memory mirror; unique keys and parent →
//! child links from sled's index trees. Every public read holds the store's
//! read lock for its whole duration, so it sees one consistent state.

use std::ops::Bound;

use schemas::config::Config;
use schemas::EntityKind;
use serde_json::Value;
use uuid::Uuid;

use super::error::StoreError;
use super::layout::{self, Generation, PLUGIN_IDENTITY};
use super::query::{paginate, ListQuery, Page};
use super::{EntityKey, Live, Store};

impl Store {
    /// The entity `key` names, if it exists.
    pub fn get(&self, kind: EntityKind, key: &EntityKey) -> Result<Option<Value>, StoreError> {
        resolve(&self.read_live(), kind, key)
    }

    /// The entity whose unique `field` (e.g. consumer `custom_id`) equals
    /// `value`.
    pub fn find_unique(
        &self,
        kind: EntityKind,
        field: &str,
        value: &str,
    ) -> Result<Option<Value>, StoreError> {
        lookup_unique(&self.read_live(), kind, field, value)
    }

    /// One page of `kind`, optionally only the children of `parent`
    /// (e.g. the routes of a service), in id order.
    pub fn list(
        &self,
        kind: EntityKind,
        parent: Option<(EntityKind, Uuid)>,
        query: &ListQuery,
    ) -> Result<Page, StoreError> {
        let live = self.read_live();
        let after = query.after.as_deref();
        match parent {
            None => paginate(entities_after(&live, kind, after), query),
            Some((parent_kind, parent_id)) => {
                let parent_id = parent_id.to_string();
                let ids = child_ids_after(&live.generation, parent_kind, &parent_id, kind, after);
                let entities = ids.filter_map(|id| match id {
                    Ok(id) => load(&live, kind, &id).transpose(),
                    Err(error) => Some(Err(error)),
                });
                paginate(entities, query)
            }
        }
    }

    /// Every stored entity, canonical, in id order per kind.
    pub fn export(&self) -> Result<Config, StoreError> {
        let live = self.read_live();
        let mut config = Config::default();
        for kind in EntityKind::ALL {
            let entities = entities_after(&live, kind, None).collect::<Result<Vec<_>, _>>()?;
            *config.entities_mut(kind) = entities;
        }
        Ok(config)
    }

    /// How many entities of `kind` are stored.
    pub fn count(&self, kind: EntityKind) -> usize {
        self.read_live().rows.count(kind)
    }

    /// The distinct names of the stored plugins, sorted. Costs one index
    /// seek per distinct name, however many plugins there are.
    pub fn plugin_names_in_use(&self) -> Result<Vec<String>, StoreError> {
        let live = self.read_live();
        let unique = live.generation.unique();
        let prefix = layout::unique_index_key(EntityKind::Plugin, PLUGIN_IDENTITY, "");
        let mut names = Vec::new();
        let mut start = prefix.clone();
        loop {
            let next = unique
                .range(start.as_slice()..)
                .keys()
                .next()
                .transpose()
                .map_err(StoreError::database("scanning plugin names"))?;
            let Some(key) = next.filter(|key| key.starts_with(&prefix)) else {
                break;
            };
            let Some(name) = layout::plugin_name_of_identity(&key) else {
                break;
            };
            start = layout::after_plugin_name(name);
            names.push(name.to_owned());
        }
        Ok(names)
    }
}

/// Decode a stored row.
pub(crate) fn decode(kind: EntityKind, bytes: &[u8]) -> Result<Value, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::CorruptRow {
        collection: kind.collection(),
        reason: error.to_string(),
    })
}

/// The entity of `kind` with this id.
pub(crate) fn load(live: &Live, kind: EntityKind, id: &str) -> Result<Option<Value>, StoreError> {
    live.rows
        .get(kind, id)
        .map(|bytes| decode(kind, bytes))
        .transpose()
}

/// Does an entity of `kind` with this id exist?
pub(crate) fn exists(live: &Live, kind: EntityKind, id: &str) -> bool {
    live.rows.get(kind, id).is_some()
}

/// The entity `key` names.
pub(crate) fn resolve(
    live: &Live,
    kind: EntityKind,
    key: &EntityKey,
) -> Result<Option<Value>, StoreError> {
    match key {
        EntityKey::Id(id) => load(live, kind, &id.to_string()),
        EntityKey::EndpointKey(value) => lookup_unique(live, kind, kind.endpoint_key(), value),
    }
}

/// The entity of `kind` whose unique `field` equals `value`.
pub(crate) fn lookup_unique(
    live: &Live,
    kind: EntityKind,
    field: &str,
    value: &str,
) -> Result<Option<Value>, StoreError> {
    let key = layout::unique_index_key(kind, field, value);
    match unique_owner(&live.generation, &key)? {
        Some(id) => load(live, kind, &id),
        None => Ok(None),
    }
}

/// Who owns a unique index key, if anyone.
pub(crate) fn unique_owner(
    generation: &Generation,
    key: &[u8],
) -> Result<Option<String>, StoreError> {
    let owner = generation
        .unique()
        .get(key)
        .map_err(StoreError::database("reading a unique index"))?;
    Ok(owner.map(|id| String::from_utf8_lossy(&id).into_owned()))
}

/// Entities of `kind` in id order, starting after `after`.
fn entities_after<'a>(
    live: &'a Live,
    kind: EntityKind,
    after: Option<&str>,
) -> impl Iterator<Item = Result<Value, StoreError>> + 'a {
    live.rows
        .after(kind, after)
        .map(move |row| decode(kind, row))
}

/// Ids of `child` entities linked to `parent_id`, in id order, after `after`.
fn child_ids_after<'a>(
    generation: &'a Generation,
    parent: EntityKind,
    parent_id: &str,
    child: EntityKind,
    after: Option<&str>,
) -> impl Iterator<Item = Result<String, StoreError>> + 'a {
    let prefix = layout::children_prefix(parent, parent_id, child);
    let start = match after {
        Some(id) => {
            let mut key = prefix.clone();
            key.extend_from_slice(id.as_bytes());
            Bound::Excluded(key)
        }
        None => Bound::Included(prefix.clone()),
    };
    let prefix_len = prefix.len();
    generation
        .children()
        .range::<Vec<u8>, _>((start, Bound::Unbounded))
        .keys()
        .take_while(move |key| key.as_ref().map_or(true, |key| key.starts_with(&prefix)))
        .map(move |key| {
            let key = key.map_err(StoreError::database("listing children"))?;
            Ok(String::from_utf8_lossy(&key[prefix_len..]).into_owned())
        })
}

/// Every id of `child` entities linked to `parent_id`.
pub(crate) fn child_ids(
    generation: &Generation,
    parent: EntityKind,
    parent_id: &str,
    child: EntityKind,
) -> Result<Vec<String>, StoreError> {
    child_ids_after(generation, parent, parent_id, child, None).collect()
}
