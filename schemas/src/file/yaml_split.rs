//! A large YAML file parsed on all cores: its long top-level sequences
//! (`services:`, `consumers:` of a decK file) cut into runs of items, each
//! run parsed on its own, and the rest of the file (the "skeleton", with
//! those runs blanked to empty lines) parsed alongside. The pieces are then
//! put back together: the same values and the same positions as parsing
//! the whole text at once.
//!
//! Only plain block YAML is cut, where an item boundary is certain: a line
//! `- ` at the sequence's indentation starts an item, and nothing else can
//! look like one. A text with anchors, aliases or tags (`&`, `*`, `!`),
//! several documents or directives, a quote left open at the end of a line
//! (a scalar going on over lines), a block scalar (`|`, `>`), carriage
//! returns, or a root that is not a block mapping, is parsed whole. So is
//! any text whose pieces do not parse: errors always come from the whole
//! parse, exactly as without this.

use std::ops::Range;

use serde_json::Value;

use super::parallel;
use super::yaml::{self, YamlDoc, YamlError};

/// When cutting pays.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Below this size a text is parsed whole.
    min_bytes: usize,
    /// A sequence is cut only when it has at least this many items.
    min_items: usize,
}

const LIMITS: Limits = Limits {
    min_bytes: 1 << 20,
    min_items: 1024,
};

/// Runs per sequence: several per core, since items differ in size.
const RUNS: usize = 16;

/// A top-level key whose sequence is cut, and where its runs are.
#[derive(Debug)]
struct Section {
    key: String,
    /// Byte ranges of the runs, in order; together, every line from the
    /// first item to the end of the section.
    runs: Vec<Range<usize>>,
    /// How many lines come before each run.
    first_lines: Vec<usize>,
    /// The items' indentation.
    indent: usize,
}

impl Section {
    /// The text each run is parsed from: the run, and for all but the last
    /// the indentation of the next item. The whole parse places an empty
    /// last value (`- ` alone) at the next token, the next item's dash; a
    /// run's parse places it at the end of its text, here the same place.
    fn parsed_runs(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        let last = self.runs.len().saturating_sub(1);
        let runs = self.runs.iter().enumerate();
        runs.map(move |(index, run)| match index < last {
            true => run.start..run.end + self.indent,
            false => run.clone(),
        })
    }
}

/// The documents of `text` if it can be cut (see the module doc) and every
/// piece parses; otherwise `None`, and the caller parses it whole.
pub(crate) fn parse(text: &str) -> Option<Vec<YamlDoc>> {
    parse_with(text, LIMITS)
}

fn parse_with(text: &str, limits: Limits) -> Option<Vec<YamlDoc>> {
    if text.len() < limits.min_bytes || !plain_enough(text) {
        return None;
    }
    let sections = sections(text, limits.min_items)?;
    if sections.is_empty() {
        return None;
    }
    let skeleton = skeleton(text, &sections);
    let mut pieces: Vec<(Range<usize>, usize)> = vec![(0..0, 0)];
    for section in &sections {
        let runs = section.parsed_runs();
        pieces.extend(runs.zip(section.first_lines.iter().copied()));
    }
    let parsed = parallel::map_each(&pieces, |(run, line)| match run.is_empty() {
        true => yaml::parse_documents_at(&skeleton, 0),
        // Two levels below the root: the root mapping and the sequence.
        false => yaml::parse_nested(&text[run.clone()], *line, 2),
    });
    assemble(parsed, &sections)
}

/// The skeleton's document with each cut section's items put back.
fn assemble(
    parsed: Vec<Result<Vec<YamlDoc>, YamlError>>,
    sections: &[Section],
) -> Option<Vec<YamlDoc>> {
    let mut parsed = parsed.into_iter();
    let mut skeleton = single(parsed.next()?.ok()?)?;
    for section in sections {
        let mut items = Vec::new();
        let mut positions = Vec::new();
        for _ in &section.runs {
            let run = single(parsed.next()?.ok()?)?;
            let Value::Array(values) = run.value else {
                return None;
            };
            items.extend(values);
            positions.push(run.positions);
        }
        let slot = skeleton.value.as_object_mut()?.get_mut(&section.key)?;
        if !slot.is_null() || !skeleton.positions.graft_sequence(&section.key, positions) {
            return None;
        }
        *slot = Value::Array(items);
    }
    Some(vec![skeleton])
}

fn single(mut docs: Vec<YamlDoc>) -> Option<YamlDoc> {
    (docs.len() == 1).then(|| docs.pop()).flatten()
}

/// No construct that could make a line look like an item boundary when it
/// is not one, or tie items to each other.
fn plain_enough(text: &str) -> bool {
    if text.contains(['&', '*', '!', '\r']) || text.starts_with('\u{feff}') {
        return false;
    }
    text.lines().all(|line| {
        let directive = ["---", "...", "%"]
            .iter()
            .any(|mark| line.starts_with(mark));
        !directive && quotes_closed(line) && !starts_block_scalar(line)
    })
}

