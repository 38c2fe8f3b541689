//! From parsed decK documents to one canonical [`Config`].
//!
//! The steps, in order:
//! 1. read each document's top level (`_format_version`, `_info`, entity
//!    arrays) and flatten nested entities, remembering where each came from
//!    ([`read`]); the blocks of a Markdown page are applied one after the
//!    other ([`fold`]);
//! 2. give every entity an id: its own, the id of the live entity it
//!    matches (as decK matches: names, usernames, keys, plugin scope), or a
//!    new one;
//! 3. resolve references by name or id ([`resolve`]): within the files,
//!    then, by id, among the gateway's entities outside the select tags;
//!    the rest of the live state only when the files go on top of it
//!    ([`BuildOptions::partial_apply`]), since a full sync deletes what the
//!    files leave out;
//! 4. validate every entity against its schema;
//! 5. find duplicate identities across all the files ([`identity`]).
//!
//! Every problem is reported, not only the first, each with the file
//! position of the entity or field it is about, and each once: what
//! follows from another problem (a child's copy of its parent's bad id, a
//! duplicate that only a dangling reference made) is left out. Notes after
//! the errors say what to do about references that point nowhere.
//!
//! Step 1 needs only the files ([`flatten`]), so a caller can take it while
//! the live state is still being read. A configuration can hold tens of
//! thousands of entities, so the documents' values are moved into the
//! entities (not copied), each entity's input is dropped once validated,
//! validation runs on all cores, and the indexes hash with
//! [`super::hash::FastHasher`].

mod fields;
mod fold;
mod identity;
mod index;
mod path;
mod read;
mod resolve;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::load::SourceDoc;
use super::parallel;
use super::pos::Pos;
use crate::config::{ByKind, Config};
use crate::entities::EntityKind;
use crate::error::{FieldError, FieldPath, PathSeg, SchemaViolation};
use crate::packed::{Packed, PackedConfig};

use fields::Fields;
pub use identity::{plugin_identity, PluginIdentity};
use index::{LiveIndex, LivePlugins};
pub use path::EntityPath;

/// Where an entity or field came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file as given on the command line (`-` for stdin), shared by
    /// the origins of all its entities.
    pub file: Arc<str>,
    /// The entity's path in that file, e.g. `services[0].plugins[1]`.
    pub path: EntityPath,
    /// A short name for people: the service name, plugin name, ...
    pub label: Option<String>,
    pub pos: Option<Pos>,
}

