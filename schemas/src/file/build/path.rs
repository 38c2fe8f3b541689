//! [`EntityPath`]: where an entity sits in its file, kept as the kinds and
//! list indexes that lead to it.
//!
//! An entity's list is always named after the entity's kind (`services`,
//! a service's `routes`, a consumer's `keyauth_credentials`), so a path
//! such as `services[0].routes[1]` is the pairs (service, 0), (route, 1):
//! 8 bytes a level. A large file's quarter-million entities each carry one
//! until the build ends, and a sync keeps one per entity for its messages;
//! as a general [`FieldPath`] (a string per key, room for four segments)
//! each took ~180 bytes. The general form is made when a message or a
//! position lookup needs it.

use std::fmt;

use crate::entities::EntityKind;
use crate::error::FieldPath;

/// The path of an entity in its file, e.g. `services[0].plugins[1]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityPath(Box<[(EntityKind, u32)]>);

impl EntityPath {
    /// Item `index` of the list of `kind` under this path (the root, or
    /// the entity this path leads to).
    pub(super) fn item(&self, kind: EntityKind, index: usize) -> EntityPath {
        // No list in a file reaches 4 billion items; were one to, its
        // later items would share the last number in messages.
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let levels = self.0.iter().copied().chain([(kind, index)]);
        EntityPath(levels.collect())
    }

    /// The path of the list of `kind` under this path.
    pub(super) fn list(&self, kind: EntityKind) -> FieldPath {
        self.to_field_path().key(kind.collection())
    }

    /// The same path as a general field path.
    pub fn to_field_path(&self) -> FieldPath {
        let mut path = FieldPath::root();
        for (kind, index) in self.0.iter() {
            path = path.key(kind.collection()).index(*index as usize);
        }
        path
    }
}

impl fmt::Display for EntityPath {
    /// As [`FieldPath`] writes it: `services[0].routes[1]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (level, (kind, index)) in self.0.iter().enumerate() {
            let dot = if level == 0 { "" } else { "." };
            write!(f, "{dot}{}[{index}]", kind.collection())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_the_field_path_it_stands_for() {
        let path = EntityPath::default()
            .item(EntityKind::Service, 0)
            .item(EntityKind::Route, 12)
            .item(EntityKind::Plugin, 3);
        assert_eq!(path.to_string(), "services[0].routes[12].plugins[3]");
        assert_eq!(path.to_string(), path.to_field_path().to_string());
        let credentials = EntityPath::default()
            .item(EntityKind::Consumer, 7)
            .list(EntityKind::KeyAuthCredential);
        assert_eq!(credentials.to_string(), "consumers[7].keyauth_credentials");
    }
}
