//! Single-entity writes: insert, upsert (PUT), partial update (PATCH) and
//! delete with cascades.
//!
//! Each write first *plans*: it validates, fills generated fields, checks
//! references and unique keys against the in-memory state (safe, since the
//! write lock is held), and lists the row changes. The backend then
//! commits the plan in one transaction, so bad input never leaves half a
//! change behind.

use schemas::entities::{Generated, OnDelete};
use schemas::model::unix_now;
use schemas::{EntityKind, FieldPath, SchemaViolation};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::StoreError;
use super::keys;
use super::plan::{entity_id, Plan};
use super::read::{exists, load, resolve};
use super::state::State;
use super::{EntityKey, Store};

impl Store {
    /// Create an entity (`POST`). A given `id` must be free (code 3).
    pub fn insert(&self, kind: EntityKind, input: Value) -> Result<Value, StoreError> {
        self.write(|state, plan| {
            let now = unix_now();
            let entity = canonicalize(kind, &input, None, now, now)?;
            let (id, id_text) = entity_id(kind, &entity)?;
            if load(state, kind, &id)?.is_some() {
                return Err(StoreError::PrimaryKeyViolation { id: id_text });
            }
            check_constraints(state, kind, &entity)?;
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
        self.write(|state, plan| {
            let existing = resolve(state, kind, key)?;
            let mut input = input.clone();
            if let Some(object) = input.as_object_mut() {
                let id = match (key, &existing) {
                    (EntityKey::Id(id), _) => id.to_string(),
                    (EntityKey::EndpointKey(_), Some(found)) => entity_id(kind, found)?.1,
                    (EntityKey::EndpointKey(_), None) => Uuid::new_v4().to_string(),
                };
                object.insert("id".to_owned(), Value::from(id));
                if let EntityKey::EndpointKey(value) = key {
                    object.insert(kind.endpoint_key().to_owned(), Value::from(value.as_str()));
                }
            }
            let now = unix_now();
            let created_at = existing.as_ref().and_then(created_at_of).unwrap_or(now);
            let entity = canonicalize(kind, &input, existing.as_ref(), created_at, now)?;
            check_constraints(state, kind, &entity)?;
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
        self.write(|state, plan| {
            let existing = resolve(state, kind, key)?.ok_or(StoreError::NotFound)?;
            let merged = merge_patch(kind, &existing, &patch)?;
            let now = unix_now();
            let created_at = created_at_of(&existing).unwrap_or(now);
            let entity = canonicalize(kind, &merged, Some(&existing), created_at, now)?;
            check_constraints(state, kind, &entity)?;
            plan.remove_entity(kind, &existing)?;
            plan.put_entity(kind, &entity)?;
            Ok(entity)
        })
    }

    /// Delete the entity `key` names and what cascades from it. Returns
    /// whether it existed; deleting a missing entity is not an error.
    pub fn delete(&self, kind: EntityKind, key: &EntityKey) -> Result<bool, StoreError> {
        self.write(|state, plan| {
            let Some(existing) = resolve(state, kind, key)? else {
                return Ok(false);
            };
            plan_delete(state, kind, &existing, plan)?;
            Ok(true)
        })
    }

    /// Run `body` under the write lock, then commit its plan; plan again
    /// (so `body` may run more than once) when another node committed
    /// first.
    fn write<T>(
        &self,
        body: impl Fn(&State, &mut Plan) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _writing = self.lock_writes();
        self.with_retries(|| {
            let mut plan = Plan::default();
            let outcome = body(&self.read_state(), &mut plan)?;
            if !plan.is_empty() {
                self.commit_plan(&plan)?;
            }
            Ok(outcome)
        })
    }
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

/// Fill the generated fields the input left out (a key-auth `key`, a
/// session plugin's `config.secret`): from the previous version of the
/// entity if it had one, else freshly made. Which fields are generated is
/// declared by the kind's descriptor and, for plugins, the plugin's schema.
pub(crate) fn fill_auto_fields(kind: EntityKind, entity: &mut Value, previous: Option<&Value>) {
    fill_generated(entity, kind.descriptor().generated, previous);
    if kind == EntityKind::Plugin {
        fill_plugin_config(entity, previous);
    }
}

fn fill_plugin_config(entity: &mut Value, previous: Option<&Value>) {
    let Some(plugin) = entity
        .get("name")
        .and_then(Value::as_str)
        .and_then(schemas::plugins::lookup)
    else {
        return;
    };
    if plugin.generated.is_empty() {
        return;
    }
    // Only the same plugin's previous config can lend its values.
    let previous_config = previous
        .filter(|old| old.get("name").and_then(Value::as_str) == Some(plugin.name))
        .and_then(|old| old.get("config"));
    if let Some(config) = entity.get_mut("config") {
        fill_generated(config, plugin.generated, previous_config);
    }
}

/// Fill each of `generated` that `record` lacks (absent or null) from
/// `previous`, or make a fresh value.
fn fill_generated(record: &mut Value, generated: &[Generated], previous: Option<&Value>) {
    let Some(object) = record.as_object_mut() else {
        return;
    };
    for field in generated {
        if !object.get(field.field).is_none_or(Value::is_null) {
            continue;
        }
        let kept = previous
            .and_then(|old| old.get(field.field))
            .filter(|value| value.is_string())
            .cloned();
        let value = kept.unwrap_or_else(|| Value::from((field.make)()));
        object.insert(field.field.to_owned(), value);
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
    state: &State,
    kind: EntityKind,
    entity: &Value,
) -> Result<(), StoreError> {
    for (reference, parent_id) in keys::referenced(kind, entity) {
        if !exists(state, reference.parent, parent_id) {
            return Err(StoreError::ForeignKeyViolation {
                field: reference.field.to_owned(),
                id: parent_id.to_owned(),
                collection: reference.parent.collection(),
            });
        }
    }
    let (own_id, _) = entity_id(kind, entity)?;
    for unique in keys::unique_keys(kind, entity) {
        let owner = state.unique_owner(&unique.key);
        if owner.is_some_and(|owner| owner != own_id) {
            return Err(StoreError::UniqueViolation {
                fields: unique.fields,
            });
        }
    }
    Ok(())
}

/// Plan the removal of `entity` and what cascades from it (Kong's
/// `on_delete`): children whose reference cascades go with it, recursively;
/// a child whose reference restricts (a route of a service) refuses the
/// delete.
fn plan_delete(
    state: &State,
    kind: EntityKind,
    entity: &Value,
    plan: &mut Plan,
) -> Result<(), StoreError> {
    let (id, _) = entity_id(kind, entity)?;
    for (child_kind, reference) in schemas::entities::descriptor::references_to(kind) {
        // A kind references a parent kind through one field at most (a
        // descriptor test holds this), so the children index says which.
        for child_id in state.children(kind, id, child_kind) {
            let Some(child) = load(state, child_kind, &child_id)? else {
                continue;
            };
            match reference.on_delete {
                OnDelete::Restrict => {
                    return Err(StoreError::ReferencedBy {
                        parent: kind.collection(),
                        child: child_kind.collection(),
                    })
                }
                OnDelete::Cascade => plan_delete(state, child_kind, &child, plan)?,
            }
        }
    }
    plan.remove_entity(kind, entity)
}
