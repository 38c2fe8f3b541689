//! References and what a sync keeps (issue 13, items 1 and 3), on both
//! of `gwctl sync`'s paths (one `POST /config`, and the per-entity path
//! it takes against a Kong with a database).
//!
//! - A full sync deletes what the files leave out, so a reference may
//!   name only an entity the sync keeps. A file holding only
//!   `plugins: [{name: key-auth, service: s1}]` on a gateway holding `s1`
//!   is refused before any write with decK's message, on both paths;
//!   `--no-deletes` resolves `s1` on the gateway and applies.
//! - The seed tutorial page synced on its own after its prerequisites:
//!   refused before any write, with decK's message and a note pointing at
//!   the page's `prereqs.entities`; with `--no-deletes` it applies and the
//!   tutorial's three checks pass.
//! - decK's `041-plugins-nested-foreign-keys` case: a select-tag file
//!   whose route-nested plugin names, by id, a service outside the tags.
//! - The gateway's foreign-key rejection names the entity, not its id.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use e2e::{http_client, send};
use serde_json::Value;

use crate::gwctl_support::{
    assert_stderr_has, assert_stdout, assert_tutorial_validations, assert_unchanged, summary,
    writes, Dir, Env, Recorder, RelayOptions, Request, SyncPath, TUTORIAL_UPSTREAM,
};

const S1: &str = "_format_version: \"3.0\"\nservices:\n  - name: s1\n    host: s1.example\n";

const PLUGIN_ON_S1: &str =
    "_format_version: \"3.0\"\nplugins:\n  - name: key-auth\n    service: s1\n";

const ROUTE_ON_S1: &str = "_format_version: \"3.0\"\nroutes:\n  - name: r1\n    paths: [/r1]\n    \
service:\n      name: s1\n";

/// decK's refusal for `PLUGIN_ON_S1`, at the reference.
fn plugin_refusal(file: &str) -> String {
    format!(
        "{file}:4:14: plugins[0] (key-auth).service: service s1 for plugin key-auth: entity not \
         found"
    )
}

/// The files leave `s1` out and refer to it: diff and sync refuse, on
/// either path, before any write; the gateway keeps `s1`.
#[test]
fn a_reference_to_an_entity_the_sync_would_delete_is_refused_before_any_write() {
    for path in SyncPath::BOTH {
        let env = Env::start();
        let dir = Dir::new();
        env.ok(&["sync", &dir.write("s1.yaml", S1)]);
        let before = env.snapshot();
        let plugin = dir.write("plugin.yaml", PLUGIN_ON_S1);
        let note = "note: service s1 is on the gateway, but a sync deletes what the files leave \
                    out, so the files cannot refer to it: add it to the files, or apply the files \
                    on top of the gateway with `gwctl sync --no-deletes`";
        let (diff, _) = path.run(&env, &["diff", &plugin]);
        diff.assert_status(1);
        assert_stderr_has(&diff, &plugin_refusal(&plugin));
        let route = dir.write("route.yaml", ROUTE_ON_S1);
        for (file, refusal, at) in [
            (&plugin, plugin_refusal(&plugin), "4:14"),
            (
                &route,
                format!("{route}:6:7: routes[0] (r1).service: service s1 for route r1: entity not found"),
                "6:7",
            ),
        ] {
            let (out, requests) = path.run(&env, &["sync", file]);
            out.assert_status(1);
            let note = format!("{file}:{at}: {note}");
            assert_eq!(
                out.stderr_lines(),
                [refusal.as_str(), &note, "Error: the files are invalid: 1 error"],
                "{path:?}\n{out}"
            );
            assert!(writes(&requests).is_empty(), "{path:?}: {requests:?}");
            assert_unchanged(&env, &before, &out);
        }
    }
}

/// `--no-deletes` (decK's `apply`) resolves against the gateway.
#[test]
fn with_no_deletes_references_resolve_on_the_gateway() {
    for path in SyncPath::BOTH {
        let env = Env::start();
        let dir = Dir::new();
        env.ok(&["sync", &dir.write("s1.yaml", S1)]);
        let out = path.ok(
            &env,
            &["sync", "--no-deletes", &dir.write("p.yaml", PLUGIN_ON_S1)],
        );
        assert_stdout(
            &out,
            &[
                vec!["creating plugin key-auth for service s1".to_owned()],
                summary(1, 0, 0),
            ]
            .concat(),
        );
        let services = env.list("services");
        let plugins = env.list("plugins");
        assert_eq!(services.len(), 1, "{path:?}");
        assert_eq!(plugins[0]["service"]["id"], services[0]["id"], "{path:?}");
    }
}

/// The seed tutorial page after its prerequisites, on its own: refused
/// without `--no-deletes`, applied with it.
#[test]
fn the_seed_page_alone_is_refused_unless_applied_on_top() {
    let page = "fixtures/guide/key-auth-session-tutorial.md";
    for path in SyncPath::BOTH {
        let env = Env::with_echo();
        let dir = Dir::tutorial(&env.echo_url());
        assert_ne!(env.echo_url(), TUTORIAL_UPSTREAM);
        env.ok(&["sync", &dir.file("00-prerequisites.yaml")]);
        let before = env.snapshot();
        let (out, requests) = path.run(&env, &["sync", page]);
        out.assert_status(1);
        for (line, plugin) in [
            (73, "key-auth"),
            (112, "session"),
            (128, "request-termination"),
        ] {
            assert_stderr_has(
                &out,
                &format!(
                    "{page}:{line}:16: plugins[0] ({plugin}).service: service example-service for \
                     plugin {plugin}: entity not found"
                ),
            );
        }
        assert_stderr_has(
            &out,
            "note: the page expects entities to exist before its first block",
        );
        assert!(writes(&requests).is_empty(), "{path:?}: {requests:?}");
        assert_unchanged(&env, &before, &out);
        path.ok(&env, &["sync", "--no-deletes", page]);
        assert_tutorial_validations(&env);
    }
}

