//! Store errors: one variant per Kong DAO error code, each able to render
//! the body and HTTP status Kong's Admin API answers with.
//!
//! The message texts follow `kong/db/errors.lua`: unique keys, primary keys
//! and foreign keys are printed as Lua tables (`{name="svc1"}`), with keys
//! sorted and `null` for absent values.

use schemas::{EntityKind, SchemaViolation};
use serde_json::{json, Map, Value};

/// The error a storage backend reported, whatever the backend.
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong in a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Code 2: the entity does not follow its schema.
    #[error("{0}")]
    SchemaViolation(#[from] SchemaViolation),

    /// Code 3: an insert whose id is already taken.
    #[error("primary key violation on key '{{id=\"{id}\"}}'")]
    PrimaryKeyViolation { id: String },

    /// Code 4: a reference to an entity that does not exist.
    #[error(
        "the foreign key '{{id=\"{id}\"}}' does not reference an existing '{collection}' entity."
    )]
    ForeignKeyViolation {
        /// The referencing field, e.g. `service`.
        field: String,
        id: String,
        /// The referenced collection, e.g. `services`.
        collection: &'static str,
    },

    /// Code 4 (restricted delete): other entities still point at this one.
    #[error("an existing '{child}' entity references this '{parent}' entity")]
    ReferencedBy {
        parent: &'static str,
        child: &'static str,
    },

    /// Code 5: a unique field (or the plugin identity) is already taken.
    #[error("UNIQUE violation detected on '{}'", lua_table(.fields))]
    UniqueViolation {
        /// The conflicting key, e.g. `{"name": "svc1"}`.
        fields: Map<String, Value>,
    },

    /// Code 6: nothing matches. Rendered as Kong's `{"message":"Not found"}`.
    #[error("Not found")]
    NotFound,

    /// Code 7: a pagination offset that this store did not produce.
    #[error("'{offset}' is not a valid offset: {reason}")]
    InvalidOffset {
        offset: String,
        reason: &'static str,
    },

    /// Code 8: the storage backend failed.
    #[error("database error while {context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: BackendError,
    },

    /// Code 8, answered 503: the database cannot be reached (or did not
    /// answer in time, or a commit's outcome is unknown). Nothing was
    /// applied on this node; retrying later is safe.
    #[error("database unavailable while {context}: {reason}")]
    Unavailable {
        context: &'static str,
        reason: String,
    },

    /// Another node committed since the revision a write was planned on
    /// (a shared database only). The store catches up and plans the write
    /// again; it reaches a client only after repeated conflicts, as a 503.
    #[error("the configuration changed concurrently (stored revision is no longer {base})")]
    Stale { base: u64 },

    /// Code 8: a stored row could not be decoded.
    #[error("corrupt row in {collection}: {reason}")]
    CorruptRow {
        collection: &'static str,
        reason: String,
    },

    /// Code 9: a bad `size` query argument.
    #[error("{0}")]
    InvalidSize(String),

    /// Code 11: a bad listing option such as `tags`.
    #[error("invalid option ({option}: {message})")]
    InvalidOptions {
        option: &'static str,
        message: String,
    },

    /// Code 13: a reference by name (`{"name": "x"}`) that matches nothing.
    #[error(
        "foreign key unresolved ({field}.{key}: {})",
        unresolved_text(.key, .value, .collection)
    )]
    ForeignKeyUnresolved {
        /// The referencing field, e.g. `service`.
        field: String,
        /// The key used to look the entity up, e.g. `name`.
        key: &'static str,
        value: String,
        collection: &'static str,
    },

    /// Code 19: still referenced by other entities.
    #[error("{0}")]
    ReferencedByOthers(String),

    /// An error about one entity of a posted configuration (`POST /config`).
    #[error("{} {}: {source}", .entity.kind.collection(), .entity.id.as_deref().unwrap_or("(no id)"))]
    InConfig {
        entity: ConfigEntity,
        source: Box<StoreError>,
    },
}

/// Names the entity of a posted configuration that an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntity {
    pub kind: EntityKind,
    pub id: Option<String>,
    /// The endpoint key (name, username, instance_name), when it is not a secret.
    pub name: Option<String>,
}

