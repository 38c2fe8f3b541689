//! The end-to-end test harness: run the real `gwctl` and `gateway`
//! binaries on loopback and look at what they print and answer.
//!
//! - [`gwctl`] and [`Run`] run a command to completion and return its
//!   [`Output`]. Every run starts from an empty environment (`env_clear`)
//!   plus `PATH`, an empty `HOME` and the variables the test gives, so the
//!   developer's own `GWCTL_ADDR`, `DECK_*` or config files never leak in.
//!   The working directory defaults to the repository root, so fixture paths
//!   are written as `fixtures/...` and appear that way in diagnostics.
//! - [`Echo`] runs `gateway echo`, the httpbin-like upstream, on a free port.
//! - [`Gateway`] runs `gateway serve` on a temporary data directory with
//!   free ports (and optionally TLS with a certificate made for the test),
//!   and can be restarted on the same data or killed with SIGKILL. With
//!   `--status-listen` in its arguments it also finds the Status API
//!   ([`Gateway::status_url`]), and [`Gateway::start_probing`] /
//!   [`Gateway::restart_probing`] let a test probe it while the start is
//!   still under way.
//! - [`http_client`] and [`Gateway::client`] are blocking reqwest clients
//!   that never follow redirects, ignore proxy variables and keep no cookies
//!   (reqwest is built without its `cookies` feature): tests copy
//!   `Set-Cookie` into `Cookie` themselves, see [`cookie_pair`]. They speak
//!   HTTP/1.1 only; [`alpn_client_trusting`] offers HTTP/2 by ALPN.
//! - [`send`] sends a request and returns its [`Answer`] read to the end:
//!   status, headers and body, printed whole (with the method and URL) by
//!   assertion messages, with accessors for headers, cookies, JSON and
//!   what the [`Echo`] upstream received ([`Answer::upstream_header`]).
//! - [`Gateway::pid`] and [`peak_rss_bytes`] show how much memory the
//!   gateway needed (e.g. while streaming a large body).
//! - [`postgres::Postgres`] runs a throwaway PostgreSQL cluster (Debian's
//!   server binaries, a temporary directory, a free port) for the tests of
//!   `gateway serve --database`, with faults (stop, freeze) on demand.
//!
//! - [`raw`]: a raw HTTP/1.1 client and a recording upstream, for tests
//!   that send exact bytes and assert the exact bytes an upstream received.
//!
//! The binaries are taken from the target directory the tests were built
//! in (`target/<profile>/`). When one is missing, or older than the
//! sources it is built from, the harness runs `cargo build` for it once per
//! test process.
//!
//! ```no_run
//! use e2e::{gwctl, Echo, Gateway, GatewayOptions};
//!
//! let out = gwctl(&["validate", "fixtures/tutorial/"]);
//! out.assert_status(0);
//!
//! let echo = Echo::start();
//! let gateway = Gateway::start(GatewayOptions::default());
//! let response = gateway.client().get(gateway.admin_url("/status")).send().unwrap();
//! assert_eq!(response.status(), 200);
//! # drop(echo);
//! ```

pub mod raw;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

pub mod postgres;

/// How long a server may take to print its `listening on` lines.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a one-shot command may run before the test gives up on it.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The most stderr kept per server, so a chatty one cannot fill memory.
const STDERR_LIMIT: usize = 1 << 20;

