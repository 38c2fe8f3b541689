//! Canonical entities kept as their compact JSON text: how `gwctl` holds
//! the files' build and the gateway's state of a large configuration.
//!
//! A canonical entity as a `serde_json::Value` (with `preserve_order`)
//! costs about six times its text: every object member is a 104-byte map
//! bucket, an index slot and an allocated key before its value. A
//! [`Packed`] entity is the text alone plus a few offsets:
//!
//! - its id, read without parsing;
//! - the places of its top-level `created_at` and `updated_at`, so two
//!   entities compare as [`crate::config`]'s canonical forms are compared
//!   (timestamps aside) by comparing bytes: equal bytes mean the same
//!   fields with the same values in the same order, and anything else is
//!   left to a field-by-field comparison of the parsed values;
//! - the fields references and unique checks look up ([`EntityKeys`]),
//!   read from the text on demand, borrowing it where no escapes are.
//!
//! [`Packed::unpack`] gives the `Value` back exactly (field order kept;
//! floats round-trip with serde_json's `float_roundtrip`).

use std::borrow::Cow;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::config::Config;
use crate::entities::EntityKind;

/// Top-level fields the store sets, left out of [`Packed::same_fields`].
const TIMESTAMPS: [&str; 2] = ["created_at", "updated_at"];

/// One canonical entity as compact JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    text: Box<str>,
    id: IdAt,
    /// Byte ranges of the timestamp members (each with one of its commas);
    /// `(0, 0)` when absent.
    skipped: [(u32, u32); 2],
    /// The entity leaves a generated (`auto`) field unset; see
    /// [`Packed::unset_generated`].
    unset_generated: bool,
}

/// Where the id is: a range of the text (no escapes in it), a copy
/// (escapes), or none.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IdAt {
    None,
    Span(u32, u32),
    Owned(Box<str>),
}

impl Packed {
    /// The compact text of `entity`, as `serde_json::to_string` writes it.
    pub fn new(entity: &Value) -> Packed {
        let Value::Object(members) = entity else {
            return Packed::plain(entity.to_string());
        };
        let members = members
            .iter()
            .map(|(key, value)| (Cow::Borrowed(key.as_str()), Member::Value(value)));
        pack_members(members).unwrap_or_else(|_| Packed::plain(entity.to_string()))
    }

