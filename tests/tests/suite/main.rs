//! The end-to-end suite: every test starts the real `gateway`, `gateway
//! echo` and `gwctl` binaries (and, for the cluster tests, a throwaway
//! PostgreSQL) on loopback and checks what they answer, print and store.
//! One binary, one module per area of behaviour; the harness lives in
//! `tests/src/` (the `e2e` crate), helpers shared by several modules in
//! `support/` and `gwctl_support/`.
//!
//! Run it all with `cargo test -p e2e --test suite`, one area with e.g.
//! `cargo test -p e2e --test suite session::`.

mod gwctl_support;
mod support;

mod admin_api;
mod admin_details;
mod admin_errors;
mod cluster;
mod crash;
mod declarative_config;
mod dump;
mod key_auth;
mod operability;
mod proxy;
mod proxy_details;
mod proxy_hardening;
mod request_termination;
mod robustness;
mod security;
mod session;
mod sync;
mod tls;
mod tutorial;
mod validate;
mod websocket;

/// Every `*.rs` file of this directory is a module of the suite: a test
/// file left out would silently never run.
#[test]
fn every_test_file_is_a_module_of_the_suite() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/suite");
    let declared = include_str!("main.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("the suite directory") {
        let name = entry.expect("an entry").file_name();
        let name = name.to_string_lossy();
        let Some(module) = name.strip_suffix(".rs") else {
            continue;
        };
        if module != "main" && !declared.contains(&format!("\nmod {module};\n")) {
            missing.push(module.to_owned());
        }
    }
    assert!(missing.is_empty(), "not declared in main.rs: {missing:?}");
}
