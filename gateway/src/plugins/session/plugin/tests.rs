//! Unit tests of the session plugin: building, logout detection, the
//! tutorial flow, refresh, kong storage, remember, headers.

use super::*;
use crate::pdk::identity::{
    ANONYMOUS_CONSUMER, CONSUMER_ID, CONSUMER_USERNAME, CREDENTIAL_IDENTIFIER,
};
use crate::pdk::{AuthCredential, Identities};
use crate::plugins::session::cookie::{
    encode_payload, generate_sid, seal, SealInput, HEADER_ENCODED_SIZE,
};
use crate::plugins::session::open::subject;
use crate::plugins::session::NAME;
use crate::proxy::phases::tests::ctx_with_request;
use crate::proxy::phases::{PluginRunner, DEFAULT_BODY_CAP};
use crate::snapshot::tests::{consumer, credential, plugin, route, service};
use crate::snapshot::{Scope, Snapshot};
use crate::store::SledSessions;
use bytes::Bytes;
use http::header::COOKIE;
use http::StatusCode;
use schemas::config::Config;
use schemas::model::Consumer;
use serde_json::json;
use serde_json::Value;

const SECRET: &str = "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7dEf0hIj3k";
const EXPIRED: &str = "; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0";

/// A canonical session config (cookie_secure off, as in the tutorial)
/// with `overrides` applied.
fn session_config(overrides: Value) -> Value {
    let mut config = json!({
        "secret": SECRET, "storage": "cookie", "audience": "default",
        "idling_timeout": 900, "rolling_timeout": 3600, "absolute_timeout": 86400,
        "stale_ttl": 10, "cookie_name": "session", "cookie_path": "/",
        "cookie_domain": null, "cookie_same_site": "Strict", "cookie_http_only": true,
        "cookie_secure": false, "remember": false, "remember_cookie_name": "remember",
        "remember_rolling_timeout": 604800, "remember_absolute_timeout": 2592000,
        "response_headers": null, "request_headers": null, "read_body_for_logout": false,
        "logout_methods": ["POST", "DELETE"], "logout_query_arg": "session_logout",
        "logout_post_arg": "session_logout", "hash_subject": false, "store_metadata": false
    });
    for (key, value) in overrides.as_object().unwrap() {
        config[key] = value.clone();
    }
    config
}

/// The tutorial: key-auth in OR mode (anonymous `anon`), a session
/// plugin, consumer `alex` with key `hello_world`.
struct World {
    config: Config,
    env: PluginEnv,
    snapshot: Arc<Snapshot>,
    alex: Uuid,
    anonymous: Uuid,
    credential: Uuid,
    rows: Option<SledSessions>,
}

fn world(overrides: Value) -> World {
    let session = session_config(overrides);
    let (service_id, route_id) = (Uuid::new_v4(), Uuid::new_v4());
    let (alex, anonymous, credential_id) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let key_auth = json!({"key_names": ["apikey"], "hide_credentials": false,
        "anonymous": "anon", "key_in_header": true, "key_in_query": true,
        "key_in_body": false, "run_on_preflight": true, "realm": null});
    let config = Config {
        services: vec![service(service_id)],
        routes: vec![route(route_id, Some(service_id), "/")],
        consumers: vec![consumer(alex, "alex"), consumer(anonymous, "anon")],
        keyauth_credentials: vec![credential(credential_id, alex, "hello_world", None, 1)],
        plugins: vec![
            plugin("key-auth", key_auth, Scope::default()),
            plugin(NAME, session.clone(), Scope::default()),
        ],
    };
    let mut env = PluginEnv::default();
    let rows = (session["storage"] == "kong").then(temporary_rows);
    if let Some(rows) = &rows {
        env.sessions = Some(Arc::new(rows.clone()));
    }
    let snapshot = Arc::new(Snapshot::build(&config, &env).unwrap());
    World {
        config,
        env,
        snapshot,
        alex,
        anonymous,
        credential: credential_id,
        rows,
    }
}

fn temporary_rows() -> SledSessions {
    SledSessions::temporary().unwrap()
}

impl World {
    /// The session instance of this world, to inspect cookies.
    fn session(&self) -> Session {
        let config = serde_json::from_value(self.config.plugins[1]["config"].clone()).unwrap();
        Session::new(&config, &self.env).unwrap()
    }

