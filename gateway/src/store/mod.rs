//! The gateway's durable state in sled: entities with their unique and
//! parent → child indexes, the `POST /config` generation swap, and the
//! session plugin's tree.
//!
//! Every write validates through [`schemas::EntityKind::validate`], is
//! applied in one sled transaction (or, for a whole configuration, one
//! generation flip) and is flushed to disk before the call returns; a write
//! whose flush fails is undone and never reaches the readers. Writes are
//! serialized by one lock. Reads are served from an in-memory copy of the
//! entity rows (`mirror`) plus sled's index trees, both behind one `RwLock`
//! so a reader never sees half of a swap. After each committed write the
//! [`Store::set_on_commit`] hook runs with the rows it changed
//! ([`Commit`]), still under the write lock, so the proxy snapshot it
//! updates always reflects the latest write.
//!
//! - [`error`]: [`StoreError`], one variant per Kong error code.
//! - [`query`]: pagination and tag filters.
//! - `layout`: tree names and index key formats.
//! - `mirror`: the in-memory copy of the entity rows.
//! - `read`: lookups, listings, export.
//! - `write`: single-entity writes and cascades.
//! - `prepare`, `replace`, `summary`: the whole-configuration swap
//!   ([`Store::replace_all`]).

pub mod error;
mod layout;
mod mirror;
mod prepare;
pub mod query;
mod read;
mod replace;
mod summary;
mod write;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use schemas::EntityKind;
use uuid::Uuid;

pub use error::{ConfigEntity, StoreError};
pub use query::{ListQuery, Page, TagFilter};
pub use summary::{ChangeSummary, KindChanges};

use layout::{Generation, CURRENT_GENERATION_KEY, META_TREE};
use mirror::Mirror;

/// The sled cache size the gateway uses unless told otherwise (16 MiB).
pub const DEFAULT_CACHE_CAPACITY_BYTES: u64 = 16 * 1024 * 1024;

/// The name of the tree the session plugin keeps server-side sessions in.
pub const SESSIONS_TREE: &str = "sessions";

/// Called after every committed and flushed write, with what it changed.
pub type CommitHook = Box<dyn Fn(&Commit<'_>) + Send + Sync>;

/// What a committed write changed, as the commit hook sees it.
#[derive(Debug)]
pub enum Commit<'a> {
    /// These entity rows, in the order the write applied them (an update
    /// is its removal followed by its new row).
    Entities(&'a [ChangedEntity<'a>]),
    /// The whole configuration was replaced by a new generation.
    Replaced,
}

/// One entity row a write put or removed.
#[derive(Debug, Clone, Copy)]
pub struct ChangedEntity<'a> {
    /// Its kind.
    pub kind: EntityKind,
    /// Its id (hyphenated UUID).
    pub id: &'a str,
    /// Its new canonical JSON row, or `None` when it was removed.
    pub row: Option<&'a [u8]>,
}

/// How an Admin API URL names an entity: by id, or by its endpoint key
/// (service/route `name`, consumer `username`, plugin `instance_name`,
/// key-auth `key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityKey {
    Id(Uuid),
    EndpointKey(String),
}

impl EntityKey {
    /// A hyphenated UUID is an id (as Kong decides); anything else is an
    /// endpoint key.
    pub fn parse(raw: &str) -> Self {
        let hyphenated = raw.len() == 36 && raw.matches('-').count() == 4;
        match Uuid::parse_str(raw) {
            Ok(id) if hyphenated => EntityKey::Id(id),
            _ => EntityKey::EndpointKey(raw.to_owned()),
        }
    }
}

/// The entity store. Share it behind an `Arc`.
pub struct Store {
    db: sled::Db,
    meta: sled::Tree,
    sessions: sled::Tree,
    live: RwLock<Live>,
    write_lock: Mutex<()>,
    on_commit: RwLock<Option<CommitHook>>,
}

/// What readers see: the current generation's trees and its rows.
pub(crate) struct Live {
    pub(crate) generation: Generation,
    pub(crate) rows: Mirror,
}

