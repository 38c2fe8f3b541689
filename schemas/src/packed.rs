//! Canonical entities kept as their compact JSON text: how `gwctl` holds
//! the files' build and the gateway's state of a large configuration.
//!
//! A canonical entity as a `serde_json::Value` (with `preserve_order`)
//! costs about six times its text: every object member is a 104-byte map
//! bucket, an index slot and an allocated key before its value. A
//! [`Packed`] entity is the text alone plus a few offsets into it, noted
//! while it is written:
//!
//! - its id;
//! - the places of its top-level `created_at` and `updated_at`, so two
//!   entities compare as [`crate::config`]'s canonical forms are compared
//!   (timestamps aside) by comparing bytes: equal bytes mean the same
//!   fields with the same values in the same order, and anything else is
//!   left to a field-by-field comparison of the parsed values;
//! - the fields references and unique checks look up ([`EntityKeys`]): its
//!   names and the ids its references point at.
//!
//! A key written with escapes is kept once more, unescaped, after the JSON
//! text in the same buffer, so every key reads as a plain `&str`.
//!
//! [`Packed::unpack`] gives the `Value` back exactly (field order kept;
//! floats round-trip with serde_json's `float_roundtrip`).

use std::borrow::Cow;
use std::ops::Range;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::config::{ByKind, Config};
use crate::entities::EntityKind;

/// Top-level fields the store sets, left out of [`Packed::same_fields`].
const TIMESTAMPS: [&str; 2] = ["created_at", "updated_at"];

/// Top-level fields whose text (a string, or the id of a reference
/// `{"id": ...}`) is noted: every kind's unique fields, a plugin's name and
/// its scope.
const KEY_FIELDS: [&str; 8] = [
    "name",
    "username",
    "custom_id",
    "key",
    "instance_name",
    "route",
    "service",
    "consumer",
];

/// The most key fields one entity sets (a plugin: its name, its instance
/// name and its three scope references).
const MAX_KEYS: usize = 5;

/// The plugin scope fields, in [`EntityKeys::scope`]'s order.
pub const SCOPE_FIELDS: [&str; 3] = ["route", "service", "consumer"];

/// A byte range of the buffer; [`Span::NONE`] for none (the buffer starts
/// with `{`, so no text starts at 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span(u32, u32);

impl Span {
    const NONE: Span = Span(0, 0);

    fn of(range: Range<usize>) -> Span {
        Span(offset(range.start), offset(range.end))
    }

    fn is_none(self) -> bool {
        self == Span::NONE
    }
}

/// One canonical entity as compact JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// The JSON text, then the key texts that needed unescaping.
    buffer: Box<str>,
    /// Where the JSON, the id, the timestamps and the key texts are.
    spans: Spans,
    /// The key fields set: indexes into [`KEY_FIELDS`] (`u8::MAX` for an
    /// unused slot), their texts at [`KEY_SPANS`] in the same order.
    key_fields: [u8; MAX_KEYS],
    /// The entity leaves a generated (`auto`) field unset; see
    /// [`Packed::unset_generated`].
    unset_generated: bool,
}

/// The places of [`Spans`]: the JSON text (from 0), the id, the two
/// timestamp members (each with one of its commas), the key texts.
const JSON_SPAN: usize = 0;
const ID_SPAN: usize = 1;
const SKIPPED_SPANS: [usize; 2] = [2, 3];
const KEY_SPANS: [usize; MAX_KEYS] = [4, 5, 6, 7, 8];
const SPANS: usize = 9;

/// A packed entity's spans, as two offsets each. A buffer shorter than
/// 64 KiB (every entity but one with a huge configuration) takes two bytes
/// an offset; a longer one four, in a box. Large builds hold two packed
/// entities for each of hundreds of thousands: 64 bytes each rather than
/// 96 with four-byte offsets inline.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Spans {
    Narrow([u16; 2 * SPANS]),
    Wide(Box<[u32; 2 * SPANS]>),
}

impl Spans {
    fn new(spans: [Span; SPANS], buffer_len: usize) -> Spans {
        let mut offsets = [0u32; 2 * SPANS];
        for (pair, Span(start, end)) in offsets.chunks_exact_mut(2).zip(spans) {
            pair.copy_from_slice(&[start, end]);
        }
        // Every offset is at most the buffer's length.
        match u16::try_from(buffer_len) {
            Ok(_) => Spans::Narrow(offsets.map(|offset| u16::try_from(offset).unwrap_or(0))),
            Err(_) => Spans::Wide(Box::new(offsets)),
        }
    }

    /// The span at `place` (one of the places above).
    fn get(&self, place: usize) -> Span {
        let (start, end) = (2 * place, 2 * place + 1);
        match self {
            Spans::Narrow(offsets) => Span(u32::from(offsets[start]), u32::from(offsets[end])),
            Spans::Wide(offsets) => Span(offsets[start], offsets[end]),
        }
    }
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
        let members = serde_json::from_str::<RawMembers>(text)?.0;
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

