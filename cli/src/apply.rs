//! Applying a plan to the gateway.
//!
//! **Atomic path.** Our gateway's `POST /config` replaces the whole stored
//! configuration in one transaction. The body is the target configuration
//! plus the live entities a sync must keep: those outside the select tags
//! and, with `--no-deletes`, every live entity the files do not mention.
//! Unchanged entities are sent as they are live (timestamps included), so
//! nothing moves that did not change; the body is written from the packed
//! texts, parsing only the updated entities. If the gateway rejects the body,
//! nothing changed, and the error names the entity and, when it came from
//! a file, its position there.
//!
//! **Per-entity path** (a real Kong: `POST /config` answers 404 or 405).
//! Changes become Admin API calls in levels; each level waits for the one
//! before and runs up to `--parallelism` calls at once:
//!
//! 1. entities whose unique key (name, username, custom_id, key, plugin
//!    scope) a target entity with another id takes over, with everything
//!    that depends on them, child first: a rename or a swap of names never
//!    trips a unique index (decK creates first and fails with 409 there);
//! 2. creates and updates, parent first (`PUT /{collection}/{id}`, for
//!    credentials `PUT /consumers/{consumer}/key-auth/{id}`); entities freed
//!    in step 1 that the target keeps are put back here;
//! 3. the other deletes, child first.
//!
//! The first failure stops the run after the calls in flight; what was not
//! applied is counted and reported. This path works on the configurations
//! unpacked: Kong's per-entity calls cost far more than parsing them.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use schemas::config::{id_of, reference_of, Config};
use schemas::file::build::{Origin, Origins};
use schemas::packed::{Packed, PackedConfig};
use schemas::EntityKind;
use serde_json::Value;

use crate::client::{AdminClient, ClientError};
use crate::names::Names;
use crate::output::{change_text, Style};
use crate::plan::{index_by_id, packed_by_id, Action, Change, Counts, Plan};
use crate::state::strip_nulls;

/// A progress bar appears on a terminal above this many calls.
pub const PROGRESS_BAR_THRESHOLD: usize = 50;

/// Why applying failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// `POST /config` refused the configuration; the gateway is unchanged.
    #[error("the gateway rejected the configuration, nothing was changed: {0}")]
    Rejected(String),
    #[error("{0}")]
    Client(#[from] ClientError),
}

/// How `POST /config` went.
#[derive(Debug)]
pub enum AtomicOutcome {
    Applied,
    /// The gateway has no batch endpoint: apply entity by entity instead.
    Unsupported,
}

/// What a per-entity run did.
#[derive(Debug, Default)]
pub struct RunReport {
    /// The changes applied, by action.
    pub counts: Counts,
    /// Indexes (in the plan) of the changes applied, in the order applied.
    pub applied: Vec<usize>,
    /// One line per failed call, naming the entity and its file position.
    pub errors: Vec<String>,
    /// Changes not attempted because an earlier call failed.
    pub dropped: usize,
}

/// Everything needed to apply one plan.
pub struct Applier<'a> {
    pub client: &'a AdminClient,
    pub plan: &'a Plan,
    /// The configuration the files ask for (within the select tags).
    pub target: &'a PackedConfig,
    /// The live configuration (within the select tags).
    pub current: &'a PackedConfig,
    /// Where each target entity came from, by id.
    pub origins: &'a Origins,
    /// Gateway entities outside the select tags the files refer to.
    known: Option<&'a PackedConfig>,
    /// Made when a message first names an entity.
    names: OnceLock<Names>,
    /// Made when the run goes entity by entity, or an error describes one.
    unpacked: OnceLock<Unpacked>,
}

/// Both configurations as values.
struct Unpacked {
    target: Config,
    current: Config,
}

impl<'a> Applier<'a> {
    pub fn new(
        client: &'a AdminClient,
        plan: &'a Plan,
        target: &'a PackedConfig,
        current: &'a PackedConfig,
        origins: &'a Origins,
    ) -> Self {
        Self {
            client,
            plan,
            target,
            current,
            origins,
            known: None,
            names: OnceLock::new(),
            unpacked: OnceLock::new(),
        }
    }

