//! `gwctl validate`, end to end: the real binary on the fixtures.
//!
//! - Valid input (the tutorial's files, its Markdown page, our own guide,
//!   `fixtures/valid/`, stdin, a directory, templated files) exits 0 and
//!   says how many entities it checked.
//! - Each file of `fixtures/invalid/` breaks one rule (`several-errors.yaml`
//!   breaks six) and must exit 1 with exactly the expected diagnostics,
//!   `file:line:column: entity path (label).field: message`, followed by
//!   `Error: the files are invalid: N errors`. In the expectations `{}`
//!   stands for the fixture's path. The line and column values come from
//!   reading the fixtures; edit a fixture and they must be updated.
//! - Warnings (key-auth's anonymous consumer missing from the files) are
//!   printed on stderr without failing.

use std::path::Path;

use e2e::{gwctl, repo_root, Output, Run};

/// Service, route, three plugins, two consumers and one key.
const TUTORIAL_ENTITIES: usize = 8;

/// The DECK_ variables `fixtures/valid/env-templated.yaml` reads.
const TEMPLATE_ENV: &[(&str, &str)] = &[
    ("DECK_UPSTREAM_HOST", "upstream.internal"),
    ("DECK_UPSTREAM_PORT", "9000"),
    ("DECK_ERIN_KEY", "erin-secret"),
];

/// The tutorial page (a verbatim copy of the seed tutorial), as given on
/// the command line (relative to the repo root).
const TUTORIAL_MD: &str = "fixtures/guide/key-auth-session-tutorial.md";

// ----- helpers -------------------------------------------------------------------

/// `gwctl validate ARGS...` with the template variables set.
fn validate(args: &[&str]) -> Output {
    let mut run = Run::gwctl(&["validate"]).args(args);
    for (name, value) in TEMPLATE_ENV {
        run = run.env(name, value);
    }
    run.run()
}

/// Stdout of a successful run must say how many entities were checked.
#[track_caller]
fn assert_checked(out: &Output, entities: usize) {
    out.assert_status(0);
    let noun = if entities == 1 { "entity" } else { "entities" };
    let said = format!("{entities} {noun} checked");
    assert!(
        out.stdout.contains(&said),
        "expected {said:?} on stdout\n{out}"
    );
}

/// The diagnostic lines: stderr without the closing `Error: ...` line.
fn diagnostics(out: &Output) -> Vec<&str> {
    out.stderr_lines()
        .into_iter()
        .filter(|line| !line.starts_with("Error"))
        .collect()
}

/// Exit 1, exactly `expected` as diagnostics (`{}` replaced by `file`),
/// then the count of errors as the last line.
#[track_caller]
fn assert_invalid(out: &Output, file: &str, expected: &[&str]) {
    let expected: Vec<String> = expected
        .iter()
        .map(|line| line.replace("{}", file))
        .collect();
    out.assert_status(1);
    assert_eq!(diagnostics(out), expected, "diagnostics differ\n{out}");
    let errors = expected
        .iter()
        .filter(|line| !line.contains(": warning: ") && !line.contains(": note: "))
        .count();
    let noun = if errors == 1 { "error" } else { "errors" };
    let summary = format!("Error: the files are invalid: {errors} {noun}");
    assert_eq!(
        out.stderr_lines().last().copied(),
        Some(summary.as_str()),
        "{out}"
    );
}

/// `gwctl validate fixtures/invalid/NAME` prints exactly `expected`.
#[track_caller]
fn check_invalid(name: &str, expected: &[&str]) {
    let file = format!("fixtures/invalid/{name}");
    assert_invalid(&validate(&[&file]), &file, expected);
}

/// Problems found while reading the files (YAML, templating) rather than
/// in their entities: exit 1, exactly these `file:line:column: message`
/// lines, then `Error: the files could not be read`.
#[track_caller]
fn assert_read_errors(out: &Output, expected: &[String]) {
    out.assert_status(1);
    let mut lines: Vec<&str> = expected.iter().map(String::as_str).collect();
    lines.push("Error: the files could not be read");
    assert_eq!(out.stderr_lines(), lines, "{out}");
}

