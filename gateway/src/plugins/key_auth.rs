//! The key-auth plugin (priority 1250): authenticates a consumer by an API
//! key sent in a header, the query string or the body.
//!
//! For each name of `key_names`, in order, the key is looked up in the
//! header (if `key_in_header`), then the query (if `key_in_query`), then the
//! body (if `key_in_body`); the first source holding the name decides. A
//! single string is the key (the loop stops); several values are a 401
//! `Duplicate API key found`; anything else (`?apikey` without a value)
//! moves on to the next name. No key, or an empty one, is a 401
//! `No API key found in request`; an unknown or expired key a 401
//! `Unauthorized`. Every 401 carries `WWW-Authenticate: Key` (or
//! `Key realm="<realm>"`).
//!
//! With `anonymous` set (logical OR with other auth plugins): a request
//! already authenticated by an earlier plugin passes untouched, and a failed
//! one continues as the anonymous consumer (looked up by id, then by
//! username; missing → 500). Without it (logical AND) the key is always
//! required. `run_on_preflight: false` lets `OPTIONS` through unauthenticated.
//!
//! `hide_credentials` removes the key's header, its query argument (other
//! arguments keep their order) and, with `key_in_body`, its body field
//! (form, JSON and multipart bodies are re-serialized) before proxying.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use http::{Method, StatusCode};
use schemas::plugins::key_auth::KeyAuthConfig;

use crate::pdk::request_data::{
    header_arg, query_arg, remove_header, remove_pairs, Arg, ParsedBody,
};
use crate::pdk::{
    set_identity_headers, AuthCredential, Flow, Phases, Plugin, PluginBuildError, PluginDescriptor,
    PluginEnv, RequestCtx,
};

pub use schemas::plugins::key_auth::NAME;

/// key-auth runs in the access phase only.
pub const DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    name: NAME,
    phases: Phases {
        access: true,
        response: false,
        log: false,
    },
    build,
    background: None,
};

/// Why authentication failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    NoKey,
    Duplicate,
    Unknown,
}

impl Failure {
    fn message(self) -> &'static str {
        match self {
            Failure::NoKey => "No API key found in request",
            Failure::Duplicate => "Duplicate API key found",
            Failure::Unknown => "Unauthorized",
        }
    }
}

/// One key-auth instance.
#[derive(Debug)]
pub struct KeyAuth {
    key_names: Vec<String>,
    hide_credentials: bool,
    anonymous: Option<String>,
    key_in_header: bool,
    key_in_query: bool,
    key_in_body: bool,
    run_on_preflight: bool,
    /// `Key` or `Key realm="<realm>"`.
    www_authenticate: HeaderValue,
}

/// Builds an instance from a plugin row (the [`crate::pdk::PluginFactory`]).
pub fn build(
    row: &schemas::model::Plugin,
    _env: &PluginEnv,
) -> Result<Arc<dyn Plugin>, PluginBuildError> {
    let config: KeyAuthConfig = serde_json::from_value(row.config.clone())?;
    let challenge = match &config.realm {
        Some(realm) => format!("Key realm=\"{realm}\""),
        None => "Key".to_owned(),
    };
    let www_authenticate = HeaderValue::from_str(&challenge)
        .map_err(|_| PluginBuildError::Invalid("realm is not a valid header value".into()))?;
    Ok(Arc::new(KeyAuth {
        key_names: config.key_names,
        hide_credentials: config.hide_credentials,
        anonymous: config.anonymous,
        key_in_header: config.key_in_header,
        key_in_query: config.key_in_query,
        key_in_body: config.key_in_body,
        run_on_preflight: config.run_on_preflight,
        www_authenticate,
    }))
}

#[async_trait::async_trait]
impl Plugin for KeyAuth {
    fn needs_body(&self) -> bool {
        self.key_in_body
    }

