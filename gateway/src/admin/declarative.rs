//! Kong's declarative `/config` (`kong/api/routes/config.lua`), as
//! DB-less users and the Ingress Controller post it.
//!
//! - [`is_kong_form`]: a body with `_format_version`, or with the whole
//!   file as a string under `config` (a YAML or text body arrives that
//!   way too, as Kong reads the raw body when `config` is absent).
//! - [`post`]: the file is read by the declarative reader of
//!   `schemas::file` (nested entities, names as references, entities
//!   without ids: the ids of the live entities they match are kept, others
//!   get new ones), then replaces the configuration as gwctl's flat form
//!   does. `_format_version` `1.1`, `2.1` and `3.0` are read alike (no
//!   1.x path migration); `_transform` is ignored. The answer is Kong's:
//!   201 with the entities keyed by type and id; `?check_hash=1` → 304
//!   when the result is what the gateway already has (timestamps aside);
//!   errors as code 14 `invalid declarative configuration` with `fields`
//!   nested like the input (arrays positioned like the input's) and
//!   `?flatten_errors=1` adding Kong's `flattened_errors`.
//! - [`export`]: `GET /config` → `{"config": "<YAML>"}`, Kong's export:
//!   `_format_version: "3.0"`, `_transform: false`, one flat list per
//!   kind, references as ids, absent values as `null`.

use std::collections::HashMap;

use http::StatusCode;
use schemas::config::{id_of, Config};
use schemas::file::build::{flatten, BuildOptions, Diagnostic, Severity};
use schemas::file::load::SourceDoc;
use schemas::file::pos::Positions;
use schemas::file::yaml;
use schemas::packed::PackedConfig;
use schemas::EntityKind;
use serde_json::{json, Map, Value};

use super::body::Body;
use super::response::{ApiError, Reply};
use crate::store::Store;

/// Kong's code and name for a declarative configuration error.
const CODE: u64 = 14;
const NAME: &str = "invalid declarative configuration";

/// The format versions Kong 3.x reads.
const FORMAT_VERSIONS: [&str; 3] = ["1.1", "2.1", "3.0"];

/// Whether `body` is Kong's declarative form rather than gwctl's flat one.
pub fn is_kong_form(body: &Body) -> bool {
    body.value.get("_format_version").is_some() || body.value.get("config").is_some()
}

/// The options of a `POST /config` (Kong's `parse_config_post_opts`).
struct Options {
    check_hash: bool,
    flatten_errors: bool,
}

impl Options {
    fn of(query: &HashMap<String, String>) -> Self {
        let truthy = |value: &str| {
            matches!(
                value.to_ascii_lowercase().as_str(),
                "true" | "1" | "on" | "yes"
            )
        };
        Options {
            check_hash: query.get("check_hash").is_some_and(|value| value == "1"),
            flatten_errors: query.get("flatten_errors").is_some_and(|v| truthy(v)),
        }
    }
}

/// `POST /config` in Kong's form.
pub fn post(store: &Store, body: Body, query: &HashMap<String, String>) -> Result<Reply, ApiError> {
    let options = Options::of(query);
    let mut document = document_of(body)?;
    let input = options.flatten_errors.then(|| document.clone());
    check_format_version(&mut document)?;
    let current = store.export()?;
    let docs = vec![SourceDoc {
        origin: "config".to_owned(),
        value: document,
        positions: Positions::default(),
        block: None,
    }];
    let built = flatten(docs, &BuildOptions::default())
        .build(&PackedConfig::pack(&current))
        .map_err(|diagnostics| invalid(&diagnostics, input.as_ref()))?;
    let config = built.config.unpack();
    if options.check_hash && same_configuration(&config, &current) {
        return Ok(Reply {
            status: StatusCode::NOT_MODIFIED,
            body: None,
            text: None,
        });
    }
    store.replace_all(&config)?;
    Ok(Reply::created(keyed_by_id(&store.export()?)))
}

/// The posted file as a JSON object: the body itself, or the text under
/// `config` read as YAML (JSON is YAML).
fn document_of(body: Body) -> Result<Value, ApiError> {
    let Value::Object(mut object) = body.value else {
        return Err(ApiError::BadJson);
    };
    if object.contains_key("_format_version") {
        return Ok(Value::Object(object));
    }
    let text = match object.remove("config") {
        Some(Value::String(text)) => text,
        Some(Value::Object(inner)) => return Ok(Value::Object(inner)),
        _ => return Err(parse_failure("expected an object")),
    };
    let docs = yaml::parse_documents(&text)
        .map_err(|error| parse_failure(&format!("{} at line {}", error.message, error.line)))?;
    match docs.into_iter().next().map(|doc| doc.value) {
        Some(value @ Value::Object(_)) => Ok(value),
        _ => Err(parse_failure("expected an object")),
    }
}

