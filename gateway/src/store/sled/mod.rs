//! The embedded backend: entity rows and sessions in one sled database.
//!
//! Layout:
//!
//! - A configuration lives in one *generation*: one tree per entity kind,
//!   named `g<N>.<collection>` (`g7.services`, ...), id → canonical JSON.
//! - The `meta` tree holds `current_generation` and `revision` (u64, big
//!   endian).
//! - The `sessions` tree holds the session plugin's rows ([`sessions`]).
//!
//! A commit is one sled transaction over the generation's trees and `meta`
//! (the rows and the next revision together), then a flush; a flush that
//! fails undoes the transaction before the error is returned, so a write
//! that got a 5xx leaves no trace, now or after a later flush. A replace
//! writes a new generation beside the current one, flushes it, then flips
//! `current_generation` (with the revision) and drops the old trees; a
//! crash before the flip leaves the old generation current, and the
//! leftovers are dropped at the next open. Trees of older layouts (the
//! `g<N>.unique` and `g<N>.children` indexes, now kept in memory) are
//! dropped at open too.

mod generation;
pub mod sessions;

use std::path::Path;
use std::sync::Arc;

use sled::transaction::{ConflictableTransactionResult, TransactionError, Transactional};
use sled::{Db, IVec, Tree};

use super::backend::{EntityBackend, KindRows, Loaded, RowChange};
use super::error::StoreError;
use super::sessions::SessionStore;
use generation::Generation;
use sessions::SledSessions;

/// The sled cache size the gateway uses unless told otherwise (16 MiB).
pub const DEFAULT_CACHE_CAPACITY_BYTES: u64 = 16 * 1024 * 1024;

/// The tree holding the current generation and the revision.
const META_TREE: &str = "meta";
/// The key of the current generation number.
const CURRENT_GENERATION_KEY: &[u8] = b"current_generation";
/// The key of the revision.
const REVISION_KEY: &[u8] = b"revision";
/// The tree of the session plugin's rows.
const SESSIONS_TREE: &str = "sessions";

/// Entity rows in sled. See the module documentation.
pub struct SledBackend {
    db: Db,
    meta: Tree,
    generation: std::sync::Mutex<Generation>,
    sessions: Arc<SledSessions>,
}

impl SledBackend {
    /// Opens (or creates) the database in `dir`, capping sled's page cache
    /// at `cache_capacity_bytes`.
    pub fn open(dir: &Path, cache_capacity_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_capacity_bytes)
            .open()
            .map_err(StoreError::database("opening the database"))?;
        Self::from_db(db)
    }

    /// Opens `dir` again right after a backend on it was dropped (tests):
    /// sled's flusher thread keeps the file lock until its next wake-up
    /// (up to 500 ms), so an immediate reopen can find it still locked.
    #[cfg(test)]
    pub fn reopen(dir: &Path) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match Self::open(dir, DEFAULT_CACHE_CAPACITY_BYTES) {
                Err(error) if std::time::Instant::now() < deadline => {
                    tracing::debug!(%error, "the database is still locked; retrying");
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                outcome => return outcome,
            }
        }
    }

    /// A database in a temporary directory removed on drop (tests).
    pub fn open_temporary() -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(DEFAULT_CACHE_CAPACITY_BYTES)
            .open()
            .map_err(StoreError::database("opening a temporary database"))?;
        Self::from_db(db)
    }

    fn from_db(db: Db) -> Result<Self, StoreError> {
        let meta = db
            .open_tree(META_TREE)
            .map_err(StoreError::database("opening the meta tree"))?;
        let sessions = db
            .open_tree(SESSIONS_TREE)
            .map_err(StoreError::database("opening sessions"))?;
        let number = read_u64(&meta, CURRENT_GENERATION_KEY)?.unwrap_or(1);
        let generation = Generation::open(&db, number)?;
        let backend = SledBackend {
            db,
            meta,
            generation: std::sync::Mutex::new(generation),
            sessions: Arc::new(SledSessions::new(sessions)),
        };
        backend.drop_other_trees(number)?;
        backend.write_meta(number, backend.stored_revision()?)?;
        backend.flush()?;
        Ok(backend)
    }

    fn current(&self) -> Generation {
        self.generation
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    fn stored_revision(&self) -> Result<u64, StoreError> {
        Ok(read_u64(&self.meta, REVISION_KEY)?.unwrap_or(0))
    }

    /// Drops every generation tree but those of generation `keep`.
    fn drop_other_trees(&self, keep: u64) -> Result<(), StoreError> {
        for name in self.db.tree_names() {
            let stale = generation::number_of(&name)
                .is_some_and(|number| number != keep || !generation::is_entity_tree(&name));
            if stale {
                self.db
                    .drop_tree(&name)
                    .map_err(StoreError::database("dropping an old generation"))?;
            }
        }
        Ok(())
    }

    /// Writes the current generation and revision in one batch.
    fn write_meta(&self, generation: u64, revision: u64) -> Result<Option<Meta>, StoreError> {
        let previous = Meta {
            generation: self.meta.get(CURRENT_GENERATION_KEY).ok().flatten(),
            revision: self.meta.get(REVISION_KEY).ok().flatten(),
        };
        let mut batch = sled::Batch::default();
        batch.insert(CURRENT_GENERATION_KEY, &generation.to_be_bytes());
        batch.insert(REVISION_KEY, &revision.to_be_bytes());
        self.meta
            .apply_batch(batch)
            .map_err(StoreError::database("writing the revision"))?;
        Ok(Some(previous))
    }
}

