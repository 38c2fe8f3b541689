//! Following a shared database: applying the commits other nodes made.
//!
//! - [`Store::catch_up`] asks the backend for the commits after the
//!   state's revision and applies them in revision order, under the write
//!   lock (so a local write never interleaves with them), each announced
//!   to the commit hook like a local write; when the backend answers with
//!   everything instead (its log was trimmed, the configuration was
//!   replaced, or it is another database), the whole state is swapped at
//!   once and the hook hears [`Commit::Replaced`], so the proxy goes from
//!   the whole old configuration to the whole new one, never a mix.
//! - [`Store::follow`] runs a thread that catches up whenever the backend
//!   wakes it (a notification, a reconnection, the periodic check).
//!
//! A single-node backend never has anything to catch up on.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::backend::{Loaded, LoggedChange, LoggedCommit, Since};
use super::error::StoreError;
use super::state::State;
use super::{ChangedEntity, Commit, Store};

/// How often the follower catches up even without a wake-up (a backend's
/// own periodic check normally wakes it sooner).
const FALLBACK_INTERVAL: Duration = Duration::from_secs(30);

impl Store {
    /// Applies the commits other nodes made since the state's revision.
    /// Returns whether anything changed.
    pub fn catch_up(&self) -> Result<bool, StoreError> {
        let _writing = self.lock_writes();
        self.catch_up_locked()
    }

    /// [`Store::catch_up`] with the write lock already held.
    pub(super) fn catch_up_locked(&self) -> Result<bool, StoreError> {
        let revision = self.read_state().revision;
        match self.backend.changes_since(revision)? {
            Since::UpToDate => Ok(false),
            Since::Commits(commits) => {
                for commit in &commits {
                    if let Err(error) = self.apply_remote(commit) {
                        // A row this node cannot apply (it should not
                        // happen): the state may be half changed, so it is
                        // rebuilt from the database as a whole.
                        tracing::error!(%error, revision = commit.revision, "cannot apply a commit of another node; reloading");
                        let loaded = self.backend.load()?;
                        return self.reload(revision, loaded);
                    }
                }
                Ok(!commits.is_empty())
            }
            Since::Reload(loaded) => self.reload(revision, loaded),
        }
    }

    /// Swaps the whole state for `loaded` and announces it.
    fn reload(&self, from: u64, loaded: Loaded) -> Result<bool, StoreError> {
        let next = State::from_rows(loaded.revision, loaded.rows)?;
        tracing::info!(
            from,
            to = next.revision,
            "reloaded the whole configuration from the database"
        );
        let retired = std::mem::replace(&mut *self.write_state(), next);
        drop(retired);
        self.notify_commit(&Commit::Replaced);
        Ok(true)
    }

    /// Applies one commit of another node and announces it.
    fn apply_remote(&self, commit: &LoggedCommit) -> Result<(), StoreError> {
        let applied = self
            .write_state()
            .apply_logged(&commit.changes, commit.revision)?;
        let ids: Vec<String> = applied.iter().map(|change| change.id.to_string()).collect();
        let changed: Vec<ChangedEntity<'_>> = applied
            .iter()
            .zip(&ids)
            .map(|(change, id): (&LoggedChange, &String)| ChangedEntity {
                kind: change.kind,
                id,
                row: change.row.as_deref(),
            })
            .collect();
        tracing::debug!(
            revision = commit.revision,
            rows = changed.len(),
            "applied a commit of another node"
        );
        self.notify_commit(&Commit::Entities(&changed));
        Ok(())
    }

    /// Starts the thread that keeps this store caught up with a shared
    /// database (nothing for a single-node backend). It stops once the
    /// store is dropped.
    pub fn follow(self: &Arc<Self>) {
        let Some(wakeups) = self.backend.subscribe() else {
            return;
        };
        let store = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("config-follower".to_owned())
            .spawn(move || follow_forever(&store, &wakeups));
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the configuration follower");
        }
    }
}

/// Catches up at every wake-up (several pending ones count once).
fn follow_forever(store: &Weak<Store>, wakeups: &std::sync::mpsc::Receiver<()>) {
    loop {
        match wakeups.recv_timeout(FALLBACK_INTERVAL) {
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
        while wakeups.try_recv().is_ok() {}
        let Some(store) = store.upgrade() else {
            return;
        };
        if let Err(error) = store.catch_up() {
            tracing::debug!(%error, "cannot catch up with the database yet");
        }
    }
}
