//! Helpers shared by the `gwctl diff | sync | dump | reset` end-to-end
//! tests (`sync.rs`, `dump.rs`).
//!
//! - [`Env`]: one `gateway serve` (and, for proxy checks, a `gateway echo`),
//!   `gwctl` runs aimed at it, and the Admin API read back as JSON.
//! - [`Recorder`]: a small HTTP relay put between `gwctl` and the Admin API
//!   that records every request's method and path, to show that a command
//!   sent no write (or nothing at all). It can also answer `/config` the way
//!   a Kong with a database does (400), which sends `gwctl sync` down its
//!   per-entity path ([`Env::run_like_kong`]), and run a hook before it
//!   forwards a request (someone else changing the gateway meanwhile).
//! - [`Snapshot`]: every entity of the gateway with its timestamps, to show
//!   that a command left the configuration exactly as it was.
//! - [`Dir`]: decK files written into a temporary directory, and a copy of
//!   `fixtures/tutorial/` with the service pointed at the test's echo.
//! - [`assert_tutorial_validations`]: the tutorial's three checks through
//!   the proxy.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;

use e2e::{http_client, repo_root, send, Answer, Echo, Gateway, GatewayOptions, Output, Run};
use reqwest::Method;
use serde_json::Value;

/// The URL `fixtures/tutorial/00-prerequisites.yaml` points the service at.
pub const TUTORIAL_UPSTREAM: &str = "http://127.0.0.1:9000";

/// The Admin API collections, in the order gwctl applies them.
pub const COLLECTIONS: [&str; 5] = ["consumers", "services", "key-auths", "routes", "plugins"];

// ----- one gateway -------------------------------------------------------------------

/// A gateway, and an echo upstream when the test proxies requests.
pub struct Env {
    pub gateway: Gateway,
    pub echo: Option<Echo>,
    /// Headers sent with every Admin API request made by the test itself.
    admin_headers: Vec<(String, String)>,
}

impl Env {
    /// A fresh gateway, no echo.
    pub fn start() -> Env {
        Env {
            gateway: Gateway::start(GatewayOptions::default()),
            echo: None,
            admin_headers: Vec::new(),
        }
    }

    /// A fresh gateway and an echo upstream.
    pub fn with_echo() -> Env {
        let echo = Echo::start();
        let mut env = Env::start();
        env.echo = Some(echo);
        env
    }

    /// A fresh gateway that requires `Kong-Admin-Token: token`.
    pub fn with_admin_token(token: &str) -> Env {
        Env {
            gateway: Gateway::start(GatewayOptions {
                admin_token: Some(token.to_owned()),
                ..GatewayOptions::default()
            }),
            echo: None,
            admin_headers: vec![("Kong-Admin-Token".to_owned(), token.to_owned())],
        }
    }

    /// `http://ECHO`, the URL to point services at.
    pub fn echo_url(&self) -> String {
        self.echo.as_ref().expect("started with_echo").url("")
    }

    /// `gwctl ARGS...` aimed at this gateway, to add stdin or env to.
    pub fn gwctl(&self, args: &[&str]) -> Run {
        self.gateway.gwctl(args)
    }

    /// `gwctl ARGS...` aimed at this gateway, run.
    pub fn run(&self, args: &[&str]) -> Output {
        self.gwctl(args).run()
    }

