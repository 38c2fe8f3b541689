//! From parsed decK documents to one canonical [`Config`].
//!
//! The steps, in order:
//! 1. read each document's top level (`_format_version`, `_info`, entity
//!    arrays) and flatten nested entities, remembering where each came from;
//! 2. give every entity an id: its own, the id of the live entity it
//!    matches (as decK matches: names, usernames, keys, plugin scope), or a
//!    new one;
//! 3. resolve references by name or id, within the files first and then in
//!    the current state;
//! 4. validate every entity against its schema;
//! 5. find duplicate identities across all the files.
//!
//! Every problem is reported, not only the first, each with the file
//! position of the entity or field it is about.
//!
//! Step 1 needs only the files ([`flatten`]), so a caller can take it while
//! the live state is still being read. A configuration can hold tens of
//! thousands of entities, so the documents' values are moved into the
//! entities (not copied), each entity's input is dropped once validated,
//! validation runs on all cores, and the indexes hash with
//! [`super::hash::FastHasher`].

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::hash::{self, FastMap, FastSet};
use super::load::SourceDoc;
use super::parallel;
use super::pos::Pos;
use crate::config::{id_of, Config};
use crate::entities::EntityKind;
use crate::error::{FieldPath, SchemaViolation};

/// Where an entity or field came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file as given on the command line (`-` for stdin).
    pub file: String,
    /// The entity's path in that file, e.g. `services[0].plugins[1]`.
    pub path: FieldPath,
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
        if self.severity == Severity::Warning {
            write!(f, "warning: ")?;
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

/// What the caller knows beyond the files.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `--select-tag` values; must agree with `_info.select_tags`.
    pub select_tags: Vec<String>,
}

/// The result of a successful build.
#[derive(Debug, Clone, Default)]
pub struct Built {
    pub config: Config,
    /// Where each entity (by id) came from.
    pub origins: HashMap<String, Origin>,
    /// The select tags in force (from the files or the options).
    pub select_tags: Vec<String>,
    pub warnings: Vec<Diagnostic>,
}

impl Built {
    /// The origin of an entity, if it came from a file.
    pub fn origin_of(&self, id: &str) -> Option<&Origin> {
        self.origins.get(id)
    }
}

/// Build one canonical configuration from `docs`, matching ids and
/// resolving references against `current` (the live state; empty offline).
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
    flatten(docs, options).build(current)
}

/// The files read and flattened (step 1 and the select tags), which needs
/// nothing from the live state: a caller can do it while the live state is
/// still being read, then [`Flattened::build`] against it.
pub fn flatten(docs: Vec<SourceDoc>, options: &BuildOptions) -> Flattened {
    let mut builder = Builder::new(docs);
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
    /// The remaining steps, against `current` (the live state; empty
    /// offline).
    pub fn build(self, current: &Config) -> Result<Built, Vec<Diagnostic>> {
        let mut builder = self.builder;
        let live = LiveIndex::new(current);
        builder.assign_ids(&live);
        builder.resolve_references(&live);
        builder.check_anonymous_consumers(&live);
        builder.validate_entities(&live);
        builder.find_duplicates();
        builder.finish()
    }
}

/// An entity as read from a file, before validation.
#[derive(Debug, Clone)]
struct RawEntity {
    kind: EntityKind,
    /// The fields as written, without nested children.
    input: Map<String, Value>,
    doc: usize,
    path: FieldPath,
    /// References to resolve: (field, how it was written, path of the
    /// value in the file). A nested child's parent is one too.
    references: Vec<Reference>,
    id: Option<String>,
    /// A short name for messages (see [`label_of`]), kept apart from
    /// `input` because validation consumes the input.
    label: Option<String>,
    canonical: Option<Value>,
}

