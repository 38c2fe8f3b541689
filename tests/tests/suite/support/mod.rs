//! Helpers shared by the plugin and tutorial end-to-end tests.
//!
//! - [`Env`]: one `gateway echo` and one `gateway serve`, with a service
//!   `echo-service` pointing at the echo and a route `echo-route` on `/`,
//!   plus small Admin API helpers (`admin_post`, `admin_patch`, ...) that
//!   assert the expected status and print the whole answer when it differs.
//!   Proxied requests are sent with the harness's [`e2e::send`], which
//!   returns an [`e2e::Answer`] (see [`e2e::Answer::upstream_header`] for
//!   what the echo upstream received).
//! - [`Tutorial`]: the tutorial's entities (key-auth with the anonymous
//!   fallback, consumers `alex` / `anonymous_users`, session, a 403 for the
//!   anonymous consumer) created through the Admin API, with the session
//!   config given by the test, and [`Tutorial::login`].
//!
//! Each test binary uses a subset of these helpers.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use e2e::{send, Answer, Echo, Gateway, GatewayOptions};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Method;
use serde_json::{json, Value};

/// The anonymous consumer's id in the tutorial.
pub const ANONYMOUS_ID: &str = "81823632-10c0-4098-a4f7-31062520c1e6";

/// The JSON body request-termination answers with under the tutorial.
pub const FORBIDDEN_BODY: &str = r#"{"message":"Forbidden"}"#;

/// The length of a base64url-encoded session cookie header (82 bytes).
pub const COOKIE_HEADER_CHARS: usize = 110;

// ----- cookies and time ---------------------------------------------------------

/// The value part of a `name=value` cookie pair.
pub fn cookie_value(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(_, value)| value)
}

/// Sleep until `duration` has passed since `since`.
pub fn sleep_until(since: Instant, duration: Duration) {
    let left = duration.saturating_sub(since.elapsed());
    std::thread::sleep(left);
}

// ----- one gateway, one echo -----------------------------------------------------

/// A gateway, its echo upstream, a service `echo-service` and a route
/// `echo-route` on `/`.
pub struct Env {
    pub gateway: Gateway,
    pub echo: Echo,
    pub service: Value,
    pub route: Value,
}

impl Env {
    /// Plain HTTP.
    pub fn start() -> Env {
        Env::start_with(GatewayOptions::default())
    }

    /// With the TLS listener too.
    pub fn start_tls() -> Env {
        Env::start_with(GatewayOptions {
            tls: true,
            ..GatewayOptions::default()
        })
    }

    pub fn start_with(options: GatewayOptions) -> Env {
        let mut env = Env::bare(options);
        env.service = env.admin_post(
            "/services",
            json!({"name": "echo-service", "url": env.echo.url("")}),
        );
        env.route = env.admin_post(
            "/services/echo-service/routes",
            json!({"name": "echo-route", "paths": ["/"]}),
        );
        env
    }

    /// The echo and the gateway, with nothing configured.
    pub fn bare(options: GatewayOptions) -> Env {
        let echo = Echo::start();
        let gateway = Gateway::start(options);
        Env {
            gateway,
            echo,
            service: Value::Null,
            route: Value::Null,
        }
    }

    /// A client for this gateway (trusting its CA when TLS is on).
    pub fn client(&self) -> Client {
        self.gateway.client()
    }

    // ----- Admin API -----

