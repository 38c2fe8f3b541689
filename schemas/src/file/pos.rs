//! Source positions of parsed YAML nodes, addressed by path.
//!
//! [`Positions`] mirrors the shape of a parsed document: every mapping
//! value, every sequence item and every mapping key has a 1-based
//! [`Pos`]. Nodes are addressed by a [`Path`] such as
//! `services[0].plugins[1].config.key_names[0]`; a lookup that runs past
//! the end of the recorded tree answers with the nearest ancestor, so an
//! error about a missing field can point at the entity that lacks it.
//!
//! The table is a tree rather than a map of path strings: building it is
//! linear in the size of the document, and no path string is allocated
//! unless a caller asks for one.

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

/// A 1-based line and column in a source text. Columns count characters,
/// not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column number, in characters.
    pub column: usize,
}

impl Pos {
    /// A position from a 1-based line and column.
    pub fn new(line: usize, column: usize) -> Self {
        Pos { line, column }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

pub use crate::error::PathSeg;

/// The address of a node inside a document, from the root down.
///
/// Its string form is `services[0].plugins[1].config`; keys that are not
/// made of ASCII letters, digits, `_` and `-` are written as a JSON string
/// in brackets, e.g. `config["header.name"]`. The empty path is the root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path(Vec<PathSeg>);

impl Path {
    /// The path of the document root.
    pub fn root() -> Self {
        Path(Vec::new())
    }

    /// This path extended by a mapping key (builder style).
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.0.push(PathSeg::Key(key.into()));
        self
    }

    /// This path extended by a sequence index (builder style).
    pub fn index(mut self, index: usize) -> Self {
        self.0.push(PathSeg::Index(index));
        self
    }

    /// Appends one segment.
    pub fn push(&mut self, seg: impl Into<PathSeg>) {
        self.0.push(seg.into());
    }

    /// Removes and returns the last segment.
    pub fn pop(&mut self) -> Option<PathSeg> {
        self.0.pop()
    }

    /// The segments, root first.
    pub fn segments(&self) -> &[PathSeg] {
        &self.0
    }

    /// Parses the string form (see the type documentation).
    pub fn parse(text: &str) -> Result<Path, PathParseError> {
        PathParser { text, at: 0 }.parse()
    }
}

impl Deref for Path {
    type Target = [PathSeg];

    fn deref(&self) -> &[PathSeg] {
        &self.0
    }
}

impl From<Vec<PathSeg>> for Path {
    fn from(segs: Vec<PathSeg>) -> Self {
        Path(segs)
    }
}

impl FromStr for Path {
    type Err = PathParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Path::parse(text)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_path(f, &self.0)
    }
}

/// Writes `segs` in the string form of [`Path`].
pub fn write_path(out: &mut impl fmt::Write, segs: &[PathSeg]) -> fmt::Result {
    for (i, seg) in segs.iter().enumerate() {
        match seg {
            PathSeg::Index(index) => write!(out, "[{index}]")?,
            PathSeg::Key(key) if is_bare_key(key) => {
                if i > 0 {
                    out.write_char('.')?;
                }
                out.write_str(key)?;
            }
            PathSeg::Key(key) => {
                let quoted = serde_json::Value::String(key.clone()).to_string();
                write!(out, "[{quoted}]")?;
            }
        }
    }
    Ok(())
}

fn is_bare_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A malformed path string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path at byte {offset}: {message}")]
pub struct PathParseError {
    /// Byte offset of the problem in the path string.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

struct PathParser<'a> {
    text: &'a str,
    at: usize,
}

