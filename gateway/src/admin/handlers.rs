//! Endpoint handlers. They are synchronous (a store write waits for the
//! disk or the database) and run on tokio's blocking pool; [`dispatch`]
//! picks one per endpoint.
//!
//! This file has the top-level collections and entities
//! (`/services`, `/services/{id or name}`, ...); nested URLs live in
//! [`super::nested`], informational endpoints in [`super::info`] and
//! `/config` in [`super::config`].

use std::collections::HashMap;

use http::Method;
use schemas::EntityKind;

use super::body::Body;
use super::crud::{create, escape, list_query, page_body, page_text, patch};
use super::input::entity_input;
use super::response::{ApiError, Reply};
use super::routes::Endpoint;
use super::{config, info, nested, tags, ttl, Context};
use crate::store::{EntityKey, Page, Store};

/// A request reduced to what the handlers need.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// The method (HEAD already mapped to GET).
    pub method: Method,
    pub endpoint: Endpoint,
    /// Query arguments, first value of each.
    pub query: HashMap<String, String>,
    pub body: Body,
}

/// Answer one request.
pub fn dispatch(context: &Context, request: ApiRequest) -> Result<Reply, ApiError> {
    let store = context.state.store.as_ref();
    let ApiRequest {
        method,
        endpoint,
        query,
        body,
    } = request;
    let credentials = ttl::answers_credentials(&endpoint);
    let reply = match endpoint {
        Endpoint::Root => info::root(context),
        Endpoint::Status => info::status(context),
        Endpoint::Metrics => Ok(info::metrics(context)),
        Endpoint::PluginsEnabled => Ok(info::plugins_enabled()),
        Endpoint::EntitySchema(name) => info::entity_schema(&name),
        Endpoint::PluginSchema(name) => info::plugin_schema(&name),
        Endpoint::ValidateEntity(name) => info::validate(&name, &body),
        Endpoint::Config => config::handle(store, &method, &query, body),
        Endpoint::Collection(kind) => collection(store, kind, &method, &query, &body),
        Endpoint::Entity(kind, key) => entity(store, kind, &key, &method, &body),
        Endpoint::Nested(relation, key) => {
            nested::collection(store, &relation, &key, &method, &query, &body)
        }
        Endpoint::NestedEntity(relation, parent, child) => {
            nested::entity(store, &relation, &parent, &child, &method, &body)
        }
        Endpoint::Foreign(relation, key) => nested::foreign(store, &relation, &key, &method, &body),
        Endpoint::Tags(tag) => tags::list(store, tag.as_deref(), &query),
        Endpoint::InvalidTag => Err(tags::invalid_tag()),
        Endpoint::Endpoints => Ok(tags::endpoints()),
    }?;
    ttl::present(credentials, &method, reply)
}

/// `GET|POST /{collection}`.
fn collection(
    store: &Store,
    kind: EntityKind,
    method: &Method,
    query: &HashMap<String, String>,
    body: &Body,
) -> Result<Reply, ApiError> {
    match *method {
        Method::GET => list(store, kind, query),
        Method::POST => create(store, kind, body, None),
        _ => Err(ApiError::MethodNotAllowed),
    }
}

fn list(
    store: &Store,
    kind: EntityKind,
    query: &HashMap<String, String>,
) -> Result<Reply, ApiError> {
    if kind == EntityKind::Consumer {
        if let Some(custom_id) = query.get("custom_id") {
            return consumer_by_custom_id(store, custom_id);
        }
    }
    let list_query = list_query(query)?;
    if list_query.tags.is_none() {
        // Nothing to look at inside the entities: the stored rows are the
        // answer's entities as they are.
        let mut page = store.list_rows(kind, &list_query)?;
        if kind == EntityKind::KeyAuthCredential {
            page.rows = ttl::present_rows(page.rows);
        }
        let next = next_link(kind, page.offset.as_deref(), query);
        return Ok(Reply::json_text(page_text(&page, next)));
    }
    let page = store.list(kind, None, &list_query)?;
    let next = next_link(kind, page.offset.as_deref(), query);
    Ok(Reply::ok(page_body(page, next)))
}

/// The `next` link of a page that ends before `offset`.
fn next_link(
    kind: EntityKind,
    offset: Option<&str>,
    query: &HashMap<String, String>,
) -> Option<String> {
    offset.map(|offset| {
        let mut link = format!("/{}?offset={}", kind.admin_path(), escape(offset));
        if let Some(tags) = query.get("tags") {
            link.push_str(&format!("&tags={}", escape(tags)));
        }
        if let Some(size) = query.get("size") {
            link.push_str(&format!("&size={}", escape(size)));
        }
        link
    })
}

/// Kong's `GET /consumers?custom_id=...`: at most one consumer, no paging.
fn consumer_by_custom_id(store: &Store, custom_id: &str) -> Result<Reply, ApiError> {
    if custom_id.is_empty() {
        return Err(ApiError::BadRequest(
            "custom_id must be an unempty string".to_owned(),
        ));
    }
    let found = store.find_unique(EntityKind::Consumer, "custom_id", custom_id)?;
    let page = Page {
        data: found.into_iter().collect(),
        offset: None,
    };
    Ok(Reply::ok(page_body(page, None)))
}

/// `GET|PUT|PATCH|DELETE /{collection}/{id or endpoint key}`.
fn entity(
    store: &Store,
    kind: EntityKind,
    raw_key: &str,
    method: &Method,
    body: &Body,
) -> Result<Reply, ApiError> {
    let key = EntityKey::parse(raw_key);
    match *method {
        Method::GET => store
            .get(kind, &key)?
            .map(Reply::ok)
            .ok_or(ApiError::NotFound),
        Method::PUT => {
            let input = entity_input(store, kind, body, None)?;
            Ok(Reply::ok(store.upsert(kind, &key, input)?))
        }
        Method::PATCH => patch(store, kind, &key, body, None),
        Method::DELETE => {
            store.delete(kind, &key)?;
            Ok(Reply::no_content())
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}