    /// A cookie value sealed as the plugin would, for `data` in
    /// `audience`, created at `created_at` (rows stored for kong).
    fn craft(
        &self,
        kind: CookieKind,
        data: &KongSessionData,
        audience: &str,
        created_at: u64,
    ) -> String {
        let entries = [AudienceEntry {
            data: data.to_value(),
            audience: audience.into(),
            subject: Some("alex".into()),
        }];
        let plaintext = encode_payload(&entries);
        let storage = if self.rows.is_some() {
            StorageMode::Server
        } else {
            StorageMode::Cookie
        };
        let input = SealInput {
            sid: generate_sid(),
            created_at,
            rolling_offset: 0,
            idling_offset: 0,
            plaintext: &plaintext,
            storage,
            kind,
        };
        let sealed = seal(&SessionSecret::new(SECRET.as_bytes()), &input).unwrap();
        if let (Some(rows), Some(data)) = (&self.rows, &sealed.stored_data) {
            rows.insert(&sealed.header.session_id(), data, now() + 3600)
                .unwrap();
        }
        sealed.cookie_value
    }

    fn alex_data(&self) -> KongSessionData {
        KongSessionData {
            consumer_id: self.alex.to_string(),
            credential_id: Some(self.credential.to_string()),
            groups: None,
        }
    }
}

/// One request through access, the (simulated) proxy and response.
struct Exchange {
    ctx: RequestCtx,
    status: Option<StatusCode>,
    body: Bytes,
    head: http::response::Parts,
}

impl Exchange {
    fn set_cookies(&self) -> Vec<String> {
        let values = self.head.headers.get_all(SET_COOKIE).iter();
        values
            .map(|value| value.to_str().unwrap().to_owned())
            .collect()
    }

    /// The value of the `Set-Cookie` for `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.set_cookies().into_iter().find_map(|line| {
            let pair = line.split(';').next()?.strip_prefix(&prefix)?.to_owned();
            Some(pair)
        })
    }

    fn consumer_id(&self) -> Option<Uuid> {
        self.ctx.consumer().map(|consumer| consumer.id)
    }
}

async fn send(world: &World, request: http::Request<Bytes>) -> Exchange {
    let mut ctx = ctx_with_request(Arc::clone(&world.snapshot), &world.config, request);
    let mut runner = PluginRunner::new(DEFAULT_BODY_CAP);
    let response = runner.access(world.snapshot.plugins(), &mut ctx).await;
    let status = response.as_ref().map(|response| response.status());
    let (mut head, body) = response.unwrap_or_default().into_parts();
    for (name, value) in &ctx.response_headers {
        head.headers.append(name, value.clone());
    }
    runner.response(&mut ctx, &mut head).await;
    Exchange {
        ctx,
        status,
        body,
        head,
    }
}

fn request(method: Method, uri: &str, cookie: Option<&str>) -> http::Request<Bytes> {
    let mut builder = http::Request::builder().method(method).uri(uri);
    if let Some(cookie) = cookie {
        builder = builder.header(COOKIE, cookie);
    }
    builder.body(Bytes::new()).unwrap()
}

fn get(uri: &str, cookie: Option<&str>) -> http::Request<Bytes> {
    request(Method::GET, uri, cookie)
}

/// Opens a cookie value with the world's config.
async fn open(world: &World, name: &str, value: &str, kind: CookieKind) -> Opened {
    let mut headers = HeaderMap::new();
    let cookie = format!("{name}={value}");
    headers.insert(COOKIE, HeaderValue::from_str(&cookie).unwrap());
    world
        .session()
        .open_cookie(&headers, kind, now())
        .await
        .unwrap()
}

async fn login(world: &World) -> Exchange {
    send(world, get("/?apikey=hello_world", None)).await
}

// -----------------------------------------------------------------------
// Building
// -----------------------------------------------------------------------

fn build_with(overrides: Value, env: &PluginEnv) -> Result<Session, PluginBuildError> {
    let config: SessionConfig = serde_json::from_value(session_config(overrides)).unwrap();
    Session::new(&config, env)
}

