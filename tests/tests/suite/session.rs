//! The session plugin through the real proxy, on the tutorial's setup
//! (key-auth with the anonymous fallback, consumer `alex` with key
//! `hello_world`, request-termination 403 `Forbidden` for the anonymous
//! consumer), so that a cookie that does not authenticate shows as that
//! 403, never as a 500.
//!
//! - Cookies that must be ignored: tampered, truncated, malformed, expired
//!   (rolling, idling, absolute), of another audience, sealed with another
//!   secret.
//! - Renewal past 3/4 of a short rolling timeout. Touch after 60 s of
//!   idleness cannot be shortened (lua-resty-session's fixed threshold), so
//!   its test is `#[ignore]`d by design; run it with `--ignored`.
//! - Logout by query argument and by body argument, revocation with
//!   `storage: kong`, sessions surviving a restart, expired sessions,
//!   deleted consumers, the anonymous consumer getting no cookie, and
//!   `storage: cookie` working without any server state.
//! - Cookie attributes, the remember cookie, `Session-*` headers, and the
//!   interplay with key-auth (OR and AND modes) and consumer-scoped
//!   request-termination.
//!
//! The gateway exposes no count of stored session rows; the sweeping of
//! expired rows is observed through the sweeper's own debug log line
//! (`swept expired sessions removed=N`), which it prints at start-up and
//! every 30 s.

use crate::support;

use std::time::{Duration, Instant};

use e2e::{send, Answer, GatewayOptions};
use reqwest::Method;
use serde_json::{json, Value};
use support::{cookie_value, sleep_until, Env, Tutorial, COOKIE_HEADER_CHARS, FORBIDDEN_BODY};

/// A fixed secret, for tests that need two plugins (or gateways) to share
/// or not share one.
const SECRET_A: &str = "secret-a-0123456789-abcdefghijklmnopqrstuv";
const SECRET_B: &str = "secret-b-0123456789-abcdefghijklmnopqrstuv";

/// The expiring `Set-Cookie` of a logout (Kong's exact text, without the
/// attributes between name and Expires).
const EXPIRED: &str = "; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0";

// ----- helpers -------------------------------------------------------------------

/// The tutorial's session config with `overrides`.
fn config(overrides: Value) -> Value {
    let mut config = json!({"storage": "kong", "cookie_secure": false});
    for (key, value) in overrides.as_object().expect("an object") {
        config[key] = value.clone();
    }
    config
}

/// `pair` with the character at `index` of its value replaced by another
/// base64url character.
fn tamper(pair: &str, index: usize) -> String {
    let (name, value) = pair.split_once('=').expect("name=value");
    let mut bytes = value.as_bytes().to_vec();
    bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
    format!("{name}={}", String::from_utf8(bytes).expect("ASCII"))
}

/// `pair` with its value cut to `len` characters.
fn truncate(pair: &str, len: usize) -> String {
    let (name, value) = pair.split_once('=').expect("name=value");
    format!("{name}={}", &value[..len])
}

/// The session id part of a cookie value: the base64url characters that
/// encode header bytes 3..33 (all inside the 32-byte SID).
fn sid_chars(pair: &str) -> &str {
    &cookie_value(pair)[4..44]
}

/// A logout answer: 200, empty body, and an expiring `Set-Cookie` for
/// `name`.
#[track_caller]
fn assert_logged_out(reply: &Answer, name: &str) {
    assert_eq!(reply.status, 200, "a logout answers 200\n{reply}");
    assert_eq!(reply.body, "", "a logout has an empty body\n{reply}");
    assert_eq!(reply.header("content-length"), Some("0"), "{reply}");
    let line = reply
        .set_cookie_line(name)
        .unwrap_or_else(|| panic!("no expiring Set-Cookie for {name}\n{reply}"));
    assert!(
        line.starts_with(&format!("{name}=;")) && line.ends_with(EXPIRED),
        "expected {name}=; ...{EXPIRED}, got {line}\n{reply}"
    );
}

/// Log in on `path` and return the session cookie, taken at `Instant`.
fn login_timed(tutorial: &Tutorial, path: &str) -> (String, Instant) {
    let started = Instant::now();
    (tutorial.login_at(path), started)
}

