//! `GET /tags`, `GET /tags/{tag}` and `GET /endpoints`, as Kong's
//! `kong/api/routes/tags.lua` and `kong.lua` answer them.
//!
//! - A tag row is `{"entity_name", "entity_id", "tag"}`, one per tag of
//!   each entity; rows are paged (`size`, `offset`, `next`) in the order
//!   (tag, entity kind, id). `?tags=` is ignored (14-tags_spec.lua "/tags
//!   ignores ?tags= query"); a tag that is not UTF-8 is 400 (`invalid
//!   utf-8`).
//! - `/endpoints`: every path the Admin API serves, keys as `{collection}`,
//!   sorted segment by segment (`/` before any other character), as Kong's.

use std::collections::HashMap;

use schemas::EntityKind;
use serde_json::{json, Value};

use super::crud::escape;
use super::response::{ApiError, Reply};
use super::routes::{reference_fields, relations};
use crate::store::query::encode_offset;
use crate::store::{ListQuery, Store};

/// Separates the parts of a row's sort key inside an offset.
const KEY_SEPARATOR: char = '\u{1}';

/// `GET /tags` (`tag: None`) or `GET /tags/{tag}`.
pub fn list(
    store: &Store,
    tag: Option<&str>,
    query: &HashMap<String, String>,
) -> Result<Reply, ApiError> {
    let argument = |name: &str| query.get(name).map(String::as_str);
    let page = ListQuery::parse(argument("size"), argument("offset"), None)?;
    let config = store.export()?;
    let mut rows: Vec<(String, Value)> = Vec::new();
    for kind in EntityKind::ALL {
        for entity in config.entities(kind) {
            let id = entity.get("id").and_then(Value::as_str).unwrap_or_default();
            let tags = entity.get("tags").and_then(Value::as_array);
            for carried in tags.into_iter().flatten().filter_map(Value::as_str) {
                if tag.is_some_and(|wanted| wanted != carried) {
                    continue;
                }
                let key = [carried, kind.collection(), id].join(&KEY_SEPARATOR.to_string());
                let row =
                    json!({"entity_name": kind.collection(), "entity_id": id, "tag": carried});
                rows.push((key, row));
            }
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let start = match &page.after {
        Some(after) => rows.partition_point(|(key, _)| key <= after),
        None => 0,
    };
    let remaining = &rows[start..];
    let taken = &remaining[..remaining.len().min(page.size)];
    let offset = (remaining.len() > taken.len())
        .then(|| taken.last().map(|(key, _)| encode_offset(key)))
        .flatten();
    let next = offset.as_ref().map_or(Value::Null, |offset| {
        let base = match tag {
            Some(tag) => format!("/tags/{}", escape(tag)),
            None => "/tags".to_owned(),
        };
        Value::from(format!("{base}?offset={}", escape(offset)))
    });
    let data: Vec<Value> = taken.iter().map(|(_, row)| row.clone()).collect();
    let mut body = json!({"data": data, "next": next});
    if let (Some(object), Some(offset)) = (body.as_object_mut(), offset) {
        object.insert("offset".to_owned(), Value::from(offset));
    }
    Ok(Reply::ok(body))
}

/// Kong's answer to `/tags/{tag}` when the tag is not UTF-8.
pub fn invalid_tag() -> ApiError {
    ApiError::BadRequest("invalid tag: invalid utf-8".to_owned())
}

/// `GET /endpoints`.
pub fn endpoints() -> Reply {
    let mut paths: Vec<String> = [
        "/",
        "/config",
        "/endpoints",
        "/plugins/enabled",
        "/schemas/{db_entity_name}",
        "/schemas/{db_entity_name}/validate",
        "/schemas/plugins/{name}",
        "/schemas/plugins/validate",
        "/status",
        "/tags",
        "/tags/{tags}",
    ]
    .iter()
    .map(|path| (*path).to_owned())
    .collect();
    for kind in EntityKind::ALL {
        let base = format!("/{}", kind.admin_path());
        paths.push(base.clone());
        paths.push(format!("{base}/{{{}}}", kind.collection()));
        for relation in reference_fields(kind) {
            paths.push(format!(
                "{base}/{{{}}}/{}",
                kind.collection(),
                relation.field
            ));
        }
    }
    for relation in relations() {
        let parent = format!(
            "/{}/{{{}}}/{}",
            relation.parent.admin_path(),
            relation.parent.collection(),
            relation.segment
        );
        paths.push(format!("{parent}/{{{}}}", relation.child.collection()));
        paths.push(parent);
    }
    paths.sort_by_key(|path| path.replace('/', "\u{0}"));
    paths.dedup();
    Reply::ok(json!({ "data": paths }))
}