    /// An entity as a server sent it (one JSON object): its members written
    /// compactly, each value's text kept as it came. For an answer of this
    /// project's gateway that is the text [`Packed::new`] writes for the
    /// same canonical entity.
    pub fn from_json(text: &str) -> Result<Packed, serde_json::Error> {
        let members: Vec<(Cow<'_, str>, &RawValue)> = serde_json::from_str::<RawMembers>(text)?.0;
        let members = members
            .into_iter()
            .map(|(key, value)| (key, Member::Raw(value)));
        pack_members(members)
    }

    /// A canonical entity of `kind`, marked when it leaves a generated
    /// field unset (see [`Packed::unset_generated`]).
    pub fn of_entity(kind: EntityKind, canonical: &Value) -> Packed {
        let mut packed = Packed::new(canonical);
        let record = kind.record_for(canonical);
        packed.unset_generated = record.is_some_and(|record| record.lacks_generated(canonical));
        packed
    }

    /// A value that is not an object: its text, nothing to skip.
    fn plain(text: String) -> Packed {
        Packed {
            text: text.into_boxed_str(),
            id: IdAt::None,
            skipped: [(0, 0); 2],
            unset_generated: false,
        }
    }

    /// The compact JSON text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The entity's id, if it has a string one.
    pub fn id(&self) -> Option<&str> {
        match &self.id {
            IdAt::None => None,
            IdAt::Span(start, end) => self.text.get(*start as usize..*end as usize),
            IdAt::Owned(id) => Some(id),
        }
    }

    /// The entity as a `Value` again, fields in the same order.
    pub fn unpack(&self) -> Value {
        // The text was written by serde_json from a Value: it parses back.
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// Whether the two entities hold the same fields with the same values
    /// in the same order, top-level timestamps aside. `false` says only
    /// that the texts differ: null, `[]` and `{}`, say, are for a
    /// field-by-field comparison to tell apart.
    pub fn same_fields(&self, other: &Packed) -> bool {
        same_bytes(self.kept_parts(), other.kept_parts())
    }

    /// The text without the skipped timestamp members, in three parts.
    fn kept_parts(&self) -> [&[u8]; 3] {
        let bytes = self.text.as_bytes();
        let [(a0, a1), (b0, b1)] = self.skipped.map(|(s, e)| (s as usize, e as usize));
        if a1 == 0 {
            return [bytes, &[], &[]];
        }
        if b1 == 0 {
            return [&bytes[..a0], &bytes[a1..], &[]];
        }
        [&bytes[..a0], &bytes[a1..b0], &bytes[b1..]]
    }

    /// Whether the build found a generated (`auto`) field unset in this
    /// entity, besides its id and timestamps: a sync then keeps the live
    /// entity's value rather than show a change.
    pub fn unset_generated(&self) -> bool {
        self.unset_generated
    }

    /// The fields an entity of `kind` is found by: its id, its kind's
    /// unique fields and, for a plugin, its name and scope.
    pub fn keys(&self, kind: EntityKind) -> EntityKeys<'_> {
        let mut keys = EntityKeys::default();
        let wanted = KeyFields { kind };
        let mut deserializer = serde_json::Deserializer::from_str(&self.text);
        if let Ok(found) = wanted.deserialize(&mut deserializer) {
            keys = found;
        }
        keys
    }
}

/// A member's value: parsed, or the text a server sent.
enum Member<'v> {
    Value(&'v Value),
    Raw(&'v RawValue),
}

impl Member<'_> {
    fn write(&self, text: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        match self {
            Member::Value(value) => write_json(text, value),
            Member::Raw(raw) => {
                text.extend_from_slice(raw.get().as_bytes());
                Ok(())
            }
        }
    }

    /// Where the id written at `start..end` of the text is.
    fn id_at(&self, start: usize, end: usize) -> IdAt {
        let id = match self {
            Member::Value(value) => value.as_str().map(Cow::Borrowed),
            Member::Raw(raw) => text_of(raw),
        };
        match id {
            // Written as `"` id `"`: no escapes inside.
            Some(id) if id.len() + 2 == end - start => {
                IdAt::Span(offset(start + 1), offset(end - 1))
            }
            Some(id) => IdAt::Owned(id.into()),
            None => IdAt::None,
        }
    }
}

/// An object's members in order: keys decoded, values as sent.
struct RawMembers<'t>(Vec<(Cow<'t, str>, &'t RawValue)>);

impl<'de> Deserialize<'de> for RawMembers<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = RawMembers<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    members.push((key.0, map.next_value::<&'de RawValue>()?));
                }
                Ok(RawMembers(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// An object written compactly from its members, with its id and the
/// places of its timestamps noted.
fn pack_members<'v>(
    members: impl ExactSizeIterator<Item = (Cow<'v, str>, Member<'v>)>,
) -> Result<Packed, serde_json::Error> {
    let count = members.len();
    let mut text = Vec::with_capacity(256);
    let mut id = IdAt::None;
    let mut skipped = [(0u32, 0u32); 2];
    let mut skips = 0;
    let mut kept_any = false;
    text.push(b'{');
    for (position, (key, value)) in members.enumerate() {
        let start = text.len();
        if position > 0 {
            text.push(b',');
        }
        let member_start = text.len();
        write_json(&mut text, key.as_ref())?;
        text.push(b':');
        let value_start = text.len();
        value.write(&mut text)?;
        let end = text.len();
        if key == "id" {
            id = value.id_at(value_start, end);
        }
        if TIMESTAMPS.contains(&key.as_ref()) && skips < 2 {
            // Before any kept member the member goes with the comma after
            // it, later with the comma before it, so what is left reads as
            // the object without it.
            let more = position + 1 < count;
            let range = if kept_any {
                (start, end)
            } else {
                (member_start, end + usize::from(more))
            };
            skipped[skips] = (offset(range.0), offset(range.1));
            skips += 1;
        } else {
            kept_any = true;
        }
    }
    text.push(b'}');
    Ok(Packed {
        text: into_text(text),
        id,
        skipped,
        unset_generated: false,
    })
}

/// `value` appended to `text` as compact JSON.
fn write_json<T: serde::Serialize + ?Sized>(
    text: &mut Vec<u8>,
    value: &T,
) -> Result<(), serde_json::Error> {
    serde_json::to_writer(text, value)
}

/// Texts written by serde_json are UTF-8; anything else would be a bug,
/// answered with the lossy form rather than a panic.
fn into_text(bytes: Vec<u8>) -> Box<str> {
    match String::from_utf8(bytes) {
        Ok(text) => text.into_boxed_str(),
        Err(error) => String::from_utf8_lossy(error.as_bytes())
            .into_owned()
            .into_boxed_str(),
    }
}

fn offset(at: usize) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}

/// Whether two byte strings, each given in parts, are equal.
fn same_bytes(a: [&[u8]; 3], b: [&[u8]; 3]) -> bool {
    let total = |parts: &[&[u8]; 3]| parts.iter().map(|part| part.len()).sum::<usize>();
    if total(&a) != total(&b) {
        return false;
    }
    let (mut a, mut b) = (
        a.iter().copied().filter(|p| !p.is_empty()),
        b.iter().copied(),
    );
    let (mut left, mut right): (&[u8], &[u8]) = (&[], &[]);
    loop {
        if left.is_empty() {
            match a.next() {
                Some(part) => left = part,
                None => return true,
            }
        }
        while right.is_empty() {
            match b.next() {
                Some(part) => right = part,
                None => return false,
            }
        }
        let n = left.len().min(right.len());
        if left[..n] != right[..n] {
            return false;
        }
        left = &left[n..];
        right = &right[n..];
    }
}

/// The fields an entity is found by, read from its text.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EntityKeys<'t> {
    pub id: Option<Cow<'t, str>>,
    /// The kind's unique fields that are set, in the kind's order.
    pub unique: Vec<(&'static str, Cow<'t, str>)>,
    /// A plugin's name.
    pub name: Option<Cow<'t, str>>,
    /// A plugin's scope: the ids of its route, service and consumer.
    pub scope: [Option<Cow<'t, str>>; 3],
}

/// The plugin scope fields, in [`EntityKeys::scope`]'s order.
pub const SCOPE_FIELDS: [&str; 3] = ["route", "service", "consumer"];

/// Reads [`EntityKeys`] of `kind` from an object, skipping other fields.
struct KeyFields {
    kind: EntityKind,
}

impl<'de> de::DeserializeSeed<'de> for KeyFields {
    type Value = EntityKeys<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeyFields {
    type Value = EntityKeys<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an entity object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let unique = self.kind.descriptor().unique;
        let plugin = self.kind == EntityKind::Plugin;
        let mut keys = EntityKeys::default();
        let mut found: Vec<(&'static str, Cow<'de, str>)> = Vec::new();
        while let Some(key) = map.next_key::<Text<'de>>()? {
            let key = key.0;
            if key == "id" {
                keys.id = map.next_value::<MaybeText<'de>>()?.0;
            } else if let Some(field) = unique.iter().find(|field| **field == key) {
                if let Some(value) = map.next_value::<MaybeText<'de>>()?.0 {
                    found.push((field, value));
                }
            } else if plugin && key == "name" {
                keys.name = map.next_value::<MaybeText<'de>>()?.0;
            } else if let Some(slot) = SCOPE_FIELDS.iter().position(|f| plugin && *f == key) {
                keys.scope[slot] = map.next_value::<Reference<'de>>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        // In the kind's order, whatever the text's.
        found.sort_by_key(|(field, _)| unique.iter().position(|f| f == field));
        keys.unique = found;
        Ok(keys)
    }
}

/// A string, borrowed from the text when it has no escapes.
struct Text<'t>(Cow<'t, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// A string value, or nothing when the value is anything else.
struct MaybeText<'t>(Option<Cow<'t, str>>);

impl<'de> Deserialize<'de> for MaybeText<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        Ok(MaybeText(text_of(raw)))
    }
}