impl Origin {
    /// `services[0].plugins[1] (key-auth)`
    pub fn entity_display(&self) -> String {
        match &self.label {
            Some(label) => format!("{} ({label})", self.path),
            None => self.path.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
    /// Advice that goes with errors (what to do about them), printed
    /// after them.
    Note,
}

/// One problem found in the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub pos: Option<Pos>,
    /// `services[0].plugins[1] (key-auth)`, or empty for the document.
    pub entity: String,
    /// The field inside the entity, e.g. `config.key_names[0]`.
    pub field: FieldPath,
    pub message: String,
}

/// `kong.yaml:14:9: services[0].plugins[1] (key-auth).config.key_names[0]: bad header name ...`
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(pos) = self.pos {
            write!(f, ":{}:{}", pos.line, pos.column)?;
        }
        write!(f, ": ")?;
        match self.severity {
            Severity::Error => {}
            Severity::Warning => write!(f, "warning: ")?,
            Severity::Note => write!(f, "note: ")?,
        }
        let mut place = self.entity.clone();
        if !self.field.is_root() {
            if !place.is_empty() {
                place.push('.');
            }
            place.push_str(&self.field.to_string());
        }
        if !place.is_empty() {
            write!(f, "{place}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// Where each entity of a build came from: for each kind, the origin of
/// each entity of [`Built::config`], in the same order. Only messages look
/// an origin up, so a lookup searches the configuration for the id rather
/// than the build keeping a table by id (for a large build that table and
/// its keys took more than the origins themselves).
#[derive(Debug, Clone, Default)]
pub struct Origins(ByKind<Origin>);

impl Origins {
    /// The origin of the entity `id` of `kind` in `config`, the
    /// configuration these origins were built with.
    pub fn find(&self, config: &PackedConfig, kind: EntityKind, id: &str) -> Option<&Origin> {
        self.0.entities(kind).get(config.position_of(kind, id)?)
    }
}

/// What the caller knows beyond the files.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `--select-tag` values; must agree with `_info.select_tags`.
    pub select_tags: Vec<String>,
    /// The files go on top of the live configuration and delete nothing
    /// (`gwctl sync --no-deletes`, decK's `apply`): references may name
    /// any live entity. Otherwise (a full sync, `gateway serve --config`)
    /// the live entities the files leave out are deleted by the same
    /// change, so a reference may name only an entity of the files or,
    /// by id, one outside the select tags, as decK's `sync` resolves.
    pub partial_apply: bool,
    /// Leave [`Built::origins`] empty: they serve only the messages of
    /// applying the build, and a caller that never applies it (`gwctl
    /// diff`) spares a large configuration tens of megabytes of them.
    pub without_origins: bool,
}

/// The result of a successful build.
#[derive(Debug, Clone, Default)]
pub struct Built {
    /// The canonical entities, packed (see [`crate::packed`]).
    pub config: PackedConfig,
    /// Where each entity (by id) came from; empty when built
    /// [`BuildOptions::without_origins`].
    pub origins: Origins,
    /// The select tags in force (from the files or the options).
    pub select_tags: Vec<String>,
    pub warnings: Vec<Diagnostic>,
}

impl Built {
    /// The origin of an entity, if it came from a file.
    pub fn origin_of(&self, kind: EntityKind, id: &str) -> Option<&Origin> {
        self.origins.find(&self.config, kind, id)
    }
}

/// Build one canonical configuration from `docs`, matching ids against
/// `current` (the live state; empty offline) and resolving references as
/// `options` say. (A large build against the gateway goes through
/// [`flatten`] and [`Flattened::build_with`], with the live state packed.)
pub fn build(
    docs: &[SourceDoc],
    current: &Config,
    options: &BuildOptions,
) -> Result<Built, Vec<Diagnostic>> {
    build_owned(docs.to_vec(), current, options)
}

/// [`build`], taking the documents: their values are moved into the
/// entities rather than copied, so a large file is not held twice and its
/// tree is freed entity by entity as the entities are validated.
pub fn build_owned(
    docs: Vec<SourceDoc>,
    current: &Config,
    options: &BuildOptions,
) -> Result<Built, Vec<Diagnostic>> {
    flatten(docs, options).build(&PackedConfig::pack(current))
}

/// The files read and flattened (step 1 and the select tags), which needs
/// nothing from the live state: a caller can do it while the live state is
/// still being read, then [`Flattened::build`] against it.
pub fn flatten(docs: Vec<SourceDoc>, options: &BuildOptions) -> Flattened {
    let mut builder = Builder::new(docs);
    builder.partial_apply = options.partial_apply;
    builder.without_origins = options.without_origins;
    builder.read_documents();
    builder.settle_select_tags(&options.select_tags);
    Flattened { builder }
}

/// The entities of the files, flattened but not yet matched, resolved or
/// validated; problems found so far are reported by [`Flattened::build`].
pub struct Flattened {
    builder: Builder,
}

impl Flattened {
    /// The remaining steps, against `current` (the live state within the
    /// select tags; empty offline).
    pub fn build(self, current: &PackedConfig) -> Result<Built, Vec<Diagnostic>> {
        self.build_with(current, &PackedConfig::default())
    }

    /// [`Flattened::build`], also resolving references by id among
    /// `outside`: gateway entities outside the select tags, which a sync
    /// leaves as they are (see [`Flattened::ids_to_look_up`]).
    pub fn build_with(
        self,
        current: &PackedConfig,
        outside: &PackedConfig,
    ) -> Result<Built, Vec<Diagnostic>> {
        let mut builder = self.builder;
        let mut live = LiveIndex::new(current);
        let outside = LiveIndex::new(outside);
        builder.assign_ids(&live);
        if !builder.partial_apply {
            // A full sync resolves references among the files (and by id
            // outside the select tags): the live names are not looked up
            // again, and the index's largest part goes before the files'
            // references are written.
            live.forget_names();
        }
        builder.resolve_references(&live, &outside, current);
        builder.check_anonymous_consumers(&live, &outside);
        // Validation needs only the live plugins (for their secrets): the
        // indexes by name go before it, since the files' canonical entities
        // it makes are what a large build holds the most with.
        drop((live, outside));
        let live_plugins = index::plugins_by_id(current);
        builder.validate_entities(&live_plugins);
        drop(live_plugins);
        builder.find_duplicates();
        builder.finish()
    }
}

impl Flattened {
    /// The references written as a UUID that name no entity of the files
    /// nor of `current`: look them up on the gateway (they may name
    /// entities outside the select tags) and pass what exists to
    /// [`Flattened::build_with`].
    pub fn ids_to_look_up(&self, current: &PackedConfig) -> Vec<(EntityKind, String)> {
        self.builder.ids_to_look_up(current)
    }
}

/// An entity as read from a file, before validation.
#[derive(Debug, Clone)]
struct RawEntity {
    kind: EntityKind,
    /// The fields as written, without nested children and references.
    input: Fields,
    doc: usize,
    path: EntityPath,
    /// References to resolve: (field, how it was written, path of the
    /// value in the file). A nested child's parent is one too.
    references: Vec<Reference>,
    id: Option<String>,
    /// A short name for messages (see [`label_of`]), kept apart from
    /// `input` because validation consumes the input.
    label: Option<String>,
    /// The canonical form, once validated (boxed: until then the slot
    /// costs a pointer, not a packed entity, in every record).
    canonical: Option<Box<Packed>>,
    /// A reference of this entity points nowhere (reported): its other
    /// problems that follow from that are not.
    dangling: bool,
}

#[derive(Debug, Clone)]
struct Reference {
    field: &'static str,
    target: EntityKind,
    written: RefValue,
    /// The id it points at, once resolved (step 3); validation writes it
    /// into the entity as `{"id": ...}` (step 4), so a large build never
    /// holds those objects for all its entities at once.
    resolved: Option<String>,
}

/// A reference as written: a name/username/id string, or the parent
/// entity's index for nested children.
#[derive(Debug, Clone)]
enum RefValue {
    Text(String),
    Parent(usize),
}

struct Builder {
    /// The documents; their values are taken by [`Builder::read_documents`],
    /// their origins and positions serve the diagnostics.
    docs: Vec<SourceDoc>,
    entities: Vec<RawEntity>,
    diagnostics: Vec<Diagnostic>,
    file_select_tags: Option<(usize, Vec<String>)>,
    /// The first `_workspace` named, and its document.
    workspace: Option<(usize, String)>,
    select_tags: Vec<String>,
    defaults: Vec<(usize, EntityKind, Map<String, Value>)>,
    /// See [`BuildOptions::partial_apply`].
    partial_apply: bool,
    /// See [`BuildOptions::without_origins`].
    without_origins: bool,
    /// The entities of Markdown pages, for applying blocks in turn.
    pages: fold::PageFold,
}

impl Builder {
    fn new(docs: Vec<SourceDoc>) -> Self {
        Self {
            docs,
            entities: Vec::new(),
            diagnostics: Vec::new(),
            file_select_tags: None,
            workspace: None,
            select_tags: Vec::new(),
            defaults: Vec::new(),
            partial_apply: false,
            without_origins: false,
            pages: fold::PageFold::default(),
        }
    }

    // ----- diagnostics -------------------------------------------------

    fn pos_of(&self, doc: usize, path: &FieldPath) -> Option<Pos> {
        self.docs.get(doc)?.positions.lookup(&path.0)
    }

    fn doc_error(&mut self, doc: usize, path: FieldPath, message: impl Into<String>) {
        let pos = self.pos_of(doc, &path);
        self.diagnostics.push(Diagnostic {
            severity: Severity::Error,
            file: self.docs[doc].origin.clone(),
            pos,
            entity: String::new(),
            field: path,
            message: message.into(),
        });
    }

    /// A problem with entity `index`, at `field` inside it.
    fn entity_diagnostic(
        &self,
        index: usize,
        severity: Severity,
        field: FieldPath,
        message: impl Into<String>,
    ) -> Diagnostic {
        let entity = &self.entities[index];
        let pos = self.pos_of(entity.doc, &field.under(&entity.path.to_field_path()));
        let origin = self.origin(index);
        let entity = origin.entity_display();
        Diagnostic {
            severity,
            file: origin.file.to_string(),
            pos,
            entity,
            field,
            message: message.into(),
        }
    }

    fn entity_error(&mut self, index: usize, field: FieldPath, message: impl Into<String>) {
        let error = self.entity_diagnostic(index, Severity::Error, field, message);
        self.diagnostics.push(error);
    }

    fn origin(&self, index: usize) -> Origin {
        let entity = &self.entities[index];
        Origin {
            file: self.docs[entity.doc].origin.as_str().into(),
            path: entity.path.clone(),
            label: entity.label.clone(),
            pos: self.pos_of(entity.doc, &entity.path.to_field_path()),
        }
    }

    // ----- select tags and defaults --------------------------------------

    fn settle_select_tags(&mut self, from_options: &[String]) {
        let from_files = self.file_select_tags.clone();
        self.select_tags = match (from_files, from_options.is_empty()) {
            (Some((doc, tags)), false) if !same_set(&tags, from_options) => {
                self.doc_error(
                    doc,
                    FieldPath::root().key("_info").key("select_tags"),
                    format!(
                        "tags specified in the state file ({tags:?}) and via --select-tag flag ({from_options:?}) are different"
                    ),
                );
                tags
            }
            (Some((_, tags)), _) => tags,
            (None, _) => from_options.to_vec(),
        };
        let select_tags = self.select_tags.clone();
        let defaults = self.defaults.clone();
        for entity in &mut self.entities {
            for (doc, kind, fields) in &defaults {
                if *doc == entity.doc && *kind == entity.kind {
                    for (key, value) in fields {
                        entity.input.get_or_insert_with(key, || value.clone());
                    }
                }
            }
            add_tags(&mut entity.input, &select_tags);
            // Defaults may name the entity.
            entity.label = label_of(entity.kind, &entity.input);
        }
    }

    // ----- step 2: ids -----------------------------------------------------

    /// Ids for entities without one: matched against the live state by the
    /// entity's natural key, else new. Plugins wait for their references.
    fn assign_ids(&mut self, live: &LiveIndex<'_>) {
        parallel::map_mut(&mut self.entities, |entity| {
            if entity.id.is_none() && entity.kind != EntityKind::Plugin {
                entity.id = Some(match_current(entity, live).unwrap_or_else(new_id));
            }
        });
    }

    // ----- step 4: schemas -------------------------------------------------

    /// Validate every entity against its schema. Entities are independent,
    /// so a large file is validated on all cores; errors are still
    /// reported in entity order.
    fn validate_entities(&mut self, live: &LivePlugins<'_>) {
        let violations = parallel::map_mut(&mut self.entities, |entity| {
            validate_entity(entity, live).err()
        });
        for (index, violation) in violations.into_iter().enumerate() {
            for error in violation.into_iter().flat_map(|v| v.errors) {
                if !self.is_parents_bad_id(index, &error.path) {
                    self.entity_error(index, error.path, error.message);
                }
            }
        }
    }

    /// Whether an error at `path` of entity `index` is about the id a
    /// reference of it resolved to (`routes[0].service.id`): resolved ids
    /// come from the gateway, or from an entity of the files whose own
    /// `id` error is reported already. The user never wrote that field.
    fn is_parents_bad_id(&self, index: usize, path: &FieldPath) -> bool {
        let [PathSeg::Key(field), PathSeg::Key(id)] = path.0.as_slice() else {
            return false;
        };
        id == "id"
            && self.entities[index]
                .references
                .iter()
                .any(|reference| reference.field == field)
    }

    // ----- step 5: duplicates ------------------------------------------------

    fn finish(self) -> Result<Built, Vec<Diagnostic>> {
        let has_errors = self
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error);
        if has_errors {
            let (mut diagnostics, notes): (Vec<Diagnostic>, Vec<Diagnostic>) = self
                .diagnostics
                .into_iter()
                .partition(|d| d.severity != Severity::Note);
            diagnostics
                .sort_by(|a, b| (&a.file, a.pos, a.severity).cmp(&(&b.file, b.pos, b.severity)));
            diagnostics.extend(notes);
            return Err(diagnostics);
        }
        // Each entity's position first, so the documents (their positions
        // are a tree as large as the file) are gone before the origins
        // grow: this is when a large build holds the most.
        let positions: Vec<Option<Pos>> = if self.without_origins {
            vec![None; self.entities.len()]
        } else {
            parallel::map(&self.entities, |e| {
                self.pos_of(e.doc, &e.path.to_field_path())
            })
        };
        let files: Vec<Arc<str>> = self
            .docs
            .iter()
            .map(|doc| doc.origin.as_str().into())
            .collect();
        drop(self.docs);
        let mut built = Built {
            select_tags: self.select_tags,
            warnings: self.diagnostics,
            ..Built::default()
        };
        // Kind by kind, each kind's list made at its size and its entities
        // moved out of their boxes (freed as they go), with their paths and
        // labels: a large build never holds all the boxes and all the
        // lists at once, nor copies an entity once more.
        let mut entities = self.entities;
        for kind in EntityKind::ALL {
            let built_of_kind = |e: &&RawEntity| e.kind == kind && e.canonical.is_some();
            let count = entities.iter().filter(built_of_kind).count();
            built.config.entities_mut(kind).reserve_exact(count);
            if !self.without_origins {
                built.origins.0.entities_mut(kind).reserve_exact(count);
            }
            for (entity, pos) in entities.iter_mut().zip(&positions) {
                if entity.kind != kind {
                    continue;
                }
                let Some(canonical) = entity.canonical.take() else {
                    continue;
                };
                if !self.without_origins {
                    let origin = Origin {
                        file: files[entity.doc].clone(),
                        pos: *pos,
                        path: std::mem::take(&mut entity.path),
                        label: entity.label.take(),
                    };
                    built.origins.0.entities_mut(kind).push(origin);
                }
                built.config.entities_mut(kind).push(*canonical);
            }
        }
        Ok(built)
    }
}

// ----- helpers -------------------------------------------------------------

/// The id of the live entity `entity` matches by one of its kind's unique
/// fields (plugins are matched by their scope instead).
fn match_current(entity: &RawEntity, live: &LiveIndex<'_>) -> Option<String> {
    let by = |field: &'static str| {
        let wanted = entity.input.get(field).and_then(Value::as_str)?;
        live.get(entity.kind, field, wanted)
    };
    entity
        .kind
        .descriptor()
        .unique
        .iter()
        .find_map(|field| by(field))
}