/// A reference found: the entity, its field and the id it points at.
type Resolved = (usize, &'static str, String);

#[derive(Debug, Clone)]
struct Reference {
    field: &'static str,
    target: EntityKind,
    written: RefValue,
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
    select_tags: Vec<String>,
    defaults: Vec<(usize, EntityKind, Map<String, Value>)>,
}

const TOP_LEVEL_ENTITIES: &[(&str, EntityKind)] = &[
    ("services", EntityKind::Service),
    ("routes", EntityKind::Route),
    ("consumers", EntityKind::Consumer),
    ("plugins", EntityKind::Plugin),
    ("keyauth_credentials", EntityKind::KeyAuthCredential),
];

/// decK entity arrays this gateway does not implement.
const UNSUPPORTED_ENTITIES: &[&str] = &[
    "upstreams",
    "certificates",
    "ca_certificates",
    "consumer_groups",
    "vaults",
    "filter_chains",
    "partials",
    "keys",
    "key_sets",
    "licenses",
    "custom_entities",
    "rbac_roles",
    "service_packages",
];

impl Builder {
    fn new(docs: Vec<SourceDoc>) -> Self {
        Self {
            docs,
            entities: Vec::new(),
            diagnostics: Vec::new(),
            file_select_tags: None,
            select_tags: Vec::new(),
            defaults: Vec::new(),
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
        let pos = self.pos_of(entity.doc, &field.under(&entity.path));
        let origin = self.origin(index);
        let entity = origin.entity_display();
        Diagnostic {
            severity,
            file: origin.file,
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
            file: self.docs[entity.doc].origin.clone(),
            path: entity.path.clone(),
            label: entity.label.clone(),
            pos: self.pos_of(entity.doc, &entity.path),
        }
    }

    // ----- step 1: read and flatten -------------------------------------

    /// Takes each document's value apart into entities (moved, not copied).
    fn read_documents(&mut self) {
        for doc in 0..self.docs.len() {
            match std::mem::take(&mut self.docs[doc].value) {
                Value::Object(content) => self.read_content(doc, content),
                Value::Null => {}
                _ => self.doc_error(
                    doc,
                    FieldPath::root(),
                    "expected a mapping at the top of the file",
                ),
            }
        }
    }

    fn read_content(&mut self, doc: usize, content: Map<String, Value>) {
        for (key, value) in content {
            let path = FieldPath::root().key(&key);
            match key.as_str() {
                "_format_version" => self.check_format_version(doc, path, &value),
                "_transform" if value == Value::Bool(false) => {
                    self.doc_error(doc, path, "false is not supported")
                }
                "_transform" | "_workspace" => {}
                "_info" => self.read_info(doc, path, &value),
                _ => {
                    if let Some((_, kind)) =
                        TOP_LEVEL_ENTITIES.iter().find(|(name, _)| *name == key)
                    {
                        self.read_list(doc, path, value, *kind, None);
                    } else if UNSUPPORTED_ENTITIES.contains(&key.as_str()) {
                        self.doc_error(
                            doc,
                            path,
                            format!("'{key}' entities are not supported by this gateway"),
                        );
                    } else {
                        self.doc_error(doc, path, "unknown field");
                    }
                }
            }
        }
    }

    fn check_format_version(&mut self, doc: usize, path: FieldPath, value: &Value) {
        match value.as_str() {
            Some("3.0") => {}
            Some(other) => self.doc_error(
                doc,
                path,
                format!("cannot apply '{other}' config format version to Kong version 3.0 or above; use '3.0'"),
            ),
            None => self.doc_error(doc, path, "expected a string"),
        }
    }

    fn read_info(&mut self, doc: usize, path: FieldPath, value: &Value) {
        let Some(info) = value.as_object() else {
            self.doc_error(doc, path, "expected a mapping");
            return;
        };
        for (key, value) in info {
            let field_path = path.key(key);
            match key.as_str() {
                "select_tags" => match string_list(value) {
                    Some(tags) => self.note_file_select_tags(doc, field_path, tags),
                    None => self.doc_error(doc, field_path, "expected a list of strings"),
                },
                "defaults" => self.read_defaults(doc, field_path, value),
                "default_lookup_tags" => self.doc_error(
                    doc,
                    field_path,
                    "default_lookup_tags is not supported; reference entities by id instead",
                ),
                _ => {}
            }
        }
    }

    fn note_file_select_tags(&mut self, doc: usize, path: FieldPath, tags: Vec<String>) {
        match &self.file_select_tags {
            Some((_, earlier)) if !same_set(earlier, &tags) => self.doc_error(
                doc,
                path,
                format!("select_tags {tags:?} differ from those of another file ({earlier:?})"),
            ),
            Some(_) => {}
            None => self.file_select_tags = Some((doc, tags)),
        }
    }

    fn read_defaults(&mut self, doc: usize, path: FieldPath, value: &Value) {
        let Some(defaults) = value.as_object() else {
            self.doc_error(doc, path, "expected a mapping");
            return;
        };
        for (key, value) in defaults {
            let kind = match key.as_str() {
                "service" => EntityKind::Service,
                "route" => EntityKind::Route,
                _ => continue,
            };
            let Some(fields) = value.as_object() else {
                self.doc_error(doc, path.key(key), "expected a mapping");
                continue;
            };
            for forbidden in ["id", "name"] {
                if fields.contains_key(forbidden) {
                    self.doc_error(
                        doc,
                        path.key(key).key(forbidden),
                        "cannot be set in _info.defaults",
                    );
                }
            }
            self.defaults.push((doc, kind, fields.clone()));
        }
    }

    fn read_list(
        &mut self,
        doc: usize,
        path: FieldPath,
        value: Value,
        kind: EntityKind,
        parent: Option<usize>,
    ) {
        let Value::Array(items) = value else {
            if !value.is_null() {
                self.doc_error(doc, path, "expected a list");
            }
            return;
        };
        for (index, item) in items.into_iter().enumerate() {
            self.read_entity(doc, path.index(index), item, kind, parent);
        }
    }

    fn read_entity(
        &mut self,
        doc: usize,
        path: FieldPath,
        value: Value,
        kind: EntityKind,
        parent: Option<usize>,
    ) {
        let Value::Object(mut input) = value else {
            self.doc_error(doc, path, "expected a mapping");
            return;
        };
        let nested = take_nested(kind, &mut input);
        let index = self.entities.len();
        let explicit_id = input.get("id").and_then(Value::as_str).map(str::to_owned);
        let label = label_of(kind, &input);
        self.entities.push(RawEntity {
            kind,
            input,
            doc,
            path: path.clone(),
            references: Vec::new(),
            id: explicit_id,
            label,
            canonical: None,
        });
        self.collect_references(index, parent);
        for (key, child_value, child_kind) in nested {
            self.read_list(doc, path.key(&key), child_value, child_kind, Some(index));
        }
    }

    /// Record the references an entity makes, including its nesting parent.
    fn collect_references(&mut self, index: usize, parent: Option<usize>) {
        let kind = self.entities[index].kind;
        let parent_kind = parent.map(|parent| self.entities[parent].kind);
        for (field, target) in reference_fields(kind) {
            let written = self.entities[index].input.remove(*field);
            let from_parent = parent_kind == Some(*target);
            if from_parent && written.as_ref().is_some_and(|v| !v.is_null()) {
                let parent_label = parent
                    .and_then(|p| self.entities[p].label.clone())
                    .unwrap_or_default();
                let own_label = self.entities[index].label.clone().unwrap_or_default();
                self.entity_error(
                    index,
                    FieldPath::root().key(field),
                    format!(
                        "nesting {} ({parent_label}) under {}-scoped {} ({own_label}) is not allowed",
                        target.deck_kind(),
                        target.deck_kind(),
                        kind.deck_kind()
                    ),
                );
                continue;
            }
            let reference = if from_parent {
                parent.map(RefValue::Parent)
            } else {
                match written.as_ref().map(reference_text) {
                    None | Some(Ok(None)) => None,
                    Some(Ok(Some(text))) => Some(RefValue::Text(text)),
                    Some(Err(message)) => {
                        self.entity_error(index, FieldPath::root().key(field), message);
                        None
                    }
                }
            };
            if let Some(written) = reference {
                self.entities[index].references.push(Reference {
                    field,
                    target: *target,
                    written,
                });
            }
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
                        entity
                            .input
                            .entry(key.clone())
                            .or_insert_with(|| value.clone());
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
        for index in 0..self.entities.len() {
            let entity = &self.entities[index];
            if entity.id.is_some() || entity.kind == EntityKind::Plugin {
                continue;
            }
            let matched = self.match_current(index, live);
            self.entities[index].id = Some(matched.unwrap_or_else(new_id));
        }
    }

    fn match_current(&self, index: usize, live: &LiveIndex<'_>) -> Option<String> {
        let entity = &self.entities[index];
        let by = |field: &'static str| {
            let wanted = entity.input.get(field).and_then(Value::as_str)?;
            live.get(entity.kind, field, wanted)
        };
        match entity.kind {
            EntityKind::Service | EntityKind::Route => by("name"),
            EntityKind::Consumer => by("username").or_else(|| by("custom_id")),
            EntityKind::KeyAuthCredential => by("key"),
            EntityKind::Plugin => None,
        }
    }

    // ----- step 3: references ------------------------------------------------

    /// Resolve every reference (within the files first, then in the live
    /// state), then give plugins their ids: a plugin matches a live one by
    /// its name and the ids of its scope.
    fn resolve_references(&mut self, live: &LiveIndex<'_>) {
        let (resolved, dangling) = self.find_references(live);
        for (index, field, id) in resolved {
            self.entities[index]
                .input
                .insert(field.to_owned(), serde_json::json!({ "id": id }));
        }
        self.diagnostics.extend(dangling);
        for index in 0..self.entities.len() {
            if self.entities[index].kind == EntityKind::Plugin && self.entities[index].id.is_none()
            {
                let matched = self.match_current_plugin(index, live);
                self.entities[index].id = Some(matched.unwrap_or_else(new_id));
            }
        }
    }

    /// Where each reference points, and an error for each that points
    /// nowhere, both in entity order.
    fn find_references(&self, live: &LiveIndex<'_>) -> (Vec<Resolved>, Vec<Diagnostic>) {
        // Nested children point at their parent directly: only the texts
        // of the other references are looked for.
        let wanted: FastSet<(EntityKind, &str)> = self
            .entities
            .iter()
            .flat_map(|entity| &entity.references)
            .filter_map(|reference| match &reference.written {
                RefValue::Text(text) => Some((reference.target, text.as_str())),
                RefValue::Parent(_) => None,
            })
            .collect();
        let in_files = FileNames::new(&self.entities, &wanted);
        let mut resolved = Vec::new();
        let mut dangling = Vec::new();
        for (index, entity) in self.entities.iter().enumerate() {
            for reference in &entity.references {
                match self.resolve(&in_files, live, reference) {
                    Some(id) => resolved.push((index, reference.field, id)),
                    None => dangling.extend(self.dangling(index, reference)),
                }
            }
        }
        (resolved, dangling)
    }

    fn resolve(
        &self,
        in_files: &FileNames<'_>,
        live: &LiveIndex<'_>,
        reference: &Reference,
    ) -> Option<String> {
        match &reference.written {
            RefValue::Parent(parent) => self.entities[*parent].id.clone(),
            RefValue::Text(text) => in_files
                .find(reference.target, text)
                .map(str::to_owned)
                .or_else(|| live.find(reference.target, text)),
        }
    }

    fn dangling(&self, index: usize, reference: &Reference) -> Option<Diagnostic> {
        let RefValue::Text(text) = &reference.written else {
            return None;
        };
        let kind = self.entities[index].kind;
        let own = self.entities[index].label.clone().unwrap_or_default();
        let message = format!(
            "{} {text} for {} {own}: entity not found",
            reference.target.deck_kind(),
            kind.deck_kind()
        );
        let field = FieldPath::root().key(reference.field);
        Some(self.entity_diagnostic(index, Severity::Error, field, message))
    }

    fn match_current_plugin(&self, index: usize, live: &LiveIndex<'_>) -> Option<String> {
        let input = &self.entities[index].input;
        let scope = plugin_scope_by(|field| input.get(field))?;
        live.plugins_by_scope.get(&scope).map(|id| (*id).to_owned())
    }

    /// key-auth's `anonymous` names a consumer by id or username; warn when
    /// neither the files nor the live state have it.
    fn check_anonymous_consumers(&mut self, live: &LiveIndex<'_>) {
        let named: Vec<(usize, &str)> = self
            .entities
            .iter()
            .enumerate()
            .filter(|(_, entity)| entity.kind == EntityKind::Plugin)
            .filter_map(|(index, entity)| {
                let config = entity.input.get("config")?;
                Some((index, config.get("anonymous")?.as_str()?))
            })
            .collect();
        if named.is_empty() {
            return;
        }
        let wanted = named
            .iter()
            .map(|(_, anonymous)| (EntityKind::Consumer, *anonymous))
            .collect();
        let in_files = FileNames::new(&self.entities, &wanted);
        let warnings: Vec<Diagnostic> = named
            .iter()
            .filter(|(_, anonymous)| {
                in_files.find(EntityKind::Consumer, anonymous).is_none()
                    && live.find(EntityKind::Consumer, anonymous).is_none()
            })
            .map(|(index, anonymous)| {
                self.entity_diagnostic(
                    *index,
                    Severity::Warning,
                    FieldPath::root().key("config").key("anonymous"),
                    format!("anonymous consumer '{anonymous}' is not defined in these files"),
                )
            })
            .collect();
        self.diagnostics.extend(warnings);
    }

    // ----- step 4: schemas -------------------------------------------------

    /// Validate every entity against its schema. Entities are independent,
    /// so a large file is validated on all cores; errors are still
    /// reported in entity order.
    fn validate_entities(&mut self, live: &LiveIndex<'_>) {
        let violations = parallel::map_mut(&mut self.entities, |entity| {
            validate_entity(entity, live).err()
        });
        for (index, violation) in violations.into_iter().enumerate() {
            for error in violation.into_iter().flat_map(|v| v.errors) {
                self.entity_error(index, error.path, error.message);
            }
        }
    }

    // ----- step 5: duplicates ------------------------------------------------

    /// Two entities of a kind may not share an identity (id, unique name,
    /// plugin scope): the later one is reported. Identities are compared as
    /// borrowed values; only a duplicate's is put into words.
    fn find_duplicates(&mut self) {
        // The first entity with each id or unique field, and with each
        // plugin scope (plugins only, so no kind in that key).
        let mut unique: FastMap<(EntityKind, &'static str, &str), usize> =
            hash::map_with_capacity(2 * self.entities.len());
        let mut scopes: FastMap<PluginScope<'_>, usize> = FastMap::default();
        let mut duplicates = Vec::new();
        for (index, entity) in self.entities.iter().enumerate() {
            let Some(canonical) = entity.canonical.as_ref() else {
                continue;
            };
            for identity in identities(entity.kind, canonical) {
                let first = match identity {
                    Identity::Field { field, value, .. } => {
                        first_with(&mut unique, (entity.kind, field, value), index)
                    }
                    Identity::Scope(scope) => first_with(&mut scopes, scope, index),
                };
                if let Some(first) = first {
                    duplicates.push((index, first, identity));
                }
            }
        }
        if duplicates.is_empty() {
            return;
        }
        let labels: FastMap<&str, &str> = self
            .entities
            .iter()
            .filter_map(|entity| Some((entity.id.as_deref()?, entity.label.as_deref()?)))
            .collect();
        let name_of = |id: &str| labels.get(id).copied().unwrap_or(id).to_owned();
        let errors: Vec<Diagnostic> = duplicates
            .iter()
            .map(|(index, first, identity)| {
                let first_origin = self.origin(*first);
                let at = match first_origin.pos {
                    Some(pos) => format!("{}:{}:{}", first_origin.file, pos.line, pos.column),
                    None => first_origin.file.clone(),
                };
                let message = format!(
                    "{} {} is already defined at {at} ({})",
                    self.entities[*index].kind.deck_kind(),
                    identity.describe(&name_of),
                    first_origin.entity_display()
                );
                self.entity_diagnostic(*index, Severity::Error, FieldPath::root(), message)
            })
            .collect();
        self.diagnostics.extend(errors);
    }

    fn finish(self) -> Result<Built, Vec<Diagnostic>> {
        let has_errors = self
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error);
        if has_errors {
            let mut diagnostics = self.diagnostics;
            diagnostics
                .sort_by(|a, b| (&a.file, a.pos, a.severity).cmp(&(&b.file, b.pos, b.severity)));
            return Err(diagnostics);
        }
        let mut built = Built {
            select_tags: self.select_tags,
            warnings: self.diagnostics,
            ..Built::default()
        };
        built.origins.reserve(self.entities.len());
        for kind in EntityKind::ALL {
            let count = self.entities.iter().filter(|e| e.kind == kind).count();
            built.config.entities_mut(kind).reserve_exact(count);
        }
        // Move the canonical entities, paths and labels out: a large
        // configuration is not copied once more.
        for entity in self.entities {
            let Some(canonical) = entity.canonical else {
                continue;
            };
            if let Some(id) = id_of(&canonical) {
                let doc = &self.docs[entity.doc];
                let origin = Origin {
                    file: doc.origin.clone(),
                    pos: doc.positions.lookup(&entity.path.0),
                    path: entity.path,
                    label: entity.label,
                };
                built.origins.insert(id.to_owned(), origin);
            }
            built.config.entities_mut(entity.kind).push(canonical);
        }
        Ok(built)
    }
}

// ----- helpers -------------------------------------------------------------

fn nested_children(kind: EntityKind) -> &'static [(&'static str, EntityKind)] {
    match kind {
        EntityKind::Service => &[
            ("routes", EntityKind::Route),
            ("plugins", EntityKind::Plugin),
        ],
        EntityKind::Route => &[("plugins", EntityKind::Plugin)],
        EntityKind::Consumer => &[
            ("plugins", EntityKind::Plugin),
            ("keyauth_credentials", EntityKind::KeyAuthCredential),
        ],
        _ => &[],
    }
}

