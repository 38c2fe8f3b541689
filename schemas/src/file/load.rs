//! Reading decK inputs (files, directories, stdin, Markdown pages) into
//! parsed documents that remember where each node came from.
//!
//! What counts as input mirrors decK:
//!
//! * `-` is stdin, and stdin is the input when no path is given.
//! * A directory is walked recursively for `*.yaml`, `*.yml` and `*.json`
//!   (extension case ignored), in sorted path order, which is the order of
//!   Go's `filepath.Walk`. Symlinked directories are not followed.
//! * A file is read whatever its extension, except that `*.md` and
//!   `*.markdown` files yield their `{% entity_examples %}` blocks
//!   ([`super::markdown`]). Markdown files are only read when named
//!   explicitly, never picked up by a directory walk: a README next to the
//!   configuration must not turn into entities.
//!
//! Each input goes through decK's templating ([`super::template`]) and is
//! then parsed ([`super::yaml`]); every YAML document becomes one
//! [`SourceDoc`]. Empty documents are skipped. Every unset `DECK_*`
//! variable of an input is reported at once, not only the first.
//!
//! The blocks of a Markdown page are documents that know their page and
//! their place in it ([`PageBlock`]): the docs apply them one after the
//! other, and the builder reads them that way. The page's
//! `prereqs.entities` go along for hints, and each `{% include %}` tag the
//! page holds gets a warning ([`LoadWarning`]): the included file is not
//! read. A document in the docs'
//! block form (top-level `entities:`, optionally `variables:`) is unwrapped
//! to the decK content under `entities`, with `${name}` variables
//! substituted and `_format_version: "3.0"` added when missing (the docs
//! site prepends it); its positions still point at the original lines.
//!
//! Like decK, a file whose (rendered) text starts with a space is rejected,
//! and inputs that yield no document at all are an error. Unlike decK,
//! every document of a multi-document file is read (decK silently reads
//! only the first), and errors of all inputs are reported together.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::markdown::{self, MarkdownError, Prerequisites};
use super::pos::{PathSeg, Pos, Positions};
use super::template::{self, record_substitution, EnvLookup, Substitution, TemplateError};
use super::yaml::{self, YamlDoc, YamlError};

/// The origin of stdin, as given on the command line.
pub const STDIN: &str = "-";

/// Extensions (lowercase) a directory walk picks up.
const CONFIG_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// Extensions (lowercase) read as Markdown.
const MARKDOWN_EXTENSIONS: &[&str] = &["md", "markdown"];

/// Top-level keys of the docs' block form; a YAML document with
/// `entities` and nothing but these is unwrapped.
const DOCS_BLOCK_KEYS: &[&str] = &["entities", "variables", "formats", "deck_flags"];

/// The format version the docs site prepends to rendered examples.
const DOCS_FORMAT_VERSION: &str = "3.0";

/// One parsed document of one input.
#[derive(Debug, Clone)]
pub struct SourceDoc {
    /// The path as given (or as found in a directory), or `-` for stdin.
    pub origin: String,
    /// The decK content: a JSON object.
    pub value: Value,
    /// Positions of the nodes of `value`, as lines of `origin`. Paths are
    /// relative to `value`, e.g. `services[0].routes[1]`.
    pub positions: Positions,
    /// For a block of a Markdown page: the page and the block's place.
    pub block: Option<PageBlock>,
}

/// A Markdown page, shared by the documents of its blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The page as given on the command line.
    pub origin: String,
    /// Its front matter's `prereqs.entities`, if any.
    pub prereqs: Option<Prerequisites>,
}

/// Which block of which page a document is: the docs apply a page's
/// blocks one after the other (`deck gateway apply` each).
#[derive(Debug, Clone)]
pub struct PageBlock {
    pub page: Arc<Page>,
    /// 0-based, in page order (blocks without entities count too).
    pub index: usize,
}

impl PageBlock {
    /// Whether two documents are blocks of the same page (read once).
    pub fn same_page(&self, other: &PageBlock) -> bool {
        Arc::ptr_eq(&self.page, &other.page)
    }
}

/// Something worth telling about an input that is still read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadWarning {
    pub origin: String,
    pub pos: Pos,
    pub message: String,
}