/// The id of a reference `{"id": "..."}`, or nothing.
struct Reference<'t>(Option<Cow<'t, str>>);

impl<'de> Deserialize<'de> for Reference<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        if !raw.get().starts_with('{') {
            return Ok(Reference(None));
        }
        let mut inner = serde_json::Deserializer::from_str(raw.get());
        let keys = KeyFields {
            kind: EntityKind::Service,
        };
        // A service's keys include its id: the only member wanted here.
        let id = keys.deserialize(&mut inner).ok().and_then(|keys| keys.id);
        Ok(Reference(id))
    }
}

/// The string `raw` holds, borrowed when written without escapes.
fn text_of(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    match text.get(1..text.len() - 1) {
        Some(inner) if !inner.contains('\\') => Some(Cow::Borrowed(inner)),
        _ => serde_json::from_str::<String>(text).ok().map(Cow::Owned),
    }
}

/// A whole configuration of packed entities, kind by kind as [`Config`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackedConfig {
    pub services: Vec<Packed>,
    pub routes: Vec<Packed>,
    pub consumers: Vec<Packed>,
    pub plugins: Vec<Packed>,
    pub keyauth_credentials: Vec<Packed>,
}

impl PackedConfig {
    /// The entities of one kind.
    pub fn entities(&self, kind: EntityKind) -> &Vec<Packed> {
        match kind {
            EntityKind::Service => &self.services,
            EntityKind::Route => &self.routes,
            EntityKind::Consumer => &self.consumers,
            EntityKind::Plugin => &self.plugins,
            EntityKind::KeyAuthCredential => &self.keyauth_credentials,
        }
    }