/// The nested children lists of an entity (`routes`, `plugins`, ...),
/// taken out of its fields in the order they are written.
fn take_nested(
    kind: EntityKind,
    fields: &mut Map<String, Value>,
) -> Vec<(String, Value, EntityKind)> {
    let children = nested_children(kind);
    let written: Vec<(String, EntityKind)> = fields
        .keys()
        .filter_map(|key| {
            let (_, child_kind) = children.iter().find(|(name, _)| name == key)?;
            Some((key.clone(), *child_kind))
        })
        .collect();
    written
        .into_iter()
        .filter_map(|(key, child_kind)| {
            let value = fields.shift_remove(&key)?;
            Some((key, value, child_kind))
        })
        .collect()
}

fn reference_fields(kind: EntityKind) -> &'static [(&'static str, EntityKind)] {
    match kind {
        EntityKind::Route => &[("service", EntityKind::Service)],
        EntityKind::Plugin => &[
            ("service", EntityKind::Service),
            ("route", EntityKind::Route),
            ("consumer", EntityKind::Consumer),
        ],
        EntityKind::KeyAuthCredential => &[("consumer", EntityKind::Consumer)],
        _ => &[],
    }
}

/// A reference may be written `name`, `{name: x}`, `{id: x}` or
/// `{username: x}`; `null` means none.
fn reference_text(value: &Value) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text.clone())),
        Value::Object(object) => ["id", "name", "username", "custom_id"]
            .iter()
            .find_map(|key| object.get(*key).and_then(Value::as_str))
            .map(|text| Some(text.to_owned()))
            .ok_or_else(|| "expected a name or an id".to_owned()),
        _ => Err("expected a name or an id".to_owned()),
    }
}

