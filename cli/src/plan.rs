//! The diff engine: what must be created, updated and deleted to turn the
//! gateway's current configuration into the target built from the files.
//!
//! Both sides are canonical (`schemas`; a live entity is made so when it is
//! parsed), so entities are compared field by field with no false
//! differences, after ignoring `created_at` and
//! `updated_at` and treating `null`, `[]` and `{}` alike (decK: "an empty
//! list equals no list"). Entities are matched by id: the build already
//! gave file entities the ids of the live entities they match.
//!
//! Changes come in dependency order, as they are applied: creates and
//! updates parent first (consumers, services, credentials, routes,
//! plugins), then deletes child first. Within a kind they are sorted by
//! name, so the output is deterministic. An update lists only the fields
//! that changed, with nested paths spelled out (`config.key_names`); an
//! entity without a visible change is never an update.
//!
//! Matching uses hash maps keyed by id, so planning is linear in the size
//! of the configurations. Both sides come packed (`schemas::packed`): an
//! entity whose text equals its live counterpart's (timestamps aside) is
//! unchanged without being parsed; only the others are unpacked and
//! compared field by field.

use std::sync::OnceLock;

use schemas::config::id_of;
use schemas::file::hash::{self, FastMap, FastSet};
use schemas::file::parallel;
use schemas::packed::{Packed, PackedConfig};
use schemas::EntityKind;
use serde_json::{Map, Value};

use crate::names::Names;
use crate::secrets;
use crate::state;

/// Fields never compared: the store sets them.
const TIMESTAMPS: [&str; 2] = ["created_at", "updated_at"];
static NULL: Value = Value::Null;

/// What happens to one entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    /// decK's verb: `creating`, `updating`, `deleting`.
    pub fn verb(self) -> &'static str {
        match self {
            Self::Create => "creating",
            Self::Update => "updating",
            Self::Delete => "deleting",
        }
    }
}

/// One changed field: `config.key_names: ["apikey"] -> ["key"]`. Secrets
/// are already masked and references already written as names.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    pub path: String,
    pub old: Value,
    pub new: Value,
}

/// One entity to create, update or delete.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub action: Action,
    pub kind: EntityKind,
    pub id: String,
    /// decK's name of the entity, without the kind word.
    pub name: String,
    /// For an update, the changed fields; for a create or delete, the
    /// entity's fields that differ from their defaults.
    pub fields: Vec<FieldChange>,
}

impl Change {
    /// `updating plugin key-auth for service example-service`.
    pub fn title(&self) -> String {
        format!(
            "{} {} {}",
            self.action.verb(),
            self.kind.deck_kind(),
            self.name
        )
    }
}

/// How many entities each action touches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.created + self.updated + self.deleted
    }

    /// Count one more change of `action`.
    pub fn add(&mut self, action: Action) {
        match action {
            Action::Create => self.created += 1,
            Action::Update => self.updated += 1,
            Action::Delete => self.deleted += 1,
        }
    }
}

/// Every change, in the order they are applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// What was odd about the live entities read in full (fields gwctl
    /// does not know, entities it does not understand), one line each.
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for change in &self.changes {
            counts.add(change.action);
        }
        counts
    }

    /// Show the values substituted from `DECK_*` variables (`values`) as
    /// `[masked]` in every changed field, old and new, as decK masks them
    /// in its diffs. Only what is shown changes: applying uses the target
    /// configuration, not these fields.
    pub fn mask_env_values(&mut self, values: &[String]) {
        let values = secrets::EnvValues::new(values);
        if values.is_empty() {
            return;
        }
        for field in self.changes.iter_mut().flat_map(|c| c.fields.iter_mut()) {
            values.mask(&mut field.old);
            values.mask(&mut field.new);
        }
    }
}

/// What to plan and how to show it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Show secret values instead of `[masked]`.
    pub show_secrets: bool,
    /// Plan creates and updates only (decK's `apply`).
    pub no_deletes: bool,
    /// Also list the fields of created and deleted entities (the JSON
    /// report shows them); otherwise their `fields` are empty.
    pub entity_fields: bool,
}

