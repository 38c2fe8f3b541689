//! `POST /config`: replace the whole stored configuration, all or nothing.
//!
//! 1. Prepare every posted entity (see `prepare`): validate, give id-less
//!    ones an id, compare with the stored version (unchanged ones keep
//!    their timestamps; left-out automatic fields — key-auth `key`, session
//!    `secret` — are kept from the stored version), encode.
//! 2. Check the configuration as a whole: duplicate ids, references to
//!    entities it does not contain, unique keys used twice.
//! 3. Write. A small change (at most 10k entities and half of the
//!    configuration) is one transaction on the current generation, like a
//!    single-entity write. Otherwise the whole configuration goes into a new
//!    generation of trees, written tree by tree in sorted batches of 2048
//!    rows, flushed; then `current_generation` flips and the old trees
//!    are dropped. A crash before the flip leaves the old generation
//!    current; the leftovers are dropped at the next open.

use std::collections::HashSet;

use schemas::config::Config;
use schemas::EntityKind;
use sled::{Batch, IVec};

use super::error::StoreError;
use super::layout::{self, Generation, Slot, CURRENT_GENERATION_KEY};
use super::mirror::Mirror;
use super::prepare::{check_config, prepare_config, Fate, PreparedConfig};
use super::read::load;
use super::summary::{ChangeSummary, KindChanges};
use super::write::Plan;
use super::{now_seconds, Commit, Live, Store};

/// Rows per `sled::Batch` when writing a new generation.
const BATCH_ROWS: usize = 2048;

/// The most changed entities applied as one transaction on the current
/// generation; bigger replacements write a new generation.
const INCREMENTAL_LIMIT: usize = 10_000;

/// Stored entities the posted configuration leaves out.
type Deleted = Vec<(EntityKind, String)>;

/// How a replacement was written (for the log).
#[derive(Debug)]
enum WritePath {
    Unchanged,
    Transaction,
    NewGeneration,
}

impl Store {
    /// Replace the whole configuration with `config`, atomically. On error
    /// nothing changes and the error names the offending entity.
    pub fn replace_all(&self, config: &Config) -> Result<ChangeSummary, StoreError> {
        let started = std::time::Instant::now();
        let _writing = self.lock_writes();
        let (prepared, deleted) = {
            let live = self.read_live();
            let prepared = prepare_config(&live, config, now_seconds())?;
            check_config(config, &prepared)?;
            let deleted = deleted_entities(&live, &prepared);
            (prepared, deleted)
        };
        let summary = summarize(&prepared, &deleted);
        let path = self.persist(&prepared, &deleted, summary.total().changed())?;
        tracing::debug!(
            entities = prepared.len(),
            ?path,
            elapsed = ?started.elapsed(),
            "configuration replaced"
        );
        Ok(summary)
    }

    /// Write the changes: nothing, one transaction, or a new generation.
    fn persist(
        &self,
        prepared: &PreparedConfig,
        deleted: &Deleted,
        changed: usize,
    ) -> Result<WritePath, StoreError> {
        if changed == 0 {
            return Ok(WritePath::Unchanged);
        }
        if changed <= INCREMENTAL_LIMIT && changed * 2 <= prepared.len() {
            let plan = incremental_plan(&self.read_live(), prepared, deleted)?;
            self.apply_plan(&plan)?;
            return Ok(WritePath::Transaction);
        }
        let number = self.generation().number + 1;
        let (next, rows) = self.write_generation(number, prepared)?;
        self.flip_to(next, rows)?;
        self.notify_commit(&Commit::Replaced);
        Ok(WritePath::NewGeneration)
    }

    /// Write `prepared` into fresh trees of generation `number`, flushed,
    /// and return them with their rows.
    fn write_generation(
        &self,
        number: u64,
        prepared: &PreparedConfig,
    ) -> Result<(Generation, Mirror), StoreError> {
        for name in layout::tree_names(number) {
            self.db
                .drop_tree(name)
                .map_err(StoreError::database("clearing a new generation"))?;
        }
        let next = Generation::open(&self.db, number)?;
        let mut rows = Mirror::default();
        let mut pending: Vec<TreeRows> = next.all_trees().iter().map(|_| Vec::new()).collect();
        for kind in EntityKind::ALL {
            for entity in prepared.of(kind) {
                let id = IVec::from(entity.id.as_str());
                pending[Slot::Entity(kind).index()].push((id.clone(), entity.row.clone()));
                rows.insert(kind, entity.id.clone(), entity.row.clone());
                for key in &entity.unique {
                    pending[Slot::Unique.index()].push((IVec::from(key.as_slice()), id.clone()));
                }
                for link in &entity.links {
                    pending[Slot::Children.index()]
                        .push((IVec::from(link.as_slice()), IVec::default()));
                }
            }
        }
        write_trees(&next, pending)?;
        self.flush()?;
        Ok((next, rows))
    }