/// The fields an entity can be referred to by (besides its id), in the
/// order references are matched.
fn natural_fields(kind: EntityKind) -> &'static [&'static str] {
    match kind {
        EntityKind::Service | EntityKind::Route => &["name"],
        EntityKind::Consumer => &["username", "custom_id"],
        EntityKind::KeyAuthCredential => &["key"],
        EntityKind::Plugin => &["instance_name"],
    }
}

/// The live state indexed for matching: every entity by id and by each
/// natural name, and plugins by identity. Built once per build, so matching
/// thousands of file entities stays linear.
struct LiveIndex<'a> {
    by_field: FastMap<(EntityKind, &'static str, &'a str), &'a str>,
    plugins_by_scope: FastMap<PluginScope<'a>, &'a str>,
    plugins_by_id: FastMap<&'a str, &'a Value>,
}

impl<'a> LiveIndex<'a> {
    fn new(config: &'a Config) -> Self {
        let plugins = config.plugins.len();
        let mut index = LiveIndex {
            // An id and about one name per entity.
            by_field: hash::map_with_capacity(2 * config.len()),
            plugins_by_scope: hash::map_with_capacity(plugins),
            plugins_by_id: hash::map_with_capacity(plugins),
        };
        for kind in EntityKind::ALL {
            for entity in config.entities(kind) {
                index.add(kind, entity);
            }
        }
        index
    }