/// The changes that turn `current` into `target`. The kinds are compared
/// at once, one per core: they are independent.
pub fn plan(target: &PackedConfig, current: &PackedConfig, options: &PlanOptions) -> Plan {
    let differ = Differ {
        configs: [target, current],
        names: OnceLock::new(),
        show_secrets: options.show_secrets,
        entity_fields: options.entity_fields,
    };
    let mut kinds = EntityKind::ALL;
    let mut per_kind = parallel::map_each_mut(&mut kinds, |kind| {
        let mut warnings = Vec::new();
        let (creates_and_updates, matched) =
            differ.creates_and_updates(*kind, target, current, &mut warnings);
        // Every live entity matched (live ids are unique): none to delete.
        let all_matched = matched == current.entities(*kind).len();
        let deletes = if options.no_deletes || all_matched {
            Vec::new()
        } else {
            differ.deletes(*kind, target, current, &mut warnings)
        };
        (creates_and_updates, deletes, warnings)
    });
    let mut plan = Plan::default();
    for (creates_and_updates, _, warnings) in &mut per_kind {
        plan.changes.append(creates_and_updates);
        plan.warnings.append(warnings);
    }
    // Deletes child first: the kinds in reverse.
    for (_, deletes, _) in per_kind.iter_mut().rev() {
        plan.changes.append(deletes);
    }
    plan
}

/// A live entity, as the server sent it, in canonical form (see
/// [`state::canonical_entity`]; what it found odd goes to `warnings`).
fn live_canonical(kind: EntityKind, live: &Packed, warnings: &mut Vec<String>) -> Value {
    state::canonical_entity(kind, live.unpack(), warnings)
}

/// Values the gateway generates (fields marked `auto`, such as a session
/// plugin's `secret` or a credential's `key`) are kept from the live
/// entity when the target leaves them unset, so they never show as changes
/// and a sync does not reset them. The build marks the entities that leave
/// one unset; only those are unpacked.
pub fn keep_generated_values(target: &mut PackedConfig, current: &PackedConfig) {
    for kind in EntityKind::ALL {
        // Most entities leave no generated field unset (a credential has
        // its key, the build already kept a session's secret): the live
        // index is only built for a kind once an entity needs it.
        let mut live: Option<FastMap<&str, &Packed>> = None;
        for entity in target.entities_mut(kind) {
            if !entity.unset_generated() {
                continue;
            }
            let live = live.get_or_insert_with(|| packed_by_id(current.entities(kind)));
            let Some(old) = entity.id().and_then(|id| live.get(id)).copied() else {
                continue;
            };
            let mut value = entity.unpack();
            let Some(record) = kind.record_for(&value) else {
                continue;
            };
            record.adopt_generated(&mut value, &old.unpack());
            *entity = Packed::of_entity(kind, &value);
        }
    }
}

/// Entities by id.
pub fn index_by_id(entities: &[Value]) -> FastMap<&str, &Value> {
    let mut index = hash::map_with_capacity(entities.len());
    index.extend(
        entities
            .iter()
            .filter_map(|entity| Some((id_of(entity)?, entity))),
    );
    index
}

/// Packed entities by id.
pub fn packed_by_id(entities: &[Packed]) -> FastMap<&str, &Packed> {
    let mut index = hash::map_with_capacity(entities.len());
    index.extend(
        entities
            .iter()
            .filter_map(|entity| Some((entity.id()?, entity))),
    );
    index
}

/// Compares entities and renders their changes.
struct Differ<'a> {
    configs: [&'a PackedConfig; 2],
    /// Built on the first change: a no-op plan never needs it.
    names: OnceLock<Names>,
    show_secrets: bool,
    entity_fields: bool,
}

