//! A whole configuration in canonical form: what `POST /config` replaces,
//! what the proxy compiles into a snapshot and what `gwctl diff` compares.
//!
//! Every entity is a canonical JSON object (see [`crate::schema`]) with its
//! `id` set and references written as `{"id": "<uuid>"}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::entities::EntityKind;

/// A whole configuration of canonical entities as values.
pub type Config = ByKind<Value>;

/// The entities of a whole configuration, kind by kind: as values
/// ([`Config`]) or packed ([`crate::packed::PackedConfig`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByKind<T> {
    #[serde(default = "Vec::new")]
    pub services: Vec<T>,
    #[serde(default = "Vec::new")]
    pub routes: Vec<T>,
    #[serde(default = "Vec::new")]
    pub consumers: Vec<T>,
    #[serde(default = "Vec::new")]
    pub plugins: Vec<T>,
    #[serde(default = "Vec::new")]
    pub keyauth_credentials: Vec<T>,
}

impl<T> Default for ByKind<T> {
    fn default() -> Self {
        ByKind {
            services: Vec::new(),
            routes: Vec::new(),
            consumers: Vec::new(),
            plugins: Vec::new(),
            keyauth_credentials: Vec::new(),
        }
    }
}

impl<T> ByKind<T> {
    /// The entities of one kind.
    pub fn entities(&self, kind: EntityKind) -> &Vec<T> {
        match kind {
            EntityKind::Service => &self.services,
            EntityKind::Route => &self.routes,
            EntityKind::Consumer => &self.consumers,
            EntityKind::Plugin => &self.plugins,
            EntityKind::KeyAuthCredential => &self.keyauth_credentials,
        }
    }

    pub fn entities_mut(&mut self, kind: EntityKind) -> &mut Vec<T> {
        match kind {
            EntityKind::Service => &mut self.services,
            EntityKind::Route => &mut self.routes,
            EntityKind::Consumer => &mut self.consumers,
            EntityKind::Plugin => &mut self.plugins,
            EntityKind::KeyAuthCredential => &mut self.keyauth_credentials,
        }
    }

    /// How many entities of all kinds.
    pub fn len(&self) -> usize {
        EntityKind::ALL
            .iter()
            .map(|kind| self.entities(*kind).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Move `other`'s entities of `kind` here, in place of these, in a list
    /// of their length: a list read page by page grew by doubling, and
    /// would keep room for up to twice its entities.
    pub fn move_kind(&mut self, kind: EntityKind, other: &mut Self) {
        let entities = self.entities_mut(kind);
        *entities = std::mem::take(other.entities_mut(kind));
        entities.shrink_to_fit();
    }
}

/// A reference to the entity `id`, canonical: `{"id": "<uuid>"}`. Sized
/// for its one member: `json!` leaves room for three (the map grows to
/// its hash table's capacity), two 104-byte buckets more for each of the
/// hundreds of thousands of references a large configuration makes.
pub fn id_reference(id: String) -> Value {
    let mut reference = serde_json::Map::with_capacity(1);
    reference.insert("id".to_owned(), Value::String(id));
    Value::Object(reference)
}

/// The id of a canonical entity.
pub fn id_of(entity: &Value) -> Option<&str> {
    // Canonical entities list their fields in schema order, the id first:
    // looking there first spares hashing the key for every lookup.
    let object = entity.as_object()?;
    match object.iter().next() {
        Some((key, id)) if key == "id" => id.as_str(),
        _ => object.get("id").and_then(Value::as_str),
    }
}

/// The id a canonical entity's reference field points at.
pub fn reference_of<'a>(entity: &'a Value, field: &str) -> Option<&'a str> {
    entity.get(field)?.get("id")?.as_str()
}
