//! Step 3 of the build: references resolved by name or id (see
//! [`Targets`] for where they may point), plugins given their ids, and
//! key-auth's `anonymous` consumers checked. References that point nowhere
//! get decK's error and a note on what to do.

use super::index::{FileNames, LiveIndex};
use super::{new_id, Builder, Diagnostic, RefValue, Reference, Severity};
use crate::entities::EntityKind;
use crate::error::FieldPath;
use crate::file::hash::FastSet;
use crate::file::markdown::Prerequisites;
use crate::file::pos::Pos;
use crate::packed::PackedConfig;

impl Builder {
    // ----- step 3: references ------------------------------------------------

    /// Resolve every reference (see [`Targets`]), then give plugins their
    /// ids: a plugin matches a live one by its name and the ids of its
    /// scope. A reference that points nowhere is an error, with a note on
    /// what to do when the gateway or the page's front matter has it.
    pub(super) fn resolve_references(
        &mut self,
        live: &LiveIndex<'_>,
        outside: &LiveIndex<'_>,
        current: &PackedConfig,
    ) {
        let targets = Targets {
            live,
            outside,
            partial_apply: self.partial_apply,
        };
        let dangling = self.resolve_each(&targets);
        let errors: Vec<Diagnostic> = dangling
            .iter()
            .filter_map(|(index, reference)| self.dangling(*index, reference))
            .collect();
        let notes = self.dangling_notes(&dangling, current);
        for (index, _) in &dangling {
            self.entities[*index].dangling = true;
        }
        self.diagnostics.extend(errors);
        self.diagnostics.extend(notes);
        for index in 0..self.entities.len() {
            if self.entities[index].kind == EntityKind::Plugin && self.entities[index].id.is_none()
            {
                let matched = self.match_current_plugin(index, live);
                self.entities[index].id = Some(matched.unwrap_or_else(new_id));
            }
        }
    }

    /// Note the id every reference resolves to (validation writes it
    /// into the entity); the references that point nowhere, in entity
    /// order.
    fn resolve_each(&mut self, targets: &Targets<'_>) -> Vec<(usize, Reference)> {
        let in_files = FileNames::new(&self.entities, &self.wanted_texts(|_| true));
        let mut dangling = Vec::new();
        for index in 0..self.entities.len() {
            let mut references = std::mem::take(&mut self.entities[index].references);
            for reference in &mut references {
                reference.resolved = self.resolve(&in_files, targets, reference);
                if reference.resolved.is_none() {
                    dangling.push((index, reference.clone()));
                }
            }
            self.entities[index].references = references;
        }
        dangling
    }

    /// The (kind, text) of every reference written as text that `keep`
    /// accepts. Nested children point at their parent directly.
    fn wanted_texts(&self, keep: impl Fn(&str) -> bool) -> FastSet<(EntityKind, &str)> {
        self.entities
            .iter()
            .flat_map(|entity| &entity.references)
            .filter_map(|reference| match &reference.written {
                RefValue::Text(text) if keep(text) => Some((reference.target, text.as_str())),
                _ => None,
            })
            .collect()
    }

    fn resolve(
        &self,
        in_files: &FileNames,
        targets: &Targets<'_>,
        reference: &Reference,
    ) -> Option<String> {
        match &reference.written {
            RefValue::Parent(parent) => self.entities[*parent].id.clone(),
            RefValue::Text(text) => in_files
                .find(reference.target, text)
                .map(str::to_owned)
                .or_else(|| targets.find(reference.target, text)),
        }
    }

    /// decK's error for a reference that points nowhere.
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

    /// Advice for the references that point nowhere: one note per
    /// Markdown page whose front matter lists them as prerequisites, and
    /// one for those the gateway has but a full sync would delete.
    fn dangling_notes(
        &self,
        dangling: &[(usize, Reference)],
        current: &PackedConfig,
    ) -> Vec<Diagnostic> {
        if dangling.is_empty() {
            return Vec::new();
        }
        // Only here, with references that point nowhere, is the live state
        // searched by name in a full sync: indexed again for it.
        let live = LiveIndex::new(current);
        let mut notes = Vec::new();
        let mut pages_noted: Vec<&str> = Vec::new();
        let mut on_gateway: Vec<String> = Vec::new();
        let mut first_on_gateway = None;
        for (index, reference) in dangling {
            let RefValue::Text(text) = &reference.written else {
                continue;
            };
            let entity = &self.entities[*index];
            let block = self.docs[entity.doc].block.as_ref();
            let prereqs =
                block.and_then(|block| Some((&block.page.origin, block.page.prereqs.as_ref()?)));
            if let Some((page, prereqs)) = prereqs {
                if prereqs.lists(reference.target.collection(), text) {
                    if !pages_noted.contains(&page.as_str()) {
                        pages_noted.push(page);
                        notes.push(prerequisites_note(page, prereqs));
                    }
                    continue;
                }
            }
            if !self.partial_apply && live.find(reference.target, text).is_some() {
                let named = format!("{} {text}", reference.target.deck_kind());
                if !on_gateway.contains(&named) {
                    on_gateway.push(named);
                }
                first_on_gateway.get_or_insert((*index, reference.field));
            }
        }
        if let Some((index, field)) = first_on_gateway {
            let (them, are) = if on_gateway.len() == 1 {
                ("it", "is")
            } else {
                ("them", "are")
            };
            let message = format!(
                "{} {are} on the gateway, but a sync deletes what the files leave out, so the \
                 files cannot refer to {them}: add {them} to the files, or apply the files on top \
                 of the gateway with `gwctl sync --no-deletes`",
                on_gateway.join(", "),
            );
            let mut note = self.entity_diagnostic(
                index,
                Severity::Note,
                FieldPath::root().key(field),
                message,
            );
            note.entity.clear();
            note.field = FieldPath::root();
            notes.push(note);
        }
        notes
    }

