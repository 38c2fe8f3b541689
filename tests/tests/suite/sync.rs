//! `gwctl diff`, `sync` and `reset`, end to end: the real `gwctl` against
//! a real `gateway serve` (one per test, on a fresh data directory), with
//! `gateway echo` as the upstream where requests go through the proxy.
//!
//! - The tutorial: `gwctl sync fixtures/tutorial/` on a fresh gateway, and
//!   its blocks one at a time with `--no-deletes`, then its three
//!   validations through the proxy. The fixtures point the service at
//!   `http://127.0.0.1:9000`; the tests' echo listens on a free port, so
//!   the proxy checks use a copy of the directory pointed at the echo.
//! - Idempotence: a second sync prints `0 / 0 / 0`, sends no write (a
//!   recording relay sits between gwctl and the Admin API) and leaves every
//!   entity's timestamps as they were.
//! - Diff output: field-level `path: old -> new` lines for each kind of
//!   field, creates and deletes in dependency order, decK's summary block,
//!   no phantom updates from defaults, renames, deletions, select tags.
//! - Failures leave the gateway unchanged: an invalid entity in the middle
//!   of a file (nothing written), a gateway-side rejection (a unique clash
//!   with an entity outside the select tags) naming the entity and its file
//!   position; exit codes, `--json-output`, masking of secrets and of
//!   values from `DECK_*` variables, admin tokens, an unreachable gateway.
//!
//! `dump.rs` covers `gwctl dump` and the dump → reset → sync round trip.

use crate::gwctl_support;
mod new_user;
mod pages;
mod references;

use e2e::closed_port;
use gwctl_support::{
    assert_stderr_has, assert_stdout, assert_tutorial_validations, assert_unchanged, json_of,
    summary, with_summary, writes, Dir, Env,
};
use serde_json::json;

const TUTORIAL: &str = "fixtures/tutorial/";

/// What `gwctl sync fixtures/tutorial/` creates on an empty gateway, in
/// the order it prints it: parents first, sorted by name within a kind.
const TUTORIAL_CREATES: [&str; 8] = [
    "creating consumer alex",
    "creating consumer anonymous_users",
    "creating service example-service",
    "creating key-auth …world for consumer alex",
    "creating route example-route",
    "creating plugin key-auth for service example-service",
    "creating plugin request-termination for service example-service and consumer anonymous_users",
    "creating plugin session for service example-service",
];

/// A service with a route, a plugin and a consumer with a tag: the base
/// the field-change tests edit.
const BASE: &str = r#"_format_version: "3.0"
services:
  - name: svc
    host: a.example
    port: 8080
    routes:
      - name: r
        paths: [/a]
    plugins:
      - name: key-auth
        config:
          key_names: [apikey]
consumers:
  - username: alex
    tags: [t1]
"#;

// ----- the tutorial ----------------------------------------------------------------

#[test]
fn syncing_the_tutorial_directory_passes_the_three_validations() {
    let env = Env::with_echo();
    let out = env.ok(&["sync", TUTORIAL]);
    assert_stdout(&out, &with_summary(&TUTORIAL_CREATES, (8, 0, 0)));
    assert_eq!(out.stderr, "", "no warnings expected\n{out}");

    // The same files pointed at the echo: only the port differs.
    let copy = Dir::tutorial(&env.echo_url());
    let echo_port = env.echo.as_ref().unwrap().addr().port();
    let port_line = format!("  port: 9000 -> {echo_port}");
    let out = env.ok(&["diff", &copy.path()]);
    assert_stdout(
        &out,
        &with_summary(&["updating service example-service", &port_line], (0, 1, 0)),
    );
    env.ok(&["sync", &copy.path()]);
    assert_tutorial_validations(&env);
    let out = env.ok(&["diff", "--non-zero-exit-code", &copy.path()]);
    assert_stdout(&out, &summary(0, 0, 0));
}

