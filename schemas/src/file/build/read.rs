//! Step 1 of the build: each document's top level read and its entities
//! flattened, nested children taken out and their references recorded.
//!
//! Sections decK knows and this gateway does not implement (other entity
//! kinds, consumer credentials other than key-auth, Konnect settings) are
//! reported as not supported, by name, rather than as unknown fields: the
//! user did not misspell them. `_format_version` may be left out (the file
//! is read as 3.0, the only format gwctl reads); when given, it must be
//! `"3.0"`. All the files must name the same `_workspace`, if any.

use serde_json::{Map, Value};

use super::{
    label_of, same_set, string_list, Builder, EntityPath, Fields, RawEntity, RefValue, Reference,
};
use crate::entities::descriptor::references_to;
use crate::entities::EntityKind;
use crate::error::FieldPath;

/// The kind whose top-level section (its collection name) is `key`.
fn top_level_kind(key: &str) -> Option<EntityKind> {
    EntityKind::ALL
        .into_iter()
        .find(|kind| kind.collection() == key)
}

/// Top-level sections of decK files that are not entity arrays and that
/// this gateway does not implement, with what they are.
pub(super) const UNSUPPORTED_SECTIONS: &[(&str, &str)] = &[
    ("_konnect", "Konnect control-plane settings"),
    ("_plugin_configs", "named plugin config fragments"),
];

/// Nested entity arrays decK reads under an entity of a kind and this
/// gateway does not implement.
pub(super) fn unsupported_children(kind: EntityKind) -> &'static [&'static str] {
    match kind {
        EntityKind::Consumer => &[
            "basicauth_credentials",
            "hmacauth_credentials",
            "jwt_secrets",
            "oauth2_credentials",
            "acls",
            "mtls_auth_credentials",
            "groups",
        ],
        EntityKind::Service | EntityKind::Route => &["filter_chains"],
        _ => &[],
    }
}

/// decK entity arrays this gateway does not implement.
pub(super) const UNSUPPORTED_ENTITIES: &[&str] = &[
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
    "cloned_plugins",
    "custom_plugins",
];

impl Builder {
    // ----- step 1: read and flatten -------------------------------------

    /// Takes each document's value apart into entities (moved, not copied).
    pub(super) fn read_documents(&mut self) {
        // The list of entities made long enough at once: grown by doubling,
        // a large file's list would be held twice for a moment, and keep
        // room for up to twice its entities.
        let count: usize = self.docs.iter().map(|doc| count_entities(&doc.value)).sum();
        self.entities.reserve_exact(count);
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

    pub(super) fn read_content(&mut self, doc: usize, content: Map<String, Value>) {
        for (key, value) in content {
            let path = FieldPath::root().key(&key);
            match key.as_str() {
                "_format_version" => self.check_format_version(doc, path, &value),
                "_transform" if value == Value::Bool(false) => {
                    self.doc_error(doc, path, "false is not supported")
                }
                "_transform" => {}
                "_workspace" => self.note_workspace(doc, path, &value),
                "_info" => self.read_info(doc, path, &value),
                _ => {
                    if let Some(kind) = top_level_kind(&key) {
                        self.read_list(doc, &EntityPath::default(), value, kind, None);
                    } else if let Some(message) = unsupported_section(&key) {
                        self.doc_error(doc, path, message);
                    } else {
                        self.doc_error(doc, path, "unknown field");
                    }
                }
            }
        }
    }

    pub(super) fn check_format_version(&mut self, doc: usize, path: FieldPath, value: &Value) {
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

    /// decK syncs one workspace at a time and refuses files that name
    /// different ones (go-database-reconciler `validateWorkspaces`).
    pub(super) fn note_workspace(&mut self, doc: usize, path: FieldPath, value: &Value) {
        let Some(workspace) = value.as_str() else {
            self.doc_error(doc, path, "expected a string");
            return;
        };
        match &self.workspace {
            None => self.workspace = Some((doc, workspace.to_owned())),
            Some((_, first)) if first == workspace => {}
            Some((first_doc, first)) => {
                let message = format!(
                    "'{workspace}' differs from the _workspace '{first}' of {}: it seems like you \
                     are trying to sync multiple workspaces at the same time; sync one workspace \
                     at a time",
                    self.docs[*first_doc].origin
                );
                self.doc_error(doc, path, message);
            }
        }
    }

    pub(super) fn read_info(&mut self, doc: usize, path: FieldPath, value: &Value) {
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

    pub(super) fn note_file_select_tags(&mut self, doc: usize, path: FieldPath, tags: Vec<String>) {
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

    pub(super) fn read_defaults(&mut self, doc: usize, path: FieldPath, value: &Value) {
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

    /// The list of `kind` under `under` (the root, or the parent entity).
    pub(super) fn read_list(
        &mut self,
        doc: usize,
        under: &EntityPath,
        value: Value,
        kind: EntityKind,
        parent: Option<usize>,
    ) {
        let Value::Array(items) = value else {
            if !value.is_null() {
                self.doc_error(doc, under.list(kind), "expected a list");
            }
            return;
        };
        for (index, item) in items.into_iter().enumerate() {
            self.read_entity(doc, under.item(kind, index), item, kind, parent);
        }
    }

    pub(super) fn read_entity(
        &mut self,
        doc: usize,
        path: EntityPath,
        value: Value,
        kind: EntityKind,
        parent: Option<usize>,
    ) {
        let Value::Object(mut input) = value else {
            self.doc_error(doc, path.to_field_path(), "expected a mapping");
            return;
        };
        let nested = take_nested(kind, &mut input);
        let unsupported: Vec<&str> = unsupported_children(kind)
            .iter()
            .copied()
            .filter(|key| input.shift_remove(*key).is_some())
            .collect();
        let index = self.entities.len();
        let explicit_id = input.get("id").and_then(Value::as_str).map(str::to_owned);
        let input = Fields::from(input);
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
            dangling: false,
        });
        for key in unsupported {
            self.entity_error(index, FieldPath::root().key(key), unsupported_child(key));
        }
        self.collect_references(index, parent);
        let index = self.fold_page_block(index);
        for (child_value, child_kind) in nested {
            self.read_list(doc, &path, child_value, child_kind, Some(index));
        }
    }

    /// Record the references an entity makes, including its nesting parent.
    pub(super) fn collect_references(&mut self, index: usize, parent: Option<usize>) {
        let kind = self.entities[index].kind;
        let parent_kind = parent.map(|parent| self.entities[parent].kind);
        for (field, target) in reference_fields(kind) {
            let written = self.entities[index].input.remove(field);
            let from_parent = parent_kind == Some(target);
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
                    target,
                    written,
                    resolved: None,
                });
            }
        }
        // A vector grows by four at first: a large file's entities have one
        // reference each.
        self.entities[index].references.shrink_to_fit();
    }
}

