//! The gateway's entity store: every entity of the configuration, with
//! Kong's DAO rules (schemas, references, unique keys, cascades), durable
//! in a backend.
//!
//! Layers, top to bottom:
//!
//! - [`Store`] (this file, `read`, `write`, `prepare`, `replace`): the
//!   backend-neutral store. Every write validates through
//!   [`schemas::EntityKind::validate`], is *planned* against the in-memory
//!   `state` under one write lock (`plan`: the rows it puts and removes),
//!   committed by the backend in one transaction (durable before the call
//!   returns; a failed commit leaves no trace), then applied to the state,
//!   and finally announced to the commit hook ([`Store::set_on_commit`]),
//!   still under the write lock, so the proxy snapshot it updates always
//!   reflects the latest write. Reads are served from the state.
//! - `state` and `keys`: rows in memory with their unique index and
//!   references, derived from each kind's descriptor.
//! - [`backend::EntityBackend`]: what a backend does — load rows, commit a
//!   plan, replace everything, each at a gap-free revision.
//! - [`sessions::SessionStore`]: the session plugin's `storage: kong` rows,
//!   async.
//! - [`sled`]: the embedded backend (both traits). It is the only module
//!   that names sled.
//! - [`postgres`]: the shared backend (both traits) for several nodes on
//!   one PostgreSQL. It is the only module that names tokio-postgres.
//! - `follow` ([`Store::follow`], [`Store::catch_up`]): how a node applies
//!   other nodes' commits, in revision order, to its state and snapshot;
//!   `local_copy`: the node-local copy of the configuration a node starts
//!   from while the shared database is down.
//!
//! With a shared backend, a write first takes the backend's write session
//! (a lock across nodes, [`EntityBackend::begin_write`]); when the
//! database is then ahead of the state, the store applies the missing
//! commits before planning. Should a commit still find another revision
//! stored ([`StoreError::Stale`]), the store catches up and plans the write
//! again (so a write's planning must be re-runnable), up to a few times.
//!
//! Also: [`error`] ([`StoreError`], one variant per Kong error code),
//! [`query`] (pagination and tag filters), `summary` (what a whole
//! configuration replace changed), [`posted`] (what a replace reads: parsed
//! values or raw JSON text borrowed from a request body).

pub mod backend;
pub mod error;
mod follow;
mod keys;
pub mod local_copy;
mod plan;
pub mod posted;
pub mod postgres;
mod prepare;
pub mod query;
mod read;
mod replace;
pub mod sessions;
pub mod sled;
mod state;
mod summary;
mod write;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use schemas::EntityKind;
use uuid::Uuid;

pub use self::sled::sessions::SledSessions;
pub use backend::EntityBackend;
pub use error::{ConfigEntity, StoreError};
pub use posted::{PostedConfig, RawConfig};
pub use query::{ListQuery, Page, RowPage, TagFilter};
pub use sessions::{SessionError, SessionStore};
pub use summary::{ChangeSummary, KindChanges};

use plan::Plan;
use state::State;

/// Called after every committed write, with what it changed.
pub type CommitHook = Box<dyn Fn(&Commit<'_>) + Send + Sync>;

/// What a committed write changed, as the commit hook sees it.
#[derive(Debug)]
pub enum Commit<'a> {
    /// These entity rows, in the order the write applied them (an update
    /// is its removal followed by its new row).
    Entities(&'a [ChangedEntity<'a>]),
    /// The whole configuration was replaced.
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
    backend: Box<dyn EntityBackend>,
    state: RwLock<State>,
    write_lock: Mutex<()>,
    on_commit: RwLock<Option<CommitHook>>,
    /// Told after every applied revision, when a node-local copy is kept.
    local_copy: Mutex<Option<local_copy::Dirty>>,
}

impl Store {
    /// The store of `backend`, loaded into memory.
    pub fn new(backend: Box<dyn EntityBackend>) -> Result<Store, StoreError> {
        let loaded = backend.load()?;
        let state = State::from_rows(loaded.revision, loaded.rows)?;
        Ok(Store {
            backend,
            state: RwLock::new(state),
            write_lock: Mutex::new(()),
            on_commit: RwLock::new(None),
            local_copy: Mutex::new(None),
        })
    }