/// `page.md:12:1: warning: ...`
impl fmt::Display for LoadWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: warning: {}",
            self.origin, self.pos.line, self.pos.column, self.message
        )
    }
}

impl SourceDoc {
    /// The position of the node at `path` (see [`Positions::lookup_str`]),
    /// falling back to its nearest ancestor.
    pub fn pos_of(&self, path: &str) -> Option<Pos> {
        self.positions.lookup_str(path)
    }
}

/// Everything read from a set of inputs.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The documents, in input order.
    pub docs: Vec<SourceDoc>,
    /// Environment variables substituted into any input, each once; their
    /// values are what `diff` output should mask.
    pub substitutions: Vec<Substitution>,
    /// What the reader skipped (`{% include %}` tags of pages).
    pub warnings: Vec<LoadWarning>,
}

impl Loaded {
    fn absorb(&mut self, other: Loaded) {
        self.docs.extend(other.docs);
        self.warnings.extend(other.warnings);
        for sub in other.substitutions {
            record_substitution(&mut self.substitutions, &sub.name, &sub.value);
        }
    }
}

/// Why inputs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A path could not be read (or a directory walked).
    #[error("reading {origin}: {error}")]
    Io {
        /// The path.
        origin: String,
        /// The underlying error.
        error: io::Error,
    },
    /// Invalid YAML or JSON.
    #[error("{origin}:{}:{}: {}", .error.line, .error.column, .error.message)]
    Yaml {
        /// The input.
        origin: String,
        /// The parse error.
        error: YamlError,
    },
    /// A `${{ ... }}` template (or a docs `${name}` variable) failed.
    #[error("{origin}:{}:{}: {}", .error.line, .error.column, .error.message)]
    Template {
        /// The input.
        origin: String,
        /// The template error.
        error: TemplateError,
    },
    /// A malformed `entity_examples` block, or a malformed block-form
    /// document (`entities`/`variables`).
    #[error("{origin}:{}:{}: {}", .error.line, .error.column, .error.message)]
    DocsBlock {
        /// The input.
        origin: String,
        /// What is wrong.
        error: MarkdownError,
    },
    /// decK refuses files whose first character is a space.
    #[error("{origin}: file must not begin with a whitespace")]
    LeadingWhitespace {
        /// The input.
        origin: String,
    },
    /// A document whose top level is not a mapping.
    #[error("{origin}:{}:{}: the top level of a decK file must be a mapping, found {found}", .pos.line, .pos.column)]
    NotAMapping {
        /// The input.
        origin: String,
        /// Where the document starts.
        pos: Pos,
        /// What was found instead: "a list", "a string", ...
        found: &'static str,
    },
    /// The inputs held no document at all. The text is decK's (a sync of
    /// nothing would delete everything); `validate` names the inputs.
    #[error(
        "it seems like you are trying to sync an empty configuration file or directory. \
         If you want to delete all entities, use the reset command instead"
    )]
    Empty {
        /// The files read (`-` for stdin), none of which held a document.
        inputs: Vec<String>,
        /// What reading them warned about.
        warnings: Vec<LoadWarning>,
    },
    /// Several inputs failed; one error per line.
    #[error("{}", join_errors(.0))]
    Multiple(Vec<LoadError>),
}

impl LoadError {
    /// The input the error is about, if it is about one.
    pub fn origin(&self) -> Option<&str> {
        match self {
            LoadError::Io { origin, .. }
            | LoadError::Yaml { origin, .. }
            | LoadError::Template { origin, .. }
            | LoadError::DocsBlock { origin, .. }
            | LoadError::LeadingWhitespace { origin }
            | LoadError::NotAMapping { origin, .. } => Some(origin),
            LoadError::Empty { .. } | LoadError::Multiple(_) => None,
        }
    }

    /// Where in the input the error is, if known.
    pub fn pos(&self) -> Option<Pos> {
        match self {
            LoadError::Yaml { error, .. } => Some(error.pos()),
            LoadError::Template { error, .. } => Some(Pos::new(error.line, error.column)),
            LoadError::DocsBlock { error, .. } => Some(Pos::new(error.line, error.column)),
            LoadError::NotAMapping { pos, .. } => Some(*pos),
            _ => None,
        }
    }
}

