//! `{% entity_examples %}` blocks of Kong's Markdown docs
//! (developer.konghq.com) as decK input.
//!
//! A block's body is YAML with an `entities:` key holding decK content and
//! an optional `variables:` key:
//!
//! ```yaml
//! entities:
//!   plugins:
//!     - name: key-auth
//!       config: {key_names: ["${header}"]}
//! variables:
//!   header:
//!     value: $HEADER_NAME
//! ```
//!
//! The docs site renders `${header}` as `${{ env "DECK_HEADER_NAME" }}`:
//! the variable's `value` with every `$` replaced by `DECK_`, case kept
//! (`$HEADER_NAME` becomes `DECK_HEADER_NAME`). [`substitute_variables`]
//! applies that to the parsed entities, reading the variable through the
//! same rules and error texts as decK's templating. Only names declared
//! under `variables` are replaced; any other `${...}` stays as written.
//!
//! Extraction follows Liquid, which runs before Markdown on the docs site:
//! tags inside fenced code blocks are still tags (Liquid does not know about
//! fences), while `{% raw %}`/`{% comment %}` regions and the front matter
//! are skipped. `{%- ... -%}` and extra spaces inside the tag are accepted.
//! Liquid markup inside a block (`{{ site.x }}`) is not rendered, and the
//! files `{% include %}` tags pull in are not read: [`scan_page`] lists
//! those tags so the reader can say so.
//!
//! A page's front matter may list the entities it expects to exist before
//! its first block (`prereqs.entities`, e.g. `services: [example-service]`);
//! [`prerequisites`] reads that list for hints about missing references.

use once_cell::sync::Lazy;
use regex::Regex;
use serde_json::Value;

use super::pos::{Path, PathSeg, Pos, Positions};
use super::template::{
    line_column, lookup_deck_env, record_substitution, EnvLookup, Substitution, TemplateError,
};
use super::yaml::{parse_documents_at, resolve_plain_scalar};

/// One `{% entity_examples %}` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityExamplesBlock {
    /// The YAML text between the opening and the closing tag.
    pub yaml: String,
    /// 1-based line of the Markdown file on which `yaml` starts; parse with
    /// a line offset of `first_line - 1` to get Markdown line numbers.
    pub first_line: usize,
}

/// An `{% include ... %}` tag of a page, which gwctl does not follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncludeTag {
    /// The tag as written, e.g. `{% include how-tos/steps/ping-gateway.md %}`.
    pub text: String,
    /// 1-based line of the tag.
    pub line: usize,
    /// 1-based column of the tag, in characters.
    pub column: usize,
}

/// What a page holds for gwctl: its blocks, and the include tags it skips.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageScan {
    /// The `{% entity_examples %}` blocks, in order.
    pub blocks: Vec<EntityExamplesBlock>,
    /// The `{% include %}` tags outside blocks, in order.
    pub includes: Vec<IncludeTag>,
}

/// The entities a page's front matter says must exist before its first
/// block (`prereqs.entities`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prerequisites {
    /// Per collection as written (`services`, `routes`, ...), the names.
    pub entities: Vec<(String, Vec<String>)>,
    /// 1-based line of `prereqs` in the page.
    pub line: usize,
    /// 1-based column of `prereqs`.
    pub column: usize,
}

impl Prerequisites {
    /// Whether `name` is listed under `collection`.
    pub fn lists(&self, collection: &str, name: &str) -> bool {
        self.entities
            .iter()
            .any(|(listed, names)| listed == collection && names.iter().any(|n| n == name))
    }

    /// `services example-service, routes example-route`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .entities
            .iter()
            .map(|(collection, names)| format!("{collection} {}", names.join(", ")))
            .collect();
        parts.join("; ")
    }
}

/// A variable declared under `variables:` in a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocVariable {
    /// The name used as `${name}` in the entities.
    pub name: String,
    /// The environment variable it reads (`$FOO` becomes `DECK_FOO`);
    /// `None` when the variable has no `value`, in which case the docs
    /// leave `${name}` as it is.
    pub env_name: Option<String>,
    /// `literal_block: true`: the value is inserted verbatim as a string
    /// (the docs emit a YAML `|-` block for it).
    pub literal_block: bool,
}