/// Validate one entity, its id set and the live secrets it leaves out
/// kept; the input is consumed, the canonical form kept packed, marked
/// when it leaves a generated field unset.
fn validate_entity(entity: &mut RawEntity, live: &LivePlugins<'_>) -> Result<(), SchemaViolation> {
    let mut input = std::mem::take(&mut entity.input).into_map();
    write_references(&mut entity.references, &mut input);
    if entity.kind == EntityKind::Plugin {
        if let Some(name) = input.get("name").and_then(Value::as_str) {
            if crate::plugins::lookup(name).is_none() {
                return Err(SchemaViolation::new(vec![unsupported_plugin(name)]));
            }
        }
    }
    if let Some(id) = &entity.id {
        input.insert("id".into(), Value::from(id.clone()));
    }
    keep_live_secrets(entity, live, &mut input);
    let canonical = entity.kind.validate(&Value::Object(input))?;
    entity.canonical = Some(Box::new(Packed::of_entity(entity.kind, &canonical)));
    Ok(())
}

/// Point each resolved reference at its id: `{"id": ...}` in the entity's
/// fields, in the order of its references (those pointing nowhere are
/// reported and left out). The ids move into the fields.
fn write_references(references: &mut [Reference], input: &mut Map<String, Value>) {
    for reference in references {
        if let Some(id) = reference.resolved.take() {
            let reference_value = crate::config::id_reference(id);
            input.insert(reference.field.to_owned(), reference_value);
        }
    }
}