impl PathParser<'_> {
    fn parse(mut self) -> Result<Path, PathParseError> {
        let mut segs = Vec::new();
        while self.at < self.text.len() {
            let rest = &self.text[self.at..];
            if let Some(after) = rest.strip_prefix('[') {
                self.at += 1;
                segs.push(self.bracket(after)?);
            } else if let Some(after) = rest.strip_prefix('.') {
                if segs.is_empty() {
                    return Err(self.error("a path cannot start with '.'"));
                }
                self.at += 1;
                segs.push(self.bare_key(after)?);
            } else if segs.is_empty() {
                segs.push(self.bare_key(rest)?);
            } else {
                return Err(self.error("expected '.' or '['"));
            }
        }
        Ok(Path(segs))
    }

    fn bare_key(&mut self, rest: &str) -> Result<PathSeg, PathParseError> {
        let len = rest.find(['.', '[', ']']).unwrap_or(rest.len());
        if len == 0 {
            return Err(self.error("empty key"));
        }
        self.at += len;
        Ok(PathSeg::Key(rest[..len].to_owned()))
    }

    fn bracket(&mut self, rest: &str) -> Result<PathSeg, PathParseError> {
        if rest.starts_with('"') {
            let len = quoted_len(rest).ok_or_else(|| self.error("unterminated string"))?;
            let key: String = serde_json::from_str(&rest[..len])
                .map_err(|e| self.error(&format!("bad quoted key: {e}")))?;
            self.at += len;
            self.expect_close(&rest[len..])?;
            return Ok(PathSeg::Key(key));
        }
        let len = rest.find(']').ok_or_else(|| self.error("missing ']'"))?;
        let index = rest[..len]
            .parse::<usize>()
            .map_err(|_| self.error("expected an index or a quoted key"))?;
        self.at += len;
        self.expect_close(&rest[len..])?;
        Ok(PathSeg::Index(index))
    }

    fn expect_close(&mut self, rest: &str) -> Result<(), PathParseError> {
        if rest.starts_with(']') {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error("missing ']'"))
        }
    }

    fn error(&self, message: &str) -> PathParseError {
        PathParseError {
            offset: self.at,
            message: message.to_owned(),
        }
    }
}

/// Length in bytes of the JSON string literal at the start of `text`,
/// closing quote included.
fn quoted_len(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, b) in text.bytes().enumerate().skip(1) {
        match (escaped, b) {
            (true, _) => escaped = false,
            (false, b'\\') => escaped = true,
            (false, b'"') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// A position stored in 8 bytes; the tree holds one per node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PackedPos {
    line: u32,
    column: u32,
}

impl PackedPos {
    /// Packs a position; absurdly large values saturate.
    pub(crate) fn new(line: usize, column: usize) -> Self {
        PackedPos {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }

    /// The public form.
    pub(crate) fn unpack(self) -> Pos {
        Pos::new(self.line as usize, self.column as usize)
    }
}

/// The key texts of one document, back to back, so that the table does
/// not allocate once per key.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyArena {
    text: String,
}

/// A key stored in a [`KeyArena`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KeyRef {
    start: u32,
    len: u32,
}

impl KeyArena {
    /// Stores `key`. Past 4 GiB of key text the key is stored as empty:
    /// lookups of it then fail instead of the parse.
    pub(crate) fn add(&mut self, key: &str) -> KeyRef {
        let start = u32::try_from(self.text.len());
        let len = u32::try_from(key.len());
        match (start, len) {
            (Ok(start), Ok(len)) if start.checked_add(len).is_some() => {
                self.text.push_str(key);
                KeyRef { start, len }
            }
            _ => KeyRef::default(),
        }
    }

    /// Append `other`'s texts; the offset its keys now start at.
    fn append(&mut self, other: &KeyArena) -> Option<u32> {
        let base = u32::try_from(self.text.len()).ok()?;
        u32::try_from(self.text.len() + other.text.len()).ok()?;
        self.text.push_str(&other.text);
        Some(base)
    }

    fn get(&self, key: KeyRef) -> &str {
        let start = key.start as usize;
        self.text.get(start..start + key.len as usize).unwrap_or("")
    }
}

/// The position of one node and of everything below it.
#[derive(Debug, Clone)]
pub(crate) struct PosNode {
    pos: PackedPos,
    kids: Kids,
}

#[derive(Debug, Clone)]
enum Kids {
    Leaf,
    Seq(Box<[PosNode]>),
    /// Sorted by key, so lookups are binary searches.
    Map(Box<[PosEntry]>),
}

/// One mapping entry: the key, where the key is, and the value's node.
#[derive(Debug, Clone)]
pub(crate) struct PosEntry {
    key: KeyRef,
    key_pos: PackedPos,
    node: PosNode,
}

