//! The immutable, precompiled configuration the proxy reads per request.
//!
//! [`Snapshot::build`] turns a canonical [`Config`] into typed entities, the
//! [`Router`], lookup maps (services, consumers by id and username, key-auth
//! credentials by key) and the plugin instances indexed for precedence
//! resolution ([`PluginIndex`]). Nothing in a snapshot changes after it is
//! built; a configuration change builds a new one and swaps it into the
//! [`SnapshotHandle`], so a request holds no lock and never reads the store.
//!
//! Freeing a big snapshot takes tens of milliseconds with 100k consumers, so
//! a replaced one is handed to a background thread instead of being freed on
//! the Admin API write path or by the last proxy request that held it.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use schemas::config::Config;
use schemas::model::{self, Consumer, Route, Service};
use schemas::EntityKind;
use serde::de::DeserializeOwned;
use serde_json::Value;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::plugins::{self, Plugin, PluginBuildError, PluginEnv};
use crate::router::{Router, RouterError};

/// The protocol of a request as plugins' `protocols` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Protocol {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
        }
    }

    fn index(self) -> usize {
        match self {
            Protocol::Http => 0,
            Protocol::Https => 1,
        }
    }
}

/// A key-auth credential, ready for lookups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The credential's id.
    pub id: Uuid,
    /// The consumer it authenticates.
    pub consumer_id: Uuid,
    /// The API key.
    pub key: String,
    /// Epoch second after which the key no longer authenticates.
    pub expires_at: Option<i64>,
}

impl Credential {
    /// Whether the credential's TTL has run out at `now` (epoch seconds).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|expires_at| now >= expires_at)
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
    /// The plugin name.
    pub name: String,
    /// Its priority (higher runs first).
    pub priority: u32,
    /// Per protocol (`http`, `https`): the instances whose `protocols`
    /// include it, by scope.
    by_scope: [HashMap<Scope, Arc<dyn Plugin>>; 2],
    /// Per protocol: a bit per [`Scope::shape`] that has an instance, so
    /// resolution skips the ranks nothing is attached at.
    shapes: [u8; 2],
}

impl PluginTable {
    fn new(name: &str, priority: u32) -> Self {
        PluginTable {
            name: name.to_owned(),
            priority,
            by_scope: [HashMap::new(), HashMap::new()],
            shapes: [0; 2],
        }
    }

    /// The instance attached exactly to `scope` for `protocol`.
    pub fn get(&self, protocol: Protocol, scope: &Scope) -> Option<&Arc<dyn Plugin>> {
        if self.shapes[protocol.index()] & scope.shape() == 0 {
            return None;
        }
        self.by_scope[protocol.index()].get(scope)
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
                self.by_scope[protocol.index()].insert(scope, Arc::clone(&instance));
                self.shapes[protocol.index()] |= scope.shape();
            }
        }
    }
}

/// Every configured plugin name, in run order: priority descending, then
/// name descending.
#[derive(Default)]
pub struct PluginIndex {
    tables: Vec<PluginTable>,
}

impl PluginIndex {
    /// Builds an instance per enabled plugin row. Rows of plugins this
    /// gateway cannot run are skipped with a warning.
    pub fn build(rows: &[model::Plugin], env: &PluginEnv) -> Result<Self, SnapshotError> {
        let mut tables: HashMap<&str, PluginTable> = HashMap::new();
        for row in rows.iter().filter(|row| row.enabled) {
            let Some(factory) = plugins::factory(&row.name) else {
                tracing::warn!(plugin = %row.name, id = %row.id, "plugin not available in this gateway; skipped");
                continue;
            };
            let instance = factory(row, env).map_err(|source| SnapshotError::Plugin {
                id: row.id,
                name: row.name.clone(),
                source,
            })?;
            let table = tables
                .entry(row.name.as_str())
                .or_insert_with(|| PluginTable::new(&row.name, instance.priority()));
            table.insert(&row.protocols, scope_of(row), instance);
        }
        let mut tables: Vec<PluginTable> = tables.into_values().collect();
        tables.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| b.name.cmp(&a.name))
        });
        Ok(PluginIndex { tables })
    }

    /// The plugin names in run order.
    pub fn tables(&self) -> &[PluginTable] {
        &self.tables
    }

    /// Whether no plugin is configured at all.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

fn scope_of(row: &model::Plugin) -> Scope {
    Scope {
        route: row.route.map(|key| key.id),
        service: row.service.map(|key| key.id),
        consumer: row.consumer.map(|key| key.id),
    }
}

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
    /// The routes could not be compiled.
    #[error("cannot build the router: {0}")]
    Router(#[from] RouterError),
    /// A plugin row could not be turned into an instance.
    #[error("plugin {name} {id}: {source}")]
    Plugin {
        /// The plugin row id.
        id: Uuid,
        /// The plugin name.
        name: String,
        /// What went wrong.
        #[source]
        source: PluginBuildError,
    },
}

