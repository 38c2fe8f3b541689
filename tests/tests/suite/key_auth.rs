//! The key-auth plugin through the real proxy: where the key is read
//! (header, query, form / JSON / multipart body), in which order, its error
//! answers (`No API key found in request`, `Unauthorized`, `Duplicate API key
//! found`, `WWW-Authenticate`, Kong's content negotiation on `Accept`),
//! `hide_credentials`, the anonymous fallback, `run_on_preflight`,
//! credential TTLs and the identity headers the upstream receives.
//!
//! Each test starts its own gateway and echo upstream: a service on the
//! echo, a route on `/`, a global key-auth with the test's config, and
//! consumer `alice` (custom_id `alice-cid`) with key `alice-key`.

use crate::support;

use std::time::{Duration, Instant};

use e2e::{send, Answer};
use reqwest::Method;
use serde_json::{json, Value};
use support::Env;

const KEY: &str = "alice-key";

/// A multipart boundary for hand-made bodies.
const BOUNDARY: &str = "e2e-boundary-7MA4YWxkTrZu0gW";

// ----- helpers -------------------------------------------------------------------

struct Fixture {
    env: Env,
    alice: Value,
    credential: Value,
}

impl Fixture {
    /// A gateway with a global key-auth configured with `config`.
    fn start(config: Value) -> Fixture {
        let env = Env::start();
        let alice = env.admin_post(
            "/consumers",
            json!({"username": "alice", "custom_id": "alice-cid"}),
        );
        let credential = env.key("alice", KEY);
        env.global_plugin("key-auth", config);
        Fixture {
            env,
            alice,
            credential,
        }
    }

    fn get(&self, path: &str) -> reqwest::blocking::RequestBuilder {
        self.env.get(path)
    }

    fn post(&self, path: &str) -> reqwest::blocking::RequestBuilder {
        self.env.proxy(Method::POST, path)
    }

    fn alice_id(&self) -> &str {
        self.alice["id"].as_str().expect("alice's id")
    }

    fn credential_id(&self) -> &str {
        self.credential["id"].as_str().expect("the credential's id")
    }

    /// 200 and the upstream saw alice authenticated by her credential.
    #[track_caller]
    fn assert_alice(&self, reply: &Answer) {
        assert_eq!(reply.status, 200, "expected alice to be let in\n{reply}");
        assert_eq!(
            reply.upstream_header("x-consumer-username").as_deref(),
            Some("alice"),
            "{reply}"
        );
        assert_eq!(
            reply.upstream_header("x-credential-identifier").as_deref(),
            Some(self.credential_id()),
            "{reply}"
        );
    }
}

/// A 401 with `message` and `WWW-Authenticate: challenge`.
#[track_caller]
fn assert_401(reply: &Answer, message: &str, challenge: &str) {
    assert_eq!(reply.status, 401, "expected a 401 {message:?}\n{reply}");
    assert_eq!(reply.json()["message"], message, "{reply}");
    assert_eq!(reply.header("www-authenticate"), Some(challenge), "{reply}");
}