/// A malformed block or `variables` section.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line}, column {column}")]
pub struct MarkdownError {
    /// 1-based line in the Markdown file.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, without the position.
    pub message: String,
}

/// Any Liquid tag: `{% name args %}`, with optional `-` trim markers.
static LIQUID_TAG: Lazy<Regex> = Lazy::new(|| {
    Regex::new(r"\{%-?\s*([A-Za-z_][A-Za-z0-9_]*)[^%]*?-?%\}").expect("constant regex is valid")
});

/// Where the scan is.
enum Region {
    Text,
    Raw,
    Comment,
    /// Inside a block whose body starts at this byte and line, opened by a
    /// tag at `open`.
    Block {
        body_start: usize,
        first_line: usize,
        open: usize,
    },
}

/// Counts lines while moving forward through a text.
struct LineCounter<'t> {
    text: &'t str,
    offset: usize,
    line: usize,
}

impl LineCounter<'_> {
    /// The 1-based line of byte `offset` (must not go backwards).
    fn line_at(&mut self, offset: usize) -> usize {
        if let Some(slice) = self.text.get(self.offset..offset) {
            self.line += slice.bytes().filter(|&b| b == b'\n').count();
            self.offset = offset;
        }
        self.line
    }
}

/// Extracts every `{% entity_examples %}` block of `markdown`, in order.
pub fn extract_entity_examples(markdown: &str) -> Result<Vec<EntityExamplesBlock>, MarkdownError> {
    scan_page(markdown).map(|scan| scan.blocks)
}

/// The blocks of `markdown` and the `{% include %}` tags (`include`,
/// `include_relative`, `include_cached`) found outside them.
pub fn scan_page(markdown: &str) -> Result<PageScan, MarkdownError> {
    let mut blocks = Vec::new();
    let mut includes = Vec::new();
    let mut region = Region::Text;
    let mut lines = LineCounter {
        text: markdown,
        offset: 0,
        line: 1,
    };
    let scan_from = front_matter_end(markdown);
    for tag in LIQUID_TAG.captures_iter(&markdown[scan_from..]) {
        let (Some(whole), Some(name)) = (tag.get(0), tag.get(1)) else {
            continue;
        };
        let (start, end) = (scan_from + whole.start(), scan_from + whole.end());
        region = match (region, name.as_str()) {
            (Region::Text, "raw") => Region::Raw,
            (Region::Text, "comment") => Region::Comment,
            (Region::Text, "entity_examples") => {
                let body_start = body_start_after(markdown, end);
                Region::Block {
                    body_start,
                    first_line: lines.line_at(body_start),
                    open: start,
                }
            }
            (Region::Text, "endentity_examples") => {
                return Err(error_at(
                    markdown,
                    start,
                    "'endentity_examples' without a matching 'entity_examples'",
                ));
            }
            (Region::Text, tag_name) if tag_name.starts_with("include") => {
                let (line, column) = line_column(markdown, start);
                includes.push(IncludeTag {
                    text: whole.as_str().to_owned(),
                    line,
                    column,
                });
                Region::Text
            }
            (Region::Raw, "endraw") | (Region::Comment, "endcomment") => Region::Text,
            (
                Region::Block {
                    body_start,
                    first_line,
                    ..
                },
                "endentity_examples",
            ) => {
                blocks.push(EntityExamplesBlock {
                    yaml: markdown[body_start..start].to_owned(),
                    first_line,
                });
                Region::Text
            }
            (other, _) => other,
        };
    }
    if let Region::Block { open, .. } = region {
        return Err(error_at(
            markdown,
            open,
            "'entity_examples' tag was never closed",
        ));
    }
    Ok(PageScan { blocks, includes })
}