/// As the tutorial (and `scripts/tutorial.sh`) does it: the prerequisites
/// with `sync`, then each `entities:` block with `--no-deletes`.
#[test]
fn the_tutorials_blocks_applied_one_at_a_time_give_the_same_result() {
    let env = Env::with_echo();
    let copy = Dir::tutorial(&env.echo_url());
    let steps: [(&str, &[&str]); 5] = [
        (
            "00-prerequisites.yaml",
            &["creating service example-service", "creating route example-route"],
        ),
        (
            "01-key-auth.yaml",
            &["creating plugin key-auth for service example-service"],
        ),
        (
            "02-consumers.yaml",
            &[
                "creating consumer alex",
                "creating consumer anonymous_users",
                "creating key-auth …world for consumer alex",
            ],
        ),
        (
            "03-session.yaml",
            &["creating plugin session for service example-service"],
        ),
        (
            "04-request-termination.yaml",
            &["creating plugin request-termination for service example-service and consumer anonymous_users"],
        ),
    ];
    for (index, (file, creates)) in steps.iter().enumerate() {
        let path = copy.file(file);
        let mut args = vec!["sync"];
        if index > 0 {
            args.push("--no-deletes");
        }
        args.push(&path);
        let out = env.ok(&args);
        assert_stdout(&out, &with_summary(creates, (creates.len(), 0, 0)));
        // The block is now in place: a diff of it alone changes nothing.
        let out = env.ok(&["diff", "--no-deletes", &path]);
        assert_stdout(&out, &summary(0, 0, 0));
    }
    assert_tutorial_validations(&env);
    let out = env.ok(&["diff", "--non-zero-exit-code", &copy.path()]);
    assert_stdout(&out, &summary(0, 0, 0));
    let out = env.run(&["diff", "--non-zero-exit-code", TUTORIAL]);
    out.assert_status(2);
    let expected_port = format!(
        "  port: {} -> 9000",
        env.echo.as_ref().unwrap().addr().port()
    );
    assert_stdout(
        &out,
        &with_summary(
            &["updating service example-service", &expected_port],
            (0, 1, 0),
        ),
    );
}

// ----- idempotence -------------------------------------------------------------------

#[test]
fn a_second_sync_reports_nothing_and_sends_no_write() {
    let env = Env::start();
    env.ok(&["sync", TUTORIAL]);
    let before = env.snapshot();
    assert_eq!(before.len(), 8, "{before:#?}");
    // Timestamps are in seconds: a write after this would move them.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (out, requests) = env.run_recorded(&["sync", TUTORIAL]);
    out.assert_status(0);
    assert_stdout(&out, &summary(0, 0, 0));
    assert!(!requests.is_empty(), "the relay saw nothing\n{out}");
    assert_eq!(
        writes(&requests),
        Vec::<&gwctl_support::Request>::new(),
        "{out}"
    );
    assert_unchanged(&env, &before, &out);
    // A diff only ever reads.
    let (out, requests) = env.run_recorded(&["diff", TUTORIAL]);
    out.assert_status(0);
    assert!(writes(&requests).is_empty(), "{requests:?}\n{out}");
}

// ----- diff output -------------------------------------------------------------------

#[test]
fn updates_list_each_changed_field_as_path_old_new() {
    let env = Env::start();
    let dir = Dir::new();
    env.ok(&["sync", &dir.write("base.yaml", BASE)]);
    let changed = BASE
        .replace("host: a.example", "host: b.example")
        .replace("port: 8080", "port: 9090")
        .replace("paths: [/a]", "paths: [/a, /b]")
        .replace("key_names: [apikey]", "key_names: [apikey, x-key]")
        .replace("tags: [t1]", "tags: [t1, t2]");
    let file = dir.write("changed.yaml", &changed);
    let out = env.ok(&["diff", &file]);
    assert_stdout(
        &out,
        &with_summary(
            &[
                "updating consumer alex",
                r#"  tags: ["t1"] -> ["t1","t2"]"#,
                "updating service svc",
                r#"  host: "a.example" -> "b.example""#,
                "  port: 8080 -> 9090",
                "updating route r",
                r#"  paths: ["/a"] -> ["/a","/b"]"#,
                "updating plugin key-auth for service svc",
                r#"  config.key_names: ["apikey"] -> ["apikey","x-key"]"#,
            ],
            (0, 4, 0),
        ),
    );
    // sync prints the same lines, and then there is nothing left to do.
    let synced = env.ok(&["sync", &file]);
    assert_eq!(synced.stdout, out.stdout, "sync and diff differ\n{synced}");
    assert_stdout(&env.ok(&["diff", &file]), &summary(0, 0, 0));
}

