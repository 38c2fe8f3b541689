//! Crash safety of `gateway serve`: SIGKILL at the worst moments, then a
//! restart on the same data directory.
//!
//! - Entity writes: clients create consumers as fast as they can; the
//!   gateway is killed mid-stream. After the restart every write that got
//!   a 2xx is there (the store flushes before it answers).
//! - `POST /config`: killed while a large configuration is being written,
//!   both through the new-generation swap (12,000 consumers replacing a
//!   small configuration) and through the one-transaction path (3,000
//!   consumers added to 6,000). After the restart the configuration is
//!   wholly the old one or wholly the new one, in the Admin API and in the
//!   proxy.
//! - `gwctl sync` of a large file killed the same way.
//! - `storage: kong` sessions survive a SIGKILL once sled's background
//!   flush (every 500 ms, sled's default) has run, and any Admin API write
//!   flushes them too. A session row is *not* flushed per request: one
//!   created less than ~500 ms before a SIGKILL may be lost (the client
//!   then logs in again). A graceful restart keeps every session
//!   (`session.rs` tests that).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use e2e::{http_client, Echo, Gateway, GatewayOptions};
use reqwest::blocking::Client;
use serde_json::{json, Value};

/// The tutorial's anonymous consumer (key-auth falls back to it).
const ANONYMOUS_ID: &str = "81823632-10c0-4098-a4f7-31062520c1e6";

// ----- helpers -----------------------------------------------------------------

/// Every username in `/consumers`, following `next` pages of 1000.
#[track_caller]
fn usernames(client: &Client, gateway: &Gateway) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut path = "/consumers?size=1000".to_owned();
    loop {
        let response = client
            .get(gateway.admin_url(&path))
            .send()
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        assert_eq!(response.status(), 200, "GET {path}");
        let page: Value = response.json().expect("a JSON page");
        for consumer in page["data"].as_array().expect("data") {
            names.insert(consumer["username"].as_str().expect("username").to_owned());
        }
        match page["next"].as_str() {
            Some(next) => path = next.to_owned(),
            None => return names,
        }
    }
}

/// A `POST /config` body: a service for `echo`, a route on `/{route}`,
/// and consumers `{prefix}-0` .. `{prefix}-{count-1}` with fixed ids (so
/// two posts of the same consumers are the same entities).
fn config_body(echo: &Echo, route: &str, consumers: &[(String, u32)]) -> String {
    let consumers: Vec<Value> = consumers
        .iter()
        .map(|(prefix, n)| {
            json!({
                "id": consumer_id(prefix, *n),
                "username": format!("{prefix}-{n}"),
            })
        })
        .collect();
    json!({
        "_format_version": "3.0",
        "services": [{
            "id": "5e000000-0000-4000-8000-000000000001",
            "name": "echo",
            "url": echo.url(""),
        }],
        "routes": [{
            "id": "7e000000-0000-4000-8000-000000000001",
            "name": route,
            "paths": [format!("/{route}")],
            "service": {"id": "5e000000-0000-4000-8000-000000000001"},
        }],
        "consumers": consumers,
    })
    .to_string()
}

/// A stable id per (prefix, number).
fn consumer_id(prefix: &str, n: u32) -> String {
    let tag = match prefix {
        "old" => 1,
        "base" => 2,
        "new" => 3,
        _ => 9,
    };
    format!("c0000000-0000-4000-8{tag:03}-{n:012}")
}

fn names(prefix: &str, range: std::ops::Range<u32>) -> Vec<(String, u32)> {
    range.map(|n| (prefix.to_owned(), n)).collect()
}

fn usernames_of(consumers: &[(String, u32)]) -> BTreeSet<String> {
    consumers
        .iter()
        .map(|(prefix, n)| format!("{prefix}-{n}"))
        .collect()
}

