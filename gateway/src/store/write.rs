//! Single-entity writes: insert, upsert (PUT), partial update (PATCH) and
//! delete with cascades.
//!
//! Each write first *plans*: it validates, fills automatic fields, checks
//! references and unique keys against the current generation (safe, since
//! the write lock is held), and lists the row and index changes. The plan
//! is then applied in one sled transaction over the generation's trees and
//! flushed, so bad input never leaves half a change behind.

use schemas::config::reference_of;
use schemas::entities::keyauth_credential;
use schemas::plugins::session;
use schemas::{EntityKind, FieldPath, SchemaViolation};
use serde_json::{Map, Value};
use sled::transaction::{ConflictableTransactionResult, TransactionError, Transactional};
use uuid::Uuid;

use super::error::StoreError;
use super::layout::{self, Generation, Slot};
use super::read::{child_ids, exists, load, resolve, unique_owner};
use super::{now_seconds, ChangedEntity, Commit, EntityKey, Live, Store};

/// One change to one tree.
#[derive(Debug)]
pub(crate) enum Op {
    Put {
        slot: Slot,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Remove {
        slot: Slot,
        key: Vec<u8>,
    },
}

/// The changes of one write, applied together.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    ops: Vec<Op>,
}

impl Plan {
    /// Store `entity` with its unique index entries and parent links.
    pub(crate) fn put_entity(
        &mut self,
        kind: EntityKind,
        entity: &Value,
    ) -> Result<(), StoreError> {
        let id = entity_id(kind, entity)?;
        let unique: Vec<Vec<u8>> = layout::unique_keys(kind, entity)
            .into_iter()
            .map(|unique| unique.key)
            .collect();
        let links = layout::child_link_keys(kind, entity);
        self.put_row(kind, id, encode(kind, entity)?, &unique, &links);
        Ok(())
    }

    /// Store an encoded row with its unique index keys and link keys.
    pub(crate) fn put_row(
        &mut self,
        kind: EntityKind,
        id: &str,
        row: Vec<u8>,
        unique: &[Vec<u8>],
        links: &[Vec<u8>],
    ) {
        self.ops.push(Op::Put {
            slot: Slot::Entity(kind),
            key: id.as_bytes().to_vec(),
            value: row,
        });
        for key in unique {
            self.ops.push(Op::Put {
                slot: Slot::Unique,
                key: key.clone(),
                value: id.as_bytes().to_vec(),
            });
        }
        for link in links {
            self.ops.push(Op::Put {
                slot: Slot::Children,
                key: link.clone(),
                value: Vec::new(),
            });
        }
    }

    /// Remove `entity` with its unique index entries and parent links.
    pub(crate) fn remove_entity(
        &mut self,
        kind: EntityKind,
        entity: &Value,
    ) -> Result<(), StoreError> {
        let id = entity_id(kind, entity)?;
        self.ops.push(Op::Remove {
            slot: Slot::Entity(kind),
            key: id.as_bytes().to_vec(),
        });
        for unique in layout::unique_keys(kind, entity) {
            self.ops.push(Op::Remove {
                slot: Slot::Unique,
                key: unique.key,
            });
        }
        for link in layout::child_link_keys(kind, entity) {
            self.ops.push(Op::Remove {
                slot: Slot::Children,
                key: link,
            });
        }
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations, in the order they apply.
    pub(crate) fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The entity rows this plan puts and removes, in order (for the
    /// commit hook).
    pub(crate) fn changed_entities(&self) -> Vec<ChangedEntity<'_>> {
        self.ops
            .iter()
            .filter_map(|op| match op {
                Op::Put {
                    slot: Slot::Entity(kind),
                    key,
                    value,
                } => Some((*kind, key, Some(value.as_slice()))),
                Op::Remove {
                    slot: Slot::Entity(kind),
                    key,
                } => Some((*kind, key, None)),
                _ => None,
            })
            .filter_map(|(kind, key, row)| {
                let id = std::str::from_utf8(key).ok()?;
                Some(ChangedEntity { kind, id, row })
            })
            .collect()
    }
}

impl Op {
    /// The operation that puts `key` of `slot` back to `previous`.
    fn restoring(slot: Slot, key: Vec<u8>, previous: Option<sled::IVec>) -> Op {
        match previous {
            Some(value) => Op::Put {
                slot,
                key,
                value: value.to_vec(),
            },
            None => Op::Remove { slot, key },
        }
    }
}

/// Serialize a canonical entity for storage.
pub(crate) fn encode(kind: EntityKind, entity: &Value) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(entity).map_err(|error| StoreError::CorruptRow {
        collection: kind.collection(),
        reason: error.to_string(),
    })
}