// ----- the cookie authenticates ----------------------------------------------------

#[test]
fn session_cookie_alone_restores_the_consumer_and_credential_headers() {
    let tutorial = Tutorial::start(config(json!({})));
    let pair = tutorial.login();
    let reply = send(
        tutorial
            .env
            .get("/anything")
            .header("cookie", &pair)
            .header("x-consumer-username", "admin")
            .header("x-consumer-custom-id", "spoofed")
            .header("x-credential-identifier", "spoofed")
            .header("x-anonymous-consumer", "true"),
    );
    reply.expect(200);
    let upstream = |name| reply.upstream_header(name);
    assert_eq!(
        upstream("x-consumer-username").as_deref(),
        Some("alex"),
        "{reply}"
    );
    assert_eq!(
        upstream("x-consumer-id"),
        tutorial.alex["id"].as_str().map(str::to_owned),
        "{reply}"
    );
    assert_eq!(
        upstream("x-credential-identifier"),
        tutorial.credential["id"].as_str().map(str::to_owned),
        "{reply}"
    );
    assert_eq!(upstream("x-consumer-custom-id"), None, "{reply}");
    assert_eq!(upstream("x-anonymous-consumer"), None, "{reply}");
    assert_eq!(
        upstream("cookie").as_deref(),
        Some(pair.as_str()),
        "the session cookie is not stripped from the upstream request\n{reply}"
    );
}

#[test]
fn session_replaces_the_login_when_key_auth_has_an_anonymous_fallback() {
    let tutorial = Tutorial::start(config(json!({})));
    let pair = tutorial.login();
    // key-auth in OR mode sees the session's credential and does nothing,
    // so even a wrong key does not matter.
    let reply = send(
        tutorial
            .env
            .get("/anything")
            .header("cookie", &pair)
            .header("apikey", "wrong"),
    );
    reply.expect(200);
    assert_eq!(
        reply.upstream_header("x-consumer-username").as_deref(),
        Some("alex"),
        "{reply}"
    );
}

#[test]
fn key_auth_without_anonymous_still_requires_the_key_with_a_valid_session() {
    let env = Env::start();
    env.consumer("alex");
    env.key("alex", "hello_world");
    env.global_plugin("key-auth", json!({}));
    env.global_plugin("session", config(json!({})));
    let login = send(env.get("/anything").header("apikey", "hello_world"));
    login.expect(200);
    let pair = login.cookie_pair("session").expect("a session cookie");
    let reply = send(env.get("/anything").header("cookie", &pair));
    assert_eq!(
        reply.status, 401,
        "AND mode: the key is still required\n{reply}"
    );
    assert_eq!(
        reply.json()["message"],
        "No API key found in request",
        "{reply}"
    );
    let both = send(
        env.get("/anything")
            .header("cookie", &pair)
            .header("apikey", "hello_world"),
    );
    both.expect(200);
}

