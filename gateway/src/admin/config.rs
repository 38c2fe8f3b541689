//! `GET /config` and `POST /config`: the whole configuration at once.
//!
//! Kong's declarative form (a body with `_format_version`, or the file as
//! a string under `config`, or a YAML body) and Kong's `GET /config`
//! export are in `declarative.rs`; `GET /config?format=flat` and a JSON
//! body without `_format_version` are gwctl's flat form, below.
//!
//! The flat body is JSON with one array per kind (`services`, `routes`,
//! `consumers`, `plugins`, `keyauth_credentials`), every entity with an id
//! and references as `{"id": ...}`: what `gwctl sync` sends. Keys starting
//! with `_` (`_format_version`, ...) are ignored; other keys are refused so
//! a typo never silently drops a part of the configuration.
//!
//! A JSON body is never held as one parsed tree in the flat form: its top
//! level is read into raw JSON slices of the body ([`RawConfig`]), and the
//! store parses, validates and encodes one entity at a time. The body is
//! checked whole first, so a malformed one is refused as before (`Cannot
//! parse JSON body`) and nothing is prepared. A JSON body whose top level
//! has `_format_version` or `config` is Kong's form and is parsed whole
//! for `declarative.rs`.

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;
use http::Method;
use schemas::EntityKind;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::json;
use serde_json::value::RawValue;

use super::body::{self, Body};
use super::declarative;
use super::response::{ApiError, Reply};
use crate::store::{RawConfig, Store};

/// Answer `/config`.
pub fn handle(
    store: &Store,
    method: &Method,
    query: &HashMap<String, String>,
    body: Body,
) -> Result<Reply, ApiError> {
    match *method {
        Method::GET if query.get("format").map(String::as_str) != Some("flat") => {
            declarative::export(store)
        }
        Method::GET => {
            let config = serde_json::to_value(store.export()?).map_err(|error| {
                ApiError::Internal(format!("encoding the configuration: {error}"))
            })?;
            Ok(Reply::ok(json!({ "config": config })))
        }
        Method::POST => post(store, query, body),
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// `POST /config`: Kong's declarative form or gwctl's flat one.
fn post(store: &Store, query: &HashMap<String, String>, body: Body) -> Result<Reply, ApiError> {
    if body.raw.is_empty() {
        // Not JSON: a form, the file itself (`{"config": text}`) or nothing.
        if declarative::is_kong_form(&body) {
            return declarative::post(store, body, query);
        }
        return Err(refused(&body));
    }
    // The same bytes (a shared buffer), so the slices found in `text` are
    // slices of the configuration's body.
    let text = body.raw.clone();
    let members = top_level(&text)?;
    if members
        .iter()
        .any(|(key, _)| key == "_format_version" || key == "config")
    {
        drop(members);
        let parsed = body::parse(Some("application/json"), &text)?;
        drop((text, body));
        return declarative::post(store, parsed, query);
    }
    let config = flat_config(body.raw, members)?;
    // The configuration now holds the only handle on the body, so the
    // store releases it once the rows are written (before the snapshot is
    // compiled): a second handle kept here held 60 MB through the commit
    // hook at 250k entities (heaptrack, bench/README.md).
    drop(text);
    let summary = store.replace_all(config)?;
    Ok(Reply::created(summary.to_json()))
}

/// Why a body that is neither JSON nor Kong's form is refused.
fn refused(body: &Body) -> ApiError {
    if body.form {
        ApiError::UnsupportedMediaType
    } else if !body.present {
        ApiError::BadRequest("expected a declarative configuration".to_owned())
    } else {
        ApiError::BadJson
    }
}

/// The flat configuration a JSON `POST /config` body holds: the body,
/// with the place of each entity in it.
#[cfg(test)]
fn posted_config(body: Body) -> Result<RawConfig, ApiError> {
    if body.raw.is_empty() {
        return Err(refused(&body));
    }
    let text = body.raw.clone();
    let members = top_level(&text)?;
    flat_config(body.raw, members)
}

/// The flat configuration of the body `raw`, whose top-level `members`
/// are raw slices of it.
fn flat_config(raw: Bytes, members: Vec<(String, &RawValue)>) -> Result<RawConfig, ApiError> {
    let mut config = RawConfig::new(raw);
    // Every key is checked before any value: an unknown kind is reported
    // even when another kind's value is malformed.
    let mut kinds = Vec::with_capacity(members.len());
    for (key, value) in members {
        if key.starts_with('_') {
            continue;
        }
        let known = EntityKind::ALL
            .into_iter()
            .find(|kind| kind.collection() == key);
        let Some(kind) = known else {
            return Err(ApiError::BadRequest(format!("unknown entity kind '{key}'")));
        };
        kinds.push((kind, value));
    }
    for (kind, value) in kinds {
        let entities = serde_json::from_str::<Vec<&RawValue>>(value.get()).map_err(|error| {
            ApiError::BadRequest(format!("invalid configuration: {}", message(&error)))
        })?;
        if !config.set(kind, &entities) {
            return Err(ApiError::Internal(
                "reading the configuration: an entity outside the body".to_owned(),
            ));
        }
    }
    Ok(config)
}

/// The members of the body's top-level object, values unparsed; anything
/// but one well-formed JSON object is `Cannot parse JSON body`.
fn top_level(text: &[u8]) -> Result<Vec<(String, &RawValue)>, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let members = deserializer
        .deserialize_map(MembersVisitor)
        .map_err(|_| ApiError::BadJson)?;
    deserializer.end().map_err(|_| ApiError::BadJson)?;
    Ok(members)
}

/// Collects an object's members as (key, raw value), in order.
struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Vec<(String, &'de RawValue)>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
            members.push(member);
        }
        Ok(members)
    }
}

