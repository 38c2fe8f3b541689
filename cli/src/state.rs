//! Reading the gateway's current state through the Admin API.
//!
//! Each collection (services, routes, consumers, plugins, key-auths) is
//! read page by page (`size=1000`, then `offset=`), the five of them at
//! once, with decK's select-tag semantics: `tags=a,b` asks the server for
//! entities carrying *all* the tags, and the answer is filtered again here
//! (Kong takes at most five tags in a query).
//!
//! An entity is brought to the canonical form of `schemas` with
//! [`EntityKind::validate`] ([`canonical_entity`]), so what a real Kong
//! answers (explicit `null`s, fields in another order, sets unsorted)
//! compares equal to what the files build. Fields this tool does not know
//! (a newer Kong's) are dropped with a warning; an entity that still does
//! not validate (a plugin this gateway does not have) is kept as the server
//! sent it, also with a warning. `dump` reads the state as values, each
//! made canonical as it comes; `diff`, `sync` and `reset` read it packed as
//! sent, and the plan makes an entity canonical only when it parses it
//! (see [`LiveEntity`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use schemas::config::{id_of, ByKind, Config};
use schemas::error::PathSeg;
use schemas::model::unix_now;
use schemas::packed::{Packed, PackedConfig};
use schemas::EntityKind;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::client::{AdminClient, ClientError};

/// Page size asked for; Kong's maximum.
const PAGE_SIZE: &str = "1000";
/// Kong refuses a `tags` filter with more than five tags.
const MAX_QUERY_TAGS: usize = 5;

/// The live configuration and what was odd about it: its entities packed
/// (`diff`, `sync`, `reset`: see `schemas::packed`) or as values (`dump`).
#[derive(Debug, Clone)]
pub struct LiveState<T = Packed> {
    /// The entities within the select tags, in the server's order: as
    /// canonical values, or packed as sent (see [`LiveEntity`]).
    pub config: ByKind<T>,
    /// Entities that could not be fully understood, one line each.
    pub warnings: Vec<String>,
}

impl<T> Default for LiveState<T> {
    fn default() -> Self {
        LiveState {
            config: ByKind::default(),
            warnings: Vec::new(),
        }
    }
}

/// How a read keeps each entity it is sent.
pub trait LiveEntity: Sized + Send {
    /// One entity of `kind`, `raw` as the server sent it, as kept; `None`
    /// when it lacks one of `select_tags`.
    fn read(
        kind: EntityKind,
        raw: &RawValue,
        select_tags: &[String],
        warnings: &mut Vec<String>,
    ) -> Result<Option<Self>, StateError>;
}

/// As values, made canonical as they come (`dump`).
impl LiveEntity for Value {
    fn read(
        kind: EntityKind,
        raw: &RawValue,
        select_tags: &[String],
        warnings: &mut Vec<String>,
    ) -> Result<Option<Self>, StateError> {
        let entity = as_value(kind, raw, select_tags)?;
        Ok(entity.map(|entity| canonical_entity(kind, entity, warnings)))
    }
}

/// Packed as the server sent them, never parsed into values when no
/// select tag or credential lifetime asks to look inside (`diff`, `sync`,
/// `reset`). They are made canonical only where the plan needs their
/// fields ([`canonical_entity`]): an entity whose text equals the files'
/// canonical entity is canonical already.
impl LiveEntity for Packed {
    fn read(
        kind: EntityKind,
        raw: &RawValue,
        select_tags: &[String],
        _warnings: &mut Vec<String>,
    ) -> Result<Option<Self>, StateError> {
        let as_sent = select_tags.is_empty() && !has_lifetime(kind, raw);
        match (as_sent, Packed::from_json(raw.get())) {
            (true, Ok(packed)) => Ok(Some(packed)),
            _ => Ok(as_value(kind, raw, select_tags)?.map(|entity| Packed::new(&entity))),
        }
    }
}

