//! [`EntityBackend`]: what a storage backend must do for the entity store.
//!
//! A backend keeps entity rows durably and nothing else: validation,
//! references, unique keys, cascades and the indexes live in the
//! backend-neutral [`super::Store`] above it. The contract:
//!
//! - [`EntityBackend::load`] returns every row and the revision they are at.
//! - [`EntityBackend::commit`] writes one plan's row changes in one
//!   transaction and returns the next revision; the changes are durable
//!   (on disk, or committed) when it returns `Ok`, and absent when it
//!   returns `Err`.
//! - [`EntityBackend::replace`] swaps the whole configuration for another,
//!   all or nothing, durable on `Ok`.
//! - Revisions grow by one per commit or replace, with no gaps.
//!
//! The store calls these with its write lock held, so a single-node backend
//! never sees two writes at once. sled ([`super::sled`]) is the embedded
//! default.
//!
//! A backend shared by several nodes ([`super::postgres`]) also:
//!
//! - takes a write lock across nodes in [`EntityBackend::begin_write`]
//!   (held until [`EntityBackend::end_write`]), before the store plans the
//!   write, so writers on different nodes take turns;
//! - refuses a commit or replace whose `base_revision` is no longer the
//!   stored one with [`StoreError::Stale`]; the store then catches up and
//!   plans the write again;
//! - answers [`EntityBackend::changes_since`] with the commits made after a
//!   revision, in revision order (or everything, when its log no longer
//!   reaches that far back or the configuration was replaced);
//! - wakes the store through [`EntityBackend::subscribe`] when another node
//!   committed (or periodically, to catch a missed wake-up).

use std::sync::Arc;

use bytes::Bytes;
use schemas::EntityKind;
use uuid::Uuid;

use super::error::StoreError;
use super::sessions::SessionStore;

/// One row change of a commit: the new row, or `None` to remove it.
#[derive(Debug, Clone, Copy)]
pub struct RowChange<'a> {
    pub kind: EntityKind,
    pub id: Uuid,
    pub row: Option<&'a Bytes>,
}

/// Every stored row of one kind, by id.
pub type KindRows = std::collections::BTreeMap<Uuid, Bytes>;

/// What [`EntityBackend::load`] finds.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The revision of these rows.
    pub revision: u64,
    /// One map per kind, in [`EntityKind::ALL`] order.
    pub rows: [KindRows; EntityKind::ALL.len()],
}

/// One row change of a logged commit (owned: read back from the backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedChange {
    pub kind: EntityKind,
    pub id: Uuid,
    /// The new row, or `None` when it was removed.
    pub row: Option<Bytes>,
}

/// A commit as the backend's log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedCommit {
    /// The revision it made.
    pub revision: u64,
    /// Its row changes, in the order they were applied.
    pub changes: Vec<LoggedChange>,
}

/// What [`EntityBackend::changes_since`] found.
#[derive(Debug)]
pub enum Since {
    /// Nothing was committed after that revision.
    UpToDate,
    /// These commits came after it, in revision order, with no gap.
    Commits(Vec<LoggedCommit>),
    /// Everything, at its current revision: the log does not reach back
    /// that far, the configuration was replaced in between, or the
    /// database is another one than the rows came from.
    Reload(Loaded),
}

/// Durable storage for entity rows. See the module documentation.
pub trait EntityBackend: Send + Sync {
    /// Its name, as `GET /` reports the database (`sled`, `postgres`).
    fn name(&self) -> &'static str;

    /// Every stored row, and their revision.
    fn load(&self) -> Result<Loaded, StoreError>;

    /// Writes `changes` (in order) in one transaction on top of
    /// `base_revision`, durably; returns the new revision.
    fn commit(&self, base_revision: u64, changes: &[RowChange<'_>]) -> Result<u64, StoreError>;

    /// Replaces every row with `rows` (one map per kind), atomically and
    /// durably; returns the new revision.
    fn replace(&self, base_revision: u64, rows: &[KindRows]) -> Result<u64, StoreError>;

    /// Called (under the store's write lock) before a write is planned: a
    /// shared backend locks out the other nodes' writes until
    /// [`EntityBackend::end_write`] and returns the stored revision, so
    /// that the store can catch up first. A single-node backend has no
    /// other writer (`None`).
    fn begin_write(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    /// Whether a commit can still come back [`StoreError::Stale`] (another
    /// node committed first), so that the store must be able to plan the
    /// write again. A single-node backend has no other writer.
    fn can_conflict(&self) -> bool {
        false
    }

    /// Ends what [`EntityBackend::begin_write`] began (after the commit,
    /// or without one when the write failed or changed nothing).
    fn end_write(&self) {}

    /// The commits made after `revision` (by other nodes: this node's own
    /// commits are applied when they return). A single-node backend has
    /// none.
    fn changes_since(&self, revision: u64) -> Result<Since, StoreError> {
        let _ = revision;
        Ok(Since::UpToDate)
    }

    /// Wake-ups telling the store to call [`EntityBackend::changes_since`]
    /// (another node committed, or a periodic check is due); `None` for a
    /// single-node backend. Only the first call returns the receiver.
    fn subscribe(&self) -> Option<std::sync::mpsc::Receiver<()>> {
        None
    }

    /// Which database the rows come from (PostgreSQL: the cluster id made
    /// at bootstrap), written into the node-local copy so that a copy of
    /// another database is never taken for this one's.
    fn origin(&self) -> Option<String> {
        None
    }

    /// Makes everything written so far durable (at shutdown).
    fn flush(&self) -> Result<(), StoreError>;

    /// Whether the database answers (`GET /status`).
    fn is_reachable(&self) -> bool;

    /// The session rows of the session plugin's `storage: kong`, kept in
    /// the same database.
    fn sessions(&self) -> Arc<dyn SessionStore>;
}