fn read(path: &str) -> String {
    let full = repo_root().join(path);
    std::fs::read_to_string(&full)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", full.display()))
}

/// The tutorial page's text.
fn tutorial_text() -> String {
    read(TUTORIAL_MD)
}

// ----- the tutorial --------------------------------------------------------------

#[test]
fn the_tutorial_directory_is_valid() {
    let out = validate(&["fixtures/tutorial/"]);
    assert_checked(&out, TUTORIAL_ENTITIES);
    assert_eq!(out.stderr, "", "no warnings expected\n{out}");
}

/// The docs' block form is applied one block at a time; until the consumers
/// block comes, key-auth's anonymous consumer is missing: a warning only.
#[test]
fn the_first_tutorial_block_alone_warns_about_the_anonymous_consumer() {
    let file = "fixtures/tutorial/01-key-auth.yaml";
    let out = validate(&["fixtures/tutorial/00-prerequisites.yaml", file]);
    assert_checked(&out, 3);
    assert_eq!(
        out.stderr_lines(),
        [format!(
            "{file}:10:20: warning: plugins[0] (key-auth).config.anonymous: anonymous consumer \
             '81823632-10c0-4098-a4f7-31062520c1e6' is not defined in these files"
        )],
        "{out}"
    );
    let with_consumers = validate(&[
        "fixtures/tutorial/00-prerequisites.yaml",
        file,
        "fixtures/tutorial/02-consumers.yaml",
    ]);
    assert_checked(&with_consumers, 6);
    assert_eq!(with_consumers.stderr, "", "{with_consumers}");
}

#[test]
fn the_tutorial_markdown_with_the_prerequisites_is_valid() {
    let out = validate(&["fixtures/tutorial/00-prerequisites.yaml", TUTORIAL_MD]);
    assert_checked(&out, TUTORIAL_ENTITIES);
    assert_eq!(out.stderr, "", "no warnings expected\n{out}");
}

/// Alone, the tutorial's blocks refer to `example-service`, which only its
/// prerequisites define: one error per block, at the block's line in the
/// Markdown file, and a note pointing at the page's `prereqs.entities`.
#[test]
fn the_tutorial_markdown_alone_reports_the_dangling_service() {
    let text = tutorial_text();
    let mut expected: Vec<String> = service_references(&text)
        .into_iter()
        .map(|reference| {
            let ServiceReference {
                line,
                column,
                plugin,
                index,
            } = reference;
            format!(
                "{TUTORIAL_MD}:{line}:{column}: plugins[{index}] ({plugin}).service: service \
                 example-service for plugin {plugin}: entity not found"
            )
        })
        .collect();
    assert_eq!(expected.len(), 3, "the tutorial has three plugin blocks");
    let prereqs_line = text
        .lines()
        .position(|line| line == "prereqs:")
        .expect("the front matter lists prerequisites")
        + 1;
    expected.push(format!(
        "{TUTORIAL_MD}:{prereqs_line}:1: note: the page expects entities to exist before its first \
         block (prereqs.entities: services example-service; routes example-route): give the files \
         that define them along with the page, or apply the page on top of a gateway that has \
         them with `gwctl sync --no-deletes`"
    ));
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_invalid(&validate(&[TUTORIAL_MD]), TUTORIAL_MD, &expected);
}

/// Where a block of the Markdown says `service: example-service`.
struct ServiceReference {
    line: usize,
    column: usize,
    /// The name of the plugin the line belongs to.
    plugin: String,
    /// The plugin's index in its block's `plugins` list.
    index: usize,
}