/// Defaults left out of a file, spelled out in another, or given through
/// `_info.defaults`, never show as changes.
#[test]
fn defaults_left_out_or_spelled_out_are_not_changes() {
    let env = Env::start();
    let dir = Dir::new();
    env.ok(&["sync", &dir.write("base.yaml", BASE)]);
    let spelled_out = r#"_format_version: "3.0"
services:
  - name: svc
    protocol: http
    host: a.example
    port: 8080
    retries: 5
    connect_timeout: 60000
    enabled: true
    routes:
      - name: r
        paths: [/a]
        protocols: [http, https]
        strip_path: true
        preserve_host: false
        regex_priority: 0
        https_redirect_status_code: 426
    plugins:
      - name: key-auth
        enabled: true
        config:
          key_names: [apikey]
          hide_credentials: false
          key_in_header: true
consumers:
  - username: alex
    tags: [t1]
"#;
    let out = env.ok(&[
        "diff",
        "--non-zero-exit-code",
        &dir.write("full.yaml", spelled_out),
    ]);
    assert_stdout(&out, &summary(0, 0, 0));
    let with_info_defaults = r#"_format_version: "3.0"
_info:
  defaults:
    service:
      port: 8080
    route:
      strip_path: true
services:
  - name: svc
    host: a.example
    routes:
      - name: r
        paths: [/a]
    plugins:
      - name: key-auth
consumers:
  - username: alex
    tags: [t1]
"#;
    let out = env.ok(&[
        "diff",
        "--non-zero-exit-code",
        &dir.write("info.yaml", with_info_defaults),
    ]);
    assert_stdout(&out, &summary(0, 0, 0));
    // The tutorial leaves most of its plugins' config out: once synced,
    // nothing to do either.
    env.ok(&["sync", TUTORIAL]);
    let out = env.ok(&["diff", "--non-zero-exit-code", TUTORIAL]);
    assert_stdout(&out, &summary(0, 0, 0));
}

#[test]
fn creates_and_deletes_come_in_dependency_order_with_the_summary() {
    let env = Env::start();
    let dir = Dir::new();
    env.ok(&["sync", &dir.write("base.yaml", BASE)]);
    let next = r#"_format_version: "3.0"
services:
  - name: svc
    host: a.example
    port: 8080
    routes:
      - name: r
        paths: [/a]
  - name: svc2
    url: http://b.example
    routes:
      - name: r2
        paths: [/r2]
    plugins:
      - name: request-termination
        config:
          status_code: 503
consumers:
  - username: bea
    keyauth_credentials:
      - key: bea-secret-key
"#;
    let out = env.ok(&["sync", &dir.write("next.yaml", next)]);
    assert_stdout(
        &out,
        &with_summary(
            &[
                "creating consumer bea",
                "creating service svc2",
                "creating key-auth …t-key for consumer bea",
                "creating route r2",
                "creating plugin request-termination for service svc2",
                "deleting plugin key-auth for service svc",
                "deleting consumer alex",
            ],
            (5, 0, 2),
        ),
    );
    assert_eq!(env.names("services", "name"), ["svc", "svc2"]);
    assert_eq!(env.names("consumers", "username"), ["bea"]);
    assert_eq!(env.names("plugins", "name"), ["request-termination"]);
}

// ----- renames, deletions, select tags --------------------------------------------

