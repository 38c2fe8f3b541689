//! YAML (and JSON, parsed as YAML) text to [`serde_json::Value`] plus a
//! [`Positions`] table.
//!
//! Built on the event parser of `yaml-rust2`. Scalars follow the YAML 1.2
//! core schema: plain `null`/`~`/empty are null, `true`/`false` booleans,
//! decimal, `0x` and `0o` integers stay integers, floats are floats and
//! everything else is a string; quoted and block scalars are always
//! strings. `.inf` and `.nan` stay strings because JSON cannot hold them.
//! Anchors, aliases and `<<` merge keys are resolved.
//!
//! Stricter than decK (go-yaml): a duplicate mapping key is an error, and
//! so are mappings or sequences used as keys; non-string scalar keys become
//! strings (`1: x` has key `"1"`). Nesting is capped at [`MAX_DEPTH`] and
//! alias expansion at [`MAX_ALIAS_NODES`] nodes, so hostile input fails
//! with an error instead of exhausting the stack or memory.
//!
//! Every document of a multi-document stream (`---`) is returned. decK
//! reads only the first document of a file and silently drops the rest;
//! the loader treats each document like a separate file instead, so
//! nothing in a file is ignored without notice.

use std::collections::HashMap;

use serde_json::map::Entry;
use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

use super::pos::{KeyArena, PackedPos, PosEntry, PosNode};
pub use super::pos::{Path, PathSeg, Pos, Positions};

/// Deepest allowed nesting of mappings and sequences.
pub const MAX_DEPTH: usize = 256;

/// Most nodes that alias expansion may create in one stream; stops
/// "billion laughs" documents.
pub const MAX_ALIAS_NODES: usize = 1_000_000;

/// Tag handle of the YAML core tags (`!!str`, `!!int`, ...).
const CORE_TAG_HANDLE: &str = "tag:yaml.org,2002:";

/// A YAML syntax or structure error at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line}, column {column}")]
pub struct YamlError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What went wrong, without the position.
    pub message: String,
}

impl YamlError {
    /// The position as a [`Pos`].
    pub fn pos(&self) -> Pos {
        Pos::new(self.line, self.column)
    }

    fn at(pos: PackedPos, message: impl Into<String>) -> Self {
        let pos = pos.unpack();
        YamlError {
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }
}

/// One parsed document: its value and where each node came from.
#[derive(Debug, Clone)]
pub struct YamlDoc {
    /// The document as JSON.
    pub value: Value,
    /// Positions of the nodes of `value`.
    pub positions: Positions,
}

/// Parses every document in `text`. An empty or comment-only text has no
/// documents.
pub fn parse_documents(text: &str) -> Result<Vec<YamlDoc>, YamlError> {
    if let Some(docs) = super::yaml_split::parse(text) {
        return Ok(docs);
    }
    parse_documents_at(text, 0)
}

/// Like [`parse_documents`], for a text that starts on line
/// `line_offset + 1` of a larger file (e.g. a block of a Markdown page):
/// all positions, including error positions, are lines of that file.
pub fn parse_documents_at(text: &str, line_offset: usize) -> Result<Vec<YamlDoc>, YamlError> {
    parse_nested(text, line_offset, 0)
}

/// [`parse_documents_at`] for a text whose nodes sit `depth` levels below
/// the root of the document they belong to (a run of a sequence's items,
/// see `yaml_split`): the nesting cap counts those levels too.
pub(crate) fn parse_nested(
    text: &str,
    line_offset: usize,
    depth: usize,
) -> Result<Vec<YamlDoc>, YamlError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder::new(text, line_offset);
    builder.depth_offset = depth;
    // Pulling events one by one (rather than `Parser::load` with a
    // `MarkedEventReceiver`) lets us stop at the first error, e.g. when the
    // depth cap is hit, and avoids the assertion `load` makes.
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| scan_error(&e, line_offset))?;
        if event == Event::StreamEnd {
            return Ok(builder.docs);
        }
        builder.on_event(event, mark)?;
    }
}

/// Resolves a plain (unquoted) scalar by the YAML 1.2 core schema.
pub fn resolve_plain_scalar(text: &str) -> Value {
    core_schema_value(text).unwrap_or_else(|| Value::String(text.to_owned()))
}

fn scan_error(error: &ScanError, line_offset: usize) -> YamlError {
    let mark = error.marker();
    YamlError {
        line: mark.line() + line_offset,
        column: mark.col() + 1,
        message: error.info().to_owned(),
    }
}

/// A finished node.
#[derive(Debug, Clone)]
struct Node {
    value: Value,
    pos: PosNode,
}