/// Every `service: example-service` inside `{% entity_examples %}` blocks,
/// with the plugin it belongs to (the closest `- name:` above it).
fn service_references(markdown: &str) -> Vec<ServiceReference> {
    let mut found = Vec::new();
    let mut in_block = false;
    let mut plugins: Vec<String> = Vec::new();
    for (number, line) in markdown.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with("{% entity_examples") {
            in_block = true;
            plugins.clear();
        } else if trimmed.starts_with("{% endentity_examples") {
            in_block = false;
        } else if in_block {
            if let Some(name) = trimmed.strip_prefix("- name: ") {
                plugins.push(name.to_owned());
            }
            if trimmed == "service: example-service" {
                let byte = line.find("example-service").expect("the value");
                found.push(ServiceReference {
                    line: number + 1,
                    column: line[..byte].chars().count() + 1,
                    plugin: plugins.last().cloned().expect("a plugin above its service"),
                    index: plugins.len() - 1,
                });
            }
        }
    }
    found
}

#[test]
fn our_own_guide_validates_alone() {
    let out = validate(&["fixtures/guide/key-auth-sessions.md"]);
    assert_checked(&out, TUTORIAL_ENTITIES);
    assert_eq!(out.stderr, "", "no warnings expected\n{out}");
}

// ----- valid fixtures, stdin, directories, templates --------------------------------

#[test]
fn every_valid_fixture_is_valid() {
    let cases = [
        ("fixtures/valid/nested.yaml", 10),
        ("fixtures/valid/references.yaml", 14),
        ("fixtures/valid/defaults-and-select-tags.yaml", 4),
        ("fixtures/valid/env-templated.yaml", 4),
        ("fixtures/valid/route-matchers.yaml", 5),
        ("fixtures/valid/json-file.json", 5),
    ];
    for (file, entities) in cases {
        let out = validate(&[file]);
        assert_eq!(out.status, 0, "{file} should be valid\n{out}");
        assert_checked(&out, entities);
        assert_eq!(out.stderr, "", "{file}: no warnings expected\n{out}");
    }
    let listed = std::fs::read_dir(repo_root().join("fixtures/valid"))
        .expect("fixtures/valid")
        .count();
    assert_eq!(
        listed,
        cases.len(),
        "a file in fixtures/valid/ is not in this test"
    );
}

#[test]
fn a_directory_is_walked_and_merged() {
    // 10-services.yaml, consumers/frank.yml and plugins.json; notes.txt is
    // skipped. The plugins refer to entities of the other two files.
    let out = validate(&["fixtures/merge"]);
    assert_checked(&out, 6);
    assert_eq!(out.stderr, "", "{out}");
}

#[test]
fn stdin_is_read_for_a_dash_and_for_no_file() {
    let prerequisites = read("fixtures/tutorial/00-prerequisites.yaml");
    assert_checked(
        &Run::gwctl(&["validate", "-"])
            .stdin(prerequisites.as_str())
            .run(),
        2,
    );
    assert_checked(
        &Run::gwctl(&["validate"])
            .stdin(prerequisites.as_str())
            .run(),
        2,
    );
}

#[test]
fn stdin_merges_with_files_and_is_named_dash() {
    let block = read("fixtures/tutorial/01-key-auth.yaml");
    let out = Run::gwctl(&["validate", "fixtures/tutorial/00-prerequisites.yaml", "-"])
        .stdin(block)
        .run();
    assert_checked(&out, 3);
    assert!(
        out.stderr
            .starts_with("-:10:20: warning: plugins[0] (key-auth).config.anonymous: "),
        "{out}"
    );
    let bad_port = read("fixtures/invalid/service-bad-port.yaml");
    let out = Run::gwctl(&["validate", "-"]).stdin(bad_port).run();
    assert_invalid(
        &out,
        "-",
        &["-:6:11: services[0] (too-far).port: value should be between 0 and 65535"],
    );
}