impl PosEntry {
    pub(crate) fn new(key: KeyRef, key_pos: PackedPos, node: PosNode) -> Self {
        PosEntry { key, key_pos, node }
    }
}

impl PosNode {
    /// A scalar (or an empty collection).
    pub(crate) fn leaf(pos: PackedPos) -> Self {
        PosNode {
            pos,
            kids: Kids::Leaf,
        }
    }

    /// A sequence whose items are `items`, in order.
    pub(crate) fn seq(pos: PackedPos, items: Vec<PosNode>) -> Self {
        PosNode {
            pos,
            kids: Kids::Seq(items.into_boxed_slice()),
        }
    }

    /// A mapping; `entries` must have distinct keys (stored in `keys`), in
    /// any order.
    pub(crate) fn map(pos: PackedPos, mut entries: Vec<PosEntry>, keys: &KeyArena) -> Self {
        entries.sort_unstable_by(|a, b| keys.get(a.key).cmp(keys.get(b.key)));
        PosNode {
            pos,
            kids: Kids::Map(entries.into_boxed_slice()),
        }
    }

    /// Move every key of this subtree `base` bytes on (its arena was
    /// appended to another at `base`).
    fn rebase(&mut self, base: u32) {
        match &mut self.kids {
            Kids::Leaf => {}
            Kids::Seq(items) => items.iter_mut().for_each(|item| item.rebase(base)),
            Kids::Map(entries) => {
                for entry in entries.iter_mut() {
                    entry.key.start += base;
                    entry.node.rebase(base);
                }
            }
        }
    }

    /// This node's own position.
    pub(crate) fn pos(&self) -> PackedPos {
        self.pos
    }

    /// The same subtree, with its own position replaced by `pos`.
    pub(crate) fn with_pos(mut self, pos: PackedPos) -> Self {
        self.pos = pos;
        self
    }

    /// The `index`-th item when this node is a sequence.
    pub(crate) fn item(&self, index: usize) -> Option<&PosNode> {
        match &self.kids {
            Kids::Seq(items) => items.get(index),
            _ => None,
        }
    }

    /// The entry for `key` when this node is a mapping.
    pub(crate) fn entry(&self, keys: &KeyArena, key: &str) -> Option<&PosEntry> {
        match &self.kids {
            Kids::Map(entries) => entries
                .binary_search_by(|e| keys.get(e.key).cmp(key))
                .ok()
                .and_then(|i| entries.get(i)),
            _ => None,
        }
    }

    fn child(&self, keys: &KeyArena, seg: &PathSeg) -> Option<&PosNode> {
        match (seg, &self.kids) {
            (PathSeg::Index(i), Kids::Seq(items)) => items.get(*i),
            (PathSeg::Key(k), Kids::Map(_)) => self.entry(keys, k).map(|e| &e.node),
            _ => None,
        }
    }

    fn into_child(self, keys: &KeyArena, seg: &PathSeg) -> Option<PosNode> {
        match (seg, self.kids) {
            (PathSeg::Index(i), Kids::Seq(items)) => items.into_vec().into_iter().nth(*i),
            (PathSeg::Key(k), Kids::Map(entries)) => entries
                .into_vec()
                .into_iter()
                .find(|e| keys.get(e.key) == k)
                .map(|e| e.node),
            _ => None,
        }
    }
}

/// Where every node of one parsed document is in its source text.
///
/// Lookups are by path segments, e.g. `&[PathSeg::Key("services".into()),
/// PathSeg::Index(0)]`, a [`Path`], or a path string via
/// [`Positions::lookup_str`].
#[derive(Debug, Clone, Default)]
pub struct Positions {
    keys: KeyArena,
    root: Option<PosNode>,
}

impl Positions {
    /// The table of a document whose keys are stored in `keys`.
    pub(crate) fn new(root: PosNode, keys: KeyArena) -> Self {
        Positions {
            keys,
            root: Some(root),
        }
    }