/// A sequence under construction.
struct SeqFrame {
    anchor: usize,
    pos: PackedPos,
    values: Vec<Value>,
    positions: Vec<PosNode>,
}

/// A mapping under construction.
struct MapFrame {
    anchor: usize,
    pos: PackedPos,
    /// Character index of the `MappingStart` mark. For block mappings
    /// yaml-rust2 reports a mark *after* the first key, so the mapping's
    /// position becomes its first key's when that comes earlier.
    start_index: usize,
    seen_key: bool,
    values: Map<String, Value>,
    positions: Vec<PosEntry>,
    pending: Option<PendingKey>,
    /// Values of `<<` keys, applied when the mapping ends so that explicit
    /// keys win wherever they appear.
    merges: Vec<Node>,
}

/// The key whose value is expected next.
enum PendingKey {
    Named { key: String, pos: PackedPos },
    Merge,
}

enum Frame {
    Seq(SeqFrame),
    Map(MapFrame),
}

/// Turns parser events into documents.
struct Builder<'a> {
    text: &'a str,
    /// Byte offset of the character index of the last sequence start; marks
    /// count characters, the text is indexed by bytes.
    cursor: CharCursor,
    line_offset: usize,
    /// Levels above this text's root in the whole document.
    depth_offset: usize,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    alias_budget: usize,
    /// Key texts of the current document's position table.
    keys: KeyArena,
    root: Option<Node>,
    docs: Vec<YamlDoc>,
}

impl<'a> Builder<'a> {
    fn new(text: &'a str, line_offset: usize) -> Self {
        Builder {
            text,
            cursor: CharCursor::default(),
            line_offset,
            depth_offset: 0,
            stack: Vec::new(),
            anchors: HashMap::new(),
            alias_budget: MAX_ALIAS_NODES,
            keys: KeyArena::default(),
            root: None,
            docs: Vec::new(),
        }
    }