/// A plugin this gateway does not have. Kong's own text ("not enabled; add
/// it to the 'plugins' configuration property") is advice this gateway
/// has no way to follow: say so, and name the plugins it has.
fn unsupported_plugin(name: &str) -> FieldError {
    let mut supported: Vec<&str> = crate::plugins::all().iter().map(|p| p.name).collect();
    supported.sort_unstable();
    FieldError::new(
        FieldPath::root().key("name"),
        format!(
            "plugin '{name}' is not supported by this gateway; its plugins are: {}",
            supported.join(", ")
        ),
    )
}

/// Secrets the gateway generated (a session plugin's `secret`) and the
/// file leaves out are kept, so syncing such a file changes nothing.
fn keep_live_secrets(entity: &RawEntity, live: &LivePlugins<'_>, input: &mut Map<String, Value>) {
    if entity.kind != EntityKind::Plugin {
        return;
    }
    let Some(id) = entity.id.as_deref() else {
        return;
    };
    let given = match input.get("config") {
        Some(Value::Object(config)) => config.contains_key("secret"),
        Some(_) => true,
        None => false,
    };
    if given {
        return;
    }
    // A live plugin is parsed only when its text holds a secret at all.
    let live_secret = live
        .get(id)
        .filter(|live| live.text().contains("\"secret\":"))
        .and_then(|live| {
            live.unpack()
                .get_mut("config")?
                .get_mut("secret")
                .map(Value::take)
        })
        .filter(|secret| !secret.is_null());
    let Some(live_secret) = live_secret else {
        return;
    };
    if let Some(Value::Object(config)) = input.get_mut("config") {
        config.entry("secret").or_insert(live_secret);
    } else if !input.contains_key("config") {
        let mut config = Map::new();
        config.insert("secret".into(), live_secret);
        input.insert("config".into(), Value::Object(config));
    }
}