// ----- paths and binaries ----------------------------------------------------

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
fn profile_dir() -> PathBuf {
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
fn ensure_built(bin: &str, package: &str, crates: &[&str]) -> PathBuf {
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
fn remove_test_env(command: &mut Command) {
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
fn is_fresh(binary: &Path, crates: &[&str]) -> bool {
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

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

/// The latest modification time of any file under `dir`.
fn newest_in(dir: &Path) -> Option<SystemTime> {
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
fn isolated_home() -> &'static Path {
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

// ----- one-shot commands -----------------------------------------------------

/// What a finished command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The exit code; -1 when the process was ended by a signal.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panic, showing the whole output, unless the exit code is `code`.
    #[track_caller]
    pub fn assert_status(&self, code: i32) -> &Self {
        assert_eq!(self.status, code, "unexpected exit code\n{self}");
        self
    }

    /// The lines of stderr, without their line ends.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
}

/// The whole output, for assertion messages.
impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "exit code: {}", self.status)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

/// Run `gwctl ARGS...` in the repository root, with no stdin.
pub fn gwctl(args: &[&str]) -> Output {
    Run::gwctl(args).run()
}

/// A command to run: the program, its arguments, stdin text, extra
/// environment variables and working directory.
///
/// ```no_run
/// let out = e2e::Run::gwctl(&["validate", "-"])
///     .stdin("_format_version: \"3.0\"\n")
///     .env("DECK_HOST", "127.0.0.1")
///     .run();
/// assert_eq!(out.status, 0, "{out}");
/// ```
#[derive(Debug, Clone)]
pub struct Run {
    program: PathBuf,
    args: Vec<OsString>,
    stdin: Option<String>,
    envs: Vec<(OsString, OsString)>,
    dir: PathBuf,
    timeout: Duration,
}

impl Run {
    /// Any program; the arguments can be added with [`Run::arg`].
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            stdin: None,
            envs: Vec::new(),
            dir: repo_root(),
            timeout: RUN_TIMEOUT,
        }
    }

    /// `gwctl ARGS...`.
    pub fn gwctl(args: &[&str]) -> Self {
        Self::new(gwctl_bin()).args(args)
    }

    /// `gateway ARGS...` run to completion (e.g. a start that must fail).
    pub fn gateway(args: &[&str]) -> Self {
        Self::new(gateway_bin()).args(args)
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<S: Into<OsString> + Clone>(mut self, args: &[S]) -> Self {
        self.args.extend(args.iter().cloned().map(Into::into));
        self
    }

    /// Text written to the command's stdin (which is empty otherwise).
    pub fn stdin(mut self, text: impl Into<String>) -> Self {
        self.stdin = Some(text.into());
        self
    }

    /// One more environment variable.
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((name.into(), value.into()));
        self
    }

    /// The working directory (the repository root by default).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = dir.into();
        self
    }

    /// How long to wait before killing the command and failing the test.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `gwctl validate x.yaml`, for messages.
    fn describe(&self) -> String {
        let name = self.program.file_name().unwrap_or(self.program.as_os_str());
        let mut text = name.to_string_lossy().into_owned();
        for arg in &self.args {
            text.push(' ');
            text.push_str(&arg.to_string_lossy());
        }
        text
    }

    /// The command with a clean environment and piped stdout/stderr.
    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .current_dir(&self.dir)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", isolated_home())
            .envs(self.envs.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Run to completion and collect the output.
    #[track_caller]
    pub fn run(&self) -> Output {
        let (output, finished) = self.execute().unwrap_or_else(|error| panic!("{error}"));
        assert!(
            finished,
            "`{}` did not finish within {:?}\n{output}",
            self.describe(),
            self.timeout
        );
        output
    }

    /// Like [`Run::run`], but a command still running at the timeout is
    /// killed and reported with status -1 instead of failing the test.
    pub fn try_run(&self) -> Output {
        match self.execute() {
            Ok((output, _)) => output,
            Err(error) => Output {
                status: -1,
                stdout: String::new(),
                stderr: error,
            },
        }
    }

    /// Runs the command; whether it finished in time, or why it could not
    /// start.
    fn execute(&self) -> Result<(Output, bool), String> {
        let mut command = self.command();
        command.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = command
            .spawn()
            .map_err(|error| format!("cannot start `{}`: {error}", self.describe()))?;
        if let (Some(text), Some(mut pipe)) = (self.stdin.clone(), child.stdin.take()) {
            // A command that exits without reading stdin closes the pipe;
            // that is its business, not a harness error.
            thread::spawn(move || drop(pipe.write_all(text.as_bytes())));
        }
        let stdout = read_all_in_background(child.stdout.take());
        let stderr = read_all_in_background(child.stderr.take());
        let finished = wait_until(&mut child, Instant::now() + self.timeout);
        if finished.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let output = Output {
            status: finished.map_or(-1, exit_code),
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        };
        Ok((output, finished.is_some()))
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    status.code().unwrap_or(-1)
}

fn read_all_in_background(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Wait for `child` to exit, until `deadline`; `None` if it is still running.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

// ----- long-running servers --------------------------------------------------

/// A running server process: its stdout lines arrive on a channel, its
/// stderr is collected for failure messages. Killed when dropped.
struct Server {
    what: String,
    child: Option<Child>,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Server {
    fn spawn(run: &Run) -> Self {
        let mut command = run.command();
        command.stdin(Stdio::null());
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start `{}`: {error}", run.describe()));
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            // Keep draining after the test stops listening, so the server
            // never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = sender.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_reader = child
            .stderr
            .take()
            .map(|pipe| collect_stderr(pipe, stderr.clone()));
        Self {
            what: run.describe(),
            child: Some(child),
            lines,
            seen: Vec::new(),
            stderr,
            stderr_reader,
        }
    }

    /// Read stdout lines until one starting with each of `prefixes` has
    /// appeared, and return what follows each prefix (in `prefixes` order).
    fn wait_for_lines(&mut self, prefixes: &[&str]) -> Vec<String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut found: HashMap<&str, String> = HashMap::new();
        while found.len() < prefixes.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("no {prefixes:?} lines within {STARTUP_TIMEOUT:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("stdout closed before the {prefixes:?} lines"))
                }
            };
            if let Some(prefix) = prefixes.iter().find(|prefix| line.starts_with(**prefix)) {
                found.insert(*prefix, line[prefix.len()..].trim().to_owned());
            }
            self.seen.push(line);
        }
        prefixes
            .iter()
            .map(|prefix| found[prefix].clone())
            .collect()
    }

    /// Parse `value` as an address or fail with the server's output.
    fn addr(&mut self, value: &str) -> SocketAddr {
        let text = value.trim_end_matches('/');
        match text.parse() {
            Ok(addr) => addr,
            Err(_) => self.fail(&format!("cannot parse the address {value:?}")),
        }
    }

    /// Kill the server and panic with everything it printed.
    fn fail(&mut self, why: &str) -> ! {
        let status = self.kill();
        self.finish_stderr();
        panic!(
            "`{}`: {why} (exit: {status:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.seen.join("\n"),
            self.stderr()
        );
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default()
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL and reap; the exit status if there was a process.
    fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    /// SIGTERM, then wait up to `grace`; `None` if it is still running
    /// (then it is killed).
    fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let pid = self.pid()?;
        let _ = Command::new("sh")
            .args(["-c", "kill -TERM \"$0\"", &pid.to_string()])
            .status();
        let child = self.child.as_mut()?;
        let status = wait_until(child, Instant::now() + grace);
        if status.is_some() {
            self.child = None;
        } else {
            self.kill();
        }
        self.finish_stderr();
        status
    }

    /// Give the stderr reader a moment to take the last lines of a process
    /// that has exited (a grandchild may hold the pipe, so don't insist).
    fn finish_stderr(&mut self) {
        let Some(reader) = self.stderr_reader.take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while !reader.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn collect_stderr(pipe: ChildStderr, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let Ok(mut text) = into.lock() else { break };
            if text.len() < STDERR_LIMIT {
                text.push_str(&line);
                text.push('\n');
            }
        }
    })
}

