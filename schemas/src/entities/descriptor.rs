//! [`EntityDescriptor`]: what one entity kind declares, once, next to its
//! schema (in the manner of Kong's DAO schema tables: `endpoint_key`,
//! `unique` fields, `foreign` references with `on_delete`, generated
//! fields).
//!
//! Everything that needs to know about a kind reads it from here: the
//! gateway's store (unique indexes, reference checks, cascades, generated
//! fields), the declarative file builder (which fields are references),
//! gwctl (apply order, display names) and the Admin API (collection and
//! nested paths). Adding a kind = its schema file with a `DESCRIPTOR`, and
//! one line in the list in [`super`].

use super::EntityKind;
use crate::schema::Record;
use crate::typedefs::Generated;

/// What deleting a referenced entity does to the entities pointing at it
/// (Kong's `on_delete` of a `foreign` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    /// They are deleted with it (`on_delete = "cascade"`).
    Cascade,
    /// The delete is refused while any exist (Kong's default).
    Restrict,
}

/// A `foreign` field: `field` holds `{"id": …}` of a `parent` entity.
#[derive(Debug, Clone, Copy)]
pub struct Reference {
    /// The field name, e.g. `service`.
    pub field: &'static str,
    /// The kind it points at.
    pub parent: EntityKind,
    /// What deleting the parent does.
    pub on_delete: OnDelete,
}

/// Everything the code base knows about one entity kind besides its
/// field-by-field schema.
#[derive(Debug)]
pub struct EntityDescriptor {
    /// The DAO / declarative collection name: `services`,
    /// `keyauth_credentials`, ...
    pub collection: &'static str,
    /// The Admin API collection path without `/`: `services`, `key-auths`.
    pub admin_path: &'static str,
    /// decK's word for one entity in diff output: `service`, `key-auth`.
    pub deck_kind: &'static str,
    /// The URL segment of this kind's collection under an entity it
    /// references: `/services/{s}/routes`, `/consumers/{c}/key-auth`.
    pub nested_path: &'static str,
    /// The unique field the Admin API accepts in place of an id.
    pub endpoint_key: &'static str,
    /// String-valued fields whose values are unique among the kind.
    pub unique: &'static [&'static str],
    /// Fields that name an entity for people, in order of preference
    /// (empty when the only names are secrets, like a key).
    pub display_names: &'static [&'static str],
    /// Its `foreign` fields.
    pub references: &'static [Reference],
    /// Fields the server generates when left out.
    pub generated: &'static [Generated],
    /// Builds the kind's schema (called once, then cached).
    pub schema: fn() -> Record,
    /// Kong's `entity_checks` as `GET /schemas/{entity}` shows them
    /// (`kong/db/schema/entities/*.lua`): the declaration of the record
    /// checks the schema runs (a custom check shows only its
    /// `field_sources`).
    pub entity_checks: fn() -> serde_json::Value,
}

impl EntityDescriptor {
    /// The reference through `field`, if the kind has one.
    pub fn reference(&self, field: &str) -> Option<&'static Reference> {
        self.references
            .iter()
            .find(|reference| reference.field == field)
    }
}

/// Every reference between kinds, as (child kind, reference).
pub fn all_references() -> impl Iterator<Item = (EntityKind, &'static Reference)> {
    EntityKind::ALL.into_iter().flat_map(|child| {
        child
            .descriptor()
            .references
            .iter()
            .map(move |reference| (child, reference))
    })
}

/// The references pointing at `parent`, as (child kind, reference).
pub fn references_to(parent: EntityKind) -> impl Iterator<Item = (EntityKind, &'static Reference)> {
    all_references().filter(move |(_, reference)| reference.parent == parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_listed_after_the_kinds_they_reference() {
        for (position, kind) in EntityKind::ALL.iter().enumerate() {
            for reference in kind.descriptor().references {
                let parent = EntityKind::ALL
                    .iter()
                    .position(|candidate| *candidate == reference.parent);
                assert!(
                    parent.is_some_and(|parent| parent < position),
                    "{} references {} listed after it",
                    kind.collection(),
                    reference.parent.collection()
                );
            }
        }
    }

    #[test]
    fn declared_fields_exist_in_the_schema() {
        for kind in EntityKind::ALL {
            let descriptor = kind.descriptor();
            let schema = (descriptor.schema)();
            let declared = descriptor
                .unique
                .iter()
                .chain(descriptor.display_names)
                .chain(
                    descriptor
                        .references
                        .iter()
                        .map(|reference| &reference.field),
                )
                .chain(
                    descriptor
                        .generated
                        .iter()
                        .map(|generated| &generated.field),
                )
                .chain([&descriptor.endpoint_key]);
            for field in declared {
                assert!(
                    schema.field(field).is_some(),
                    "{}.{field} is declared but not in the schema",
                    kind.collection()
                );
            }
        }
    }

    #[test]
    fn references_are_the_schemas_foreign_fields() {
        use crate::schema::Type;
        for kind in EntityKind::ALL {
            let descriptor = kind.descriptor();
            let mut foreign: Vec<(&str, &str)> = (descriptor.schema)()
                .fields
                .iter()
                .filter_map(|field| match field.ty {
                    // Only kinds this gateway has (a service's
                    // `client_certificate` names one it has not).
                    Type::Foreign(collection)
                        if EntityKind::from_collection(collection).is_some() =>
                    {
                        Some((field.name, collection))
                    }
                    _ => None,
                })
                .collect();
            let mut declared: Vec<(&str, &str)> = descriptor
                .references
                .iter()
                .map(|reference| (reference.field, reference.parent.collection()))
                .collect();
            foreign.sort_unstable();
            declared.sort_unstable();
            assert_eq!(foreign, declared, "{}", kind.collection());
        }
    }

    #[test]
    fn a_kind_references_each_parent_kind_once_at_most() {
        for kind in EntityKind::ALL {
            let references = kind.descriptor().references;
            for (position, reference) in references.iter().enumerate() {
                let again = references[position + 1..]
                    .iter()
                    .any(|other| other.parent == reference.parent);
                assert!(
                    !again,
                    "{} references {} twice",
                    kind.collection(),
                    reference.parent.collection()
                );
            }
        }
    }

    #[test]
    fn names_are_distinct() {
        for (position, kind) in EntityKind::ALL.iter().enumerate() {
            for other in &EntityKind::ALL[position + 1..] {
                assert_ne!(kind.collection(), other.collection());
                assert_ne!(kind.admin_path(), other.admin_path());
                assert_ne!(kind.deck_kind(), other.deck_kind());
            }
        }
    }
}