#[test]
fn env_templates_read_deck_variables() {
    let file = "fixtures/valid/env-templated.yaml";
    assert_checked(&validate(&[file]), 4);
    // The value really is substituted: an out-of-range port is caught.
    let out = Run::gwctl(&["validate", file])
        .env("DECK_UPSTREAM_HOST", "upstream.internal")
        .env("DECK_UPSTREAM_PORT", "70000")
        .env("DECK_ERIN_KEY", "erin-secret")
        .run();
    assert_invalid(
        &out,
        file,
        &["{}:7:11: services[0] (templated).port: value should be between 0 and 65535"],
    );
    // Without the variables (the test's own environment never leaks in):
    // every one of them is reported at once, each at its first use.
    let out = gwctl(&["validate", file]);
    assert_read_errors(
        &out,
        &[
            format!(
                "{file}:6:11: environment variable 'DECK_UPSTREAM_HOST' present in state file but \
                 not set"
            ),
            format!(
                "{file}:7:11: environment variable 'DECK_UPSTREAM_PORT' present in state file but \
                 not set"
            ),
            format!(
                "{file}:15:14: environment variable 'DECK_ERIN_KEY' present in state file but not \
                 set"
            ),
        ],
    );
}

#[test]
fn an_unset_deck_variable_is_an_error() {
    let file = "fixtures/invalid/env-unset.yaml";
    let out = validate(&[file]);
    assert_read_errors(
        &out,
        &[format!(
            "{file}:5:11: environment variable 'DECK_UNSET_HOST' present in state file but not set"
        )],
    );
}

#[test]
fn a_variable_without_the_deck_prefix_is_an_error_even_when_set() {
    let file = "fixtures/invalid/env-without-prefix.yaml";
    let out = Run::gwctl(&["validate", file])
        .env("UPSTREAM_HOST", "upstream.internal")
        .run();
    assert_read_errors(
        &out,
        &[format!(
            "{file}:6:11: environment variables in the state file must be prefixed with 'DECK_', \
             found: 'UPSTREAM_HOST'"
        )],
    );
}

#[test]
fn select_tags_given_twice_must_agree() {
    let file = "fixtures/valid/defaults-and-select-tags.yaml";
    assert_checked(&validate(&["--select-tag", "platform", file]), 4);
    let out = validate(&["--select-tag", "other", file]);
    assert_invalid(
        &out,
        file,
        &[
            "{}:6:5: _info.select_tags: tags specified in the state file ([\"platform\"]) and via \
             --select-tag flag ([\"other\"]) are different",
        ],
    );
}

// ----- warnings ------------------------------------------------------------------

#[test]
fn an_anonymous_consumer_missing_from_the_files_is_a_warning() {
    let file = "fixtures/warnings/anonymous-consumer-absent.yaml";
    let out = validate(&[file]);
    assert_checked(&out, 2);
    assert_eq!(
        out.stderr_lines(),
        [format!(
            "{file}:10:22: warning: services[0].plugins[0] (key-auth).config.anonymous: anonymous \
             consumer 'ghost' is not defined in these files"
        )],
        "{out}"
    );
}

// ----- invalid fixtures: plugin rules ------------------------------------------------

#[test]
fn key_auth_bad_key_name() {
    check_invalid(
        "key-auth-bad-key-name.yaml",
        &["{}:12:15: services[0].plugins[1] (key-auth).config.key_names[0]: bad header name 'a b', \
           allowed characters are A-Z, a-z, 0-9, '_', and '-'"],
    );
}

#[test]
fn unknown_plugin() {
    check_invalid(
        "unknown-plugin.yaml",
        &[
            "{}:4:11: plugins[0] (rate-limiting).name: plugin 'rate-limiting' is not supported by \
             this gateway; its plugins are: key-auth, prometheus, request-termination, session",
        ],
    );
}

#[test]
fn unknown_config_field() {
    check_invalid(
        "unknown-config-field.yaml",
        &["{}:6:17: plugins[0] (key-auth).config.key_name: unknown field"],
    );
}

#[test]
fn request_termination_status() {
    check_invalid(
        "request-termination-status.yaml",
        &["{}:6:20: plugins[0] (request-termination).config.status_code: value should be between \
           100 and 599"],
    );
}

#[test]
fn request_termination_message_and_body() {
    check_invalid(
        "request-termination-message-and-body.yaml",
        &[
            "{}:7:7: plugins[0] (request-termination).config: message cannot be used with \
             content_type or body",
        ],
    );
}

#[test]
fn request_termination_content_type_without_body() {
    check_invalid(
        "request-termination-content-type-without-body.yaml",
        &["{}:6:7: plugins[0] (request-termination).config: content_type requires a body"],
    );
}