/// The id of the service outside the select tags (decK's test's).
const EXTERNAL_ID: &str = "8ca63651-4068-4baa-b2b9-08dc99c29666";

fn external_service() -> String {
    format!(
        "_format_version: \"3.0\"\nservices:\n  - name: external-service\n    id: {EXTERNAL_ID}\n    \
         host: external.example\n"
    )
}

/// decK's `041-plugins-nested-foreign-keys/kong3x-services-not-in-state-or-dump`,
/// with request-termination for rate-limiting.
fn tagged_file(service_id: &str) -> String {
    format!(
        "_format_version: \"3.0\"
_info:
  select_tags:
    - managed-by-test
services:
- name: example-service
  port: 3200
  protocol: http
  host: localhost
routes:
- name: example-route-1
  paths:
  - /r1
  service:
    name: example-service
  plugins:
    - name: request-termination
      config:
        status_code: 403
    - name: request-termination
      service: {service_id} # external-service's id
      config:
        status_code: 404
"
    )
}

/// By id, a select-tag file may name a gateway entity outside its tags:
/// it is looked up (read-only) and left as it is.
#[test]
fn a_select_tag_file_may_name_an_entity_outside_its_tags_by_id() {
    for path in SyncPath::BOTH {
        let env = Env::start();
        let dir = Dir::new();
        env.ok(&["sync", &dir.write("external.yaml", &external_service())]);
        let external_before = env.admin_get(&format!("/services/{EXTERNAL_ID}"));
        let file = dir.write("kong.yaml", &tagged_file(EXTERNAL_ID));
        let out = path.ok(&env, &["sync", &file]);
        assert!(!out.stderr.contains("entity not found"), "{path:?}\n{out}");
        assert!(!out.stderr.contains("already defined"), "{path:?}\n{out}");
        let plugins = env.list("plugins");
        assert_eq!(plugins.len(), 2, "{path:?}");
        let on_external: Vec<&Value> = plugins
            .iter()
            .filter(|plugin| plugin["service"]["id"] == EXTERNAL_ID)
            .collect();
        assert_eq!(on_external.len(), 1, "{path:?}: {plugins:?}");
        assert_eq!(on_external[0]["config"]["status_code"], 404);
        assert_eq!(
            env.admin_get(&format!("/services/{EXTERNAL_ID}")),
            external_before,
            "{path:?}: the external service is left as it was"
        );
        let (again, requests) = path.run(&env, &["sync", &file]);
        again.assert_status(0);
        assert_stdout(&again, &summary(0, 0, 0));
        assert!(writes(&requests).is_empty(), "{path:?}: {requests:?}");
    }
}

/// An id that names nothing at all: decK's error, once, and no
/// "already defined" that would follow from it.
#[test]
fn an_id_that_names_nothing_is_reported_once() {
    let env = Env::start();
    let dir = Dir::new();
    let missing = "0b7f9c4e-0000-4000-8000-000000000000";
    let file = dir.write("kong.yaml", &tagged_file(missing));
    let (out, requests) = env.run_recorded(&["sync", &file]);
    out.assert_status(1);
    assert_eq!(
        out.stderr_lines(),
        [
            format!(
                "{file}:21:16: routes[0].plugins[1] (request-termination).service: service {missing} \
                 for plugin request-termination: entity not found"
            )
            .as_str(),
            "Error: the files are invalid: 1 error",
        ],
        "{out}"
    );
    assert!(writes(&requests).is_empty(), "{requests:?}");
}

/// Someone deletes the external service while gwctl runs: the gateway
/// refuses the configuration, and the error names the service.
#[test]
fn a_foreign_key_rejection_names_the_entity_not_its_id() {
    let env = Env::start();
    let dir = Dir::new();
    env.ok(&["sync", &dir.write("external.yaml", &external_service())]);
    let file = dir.write("kong.yaml", &tagged_file(EXTERNAL_ID));
    let delete_url = env.gateway.admin_url(&format!("/services/{EXTERNAL_ID}"));
    let deleted = Arc::new(AtomicBool::new(false));
    let flag = deleted.clone();
    let options = RelayOptions {
        before: Some(Arc::new(move |request: &Request| {
            // Just before gwctl reads the whole configuration to send it.
            if request.method == "GET"
                && request.target == "/config?format=flat"
                && !flag.swap(true, Ordering::SeqCst)
            {
                send(http_client().delete(&delete_url)).expect(204);
            }
        })),
        ..RelayOptions::default()
    };
    let (out, requests) = env.run_through(
        Recorder::start_with(env.gateway.admin_addr(), options),
        &["sync", &file],
    );
    assert!(deleted.load(Ordering::SeqCst), "{requests:?}");
    out.assert_status(1);
    assert_eq!(
        out.stderr_lines(),
        [format!(
            "Error: the gateway rejected the configuration, nothing was changed: plugin \
             request-termination for service external-service and route example-route-1 \
             ({file}:20:7, routes[0].plugins[1] (request-termination)): its service is service \
             external-service, which the gateway does not have"
        )],
        "{out}"
    );
    assert!(!out.stderr.contains("{id="), "{out}");
    assert!(env.list("routes").is_empty(), "nothing was changed");
}