    fn on_event(&mut self, event: Event, mark: Marker) -> Result<(), YamlError> {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.on_scalar(text, style, anchor, tag.as_ref(), mark)
            }
            Event::SequenceStart(anchor, _) => {
                let frame = Frame::Seq(SeqFrame {
                    anchor,
                    pos: self.sequence_pos(mark),
                    values: Vec::new(),
                    positions: Vec::new(),
                });
                self.start_collection(frame, mark)
            }
            Event::MappingStart(anchor, _) => {
                let frame = Frame::Map(MapFrame {
                    anchor,
                    pos: self.pack(mark),
                    start_index: mark.index(),
                    seen_key: false,
                    values: Map::new(),
                    positions: Vec::new(),
                    pending: None,
                    merges: Vec::new(),
                });
                self.start_collection(frame, mark)
            }
            Event::SequenceEnd | Event::MappingEnd => self.end_collection(),
            Event::Alias(id) => self.on_alias(id, mark),
            Event::DocumentEnd => {
                self.finish_document();
                Ok(())
            }
            Event::DocumentStart | Event::StreamStart | Event::StreamEnd | Event::Nothing => Ok(()),
        }
    }

    fn pack(&self, mark: Marker) -> PackedPos {
        PackedPos::new(mark.line() + self.line_offset, mark.col() + 1)
    }

    /// The position of a sequence. For an indentless sequence (`key:`
    /// followed by `- item` at the key's indentation) yaml-rust2 marks the
    /// first item instead of its `-`; this moves back to the dash.
    fn sequence_pos(&mut self, mark: Marker) -> PackedPos {
        let pos = self.pack(mark);
        let Some(byte) = self.cursor.byte_of(self.text, mark.index()) else {
            return pos;
        };
        if self.text[byte..].starts_with(['-', '[']) {
            return pos;
        }
        let before = &self.text[..byte];
        let gap = before.len() - before.trim_end_matches([' ', '\t']).len();
        if gap == 0 || !before[..byte - gap].ends_with('-') {
            return pos;
        }
        // Only ASCII was skipped, so bytes are characters here.
        PackedPos::new(
            mark.line() + self.line_offset,
            mark.col() + 1 - (gap + 1).min(mark.col()),
        )
    }

    fn error(&self, mark: Marker, message: impl Into<String>) -> YamlError {
        YamlError::at(self.pack(mark), message)
    }

    /// True when the next node is a key of the innermost mapping.
    fn expects_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map(map)) if map.pending.is_none())
    }

    /// Position of the key whose value comes next, if any.
    fn pending_key_pos(&self) -> Option<PackedPos> {
        match self.stack.last() {
            Some(Frame::Map(MapFrame {
                pending: Some(PendingKey::Named { pos, .. }),
                ..
            })) => Some(*pos),
            _ => None,
        }
    }

    fn on_scalar(
        &mut self,
        text: String,
        style: TScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        mark: Marker,
    ) -> Result<(), YamlError> {
        let mut pos = self.pack(mark);
        if self.expects_key() {
            let is_merge = style == TScalarStyle::Plain && tag.is_none() && text == "<<";
            let value = scalar_value(text, style, tag).map_err(|m| self.error(mark, m))?;
            if anchor != 0 {
                let node = Node {
                    value: value.clone(),
                    pos: PosNode::leaf(pos),
                };
                self.anchors.insert(anchor, node);
            }
            if is_merge {
                return self.set_key(PendingKey::Merge, mark);
            }
            let key = PendingKey::Named {
                key: key_text(value),
                pos,
            };
            return self.set_key(key, mark);
        }
        // An empty value (`key:` with nothing after it) is reported by the
        // parser at the next token, often on a later line; the key is a
        // better place to point at.
        if text.is_empty() && style == TScalarStyle::Plain {
            pos = self.pending_key_pos().unwrap_or(pos);
        }
        let value = scalar_value(text, style, tag).map_err(|m| self.error(mark, m))?;
        let node = Node {
            value,
            pos: PosNode::leaf(pos),
        };
        self.complete(node, anchor)
    }

    /// Records the key of the innermost mapping; errors on duplicates.
    fn set_key(&mut self, key: PendingKey, mark: Marker) -> Result<(), YamlError> {
        let key_pos = self.pack(mark);
        let Some(Frame::Map(map)) = self.stack.last_mut() else {
            return Ok(());
        };
        if !map.seen_key {
            map.seen_key = true;
            if mark.index() < map.start_index {
                map.pos = key_pos;
            }
        }
        // Duplicates are caught when the value is inserted (one hash
        // lookup instead of two); the error still points at this key.
        map.pending = Some(key);
        Ok(())
    }

    fn start_collection(&mut self, frame: Frame, mark: Marker) -> Result<(), YamlError> {
        if self.expects_key() {
            return Err(self.error(mark, "mappings and sequences cannot be mapping keys"));
        }
        if self.stack.len() + self.depth_offset >= MAX_DEPTH {
            let message = format!("nesting deeper than {MAX_DEPTH} levels");
            return Err(self.error(mark, message));
        }
        self.stack.push(frame);
        Ok(())
    }

    fn end_collection(&mut self) -> Result<(), YamlError> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let (node, anchor) = match frame {
            Frame::Seq(mut seq) => {
                // A list grows by doubling from four: a large file's lists
                // of one (a consumer's credentials) would keep room for four.
                seq.values.shrink_to_fit();
                let node = Node {
                    value: Value::Array(seq.values),
                    pos: PosNode::seq(seq.pos, seq.positions),
                };
                (node, seq.anchor)
            }
            Frame::Map(map) => {
                let anchor = map.anchor;
                (finish_map(map, &mut self.keys), anchor)
            }
        };
        self.complete(node, anchor)
    }

    fn on_alias(&mut self, id: usize, mark: Marker) -> Result<(), YamlError> {
        let Some(anchored) = self.anchors.get(&id) else {
            return Err(self.error(mark, "unknown anchor"));
        };
        let (count, height) = measure(&anchored.value);
        if self.stack.len() + height > MAX_DEPTH {
            let message = format!("nesting deeper than {MAX_DEPTH} levels");
            return Err(self.error(mark, message));
        }
        if count > self.alias_budget {
            let message = format!("aliases expand to more than {MAX_ALIAS_NODES} nodes");
            return Err(self.error(mark, message));
        }
        self.alias_budget -= count;
        let node = anchored.clone();
        if self.expects_key() {
            if node.value.is_object() || node.value.is_array() {
                return Err(self.error(mark, "mappings and sequences cannot be mapping keys"));
            }
            let key = PendingKey::Named {
                key: key_text(node.value),
                pos: self.pack(mark),
            };
            return self.set_key(key, mark);
        }
        // The alias itself is where the node is used; its children keep
        // the positions of the anchored definition.
        let node = Node {
            value: node.value,
            pos: node.pos.with_pos(self.pack(mark)),
        };
        self.complete(node, 0)
    }

    /// Attaches a finished node to its parent (or makes it the root).
    fn complete(&mut self, node: Node, anchor: usize) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq(seq)) => {
                seq.values.push(node.value);
                seq.positions.push(node.pos);
            }
            Some(Frame::Map(map)) => match map.pending.take() {
                Some(PendingKey::Named { key, pos }) => match map.values.entry(key) {
                    Entry::Vacant(slot) => {
                        let key_ref = self.keys.add(slot.key());
                        map.positions.push(PosEntry::new(key_ref, pos, node.pos));
                        slot.insert(node.value);
                    }
                    Entry::Occupied(slot) => {
                        let message = format!("duplicate key '{}'", slot.key());
                        return Err(YamlError::at(pos, message));
                    }
                },
                Some(PendingKey::Merge) => {
                    if !is_mergeable(&node.value) {
                        let message =
                            "the value of a '<<' merge key must be a mapping or a list of mappings";
                        return Err(YamlError::at(node.pos.pos(), message));
                    }
                    map.merges.push(node);
                }
                // Keys never reach here: scalars and aliases in key
                // position are routed to `set_key`, collections rejected.
                None => return Err(YamlError::at(node.pos.pos(), "value without a key")),
            },
        }
        Ok(())
    }

    fn finish_document(&mut self) {
        self.stack.clear();
        self.anchors.clear();
        let keys = std::mem::take(&mut self.keys);
        if let Some(node) = self.root.take() {
            self.docs.push(YamlDoc {
                value: node.value,
                positions: Positions::new(node.pos, keys),
            });
        }
    }
}

