//! The Consumer entity.

use serde_json::{json, Map, Value};

use super::EntityDescriptor;
use crate::error::{FieldError, FieldPath};
use crate::schema::{is_present, Field, Record};
use crate::typedefs;

/// Consumers (Kong's `consumers`, endpoint key `username`).
pub const DESCRIPTOR: EntityDescriptor = EntityDescriptor {
    collection: "consumers",
    admin_path: "consumers",
    deck_kind: "consumer",
    nested_path: "consumers",
    endpoint_key: "username",
    unique: &["username", "custom_id"],
    display_names: &["username", "custom_id"],
    references: &[],
    generated: &[],
    schema,
    entity_checks,
};

/// Kong's declaration of [`username_or_custom_id`].
fn entity_checks() -> Value {
    json!([{"at_least_one_of": ["custom_id", "username"]}])
}

pub fn schema() -> Record {
    Record::new(vec![
        typedefs::id(),
        typedefs::created_at(),
        typedefs::updated_at(),
        Field::string("username"),
        Field::string("custom_id"),
        typedefs::tags(),
    ])
    .with_check(username_or_custom_id)
}

fn username_or_custom_id(record: &Map<String, Value>) -> Vec<FieldError> {
    if is_present(record, "username") || is_present(record, "custom_id") {
        return Vec::new();
    }
    vec![FieldError::entity(
        FieldPath::root(),
        "at least one of these fields must be non-empty: 'custom_id', 'username'",
    )]
}
