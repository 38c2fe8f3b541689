//! Nested URLs, as Kong's `endpoints.lua` generates them from references:
//!
//! - `/services/{s}/routes`: the children of a parent (list, create with
//!   the parent reference filled in);
//! - `/services/{s}/routes/{r}`: one child, 404 unless it belongs to the
//!   parent;
//! - `/routes/{r}/service`: the entity a reference points at (`PUT` creates
//!   and attaches one if the reference is empty, `DELETE` is refused).

use std::collections::HashMap;

use http::Method;
use schemas::config::reference_of;
use serde_json::{json, Value};
use uuid::Uuid;

use super::body::Body;
use super::crud::{self, entity_key_of, escape, find, list_query, page_body};
use super::input::{entity_input, set_reference};
use super::response::{ApiError, Reply};
use super::routes::Relation;
use crate::store::{EntityKey, Store};

/// `GET|POST /{parents}/{p}/{children}`.
pub fn collection(
    store: &Store,
    relation: &Relation,
    parent_key: &str,
    method: &Method,
    query: &HashMap<String, String>,
    body: &Body,
) -> Result<Reply, ApiError> {
    let parent = find(store, relation.parent, parent_key)?;
    match *method {
        Method::GET => {
            // Kong ignores `tags` on nested collections (14-tags_spec.lua,
            // "ignores tags when filtering by multiple filters #6779").
            let mut query = query.clone();
            query.remove("tags");
            let query = list_query(&query)?;
            let parent_id = parent_uuid(&parent)?;
            let page = store.list(relation.child, Some((relation.parent, parent_id)), &query)?;
            let next = page.offset.as_deref().map(|offset| {
                format!(
                    "/{}/{}/{}?offset={}",
                    relation.parent.admin_path(),
                    escape(parent_key),
                    relation.segment,
                    escape(offset)
                )
            });
            Ok(Reply::ok(page_body(page, next)))
        }
        Method::POST => crud::create(store, relation.child, body, Some((relation, &parent))),
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// `GET|PUT|PATCH|DELETE /{parents}/{p}/{children}/{c}`.
pub fn entity(
    store: &Store,
    relation: &Relation,
    parent_key: &str,
    child_key: &str,
    method: &Method,
    body: &Body,
) -> Result<Reply, ApiError> {
    let parent = find(store, relation.parent, parent_key)?;
    let key = EntityKey::parse(child_key);
    match *method {
        Method::GET => owned_child(store, relation, &parent, &key).map(Reply::ok),
        Method::PUT => {
            let mut input = entity_input(store, relation.child, body, None)?;
            set_reference(&mut input, relation.field, &parent);
            Ok(Reply::ok(store.upsert(relation.child, &key, input)?))
        }
        Method::PATCH => {
            let child = owned_child(store, relation, &parent, &key)?;
            let child_key = entity_key_of(&child)?;
            crud::patch(
                store,
                relation.child,
                &child_key,
                body,
                Some((relation.field, &parent)),
            )
        }
        Method::DELETE => {
            let child = owned_child(store, relation, &parent, &key)?;
            store.delete(relation.child, &entity_key_of(&child)?)?;
            Ok(Reply::no_content())
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// The child `key` names, if its reference points at `parent`.
fn owned_child(
    store: &Store,
    relation: &Relation,
    parent: &Value,
    key: &EntityKey,
) -> Result<Value, ApiError> {
    let child = store.get(relation.child, key)?.ok_or(ApiError::NotFound)?;
    let parent_id = parent.get("id").and_then(Value::as_str);
    if parent_id.is_none() || reference_of(&child, relation.field) != parent_id {
        return Err(ApiError::NotFound);
    }
    Ok(child)
}

/// `GET|PUT|PATCH|DELETE /{children}/{c}/{field}`.
pub fn foreign(
    store: &Store,
    relation: &Relation,
    child_key: &str,
    method: &Method,
    body: &Body,
) -> Result<Reply, ApiError> {
    let child = find(store, relation.child, child_key)?;
    let target = reference_of(&child, relation.field)
        .and_then(|id| Uuid::parse_str(id).ok())
        .map(EntityKey::Id);
    match (method.clone(), target) {
        (Method::GET, Some(target)) => store
            .get(relation.parent, &target)?
            .map(Reply::ok)
            .ok_or(ApiError::NotFound),
        (Method::PUT, Some(target)) => {
            let input = entity_input(store, relation.parent, body, None)?;
            Ok(Reply::ok(store.upsert(relation.parent, &target, input)?))
        }
        (Method::PUT, None) => attach_new_parent(store, relation, &child, body),
        (Method::PATCH, Some(target)) => crud::patch(store, relation.parent, &target, body, None),
        (Method::DELETE, Some(_)) => Err(ApiError::MethodNotAllowed),
        (Method::GET | Method::PATCH | Method::DELETE, None) => Err(ApiError::NotFound),
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// `PUT /routes/{r}/service` on a route without a service: create one and
/// point the route at it.
fn attach_new_parent(
    store: &Store,
    relation: &Relation,
    child: &Value,
    body: &Body,
) -> Result<Reply, ApiError> {
    let input = entity_input(store, relation.parent, body, None)?;
    let parent = store.upsert(relation.parent, &EntityKey::Id(Uuid::new_v4()), input)?;
    let link = json!({ relation.field: { "id": parent.get("id") } });
    store.update(relation.child, &entity_key_of(child)?, link)?;
    Ok(Reply::ok(parent))
}

fn parent_uuid(parent: &Value) -> Result<Uuid, ApiError> {
    match entity_key_of(parent)? {
        EntityKey::Id(id) => Ok(id),
        EntityKey::EndpointKey(_) => {
            Err(ApiError::Internal("stored entity without an id".to_owned()))
        }
    }
}