/// Converts character indices to byte offsets, moving forward through the
/// text so that a whole document costs one pass.
#[derive(Default)]
struct CharCursor {
    chars: usize,
    bytes: usize,
}

impl CharCursor {
    /// The byte offset of the `char_index`-th character, if in range.
    fn byte_of(&mut self, text: &str, char_index: usize) -> Option<usize> {
        if char_index < self.chars {
            *self = CharCursor::default();
        }
        for c in text.get(self.bytes..)?.chars() {
            if self.chars == char_index {
                break;
            }
            self.chars += 1;
            self.bytes += c.len_utf8();
        }
        (self.chars == char_index).then_some(self.bytes)
    }
}

/// Applies the `<<` merges of `map` and turns it into a node.
fn finish_map(mut map: MapFrame, keys: &mut KeyArena) -> Node {
    for source in std::mem::take(&mut map.merges) {
        match source.value {
            Value::Object(values) => merge_mapping(&mut map, values, &source.pos, keys),
            Value::Array(items) => {
                for (index, item) in items.into_iter().enumerate() {
                    if let (Value::Object(values), Some(pos)) = (item, source.pos.item(index)) {
                        merge_mapping(&mut map, values, pos, keys);
                    }
                }
            }
            _ => {}
        }
    }
    Node {
        value: Value::Object(exact_map(map.values)),
        pos: PosNode::map(map.pos, map.positions, keys),
    }
}

/// `values` in a map of their size. A map filled key by key keeps room for
/// at least three (104 bytes each) and a larger hash table: a large file's
/// one-key mappings (a credential's `key`) would hold twice what they use.
fn exact_map(values: Map<String, Value>) -> Map<String, Value> {
    let mut exact = Map::with_capacity(values.len());
    exact.extend(values);
    exact
}

/// Adds the entries of `values` that `map` does not have yet: explicit keys
/// and earlier merge sources take precedence, as YAML specifies.
fn merge_mapping(
    map: &mut MapFrame,
    values: Map<String, Value>,
    pos: &PosNode,
    keys: &mut KeyArena,
) {
    for (key, value) in values {
        if map.values.contains_key(&key) {
            continue;
        }
        let entry = match pos.entry(keys, &key) {
            Some(entry) => entry.clone(),
            None => PosEntry::new(keys.add(&key), pos.pos(), PosNode::leaf(pos.pos())),
        };
        map.positions.push(entry);
        map.values.insert(key, value);
    }
}

fn is_mergeable(value: &Value) -> bool {
    match value {
        Value::Object(_) => true,
        Value::Array(items) => items.iter().all(Value::is_object),
        _ => false,
    }
}

/// Node count and collection height of `value` (a scalar has height 0).
/// Recursion is bounded: every value built here is at most `MAX_DEPTH`
/// deep.
fn measure(value: &Value) -> (usize, usize) {
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Array(items) => Box::new(items.iter()),
        Value::Object(map) => Box::new(map.values()),
        _ => return (1, 0),
    };
    let (count, height) = children.fold((1, 0), |(count, height), child| {
        let (child_count, child_height) = measure(child);
        (count + child_count, height.max(child_height))
    });
    (count, height + 1)
}

/// The string form of a scalar used as a mapping key.
fn key_text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