    /// A value that is not an object: its text, nothing noted.
    fn plain(text: String) -> Packed {
        Writer {
            text: text.into_bytes(),
            ..Writer::default()
        }
        .finish()
    }

    /// The compact JSON text.
    pub fn text(&self) -> &str {
        let Span(_, json_end) = self.spans.get(JSON_SPAN);
        self.buffer.get(..json_end as usize).unwrap_or_default()
    }

    /// The entity's id, if it has a string one.
    pub fn id(&self) -> Option<&str> {
        self.slice(self.spans.get(ID_SPAN))
    }

    /// The entity as a `Value` again, fields in the same order.
    pub fn unpack(&self) -> Value {
        // The text was written by serde_json: it parses back.
        serde_json::from_str(self.text()).unwrap_or(Value::Null)
    }

    /// Whether the two entities hold the same fields with the same values
    /// in the same order, top-level timestamps aside. `false` says only
    /// that the texts differ: null, `[]` and `{}`, say, are for a
    /// field-by-field comparison to tell apart.
    pub fn same_fields(&self, other: &Packed) -> bool {
        same_bytes(self.kept_parts(), other.kept_parts())
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
        let mut keys = EntityKeys {
            id: self.id(),
            ..EntityKeys::default()
        };
        let unique = kind.descriptor().unique.iter();
        let set = unique.filter_map(|field| Some((*field, self.key(field)?)));
        for (slot, found) in keys.unique.iter_mut().zip(set) {
            *slot = Some(found);
        }
        if kind == EntityKind::Plugin {
            keys.name = self.key("name");
            keys.scope = SCOPE_FIELDS.map(|field| self.key(field));
        }
        keys
    }

    /// The text of key field `field` (one of [`KEY_FIELDS`]): a string's,
    /// or the id a reference points at.
    fn key(&self, field: &str) -> Option<&str> {
        let slot = self
            .key_fields
            .iter()
            .position(|index| KEY_FIELDS.get(usize::from(*index)) == Some(&field))?;
        self.slice(self.spans.get(*KEY_SPANS.get(slot)?))
    }

    fn slice(&self, span: Span) -> Option<&str> {
        if span.is_none() {
            return None;
        }
        self.buffer.get(span.0 as usize..span.1 as usize)
    }

    /// The text without the skipped timestamp members, in three parts.
    fn kept_parts(&self) -> [&[u8]; 3] {
        let bytes = self.text().as_bytes();
        let skipped = SKIPPED_SPANS.map(|place| self.spans.get(place));
        let [(a0, a1), (b0, b1)] = skipped.map(|Span(s, e)| (s as usize, e as usize));
        if a1 == 0 {
            return [bytes, &[], &[]];
        }
        if b1 == 0 {
            return [&bytes[..a0], &bytes[a1..], &[]];
        }
        [&bytes[..a0], &bytes[a1..b0], &bytes[b1..]]
    }
}

/// The fields an entity is found by (see [`Packed::keys`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EntityKeys<'t> {
    pub id: Option<&'t str>,
    /// The kind's unique fields that are set, in the kind's order.
    pub unique: [Option<(&'static str, &'t str)>; 2],
    /// A plugin's name.
    pub name: Option<&'t str>,
    /// A plugin's scope: the ids of its route, service and consumer.
    pub scope: [Option<&'t str>; 3],
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

    fn is_string(&self) -> bool {
        match self {
            Member::Value(value) => value.is_string(),
            Member::Raw(raw) => raw.get().starts_with('"'),
        }
    }

    /// The string this value is, or the id of the reference `{"id": ...}`
    /// it is.
    fn key_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Member::Value(Value::Object(reference)) if reference.len() == 1 => {
                reference.get("id")?.as_str().map(Cow::Borrowed)
            }
            Member::Value(value) => value.as_str().map(Cow::Borrowed),
            Member::Raw(raw) if raw.get().starts_with('{') => {
                let reference = serde_json::from_str::<RawReference<'_>>(raw.get()).ok()?;
                text_of(reference.id)
            }
            Member::Raw(raw) => text_of(raw),
        }
    }
}

/// A reference as sent: `{"id": ...}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReference<'t> {
    #[serde(borrow)]
    id: &'t RawValue,
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

/// An object written compactly from its members, with its id, the places
/// of its timestamps and its key fields noted.
fn pack_members<'v>(
    members: impl ExactSizeIterator<Item = (Cow<'v, str>, Member<'v>)>,
) -> Result<Packed, serde_json::Error> {
    let count = members.len();
    let mut writer = Writer::default();
    writer.text.reserve(256);
    writer.text.push(b'{');
    for (position, (key, value)) in members.enumerate() {
        let start = writer.text.len();
        if position > 0 {
            writer.text.push(b',');
        }
        let member_start = writer.text.len();
        write_json(&mut writer.text, key.as_ref())?;
        writer.text.push(b':');
        let value_start = writer.text.len();
        value.write(&mut writer.text)?;
        let written = value_start..writer.text.len();
        if key == "id" {
            writer.id = match value.is_string() {
                true => writer.note_text(&value, written),
                false => Span::NONE,
            };
        } else if TIMESTAMPS.contains(&key.as_ref()) {
            let more = position + 1 < count;
            writer.skip(start..written.end, member_start, more);
            continue;
        } else if let Some(field) = KEY_FIELDS.iter().position(|field| *field == key) {
            writer.note_key(field, &value, written);
        }
        writer.kept_any = true;
    }
    writer.text.push(b'}');
    Ok(writer.finish())
}