    fn names(&self) -> &Names {
        self.names.get_or_init(|| {
            let mut configs = vec![self.target, self.current];
            configs.extend(self.known);
            Names::new(&configs)
        })
    }

    fn unpacked(&self) -> &Unpacked {
        self.unpacked.get_or_init(|| Unpacked {
            target: self.target.unpack(),
            current: self.current.unpack(),
        })
    }

    // ----- atomic path ------------------------------------------------------

    /// Replace the whole configuration with the target plus `keep` (live
    /// entities to leave as they are).
    pub fn apply_atomic(&self, keep: &PackedConfig) -> Result<AtomicOutcome, ApplyError> {
        let body = config_body(self.target, self.current, keep, self.plan);
        match self.client.post_config(body) {
            Ok(_) => Ok(AtomicOutcome::Applied),
            Err(error) if error.is_unsupported_endpoint() => Ok(AtomicOutcome::Unsupported),
            Err(error) => match error.status() {
                Some(400 | 409 | 422) => Err(ApplyError::Rejected(self.rejection(&error, keep))),
                _ => Err(ApplyError::Client(error)),
            },
        }
    }

    /// Also name the entities of `known` (gateway entities the files
    /// refer to from outside the select tags) in messages.
    pub fn naming(mut self, known: &'a PackedConfig) -> Self {
        self.known = Some(known);
        self
    }