/// The page's `prereqs.entities`, if its front matter has any. A front
/// matter that does not parse has none: it is prose for the docs site.
pub fn prerequisites(markdown: &str) -> Option<Prerequisites> {
    let end = front_matter_end(markdown);
    if end == 0 {
        return None;
    }
    let first_line_end = markdown.find('\n')? + 1;
    let yaml = markdown.get(first_line_end..end)?;
    let doc = parse_documents_at(yaml, 1).ok()?.into_iter().next()?;
    let listed = doc.value.get("prereqs")?.get("entities")?.as_object()?;
    let entities: Vec<(String, Vec<String>)> = listed
        .iter()
        .filter_map(|(collection, names)| {
            let names: Vec<String> = names
                .as_array()?
                .iter()
                .filter_map(|name| name.as_str().map(str::to_owned))
                .collect();
            (!names.is_empty()).then(|| (collection.clone(), names))
        })
        .collect();
    if entities.is_empty() {
        return None;
    }
    let pos = doc.positions.lookup_key(&Path::root().key("prereqs"))?;
    Some(Prerequisites {
        entities,
        line: pos.line,
        column: pos.column,
    })
}

/// Byte offset just past a leading `---` front matter, or 0.
fn front_matter_end(markdown: &str) -> usize {
    let mut lines = markdown.split_inclusive('\n');
    let Some(first) = lines.next().filter(|line| line.trim_end() == "---") else {
        return 0;
    };
    let mut offset = first.len();
    for line in lines {
        offset += line.len();
        if line.trim_end() == "---" {
            return offset;
        }
    }
    0
}

/// Where the body of a block opened by a tag ending at `tag_end` starts:
/// the next line when the rest of the tag's line is blank, else right
/// after the tag.
fn body_start_after(markdown: &str, tag_end: usize) -> usize {
    let rest = &markdown[tag_end..];
    match rest.find('\n') {
        Some(newline) if rest[..newline].trim().is_empty() => tag_end + newline + 1,
        None if rest.trim().is_empty() => markdown.len(),
        _ => tag_end,
    }
}

fn error_at(text: &str, offset: usize, message: &str) -> MarkdownError {
    let (line, column) = line_column(text, offset);
    MarkdownError {
        line,
        column,
        message: message.to_owned(),
    }
}

/// Reads the `variables:` section of a parsed block (the block's root
/// value); `positions` locate errors.
pub fn parse_variables(
    block: &Value,
    positions: &Positions,
) -> Result<Vec<DocVariable>, MarkdownError> {
    let Some(section) = block.get("variables") else {
        return Ok(Vec::new());
    };
    let mut path = Path::root().key("variables");
    let Some(declared) = section.as_object() else {
        return Err(shape_error(
            positions,
            &path,
            "'variables' must be a mapping",
        ));
    };
    let mut variables = Vec::with_capacity(declared.len());
    for (name, spec) in declared {
        path.push(name.as_str());
        variables.push(parse_variable(name, spec, positions, &path)?);
        path.pop();
    }
    Ok(variables)
}

fn parse_variable(
    name: &str,
    spec: &Value,
    positions: &Positions,
    path: &Path,
) -> Result<DocVariable, MarkdownError> {
    let Some(spec) = spec.as_object() else {
        return Err(shape_error(
            positions,
            path,
            "a variable must be a mapping with a 'value'",
        ));
    };
    let env_name = match spec.get("value") {
        None | Some(Value::Null) => None,
        Some(Value::String(value)) => Some(value.replace('$', "DECK_")),
        Some(_) => {
            let path = path.clone().key("value");
            return Err(shape_error(
                positions,
                &path,
                "a variable's 'value' must be a string",
            ));
        }
    };
    let literal_block = matches!(spec.get("literal_block"), Some(Value::Bool(true)));
    Ok(DocVariable {
        name: name.to_owned(),
        env_name,
        literal_block,
    })
}

fn shape_error(positions: &Positions, path: &Path, message: &str) -> MarkdownError {
    let pos = positions.lookup(path).unwrap_or(Pos::new(1, 1));
    MarkdownError {
        line: pos.line,
        column: pos.column,
        message: message.to_owned(),
    }
}