    /// `gwctl ARGS...` that must exit 0.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        out.assert_status(0);
        out
    }

    /// `gwctl ARGS...` through a [`Recorder`]: the output and the requests.
    pub fn run_recorded(&self, args: &[&str]) -> (Output, Vec<Request>) {
        self.run_through(Recorder::start(self.gateway.admin_addr()), args)
    }

    /// `gwctl ARGS...` through a relay that answers `/config` as a Kong
    /// with a database does: `sync` takes the per-entity path (one Admin
    /// API call per change), the one it takes against Kong.
    pub fn run_like_kong(&self, args: &[&str]) -> (Output, Vec<Request>) {
        let options = RelayOptions {
            like_kong: true,
            ..RelayOptions::default()
        };
        self.run_through(
            Recorder::start_with(self.gateway.admin_addr(), options),
            args,
        )
    }

    /// `gwctl ARGS...` through `recorder`: the output and the requests.
    pub fn run_through(&self, recorder: Recorder, args: &[&str]) -> (Output, Vec<Request>) {
        let out = Run::gwctl(args).env("GWCTL_ADDR", recorder.url()).run();
        (out, recorder.requests())
    }

    // ----- Admin API -----

    /// An Admin API call made by the test: the status and the body as
    /// JSON (see [`Answer::json_or_text`]).
    pub fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut request = http_client().request(method, self.gateway.admin_url(path));
        for (name, value) in &self.admin_headers {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = send(request);
        (answer.status, answer.json_or_text())
    }

    /// `GET path` that must answer 200.
    #[track_caller]
    pub fn admin_get(&self, path: &str) -> Value {
        let (status, body) = self.admin(Method::GET, path, None);
        assert_eq!(status, 200, "GET {path} answered {body}");
        body
    }

    /// Every entity of a collection (all pages), in the server's order.
    #[track_caller]
    pub fn list(&self, collection: &str) -> Vec<Value> {
        let mut entities = Vec::new();
        let mut path = format!("/{collection}?size=1000");
        loop {
            let page = self.admin_get(&path);
            entities.extend(page["data"].as_array().cloned().unwrap_or_default());
            match page["offset"].as_str() {
                Some(offset) => path = format!("/{collection}?size=1000&offset={offset}"),
                None => return entities,
            }
        }
    }

    /// The `field` (e.g. `name`) of every entity of a collection, sorted.
    #[track_caller]
    pub fn names(&self, collection: &str, field: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .list(collection)
            .iter()
            .map(|entity| entity[field].as_str().unwrap_or("(none)").to_owned())
            .collect();
        names.sort();
        names
    }

    /// Every entity, timestamps included.
    #[track_caller]
    pub fn snapshot(&self) -> Snapshot {
        let collections = COLLECTIONS
            .iter()
            .map(|collection| {
                let mut entities = self.list(collection);
                entities.sort_by_key(|entity| entity["id"].as_str().unwrap_or("").to_owned());
                (collection.to_string(), entities)
            })
            .collect();
        Snapshot { collections }
    }

    // ----- proxy -----

    /// `GET http://PROXY{path}` with these headers, read to the end.
    pub fn proxy_get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = http_client().get(self.gateway.proxy_url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request)
    }
}

/// The two ways `gwctl sync` applies a change: one `POST /config` (this
/// gateway), or one Admin API call per change (a Kong with a database,
/// whose `/config` answers 400; see [`Env::run_like_kong`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPath {
    Config,
    PerEntity,
}

impl SyncPath {
    pub const BOTH: [SyncPath; 2] = [SyncPath::Config, SyncPath::PerEntity];

    /// `gwctl ARGS...` through a recording relay that takes this path.
    pub fn run(self, env: &Env, args: &[&str]) -> (Output, Vec<Request>) {
        match self {
            SyncPath::Config => env.run_recorded(args),
            SyncPath::PerEntity => env.run_like_kong(args),
        }
    }

    /// [`SyncPath::run`] that must exit 0; also checks that the writes
    /// went the way of this path.
    #[track_caller]
    pub fn ok(self, env: &Env, args: &[&str]) -> Output {
        let (out, requests) = self.run(env, args);
        out.assert_status(0);
        let writes = writes(&requests);
        let per_entity = writes
            .iter()
            .any(|r| r.method == "PUT" || r.method == "DELETE");
        match self {
            SyncPath::Config => assert!(!per_entity, "{self:?}: {writes:?}\n{out}"),
            SyncPath::PerEntity => assert!(
                writes.is_empty() || per_entity,
                "{self:?}: {writes:?}\n{out}"
            ),
        }
        out
    }
}

/// Every entity of a gateway, per collection, sorted by id.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub collections: Vec<(String, Vec<Value>)>,
}