fn entity_id(kind: EntityKind, entity: &Value) -> Result<&str, StoreError> {
    entity
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| StoreError::CorruptRow {
            collection: kind.collection(),
            reason: "entity without an id".to_owned(),
        })
}

impl Store {
    /// Create an entity (`POST`). A given `id` must be free (code 3).
    pub fn insert(&self, kind: EntityKind, input: Value) -> Result<Value, StoreError> {
        self.write(|live, plan| {
            let now = now_seconds();
            let entity = canonicalize(kind, &input, None, now, now)?;
            let id = entity_id(kind, &entity)?;
            if load(live, kind, id)?.is_some() {
                return Err(StoreError::PrimaryKeyViolation { id: id.to_owned() });
            }
            check_constraints(live, kind, &entity)?;
            plan.put_entity(kind, &entity)?;
            Ok(entity)
        })
    }

    /// Create or fully replace the entity `key` names (`PUT`). Fields the
    /// input leaves out revert to their defaults; `created_at` survives.
    pub fn upsert(
        &self,
        kind: EntityKind,
        key: &EntityKey,
        input: Value,
    ) -> Result<Value, StoreError> {
        self.write(|live, plan| {
            let existing = resolve(live, kind, key)?;
            let mut input = input;
            if let Some(object) = input.as_object_mut() {
                let id = match (key, &existing) {
                    (EntityKey::Id(id), _) => id.to_string(),
                    (EntityKey::EndpointKey(_), Some(found)) => entity_id(kind, found)?.to_owned(),
                    (EntityKey::EndpointKey(_), None) => Uuid::new_v4().to_string(),
                };
                object.insert("id".to_owned(), Value::from(id));
                if let EntityKey::EndpointKey(value) = key {
                    object.insert(kind.endpoint_key().to_owned(), Value::from(value.as_str()));
                }
            }
            let now = now_seconds();
            let created_at = existing.as_ref().and_then(created_at_of).unwrap_or(now);
            let entity = canonicalize(kind, &input, existing.as_ref(), created_at, now)?;
            check_constraints(live, kind, &entity)?;
            if let Some(old) = &existing {
                plan.remove_entity(kind, old)?;
            }
            plan.put_entity(kind, &entity)?;
            Ok(entity)
        })
    }

    /// Merge `patch` into the entity `key` names (`PATCH`): top-level fields
    /// are replaced, `config` is merged key by key, `null` clears.
    pub fn update(
        &self,
        kind: EntityKind,
        key: &EntityKey,
        patch: Value,
    ) -> Result<Value, StoreError> {
        self.write(|live, plan| {
            let existing = resolve(live, kind, key)?.ok_or(StoreError::NotFound)?;
            let merged = merge_patch(kind, &existing, &patch)?;
            let now = now_seconds();
            let created_at = created_at_of(&existing).unwrap_or(now);
            let entity = canonicalize(kind, &merged, Some(&existing), created_at, now)?;
            check_constraints(live, kind, &entity)?;
            plan.remove_entity(kind, &existing)?;
            plan.put_entity(kind, &entity)?;
            Ok(entity)
        })
    }

    /// Delete the entity `key` names and what cascades from it. Returns
    /// whether it existed; deleting a missing entity is not an error.
    pub fn delete(&self, kind: EntityKind, key: &EntityKey) -> Result<bool, StoreError> {
        self.write(|live, plan| {
            let Some(existing) = resolve(live, kind, key)? else {
                return Ok(false);
            };
            plan_delete(live, kind, &existing, plan)?;
            Ok(true)
        })
    }

    /// Run `body` under the write lock, then apply its plan.
    fn write<T>(
        &self,
        body: impl FnOnce(&Live, &mut Plan) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _writing = self.lock_writes();
        let mut plan = Plan::default();
        let outcome = body(&self.read_live(), &mut plan)?;
        if !plan.is_empty() {
            self.apply_plan(&plan)?;
        }
        Ok(outcome)
    }