/// The JSON value of a scalar, honouring its style and tag.
fn scalar_value(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    match tag {
        Some(tag) if tag.handle == CORE_TAG_HANDLE => core_tagged_value(text, &tag.suffix),
        // The non-specific tag `!` forces a string.
        Some(tag) if tag.handle.is_empty() && tag.suffix == "!" => Ok(Value::String(text)),
        // Other (application) tags are ignored.
        _ if style == TScalarStyle::Plain => {
            Ok(core_schema_value(&text).unwrap_or(Value::String(text)))
        }
        _ => Ok(Value::String(text)),
    }
}

/// A scalar with an explicit `!!type` tag.
fn core_tagged_value(text: String, suffix: &str) -> Result<Value, String> {
    let resolved = core_schema_value(&text);
    let invalid = || format!("invalid value for !!{suffix}: '{text}'");
    match (suffix, resolved) {
        ("str", _) => Ok(Value::String(text)),
        ("null", _) => Ok(Value::Null),
        ("bool", Some(value @ Value::Bool(_))) => Ok(value),
        ("int", Some(Value::Number(n))) if n.is_i64() || n.is_u64() => Ok(Value::Number(n)),
        ("float", Some(Value::Number(n))) => n
            .as_f64()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(invalid),
        ("bool" | "int" | "float", _) => Err(invalid()),
        // !!binary, !!timestamp and the like: keep the text.
        _ => Ok(Value::String(text)),
    }
}

/// The non-string value a plain scalar denotes, if any.
fn core_schema_value(text: &str) -> Option<Value> {
    let first = match text.as_bytes().first() {
        None => return Some(Value::Null),
        Some(b) => *b,
    };
    // Fast path: most scalars (names, hosts, paths) cannot be anything
    // but strings.
    if !matches!(
        first,
        b'0'..=b'9' | b'+' | b'-' | b'.' | b'~' | b'n' | b'N' | b't' | b'T' | b'f' | b'F'
    ) {
        return None;
    }
    match text {
        "~" | "null" | "Null" | "NULL" => Some(Value::Null),
        "true" | "True" | "TRUE" => Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => Some(Value::Bool(false)),
        _ => core_int(text).or_else(|| core_float(text)),
    }
}

/// `[-+]?[0-9]+`, `0o[0-7]+` or `0x[0-9a-fA-F]+`.
fn core_int(text: &str) -> Option<Value> {
    if let Some(digits) = text.strip_prefix("0x") {
        return radix_int(digits, 16);
    }
    if let Some(digits) = text.strip_prefix("0o") {
        return radix_int(digits, 8);
    }
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Ok(int) = text.parse::<i64>() {
        return Some(Value::from(int));
    }
    if let Ok(int) = text.parse::<u64>() {
        return Some(Value::from(int));
    }
    // Too big for 64 bits: the nearest float, as go-yaml does.
    finite_float(text)
}

