//! Field errors: what the schema engine reports, in a form both the Admin API
//! (Kong's `schema violation` JSON) and `gwctl validate` (file:line:column)
//! can render.

use std::fmt;

use serde_json::{Map, Value};

/// One step into a JSON document: an object key or an array index (0-based).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

impl From<&str> for PathSeg {
    fn from(key: &str) -> Self {
        PathSeg::Key(key.to_owned())
    }
}

impl From<String> for PathSeg {
    fn from(key: String) -> Self {
        PathSeg::Key(key)
    }
}

impl From<usize> for PathSeg {
    fn from(index: usize) -> Self {
        PathSeg::Index(index)
    }
}

/// Where in an entity a problem sits, e.g. `config.key_names[0]`.
/// An empty path is the entity itself (Kong's `@entity`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(pub Vec<PathSeg>);

impl FieldPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// This path with one more key.
    pub fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(PathSeg::Key(key.to_owned()));
        Self(segs)
    }

    /// This path with one more array index.
    pub fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(PathSeg::Index(index));
        Self(segs)
    }

    /// This path under `prefix` (used to place an entity's field errors
    /// inside the file, e.g. `services[0]` + `host`).
    pub fn under(&self, prefix: &FieldPath) -> Self {
        let mut segs = prefix.0.clone();
        segs.extend(self.0.iter().cloned());
        Self(segs)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Kong's dotted form with 1-based indexes: `protocols.1`.
    pub fn kong_form(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|seg| match seg {
                PathSeg::Key(key) => key.clone(),
                PathSeg::Index(index) => (index + 1).to_string(),
            })
            .collect();
        parts.join(".")
    }
}

/// The file form: `services[0].plugins[1].config.key_names[0]`.
impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, seg) in self.0.iter().enumerate() {
            match seg {
                PathSeg::Key(key) if position == 0 => write!(f, "{key}")?,
                PathSeg::Key(key) => write!(f, ".{key}")?,
                PathSeg::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// One violated rule: where, and Kong's message for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldError {
    pub path: FieldPath,
    pub message: String,
}

impl FieldError {
    pub fn new(path: FieldPath, message: impl Into<String>) -> Self {
        Self {
            path,
            message: message.into(),
        }
    }

    /// An error about the whole record at `path` (Kong's `@entity`).
    pub fn entity(path: FieldPath, message: impl Into<String>) -> Self {
        Self::new(path, message)
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// All the field errors of one entity: Kong's "schema violation".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.kong_message())]
pub struct SchemaViolation {
    pub errors: Vec<FieldError>,
}

impl SchemaViolation {
    pub fn new(mut errors: Vec<FieldError>) -> Self {
        errors.sort();
        errors.dedup();
        Self { errors }
    }

    pub fn single(path: FieldPath, message: impl Into<String>) -> Self {
        Self::new(vec![FieldError::new(path, message)])
    }

    /// `schema violation (name: required field missing)`, or
    /// `2 schema violations (a: x; b: y)` in sorted field order.
    pub fn kong_message(&self) -> String {
        let parts: Vec<String> = self
            .errors
            .iter()
            .map(|error| {
                if error.path.is_root() {
                    error.message.clone()
                } else {
                    format!("{}: {}", error.path.kong_form(), error.message)
                }
            })
            .collect();
        match parts.len() {
            1 => format!("schema violation ({})", parts[0]),
            count => format!("{count} schema violations ({})", parts.join("; ")),
        }
    }

    /// Kong's `fields` object: nested by path, arrays for list items, and
    /// record-level messages under `@entity`.
    pub fn kong_fields(&self) -> Value {
        let mut fields = Value::Object(Map::new());
        for error in &self.errors {
            insert_field_error(&mut fields, &error.path.0, &error.message);
        }
        fields
    }

    /// The whole Admin API error body (code 2).
    pub fn kong_body(&self) -> Value {
        serde_json::json!({
            "code": 2,
            "name": "schema violation",
            "message": self.kong_message(),
            "fields": self.kong_fields(),
        })
    }
}

/// Puts `message` at `path`: objects for keys, arrays for list items,
/// positioned like the input with `null` elsewhere (Kong's
/// `protocols = { [2] = "..." }`, which cjson writes as `[null, "..."]`).
fn insert_field_error(node: &mut Value, path: &[PathSeg], message: &str) {
    let Some((first, rest)) = path.split_first() else {
        push_entity_message(node, message);
        return;
    };
    let slot = match first {
        PathSeg::Key(key) => {
            if !node.is_object() {
                *node = Value::Object(Map::new());
            }
            let Some(object) = node.as_object_mut() else {
                return;
            };
            object.entry(key.clone()).or_insert(Value::Null)
        }
        PathSeg::Index(index) => {
            if !node.is_array() {
                *node = Value::Array(Vec::new());
            }
            let Some(items) = node.as_array_mut() else {
                return;
            };
            if items.len() <= *index {
                items.resize(index + 1, Value::Null);
            }
            &mut items[*index]
        }
    };
    if rest.is_empty() {
        match slot {
            Value::Object(_) => push_entity_message(slot, message),
            _ => *slot = Value::String(message.to_owned()),
        }
        return;
    }
    insert_field_error(slot, rest, message);
}

fn push_entity_message(node: &mut Value, message: &str) {
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    if let Some(object) = node.as_object_mut() {
        let list = object
            .entry("@entity")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(items) = list.as_array_mut() {
            items.push(Value::String(message.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_violation_reads_like_kong() {
        let violation =
            SchemaViolation::single(FieldPath::root().key("name"), "required field missing");
        assert_eq!(
            violation.kong_message(),
            "schema violation (name: required field missing)"
        );
        assert_eq!(
            violation.kong_fields(),
            serde_json::json!({"name": "required field missing"})
        );
    }

    #[test]
    fn several_violations_are_counted_and_sorted() {
        let violation = SchemaViolation::new(vec![
            FieldError::new(FieldPath::root().key("port"), "expected an integer"),
            FieldError::new(
                FieldPath::root().key("protocols").index(0),
                "expected one of: http, https",
            ),
            FieldError::new(
                FieldPath::root().key("config"),
                "content_type requires a body",
            ),
        ]);
        assert_eq!(
            violation.kong_message(),
            "3 schema violations (config: content_type requires a body; port: expected an integer; protocols.1: expected one of: http, https)"
        );
        // Kong's `protocols = { "..." }`: a list positioned like the input.
        assert_eq!(
            violation.kong_fields()["protocols"],
            serde_json::json!(["expected one of: http, https"])
        );
        let second = SchemaViolation::single(FieldPath::root().key("methods").index(1), "bad");
        assert_eq!(
            second.kong_fields(),
            serde_json::json!({"methods": [null, "bad"]})
        );
    }

    #[test]
    fn entity_errors_go_under_at_entity() {
        let violation = SchemaViolation::single(
            FieldPath::root(),
            "at least one of these fields must be non-empty: 'custom_id', 'username'",
        );
        assert_eq!(
            violation.kong_fields()["@entity"][0],
            "at least one of these fields must be non-empty: 'custom_id', 'username'"
        );
    }

    #[test]
    fn file_form_uses_brackets() {
        let path = FieldPath::root()
            .key("services")
            .index(0)
            .key("plugins")
            .index(1)
            .key("config");
        assert_eq!(path.to_string(), "services[0].plugins[1].config");
    }
}