#[test]
fn session_bad_storage() {
    check_invalid(
        "session-bad-storage.yaml",
        &["{}:6:16: plugins[0] (session).config.storage: expected one of: cookie, kong"],
    );
}

#[test]
fn session_bad_same_site() {
    check_invalid(
        "session-bad-same-site.yaml",
        &[
            "{}:7:25: plugins[0] (session).config.cookie_same_site: expected one of: Strict, Lax, \
             None, Default",
        ],
    );
}

#[test]
fn key_auth_with_consumer() {
    check_invalid(
        "key-auth-with-consumer.yaml",
        &["{}:8:15: plugins[0] (key-auth).consumer: value must be null"],
    );
}

#[test]
fn nested_plugin_repeats_parent() {
    check_invalid(
        "nested-plugin-repeats-parent.yaml",
        &[
            "{}:9:18: services[0].plugins[0] (key-auth).service: nesting service (parent) under \
             service-scoped plugin (key-auth) is not allowed",
        ],
    );
}

// ----- invalid fixtures: service, route, consumer rules -------------------------------

#[test]
fn consumer_without_name() {
    check_invalid(
        "consumer-without-name.yaml",
        &[
            "{}:4:5: consumers[0]: at least one of these fields must be non-empty: 'custom_id', \
             'username'",
        ],
    );
}

#[test]
fn service_without_host() {
    check_invalid(
        "service-without-host.yaml",
        &["{}:4:5: services[0] (nowhere).host: required field missing"],
    );
}

#[test]
fn service_bad_port() {
    check_invalid(
        "service-bad-port.yaml",
        &["{}:6:11: services[0] (too-far).port: value should be between 0 and 65535"],
    );
}

#[test]
fn service_bad_protocol() {
    check_invalid(
        "service-bad-protocol.yaml",
        &[
            "{}:6:15: services[0] (files).protocol: expected one of: grpc, grpcs, http, https, \
             tcp, tls, tls_passthrough, udp",
        ],
    );
}

#[test]
fn route_without_matchers() {
    check_invalid(
        "route-without-matchers.yaml",
        &[
            "{}:8:9: services[0].routes[0] (matches-nothing): must set one of 'methods', 'hosts', \
             'headers', 'paths', 'snis' when 'protocols' is 'https'",
        ],
    );
}

#[test]
fn route_non_normalized_path() {
    check_invalid(
        "route-non-normalized-path.yaml",
        &[
            "{}:7:9: routes[0] (dotted).paths[0]: non-normalized path, consider use '/api/v2' \
             instead",
        ],
    );
}

#[test]
fn route_bad_regex() {
    check_invalid(
        "route-bad-regex.yaml",
        &[
            "{}:7:9: routes[0] (broken-regex).paths[0]: invalid regex: '/users/(?<id>\\d+' (error: \
             unclosed group)",
        ],
    );
}

#[test]
fn route_bad_wildcard_host() {
    check_invalid(
        "route-bad-wildcard-host.yaml",
        &[
            "{}:7:9: routes[0] (middle-wildcard).hosts[0]: invalid wildcard: must be placed at \
             leftmost or rightmost label",
        ],
    );
}

#[test]
fn route_bad_redirect_code() {
    check_invalid(
        "route-bad-redirect-code.yaml",
        &[
            "{}:7:33: routes[0] (redirecting).https_redirect_status_code: expected one of: 426, \
             301, 302, 307, 308",
        ],
    );
}

#[test]
fn route_lowercase_method() {
    check_invalid(
        "route-lowercase-method.yaml",
        &["{}:5:15: routes[0] (lowercase).methods[0]: invalid value: get"],
    );
}

#[test]
fn route_host_header() {
    check_invalid(
        "route-host-header.yaml",
        &[
            "{}:6:13: routes[0] (host-header).headers.Host: cannot contain 'host' header, which \
             must be specified in the 'hosts' attribute",
        ],
    );
}

