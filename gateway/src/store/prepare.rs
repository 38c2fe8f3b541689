//! The per-entity half of `POST /config`: validate each posted entity,
//! compare it with the stored one, and reduce it to the row (with its
//! index entries) that will be written — then check the configuration as a
//! whole.
//!
//! Entities are prepared one at a time (on several threads for big
//! configurations) and only their encoded rows are kept: a canonical
//! `serde_json::Value` costs several kilobytes, so holding 100k of them (or
//! a decoded copy of the stored configuration) would cost gigabytes.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use schemas::config::id_of;
use schemas::entities::Reference;
use schemas::EntityKind;
use serde_json::Value;

use super::error::{ConfigEntity, StoreError};
use super::keys;
use super::plan::{encode, put_of, RowPut};
use super::posted::PostedConfig;
use super::read::{decode, load_text};
use super::state::State;
use super::write::{created_at_of, ensure_id, fill_auto_fields, set_timestamps};

/// Below this many entities in all, preparation runs on one thread.
const PARALLEL_THRESHOLD: usize = 2048;

/// What happens to a posted entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Created,
    Updated,
    Unchanged,
}

/// A posted entity reduced to what is written and checked.
pub(crate) struct Prepared {
    /// Its row (canonical JSON with timestamps and generated fields) and
    /// index entries.
    pub(crate) put: RowPut,
    /// The entities it references.
    references: Vec<(&'static Reference, String)>,
    pub(crate) fate: Fate,
}

impl Prepared {
    pub(crate) fn id(&self) -> &str {
        &self.put.id_text
    }
}

/// Every posted entity, prepared, per kind in posted order.
pub(crate) struct PreparedConfig {
    kinds: Vec<Vec<Prepared>>,
}

impl PreparedConfig {
    pub(crate) fn of(&self, kind: EntityKind) -> &[Prepared] {
        &self.kinds[kind.index()]
    }

    /// Every prepared entity, kind by kind in [`EntityKind::ALL`] order.
    pub(crate) fn into_kinds(self) -> Vec<Vec<Prepared>> {
        self.kinds
    }

    pub(crate) fn len(&self) -> usize {
        self.kinds.iter().map(Vec::len).sum()
    }
}

/// Prepare every entity of `config` against the stored state. A large
/// configuration is prepared by one worker per core, each taking its share
/// of every kind: the same threads for all kinds, so the rows they keep
/// and the values they parse and drop share their allocator's pages
/// (threads started per kind left hundreds of MB of partly used pages
/// behind them with mimalloc).
pub(crate) fn prepare_config<C: PostedConfig>(
    state: &State,
    config: &C,
    now: i64,
) -> Result<PreparedConfig, StoreError> {
    let total: usize = EntityKind::ALL.iter().map(|kind| config.count(*kind)).sum();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = if total < PARALLEL_THRESHOLD {
        1
    } else {
        threads
    };
    // Per worker, per kind: its share, prepared.
    let shares: Vec<Vec<Result<Vec<Prepared>, StoreError>>> = if workers == 1 {
        vec![prepare_share(state, config, 0, 1, now)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|worker| {
                    scope.spawn(move || prepare_share(state, config, worker, workers, now))
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle.join().unwrap_or_else(|_| {
                        let panicked = || {
                            Err(StoreError::CorruptRow {
                                collection: "config",
                                reason: "a preparation thread panicked".to_owned(),
                            })
                        };
                        EntityKind::ALL.iter().map(|_| panicked()).collect()
                    })
                })
                .collect()
        })
    };
    // In posted order: kind by kind, each kind's shares in turn; the first
    // error in that order is the one reported.
    let mut shares: Vec<_> = shares.into_iter().map(Vec::into_iter).collect();
    let mut kinds = Vec::with_capacity(EntityKind::ALL.len());
    for kind in EntityKind::ALL {
        let mut prepared = Vec::with_capacity(config.count(kind));
        for share in &mut shares {
            if let Some(result) = share.next() {
                prepared.extend(result?);
            }
        }
        kinds.push(prepared);
    }
    Ok(PreparedConfig { kinds })
}

/// Worker `worker` of `workers`: its contiguous share of every kind, kind
/// by kind.
fn prepare_share<C: PostedConfig>(
    state: &State,
    config: &C,
    worker: usize,
    workers: usize,
    now: i64,
) -> Vec<Result<Vec<Prepared>, StoreError>> {
    EntityKind::ALL
        .into_iter()
        .map(|kind| {
            let count = config.count(kind);
            let size = count.div_ceil(workers);
            let start = (worker * size).min(count);
            let end = (start + size).min(count);
            prepare_chunk(state, config, kind, start..end, now)
        })
        .collect()
}

/// The entities of `kind` at `positions`, each parsed (when posted as
/// text), prepared and dropped in turn.
fn prepare_chunk<C: PostedConfig>(
    state: &State,
    config: &C,
    kind: EntityKind,
    positions: std::ops::Range<usize>,
    now: i64,
) -> Result<Vec<Prepared>, StoreError> {
    positions
        .map(|position| {
            let raw = config.entity(kind, position);
            prepare_one(state, kind, &raw, now)
                .map_err(|error| error.in_config(ConfigEntity::of(kind, &raw)))
        })
        .collect()
}