#[test]
fn a_renamed_service_takes_its_routes_along() {
    let env = Env::start();
    let dir = Dir::new();
    let old = r#"_format_version: "3.0"
services:
  - name: old-name
    url: http://a.example
    routes:
      - name: r1
        paths: [/r1]
    plugins:
      - name: key-auth
"#;
    env.ok(&["sync", &dir.write("old.yaml", old)]);
    let route_id = env.admin_get("/routes/r1")["id"].clone();
    let renamed = dir.write("new.yaml", &old.replace("old-name", "new-name"));
    let out = env.ok(&["sync", &renamed]);
    assert_stdout(
        &out,
        &with_summary(
            &[
                "creating service new-name",
                "updating route r1",
                r#"  service: "old-name" -> "new-name""#,
                "creating plugin key-auth for service new-name",
                "deleting plugin key-auth for service old-name",
                "deleting service old-name",
            ],
            (2, 1, 2),
        ),
    );
    let routes = env.admin_get("/services/new-name/routes");
    assert_eq!(
        routes["data"][0]["id"], route_id,
        "the same route moved\n{routes}"
    );
    assert_eq!(env.names("services", "name"), ["new-name"]);
    assert_stdout(&env.ok(&["diff", &renamed]), &summary(0, 0, 0));
}

/// Two services with ids swap names: a unique index would trip on a naive
/// one-by-one update; the batch applies both at once.
#[test]
fn services_swapping_names_by_id_apply_without_a_conflict() {
    let env = Env::start();
    let dir = Dir::new();
    let before = r#"_format_version: "3.0"
services:
  - name: a
    id: 11111111-1111-4111-8111-111111111111
    url: http://a.example
  - name: b
    id: 22222222-2222-4222-8222-222222222222
    url: http://b.example
"#;
    env.ok(&["sync", &dir.write("before.yaml", before)]);
    let swapped = before
        .replace("name: a", "name: tmp")
        .replace("name: b", "name: a")
        .replace("name: tmp", "name: b");
    let out = env.ok(&["sync", &dir.write("swapped.yaml", &swapped)]);
    assert_stdout(
        &out,
        &with_summary(
            &[
                "updating service a",
                r#"  name: "b" -> "a""#,
                "updating service b",
                r#"  name: "a" -> "b""#,
            ],
            (0, 2, 0),
        ),
    );
    let a = env.admin_get("/services/a");
    assert_eq!(a["id"], "22222222-2222-4222-8222-222222222222", "{a}");
    assert_eq!(a["host"], "b.example", "{a}");
}

#[test]
fn entities_the_files_leave_out_are_deleted_unless_no_deletes() {
    let env = Env::start();
    let dir = Dir::new();
    env.ok(&["sync", &dir.write("base.yaml", BASE)]);
    let only_consumer = dir.write(
        "consumer.yaml",
        "_format_version: \"3.0\"\nconsumers:\n  - username: alex\n    tags: [t1]\n",
    );
    let before = env.snapshot();
    let out = env.ok(&["sync", "--no-deletes", &only_consumer]);
    assert_stdout(&out, &summary(0, 0, 0));
    assert_unchanged(&env, &before, &out);
    let out = env.ok(&["diff", &only_consumer]);
    let deletes = [
        "deleting plugin key-auth for service svc",
        "deleting route r",
        "deleting service svc",
    ];
    assert_stdout(&out, &with_summary(&deletes, (0, 0, 3)));
    let out = env.ok(&["sync", &only_consumer]);
    assert_stdout(&out, &with_summary(&deletes, (0, 0, 3)));
    assert!(env.list("services").is_empty());
    assert_eq!(env.names("consumers", "username"), ["alex"]);
}