/// One compiled configuration.
pub struct Snapshot {
    /// The routing table.
    pub router: Router,
    /// Services by id.
    pub services: HashMap<Uuid, Arc<Service>>,
    consumers: HashMap<Uuid, Arc<Consumer>>,
    consumers_by_username: HashSet<ByKey<Consumer>>,
    key_credentials: HashSet<ByKey<Credential>>,
    /// Plugin instances for precedence resolution.
    pub plugins: PluginIndex,
}

impl Snapshot {
    /// A snapshot with nothing configured: every request gets a 404.
    pub fn empty() -> Self {
        Snapshot {
            router: Router::default(),
            services: HashMap::new(),
            consumers: HashMap::new(),
            consumers_by_username: HashSet::new(),
            key_credentials: HashSet::new(),
            plugins: PluginIndex::default(),
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
            keyauth_credentials: credentials,
            plugins: plugin_rows,
        } = entities;
        let services: HashMap<Uuid, Arc<Service>> = services
            .into_iter()
            .map(|service| (service.id, Arc::new(service)))
            .collect();
        let routes: Vec<Arc<Route>> = routes.into_iter().map(Arc::new).collect();
        let router = Router::build(&routes, &services)?;
        let mut consumers_by_id = HashMap::with_capacity(consumers.len());
        let mut consumers_by_username = HashSet::with_capacity(consumers.len());
        for consumer in consumers {
            let consumer = Arc::new(consumer);
            if consumer.username.is_some() {
                consumers_by_username.replace(ByKey(Arc::clone(&consumer)));
            }
            consumers_by_id.insert(consumer.id, consumer);
        }
        let consumers = consumers_by_id;
        let key_credentials = index_credentials(credentials, &consumers);
        let plugins = PluginIndex::build(&plugin_rows, env)?;
        Ok(Snapshot {
            router,
            services,
            consumers,
            consumers_by_username,
            key_credentials,
            plugins,
        })
    }

    /// The service with this id.
    pub fn service(&self, id: &Uuid) -> Option<&Arc<Service>> {
        self.services.get(id)
    }

    /// The consumer with this id.
    pub fn consumer(&self, id: &Uuid) -> Option<&Arc<Consumer>> {
        self.consumers.get(id)
    }

    /// The consumer with this username.
    pub fn consumer_by_username(&self, username: &str) -> Option<&Arc<Consumer>> {
        self.consumers_by_username
            .get(username)
            .map(|entry| &entry.0)
    }

    /// Kong's `kong.client.load_consumer(value, by_username)`: by id when
    /// `value` is a UUID, then (if `by_username`) by username.
    pub fn load_consumer(&self, value: &str, by_username: bool) -> Option<&Arc<Consumer>> {
        let by_id = Uuid::parse_str(value)
            .ok()
            .and_then(|id| self.consumers.get(&id));
        match by_id {
            Some(consumer) => Some(consumer),
            None if by_username => self.consumer_by_username(value),
            None => None,
        }
    }

    /// The key-auth credential whose key is `key`. The key found by the hash
    /// lookup is compared again in constant time.
    pub fn credential_by_key(&self, key: &str) -> Option<&Arc<Credential>> {
        let credential = &self.key_credentials.get(key)?.0;
        bool::from(credential.key.as_bytes().ct_eq(key.as_bytes())).then_some(credential)
    }
}

/// Credentials by key, leaving out those whose consumer does not exist.
fn index_credentials(
    credentials: Vec<model::KeyAuthCredential>,
    consumers: &HashMap<Uuid, Arc<Consumer>>,
) -> HashSet<ByKey<Credential>> {
    let mut by_key = HashSet::with_capacity(credentials.len());
    let known = credentials
        .into_iter()
        .filter(|credential| consumers.contains_key(&credential.consumer.id));
    for credential in known {
        let entry = Credential {
            id: credential.id,
            consumer_id: credential.consumer.id,
            expires_at: credential.expires_at(),
            key: credential.key,
        };
        by_key.replace(ByKey(Arc::new(entry)));
    }
    by_key
}

/// An entity with a string lookup key (a credential's key, a consumer's
/// username).
trait Keyed {
    fn lookup_key(&self) -> &str;
}

impl Keyed for Credential {
    fn lookup_key(&self) -> &str {
        &self.key
    }
}

impl Keyed for Consumer {
    fn lookup_key(&self) -> &str {
        self.username.as_deref().unwrap_or_default()
    }
}

/// A set element found by its entity's [`Keyed::lookup_key`], so an index by
/// key does not store a second copy of every key.
struct ByKey<T>(Arc<T>);

impl<T: Keyed> Borrow<str> for ByKey<T> {
    fn borrow(&self) -> &str {
        self.0.lookup_key()
    }
}

impl<T: Keyed> PartialEq for ByKey<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.lookup_key() == other.0.lookup_key()
    }
}

impl<T: Keyed> Eq for ByKey<T> {}

impl<T: Keyed> Hash for ByKey<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash like the `str` it borrows as.
        self.0.lookup_key().hash(state);
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
pub(crate) mod tests {
    use super::*;
    use schemas::model::ForeignKey;
    use serde_json::{json, Value};