/// `multipart/form-data` with the given text fields.
fn multipart(fields: &[(&str, &str)]) -> (String, String) {
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{BOUNDARY}--\r\n"));
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

const FORM: &str = "application/x-www-form-urlencoded";

// ----- where the key is read -------------------------------------------------------

#[test]
fn key_in_header_authenticates_and_the_upstream_gets_the_identity_headers() {
    let fixture = Fixture::start(json!({}));
    let reply = send(fixture.get("/anything").header("apikey", KEY));
    fixture.assert_alice(&reply);
    let upstream = |name| reply.upstream_header(name);
    assert_eq!(
        upstream("x-consumer-id").as_deref(),
        Some(fixture.alice_id()),
        "{reply}"
    );
    assert_eq!(
        upstream("x-consumer-custom-id").as_deref(),
        Some("alice-cid"),
        "{reply}"
    );
    assert_eq!(upstream("x-anonymous-consumer"), None, "{reply}");
    assert_eq!(
        upstream("apikey").as_deref(),
        Some(KEY),
        "without hide_credentials the key is proxied\n{reply}"
    );
}

#[test]
fn identity_headers_sent_by_the_client_are_replaced_or_removed() {
    let fixture = Fixture::start(json!({}));
    let bob = fixture.env.consumer("bob");
    let bob_key = fixture.env.key("bob", "bob-key");
    let reply = send(
        fixture
            .get("/anything")
            .header("apikey", "bob-key")
            .header("x-consumer-id", "spoofed-id")
            .header("x-consumer-custom-id", "spoofed-custom-id")
            .header("x-consumer-username", "admin")
            .header("x-credential-identifier", "spoofed-credential")
            .header("x-anonymous-consumer", "true"),
    );
    reply.expect(200);
    let upstream = |name| reply.upstream_header(name);
    assert_eq!(
        upstream("x-consumer-id"),
        bob["id"].as_str().map(str::to_owned),
        "{reply}"
    );
    assert_eq!(
        upstream("x-consumer-username").as_deref(),
        Some("bob"),
        "{reply}"
    );
    assert_eq!(
        upstream("x-credential-identifier"),
        bob_key["id"].as_str().map(str::to_owned),
        "{reply}"
    );
    assert_eq!(
        upstream("x-consumer-custom-id"),
        None,
        "bob has no custom_id: the client's copy must be removed\n{reply}"
    );
    assert_eq!(
        upstream("x-anonymous-consumer"),
        None,
        "a real credential clears X-Anonymous-Consumer\n{reply}"
    );
}

#[test]
fn key_in_query_authenticates() {
    let fixture = Fixture::start(json!({}));
    let reply = send(fixture.get(&format!("/anything?apikey={KEY}&other=1")));
    fixture.assert_alice(&reply);
    assert_eq!(
        reply.echoed()["args"],
        json!({"apikey": KEY, "other": "1"}),
        "{reply}"
    );
}

#[test]
fn disabled_key_sources_are_not_read() {
    let fixture = Fixture::start(json!({"key_in_header": false}));
    let reply = send(fixture.get("/anything").header("apikey", KEY));
    assert_401(&reply, "No API key found in request", "Key");
    fixture.assert_alice(&send(fixture.get(&format!("/anything?apikey={KEY}"))));

    let fixture = Fixture::start(json!({"key_in_query": false}));
    let reply = send(fixture.get(&format!("/anything?apikey={KEY}")));
    assert_401(&reply, "No API key found in request", "Key");
    fixture.assert_alice(&send(fixture.get("/anything").header("apikey", KEY)));
}

#[test]
fn key_in_body_authenticates_from_form_json_and_multipart_bodies() {
    let fixture = Fixture::start(json!({"key_in_body": true}));
    let form = send(
        fixture
            .post("/anything")
            .header("content-type", FORM)
            .body(format!("x=1&apikey={KEY}")),
    );
    fixture.assert_alice(&form);
    assert_eq!(form.echoed()["data"], format!("x=1&apikey={KEY}"), "{form}");

    let json_body = send(
        fixture
            .post("/anything")
            .json(&json!({"apikey": KEY, "x": 1})),
    );
    fixture.assert_alice(&json_body);

    let (content_type, body) = multipart(&[("x", "1"), ("apikey", KEY)]);
    let multipart = send(
        fixture
            .post("/anything")
            .header("content-type", content_type)
            .body(body.clone()),
    );
    fixture.assert_alice(&multipart);
    assert_eq!(multipart.echoed()["data"], body, "{multipart}");
}

#[test]
fn key_in_body_is_not_read_by_default() {
    let fixture = Fixture::start(json!({}));
    let reply = send(
        fixture
            .post("/anything")
            .header("content-type", FORM)
            .body(format!("apikey={KEY}")),
    );
    assert_401(&reply, "No API key found in request", "Key");
}

#[test]
fn custom_key_names_are_tried_in_order() {
    let fixture = Fixture::start(json!({"key_names": ["x-first", "second_key"]}));
    fixture.assert_alice(&send(fixture.get("/anything").header("x-first", KEY)));
    fixture.assert_alice(&send(fixture.get(&format!("/anything?second_key={KEY}"))));
    let reply = send(fixture.get("/anything").header("apikey", KEY));
    assert_401(&reply, "No API key found in request", "Key");
    // The first name that has a value decides, even when it is wrong.
    let reply = send(
        fixture
            .get(&format!("/anything?second_key={KEY}"))
            .header("x-first", "wrong"),
    );
    assert_401(&reply, "Unauthorized", "Key");
    // A bare `?x-first` (no `=`) is not a string: the next name is tried.
    fixture.assert_alice(&send(
        fixture.get(&format!("/anything?x-first&second_key={KEY}")),
    ));
}

#[test]
fn header_beats_query_even_when_the_header_key_is_wrong() {
    let fixture = Fixture::start(json!({}));
    let reply = send(
        fixture
            .get(&format!("/anything?apikey={KEY}"))
            .header("apikey", "wrong"),
    );
    assert_401(&reply, "Unauthorized", "Key");
    let reply = send(fixture.get("/anything?apikey=wrong").header("apikey", KEY));
    fixture.assert_alice(&reply);
}

#[test]
fn query_beats_body_even_when_the_query_key_is_wrong() {
    let fixture = Fixture::start(json!({"key_in_body": true}));
    let reply = send(
        fixture
            .post("/anything?apikey=wrong")
            .header("content-type", FORM)
            .body(format!("apikey={KEY}")),
    );
    assert_401(&reply, "Unauthorized", "Key");
}

#[test]
fn underscore_key_name_matches_underscore_and_dashed_headers() {
    let fixture = Fixture::start(json!({"key_names": ["api_key"]}));
    fixture.assert_alice(&send(fixture.get("/anything").header("api_key", KEY)));
    fixture.assert_alice(&send(fixture.get("/anything").header("api-key", KEY)));
    fixture.assert_alice(&send(fixture.get("/anything").header("API-KEY", KEY)));
}

#[test]
fn dashed_key_name_does_not_match_an_underscore_header_unverified_in_kong() {
    let fixture = Fixture::start(json!({"key_names": ["api-key"]}));
    fixture.assert_alice(&send(fixture.get("/anything").header("api-key", KEY)));
    let reply = send(fixture.get("/anything").header("api_key", KEY));
    assert_401(&reply, "No API key found in request", "Key");
}

// ----- errors ------------------------------------------------------------------------

#[test]
fn missing_or_empty_key_is_401_no_api_key_found() {
    let fixture = Fixture::start(json!({}));
    for path in ["/anything", "/anything?apikey=", "/anything?apikey"] {
        let reply = send(fixture.get(path));
        assert_401(&reply, "No API key found in request", "Key");
    }
    let reply = send(fixture.get("/anything").header("apikey", ""));
    assert_401(&reply, "No API key found in request", "Key");
}

#[test]
fn unknown_key_is_401_unauthorized() {
    let fixture = Fixture::start(json!({}));
    let reply = send(fixture.get("/anything").header("apikey", "not-a-key"));
    assert_401(&reply, "Unauthorized", "Key");
    let reply = send(fixture.get("/anything?apikey=ALICE-KEY"));
    assert_401(&reply, "Unauthorized", "Key");
}

#[test]
fn repeated_key_is_401_duplicate_api_key_found() {
    let fixture = Fixture::start(json!({"key_in_body": true}));
    let reply = send(fixture.get(&format!("/anything?apikey={KEY}&apikey={KEY}")));
    assert_401(&reply, "Duplicate API key found", "Key");
    let reply = send(
        fixture
            .get("/anything")
            .header("apikey", KEY)
            .header("apikey", "other"),
    );
    assert_401(&reply, "Duplicate API key found", "Key");
    let reply = send(
        fixture
            .post("/anything")
            .header("content-type", FORM)
            .body(format!("apikey={KEY}&apikey={KEY}")),
    );
    assert_401(&reply, "Duplicate API key found", "Key");
    let reply = send(fixture.post("/anything").json(&json!({"apikey": [KEY]})));
    assert_401(&reply, "Duplicate API key found", "Key");
}

#[test]
fn realm_goes_into_www_authenticate() {
    let fixture = Fixture::start(json!({"realm": "x"}));
    let challenge = r#"Key realm="x""#;
    assert_401(
        &send(fixture.get("/anything")),
        "No API key found in request",
        challenge,
    );
    assert_401(
        &send(fixture.get("/anything").header("apikey", "nope")),
        "Unauthorized",
        challenge,
    );
    assert_401(
        &send(fixture.get("/anything?apikey=a&apikey=b")),
        "Duplicate API key found",
        challenge,
    );
}

#[test]
fn error_body_is_json_by_default_with_message_and_request_id() {
    let fixture = Fixture::start(json!({}));
    for accept in [None, Some("*/*"), Some("application/*"), Some("image/png")] {
        let mut request = fixture.get("/anything");
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let reply = send(request);
        reply.expect(401);
        let request_id = reply
            .header("x-kong-request-id")
            .unwrap_or_else(|| panic!("no X-Kong-Request-Id\n{reply}"));
        assert_eq!(
            reply.header("content-type"),
            Some("application/json; charset=utf-8"),
            "Accept {accept:?}\n{reply}"
        );
        assert_eq!(
            reply.body,
            format!(
                "{{\n  \"message\":\"No API key found in request\",\n  \"request_id\":\"{request_id}\"\n}}"
            ),
            "Accept {accept:?}\n{reply}"
        );
    }
}

#[test]
fn error_body_follows_accept_text_plain_html_and_xml() {
    let fixture = Fixture::start(json!({}));
    let fetch = |accept: &str| {
        let reply = send(fixture.get("/anything").header("accept", accept));
        reply.expect(401);
        let id = reply
            .header("x-kong-request-id")
            .unwrap_or_default()
            .to_owned();
        assert!(!id.is_empty(), "no X-Kong-Request-Id\n{reply}");
        (reply, id)
    };

    let (plain, id) = fetch("text/plain");
    assert_eq!(
        plain.header("content-type"),
        Some("text/plain; charset=utf-8"),
        "{plain}"
    );
    assert_eq!(
        plain.body,
        format!("No API key found in request\nrequest_id: {id}\n"),
        "{plain}"
    );

    let (html, id) = fetch("text/html");
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{html}"
    );
    assert!(
        html.body.contains("<p>No API key found in request.</p>"),
        "{html}"
    );
    assert!(
        html.body.contains(&format!("<p>request_id: {id}</p>")),
        "{html}"
    );

    let (xml, id) = fetch("application/xml");
    assert_eq!(
        xml.header("content-type"),
        Some("application/xml; charset=utf-8"),
        "{xml}"
    );
    assert!(
        xml.body
            .contains("<message>No API key found in request</message>"),
        "{xml}"
    );
    assert!(
        xml.body.contains(&format!("<requestid>{id}</requestid>")),
        "{xml}"
    );

    // The highest quality wins.
    let (weighted, _) = fetch("application/json;q=0.5, text/plain;q=0.9");
    assert_eq!(
        weighted.header("content-type"),
        Some("text/plain; charset=utf-8"),
        "{weighted}"
    );
}