/// `gateway echo` on a free loopback port: answers any path with a JSON
/// description of the request (like httpbin's `/anything`).
pub struct Echo {
    server: Server,
    addr: SocketAddr,
}

impl Echo {
    /// Start it and wait for `echo listening on http://ADDR`.
    pub fn start() -> Echo {
        let run = Run::gateway(&["echo", "--listen", "127.0.0.1:0"]);
        let mut server = Server::spawn(&run);
        let found = server.wait_for_lines(&["echo listening on http://"]);
        let addr = server.addr(&found[0]);
        Echo { server, addr }
    }

    /// The bound address, e.g. to put in a service's `url`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.server.stderr()
    }

    /// The process id, e.g. to read its memory use in `/proc/<pid>/status`.
    pub fn pid(&self) -> Option<u32> {
        self.server.pid()
    }
}

/// How to start a [`Gateway`].
#[derive(Debug, Clone, Default)]
pub struct GatewayOptions {
    /// Also listen for TLS with a certificate for `localhost` and
    /// `127.0.0.1`, issued by a CA made for this gateway.
    pub tls: bool,
    /// Require `Kong-Admin-Token: TOKEN` on the Admin API.
    pub admin_token: Option<String>,
    /// More arguments for `gateway serve`.
    pub extra_args: Vec<String>,
    /// More environment variables.
    pub extra_env: Vec<(String, String)>,
}