/// One error, or [`LoadError::Multiple`] for several (flattened).
fn one_error(errors: Vec<LoadError>) -> LoadError {
    let mut flat = Vec::with_capacity(errors.len());
    for error in errors {
        match error {
            LoadError::Multiple(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    if flat.len() == 1 {
        flat.remove(0)
    } else {
        LoadError::Multiple(flat)
    }
}

fn template_errors(origin: &str, errors: Vec<TemplateError>, line_offset: usize) -> LoadError {
    one_error(
        errors
            .into_iter()
            .map(|mut error| {
                error.line += line_offset;
                LoadError::Template {
                    origin: origin.to_owned(),
                    error,
                }
            })
            .collect(),
    )
}

fn join_errors(errors: &[LoadError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Reads `inputs` (paths, directories or `-`; stdin when empty) with
/// `stdin` as standard input and `env` as the environment for templating.
/// Errors of all inputs are collected; no document at all is
/// [`LoadError::Empty`].
pub fn load_inputs<S: AsRef<str>>(
    inputs: &[S],
    stdin: &mut dyn Read,
    env: &dyn EnvLookup,
) -> Result<Loaded, LoadError> {
    let mut inputs: Vec<&str> = inputs.iter().map(AsRef::as_ref).collect();
    if inputs.is_empty() {
        inputs.push(STDIN);
    }
    let mut loaded = Loaded::default();
    let mut errors = Vec::new();
    let mut read = Vec::new();
    for input in inputs {
        let files = match expand_input(input) {
            Ok(files) => files,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        for file in files {
            let origin = file.origin();
            match read_input(&file, stdin).and_then(|text| load_text(&origin, &text, env)) {
                Ok(more) => loaded.absorb(more),
                Err(error) => errors.push(error),
            }
            read.push(origin);
        }
    }
    match errors.len() {
        0 if loaded.docs.is_empty() => Err(LoadError::Empty {
            inputs: read,
            warnings: loaded.warnings,
        }),
        0 => Ok(loaded),
        _ => Err(one_error(errors)),
    }
}

/// Loads the text of one input; `origin` names it in errors and decides
/// the format (`.md`/`.markdown` is Markdown, anything else YAML/JSON).
/// Unlike [`load_inputs`], yielding no document is not an error.
pub fn load_text(origin: &str, text: &str, env: &dyn EnvLookup) -> Result<Loaded, LoadError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if has_extension(FsPath::new(origin), MARKDOWN_EXTENSIONS) {
        load_markdown(origin, text, env)
    } else {
        load_state_file(origin, text, env)
    }
}

/// One thing to read.
enum InputFile {
    Stdin,
    Path(PathBuf),
}

impl InputFile {
    /// The name used in documents and errors.
    fn origin(&self) -> String {
        match self {
            InputFile::Stdin => STDIN.to_owned(),
            InputFile::Path(path) => path.display().to_string(),
        }
    }
}

/// The files an input stands for: itself, `-`, or a directory's files.
fn expand_input(input: &str) -> Result<Vec<InputFile>, LoadError> {
    if input == STDIN {
        return Ok(vec![InputFile::Stdin]);
    }
    let io_error = |error| LoadError::Io {
        origin: input.to_owned(),
        error,
    };
    let metadata = fs::metadata(input).map_err(io_error)?;
    if !metadata.is_dir() {
        return Ok(vec![InputFile::Path(PathBuf::from(input))]);
    }
    let files = config_files_in(FsPath::new(input)).map_err(io_error)?;
    Ok(files.into_iter().map(InputFile::Path).collect())
}

/// The configuration files under `dir`, recursively, sorted.
fn config_files_in(dir: &FsPath) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                pending.push(path);
            } else if has_extension(&path, CONFIG_EXTENSIONS) && is_file(&path, file_type) {
                files.push(path);
            }
        }
    }
    // Component-wise order: the order in which Go's filepath.Walk visits.
    files.sort();
    Ok(files)
}

/// True for regular files and for symlinks to them.
fn is_file(path: &FsPath, file_type: fs::FileType) -> bool {
    file_type.is_file() || (file_type.is_symlink() && path.is_file())
}

fn has_extension(path: &FsPath, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| extensions.iter().any(|e| ext.eq_ignore_ascii_case(e)))
}