#[test]
fn route_bad_headers() {
    check_invalid(
        "route-bad-headers.yaml",
        &[
            "{}:7:19: routes[0] (bad-headers).headers.x-version[0]: invalid regex: '(' (error: \
             unclosed group)",
            "{}:8:20: routes[0] (bad-headers).headers.x version: bad header name 'x version', \
             allowed characters are A-Z, a-z, 0-9, '_', and '-'",
        ],
    );
}

#[test]
fn route_grpc_strip_path() {
    check_invalid(
        "route-grpc-strip-path.yaml",
        &[
            "{}:7:17: routes[0] (grpc-stripping).strip_path: cannot set 'strip_path' when \
             'protocols' is 'grpc' or 'grpcs'",
        ],
    );
}

// ----- invalid fixtures: identities and references -----------------------------------

#[test]
fn duplicate_service_across_files() {
    let dir = "fixtures/invalid/duplicate-across-files";
    let out = validate(&[dir]);
    assert_invalid(
        &out,
        dir,
        &[
            "{}/b.yaml:4:5: services[0] (billing): service named 'billing' is already defined at \
             {}/a.yaml:5:5 (services[0] (billing))",
        ],
    );
}

#[test]
fn two_key_auth_on_one_service() {
    check_invalid(
        "two-key-auth-on-one-service.yaml",
        &[
            "{}:9:9: services[0].plugins[1] (key-auth): plugin 'key-auth' for the same scope \
             (service twice-guarded) is already defined at {}:8:9 (services[0].plugins[0] \
             (key-auth))",
        ],
    );
}

#[test]
fn two_consumers_one_username() {
    check_invalid(
        "two-consumers-one-username.yaml",
        &["{}:5:5: consumers[1] (alex): consumer with username 'alex' is already defined at {}:4:5 \
           (consumers[0] (alex))"],
    );
}

#[test]
fn repeated_credential_key() {
    check_invalid(
        "repeated-credential-key.yaml",
        &[
            "{}:9:9: consumers[1].keyauth_credentials[0]: key-auth with the same key 's3cr3t' is \
             already defined at {}:6:9 (consumers[0].keyauth_credentials[0])",
        ],
    );
}

#[test]
fn dangling_service_reference() {
    check_invalid(
        "dangling-service-reference.yaml",
        &["{}:5:14: plugins[0] (request-termination).service: service missing-service for plugin \
           request-termination: entity not found"],
    );
}

#[test]
fn dangling_consumer_reference() {
    check_invalid(
        "dangling-consumer-reference.yaml",
        &[
            "{}:5:15: plugins[0] (request-termination).consumer: consumer nobody for plugin \
             request-termination: entity not found",
        ],
    );
}

// ----- invalid fixtures: the file itself ---------------------------------------------

#[test]
fn unknown_top_level_key() {
    check_invalid(
        "unknown-top-level-key.yaml",
        &["{}:4:3: servces: unknown field"],
    );
}

#[test]
fn unsupported_entity() {
    check_invalid(
        "unsupported-entity.yaml",
        &["{}:4:3: upstreams: 'upstreams' entities are not supported by this gateway"],
    );
}

#[test]
fn transform_false() {
    check_invalid(
        "transform-false.yaml",
        &["{}:3:13: _transform: false is not supported"],
    );
}

#[test]
fn wrong_format_version() {
    check_invalid(
        "wrong-format-version.yaml",
        &[
            "{}:2:18: _format_version: cannot apply '1.1' config format version to Kong version \
             3.0 or above; use '3.0'",
        ],
    );
}

#[test]
fn yaml_syntax_error() {
    let file = "fixtures/invalid/yaml-syntax-error.yaml";
    let out = validate(&[file]);
    assert_read_errors(
        &out,
        &[format!(
            "{file}:6:10: mapping values are not allowed in this context"
        )],
    );
}