    /// The gateway's error, naming the entity it is about (and, for a
    /// foreign key, the entity it refers to rather than its id).
    fn rejection(&self, error: &ClientError, keep: &PackedConfig) -> String {
        let body = error.body().unwrap_or(&Value::Null);
        let message = self.foreign_key_text(body, keep).unwrap_or_else(|| {
            body.get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned)
        });
        let about = body.get("entity");
        let kind = about
            .and_then(|entity| entity.get("kind"))
            .and_then(Value::as_str)
            .and_then(EntityKind::from_collection);
        let id = about
            .and_then(|entity| entity.get("id"))
            .and_then(Value::as_str);
        match (kind, id) {
            (Some(kind), Some(id)) => format!("{}: {message}", self.blame(kind, id, keep)),
            _ => message,
        }
    }

    /// Kong's foreign-key error (code 4, `fields: {service: {id}}`) in
    /// words: which entity is referred to, and why it is not there.
    fn foreign_key_text(&self, body: &Value, keep: &PackedConfig) -> Option<String> {
        if body.get("code")?.as_u64()? != 4 {
            return None;
        }
        let (field, reference) = body.get("fields")?.as_object()?.iter().next()?;
        let id = reference.get("id")?.as_str()?;
        let (_, reference) = schemas::entities::descriptor::all_references()
            .find(|(_, reference)| reference.field == field)?;
        let kind = reference.parent;
        let referred = format!("{} {}", kind.deck_kind(), self.names().name_or_id(kind, id));
        let kept = self.target.find(kind, id).is_some() || keep.find(kind, id).is_some();
        let why = if !kept && self.current.find(kind, id).is_some() {
            "which this sync deletes"
        } else {
            "which the gateway does not have"
        };
        Some(format!("its {field} is {referred}, {why}"))
    }

    /// The entity an error is about; when that is a live entity kept as it
    /// is, also the file entity that clashes with it on a unique key.
    fn blame(&self, kind: EntityKind, id: &str, keep: &PackedConfig) -> String {
        let described = self.describe(kind, id, keep);
        if self.origins.find(self.target, kind, id).is_some() {
            return described;
        }
        let live = keep.find(kind, id).or_else(|| self.current.find(kind, id));
        let Some(live) = live else {
            return described;
        };
        let keys = unique_keys(kind, &live.unpack());
        let clash = self.target.entities(kind).iter().find(|entity| {
            entity.id() != Some(id)
                && unique_keys(kind, &entity.unpack())
                    .iter()
                    .any(|k| keys.contains(k))
        });
        match clash.and_then(Packed::id) {
            Some(clash_id) => format!(
                "{} clashes with {described}",
                self.describe(kind, clash_id, keep)
            ),
            None => described,
        }
    }

    /// `route r1 (kong.yaml:12:7, services[0].routes[1])` for an entity of
    /// the files, `route r1 (id ...)` for a live one; the live entities a
    /// sync keeps as they are (`keep`) are said to be.
    fn describe(&self, kind: EntityKind, id: &str, keep: &PackedConfig) -> String {
        let find = |config: &'a PackedConfig| config.find(kind, id);
        let (entity, kept) = match find(self.target).or_else(|| find(self.current)) {
            Some(entity) => (Some(entity), false),
            None => (keep.find(kind, id), true),
        };
        let Some(entity) = entity else {
            return format!("{} {id}", kind.deck_kind());
        };
        let title = self.names().kind_and_name(kind, &entity.unpack());
        match (self.origins.find(self.target, kind, id), kept) {
            (Some(origin), _) => format!("{title} ({})", origin_text(origin)),
            (None, true) => format!("{title} (id {id}, kept as it is on the gateway)"),
            (None, false) => format!("{title} (id {id})"),
        }
    }

    // ----- per-entity path --------------------------------------------------

    /// Apply the plan call by call; see the module doc for the order.
    /// With `no_deletes`, nothing is deleted, not even to free a unique key.
    pub fn apply_per_entity(
        &self,
        parallelism: usize,
        no_deletes: bool,
        progress: &Progress,
    ) -> RunReport {
        let levels = self.levels(no_deletes);
        let total_ops: usize = levels.iter().map(Vec::len).sum();
        progress.start(total_ops);
        let failed = AtomicBool::new(false);
        let mut report = RunReport::default();
        let mut failed_changes = 0;
        for level in &levels {
            let outcome = self.run_level(level, parallelism, progress, &failed);
            for index in outcome.done {
                if let Some(change) = level[index].change {
                    report.counts.add(self.plan.changes[change].action);
                    report.applied.push(change);
                }
            }
            for (index, error) in &outcome.errors {
                failed_changes += usize::from(level[*index].change.is_some());
                report.errors.push(self.op_error(&level[*index], error));
            }
            if failed.load(Ordering::SeqCst) {
                break;
            }
        }
        progress.finish();
        report.dropped = self
            .plan
            .changes
            .len()
            .saturating_sub(report.applied.len() + failed_changes);
        report
    }

    fn levels(&self, no_deletes: bool) -> Vec<Vec<Operation<'_>>> {
        let unpacked = self.unpacked();
        let replaced = if no_deletes {
            HashSet::new()
        } else {
            replaced_entities(&unpacked.target, &unpacked.current)
        };
        let plan_index: HashMap<(EntityKind, &str), usize> = self
            .plan
            .changes
            .iter()
            .enumerate()
            .map(|(index, change)| ((change.kind, change.id.as_str()), index))
            .collect();
        let mut levels = Vec::new();
        for kind in EntityKind::ALL.into_iter().rev() {
            levels.push(self.freeing_deletes(kind, &replaced, &plan_index));
        }
        for kind in EntityKind::ALL {
            levels.push(self.puts(kind, &replaced));
        }
        for kind in EntityKind::ALL.into_iter().rev() {
            levels.push(self.plain_deletes(kind, &replaced));
        }
        levels.retain(|level| !level.is_empty());
        levels
    }

    /// Step 1: live entities in the way of a target entity's unique key.
    fn freeing_deletes(
        &self,
        kind: EntityKind,
        replaced: &HashSet<(EntityKind, String)>,
        plan_index: &HashMap<(EntityKind, &str), usize>,
    ) -> Vec<Operation<'_>> {
        self.unpacked()
            .current
            .entities(kind)
            .iter()
            .filter_map(|entity| {
                let id = id_of(entity)?;
                if !replaced.contains(&(kind, id.to_owned())) {
                    return None;
                }
                let change = plan_index
                    .get(&(kind, id))
                    .copied()
                    .filter(|index| self.plan.changes[*index].action == Action::Delete);
                Some(Operation::delete(kind, id, entity, change))
            })
            .collect()
    }

    /// Step 2: creates and updates of `kind`, and replaced entities put back.
    fn puts(
        &self,
        kind: EntityKind,
        replaced: &HashSet<(EntityKind, String)>,
    ) -> Vec<Operation<'_>> {
        let targets = index_by_id(self.unpacked().target.entities(kind));
        let mut ops: Vec<Operation<'_>> = Vec::new();
        let mut planned = HashSet::new();
        for (index, change) in self.plan.changes.iter().enumerate() {
            if change.kind != kind || change.action == Action::Delete {
                continue;
            }
            if let Some(entity) = targets.get(change.id.as_str()) {
                planned.insert(change.id.as_str());
                ops.push(Operation::put(kind, &change.id, entity, Some(index)));
            }
        }
        for (id, entity) in &targets {
            if replaced.contains(&(kind, (*id).to_owned())) && !planned.contains(id) {
                ops.push(Operation::put(kind, id, entity, None));
            }
        }
        ops
    }

    /// Step 3: the remaining deletes of `kind`.
    fn plain_deletes(
        &self,
        kind: EntityKind,
        replaced: &HashSet<(EntityKind, String)>,
    ) -> Vec<Operation<'_>> {
        let live = index_by_id(self.unpacked().current.entities(kind));
        self.plan
            .changes
            .iter()
            .enumerate()
            .filter(|(_, change)| change.kind == kind && change.action == Action::Delete)
            .filter(|(_, change)| !replaced.contains(&(kind, change.id.clone())))
            .filter_map(|(index, change)| {
                let entity = live.get(change.id.as_str())?;
                Some(Operation::delete(kind, &change.id, entity, Some(index)))
            })
            .collect()
    }

    /// Run one level with up to `parallelism` calls at once; stop taking
    /// new calls once any call failed.
    fn run_level(
        &self,
        ops: &[Operation<'_>],
        parallelism: usize,
        progress: &Progress,
        failed: &AtomicBool,
    ) -> LevelOutcome {
        let next = AtomicUsize::new(0);
        let outcome = Mutex::new(LevelOutcome::default());
        let workers = parallelism.clamp(1, ops.len().max(1));
        thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    if failed.load(Ordering::SeqCst) {
                        return;
                    }
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(op) = ops.get(index) else {
                        return;
                    };
                    let result = op.execute(self.client);
                    let mut outcome = outcome.lock().unwrap_or_else(|poison| poison.into_inner());
                    match result {
                        Ok(()) => {
                            outcome.done.push(index);
                            progress.done(op.change.map(|change| &self.plan.changes[change]));
                        }
                        Err(error) => {
                            failed.store(true, Ordering::SeqCst);
                            outcome.errors.push((index, error));
                        }
                    }
                });
            }
        });
        outcome
            .into_inner()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn op_error(&self, op: &Operation<'_>, error: &ClientError) -> String {
        let verb = match op.change {
            Some(change) => self.plan.changes[change].action.verb(),
            None if op.put => "restoring",
            None => "removing (to free its unique key)",
        };
        let place = self.describe(op.kind, op.id, &PackedConfig::default());
        format!("{verb} {place}: {error}")
    }
}