/// decK's select tags, from `--select-tag` or `_info.select_tags`: the
/// files' entities get the tags, and entities without them are neither
/// compared, changed nor deleted.
#[test]
fn select_tags_leave_entities_without_them_alone() {
    let env = Env::start();
    let dir = Dir::new();
    env.ok(&["sync", &dir.write("base.yaml", BASE)]);
    let untagged = env.snapshot();
    let team = r#"_format_version: "3.0"
_info:
  select_tags: [team-a]
services:
  - name: team-svc
    url: http://team.example
    routes:
      - name: team-route
        paths: [/team]
"#;
    let team_file = dir.write("team.yaml", team);
    let out = env.ok(&["sync", &team_file]);
    assert_stdout(
        &out,
        &with_summary(
            &["creating service team-svc", "creating route team-route"],
            (2, 0, 0),
        ),
    );
    assert_eq!(
        env.admin_get("/services/team-svc")["tags"],
        json!(["team-a"])
    );
    assert_eq!(
        env.admin_get("/routes/team-route")["tags"],
        json!(["team-a"])
    );
    for collection in ["services", "routes", "consumers", "plugins"] {
        for entity in untagged.of(collection) {
            let id = entity["id"].as_str().unwrap();
            let now = env.admin_get(&format!("/{collection}/{id}"));
            assert_eq!(&now, entity, "an entity without the tag changed");
        }
    }
    // The flag works as _info does; a file without the team's service
    // deletes it and nothing else.
    let empty = dir.write("empty.yaml", "_format_version: \"3.0\"\n");
    let out = env.ok(&["diff", "--select-tag", "team-a", &empty]);
    assert_stdout(
        &out,
        &with_summary(
            &["deleting route team-route", "deleting service team-svc"],
            (0, 0, 2),
        ),
    );
    let out = env.ok(&["sync", "--select-tag", "team-a", &empty]);
    assert_stdout(
        &out,
        &with_summary(
            &["deleting route team-route", "deleting service team-svc"],
            (0, 0, 2),
        ),
    );
    assert_unchanged(&env, &untagged, &out);
}

// ----- failures leave the gateway unchanged -------------------------------------------

#[test]
fn an_invalid_entity_in_the_middle_of_a_file_changes_nothing() {
    let env = Env::start();
    let dir = Dir::new();
    env.ok(&["sync", &dir.write("base.yaml", BASE)]);
    let before = env.snapshot();
    let file = dir.write(
        "bad.yaml",
        r#"_format_version: "3.0"
services:
  - name: first
    url: http://first.example
  - name: middle
    host: middle.example
    port: 99999
  - name: last
    url: http://last.example
"#,
    );
    let (out, requests) = env.run_recorded(&["sync", &file]);
    out.assert_status(1);
    assert_eq!(out.stdout, "", "{out}");
    assert_eq!(
        out.stderr_lines(),
        [
            format!("{file}:7:11: services[1] (middle).port: value should be between 0 and 65535"),
            "Error: the files are invalid: 1 error".to_owned(),
        ],
        "{out}"
    );
    assert!(writes(&requests).is_empty(), "{requests:?}\n{out}");
    assert_unchanged(&env, &before, &out);

    let out = env.run(&["sync", "--json-output", &file]);
    out.assert_status(1);
    let report = json_of(&out);
    assert_eq!(
        report["errors"],
        json!([
            format!("{file}:7:11: services[1] (middle).port: value should be between 0 and 65535"),
            "the files are invalid: 1 error",
        ]),
        "{out}"
    );
    assert_eq!(report["summary"]["total"], 0, "{out}");
    assert_unchanged(&env, &before, &out);
}

/// The gateway refuses the batch (a service named like one outside the
/// select tags): nothing changes, not even the valid creates, and the
/// error names the file's entity and its position.
#[test]
fn a_rejected_sync_changes_nothing_and_names_the_entity() {
    let env = Env::start();
    let dir = Dir::new();
    env.ok(&["sync", &dir.write("base.yaml", BASE)]);
    let before = env.snapshot();
    let file = dir.write(
        "team.yaml",
        r#"_format_version: "3.0"
_info:
  select_tags: [team-a]
services:
  - name: team-svc
    url: http://team.example
    routes:
      - name: team-route
        paths: [/team]
  - name: svc
    url: http://clash.example
"#,
    );
    let out = env.run(&["sync", &file]);
    out.assert_status(1);
    let expected = format!(
        "Error: the gateway rejected the configuration, nothing was changed: \
         service svc ({file}:10:5, services[1] (svc)): UNIQUE violation detected on '{{name=\"svc\"}}'"
    );
    assert_eq!(out.stderr_lines(), [expected.as_str()], "{out}");
    assert_unchanged(&env, &before, &out);

    let out = env.run(&["sync", "--json-output", &file]);
    out.assert_status(1);
    let report = json_of(&out);
    let message = expected.trim_start_matches("Error: ");
    assert_eq!(report["errors"], json!([message]), "{out}");
    assert_unchanged(&env, &before, &out);
}

