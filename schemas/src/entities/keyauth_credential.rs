//! The key-auth credential entity (`keyauth_credentials`).

use super::{EntityDescriptor, EntityKind, Generated, OnDelete, Reference};
use crate::schema::{Field, Record};
use crate::typedefs;

/// key-auth credentials (Kong's `keyauth_credentials`, Admin API
/// `/key-auths`, endpoint key `key`); deleted with their consumer. The key
/// is a secret, so it never names the credential in output.
pub const DESCRIPTOR: EntityDescriptor = EntityDescriptor {
    collection: "keyauth_credentials",
    admin_path: "key-auths",
    deck_kind: "key-auth",
    nested_path: "key-auth",
    endpoint_key: "key",
    unique: &["key"],
    display_names: &[],
    references: &[Reference {
        field: "consumer",
        parent: EntityKind::Consumer,
        on_delete: OnDelete::Cascade,
    }],
    generated: &[Generated {
        field: "key",
        make: generate_key,
    }],
    schema,
    entity_checks,
};

/// Kong's keyauth_credentials entity declares no entity checks.
fn entity_checks() -> serde_json::Value {
    serde_json::json!([])
}

pub fn schema() -> Record {
    Record::new(vec![
        typedefs::id(),
        typedefs::created_at(),
        Field::foreign("consumer", "consumers").required(),
        Field::string("key").auto().secret(),
        Field::integer("ttl").between(0, 100_000_000),
        typedefs::tags(),
    ])
}

/// A new random key as Kong makes one: 24 random bytes in base64 without
/// `/` and `+`, giving 32 alphanumeric characters.
pub fn generate_key() -> String {
    typedefs::random_token(24, &['/', '+'])
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_keys_are_alphanumeric_and_distinct() {
        let first = super::generate_key();
        assert_eq!(first.len(), 32);
        assert!(first.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(first, super::generate_key());
    }
}