/// `POST /config` with `body`; the status, or `None` if no answer came.
fn post_config(client: &Client, admin_url: &str, body: String) -> Option<u16> {
    client
        .post(format!("{admin_url}/config"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .ok()
        .map(|response| response.status().as_u16())
}

/// `GET /{route}` through the proxy: the status.
fn proxy_status(client: &Client, gateway: &Gateway, route: &str) -> u16 {
    client
        .get(gateway.proxy_url(&format!("/{route}")))
        .send()
        .unwrap_or_else(|error| panic!("GET /{route} through the proxy: {error}"))
        .status()
        .as_u16()
}

/// What a killed `POST /config` left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Old,
    New,
}

/// One trial: a gateway holding `old`, a `POST /config` of `new` killed
/// after `delay`; after the restart the store must hold exactly `old` or
/// exactly `new`, and the proxy must agree. Returns what it found and
/// whether the post had been answered before the kill.
fn kill_during_config_post(
    echo: &Echo,
    old: &[(String, u32)],
    new: &[(String, u32)],
    delay: Duration,
) -> (Outcome, Option<u16>) {
    let client = http_client();
    let mut gateway = Gateway::start(GatewayOptions::default());
    let status = post_config(
        &client,
        &gateway.admin_url(""),
        config_body(echo, "old", old),
    );
    assert_eq!(status, Some(201), "posting the old configuration");

    let admin_url = gateway.admin_url("");
    let body = config_body(echo, "new", new);
    let poster = thread::spawn(move || post_config(&http_client(), &admin_url, body));
    thread::sleep(delay);
    gateway.kill9();
    let answered = poster.join().expect("the posting thread");
    gateway.restart();

    let found = usernames(&client, &gateway);
    let outcome = if found == usernames_of(old) {
        Outcome::Old
    } else if found == usernames_of(new) {
        Outcome::New
    } else {
        let old_set = usernames_of(old);
        let new_set = usernames_of(new);
        panic!(
            "after SIGKILL {delay:?} into POST /config (answer: {answered:?}) the store holds \
             {} consumers: {} of the old {}, {} of the new {} — a partial configuration",
            found.len(),
            found.intersection(&old_set).count(),
            old_set.len(),
            found.intersection(&new_set).count(),
            new_set.len(),
        );
    };
    if answered.is_some_and(|status| (200..300).contains(&status)) {
        assert_eq!(
            outcome,
            Outcome::New,
            "POST /config answered {answered:?} before the SIGKILL, yet the old configuration came back"
        );
    }
    let (live_route, dead_route) = match outcome {
        Outcome::Old => ("old", "new"),
        Outcome::New => ("new", "old"),
    };
    assert_eq!(
        proxy_status(&client, &gateway, live_route),
        200,
        "the proxy must serve the {outcome:?} configuration's route after the restart"
    );
    assert_eq!(
        proxy_status(&client, &gateway, dead_route),
        404,
        "the proxy must not serve the other configuration's route ({outcome:?} came back)"
    );
    (outcome, answered)
}

/// How long an answered `POST /config` of `new` over `old` takes here.
fn time_config_post(echo: &Echo, old: &[(String, u32)], new: &[(String, u32)]) -> Duration {
    let client = http_client();
    let gateway = Gateway::start(GatewayOptions::default());
    let admin_url = gateway.admin_url("");
    let status = post_config(&client, &admin_url, config_body(echo, "old", old));
    assert_eq!(status, Some(201), "posting the old configuration");
    let body = config_body(echo, "new", new);
    let started = Instant::now();
    let status = post_config(&client, &admin_url, body);
    let took = started.elapsed();
    assert_eq!(status, Some(201), "posting the new configuration");
    assert_eq!(usernames(&client, &gateway), usernames_of(new));
    took
}

/// Kill at spread-out moments of a post that takes about `reference`:
/// `tenths` are tenths of it (a kill past 10/10 may land after the
/// answer). Every trial must find one whole configuration, and at least
/// one kill must land before the answer; returns the outcomes for the log.
fn kill_at_spread_moments(
    echo: &Echo,
    old: &[(String, u32)],
    new: &[(String, u32)],
    reference: Duration,
    tenths: &[u32],
) -> Vec<(Duration, Outcome, Option<u16>)> {
    let results: Vec<(Duration, Outcome, Option<u16>)> = tenths
        .iter()
        .map(|tenths| {
            let delay = (reference * *tenths / 10).max(Duration::from_millis(50));
            let (outcome, answered) = kill_during_config_post(echo, old, new, delay);
            (delay, outcome, answered)
        })
        .collect();
    // Otherwise every kill came after the answer, and the trials checked
    // nothing about a half-done replacement.
    assert!(
        results.iter().any(|(_, _, answered)| answered.is_none()),
        "no SIGKILL landed before POST /config answered: {results:?}"
    );
    results
}

// ----- entity writes -------------------------------------------------------------

#[test]
fn every_acknowledged_write_survives_sigkill() {
    const WRITERS: usize = 4;
    let mut gateway = Gateway::start(GatewayOptions::default());
    let admin_url = gateway.admin_url("");
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let admin_url = admin_url.clone();
            let acknowledged = Arc::clone(&acknowledged);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let client = http_client();
                let mut failures = 0;
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let username = format!("w{writer}-{n}");
                    let answer = client
                        .post(format!("{admin_url}/consumers"))
                        .json(&json!({ "username": username }))
                        .send();
                    match answer {
                        Ok(response) if response.status().is_success() => {
                            acknowledged.lock().unwrap().push(username);
                        }
                        Ok(response) => panic!(
                            "POST /consumers {username}: unexpected {} before the kill",
                            response.status()
                        ),
                        // The gateway is gone: stop after a few tries.
                        Err(_) => {
                            failures += 1;
                            if failures > 3 {
                                break;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(1500));
    gateway.kill9();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().expect("a writer thread");
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 10,
        "only {} writes were acknowledged in 1.5 s; the test proves little",
        acknowledged.len()
    );

    gateway.restart();
    let stored = usernames(&http_client(), &gateway);
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|name| !stored.contains(*name))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes are gone after SIGKILL: {:?}",
        lost.len(),
        acknowledged.len(),
        &lost[..lost.len().min(20)]
    );
    // At most one write per writer was in flight at the kill; it may or
    // may not have landed, but nothing else may appear.
    assert!(
        stored.len() <= acknowledged.len() + WRITERS,
        "{} consumers stored for {} acknowledged writes",
        stored.len(),
        acknowledged.len()
    );
    eprintln!(
        "{} acknowledged writes, {} stored after SIGKILL and restart",
        acknowledged.len(),
        stored.len()
    );
    // The restarted gateway takes writes again.
    let created = http_client()
        .post(gateway.admin_url("/consumers"))
        .json(&json!({"username": "after-restart"}))
        .send()
        .expect("an answer after the restart");
    assert_eq!(created.status(), 201, "a write after the restart");
}

