//! Step 3 of the build: references resolved by name or id, plugins given
//! their ids, and key-auth's `anonymous` consumers checked.

use super::identity::plugin_scope_by;
use super::index::{FileNames, LiveIndex};
use super::{new_id, Builder, Diagnostic, RefValue, Reference, Resolved, Severity};
use crate::entities::EntityKind;
use crate::error::FieldPath;
use crate::file::hash::FastSet;

impl Builder {
    // ----- step 3: references ------------------------------------------------

    /// Resolve every reference (within the files first, then in the live
    /// state), then give plugins their ids: a plugin matches a live one by
    /// its name and the ids of its scope.
    pub(super) fn resolve_references(&mut self, live: &LiveIndex<'_>) {
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
    pub(super) fn find_references(&self, live: &LiveIndex<'_>) -> (Vec<Resolved>, Vec<Diagnostic>) {
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

    pub(super) fn resolve(
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

    pub(super) fn dangling(&self, index: usize, reference: &Reference) -> Option<Diagnostic> {
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

    pub(super) fn match_current_plugin(
        &self,
        index: usize,
        live: &LiveIndex<'_>,
    ) -> Option<String> {
        let input = &self.entities[index].input;
        let scope = plugin_scope_by(|field| input.get(field))?;
        live.plugins_by_scope.get(&scope).map(|id| (*id).to_owned())
    }

    /// key-auth's `anonymous` names a consumer by id or username; warn when
    /// neither the files nor the live state have it.
    pub(super) fn check_anonymous_consumers(&mut self, live: &LiveIndex<'_>) {
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
}
