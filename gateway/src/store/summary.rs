//! What a configuration replacement changed, per kind.

use std::collections::BTreeMap;

use schemas::EntityKind;
use serde::Serialize;
use serde_json::{json, Value};

/// What a replacement did to one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindChanges {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
}

impl KindChanges {
    fn add(&mut self, other: KindChanges) {
        self.created += other.created;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.unchanged += other.unchanged;
    }

    /// Created, updated and deleted together.
    pub fn changed(&self) -> usize {
        self.created + self.updated + self.deleted
    }
}

/// What a replacement did, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSummary {
    per_kind: BTreeMap<EntityKind, KindChanges>,
}

impl ChangeSummary {
    /// The changes to one kind.
    pub fn of(&self, kind: EntityKind) -> KindChanges {
        self.per_kind.get(&kind).copied().unwrap_or_default()
    }

    pub(crate) fn set(&mut self, kind: EntityKind, changes: KindChanges) {
        self.per_kind.insert(kind, changes);
    }

    /// The changes to all kinds together.
    pub fn total(&self) -> KindChanges {
        let mut total = KindChanges::default();
        for changes in self.per_kind.values() {
            total.add(*changes);
        }
        total
    }

    /// Nothing was created, updated or deleted.
    pub fn is_unchanged(&self) -> bool {
        self.total().changed() == 0
    }

    /// `{"summary": {...totals}, "changes": {"services": {...}, ...}}`.
    pub fn to_json(&self) -> Value {
        let changes: serde_json::Map<String, Value> = EntityKind::ALL
            .iter()
            .map(|kind| (kind.collection().to_owned(), json!(self.of(*kind))))
            .collect();
        json!({"summary": self.total(), "changes": changes})
    }
}