fn read_input(file: &InputFile, stdin: &mut dyn Read) -> Result<String, LoadError> {
    let mut text = String::new();
    let result = match file {
        InputFile::Stdin => stdin.read_to_string(&mut text),
        InputFile::Path(path) => fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text)),
    };
    result.map(|_| text).map_err(|error| LoadError::Io {
        origin: file.origin(),
        error,
    })
}

/// A YAML or JSON state file.
fn load_state_file(origin: &str, text: &str, env: &dyn EnvLookup) -> Result<Loaded, LoadError> {
    let rendered =
        template::render_all(text, env).map_err(|errors| template_errors(origin, errors, 0))?;
    // go-yaml misreads a file starting with a space (Kong/deck#578), so
    // decK rejects it; do the same so a file means the same to both tools.
    if rendered.text.starts_with(' ') {
        return Err(LoadError::LeadingWhitespace {
            origin: origin.to_owned(),
        });
    }
    let docs = yaml::parse_documents(&rendered.text).map_err(|error| LoadError::Yaml {
        origin: origin.to_owned(),
        error,
    })?;
    let mut loaded = Loaded {
        substitutions: rendered.substitutions,
        ..Loaded::default()
    };
    for doc in docs {
        let block_form = matches!(&doc.value, Value::Object(map) if is_docs_block(map));
        add_document(origin, doc, block_form, None, env, &mut loaded)?;
    }
    Ok(loaded)
}

