//! Store unit tests: constraints, cascades, pagination, tags, the
//! whole-configuration swap, durability across reopen, and a bulk smoke.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use schemas::config::Config;
use schemas::EntityKind;
use serde_json::{json, Value};
use uuid::Uuid;

use super::*;

fn store() -> Store {
    Store::open_temporary().expect("temporary store")
}

/// How often a store called its backend's `commit` and `replace`.
#[derive(Default)]
struct Calls {
    commits: AtomicUsize,
    replaces: AtomicUsize,
}

/// The sled backend, counting the calls it gets.
struct Counted {
    inner: sled::SledBackend,
    calls: Arc<Calls>,
}

impl EntityBackend for Counted {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn load(&self) -> Result<backend::Loaded, StoreError> {
        self.inner.load()
    }
    fn commit(&self, base: u64, changes: &[backend::RowChange<'_>]) -> Result<u64, StoreError> {
        self.calls.commits.fetch_add(1, Ordering::SeqCst);
        self.inner.commit(base, changes)
    }
    fn replace(&self, base: u64, rows: &[backend::KindRows]) -> Result<u64, StoreError> {
        self.calls.replaces.fetch_add(1, Ordering::SeqCst);
        self.inner.replace(base, rows)
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
    fn is_reachable(&self) -> bool {
        self.inner.is_reachable()
    }
    fn sessions(&self) -> Arc<dyn SessionStore> {
        self.inner.sessions()
    }
}

/// A temporary store whose backend calls are counted.
fn counted_store() -> (Store, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    let backend = Counted {
        inner: sled::SledBackend::open_temporary().expect("temporary backend"),
        calls: Arc::clone(&calls),
    };
    (Store::new(Box::new(backend)).expect("store"), calls)
}

fn id(entity: &Value) -> Uuid {
    Uuid::parse_str(entity["id"].as_str().expect("id")).expect("uuid")
}

fn by_id(entity: &Value) -> EntityKey {
    EntityKey::Id(id(entity))
}

fn service(store: &Store, name: &str) -> Value {
    store
        .insert(
            EntityKind::Service,
            json!({"name": name, "url": "http://127.0.0.1:9000"}),
        )
        .expect("service")
}

fn route(store: &Store, name: &str, service: &Value) -> Value {
    let input =
        json!({"name": name, "paths": ["/".to_owned() + name], "service": {"id": service["id"]}});
    store.insert(EntityKind::Route, input).expect("route")
}

fn consumer(store: &Store, username: &str) -> Value {
    store
        .insert(EntityKind::Consumer, json!({"username": username}))
        .expect("consumer")
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("gateway-store-{}", Uuid::new_v4())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn insert_fills_id_timestamps_and_defaults() {
    let store = store();
    let created = service(&store, "svc1");
    assert!(created["created_at"].as_i64().is_some_and(|at| at > 0));
    assert_eq!(created["created_at"], created["updated_at"]);
    assert_eq!(
        (created["port"].clone(), created["retries"].clone()),
        (json!(9000), json!(5))
    );
    let by_name = store
        .get(EntityKind::Service, &EntityKey::parse("svc1"))
        .unwrap();
    assert_eq!(by_name, Some(created.clone()));
    assert_eq!(
        store.get(EntityKind::Service, &by_id(&created)).unwrap(),
        Some(created)
    );
}

#[test]
fn unique_names_conflict_like_kong() {
    let store = store();
    service(&store, "svc1");
    let error = store
        .insert(
            EntityKind::Service,
            json!({"name": "svc1", "host": "example.com"}),
        )
        .unwrap_err();
    assert_eq!(error.status(), 409);
    assert_eq!(
        error.kong_body(),
        json!({"code": 5, "name": "unique constraint violation",
            "message": "UNIQUE violation detected on '{name=\"svc1\"}'", "fields": {"name": "svc1"}})
    );
    let first = consumer(&store, "alice");
    let custom = store.insert(
        EntityKind::Consumer,
        json!({"username": "bob", "custom_id": "c1"}),
    );
    assert!(custom.is_ok());
    let clash = store
        .update(
            EntityKind::Consumer,
            &by_id(&first),
            json!({"custom_id": "c1"}),
        )
        .unwrap_err();
    assert_eq!(clash.kong_body()["fields"], json!({"custom_id": "c1"}));
}

#[test]
fn ids_are_stored_in_canonical_form() {
    let store = store();
    let upper = Uuid::new_v4().to_string().to_uppercase();
    let created = store
        .insert(EntityKind::Consumer, json!({"id": upper, "username": "u"}))
        .unwrap();
    assert_eq!(created["id"], upper.to_lowercase());
    assert!(store
        .get(EntityKind::Consumer, &EntityKey::parse(&upper))
        .unwrap()
        .is_some());
}

#[test]
fn inserting_a_taken_id_is_a_primary_key_violation() {
    let store = store();
    let first = service(&store, "a");
    let error = store
        .insert(
            EntityKind::Service,
            json!({"id": first["id"], "host": "example.com"}),
        )
        .unwrap_err();
    assert_eq!(error.code(), 3);
    assert_eq!(error.status(), 400);
}

#[test]
fn plugin_identity_is_unique_per_scope() {
    let store = store();
    let svc = service(&store, "svc");
    let plugin = json!({"name": "key-auth", "service": {"id": svc["id"]}});
    store.insert(EntityKind::Plugin, plugin.clone()).unwrap();
    let error = store.insert(EntityKind::Plugin, plugin).unwrap_err();
    let expected = format!(
        "UNIQUE violation detected on '{{consumer=null,name=\"key-auth\",route=null,service={{id=\"{}\"}}}}'",
        svc["id"].as_str().unwrap()
    );
    assert_eq!(error.to_string(), expected);
    assert!(store
        .insert(EntityKind::Plugin, json!({"name": "key-auth"}))
        .is_ok());
}

#[test]
fn foreign_keys_must_exist() {
    let store = store();
    let missing = Uuid::new_v4().to_string();
    let error = store
        .insert(
            EntityKind::Route,
            json!({"paths": ["/"], "service": {"id": missing}}),
        )
        .unwrap_err();
    assert_eq!(
        error.kong_body(),
        json!({"code": 4, "name": "foreign key violation",
            "message": format!("the foreign key '{{id=\"{missing}\"}}' does not reference an existing 'services' entity."),
            "fields": {"service": {"id": missing}}})
    );
    assert!(store.export().unwrap().routes.is_empty());
}

#[test]
fn schema_violations_leave_nothing_behind() {
    let store = store();
    let error = store
        .insert(EntityKind::Service, json!({"name": "x"}))
        .unwrap_err();
    assert_eq!(
        error.kong_body()["message"],
        "schema violation (host: required field missing)"
    );
    assert!(store.export().unwrap().is_empty());
}

#[test]
fn a_service_with_routes_cannot_be_deleted() {
    let store = store();
    let svc = service(&store, "svc");
    let first = route(&store, "r1", &svc);
    let error = store.delete(EntityKind::Service, &by_id(&svc)).unwrap_err();
    assert_eq!(
        error.kong_body(),
        json!({"code": 4, "name": "foreign key violation",
            "message": "an existing 'routes' entity references this 'services' entity",
            "fields": {"@referenced_by": "routes"}})
    );
    assert!(store.delete(EntityKind::Route, &by_id(&first)).unwrap());
    assert!(store
        .delete(EntityKind::Service, &EntityKey::parse("svc"))
        .unwrap());
    assert!(!store
        .delete(EntityKind::Service, &EntityKey::parse("svc"))
        .unwrap());
}

#[test]
fn deleting_a_consumer_removes_its_credentials_and_plugins() {
    let store = store();
    let alice = consumer(&store, "alice");
    let credential = store
        .insert(
            EntityKind::KeyAuthCredential,
            json!({"consumer": {"id": alice["id"]}}),
        )
        .unwrap();
    assert_eq!(credential["key"].as_str().map(str::len), Some(32));
    let scoped = json!({"name": "request-termination", "consumer": {"id": alice["id"]}});
    store.insert(EntityKind::Plugin, scoped).unwrap();
    store
        .insert(EntityKind::Plugin, json!({"name": "key-auth"}))
        .unwrap();

    store
        .delete(EntityKind::Consumer, &EntityKey::parse("alice"))
        .unwrap();
    let left = store.export().unwrap();
    assert!(left.consumers.is_empty() && left.keyauth_credentials.is_empty());
    assert_eq!(left.plugins.len(), 1);
    let key = credential["key"].as_str().unwrap();
    assert_eq!(
        store
            .get(EntityKind::KeyAuthCredential, &EntityKey::parse(key))
            .unwrap(),
        None
    );
}

#[test]
fn deleting_a_route_removes_its_plugins() {
    let store = store();
    let svc = service(&store, "svc");
    let first = route(&store, "r1", &svc);
    store
        .insert(
            EntityKind::Plugin,
            json!({"name": "key-auth", "route": {"id": first["id"]}}),
        )
        .unwrap();
    store
        .insert(
            EntityKind::Plugin,
            json!({"name": "key-auth", "service": {"id": svc["id"]}}),
        )
        .unwrap();
    store
        .delete(EntityKind::Route, &EntityKey::parse("r1"))
        .unwrap();
    let plugins = store.export().unwrap().plugins;
    assert_eq!(plugins.len(), 1);
    assert_eq!(plugins[0]["service"]["id"], svc["id"]);
}

#[test]
fn upsert_creates_then_replaces_keeping_created_at() {
    let store = store();
    let key = EntityKey::parse("svc");
    let created = store
        .upsert(
            EntityKind::Service,
            &key,
            json!({"host": "a.example", "retries": 1}),
        )
        .unwrap();
    assert_eq!(created["name"], "svc");
    let replaced = store
        .upsert(EntityKind::Service, &key, json!({"host": "b.example"}))
        .unwrap();
    assert_eq!(replaced["id"], created["id"]);
    assert_eq!(replaced["retries"], 5);
    assert_eq!(replaced["created_at"], created["created_at"]);
    let fixed_id = Uuid::new_v4();
    let by_id = store
        .upsert(
            EntityKind::Consumer,
            &EntityKey::Id(fixed_id),
            json!({"username": "u"}),
        )
        .unwrap();
    assert_eq!(id(&by_id), fixed_id);
}

#[test]
fn patch_merges_config_and_keeps_the_session_secret() {
    let store = store();
    let session = store
        .insert(
            EntityKind::Plugin,
            json!({"name": "session", "config": {"cookie_secure": false}}),
        )
        .unwrap();
    let secret = session["config"]["secret"].clone();
    assert!(secret.as_str().is_some_and(|text| !text.is_empty()));
    let patched = store
        .update(
            EntityKind::Plugin,
            &by_id(&session),
            json!({"config": {"cookie_name": "sid"}}),
        )
        .unwrap();
    assert_eq!(patched["config"]["cookie_name"], "sid");
    assert_eq!(patched["config"]["cookie_secure"], false);
    assert_eq!(patched["config"]["secret"], secret);
    let cleared = store
        .update(
            EntityKind::Plugin,
            &by_id(&session),
            json!({"config": {"cookie_secure": null}}),
        )
        .unwrap();
    assert_eq!(cleared["config"]["cookie_secure"], true);
    let missing = store.update(
        EntityKind::Plugin,
        &EntityKey::Id(Uuid::new_v4()),
        json!({}),
    );
    assert!(matches!(missing, Err(StoreError::NotFound)));
}

#[test]
fn patch_with_url_replaces_the_address() {
    let store = store();
    let svc = service(&store, "svc");
    let patched = store
        .update(
            EntityKind::Service,
            &by_id(&svc),
            json!({"url": "https://example.com/v1"}),
        )
        .unwrap();
    assert_eq!(patched["host"], "example.com");
    assert_eq!(patched["port"], 443);
    assert_eq!(patched["path"], "/v1");
}

#[test]
fn pagination_round_trip() {
    let store = store();
    for index in 0..25 {
        service(&store, &format!("s{index}"));
    }
    let mut seen = Vec::new();
    let mut query = ListQuery::parse(Some("10"), None, None).unwrap();
    let mut pages = 0;
    loop {
        let page = store.list(EntityKind::Service, None, &query).unwrap();
        pages += 1;
        seen.extend(page.data.iter().map(id));
        let Some(offset) = page.offset else { break };
        query = ListQuery::parse(Some("10"), Some(&offset), None).unwrap();
    }
    assert_eq!(pages, 3);
    let mut sorted = seen.clone();
    sorted.sort_by_key(|id| id.to_string());
    sorted.dedup();
    assert_eq!(sorted, seen);
    assert_eq!(seen.len(), 25);
}

#[test]
fn tags_filter_and_or() {
    let store = store();
    for (name, tags) in [
        ("a", json!(["x", "y"])),
        ("b", json!(["x"])),
        ("c", json!(["z"])),
    ] {
        store
            .insert(
                EntityKind::Service,
                json!({"name": name, "host": "h", "tags": tags}),
            )
            .unwrap();
    }
    let names = |tags: &str| -> Vec<String> {
        let query = ListQuery::parse(None, None, Some(tags)).unwrap();
        let mut names: Vec<String> = store
            .list(EntityKind::Service, None, &query)
            .unwrap()
            .data
            .iter()
            .map(|entity| entity["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names("x,y"), vec!["a"]);
    assert_eq!(names("x"), vec!["a", "b"]);
    assert_eq!(names("y/z"), vec!["a", "c"]);
}

#[test]
fn nested_listing_pages_children() {
    let store = store();
    let svc = service(&store, "svc");
    let other = service(&store, "other");
    for index in 0..5 {
        route(&store, &format!("r{index}"), &svc);
    }
    route(&store, "elsewhere", &other);
    let query = ListQuery::parse(Some("3"), None, None).unwrap();
    let parent = Some((EntityKind::Service, id(&svc)));
    let first = store.list(EntityKind::Route, parent, &query).unwrap();
    assert_eq!(first.data.len(), 3);
    let next = ListQuery::parse(Some("3"), first.offset.as_deref(), None).unwrap();
    let second = store.list(EntityKind::Route, parent, &next).unwrap();
    assert_eq!(second.data.len(), 2);
    assert!(second.offset.is_none());
}

#[test]
fn commit_hook_sees_each_write_with_its_changed_rows() {
    let store = store();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = Arc::clone(&seen);
    store.set_on_commit(Box::new(move |commit| {
        let line = match commit {
            Commit::Replaced => "replaced".to_owned(),
            Commit::Entities(changes) => changes
                .iter()
                .map(|change| {
                    let action = if change.row.is_some() {
                        "put"
                    } else {
                        "remove"
                    };
                    format!("{action} {} {}", change.kind.collection(), change.id)
                })
                .collect::<Vec<_>>()
                .join(", "),
        };
        record.lock().unwrap().push(line);
    }));
    let svc = service(&store, "svc");
    let _ = store.insert(EntityKind::Service, json!({"name": "svc", "host": "h"}));
    store
        .update(EntityKind::Service, &by_id(&svc), json!({"host": "other"}))
        .unwrap();
    store.delete(EntityKind::Service, &by_id(&svc)).unwrap();
    store.delete(EntityKind::Service, &by_id(&svc)).unwrap();
    let id = svc["id"].as_str().unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            format!("put services {id}"),
            format!("remove services {id}, put services {id}"),
            format!("remove services {id}"),
        ]
    );
}

fn sample_config() -> Config {
    let service_id = Uuid::new_v4().to_string();
    let consumer_id = Uuid::new_v4().to_string();
    Config {
        services: vec![json!({"id": service_id, "name": "svc", "url": "http://127.0.0.1:9000"})],
        routes: vec![
            json!({"id": Uuid::new_v4().to_string(), "name": "r", "paths": ["/r"],
            "service": {"id": service_id}}),
        ],
        consumers: vec![json!({"id": consumer_id, "username": "alice"})],
        plugins: vec![json!({"id": Uuid::new_v4().to_string(), "name": "session",
            "service": {"id": service_id}})],
        keyauth_credentials: vec![json!({"id": Uuid::new_v4().to_string(),
            "consumer": {"id": consumer_id}})],
    }
}

#[test]
fn replace_all_counts_and_keeps_unchanged_entities() {
    let (store, calls) = counted_store();
    let stale = service(&store, "stale");
    let config = sample_config();
    let summary = store.replace_all(&config).unwrap();
    assert_eq!(summary.total().created, 5);
    assert_eq!(summary.of(EntityKind::Service).deleted, 1);
    assert_eq!(
        store.get(EntityKind::Service, &by_id(&stale)).unwrap(),
        None
    );
    let first = store.export().unwrap();
    let secret = first.plugins[0]["config"]["secret"].clone();
    let key = first.keyauth_credentials[0]["key"].clone();
    assert!(secret.is_string() && key.is_string());

    let again = store.replace_all(&config).unwrap();
    assert!(again.is_unchanged());
    assert_eq!(again.total().unchanged, 5);
    assert_eq!(store.export().unwrap(), first);

    assert_eq!(
        calls.replaces.load(Ordering::SeqCst),
        1,
        "a big change replaces every row"
    );
    let commits = calls.commits.load(Ordering::SeqCst);
    let mut changed = config.clone();
    changed.services[0]["retries"] = json!(1);
    let summary = store.replace_all(&changed).unwrap();
    assert_eq!(summary.of(EntityKind::Service).updated, 1);
    assert_eq!(
        (
            calls.replaces.load(Ordering::SeqCst),
            calls.commits.load(Ordering::SeqCst)
        ),
        (1, commits + 1),
        "a small change is one transaction"
    );
    let after = store.export().unwrap();
    assert_eq!(
        after.services[0]["created_at"],
        first.services[0]["created_at"]
    );
    assert_eq!(after.plugins[0]["config"]["secret"], secret);
    assert_eq!(
        store
            .get(EntityKind::Service, &EntityKey::parse("svc"))
            .unwrap()
            .unwrap()["retries"],
        1
    );
}

#[test]
fn replace_all_is_all_or_nothing() {
    let store = store();
    store.replace_all(sample_config()).unwrap();
    let before = store.export().unwrap();

    let mut invalid = sample_config();
    invalid
        .routes
        .push(json!({"id": Uuid::new_v4().to_string(), "name": "bad", "paths": ["nope"]}));
    let error = store.replace_all(&invalid).unwrap_err();
    assert_eq!(error.code(), 2);
    assert_eq!(error.kong_body()["entity"]["name"], "bad");
    assert_eq!(error.kong_body()["entity"]["kind"], "routes");

    let mut dangling = sample_config();
    dangling.routes[0]["service"] = json!({"id": Uuid::new_v4().to_string()});
    assert_eq!(store.replace_all(&dangling).unwrap_err().code(), 4);

    let mut duplicate = sample_config();
    let mut twin = duplicate.services[0].clone();
    twin["id"] = json!(Uuid::new_v4().to_string());
    duplicate.services.push(twin);
    assert_eq!(store.replace_all(&duplicate).unwrap_err().status(), 409);

    assert_eq!(store.export().unwrap(), before);
}

#[test]
fn incremental_replace_moves_unique_names() {
    let (store, calls) = counted_store();
    let mut config = Config::default();
    for index in 0..10 {
        config
            .consumers
            .push(json!({"id": Uuid::new_v4().to_string(), "username": format!("u{index}")}));
    }
    config
        .services
        .push(json!({"id": Uuid::new_v4().to_string(), "name": "svc", "host": "a"}));
    store.replace_all(&config).unwrap();
    let replaces = calls.replaces.load(Ordering::SeqCst);

    let replacement = Uuid::new_v4().to_string();
    config.services[0] = json!({"id": replacement, "name": "svc", "host": "b"});
    let summary = store.replace_all(&config).unwrap();
    assert_eq!(
        summary.of(EntityKind::Service),
        KindChanges {
            created: 1,
            deleted: 1,
            ..KindChanges::default()
        }
    );
    assert_eq!(calls.replaces.load(Ordering::SeqCst), replaces);
    let svc = store
        .get(EntityKind::Service, &EntityKey::parse("svc"))
        .unwrap()
        .unwrap();
    assert_eq!(svc["id"], replacement.as_str());
    assert_eq!(store.count(EntityKind::Service), 1);
}

#[test]
fn single_writes_use_the_new_generation_after_replace_all() {
    let store = store();
    store.replace_all(sample_config()).unwrap();
    let error = store
        .insert(EntityKind::Service, json!({"name": "svc", "host": "h"}))
        .unwrap_err();
    assert_eq!(error.code(), 5);
    let svc = store
        .get(EntityKind::Service, &EntityKey::parse("svc"))
        .unwrap()
        .unwrap();
    let routes = store
        .list(
            EntityKind::Route,
            Some((EntityKind::Service, id(&svc))),
            &ListQuery::default(),
        )
        .unwrap();
    assert_eq!(routes.data.len(), 1);
}

#[test]
fn reopen_keeps_data() {
    let dir = TempDir::new();
    let kept = {
        let store = Store::open(&dir.0, sled::DEFAULT_CACHE_CAPACITY_BYTES).unwrap();
        store.replace_all(sample_config()).unwrap();
        let extra = service(&store, "extra");
        let sessions = store.sessions();
        block_on(sessions.insert("s1", "data", u64::MAX)).unwrap();
        store.flush().unwrap();
        extra
    };
    let store = Store::new(Box::new(sled::SledBackend::reopen(&dir.0).unwrap())).unwrap();
    assert_eq!(
        store
            .get(EntityKind::Service, &EntityKey::parse("extra"))
            .unwrap(),
        Some(kept)
    );
    assert_eq!(store.export().unwrap().len(), 6);
    let sessions = store.sessions();
    assert_eq!(
        block_on(sessions.get("s1", 0)).unwrap().as_deref(),
        Some("data")
    );
    assert_eq!(store.revision(), 2, "a replace, then an insert");
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(future)
}

#[test]
fn plugin_names_in_use_are_distinct() {
    let store = store();
    let svc = service(&store, "svc");
    store
        .insert(EntityKind::Plugin, json!({"name": "key-auth"}))
        .unwrap();
    store
        .insert(
            EntityKind::Plugin,
            json!({"name": "key-auth", "service": {"id": svc["id"]}}),
        )
        .unwrap();
    store
        .insert(EntityKind::Plugin, json!({"name": "session"}))
        .unwrap();
    assert_eq!(
        store.plugin_names_in_use().unwrap(),
        vec!["key-auth", "session"]
    );
}

/// 100k entities (50k services + 50k routes) in release builds, 10k in debug.
#[test]
fn bulk_replace_all_smoke() {
    let count = if cfg!(debug_assertions) {
        5_000
    } else {
        50_000
    };
    let mut config = Config::default();
    for index in 0..count {
        let service_id = Uuid::new_v4().to_string();
        config
            .services
            .push(json!({"id": service_id, "name": format!("s{index}"),
            "host": "127.0.0.1", "port": 9000}));
        config.routes.push(
            json!({"id": Uuid::new_v4().to_string(), "name": format!("r{index}"),
            "paths": [format!("/r{index}")], "service": {"id": service_id}}),
        );
    }
    let store = store();
    let started = std::time::Instant::now();
    let summary = store.replace_all(&config).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(summary.total().created, 2 * count);
    let exported = std::time::Instant::now();
    assert_eq!(store.export().unwrap().len(), 2 * count);
    eprintln!(
        "replace_all of {} entities: {elapsed:?}; export: {:?}",
        2 * count,
        exported.elapsed()
    );
    let again = std::time::Instant::now();
    assert!(store.replace_all(&config).unwrap().is_unchanged());
    eprintln!("unchanged replace_all: {:?}", again.elapsed());
}