    /// An Admin API call; the status and the body as JSON (`Null` if empty).
    pub fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .client()
            .request(method.clone(), self.gateway.admin_url(path));
        if let Some(body) = &body {
            request = request.json(body);
        }
        let answer = send(request);
        (answer.status, answer.json_or_text())
    }

    /// `POST path` that must answer 201; the created entity.
    #[track_caller]
    pub fn admin_post(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.admin(Method::POST, path, Some(body.clone()));
        assert_eq!(status, 201, "POST {path} {body}\nanswered {answer}");
        answer
    }

    /// `PATCH path` that must answer 200; the updated entity.
    #[track_caller]
    pub fn admin_patch(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.admin(Method::PATCH, path, Some(body.clone()));
        assert_eq!(status, 200, "PATCH {path} {body}\nanswered {answer}");
        answer
    }

    /// `GET path` that must answer 200.
    #[track_caller]
    pub fn admin_get(&self, path: &str) -> Value {
        let (status, answer) = self.admin(Method::GET, path, None);
        assert_eq!(status, 200, "GET {path}\nanswered {answer}");
        answer
    }

    /// `DELETE path` that must answer 204.
    #[track_caller]
    pub fn admin_delete(&self, path: &str) {
        let (status, answer) = self.admin(Method::DELETE, path, None);
        assert_eq!(status, 204, "DELETE {path}\nanswered {answer}");
    }

    /// A consumer with this username.
    #[track_caller]
    pub fn consumer(&self, username: &str) -> Value {
        self.admin_post("/consumers", json!({ "username": username }))
    }

    /// A key-auth credential `key` for consumer `username`.
    #[track_caller]
    pub fn key(&self, username: &str, key: &str) -> Value {
        self.admin_post(
            &format!("/consumers/{username}/key-auth"),
            json!({ "key": key }),
        )
    }

    /// A plugin (`POST /plugins`).
    #[track_caller]
    pub fn plugin(&self, body: Value) -> Value {
        self.admin_post("/plugins", body)
    }

    /// A global plugin `name` with `config`.
    #[track_caller]
    pub fn global_plugin(&self, name: &str, config: Value) -> Value {
        self.plugin(json!({ "name": name, "config": config }))
    }

    // ----- proxy -----

    /// A request to `http://PROXY{path}`.
    pub fn proxy(&self, method: Method, path: &str) -> RequestBuilder {
        self.client().request(method, self.gateway.proxy_url(path))
    }

    /// `GET http://PROXY{path}`.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.proxy(Method::GET, path)
    }

    /// A request to `https://PROXY_TLS{path}`.
    pub fn proxy_tls(&self, method: Method, path: &str) -> RequestBuilder {
        self.client()
            .request(method, self.gateway.proxy_tls_url(path))
    }
}

// ----- the tutorial's entities -------------------------------------------------

/// The tutorial's entities on an [`Env`] (service `echo-service`, route
/// `echo-route` on `/`), created through the Admin API:
/// - key-auth on the service, `anonymous` = the anonymous consumer's id;
/// - consumer `alex` (id [`ALEX_ID`]) with key `hello_world`, consumer
///   `anonymous_users` (id [`ANONYMOUS_ID`]);
/// - session on the service with the test's config (or per route, see
///   [`Tutorial::route_session`]);
/// - request-termination 403 `Forbidden` for the anonymous consumer.
pub struct Tutorial {
    pub env: Env,
    pub alex: Value,
    pub credential: Value,
    /// The service-scoped session plugin, if any.
    pub session: Value,
}

/// alex's id, fixed so that two gateways can share a session.
pub const ALEX_ID: &str = "5a1e0000-0000-4000-8000-00000000a1e0";

impl Tutorial {
    /// Plain HTTP, the session on the service configured with `session_config`.
    pub fn start(session_config: Value) -> Tutorial {
        Tutorial::on(Env::start(), session_config)
    }

    /// The tutorial's entities on `env`, the session on the service.
    pub fn on(env: Env, session_config: Value) -> Tutorial {
        let mut tutorial = Tutorial::without_session(env);
        tutorial.session = tutorial.env.plugin(json!({
            "name": "session",
            "service": {"name": "echo-service"},
            "config": session_config,
        }));
        tutorial
    }