/// The PEM files of a gateway's TLS listener, in its temporary directory.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA that issued the certificate; trust this one.
    pub ca_cert: PathBuf,
    pub ca_pem: String,
    /// The listener's certificate and key, as given to `gateway serve`.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `gateway serve` on a temporary data directory and free loopback ports.
/// The data directory outlives restarts and is removed on drop.
pub struct Gateway {
    server: Server,
    options: GatewayOptions,
    dir: tempfile::TempDir,
    tls: Option<TlsFiles>,
    proxy: SocketAddr,
    proxy_tls: Option<SocketAddr>,
    admin: SocketAddr,
    /// The Status API, when `extra_args` has `--status-listen`.
    status: Option<SocketAddr>,
}

impl Gateway {
    /// Start it and wait for its `listening on` lines.
    pub fn start(options: GatewayOptions) -> Gateway {
        Gateway::start_probing(options, |_| ()).0
    }

    /// Start it with `--status-listen` in `options.extra_args`: as soon as
    /// it prints `status listening on`, run `probe` with that address
    /// (while the rest of the start may still be under way), then wait for
    /// the other `listening on` lines.
    pub fn start_probing<T>(
        options: GatewayOptions,
        probe: impl FnOnce(SocketAddr) -> T,
    ) -> (Gateway, Option<T>) {
        let dir = tempfile::Builder::new()
            .prefix("e2e-gateway-")
            .tempdir()
            .expect("a temporary directory for the gateway");
        let tls = options.tls.then(|| write_tls_files(dir.path()));
        let data_dir = dir.path().join("data");
        let (launched, probed) = launch_probing(&options, &data_dir, tls.as_ref(), probe);
        let Launched {
            server,
            proxy,
            proxy_tls,
            admin,
            status,
        } = launched;
        let gateway = Gateway {
            server,
            options,
            dir,
            tls,
            proxy,
            proxy_tls,
            admin,
            status,
        };
        (gateway, probed)
    }

    /// `http://STATUS{path}`; panics if started without `--status-listen`.
    pub fn status_url(&self, path: &str) -> String {
        let addr = self
            .status
            .expect("the gateway was started without --status-listen");
        format!("http://{addr}{path}")
    }

    /// `http://PROXY{path}`.
    pub fn proxy_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    /// `https://PROXY_TLS{path}`; panics if started without TLS.
    pub fn proxy_tls_url(&self, path: &str) -> String {
        let addr = self
            .proxy_tls
            .expect("the gateway was started without tls: true");
        format!("https://{addr}{path}")
    }

    /// `http://ADMIN{path}`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The store's directory (`--data-dir`), the same across restarts.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The TLS files, when started with `tls: true`.
    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// A client for this gateway: see [`http_client`]; when TLS is on it
    /// trusts this gateway's CA, and nothing else.
    pub fn client(&self) -> reqwest::blocking::Client {
        match &self.tls {
            Some(tls) => client_trusting(&tls.ca_pem),
            None => http_client(),
        }
    }

    /// `gwctl ARGS...` aimed at this gateway's Admin API (`GWCTL_ADDR`).
    /// With an admin token, add `--header 'Kong-Admin-Token: ...'` yourself.
    pub fn gwctl(&self, args: &[&str]) -> Run {
        Run::gwctl(args).env("GWCTL_ADDR", self.admin_url(""))
    }

    /// What it printed on stderr since it was last started.
    pub fn stderr(&self) -> String {
        self.server.stderr()
    }

    /// The process id of the running `gateway serve` (it changes on
    /// restart; `None` after [`Gateway::kill9`]), e.g. to read its memory
    /// use with [`peak_rss_bytes`].
    pub fn pid(&self) -> Option<u32> {
        self.server.pid()
    }