    fn add(&mut self, kind: EntityKind, entity: &'a Value) {
        let Some(id) = id_of(entity) else {
            return;
        };
        self.by_field.entry((kind, "id", id)).or_insert(id);
        for field in natural_fields(kind) {
            if let Some(value) = entity.get(*field).and_then(Value::as_str) {
                self.by_field.entry((kind, field, value)).or_insert(id);
            }
        }
        if kind == EntityKind::Plugin {
            self.plugins_by_id.insert(id, entity);
            if let Some(scope) = plugin_scope_by(|field| entity.get(field)) {
                self.plugins_by_scope.insert(scope, id);
            }
        }
    }

    /// The id of the live entity whose `field` is `value`.
    fn get(&self, kind: EntityKind, field: &'static str, value: &str) -> Option<String> {
        self.by_field
            .get(&(kind, field, value))
            .map(|id| (*id).to_owned())
    }

    /// The id of the live entity with id or natural name `text`.
    fn find(&self, kind: EntityKind, text: &str) -> Option<String> {
        std::iter::once(&"id")
            .chain(natural_fields(kind))
            .find_map(|field| self.get(kind, field, text))
    }
}

/// Validate one entity, its id set and the live secrets it leaves out
/// kept; the input is consumed, the canonical form kept.
fn validate_entity(entity: &mut RawEntity, live: &LiveIndex<'_>) -> Result<(), SchemaViolation> {
    let mut input = std::mem::take(&mut entity.input);
    if let Some(id) = &entity.id {
        input.insert("id".into(), Value::from(id.clone()));
    }
    keep_live_secrets(entity, live, &mut input);
    entity.canonical = Some(entity.kind.validate(&Value::Object(input))?);
    Ok(())
}