/// Whether `line` ends with a block scalar's header (`key: |`, `- >-`):
/// such a scalar's value depends on the lines after it, so one at the end
/// of a run could read differently on its own.
fn starts_block_scalar(line: &str) -> bool {
    let code = line.split(" #").next().unwrap_or(line).trim_end();
    let (before, last) = code.rsplit_once(' ').unwrap_or(("", code));
    let header = last.strip_prefix(['|', '>']).is_some_and(|rest| {
        rest.len() <= 2 && rest.chars().all(|c| matches!(c, '+' | '-' | '1'..='9'))
    });
    let before = before.trim_end();
    header && (before.is_empty() || before.ends_with(':') || before.ends_with('-'))
}

/// Whether every quote opened on `line` (outside a comment) is closed on
/// it. Conservative: an apostrophe in a plain scalar (`don't`) also counts
/// as open, which only means the text is parsed whole.
fn quotes_closed(line: &str) -> bool {
    let mut open: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (open, c) {
            (None, '#') => return true,
            (None, '"' | '\'') => open = Some(c),
            (Some('"'), '\\') => {
                chars.next();
            }
            (Some('\''), '\'') if chars.peek() == Some(&'\'') => {
                chars.next();
            }
            (Some(quote), c) if c == quote => open = None,
            _ => {}
        }
    }
    open.is_none()
}

/// The long sequences of a root block mapping, or `None` when the root is
/// something else.
fn sections(text: &str, min_items: usize) -> Option<Vec<Section>> {
    let lines = line_starts(text);
    let mut sections = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let line = line_text(text, &lines, at);
        if is_blank(line) || line.starts_with(' ') {
            at += 1;
            continue;
        }
        // A top-level entry starts here.
        if line.starts_with(['-', '[', '{', '"', '\'', '?']) {
            return None;
        }
        let end = section_end(text, &lines, at + 1);
        if let Some(section) = cut_section(text, &lines, at, end, min_items) {
            sections.push(section);
        }
        at = end;
    }
    Some(sections)
}

/// The first line after `from` that starts a new top-level entry.
fn section_end(text: &str, lines: &[usize], from: usize) -> usize {
    (from..lines.len())
        .find(|&index| {
            let line = line_text(text, lines, index);
            !is_blank(line) && !line.starts_with([' ', '-'])
        })
        .unwrap_or(lines.len())
}

/// The runs of the entry on lines `key_line..end`, when it is `key:` and
/// a block sequence of many items.
fn cut_section(
    text: &str,
    lines: &[usize],
    key_line: usize,
    end: usize,
    min_items: usize,
) -> Option<Section> {
    let key = line_text(text, lines, key_line).strip_suffix(':')?;
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return None;
    }
    let first = (key_line + 1..end).find(|&i| !is_blank(line_text(text, lines, i)))?;
    let first_text = line_text(text, lines, first);
    let indent = first_text.len() - first_text.trim_start_matches(' ').len();
    if !is_item(&first_text[indent..]) {
        return None;
    }
    let starts: Vec<usize> = (first..end)
        .filter(|&i| {
            let line = line_text(text, lines, i);
            line.get(indent..).is_some_and(is_item) && line[..indent].bytes().all(|b| b == b' ')
        })
        .collect();
    // A line less indented than the items (a comment aside) is not part
    // of the sequence as cut here: leave the section whole.
    let shallow = (first..end).any(|i| {
        let line = line_text(text, lines, i);
        let depth = line.len() - line.trim_start_matches(' ').len();
        !is_blank(line) && depth < indent
    });
    if starts.len() < min_items || shallow {
        return None;
    }
    let per_run = starts.len().div_ceil(RUNS);
    let first_lines: Vec<usize> = starts.iter().copied().step_by(per_run).collect();
    let mut bounds: Vec<usize> = first_lines.iter().map(|&line| lines[line]).collect();
    bounds.push(lines.get(end).copied().unwrap_or(text.len()));
    let runs = bounds.windows(2).map(|pair| pair[0]..pair[1]).collect();
    Some(Section {
        key: key.to_owned(),
        runs,
        first_lines,
        indent,
    })
}

fn is_item(line: &str) -> bool {
    line == "-" || line.starts_with("- ")
}

/// Empty, spaces only, or a comment.
fn is_blank(line: &str) -> bool {
    let trimmed = line.trim();
    trimmed.is_empty() || trimmed.starts_with('#')
}

/// The byte offset where each line starts.
fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(at, _)| at + 1))
        .filter(|&start| start < text.len())
        .collect()
}

fn line_text<'t>(text: &'t str, lines: &[usize], index: usize) -> &'t str {
    let start = lines[index];
    let end = lines.get(index + 1).map_or(text.len(), |next| next - 1);
    &text[start..end]
}

/// `text` with every run blanked to its line breaks, so the rest keeps its
/// lines and columns.
fn skeleton(text: &str, sections: &[Section]) -> String {
    let mut skeleton = String::with_capacity(text.len());
    let mut copied = 0;
    for run in sections.iter().flat_map(|section| &section.runs) {
        skeleton.push_str(&text[copied..run.start]);
        let breaks = text[run.clone()].bytes().filter(|b| *b == b'\n').count();
        skeleton.extend(std::iter::repeat_n('\n', breaks));
        copied = run.end;
    }
    skeleton.push_str(&text[copied..]);
    skeleton
}

#[cfg(test)]
mod tests;