/// `meta`'s values before a change, to put back if it cannot be flushed.
struct Meta {
    generation: Option<IVec>,
    revision: Option<IVec>,
}

impl EntityBackend for SledBackend {
    fn name(&self) -> &'static str {
        "sled"
    }

    fn load(&self) -> Result<Loaded, StoreError> {
        Ok(Loaded {
            revision: self.stored_revision()?,
            rows: self.current().read_rows()?,
        })
    }

    fn commit(&self, base_revision: u64, changes: &[RowChange<'_>]) -> Result<u64, StoreError> {
        let generation = self.current();
        let revision = base_revision + 1;
        let undo = commit(&generation, &self.meta, changes, revision)?;
        if let Err(error) = self.flush() {
            if let Err(undo_error) = undo_commit(&generation, &self.meta, &undo) {
                tracing::error!(error = %undo_error, "could not undo a write that failed to reach the disk");
            }
            return Err(error);
        }
        Ok(revision)
    }

    fn replace(&self, base_revision: u64, rows: &[KindRows]) -> Result<u64, StoreError> {
        let old = self.current();
        let number = old.number + 1;
        let next = Generation::create(&self.db, number)?;
        next.write_rows(&self.db, rows)?;
        self.flush()?;
        let revision = base_revision + 1;
        let previous = self.write_meta(number, revision)?;
        if let Err(error) = self.flush() {
            // Not durable: point back at the old generation, so that the
            // flip does not reach the disk with a later flush.
            if let Some(previous) = previous {
                restore_meta(&self.meta, previous);
            }
            return Err(error);
        }
        *self
            .generation
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = next;
        old.drop_trees(&self.db)?;
        Ok(revision)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db
            .flush()
            .map(drop)
            .map_err(StoreError::database("flushing to disk"))
    }

    fn is_reachable(&self) -> bool {
        self.meta.get(CURRENT_GENERATION_KEY).is_ok()
    }

    fn sessions(&self) -> Arc<dyn SessionStore> {
        Arc::clone(&self.sessions) as Arc<dyn SessionStore>
    }
}

/// A key's previous value in one tree (`None`: it was absent).
type Undo = Vec<(usize, Vec<u8>, Option<IVec>)>;

