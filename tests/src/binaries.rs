//! Where the binaries are, built on demand when missing or stale.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// The repository (workspace) root.
pub fn repo_root() -> PathBuf {
    let tests_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    tests_dir.parent().unwrap_or(tests_dir).to_path_buf()
}

/// A path under `fixtures/`, absolute.
pub fn fixture_path(relative: &str) -> PathBuf {
    repo_root().join("fixtures").join(relative)
}

/// `target/<profile>`: where cargo put this test executable's binaries
/// (the executable itself lives in `target/<profile>/deps`).
pub(crate) fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the path of the test executable");
    let mut dir = exe
        .parent()
        .expect("the test executable's directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// The `gwctl` binary, built first if missing or stale.
pub fn gwctl_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| ensure_built("gwctl", "cli", &["cli", "schemas"]))
}

/// The `gateway` binary, built first if missing or stale.
pub fn gateway_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| ensure_built("gateway", "gateway", &["gateway", "schemas"]))
}

/// Find `bin` next to the test executable; build it with cargo when it is
/// missing or older than the crates it is made of. Only the one package is
/// built, so a colleague's half-edited `gateway` does not stop `gwctl`
/// tests (and the other way round).
pub(crate) fn ensure_built(bin: &str, package: &str, crates: &[&str]) -> PathBuf {
    let dir = profile_dir();
    let path = dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    if is_fresh(&path, crates) {
        return path;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(repo_root())
        .args(["build", "--bin", bin, "-p", package]);
    remove_test_env(&mut command);
    match dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
    }
    eprintln!("e2e: building {bin} ({})", path.display());
    let status = command
        .status()
        .unwrap_or_else(|error| panic!("cannot run cargo to build {bin}: {error}"));
    assert!(
        status.success(),
        "`cargo build --bin {bin}` failed ({status})"
    );
    assert!(
        path.is_file(),
        "{} is still missing after building it; is CARGO_TARGET_DIR or --target different?",
        path.display()
    );
    path
}

/// Remove the variables `cargo test` sets for a running test. Build
/// scripts (ring's, for one) declare `rerun-if-env-changed` on
/// `CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, `OUT_DIR`...; seeing the test's
/// values, a nested cargo would rebuild them, and the next `cargo test`
/// would rebuild them back.
pub(crate) fn remove_test_env(command: &mut Command) {
    const EXACT: &[&str] = &[
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_CRATE_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        let set_for_tests = EXACT.contains(&text.as_ref())
            || text.starts_with("CARGO_PKG_")
            || text.starts_with("CARGO_BIN_");
        if set_for_tests {
            command.env_remove(&name);
        }
    }
}

/// Whether `binary` exists and is newer than every source file of `crates`
/// (their `src/` and `Cargo.toml`) and the workspace's manifest and lock.
pub(crate) fn is_fresh(binary: &Path, crates: &[&str]) -> bool {
    let Some(built) = modified(binary) else {
        return false;
    };
    let root = repo_root();
    let mut newest = [root.join("Cargo.toml"), root.join("Cargo.lock")]
        .iter()
        .filter_map(|path| modified(path))
        .max();
    for name in crates {
        newest = newest.max(modified(&root.join(name).join("Cargo.toml")));
        newest = newest.max(newest_in(&root.join(name).join("src")));
    }
    newest.is_none_or(|source| source <= built)
}

pub(crate) fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

/// The latest modification time of any file under `dir`.
pub(crate) fn newest_in(dir: &Path) -> Option<SystemTime> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut newest = None;
    for entry in entries.flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            newest_in(&path)
        } else {
            modified(&path)
        };
        newest = newest.max(time);
    }
    newest
}

/// An empty directory used as `HOME` by every run.
pub(crate) fn isolated_home() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let target = profile_dir()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(profile_dir);
        let home = target.join("tmp").join("e2e-home");
        std::fs::create_dir_all(&home)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", home.display()));
        home
    })
}
