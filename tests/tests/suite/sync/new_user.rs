//! What a new user trips on (issue 13, items 4–6, 8, 10, 11 and the
//! `_workspace` / `_format_version` rules), against a real gateway: each
//! problem is named for what it is and stops `gwctl sync` before any
//! write (for problems in the files' text, before any request at all).
//!
//! - Certificates on services: decK's plain-id `client_certificate` is
//!   read, and both it and `ca_certificates` are refused as not supported,
//!   by gwctl and by the Admin API.
//! - A plugin the gateway does not have: the supported ones are listed.
//! - Sections decK knows: named as not supported, not as unknown fields.
//! - Every unset `DECK_*` variable at once.
//! - Empty input: decK's text for a sync; `validate` names the file.
//! - One root cause, one error: a service's bad id is not repeated for
//!   each of its routes.
//! - Different `_workspace` values are refused; a missing
//!   `_format_version` is read as "3.0", and "1.1" is refused.

use reqwest::Method;
use serde_json::json;

use crate::gwctl_support::{assert_unchanged, writes, Dir, Env};
use e2e::Run;

/// `gwctl sync FILE` through a recording relay: refused (exit 1) with
/// exactly `expected` on stderr, no write sent and nothing changed. With
/// `no_request`, not even a read was sent.
#[track_caller]
fn assert_sync_refused(env: &Env, file: &str, expected: &[String], no_request: bool) {
    let before = env.snapshot();
    let (out, requests) = env.run_recorded(&["sync", file]);
    out.assert_status(1);
    assert_eq!(out.stderr_lines(), expected, "{out}");
    assert!(writes(&requests).is_empty(), "{requests:?}");
    if no_request {
        assert!(requests.is_empty(), "{requests:?}");
    }
    assert_unchanged(env, &before, &out);
}

fn lines(diagnostics: &[String], closing: &str) -> Vec<String> {
    let mut all = diagnostics.to_vec();
    all.push(closing.to_owned());
    all
}

const CERTIFICATE_ID: &str = "5f3b3c42-8bd2-4c3a-9a4e-0c6a1e1d2b01";

#[test]
fn certificates_on_services_are_refused_in_files_and_in_the_admin_api() {
    let env = Env::start();
    let dir = Dir::new();
    let file = dir.write(
        "kong.yaml",
        &format!(
            "_format_version: \"3.0\"\nservices:\n  - name: s\n    url: https://h.example\n    \
             client_certificate: {CERTIFICATE_ID}\n  - name: t\n    url: https://t.example\n    \
             ca_certificates: [{CERTIFICATE_ID}]\n"
        ),
    );
    let client = format!(
        "{file}:5:25: services[0] (s).client_certificate: client certificates are not supported \
         by this gateway (it has no certificates to present to the upstream); remove \
         client_certificate"
    );
    let ca = format!(
        "{file}:8:22: services[1] (t).ca_certificates: CA certificates are not supported by this \
         gateway (it has no ca_certificates to verify the upstream with); remove ca_certificates"
    );
    let expected = lines(&[client, ca], "Error: the files are invalid: 2 errors");
    let validated = env.run(&["validate", &file]);
    validated.assert_status(1);
    assert_eq!(validated.stderr_lines(), expected, "{validated}");
    assert_sync_refused(&env, &file, &expected, false);
    for (field, value) in [
        ("client_certificate", json!({ "id": CERTIFICATE_ID })),
        ("ca_certificates", json!([CERTIFICATE_ID])),
    ] {
        let mut body = json!({"name": "s", "host": "h.example", "protocol": "https"});
        body[field] = value;
        let (status, answer) = env.admin(Method::POST, "/services", Some(&body));
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["name"], "schema violation");
        let message = answer["fields"][field].as_str().unwrap_or_default();
        assert!(
            message.contains("not supported by this gateway"),
            "{answer}"
        );
    }
    assert!(env.list("services").is_empty());
}

#[test]
fn a_plugin_this_gateway_lacks_is_named_as_not_supported() {
    let env = Env::start();
    let file = "fixtures/invalid/unknown-plugin.yaml";
    let expected = lines(
        &[format!(
            "{file}:4:11: plugins[0] (rate-limiting).name: plugin 'rate-limiting' is not supported \
             by this gateway; its plugins are: key-auth, prometheus, request-termination, session"
        )],
        "Error: the files are invalid: 1 error",
    );
    assert_sync_refused(&env, file, &expected, false);
}

#[test]
fn sections_deck_knows_are_named_as_not_supported() {
    let env = Env::start();
    let dir = Dir::new();
    let file = dir.write(
        "kong.yaml",
        "_format_version: \"3.0\"\n_konnect:\n  control_plane_name: cp\ncustom_plugins: []\n\
         consumers:\n  - username: dana\n    basicauth_credentials:\n      - {username: dana, \
         password: dana}\n    jwt_secrets: []\n",
    );
    let expected = lines(
        &[
            format!(
                "{file}:3:3: _konnect: '_konnect' (Konnect control-plane settings) is not \
                 supported by this gateway"
            ),
            format!(
                "{file}:4:17: custom_plugins: 'custom_plugins' entities are not supported by this \
                 gateway"
            ),
            format!(
                "{file}:8:7: consumers[0] (dana).basicauth_credentials: 'basicauth_credentials' \
                 entities are not supported by this gateway"
            ),
            format!(
                "{file}:9:18: consumers[0] (dana).jwt_secrets: 'jwt_secrets' entities are not \
                 supported by this gateway"
            ),
        ],
        "Error: the files are invalid: 4 errors",
    );
    assert_sync_refused(&env, &file, &expected, false);
}