/// Secrets the gateway generated (a session plugin's `secret`) and the
/// file leaves out are kept, so syncing such a file changes nothing.
fn keep_live_secrets(entity: &RawEntity, live: &LiveIndex<'_>, input: &mut Map<String, Value>) {
    if entity.kind != EntityKind::Plugin {
        return;
    }
    let Some(id) = entity.id.as_deref() else {
        return;
    };
    let live_secret = live
        .plugins_by_id
        .get(id)
        .and_then(|live| live.get("config")?.get("secret").cloned())
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

/// What the files' entities are named, for the few names references and
/// `anonymous` use: for each wanted (kind, text), the id of the entity a
/// reference written that way points at. A text names an entity by id
/// first, then by each natural field in turn (`username`, then
/// `custom_id`); of two entities alike, the first wins (the second is
/// reported as a duplicate later). One pass over the entities looks their
/// names up among the wanted texts, rather than indexing every entity.
/// Entities without an id yet (plugins) are left out.
struct FileNames<'e> {
    ids: FastMap<(EntityKind, &'e str), &'e str>,
}

impl<'e> FileNames<'e> {
    fn new(entities: &'e [RawEntity], wanted: &FastSet<(EntityKind, &str)>) -> Self {
        // For each text found: the rank of the field it was found in (the
        // id first) and the entity's id.
        let mut best: FastMap<(EntityKind, &'e str), (usize, &'e str)> = FastMap::default();
        let searched = if wanted.is_empty() { &[][..] } else { entities };
        for entity in searched {
            let Some(id) = entity.id.as_deref() else {
                continue;
            };
            let names = natural_fields(entity.kind)
                .iter()
                .map(|field| entity.input.get(*field).and_then(Value::as_str));
            for (rank, name) in std::iter::once(Some(id)).chain(names).enumerate() {
                let Some(key) = name.map(|name| (entity.kind, name)) else {
                    continue;
                };
                if !wanted.contains(&key) {
                    continue;
                }
                match best.entry(key) {
                    Entry::Vacant(slot) => {
                        slot.insert((rank, id));
                    }
                    Entry::Occupied(mut found) if rank < found.get().0 => {
                        found.insert((rank, id));
                    }
                    Entry::Occupied(_) => {}
                }
            }
        }
        let ids = best.into_iter().map(|(key, (_, id))| (key, id)).collect();
        FileNames { ids }
    }

    /// The id of the entity `text` names.
    fn find(&self, kind: EntityKind, text: &str) -> Option<&'e str> {
        self.ids.get(&(kind, text)).copied()
    }
}