/// A [`Packed`] being written.
#[derive(Default)]
struct Writer {
    text: Vec<u8>,
    /// Key texts that needed unescaping, placed after the JSON.
    unescaped: Vec<String>,
    id: Span,
    skipped: [Span; 2],
    skips: usize,
    kept_any: bool,
    key_fields: [u8; MAX_KEYS],
    key_spans: [Span; MAX_KEYS],
    keys: usize,
}

/// Marks a span as the `n`th unescaped text until it is placed.
const UNPLACED: u32 = u32::MAX;

impl Writer {
    /// Note a timestamp member written at `member` (from its comma, if it
    /// has one before it): before any kept member it goes with the comma
    /// after it, later with the comma before it, so what is left reads as
    /// the object without it.
    fn skip(&mut self, member: Range<usize>, member_start: usize, more: bool) {
        if self.skips == self.skipped.len() {
            return;
        }
        self.skipped[self.skips] = if self.kept_any {
            Span::of(member)
        } else {
            Span::of(member_start..member.end + usize::from(more))
        };
        self.skips += 1;
    }

    fn note_key(&mut self, field: usize, value: &Member<'_>, written: Range<usize>) {
        if self.keys == MAX_KEYS {
            return;
        }
        let span = self.note_text(value, written);
        if !span.is_none() {
            self.key_fields[self.keys] = u8::try_from(field).unwrap_or(u8::MAX);
            self.key_spans[self.keys] = span;
            self.keys += 1;
        }
    }

    /// Where the text of `value` (written at `written`) can be read: in
    /// the JSON when written without escapes (a string is then its quotes
    /// around the text, a reference `{"id":"` and `"}` around it: an
    /// escape would make it longer), else in the unescaped part.
    fn note_text(&mut self, value: &Member<'_>, written: Range<usize>) -> Span {
        let Some(text) = value.key_text() else {
            return Span::NONE;
        };
        let json = &self.text[written.clone()];
        let around = if json.starts_with(b"{\"id\":\"") {
            9
        } else {
            2
        };
        if json.len() == text.len() + around {
            let start = written.start + around - 1 - usize::from(around == 9);
            return Span::of(start..written.end - 1 - usize::from(around == 9));
        }
        self.unescaped.push(text.into_owned());
        Span(UNPLACED, offset(self.unescaped.len() - 1))
    }

    fn finish(self) -> Packed {
        let json_len = self.text.len();
        let mut buffer = self.text;
        let mut placed = Vec::with_capacity(self.unescaped.len());
        for text in &self.unescaped {
            let start = buffer.len();
            buffer.extend_from_slice(text.as_bytes());
            placed.push(Span::of(start..buffer.len()));
        }
        let place = |span: Span| match span {
            Span(UNPLACED, n) => placed.get(n as usize).copied().unwrap_or(Span::NONE),
            other => other,
        };
        let mut key_fields = [u8::MAX; MAX_KEYS];
        key_fields[..self.keys].copy_from_slice(&self.key_fields[..self.keys]);
        let [skipped_a, skipped_b] = self.skipped;
        let [key_a, key_b, key_c, key_d, key_e] = self.key_spans.map(place);
        let spans = [
            Span::of(0..json_len),
            place(self.id),
            skipped_a,
            skipped_b,
            key_a,
            key_b,
            key_c,
            key_d,
            key_e,
        ];
        Packed {
            spans: Spans::new(spans, buffer.len()),
            buffer: into_text(buffer),
            key_fields,
            unset_generated: false,
        }
    }
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
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                text: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// The string `raw` holds, or nothing when it holds something else.
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
pub type PackedConfig = ByKind<Packed>;

impl ByKind<Packed> {
    /// The place of the entity `id` among those of `kind` (a linear search:
    /// for messages).
    pub fn position_of(&self, kind: EntityKind, id: &str) -> Option<usize> {
        self.entities(kind)
            .iter()
            .position(|entity| entity.id() == Some(id))
    }

    /// The entity `id` of `kind` (a linear search: for messages).
    pub fn find(&self, kind: EntityKind, id: &str) -> Option<&Packed> {
        self.entities(kind).get(self.position_of(kind, id)?)
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
    pub fn write_flat<L, T>(mut list: impl FnMut(EntityKind) -> L) -> String
    where
        L: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
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
                body.push_str(text.as_ref());
            }
            body.push(']');
        }
        body.push('}');
        body
    }
}

#[cfg(test)]
mod tests;