    /// Stop with SIGTERM and start again on the same data directory (the
    /// ports may change). Panics if the gateway does not exit within 15 s
    /// or exits with a non-zero code: a clean shutdown is part of keeping
    /// the data. After [`Gateway::kill9`] it just starts again.
    pub fn restart(&mut self) {
        if self.server.pid().is_some() {
            let status = self.server.terminate(STARTUP_TIMEOUT);
            match status {
                Some(status) if status.success() => {}
                other => panic!(
                    "the gateway did not stop cleanly on SIGTERM (exit: {other:?})\n--- stderr ---\n{}",
                    self.server.stderr()
                ),
            }
        }
        let data_dir = self.data_dir();
        let (launched, _) = launch_probing(&self.options, &data_dir, self.tls.as_ref(), |_| ());
        self.server = launched.server;
        self.proxy = launched.proxy;
        self.proxy_tls = launched.proxy_tls;
        self.admin = launched.admin;
        self.status = launched.status;
    }

    /// Like [`Gateway::restart`], running `probe` with the Status API's
    /// address as soon as it listens (see [`Gateway::start_probing`]).
    pub fn restart_probing<T>(&mut self, probe: impl FnOnce(SocketAddr) -> T) -> Option<T> {
        if self.server.pid().is_some() {
            self.server.terminate(STARTUP_TIMEOUT);
        }
        let data_dir = self.data_dir();
        let (launched, probed) = launch_probing(&self.options, &data_dir, self.tls.as_ref(), probe);
        self.server = launched.server;
        self.proxy = launched.proxy;
        self.proxy_tls = launched.proxy_tls;
        self.admin = launched.admin;
        self.status = launched.status;
        probed
    }

    /// Kill it with SIGKILL (a crash); [`Gateway::restart`] starts it again.
    pub fn kill9(&mut self) {
        self.server.kill();
    }
}

/// A started `gateway serve` and its addresses.
struct Launched {
    server: Server,
    proxy: SocketAddr,
    proxy_tls: Option<SocketAddr>,
    admin: SocketAddr,
    status: Option<SocketAddr>,
}

