//! `gwctl dump`, end to end, against a real `gateway serve` (one per test):
//!
//! - the tutorial dumped as people write decK files: `_format_version:
//!   "3.0"`, routes and single-scope plugins under their service,
//!   credentials under their consumer, defaults, timestamps and name-backed
//!   ids left out, secrets in clear (a dump is a backup);
//! - `--with-defaults`, `--format json`, `-o FILE` (mode 0600),
//!   `--select-tag`;
//! - `--sanitize` masks the secrets, and `sync` refuses such a file before
//!   it sends anything;
//! - dump → `reset --force` → sync of the dump → diff shows no differences,
//!   on the tutorial and on the larger fixtures (48 entities of every kind).

use crate::gwctl_support;

use gwctl_support::{
    assert_stderr_has, assert_stdout, assert_unchanged, summary, with_summary, Dir, Env,
};
use serde_json::{json, Value};

const TUTORIAL: &str = "fixtures/tutorial/";

/// The valid fixtures that go together: services, routes, consumers,
/// plugins of every scope and credentials, nested and top-level.
const LARGER_FIXTURES: [&str; 6] = [
    "fixtures/valid/nested.yaml",
    "fixtures/valid/references.yaml",
    "fixtures/valid/route-matchers.yaml",
    "fixtures/valid/json-file.json",
    "fixtures/merge",
    "fixtures/tutorial",
];
const LARGER_FIXTURES_ENTITIES: usize = 48;

/// A YAML (or JSON) dump as JSON.
#[track_caller]
fn parse(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap_or_else(|error| panic!("not YAML ({error}):\n{text}"))
}

/// The session secret the gateway generated, replaced by `<secret>` in
/// `document` after checking it looks like one.
#[track_caller]
fn take_session_secret(document: &mut Value, pointer: &str) -> String {
    let shown = document.to_string();
    let field = document
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in {shown}"));
    let secret = field.as_str().unwrap_or_default().to_owned();
    assert!(secret.len() >= 32, "not a generated secret: {field}");
    *field = json!("<secret>");
    secret
}

/// `[sanitized:` + 16 hex digits + `]`.
fn is_sanitized(value: &Value) -> bool {
    value.as_str().is_some_and(|text| {
        text.strip_prefix("[sanitized:")
            .and_then(|rest| rest.strip_suffix(']'))
            .is_some_and(|hash| hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()))
    })
}

#[test]
fn the_tutorial_dumps_nested_without_defaults_and_with_its_secrets() {
    let env = Env::start();
    env.ok(&["sync", TUTORIAL]);
    let out = env.ok(&["dump"]);
    let mut document = parse(&out.stdout);
    take_session_secret(&mut document, "/services/0/plugins/1/config/secret");
    assert_eq!(
        document,
        json!({
            "_format_version": "3.0",
            "services": [{
                "name": "example-service",
                "host": "127.0.0.1",
                "port": 9000,
                "routes": [{"name": "example-route", "paths": ["/anything"]}],
                "plugins": [
                    {"name": "key-auth",
                     "config": {"anonymous": "81823632-10c0-4098-a4f7-31062520c1e6"}},
                    {"name": "session",
                     "config": {"secret": "<secret>", "storage": "kong", "cookie_secure": false}},
                ],
            }],
            "consumers": [
                {"username": "alex", "keyauth_credentials": [{"key": "hello_world"}]},
                {"username": "anonymous_users", "id": "81823632-10c0-4098-a4f7-31062520c1e6"},
            ],
            "plugins": [{
                "name": "request-termination",
                "service": "example-service",
                "consumer": "anonymous_users",
                "config": {"status_code": 403, "message": "Forbidden"},
            }],
        }),
        "{out}"
    );
    assert!(!out.stdout.contains("created_at"), "{out}");

    // -o FILE: the same document, readable by its owner only.
    let dir = Dir::new();
    let file = dir.file("kong.yaml");
    env.ok(&["dump", "-o", &file]);
    assert_eq!(dir.read("kong.yaml"), out.stdout);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "a dump holds secrets: {mode:o}");
    }
    let failed = env.run(&["dump", "-o", "/nonexistent-dir/kong.yaml"]);
    failed.assert_status(1);
    assert_stderr_has(&failed, "writing /nonexistent-dir/kong.yaml");
    // JSON holds the same document.
    let json_out = env.ok(&["dump", "--format", "json"]);
    assert_eq!(parse(&json_out.stdout), parse(&out.stdout), "{json_out}");
}

