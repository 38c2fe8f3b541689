//! The immutable, precompiled configuration the proxy reads per request.
//!
//! A [`Snapshot`] holds typed entities and what is compiled from them, in
//! three parts each behind its own `Arc`:
//!
//! - `routing`: services, routes, the [`Router`] and each route's metric
//!   handles;
//! - `identities`: consumers by id and username, key-auth credentials by
//!   key;
//! - [`PluginIndex`]: the plugin instances indexed for precedence.
//!
//! Nothing in a snapshot changes after it is built. [`Snapshot::compile`]
//! builds one from a whole configuration; [`Snapshot::with_changes`] makes
//! the next one from the entity rows a write changed, rebuilding only the
//! parts they touch and sharing the others, so a write is visible to the
//! proxy within milliseconds even with 100k entities. The new snapshot is
//! swapped into the [`SnapshotHandle`]; a request holds no lock and never
//! reads the store.
//!
//! Freeing a big snapshot takes tens of milliseconds with 100k consumers, so
//! a replaced one is handed to a background thread instead of being freed on
//! the Admin API write path or by the last proxy request that held it.

mod identities;
mod plugins;
mod routing;
mod sharded;
pub mod updater;

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use schemas::config::Config;
use schemas::model::{self, Consumer, Route, Service};
use schemas::EntityKind;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::observability::RouteSeries;
use crate::pdk::{Credential, Identities, PluginEnv};
use crate::router::{Router, RouterError};
use crate::store::ChangedEntity;

pub use plugins::{PluginIndex, PluginTable, Scope};

use identities::IdentityMaps;
use routing::Routing;

/// Why a configuration could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// An entity does not have its canonical shape.
    #[error("{kind} {id}: not a canonical entity: {source}")]
    Entity {
        /// The entity kind (`services`, `routes`, ...).
        kind: &'static str,
        /// Its id, or `?` when it has none.
        id: String,
        /// What did not fit.
        #[source]
        source: serde_json::Error,
    },
    /// A changed row's id is not a UUID.
    #[error("{kind} {id}: the id is not a UUID")]
    Id {
        /// The entity kind.
        kind: &'static str,
        /// The id as stored.
        id: String,
    },
    /// The stored configuration could not be read.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The routes could not be compiled.
    #[error("cannot build the router: {0}")]
    Router(#[from] RouterError),
}

/// One compiled configuration.
pub struct Snapshot {
    routing: Arc<Routing>,
    identities: Arc<IdentityMaps>,
    plugins: Arc<PluginIndex>,
}

impl Snapshot {
    /// A snapshot with nothing configured: every request gets a 404.
    pub fn empty() -> Self {
        Snapshot {
            routing: Arc::default(),
            identities: Arc::default(),
            plugins: Arc::default(),
        }
    }

    /// Compiles `config` (canonical entities) with plugin factories given
    /// `env`.
    pub fn build(config: &Config, env: &PluginEnv) -> Result<Self, SnapshotError> {
        let mut entities = Entities::default();
        for kind in EntityKind::ALL {
            let values = config.entities(kind);
            entities.reserve(kind, values.len());
            for value in values {
                entities.push(kind, value)?;
            }
        }
        Self::compile(entities, env)
    }

    /// Compiles typed entities with plugin factories given `env`.
    pub fn compile(entities: Entities, env: &PluginEnv) -> Result<Self, SnapshotError> {
        let Entities {
            services,
            routes,
            consumers,
            keyauth_credentials,
            plugins,
        } = entities;
        Ok(Snapshot {
            routing: Arc::new(Routing::build(services, routes, &env.metrics)?),
            identities: Arc::new(IdentityMaps::build(consumers, keyauth_credentials)),
            plugins: Arc::new(PluginIndex::build(plugins, env)),
        })
    }