/// One thing that must be unique among the entities of a kind.
#[derive(Debug, Clone, Copy)]
enum Identity<'a> {
    /// The id or a unique field, how messages name it (`named`), and
    /// its value.
    Field {
        field: &'static str,
        label: &'static str,
        value: &'a str,
    },
    /// A plugin's name and the ids of its scope.
    Scope(PluginScope<'a>),
}

/// A plugin's name and the ids of its route, service and consumer.
type PluginScope<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);

impl Identity<'_> {
    /// `with id ...`, `named 'svc1'`, `'key-auth' for the same scope
    /// (service svc1)`; `name_of` names the entities of a plugin's scope.
    fn describe(&self, name_of: &dyn Fn(&str) -> String) -> String {
        match *self {
            Identity::Field {
                field: "id", value, ..
            } => format!("with id {value}"),
            Identity::Field { label, value, .. } => format!("{label} '{value}'"),
            Identity::Scope((name, route, service, consumer)) => {
                let scope: Vec<String> = [
                    ("route", route),
                    ("service", service),
                    ("consumer", consumer),
                ]
                .into_iter()
                .filter_map(|(what, id)| id.map(|id| format!("{what} {}", name_of(id))))
                .collect();
                let scope_text = if scope.is_empty() {
                    "global".to_owned()
                } else {
                    scope.join(" and ")
                };
                format!("'{name}' for the same scope ({scope_text})")
            }
        }
    }
}

/// The identities of a canonical entity, in the order they are checked:
/// the id, the unique fields, a plugin's scope.
fn identities(kind: EntityKind, canonical: &Value) -> impl Iterator<Item = Identity<'_>> {
    let unique: &[(&'static str, &'static str)] = match kind {
        EntityKind::Service | EntityKind::Route => &[("name", "named")],
        EntityKind::Consumer => &[
            ("username", "with username"),
            ("custom_id", "with custom_id"),
        ],
        EntityKind::KeyAuthCredential => &[("key", "with the same key")],
        EntityKind::Plugin => &[("instance_name", "named")],
    };
    let id = id_of(canonical).map(|id| Identity::Field {
        field: "id",
        label: "with id",
        value: id,
    });
    let fields = unique.iter().filter_map(|(field, label)| {
        let value = canonical.get(*field)?.as_str()?;
        Some(Identity::Field {
            field,
            label,
            value,
        })
    });
    let scope = (kind == EntityKind::Plugin)
        .then(|| plugin_scope_by(|field| canonical.get(field)))
        .flatten()
        .map(Identity::Scope);
    id.into_iter().chain(fields).chain(scope)
}

/// The entity first seen with `key`, or `None` when `index` is the first
/// (and is recorded).
fn first_with<K: Hash + Eq>(seen: &mut FastMap<K, usize>, key: K, index: usize) -> Option<usize> {
    match seen.entry(key) {
        Entry::Occupied(first) => Some(*first.get()),
        Entry::Vacant(slot) => {
            slot.insert(index);
            None
        }
    }
}

/// A plugin's name and the ids of its route, service and consumer scope:
/// at most one plugin per identity.
pub type PluginIdentity = (String, Option<String>, Option<String>, Option<String>);

/// A plugin's identity: its name and the ids of its scope.
pub fn plugin_identity(plugin: &Value) -> Option<PluginIdentity> {
    let (name, route, service, consumer) = plugin_scope_by(|field| plugin.get(field))?;
    let owned = |id: Option<&str>| id.map(str::to_owned);
    Some((
        name.to_owned(),
        owned(route),
        owned(service),
        owned(consumer),
    ))
}

/// [`plugin_identity`] borrowed from a plugin whose fields `get` gives
/// (a canonical entity, or the fields of one still being built): matching
/// and duplicate checks need not copy the ids.
fn plugin_scope_by<'v>(get: impl Fn(&str) -> Option<&'v Value>) -> Option<PluginScope<'v>> {
    let name = get("name")?.as_str()?;
    let scope = |field: &str| get(field)?.get("id")?.as_str();
    Some((name, scope("route"), scope("service"), scope("consumer")))
}