/// Kong's answer to a file that cannot be read.
fn parse_failure(reason: &str) -> ApiError {
    let fields = json!({
        "error": format!("failed parsing declarative configuration: {reason}")
    });
    ApiError::Declarative(error_body(&fields))
}

/// `_format_version` must be one Kong reads; it is read as `3.0`, and
/// `_transform` (Kong's switch for its import transformations) goes.
fn check_format_version(document: &mut Value) -> Result<(), ApiError> {
    let Some(object) = document.as_object_mut() else {
        return Err(parse_failure("expected an object"));
    };
    object.remove("_transform");
    let message = match object.get("_format_version") {
        None | Some(Value::Null) => "required field missing".to_owned(),
        Some(Value::String(version)) if FORMAT_VERSIONS.contains(&version.as_str()) => {
            object.insert("_format_version".to_owned(), json!("3.0"));
            return Ok(());
        }
        Some(Value::String(_)) => format!("expected one of: {}", FORMAT_VERSIONS.join(", ")),
        Some(_) => "expected a string".to_owned(),
    };
    let fields = json!({ "_format_version": message });
    Err(ApiError::Declarative(error_body(&fields)))
}

/// Kong's code 14 body for `fields`.
fn error_body(fields: &Value) -> Value {
    json!({
        "code": CODE,
        "name": NAME,
        "fields": fields,
        "message": format!("declarative config is invalid: {}", lua_pretty(fields)),
    })
}

/// The reader's errors as Kong's: `fields` nested by entity and field.
fn invalid(diagnostics: &[Diagnostic], input: Option<&Value>) -> ApiError {
    let errors: Vec<(Vec<Step>, String, &Diagnostic)> = diagnostics
        .iter()
        .filter(|diagnostic| diagnostic.severity == Severity::Error)
        .map(|diagnostic| {
            let (entity, message) = kong_error(diagnostic);
            (entity, message, diagnostic)
        })
        .collect();
    let mut fields = Value::Object(Map::new());
    let Some(input) = input else {
        for (entity, message, diagnostic) in &errors {
            let mut path = entity.clone();
            path.extend(field_steps(diagnostic));
            insert_error(&mut fields, &path, message);
        }
        return ApiError::Declarative(error_body(&fields));
    };
    let mut flattened: Vec<(Vec<Step>, Vec<Value>)> = Vec::new();
    for (entity, message, diagnostic) in &errors {
        if entity.is_empty() {
            insert_error(&mut fields, &field_steps(diagnostic), message);
            continue;
        }
        let entity = entity_steps(&diagnostic.entity);
        let error = flattened_error(diagnostic, message);
        match flattened.iter_mut().find(|(path, _)| *path == entity) {
            Some((_, list)) => list.push(error),
            None => flattened.push((entity, vec![error])),
        }
    }
    let flattened: Vec<Value> = flattened
        .into_iter()
        .map(|(path, errors)| flattened_entity(input, &path, errors))
        .collect();
    let mut body = error_body(&fields);
    if let Some(object) = body.as_object_mut() {
        object.insert("flattened_errors".to_owned(), Value::Array(flattened));
    }
    ApiError::Declarative(body)
}

/// Where Kong puts an error and its words: a duplicate as Kong's
/// `uniqueness violation` (by id or endpoint key: at the entity's place;
/// by another unique field: under the entity's endpoint key, as Kong's
/// `declarative` schema does), anything else as the reader says it.
fn kong_error(diagnostic: &Diagnostic) -> (Vec<Step>, String) {
    static DUPLICATE: once_cell::sync::Lazy<regex::Regex> = once_cell::sync::Lazy::new(|| {
        regex::Regex::new(
            r"^\S+ (?:with id (?P<id>\S+)|named '(?P<name>.*)'|with username '(?P<username>.*)'|with custom_id '(?P<custom_id>.*)'|with the same key '(?P<key>.*)') is already defined at ",
        )
        .expect("a valid pattern")
    });
    let mut entity = entity_steps(&diagnostic.entity);
    let message = diagnostic.message.clone();
    let Some(found) = DUPLICATE.captures(&diagnostic.message) else {
        return (entity, message);
    };
    let collection = entity
        .iter()
        .rev()
        .find_map(|step| match step {
            Step::Key(key) => Some(key.clone()),
            Step::Index(_) => None,
        })
        .unwrap_or_default();
    let Some((field, value)) = ["id", "name", "username", "custom_id", "key"]
        .iter()
        .find_map(|field| Some((*field, found.name(field)?.as_str())))
    else {
        return (entity, message);
    };
    let what = if field == "id" { "primary key" } else { field };
    let message = format!(
        "uniqueness violation: '{collection}' entity with {what} set to '{value}' already declared"
    );
    if field == "custom_id" {
        if let (Some(label), Some(Step::Index(_))) =
            (entity_label(&diagnostic.entity), entity.last())
        {
            entity.pop();
            entity.push(Step::Key(label));
        }
    }
    (entity, message)
}