#[test]
fn with_defaults_the_dump_spells_every_field_out() {
    let env = Env::start();
    env.ok(&["sync", TUTORIAL]);
    let out = env.ok(&["dump", "--with-defaults"]);
    let document = parse(&out.stdout);
    let service = &document["services"][0];
    for (field, value) in [
        ("protocol", json!("http")),
        ("retries", json!(5)),
        ("connect_timeout", json!(60000)),
        ("enabled", json!(true)),
    ] {
        assert_eq!(service[field], value, "service {field}\n{out}");
    }
    let route = &service["routes"][0];
    assert_eq!(route["strip_path"], json!(true), "{out}");
    assert_eq!(route["protocols"], json!(["http", "https"]), "{out}");
    let key_auth = &service["plugins"][0];
    assert_eq!(key_auth["config"]["key_names"], json!(["apikey"]), "{out}");
    assert_eq!(
        key_auth["config"]["hide_credentials"],
        json!(false),
        "{out}"
    );
    assert!(!out.stdout.contains("created_at"), "{out}");
    // Spelled out or not, it is the same configuration.
    let dir = Dir::new();
    let file = dir.write("full.yaml", &out.stdout);
    let out = env.ok(&["diff", "--non-zero-exit-code", &file]);
    assert_stdout(&out, &summary(0, 0, 0));
}

#[test]
fn a_sanitized_dump_hides_the_secrets_and_sync_refuses_it() {
    let env = Env::start();
    env.ok(&["sync", TUTORIAL]);
    let plain = parse(&env.ok(&["dump"]).stdout);
    let secret = plain["services"][0]["plugins"][1]["config"]["secret"]
        .as_str()
        .expect("the session secret")
        .to_owned();
    let out = env.ok(&["dump", "--sanitize"]);
    assert!(!out.stdout.contains("hello_world"), "{out}");
    assert!(!out.stdout.contains(&secret), "{out}");
    let document = parse(&out.stdout);
    let key = &document["consumers"][0]["keyauth_credentials"][0]["key"];
    let session_secret = &document["services"][0]["plugins"][1]["config"]["secret"];
    assert!(is_sanitized(key), "{out}");
    assert!(is_sanitized(session_secret), "{out}");

    let dir = Dir::new();
    let file = dir.write("sanitized.yaml", &out.stdout);
    let before = env.snapshot();
    let (out, requests) = env.run_recorded(&["sync", &file]);
    out.assert_status(1);
    assert_eq!(out.stdout, "", "{out}");
    let line = out.stderr_lines().join("\n");
    assert!(
        line.starts_with(&format!("Error: {file}:"))
            && line.contains("services[0].plugins[1].config.secret: this file was written by `gwctl dump --sanitize`"),
        "expected the position of the first masked secret\n{out}"
    );
    assert!(
        requests.is_empty(),
        "nothing may be sent: {requests:?}\n{out}"
    );
    assert_unchanged(&env, &before, &out);
}

/// A dump is a backup: restored into an emptied gateway it gives the same
/// configuration, and dumping again gives the same file.
#[test]
fn dump_reset_and_sync_of_the_dump_leaves_no_differences() {
    let env = Env::start();
    let mut args = vec!["sync"];
    args.extend(LARGER_FIXTURES);
    let out = env.ok(&args);
    let total = LARGER_FIXTURES_ENTITIES;
    assert_eq!(
        out.stdout.lines().rev().take(4).collect::<Vec<_>>(),
        summary(total, 0, 0).iter().rev().collect::<Vec<_>>(),
        "{out}"
    );
    let before = env.snapshot();
    let dir = Dir::new();
    let dump = dir.file("backup.yaml");
    // Past a second boundary, the key-auth credential with a `ttl` reads
    // back from the Admin API with a second less left (as Kong answers):
    // gwctl must still dump and diff the lifetime the file gave it.
    std::thread::sleep(std::time::Duration::from_millis(1100));

    // With --with-id the restored entities keep their ids, so even the
    // original files (some pin ids) match again.
    env.ok(&["dump", "--with-id", "-o", &dump]);
    env.ok(&["reset", "--force"]);
    env.ok(&["sync", &dump]);
    let mut diff = vec!["diff", "--non-zero-exit-code"];
    diff.extend(LARGER_FIXTURES);
    assert_stdout(&env.ok(&diff), &summary(0, 0, 0));

    // Without ids (the default, as decK): the dump syncs back to the same
    // configuration, and dumping again gives the same file.
    env.ok(&["dump", "-o", &dump]);
    let out = env.ok(&["reset", "--force"]);
    assert!(
        out.stdout.ends_with(&format!("  Deleted: {total}\n")),
        "{out}"
    );
    assert!(env.snapshot().is_empty());
    let out = env.ok(&["sync", &dump]);
    assert!(
        out.stdout
            .ends_with(&format!("  Created: {total}\n  Updated: 0\n  Deleted: 0\n")),
        "{out}"
    );
    assert_eq!(env.snapshot().len(), before.len());
    let out = env.ok(&["diff", "--non-zero-exit-code", &dump]);
    assert_stdout(&out, &summary(0, 0, 0));
    let again = env.ok(&["dump"]);
    assert_eq!(
        again.stdout,
        dir.read("backup.yaml"),
        "a second dump differs"
    );
}