    /// Commit a plan to the current generation, flush, then mirror it and
    /// run the commit hook. The caller holds the write lock.
    ///
    /// A flush that fails (read-only or full disk) undoes the transaction
    /// before the error is returned, and the mirror (which every read and
    /// the proxy snapshot come from) is never touched: a write that got a
    /// 5xx leaves no trace, neither now nor when sled flushes later.
    pub(crate) fn apply_plan(&self, plan: &Plan) -> Result<(), StoreError> {
        let generation = self.generation();
        let undo = commit(&generation, plan)?;
        if let Err(error) = self.flush() {
            if let Err(undo_error) = commit(&generation, &undo) {
                tracing::error!(error = %undo_error, "could not undo a write that failed to reach the disk");
            }
            return Err(error);
        }
        self.write_live().rows.apply(plan.ops());
        let changed = plan.changed_entities();
        self.notify_commit(&Commit::Entities(&changed));
        Ok(())
    }
}

/// Apply a plan in one transaction over all of a generation's trees, and
/// return the plan that undoes it.
fn commit(generation: &Generation, plan: &Plan) -> Result<Plan, StoreError> {
    let trees = generation.all_trees();
    let result = trees
        .as_slice()
        .transaction(|views| -> ConflictableTransactionResult<Plan, ()> {
            let mut undo = Vec::with_capacity(plan.ops.len());
            for op in &plan.ops {
                let (slot, key, previous) = match op {
                    Op::Put { slot, key, value } => {
                        let previous =
                            views[slot.index()].insert(key.as_slice(), value.as_slice())?;
                        (slot, key, previous)
                    }
                    Op::Remove { slot, key } => {
                        (slot, key, views[slot.index()].remove(key.as_slice())?)
                    }
                };
                undo.push(Op::restoring(*slot, key.clone(), previous));
            }
            undo.reverse();
            Ok(Plan { ops: undo })
        });
    result.map_err(|error| match error {
        TransactionError::Storage(source) => StoreError::Database {
            context: "committing a write",
            source,
        },
        TransactionError::Abort(()) => StoreError::CorruptRow {
            collection: "transaction",
            reason: "aborted".to_owned(),
        },
    })
}

/// Validate raw input and complete the canonical entity: automatic fields
/// (key-auth `key`, session `secret`) and timestamps.
pub(crate) fn canonicalize(
    kind: EntityKind,
    input: &Value,
    previous: Option<&Value>,
    created_at: i64,
    updated_at: i64,
) -> Result<Value, StoreError> {
    let mut entity = kind.validate(input)?;
    ensure_id(&mut entity);
    fill_auto_fields(kind, &mut entity, previous);
    set_timestamps(&mut entity, created_at, updated_at);
    Ok(entity)
}

/// Give a validated entity a new id if it has none, and write a given one
/// in canonical (lowercase, hyphenated) form, the form lookups use.
pub(crate) fn ensure_id(entity: &mut Value) {
    let Some(object) = entity.as_object_mut() else {
        return;
    };
    let given = object
        .get("id")
        .and_then(Value::as_str)
        .and_then(|id| Uuid::parse_str(id).ok());
    let id = given.unwrap_or_else(Uuid::new_v4);
    object.insert("id".to_owned(), Value::from(id.to_string()));
}

/// Fill a missing key-auth `key` or session `secret`: from the previous
/// version of the entity if it had one, else freshly generated.
pub(crate) fn fill_auto_fields(kind: EntityKind, entity: &mut Value, previous: Option<&Value>) {
    match kind {
        EntityKind::KeyAuthCredential => {
            let Some(object) = entity.as_object_mut() else {
                return;
            };
            if object.get("key").is_none_or(Value::is_null) {
                let kept = previous
                    .and_then(|old| old.get("key"))
                    .filter(|key| key.is_string());
                let key = kept
                    .cloned()
                    .unwrap_or_else(|| Value::from(keyauth_credential::generate_key()));
                object.insert("key".to_owned(), key);
            }
        }
        EntityKind::Plugin => fill_session_secret(entity, previous),
        _ => {}
    }
}

fn fill_session_secret(entity: &mut Value, previous: Option<&Value>) {
    if entity.get("name").and_then(Value::as_str) != Some("session") {
        return;
    }
    let kept = previous
        .filter(|old| old.get("name").and_then(Value::as_str) == Some("session"))
        .and_then(|old| old.get("config")?.get("secret"))
        .filter(|secret| secret.is_string())
        .cloned();
    let Some(config) = entity.get_mut("config").and_then(Value::as_object_mut) else {
        return;
    };
    if config.get("secret").is_none_or(Value::is_null) {
        let secret = kept.unwrap_or_else(|| Value::from(session::generate_secret()));
        config.insert("secret".to_owned(), secret);
    }
}

