//! Long-running servers: [`Echo`] and [`Gateway`] (start, restart, SIGKILL).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::*;

/// A running server process: its stdout lines arrive on a channel, its
/// stderr is collected for failure messages. Killed when dropped.
pub(crate) struct Server {
    what: String,
    child: Option<Child>,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Server {
    pub(crate) fn spawn(run: &Run) -> Self {
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
    pub(crate) fn wait_for_lines(&mut self, prefixes: &[&str]) -> Vec<String> {
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
    pub(crate) fn addr(&mut self, value: &str) -> SocketAddr {
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
    pub(crate) fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
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

pub(crate) fn collect_stderr(pipe: ChildStderr, into: Arc<Mutex<String>>) -> JoinHandle<()> {
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