    /// The (kind, id) references that name, by a UUID, no entity of the
    /// files nor of `current`: they may name a gateway entity outside the
    /// select tags, which the caller looks up (read-only) and passes to
    /// [`super::Flattened::build_with`]. key-auth's `anonymous` consumers
    /// too. Empty, and cheap, when no reference is written as a UUID.
    pub(super) fn ids_to_look_up(&self, current: &PackedConfig) -> Vec<(EntityKind, String)> {
        let mut wanted = self.wanted_texts(is_uuid);
        for (_, anonymous) in self.anonymous_consumers() {
            if is_uuid(anonymous) {
                wanted.insert((EntityKind::Consumer, anonymous));
            }
        }
        if wanted.is_empty() {
            return Vec::new();
        }
        let in_files = FileNames::new(&self.entities, &wanted);
        let live: FastSet<(EntityKind, &str)> = EntityKind::ALL
            .into_iter()
            .flat_map(|kind| {
                current
                    .entities(kind)
                    .iter()
                    .filter_map(move |e| Some((kind, e.id()?)))
            })
            .filter(|key| wanted.contains(key))
            .collect();
        let mut ids: Vec<(EntityKind, String)> = wanted
            .into_iter()
            .filter(|key| in_files.find(key.0, key.1).is_none() && !live.contains(key))
            .map(|(kind, id)| (kind, id.to_owned()))
            .collect();
        ids.sort();
        ids
    }

    pub(super) fn match_current_plugin(
        &self,
        index: usize,
        live: &LiveIndex<'_>,
    ) -> Option<String> {
        let entity = &self.entities[index];
        let name = entity.input.get("name")?.as_str()?;
        let scope_id = |field: &str| {
            let reference = entity.references.iter().find(|r| r.field == field)?;
            reference.resolved.as_deref()
        };
        let scope = (
            name,
            scope_id("route"),
            scope_id("service"),
            scope_id("consumer"),
        );
        live.plugins_by_scope.get(&scope).map(|id| (*id).to_owned())
    }

    /// The plugins whose `config.anonymous` names a consumer, and the name.
    fn anonymous_consumers(&self) -> Vec<(usize, &str)> {
        self.entities
            .iter()
            .enumerate()
            .filter(|(_, entity)| entity.kind == EntityKind::Plugin)
            .filter_map(|(index, entity)| {
                let config = entity.input.get("config")?;
                Some((index, config.get("anonymous")?.as_str()?))
            })
            .collect()
    }

    /// key-auth's `anonymous` names a consumer by id or username; warn when
    /// it names none that the configuration will hold (see [`Targets`]).
    pub(super) fn check_anonymous_consumers(
        &mut self,
        live: &LiveIndex<'_>,
        outside: &LiveIndex<'_>,
    ) {
        let named = self.anonymous_consumers();
        if named.is_empty() {
            return;
        }
        let targets = Targets {
            live,
            outside,
            partial_apply: self.partial_apply,
        };
        let wanted = named
            .iter()
            .map(|(_, anonymous)| (EntityKind::Consumer, *anonymous))
            .collect();
        let in_files = FileNames::new(&self.entities, &wanted);
        let warnings: Vec<Diagnostic> = named
            .iter()
            .filter(|(_, anonymous)| {
                in_files.find(EntityKind::Consumer, anonymous).is_none()
                    && targets.find(EntityKind::Consumer, anonymous).is_none()
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
}

/// Where references may point besides the files: by id, the gateway's
/// entities outside the select tags (a sync leaves them as they are); and
/// any live entity when the files go on top of the gateway
/// ([`super::BuildOptions::partial_apply`]). In a full sync a live entity
/// inside the select tags that the files leave out is deleted by the same
/// sync, so a reference to it would be lost with it (decK refuses it too:
/// its `sync` resolves references among the files only).
struct Targets<'a> {
    live: &'a LiveIndex<'a>,
    outside: &'a LiveIndex<'a>,
    partial_apply: bool,
}

impl Targets<'_> {
    fn find(&self, kind: EntityKind, text: &str) -> Option<String> {
        let live = self
            .partial_apply
            .then(|| self.live.find(kind, text))
            .flatten();
        live.or_else(|| self.outside.get(kind, "id", text))
    }
}

/// `page.md:35:1: note: ...` for a page whose prerequisites are missing.
fn prerequisites_note(page: &str, prereqs: &Prerequisites) -> Diagnostic {
    Diagnostic {
        severity: Severity::Note,
        file: page.to_owned(),
        pos: Some(Pos::new(prereqs.line, prereqs.column)),
        entity: String::new(),
        field: FieldPath::root(),
        message: format!(
            "the page expects entities to exist before its first block (prereqs.entities: {}): \
             give the files that define them along with the page, or apply the page on top of a \
             gateway that has them with `gwctl sync --no-deletes`",
            prereqs.describe()
        ),
    }
}

fn is_uuid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok()
}