impl Differ<'_> {
    fn names(&self) -> &Names {
        self.names.get_or_init(|| Names::new(&self.configs))
    }

    /// The creates and updates of `kind`, and how many target entities
    /// matched a live one.
    fn creates_and_updates(
        &self,
        kind: EntityKind,
        target: &PackedConfig,
        current: &PackedConfig,
        warnings: &mut Vec<String>,
    ) -> (Vec<Change>, usize) {
        let live = packed_by_id(current.entities(kind));
        let mut creates = Vec::new();
        let mut updates = Vec::new();
        let mut matched = 0;
        for packed in target.entities(kind) {
            let Some(id) = packed.id() else {
                continue;
            };
            let found = live.get(id);
            matched += usize::from(found.is_some());
            match found {
                None => {
                    let entity = packed.unpack();
                    creates.push(self.change(Action::Create, kind, &entity, |d| {
                        d.entity_fields(kind, &entity, Action::Create)
                    }));
                }
                Some(old) if old.same_fields(packed) => {}
                Some(old) => {
                    let (old, entity) = (live_canonical(kind, old, warnings), packed.unpack());
                    let fields = self.field_changes(kind, &old, &entity);
                    if !fields.is_empty() {
                        updates.push(self.change(Action::Update, kind, &entity, |_| fields));
                    }
                }
            }
        }
        sort_by_name(&mut creates);
        sort_by_name(&mut updates);
        creates.extend(updates);
        (creates, matched)
    }

    fn deletes(
        &self,
        kind: EntityKind,
        target: &PackedConfig,
        current: &PackedConfig,
        warnings: &mut Vec<String>,
    ) -> Vec<Change> {
        let wanted: FastSet<&str> = target
            .entities(kind)
            .iter()
            .filter_map(Packed::id)
            .collect();
        let mut deletes: Vec<Change> = current
            .entities(kind)
            .iter()
            .filter(|entity| entity.id().is_some_and(|id| !wanted.contains(id)))
            .map(|packed| {
                let entity = live_canonical(kind, packed, warnings);
                self.change(Action::Delete, kind, &entity, |d| {
                    d.entity_fields(kind, &entity, Action::Delete)
                })
            })
            .collect();
        sort_by_name(&mut deletes);
        deletes
    }

    fn change(
        &self,
        action: Action,
        kind: EntityKind,
        entity: &Value,
        fields: impl FnOnce(&Self) -> Vec<FieldChange>,
    ) -> Change {
        Change {
            action,
            kind,
            id: id_of(entity).unwrap_or_default().to_owned(),
            name: self.names().display(kind, entity),
            fields: fields(self),
        }
    }

    /// The changed fields of an entity, secrets masked.
    fn field_changes(&self, kind: EntityKind, old: &Value, new: &Value) -> Vec<FieldChange> {
        if identical(old, new) {
            return Vec::new();
        }
        let mut raw = Vec::new();
        diff_entity(old, new, &mut raw);
        if raw.is_empty() {
            return Vec::new();
        }
        self.render(kind, old, new, raw)
    }

    /// A created or deleted entity's fields that differ from the defaults.
    fn entity_fields(&self, kind: EntityKind, entity: &Value, action: Action) -> Vec<FieldChange> {
        if !self.entity_fields {
            return Vec::new();
        }
        let shown = match kind.record_for(entity) {
            Some(record) => record.strip_defaults(entity),
            None => entity.clone(),
        };
        let mut shown = shown;
        if let Some(object) = shown.as_object_mut() {
            object.shift_remove("id");
        }
        let empty = Value::Object(Map::new());
        let mut raw = Vec::new();
        match action {
            Action::Delete => diff_entity(&shown, &empty, &mut raw),
            _ => diff_entity(&empty, &shown, &mut raw),
        }
        self.render(kind, entity, entity, raw)
    }

    /// Names for references, masks for secrets.
    fn render(
        &self,
        kind: EntityKind,
        old: &Value,
        new: &Value,
        raw: Vec<(String, Value, Value)>,
    ) -> Vec<FieldChange> {
        let secret_paths = if self.show_secrets {
            Vec::new()
        } else {
            let mut paths = secrets::secret_paths(kind, new);
            paths.extend(secrets::secret_paths(kind, old));
            paths
        };
        raw.into_iter()
            .map(|(path, old, new)| {
                let (old, new) = match reference_kind(kind, &path) {
                    Some(target) => self.references(target, &old, &new),
                    None if secrets::is_secret_path(&path, &secret_paths) => {
                        (secrets::mask(&old), secrets::mask(&new))
                    }
                    None => (old, new),
                };
                FieldChange { path, old, new }
            })
            .collect()
    }

    /// A changed reference, both sides shown by name; when the names are
    /// the same (an entity replaced by another of the same name), with
    /// their ids too, so the change stays visible.
    fn references(&self, kind: EntityKind, old: &Value, new: &Value) -> (Value, Value) {
        let (old_name, new_name) = (self.reference(kind, old), self.reference(kind, new));
        if old_name != new_name {
            return (old_name, new_name);
        }
        let with_id = |name: Value, reference: &Value| match (
            name.as_str(),
            reference.get("id").and_then(Value::as_str),
        ) {
            (Some(name), Some(id)) if name != id => Value::String(format!("{name} (id {id})")),
            _ => name,
        };
        (with_id(old_name, old), with_id(new_name, new))
    }

    /// A reference `{"id": X}` shown as the name of X.
    fn reference(&self, kind: EntityKind, value: &Value) -> Value {
        match value.get("id").and_then(Value::as_str) {
            Some(id) => Value::String(self.names().name_or_id(kind, id)),
            None => value.clone(),
        }
    }
}