/// Validate one posted entity and settle it against its stored version:
/// unchanged entities keep the stored row; changed ones keep `created_at`
/// and get a new `updated_at`; new ones keep posted timestamps or get now.
fn prepare_one(
    state: &State,
    kind: EntityKind,
    raw: &Value,
    now: i64,
) -> Result<Prepared, StoreError> {
    let mut entity = kind.validate(raw)?;
    ensure_id(&mut entity);
    let id = id_of(&entity).unwrap_or_default().to_owned();
    let previous = load_text(state, kind, &id)?;
    fill_auto_fields(kind, &mut entity, previous.as_ref());
    let fate = match &previous {
        Some(old) if same_ignoring_timestamps(&entity, old) => Fate::Unchanged,
        Some(old) => {
            set_timestamps(&mut entity, created_at_of(old).unwrap_or(now), now);
            Fate::Updated
        }
        None => {
            let created_at = created_at_of(&entity).unwrap_or(now);
            let updated_at = entity
                .get("updated_at")
                .and_then(Value::as_i64)
                .unwrap_or(now);
            set_timestamps(&mut entity, created_at, updated_at);
            Fate::Created
        }
    };
    let stored = uuid::Uuid::parse_str(&id)
        .ok()
        .and_then(|uuid| state.row(kind, &uuid));
    let row = match (fate, stored) {
        (Fate::Unchanged, Some(stored)) => stored.clone(),
        _ => Bytes::from(encode(kind, &entity)?),
    };
    let mut references: Vec<_> = keys::referenced(kind, &entity)
        .map(|(reference, parent)| (reference, parent.to_owned()))
        .collect();
    references.shrink_to_fit();
    Ok(Prepared {
        references,
        put: put_of(kind, &entity, row)?,
        fate,
    })
}

fn same_ignoring_timestamps(new: &Value, old: &Value) -> bool {
    let (Some(new), Some(old)) = (new.as_object(), old.as_object()) else {
        return new == old;
    };
    let is_timestamp = |key: &str| key == "created_at" || key == "updated_at";
    let fields = |object: &serde_json::Map<String, Value>| {
        object.keys().filter(|key| !is_timestamp(key)).count()
    };
    fields(new) == fields(old)
        && new
            .iter()
            .filter(|(key, _)| !is_timestamp(key))
            .all(|(key, value)| old.get(key) == Some(value))
}

/// Whole-configuration rules: unique ids, references to entities the
/// configuration contains, unique keys used once.
pub(crate) fn check_config<C: PostedConfig>(
    raw: &C,
    prepared: &PreparedConfig,
) -> Result<(), StoreError> {
    let mut ids: HashMap<EntityKind, HashSet<&str>> = HashMap::new();
    for kind in EntityKind::ALL {
        let seen = ids.entry(kind).or_default();
        for (position, entity) in prepared.of(kind).iter().enumerate() {
            if !seen.insert(entity.id()) {
                let error = StoreError::PrimaryKeyViolation {
                    id: entity.id().to_owned(),
                };
                return Err(error.in_config(named(raw, kind, position, entity.id())));
            }
        }
    }
    let mut owners: HashMap<&[u8], &str> = HashMap::new();
    for kind in EntityKind::ALL {
        for (position, entity) in prepared.of(kind).iter().enumerate() {
            let located = || named(raw, kind, position, entity.id());
            check_references(&ids, entity).map_err(|error| error.in_config(located()))?;
            for key in &entity.put.unique {
                let previous = owners.insert(key, entity.id());
                if previous.is_some_and(|owner| owner != entity.id()) {
                    return Err(unique_violation(kind, entity, key)?.in_config(located()));
                }
            }
        }
    }
    Ok(())
}

fn check_references(
    ids: &HashMap<EntityKind, HashSet<&str>>,
    entity: &Prepared,
) -> Result<(), StoreError> {
    for (reference, parent_id) in &entity.references {
        let known = ids
            .get(&reference.parent)
            .is_some_and(|set| set.contains(parent_id.as_str()));
        if !known {
            return Err(StoreError::ForeignKeyViolation {
                field: reference.field.to_owned(),
                id: parent_id.clone(),
                collection: reference.parent.collection(),
            });
        }
    }
    Ok(())
}

/// The unique violation for `key`, with Kong's fields (decoded on demand).
fn unique_violation(
    kind: EntityKind,
    entity: &Prepared,
    key: &[u8],
) -> Result<StoreError, StoreError> {
    let decoded = decode(kind, &entity.put.row)?;
    let fields = keys::unique_keys(kind, &decoded)
        .into_iter()
        .find(|unique| unique.key == key)
        .map(|unique| unique.fields)
        .unwrap_or_default();
    Ok(StoreError::UniqueViolation { fields })
}

/// Describe the posted entity at `position`, with the id it was given.
fn named<C: PostedConfig>(raw: &C, kind: EntityKind, position: usize, id: &str) -> ConfigEntity {
    let mut named = ConfigEntity::of(kind, &raw.entity(kind, position));
    named.id = Some(id.to_owned());
    named
}