impl Snapshot {
    /// How many entities there are in all.
    pub fn len(&self) -> usize {
        self.collections.iter().map(|(_, list)| list.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entities of one collection.
    pub fn of(&self, collection: &str) -> &[Value] {
        self.collections
            .iter()
            .find(|(name, _)| name == collection)
            .map(|(_, list)| list.as_slice())
            .unwrap_or(&[])
    }
}

/// Panic, showing both, unless the gateway still holds exactly `before`.
#[track_caller]
pub fn assert_unchanged(env: &Env, before: &Snapshot, context: &Output) {
    let after = env.snapshot();
    assert!(
        &after == before,
        "the gateway's configuration changed\nbefore: {before:#?}\nafter: {after:#?}\n{context}"
    );
}

/// The tutorial's three validations through the proxy:
/// 1. no key → 403 `{"message":"Forbidden"}`;
/// 2. `apikey: hello_world` → 200 and `Set-Cookie: session=...`;
/// 3. only that cookie → 200, the echo seeing `X-Consumer-Username: alex`.
#[track_caller]
pub fn assert_tutorial_validations(env: &Env) {
    let anonymous = env.proxy_get("/anything", &[]);
    assert_eq!(anonymous.status, 403, "no key must be refused\n{anonymous}");
    assert_eq!(anonymous.body, r#"{"message":"Forbidden"}"#, "{anonymous}");
    let login = env.proxy_get("/anything", &[("apikey", "hello_world")]);
    assert_eq!(login.status, 200, "the key must be accepted\n{login}");
    let cookie = login
        .cookie_pair("session")
        .unwrap_or_else(|| panic!("no session cookie after a key login\n{login}"));
    let again = env.proxy_get("/anything", &[("cookie", &cookie)]);
    assert_eq!(again.status, 200, "the session cookie must work\n{again}");
    assert_eq!(
        again.upstream_header("x-consumer-username").as_deref(),
        Some("alex"),
        "{again}"
    );
}

// ----- output --------------------------------------------------------------------------

/// decK's summary block, as lines.
pub fn summary(created: usize, updated: usize, deleted: usize) -> Vec<String> {
    vec![
        "Summary:".to_owned(),
        format!("  Created: {created}"),
        format!("  Updated: {updated}"),
        format!("  Deleted: {deleted}"),
    ]
}

/// `lines` followed by the summary block.
pub fn with_summary(lines: &[&str], counts: (usize, usize, usize)) -> Vec<String> {
    let mut all: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
    all.extend(summary(counts.0, counts.1, counts.2));
    all
}

/// Panic, showing the whole output, unless stdout is exactly `expected`.
#[track_caller]
pub fn assert_stdout(out: &Output, expected: &[String]) {
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines, expected, "stdout differs\n{out}");
}

/// Panic, showing the whole output, unless stderr contains `text`.
#[track_caller]
pub fn assert_stderr_has(out: &Output, text: &str) {
    assert!(
        out.stderr.contains(text),
        "expected {text:?} on stderr\n{out}"
    );
}

/// Stdout as JSON (`--json-output`).
#[track_caller]
pub fn json_of(out: &Output) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|error| panic!("stdout is not JSON ({error})\n{out}"))
}

// ----- files -----------------------------------------------------------------------------

/// A temporary directory of decK files.
pub struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            dir: tempfile::Builder::new()
                .prefix("e2e-gwctl-")
                .tempdir()
                .expect("a temporary directory"),
        }
    }

    /// A copy of `fixtures/tutorial/` with the service pointed at `upstream`.
    pub fn tutorial(upstream: &str) -> Dir {
        let dir = Dir::new();
        let source = repo_root().join("fixtures/tutorial");
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&source)
            .expect("fixtures/tutorial")
            .map(|entry| entry.expect("a directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let text = std::fs::read_to_string(&path).expect("a tutorial file");
            let name = path.file_name().expect("a file name").to_string_lossy();
            dir.write(&name, &text.replace(TUTORIAL_UPSTREAM, upstream));
        }
        dir
    }

    /// Write `name` and return its path as a string, for the command line.
    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        path_text(&path)
    }

    /// The path of `name` in the directory (it may not exist yet).
    pub fn file(&self, name: &str) -> String {
        path_text(&self.dir.path().join(name))
    }

    /// The directory itself.
    pub fn path(&self) -> String {
        path_text(self.dir.path())
    }

    /// The text of `name`.
    pub fn read(&self, name: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
    }
}

