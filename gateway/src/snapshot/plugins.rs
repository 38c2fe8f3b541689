//! Plugin instances indexed for precedence resolution: per plugin name, the
//! instance attached at each scope ([`PluginTable`]), names in run order
//! ([`PluginIndex`]).

use std::collections::HashMap;
use std::sync::Arc;

use schemas::model;
use uuid::Uuid;

use crate::pdk::{Plugin, PluginDescriptor, PluginEnv, Protocol};
use crate::plugins::{self, unavailable::Unavailable};

/// The slot of a protocol in a table's per-protocol arrays.
fn protocol_index(protocol: Protocol) -> usize {
    match protocol {
        Protocol::Http => 0,
        Protocol::Https => 1,
    }
}

/// The scope of a plugin row: which route, service and consumer it is
/// attached to (`None` = any).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scope {
    /// The route id.
    pub route: Option<Uuid>,
    /// The service id.
    pub service: Option<Uuid>,
    /// The consumer id.
    pub consumer: Option<Uuid>,
}

impl Scope {
    /// One bit of eight telling which of (route, service, consumer) are set.
    fn shape(&self) -> u8 {
        let index = u8::from(self.route.is_some()) << 2
            | u8::from(self.service.is_some()) << 1
            | u8::from(self.consumer.is_some());
        1 << index
    }
}

/// The enabled instances of one plugin name, by scope and protocol.
pub struct PluginTable {
    /// The plugin (name, priority, phases).
    pub plugin: &'static PluginDescriptor,
    /// Per protocol (`http`, `https`): the instances whose `protocols`
    /// include it, by scope.
    by_scope: [HashMap<Scope, Arc<dyn Plugin>>; 2],
    /// Per protocol: a bit per [`Scope::shape`] that has an instance, so
    /// resolution skips the ranks nothing is attached at.
    shapes: [u8; 2],
}

impl PluginTable {
    fn new(plugin: &'static PluginDescriptor) -> Self {
        PluginTable {
            plugin,
            by_scope: [HashMap::new(), HashMap::new()],
            shapes: [0; 2],
        }
    }

    /// The instance attached exactly to `scope` for `protocol`.
    pub fn get(&self, protocol: Protocol, scope: &Scope) -> Option<&Arc<dyn Plugin>> {
        if self.shapes[protocol_index(protocol)] & scope.shape() == 0 {
            return None;
        }
        self.by_scope[protocol_index(protocol)].get(scope)
    }

    /// Whether any instance is attached to a consumer.
    pub fn has_consumer_scopes(&self) -> bool {
        self.by_scope
            .iter()
            .any(|map| map.keys().any(|scope| scope.consumer.is_some()))
    }

    fn insert(&mut self, protocols: &[String], scope: Scope, instance: Arc<dyn Plugin>) {
        for protocol in [Protocol::Http, Protocol::Https] {
            if protocols.iter().any(|p| p == protocol.as_str()) {
                self.by_scope[protocol_index(protocol)].insert(scope, Arc::clone(&instance));
                self.shapes[protocol_index(protocol)] |= scope.shape();
            }
        }
    }
}

/// A plugin row with its plugin and instance (`None` when the row is
/// disabled or names a plugin this gateway does not have).
#[derive(Clone)]
struct BuiltRow {
    row: Arc<model::Plugin>,
    instance: Option<(&'static PluginDescriptor, Arc<dyn Plugin>)>,
}

/// Every configured plugin name, in run order: priority descending, then
/// name descending. It also keeps each row with its instance by id, so a
/// change rebuilds only the instances of the rows it touches.
#[derive(Default)]
pub struct PluginIndex {
    tables: Vec<PluginTable>,
    rows: HashMap<Uuid, BuiltRow>,
}

impl PluginIndex {
    /// Builds an instance per enabled plugin row. Rows of plugins this
    /// gateway does not have are skipped with a warning; rows whose instance
    /// cannot be built fail closed (see [`Unavailable`]).
    pub fn build(rows: Vec<model::Plugin>, env: &PluginEnv) -> Self {
        let built = rows
            .into_iter()
            .map(|row| (row.id, build_row(row, env)))
            .collect();
        Self::index(built)
    }

    /// A copy of this index with `changes` applied in order (`None` removes
    /// the row of that id). Unchanged rows keep their instances.
    pub fn with_changes(
        &self,
        changes: Vec<(Uuid, Option<model::Plugin>)>,
        env: &PluginEnv,
    ) -> Self {
        let mut rows = self.rows.clone();
        for (id, row) in changes {
            match row {
                Some(row) => rows.insert(id, build_row(row, env)),
                None => rows.remove(&id),
            };
        }
        Self::index(rows)
    }

    /// Sorts the instances of `rows` into one table per plugin name.
    fn index(rows: HashMap<Uuid, BuiltRow>) -> Self {
        let mut tables: HashMap<&str, PluginTable> = HashMap::new();
        for built in rows.values() {
            let Some((plugin, instance)) = &built.instance else {
                continue;
            };
            let row = &built.row;
            let table = tables
                .entry(plugin.name)
                .or_insert_with(|| PluginTable::new(plugin));
            table.insert(&row.protocols, scope_of(row), Arc::clone(instance));
        }
        let mut tables: Vec<PluginTable> = tables.into_values().collect();
        tables.sort_by(|a, b| {
            let key = |table: &PluginTable| (table.plugin.priority(), table.plugin.name);
            key(b).cmp(&key(a))
        });
        PluginIndex { tables, rows }
    }

    /// The plugin names in run order.
    pub fn tables(&self) -> &[PluginTable] {
        &self.tables
    }

    /// Whether no plugin is configured at all.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// Whether a configured plugin has a log phase (a request may then
    /// need its sizes and latencies).
    pub fn has_log_phase(&self) -> bool {
        self.tables.iter().any(|table| table.plugin.phases.log)
    }
}

/// The instance of one plugin row, when it is enabled and known. A row
/// whose instance cannot be built gets the fail-closed [`Unavailable`].
fn build_row(row: model::Plugin, env: &PluginEnv) -> BuiltRow {
    let instance = if !row.enabled {
        None
    } else if let Some(plugin) = plugins::descriptor(&row.name) {
        let instance = (plugin.build)(&row, env).unwrap_or_else(|error| {
            tracing::error!(plugin = %row.name, id = %row.id, %error,
                "plugin cannot run; requests it applies to are answered 500");
            Arc::new(Unavailable)
        });
        Some((plugin, instance))
    } else {
        tracing::warn!(plugin = %row.name, id = %row.id, "plugin not available in this gateway; skipped");
        None
    };
    BuiltRow {
        row: Arc::new(row),
        instance,
    }
}

fn scope_of(row: &model::Plugin) -> Scope {
    Scope {
        route: row.route.map(|key| key.id),
        service: row.service.map(|key| key.id),
        consumer: row.consumer.map(|key| key.id),
    }
}
