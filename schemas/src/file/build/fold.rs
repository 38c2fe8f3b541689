//! A Markdown page read the way the docs apply it: each
//! `{% entity_examples %}` block is rendered as `deck gateway apply`, one
//! after the other, so a page means the configuration its last block
//! leaves behind.
//!
//! An entity a later block names again (by id or by its unique name:
//! service and route `name`, consumer `username` or `custom_id`, credential
//! `key`, plugin name and scope) is the same entity: the later block's
//! declaration replaces the earlier one's fields, as an apply updates the
//! entity to what the block says; it keeps the earlier id when it gives
//! none. What earlier blocks attached to it (routes, plugins, credentials)
//! stays, since an apply deletes nothing: children accumulate.
//!
//! Only blocks of one page fold together. Separate files, and entities
//! repeated within one block, are merged as decK merges files, and a
//! repeat is reported as a duplicate. The fold happens while the entities
//! are read, one hash lookup per entity of a page.

use std::collections::HashMap;

use serde_json::Value;

use super::index::natural_fields;
use super::{Builder, RefValue};
use crate::entities::EntityKind;

/// What makes an entity the same across the blocks of a page: the page,
/// the kind, and a key (`id:…`, `name:…`, a plugin's scope).
type FoldKey = (usize, EntityKind, String);

/// The entities of Markdown pages seen so far, by key.
#[derive(Debug, Default)]
pub(super) struct PageFold {
    /// For each key: the entity's index and the block that declared it.
    seen: HashMap<FoldKey, (usize, usize)>,
}

impl Builder {
    /// After entity `index` (the last one read, references collected, no
    /// children yet) is read: if a block of the same page before this one
    /// declared the same entity, the earlier entity takes this one's
    /// declaration and this one is dropped. Returns the index that
    /// stands for the entity, which its nested children refer to.
    pub(super) fn fold_page_block(&mut self, index: usize) -> usize {
        let Some(block) = self.docs[self.entities[index].doc].block.as_ref() else {
            return index;
        };
        let page = std::sync::Arc::as_ptr(&block.page) as usize;
        let block_index = block.index;
        let kind = self.entities[index].kind;
        let keys: Vec<FoldKey> = self
            .fold_keys(index)
            .into_iter()
            .map(|key| (page, kind, key))
            .collect();
        let earlier = keys
            .iter()
            .filter_map(|key| self.pages.seen.get(key))
            .find(|(_, declared_in)| *declared_in < block_index)
            .map(|(earlier, _)| *earlier);
        let survivor = match earlier {
            Some(earlier) => {
                self.redeclare(earlier, index);
                earlier
            }
            None => index,
        };
        for key in keys {
            self.pages.seen.insert(key, (survivor, block_index));
        }
        survivor
    }

    /// Entity `earlier` takes the declaration of `later` (the last entity,
    /// which is removed).
    fn redeclare(&mut self, earlier: usize, later: usize) {
        debug_assert_eq!(later + 1, self.entities.len());
        let Some(declaration) = self.entities.pop() else {
            return;
        };
        let entity = &mut self.entities[earlier];
        entity.input = declaration.input;
        entity.doc = declaration.doc;
        entity.path = declaration.path;
        entity.references = declaration.references;
        entity.label = declaration.label;
        entity.id = declaration.id.or(entity.id.take());
    }

    /// The keys entity `index` is known by within its page.
    fn fold_keys(&self, index: usize) -> Vec<String> {
        let entity = &self.entities[index];
        let mut keys = Vec::new();
        if let Some(id) = &entity.id {
            keys.push(format!("id:{id}"));
        }
        for field in natural_fields(entity.kind) {
            if let Some(value) = entity.input.get(field).and_then(Value::as_str) {
                keys.push(format!("{field}:{value}"));
            }
        }
        if entity.kind == EntityKind::Plugin {
            keys.extend(self.plugin_scope_key(index));
        }
        keys
    }

    /// `scope:<name>|<route>|<service>|<consumer>`, each scope written as
    /// the index of the page's entity it names, else as written.
    fn plugin_scope_key(&self, index: usize) -> Option<String> {
        let entity = &self.entities[index];
        let name = entity.input.get("name")?.as_str()?;
        let block = self.docs[entity.doc].block.as_ref()?;
        let page = std::sync::Arc::as_ptr(&block.page) as usize;
        let scope: Vec<String> = ["route", "service", "consumer"]
            .iter()
            .map(|field| {
                let reference = entity.references.iter().find(|r| r.field == *field);
                match reference.map(|r| (&r.written, r.target)) {
                    None => String::new(),
                    Some((RefValue::Parent(parent), _)) => format!("#{parent}"),
                    Some((RefValue::Text(text), target)) => self
                        .page_entity_named(page, target, text)
                        .map_or_else(|| format!("={text}"), |found| format!("#{found}")),
                }
            })
            .collect();
        Some(format!("scope:{name}|{}", scope.join("|")))
    }

    /// The page's entity of `kind` that `text` names (by id or name).
    fn page_entity_named(&self, page: usize, kind: EntityKind, text: &str) -> Option<usize> {
        std::iter::once("id")
            .chain(natural_fields(kind).iter().copied())
            .find_map(|field| {
                let key = (page, kind, format!("{field}:{text}"));
                self.pages.seen.get(&key).map(|(index, _)| *index)
            })
    }
}