#[test]
fn every_unset_deck_variable_is_reported_at_once() {
    let env = Env::start();
    let file = "fixtures/valid/env-templated.yaml";
    let unset = |at: &str, name: &str| {
        format!("{file}:{at}: environment variable '{name}' present in state file but not set")
    };
    let expected = lines(
        &[
            unset("6:11", "DECK_UPSTREAM_HOST"),
            unset("7:11", "DECK_UPSTREAM_PORT"),
            unset("15:14", "DECK_ERIN_KEY"),
        ],
        "Error: the files could not be read",
    );
    assert_sync_refused(&env, file, &expected, true);
}

#[test]
fn empty_input_is_decks_refusal_for_a_sync_and_named_by_validate() {
    let env = Env::start();
    let dir = Dir::new();
    let empty = dir.write("empty.yaml", "# nothing yet\n");
    let page = dir.write("page.md", "# A page\n\n{% include steps/ping.md %}\n");
    let decks_text = "it seems like you are trying to sync an empty configuration file or \
                      directory. If you want to delete all entities, use the reset command instead";
    let expected = lines(
        &[decks_text.to_owned()],
        "Error: the files could not be read",
    );
    assert_sync_refused(&env, &empty, &expected, true);
    let out = Run::gwctl(&["validate", &empty, &page]).run();
    out.assert_status(1);
    assert_eq!(
        out.stderr_lines(),
        [
            format!(
                "{page}:3:1: warning: skipped `{{% include steps/ping.md %}}`: gwctl does not read \
                 included files; entities they define must be given in a file of their own"
            ),
            format!("{empty}: the file holds no configuration (it is empty or only comments)"),
            format!("{page}: the page has no {{% entity_examples %}} blocks"),
            "Error: nothing to validate".to_owned(),
        ],
        "{out}"
    );
}

#[test]
fn a_bad_service_id_is_reported_once_not_for_each_route() {
    let env = Env::start();
    let dir = Dir::new();
    let file = dir.write(
        "kong.yaml",
        "_format_version: \"3.0\"\nservices:\n  - name: s\n    id: not-a-uuid\n    host: h\n    \
         routes:\n      - name: r1\n        paths: [/a]\n      - name: r2\n        paths: [/b]\n",
    );
    let expected = lines(
        &[format!(
            "{file}:4:9: services[0] (s).id: expected a valid UUID"
        )],
        "Error: the files are invalid: 1 error",
    );
    let validated = env.run(&["validate", &file]);
    assert_eq!(validated.stderr_lines(), expected, "{validated}");
    assert_sync_refused(&env, &file, &expected, false);
}

#[test]
fn files_naming_different_workspaces_are_refused() {
    let env = Env::start();
    let dir = Dir::new();
    let first = dir.write(
        "a.yaml",
        "_workspace: team-a\nservices:\n  - name: a\n    host: a\n",
    );
    let second = dir.write(
        "b.yaml",
        "_workspace: team-b\nservices:\n  - name: b\n    host: b\n",
    );
    let before = env.snapshot();
    let (out, requests) = env.run_recorded(&["sync", &first, &second]);
    out.assert_status(1);
    assert_eq!(
        out.stderr_lines(),
        [
            format!(
                "{second}:1:13: _workspace: 'team-b' differs from the _workspace 'team-a' of \
                 {first}: it seems like you are trying to sync multiple workspaces at the same \
                 time; sync one workspace at a time"
            )
            .as_str(),
            "Error: the files are invalid: 1 error",
        ],
        "{out}"
    );
    assert!(writes(&requests).is_empty());
    assert_unchanged(&env, &before, &out);
    let same = dir.write("c.yaml", "_workspace: team-a\n");
    env.ok(&["sync", &first, &same]);
}

/// gwctl reads format 3.0 only: a file without `_format_version` is read
/// as 3.0, and any other version is refused, with decK's message.
#[test]
fn the_format_version_may_be_left_out_and_else_must_be_3_0() {
    let env = Env::start();
    let dir = Dir::new();
    env.ok(&[
        "sync",
        &dir.write("none.yaml", "services:\n  - name: s\n    host: h\n"),
    ]);
    assert_eq!(env.names("services", "name"), ["s"]);
    let old = dir.write(
        "old.yaml",
        "_format_version: \"1.1\"\nservices:\n  - name: s\n    host: h\n",
    );
    let expected = lines(
        &[format!(
            "{old}:1:18: _format_version: cannot apply '1.1' config format version to Kong \
             version 3.0 or above; use '3.0'"
        )],
        "Error: the files are invalid: 1 error",
    );
    assert_sync_refused(&env, &old, &expected, false);
}