/// Every input is read before giving up, and all their problems are shown.
#[test]
fn read_errors_of_several_files_are_reported_together() {
    let syntax = "fixtures/invalid/yaml-syntax-error.yaml";
    let unset = "fixtures/invalid/env-unset.yaml";
    let out = validate(&[syntax, unset]);
    assert_read_errors(
        &out,
        &[
            format!("{syntax}:6:10: mapping values are not allowed in this context"),
            format!(
                "{unset}:5:11: environment variable 'DECK_UNSET_HOST' present in state file but \
                 not set"
            ),
        ],
    );
}

#[test]
fn duplicate_yaml_key() {
    let file = "fixtures/invalid/duplicate-yaml-key.yaml";
    let out = validate(&[file]);
    assert_read_errors(&out, &[format!("{file}:7:5: duplicate key 'host'")]);
}

#[test]
fn several_errors_are_all_reported() {
    check_invalid(
        "several-errors.yaml",
        &[
            "{}:6:11: services[0] (shop).port: value should be between 0 and 65535",
            "{}:8:9: services[0].routes[0] (shop-route): must set one of 'methods', 'hosts', \
             'headers', 'paths', 'snis' when 'protocols' is 'https'",
            "{}:13:23: services[0].plugins[0] (key-auth).config.key_names[0]: bad header name 'api \
             key', allowed characters are A-Z, a-z, 0-9, '_', and '-'",
            "{}:16:29: services[0].plugins[1] (session).config.cookie_lifetimes: unknown field",
            "{}:22:24: consumers[0].plugins[0] (request-termination).config.status_code: value \
             should be between 100 and 599",
            "{}:25:15: plugins[0] (request-termination).consumer: consumer nobody for plugin \
             request-termination: entity not found",
        ],
    );
}

/// Every invalid fixture says what it breaks and is checked by a test here.
#[test]
fn every_invalid_fixture_is_documented_and_tested() {
    let this_file = include_str!("validate.rs");
    let dir = repo_root().join("fixtures/invalid");
    let mut missing = Vec::new();
    for entry in walk(&dir) {
        let name = entry
            .strip_prefix(&dir)
            .expect("under fixtures/invalid")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&entry).expect("a fixture");
        if !text.starts_with("# ") {
            missing.push(format!("{name}: no leading comment saying what it breaks"));
        }
        let tested_as = name.split('/').next().unwrap_or(&name).to_owned();
        if !this_file.contains(&format!("\"{tested_as}"))
            && !this_file.contains(&format!("/{tested_as}\""))
        {
            missing.push(format!("{name}: no test names it"));
        }
    }
    assert!(
        missing.is_empty(),
        "fixtures/invalid:\n{}",
        missing.join("\n")
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

// ----- --json-output ------------------------------------------------------------------

/// `--json-output`: one report on stdout, the same exit codes as text.
#[test]
fn json_output_reports_entities_warnings_and_errors() {
    let parse = |out: &Output| -> serde_json::Value {
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e})\n{out}"))
    };
    let valid = validate(&["--json-output", "fixtures/tutorial/"]);
    valid.assert_status(0);
    assert_eq!(
        parse(&valid),
        serde_json::json!({"valid": true, "entities": TUTORIAL_ENTITIES, "warnings": [], "errors": []})
    );
    let file = "fixtures/tutorial/01-key-auth.yaml";
    let warned = validate(&[
        "--json-output",
        "fixtures/tutorial/00-prerequisites.yaml",
        file,
    ]);
    warned.assert_status(0);
    assert_eq!(
        parse(&warned)["warnings"],
        serde_json::json!([format!(
            "{file}:10:20: warning: plugins[0] (key-auth).config.anonymous: anonymous consumer \
             '81823632-10c0-4098-a4f7-31062520c1e6' is not defined in these files"
        )])
    );
    let invalid = "fixtures/invalid/unknown-plugin.yaml";
    let refused = validate(&["--json-output", invalid]);
    refused.assert_status(1);
    assert_eq!(
        parse(&refused),
        serde_json::json!({"valid": false, "entities": 0, "warnings": [], "errors": [
            format!("{invalid}:4:11: plugins[0] (rate-limiting).name: plugin 'rate-limiting' is \
                     not supported by this gateway; its plugins are: key-auth, prometheus, \
                     request-termination, session"),
            "the files are invalid: 1 error",
        ]})
    );
}