// ----- hide_credentials ------------------------------------------------------------

#[test]
fn hide_credentials_removes_the_key_header() {
    let fixture = Fixture::start(json!({"hide_credentials": true}));
    let reply = send(
        fixture
            .get("/anything")
            .header("apikey", KEY)
            .header("x-other", "kept"),
    );
    fixture.assert_alice(&reply);
    assert_eq!(reply.upstream_header("apikey"), None, "{reply}");
    assert_eq!(
        reply.upstream_header("x-other").as_deref(),
        Some("kept"),
        "{reply}"
    );
}

#[test]
fn hide_credentials_removes_the_query_key_and_keeps_other_args_in_order() {
    let fixture = Fixture::start(json!({"hide_credentials": true}));
    let reply = send(fixture.get(&format!("/anything?z=1&apikey={KEY}&a=2&m=x")));
    fixture.assert_alice(&reply);
    let url = reply.echoed()["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        url.ends_with("/anything?z=1&a=2&m=x"),
        "the upstream URL must keep z, a, m in order without apikey: {url}\n{reply}"
    );
}

#[test]
fn hide_credentials_removes_the_key_from_form_json_and_multipart_bodies() {
    let fixture = Fixture::start(json!({"hide_credentials": true, "key_in_body": true}));

    let form = send(
        fixture
            .post("/anything")
            .header("content-type", FORM)
            .body(format!("a=1&apikey={KEY}&b=2")),
    );
    fixture.assert_alice(&form);
    assert_eq!(form.echoed()["data"], "a=1&b=2", "{form}");
    assert_eq!(form.echoed()["form"], json!({"a": "1", "b": "2"}), "{form}");

    let json_body = send(
        fixture
            .post("/anything")
            .json(&json!({"keep": {"nested": true}, "apikey": KEY})),
    );
    fixture.assert_alice(&json_body);
    assert_eq!(
        json_body.echoed()["json"],
        json!({"keep": {"nested": true}}),
        "{json_body}"
    );

    let (content_type, body) = multipart(&[("first", "1"), ("apikey", KEY), ("last", "2")]);
    let multipart_reply = send(
        fixture
            .post("/anything")
            .header("content-type", content_type)
            .body(body),
    );
    fixture.assert_alice(&multipart_reply);
    let (_, expected) = multipart(&[("first", "1"), ("last", "2")]);
    assert_eq!(
        multipart_reply.echoed()["data"],
        expected,
        "the apikey part is removed, the others kept as sent\n{multipart_reply}"
    );
}

