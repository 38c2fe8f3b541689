//! `POST /config`: replace the whole stored configuration, all or nothing.
//!
//! 1. Prepare every posted entity (see `prepare`): validate, give id-less
//!    ones an id, compare with the stored version (unchanged ones keep
//!    their timestamps; left-out generated fields — key-auth `key`, session
//!    `secret` — are kept from the stored version), encode.
//! 2. Check the configuration as a whole: duplicate ids, references to
//!    entities it does not contain, unique keys used twice.
//! 3. Write. A small change (at most 10k entities and half of the
//!    configuration) is one commit of the changed rows, like a
//!    single-entity write. Otherwise the backend replaces every row at
//!    once ([`super::EntityBackend::replace`]) and the in-memory state is
//!    rebuilt from the prepared rows.

use std::collections::HashSet;
use std::sync::Mutex;

use schemas::model::unix_now;
use schemas::EntityKind;
use uuid::Uuid;

use super::backend::KindRows;
use super::error::StoreError;
use super::plan::Plan;
use super::posted::PostedConfig;
use super::prepare::{check_config, prepare_config, Fate, PreparedConfig};
use super::read::load;
use super::state::State;
use super::summary::{ChangeSummary, KindChanges};
use super::{Commit, Store};

/// The most changed entities applied as one commit of their rows; bigger
/// replacements replace every row.
const INCREMENTAL_LIMIT: usize = 10_000;

/// Stored entities the posted configuration leaves out.
type Deleted = Vec<(EntityKind, Uuid)>;

/// How a replacement was written (for the log).
#[derive(Debug)]
enum WritePath {
    Unchanged,
    Transaction,
    Replace,
}

impl Store {
    /// Replace the whole configuration with `config`, atomically. On error
    /// nothing changes and the error names the offending entity. `config`
    /// is dropped as soon as it is no longer needed: once prepared when the
    /// write cannot be planned again (a single-node backend), else once the
    /// new rows are written; either way before the commit hook compiles the
    /// snapshot (a posted body is not held through the heaviest steps).
    pub fn replace_all<C: PostedConfig>(&self, config: C) -> Result<ChangeSummary, StoreError> {
        let started = std::time::Instant::now();
        let _writing = self.lock_writes();
        let config = Mutex::new(Some(config));
        self.with_retries(|| self.replace_locked(&config, started))
    }

    /// One attempt of [`Store::replace_all`], under the write lock.
    fn replace_locked<C: PostedConfig>(
        &self,
        config: &Mutex<Option<C>>,
        started: std::time::Instant,
    ) -> Result<ChangeSummary, StoreError> {
        let (prepared, deleted) = {
            let posted = config.lock().unwrap_or_else(|p| p.into_inner());
            // Released only when no attempt can follow (see above).
            let posted = posted.as_ref().ok_or_else(|| StoreError::CorruptRow {
                collection: "config",
                reason: "the configuration was already written".to_owned(),
            })?;
            let state = self.read_state();
            let prepared = prepare_config(&state, posted, unix_now())?;
            check_config(posted, &prepared)?;
            let deleted = deleted_entities(&state, &prepared);
            (prepared, deleted)
        };
        let release = || drop(config.lock().unwrap_or_else(|p| p.into_inner()).take());
        if !self.backend.can_conflict() {
            release();
        }
        let summary = summarize(&prepared, &deleted);
        let entities = prepared.len();
        let path = self.persist(prepared, &deleted, summary.total().changed(), release)?;
        tracing::debug!(
            entities,
            ?path,
            elapsed = ?started.elapsed(),
            "configuration replaced"
        );
        Ok(summary)
    }

    /// Write the changes: nothing, one commit, or a replacement of every
    /// row. `release` is called once they are written, before the commit
    /// hook runs.
    fn persist(
        &self,
        prepared: PreparedConfig,
        deleted: &Deleted,
        changed: usize,
        release: impl FnOnce(),
    ) -> Result<WritePath, StoreError> {
        if changed == 0 {
            return Ok(WritePath::Unchanged);
        }
        if changed <= INCREMENTAL_LIMIT && changed * 2 <= prepared.len() {
            let plan = incremental_plan(&self.read_state(), &prepared, deleted)?;
            drop(prepared);
            self.commit_plan_then(&plan, release)?;
            return Ok(WritePath::Transaction);
        }
        let base = self.read_state().revision;
        let puts = prepared.into_kinds();
        let rows: Vec<KindRows> = puts
            .iter()
            .map(|kind| {
                kind.iter()
                    .map(|entity| (entity.put.id, entity.put.row.clone()))
                    .collect()
            })
            .collect();
        let revision = self.backend.replace(base, &rows)?;
        drop(rows);
        release();
        let next = State::from_puts(
            revision,
            puts.into_iter().flatten().map(|entity| entity.put),
        );
        // The old state is freed after the lock is released.
        let retired = std::mem::replace(&mut *self.write_state(), next);
        drop(retired);
        self.notify_commit(&Commit::Replaced);
        Ok(WritePath::Replace)
    }
}

/// Stored entities whose ids the posted configuration does not have.
fn deleted_entities(state: &State, prepared: &PreparedConfig) -> Deleted {
    let mut deleted = Vec::new();
    for kind in EntityKind::ALL {
        let posted: HashSet<Uuid> = prepared
            .of(kind)
            .iter()
            .map(|entity| entity.put.id)
            .collect();
        let gone = state.ids(kind).filter(|id| !posted.contains(id));
        deleted.extend(gone.map(|id| (kind, *id)));
    }
    deleted
}

/// Count created, updated, unchanged and deleted entities per kind.
fn summarize(prepared: &PreparedConfig, deleted: &Deleted) -> ChangeSummary {
    let mut summary = ChangeSummary::default();
    for kind in EntityKind::ALL {
        let mut changes = KindChanges::default();
        for entity in prepared.of(kind) {
            match entity.fate {
                Fate::Created => changes.created += 1,
                Fate::Updated => changes.updated += 1,
                Fate::Unchanged => changes.unchanged += 1,
            }
        }
        changes.deleted = deleted.iter().filter(|(gone, _)| *gone == kind).count();
        summary.set(kind, changes);
    }
    summary
}

/// The replacement as one commit: removals first (old versions of updated
/// entities, deleted entities), so unique keys may move from a removed
/// entity to a written one; then the new rows.
fn incremental_plan(
    state: &State,
    prepared: &PreparedConfig,
    deleted: &Deleted,
) -> Result<Plan, StoreError> {
    let mut plan = Plan::default();
    let updated = EntityKind::ALL.into_iter().flat_map(|kind| {
        prepared
            .of(kind)
            .iter()
            .filter(|entity| entity.fate == Fate::Updated)
            .map(move |entity| (kind, entity.put.id))
    });
    let removed = updated.chain(deleted.iter().copied());
    for (kind, id) in removed {
        if let Some(old) = load(state, kind, &id)? {
            plan.remove_entity(kind, &old)?;
        }
    }
    for kind in EntityKind::ALL {
        let changed = prepared
            .of(kind)
            .iter()
            .filter(|entity| entity.fate != Fate::Unchanged);
        for entity in changed {
            plan.put(entity.put.clone());
        }
    }
    Ok(plan)
}
