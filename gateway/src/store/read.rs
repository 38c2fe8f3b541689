//! Reads: one entity by id or endpoint key, listings (top-level and nested
//! under a parent), the whole configuration, and small index lookups, all
//! from the in-memory state. Every public read holds the state's read lock
//! for its whole duration, so it sees one consistent revision.

use bytes::Bytes;
use schemas::config::Config;
use schemas::EntityKind;
use serde_json::Value;
use uuid::Uuid;

use super::error::StoreError;
use super::keys;
use super::query::{encode_offset, paginate, ListQuery, Page, RowPage};
use super::state::State;
use super::{EntityKey, Store};

impl Store {
    /// The entity `key` names, if it exists.
    pub fn get(&self, kind: EntityKind, key: &EntityKey) -> Result<Option<Value>, StoreError> {
        resolve(&self.read_state(), kind, key)
    }

    /// The entity whose unique `field` (e.g. consumer `custom_id`) equals
    /// `value`.
    pub fn find_unique(
        &self,
        kind: EntityKind,
        field: &str,
        value: &str,
    ) -> Result<Option<Value>, StoreError> {
        lookup_unique(&self.read_state(), kind, field, value)
    }

    /// One page of `kind`, optionally only the children of `parent`
    /// (e.g. the routes of a service), in id order.
    pub fn list(
        &self,
        kind: EntityKind,
        parent: Option<(EntityKind, Uuid)>,
        query: &ListQuery,
    ) -> Result<Page, StoreError> {
        let state = self.read_state();
        let after = query.after.as_deref().map(parse_offset_id).transpose()?;
        match parent {
            None => {
                let rows = state.rows_after(kind, after);
                paginate(rows.map(|(_, row)| decode(kind, row)), query)
            }
            Some((parent_kind, parent_id)) => {
                let children = state.children_after(parent_kind, parent_id, kind, after);
                let entities = children.filter_map(|id| load(&state, kind, &id).transpose());
                paginate(entities, query)
            }
        }
    }

    /// One page of `kind` (no tag filter) as its stored rows, each the
    /// compact JSON of the canonical entity: what a listing answers,
    /// without parsing and writing every entity again.
    pub fn list_rows(&self, kind: EntityKind, query: &ListQuery) -> Result<RowPage, StoreError> {
        let state = self.read_state();
        let after = query.after.as_deref().map(parse_offset_id).transpose()?;
        let mut rows: Vec<Bytes> = state
            .rows_after(kind, after)
            .take(query.size.saturating_add(1))
            .map(|(_, row)| row.clone())
            .collect();
        let more = rows.len() > query.size;
        rows.truncate(query.size);
        let offset = match rows.last() {
            Some(last) if more => Some(encode_offset(row_id(kind, last)?)),
            _ => None,
        };
        Ok(RowPage { rows, offset })
    }

    /// Every stored entity, canonical, in id order per kind.
    pub fn export(&self) -> Result<Config, StoreError> {
        let state = self.read_state();
        let mut config = Config::default();
        for kind in EntityKind::ALL {
            let entities = state
                .rows_after(kind, None)
                .map(|(_, row)| decode(kind, row))
                .collect::<Result<Vec<_>, _>>()?;
            *config.entities_mut(kind) = entities;
        }
        Ok(config)
    }

    /// How many entities of `kind` are stored.
    pub fn count(&self, kind: EntityKind) -> usize {
        self.read_state().count(kind)
    }

    /// The distinct names of the stored plugins, sorted. Costs one index
    /// seek per distinct name, however many plugins there are.
    pub fn plugin_names_in_use(&self) -> Result<Vec<String>, StoreError> {
        let state = self.read_state();
        let prefix = keys::plugin_identity_prefix();
        let mut names = Vec::new();
        let mut start = prefix.clone();
        loop {
            let next = state
                .unique_from(&start)
                .next()
                .filter(|key| key.starts_with(&prefix));
            let Some(name) = next.and_then(|key| keys::plugin_name_of_identity(key)) else {
                break;
            };
            start = keys::after_plugin_name(name);
            names.push(name.to_owned());
        }
        Ok(names)
    }
}

/// The id a listing offset carries. Offsets this store makes always carry
/// an entity id; anything else was not made here.
fn parse_offset_id(id: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(id).map_err(|_| StoreError::InvalidOffset {
        offset: super::query::encode_offset(id),
        reason: "bad json encoding",
    })
}

/// The id a stored row holds, as written.
fn row_id(kind: EntityKind, row: &[u8]) -> Result<&str, StoreError> {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        id: &'a str,
    }
    let id: Id<'_> = serde_json::from_slice(row).map_err(|error| StoreError::CorruptRow {
        collection: kind.collection(),
        reason: error.to_string(),
    })?;
    Ok(id.id)
}

/// Decode a stored row.
pub(crate) fn decode(kind: EntityKind, bytes: &[u8]) -> Result<Value, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::CorruptRow {
        collection: kind.collection(),
        reason: error.to_string(),
    })
}

/// The entity of `kind` with this id.
pub(crate) fn load(
    state: &State,
    kind: EntityKind,
    id: &Uuid,
) -> Result<Option<Value>, StoreError> {
    state
        .row(kind, id)
        .map(|bytes| decode(kind, bytes))
        .transpose()
}

/// The entity of `kind` whose id is this text (`None` for text that is no
/// UUID: no entity has such an id).
pub(crate) fn load_text(
    state: &State,
    kind: EntityKind,
    id: &str,
) -> Result<Option<Value>, StoreError> {
    match Uuid::parse_str(id) {
        Ok(id) => load(state, kind, &id),
        Err(_) => Ok(None),
    }
}

/// Does an entity of `kind` with this id exist?
pub(crate) fn exists(state: &State, kind: EntityKind, id: &str) -> bool {
    Uuid::parse_str(id).is_ok_and(|id| state.row(kind, &id).is_some())
}

/// The entity `key` names.
pub(crate) fn resolve(
    state: &State,
    kind: EntityKind,
    key: &EntityKey,
) -> Result<Option<Value>, StoreError> {
    match key {
        EntityKey::Id(id) => load(state, kind, id),
        EntityKey::EndpointKey(value) => lookup_unique(state, kind, kind.endpoint_key(), value),
    }
}

/// The entity of `kind` whose unique `field` equals `value`.
pub(crate) fn lookup_unique(
    state: &State,
    kind: EntityKind,
    field: &str,
    value: &str,
) -> Result<Option<Value>, StoreError> {
    let key = keys::unique_index_key(kind, field, value);
    match state.unique_owner(&key) {
        Some(id) => load(state, kind, &id),
        None => Ok(None),
    }
}