// ----- exit codes and JSON ---------------------------------------------------------

#[test]
fn exit_codes() {
    let env = Env::start();
    let dir = Dir::new();
    let base = dir.write("base.yaml", BASE);
    // Differences: 0, or 2 with --non-zero-exit-code.
    env.run(&["diff", &base]).assert_status(0);
    env.run(&["diff", "--non-zero-exit-code", &base])
        .assert_status(2);
    env.run(&["diff", "--non-zero-exit-code", "--json-output", &base])
        .assert_status(2);
    env.run(&["sync", &base]).assert_status(0);
    // No differences: 0 either way.
    env.run(&["diff", "--non-zero-exit-code", &base])
        .assert_status(0);
    // Errors: 1, with or without --json-output, also where decK exits 0.
    let invalid = dir.write(
        "invalid.yaml",
        "_format_version: \"3.0\"\nservices: [{name: x}]\n",
    );
    let dangling = dir.write(
        "dangling.yaml",
        "_format_version: \"3.0\"\nroutes: [{name: r, paths: [/], service: nope}]\n",
    );
    for file in [&invalid, &dangling] {
        for command in ["diff", "sync"] {
            env.run(&[command, file]).assert_status(1);
            env.run(&[command, "--json-output", file]).assert_status(1);
        }
        env.run(&["diff", "--non-zero-exit-code", file])
            .assert_status(1);
    }
}

/// decK's `--json-output` shape, with field-level changes and an exit code
/// of 1 on errors (decK exits 0 there).
#[test]
fn json_output_has_decks_shape() {
    let env = Env::start();
    let dir = Dir::new();
    env.ok(&["sync", &dir.write("base.yaml", BASE)]);
    let next = BASE.replace("port: 8080", "port: 9090").replace(
        "consumers:\n  - username: alex\n    tags: [t1]\n",
        "consumers:\n  - username: bea\n",
    );
    let out = env.ok(&["diff", "--json-output", &dir.write("next.yaml", &next)]);
    let report = json_of(&out);
    let keys: Vec<&String> = report.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["changes", "summary", "warnings", "errors"], "{out}");
    assert_eq!(
        report["summary"],
        json!({"creating": 1, "updating": 1, "deleting": 1, "total": 3}),
        "{out}"
    );
    assert_eq!(
        report["changes"]["updating"],
        json!([{"kind": "service", "name": "svc",
            "fields": [{"path": "port", "old": 8080, "new": 9090}]}]),
        "{out}"
    );
    assert_eq!(
        report["changes"]["creating"],
        json!([{"kind": "consumer", "name": "bea",
            "fields": [{"path": "username", "old": null, "new": "bea"}]}]),
        "{out}"
    );
    assert_eq!(report["changes"]["deleting"][0]["name"], "alex", "{out}");
    assert_eq!(report["errors"], json!([]), "{out}");
    assert_eq!(report["warnings"], json!([]), "{out}");
    assert!(!out.stdout.contains("Summary:"), "{out}");

    let out = env.ok(&["sync", "--json-output", &dir.file("next.yaml")]);
    let synced = json_of(&out);
    assert_eq!(synced["summary"], report["summary"], "{out}");
    assert_eq!(synced["changes"], report["changes"], "{out}");
    let out = env.ok(&["sync", "--json-output", &dir.file("next.yaml")]);
    assert_eq!(
        json_of(&out)["summary"],
        json!({"creating": 0, "updating": 0, "deleting": 0, "total": 0}),
        "{out}"
    );
}

// ----- masking -------------------------------------------------------------------------