#[test]
fn builds_from_the_canonical_config() {
    let session = build_with(json!({}), &PluginEnv::default()).unwrap();
    assert_eq!(session.mode, StorageMode::Cookie);
    assert!(session.storage.is_none());
    assert_eq!(
        (
            session.idling_timeout,
            session.rolling_timeout,
            session.absolute_timeout
        ),
        (900, 3600, 86400)
    );
    assert_eq!(
        session.flags.as_str(),
        "; Path=/; SameSite=Strict; HttpOnly"
    );
    assert_eq!(session.logout_methods, [Method::POST, Method::DELETE]);
    assert!(session.remember.is_none());
    assert!(!session.needs_body());
    assert_eq!(crate::plugins::session::DESCRIPTOR.priority(), 1900);

    let session = build_with(
        json!({"cookie_secure": true, "cookie_same_site": "None", "cookie_domain": "example.com",
               "remember": true, "read_body_for_logout": true, "idling_timeout": 0.5,
               "response_headers": ["id", "absolute-timeout"]}),
        &PluginEnv::default(),
    )
    .unwrap();
    assert_eq!(
        session.flags.as_str(),
        "; Domain=example.com; Path=/; SameSite=None; Secure; HttpOnly"
    );
    assert_eq!(session.remember.as_ref().unwrap().rolling_timeout, 604800);
    assert!(session.needs_body());
    assert_eq!(session.idling_timeout, 1);
    assert_eq!(
        session.response_headers,
        [Property::Id, Property::AbsoluteTimeout]
    );
}

#[test]
fn unusable_configs_fail_to_build() {
    let env = PluginEnv::default();
    let message = |overrides| build_with(overrides, &env).err().unwrap().to_string();
    assert_eq!(message(json!({"secret": null})), "session secret missing");
    assert_eq!(
        message(json!({"storage": "kong"})),
        "session storage unavailable"
    );
    assert!(message(json!({"cookie_same_site": "Sometimes"})).contains("cookie_same_site"));
    assert!(message(json!({"response_headers": ["nope"]})).contains("nope"));
    assert!(message(json!({"cookie_name": "a;b"})).contains("cookie name"));
    assert!(message(json!({"cookie_path": "/\n"})).contains("cookie name"));

    let env = PluginEnv {
        sessions: Some(Arc::new(temporary_rows())),
        ..PluginEnv::default()
    };
    let session = build_with(json!({"storage": "kong"}), &env).unwrap();
    assert_eq!(session.mode, StorageMode::Server);
    assert!(session.storage.is_some());
}

#[test]
fn seconds_are_whole_and_never_negative() {
    assert_eq!(seconds(900.0), 900);
    assert_eq!(seconds(0.0), 0);
    assert_eq!(seconds(-5.0), 0);
    assert_eq!(seconds(f64::NAN), 0);
    assert_eq!(seconds(1.9), 1);
    assert_eq!(seconds(0.2), 1);
    assert_eq!(seconds(1e300), u64::MAX);
}

#[test]
fn subject_is_username_then_custom_id_then_id() {
    let id = Uuid::new_v4();
    let mut consumer = Consumer {
        id,
        username: Some("alex".into()),
        custom_id: Some("c-1".into()),
        tags: None,
        created_at: None,
        updated_at: None,
    };
    assert_eq!(subject(&consumer), "alex");
    consumer.username = None;
    assert_eq!(subject(&consumer), "c-1");
    consumer.custom_id = None;
    assert_eq!(subject(&consumer), id.to_string());
}

// -----------------------------------------------------------------------
// Logout detection
// -----------------------------------------------------------------------

async fn is_logout(world: &World, request: http::Request<Bytes>) -> bool {
    let mut ctx = ctx_with_request(Arc::clone(&world.snapshot), &world.config, request);
    let session = world.session();
    if session.needs_body() {
        ctx.buffer_body(DEFAULT_BODY_CAP).await.unwrap();
    }
    session.is_logout(&ctx)
}

fn with_body(method: Method, content_type: &str, body: &'static str) -> http::Request<Bytes> {
    http::Request::builder()
        .method(method)
        .uri("/")
        .header("content-type", content_type)
        .body(Bytes::from_static(body.as_bytes()))
        .unwrap()
}