/// A Markdown page: each `entity_examples` block is a block-form document
/// that knows its place in the page. The errors of every block are
/// reported (all unset variables at once); include tags are warned about.
fn load_markdown(origin: &str, text: &str, env: &dyn EnvLookup) -> Result<Loaded, LoadError> {
    let scan = markdown::scan_page(text).map_err(|error| LoadError::DocsBlock {
        origin: origin.to_owned(),
        error,
    })?;
    let page = Arc::new(Page {
        origin: origin.to_owned(),
        prereqs: markdown::prerequisites(text),
    });
    let mut loaded = Loaded {
        warnings: scan
            .includes
            .iter()
            .map(|tag| skipped_include(origin, tag))
            .collect(),
        ..Loaded::default()
    };
    let mut errors = Vec::new();
    for (index, block) in scan.blocks.iter().enumerate() {
        let place = PageBlock {
            page: page.clone(),
            index,
        };
        if let Err(error) = load_block(origin, block, place, env, &mut loaded) {
            errors.push(error);
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(one_error(errors))
    }
}

/// One block of a page, added to `loaded`.
fn load_block(
    origin: &str,
    block: &markdown::EntityExamplesBlock,
    place: PageBlock,
    env: &dyn EnvLookup,
    loaded: &mut Loaded,
) -> Result<(), LoadError> {
    let line_offset = block.first_line.saturating_sub(1);
    let rendered = template::render_all(&block.yaml, env)
        .map_err(|errors| template_errors(origin, errors, line_offset))?;
    let docs =
        yaml::parse_documents_at(&rendered.text, line_offset).map_err(|error| LoadError::Yaml {
            origin: origin.to_owned(),
            error,
        })?;
    for sub in &rendered.substitutions {
        record_substitution(&mut loaded.substitutions, &sub.name, &sub.value);
    }
    for doc in docs {
        add_document(origin, doc, true, Some(place.clone()), env, loaded)?;
    }
    Ok(())
}

/// The warning for an `{% include %}` tag, whose file gwctl does not read.
fn skipped_include(origin: &str, tag: &markdown::IncludeTag) -> LoadWarning {
    LoadWarning {
        origin: origin.to_owned(),
        pos: Pos::new(tag.line, tag.column),
        message: format!(
            "skipped `{}`: gwctl does not read included files; entities they define \
             must be given in a file of their own",
            tag.text
        ),
    }
}

fn is_docs_block(map: &Map<String, Value>) -> bool {
    map.contains_key("entities") && map.keys().all(|k| DOCS_BLOCK_KEYS.contains(&k.as_str()))
}

/// Adds one parsed document to `loaded`, unwrapping it when it is in
/// block form.
fn add_document(
    origin: &str,
    doc: YamlDoc,
    block_form: bool,
    block: Option<PageBlock>,
    env: &dyn EnvLookup,
    loaded: &mut Loaded,
) -> Result<(), LoadError> {
    if doc.value.is_null() {
        return Ok(());
    }
    if !doc.value.is_object() {
        return Err(LoadError::NotAMapping {
            origin: origin.to_owned(),
            pos: doc.positions.root().unwrap_or(Pos::new(1, 1)),
            found: kind_of(&doc.value),
        });
    }
    let mut doc = if block_form {
        match unwrap_docs_block(origin, doc, env, &mut loaded.substitutions)? {
            Some(doc) => doc,
            None => return Ok(()),
        }
    } else {
        SourceDoc {
            origin: origin.to_owned(),
            value: doc.value,
            positions: doc.positions,
            block: None,
        }
    };
    doc.block = block;
    loaded.docs.push(doc);
    Ok(())
}

/// The decK content of a block-form document; `None` when `entities` is
/// empty.
fn unwrap_docs_block(
    origin: &str,
    doc: YamlDoc,
    env: &dyn EnvLookup,
    substitutions: &mut Vec<Substitution>,
) -> Result<Option<SourceDoc>, LoadError> {
    let docs_block_error = |pos: Option<Pos>, message: &str| {
        let pos = pos.unwrap_or(Pos::new(1, 1));
        LoadError::DocsBlock {
            origin: origin.to_owned(),
            error: MarkdownError {
                line: pos.line,
                column: pos.column,
                message: message.to_owned(),
            },
        }
    };
    let variables = markdown::parse_variables(&doc.value, &doc.positions).map_err(|error| {
        LoadError::DocsBlock {
            origin: origin.to_owned(),
            error,
        }
    })?;
    let entities_path = [PathSeg::Key("entities".to_owned())];
    let entities_pos = doc.positions.lookup(&entities_path);
    let mut root = match doc.value {
        Value::Object(root) => root,
        _ => return Ok(None),
    };
    let content = match root.remove("entities") {
        None => {
            return Err(docs_block_error(
                entities_pos,
                "an entity_examples block needs an 'entities' mapping",
            ))
        }
        Some(Value::Object(content)) => content,
        Some(Value::Null) => return Ok(None),
        Some(_) => {
            return Err(docs_block_error(
                entities_pos,
                "'entities' must be a mapping",
            ))
        }
    };
    if content.is_empty() {
        return Ok(None);
    }
    let positions = doc
        .positions
        .into_subtree(&entities_path)
        .unwrap_or_default();
    let mut value = Value::Object(with_format_version(content));
    markdown::substitute_variables(&mut value, &positions, &variables, env, substitutions)
        .map_err(|errors| template_errors(origin, errors, 0))?;
    Ok(Some(SourceDoc {
        origin: origin.to_owned(),
        value,
        positions,
        block: None,
    }))
}

/// `content` with `_format_version` first, added if missing.
fn with_format_version(content: Map<String, Value>) -> Map<String, Value> {
    if content.contains_key("_format_version") {
        return content;
    }
    let mut with_version = Map::with_capacity(content.len() + 1);
    with_version.insert(
        "_format_version".to_owned(),
        Value::String(DOCS_FORMAT_VERSION.to_owned()),
    );
    with_version.extend(content);
    with_version
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Cursor;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let unique = format!(
                "gwctl-load-test-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let path = std::env::temp_dir().join(unique);
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).expect("create temp dir");
            TempDir(path)
        }

        fn write(&self, relative: &str, text: &str) -> String {
            let path = self.0.join(relative);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).expect("create dir");
            }
            fs::write(&path, text).expect("write file");
            path.display().to_string()
        }

        fn path(&self) -> String {
            self.0.display().to_string()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load(inputs: &[&str], stdin: &str) -> Result<Loaded, LoadError> {
        load_inputs(inputs, &mut Cursor::new(stdin.as_bytes()), &no_env)
    }

    fn origins(loaded: &Loaded) -> Vec<String> {
        loaded.docs.iter().map(|d| d.origin.clone()).collect()
    }

    #[test]
    fn reads_stdin_by_default_and_for_dash() {
        let loaded = load(&[], "services:\n- name: a\n").unwrap();
        assert_eq!(origins(&loaded), ["-"]);
        assert_eq!(loaded.docs[0].value, json!({"services": [{"name": "a"}]}));
        assert_eq!(
            loaded.docs[0].pos_of("services[0].name"),
            Some(Pos::new(2, 9))
        );
        let loaded = load(&["-"], "{\"consumers\": []}").unwrap();
        assert_eq!(loaded.docs[0].value, json!({"consumers": []}));
    }

    #[test]
    fn walks_directories_recursively_in_sorted_order() {
        let dir = TempDir::new();
        dir.write("b.yaml", "services: []\n");
        dir.write("a/z.yml", "routes: []\n");
        dir.write("a.JSON", "{\"plugins\": []}\n");
        dir.write("c/d/e.yaml", "consumers: []\n");
        dir.write("notes.txt", "not: config\n");
        dir.write(
            "README.md",
            "{% entity_examples %}\nentities: {services: []}\n{% endentity_examples %}\n",
        );
        let loaded = load(&[&dir.path()], "").unwrap();
        let relative: Vec<String> = origins(&loaded)
            .iter()
            .map(|o| o.trim_start_matches(&dir.path()).to_owned())
            .collect();
        assert_eq!(relative, ["/a/z.yml", "/a.JSON", "/b.yaml", "/c/d/e.yaml"]);
    }

    #[test]
    fn reads_explicit_files_whatever_their_extension() {
        let dir = TempDir::new();
        let file = dir.write("kong.conf", "services: []\n");
        let loaded = load(&[&file], "").unwrap();
        assert_eq!(origins(&loaded), [file]);
    }

    #[test]
    fn reports_every_failing_input_with_its_origin() {
        let dir = TempDir::new();
        let bad = dir.write("bad.yaml", "services:\n- name: a\n  name: b\n");
        let missing = dir.0.join("missing.yaml").display().to_string();
        let error = load(&[&bad, &missing], "").unwrap_err();
        let LoadError::Multiple(errors) = &error else {
            panic!("expected several errors, got {error}");
        };
        assert_eq!(errors.len(), 2);
        assert_eq!(
            errors[0].to_string(),
            format!("{bad}:3:3: duplicate key 'name'")
        );
        assert_eq!(errors[0].origin(), Some(bad.as_str()));
        assert_eq!(errors[0].pos(), Some(Pos::new(3, 3)));
        assert!(matches!(&errors[1], LoadError::Io { origin, .. } if *origin == missing));
    }

    #[test]
    fn applies_templating_before_parsing() {
        let env = |name: &str| (name == "DECK_PORT").then(|| "8443".to_owned());
        let text = "services:\n- name: a\n  port: ${{ env \"DECK_PORT\" | toInt }}\n";
        let loaded = load_inputs(&["-"], &mut Cursor::new(text), &env).unwrap();
        assert_eq!(loaded.docs[0].value["services"][0]["port"], json!(8443));
        assert_eq!(loaded.substitutions[0].name, "DECK_PORT");
        assert_eq!(loaded.substitutions[0].value, "8443");

        let error = load(&[], "a: 1\nb: ${{ env \"DECK_MISSING\" }}\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "-:2:4: environment variable 'DECK_MISSING' present in state file but not set"
        );
    }

    #[test]
    fn rejects_a_leading_space_like_deck() {
        let error = load(&[], " services: []\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "-: file must not begin with a whitespace"
        );
        // A leading newline or comment is fine.
        assert!(load(&[], "\n# c\nservices: []\n").is_ok());
    }

    #[test]
    fn empty_inputs_are_an_error() {
        for text in ["", "# only a comment\n", "---\n"] {
            let error = load(&[], text).unwrap_err();
            assert!(
                matches!(error, LoadError::Empty { .. }),
                "{text:?}: {error}"
            );
            assert!(error.to_string().starts_with(
                "it seems like you are trying to sync an empty configuration file or directory"
            ));
        }
        let dir = TempDir::new();
        assert!(matches!(
            load(&[&dir.path()], ""),
            Err(LoadError::Empty { .. })
        ));
        // An empty file next to a non-empty one is fine.
        let empty = dir.write("empty.yaml", "");
        assert_eq!(load(&[&empty, "-"], "services: []").unwrap().docs.len(), 1);
    }

    #[test]
    fn the_top_level_must_be_a_mapping() {
        let error = load(&[], "# x\n- a\n- b\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "-:2:1: the top level of a decK file must be a mapping, found a list"
        );
    }

    #[test]
    fn yaml_errors_carry_origin_and_position() {
        let error = load(&[], "services:\n\t- name: a\n").unwrap_err();
        assert_eq!(error.origin(), Some("-"));
        assert_eq!(error.pos().map(|p| p.line), Some(2));
    }

    #[test]
    fn every_document_of_a_stream_is_a_source_doc() {
        let loaded = load(&[], "services: []\n---\n---\nroutes: []\n").unwrap();
        assert_eq!(loaded.docs.len(), 2);
        assert_eq!(loaded.docs[1].value, json!({"routes": []}));
        assert_eq!(loaded.docs[1].pos_of("routes"), Some(Pos::new(4, 9)));
    }

    #[test]
    fn unwraps_block_form_yaml() {
        let text = "entities:\n  services:\n  - name: s\n    port: ${port}\nvariables:\n  port:\n    value: $PORT\n";
        let env = |name: &str| (name == "DECK_PORT").then(|| "81".to_owned());
        let loaded = load_inputs(&["-"], &mut Cursor::new(text), &env).unwrap();
        let doc = &loaded.docs[0];
        assert_eq!(
            doc.value,
            json!({"_format_version": "3.0", "services": [{"name": "s", "port": 81}]})
        );
        assert_eq!(doc.pos_of("services[0].port"), Some(Pos::new(4, 11)));
        assert_eq!(loaded.substitutions[0].name, "DECK_PORT");
        // A regular decK file that merely has other keys is left alone.
        let loaded = load(&[], "_format_version: \"3.0\"\nentities: {}\n").unwrap();
        assert!(loaded.docs[0].value.get("entities").is_some());
    }

    #[test]
    fn block_form_errors_point_at_the_block() {
        let error = load(&[], "entities: [a]\n").unwrap_err();
        assert_eq!(error.to_string(), "-:1:11: 'entities' must be a mapping");
    }

    /// The seed tutorial's blocks, with its prose trimmed.
    const TUTORIAL: &str = "---
title: Authenticate Consumers with the Key Auth and Sessions plugins
entities:
  - service
---

## Enable the Key Authentication plugin

<!--vale off-->
{% entity_examples %}
entities:
  plugins:
    - name: key-auth
      service: example-service
      config:
        key_names:
        - apikey
        anonymous: 81823632-10c0-4098-a4f7-31062520c1e6
{% endentity_examples %}
<!--vale on-->

## Create Consumers

{% entity_examples %}
entities:
  consumers:
    - username: alex
      keyauth_credentials:
        - key: hello_world
    - username: anonymous_users
      id: 81823632-10c0-4098-a4f7-31062520c1e6
{% endentity_examples %}

{% validation unauthorized-check %}
url: /anything
status_code: 403
{% endvalidation %}
";

    #[test]
    fn markdown_blocks_become_documents_with_markdown_lines() {
        let dir = TempDir::new();
        let page = dir.write("how-to.md", TUTORIAL);
        let loaded = load(&[&page], "").unwrap();
        assert_eq!(origins(&loaded), [page.clone(), page]);
        let plugin_doc = &loaded.docs[0];
        assert_eq!(plugin_doc.value["_format_version"], json!("3.0"));
        assert_eq!(
            plugin_doc.value["plugins"][0]["config"]["key_names"],
            json!(["apikey"])
        );
        assert_eq!(
            plugin_doc.pos_of("plugins[0].config.key_names[0]"),
            Some(Pos::new(17, 11))
        );
        let consumer_doc = &loaded.docs[1];
        assert_eq!(
            consumer_doc.value["consumers"][1]["username"],
            json!("anonymous_users")
        );
        assert_eq!(
            consumer_doc.pos_of("consumers[1].id"),
            Some(Pos::new(31, 11))
        );
    }

    #[test]
    fn markdown_errors_use_markdown_lines() {
        let page = "# T\n\n{% entity_examples %}\nentities:\n  services:\n  - name: a\n    name: b\n{% endentity_examples %}\n";
        let error = load_text("page.md", page, &no_env).unwrap_err();
        assert_eq!(error.to_string(), "page.md:7:5: duplicate key 'name'");

        let page = "x\n{% entity_examples %}\nentities:\n  services:\n  - host: ${{ env \"DECK_H\" }}\n{% endentity_examples %}\n";
        let error = load_text("page.markdown", page, &no_env).unwrap_err();
        assert_eq!(error.pos(), Some(Pos::new(5, 11)));

        let page = "{% entity_examples %}\nformats: [deck]\n{% endentity_examples %}\n";
        let error = load_text("page.md", page, &no_env).unwrap_err();
        assert!(
            error.to_string().contains("needs an 'entities' mapping"),
            "{error}"
        );
    }

    #[test]
    fn markdown_blocks_know_their_page_and_includes_are_warned_about() {
        let page = "---\ntitle: T\nprereqs:\n  entities:\n    services: [example-service]\n---\n\
            {% include how-tos/steps/ping.md %}\n\
            {% entity_examples %}\nentities:\n  consumers: [{username: a}]\n{% endentity_examples %}\n\
            {% entity_examples %}\nentities:\n  consumers: [{username: b}]\n{% endentity_examples %}\n";
        let loaded = load_text("page.md", page, &no_env).unwrap();
        let blocks: Vec<&PageBlock> = loaded
            .docs
            .iter()
            .filter_map(|d| d.block.as_ref())
            .collect();
        assert_eq!(blocks.len(), 2);
        assert_eq!((blocks[0].index, blocks[1].index), (0, 1));
        assert!(blocks[0].same_page(blocks[1]));
        let prereqs = blocks[0].page.prereqs.as_ref().expect("prerequisites");
        assert!(prereqs.lists("services", "example-service"));
        assert_eq!((prereqs.line, prereqs.column), (3, 1));
        assert_eq!(
            loaded.warnings[0].to_string(),
            "page.md:7:1: warning: skipped `{% include how-tos/steps/ping.md %}`: gwctl does not \
             read included files; entities they define must be given in a file of their own"
        );
        // Another reading of the same text is another page.
        let again = load_text("page.md", page, &no_env).unwrap();
        assert!(!again.docs[0].block.as_ref().unwrap().same_page(blocks[0]));
        // A YAML file's documents are no page's blocks.
        assert!(load(&[], "services: []\n").unwrap().docs[0].block.is_none());
    }

    #[test]
    fn every_unset_variable_of_every_block_is_reported() {
        let page = "{% entity_examples %}\nentities:\n  services:\n  - host: ${{ env \"DECK_A\" }}\n    \
            name: ${{ env \"DECK_A\" }}\n{% endentity_examples %}\n{% entity_examples %}\nentities:\n  \
            services:\n  - host: ${{ env \"DECK_B\" | toInt }}\n{% endentity_examples %}\n";
        let error = load_text("p.md", page, &no_env).unwrap_err();
        assert_eq!(
            error.to_string(),
            "p.md:4:11: environment variable 'DECK_A' present in state file but not set\n\
             p.md:10:11: environment variable 'DECK_B' present in state file but not set"
        );
        let empty = load(&["-"], "# nothing\n").unwrap_err();
        assert!(matches!(&empty, LoadError::Empty { inputs, .. } if inputs == &["-"]));
    }

    #[test]
    fn markdown_variables_are_substituted() {
        let page = "{% entity_examples %}\nentities:\n  plugins:\n  - name: key-auth\n    config:\n      key_names: ['${header}']\nvariables:\n  header:\n    value: $HEADER\n{% endentity_examples %}\n";
        let env = |name: &str| (name == "DECK_HEADER").then(|| "x-api-key".to_owned());
        let loaded = load_text("p.md", page, &env).unwrap();
        assert_eq!(
            loaded.docs[0].value["plugins"][0]["config"]["key_names"],
            json!(["x-api-key"])
        );
        let error = load_text("p.md", page, &no_env).unwrap_err();
        assert_eq!(
            error.to_string(),
            "p.md:6:19: environment variable 'DECK_HEADER' present in state file but not set"
        );
    }
}
