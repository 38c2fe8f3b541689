//! What [`Store::replace_all`](super::Store::replace_all) reads a whole
//! configuration from: entities per kind, each read as a JSON value when it
//! is prepared.
//!
//! A [`Config`] holds parsed values (the gateway's own startup file). The
//! Admin API's `POST /config` hands over a [`RawConfig`]: the request body
//! with the place of each entity's JSON text in it. Each entity is parsed
//! by the thread preparing it and dropped once its row is encoded, and the
//! body itself is released as soon as the new rows are written, before the
//! commit hook compiles the proxy's snapshot. (A parsed tree of a
//! 250k-entity body costs over 400 MB; the body is about 60 MB.)

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use schemas::config::Config;
use schemas::EntityKind;
use serde_json::value::RawValue;
use serde_json::Value;

/// A whole posted configuration: its entities per kind, in posted order.
pub trait PostedConfig: Sync {
    /// How many entities of `kind`.
    fn count(&self, kind: EntityKind) -> usize;

    /// The entity of `kind` at `position` (below [`PostedConfig::count`]).
    /// Raw text that does not parse (it cannot: the body was parsed whole)
    /// reads as `null`, which validation refuses.
    fn entity(&self, kind: EntityKind, position: usize) -> Cow<'_, Value>;
}

impl PostedConfig for Config {
    fn count(&self, kind: EntityKind) -> usize {
        self.entities(kind).len()
    }

    fn entity(&self, kind: EntityKind, position: usize) -> Cow<'_, Value> {
        self.entities(kind)
            .get(position)
            .map_or(Cow::Owned(Value::Null), Cow::Borrowed)
    }
}

impl<T: PostedConfig> PostedConfig for &T {
    fn count(&self, kind: EntityKind) -> usize {
        (**self).count(kind)
    }

    fn entity(&self, kind: EntityKind, position: usize) -> Cow<'_, Value> {
        (**self).entity(kind, position)
    }
}

/// A request body and where each entity's JSON text is in it.
#[derive(Debug, Default)]
pub struct RawConfig {
    text: Bytes,
    spans: [Vec<Range<usize>>; EntityKind::ALL.len()],
}

impl RawConfig {
    /// A configuration without entities yet, over the body `text`.
    pub fn new(text: Bytes) -> Self {
        Self {
            text,
            spans: Default::default(),
        }
    }

    /// The body the entities are read from.
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// Set the entities of `kind`, slices of [`RawConfig::text`] (a
    /// repeated key replaces the earlier one, as it does in a parsed JSON
    /// object). Returns false, setting nothing, for a slice of other text.
    pub fn set(&mut self, kind: EntityKind, entities: &[&RawValue]) -> bool {
        let start = self.text.as_ptr() as usize;
        let end = start + self.text.len();
        let spans: Option<Vec<Range<usize>>> = entities
            .iter()
            .map(|raw| {
                let text = raw.get();
                let at = text.as_ptr() as usize;
                (at >= start && at + text.len() <= end).then(|| at - start..at - start + text.len())
            })
            .collect();
        match spans {
            Some(spans) => {
                self.spans[kind.index()] = spans;
                true
            }
            None => false,
        }
    }

    /// The JSON text of an entity.
    pub fn entity_text(&self, kind: EntityKind, position: usize) -> Option<&[u8]> {
        let span = self.spans[kind.index()].get(position)?;
        self.text.get(span.clone())
    }

    /// How many entities of all kinds.
    pub fn len(&self) -> usize {
        self.spans.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PostedConfig for RawConfig {
    fn count(&self, kind: EntityKind) -> usize {
        self.spans[kind.index()].len()
    }

    fn entity(&self, kind: EntityKind, position: usize) -> Cow<'_, Value> {
        let parsed = self
            .entity_text(kind, position)
            .and_then(|text| serde_json::from_slice(text).ok());
        Cow::Owned(parsed.unwrap_or(Value::Null))
    }
}
