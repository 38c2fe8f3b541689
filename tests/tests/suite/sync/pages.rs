//! Markdown pages read as the docs apply them (issue 13, items 2 and 7):
//! each `{% entity_examples %}` block is one `deck gateway apply`, so a
//! page means what its blocks applied in turn leave behind.
//!
//! - Kong's getting-started page, reduced to what this gateway has
//!   (`fixtures/guide/get-started.md`), re-declares `example_service` in a
//!   later block: validate, diff and sync accept it, on both sync paths;
//!   the service ends up as the last block declares it (plain http to the
//!   new host, not the first block's https URL); the proxy answers as the
//!   page's checks say; and applying the blocks one at a time with
//!   `--no-deletes` leaves exactly the same configuration.
//! - `allow-multiple-authentication`, reduced to key-auth: later blocks
//!   add a credential and a plugin to consumers of the first block.
//! - An `{% include %}` tag is reported as skipped, in text and in the
//!   JSON report.

use crate::gwctl_support::{
    assert_stderr_has, assert_stdout, json_of, summary, Dir, Env, SyncPath,
};

const GET_STARTED: &str = "fixtures/guide/get-started.md";
const MULTIPLE_AUTH: &str = "fixtures/guide/allow-multiple-authentication.md";

/// The include tag of the getting-started page, as warned about.
const SKIPPED_INCLUDE: &str = "warning: skipped `{% include how-tos/steps/ping-gateway.md %}`: \
                               gwctl does not read included files; entities they define must be \
                               given in a file of their own";

/// The getting-started page with its last service block pointed at the
/// test's echo instead of the upstream the page creates (no upstreams here).
fn get_started_at(env: &Env, dir: &Dir) -> String {
    let text = std::fs::read_to_string(e2e::repo_root().join(GET_STARTED)).expect("the page");
    let port = env.echo.as_ref().expect("an echo").addr().port();
    let pointed = text.replace(
        "      host: example_upstream\n",
        &format!("      host: 127.0.0.1\n      port: {port}\n"),
    );
    assert_ne!(pointed, text, "the page re-declares example_service");
    dir.write("get-started.md", &pointed)
}

/// Each block of a page as a file of its own (the docs' block form), in
/// page order.
fn blocks_of(page: &str, dir: &Dir) -> Vec<String> {
    let text = std::fs::read_to_string(page).expect("the page");
    let mut files = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        match (&mut block, line.trim()) {
            (None, "{% entity_examples %}") => block = Some(String::new()),
            (Some(body), "{% endentity_examples %}") => {
                let name = format!("block-{}.yaml", files.len());
                files.push(dir.write(&name, body));
                block = None;
            }
            (Some(body), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, _) => {}
        }
    }
    files
}

#[test]
fn kongs_getting_started_page_syncs_as_the_docs_apply_it() {
    for path in SyncPath::BOTH {
        let env = Env::with_echo();
        let dir = Dir::new();
        let page = get_started_at(&env, &dir);
        let validated = env.run(&["validate", &page]);
        validated.assert_status(0);
        assert_eq!(
            validated.stdout, "5 entities checked, no errors\n",
            "{validated}"
        );
        assert_stderr_has(&validated, SKIPPED_INCLUDE);
        let (diff, _) = path.run(&env, &["diff", &page]);
        diff.assert_status(0);
        assert_stdout(
            &diff,
            &[
                vec![
                    "creating consumer luka".to_owned(),
                    "creating service example_service".to_owned(),
                    "creating key-auth …t-key for consumer luka".to_owned(),
                    "creating route example_route".to_owned(),
                    "creating plugin key-auth (global)".to_owned(),
                ],
                summary(5, 0, 0),
            ]
            .concat(),
        );
        let out = path.ok(&env, &["sync", &page]);
        assert_stderr_has(&out, SKIPPED_INCLUDE);
        let services = env.list("services");
        assert_eq!(services.len(), 1, "{path:?}");
        let service = &services[0];
        assert_eq!(
            service["protocol"], "http",
            "{path:?}: the last block's declaration"
        );
        assert_eq!(service["host"], "127.0.0.1");
        assert!(service["path"].is_null(), "{service}");
        let anonymous = env.proxy_get("/mock/anything", &[]);
        assert_eq!(anonymous.status, 401, "{anonymous}");
        assert_eq!(anonymous.json()["message"], "No API key found in request");
        let keyed = env.proxy_get("/mock/anything", &[("apikey", "top-secret-key")]);
        assert_eq!(keyed.status, 200, "{keyed}");
        assert_eq!(
            keyed.upstream_header("x-consumer-username").as_deref(),
            Some("luka")
        );
        let (again, _) = path.run(&env, &["sync", &page]);
        again.assert_status(0);
        assert_stdout(&again, &summary(0, 0, 0));
    }
}

/// The page's blocks applied one at a time, as the docs do, leave the same
/// configuration as the page synced at once.
#[test]
fn a_pages_blocks_applied_one_at_a_time_match_the_page() {
    let env = Env::with_echo();
    let dir = Dir::new();
    let page = get_started_at(&env, &dir);
    let blocks = blocks_of(&page, &dir);
    assert_eq!(blocks.len(), 5);
    for block in &blocks {
        env.ok(&["sync", "--no-deletes", block]);
    }
    let diff = env.ok(&["diff", &page]);
    assert_stdout(&diff, &summary(0, 0, 0));
}

#[test]
fn later_blocks_add_credentials_and_plugins_to_earlier_consumers() {
    for path in SyncPath::BOTH {
        let env = Env::with_echo();
        let dir = Dir::tutorial(&env.echo_url());
        let prerequisites = dir.file("00-prerequisites.yaml");
        let validated = env.run(&["validate", &prerequisites, MULTIPLE_AUTH]);
        assert_eq!(
            validated.stdout, "8 entities checked, no errors\n",
            "{validated}"
        );
        path.ok(&env, &["sync", &prerequisites, MULTIPLE_AUTH]);
        assert_eq!(
            env.names("consumers", "username"),
            ["Dana", "Mahan", "anonymous"]
        );
        for headers in [&[][..], &[("apikey", "nonsense")][..]] {
            let refused = env.proxy_get("/anything", headers);
            assert_eq!(refused.status, 401, "{path:?} {headers:?}\n{refused}");
            assert_eq!(
                refused.json()["message"],
                "\"Error - Authentication required\""
            );
        }
        let mahan = env.proxy_get("/anything", &[("apikey", "mahan")]);
        assert_eq!(mahan.status, 200, "{mahan}");
        assert_eq!(
            mahan.upstream_header("x-consumer-username").as_deref(),
            Some("Mahan")
        );
        assert_eq!(mahan.upstream_header("apikey"), None, "hide_credentials");
    }
}

#[test]
fn skipped_includes_are_json_warnings_too() {
    let env = Env::with_echo();
    let dir = Dir::new();
    let page = get_started_at(&env, &dir);
    let out = env.ok(&["diff", "--json-output", &page]);
    let report = json_of(&out);
    let warnings: Vec<&str> = report["warnings"]
        .as_array()
        .expect("a warnings list")
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    assert_eq!(
        warnings,
        [format!("{page}:34:1: {SKIPPED_INCLUDE}")],
        "{out}"
    );
}