    /// Everything but the session plugin.
    pub fn without_session(env: Env) -> Tutorial {
        env.plugin(json!({
            "name": "key-auth",
            "service": {"name": "echo-service"},
            "config": {"key_names": ["apikey"], "anonymous": ANONYMOUS_ID},
        }));
        let alex = env.admin_post("/consumers", json!({"username": "alex", "id": ALEX_ID}));
        let credential = env.key("alex", "hello_world");
        env.admin_post(
            "/consumers",
            json!({"username": "anonymous_users", "id": ANONYMOUS_ID}),
        );
        env.plugin(json!({
            "name": "request-termination",
            "service": {"name": "echo-service"},
            "consumer": {"username": "anonymous_users"},
            "config": {"status_code": 403, "message": "Forbidden"},
        }));
        Tutorial {
            env,
            alex,
            credential,
            session: Value::Null,
        }
    }

    /// A route `name` on `/name` with its own session plugin; the plugin.
    #[track_caller]
    pub fn route_session(&self, name: &str, session_config: Value) -> Value {
        self.env.admin_post(
            "/services/echo-service/routes",
            json!({"name": name, "paths": [format!("/{name}")]}),
        );
        self.env.plugin(json!({
            "name": "session",
            "route": {"name": name},
            "config": session_config,
        }))
    }

    /// `GET /anything` with `apikey: hello_world`: the `session=...` pair.
    #[track_caller]
    pub fn login(&self) -> String {
        self.login_at("/anything")
    }

    /// `GET path` with `apikey: hello_world`: must be a 200 with a session
    /// cookie; the `session=...` pair.
    #[track_caller]
    pub fn login_at(&self, path: &str) -> String {
        self.login_reply_at(path, "session")
            .cookie_pair("session")
            .expect("checked")
    }

    /// The login response on `path` (a 200 with cookie `cookie_name`,
    /// checked).
    #[track_caller]
    pub fn login_reply_at(&self, path: &str, cookie_name: &str) -> Answer {
        let reply = send(self.env.get(path).header("apikey", "hello_world"));
        reply.expect(200);
        assert!(
            reply.cookie_pair(cookie_name).is_some(),
            "no {cookie_name} cookie after a key login\n{reply}"
        );
        reply
    }

    /// `GET path` with only `Cookie: <pair>`.
    pub fn with_cookie_at(&self, path: &str, pair: &str) -> Answer {
        send(self.env.get(path).header("cookie", pair))
    }

    /// `GET /anything` with only `Cookie: <pair>`.
    pub fn with_cookie(&self, pair: &str) -> Answer {
        self.with_cookie_at("/anything", pair)
    }

    /// The cookie authenticates as alex on `/anything`.
    #[track_caller]
    pub fn assert_alex(&self, pair: &str) -> Answer {
        self.assert_alex_at("/anything", pair)
    }

    /// The cookie authenticates as alex on `path`: 200, the upstream sees
    /// alex.
    #[track_caller]
    pub fn assert_alex_at(&self, path: &str, pair: &str) -> Answer {
        let reply = self.with_cookie_at(path, pair);
        assert_eq!(reply.status, 200, "the session cookie must work\n{reply}");
        assert_eq!(
            reply.upstream_header("x-consumer-username").as_deref(),
            Some("alex"),
            "{reply}"
        );
        reply
    }

    /// The cookie does not authenticate on `/anything`.
    #[track_caller]
    pub fn assert_forbidden(&self, pair: &str) -> Answer {
        self.assert_forbidden_at("/anything", pair)
    }

    /// The cookie does not authenticate on `path`: the tutorial's 403,
    /// never a 500.
    #[track_caller]
    pub fn assert_forbidden_at(&self, path: &str, pair: &str) -> Answer {
        let reply = self.with_cookie_at(path, pair);
        assert_eq!(
            reply.status, 403,
            "the cookie must be ignored (anonymous → 403)\n{reply}"
        );
        assert_eq!(reply.body, FORBIDDEN_BODY, "{reply}");
        reply
    }
}