    /// Make `next` current (durably, then for readers) and drop the old
    /// generation's trees. No reader can still be using them: reads hold
    /// the read lock, and the swap takes the write lock.
    fn flip_to(&self, next: Generation, rows: Mirror) -> Result<(), StoreError> {
        let previous = self
            .meta
            .insert(CURRENT_GENERATION_KEY, &next.number.to_be_bytes())
            .map_err(StoreError::database("switching generations"))?;
        if let Err(error) = self.flush() {
            // Not durable: point back at the old generation, so that the
            // flip does not reach the disk later with a following flush.
            if let Some(previous) = previous {
                let _ = self.meta.insert(CURRENT_GENERATION_KEY, previous);
            }
            return Err(error);
        }
        let retired = {
            let mut live = self.write_live();
            std::mem::replace(
                &mut *live,
                Live {
                    generation: next,
                    rows,
                },
            )
        };
        for name in layout::tree_names(retired.generation.number) {
            self.db
                .drop_tree(name)
                .map_err(StoreError::database("dropping the old generation"))?;
        }
        Ok(())
    }
}

/// Stored entities whose ids the posted configuration does not have.
fn deleted_entities(live: &Live, prepared: &PreparedConfig) -> Deleted {
    let mut deleted = Vec::new();
    for kind in EntityKind::ALL {
        let posted: HashSet<&str> = prepared
            .of(kind)
            .iter()
            .map(|entity| entity.id.as_str())
            .collect();
        let gone = live
            .rows
            .ids(kind)
            .filter(|id| !posted.contains(id.as_str()));
        deleted.extend(gone.map(|id| (kind, id.clone())));
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

/// The replacement as one transaction: removals first (old versions of
/// updated entities, deleted entities), so unique keys may move from a
/// removed entity to a written one; then the new rows.
fn incremental_plan(
    live: &Live,
    prepared: &PreparedConfig,
    deleted: &Deleted,
) -> Result<Plan, StoreError> {
    let mut plan = Plan::default();
    let updated = EntityKind::ALL.into_iter().flat_map(|kind| {
        prepared
            .of(kind)
            .iter()
            .filter(|entity| entity.fate == Fate::Updated)
            .map(move |entity| (kind, entity.id.as_str()))
    });
    let removed = updated.chain(deleted.iter().map(|(kind, id)| (*kind, id.as_str())));
    for (kind, id) in removed {
        if let Some(old) = load(live, kind, id)? {
            plan.remove_entity(kind, &old)?;
        }
    }
    for kind in EntityKind::ALL {
        for entity in prepared
            .of(kind)
            .iter()
            .filter(|entity| entity.fate != Fate::Unchanged)
        {
            plan.put_row(
                kind,
                &entity.id,
                entity.row.to_vec(),
                &entity.unique,
                &entity.links,
            );
        }
    }
    Ok(plan)
}

/// Key/value pairs bound for one tree.
type TreeRows = Vec<(IVec, IVec)>;

/// Write every tree's rows, on this thread.
/// Writer threads were tried: on two cores they gained little and let sled
/// and the allocator hold hundreds of MB more.
fn write_trees(generation: &Generation, pending: Vec<TreeRows>) -> Result<(), StoreError> {
    for (tree, rows) in generation.all_trees().into_iter().zip(pending) {
        write_rows(tree, rows).map_err(StoreError::database("writing a new generation"))?;
    }
    Ok(())
}

/// Write rows in key order, in batches of [`BATCH_ROWS`]. The batches need
/// not be atomic (the generation flip is), and small ones let sled reclaim
/// old page versions as it goes: one batch of 100k rows holds them all and
/// costs a gigabyte.
fn write_rows(tree: &sled::Tree, mut rows: TreeRows) -> sled::Result<()> {
    rows.sort_unstable_by(|left, right| left.0.cmp(&right.0));
    for chunk in rows.chunks(BATCH_ROWS) {
        let mut batch = Batch::default();
        for (key, value) in chunk {
            batch.insert(key.clone(), value.clone());
        }
        tree.apply_batch(batch)?;
    }
    Ok(())
}