/// `raw` as a value, a credential's countdown read as the lifetime it was
/// given; `None` when it lacks one of `select_tags`.
fn as_value(
    kind: EntityKind,
    raw: &RawValue,
    select_tags: &[String],
) -> Result<Option<Value>, StateError> {
    let mut entity: Value =
        serde_json::from_str(raw.get()).map_err(|error| not_json(kind, &error))?;
    if !has_all_tags(&entity, select_tags) {
        return Ok(None);
    }
    if kind == EntityKind::KeyAuthCredential {
        ttl_as_configured(&mut entity, unix_now());
    }
    Ok(Some(entity))
}

/// Whether `raw` is a credential whose `ttl` may count down.
fn has_lifetime(kind: EntityKind, raw: &RawValue) -> bool {
    kind == EntityKind::KeyAuthCredential && !raw.get().contains("\"ttl\":null")
}

/// A page that is not JSON: the error reading it as a value gives.
fn not_json(kind: EntityKind, error: &serde_json::Error) -> StateError {
    StateError::Request {
        collection: kind.collection(),
        source: AdminClient::decode_error(kind.admin_path(), error.to_string()),
    }
}

/// Why the current state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading {collection} from the gateway: {source}")]
    Request {
        collection: &'static str,
        #[source]
        source: ClientError,
    },
    #[error("reading {collection} from the gateway: {reason}")]
    BadAnswer {
        collection: &'static str,
        reason: String,
    },
    #[error("reading the configuration from the gateway: {0}")]
    Config(String),
    /// The caller no longer wanted the state (see [`fetch_unless`]).
    #[error("reading the gateway's state was cancelled")]
    Cancelled,
}