    /// The next snapshot: this one with the entity rows a write `changes`
    /// applied in order. Only the parts the changes touch are rebuilt.
    pub fn with_changes(
        &self,
        changes: &[ChangedEntity<'_>],
        env: &PluginEnv,
    ) -> Result<Self, SnapshotError> {
        let delta = Delta::parse(changes)?;
        let routing = if delta.services.is_empty() && delta.routes.is_empty() {
            Arc::clone(&self.routing)
        } else {
            Arc::new(
                self.routing
                    .with_changes(delta.services, delta.routes, &env.metrics)?,
            )
        };
        let identities = if delta.consumers.is_empty() && delta.credentials.is_empty() {
            Arc::clone(&self.identities)
        } else {
            Arc::new(
                self.identities
                    .with_changes(delta.consumers, delta.credentials),
            )
        };
        let plugins = if delta.plugins.is_empty() {
            Arc::clone(&self.plugins)
        } else {
            Arc::new(self.plugins.with_changes(delta.plugins, env))
        };
        Ok(Snapshot {
            routing,
            identities,
            plugins,
        })
    }

    /// The routing table.
    pub fn router(&self) -> &Router {
        &self.routing.router
    }

    /// Plugin instances for precedence resolution.
    pub fn plugins(&self) -> &PluginIndex {
        &self.plugins
    }

    /// The service with this id.
    pub fn service(&self, id: &Uuid) -> Option<&Arc<Service>> {
        self.routing.services.get(id)
    }

    /// The metric handles of the route with this id.
    pub fn route_series(&self, id: &Uuid) -> Option<&Arc<RouteSeries>> {
        self.routing.series.get(id)
    }

    /// The consumer with this username.
    pub fn consumer_by_username(&self, username: &str) -> Option<&Arc<Consumer>> {
        self.identities.consumer_by_username(username)
    }
}

impl Identities for Snapshot {
    fn consumer(&self, id: &Uuid) -> Option<&Arc<Consumer>> {
        self.identities.consumer(id)
    }

    /// Kong's `kong.client.load_consumer(value, by_username)`: by id when
    /// `value` is a UUID, then (if `by_username`) by username.
    fn load_consumer(&self, value: &str, by_username: bool) -> Option<&Arc<Consumer>> {
        let by_id = Uuid::parse_str(value)
            .ok()
            .and_then(|id| self.identities.consumer(&id));
        match by_id {
            Some(consumer) => Some(consumer),
            None if by_username => self.consumer_by_username(value),
            None => None,
        }
    }

    /// The key-auth credential whose key is `key`. The key found by the hash
    /// lookup is compared again in constant time.
    fn credential_by_key(&self, key: &str) -> Option<&Arc<Credential>> {
        self.identities.credential_by_key(key)
    }
}

/// The typed entities a snapshot is compiled from, collected one canonical
/// entity at a time ([`Entities::push`]).
#[derive(Debug, Default)]
pub struct Entities {
    services: Vec<Service>,
    routes: Vec<Route>,
    consumers: Vec<Consumer>,
    keyauth_credentials: Vec<model::KeyAuthCredential>,
    plugins: Vec<model::Plugin>,
}

impl Entities {
    /// Makes room for `additional` more entities of `kind`.
    pub fn reserve(&mut self, kind: EntityKind, additional: usize) {
        match kind {
            EntityKind::Service => self.services.reserve(additional),
            EntityKind::Route => self.routes.reserve(additional),
            EntityKind::Consumer => self.consumers.reserve(additional),
            EntityKind::KeyAuthCredential => self.keyauth_credentials.reserve(additional),
            EntityKind::Plugin => self.plugins.reserve(additional),
        }
    }