/// The lists an entity of `kind` may nest (decK's nesting): one per kind
/// that references it, under that kind's collection name (`routes` and
/// `plugins` under a service, `keyauth_credentials` under a consumer).
pub(super) fn nested_children(
    kind: EntityKind,
) -> impl Iterator<Item = (&'static str, EntityKind)> {
    references_to(kind).map(|(child, _)| (child.collection(), child))
}

/// How many entities a document holds, nested ones too (an upper bound:
/// a Markdown page's blocks may declare one entity twice).
fn count_entities(document: &Value) -> usize {
    let Value::Object(content) = document else {
        return 0;
    };
    let lists = content
        .iter()
        .filter_map(|(key, value)| Some((top_level_kind(key)?, value)));
    lists.map(|(kind, list)| count_in_list(kind, list)).sum()
}

/// How many entities of `kind` the list `value` holds, with their nested
/// children.
fn count_in_list(kind: EntityKind, value: &Value) -> usize {
    let Value::Array(items) = value else {
        return 0;
    };
    let nested = |item: &Value| -> usize {
        let Value::Object(fields) = item else {
            return 0;
        };
        nested_children(kind)
            .filter_map(|(name, child)| Some(count_in_list(child, fields.get(name)?)))
            .sum()
    };
    items.iter().map(|item| 1 + nested(item)).sum()
}

/// The nested children lists of an entity (`routes`, `plugins`, ...),
/// taken out of its fields in the order they are written, with the kind
/// each holds (the list is named after it).
pub(super) fn take_nested(
    kind: EntityKind,
    fields: &mut Map<String, Value>,
) -> Vec<(Value, EntityKind)> {
    let written: Vec<(&'static str, EntityKind)> = fields
        .keys()
        .filter_map(|key| nested_children(kind).find(|(name, _)| name == key))
        .collect();
    written
        .into_iter()
        .filter_map(|(key, child_kind)| Some((fields.shift_remove(key)?, child_kind)))
        .collect()
}

/// The reference fields of `kind` and the kind each points at (its
/// descriptor's references).
pub(super) fn reference_fields(
    kind: EntityKind,
) -> impl Iterator<Item = (&'static str, EntityKind)> {
    kind.descriptor()
        .references
        .iter()
        .map(|reference| (reference.field, reference.parent))
}

/// A reference may be written `name`, `{name: x}`, `{id: x}` or
/// `{username: x}`; `null` means none.
pub(super) fn reference_text(value: &Value) -> Result<Option<String>, String> {
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

/// The message for a top-level section decK knows and this gateway does
/// not implement; `None` for a key decK does not know either.
fn unsupported_section(key: &str) -> Option<String> {
    if UNSUPPORTED_ENTITIES.contains(&key) {
        return Some(format!(
            "'{key}' entities are not supported by this gateway"
        ));
    }
    UNSUPPORTED_SECTIONS
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(name, what)| format!("'{name}' ({what}) is not supported by this gateway"))
}

/// The message for a nested section decK knows and this gateway does not
/// implement.
fn unsupported_child(key: &str) -> String {
    match key {
        "groups" => {
            "'groups' (consumer-group membership) is not supported by this gateway".to_owned()
        }
        other => format!("'{other}' entities are not supported by this gateway"),
    }
}