fn path_text(path: &Path) -> String {
    path.to_str().expect("a UTF-8 temporary path").to_owned()
}

// ----- recording relay ---------------------------------------------------------------

/// One request `gwctl` sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path and query, e.g. `/services?size=1000`.
    pub target: String,
}

/// Requests other than GET.
pub fn writes(requests: &[Request]) -> Vec<&Request> {
    requests.iter().filter(|r| r.method != "GET").collect()
}

/// Run by the relay before it forwards a request (not for the `/config`
/// requests it answers itself).
pub type Hook = Arc<dyn Fn(&Request) + Send + Sync>;

/// How a [`Recorder`] relays.
#[derive(Clone, Default)]
pub struct RelayOptions {
    /// Answer every `/config` request as Kong with a database does.
    pub like_kong: bool,
    /// Called before each request is forwarded.
    pub before: Option<Hook>,
}

/// Kong's answer to `/config` when it runs with a database
/// (kong/api/routes/config.lua).
const KONG_DB_CONFIG_ANSWER: &str = "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json; \
charset=utf-8\r\ncontent-length: 91\r\n\r\n{\"message\":\"this endpoint is only available when \
Kong is configured to not use a database\"}";

/// An HTTP/1.1 relay on a free loopback port that forwards every request to
/// `upstream` and records it. Keep-alive connections are served until the
/// client closes them; bodies must come with `Content-Length` (as gwctl
/// sends them).
pub struct Recorder {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Recorder {
    pub fn start(upstream: SocketAddr) -> Recorder {
        Recorder::start_with(upstream, RelayOptions::default())
    }

    pub fn start_with(upstream: SocketAddr, options: RelayOptions) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the recorder");
        let addr = listener.local_addr().expect("the recorder's address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (log, options) = (log.clone(), options.clone());
                thread::spawn(move || relay(stream, upstream, &log, &options));
            }
        });
        Recorder { addr, requests }
    }

    /// `http://ADDR`, for `--addr` or `GWCTL_ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What was sent so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Serve one client connection until it closes.
fn relay(
    stream: TcpStream,
    upstream: SocketAddr,
    log: &Mutex<Vec<Request>>,
    options: &RelayOptions,
) {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .http1_only()
        .timeout(e2e::RUN_TIMEOUT)
        .build()
        .expect("a relay client");
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some((method, target, headers, body)) = read_request(&mut reader) {
        let request = Request {
            method: method.clone(),
            target: target.clone(),
        };
        if let Ok(mut log) = log.lock() {
            log.push(request.clone());
        }
        let config_endpoint = target == "/config" || target.starts_with("/config?");
        if options.like_kong && config_endpoint {
            if writer
                .write_all(KONG_DB_CONFIG_ANSWER.as_bytes())
                .and_then(|()| writer.flush())
                .is_err()
            {
                return;
            }
            continue;
        }
        if let Some(hook) = &options.before {
            hook(&request);
        }
        let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        let mut request = client.request(method, format!("http://{upstream}{target}"));
        for (name, value) in &headers {
            let hop = ["host", "content-length", "connection", "transfer-encoding"];
            if !hop.contains(&name.to_ascii_lowercase().as_str()) {
                request = request.header(name, value);
            }
        }
        let answer = match request.body(body).send() {
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                let body = response.bytes().map(|b| b.to_vec()).unwrap_or_default();
                let mut head = format!(
                    "HTTP/1.1 {} {}\r\n",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("")
                );
                for (name, value) in &headers {
                    let skip = ["content-length", "connection", "transfer-encoding"];
                    if !skip.contains(&name.as_str()) {
                        let value = String::from_utf8_lossy(value.as_bytes());
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                }
                head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
                [head.into_bytes(), body].concat()
            }
            Err(_) => b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n".to_vec(),
        };
        if writer
            .write_all(&answer)
            .and_then(|()| writer.flush())
            .is_err()
        {
            return;
        }
    }
}

type RawRequest = (String, String, Vec<(String, String)>, Vec<u8>);

/// One request: method, target, headers and body; `None` at the end.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<RawRequest> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok()?;
        }
        headers.push((name, value));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((method, target, headers, body))
}