/// serde's message without its `at line L column C` (positions within one
/// kind's array would mislead).
fn message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&position) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PostedConfig;
    use serde_json::Value;

    fn body(value: Value) -> Body {
        raw_body(&value.to_string())
    }

    fn raw_body(text: &str) -> Body {
        Body {
            raw: Bytes::copy_from_slice(text.as_bytes()),
            present: true,
            ..Body::empty()
        }
    }

    #[test]
    fn format_version_is_ignored_and_unknown_kinds_refused() {
        let empty = body(json!({"_format_version": "3.0", "services": []}));
        assert!(posted_config(empty).unwrap().is_empty());
        let unknown = posted_config(body(json!({"upstreams": []}))).unwrap_err();
        assert_eq!(
            unknown.body(),
            json!({"message": "unknown entity kind 'upstreams'"})
        );
        let not_array = posted_config(body(json!({"services": {}}))).unwrap_err();
        assert_eq!(not_array.status(), http::StatusCode::BAD_REQUEST);
        assert_eq!(
            not_array.body(),
            json!({"message": "invalid configuration: invalid type: map, expected a sequence"})
        );
        assert!(posted_config(Body::empty()).is_err());
    }

    #[test]
    fn unknown_kinds_come_before_malformed_values_and_bad_json_is_refused() {
        let both = posted_config(body(json!({"services": 1, "upstreams": []}))).unwrap_err();
        assert_eq!(
            both.body(),
            json!({"message": "unknown entity kind 'upstreams'"})
        );
        for text in ["[]", "{\"services\": [}", "{} {}", "\"x\""] {
            let error = posted_config(raw_body(text)).unwrap_err();
            assert_eq!(
                error.body(),
                json!({"message": "Cannot parse JSON body"}),
                "{text}"
            );
        }
    }

    #[test]
    fn entities_stay_raw_until_prepared_and_a_repeated_kind_replaces() {
        let text = r#"{"consumers": [{"username": "a"}], "services": [], "consumers": [{"username":  "b"}, {"username": "c"}]}"#;
        let config = posted_config(raw_body(text)).unwrap();
        let texts: Vec<&[u8]> = (0..config.count(EntityKind::Consumer))
            .filter_map(|position| config.entity_text(EntityKind::Consumer, position))
            .collect();
        assert_eq!(
            texts,
            [&br#"{"username":  "b"}"#[..], br#"{"username": "c"}"#]
        );
        assert_eq!(
            config.entity(EntityKind::Consumer, 1).as_ref(),
            &json!({"username": "c"})
        );
        assert_eq!(config.len(), 2);
    }
}
