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

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::load::SourceDoc;
use super::pos::Pos;
use crate::config::{id_of, Config};
use crate::entities::EntityKind;
use crate::error::FieldPath;

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
    let mut builder = Builder::new(docs, current);
    builder.read_documents();
    builder.settle_select_tags(&options.select_tags);
    builder.assign_ids();
    builder.resolve_references();
    builder.check_anonymous_consumers();
    builder.validate_entities();
    builder.find_duplicates();
    builder.finish()
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
    canonical: Option<Value>,
}

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

struct Builder<'a> {
    docs: &'a [SourceDoc],
    /// The live state indexed by id, natural names and plugin identity.
    live: LiveIndex<'a>,
    /// The files' entities by id and natural names (built once ids exist).
    in_files: HashMap<(EntityKind, &'static str, String), String>,
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

impl<'a> Builder<'a> {
    fn new(docs: &'a [SourceDoc], current: &'a Config) -> Self {
        Self {
            docs,
            live: LiveIndex::new(current),
            in_files: HashMap::new(),
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

    fn entity_diagnostic(
        &mut self,
        index: usize,
        severity: Severity,
        field: FieldPath,
        message: impl Into<String>,
    ) {
        let entity = &self.entities[index];
        let pos = self.pos_of(entity.doc, &field.under(&entity.path));
        let origin = self.origin(index);
        self.diagnostics.push(Diagnostic {
            severity,
            file: origin.file.clone(),
            pos,
            entity: origin.entity_display(),
            field,
            message: message.into(),
        });
    }

    fn entity_error(&mut self, index: usize, field: FieldPath, message: impl Into<String>) {
        self.entity_diagnostic(index, Severity::Error, field, message);
    }

    fn origin(&self, index: usize) -> Origin {
        let entity = &self.entities[index];
        Origin {
            file: self.docs[entity.doc].origin.clone(),
            path: entity.path.clone(),
            label: label_of(entity),
            pos: self.pos_of(entity.doc, &entity.path),
        }
    }

    // ----- step 1: read and flatten -------------------------------------

    fn read_documents(&mut self) {
        for doc in 0..self.docs.len() {
            let value = self.docs[doc].value.clone();
            match value {
                Value::Object(content) => self.read_content(doc, &content),
                Value::Null => {}
                _ => self.doc_error(
                    doc,
                    FieldPath::root(),
                    "expected a mapping at the top of the file",
                ),
            }
        }
    }

    fn read_content(&mut self, doc: usize, content: &Map<String, Value>) {
        for (key, value) in content {
            let path = FieldPath::root().key(key);
            match key.as_str() {
                "_format_version" => self.check_format_version(doc, path, value),
                "_transform" if value == &Value::Bool(false) => {
                    self.doc_error(doc, path, "false is not supported")
                }
                "_transform" | "_workspace" => {}
                "_info" => self.read_info(doc, path, value),
                _ => {
                    if let Some((_, kind)) = TOP_LEVEL_ENTITIES.iter().find(|(name, _)| name == key)
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
        value: &Value,
        kind: EntityKind,
        parent: Option<usize>,
    ) {
        let Some(items) = value.as_array() else {
            if !value.is_null() {
                self.doc_error(doc, path, "expected a list");
            }
            return;
        };
        for (index, item) in items.iter().enumerate() {
            self.read_entity(doc, path.index(index), item, kind, parent);
        }
    }

    fn read_entity(
        &mut self,
        doc: usize,
        path: FieldPath,
        value: &Value,
        kind: EntityKind,
        parent: Option<usize>,
    ) {
        let Some(object) = value.as_object() else {
            self.doc_error(doc, path, "expected a mapping");
            return;
        };
        let children = nested_children(kind);
        let mut input = Map::new();
        let mut nested = Vec::new();
        for (key, field_value) in object {
            match children.iter().find(|(name, _)| name == key) {
                Some((_, child_kind)) => {
                    nested.push((key.clone(), field_value.clone(), *child_kind))
                }
                None => {
                    input.insert(key.clone(), field_value.clone());
                }
            }
        }
        let index = self.entities.len();
        let explicit_id = input.get("id").and_then(Value::as_str).map(str::to_owned);
        self.entities.push(RawEntity {
            kind,
            input,
            doc,
            path: path.clone(),
            references: Vec::new(),
            id: explicit_id,
            canonical: None,
        });
        self.collect_references(index, parent);
        for (key, child_value, child_kind) in nested {
            self.read_list(doc, path.key(&key), &child_value, child_kind, Some(index));
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
                    .and_then(|p| label_of(&self.entities[p]))
                    .unwrap_or_default();
                let own_label = label_of(&self.entities[index]).unwrap_or_default();
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
        }
    }

    // ----- step 2: ids -----------------------------------------------------

    /// Ids for entities without one: matched against the live state by the
    /// entity's natural key, else new. Plugins wait for their references.
    fn assign_ids(&mut self) {
        for index in 0..self.entities.len() {
            let entity = &self.entities[index];
            if entity.id.is_some() || entity.kind == EntityKind::Plugin {
                continue;
            }
            let matched = self.match_current(index);
            self.entities[index].id = Some(matched.unwrap_or_else(new_id));
        }
    }

    fn match_current(&self, index: usize) -> Option<String> {
        let entity = &self.entities[index];
        let by = |field: &'static str| {
            let wanted = entity.input.get(field).and_then(Value::as_str)?;
            self.live.get(entity.kind, field, wanted)
        };
        match entity.kind {
            EntityKind::Service | EntityKind::Route => by("name"),
            EntityKind::Consumer => by("username").or_else(|| by("custom_id")),
            EntityKind::KeyAuthCredential => by("key"),
            EntityKind::Plugin => None,
        }
    }

    // ----- step 3: references ------------------------------------------------

    fn resolve_references(&mut self) {
        self.index_files();
        for index in 0..self.entities.len() {
            let references = self.entities[index].references.clone();
            for reference in references {
                match self.resolve(&reference) {
                    Some(id) => {
                        self.entities[index]
                            .input
                            .insert(reference.field.to_owned(), serde_json::json!({ "id": id }));
                    }
                    None => self.dangling(index, &reference),
                }
            }
        }
        for index in 0..self.entities.len() {
            if self.entities[index].kind == EntityKind::Plugin && self.entities[index].id.is_none()
            {
                let matched = self.match_current_plugin(index);
                self.entities[index].id = Some(matched.unwrap_or_else(new_id));
            }
        }
    }

    fn resolve(&self, reference: &Reference) -> Option<String> {
        match &reference.written {
            RefValue::Parent(parent) => self.entities[*parent].id.clone(),
            RefValue::Text(text) => self
                .find_in_files(reference.target, text)
                .or_else(|| self.live.find(reference.target, text)),
        }
    }

    /// Index the files' entities by id and natural names; the first of
    /// two alike wins (the second is reported as a duplicate later).
    fn index_files(&mut self) {
        for entity in &self.entities {
            let Some(id) = entity.id.clone() else {
                continue;
            };
            let names = natural_fields(entity.kind).iter().filter_map(|field| {
                let value = entity.input.get(*field)?.as_str()?;
                Some((*field, value.to_owned()))
            });
            for (field, value) in std::iter::once(("id", id.clone())).chain(names) {
                self.in_files
                    .entry((entity.kind, field, value))
                    .or_insert_with(|| id.clone());
            }
        }
    }

    fn find_in_files(&self, kind: EntityKind, text: &str) -> Option<String> {
        std::iter::once(&"id")
            .chain(natural_fields(kind))
            .find_map(|field| self.in_files.get(&(kind, *field, text.to_owned())))
            .cloned()
    }

    fn dangling(&mut self, index: usize, reference: &Reference) {
        let RefValue::Text(text) = &reference.written else {
            return;
        };
        let kind = self.entities[index].kind;
        let own = label_of(&self.entities[index]).unwrap_or_default();
        let message = format!(
            "{} {text} for {} {own}: entity not found",
            reference.target.deck_kind(),
            kind.deck_kind()
        );
        self.entity_error(index, FieldPath::root().key(reference.field), message);
    }

    fn match_current_plugin(&self, index: usize) -> Option<String> {
        let identity = plugin_identity(&Value::Object(self.entities[index].input.clone()))?;
        self.live
            .plugins_by_identity
            .get(&identity)
            .map(|id| (*id).to_owned())
    }

    /// key-auth's `anonymous` names a consumer by id or username; warn when
    /// neither the files nor the live state have it.
    fn check_anonymous_consumers(&mut self) {
        for index in 0..self.entities.len() {
            let entity = &self.entities[index];
            if entity.kind != EntityKind::Plugin {
                continue;
            }
            let anonymous = entity
                .input
                .get("config")
                .and_then(|config| config.get("anonymous"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let Some(anonymous) = anonymous else {
                continue;
            };
            let known = self
                .find_in_files(EntityKind::Consumer, &anonymous)
                .is_some()
                || self.live.find(EntityKind::Consumer, &anonymous).is_some();
            if !known {
                self.entity_diagnostic(
                    index,
                    Severity::Warning,
                    FieldPath::root().key("config").key("anonymous"),
                    format!("anonymous consumer '{anonymous}' is not defined in these files"),
                );
            }
        }
    }

    // ----- step 4: schemas -------------------------------------------------

    fn validate_entities(&mut self) {
        for index in 0..self.entities.len() {
            let mut input = self.entities[index].input.clone();
            if let Some(id) = &self.entities[index].id {
                input.insert("id".into(), Value::from(id.clone()));
            }
            self.keep_live_secrets(index, &mut input);
            let kind = self.entities[index].kind;
            match kind.validate(&Value::Object(input)) {
                Ok(canonical) => self.entities[index].canonical = Some(canonical),
                Err(violation) => {
                    for error in violation.errors {
                        self.entity_error(index, error.path, error.message);
                    }
                }
            }
        }
    }

    /// Secrets the gateway generated (a session plugin's `secret`) and the
    /// file leaves out are kept, so syncing such a file changes nothing.
    fn keep_live_secrets(&self, index: usize, input: &mut Map<String, Value>) {
        let entity = &self.entities[index];
        if entity.kind != EntityKind::Plugin {
            return;
        }
        let Some(id) = entity.id.as_deref() else {
            return;
        };
        let live_secret = self
            .live
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

    // ----- step 5: duplicates ------------------------------------------------

    fn find_duplicates(&mut self) {
        let labels: HashMap<String, String> = self
            .entities
            .iter()
            .filter_map(|entity| Some((entity.id.clone()?, label_of(entity)?)))
            .collect();
        let name_of = |id: &str| labels.get(id).cloned().unwrap_or_else(|| id.to_owned());
        let mut seen: HashMap<(EntityKind, String), usize> = HashMap::new();
        for index in 0..self.entities.len() {
            let kind = self.entities[index].kind;
            let Some(canonical) = self.entities[index].canonical.as_ref() else {
                continue;
            };
            for (what, key) in identity_keys(kind, canonical, &name_of) {
                match seen.get(&(kind, key.clone())) {
                    Some(first) => {
                        let first_origin = self.origin(*first);
                        let at = match first_origin.pos {
                            Some(pos) => {
                                format!("{}:{}:{}", first_origin.file, pos.line, pos.column)
                            }
                            None => first_origin.file.clone(),
                        };
                        self.entity_error(
                            index,
                            FieldPath::root(),
                            format!(
                                "{} {what} is already defined at {at} ({})",
                                kind.deck_kind(),
                                first_origin.entity_display()
                            ),
                        );
                    }
                    None => {
                        seen.insert((kind, key), index);
                    }
                }
            }
        }
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
        let origins: Vec<Origin> = (0..self.entities.len())
            .map(|index| self.origin(index))
            .collect();
        let mut built = Built {
            select_tags: self.select_tags,
            warnings: self.diagnostics,
            ..Built::default()
        };
        built.origins.reserve(origins.len());
        // Move the canonical entities out: a large configuration is not
        // copied once more.
        for (entity, origin) in self.entities.into_iter().zip(origins) {
            let Some(canonical) = entity.canonical else {
                continue;
            };
            if let Some(id) = id_of(&canonical) {
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
    by_field: HashMap<(EntityKind, &'static str, &'a str), &'a str>,
    plugins_by_identity: HashMap<PluginIdentity, &'a str>,
    plugins_by_id: HashMap<&'a str, &'a Value>,
}

impl<'a> LiveIndex<'a> {
    fn new(config: &'a Config) -> Self {
        let mut index = LiveIndex {
            by_field: HashMap::new(),
            plugins_by_identity: HashMap::new(),
            plugins_by_id: HashMap::new(),
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
            if let Some(identity) = plugin_identity(entity) {
                self.plugins_by_identity.insert(identity, id);
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

/// A plugin's name and the ids of its route, service and consumer scope:
/// at most one plugin per identity.
pub type PluginIdentity = (String, Option<String>, Option<String>, Option<String>);

/// A plugin's identity: its name and the ids of its scope.
pub fn plugin_identity(plugin: &Value) -> Option<PluginIdentity> {
    let name = plugin.get("name")?.as_str()?.to_owned();
    let scope = |field: &str| {
        plugin
            .get(field)
            .and_then(|reference| reference.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Some((name, scope("route"), scope("service"), scope("consumer")))
}

/// The unique keys of a canonical entity, each with a description.
fn identity_keys(
    kind: EntityKind,
    canonical: &Value,
    name_of: &dyn Fn(&str) -> String,
) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    if let Some(id) = id_of(canonical) {
        keys.push((format!("with id {id}"), format!("id:{id}")));
    }
    let mut unique = |field: &str, label: &str| {
        if let Some(value) = canonical.get(field).and_then(Value::as_str) {
            keys.push((format!("{label} '{value}'"), format!("{field}:{value}")));
        }
    };
    match kind {
        EntityKind::Service | EntityKind::Route => unique("name", "named"),
        EntityKind::Consumer => {
            unique("username", "with username");
            unique("custom_id", "with custom_id");
        }
        EntityKind::KeyAuthCredential => unique("key", "with the same key"),
        EntityKind::Plugin => {
            unique("instance_name", "named");
            if let Some(identity) = plugin_identity(canonical) {
                let (name, route, service, consumer) = &identity;
                let scope: Vec<String> = [
                    ("route", route),
                    ("service", service),
                    ("consumer", consumer),
                ]
                .into_iter()
                .filter_map(|(what, id)| id.as_ref().map(|id| format!("{what} {}", name_of(id))))
                .collect();
                let scope_text = if scope.is_empty() {
                    "global".to_owned()
                } else {
                    scope.join(" and ")
                };
                keys.push((
                    format!("'{name}' for the same scope ({scope_text})"),
                    format!("scope:{identity:?}"),
                ));
            }
        }
    }
    keys
}

fn label_of(entity: &RawEntity) -> Option<String> {
    let field = match entity.kind {
        EntityKind::Service | EntityKind::Route | EntityKind::Plugin => "name",
        EntityKind::Consumer => "username",
        EntityKind::KeyAuthCredential => return None,
    };
    entity
        .input
        .get(field)
        .or_else(|| entity.input.get("custom_id"))
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