// ----- anonymous -----------------------------------------------------------------------

/// No key, a wrong key and a duplicate key all continue as `anonymous`;
/// the right key is still alice.
#[track_caller]
fn assert_anonymous_fallback(fixture: &Fixture, anonymous: &Value) {
    let requests = [
        fixture
            .get("/anything")
            .header("x-credential-identifier", "spoofed"),
        fixture.get("/anything").header("apikey", "wrong"),
        fixture.get("/anything?apikey=a&apikey=b"),
    ];
    for request in requests {
        let reply = send(request);
        reply.expect(200);
        let upstream = |name| reply.upstream_header(name);
        assert_eq!(
            upstream("x-anonymous-consumer").as_deref(),
            Some("true"),
            "{reply}"
        );
        assert_eq!(
            upstream("x-consumer-id"),
            anonymous["id"].as_str().map(str::to_owned),
            "{reply}"
        );
        assert_eq!(
            upstream("x-consumer-username").as_deref(),
            Some("anonymous"),
            "{reply}"
        );
        assert_eq!(
            upstream("x-credential-identifier"),
            None,
            "the anonymous consumer has no credential\n{reply}"
        );
        assert_eq!(reply.header("www-authenticate"), None, "{reply}");
    }
    let reply = send(fixture.get("/anything").header("apikey", KEY));
    fixture.assert_alice(&reply);
    assert_eq!(
        reply.upstream_header("x-anonymous-consumer"),
        None,
        "{reply}"
    );
}

