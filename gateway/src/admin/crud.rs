//! The entity operations both top-level endpoints (`handlers`) and nested
//! ones (`nested`) are made of: create, patch, find by key, listing
//! arguments and page bodies.

use std::collections::HashMap;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use schemas::EntityKind;
use serde_json::{Map, Value};

use super::body::Body;
use super::input::{entity_input, set_reference};
use super::response::{ApiError, Reply};
use super::routes::Relation;
use crate::store::{EntityKey, ListQuery, Page, RowPage, Store};

/// The `size`, `offset` and `tags` arguments of a listing.
pub fn list_query(query: &HashMap<String, String>) -> Result<ListQuery, ApiError> {
    let argument = |name: &str| query.get(name).map(String::as_str);
    Ok(ListQuery::parse(
        argument("size"),
        argument("offset"),
        argument("tags"),
    )?)
}

/// `{"data": [...], "offset": "...", "next": "..."|null}`.
pub fn page_body(page: Page, next: Option<String>) -> Value {
    let mut body = Map::new();
    body.insert("data".to_owned(), Value::Array(page.data));
    if let Some(offset) = page.offset {
        body.insert("offset".to_owned(), Value::from(offset));
    }
    body.insert("next".to_owned(), next.map_or(Value::Null, Value::from));
    Value::Object(body)
}

/// [`page_body`] written from stored rows: the same text serde_json
/// writes for the parsed page (rows are compact canonical JSON).
pub fn page_text(page: &RowPage, next: Option<String>) -> String {
    let size: usize = page.rows.iter().map(|row| row.len() + 1).sum();
    let mut text = String::with_capacity(size + 128);
    text.push_str("{\"data\":[");
    for (index, row) in page.rows.iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        text.push_str(&String::from_utf8_lossy(row));
    }
    text.push(']');
    if let Some(offset) = &page.offset {
        text.push_str(",\"offset\":");
        text.push_str(&Value::from(offset.as_str()).to_string());
    }
    text.push_str(",\"next\":");
    text.push_str(&next.map_or(Value::Null, Value::from).to_string());
    text.push('}');
    text
}

/// Characters `ngx.escape_uri` leaves alone: letters, digits, `-._~`.
const URI_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-escape a query value or path segment.
pub fn escape(text: &str) -> String {
    utf8_percent_encode(text, URI_UNRESERVED).to_string()
}

/// `POST`: create an entity, with its parent reference when nested.
pub fn create(
    store: &Store,
    kind: EntityKind,
    body: &Body,
    parent: Option<(&Relation, &Value)>,
) -> Result<Reply, ApiError> {
    let mut input = entity_input(store, kind, body, None)?;
    if let Some((relation, parent)) = parent {
        set_reference(&mut input, relation.field, parent);
    }
    Ok(Reply::created(store.insert(kind, input)?))
}

/// `PATCH`: merge the body into the entity `key` names (404 if missing).
/// `default_reference` is set when the body does not name one (nested URLs).
pub fn patch(
    store: &Store,
    kind: EntityKind,
    key: &EntityKey,
    body: &Body,
    default_reference: Option<(&str, &Value)>,
) -> Result<Reply, ApiError> {
    let existing = store.get(kind, key)?.ok_or(ApiError::NotFound)?;
    let mut input = entity_input(store, kind, body, Some(&existing))?;
    if let Some((field, parent)) = default_reference {
        if input.get(field).is_none() {
            set_reference(&mut input, field, parent);
        }
    }
    let id_key = entity_key_of(&existing)?;
    Ok(Reply::ok(store.update(kind, &id_key, input)?))
}

/// The id key of a stored entity.
pub fn entity_key_of(entity: &Value) -> Result<EntityKey, ApiError> {
    entity
        .get("id")
        .and_then(Value::as_str)
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .map(EntityKey::Id)
        .ok_or_else(|| ApiError::Internal("stored entity without a valid id".to_owned()))
}

/// The entity `raw_key` names, or 404.
pub fn find(store: &Store, kind: EntityKind, raw_key: &str) -> Result<Value, ApiError> {
    store
        .get(kind, &EntityKey::parse(raw_key))?
        .ok_or(ApiError::NotFound)
}
