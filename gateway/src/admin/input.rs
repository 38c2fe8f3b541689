//! Turning a request body into store input: form values typed with the
//! entity's schema, and references given by name resolved to ids.
//!
//! References may be written `{"id": ...}` (kept), `{"name": ...}` /
//! `{"username": ...}` (looked up by the parent's endpoint key) or a plain
//! string (an id if it is a UUID, else an endpoint key). An unknown name is
//! Kong's code 13 "foreign key unresolved".

use schemas::entities::plugin_record;
use schemas::schema::Record;
use schemas::EntityKind;
use serde_json::{json, Value};

use super::body::{infer_types, Body};
use super::response::ApiError;
use super::routes::{reference_fields, Relation};
use crate::store::{EntityKey, Store, StoreError};

/// The store input for `kind` from a request body. `existing` is the
/// entity being patched (a plugin's name types a form body's `config`).
pub fn entity_input(
    store: &Store,
    kind: EntityKind,
    body: &Body,
    existing: Option<&Value>,
) -> Result<Value, ApiError> {
    let mut value = body.value.clone();
    if body.form {
        if let Some(record) = record_for(kind, &value, existing) {
            value = infer_types(value, record);
        }
    }
    resolve_references(store, kind, &mut value)?;
    Ok(value)
}

/// The schema a body of `kind` follows (plugins: by the plugin's name).
pub fn record_for(
    kind: EntityKind,
    value: &Value,
    existing: Option<&Value>,
) -> Option<&'static Record> {
    if kind != EntityKind::Plugin {
        return Some(kind.schema());
    }
    let name_of = |entity: &Value| {
        entity
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let name = name_of(value).or_else(|| existing.and_then(name_of))?;
    plugin_record(&name)
}

/// Point `input`'s reference `field` at `parent` (nested URLs).
pub fn set_reference(input: &mut Value, field: &str, parent: &Value) {
    if let Some(object) = input.as_object_mut() {
        object.insert(field.to_owned(), json!({ "id": parent.get("id") }));
    }
}

/// Replace references by name with references by id.
pub fn resolve_references(
    store: &Store,
    kind: EntityKind,
    value: &mut Value,
) -> Result<(), ApiError> {
    let Some(object) = value.as_object_mut() else {
        return Ok(());
    };
    for relation in reference_fields(kind) {
        let Some(reference) = object.get(relation.field) else {
            continue;
        };
        if let Some(resolved) = resolve_reference(store, &relation, reference)? {
            object.insert(relation.field.to_owned(), resolved);
        }
    }
    Ok(())
}

fn resolve_reference(
    store: &Store,
    relation: &Relation,
    reference: &Value,
) -> Result<Option<Value>, ApiError> {
    let key_field = relation.parent.endpoint_key();
    let wanted = match reference {
        Value::String(text) => match EntityKey::parse(text) {
            EntityKey::Id(id) => return Ok(Some(json!({ "id": id.to_string() }))),
            EntityKey::EndpointKey(name) => name,
        },
        Value::Object(object) if !object.contains_key("id") => {
            match object.get(key_field).and_then(Value::as_str) {
                Some(name) => name.to_owned(),
                None => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    match store.find_unique(relation.parent, key_field, &wanted)? {
        Some(found) => Ok(Some(json!({ "id": found.get("id") }))),
        None => Err(StoreError::ForeignKeyUnresolved {
            field: relation.field.to_owned(),
            key: key_field,
            value: wanted,
            collection: relation.parent.collection(),
        }
        .into()),
    }
}