#[test]
fn anonymous_by_id_lets_unauthenticated_requests_through_as_that_consumer() {
    let env = Env::start();
    let alice = env.admin_post(
        "/consumers",
        json!({"username": "alice", "custom_id": "alice-cid"}),
    );
    let credential = env.key("alice", KEY);
    let anonymous = env.consumer("anonymous");
    env.global_plugin("key-auth", json!({"anonymous": anonymous["id"]}));
    let fixture = Fixture {
        env,
        alice,
        credential,
    };
    assert_anonymous_fallback(&fixture, &anonymous);
}

#[test]
fn anonymous_by_username_lets_unauthenticated_requests_through_as_that_consumer() {
    let env = Env::start();
    let alice = env.admin_post(
        "/consumers",
        json!({"username": "alice", "custom_id": "alice-cid"}),
    );
    let credential = env.key("alice", KEY);
    let anonymous = env.consumer("anonymous");
    env.global_plugin("key-auth", json!({"anonymous": "anonymous"}));
    let fixture = Fixture {
        env,
        alice,
        credential,
    };
    assert_anonymous_fallback(&fixture, &anonymous);
}

#[test]
fn anonymous_consumer_configured_but_missing_is_a_500() {
    for anonymous in ["ghost", "0b0e4b8e-6f6c-4c5e-9b7f-0c5d1f6a2b3c"] {
        let fixture = Fixture::start(json!({"anonymous": anonymous}));
        let reply = send(fixture.get("/anything"));
        assert_eq!(reply.status, 500, "{reply}");
        assert_eq!(
            reply.json()["message"],
            format!("anonymous consumer {anonymous} is configured but doesn't exist"),
            "{reply}"
        );
        assert_eq!(reply.header("www-authenticate"), None, "{reply}");
        // The right key never needs the anonymous consumer.
        fixture.assert_alice(&send(fixture.get("/anything").header("apikey", KEY)));
    }
}