/// `kong.yaml:12:7, services[0].routes[1] (r1)`
fn origin_text(origin: &Origin) -> String {
    match origin.pos {
        Some(pos) => format!(
            "{}:{}:{}, {}",
            origin.file,
            pos.line,
            pos.column,
            origin.entity_display()
        ),
        None => format!("{}, {}", origin.file, origin.entity_display()),
    }
}

#[derive(Debug, Default)]
struct LevelOutcome {
    done: Vec<usize>,
    errors: Vec<(usize, ClientError)>,
}

/// One Admin API call.
#[derive(Debug)]
struct Operation<'a> {
    kind: EntityKind,
    id: &'a str,
    /// The target entity for a put, the live one for a delete.
    entity: &'a Value,
    put: bool,
    /// The plan change this call carries out, if any (a put-back of a
    /// replaced but unchanged entity has none).
    change: Option<usize>,
}

impl<'a> Operation<'a> {
    fn put(kind: EntityKind, id: &'a str, entity: &'a Value, change: Option<usize>) -> Self {
        Self {
            kind,
            id,
            entity,
            put: true,
            change,
        }
    }

    fn delete(kind: EntityKind, id: &'a str, entity: &'a Value, change: Option<usize>) -> Self {
        Self {
            kind,
            id,
            entity,
            put: false,
            change,
        }
    }