impl Store {
    /// Open (or create) the store in `dir`, capping sled's page cache at
    /// `cache_capacity_bytes`. Leftover trees of unfinished `POST /config`
    /// swaps are dropped.
    pub fn open(dir: &Path, cache_capacity_bytes: u64) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_capacity_bytes)
            .open()
            .map_err(StoreError::database("opening the database"))?;
        Self::from_db(db)
    }

    /// A store that lives in a temporary directory removed on drop (tests).
    pub fn open_temporary() -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(DEFAULT_CACHE_CAPACITY_BYTES)
            .open()
            .map_err(StoreError::database("opening a temporary database"))?;
        Self::from_db(db)
    }

    fn from_db(db: sled::Db) -> Result<Store, StoreError> {
        let open = |name: &str| db.open_tree(name);
        let meta = open(META_TREE).map_err(StoreError::database("opening the meta tree"))?;
        let sessions = open(SESSIONS_TREE).map_err(StoreError::database("opening sessions"))?;
        let number = current_generation(&meta)?;
        let generation = Generation::open(&db, number)?;
        let rows = Mirror::load(&generation)?;
        let store = Store {
            db,
            meta,
            sessions,
            live: RwLock::new(Live { generation, rows }),
            write_lock: Mutex::new(()),
            on_commit: RwLock::new(None),
        };
        store.drop_stale_generations()?;
        store.flush()?;
        Ok(store)
    }

    /// Install the hook run after every committed write, before the write
    /// call returns. It runs under the store's write lock: it may read
    /// (e.g. [`Store::export`]) but must not write.
    pub fn set_on_commit(&self, hook: CommitHook) {
        let mut slot = self
            .on_commit
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        *slot = Some(hook);
    }

    /// The tree the session plugin stores server-side sessions in.
    pub fn sessions_tree(&self) -> sled::Tree {
        self.sessions.clone()
    }

    /// Write everything to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db
            .flush()
            .map(drop)
            .map_err(StoreError::database("flushing to disk"))
    }

    /// Is the database usable (for `GET /status`)?
    pub fn is_reachable(&self) -> bool {
        self.meta.get(CURRENT_GENERATION_KEY).is_ok()
    }

    /// Read access to the current state. Never take it twice in one
    /// thread (a waiting writer would deadlock the second read).
    fn read_live(&self) -> RwLockReadGuard<'_, Live> {
        self.live
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn write_live(&self) -> RwLockWriteGuard<'_, Live> {
        self.live
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The current generation's trees (for writers, who hold the write lock).
    fn generation(&self) -> Generation {
        self.read_live().generation.clone()
    }

    fn lock_writes(&self) -> MutexGuard<'_, ()> {
        self.write_lock
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn notify_commit(&self, commit: &Commit<'_>) {
        let hook = self
            .on_commit
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(hook) = hook.as_ref() {
            hook(commit);
        }
    }

    /// Drop the trees of every generation but the current one.
    fn drop_stale_generations(&self) -> Result<(), StoreError> {
        let current = self.generation().number;
        for name in self.db.tree_names() {
            let stale = layout::generation_of(&name).is_some_and(|number| number != current);
            if stale {
                self.db
                    .drop_tree(&name)
                    .map_err(StoreError::database("dropping an old generation"))?;
            }
        }
        Ok(())
    }
}

/// The generation number stored in `meta`, creating generation 1 if none.
fn current_generation(meta: &sled::Tree) -> Result<u64, StoreError> {
    let stored = meta
        .get(CURRENT_GENERATION_KEY)
        .map_err(StoreError::database("reading the current generation"))?;
    if let Some(bytes) = stored {
        let array: [u8; 8] = bytes
            .as_ref()
            .try_into()
            .map_err(|_| StoreError::CorruptRow {
                collection: "meta",
                reason: "current_generation is not 8 bytes".to_owned(),
            })?;
        return Ok(u64::from_be_bytes(array));
    }
    meta.insert(CURRENT_GENERATION_KEY, &1u64.to_be_bytes())
        .map_err(StoreError::database("creating the first generation"))?;
    Ok(1)
}

/// Epoch seconds now.
fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or_default()
}