// ----- POST /config ---------------------------------------------------------------

/// 12,000 consumers replacing 100: more than the 10,000-change transaction
/// limit, so the store writes a new generation and flips to it.
#[test]
fn sigkill_during_a_new_generation_config_post_keeps_one_whole_config() {
    let echo = Echo::start();
    let old = names("old", 0..100);
    let new = names("new", 0..12_000);
    let reference = time_config_post(&echo, &old, &new);
    eprintln!("POST /config of 12,000 consumers over 100 took {reference:?}");
    let results = kill_at_spread_moments(&echo, &old, &new, reference, &[1, 5, 8, 10, 12]);
    eprintln!("(kill after, outcome, answer before the kill): {results:?}");
}

/// 3,000 consumers added to 6,000: within the transaction limits (at most
/// 10,000 changes, at most half of the configuration), so the change is
/// one sled transaction on the current generation.
#[test]
fn sigkill_during_a_one_transaction_config_post_keeps_one_whole_config() {
    let echo = Echo::start();
    let old = names("base", 0..6_000);
    let mut new = old.clone();
    new.extend(names("new", 0..3_000));
    let reference = time_config_post(&echo, &old, &new);
    eprintln!("POST /config adding 3,000 consumers to 6,000 took {reference:?}");
    let results = kill_at_spread_moments(&echo, &old, &new, reference, &[1, 5, 8, 10, 12]);
    eprintln!("(kill after, outcome, answer before the kill): {results:?}");
}

/// `gwctl sync` of a 12,000-consumer file, the gateway killed while it
/// runs: the gateway comes back with one whole configuration, and a second
/// `gwctl sync` completes the job.
#[test]
fn sigkill_during_gwctl_sync_keeps_one_whole_config_and_sync_can_resume() {
    let echo = Echo::start();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("big.yaml");
    let mut yaml = format!(
        "_format_version: \"3.0\"\nservices:\n  - name: echo\n    url: {}\n    routes:\n      - name: new\n        paths: [/new]\nconsumers:\n",
        echo.url("")
    );
    for n in 0..12_000 {
        yaml.push_str(&format!("  - username: new-{n}\n"));
    }
    std::fs::write(&file, yaml).expect("the YAML file");
    let file = file.to_str().expect("a UTF-8 path").to_owned();
    let new = usernames_of(&names("new", 0..12_000));
    let client = http_client();

    let gateway = Gateway::start(GatewayOptions::default());
    let started = Instant::now();
    gateway.gwctl(&["sync", &file]).run().assert_status(0);
    let reference = started.elapsed();
    eprintln!("gwctl sync of 12,000 consumers took {reference:?}");
    assert_eq!(usernames(&client, &gateway), new);

    let mut outcomes = Vec::new();
    for fraction in [2, 5, 8] {
        let mut gateway = Gateway::start(GatewayOptions::default());
        let sync = gateway.gwctl(&["sync", &file]);
        let running = thread::spawn(move || sync.run());
        let delay = reference * fraction / 10;
        thread::sleep(delay);
        gateway.kill9();
        let out = running.join().expect("the gwctl thread");
        gateway.restart();
        let found = usernames(&client, &gateway);
        assert!(
            found.is_empty() || found == new,
            "after SIGKILL {delay:?} into gwctl sync (exit {}), {} of 12,000 consumers are stored\n{out}",
            out.status,
            found.len()
        );
        outcomes.push((delay, out.status, found.len()));
        gateway.gwctl(&["sync", &file]).run().assert_status(0);
        assert_eq!(
            usernames(&client, &gateway),
            new,
            "a second sync after the crash must complete the configuration"
        );
    }
    eprintln!("(kill after, gwctl exit, consumers found): {outcomes:?}");
}