    /// Opens (or creates) the embedded store in `dir`, capping sled's page
    /// cache at `cache_capacity_bytes`.
    pub fn open(dir: &Path, cache_capacity_bytes: u64) -> Result<Store, StoreError> {
        Store::new(Box::new(sled::SledBackend::open(
            dir,
            cache_capacity_bytes,
        )?))
    }

    /// An embedded store in a temporary directory removed on drop (tests).
    pub fn open_temporary() -> Result<Store, StoreError> {
        Store::new(Box::new(sled::SledBackend::open_temporary()?))
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

    /// The session plugin's `storage: kong` rows, in the same database.
    pub fn sessions(&self) -> Arc<dyn SessionStore> {
        self.backend.sessions()
    }

    /// The backend's name, as `GET /` reports the database.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// The revision of the configuration: it grows by one with every
    /// committed write.
    pub fn revision(&self) -> u64 {
        self.read_state().revision
    }

    /// Write everything to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.backend.flush()
    }

    /// Is the database usable (for `GET /status`)?
    pub fn is_reachable(&self) -> bool {
        self.backend.is_reachable()
    }

    /// Read access to the current state. Never take it twice in one
    /// thread (a waiting writer would deadlock the second read).
    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn lock_writes(&self) -> MutexGuard<'_, ()> {
        self.write_lock
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Commit a plan through the backend, then apply it to the state and
    /// run the commit hook. The caller holds the write lock. A commit the
    /// backend refuses (a disk that is full or read-only) changes nothing.
    fn commit_plan(&self, plan: &Plan) -> Result<(), StoreError> {
        self.commit_plan_then(plan, || {})
    }

    /// [`Store::commit_plan`], calling `written` once the backend holds the
    /// commit and before the commit hook runs.
    fn commit_plan_then(&self, plan: &Plan, written: impl FnOnce()) -> Result<(), StoreError> {
        let base = self.read_state().revision;
        let changes: Vec<backend::RowChange<'_>> = plan
            .ops()
            .iter()
            .map(|op| backend::RowChange {
                kind: op.kind(),
                id: op.id(),
                row: op.row(),
            })
            .collect();
        let revision = self.backend.commit(base, &changes)?;
        drop(changes);
        written();
        self.write_state().apply(plan.ops(), revision);
        let changed = plan.changed_entities();
        self.notify_commit(&Commit::Entities(&changed));
        Ok(())
    }

    /// Runs `attempt` (a write's plan and commit, under the write lock) in
    /// the backend's write session, and again after catching up when the
    /// state was behind the database.
    fn with_retries<T>(
        &self,
        mut attempt: impl FnMut() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let locked = self.backend.begin_write()?;
        let _session = WriteSession(self.backend.as_ref());
        if locked.is_some_and(|revision| revision != self.read_state().revision) {
            self.catch_up_locked()?;
        }
        let mut conflicts = 0;
        loop {
            match attempt() {
                Err(StoreError::Stale { base }) if conflicts < MAX_CONFLICTS => {
                    conflicts += 1;
                    tracing::debug!(
                        base,
                        conflicts,
                        "write planned on an old revision; catching up"
                    );
                    self.catch_up_locked()?;
                }
                outcome => return outcome,
            }
        }
    }

    /// Runs the commit hook and tells the local copy writer.
    fn notify_commit(&self, commit: &Commit<'_>) {
        let hook = self
            .on_commit
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(hook) = hook.as_ref() {
            hook(commit);
        }
        drop(hook);
        let local_copy = self
            .local_copy
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(dirty) = local_copy.as_ref() {
            dirty.mark();
        }
    }
}

/// Ends the backend's write session when dropped.
struct WriteSession<'a>(&'a dyn EntityBackend);

impl Drop for WriteSession<'_> {
    fn drop(&mut self) {
        self.0.end_write();
    }
}

/// How many times a write is planned again after another node committed
/// first, before it gives up with a 503.
const MAX_CONFLICTS: usize = 8;