#[test]
fn secrets_are_masked_unless_show_secrets() {
    let env = Env::start();
    let dir = Dir::new();
    let first = r#"_format_version: "3.0"
services:
  - name: svc
    url: http://a.example
    plugins:
      - name: session
        config:
          secret: first-session-secret
consumers:
  - username: alex
    keyauth_credentials:
      - id: 55555555-5555-4555-8555-555555555555
        key: first-credential-key-1
"#;
    let out = env.ok(&["diff", "--json-output", &dir.write("first.yaml", first)]);
    assert!(!out.stdout.contains("first-"), "secrets in clear\n{out}");
    let created = json_of(&out)["changes"]["creating"].clone();
    let key_field = created
        .as_array()
        .unwrap()
        .iter()
        .find(|change| change["kind"] == "key-auth")
        .and_then(|change| change["fields"].as_array())
        .and_then(|fields| fields.iter().find(|field| field["path"] == "key"))
        .cloned();
    assert_eq!(
        key_field,
        Some(json!({"path": "key", "old": null, "new": "[masked]"})),
        "{out}"
    );
    env.ok(&["sync", &dir.file("first.yaml")]);

    let second = first
        .replace("first-session-secret", "second-session-secret")
        .replace("first-credential-key-1", "second-credential-key-2");
    let file = dir.write("second.yaml", &second);
    let out = env.ok(&["diff", &file]);
    assert_stdout(
        &out,
        &with_summary(
            &[
                "updating key-auth …key-2 for consumer alex",
                "  key: [masked] -> [masked]",
                "updating plugin session for service svc",
                "  config.secret: [masked] -> [masked]",
            ],
            (0, 2, 0),
        ),
    );
    let out = env.ok(&["diff", "--show-secrets", &file]);
    assert_stdout(
        &out,
        &with_summary(
            &[
                "updating key-auth …key-2 for consumer alex",
                r#"  key: "first-credential-key-1" -> "second-credential-key-2""#,
                "updating plugin session for service svc",
                r#"  config.secret: "first-session-secret" -> "second-session-secret""#,
            ],
            (0, 2, 0),
        ),
    );
    let out = env.ok(&["sync", &file]);
    assert!(!out.stdout.contains("second-"), "secrets in clear\n{out}");
}

/// Values substituted from `DECK_*` variables are shown as `[masked]`, as
/// decK shows them, unless `--no-mask-deck-env-vars-value`.
#[test]
fn values_from_deck_env_vars_are_masked_unless_asked() {
    let env = Env::start();
    let file = "fixtures/valid/env-templated.yaml";
    let run = |host: &str, port: &str, args: &[&str]| {
        env.gwctl(args)
            .env("DECK_UPSTREAM_HOST", host)
            .env("DECK_UPSTREAM_PORT", port)
            .env("DECK_ERIN_KEY", "erin-secret")
            .run()
    };
    let out = run("upstream.internal", "9000", &["sync", file]);
    out.assert_status(0);
    let out = run("other.internal", "9100", &["diff", file]);
    out.assert_status(0);
    assert_stdout(
        &out,
        &with_summary(
            &[
                "updating service templated",
                r#"  host: "upstream.internal" -> [masked]"#,
                "  port: 9000 -> [masked]",
            ],
            (0, 1, 0),
        ),
    );
    let out = run("other.internal", "9100", &["diff", "--json-output", file]);
    out.assert_status(0);
    assert_eq!(
        json_of(&out)["changes"]["updating"][0]["fields"],
        json!([{"path": "host", "old": "upstream.internal", "new": "[masked]"},
               {"path": "port", "old": 9000, "new": "[masked]"}]),
        "{out}"
    );
    let out = run(
        "other.internal",
        "9100",
        &["diff", "--no-mask-deck-env-vars-value", file],
    );
    out.assert_status(0);
    assert_stdout(
        &out,
        &with_summary(
            &[
                "updating service templated",
                r#"  host: "upstream.internal" -> "other.internal""#,
                "  port: 9000 -> 9100",
            ],
            (0, 1, 0),
        ),
    );
    let out = run("other.internal", "9100", &["sync", file]);
    out.assert_status(0);
    assert!(!out.stdout.contains("other.internal"), "{out}");
    assert_eq!(
        env.admin_get("/services/templated")["host"],
        "other.internal"
    );
}