// ----- sessions -------------------------------------------------------------------

/// The tutorial with `storage: kong` on a gateway: returns the cookie pair
/// of a fresh login.
fn kong_session_tutorial(gateway: &Gateway, echo: &Echo) -> String {
    let client = http_client();
    let post = |path: &str, body: Value| {
        let response = client
            .post(gateway.admin_url(path))
            .json(&body)
            .send()
            .unwrap_or_else(|error| panic!("POST {path}: {error}"));
        assert_eq!(response.status(), 201, "POST {path} {body}");
    };
    post("/services", json!({"name": "echo", "url": echo.url("")}));
    post("/services/echo/routes", json!({"paths": ["/"]}));
    post(
        "/consumers",
        json!({"username": "anonymous_users", "id": ANONYMOUS_ID}),
    );
    post("/consumers", json!({"username": "alex"}));
    post("/consumers/alex/key-auth", json!({"key": "hello_world"}));
    post(
        "/plugins",
        json!({"name": "key-auth", "service": {"name": "echo"},
               "config": {"key_names": ["apikey"], "anonymous": ANONYMOUS_ID}}),
    );
    post(
        "/plugins",
        json!({"name": "session", "service": {"name": "echo"},
               "config": {"storage": "kong", "cookie_secure": false}}),
    );
    post(
        "/plugins",
        json!({"name": "request-termination", "service": {"name": "echo"},
               "consumer": {"id": ANONYMOUS_ID},
               "config": {"status_code": 403, "message": "Forbidden"}}),
    );
    login(gateway)
}

/// `apikey: hello_world`: the `session=...` pair.
#[track_caller]
fn login(gateway: &Gateway) -> String {
    let response = http_client()
        .get(gateway.proxy_url("/anything"))
        .header("apikey", "hello_world")
        .send()
        .expect("a login answer");
    assert_eq!(response.status(), 200, "a key login");
    e2e::cookie_pair(response.headers(), "session").expect("a session cookie")
}

/// The status and upstream username of `GET /anything` with only the cookie.
fn with_cookie(gateway: &Gateway, pair: &str) -> (u16, Option<String>) {
    let response = http_client()
        .get(gateway.proxy_url("/anything"))
        .header("cookie", pair)
        .send()
        .expect("an answer");
    let status = response.status().as_u16();
    let body: Value = response.json().unwrap_or(Value::Null);
    let username = body["headers"]["X-Consumer-Username"]
        .as_str()
        .map(str::to_owned);
    (status, username)
}

#[track_caller]
fn assert_alex(gateway: &Gateway, pair: &str, when: &str) {
    let (status, username) = with_cookie(gateway, pair);
    assert_eq!(
        (status, username.as_deref()),
        (200, Some("alex")),
        "the storage: kong session must authenticate {when}"
    );
}

#[test]
fn kong_sessions_survive_sigkill_once_sleds_background_flush_ran() {
    let echo = Echo::start();
    let mut gateway = Gateway::start(GatewayOptions::default());
    let first = kong_session_tutorial(&gateway, &echo);
    assert_alex(&gateway, &first, "before the crash");
    // sled flushes its log every 500 ms by default; give it three times.
    thread::sleep(Duration::from_millis(1500));
    gateway.kill9();
    gateway.restart();
    assert_alex(&gateway, &first, "after SIGKILL and a restart");
}

#[test]
fn kong_sessions_survive_sigkill_right_after_an_admin_write() {
    let echo = Echo::start();
    let mut gateway = Gateway::start(GatewayOptions::default());
    kong_session_tutorial(&gateway, &echo);
    let fresh = login(&gateway);
    // Every Admin API write flushes the whole database, session rows too.
    let response = http_client()
        .post(gateway.admin_url("/consumers"))
        .json(&json!({"username": "someone"}))
        .send()
        .expect("an answer");
    assert_eq!(response.status(), 201);
    gateway.kill9();
    gateway.restart();
    assert_alex(
        &gateway,
        &fresh,
        "after an Admin API write, SIGKILL and a restart",
    );
}