/// Replaces `${name}` in the string values of `value` (e.g. a block's
/// `entities`) with the variables' environment values, recording each use
/// in `substitutions`. A string that is exactly one `${name}` takes the
/// type of the value (`8080` becomes a number), as the docs emit it as a
/// plain YAML scalar; with `literal_block` it stays a string. Mapping keys
/// are left alone. Every variable that cannot be read is reported, each
/// once at its first use (the list is never empty).
pub fn substitute_variables(
    value: &mut Value,
    positions: &Positions,
    variables: &[DocVariable],
    env: &dyn EnvLookup,
    substitutions: &mut Vec<Substitution>,
) -> Result<(), Vec<TemplateError>> {
    if variables.is_empty() {
        return Ok(());
    }
    let mut walk = VariableWalk {
        positions,
        variables,
        env,
        substitutions,
        path: Vec::new(),
        errors: Vec::new(),
    };
    walk.visit(value);
    if walk.errors.is_empty() {
        Ok(())
    } else {
        Err(walk.errors)
    }
}

/// The environment name and `literal_block` flag of variable `name`.
fn find_variable<'v>(variables: &'v [DocVariable], name: &str) -> Option<(&'v str, bool)> {
    variables
        .iter()
        .find(|v| v.name == name)
        .and_then(|v| Some((v.env_name.as_deref()?, v.literal_block)))
}

struct VariableWalk<'a> {
    positions: &'a Positions,
    variables: &'a [DocVariable],
    env: &'a dyn EnvLookup,
    substitutions: &'a mut Vec<Substitution>,
    path: Vec<PathSeg>,
    /// The variables that could not be read, each once.
    errors: Vec<TemplateError>,
}