fn sort_by_name(changes: &mut [Change]) {
    changes.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
}

/// The entity a top-level reference field points at.
fn reference_kind(kind: EntityKind, path: &str) -> Option<EntityKind> {
    kind.descriptor()
        .reference(path)
        .map(|reference| reference.parent)
}

/// Field-level differences of two entities, timestamps ignored and
/// references compared whole.
fn diff_entity(old: &Value, new: &Value, out: &mut Vec<(String, Value, Value)>) {
    let empty = Map::new();
    let old_fields = old.as_object().unwrap_or(&empty);
    let new_fields = new.as_object().unwrap_or(&empty);
    let old_only = old_fields
        .keys()
        .filter(|key| !new_fields.contains_key(*key));
    for key in new_fields.keys().chain(old_only) {
        if TIMESTAMPS.contains(&key.as_str()) {
            continue;
        }
        let old_value = old_fields.get(key).unwrap_or(&NULL);
        let new_value = new_fields.get(key).unwrap_or(&NULL);
        if is_reference(old_value) || is_reference(new_value) {
            if !equivalent(old_value, new_value) {
                out.push((key.clone(), old_value.clone(), new_value.clone()));
            }
        } else {
            diff_values(key, old_value, new_value, out);
        }
    }
}

/// Whether two entities hold the same fields with the same values in the
/// same order, timestamps aside. Two canonical forms of an unchanged
/// entity do (both follow the schema's order), and walking them side by
/// side decides it without looking a key up; anything else goes through
/// [`diff_entity`], which the answer `true` agrees with: equal values
/// never differ.
fn identical(old: &Value, new: &Value) -> bool {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return false;
    };
    let compared = |(key, _): &(&String, &Value)| !TIMESTAMPS.contains(&key.as_str());
    let mut old = old.iter().filter(compared);
    let mut new = new.iter().filter(compared);
    loop {
        match (old.next(), new.next()) {
            (None, None) => return true,
            (Some((old_key, old_value)), Some((new_key, new_value)))
                if old_key == new_key && same_in_order(old_value, new_value) => {}
            _ => return false,
        }
    }
}

/// Equal, with object members in the same order.
fn same_in_order(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((xk, xv), (yk, yv))| xk == yk && same_in_order(xv, yv))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_in_order(a, b))
        }
        _ => a == b,
    }
}

/// `{"id": "..."}`, the canonical form of a reference.
fn is_reference(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|object| object.len() == 1 && object.contains_key("id"))
}

/// Differences at or below `path`: objects are walked (a missing or null
/// side counting as empty), anything else is compared whole.
fn diff_values(path: &str, old: &Value, new: &Value, out: &mut Vec<(String, Value, Value)>) {
    if equivalent(old, new) {
        return;
    }
    let walkable = |value: &Value| value.is_object() || value.is_null();
    if !(walkable(old) && walkable(new)) {
        out.push((path.to_owned(), old.clone(), new.clone()));
        return;
    }
    let empty = Map::new();
    let old_fields = old.as_object().unwrap_or(&empty);
    let new_fields = new.as_object().unwrap_or(&empty);
    let old_only = old_fields
        .keys()
        .filter(|key| !new_fields.contains_key(*key));
    for key in new_fields.keys().chain(old_only) {
        diff_values(
            &format!("{path}.{key}"),
            old_fields.get(key).unwrap_or(&NULL),
            new_fields.get(key).unwrap_or(&NULL),
            out,
        );
    }
}

/// Equal, with `null`, `[]` and `{}` (and missing members) alike.
pub fn equivalent(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.iter()
                .all(|(key, value)| equivalent(value, y.get(key).unwrap_or(&NULL)))
                && y.iter()
                    .filter(|(key, _)| !x.contains_key(*key))
                    .all(|(_, value)| is_empty(value))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equivalent(a, b))
        }
        _ => a == b || (is_empty(a) && is_empty(b)),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(members) => members.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
