//! Keeps the proxy's snapshot in step with the store: the first compile at
//! start-up ([`compile_stored`]) and the commit hook that applies every
//! committed write ([`keep_updated`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use schemas::EntityKind;

use super::{Entities, Snapshot, SnapshotError, SnapshotHandle};
use crate::pdk::PluginEnv;
use crate::store::{Commit, ListQuery, Store};

/// Entities per page when compiling. glibc's malloc handles requests of
/// 1 KiB or more as large ones and consolidates its fast bins on each, which
/// with 100k entities costs more than decoding them; a page's vector of 31
/// JSON values (992 bytes) stays below that, so each page simply reuses the
/// memory the previous one freed. (Measured with 100k entities: start-up
/// 0.56-0.71 s with pages of 31, 0.78 s with 100, 0.7-1.2 s with 1000.)
const COMPILE_PAGE_SIZE: usize = 31;

/// Compiles the whole stored configuration. It is read a page at a time,
/// so that besides the typed entities only one page of JSON values is in
/// memory: the whole configuration as JSON values is several times the size
/// of the snapshot (peak RSS with 100k entities: 92 MiB instead of
/// 230 MiB). Run at start, and in the commit hook after a whole
/// configuration was replaced, where no write can come between two pages.
pub fn compile_stored(store: &Store, env: &PluginEnv) -> Result<Snapshot, SnapshotError> {
    let mut entities = Entities::default();
    for kind in EntityKind::ALL {
        entities.reserve(kind, store.count(kind));
        let mut query = ListQuery {
            size: COMPILE_PAGE_SIZE,
            ..ListQuery::default()
        };
        loop {
            let page = store.list(kind, None, &query)?;
            for value in &page.data {
                entities.push(kind, value)?;
            }
            let last_id = page.data.last().and_then(schemas::config::id_of);
            query.after = match (&page.offset, last_id) {
                (Some(_), Some(id)) => Some(id.to_owned()),
                _ => None,
            };
            if query.after.is_none() {
                break;
            }
        }
    }
    Snapshot::compile(entities, env)
}

/// Installs the store's commit hook: after every committed write the next
/// snapshot is made and swapped in before the write call returns, so the
/// next proxied request sees the change.
///
/// A write of some entities updates the current snapshot with the rows it
/// changed; a replaced configuration (a new store generation) is compiled
/// whole. A change that cannot be compiled is logged and the previous
/// snapshot keeps serving; the next write then compiles the whole store,
/// since the serving snapshot no longer matches it.
pub fn keep_updated(store: &Arc<Store>, snapshots: &Arc<SnapshotHandle>, env: PluginEnv) {
    let updater = Updater {
        store: Arc::downgrade(store),
        snapshots: Arc::clone(snapshots),
        env,
        behind: AtomicBool::new(false),
    };
    store.set_on_commit(Box::new(move |commit| updater.on_commit(commit)));
}

/// The commit hook's state.
struct Updater {
    /// Weak: the store owns the hook.
    store: Weak<Store>,
    snapshots: Arc<SnapshotHandle>,
    env: PluginEnv,
    /// Whether a change failed to compile, so that the serving snapshot
    /// lags behind the store.
    behind: AtomicBool,
}

impl Updater {
    fn on_commit(&self, commit: &Commit<'_>) {
        let started = Instant::now();
        let next = match commit {
            Commit::Entities(changes) if !self.behind.load(Ordering::Relaxed) => {
                self.snapshots.load().with_changes(changes, &self.env)
            }
            _ => self.compile_whole(),
        };
        match next {
            Ok(snapshot) => {
                self.snapshots.store(snapshot);
                self.behind.store(false, Ordering::Relaxed);
                tracing::debug!(elapsed = ?started.elapsed(), "configuration change applied");
            }
            Err(error) => {
                self.behind.store(true, Ordering::Relaxed);
                tracing::error!(%error, "configuration change not applied; the previous one keeps serving");
            }
        }
    }

    fn compile_whole(&self) -> Result<Snapshot, SnapshotError> {
        match self.store.upgrade() {
            Some(store) => compile_stored(&store, &self.env),
            None => Ok(Snapshot::empty()),
        }
    }
}
