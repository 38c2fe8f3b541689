//! [`State`]: the current configuration in memory — every entity row (id →
//! canonical JSON bytes, in id order per kind), the unique index and the
//! parent → child links — at one revision.
//!
//! Reads and write planning are served from here; the backend is the
//! durable truth it is loaded from and the place committed changes go to.
//! Keeping the indexes here, not in the backend, means every backend only
//! stores rows, and lookups cost a map access instead of a disk seek.
//! (sled 0.34 also needs tens of microseconds per row to iterate, so
//! listings from its trees were slow.) Memory: about the size of the
//! stored rows, plus ~100 bytes per unique key and ~50 per reference.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use bytes::Bytes;
use schemas::EntityKind;
use uuid::Uuid;

use super::backend::LoggedChange;
use super::error::StoreError;
use super::keys::{self, Link};
use super::plan::{put_of, RowOp, RowPut, RowRemove};
use super::read::decode;

/// Entity rows of one kind, by id (a UUID's byte order is the order of its
/// hyphenated lowercase text, so listings page in Kong's id order).
pub(crate) type Rows = BTreeMap<Uuid, Bytes>;

/// The whole configuration in memory.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// The backend revision these rows are at.
    pub(crate) revision: u64,
    rows: [Rows; EntityKind::ALL.len()],
    /// Unique key → owner id.
    unique: BTreeMap<Vec<u8>, Uuid>,
    /// Every reference between entities.
    links: BTreeSet<Link>,
}

impl State {
    /// The state of `rows` (one map per kind, in [`EntityKind::ALL`]
    /// order), with its indexes rebuilt from them.
    pub(crate) fn from_rows(
        revision: u64,
        rows: [Rows; EntityKind::ALL.len()],
    ) -> Result<Self, StoreError> {
        let mut state = State {
            revision,
            rows,
            ..State::default()
        };
        for kind in EntityKind::ALL {
            for row in state.rows[kind.index()].values() {
                let entity = decode(kind, row)?;
                for unique in keys::unique_keys(kind, &entity) {
                    state
                        .unique
                        .insert(unique.key, keys::entity_uuid(&entity).unwrap_or_default());
                }
                state.links.extend(keys::links(kind, &entity));
            }
        }
        Ok(state)
    }

    /// The state of a whole configuration's prepared rows.
    pub(crate) fn from_puts(revision: u64, puts: impl Iterator<Item = RowPut>) -> Self {
        let mut state = State {
            revision,
            ..State::default()
        };
        for put in puts {
            state.put(put);
        }
        state
    }

    /// The row of `kind` with this id.
    pub(crate) fn row(&self, kind: EntityKind, id: &Uuid) -> Option<&Bytes> {
        self.rows[kind.index()].get(id)
    }

    /// Rows of `kind` in id order, after `after` when given.
    pub(crate) fn rows_after(
        &self,
        kind: EntityKind,
        after: Option<Uuid>,
    ) -> impl Iterator<Item = (&Uuid, &Bytes)> + '_ {
        let start = match after {
            Some(id) => Bound::Excluded(id),
            None => Bound::Unbounded,
        };
        self.rows[kind.index()].range((start, Bound::Unbounded))
    }

    /// The ids of `kind`, in order.
    pub(crate) fn ids(&self, kind: EntityKind) -> impl Iterator<Item = &Uuid> + '_ {
        self.rows[kind.index()].keys()
    }

    /// How many entities of `kind` there are.
    pub(crate) fn count(&self, kind: EntityKind) -> usize {
        self.rows[kind.index()].len()
    }

    /// Who owns a unique key, if anyone.
    pub(crate) fn unique_owner(&self, key: &[u8]) -> Option<Uuid> {
        self.unique.get(key).copied()
    }

    /// Unique keys from `start` on, in order.
    pub(crate) fn unique_from(&self, start: &[u8]) -> impl Iterator<Item = &Vec<u8>> + '_ {
        self.unique
            .range::<[u8], _>((Bound::Included(start), Bound::Unbounded))
            .map(|(key, _)| key)
    }

    /// Ids of `child_kind` entities referencing `parent`, in id order,
    /// after `after` when given.
    pub(crate) fn children_after(
        &self,
        parent_kind: EntityKind,
        parent: Uuid,
        child_kind: EntityKind,
        after: Option<Uuid>,
    ) -> impl Iterator<Item = Uuid> + '_ {
        let first = Link::first(parent_kind, parent, child_kind);
        let start = match after {
            Some(child) => Bound::Excluded(Link { child, ..first }),
            None => Bound::Included(first),
        };
        self.links
            .range((start, Bound::Unbounded))
            .take_while(move |link| {
                (link.parent_kind, link.parent, link.child_kind)
                    == (parent_kind, parent, child_kind)
            })
            .map(|link| link.child)
    }

    /// Every id of `child_kind` entities referencing `parent`.
    pub(crate) fn children(
        &self,
        parent_kind: EntityKind,
        parent: Uuid,
        child_kind: EntityKind,
    ) -> Vec<Uuid> {
        self.children_after(parent_kind, parent, child_kind, None)
            .collect()
    }

    /// Apply the operations of a committed write, in order, and move to
    /// `revision`.
    pub(crate) fn apply(&mut self, ops: &[RowOp], revision: u64) {
        for op in ops {
            match op {
                RowOp::Put(put) => self.put(put.clone()),
                RowOp::Remove(remove) => {
                    self.rows[remove.kind.index()].remove(&remove.id);
                    for key in &remove.unique {
                        self.unique.remove(key);
                    }
                    for link in &remove.links {
                        self.links.remove(link);
                    }
                }
            }
        }
        self.revision = revision;
    }

    /// Apply a commit another node made (rows only, as logged): each
    /// change's index entries are derived from the row it removes or
    /// writes. Returns the changes as the commit hook sees them (a row
    /// written over an existing one is its removal followed by the row).
    pub(crate) fn apply_logged(
        &mut self,
        changes: &[LoggedChange],
        revision: u64,
    ) -> Result<Vec<LoggedChange>, StoreError> {
        let mut applied = Vec::with_capacity(changes.len());
        for change in changes {
            if let Some(old) = self.row(change.kind, &change.id).cloned() {
                self.remove_row(change.kind, &old)?;
                if change.row.is_some() {
                    applied.push(LoggedChange {
                        row: None,
                        ..change.clone()
                    });
                }
            }
            if change.row.is_none() {
                applied.push(change.clone());
            }
            if let Some(row) = &change.row {
                let entity = decode(change.kind, row)?;
                self.put(put_of(change.kind, &entity, row.clone())?);
                applied.push(change.clone());
            }
        }
        self.revision = revision;
        Ok(applied)
    }

    /// Removes a stored row and the index entries it owns.
    fn remove_row(&mut self, kind: EntityKind, row: &Bytes) -> Result<(), StoreError> {
        let entity = decode(kind, row)?;
        let put = put_of(kind, &entity, row.clone())?;
        let remove = RowRemove {
            kind,
            id: put.id,
            id_text: put.id_text,
            unique: put.unique,
            links: put.links,
        };
        self.apply(&[RowOp::Remove(remove)], self.revision);
        Ok(())
    }

    /// Every row, per kind (cheap: rows are shared bytes), for the
    /// node-local copy.
    pub(crate) fn rows(&self) -> Vec<Rows> {
        self.rows.to_vec()
    }

    fn put(&mut self, put: RowPut) {
        for key in put.unique {
            self.unique.insert(key, put.id);
        }
        self.links.extend(put.links);
        self.rows[put.kind.index()].insert(put.id, put.row);
    }
}
