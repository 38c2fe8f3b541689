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

use std::collections::HashMap;

use http::Method;
use schemas::config::Config;
use schemas::EntityKind;
use serde_json::{json, Value};

use super::body::Body;
use super::declarative;
use super::response::{ApiError, Reply};
use crate::store::Store;

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
        Method::POST if declarative::is_kong_form(&body) => declarative::post(store, body, query),
        Method::GET => {
            let config = serde_json::to_value(store.export()?).map_err(|error| {
                ApiError::Internal(format!("encoding the configuration: {error}"))
            })?;
            Ok(Reply::ok(json!({ "config": config })))
        }
        Method::POST => {
            let config = posted_config(body)?;
            let summary = store.replace_all(&config)?;
            Ok(Reply::created(summary.to_json()))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// The configuration a `POST /config` body holds (moved out of the body:
/// a big configuration is not copied).
fn posted_config(body: Body) -> Result<Config, ApiError> {
    if body.form {
        return Err(ApiError::UnsupportedMediaType);
    }
    if !body.present {
        return Err(ApiError::BadRequest(
            "expected a declarative configuration".to_owned(),
        ));
    }
    let Value::Object(object) = body.value else {
        return Err(ApiError::BadJson);
    };
    let mut kinds = serde_json::Map::new();
    for (key, value) in object {
        if key.starts_with('_') {
            continue;
        }
        let known = EntityKind::ALL.iter().any(|kind| kind.collection() == key);
        if !known {
            return Err(ApiError::BadRequest(format!("unknown entity kind '{key}'")));
        }
        kinds.insert(key, value);
    }
    serde_json::from_value(Value::Object(kinds))
        .map_err(|error| ApiError::BadRequest(format!("invalid configuration: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Body {
        Body {
            value,
            form: false,
            present: true,
        }
    }

    #[test]
    fn format_version_is_ignored_and_unknown_kinds_refused() {
        let config =
            posted_config(body(json!({"_format_version": "3.0", "services": []}))).unwrap();
        assert!(config.is_empty());
        let unknown = posted_config(body(json!({"upstreams": []}))).unwrap_err();
        assert_eq!(
            unknown.body(),
            json!({"message": "unknown entity kind 'upstreams'"})
        );
        let not_array = posted_config(body(json!({"services": {}}))).unwrap_err();
        assert_eq!(not_array.status(), http::StatusCode::BAD_REQUEST);
        assert!(posted_config(Body::empty()).is_err());
    }
}