    fn path(&self) -> String {
        let consumer = reference_of(self.entity, "consumer");
        match (self.kind, consumer) {
            (EntityKind::KeyAuthCredential, Some(consumer)) => {
                format!("consumers/{consumer}/key-auth/{}", self.id)
            }
            (kind, _) => format!("{}/{}", kind.admin_path(), self.id),
        }
    }

    fn execute(&self, client: &AdminClient) -> Result<(), ClientError> {
        if self.put {
            client.put(&self.path(), &put_body(self.kind, self.entity))?;
            Ok(())
        } else {
            client.delete(&self.path())
        }
    }
}

/// The body of a PUT: the canonical entity without timestamps and unset
/// fields (a PUT replaces the whole entity, so absent means default).
fn put_body(kind: EntityKind, entity: &Value) -> Value {
    let mut body = strip_nulls(entity.clone());
    if let Some(object) = body.as_object_mut() {
        object.shift_remove("created_at");
        object.shift_remove("updated_at");
        if kind == EntityKind::KeyAuthCredential {
            object.shift_remove("consumer");
        }
    }
    body
}

/// The `POST /config` body: the `keep` entities the target does not have,
/// then the target. Entities the plan leaves alone are sent as they are live
/// (timestamps included); updated ones keep their live `created_at`. Texts
/// are copied into the body as they are: only updated entities are parsed.
pub fn config_body(
    target: &PackedConfig,
    current: &PackedConfig,
    keep: &PackedConfig,
    plan: &Plan,
) -> String {
    let updated: HashSet<(EntityKind, &str)> = plan
        .changes
        .iter()
        .filter(|change| change.action == Action::Update)
        .map(|change| (change.kind, change.id.as_str()))
        .collect();
    PackedConfig::write_flat(|kind| {
        let live = packed_by_id(current.entities(kind));
        let ids: HashSet<&str> = target
            .entities(kind)
            .iter()
            .filter_map(Packed::id)
            .collect();
        // Kept entities go first: a clash on a unique key is then reported
        // on the file's entity, which has a file position.
        let kept = keep
            .entities(kind)
            .iter()
            .filter(|entity| entity.id().is_some_and(|id| !ids.contains(id)))
            .map(Packed::text);
        let mut list: Vec<Cow<'_, str>> = kept.map(Cow::Borrowed).collect();
        for entity in target.entities(kind) {
            let id = entity.id().unwrap_or_default();
            let sent = match live.get(id) {
                None => Cow::Borrowed(entity.text()),
                Some(live) if updated.contains(&(kind, id)) => {
                    Cow::Owned(with_created_at(&entity.unpack(), &live.unpack()).to_string())
                }
                Some(live) => Cow::Borrowed(live.text()),
            };
            list.push(sent);
        }
        list
    })
}

/// `entity` with the live entity's `created_at`.
fn with_created_at(entity: &Value, live: &Value) -> Value {
    let mut entity = entity.clone();
    let created = live.get("created_at").filter(|value| !value.is_null());
    if let (Some(created), Some(object)) = (created, entity.as_object_mut()) {
        object.insert("created_at".to_owned(), created.clone());
    }
    entity
}