// ----- preflight, TTL, deletion ---------------------------------------------------------

#[test]
fn run_on_preflight_false_lets_options_requests_through_unauthenticated() {
    let fixture = Fixture::start(json!({"run_on_preflight": false}));
    let reply = send(fixture.env.proxy(Method::OPTIONS, "/anything"));
    reply.expect(200);
    assert_eq!(reply.echoed()["method"], "OPTIONS", "{reply}");
    assert_eq!(reply.upstream_header("x-consumer-id"), None, "{reply}");
    assert_eq!(
        reply.upstream_header("x-anonymous-consumer"),
        None,
        "{reply}"
    );
    // Other methods still need the key.
    assert_401(
        &send(fixture.get("/anything")),
        "No API key found in request",
        "Key",
    );
}

#[test]
fn options_requests_need_the_key_by_default() {
    let fixture = Fixture::start(json!({}));
    let reply = send(fixture.env.proxy(Method::OPTIONS, "/anything"));
    assert_401(&reply, "No API key found in request", "Key");
}

#[test]
fn credential_with_ttl_is_unauthorized_once_expired() {
    let fixture = Fixture::start(json!({}));
    let created = Instant::now();
    let credential = fixture.env.admin_post(
        "/consumers/alice/key-auth",
        json!({"key": "short-lived", "ttl": 3}),
    );
    let reply = send(fixture.get("/anything").header("apikey", "short-lived"));
    reply.expect(200);
    assert_eq!(
        reply.upstream_header("x-credential-identifier"),
        credential["id"].as_str().map(str::to_owned),
        "{reply}"
    );
    support::sleep_until(created, Duration::from_millis(4200));
    let reply = send(fixture.get("/anything").header("apikey", "short-lived"));
    assert_401(&reply, "Unauthorized", "Key");
    // The credential without a TTL is unaffected.
    fixture.assert_alice(&send(fixture.get("/anything").header("apikey", KEY)));
}

#[test]
fn deleted_credential_is_unauthorized_at_once() {
    let fixture = Fixture::start(json!({}));
    fixture.assert_alice(&send(fixture.get("/anything").header("apikey", KEY)));
    fixture.env.admin_delete(&format!(
        "/consumers/alice/key-auth/{}",
        fixture.credential_id()
    ));
    let reply = send(fixture.get("/anything").header("apikey", KEY));
    assert_401(&reply, "Unauthorized", "Key");
}