    /// Make the node of the root mapping's `key` a sequence whose items
    /// are those of the root sequences of `parts`, in order, positioned as
    /// the first part's root: how the pieces of a text parsed in runs
    /// (`yaml_split`) are put together. `false` (nothing changed) when the
    /// root has no such key or a part is not a sequence.
    pub(crate) fn graft_sequence(&mut self, key: &str, parts: Vec<Positions>) -> bool {
        let mut items = Vec::new();
        let mut pos = None;
        for part in parts {
            let Some(PosNode {
                pos: part_pos,
                kids: Kids::Seq(part_items),
            }) = part.root
            else {
                return false;
            };
            pos.get_or_insert(part_pos);
            let Some(base) = self.keys.append(&part.keys) else {
                return false;
            };
            items.extend(part_items.into_vec().into_iter().map(|mut item| {
                item.rebase(base);
                item
            }));
        }
        let (Some(pos), Some(root)) = (pos, self.root.as_mut()) else {
            return false;
        };
        let Kids::Map(entries) = &mut root.kids else {
            return false;
        };
        let keys = &self.keys;
        let Some(entry) = entries.iter_mut().find(|entry| keys.get(entry.key) == key) else {
            return false;
        };
        entry.node = PosNode::seq(pos, items);
        true
    }

    /// The position of the root node; `None` for an empty table.
    pub fn root(&self) -> Option<Pos> {
        self.root.as_ref().map(|n| n.pos.unpack())
    }

    /// The position of the node at `path`, or of its nearest ancestor
    /// that has one (the root at worst). `None` only for an empty table.
    pub fn lookup(&self, path: &[PathSeg]) -> Option<Pos> {
        self.deepest(path).map(|(node, _)| node.pos.unpack())
    }

    /// [`Positions::lookup`] with a path string such as
    /// `services[0].plugins[1].config`. `None` if the string is not a
    /// valid path.
    pub fn lookup_str(&self, path: &str) -> Option<Pos> {
        Path::parse(path).ok().and_then(|p| self.lookup(&p))
    }

    /// The position of the node at exactly `path`, without fallback.
    pub fn exact(&self, path: &[PathSeg]) -> Option<Pos> {
        match self.deepest(path) {
            Some((node, depth)) if depth == path.len() => Some(node.pos.unpack()),
            _ => None,
        }
    }

    /// The position of the mapping key named by the last segment of
    /// `path` (e.g. the `name` in `name: x`), for "unknown field" style
    /// errors. Falls back like [`Positions::lookup`] when `path` does not
    /// end in a recorded key.
    pub fn lookup_key(&self, path: &[PathSeg]) -> Option<Pos> {
        if let Some((PathSeg::Key(key), parent)) = path.split_last() {
            if let Some((node, depth)) = self.deepest(parent) {
                if depth == parent.len() {
                    if let Some(entry) = node.entry(&self.keys, key) {
                        return Some(entry.key_pos.unpack());
                    }
                }
            }
        }
        self.lookup(path)
    }

    /// The table of the node at exactly `path`, re-rooted there, so that
    /// paths relative to that node can be looked up. `None` if `path` was
    /// not recorded.
    pub fn into_subtree(self, path: &[PathSeg]) -> Option<Positions> {
        let mut node = self.root?;
        for seg in path {
            node = node.into_child(&self.keys, seg)?;
        }
        Some(Positions::new(node, self.keys))
    }