/// Live entities that must go before the target can be put in place: those
/// whose unique key a target entity with another id takes over, and
/// everything that depends on them.
fn replaced_entities(target: &Config, current: &Config) -> HashSet<(EntityKind, String)> {
    let mut replaced = HashSet::new();
    for kind in EntityKind::ALL {
        let claimed: HashMap<String, &str> = target
            .entities(kind)
            .iter()
            .filter_map(|entity| Some((entity, id_of(entity)?)))
            .flat_map(|(entity, id)| {
                unique_keys(kind, entity)
                    .into_iter()
                    .map(move |key| (key, id))
            })
            .collect();
        for entity in current.entities(kind) {
            let Some(id) = id_of(entity) else {
                continue;
            };
            let taken = unique_keys(kind, entity)
                .iter()
                .any(|key| claimed.get(key).is_some_and(|owner| *owner != id));
            if taken {
                replaced.insert((kind, id.to_owned()));
            }
        }
    }
    add_dependents(current, &mut replaced);
    replaced
}

/// Add every live entity that refers (transitively) to one in `set`.
fn add_dependents(current: &Config, set: &mut HashSet<(EntityKind, String)>) {
    let mut children: HashMap<(EntityKind, &str), Vec<(EntityKind, &str)>> = HashMap::new();
    for kind in EntityKind::ALL {
        for entity in current.entities(kind) {
            let Some(id) = id_of(entity) else {
                continue;
            };
            for reference in kind.descriptor().references {
                if let Some(parent) = reference_of(entity, reference.field) {
                    children
                        .entry((reference.parent, parent))
                        .or_default()
                        .push((kind, id));
                }
            }
        }
    }
    let mut pending: Vec<(EntityKind, String)> = set.iter().cloned().collect();
    while let Some((kind, id)) = pending.pop() {
        for (child_kind, child_id) in children.get(&(kind, id.as_str())).into_iter().flatten() {
            if set.insert((*child_kind, (*child_id).to_owned())) {
                pending.push((*child_kind, (*child_id).to_owned()));
            }
        }
    }
}

/// The unique keys of an entity, as the store indexes them: its kind's
/// unique fields, and for a plugin its name and scope (one plugin of a
/// name per scope).
fn unique_keys(kind: EntityKind, entity: &Value) -> Vec<String> {
    let text = |field: &str| entity.get(field).and_then(Value::as_str);
    let keyed = |field: &str| text(field).map(|value| format!("{field}:{value}"));
    let mut keys: Vec<String> = kind
        .descriptor()
        .unique
        .iter()
        .filter_map(|field| keyed(field))
        .collect();
    if kind == EntityKind::Plugin {
        let scope = |field: &str| reference_of(entity, field).unwrap_or("-").to_owned();
        keys.push(format!(
            "scope:{}:{}:{}:{}",
            text("name").unwrap_or_default(),
            scope("service"),
            scope("route"),
            scope("consumer")
        ));
    }
    keys
}

/// Lines and the progress bar of a per-entity run, shared by the workers.
pub struct Progress {
    style: Style,
    print_lines: bool,
    show_bar: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress {
    /// `print_lines`: print each change as it is applied; `show_bar`: a bar
    /// when there are more than [`PROGRESS_BAR_THRESHOLD`] calls.
    pub fn new(style: Style, print_lines: bool, show_bar: bool) -> Self {
        Self {
            style,
            print_lines,
            show_bar,
            bar: Mutex::new(None),
        }
    }

    fn start(&self, total: usize) {
        if !self.show_bar || total <= PROGRESS_BAR_THRESHOLD {
            return;
        }
        let bar = ProgressBar::new(total as u64);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} calls, {eta} left") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        *self.lock() = Some(bar);
    }

    fn done(&self, change: Option<&Change>) {
        let guard = self.lock();
        let line = change
            .filter(|_| self.print_lines)
            .map(|change| change_text(change, &self.style));
        match (guard.as_ref(), line) {
            (Some(bar), Some(line)) => {
                bar.suspend(|| println!("{line}"));
                bar.inc(1);
            }
            (Some(bar), None) => bar.inc(1),
            (None, Some(line)) => println!("{line}"),
            (None, None) => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.lock().take() {
            bar.finish_and_clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.bar.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

#[cfg(test)]
mod tests;