/// Starts `gateway serve`; with `--status-listen`, waits for that line
/// first and runs `probe` with its address.
fn launch_probing<T>(
    options: &GatewayOptions,
    data_dir: &Path,
    tls: Option<&TlsFiles>,
    probe: impl FnOnce(SocketAddr) -> T,
) -> (Launched, Option<T>) {
    let mut run = Run::gateway(&["serve", "--proxy-listen", "127.0.0.1:0"])
        .args(&["--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir);
    if let Some(tls) = tls {
        run = run
            .args(&["--proxy-tls-listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(&tls.cert)
            .arg("--tls-key")
            .arg(&tls.key);
    }
    if let Some(token) = &options.admin_token {
        run = run.args(&["--admin-token", token]);
    }
    run = run.args(&options.extra_args);
    for (name, value) in &options.extra_env {
        run = run.env(name, value);
    }
    let mut server = Server::spawn(&run);
    let (status, probed) = if options
        .extra_args
        .iter()
        .any(|arg| arg == "--status-listen")
    {
        let found = server.wait_for_lines(&["status listening on http://"]);
        let status = server.addr(&found[0]);
        (Some(status), Some(probe(status)))
    } else {
        (None, None)
    };
    let mut prefixes = vec!["proxy listening on http://", "admin listening on http://"];
    if tls.is_some() {
        prefixes.push("proxy listening on https://");
    }
    let found = server.wait_for_lines(&prefixes);
    let proxy = server.addr(&found[0]);
    let admin = server.addr(&found[1]);
    let proxy_tls = found.get(2).map(|text| server.addr(text));
    let launched = Launched {
        server,
        proxy,
        proxy_tls,
        admin,
        status,
    };
    (launched, probed)
}

/// A CA and a certificate it issued for `localhost` and `127.0.0.1`,
/// written as `ca.pem`, `cert.pem` and `key.pem` into `dir`.
pub(crate) fn write_tls_files(dir: &Path) -> TlsFiles {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "e2e test CA");
    let ca_key = KeyPair::generate().expect("a CA key");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("a CA certificate");
    let leaf_key = KeyPair::generate().expect("a server key");
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server certificate parameters")
        .signed_by(&leaf_key, &ca)
        .expect("a server certificate");
    let files = TlsFiles {
        ca_cert: dir.join("ca.pem"),
        ca_pem: ca.pem(),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    for (path, text) in [
        (&files.ca_cert, files.ca_pem.clone()),
        (&files.cert, leaf.pem()),
        (&files.key, leaf_key.serialize_pem()),
    ] {
        std::fs::write(path, text)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    }
    files
}

// ----- processes -----------------------------------------------------------------

/// The peak resident set size (`VmHWM` in `/proc/<pid>/status`) of a
/// running process, in bytes; `None` where `/proc` is not available.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

// ----- HTTP clients ------------------------------------------------------------

/// HTTP/1.1 only: reqwest is built with `http2` (for [`alpn_client_trusting`]),
/// and the usual clients must not switch to HTTP/2 by ALPN behind the
/// tests' backs.
fn client_builder() -> reqwest::blocking::ClientBuilder {
    base_client_builder().http1_only()
}

fn base_client_builder() -> reqwest::blocking::ClientBuilder {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(RUN_TIMEOUT)
}

/// A blocking client that does not follow redirects, ignores `HTTP_PROXY`
/// and friends, and keeps no cookies.
pub fn http_client() -> reqwest::blocking::Client {
    client_builder().build().expect("a reqwest client")
}

/// Like [`http_client`], trusting only the CA in `ca_pem` for HTTPS.
pub fn client_trusting(ca_pem: &str) -> reqwest::blocking::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("a PEM CA certificate");
    client_builder()
        .add_root_certificate(ca)
        .tls_built_in_root_certs(false)
        .build()
        .expect("a reqwest client")
}

/// Like [`client_trusting`], but offering `h2` and `http/1.1` by ALPN, as
/// browsers and curl do: over TLS it speaks HTTP/2 when the server picks it.
/// Check `response.version()`.
pub fn alpn_client_trusting(ca_pem: &str) -> reqwest::blocking::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("a PEM CA certificate");
    base_client_builder()
        .add_root_certificate(ca)
        .tls_built_in_root_certs(false)
        .build()
        .expect("a reqwest client")
}

/// The `name=value` pair of the `Set-Cookie` header for cookie `name`, to
/// send back as `Cookie: name=value`.
pub fn cookie_pair(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.split(';').next())
        .map(str::trim)
        .find(|pair| pair.split_once('=').is_some_and(|(key, _)| key == name))
        .map(str::to_owned)
}

/// An HTTP answer, kept whole so assertion messages can show it: its
/// `Display` prints the method, the URL, the status, every header and the
/// body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub method: reqwest::Method,
    pub url: String,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    /// The body as JSON; panics (showing the answer) if it is not JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("the body is not JSON ({error})\n{self}"))
    }

    /// The body as JSON when it is JSON, `Null` when it is empty (or only
    /// white space), and otherwise the text itself as a JSON string: for
    /// callers that want a value to show or compare whatever came back.
    pub fn json_or_text(&self) -> serde_json::Value {
        if self.body.trim().is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| serde_json::Value::String(self.body.clone()))
    }

    /// The first value of response header `name` as text (`<not UTF-8>`
    /// when it is not), or `None` when there is no such header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|value| value.to_str().unwrap_or("<not UTF-8>"))
    }

    /// The whole `Set-Cookie` line (value and attributes) that sets cookie
    /// `name`, e.g. `session=abc; Path=/; HttpOnly`, or `None` if no
    /// `Set-Cookie` header sets it. See [`Answer::cookie_pair`] for just
    /// the `name=value` part.
    pub fn set_cookie_line(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find(|line| line.starts_with(&prefix))
            .map(str::to_owned)
    }

    /// The `name=value` pair of the `Set-Cookie` for cookie `name`, to
    /// send back as `Cookie: name=value` (see [`cookie_pair`]).
    pub fn cookie_pair(&self, name: &str) -> Option<String> {
        cookie_pair(&self.headers, name)
    }

    /// The [`Echo`] upstream's JSON description of the request it received
    /// (`method`, `url`, `args`, `headers`, `data`, `json`, `form`...).
    /// Panics, showing the answer, unless this is a 200 whose body is such
    /// a document (a JSON object with a `headers` object).
    #[track_caller]
    pub fn echoed(&self) -> serde_json::Value {
        let document = self.expect_json(200);
        assert!(
            document["headers"].is_object(),
            "not the echo's description of a request\n{self}"
        );
        document
    }

    /// Request header `name` (any case) as the [`Echo`] upstream received
    /// it, repeated headers joined with `,`; `None` if it did not get one.
    /// Panics like [`Answer::echoed`] unless this is the echo's 200.
    #[track_caller]
    pub fn upstream_header(&self, name: &str) -> Option<String> {
        let document = self.echoed();
        let headers = document["headers"].as_object().expect("checked");
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str().unwrap_or_default().to_owned())
    }

    /// Panic, showing the answer, unless the status is `status`.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status\n{self}");
        self
    }

    /// Expect `status` and return the JSON body.
    #[track_caller]
    pub fn expect_json(&self, status: u16) -> serde_json::Value {
        self.expect(status);
        self.json()
    }

    /// The [`Answer`] to a request already sent. A body that cannot be read
    /// to the end (e.g. the connection was cut) is kept as
    /// `<unreadable body: ERROR>`; [`send`] fails the test instead.
    pub fn of(
        method: reqwest::Method,
        url: String,
        response: reqwest::blocking::Response,
    ) -> Answer {
        Answer::read(method, url, response).0
    }

    /// Like [`Answer::of`], with the error that kept the body from being
    /// read, if any.
    fn read(
        method: reqwest::Method,
        url: String,
        response: reqwest::blocking::Response,
    ) -> (Answer, Option<String>) {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let (body, error) = match response.text() {
            Ok(body) => (body, None),
            Err(error) => {
                let error = error_chain(&error);
                (format!("<unreadable body: {error}>"), Some(error))
            }
        };
        let answer = Answer {
            method,
            url,
            status,
            headers,
            body,
        };
        (answer, error)
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {} -> {}", self.method, self.url, self.status)?;
        for (name, value) in &self.headers {
            writeln!(f, "{name}: {}", value.to_str().unwrap_or("<not UTF-8>"))?;
        }
        write!(f, "\n{}", self.body)
    }
}

