//! An in-memory copy of the current entity rows (id → canonical JSON
//! bytes, in id order per kind).
//!
//! sled 0.34 needs tens of microseconds per row to iterate, so listing and
//! exporting 100k entities from the trees takes seconds. Reads are served
//! from this copy instead; sled stays the durable truth. The copy is loaded
//! at open, changed with the same operations a committed write applied,
//! and replaced wholesale when `POST /config` installs a new generation.
//! It costs about the size of the stored rows in memory.

use std::collections::BTreeMap;
use std::ops::Bound;

use schemas::EntityKind;
use sled::IVec;

use super::error::StoreError;
use super::layout::{kind_index, Generation, Slot};
use super::write::Op;

/// Entity rows per kind, by id.
#[derive(Debug, Default)]
pub(crate) struct Mirror {
    rows: [BTreeMap<String, IVec>; 5],
}

impl Mirror {
    /// Read every entity row of a generation.
    pub(crate) fn load(generation: &Generation) -> Result<Self, StoreError> {
        let mut mirror = Mirror::default();
        for kind in EntityKind::ALL {
            for row in generation.entities(kind).iter() {
                let (id, bytes) = row.map_err(StoreError::database("loading entities"))?;
                mirror.insert(kind, String::from_utf8_lossy(&id).into_owned(), bytes);
            }
        }
        Ok(mirror)
    }

    pub(crate) fn insert(&mut self, kind: EntityKind, id: String, row: IVec) {
        self.rows[kind_index(kind)].insert(id, row);
    }

    /// The row of `kind` with this id.
    pub(crate) fn get(&self, kind: EntityKind, id: &str) -> Option<&IVec> {
        self.rows[kind_index(kind)].get(id)
    }

    /// Rows of `kind` in id order, after `after` when given.
    pub(crate) fn after<'a>(
        &'a self,
        kind: EntityKind,
        after: Option<&str>,
    ) -> impl Iterator<Item = &'a IVec> + 'a {
        let start = match after {
            Some(id) => Bound::Excluded(id.to_owned()),
            None => Bound::Unbounded,
        };
        self.rows[kind_index(kind)]
            .range((start, Bound::Unbounded))
            .map(|(_, row)| row)
    }

    /// The ids of `kind`, in order.
    pub(crate) fn ids(&self, kind: EntityKind) -> impl Iterator<Item = &String> + '_ {
        self.rows[kind_index(kind)].keys()
    }

    /// How many entities of `kind` there are.
    pub(crate) fn count(&self, kind: EntityKind) -> usize {
        self.rows[kind_index(kind)].len()
    }

    /// Apply the entity-row operations of a committed write.
    pub(crate) fn apply(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Put {
                    slot: Slot::Entity(kind),
                    key,
                    value,
                } => {
                    let id = String::from_utf8_lossy(key).into_owned();
                    self.insert(*kind, id, IVec::from(value.as_slice()));
                }
                Op::Remove {
                    slot: Slot::Entity(kind),
                    key,
                } => {
                    self.rows[kind_index(*kind)].remove(String::from_utf8_lossy(key).as_ref());
                }
                _ => {}
            }
        }
    }
}