    async fn access(&self, ctx: &mut RequestCtx) -> Flow {
        if !self.run_on_preflight && ctx.request.method == Method::OPTIONS {
            return Flow::Continue;
        }
        if self.anonymous.is_some() && ctx.credential().is_some() {
            return Flow::Continue;
        }
        let Err(failure) = self.authenticate(ctx) else {
            return Flow::Continue;
        };
        match &self.anonymous {
            Some(anonymous) => continue_as_anonymous(ctx, anonymous),
            None => {
                let mut headers = HeaderMap::new();
                headers.insert(WWW_AUTHENTICATE, self.www_authenticate.clone());
                let response =
                    ctx.error(StatusCode::UNAUTHORIZED, Some(failure.message()), headers);
                Flow::Respond(response)
            }
        }
    }
}

impl KeyAuth {
    /// Finds the key, checks it and authenticates its consumer.
    fn authenticate(&self, ctx: &mut RequestCtx) -> Result<(), Failure> {
        let key = self.find_key(ctx)?;
        if key.is_empty() {
            return Err(Failure::NoKey);
        }
        let identities = Arc::clone(ctx.identities());
        let credential = identities
            .credential_by_key(&key)
            .filter(|credential| !credential.is_expired(now()))
            .ok_or(Failure::Unknown)?;
        let consumer = identities.consumer(&credential.consumer_id).cloned();
        let credential = AuthCredential {
            id: credential.id,
            consumer_id: credential.consumer_id,
        };
        set_identity_headers(
            &mut ctx.request.headers,
            consumer.as_deref(),
            Some(&credential),
        );
        ctx.authenticate(consumer, Some(credential));
        Ok(())
    }

    /// The key of the first name found (hiding it if configured).
    fn find_key(&self, ctx: &mut RequestCtx) -> Result<String, Failure> {
        let mut body: Option<ParsedBody> = None;
        for name in &self.key_names {
            match self.lookup(ctx, name, &mut body) {
                Arg::One(key) => {
                    if self.hide_credentials {
                        self.hide(ctx, name, &mut body);
                    }
                    return Ok(key);
                }
                Arg::Many => return Err(Failure::Duplicate),
                Arg::Absent | Arg::NotAString => {}
            }
        }
        Err(Failure::NoKey)
    }

    /// `name` from the first enabled source that has it.
    fn lookup(&self, ctx: &RequestCtx, name: &str, body: &mut Option<ParsedBody>) -> Arg {
        let mut found = Arg::Absent;
        if self.key_in_header {
            found = header_arg(&ctx.request.headers, name);
        }
        if !found.is_present() && self.key_in_query {
            found = query_arg(ctx.query(), name);
        }
        if !found.is_present() && self.key_in_body {
            found = parsed_body(ctx, body).arg(name);
        }
        found
    }

    /// Removes `name` from the headers, the query and (with `key_in_body`)
    /// the body sent upstream.
    fn hide(&self, ctx: &mut RequestCtx, name: &str, body: &mut Option<ParsedBody>) {
        remove_header(&mut ctx.request.headers, name);
        if let Some(query) = ctx.query() {
            let remaining = remove_pairs(query, name);
            if remaining != query {
                ctx.set_query(Some(&remaining));
            }
        }
        if self.key_in_body {
            if let Some(stripped) = parsed_body(ctx, body).without(name) {
                ctx.set_body(stripped);
            }
        }
    }
}

/// The request body parsed once, on first use.
fn parsed_body<'a>(ctx: &RequestCtx, cache: &'a mut Option<ParsedBody>) -> &'a ParsedBody {
    cache.get_or_insert_with(|| match ctx.body() {
        Some(raw) => ParsedBody::parse(&ctx.request.headers, raw),
        None => ParsedBody::Empty,
    })
}

/// OR mode after a failure: continue as the anonymous consumer, or 500 if
/// it does not exist.
fn continue_as_anonymous(ctx: &mut RequestCtx, anonymous: &str) -> Flow {
    let identities = Arc::clone(ctx.identities());
    let Some(consumer) = identities.load_consumer(anonymous, true).cloned() else {
        let message = format!("anonymous consumer {anonymous} is configured but doesn't exist");
        let response = ctx.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(&message),
            HeaderMap::new(),
        );
        return Flow::Respond(response);
    };
    set_identity_headers(&mut ctx.request.headers, Some(&consumer), None);
    ctx.authenticate(Some(consumer), None);
    Flow::Continue
}