    /// Adds a canonical entity of `kind`.
    pub fn push(&mut self, kind: EntityKind, value: &Value) -> Result<(), SnapshotError> {
        match kind {
            EntityKind::Service => self.services.push(typed(kind, value)?),
            EntityKind::Route => self.routes.push(typed(kind, value)?),
            EntityKind::Consumer => self.consumers.push(typed(kind, value)?),
            EntityKind::KeyAuthCredential => self.keyauth_credentials.push(typed(kind, value)?),
            EntityKind::Plugin => self.plugins.push(typed(kind, value)?),
        }
        Ok(())
    }
}

/// The changes of one write, typed and grouped by kind (in order within a
/// kind; `None` = removed).
#[derive(Default)]
struct Delta {
    services: Vec<(Uuid, Option<Service>)>,
    routes: Vec<(Uuid, Option<Route>)>,
    consumers: Vec<(Uuid, Option<Consumer>)>,
    credentials: Vec<(Uuid, Option<model::KeyAuthCredential>)>,
    plugins: Vec<(Uuid, Option<model::Plugin>)>,
}

impl Delta {
    fn parse(changes: &[ChangedEntity<'_>]) -> Result<Self, SnapshotError> {
        let mut delta = Delta::default();
        for change in changes {
            let id = Uuid::parse_str(change.id).map_err(|_| SnapshotError::Id {
                kind: change.kind.collection(),
                id: change.id.to_owned(),
            })?;
            let kind = change.kind;
            let row = change.row;
            match kind {
                EntityKind::Service => delta.services.push((id, decode(kind, id, row)?)),
                EntityKind::Route => delta.routes.push((id, decode(kind, id, row)?)),
                EntityKind::Consumer => delta.consumers.push((id, decode(kind, id, row)?)),
                EntityKind::KeyAuthCredential => {
                    delta.credentials.push((id, decode(kind, id, row)?));
                }
                EntityKind::Plugin => delta.plugins.push((id, decode(kind, id, row)?)),
            }
        }
        Ok(delta)
    }
}

/// Deserializes a stored row of `kind`, if there is one.
fn decode<T: DeserializeOwned>(
    kind: EntityKind,
    id: Uuid,
    row: Option<&[u8]>,
) -> Result<Option<T>, SnapshotError> {
    let Some(bytes) = row else {
        return Ok(None);
    };
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|source| SnapshotError::Entity {
            kind: kind.collection(),
            id: id.to_string(),
            source,
        })
}

/// Deserializes a canonical entity of `kind`.
fn typed<T: DeserializeOwned>(kind: EntityKind, value: &Value) -> Result<T, SnapshotError> {
    T::deserialize(value).map_err(|source| SnapshotError::Entity {
        kind: kind.collection(),
        id: schemas::config::id_of(value).unwrap_or("?").to_owned(),
        source,
    })
}

/// The current snapshot, swapped atomically on configuration changes.
pub struct SnapshotHandle {
    current: ArcSwap<Snapshot>,
}

impl SnapshotHandle {
    /// A handle serving `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        SnapshotHandle {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// The snapshot to serve one request with.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the snapshot; requests in flight keep the one they loaded.
    /// The previous snapshot is freed in the background once they are done.
    pub fn store(&self, snapshot: Snapshot) {
        reap(self.current.swap(Arc::new(snapshot)));
    }
}

/// How often the reaper checks whether requests still hold a retired
/// snapshot.
const REAP_INTERVAL: Duration = Duration::from_millis(10);

/// Hands a retired snapshot to the reaper thread (started on first use).
/// Without the thread it is freed here.
fn reap(snapshot: Arc<Snapshot>) {
    static REAPER: OnceLock<Option<mpsc::Sender<Arc<Snapshot>>>> = OnceLock::new();
    let reaper = REAPER.get_or_init(|| {
        let (sender, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("snapshot-reaper".to_owned())
            .spawn(move || run_reaper(&receiver))
            .ok()
            .map(|_| sender)
    });
    if let Some(sender) = reaper {
        // Should the thread be gone, the snapshot comes back and drops here.
        let _ = sender.send(snapshot);
    }
}

/// The reaper: frees the retired snapshots it receives, each once it holds
/// the last reference, so that it is never a proxy request that frees one.
fn run_reaper(receiver: &mpsc::Receiver<Arc<Snapshot>>) {
    let mut held: Vec<Arc<Snapshot>> = Vec::new();
    loop {
        let received = if held.is_empty() {
            receiver.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            receiver.recv_timeout(REAP_INTERVAL)
        };
        match received {
            Ok(snapshot) => held.push(snapshot),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        held.retain(|snapshot| Arc::strong_count(snapshot) > 1);
    }
}

#[cfg(test)]
pub(crate) mod tests;