/// Set `created_at` / `updated_at` where the kind has them.
pub(crate) fn set_timestamps(entity: &mut Value, created_at: i64, updated_at: i64) {
    let Some(object) = entity.as_object_mut() else {
        return;
    };
    if object.contains_key("created_at") {
        object.insert("created_at".to_owned(), Value::from(created_at));
    }
    if object.contains_key("updated_at") {
        object.insert("updated_at".to_owned(), Value::from(updated_at));
    }
}

pub(crate) fn created_at_of(entity: &Value) -> Option<i64> {
    entity.get("created_at").and_then(Value::as_i64)
}

/// The fields a service `url` shorthand sets.
const URL_FIELDS: [&str; 4] = ["protocol", "host", "port", "path"];

/// The existing entity with `patch` applied (PATCH semantics).
fn merge_patch(kind: EntityKind, existing: &Value, patch: &Value) -> Result<Value, StoreError> {
    let Some(changes) = patch.as_object() else {
        return Err(SchemaViolation::single(FieldPath::root(), "expected a record").into());
    };
    let mut merged = existing.as_object().cloned().unwrap_or_default();
    if kind == EntityKind::Service && changes.contains_key("url") {
        for field in URL_FIELDS {
            merged.remove(field);
        }
    }
    for (field, value) in changes {
        match (field.as_str(), merged.get_mut(field), value) {
            ("id" | "created_at" | "updated_at", _, _) => {}
            ("config", Some(Value::Object(current)), Value::Object(update)) => {
                merge_config(current, update);
            }
            _ => {
                merged.insert(field.clone(), value.clone());
            }
        }
    }
    Ok(Value::Object(merged))
}

fn merge_config(current: &mut Map<String, Value>, update: &Map<String, Value>) {
    for (key, value) in update {
        current.insert(key.clone(), value.clone());
    }
}

/// References must exist and unique keys must be free (or ours).
pub(crate) fn check_constraints(
    live: &Live,
    kind: EntityKind,
    entity: &Value,
) -> Result<(), StoreError> {
    for link in layout::links_of(kind) {
        let Some(parent_id) = reference_of(entity, link.field) else {
            continue;
        };
        if !exists(live, link.parent, parent_id) {
            return Err(StoreError::ForeignKeyViolation {
                field: link.field.to_owned(),
                id: parent_id.to_owned(),
                collection: link.parent.collection(),
            });
        }
    }
    let own_id = entity_id(kind, entity)?;
    for unique in layout::unique_keys(kind, entity) {
        let owner = unique_owner(&live.generation, &unique.key)?;
        if owner.is_some_and(|owner| owner != own_id) {
            return Err(StoreError::UniqueViolation {
                fields: unique.fields,
            });
        }
    }
    Ok(())
}

/// The kinds removed along with a deleted parent (Kong's `on_delete = cascade`).
fn cascaded_children(kind: EntityKind) -> &'static [EntityKind] {
    match kind {
        EntityKind::Service | EntityKind::Route => &[EntityKind::Plugin],
        EntityKind::Consumer => &[EntityKind::Plugin, EntityKind::KeyAuthCredential],
        EntityKind::Plugin | EntityKind::KeyAuthCredential => &[],
    }
}

/// Plan the removal of `entity` and its cascade. A service that routes
/// still point at is refused, as Kong's `routes.service` restricts.
fn plan_delete(
    live: &Live,
    kind: EntityKind,
    entity: &Value,
    plan: &mut Plan,
) -> Result<(), StoreError> {
    let id = entity_id(kind, entity)?;
    if kind == EntityKind::Service
        && !child_ids(&live.generation, kind, id, EntityKind::Route)?.is_empty()
    {
        return Err(StoreError::ReferencedBy {
            parent: EntityKind::Service.collection(),
            child: EntityKind::Route.collection(),
        });
    }
    for child_kind in cascaded_children(kind) {
        for child_id in child_ids(&live.generation, kind, id, *child_kind)? {
            if let Some(child) = load(live, *child_kind, &child_id)? {
                plan.remove_entity(*child_kind, &child)?;
            }
        }
    }
    plan.remove_entity(kind, entity)
}