#[tokio::test]
async fn logout_by_query_arg_with_any_value() {
    let world = world(json!({}));
    for uri in [
        "/?session_logout",
        "/?session_logout=",
        "/?a=1&session_logout=false",
    ] {
        assert!(
            is_logout(&world, request(Method::POST, uri, None)).await,
            "{uri}"
        );
        assert!(
            is_logout(&world, request(Method::DELETE, uri, None)).await,
            "{uri}"
        );
        assert!(
            !is_logout(&world, request(Method::GET, uri, None)).await,
            "GET {uri}"
        );
    }
    assert!(!is_logout(&world, request(Method::POST, "/?session_logou", None)).await);
    assert!(!is_logout(&world, request(Method::POST, "/", None)).await);

    let world = self::world(json!({"logout_methods": ["GET"], "logout_query_arg": "bye"}));
    assert!(is_logout(&world, get("/?bye", None)).await);
    assert!(!is_logout(&world, request(Method::POST, "/?bye", None)).await);
}

#[tokio::test]
async fn logout_by_body_arg_only_when_enabled() {
    let form = || {
        with_body(
            Method::POST,
            "application/x-www-form-urlencoded",
            "session_logout=1",
        )
    };
    let world = world(json!({}));
    assert!(
        !is_logout(&world, form()).await,
        "the body is not read by default"
    );

    let world = self::world(json!({"read_body_for_logout": true}));
    assert!(is_logout(&world, form()).await);
    let bare = with_body(
        Method::DELETE,
        "application/x-www-form-urlencoded",
        "a=1&session_logout",
    );
    assert!(is_logout(&world, bare).await);
    let json_true = with_body(
        Method::POST,
        "application/json",
        r#"{"session_logout":true}"#,
    );
    assert!(is_logout(&world, json_true).await);
    let json_false = with_body(
        Method::POST,
        "application/json",
        r#"{"session_logout":false}"#,
    );
    assert!(!is_logout(&world, json_false).await);
    let other = with_body(Method::POST, "application/json", r#"{"logout":"yes"}"#);
    assert!(!is_logout(&world, other).await);
    let get = with_body(
        Method::GET,
        "application/x-www-form-urlencoded",
        "session_logout=1",
    );
    assert!(!is_logout(&world, get).await, "GET is not a logout method");
}

// -----------------------------------------------------------------------
// The tutorial flow
// -----------------------------------------------------------------------

#[tokio::test]
async fn key_auth_login_sets_a_cookie_that_authenticates_later() {
    let world = world(json!({}));
    let login = login(&world).await;
    assert_eq!(login.consumer_id(), Some(world.alex));
    let set_cookies = login.set_cookies();
    assert_eq!(set_cookies.len(), 1, "{set_cookies:?}");
    let value = login.cookie("session").unwrap();
    assert_eq!(
        set_cookies[0],
        format!("session={value}; Path=/; SameSite=Strict; HttpOnly")
    );
    let opened = open(&world, "session", &value, CookieKind::Session).await;
    let entry = opened.entry().unwrap();
    assert_eq!(entry.subject.as_deref(), Some("alex"));
    assert_eq!(
        entry.data,
        json!([world.alex.to_string(), world.credential.to_string()])
    );

    let cookie = format!("other=1; session={value}");
    let again = send(&world, get("/anything", Some(&cookie))).await;
    assert_eq!(again.status, None);
    assert_eq!(again.consumer_id(), Some(world.alex));
    assert_eq!(again.ctx.credential().unwrap().id, world.credential);
    let upstream = &again.ctx.request.headers;
    assert_eq!(upstream[CONSUMER_USERNAME], "alex");
    assert_eq!(upstream[CONSUMER_ID], world.alex.to_string().as_str());
    assert_eq!(
        upstream[CREDENTIAL_IDENTIFIER],
        world.credential.to_string().as_str()
    );
    assert!(!upstream.contains_key(ANONYMOUS_CONSUMER));
    assert_eq!(
        upstream[COOKIE],
        cookie.as_str(),
        "the cookie is not stripped"
    );
    assert!(
        again.set_cookies().is_empty(),
        "a fresh session is neither renewed nor touched"
    );
}

#[tokio::test]
async fn anonymous_consumers_get_no_cookie() {
    let world = world(json!({}));
    let exchange = send(&world, get("/", None)).await;
    assert_eq!(exchange.consumer_id(), Some(world.anonymous));
    assert!(exchange.set_cookies().is_empty());
}

#[tokio::test]
async fn invalid_cookies_mean_no_session() {
    let world = world(json!({}));
    let value = login(&world).await.cookie("session").unwrap();
    let mut tampered = value.clone().into_bytes();
    let last = tampered.len() - 5;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let other_secret = self::world(json!({"secret": "another-secret"}));
    let foreign = login(&other_secret).await.cookie("session").unwrap();
    for bad in [
        tampered.as_str(),
        &value[..120],
        &value[..50],
        "",
        "%%%",
        foreign.as_str(),
    ] {
        let exchange = send(&world, get("/", Some(&format!("session={bad}")))).await;
        assert_eq!(exchange.status, None);
        assert_eq!(exchange.consumer_id(), Some(world.anonymous), "{bad}");
        assert!(exchange.set_cookies().is_empty(), "no cookie is cleared");
    }
}

#[tokio::test]
async fn expired_cookies_mean_no_session() {
    let world = world(json!({}));
    let old = world.craft(
        CookieKind::Session,
        &world.alex_data(),
        "default",
        now() - 90_000,
    );
    let exchange = send(&world, get("/", Some(&format!("session={old}")))).await;
    assert_eq!(exchange.consumer_id(), Some(world.anonymous));
}

#[tokio::test]
async fn other_audiences_are_kept_when_logging_in() {
    let world = world(json!({}));
    let foreign = world.craft(
        CookieKind::Session,
        &world.alex_data(),
        "elsewhere",
        now() - 5,
    );
    let exchange = send(
        &world,
        get("/?apikey=hello_world", Some(&format!("session={foreign}"))),
    )
    .await;
    assert_eq!(exchange.consumer_id(), Some(world.alex));
    let value = exchange.cookie("session").unwrap();
    let opened = open(&world, "session", &value, CookieKind::Session).await;
    let audiences: Vec<&str> = opened.entries.iter().map(|e| e.audience.as_str()).collect();
    assert_eq!(audiences, ["elsewhere", "default"]);

    let only_foreign = send(&world, get("/", Some(&format!("session={foreign}")))).await;
    assert_eq!(
        only_foreign.consumer_id(),
        Some(world.anonymous),
        "an audience miss is no session"
    );
}

#[tokio::test]
async fn deleted_consumers_lose_their_session() {
    let world = world(json!({}));
    let ghost = KongSessionData {
        consumer_id: Uuid::new_v4().to_string(),
        credential_id: Some(Uuid::new_v4().to_string()),
        groups: None,
    };
    let value = world.craft(CookieKind::Session, &ghost, "default", now() - 5);
    let exchange = send(&world, get("/", Some(&format!("session={value}")))).await;
    assert_eq!(exchange.consumer_id(), Some(world.anonymous));
    assert_eq!(
        exchange.set_cookies(),
        [format!(
            "session=; Path=/; SameSite=Strict; HttpOnly{EXPIRED}"
        )]
    );
}

#[tokio::test]
async fn groups_are_restored_and_saved_again() {
    let world = world(json!({}));
    let mut data = world.alex_data();
    data.groups = Some(vec!["admins".into(), "ops".into()]);
    let value = world.craft(CookieKind::Session, &data, "default", now() - 5);
    let exchange = send(&world, get("/", Some(&format!("session={value}")))).await;
    assert_eq!(
        exchange.ctx.request.headers[AUTHENTICATED_GROUPS],
        "admins, ops"
    );
    let groups = exchange
        .ctx
        .extensions
        .get::<AuthenticatedGroups>()
        .unwrap();
    assert_eq!(groups.0, ["admins", "ops"]);

    let without = world.craft(
        CookieKind::Session,
        &world.alex_data(),
        "default",
        now() - 5,
    );
    let request = http::Request::get("/")
        .header(COOKIE, format!("session={without}"))
        .header(AUTHENTICATED_GROUPS, "spoofed")
        .body(Bytes::new())
        .unwrap();
    let exchange = send(&world, request).await;
    assert!(!exchange
        .ctx
        .request
        .headers
        .contains_key(AUTHENTICATED_GROUPS));
}

#[tokio::test]
async fn another_credential_replaces_the_session_keeping_its_creation_time() {
    let mut world = world(json!({}));
    world.config.plugins[0]["config"]["anonymous"] = Value::Null;
    world.snapshot = Arc::new(Snapshot::build(&world.config, &world.env).unwrap());
    let mut data = world.alex_data();
    data.credential_id = Some(Uuid::new_v4().to_string());
    let created = now() - 100;
    let value = world.craft(CookieKind::Session, &data, "default", created);
    let cookie = format!("session={value}");
    let exchange = send(&world, get("/?apikey=hello_world", Some(&cookie))).await;
    assert_eq!(exchange.ctx.credential().unwrap().id, world.credential);
    let renewed = exchange.cookie("session").expect("a new session");
    let opened = open(&world, "session", &renewed, CookieKind::Session).await;
    assert_eq!(opened.header.created_at(), created);
    let expected = json!([world.alex.to_string(), world.credential.to_string()]);
    assert_eq!(opened.entry().unwrap().data, expected);

    let same = world.craft(
        CookieKind::Session,
        &world.alex_data(),
        "default",
        now() - 5,
    );
    let cookie = format!("session={same}");
    let exchange = send(&world, get("/?apikey=hello_world", Some(&cookie))).await;
    assert!(
        exchange.set_cookies().is_empty(),
        "same consumer and credential"
    );
}

// -----------------------------------------------------------------------
// Refresh
// -----------------------------------------------------------------------

#[tokio::test]
async fn renewal_keeps_creation_time_and_retires_the_old_row() {
    let world = world(json!({"storage": "kong", "idling_timeout": 0}));
    let created = now() - 3000;
    let value = world.craft(CookieKind::Session, &world.alex_data(), "default", created);
    let old = open(&world, "session", &value, CookieKind::Session).await;
    let exchange = send(&world, get("/", Some(&format!("session={value}")))).await;
    assert_eq!(exchange.consumer_id(), Some(world.alex));
    let renewed = exchange.cookie("session").expect("renewed cookie");
    assert_eq!(
        renewed.len(),
        HEADER_ENCODED_SIZE,
        "kong storage: header only"
    );
    let new = open(&world, "session", &renewed, CookieKind::Session).await;
    assert_ne!(new.header.session_id(), old.header.session_id());
    assert_eq!(new.header.created_at(), created);
    assert!(new.header.rolling_offset() >= 3000);
    assert_eq!(new.header.idling_offset(), 0);
    let rows = world.rows.as_ref().unwrap();
    let old_id = old.header.session_id();
    assert!(
        rows.get(&old_id, now()).unwrap().is_some(),
        "stale but readable"
    );
    assert!(
        rows.get(&old_id, now() + 11).unwrap().is_none(),
        "gone after stale_ttl"
    );
    assert!(rows
        .get(&new.header.session_id(), now() + 3000)
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn idle_sessions_are_touched_with_the_same_id() {
    let world = world(json!({}));
    let value = world.craft(
        CookieKind::Session,
        &world.alex_data(),
        "default",
        now() - 120,
    );
    let exchange = send(&world, get("/", Some(&format!("session={value}")))).await;
    assert_eq!(exchange.consumer_id(), Some(world.alex));
    let touched = exchange.cookie("session").expect("touched cookie");
    assert_ne!(touched, value);
    assert_eq!(
        touched[HEADER_ENCODED_SIZE..],
        value[HEADER_ENCODED_SIZE..],
        "same payload"
    );
    let before = open(&world, "session", &value, CookieKind::Session).await;
    let after = open(&world, "session", &touched, CookieKind::Session).await;
    assert_eq!(after.header.session_id(), before.header.session_id());
    assert!(after.header.idling_offset() >= 120);
}

// -----------------------------------------------------------------------
// Kong storage and logout
// -----------------------------------------------------------------------

#[tokio::test]
async fn kong_storage_rows_and_logout() {
    let world = world(json!({"storage": "kong"}));
    let value = login(&world).await.cookie("session").unwrap();
    assert_eq!(value.len(), HEADER_ENCODED_SIZE);
    let opened = open(&world, "session", &value, CookieKind::Session).await;
    let rows = world.rows.as_ref().unwrap();
    let session_id = opened.header.session_id();
    assert!(rows.get(&session_id, now() + 3590).unwrap().is_some());
    assert!(
        rows.get(&session_id, now() + 3602).unwrap().is_none(),
        "expires after rolling_timeout"
    );

    let cookie = format!("session={value}");
    let restored = send(&world, get("/", Some(&cookie))).await;
    assert_eq!(restored.consumer_id(), Some(world.alex));

    let logout = send(
        &world,
        request(Method::DELETE, "/?session_logout", Some(&cookie)),
    )
    .await;
    assert_eq!(logout.status, Some(StatusCode::OK));
    assert!(logout.body.is_empty());
    assert_eq!(logout.head.headers["content-length"], "0");
    assert!(logout.ctx.consumer().is_none(), "no auth plugin ran");
    assert_eq!(
        logout.set_cookies(),
        [format!(
            "session=; Path=/; SameSite=Strict; HttpOnly{EXPIRED}"
        )]
    );
    assert!(
        rows.get(&session_id, now()).unwrap().is_none(),
        "row deleted"
    );
    let after = send(&world, get("/", Some(&cookie))).await;
    assert_eq!(after.consumer_id(), Some(world.anonymous));
}

#[tokio::test]
async fn logout_needs_a_valid_session() {
    let world = world(json!({}));
    let exchange = send(&world, request(Method::POST, "/?session_logout", None)).await;
    assert_eq!(exchange.status, None, "no session: proxied as usual");
    assert_eq!(exchange.consumer_id(), Some(world.anonymous));
}

// -----------------------------------------------------------------------
// Remember
// -----------------------------------------------------------------------

#[tokio::test]
async fn remember_cookie_restores_a_session_and_logout_expires_both() {
    let world = world(json!({"remember": true}));
    let login = login(&world).await;
    let remember = login.cookie("remember").expect("remember cookie");
    let line = login
        .set_cookies()
        .into_iter()
        .find(|l| l.starts_with("remember="))
        .unwrap();
    assert!(
        line.contains("; Path=/; SameSite=Strict; HttpOnly; Expires="),
        "{line}"
    );
    assert!(line.ends_with("; Max-Age=604800"), "{line}");
    assert!(login.cookie("session").is_some());

    let cookie = format!("remember={remember}");
    let restored = send(&world, get("/", Some(&cookie))).await;
    assert_eq!(restored.consumer_id(), Some(world.alex));
    assert_eq!(restored.ctx.credential().unwrap().id, world.credential);
    let new_session = restored.cookie("session").expect("new session cookie");
    let new_remember = restored.cookie("remember").expect("remember saved again");
    assert_eq!(restored.set_cookies().len(), 2);
    let opened = open(&world, "remember", &new_remember, CookieKind::Remember).await;
    assert_eq!(opened.entry().unwrap().subject.as_deref(), Some("alex"));

    let both = format!("session={new_session}; remember={new_remember}");
    let logout = send(
        &world,
        request(Method::POST, "/?session_logout", Some(&both)),
    )
    .await;
    assert_eq!(logout.status, Some(StatusCode::OK));
    let mut expired = logout.set_cookies();
    expired.sort();
    assert_eq!(
        expired,
        [
            format!("remember=; Path=/; SameSite=Strict; HttpOnly{EXPIRED}"),
            format!("session=; Path=/; SameSite=Strict; HttpOnly{EXPIRED}"),
        ]
    );
}

#[tokio::test]
async fn remember_rows_are_replaced_and_deleted_with_kong_storage() {
    let world = world(json!({"remember": true, "storage": "kong"}));
    let rows = world.rows.as_ref().unwrap();
    let login = login(&world).await;
    let remember = login.cookie("remember").unwrap();
    assert_eq!(remember.len(), HEADER_ENCODED_SIZE);
    let old = open(&world, "remember", &remember, CookieKind::Remember).await;
    let old_id = old.header.session_id();
    assert!(
        rows.get(&old_id, now() + 604_000).unwrap().is_some(),
        "remember ttl"
    );

    let restored = send(&world, get("/", Some(&format!("remember={remember}")))).await;
    assert_eq!(restored.consumer_id(), Some(world.alex));
    assert!(
        rows.get(&old_id, now()).unwrap().is_none(),
        "old remember row deleted"
    );
    let session = restored.cookie("session").unwrap();
    let remember = restored.cookie("remember").unwrap();
    let new_session = open(&world, "session", &session, CookieKind::Session).await;
    let new_remember = open(&world, "remember", &remember, CookieKind::Remember).await;
    assert_eq!(new_remember.header.created_at(), old.header.created_at());

    let both = format!("session={session}; remember={remember}");
    let logout = send(
        &world,
        request(Method::DELETE, "/?session_logout", Some(&both)),
    )
    .await;
    assert_eq!(logout.status, Some(StatusCode::OK));
    assert!(rows
        .get(&new_session.header.session_id(), now())
        .unwrap()
        .is_none());
    assert!(rows
        .get(&new_remember.header.session_id(), now())
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn remember_is_not_tried_when_off() {
    let world = world(json!({"remember": true}));
    let remember = login(&world).await.cookie("remember").unwrap();
    let world_off = self::world(json!({}));
    let exchange = send(&world_off, get("/", Some(&format!("remember={remember}")))).await;
    assert_eq!(exchange.consumer_id(), Some(world_off.anonymous));
}

// -----------------------------------------------------------------------
// Headers
// -----------------------------------------------------------------------

#[tokio::test]
async fn session_headers_go_upstream_and_to_the_client() {
    let world = world(
        json!({"request_headers": ["id", "subject", "timeout", "rolling-timeout"],
                              "response_headers": ["id", "audience"]}),
    );
    let login = login(&world).await;
    let value = login.cookie("session").unwrap();
    let opened = open(&world, "session", &value, CookieKind::Session).await;
    assert_eq!(
        login.head.headers["session-id"],
        opened.header.session_id().as_str()
    );
    assert_eq!(login.head.headers["session-audience"], "default");

    let exchange = send(&world, get("/", Some(&format!("session={value}")))).await;
    let upstream = &exchange.ctx.request.headers;
    assert_eq!(upstream["session-id"], opened.header.session_id().as_str());
    assert_eq!(upstream["session-subject"], "alex");
    let timeout: i64 = upstream["session-timeout"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((895..=900).contains(&timeout), "{timeout}");
    let rolling: i64 = upstream["session-rolling-timeout"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3595..=3600).contains(&rolling), "{rolling}");
    assert!(!upstream.contains_key("session-audience"));
    assert_eq!(exchange.head.headers["session-audience"], "default");
}

#[test]
fn set_cookie_merge_replaces_the_same_name_only() {
    let mut headers = HeaderMap::new();
    headers.append(SET_COOKIE, HeaderValue::from_static("a=1; Path=/"));
    headers.append(SET_COOKIE, HeaderValue::from_static("session=old; Path=/"));
    headers.append(SET_COOKIE, HeaderValue::from_static("sessionx=2"));
    merge_set_cookie(
        &mut headers,
        HeaderValue::from_static("session=new; Path=/"),
    );
    merge_set_cookie(&mut headers, HeaderValue::from_static("b=3"));
    let values: Vec<_> = headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        values,
        ["a=1; Path=/", "session=new; Path=/", "sessionx=2", "b=3"]
    );
}

#[tokio::test]
async fn upstream_set_cookie_of_the_same_name_is_replaced() {
    let world = world(json!({}));
    let session = world.session();
    let mut ctx = ctx_with_request(Arc::clone(&world.snapshot), &world.config, get("/", None));
    let alex = world.snapshot.consumer(&world.alex).cloned();
    let credential = AuthCredential {
        id: world.credential,
        consumer_id: world.alex,
    };
    ctx.authenticate(alex, Some(credential));
    let (mut head, ()) = http::Response::new(()).into_parts();
    head.headers
        .append(SET_COOKIE, HeaderValue::from_static("session=upstream"));
    head.headers
        .append(SET_COOKIE, HeaderValue::from_static("theirs=1"));
    session.response(&mut ctx, &mut head).await;
    let values: Vec<_> = head
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(values.len(), 2);
    assert!(values[0].starts_with("session=") && values[0] != "session=upstream");
    assert_eq!(values[1], "theirs=1");
}