/// Kong's getting-started page re-declares a service in a later block: a
/// page is a sequence of applies, not one file with a duplicate.
#[test]
fn kongs_getting_started_page_validates_alone() {
    let page = "fixtures/guide/get-started.md";
    let out = validate(&[page]);
    assert_checked(&out, 5);
    assert_eq!(
        out.stderr_lines(),
        [format!(
            "{page}:34:1: warning: skipped `{{% include how-tos/steps/ping-gateway.md %}}`: gwctl \
             does not read included files; entities they define must be given in a file of their \
             own"
        )],
        "{out}"
    );
}

/// decK's `041-plugins-nested-foreign-keys` file: with select tags, a
/// reference by id to an entity the files lack may name a gateway entity
/// outside the tags (a sync looks it up): a warning offline, not an error.
/// Without select tags it must be in the files.
#[test]
fn with_select_tags_an_unknown_id_is_a_warning_offline() {
    let external = "8ca63651-4068-4baa-b2b9-08dc99c29666";
    let file = format!(
        "_format_version: \"3.0\"\n_info:\n  select_tags: [managed-by-test]\nroutes:\n- name: r1\n  \
         paths: [/r1]\n  plugins:\n    - name: request-termination\n      config: {{status_code: \
         403}}\n    - name: request-termination\n      service: {external}\n      config: \
         {{status_code: 404}}\n"
    );
    let out = Run::gwctl(&["validate", "-"]).stdin(file.as_str()).run();
    assert_checked(&out, 3);
    assert_eq!(
        out.stderr_lines(),
        [format!(
            "warning: service {external} is not in these files: with select tags it may be a \
             gateway entity outside them, which `gwctl sync` looks up; not checked offline"
        )],
        "{out}"
    );
    let untagged = file.replace("_info:\n  select_tags: [managed-by-test]\n", "");
    let out = Run::gwctl(&["validate", "-"])
        .stdin(untagged.as_str())
        .run();
    assert_invalid(
        &out,
        "-",
        &[&format!(
            "-:9:16: routes[0].plugins[1] (request-termination).service: service {external} for \
             plugin request-termination: entity not found"
        )],
    );
}

/// A file large enough to be parsed on all cores, in runs of items (see
/// `schemas::file::yaml_split`): diagnostics deep inside it still point at
/// the exact line and column, across runs.
#[test]
fn positions_in_a_large_file_are_exact() {
    let mut text = String::from("_format_version: \"3.0\"\nservices:\n");
    let mut port_line = 0;
    for index in 0..6_000 {
        let port = if index == 4_321 { 99_999 } else { 8_000 };
        if index == 4_321 {
            port_line = text.lines().count() + 3;
        }
        text.push_str(&format!(
            "  - name: service-{index}\n    host: h{index}.example\n    port: {port}\n    routes:\n      \
             - name: route-{index}\n        paths: [/r/{index}]\n"
        ));
    }
    text.push_str("consumers:\n");
    let mut first_line = 0;
    let mut again_line = 0;
    for index in 0..12_000 {
        let name = if index == 11_000 { 70 } else { index };
        match index {
            70 => first_line = text.lines().count() + 1,
            11_000 => again_line = text.lines().count() + 1,
            _ => {}
        }
        text.push_str(&format!(
            "  - username: user-{name}\n    keyauth_credentials:\n      - key: key-{index}\n"
        ));
    }
    assert!(text.len() > 1 << 20, "the file is cut only above 1 MB");
    let out = Run::gwctl(&["validate", "-"]).stdin(text.as_str()).run();
    assert_invalid(
        &out,
        "-",
        &[
            &format!(
                "-:{port_line}:11: services[4321] (service-4321).port: value should be between 0 \
                 and 65535"
            ),
            &format!(
                "-:{again_line}:5: consumers[11000] (user-70): consumer with username 'user-70' \
                 is already defined at -:{first_line}:5 (consumers[70] (user-70))"
            ),
        ],
    );
}