/// The label the reader gives an entity (`consumers[1] (bar)` → `bar`).
fn entity_label(entity: &str) -> Option<String> {
    let (_, label) = entity.split_once(" (")?;
    Some(label.strip_suffix(')').unwrap_or(label).to_owned())
}

/// One step of a path in the posted file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// The entity's place in the file, from the reader's `services[0].routes[1]
/// (label)`.
fn entity_steps(entity: &str) -> Vec<Step> {
    let path = entity.split(" (").next().unwrap_or_default();
    let mut steps = Vec::new();
    for part in path.split('.').filter(|part| !part.is_empty()) {
        let mut pieces = part.split('[');
        if let Some(name) = pieces.next().filter(|name| !name.is_empty()) {
            steps.push(Step::Key(name.to_owned()));
        }
        for index in pieces {
            if let Ok(index) = index.trim_end_matches(']').parse() {
                steps.push(Step::Index(index));
            }
        }
    }
    steps
}

/// The field a diagnostic is about, as steps.
fn field_steps(diagnostic: &Diagnostic) -> Vec<Step> {
    diagnostic
        .field
        .0
        .iter()
        .map(|seg| match seg {
            schemas::error::PathSeg::Key(key) => Step::Key(key.clone()),
            schemas::error::PathSeg::Index(index) => Step::Index(*index),
        })
        .collect()
}

/// Puts `message` at `path` in Kong's error tree: objects for keys, arrays
/// positioned like the input (`null` elsewhere) for indexes; a second
/// message for the same place makes a list.
fn insert_error(node: &mut Value, path: &[Step], message: &str) {
    let Some((step, rest)) = path.split_first() else {
        match node {
            Value::Null => *node = Value::String(message.to_owned()),
            Value::String(first) => {
                *node = json!([std::mem::take(first), message]);
            }
            Value::Array(list) => list.push(Value::String(message.to_owned())),
            Value::Object(object) => {
                let list = object.entry("@entity").or_insert_with(|| json!([]));
                if let Value::Array(list) = list {
                    list.push(Value::String(message.to_owned()));
                }
            }
            _ => {}
        }
        return;
    };
    match step {
        Step::Key(key) => {
            if !node.is_object() {
                *node = Value::Object(Map::new());
            }
            if let Value::Object(object) = node {
                let child = object.entry(key.clone()).or_insert(Value::Null);
                insert_error(child, rest, message);
            }
        }
        Step::Index(index) => {
            if !node.is_array() {
                *node = Value::Array(Vec::new());
            }
            if let Value::Array(items) = node {
                if items.len() <= *index {
                    items.resize(index + 1, Value::Null);
                }
                insert_error(&mut items[*index], rest, message);
            }
        }
    }
}

/// One of Kong's flattened errors: a field's, or the entity's own.
fn flattened_error(diagnostic: &Diagnostic, message: &str) -> Value {
    let field: Vec<&str> = diagnostic
        .field
        .0
        .iter()
        .filter_map(|seg| match seg {
            schemas::error::PathSeg::Key(key) => Some(key.as_str()),
            schemas::error::PathSeg::Index(_) => None,
        })
        .collect();
    if field.is_empty() {
        return json!({"type": "entity", "message": message});
    }
    json!({"type": "field", "field": field.join("."), "message": message})
}

/// Kong's flattened entry for the entity at `path` of `input`.
fn flattened_entity(input: &Value, path: &[Step], errors: Vec<Value>) -> Value {
    let mut entity = input;
    let mut collection = "";
    for step in path {
        entity = match step {
            Step::Key(key) => {
                collection = key.as_str();
                entity.get(key.as_str()).unwrap_or(&Value::Null)
            }
            Step::Index(index) => entity.get(index).unwrap_or(&Value::Null),
        };
    }
    let entity_type = EntityKind::from_collection(collection)
        .map_or(collection.trim_end_matches('s'), |kind| {
            kind.collection().trim_end_matches('s')
        });
    let text = |field: &str| entity.get(field).and_then(Value::as_str).map(str::to_owned);
    let id = text("id").filter(|id| uuid::Uuid::parse_str(id).is_ok());
    let tags = entity
        .get("tags")
        .filter(|tags| {
            tags.as_array()
                .is_some_and(|list| list.iter().all(Value::is_string))
        })
        .cloned();
    let mut entry = json!({"entity_type": entity_type, "entity": entity, "errors": errors});
    if let Some(object) = entry.as_object_mut() {
        if let Some(name) = text("name").or_else(|| text("username")) {
            object.insert("entity_name".to_owned(), json!(name));
        }
        if let Some(id) = id {
            object.insert("entity_id".to_owned(), json!(id));
        }
        if let Some(tags) = tags {
            object.insert("entity_tags".to_owned(), tags);
        }
    }
    entry
}