/// A short name for an entity of `kind` with fields `input`: its name or
/// username, else its custom_id.
fn label_of(kind: EntityKind, input: &Map<String, Value>) -> Option<String> {
    let field = match kind {
        EntityKind::Service | EntityKind::Route | EntityKind::Plugin => "name",
        EntityKind::Consumer => "username",
        EntityKind::KeyAuthCredential => return None,
    };
    input
        .get(field)
        .or_else(|| input.get("custom_id"))
        .and_then(Value::as_str)
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

fn add_tags(input: &mut Map<String, Value>, select_tags: &[String]) {
    if select_tags.is_empty() {
        return;
    }
    let tags = input
        .entry("tags")
        .or_insert_with(|| Value::Array(Vec::new()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::load::load_text;
    use serde_json::json;

    fn docs(text: &str) -> Vec<SourceDoc> {
        let no_env = |_: &str| None;
        load_text("kong.yaml", text, &no_env)
            .expect("test input parses")
            .docs
    }

    fn build_against(text: &str, current: &Config) -> Built {
        build(&docs(text), current, &BuildOptions::default()).expect("test input builds")
    }

    const TUTORIAL: &str = r#"_format_version: "3.0"
services:
  - name: example-service
    url: http://127.0.0.1:9000
    routes:
      - name: example-route
        paths: [/anything]
    plugins:
      - name: session
        config: {storage: kong}
consumers:
  - username: alex
    keyauth_credentials:
      - key: hello_world
"#;

    #[test]
    fn nested_entities_get_their_parent_reference() {
        let built = build_against(TUTORIAL, &Config::default());
        let service_id = id_of(&built.config.services[0]).unwrap();
        assert_eq!(built.config.routes[0]["service"]["id"], service_id);
        assert_eq!(built.config.plugins[0]["service"]["id"], service_id);
        let consumer_id = id_of(&built.config.consumers[0]).unwrap();
        assert_eq!(
            built.config.keyauth_credentials[0]["consumer"]["id"],
            consumer_id
        );
        assert_eq!(built.config.len(), 5);
    }

    #[test]
    fn ids_and_generated_secrets_come_from_the_live_state() {
        let first = build_against(TUTORIAL, &Config::default());
        let mut live = first.config.clone();
        live.plugins[0]["config"]["secret"] = json!("live-secret");
        let second = build_against(TUTORIAL, &live);
        for kind in EntityKind::ALL {
            let ids = |config: &Config| -> Vec<String> {
                config
                    .entities(kind)
                    .iter()
                    .filter_map(id_of)
                    .map(str::to_owned)
                    .collect()
            };
            assert_eq!(ids(&second.config), ids(&live), "{kind:?} ids are reused");
        }
        assert_eq!(second.config.plugins[0]["config"]["secret"], "live-secret");
    }

    #[test]
    fn references_resolve_against_the_live_state() {
        let live = build_against(TUTORIAL, &Config::default()).config;
        let block = "plugins:\n  - name: key-auth\n    service: example-service\n";
        let built = build_against(block, &live);
        assert_eq!(
            built.config.plugins[0]["service"]["id"],
            live.services[0]["id"]
        );
        let offline = build(&docs(block), &Config::default(), &BuildOptions::default());
        let errors = offline.expect_err("dangling offline");
        assert_eq!(
            errors[0].to_string(),
            "kong.yaml:3:14: plugins[0] (key-auth).service: service example-service for plugin key-auth: entity not found"
        );
    }

    #[test]
    fn references_prefer_ids_then_names_in_order() {
        let text = "consumers:
  - username: alex
    custom_id: bob
  - username: bob
plugins:
  - name: request-termination
    consumer: bob
    config: {status_code: 403}
";
        let built = build_against(text, &Config::default());
        let bob = id_of(&built.config.consumers[1]).unwrap();
        // `bob` is the second consumer's username and the first one's
        // custom_id: the username comes first.
        assert_eq!(built.config.plugins[0]["consumer"]["id"], bob);
        let by_id = format!("{text}keyauth_credentials:\n  - key: k1\n    consumer: {bob}\n");
        let built = build(&docs(&by_id), &built.config, &BuildOptions::default()).unwrap();
        assert_eq!(built.config.keyauth_credentials[0]["consumer"]["id"], bob);
    }

    #[test]
    fn select_tags_are_added_and_must_agree() {
        let text = "_info:\n  select_tags: [team-a]\nconsumers:\n  - username: bob\n";
        let built = build_against(text, &Config::default());
        assert_eq!(built.config.consumers[0]["tags"], json!(["team-a"]));
        let options = BuildOptions {
            select_tags: vec!["team-b".into()],
        };
        assert!(build(&docs(text), &Config::default(), &options).is_err());
    }

    #[test]
    fn anonymous_consumer_absent_is_a_warning() {
        let text = "plugins:\n  - name: key-auth\n    config:\n      anonymous: ghost\n";
        let built = build_against(text, &Config::default());
        assert_eq!(built.warnings.len(), 1);
        assert!(built.warnings[0]
            .to_string()
            .contains("warning: plugins[0] (key-auth).config.anonymous"));
    }
}