/// The current time in epoch seconds.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdk::body;
    use crate::pdk::identity::{
        ANONYMOUS_CONSUMER, CONSUMER_ID, CONSUMER_USERNAME, CREDENTIAL_IDENTIFIER,
    };
    use crate::pdk::Identities;
    use crate::proxy::phases::tests::ctx_with_request;
    use crate::proxy::phases::{PluginRunner, DEFAULT_BODY_CAP};
    use crate::snapshot::tests::{consumer, credential, plugin, route, service};
    use crate::snapshot::{Scope, Snapshot};
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use schemas::config::Config;
    use serde_json::{json, Value};
    use uuid::Uuid;

    struct Setup {
        config: Config,
        alice: Uuid,
        anonymous: Uuid,
        credential: Uuid,
    }

    fn setup(overrides: Value) -> Setup {
        let (service_id, route_id) = (Uuid::new_v4(), Uuid::new_v4());
        let (alice, anonymous, credential_id) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut key_auth = json!({"key_names": ["apikey"], "hide_credentials": false,
            "anonymous": null, "key_in_header": true, "key_in_query": true,
            "key_in_body": false, "run_on_preflight": true, "realm": null});
        for (key, value) in overrides.as_object().unwrap() {
            key_auth[key] = value.clone();
        }
        let config = Config {
            services: vec![service(service_id)],
            routes: vec![route(route_id, Some(service_id), "/")],
            consumers: vec![consumer(alice, "alice"), consumer(anonymous, "anon")],
            keyauth_credentials: vec![
                credential(credential_id, alice, "secret", None, 1),
                credential(Uuid::new_v4(), alice, "expired", Some(10), 1),
            ],
            plugins: vec![plugin(NAME, key_auth, Scope::default())],
        };
        Setup {
            config,
            alice,
            anonymous,
            credential: credential_id,
        }
    }

    async fn run(
        setup: &Setup,
        request: http::Request<Bytes>,
    ) -> (RequestCtx, Option<http::Response<Bytes>>) {
        let snapshot = Arc::new(Snapshot::build(&setup.config, &PluginEnv::default()).unwrap());
        let mut ctx = ctx_with_request(Arc::clone(&snapshot), &setup.config, request);
        let response = PluginRunner::new(DEFAULT_BODY_CAP)
            .access(snapshot.plugins(), &mut ctx)
            .await;
        (ctx, response)
    }

    fn get(uri: &str) -> http::Request<Bytes> {
        http::Request::get(uri).body(Bytes::new()).unwrap()
    }

    fn with_header(uri: &str, name: &str, value: &str) -> http::Request<Bytes> {
        http::Request::get(uri)
            .header(name, value)
            .body(Bytes::new())
            .unwrap()
    }

    fn message(response: &http::Response<Bytes>) -> String {
        let json: Value = serde_json::from_slice(response.body()).unwrap();
        json["message"].as_str().unwrap().to_owned()
    }

    async fn upstream_body(ctx: &mut RequestCtx) -> Bytes {
        let stream: body::ProxyBody = ctx.take_body();
        stream.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn key_in_header_authenticates_and_sets_identity_headers() {
        let setup = setup(json!({}));
        let request = http::Request::get("/")
            .header("apikey", "secret")
            .header("x-anonymous-consumer", "spoofed")
            .header("x-consumer-custom-id", "spoofed")
            .body(Bytes::new())
            .unwrap();
        let (ctx, response) = run(&setup, request).await;
        assert!(response.is_none());
        assert_eq!(ctx.consumer().unwrap().id, setup.alice);
        assert_eq!(ctx.credential().unwrap().id, setup.credential);
        let headers = &ctx.request.headers;
        assert_eq!(headers[CONSUMER_ID], setup.alice.to_string().as_str());
        assert_eq!(headers[CONSUMER_USERNAME], "alice");
        assert_eq!(
            headers[CREDENTIAL_IDENTIFIER],
            setup.credential.to_string().as_str()
        );
        assert!(!headers.contains_key(ANONYMOUS_CONSUMER));
        assert!(!headers.contains_key("x-consumer-custom-id"));
        assert_eq!(headers["apikey"], "secret", "kept without hide_credentials");
    }

    #[tokio::test]
    async fn failures_are_401_with_challenge() {
        let setup = setup(json!({}));
        for (request, expected) in [
            (get("/"), "No API key found in request"),
            (get("/?apikey="), "No API key found in request"),
            (get("/?apikey"), "No API key found in request"),
            (
                with_header("/", "apikey", ""),
                "No API key found in request",
            ),
            (get("/?apikey=nope"), "Unauthorized"),
            (get("/?apikey=expired"), "Unauthorized"),
            (get("/?apikey=a&apikey=b"), "Duplicate API key found"),
        ] {
            let uri = request.uri().clone();
            let (_, response) = run(&setup, request).await;
            let response = response.unwrap_or_else(|| panic!("{uri} passed"));
            assert_eq!(response.status(), 401, "{uri}");
            assert_eq!(message(&response), expected, "{uri}");
            assert_eq!(response.headers()[WWW_AUTHENTICATE], "Key", "{uri}");
        }
        let request = http::Request::get("/")
            .header("apikey", "secret")
            .header("apikey", "secret")
            .body(Bytes::new())
            .unwrap();
        let (_, response) = run(&setup, request).await;
        assert_eq!(message(&response.unwrap()), "Duplicate API key found");
    }

    #[tokio::test]
    async fn realm_goes_into_the_challenge() {
        let setup = setup(json!({"realm": "kong"}));
        let (_, response) = run(&setup, get("/")).await;
        assert_eq!(
            response.unwrap().headers()[WWW_AUTHENTICATE],
            "Key realm=\"kong\""
        );
    }

    #[tokio::test]
    async fn header_beats_query_and_names_go_in_order() {
        let setup = setup(json!({}));
        let (_, response) = run(&setup, with_header("/?apikey=secret", "apikey", "wrong")).await;
        assert_eq!(message(&response.unwrap()), "Unauthorized");

        let setup = self::setup(json!({"key_names": ["first", "second"]}));
        let (ctx, response) = run(&setup, get("/?first&second=secret")).await;
        assert!(response.is_none(), "a bare flag moves on to the next name");
        assert_eq!(ctx.consumer().unwrap().id, setup.alice);
    }

    #[tokio::test]
    async fn underscore_names_match_dashed_headers() {
        let setup = setup(json!({"key_names": ["api_key"], "hide_credentials": true}));
        let (ctx, response) = run(&setup, with_header("/", "api-key", "secret")).await;
        assert!(response.is_none());
        assert!(!ctx.request.headers.contains_key("api-key"));
    }

    #[tokio::test]
    async fn sources_can_be_disabled() {
        let setup = setup(json!({"key_in_header": false}));
        let (_, response) = run(&setup, with_header("/", "apikey", "secret")).await;
        assert_eq!(message(&response.unwrap()), "No API key found in request");
        let setup = self::setup(json!({"key_in_query": false}));
        let (_, response) = run(&setup, get("/?apikey=secret")).await;
        assert_eq!(message(&response.unwrap()), "No API key found in request");
    }

    #[tokio::test]
    async fn hide_credentials_in_header_and_query() {
        let setup = setup(json!({"hide_credentials": true}));
        let (ctx, response) = run(
            &setup,
            with_header("/x?b=2&apikey=zzz&a=1", "apikey", "secret"),
        )
        .await;
        assert!(response.is_none());
        assert!(!ctx.request.headers.contains_key("apikey"));
        assert_eq!(
            ctx.query(),
            Some("b=2&a=1"),
            "query args named like the key go too"
        );

        let (ctx, _) = run(&setup, get("/x?apikey=secret")).await;
        assert_eq!(ctx.query(), None);
        assert_eq!(ctx.request.uri.path(), "/x");
    }

    #[tokio::test]
    async fn key_in_body_form_json_multipart_with_hiding() {
        let setup = setup(json!({"key_in_body": true, "hide_credentials": true}));
        let cases = [
            (
                "application/x-www-form-urlencoded",
                "a=1&apikey=secret&b=2".to_owned(),
                "a=1&b=2".to_owned(),
            ),
            (
                "application/json",
                r#"{"apikey":"secret","a":1}"#.to_owned(),
                r#"{"a":1}"#.to_owned(),
            ),
            (
                "multipart/form-data; boundary=B",
                "--B\r\nContent-Disposition: form-data; name=\"apikey\"\r\n\r\nsecret\r\n\
                 --B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--B--\r\n"
                    .to_owned(),
                "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--B--\r\n"
                    .to_owned(),
            ),
        ];
        for (content_type, body, expected) in cases {
            let request = http::Request::post("/")
                .header("content-type", content_type)
                .header("content-length", body.len())
                .body(Bytes::from(body))
                .unwrap();
            let (mut ctx, response) = run(&setup, request).await;
            assert!(response.is_none(), "{content_type}");
            assert_eq!(ctx.consumer().unwrap().id, setup.alice, "{content_type}");
            assert_eq!(
                ctx.request.headers["content-length"],
                expected.len().to_string().as_str()
            );
            assert_eq!(upstream_body(&mut ctx).await, expected, "{content_type}");
        }
    }

    #[tokio::test]
    async fn body_keys_are_ignored_unless_enabled() {
        let setup = setup(json!({}));
        let request = http::Request::post("/")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Bytes::from_static(b"apikey=secret"))
            .unwrap();
        let (mut ctx, response) = run(&setup, request).await;
        assert_eq!(message(&response.unwrap()), "No API key found in request");
        assert_eq!(
            upstream_body(&mut ctx).await,
            "apikey=secret",
            "body still streams"
        );
    }

    #[tokio::test]
    async fn anonymous_by_username_or_id() {
        let setup = setup(json!({"anonymous": "anon"}));
        let (ctx, response) = run(&setup, get("/?apikey=wrong")).await;
        assert!(response.is_none());
        assert_eq!(ctx.consumer().unwrap().id, setup.anonymous);
        assert!(ctx.credential().is_none());
        assert_eq!(ctx.request.headers[ANONYMOUS_CONSUMER], "true");
        assert!(!ctx.request.headers.contains_key(CREDENTIAL_IDENTIFIER));

        let mut by_id = self::setup(json!({}));
        by_id.config.plugins[0]["config"]["anonymous"] = json!(by_id.anonymous.to_string());
        let (ctx, response) = run(&by_id, get("/")).await;
        assert!(response.is_none());
        assert_eq!(ctx.consumer().unwrap().id, by_id.anonymous);
    }

    #[tokio::test]
    async fn missing_anonymous_is_a_500() {
        let setup = setup(json!({"anonymous": "ghost"}));
        let (_, response) = run(&setup, get("/")).await;
        let response = response.unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(
            message(&response),
            "anonymous consumer ghost is configured but doesn't exist"
        );
        assert!(!response.headers().contains_key(WWW_AUTHENTICATE));
    }

    #[tokio::test]
    async fn or_mode_skips_already_authenticated_requests() {
        let setup = setup(json!({"anonymous": "anon"}));
        let snapshot = Arc::new(Snapshot::build(&setup.config, &PluginEnv::default()).unwrap());
        let mut ctx = ctx_with_request(Arc::clone(&snapshot), &setup.config, get("/"));
        let alice = snapshot.consumer(&setup.alice).cloned();
        let credential = AuthCredential {
            id: Uuid::new_v4(),
            consumer_id: setup.alice,
        };
        ctx.authenticate(alice, Some(credential));
        let response = PluginRunner::new(DEFAULT_BODY_CAP)
            .access(snapshot.plugins(), &mut ctx)
            .await;
        assert!(response.is_none());
        assert_eq!(
            ctx.consumer().unwrap().id,
            setup.alice,
            "session's consumer kept"
        );
    }

    #[tokio::test]
    async fn preflight_passes_only_when_configured() {
        let options = || http::Request::options("/").body(Bytes::new()).unwrap();
        let setup = setup(json!({"run_on_preflight": false}));
        let (ctx, response) = run(&setup, options()).await;
        assert!(response.is_none());
        assert!(ctx.consumer().is_none());
        let setup = self::setup(json!({}));
        let (_, response) = run(&setup, options()).await;
        assert_eq!(response.unwrap().status(), 401);
    }
}