#[test]
fn the_tutorial_round_trips_through_a_json_dump() {
    let env = Env::start();
    env.ok(&["sync", TUTORIAL]);
    let dir = Dir::new();
    let dump = dir.file("backup.json");
    env.ok(&["dump", "--format", "json", "-o", &dump]);
    env.ok(&["reset", "--force"]);
    let out = env.ok(&["sync", &dump]);
    assert!(
        out.stdout
            .ends_with("  Created: 8\n  Updated: 0\n  Deleted: 0\n"),
        "{out}"
    );
    assert_stdout(&env.ok(&["diff", &dump]), &summary(0, 0, 0));
    // The session plugin got its secret back from the dump, so the
    // tutorial's files (which leave it out) see no change either.
    assert_stdout(&env.ok(&["diff", TUTORIAL]), &summary(0, 0, 0));
}

#[test]
fn a_dump_with_select_tags_holds_only_the_tagged_entities() {
    let env = Env::start();
    env.ok(&["sync", TUTORIAL]);
    let dir = Dir::new();
    let team = "_format_version: \"3.0\"\n_info:\n  select_tags: [team-a]\nservices:\n  - name: team-svc\n    url: http://team.example:8080\n";
    env.ok(&["sync", &dir.write("team.yaml", team)]);
    let out = env.ok(&["dump", "--select-tag", "team-a"]);
    assert_eq!(
        parse(&out.stdout),
        json!({
            "_format_version": "3.0",
            "_info": {"select_tags": ["team-a"]},
            "services": [{"name": "team-svc", "host": "team.example", "port": 8080,
                          "tags": ["team-a"]}],
        }),
        "{out}"
    );
    let file = dir.write("team-dump.yaml", &out.stdout);
    assert_stdout(&env.ok(&["diff", &file]), &summary(0, 0, 0));
    // Reset and synced back within the tag only: the tutorial stays.
    let out = env.ok(&["reset", "--force", "--select-tag", "team-a"]);
    assert_stdout(
        &out,
        &with_summary(&["deleting service team-svc"], (0, 0, 1)),
    );
    let out = env.ok(&["sync", &file]);
    assert_stdout(
        &out,
        &with_summary(&["creating service team-svc"], (1, 0, 0)),
    );
    assert_eq!(env.snapshot().len(), 9);
}

/// Files that pin an id: only `dump --with-id` restores the configuration
/// exactly; the default dump (names, no ids) recreates the service under a
/// new id, which such files then see as a delete and a create. The help
/// says which dump to keep as a backup.
#[test]
fn only_a_dump_with_ids_restores_files_that_pin_ids() {
    let help = dump_help();
    assert!(
        help.contains("For a backup that restores the configuration exactly, ids included, dump with --with-id"),
        "{help}"
    );
    let env = Env::start();
    let dir = Dir::new();
    let pinned = dir.write(
        "pinned.yaml",
        "_format_version: \"3.0\"\nservices:\n  - name: pinned\n    id: 0c5e9d8a-6f1b-4c1e-9a57-3d2b8f0e4a11\n    host: pinned.example\n",
    );
    env.ok(&["sync", &pinned]);
    let dump = dir.file("dump.yaml");
    env.ok(&["dump", "-o", &dump]);
    env.ok(&["reset", "--force"]);
    env.ok(&["sync", &dump]);
    let drifted = env.run(&["diff", "--non-zero-exit-code", &pinned]);
    drifted.assert_status(2);
    assert_stdout(
        &drifted,
        &with_summary(
            &["creating service pinned", "deleting service pinned"],
            (1, 0, 1),
        ),
    );
    env.ok(&["sync", &pinned]);
    env.ok(&["dump", "--with-id", "-o", &dump]);
    env.ok(&["reset", "--force"]);
    env.ok(&["sync", &dump]);
    assert_stdout(
        &env.ok(&["diff", "--non-zero-exit-code", &pinned]),
        &summary(0, 0, 0),
    );
}

/// `gwctl dump --help`.
fn dump_help() -> String {
    let out = e2e::gwctl(&["dump", "--help"]);
    out.assert_status(0);
    out.stdout.split_whitespace().collect::<Vec<_>>().join(" ")
}
