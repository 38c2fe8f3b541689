//! One generation of entity trees: `g<N>.<collection>` per kind, id →
//! canonical JSON. Reading them all, writing a fresh generation in sorted
//! batches, dropping an old one.

use bytes::Bytes;
use schemas::EntityKind;
use sled::{Batch, Db, Tree};
use uuid::Uuid;

use crate::store::backend::KindRows;
use crate::store::error::StoreError;

/// Rows per `sled::Batch` when writing a new generation. The batches need
/// not be atomic (the generation flip is), and small ones let sled reclaim
/// old page versions as it goes: one batch of 100k rows holds them all and
/// costs a gigabyte.
const BATCH_ROWS: usize = 512;

/// Row bytes written between two flushes of a new generation (see
/// [`Generation::write_rows`]). Writing 250k rows (~60 MB), sled still held
/// 205 MB of the new tree's pages at the peak with 2,048-row batches and a
/// flush every 4 MB; with 512 rows and 1 MB, 21 MB, and the write took less
/// time (the gateway's peak during a first sync ~540-610 -> ~440-460 MB,
/// bench/README.md).
const FLUSH_BYTES: usize = 1024 * 1024;

/// The entity trees of one generation, in [`EntityKind::ALL`] order (cheap
/// to clone: sled trees are handles).
#[derive(Clone)]
pub(super) struct Generation {
    pub(super) number: u64,
    trees: Vec<Tree>,
}

impl Generation {
    /// Opens (creating if needed) the trees of generation `number`.
    pub(super) fn open(db: &Db, number: u64) -> Result<Self, StoreError> {
        let trees = tree_names(number)
            .iter()
            .map(|name| db.open_tree(name))
            .collect::<Result<Vec<Tree>, sled::Error>>()
            .map_err(StoreError::database("opening generation trees"))?;
        Ok(Self { number, trees })
    }

    /// Empty trees for generation `number` (leftovers of an unfinished
    /// replace are cleared first).
    pub(super) fn create(db: &Db, number: u64) -> Result<Self, StoreError> {
        for name in tree_names(number) {
            db.drop_tree(name)
                .map_err(StoreError::database("clearing a new generation"))?;
        }
        Self::open(db, number)
    }

    /// The entity trees, in [`EntityKind::ALL`] order.
    pub(super) fn trees(&self) -> &[Tree] {
        &self.trees
    }

    /// Every row of every kind.
    pub(super) fn read_rows(&self) -> Result<[KindRows; EntityKind::ALL.len()], StoreError> {
        let mut rows: [KindRows; EntityKind::ALL.len()] = Default::default();
        for kind in EntityKind::ALL {
            for entry in self.trees[kind.index()].iter() {
                let (id, row) = entry.map_err(StoreError::database("loading entities"))?;
                let id = parse_id(kind, &id)?;
                rows[kind.index()].insert(id, Bytes::copy_from_slice(&row));
            }
        }
        Ok(rows)
    }

    /// Writes `rows` (one map per kind) tree by tree, in id order, in
    /// batches of [`BATCH_ROWS`], on this thread. (Writer threads were
    /// tried: on two cores they gained little and let sled and the
    /// allocator hold hundreds of MB more.)
    ///
    /// Every [`FLUSH_BYTES`] of rows the database is flushed: sled keeps
    /// written pages in memory until its flusher thread has written them,
    /// whatever its cache size, and on a busy machine that thread fell
    /// behind by up to 200 MB during a 250k-entity replace.
    pub(super) fn write_rows(&self, db: &Db, rows: &[KindRows]) -> Result<(), StoreError> {
        let mut unflushed = 0;
        for (tree, kind_rows) in self.trees.iter().zip(rows) {
            let entries: Vec<(&Uuid, &Bytes)> = kind_rows.iter().collect();
            for chunk in entries.chunks(BATCH_ROWS) {
                let mut batch = Batch::default();
                for (id, row) in chunk {
                    batch.insert(id.hyphenated().to_string().as_bytes(), row.as_ref());
                    unflushed += row.len();
                }
                tree.apply_batch(batch)
                    .map_err(StoreError::database("writing a new generation"))?;
                if unflushed >= FLUSH_BYTES {
                    db.flush()
                        .map_err(StoreError::database("writing a new generation"))?;
                    unflushed = 0;
                }
            }
        }
        Ok(())
    }

    /// Drops this generation's trees.
    pub(super) fn drop_trees(&self, db: &Db) -> Result<(), StoreError> {
        for name in tree_names(self.number) {
            db.drop_tree(name)
                .map_err(StoreError::database("dropping the old generation"))?;
        }
        Ok(())
    }
}

/// The entity tree names of generation `number`, in [`EntityKind::ALL`]
/// order.
fn tree_names(number: u64) -> Vec<String> {
    EntityKind::ALL
        .iter()
        .map(|kind| format!("g{number}.{}", kind.collection()))
        .collect()
}

/// The generation a tree name belongs to, if it is a generation tree.
pub(super) fn number_of(tree_name: &[u8]) -> Option<u64> {
    let name = std::str::from_utf8(tree_name).ok()?;
    let (prefix, _) = name.split_once('.')?;
    let digits = prefix.strip_prefix('g')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether a generation tree holds entity rows (older layouts also had
/// `g<N>.unique` and `g<N>.children` index trees).
pub(super) fn is_entity_tree(tree_name: &[u8]) -> bool {
    let Some((_, collection)) = std::str::from_utf8(tree_name)
        .ok()
        .and_then(|name| name.split_once('.'))
    else {
        return false;
    };
    EntityKind::ALL
        .iter()
        .any(|kind| kind.collection() == collection)
}

fn parse_id(kind: EntityKind, raw: &[u8]) -> Result<Uuid, StoreError> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|text| Uuid::parse_str(text).ok())
        .ok_or_else(|| StoreError::CorruptRow {
            collection: kind.collection(),
            reason: format!("row key {:?} is not a UUID", String::from_utf8_lossy(raw)),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_names_round_trip() {
        for name in tree_names(42) {
            assert_eq!(number_of(name.as_bytes()), Some(42));
            assert!(is_entity_tree(name.as_bytes()));
        }
        assert_eq!(number_of(b"sessions"), None);
        assert_eq!(number_of(b"meta"), None);
        assert_eq!(number_of(b"gx.services"), None);
        assert!(!is_entity_tree(b"g3.unique"));
    }
}