    /// The deepest recorded node along `path` and how many segments of
    /// `path` it consumed.
    fn deepest(&self, path: &[PathSeg]) -> Option<(&PosNode, usize)> {
        let mut node = self.root.as_ref()?;
        for (depth, seg) in path.iter().enumerate() {
            match node.child(&self.keys, seg) {
                Some(child) => node = child,
                None => return Some((node, depth)),
            }
        }
        Some((node, path.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pp(line: usize, column: usize) -> PackedPos {
        PackedPos::new(line, column)
    }

    /// `{services: [{name: a, plugins: [{config: {}}]}]}` with made-up
    /// positions.
    fn sample() -> Positions {
        let mut keys = KeyArena::default();
        let config = PosEntry::new(keys.add("config"), pp(6, 9), PosNode::leaf(pp(6, 17)));
        let plugin = PosNode::map(pp(5, 7), vec![config], &keys);
        let plugins = PosNode::seq(pp(5, 5), vec![plugin]);
        let entries = vec![
            PosEntry::new(keys.add("plugins"), pp(4, 5), plugins),
            PosEntry::new(keys.add("name"), pp(2, 5), PosNode::leaf(pp(2, 11))),
        ];
        let service = PosNode::map(pp(2, 5), entries, &keys);
        let services = PosNode::seq(pp(2, 3), vec![service]);
        let root_entry = PosEntry::new(keys.add("services"), pp(1, 1), services);
        let root = PosNode::map(pp(1, 1), vec![root_entry], &keys);
        Positions::new(root, keys)
    }

    #[test]
    fn path_round_trips_through_its_string_form() {
        let path = Path::root()
            .key("services")
            .index(0)
            .key("config")
            .key("a.b")
            .key("");
        let text = path.to_string();
        assert_eq!(text, r#"services[0].config["a.b"][""]"#);
        assert_eq!(Path::parse(&text), Ok(path));
        assert_eq!(Path::parse(""), Ok(Path::root()));
        assert_eq!(Path::root().index(2).to_string(), "[2]");
        assert_eq!(Path::parse("[2].x"), Ok(Path::root().index(2).key("x")));
    }

    #[test]
    fn path_parse_rejects_malformed_strings() {
        for bad in [
            ".a",
            "a..b",
            "a[",
            "a[x]",
            "a[1",
            r#"a["x"#,
            "a]b",
            r#"a["x"x]"#,
        ] {
            assert!(Path::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn quoted_keys_may_contain_escaped_quotes_and_brackets() {
        let path = Path::root().key(r#"we"ird]"#);
        assert_eq!(Path::parse(&path.to_string()), Ok(path));
    }

    #[test]
    fn lookup_finds_exact_nodes() {
        let positions = sample();
        assert_eq!(
            positions.lookup_str("services[0].name"),
            Some(Pos::new(2, 11))
        );
        assert_eq!(
            positions.lookup_str("services[0].plugins[0].config"),
            Some(Pos::new(6, 17))
        );
        assert_eq!(positions.lookup(&[]), Some(Pos::new(1, 1)));
        assert_eq!(
            positions.exact(&Path::parse("services[0]").unwrap()),
            Some(Pos::new(2, 5))
        );
    }

    #[test]
    fn lookup_falls_back_to_the_nearest_ancestor() {
        let positions = sample();
        assert_eq!(
            positions.lookup_str("services[0].host"),
            Some(Pos::new(2, 5))
        );
        assert_eq!(
            positions.lookup_str("services[7].name"),
            Some(Pos::new(2, 3))
        );
        assert_eq!(
            positions.lookup_str("services[0].plugins[0].config.a[3]"),
            Some(Pos::new(6, 17))
        );
        assert_eq!(
            positions.exact(&Path::parse("services[0].host").unwrap()),
            None
        );
        assert_eq!(positions.lookup_str("services[x"), None);
        assert_eq!(Positions::default().lookup(&[]), None);
    }

    #[test]
    fn lookup_key_points_at_the_key() {
        let positions = sample();
        let path = Path::parse("services[0].plugins[0].config").unwrap();
        assert_eq!(positions.lookup_key(&path), Some(Pos::new(6, 9)));
        // Not a key: same as lookup.
        assert_eq!(
            positions.lookup_key(&Path::parse("services[0]").unwrap()),
            Some(Pos::new(2, 5))
        );
        // Missing key: nearest ancestor.
        assert_eq!(
            positions.lookup_key(&Path::parse("services[0].nope").unwrap()),
            Some(Pos::new(2, 5))
        );
    }

    #[test]
    fn into_subtree_re_roots_the_table() {
        let sub = sample()
            .into_subtree(&Path::parse("services[0]").unwrap())
            .unwrap();
        assert_eq!(sub.root(), Some(Pos::new(2, 5)));
        assert_eq!(sub.lookup_str("plugins[0].config"), Some(Pos::new(6, 17)));
        assert!(sample()
            .into_subtree(&Path::parse("nope").unwrap())
            .is_none());
    }
}