impl ConfigEntity {
    /// Describe a raw entity of `kind` as posted.
    pub fn of(kind: EntityKind, raw: &Value) -> Self {
        let text = |field: &str| raw.get(field).and_then(Value::as_str).map(str::to_owned);
        // The endpoint key names the entity unless it is a secret (a key).
        let descriptor = kind.descriptor();
        let name = descriptor
            .display_names
            .contains(&descriptor.endpoint_key)
            .then(|| text(descriptor.endpoint_key))
            .flatten();
        Self {
            kind,
            id: text("id"),
            name,
        }
    }

    fn to_json(&self) -> Value {
        json!({"kind": self.kind.collection(), "id": self.id, "name": self.name})
    }
}

impl StoreError {
    /// A backend failure, with what the store was doing.
    pub fn database<E>(context: &'static str) -> impl FnOnce(E) -> StoreError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |source| StoreError::Database {
            context,
            source: Box::new(source),
        }
    }

    /// The database could not be reached while doing `context`.
    pub fn unavailable(context: &'static str, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable {
            context,
            reason: reason.to_string(),
        }
    }

    /// Kong's error code, if the error has one in Kong's table.
    pub fn code(&self) -> u32 {
        match self {
            Self::SchemaViolation(_) => 2,
            Self::PrimaryKeyViolation { .. } => 3,
            Self::ForeignKeyViolation { .. } | Self::ReferencedBy { .. } => 4,
            Self::UniqueViolation { .. } => 5,
            Self::NotFound => 6,
            Self::InvalidOffset { .. } => 7,
            Self::Database { .. }
            | Self::CorruptRow { .. }
            | Self::Unavailable { .. }
            | Self::Stale { .. } => 8,
            Self::InvalidSize(_) => 9,
            Self::InvalidOptions { .. } => 11,
            Self::ForeignKeyUnresolved { .. } => 13,
            Self::ReferencedByOthers(_) => 19,
            Self::InConfig { source, .. } => source.code(),
        }
    }

    /// Kong's name for the error code.
    pub fn name(&self) -> &'static str {
        match self.code() {
            2 => "schema violation",
            3 => "primary key violation",
            4 => "foreign key violation",
            5 => "unique constraint violation",
            6 => "not found",
            7 => "invalid offset",
            9 => "invalid size",
            11 => "invalid options",
            13 => "foreign keys unresolved",
            19 => "referenced by others",
            _ => "database error",
        }
    }

    /// The HTTP status the Admin API answers with.
    pub fn status(&self) -> u16 {
        if matches!(self, Self::Unavailable { .. } | Self::Stale { .. }) {
            return 503;
        }
        match self.code() {
            5 => 409,
            6 => 404,
            8 => 500,
            _ => 400,
        }
    }

    /// The Admin API body: Kong's `{code, name, message, fields}`.
    pub fn kong_body(&self) -> Value {
        match self {
            Self::SchemaViolation(violation) => violation.kong_body(),
            Self::NotFound => json!({"message": "Not found"}),
            Self::Unavailable { .. } => {
                json!({"message": "The database is unavailable; the configuration cannot be changed now, try again later"})
            }
            Self::Stale { .. } => {
                json!({"message": "The configuration is being changed concurrently; try again"})
            }
            Self::Database { .. } | Self::CorruptRow { .. } => {
                json!({"message": "An unexpected error occurred"})
            }
            Self::InConfig { entity, source } => {
                let mut body = source.kong_body();
                if let Some(object) = body.as_object_mut() {
                    object.insert("entity".to_owned(), entity.to_json());
                }
                body
            }
            Self::InvalidOptions { option, message } => json!({
                "code": self.code(),
                "name": self.name(),
                "message": self.to_string(),
                "options": { *option: message },
            }),
            other => {
                let mut body = json!({
                    "code": other.code(),
                    "name": other.name(),
                    "message": other.to_string(),
                });
                if let (Some(object), Some(fields)) = (body.as_object_mut(), other.fields()) {
                    object.insert("fields".to_owned(), fields);
                }
                body
            }
        }
    }

    /// Kong's `fields` member for the codes that have one.
    fn fields(&self) -> Option<Value> {
        match self {
            Self::PrimaryKeyViolation { id } => Some(json!({ "id": id })),
            Self::ForeignKeyViolation { field, id, .. } => {
                Some(json!({ field.as_str(): {"id": id} }))
            }
            Self::ReferencedBy { child, .. } => Some(json!({ "@referenced_by": child })),
            Self::UniqueViolation { fields } => Some(Value::Object(fields.clone())),
            Self::ForeignKeyUnresolved {
                field,
                key,
                value,
                collection,
            } => Some(json!({
                field.as_str(): { *key: unresolved_text(key, value, collection) }
            })),
            _ => None,
        }
    }

    /// Wrap this error as being about one entity of a posted configuration.
    pub fn in_config(self, entity: ConfigEntity) -> StoreError {
        StoreError::InConfig {
            entity,
            source: Box::new(self),
        }
    }
}