fn radix_int(digits: &str, radix: u32) -> Option<Value> {
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    i64::from_str_radix(digits, radix)
        .map(Value::from)
        .ok()
        .or_else(|| u64::from_str_radix(digits, radix).ok().map(Value::from))
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`. The core schema's
/// `.inf` and `.nan` are left out: JSON has no such numbers.
fn core_float(text: &str) -> Option<Value> {
    let bytes = text.as_bytes();
    let mut at = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let int_digits = count_digits(&bytes[at..]);
    at += int_digits;
    let mut frac_digits = 0;
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        frac_digits = count_digits(&bytes[at..]);
        at += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return None;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        at += usize::from(matches!(bytes.get(at), Some(b'+' | b'-')));
        let exp_digits = count_digits(&bytes[at..]);
        if exp_digits == 0 {
            return None;
        }
        at += exp_digits;
    }
    if at != bytes.len() {
        return None;
    }
    finite_float(text)
}

fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// The float `text` denotes, unless it overflows to infinity.
fn finite_float(text: &str) -> Option<Value> {
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_one(text: &str) -> YamlDoc {
        let mut docs = parse_documents(text).expect("valid YAML");
        assert_eq!(docs.len(), 1, "expected one document");
        docs.remove(0)
    }

    fn at(doc: &YamlDoc, path: &str) -> (usize, usize) {
        let pos = doc.positions.lookup_str(path).expect("position");
        (pos.line, pos.column)
    }

    fn error_of(text: &str) -> YamlError {
        parse_documents(text).expect_err("invalid YAML")
    }

    #[test]
    fn records_positions_of_block_nodes() {
        let text = "\
services:
- name: svc1
  url: http://example.com
  plugins:
    - name: key-auth
      config:
        key_names:
        - apikey
        - x-key
";
        let doc = parse_one(text);
        assert_eq!(at(&doc, ""), (1, 1));
        assert_eq!(at(&doc, "services"), (2, 1));
        assert_eq!(at(&doc, "services[0]"), (2, 3));
        assert_eq!(at(&doc, "services[0].name"), (2, 9));
        assert_eq!(at(&doc, "services[0].url"), (3, 8));
        assert_eq!(at(&doc, "services[0].plugins"), (5, 5));
        assert_eq!(at(&doc, "services[0].plugins[0]"), (5, 7));
        assert_eq!(at(&doc, "services[0].plugins[0].config"), (7, 9));
        assert_eq!(at(&doc, "services[0].plugins[0].config.key_names"), (8, 9));
        assert_eq!(
            at(&doc, "services[0].plugins[0].config.key_names[1]"),
            (9, 11)
        );
        let key = doc
            .positions
            .lookup_key(&Path::parse("services[0].plugins").unwrap())
            .unwrap();
        assert_eq!((key.line, key.column), (4, 3));
    }

    #[test]
    fn records_positions_of_flow_and_json_nodes() {
        let doc = parse_one("a: {b: [1, {c: x}], d: \"q\"}\n");
        assert_eq!(at(&doc, "a"), (1, 4));
        assert_eq!(at(&doc, "a.b"), (1, 8));
        assert_eq!(at(&doc, "a.b[1]"), (1, 12));
        assert_eq!(at(&doc, "a.b[1].c"), (1, 16));
        assert_eq!(at(&doc, "a.d"), (1, 24));
        let doc = parse_one("- [a]\n-   - b\n");
        assert_eq!(at(&doc, "[0]"), (1, 3));
        assert_eq!(at(&doc, "[1]"), (2, 5));

        let json_doc = parse_one("{\n\t\"services\": [\n\t\t{\"name\": \"s\"}\n\t]\n}\n");
        assert_eq!(json_doc.value, json!({"services": [{"name": "s"}]}));
        assert_eq!(at(&json_doc, "services[0].name"), (3, 12));
    }

    #[test]
    fn empty_values_point_at_their_key() {
        let doc = parse_one("a:\nb: 1\n");
        assert_eq!(doc.value, json!({"a": null, "b": 1}));
        assert_eq!(at(&doc, "a"), (1, 1));
    }

    #[test]
    fn columns_count_characters() {
        let doc = parse_one("ü: ä\nafterü: [x]\n");
        assert_eq!(at(&doc, "ü"), (1, 4));
        assert_eq!(at(&doc, "afterü[0]"), (2, 10));
    }

    #[test]
    fn line_offset_shifts_positions_and_errors() {
        let docs = parse_documents_at("a:\n  b: 1\n", 10).unwrap();
        assert_eq!(
            docs[0].positions.lookup_str("a.b").unwrap(),
            Pos::new(12, 6)
        );
        let error = parse_documents_at("a: [1\n", 10).unwrap_err();
        assert_eq!(error.line, 12);
    }

    #[test]
    fn resolves_plain_scalars_by_the_core_schema() {
        let cases = [
            ("~", json!(null)),
            ("null", json!(null)),
            ("NULL", json!(null)),
            ("true", json!(true)),
            ("False", json!(false)),
            ("yes", json!("yes")),
            ("on", json!("on")),
            ("0", json!(0)),
            ("-17", json!(-17)),
            ("+17", json!(17)),
            ("0777", json!(777)),
            ("0x1F", json!(31)),
            ("0o17", json!(15)),
            ("0x", json!("0x")),
            ("0b101", json!("0b101")),
            ("18446744073709551615", json!(18446744073709551615u64)),
            ("1.5", json!(1.5)),
            ("-.5", json!(-0.5)),
            ("1.", json!(1.0)),
            ("1e3", json!(1000.0)),
            ("1.5E-2", json!(0.015)),
            ("1e", json!("1e")),
            (".", json!(".")),
            ("+", json!("+")),
            (".inf", json!(".inf")),
            (".nan", json!(".nan")),
            ("1e999", json!("1e999")),
            ("1_000", json!("1_000")),
            ("3.0.1", json!("3.0.1")),
            ("2001:db8::1", json!("2001:db8::1")),
            ("/anything", json!("/anything")),
        ];
        for (text, expected) in cases {
            assert_eq!(
                resolve_plain_scalar(text),
                expected,
                "plain scalar {text:?}"
            );
        }
        assert_eq!(resolve_plain_scalar(""), json!(null));
    }

    #[test]
    fn quoted_and_block_scalars_stay_strings() {
        let doc = parse_one("a: '1'\nb: \"true\"\nc: |\n  42\nd: ''\ne: >-\n  null\n");
        assert_eq!(
            doc.value,
            json!({"a": "1", "b": "true", "c": "42\n", "d": "", "e": "null"})
        );
    }

    #[test]
    fn honours_core_tags() {
        let doc = parse_one("a: !!str 12\nb: !!int \"12\"\nc: !!float 1\nd: ! 12\ne: !custom 12\n");
        assert_eq!(
            doc.value,
            json!({"a": "12", "b": 12, "c": 1.0, "d": "12", "e": 12})
        );
        let error = error_of("a: !!int abc\n");
        assert_eq!((error.line, error.column), (1, 10));
        assert!(error.message.contains("!!int"), "{}", error.message);
    }

    #[test]
    fn integers_stay_integers_in_json() {
        let doc = parse_one("port: 8080\nratio: 0.5\n");
        assert_eq!(
            serde_json::to_string(&doc.value).unwrap(),
            r#"{"port":8080,"ratio":0.5}"#
        );
    }

    #[test]
    fn resolves_anchors_and_aliases() {
        let doc = parse_one("base: &b {x: 1, y: [2]}\ncopy: *b\nname: &n svc\nref: *n\n");
        assert_eq!(
            doc.value,
            json!({"base": {"x": 1, "y": [2]}, "copy": {"x": 1, "y": [2]}, "name": "svc", "ref": "svc"})
        );
        // The alias node is where it is used, its children where defined.
        assert_eq!(at(&doc, "copy"), (2, 7));
        assert_eq!(at(&doc, "copy.y"), (1, 20));
    }

    #[test]
    fn merges_merge_keys_with_explicit_keys_winning() {
        let text = "\
defaults: &d {retries: 5, protocol: http}
more: &m {protocol: https, port: 80, path: /a}
svc:
  <<: [*d, *m]
  retries: 1
";
        let doc = parse_one(text);
        assert_eq!(
            doc.value["svc"],
            json!({"retries": 1, "protocol": "http", "port": 80, "path": "/a"})
        );
        assert_eq!(at(&doc, "svc.retries"), (5, 12));
        assert_eq!(at(&doc, "svc.port"), (2, 34));
        let error = error_of("a: &a 1\nb:\n  <<: *a\n");
        assert!(error.message.contains("merge"), "{}", error.message);
    }

    #[test]
    fn rejects_duplicate_keys_at_the_second_key() {
        let error = error_of("services:\n- name: a\n  host: x\n  name: b\n");
        assert_eq!(error.message, "duplicate key 'name'");
        assert_eq!((error.line, error.column), (4, 3));
        // Different scalars that read the same key are duplicates too.
        assert_eq!(error_of("1: a\n\"1\": b\n").message, "duplicate key '1'");
    }

    #[test]
    fn converts_scalar_keys_to_strings_and_rejects_collection_keys() {
        let doc = parse_one("1: a\ntrue: b\n~: c\n0x10: d\n");
        assert_eq!(
            doc.value,
            json!({"1": "a", "true": "b", "null": "c", "16": "d"})
        );
        let error = error_of("? [1, 2]\n: x\n");
        assert!(
            error.message.contains("cannot be mapping keys"),
            "{}",
            error.message
        );
        let error = error_of("a: &a [1]\n*a : x\n");
        assert!(
            error.message.contains("cannot be mapping keys"),
            "{}",
            error.message
        );
    }

    #[test]
    fn reports_syntax_errors_with_the_scanner_position() {
        let error = error_of("a:\n\tb: 1\n");
        assert_eq!((error.line, error.column), (2, 2));
        assert!(error.message.contains("tab"), "{}", error.message);
        let error = error_of("a: [1, 2\n");
        assert_eq!(error.line, 2);
        let error = error_of("a: \"unclosed\nb: 1\n");
        assert_eq!(error.line, 1);
        let error = error_of("a: 1\n  b: 2\n");
        assert_eq!((error.line, error.column), (2, 4));
        let error = error_of("a: *nope\n");
        assert_eq!((error.line, error.column), (1, 4));
        assert_eq!(
            error.to_string(),
            format!("{} at line 1, column 4", error.message)
        );
    }

    /// `levels` nested block mappings, the innermost holding `k: 1`.
    fn nested_block_mappings(levels: usize) -> String {
        let mut text = String::new();
        for depth in 0..levels {
            text.push_str(&" ".repeat(depth));
            text.push_str(if depth + 1 == levels {
                "k: 1\n"
            } else {
                "k:\n"
            });
        }
        text
    }

    #[test]
    fn caps_nesting_depth() {
        assert!(parse_documents(&nested_block_mappings(MAX_DEPTH)).is_ok());
        let error = error_of(&nested_block_mappings(MAX_DEPTH + 1));
        assert_eq!(error.message, "nesting deeper than 256 levels");
        assert_eq!(error.line, MAX_DEPTH + 1);
        // yaml-rust2's scanner stops flow nesting at 255 levels by itself.
        assert!(parse_documents(&"[".repeat(100_000)).is_err());
        let flow = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let mixed = nested_block_mappings(200).replace("k: 1", &format!("k: {flow}"));
        assert!(error_of(&mixed).message.contains("nesting"));
    }

    #[test]
    fn caps_alias_expansion() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..10 {
            let prev = level - 1;
            let items = vec![format!("*a{prev}"); 10].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
        }
        let error = error_of(&text);
        assert!(error.message.contains("aliases"), "{}", error.message);
    }

    #[test]
    fn alias_expansion_respects_the_depth_cap() {
        let deep = format!("a: &a {}1{}\n", "[".repeat(200), "]".repeat(200));
        let text = format!("{deep}b: {}*a{}\n", "[".repeat(100), "]".repeat(100));
        assert!(error_of(&text).message.contains("nesting"));
    }

    #[test]
    fn returns_every_document_of_a_stream() {
        let docs = parse_documents("a: 1\n---\nb: &x 2\n...\n---\nc: 3\n").unwrap();
        let values: Vec<Value> = docs.into_iter().map(|d| d.value).collect();
        assert_eq!(
            values,
            vec![json!({"a": 1}), json!({"b": 2}), json!({"c": 3})]
        );
        // Anchors do not leak across documents.
        assert!(parse_documents("a: &x 1\n---\nb: *x\n").is_err());
        assert!(parse_documents("").unwrap().is_empty());
        assert!(parse_documents("# just a comment\n").unwrap().is_empty());
        let empty = parse_documents("---\n").unwrap();
        assert_eq!(empty[0].value, Value::Null);
    }

    #[test]
    fn tolerates_a_byte_order_mark() {
        assert_eq!(parse_one("\u{feff}a: 1\n").value, json!({"a": 1}));
    }

    #[test]
    fn preserves_key_order() {
        let doc = parse_one("z: 1\na: 2\nm: 3\n");
        let keys: Vec<&String> = doc.value.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["z", "a", "m"]);
    }

    #[test]
    fn never_panics_on_awkward_inputs() {
        let inputs = [
            "\t",
            "\"",
            "'",
            "[",
            "{",
            "]",
            "}",
            ":",
            "- -",
            "? ",
            "&",
            "*",
            "!",
            "|",
            ">",
            "%YAML 1.2\n",
            "%TAG ! x\n---\n",
            "--- |\n x",
            "a: |\n\tb",
            "a: 'x\n",
            "{a: [b, {c: d}",
            "- [a, b]: c",
            "&a &b x",
            "!<tag:x> y",
            "a: !!binary aGk=",
            "@x",
            "`x",
            "a:\n- b\n-c: d\n -",
            "\u{0}",
            "x: \u{85}y",
            "? a\n? a\n",
            "<<: 1",
            "[<<: {}]",
        ];
        for text in inputs {
            let _ = parse_documents(text);
        }
    }

    #[test]
    #[ignore = "timing check; run with --release --ignored"]
    fn parses_a_large_document_quickly() {
        let mut text = String::from("_format_version: \"3.0\"\nservices:\n");
        for i in 0..100_000 {
            text.push_str(&format!(
                "- name: service-{i}\n  url: http://upstream-{i}.example.com:8080/path\n  retries: 5\n  tags: [team-a, env-prod]\n  routes:\n  - name: route-{i}\n    paths:\n    - /api/v1/service-{i}\n    strip_path: true\n    methods: [GET, POST]\n  plugins:\n  - name: key-auth\n    config:\n      key_names: [apikey]\n      hide_credentials: false\n"
            ));
        }
        let start = std::time::Instant::now();
        let docs = parse_documents(&text).unwrap();
        let elapsed = start.elapsed();
        eprintln!("{} MB in {elapsed:?}", text.len() / 1_000_000);
        assert_eq!(docs[0].value["services"].as_array().unwrap().len(), 100_000);
        assert_eq!(
            docs[0]
                .positions
                .lookup_str("services[99999].plugins[0].config.key_names[0]"),
            Some(Pos::new(1_500_001, 19))
        );
    }

    mod fuzz {
        use super::super::parse_documents;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn arbitrary_yaml_like_text_never_panics(
                text in "[ \\t\\n:,\\-?&*!|>'\"\\[\\]{}#%@`a-c0-9<~.]{0,80}"
            ) {
                let _ = parse_documents(&text);
            }
        }
    }
}