    pub fn service(id: Uuid) -> Value {
        serde_json::to_value(Service {
            id,
            name: Some(format!("svc-{id}")),
            protocol: "http".into(),
            host: "127.0.0.1".into(),
            port: 9,
            path: None,
            retries: 5,
            connect_timeout: 60000,
            write_timeout: 60000,
            read_timeout: 60000,
            enabled: true,
            tls_verify: None,
            tls_verify_depth: None,
            tags: None,
            created_at: Some(1),
            updated_at: Some(1),
        })
        .unwrap()
    }

    pub fn route(id: Uuid, service: Option<Uuid>, path: &str) -> Value {
        serde_json::to_value(Route {
            id,
            name: None,
            protocols: vec!["http".into(), "https".into()],
            methods: None,
            hosts: None,
            paths: Some(vec![path.into()]),
            headers: None,
            snis: None,
            strip_path: true,
            preserve_host: false,
            regex_priority: 0,
            path_handling: "v0".into(),
            https_redirect_status_code: 426,
            request_buffering: true,
            response_buffering: true,
            service: service.map(|id| ForeignKey { id }),
            tags: None,
            created_at: Some(1),
            updated_at: Some(1),
        })
        .unwrap()
    }

    pub fn consumer(id: Uuid, username: &str) -> Value {
        json!({"id": id, "username": username, "custom_id": null, "tags": null,
               "created_at": 1, "updated_at": 1})
    }

    pub fn credential(
        id: Uuid,
        consumer: Uuid,
        key: &str,
        ttl: Option<u64>,
        created: i64,
    ) -> Value {
        json!({"id": id, "key": key, "consumer": {"id": consumer}, "ttl": ttl,
               "tags": null, "created_at": created})
    }

    pub fn plugin(name: &str, config: Value, scope: Scope) -> Value {
        let key = |id: Option<Uuid>| id.map(|id| json!({"id": id})).unwrap_or(Value::Null);
        json!({
            "id": Uuid::new_v4(), "name": name, "instance_name": null, "config": config,
            "enabled": true, "protocols": ["grpc", "grpcs", "http", "https"],
            "route": key(scope.route), "service": key(scope.service),
            "consumer": key(scope.consumer), "tags": null, "created_at": 1, "updated_at": 1
        })
    }

    #[test]
    fn builds_lookups() {
        let (service_id, route_id, consumer_id) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let config = Config {
            services: vec![service(service_id)],
            routes: vec![route(route_id, Some(service_id), "/")],
            consumers: vec![consumer(consumer_id, "alice")],
            keyauth_credentials: vec![
                credential(Uuid::new_v4(), consumer_id, "k1", None, 1),
                credential(Uuid::new_v4(), Uuid::new_v4(), "orphan", None, 1),
            ],
            plugins: vec![],
        };
        let snapshot = Snapshot::build(&config, &PluginEnv::default()).unwrap();
        assert!(snapshot.service(&service_id).is_some());
        assert_eq!(
            snapshot.credential_by_key("k1").unwrap().consumer_id,
            consumer_id
        );
        assert!(snapshot.credential_by_key("k2").is_none());
        assert!(snapshot.credential_by_key("orphan").is_none());
        assert!(snapshot.load_consumer("alice", true).is_some());
        assert!(snapshot.load_consumer("alice", false).is_none());
        assert!(snapshot
            .load_consumer(&consumer_id.to_string(), false)
            .is_some());
    }

    #[test]
    fn plugin_index_orders_by_priority_and_respects_protocols() {
        let mut https_only = plugin("key-auth", json!(key_auth_config()), Scope::default());
        https_only["protocols"] = json!(["https"]);
        let config = Config {
            plugins: vec![
                plugin(
                    "request-termination",
                    json!(termination_config(403)),
                    Scope::default(),
                ),
                https_only,
            ],
            ..Config::default()
        };
        let snapshot = Snapshot::build(&config, &PluginEnv::default()).unwrap();
        let names: Vec<&str> = snapshot
            .plugins
            .tables()
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, ["key-auth", "request-termination"]);
        let key_auth = &snapshot.plugins.tables()[0];
        assert!(key_auth.get(Protocol::Http, &Scope::default()).is_none());
        assert!(key_auth.get(Protocol::Https, &Scope::default()).is_some());
    }

    #[test]
    fn bad_entities_are_reported() {
        let config = Config {
            services: vec![json!({"id": "not-a-uuid"})],
            ..Config::default()
        };
        let error = Snapshot::build(&config, &PluginEnv::default())
            .err()
            .unwrap();
        assert!(error.to_string().starts_with("services not-a-uuid"));
    }

    pub fn key_auth_config() -> Value {
        json!({"key_names": ["apikey"], "hide_credentials": false, "anonymous": null,
               "key_in_header": true, "key_in_query": true, "key_in_body": false,
               "run_on_preflight": true, "realm": null})
    }

    pub fn termination_config(status: u16) -> Value {
        json!({"status_code": status, "message": null, "content_type": null, "body": null,
               "echo": false, "trigger": null})
    }
}