fn unresolved_text(key: &str, value: &str, collection: &str) -> String {
    let mut table = Map::new();
    table.insert(key.to_owned(), Value::from(value));
    format!(
        "the foreign key cannot be resolved with '{}' for an existing '{collection}' entity",
        lua_table(&table)
    )
}

/// Render a JSON object the way Kong's `pl.pretty.write(t, "")` prints a
/// Lua table: sorted keys, quoted strings, `null` for absent values.
pub fn lua_table(fields: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = fields.keys().collect();
    keys.sort();
    let parts: Vec<String> = keys
        .into_iter()
        .map(|key| format!("{}={}", lua_key(key), lua_value(&fields[key])))
        .collect();
    format!("{{{}}}", parts.join(","))
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
        format!("[{}]", lua_string(key))
    }
}

fn lua_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::String(text) => lua_string(text),
        Value::Object(object) => lua_table(object),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(lua_value).collect();
            format!("{{{}}}", parts.join(","))
        }
        other => other.to_string(),
    }
}

fn lua_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_violation_reads_like_kong() {
        let mut fields = Map::new();
        fields.insert("name".into(), json!("svc1"));
        let error = StoreError::UniqueViolation { fields };
        assert_eq!(
            error.kong_body(),
            json!({"code": 5, "name": "unique constraint violation",
                "message": "UNIQUE violation detected on '{name=\"svc1\"}'",
                "fields": {"name": "svc1"}})
        );
        assert_eq!(error.status(), 409);
    }

    #[test]
    fn plugin_identity_prints_nulls_and_nested_ids() {
        let fields =
            json!({"service": {"id": "x"}, "name": "key-auth", "route": null, "consumer": null});
        let Value::Object(fields) = fields else {
            unreachable!()
        };
        assert_eq!(
            StoreError::UniqueViolation { fields }.to_string(),
            "UNIQUE violation detected on '{consumer=null,name=\"key-auth\",route=null,service={id=\"x\"}}'"
        );
    }

    #[test]
    fn foreign_key_errors_read_like_kong() {
        let error = StoreError::ForeignKeyViolation {
            field: "service".into(),
            id: "0f5a".into(),
            collection: "services",
        };
        assert_eq!(
            error.kong_body(),
            json!({"code": 4, "name": "foreign key violation",
                "message": "the foreign key '{id=\"0f5a\"}' does not reference an existing 'services' entity.",
                "fields": {"service": {"id": "0f5a"}}})
        );
        let unresolved = StoreError::ForeignKeyUnresolved {
            field: "service".into(),
            key: "name",
            value: "non-existing".into(),
            collection: "services",
        };
        assert_eq!(
            unresolved.to_string(),
            "foreign key unresolved (service.name: the foreign key cannot be resolved with '{name=\"non-existing\"}' for an existing 'services' entity)"
        );
    }

    #[test]
    fn database_errors_hide_details() {
        let error = StoreError::CorruptRow {
            collection: "services",
            reason: "bad json".into(),
        };
        assert_eq!(error.status(), 500);
        assert_eq!(
            error.kong_body(),
            json!({"message": "An unexpected error occurred"})
        );
    }
}