/// A value as Kong's `pl.pretty.write(t, "")` prints the Lua table:
/// sorted keys, quoted strings, a list as `{a,b}`, a list with holes as
/// `{[2]=b}`.
pub fn lua_pretty(value: &Value) -> String {
    match value {
        Value::Null => "nil".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => format!("{text:?}"),
        Value::Array(items) if items.iter().all(|item| !item.is_null()) => {
            let parts: Vec<String> = items.iter().map(lua_pretty).collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .enumerate()
                .filter(|(_, item)| !item.is_null())
                .map(|(index, item)| format!("[{}]={}", index + 1, lua_pretty(item)))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Object(object) => {
            let mut keys: Vec<&String> = object.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|key| format!("{}={}", lua_key(key), lua_pretty(&object[key])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
    }
}

fn lua_key(key: &str) -> String {
    let identifier = key
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if identifier {
        key.to_owned()
    } else {
        format!("[{key:?}]")
    }
}

/// Whether `built` holds the same entities as `current`, timestamps aside.
fn same_configuration(built: &Config, current: &Config) -> bool {
    EntityKind::ALL.iter().all(|&kind| {
        let sorted = |entities: &[Value]| {
            let mut list: Vec<Value> = entities.iter().map(without_timestamps).collect();
            list.sort_by(|a, b| id_of(a).cmp(&id_of(b)));
            list
        };
        sorted(built.entities(kind)) == sorted(current.entities(kind))
    })
}

fn without_timestamps(entity: &Value) -> Value {
    let mut entity = entity.clone();
    if let Some(object) = entity.as_object_mut() {
        object.remove("created_at");
        object.remove("updated_at");
    }
    entity
}

/// Kong's 201 body: each kind's entities keyed by id.
fn keyed_by_id(config: &Config) -> Value {
    let mut body = Map::new();
    for kind in EntityKind::ALL {
        let entities = config.entities(kind);
        if entities.is_empty() {
            continue;
        }
        let keyed: Map<String, Value> = entities
            .iter()
            .filter_map(|entity| Some((id_of(entity)?.to_owned(), entity.clone())))
            .collect();
        body.insert(kind.collection().to_owned(), Value::Object(keyed));
    }
    Value::Object(body)
}

/// `GET /config`: Kong's export as a YAML string.
pub fn export(store: &Store) -> Result<Reply, ApiError> {
    let config = store.export()?;
    let mut document = Map::new();
    document.insert("_format_version".to_owned(), json!("3.0"));
    document.insert("_transform".to_owned(), json!(false));
    for kind in EntityKind::ALL {
        let entities = config.entities(kind);
        if entities.is_empty() {
            continue;
        }
        let flat: Vec<Value> = entities.iter().map(references_as_ids).collect();
        document.insert(kind.collection().to_owned(), Value::Array(flat));
    }
    let yaml = serde_yaml_ng::to_string(&Value::Object(document))
        .map_err(|error| ApiError::Internal(format!("encoding the configuration: {error}")))?;
    Ok(Reply::ok(json!({ "config": yaml })))
}

/// An entity with each `{"id": ...}` reference written as the id, as
/// Kong's export writes foreign keys.
fn references_as_ids(entity: &Value) -> Value {
    let Value::Object(object) = entity else {
        return entity.clone();
    };
    let flat = object
        .iter()
        .map(|(key, value)| {
            let id = value
                .as_object()
                .filter(|reference| reference.len() == 1)
                .and_then(|reference| reference.get("id"))
                .filter(|id| id.is_string());
            (key.clone(), id.cloned().unwrap_or_else(|| value.clone()))
        })
        .collect();
    Value::Object(flat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lua_tables_print_like_pl_pretty() {
        let fields = json!({"services": [null, "dup"], "consumers": {"bar": "x"}});
        assert_eq!(
            lua_pretty(&fields),
            r#"{consumers={bar="x"},services={[2]="dup"}}"#
        );
        let full = json!({"services": [{"port": "p", "host": "h"}]});
        assert_eq!(lua_pretty(&full), r#"{services={{host="h",port="p"}}}"#);
    }

    #[test]
    fn errors_nest_like_the_input() {
        let mut tree = Value::Null;
        let path = entity_steps("services[1].routes[0] (r1)");
        let mut with_field = path.clone();
        with_field.push(Step::Key("protocols".to_owned()));
        with_field.push(Step::Index(1));
        insert_error(&mut tree, &with_field, "bad");
        assert_eq!(
            tree,
            json!({"services": [null, {"routes": [{"protocols": [null, "bad"]}]}]})
        );
    }
}