    pub fn entities_mut(&mut self, kind: EntityKind) -> &mut Vec<Packed> {
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

    /// Every entity of `config`, packed.
    pub fn pack(config: &Config) -> PackedConfig {
        let mut packed = PackedConfig::default();
        for kind in EntityKind::ALL {
            let entities = config.entities(kind).iter().map(Packed::new);
            packed.entities_mut(kind).extend(entities);
        }
        packed
    }

    /// Every entity as a `Value` again.
    pub fn unpack(&self) -> Config {
        let mut config = Config::default();
        for kind in EntityKind::ALL {
            let entities = self.entities(kind).iter().map(Packed::unpack);
            config.entities_mut(kind).extend(entities);
        }
        config
    }

    /// The entities as the flat `POST /config` body writes them:
    /// `{"services":[...],"routes":[...],...}`, each list given by `list`.
    pub fn write_flat<'a>(mut list: impl FnMut(EntityKind) -> Vec<&'a str>) -> String {
        let mut body = String::from("{");
        for (position, kind) in EntityKind::ALL.into_iter().enumerate() {
            if position > 0 {
                body.push(',');
            }
            body.push('"');
            body.push_str(kind.collection());
            body.push_str("\":[");
            for (index, text) in list(kind).into_iter().enumerate() {
                if index > 0 {
                    body.push(',');
                }
                body.push_str(text);
            }
            body.push(']');
        }
        body.push('}');
        body
    }
}

#[cfg(test)]
mod tests;