impl VariableWalk<'_> {
    /// Recursion depth is bounded by the YAML parser's nesting cap.
    fn visit(&mut self, value: &mut Value) {
        match value {
            Value::String(text) if text.contains("${") => {
                if let Some(replaced) = self.replace(text) {
                    *value = replaced;
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter_mut().enumerate() {
                    self.path.push(PathSeg::Index(index));
                    self.visit(item);
                    self.path.pop();
                }
            }
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    self.path.push(PathSeg::Key(key.clone()));
                    self.visit(item);
                    self.path.pop();
                }
            }
            _ => {}
        }
    }

    /// The new value of string `text`, or `None` if nothing was replaced.
    fn replace(&mut self, text: &str) -> Option<Value> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut replaced = false;
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else { break };
            let name = &after[..end];
            out.push_str(&rest[..start]);
            match find_variable(self.variables, name) {
                Some((env_name, literal_block)) => {
                    let env_value = self.env_value(env_name);
                    if !literal_block && text.len() == name.len() + 3 {
                        return Some(resolve_plain_scalar(&env_value));
                    }
                    out.push_str(&env_value);
                    replaced = true;
                }
                None => out.push_str(&rest[start..start + end + 3]),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        replaced.then_some(Value::String(out))
    }

    /// The variable's value; empty when it cannot be read, which is
    /// recorded as an error (once per variable).
    fn env_value(&mut self, env_name: &str) -> String {
        match lookup_deck_env(env_name, self.env) {
            Ok(value) => {
                record_substitution(self.substitutions, env_name, &value);
                value
            }
            Err(message) => {
                if !self.errors.iter().any(|error| error.message == message) {
                    let pos = self.positions.lookup(&self.path).unwrap_or(Pos::new(1, 1));
                    self.errors.push(TemplateError {
                        line: pos.line,
                        column: pos.column,
                        message,
                    });
                }
                String::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::yaml::parse_documents_at;
    use serde_json::json;

    const TUTORIAL: &str = "---
title: Key auth
entities:
  - service
---

## Enable the plugin

<!--vale off-->
{% entity_examples %}
entities:
  plugins:
    - name: key-auth
      service: example-service
{% endentity_examples %}
<!--vale on-->

Text.

{%- entity_examples -%}
entities:
  consumers:
    - username: alex
{%-   endentity_examples   -%}
";

    #[test]
    fn extracts_blocks_with_their_first_line() {
        let blocks = extract_entity_examples(TUTORIAL).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].first_line, 11);
        assert!(blocks[0].yaml.starts_with("entities:\n  plugins:\n"));
        assert!(blocks[0].yaml.ends_with("service: example-service\n"));
        assert_eq!(blocks[1].first_line, 21);
        assert_eq!(
            blocks[1].yaml,
            "entities:\n  consumers:\n    - username: alex\n"
        );
    }

    #[test]
    fn block_positions_map_to_markdown_lines() {
        let blocks = extract_entity_examples(TUTORIAL).unwrap();
        let docs = parse_documents_at(&blocks[0].yaml, blocks[0].first_line - 1).unwrap();
        let pos = docs[0]
            .positions
            .lookup_str("entities.plugins[0].service")
            .unwrap();
        assert_eq!((pos.line, pos.column), (14, 16));
    }

    #[test]
    fn tags_in_front_matter_raw_and_comment_are_ignored() {
        let markdown = "---\nx: '{% entity_examples %}'\n---\n\
            {% raw %}{% entity_examples %}{% endraw %}\n\
            {% comment %}{% entity_examples %}{% endcomment %}\n\
            ```yaml\n{% entity_examples %}\nentities: {}\n{% endentity_examples %}\n```\n";
        let blocks = extract_entity_examples(markdown).unwrap();
        // Only the one in the fenced code block: Liquid does not see fences.
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].first_line, 8);
        assert_eq!(blocks[0].yaml, "entities: {}\n");
    }

    #[test]
    fn include_tags_outside_blocks_are_listed() {
        let markdown = "{% include a.md %}\n{%- include_cached b.md x=1 -%}\n{% raw %}{% include c.md %}{% endraw %}\n\
            {% entity_examples %}\n{% include d.md %}\n{% endentity_examples %}\n";
        let scan = scan_page(markdown).unwrap();
        let found: Vec<(&str, usize)> = scan
            .includes
            .iter()
            .map(|t| (t.text.as_str(), t.line))
            .collect();
        assert_eq!(
            found,
            [
                ("{% include a.md %}", 1),
                ("{%- include_cached b.md x=1 -%}", 2)
            ]
        );
        assert_eq!(scan.blocks.len(), 1);
    }

    #[test]
    fn prerequisites_come_from_the_front_matter() {
        let page = "---\ntitle: x\nprereqs:\n  entities:\n    services:\n      - s1\n    routes: [r1]\n  inline: []\n---\nText\n";
        let prereqs = prerequisites(page).unwrap();
        assert_eq!(prereqs.describe(), "services s1; routes r1");
        assert_eq!((prereqs.line, prereqs.column), (3, 1));
        assert!(prereqs.lists("routes", "r1") && !prereqs.lists("services", "r1"));
        assert_eq!(prerequisites("---\ntitle: x\n---\n"), None);
        assert_eq!(
            prerequisites("no front matter\nprereqs: {entities: {services: [s]}}\n"),
            None
        );
        assert_eq!(prerequisites("---\n: : bad yaml [\n---\n"), None);
    }

    #[test]
    fn a_body_may_start_on_the_tag_line() {
        let blocks =
            extract_entity_examples("{% entity_examples %}entities: {}{% endentity_examples %}")
                .unwrap();
        assert_eq!(blocks[0].yaml, "entities: {}");
        assert_eq!(blocks[0].first_line, 1);
    }

    #[test]
    fn reports_unbalanced_tags() {
        let error =
            extract_entity_examples("a\n  {% entity_examples %}\nentities: {}\n").unwrap_err();
        assert_eq!((error.line, error.column), (2, 3));
        assert!(error.message.contains("never closed"));
        let error = extract_entity_examples("{% endentity_examples %}").unwrap_err();
        assert!(error.message.contains("without a matching"));
    }

    #[test]
    fn markdown_without_blocks_has_none() {
        assert!(extract_entity_examples("# Title\n\nNo examples.\n")
            .unwrap()
            .is_empty());
        assert!(extract_entity_examples("").unwrap().is_empty());
        assert!(extract_entity_examples("---").unwrap().is_empty());
    }

    fn parsed(yaml: &str) -> (Value, Positions) {
        let doc = parse_documents_at(yaml, 0).unwrap().remove(0);
        (doc.value, doc.positions)
    }

    #[test]
    fn parses_variables_and_maps_names_to_deck_env() {
        let (block, positions) = parsed(
            "entities: {}\nvariables:\n  key:\n    value: $API_KEY\n  cert:\n    value: $Cert\n    literal_block: true\n  none: {}\n",
        );
        let variables = parse_variables(&block, &positions).unwrap();
        assert_eq!(
            variables,
            vec![
                DocVariable {
                    name: "key".into(),
                    env_name: Some("DECK_API_KEY".into()),
                    literal_block: false
                },
                DocVariable {
                    name: "cert".into(),
                    env_name: Some("DECK_Cert".into()),
                    literal_block: true
                },
                DocVariable {
                    name: "none".into(),
                    env_name: None,
                    literal_block: false
                },
            ]
        );
        let (bad, positions) = parsed("variables:\n  key:\n    value: [1]\n");
        let error = parse_variables(&bad, &positions).unwrap_err();
        assert_eq!(
            (error.line, error.message.as_str()),
            (3, "a variable's 'value' must be a string")
        );
        let (bad, positions) = parsed("variables: [a]\n");
        assert!(parse_variables(&bad, &positions).is_err());
    }

    fn variables() -> Vec<DocVariable> {
        vec![
            DocVariable {
                name: "key".into(),
                env_name: Some("DECK_KEY".into()),
                literal_block: false,
            },
            DocVariable {
                name: "port".into(),
                env_name: Some("DECK_PORT".into()),
                literal_block: false,
            },
            DocVariable {
                name: "pem".into(),
                env_name: Some("DECK_PEM".into()),
                literal_block: true,
            },
            DocVariable {
                name: "bad".into(),
                env_name: Some("NOPREFIX".into()),
                literal_block: false,
            },
        ]
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "DECK_KEY" => Some("s3cret".into()),
            "DECK_PORT" => Some("8080".into()),
            "DECK_PEM" => Some("123".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_declared_variables_in_string_values() {
        let (mut value, positions) = parsed(
            "a: 'Bearer ${key}'\nport: ${port}\npem: ${pem}\nkeep: ${other} and ${key\n${key}: x\nlist: [\"${key}${key}\"]\n",
        );
        let mut subs = Vec::new();
        substitute_variables(&mut value, &positions, &variables(), &env, &mut subs).unwrap();
        assert_eq!(
            value,
            json!({
                "a": "Bearer s3cret",
                "port": 8080,
                "pem": "123",
                "keep": "${other} and ${key",
                "${key}": "x",
                "list": ["s3crets3cret"],
            })
        );
        let names: Vec<&str> = subs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["DECK_KEY", "DECK_PORT", "DECK_PEM"]);
    }

    #[test]
    fn substitution_errors_use_deck_messages_and_positions() {
        let (mut value, positions) = parsed("plugins:\n- config:\n    k: ${bad}\n");
        let mut subs = Vec::new();
        let error = substitute_variables(&mut value, &positions, &variables(), &env, &mut subs)
            .unwrap_err()
            .remove(0);
        assert_eq!(
            error.message,
            "environment variables in the state file must be prefixed with 'DECK_', found: 'NOPREFIX'"
        );
        assert_eq!((error.line, error.column), (3, 8));
        let unset = [DocVariable {
            name: "x".into(),
            env_name: Some("DECK_UNSET".into()),
            literal_block: false,
        }];
        let (mut value, positions) = parsed("k: ${x}\n");
        let error = substitute_variables(&mut value, &positions, &unset, &env, &mut subs)
            .unwrap_err()
            .remove(0);
        assert_eq!(
            error.message,
            "environment variable 'DECK_UNSET' present in state file but not set"
        );
    }

    mod fuzz {
        use super::super::extract_entity_examples;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn arbitrary_markdown_never_panics(
                text in "(\\{%-? ?|-? ?%\\}|entity_examples|endentity_examples|raw|endraw|---|\n|[ a-zé]){0,40}"
            ) {
                let _ = extract_entity_examples(&text);
            }
        }
    }
}