// ----- reset ---------------------------------------------------------------------------

#[test]
fn reset_refuses_without_force_and_empties_the_gateway_with_it() {
    let env = Env::start();
    env.ok(&["sync", TUTORIAL]);
    let before = env.snapshot();
    let out = env.run(&["reset"]);
    out.assert_status(1);
    assert_stderr_has(&out, "--force");
    assert_unchanged(&env, &before, &out);

    let out = env.ok(&["reset", "--force"]);
    assert_stdout(
        &out,
        &with_summary(
            &[
                "deleting plugin key-auth for service example-service",
                "deleting plugin request-termination for service example-service and consumer anonymous_users",
                "deleting plugin session for service example-service",
                "deleting route example-route",
                "deleting key-auth …world for consumer alex",
                "deleting service example-service",
                "deleting consumer alex",
                "deleting consumer anonymous_users",
            ],
            (0, 0, 8),
        ),
    );
    assert!(env.snapshot().is_empty(), "{:#?}", env.snapshot());
    assert_stdout(&env.ok(&["reset", "--force"]), &summary(0, 0, 0));
}

#[test]
fn reset_with_select_tags_deletes_only_the_tagged_entities() {
    let env = Env::start();
    let dir = Dir::new();
    env.ok(&["sync", &dir.write("base.yaml", BASE)]);
    let untagged = env.snapshot();
    let team = "_format_version: \"3.0\"\n_info:\n  select_tags: [team-a]\nservices:\n  - name: team-svc\n    url: http://team.example\n";
    env.ok(&["sync", &dir.write("team.yaml", team)]);
    let out = env.ok(&["reset", "--force", "--select-tag", "team-a"]);
    assert_stdout(
        &out,
        &with_summary(&["deleting service team-svc"], (0, 0, 1)),
    );
    assert_unchanged(&env, &untagged, &out);
}

// ----- reaching the gateway ------------------------------------------------------------

#[test]
fn an_admin_token_goes_in_a_header() {
    let env = Env::with_admin_token("t0ken");
    let header = "Kong-Admin-Token: t0ken";
    let out = env.ok(&["sync", "--header", header, TUTORIAL]);
    assert_stdout(&out, &with_summary(&TUTORIAL_CREATES, (8, 0, 0)));
    let out = env.ok(&["diff", "--header", header, TUTORIAL]);
    assert_stdout(&out, &summary(0, 0, 0));
    for args in [
        &["diff", TUTORIAL][..],
        &["sync", TUTORIAL],
        &["dump"],
        &["reset", "--force"],
        &["diff", "--header", "Kong-Admin-Token: wrong", TUTORIAL],
    ] {
        let out = env.run(args);
        out.assert_status(1);
        assert_stderr_has(&out, "Kong-Admin-Token");
        assert_stderr_has(&out, "HTTP status 401");
    }
    assert_eq!(env.snapshot().len(), 8);
}

#[test]
fn an_unreachable_gateway_is_a_clear_error() {
    let addr = format!("http://127.0.0.1:{}", closed_port());
    for args in [
        &["diff", TUTORIAL][..],
        &["sync", TUTORIAL],
        &["dump"],
        &["reset", "--force"],
    ] {
        let out = e2e::Run::gwctl(args).env("GWCTL_ADDR", &addr).run();
        out.assert_status(1);
        assert_eq!(out.stdout, "", "{out}");
        let said = format!("Error: cannot reach the gateway's Admin API at {addr}/");
        assert!(out.stderr.starts_with(&said), "expected {said:?}\n{out}");
        assert_stderr_has(&out, "Connection refused");
    }
    let out = e2e::Run::gwctl(&["diff", "--json-output", "--addr", &addr, TUTORIAL]).run();
    out.assert_status(1);
    let errors = json_of(&out)["errors"].clone();
    let first = errors[0].as_str().unwrap_or_default();
    assert!(first.starts_with("cannot reach the gateway"), "{out}");
}