#[test]
fn consumer_scoped_termination_applies_to_the_consumer_a_session_restored() {
    let tutorial = Tutorial::start(config(json!({})));
    let pair = tutorial.login();
    tutorial.env.plugin(json!({
        "name": "request-termination",
        "consumer": {"username": "alex"},
        "config": {"status_code": 451, "message": "alex is blocked"},
    }));
    let reply = tutorial.with_cookie(&pair);
    assert_eq!(reply.status, 451, "{reply}");
    assert_eq!(reply.body, r#"{"message":"alex is blocked"}"#, "{reply}");
    // A key login terminated by the consumer-scoped instance still gets a
    // session cookie: the header phase runs on short-circuited responses.
    let login = send(
        tutorial
            .env
            .get("/anything")
            .header("apikey", "hello_world"),
    );
    assert_eq!(login.status, 451, "{login}");
    assert!(login.cookie_pair("session").is_some(), "{login}");
}

#[test]
fn anonymous_consumer_gets_no_session_cookie() {
    let env = Env::start();
    env.consumer("anonymous");
    env.global_plugin("key-auth", json!({"anonymous": "anonymous"}));
    env.global_plugin("session", config(json!({})));
    let reply = send(env.get("/anything"));
    reply.expect(200);
    assert_eq!(
        reply.upstream_header("x-anonymous-consumer").as_deref(),
        Some("true"),
        "{reply}"
    );
    assert_eq!(reply.header("set-cookie"), None, "{reply}");

    // And under the tutorial, the 403 carries no cookie either.
    let tutorial = Tutorial::start(config(json!({})));
    let reply = send(tutorial.env.get("/anything"));
    assert_eq!(reply.status, 403, "{reply}");
    assert_eq!(reply.header("set-cookie"), None, "{reply}");
}

// ----- cookies that must be ignored ------------------------------------------------

#[test]
fn tampered_cookies_are_ignored() {
    let tutorial = Tutorial::without_session(Env::start());
    tutorial.route_session("kong", config(json!({})));
    tutorial.route_session("cookie", config(json!({"storage": "cookie"})));
    let kong = tutorial.login_at("/kong");
    let cookie = tutorial.login_at("/cookie");
    tutorial.assert_alex_at("/kong", &kong);
    tutorial.assert_alex_at("/cookie", &cookie);
    // Header fields (creation time, sizes, tag), then the MAC itself.
    for index in [2, 50, 60, 70, 95, 100] {
        tutorial.assert_forbidden_at("/kong", &tamper(&kong, index));
        tutorial.assert_forbidden_at("/cookie", &tamper(&cookie, index));
    }
    // The encrypted payload of a cookie-storage session.
    for offset in [0, 10, 30] {
        let index = COOKIE_HEADER_CHARS + offset;
        tutorial.assert_forbidden_at("/cookie", &tamper(&cookie, index));
    }
}

#[test]
fn truncated_cookies_are_ignored() {
    let tutorial = Tutorial::without_session(Env::start());
    tutorial.route_session("kong", config(json!({})));
    tutorial.route_session("cookie", config(json!({"storage": "cookie"})));
    let kong = tutorial.login_at("/kong");
    let cookie = tutorial.login_at("/cookie");
    for len in [0, 1, 40, COOKIE_HEADER_CHARS - 1] {
        tutorial.assert_forbidden_at("/kong", &truncate(&kong, len));
        tutorial.assert_forbidden_at("/cookie", &truncate(&cookie, len));
    }
    let full = cookie_value(&cookie).len();
    for len in [COOKIE_HEADER_CHARS, COOKIE_HEADER_CHARS + 5, full - 1] {
        tutorial.assert_forbidden_at("/cookie", &truncate(&cookie, len));
    }
}

#[test]
fn malformed_cookie_values_are_ignored() {
    let tutorial = Tutorial::start(config(json!({})));
    let pair = tutorial.login();
    let value = cookie_value(&pair);
    let garbage = [
        "session=".to_owned(),
        "session=not-a-session".to_owned(),
        format!("session={}", "!".repeat(COOKIE_HEADER_CHARS)),
        format!("session={}", "A".repeat(COOKIE_HEADER_CHARS)),
        format!("session={}", "_".repeat(400)),
        format!("session=%{}", &value[1..]),
        format!("session={}", value.to_ascii_lowercase()),
    ];
    for cookie in garbage {
        tutorial.assert_forbidden(&cookie);
    }
}

#[test]
fn cookie_past_its_rolling_timeout_is_ignored() {
    let tutorial = Tutorial::start(config(json!({"rolling_timeout": 2})));
    let (pair, at) = login_timed(&tutorial, "/anything");
    sleep_until(at, Duration::from_millis(3300));
    tutorial.assert_forbidden(&pair);
}

#[test]
fn cookie_past_its_idling_timeout_is_ignored() {
    let tutorial = Tutorial::start(config(json!({"idling_timeout": 2})));
    let (pair, at) = login_timed(&tutorial, "/anything");
    sleep_until(at, Duration::from_millis(3300));
    tutorial.assert_forbidden(&pair);
}

#[test]
fn cookie_past_its_absolute_timeout_is_ignored() {
    let tutorial = Tutorial::start(config(json!({
        "absolute_timeout": 2, "rolling_timeout": 3600, "storage": "cookie"
    })));
    let (pair, at) = login_timed(&tutorial, "/anything");
    tutorial.assert_alex(&pair);
    sleep_until(at, Duration::from_millis(3300));
    tutorial.assert_forbidden(&pair);
}

#[test]
fn cookie_of_another_audience_is_ignored() {
    let tutorial = Tutorial::without_session(Env::start());
    let common = json!({"storage": "cookie", "secret": SECRET_A});
    let with = |audience: &str| {
        let mut config = config(common.clone());
        config["audience"] = json!(audience);
        config
    };
    tutorial.route_session("a", with("alpha"));
    tutorial.route_session("b", with("beta"));
    tutorial.route_session("c", with("alpha"));
    let alpha = tutorial.login_at("/a");
    tutorial.assert_alex_at("/a", &alpha);
    tutorial.assert_alex_at("/c", &alpha);
    tutorial.assert_forbidden_at("/b", &alpha);
}

#[test]
fn cookie_sealed_with_another_secret_is_ignored() {
    let tutorial = Tutorial::without_session(Env::start());
    tutorial.route_session(
        "a",
        config(json!({"storage": "cookie", "secret": SECRET_A})),
    );
    tutorial.route_session(
        "b",
        config(json!({"storage": "cookie", "secret": SECRET_B})),
    );
    tutorial.route_session(
        "c",
        config(json!({"storage": "cookie", "secret": SECRET_A})),
    );
    let sealed_with_a = tutorial.login_at("/a");
    tutorial.assert_alex_at("/c", &sealed_with_a);
    tutorial.assert_forbidden_at("/b", &sealed_with_a);
}

#[test]
fn cookie_of_the_other_storage_is_ignored() {
    let tutorial = Tutorial::without_session(Env::start());
    tutorial.route_session("kong", config(json!({"secret": SECRET_A})));
    tutorial.route_session(
        "cookie",
        config(json!({"storage": "cookie", "secret": SECRET_A})),
    );
    let kong = tutorial.login_at("/kong");
    let cookie = tutorial.login_at("/cookie");
    tutorial.assert_forbidden_at("/cookie", &kong);
    tutorial.assert_forbidden_at("/kong", &cookie);
}

// ----- renewal and touch -----------------------------------------------------------

#[test]
fn renewal_past_three_quarters_of_the_rolling_timeout_sends_a_new_cookie() {
    let tutorial = Tutorial::start(config(json!({"rolling_timeout": 4})));
    let (pair, at) = login_timed(&tutorial, "/anything");
    let early = tutorial.assert_alex(&pair);
    assert_eq!(early.header("set-cookie"), None, "no renewal yet\n{early}");
    // Renewal happens once more than ceil(0.75 × 4) = 3 whole seconds have
    // passed since the cookie was made, and before it expires after 4: ask
    // every 150 ms from 3 s on.
    sleep_until(at, Duration::from_millis(3000));
    let deadline = at + Duration::from_millis(5800);
    let renewed = loop {
        let reply = tutorial.assert_alex(&pair);
        if let Some(new) = reply.cookie_pair("session") {
            break new;
        }
        assert!(
            Instant::now() < deadline,
            "no renewal Set-Cookie within 5.8 s of the login\n{reply}"
        );
        std::thread::sleep(Duration::from_millis(150));
    };
    assert_ne!(renewed, pair, "the renewed cookie must differ");
    assert_ne!(
        sid_chars(&renewed),
        sid_chars(&pair),
        "renewal makes a new session id"
    );
    // After the original rolling timeout, only the renewed cookie works.
    sleep_until(at, Duration::from_millis(6200));
    tutorial.assert_forbidden(&pair);
    tutorial.assert_alex(&renewed);
}

#[test]
#[ignore = "skipped by design: lua-resty-session touches only after 60 idle seconds, a fixed threshold Kong does not expose; run with --ignored"]
fn touch_after_sixty_idle_seconds_skipped_by_design() {
    let tutorial = Tutorial::start(config(json!({"idling_timeout": 75})));
    let (pair, at) = login_timed(&tutorial, "/anything");
    sleep_until(at, Duration::from_secs(62));
    let reply = tutorial.assert_alex(&pair);
    let touched = reply
        .cookie_pair("session")
        .unwrap_or_else(|| panic!("a touch re-sends the cookie\n{reply}"));
    assert_ne!(touched, pair, "the idling offset and MAC changed");
    assert_eq!(
        sid_chars(&touched),
        sid_chars(&pair),
        "a touch keeps the session id"
    );
    // Idle 75 s after the login, only the touched cookie is still valid.
    sleep_until(at, Duration::from_secs(78));
    tutorial.assert_forbidden(&pair);
    tutorial.assert_alex(&touched);
}

// ----- logout ------------------------------------------------------------------------

#[test]
fn logout_by_query_arg_expires_the_cookie_and_revokes_the_kong_session() {
    let tutorial = Tutorial::start(config(json!({})));
    for (method, query) in [
        (Method::DELETE, "session_logout"),
        (Method::POST, "session_logout=1"),
        (Method::POST, "session_logout="),
    ] {
        let pair = tutorial.login();
        let reply = send(
            tutorial
                .env
                .proxy(method.clone(), &format!("/anything?{query}"))
                .header("cookie", &pair),
        );
        assert_logged_out(&reply, "session");
        assert_eq!(
            reply.set_cookie_line("session").as_deref(),
            Some(format!("session=; Path=/; SameSite=Strict; HttpOnly{EXPIRED}").as_str()),
            "{method} ?{query}\n{reply}"
        );
        tutorial.assert_forbidden(&pair);
    }
}

#[test]
fn logout_query_arg_needs_a_logout_method_and_a_valid_session() {
    let tutorial = Tutorial::start(config(json!({})));
    let pair = tutorial.login();
    // GET is not among the default logout methods: proxied, still logged in.
    let reply = send(
        tutorial
            .env
            .get("/anything?session_logout")
            .header("cookie", &pair),
    );
    reply.expect(200);
    assert_eq!(
        reply.upstream_header("x-consumer-username").as_deref(),
        Some("alex"),
        "{reply}"
    );
    tutorial.assert_alex(&pair);
    // Without a session there is nothing to log out: the tutorial's 403.
    let reply = send(
        tutorial
            .env
            .proxy(Method::DELETE, "/anything?session_logout"),
    );
    assert_eq!(reply.status, 403, "{reply}");
    assert_eq!(reply.body, FORBIDDEN_BODY, "{reply}");
}

#[test]
fn logout_methods_and_query_arg_can_be_configured() {
    let tutorial = Tutorial::start(config(json!({
        "logout_methods": ["GET"], "logout_query_arg": "bye"
    })));
    let pair = tutorial.login();
    let reply = send(
        tutorial
            .env
            .proxy(Method::DELETE, "/anything?bye")
            .header("cookie", &pair),
    );
    reply.expect(200);
    assert_eq!(
        reply.echoed()["method"],
        "DELETE",
        "proxied, not a logout\n{reply}"
    );
    let reply = send(
        tutorial
            .env
            .get("/anything?session_logout")
            .header("cookie", &pair),
    );
    reply.expect(200);
    assert_eq!(
        reply.echoed()["method"],
        "GET",
        "proxied, not a logout\n{reply}"
    );
    let reply = send(tutorial.env.get("/anything?bye").header("cookie", &pair));
    assert_logged_out(&reply, "session");
    tutorial.assert_forbidden(&pair);
}

#[test]
fn logout_by_body_arg_needs_read_body_for_logout() {
    let tutorial = Tutorial::without_session(Env::start());
    tutorial.route_session("plain", config(json!({})));
    tutorial.route_session("body", config(json!({"read_body_for_logout": true})));
    let form = "application/x-www-form-urlencoded";

    // By default the body is not read: proxied, and the session lives on.
    let plain = tutorial.login_at("/plain");
    let reply = send(
        tutorial
            .env
            .proxy(Method::POST, "/plain")
            .header("cookie", &plain)
            .header("content-type", form)
            .body("session_logout=1"),
    );
    reply.expect(200);
    assert_eq!(
        reply.echoed()["form"],
        json!({"session_logout": "1"}),
        "{reply}"
    );
    tutorial.assert_alex_at("/plain", &plain);

    // With read_body_for_logout: a form body, a JSON body (DELETE).
    let pair = tutorial.login_at("/body");
    let reply = send(
        tutorial
            .env
            .proxy(Method::POST, "/body")
            .header("cookie", &pair)
            .header("content-type", form)
            .body("other=1&session_logout=yes"),
    );
    assert_logged_out(&reply, "session");
    tutorial.assert_forbidden_at("/body", &pair);

    let pair = tutorial.login_at("/body");
    let reply = send(
        tutorial
            .env
            .proxy(Method::DELETE, "/body")
            .header("cookie", &pair)
            .json(&json!({"session_logout": true})),
    );
    assert_logged_out(&reply, "session");
    tutorial.assert_forbidden_at("/body", &pair);
}

#[test]
fn logout_with_storage_cookie_cannot_revoke_an_earlier_copy() {
    let tutorial = Tutorial::start(config(json!({"storage": "cookie"})));
    let pair = tutorial.login();
    let reply = send(
        tutorial
            .env
            .proxy(Method::DELETE, "/anything?session_logout")
            .header("cookie", &pair),
    );
    assert_logged_out(&reply, "session");
    // Nothing server-side: the copy kept by the client still opens.
    tutorial.assert_alex(&pair);
}

// ----- storage -------------------------------------------------------------------------

#[test]
fn kong_sessions_survive_a_gateway_restart_with_their_generated_secret() {
    let mut tutorial = Tutorial::start(config(json!({})));
    let path = format!("/plugins/{}", tutorial.session["id"].as_str().expect("id"));
    let secret = tutorial.env.admin_get(&path)["config"]["secret"].clone();
    assert!(
        secret.as_str().is_some_and(|secret| secret.len() == 44),
        "a 44-character secret is generated when none is given: {secret}"
    );
    let pair = tutorial.login();
    tutorial.assert_alex(&pair);
    tutorial.env.gateway.restart();
    tutorial.assert_alex(&pair);
    assert_eq!(
        tutorial.env.admin_get(&path)["config"]["secret"],
        secret,
        "the generated secret is persisted"
    );
    tutorial.assert_forbidden(&tamper(&pair, 60));
}

#[test]
fn expired_kong_sessions_stop_working_and_their_rows_are_swept() {
    // The sweeper logs how many rows it removed (at debug level); it runs
    // when the gateway starts and every 30 s, so a restart triggers it.
    let env = Env::start_with(GatewayOptions {
        extra_env: vec![("RUST_LOG".into(), "gateway=debug".into())],
        ..GatewayOptions::default()
    });
    let mut tutorial = Tutorial::on(env, config(json!({"rolling_timeout": 2})));
    let (pair, at) = login_timed(&tutorial, "/anything");
    let other = tutorial.login();
    tutorial.assert_alex(&other);
    sleep_until(at, Duration::from_millis(3500));
    tutorial.assert_forbidden(&pair);
    tutorial.assert_forbidden(&other);
    tutorial.env.gateway.restart();
    let removed = wait_for_sweep(&tutorial.env);
    assert_eq!(
        removed,
        2,
        "both expired rows are swept\n{}",
        tutorial.env.gateway.stderr()
    );
    tutorial.assert_forbidden(&pair);
    tutorial.assert_forbidden(&other);
    // New sessions work as before.
    let fresh = tutorial.login();
    tutorial.assert_alex(&fresh);
}

/// The number of rows the sweeper reported removing since the gateway
/// started, waiting up to 5 s for its first report.
fn wait_for_sweep(env: &Env) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = strip_ansi(&env.gateway.stderr());
        let removed: Vec<usize> = log
            .lines()
            .filter(|line| line.contains("swept expired sessions"))
            .filter_map(|line| {
                let (_, rest) = line.split_once("removed=")?;
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect();
        if !removed.is_empty() {
            return removed.iter().sum();
        }
        assert!(
            Instant::now() < deadline,
            "no `swept expired sessions` line within 5 s of the restart\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `text` without ANSI escape sequences (the log may be coloured).
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

#[test]
fn storage_cookie_sessions_need_no_server_state() {
    // Two gateways with nothing in common but the configuration (the same
    // secret and consumer id): a cookie made by one opens on the other.
    let session = config(json!({"storage": "cookie", "secret": SECRET_A}));
    let first = Tutorial::start(session.clone());
    let second = Tutorial::start(session);
    let pair = first.login();
    assert!(cookie_value(&pair).len() > COOKIE_HEADER_CHARS, "{pair}");
    second.assert_alex(&pair);
    drop(first);
    second.assert_alex(&pair);
}

#[test]
fn kong_storage_sessions_need_the_row_of_the_gateway_that_made_them() {
    let session = config(json!({"secret": SECRET_A}));
    let first = Tutorial::start(session.clone());
    let second = Tutorial::start(session);
    let pair = first.login();
    assert_eq!(cookie_value(&pair).len(), COOKIE_HEADER_CHARS, "{pair}");
    first.assert_alex(&pair);
    second.assert_forbidden(&pair);
}

#[test]
fn session_of_a_deleted_consumer_stops_working() {
    let tutorial = Tutorial::start(config(json!({})));
    let pair = tutorial.login();
    tutorial.assert_alex(&pair);
    tutorial.env.admin_delete("/consumers/alex");
    let reply = tutorial.assert_forbidden(&pair);
    let expired = reply.set_cookie_line("session").unwrap_or_default();
    assert!(
        expired.starts_with("session=;") && expired.ends_with(EXPIRED),
        "the session of a deleted consumer is logged out\n{reply}"
    );
    // A new consumer with the same username is someone else.
    tutorial.env.consumer("alex");
    tutorial.assert_forbidden(&pair);
}

// ----- cookie attributes, remember, headers ---------------------------------------

#[test]
fn cookie_attributes_follow_the_config() {
    let tutorial = Tutorial::without_session(Env::start());
    tutorial.route_session("defaults", json!({}));
    tutorial.route_session(
        "custom",
        json!({
            "cookie_name": "sid", "cookie_path": "/custom", "cookie_domain": "example.test",
            "cookie_same_site": "Lax", "cookie_http_only": false, "cookie_secure": true,
        }),
    );
    tutorial.route_session(
        "none",
        json!({
            "cookie_domain": "localhost", "cookie_same_site": "None", "cookie_secure": false,
        }),
    );

    let reply = tutorial.login_reply_at("/defaults", "session");
    let pair = reply.cookie_pair("session").expect("checked");
    assert_eq!(
        reply.set_cookie_line("session"),
        Some(format!("{pair}; Path=/; SameSite=Strict; Secure; HttpOnly")),
        "Kong's defaults\n{reply}"
    );

    let reply = tutorial.login_reply_at("/custom", "sid");
    let pair = reply.cookie_pair("sid").expect("checked");
    assert_eq!(
        reply.set_cookie_line("sid"),
        Some(format!(
            "{pair}; Domain=example.test; Path=/custom; SameSite=Lax; Secure"
        )),
        "{reply}"
    );
    assert_eq!(reply.set_cookie_line("session"), None, "{reply}");
    tutorial.assert_alex_at("/custom", &pair);

    let reply = tutorial.login_reply_at("/none", "session");
    let pair = reply.cookie_pair("session").expect("checked");
    assert_eq!(
        reply.set_cookie_line("session"),
        Some(format!("{pair}; Path=/; SameSite=None; Secure; HttpOnly")),
        "no Domain for localhost; SameSite=None forces Secure\n{reply}"
    );
}

#[test]
fn remember_cookie_restores_the_session_when_the_session_cookie_is_gone() {
    let tutorial = Tutorial::start(config(json!({
        "remember": true, "remember_rolling_timeout": 3600
    })));
    let login = tutorial.login_reply_at("/anything", "remember");
    let session = login.cookie_pair("session").expect("a session cookie");
    let remember = login.cookie_pair("remember").expect("checked");
    let line = login.set_cookie_line("remember").expect("checked");
    assert!(
        line.starts_with(&format!(
            "{remember}; Path=/; SameSite=Strict; HttpOnly; Expires="
        )) && line.ends_with("; Max-Age=3600"),
        "a persistent remember cookie\n{login}"
    );
    assert!(
        !login
            .set_cookie_line("session")
            .unwrap_or_default()
            .contains("Max-Age"),
        "the session cookie is a browser-session cookie\n{login}"
    );
    tutorial.assert_alex(&session);

    let reply = tutorial.assert_alex(&remember);
    let new_session = reply
        .cookie_pair("session")
        .unwrap_or_else(|| panic!("a new session cookie from the remember cookie\n{reply}"));
    let new_remember = reply
        .cookie_pair("remember")
        .unwrap_or_else(|| panic!("the remember cookie is saved again\n{reply}"));
    assert_ne!(new_remember, remember, "{reply}");
    tutorial.assert_alex(&new_session);

    // Logging out expires both.
    let reply = send(
        tutorial
            .env
            .proxy(Method::DELETE, "/anything?session_logout")
            .header("cookie", format!("{new_session}; {new_remember}")),
    );
    assert_logged_out(&reply, "session");
    assert_logged_out(&reply, "remember");
    tutorial.assert_forbidden(&new_session);
    tutorial.assert_forbidden(&new_remember);
}

#[test]
fn request_and_response_headers_expose_the_session() {
    let tutorial = Tutorial::start(config(json!({
        "response_headers": ["id", "audience", "subject"],
        "request_headers": ["id", "audience", "subject", "rolling-timeout"],
    })));
    let login = tutorial.login_reply_at("/anything", "session");
    let id = login
        .header("session-id")
        .unwrap_or_else(|| panic!("Session-Id on the login response\n{login}"))
        .to_owned();
    assert_eq!(id.len(), 43, "base64url of the 32-byte session id\n{login}");
    assert_eq!(login.header("session-audience"), Some("default"), "{login}");
    assert_eq!(login.header("session-subject"), Some("alex"), "{login}");

    let pair = login.cookie_pair("session").expect("checked");
    let reply = tutorial.assert_alex(&pair);
    assert_eq!(reply.header("session-id"), Some(id.as_str()), "{reply}");
    assert_eq!(reply.header("session-subject"), Some("alex"), "{reply}");
    let upstream = |name| reply.upstream_header(name);
    assert_eq!(upstream("session-id"), Some(id.clone()), "{reply}");
    assert_eq!(
        upstream("session-audience").as_deref(),
        Some("default"),
        "{reply}"
    );
    assert_eq!(
        upstream("session-subject").as_deref(),
        Some("alex"),
        "{reply}"
    );
    let rolling: u64 = upstream("session-rolling-timeout")
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("Session-Rolling-Timeout upstream\n{reply}"));
    assert!((3590..=3600).contains(&rolling), "{rolling}\n{reply}");
    assert_eq!(
        reply.header("session-rolling-timeout"),
        None,
        "only the configured response headers\n{reply}"
    );
}

#[test]
fn tls_listener_serves_cookie_secure_sessions() {
    let tutorial = Tutorial::on(Env::start_tls(), config(json!({"cookie_secure": true})));
    let client = tutorial.env.client();
    let url = tutorial.env.gateway.proxy_tls_url("/anything");
    let login = send(client.get(&url).header("apikey", "hello_world"));
    login.expect(200);
    let pair = login.cookie_pair("session").expect("a session cookie");
    assert!(
        login
            .set_cookie_line("session")
            .unwrap_or_default()
            .contains("; Secure"),
        "{login}"
    );
    let reply = send(client.get(&url).header("cookie", &pair));
    reply.expect(200);
    assert_eq!(
        reply.upstream_header("x-forwarded-proto").as_deref(),
        Some("https"),
        "{reply}"
    );
    assert_eq!(
        reply.upstream_header("x-consumer-username").as_deref(),
        Some("alex"),
        "{reply}"
    );
}