impl StateError {
    /// The underlying Admin API error, if there is one.
    pub fn client_error(&self) -> Option<&ClientError> {
        match self {
            Self::Request { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Read every collection, keeping the entities that carry all `select_tags`.
/// The collections are read at once, each page kept as it comes (see
/// [`LiveEntity`]).
pub fn fetch<T: LiveEntity>(
    client: &AdminClient,
    select_tags: &[String],
) -> Result<LiveState<T>, StateError> {
    fetch_unless(client, select_tags, &AtomicBool::new(false))
}

/// [`fetch`], giving up with [`StateError::Cancelled`] before the next
/// page once `cancelled` is set: a read started ahead of time stops
/// loading the gateway when its answer turns out not to be needed.
pub fn fetch_unless<T: LiveEntity>(
    client: &AdminClient,
    select_tags: &[String],
    cancelled: &AtomicBool,
) -> Result<LiveState<T>, StateError> {
    let results: Vec<(EntityKind, Result<LiveState<T>, StateError>)> = thread::scope(|scope| {
        let handles: Vec<_> = EntityKind::ALL
            .into_iter()
            .map(|kind| {
                let handle = scope.spawn(move || fetch_kind(client, kind, select_tags, cancelled));
                (kind, handle)
            })
            .collect();
        handles
            .into_iter()
            .map(|(kind, handle)| {
                let result = handle
                    .join()
                    .unwrap_or_else(|_| Err(bad_answer(kind, "the reader thread failed")));
                (kind, result)
            })
            .collect()
    });
    let mut state = LiveState::<T>::default();
    for (kind, result) in results {
        let mut part = result?;
        state.config.move_kind(kind, &mut part.config);
        state.warnings.append(&mut part.warnings);
    }
    Ok(state)
}

/// `GET /config` (our gateway): the whole stored configuration, already
/// canonical. A 404/405 (a real Kong) comes back as the client error.
pub fn fetch_whole_config(client: &AdminClient) -> Result<Config, StateError> {
    let answer = client.get_config().map_err(|source| StateError::Request {
        collection: "config",
        source,
    })?;
    let config = answer.get("config").cloned().unwrap_or(Value::Null);
    serde_json::from_value(config).map_err(|error| StateError::Config(error.to_string()))
}

/// The entities of `whole` that are not in `selected` (by id): those
/// outside the select tags, which a sync must leave as they are.
pub fn outside_selection(whole: &Config, selected: &PackedConfig) -> PackedConfig {
    let mut outside = PackedConfig::default();
    for kind in EntityKind::ALL {
        let inside: HashSet<&str> = selected
            .entities(kind)
            .iter()
            .filter_map(Packed::id)
            .collect();
        let kept = whole
            .entities(kind)
            .iter()
            .filter(|entity| id_of(entity).is_none_or(|id| !inside.contains(id)))
            .map(Packed::new);
        outside.entities_mut(kind).extend(kept);
    }
    outside
}

/// Every page of one collection, filtered by the select tags.
fn fetch_kind<T: LiveEntity>(
    client: &AdminClient,
    kind: EntityKind,
    select_tags: &[String],
    cancelled: &AtomicBool,
) -> Result<LiveState<T>, StateError> {
    let collection = kind.admin_path();
    let query_tags = select_tags
        .iter()
        .take(MAX_QUERY_TAGS)
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    let mut state = LiveState::<T>::default();
    let mut offset: Option<String> = None;
    let mut seen_offsets = HashSet::new();
    loop {
        if cancelled.load(Ordering::Relaxed) {
            return Err(StateError::Cancelled);
        }
        let mut query = vec![("size", PAGE_SIZE)];
        if !query_tags.is_empty() {
            query.push(("tags", query_tags.as_str()));
        }
        if let Some(offset) = &offset {
            query.push(("offset", offset.as_str()));
        }
        let page = client
            .get_text(collection, &query)
            .map_err(|source| StateError::Request {
                collection: kind.collection(),
                source,
            })?;
        let (data, next) = read_page(kind, &page)?;
        for raw in data {
            let entity = T::read(kind, raw, select_tags, &mut state.warnings)?;
            state.config.entities_mut(kind).extend(entity);
        }
        match next {
            Some(next) if seen_offsets.insert(next.clone()) => offset = Some(next),
            Some(_) => {
                return Err(StateError::BadAnswer {
                    collection: kind.collection(),
                    reason: "the server repeated a pagination offset".to_owned(),
                })
            }
            None => {
                crate::timing::note(&format!("read {}", kind.collection()));
                return Ok(state);
            }
        }
    }
}

/// Kong answers a key-auth credential's `ttl` as the seconds it has left;
/// a file (and so `dump`) means the lifetime it was given at `created_at`.
/// Read back as that lifetime (seconds left + seconds since `created_at`),
/// a credential counting down is not a change to sync.
fn ttl_as_configured(credential: &mut Value, now: i64) {
    let left = credential.get("ttl").and_then(Value::as_i64);
    let created_at = credential.get("created_at").and_then(Value::as_i64);
    if let (Some(left), Some(created_at)) = (left, created_at) {
        if left > 0 && now >= created_at {
            credential["ttl"] = Value::from(left.saturating_add(now - created_at));
        }
    }
}

/// A page's `data`, each entity as its text, and its `offset` (absent or
/// null on the last page).
fn read_page(kind: EntityKind, text: &str) -> Result<(Vec<&RawValue>, Option<String>), StateError> {
    #[derive(serde::Deserialize)]
    struct Page<'a> {
        #[serde(borrow)]
        data: Option<&'a RawValue>,
        offset: Option<Value>,
    }
    let page: Page<'_> = match serde_json::from_str(text) {
        Ok(page) => page,
        Err(_) if text.trim().is_empty() => return Err(bad_answer(kind, "expected a JSON object")),
        Err(error) => match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => return Err(bad_answer(kind, "expected a JSON object")),
            Err(_) => return Err(not_json(kind, &error)),
        },
    };
    let data = match page.data.map(RawValue::get) {
        Some(items) if items.starts_with('[') => {
            serde_json::from_str::<Vec<&RawValue>>(items).map_err(|error| not_json(kind, &error))?
        }
        Some(empty)
            if serde_json::from_str::<Map<String, Value>>(empty).is_ok_and(|m| m.is_empty()) =>
        {
            Vec::new()
        }
        _ => return Err(bad_answer(kind, "expected a 'data' array")),
    };
    let next = match page.offset {
        Some(Value::String(offset)) if !offset.is_empty() => Some(offset),
        _ => None,
    };
    Ok((data, next))
}

fn bad_answer(kind: EntityKind, reason: &str) -> StateError {
    StateError::BadAnswer {
        collection: kind.collection(),
        reason: reason.to_owned(),
    }
}

fn has_all_tags(entity: &Value, select_tags: &[String]) -> bool {
    if select_tags.is_empty() {
        return true;
    }
    let tags: Vec<&str> = entity
        .get("tags")
        .and_then(Value::as_array)
        .map(|tags| tags.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    select_tags
        .iter()
        .all(|wanted| tags.contains(&wanted.as_str()))
}

/// The canonical form of an entity the server sent; see the module doc.
pub fn canonical_entity(kind: EntityKind, raw: Value, warnings: &mut Vec<String>) -> Value {
    let stripped = strip_nulls(raw);
    let violation = match kind.validate(&stripped) {
        Ok(canonical) => return canonical,
        Err(violation) => violation,
    };
    let label = entity_label(kind, &stripped);
    let unknown: Vec<&schemas::FieldPath> = violation
        .errors
        .iter()
        .filter(|error| error.message == "unknown field")
        .map(|error| &error.path)
        .collect();
    if unknown.len() == violation.errors.len() {
        let mut trimmed = stripped.clone();
        for path in &unknown {
            remove_path(&mut trimmed, &path.0);
        }
        if let Ok(canonical) = kind.validate(&trimmed) {
            let names: Vec<String> = unknown.iter().map(ToString::to_string).collect();
            warnings.push(format!(
                "{label}: ignoring fields gwctl does not know: {}",
                names.join(", ")
            ));
            return canonical;
        }
    }
    warnings.push(format!(
        "{label}: not understood by gwctl ({violation}); compared as the gateway sent it"
    ));
    stripped
}

/// `service svc1 (id ...)` for warnings about live entities.
fn entity_label(kind: EntityKind, entity: &Value) -> String {
    let name = ["name", "username", "custom_id"]
        .iter()
        .find_map(|field| entity.get(*field).and_then(Value::as_str));
    let id = id_of(entity).unwrap_or("without id");
    match name {
        Some(name) => format!("{} {name} ({id})", kind.deck_kind()),
        None => format!("{} {id}", kind.deck_kind()),
    }
}

/// The value without object members that are `null` (at any depth): Kong
/// answers with every unset field as `null`, which means "absent".
pub fn strip_nulls(mut value: Value) -> Value {
    strip_nulls_in_place(&mut value);
    value
}

/// [`strip_nulls`] without rebuilding the objects.
fn strip_nulls_in_place(value: &mut Value) {
    match value {
        Value::Object(object) => {
            object.retain(|_, member| !member.is_null());
            object.values_mut().for_each(strip_nulls_in_place);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls_in_place),
        _ => {}
    }
}

fn remove_path(value: &mut Value, path: &[PathSeg]) {
    match path {
        [] => {}
        [PathSeg::Key(key)] => {
            if let Some(object) = value.as_object_mut() {
                object.shift_remove(key);
            }
        }
        [PathSeg::Index(index)] => {
            if let Some(items) = value.as_array_mut() {
                if *index < items.len() {
                    items.remove(*index);
                }
            }
        }
        [first, rest @ ..] => {
            let child = match first {
                PathSeg::Key(key) => value.get_mut(key.as_str()),
                PathSeg::Index(index) => value.get_mut(*index),
            };
            if let Some(child) = child {
                remove_path(child, rest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "5f3b3c42-8bd2-4c3a-9a4e-0c6a1e1d2b01";

    #[test]
    fn kongs_answers_become_canonical() {
        let mut warnings = Vec::new();
        let raw = json!({"id": ID, "name": "svc1", "host": "example.com", "port": 80,
            "protocol": "http", "path": null, "retries": 5, "tags": null,
            "connect_timeout": 60000, "created_at": 1, "updated_at": 2,
            "client_certificate": null, "tls_verify": null, "enabled": true});
        let canonical = canonical_entity(EntityKind::Service, raw, &mut warnings);
        let from_file = EntityKind::Service
            .validate(
                &json!({"id": ID, "name": "svc1", "url": "http://example.com",
                "created_at": 1, "updated_at": 2}),
            )
            .unwrap();
        assert_eq!(canonical, from_file);
        assert!(warnings.is_empty());
    }

    #[test]
    fn unknown_fields_are_dropped_with_a_warning() {
        let mut warnings = Vec::new();
        let raw = json!({"id": ID, "username": "alex", "type": 0, "created_at": 1});
        let canonical = canonical_entity(EntityKind::Consumer, raw, &mut warnings);
        assert_eq!(canonical["username"], "alex");
        assert!(canonical.get("type").is_none());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("type"), "{}", warnings[0]);
    }

    #[test]
    fn unknown_plugins_are_kept_as_sent() {
        let mut warnings = Vec::new();
        let raw = json!({"id": ID, "name": "rate-limiting", "config": {"minute": 5}});
        let kept = canonical_entity(EntityKind::Plugin, raw.clone(), &mut warnings);
        assert_eq!(kept, raw);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn a_cancelled_read_sends_nothing() {
        // Nothing listens there: a request would fail with a transport error.
        let client =
            AdminClient::new("http://127.0.0.1:9", &[], std::time::Duration::from_secs(1)).unwrap();
        let cancelled = AtomicBool::new(true);
        let result = fetch_unless::<Packed>(&client, &[], &cancelled);
        assert!(matches!(result, Err(StateError::Cancelled)), "{result:?}");
    }

    #[test]
    fn pages_and_tags() {
        let page = json!({"data": [{"id": ID}], "offset": "abc", "next": "/services?offset=abc"});
        let page = page.to_string();
        let (data, next) = read_page(EntityKind::Service, &page).unwrap();
        assert_eq!((data.len(), next.as_deref()), (1, Some("abc")));
        let (data, last) = read_page(EntityKind::Service, r#"{"data": {}, "next": null}"#).unwrap();
        assert_eq!((data.len(), last), (0, None));
        for bad in ["[1]", "", r#"{"data": 1}"#, "{nope"] {
            assert!(read_page(EntityKind::Service, bad).is_err(), "{bad}");
        }
        let tagged = json!({"tags": ["a", "b"]});
        assert!(has_all_tags(&tagged, &["a".into(), "b".into()]));
        assert!(!has_all_tags(&tagged, &["a".into(), "c".into()]));
        assert!(has_all_tags(&json!({}), &[]));
    }

    #[test]
    fn outside_selection_keeps_what_the_filter_hid() {
        let whole = Config {
            services: vec![json!({"id": "1"}), json!({"id": "2"})],
            ..Config::default()
        };
        let selected = Config {
            services: vec![json!({"id": "2"})],
            ..Config::default()
        };
        let outside = outside_selection(&whole, &PackedConfig::pack(&selected));
        assert_eq!(outside.unpack().services, vec![json!({"id": "1"})]);
    }

    #[test]
    fn a_credentials_countdown_reads_back_as_the_ttl_it_was_given() {
        let mut counting = json!({"key": "k", "ttl": 3590, "created_at": 1_000});
        ttl_as_configured(&mut counting, 1_010);
        assert_eq!(counting["ttl"], 3600);
        let mut forever = json!({"key": "k", "ttl": null, "created_at": 1_000});
        ttl_as_configured(&mut forever, 1_010);
        assert_eq!(forever["ttl"], Value::Null);
    }
}