/// A short name for an entity of `kind` with fields `input`: a plugin's
/// name (`key-auth`), else the first display name its kind declares (a
/// name, a username, a custom_id; a credential has none: its key is a
/// secret).
fn label_of(kind: EntityKind, input: &Fields) -> Option<String> {
    let fields: &[&str] = match kind {
        EntityKind::Plugin => &["name"],
        other => other.descriptor().display_names,
    };
    fields
        .iter()
        .find_map(|field| input.get(field).and_then(Value::as_str))
        .map(str::to_owned)
}

fn string_list(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|item| item.as_str().map(str::to_owned))
        .collect()
}

fn same_set(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    a.dedup();
    b.sort();
    b.dedup();
    a == b
}

fn add_tags(input: &mut Fields, select_tags: &[String]) {
    if select_tags.is_empty() {
        return;
    }
    let tags = input.get_or_insert_with("tags", || Value::Array(Vec::new()));
    if tags.is_null() {
        *tags = Value::Array(Vec::new());
    }
    if let Some(list) = tags.as_array_mut() {
        for tag in select_tags {
            if !list.iter().any(|existing| existing.as_str() == Some(tag)) {
                list.push(Value::from(tag.clone()));
            }
        }
    }
}

fn new_id() -> String {
    Uuid::new_v4().to_string()
}
