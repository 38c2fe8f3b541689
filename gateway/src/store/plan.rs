//! [`Plan`]: the row changes one write makes, decided before anything is
//! written. A backend commits a plan's rows in one transaction; the
//! in-memory state then applies the same operations with their index
//! entries; the commit hook sees them as [`ChangedEntity`]s.

use bytes::Bytes;
use schemas::EntityKind;
use serde_json::Value;
use uuid::Uuid;

use super::error::StoreError;
use super::keys::{self, Link};
use super::ChangedEntity;

/// A row written, with the index entries it owns.
#[derive(Debug, Clone)]
pub(crate) struct RowPut {
    pub(crate) kind: EntityKind,
    pub(crate) id: Uuid,
    /// The id as text (the form rows and the commit hook use).
    pub(crate) id_text: String,
    pub(crate) row: Bytes,
    pub(crate) unique: Vec<Vec<u8>>,
    pub(crate) links: Vec<Link>,
}

/// A row removed, with the index entries it owned.
#[derive(Debug, Clone)]
pub(crate) struct RowRemove {
    pub(crate) kind: EntityKind,
    pub(crate) id: Uuid,
    pub(crate) id_text: String,
    pub(crate) unique: Vec<Vec<u8>>,
    pub(crate) links: Vec<Link>,
}

/// One change to one row.
#[derive(Debug, Clone)]
pub(crate) enum RowOp {
    Put(RowPut),
    Remove(RowRemove),
}

impl RowOp {
    pub(crate) fn kind(&self) -> EntityKind {
        match self {
            RowOp::Put(put) => put.kind,
            RowOp::Remove(remove) => remove.kind,
        }
    }

    pub(crate) fn id(&self) -> Uuid {
        match self {
            RowOp::Put(put) => put.id,
            RowOp::Remove(remove) => remove.id,
        }
    }

    /// The new row, or `None` for a removal.
    pub(crate) fn row(&self) -> Option<&Bytes> {
        match self {
            RowOp::Put(put) => Some(&put.row),
            RowOp::Remove(_) => None,
        }
    }

    /// The change as the commit hook sees it.
    pub(crate) fn changed(&self) -> ChangedEntity<'_> {
        match self {
            RowOp::Put(put) => ChangedEntity {
                kind: put.kind,
                id: &put.id_text,
                row: Some(&put.row),
            },
            RowOp::Remove(remove) => ChangedEntity {
                kind: remove.kind,
                id: &remove.id_text,
                row: None,
            },
        }
    }
}

/// The changes of one write, applied together, in order.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    ops: Vec<RowOp>,
}

impl Plan {
    /// Store `entity` (canonical) as a new row.
    pub(crate) fn put_entity(
        &mut self,
        kind: EntityKind,
        entity: &Value,
    ) -> Result<(), StoreError> {
        let row = Bytes::from(encode(kind, entity)?);
        self.ops.push(RowOp::Put(put_of(kind, entity, row)?));
        Ok(())
    }

    /// Store a prepared row.
    pub(crate) fn put(&mut self, put: RowPut) {
        self.ops.push(RowOp::Put(put));
    }

    /// Remove the stored `entity` (canonical) and its index entries.
    pub(crate) fn remove_entity(
        &mut self,
        kind: EntityKind,
        entity: &Value,
    ) -> Result<(), StoreError> {
        let (id, id_text) = entity_id(kind, entity)?;
        self.ops.push(RowOp::Remove(RowRemove {
            kind,
            id,
            id_text,
            unique: unique_key_bytes(kind, entity),
            links: keys::links(kind, entity),
        }));
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations, in the order they apply.
    pub(crate) fn ops(&self) -> &[RowOp] {
        &self.ops
    }

    /// The entity rows this plan puts and removes, in order (for the
    /// commit hook).
    pub(crate) fn changed_entities(&self) -> Vec<ChangedEntity<'_>> {
        self.ops.iter().map(RowOp::changed).collect()
    }
}

/// A put of `entity` stored as `row`, with its index entries.
pub(crate) fn put_of(kind: EntityKind, entity: &Value, row: Bytes) -> Result<RowPut, StoreError> {
    let (id, id_text) = entity_id(kind, entity)?;
    Ok(RowPut {
        kind,
        id,
        id_text,
        row,
        unique: unique_key_bytes(kind, entity),
        links: keys::links(kind, entity),
    })
}

/// The unique keys alone, in a vector of their exact size: a whole
/// configuration's puts are held at once, and the state keeps the keys.
fn unique_key_bytes(kind: EntityKind, entity: &Value) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    keys.extend(
        keys::unique_keys(kind, entity)
            .into_iter()
            .map(|unique| unique.key),
    );
    keys.shrink_to_fit();
    keys
}

/// Serialize a canonical entity for storage. The row keeps no spare
/// capacity (serde_json grows its buffer by doubling): every row of the
/// configuration is held in memory.
pub(crate) fn encode(kind: EntityKind, entity: &Value) -> Result<Vec<u8>, StoreError> {
    let mut row = serde_json::to_vec(entity).map_err(|error| StoreError::CorruptRow {
        collection: kind.collection(),
        reason: error.to_string(),
    })?;
    row.shrink_to_fit();
    Ok(row)
}

/// The id of a canonical entity, parsed and as text.
pub(crate) fn entity_id(kind: EntityKind, entity: &Value) -> Result<(Uuid, String), StoreError> {
    let text = schemas::config::id_of(entity).ok_or_else(|| StoreError::CorruptRow {
        collection: kind.collection(),
        reason: "entity without an id".to_owned(),
    })?;
    let id = Uuid::parse_str(text).map_err(|_| StoreError::CorruptRow {
        collection: kind.collection(),
        reason: format!("id {text:?} is not a UUID"),
    })?;
    Ok((id, text.to_owned()))
}