/// Send a request and read its answer to the end; panics when there is no
/// answer or its body cannot be read.
#[track_caller]
pub fn send(request: reqwest::blocking::RequestBuilder) -> Answer {
    let (client, request) = request.build_split();
    let request = request.unwrap_or_else(|error| panic!("an invalid request: {error:?}"));
    let (method, url) = (request.method().clone(), request.url().to_string());
    let response = client
        .execute(request)
        .unwrap_or_else(|error| panic!("{method} {url}: no answer: {}", error_chain(&error)));
    let (answer, unreadable) = Answer::read(method, url, response);
    if let Some(error) = unreadable {
        panic!("cannot read the body to the end ({error})\n{answer}");
    }
    answer
}

/// `error: its source: ...`, since reqwest's errors keep the cause (e.g.
/// `Connection refused`) in their sources.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A loopback port nothing listens on (bound, then released), for
/// services whose upstream must refuse connections.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Run {
        Run::new("sh").args(&["-c", script])
    }

    #[test]
    fn runs_with_a_clean_environment_stdin_and_env() {
        let out = sh("printf '%s|%s|' \"$DECK_X\" \"${CARGO:-unset}\"; cat; echo oops >&2; exit 3")
            .stdin("from stdin")
            .env("DECK_X", "given")
            .run();
        assert_eq!(out.status, 3, "{out}");
        assert_eq!(out.stdout, "given|unset|from stdin");
        assert_eq!(out.stderr_lines(), ["oops"]);
    }

    #[test]
    fn servers_report_their_addresses() {
        let run = sh(
            "echo starting; echo 'admin listening on http://127.0.0.1:1234'; \
                      echo 'proxy listening on http://127.0.0.1:99'; sleep 30",
        );
        let mut server = Server::spawn(&run);
        let found =
            server.wait_for_lines(&["proxy listening on http://", "admin listening on http://"]);
        assert_eq!(found, ["127.0.0.1:99", "127.0.0.1:1234"]);
        assert_eq!(server.addr(&found[1]), "127.0.0.1:1234".parse().unwrap());
    }

    #[test]
    #[should_panic(expected = "boom on stderr")]
    fn a_server_that_dies_shows_its_stderr() {
        let mut server = Server::spawn(&sh("echo 'boom on stderr' >&2; exit 1"));
        server.wait_for_lines(&["echo listening on http://"]);
    }

    #[test]
    fn sigterm_stops_a_server() {
        let mut server = Server::spawn(&sh(
            "trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done",
        ));
        server.wait_for_lines(&["ready"]);
        let status = server.terminate(Duration::from_secs(5)).expect("stopped");
        assert!(status.success(), "{status:?}");
    }

    #[test]
    fn answers_read_set_cookie_lines_and_what_the_echo_received() {
        let mut headers = reqwest::header::HeaderMap::new();
        for value in ["other=1; Path=/", "session=abc; Path=/; HttpOnly"] {
            headers.append(reqwest::header::SET_COOKIE, value.parse().unwrap());
        }
        let answer = Answer {
            method: reqwest::Method::GET,
            url: "http://127.0.0.1:1/anything".to_owned(),
            status: 200,
            headers,
            body: r#"{"headers": {"X-Consumer-Username": "alex", "X-Multi": "a,b"}}"#.to_owned(),
        };
        assert_eq!(
            answer.set_cookie_line("session").as_deref(),
            Some("session=abc; Path=/; HttpOnly")
        );
        assert_eq!(answer.set_cookie_line("sess"), None);
        assert_eq!(
            answer.cookie_pair("session").as_deref(),
            Some("session=abc")
        );
        assert_eq!(
            answer.upstream_header("x-consumer-username").as_deref(),
            Some("alex")
        );
        assert_eq!(answer.upstream_header("X-Multi").as_deref(), Some("a,b"));
        assert_eq!(answer.upstream_header("x-anonymous-consumer"), None);
        assert_eq!(answer.json_or_text()["headers"]["X-Multi"], "a,b");
        let text = Answer {
            body: "not JSON".to_owned(),
            ..answer.clone()
        };
        assert_eq!(text.json_or_text(), serde_json::json!("not JSON"));
        let empty = Answer {
            body: " \n".to_owned(),
            ..answer
        };
        assert_eq!(empty.json_or_text(), serde_json::Value::Null);
    }

    #[test]
    #[should_panic(expected = "not the echo's description")]
    fn echoed_refuses_a_200_that_is_not_the_echo() {
        let answer = Answer {
            method: reqwest::Method::GET,
            url: "http://127.0.0.1:1/".to_owned(),
            status: 200,
            headers: reqwest::header::HeaderMap::new(),
            body: r#"{"message": "hi"}"#.to_owned(),
        };
        answer.echoed();
    }

    #[test]
    fn cookie_pairs_are_taken_from_set_cookie() {
        let mut headers = reqwest::header::HeaderMap::new();
        for value in ["other=1; Path=/", "session=abc.def|12; Path=/; HttpOnly"] {
            headers.append(reqwest::header::SET_COOKIE, value.parse().unwrap());
        }
        assert_eq!(
            cookie_pair(&headers, "session").as_deref(),
            Some("session=abc.def|12")
        );
        assert_eq!(cookie_pair(&headers, "remember"), None);
    }

    /// One HTTPS exchange with a rustls server using the generated files:
    /// the client made by `client_trusting` must accept the chain, and a
    /// client with the usual roots must not.
    #[test]
    fn the_generated_certificate_is_trusted_through_its_ca() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_tls_files(dir.path());
        let addr = serve_one_tls_response(&files);
        let url = format!("https://{addr}/");
        let response = client_trusting(&files.ca_pem)
            .get(&url)
            .send()
            .expect("an HTTPS answer");
        assert_eq!(response.text().unwrap(), "ok");
        let addr = serve_one_tls_response(&files);
        let refused = http_client()
            .get(format!("https://localhost:{}/", addr.port()))
            .send();
        assert!(
            refused.is_err(),
            "the test CA must not be trusted by default"
        );
    }

    fn serve_one_tls_response(files: &TlsFiles) -> SocketAddr {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let certs = vec![CertificateDer::from_pem_file(&files.cert).unwrap()];
        let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (mut tcp, _) = listener.accept().unwrap();
            let mut tls = rustls::ServerConnection::new(Arc::new(config)).unwrap();
            let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
            let mut request = [0u8; 1024];
            if stream.read(&mut request).is_ok() {
                let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                let _ = stream.write_all(answer.as_bytes());
                let _ = stream.flush();
            }
        });
        addr
    }
}