/// Applies `changes` and the revision in one transaction over the
/// generation's trees and `meta`; returns what undoes it.
fn commit(
    generation: &Generation,
    meta: &Tree,
    changes: &[RowChange<'_>],
    revision: u64,
) -> Result<Undo, StoreError> {
    let mut trees: Vec<&Tree> = generation.trees().iter().collect();
    trees.push(meta);
    let meta_index = trees.len() - 1;
    let result = trees
        .as_slice()
        .transaction(|views| -> ConflictableTransactionResult<Undo, ()> {
            let mut undo = Vec::with_capacity(changes.len() + 1);
            for change in changes {
                let tree = change.kind.index();
                let key = change.id.hyphenated().to_string().into_bytes();
                let previous = match change.row {
                    Some(row) => views[tree].insert(key.as_slice(), row.as_ref())?,
                    None => views[tree].remove(key.as_slice())?,
                };
                undo.push((tree, key, previous));
            }
            let previous = views[meta_index].insert(REVISION_KEY, &revision.to_be_bytes())?;
            undo.push((meta_index, REVISION_KEY.to_vec(), previous));
            undo.reverse();
            Ok(undo)
        });
    result.map_err(transaction_error("committing a write"))
}

/// Puts every key of `undo` back to its previous value, in one transaction.
fn undo_commit(generation: &Generation, meta: &Tree, undo: &Undo) -> Result<(), StoreError> {
    let mut trees: Vec<&Tree> = generation.trees().iter().collect();
    trees.push(meta);
    let result = trees
        .as_slice()
        .transaction(|views| -> ConflictableTransactionResult<(), ()> {
            for (tree, key, previous) in undo {
                match previous {
                    Some(value) => views[*tree].insert(key.as_slice(), value.clone())?,
                    None => views[*tree].remove(key.as_slice())?,
                };
            }
            Ok(())
        });
    result.map_err(transaction_error("undoing a write"))
}

fn transaction_error(context: &'static str) -> impl Fn(TransactionError<()>) -> StoreError {
    move |error| match error {
        TransactionError::Storage(source) => StoreError::database(context)(source),
        TransactionError::Abort(()) => StoreError::CorruptRow {
            collection: "transaction",
            reason: "aborted".to_owned(),
        },
    }
}

/// Puts `meta` back as it was (best effort: the flip was not durable).
fn restore_meta(meta: &Tree, previous: Meta) {
    let restore = |key: &[u8], value: Option<IVec>| match value {
        Some(value) => meta.insert(key, value).map(drop),
        None => meta.remove(key).map(drop),
    };
    let _ = restore(CURRENT_GENERATION_KEY, previous.generation);
    let _ = restore(REVISION_KEY, previous.revision);
}

/// A u64 stored big-endian under `key`.
fn read_u64(tree: &Tree, key: &[u8]) -> Result<Option<u64>, StoreError> {
    let stored = tree
        .get(key)
        .map_err(StoreError::database("reading the meta tree"))?;
    let Some(bytes) = stored else {
        return Ok(None);
    };
    let array: [u8; 8] = bytes
        .as_ref()
        .try_into()
        .map_err(|_| StoreError::CorruptRow {
            collection: "meta",
            reason: format!("{} is not 8 bytes", String::from_utf8_lossy(key)),
        })?;
    Ok(Some(u64::from_be_bytes(array)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use schemas::EntityKind;
    use uuid::Uuid;

    fn rows_with(kind: EntityKind, id: Uuid, row: &str) -> Vec<KindRows> {
        let mut rows: Vec<KindRows> = EntityKind::ALL.iter().map(|_| KindRows::new()).collect();
        rows[kind.index()].insert(id, Bytes::from(row.to_owned()));
        rows
    }

    #[test]
    fn revisions_grow_by_one_and_survive_a_reopen() {
        let dir = std::env::temp_dir().join(format!("gateway-sled-{}", Uuid::new_v4()));
        let id = Uuid::new_v4();
        {
            let backend = SledBackend::open(&dir, DEFAULT_CACHE_CAPACITY_BYTES).unwrap();
            assert_eq!(backend.load().unwrap().revision, 0);
            let row = Bytes::from_static(b"{}");
            let change = RowChange {
                kind: EntityKind::Service,
                id,
                row: Some(&row),
            };
            assert_eq!(backend.commit(0, &[change]).unwrap(), 1);
            let replaced = rows_with(EntityKind::Consumer, id, "{\"c\":1}");
            assert_eq!(backend.replace(1, &replaced).unwrap(), 2);
        }
        let backend = SledBackend::reopen(&dir).unwrap();
        let loaded = backend.load().unwrap();
        assert_eq!(loaded.revision, 2);
        assert!(loaded.rows[EntityKind::Service.index()].is_empty());
        assert_eq!(
            loaded.rows[EntityKind::Consumer.index()][&id],
            Bytes::from_static(b"{\"c\":1}")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn opening_drops_old_generations_and_index_trees() {
        let dir = std::env::temp_dir().join(format!("gateway-sled-{}", Uuid::new_v4()));
        {
            let db = sled::open(&dir).unwrap();
            for name in ["g1.services", "g1.unique", "g1.children", "g4.services"] {
                db.open_tree(name).unwrap().insert("k", "v").unwrap();
            }
            db.flush().unwrap();
        }
        let backend = SledBackend::open(&dir, DEFAULT_CACHE_CAPACITY_BYTES).unwrap();
        let mut generation_trees: Vec<String> = backend
            .db
            .tree_names()
            .iter()
            .filter(|name| generation::number_of(name).is_some())
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .collect();
        generation_trees.sort();
        let mut expected: Vec<String> = EntityKind::ALL
            .iter()
            .map(|kind| format!("g1.{}", kind.collection()))
            .collect();
        expected.sort();
        assert_eq!(generation_trees, expected);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
