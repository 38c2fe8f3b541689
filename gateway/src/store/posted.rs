//! What [`Store::replace_all`](super::Store::replace_all) reads a whole
//! configuration from: entities per kind, each readable as a JSON value
//! when it is prepared.
//!
//! A [`Config`] holds parsed values (the gateway's own startup file); the
//! Admin API's `POST /config` holds each entity as raw JSON text borrowed
//! from the request body (`serde_json::value::RawValue`), parsed one at a
//! time by the thread preparing it and dropped once its row is encoded.
//! A parsed tree of a 250k-entity body costs over 400 MB; the raw body
//! is about an eighth of that.

use std::borrow::Cow;

use schemas::config::Config;
use schemas::EntityKind;
use serde_json::value::RawValue;
use serde_json::Value;

/// One posted entity.
pub trait PostedEntity: Sync {
    /// The entity as a JSON value. Raw text that does not parse (it cannot:
    /// the body it comes from was parsed whole) reads as `null`, which
    /// validation refuses.
    fn value(&self) -> Cow<'_, Value>;
}

impl PostedEntity for Value {
    fn value(&self) -> Cow<'_, Value> {
        Cow::Borrowed(self)
    }
}

impl PostedEntity for &RawValue {
    fn value(&self) -> Cow<'_, Value> {
        Cow::Owned(serde_json::from_str(self.get()).unwrap_or(Value::Null))
    }
}

/// A whole posted configuration: its entities per kind, in posted order.
pub trait PostedConfig: Sync {
    type Entity: PostedEntity;

    fn entities(&self, kind: EntityKind) -> &[Self::Entity];
}

impl PostedConfig for Config {
    type Entity = Value;

    fn entities(&self, kind: EntityKind) -> &[Value] {
        Config::entities(self, kind)
    }
}

/// Raw entities borrowed from a request body.
#[derive(Debug, Default)]
pub struct RawConfig<'a> {
    kinds: [Vec<&'a RawValue>; EntityKind::ALL.len()],
}

impl<'a> RawConfig<'a> {
    /// Set the entities of `kind` (a repeated key replaces the earlier
    /// one, as it does in a parsed JSON object).
    pub fn set(&mut self, kind: EntityKind, entities: Vec<&'a RawValue>) {
        self.kinds[kind.index()] = entities;
    }

    /// How many entities of all kinds.
    pub fn len(&self) -> usize {
        self.kinds.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a> PostedConfig for RawConfig<'a> {
    type Entity = &'a RawValue;

    fn entities(&self, kind: EntityKind) -> &[&'a RawValue] {
        &self.kinds[kind.index()]
    }
}
