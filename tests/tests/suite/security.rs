//! Security properties of `gateway serve`:
//!
//! - The Admin API binds loopback by default (`--help` shows it, and a
//!   gateway started without `--admin-listen` announces 127.0.0.1:8001
//!   when that port is free).
//! - With `--admin-token`, every request without the right token gets 401:
//!   any method, any path (unknown ones too), wrong tokens of the same
//!   length, prefixes, extensions and other cases (whitespace around the
//!   value is not part of it, RFC 9110 5.5, so ` TOKEN ` is the token).
//!   (The comparison itself
//!   is `subtle::ConstantTimeEq` in `gateway/src/admin/mod.rs`; timing is
//!   not measured here.)
//! - DNS rebinding: a browser that resolved an attacker's name to the
//!   loopback address sends that name as `Host` (HTTP/1.1) or
//!   `:authority` (h2c); the Admin API refuses both.
//! - Keys, cookies, session secrets and the admin token never appear in
//!   the logs, even at `RUST_LOG=trace`, over HTTP/1.1 and HTTP/2 (TLS),
//!   through successful and failing requests and Admin API writes.
//! - The TLS listener offers TLS 1.2 and 1.3 only: TLS 1.0/1.1/SSLv3
//!   hellos get no ServerHello; rustls clients pinned to 1.2 or to 1.3
//!   both connect.

use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use e2e::{alpn_client_trusting, gateway_bin, http_client, send, Gateway, GatewayOptions, Run};
use reqwest::Method;
use serde_json::json;
use support::{Env, ANONYMOUS_ID};

// ----- loopback by default -------------------------------------------------------

#[test]
fn the_admin_api_listens_on_loopback_by_default() {
    let help = Run::gateway(&["serve", "--help"]).run();
    help.assert_status(0);
    let admin_line = help
        .stdout
        .lines()
        .skip_while(|line| !line.contains("--admin-listen"))
        .take(3)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        admin_line.contains("[default: 127.0.0.1:8001]"),
        "--admin-listen must default to 127.0.0.1:8001\n{admin_line}"
    );
    let gateway = Gateway::start(GatewayOptions::default());
    assert!(gateway.admin_addr().ip().is_loopback());
}

/// Start `gateway serve` without `--admin-listen` (and without any
/// `GATEWAY_*` variable) and read what it announces. Port 8001 must be
/// free (stop a tutorial run first); the test fails when it is not.
#[test]
fn a_gateway_started_without_admin_listen_binds_127_0_0_1_8001() {
    match TcpListener::bind("127.0.0.1:8001") {
        Ok(probe) => drop(probe),
        Err(error) => panic!(
            "127.0.0.1:8001 is in use ({error}): this test starts a gateway on the default \
             Admin API address and needs it free"
        ),
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut child = Command::new(gateway_bin())
        .args(["serve", "--proxy-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("gateway serve");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let mut admin = None;
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(15)) {
        if let Some(addr) = line.strip_prefix("admin listening on http://") {
            admin = Some(addr.trim().to_owned());
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        admin.as_deref(),
        Some("127.0.0.1:8001"),
        "the default admin listener"
    );
}

// ----- the admin token -----------------------------------------------------------

const TOKEN: &str = "adm1n-t0ken-7d1f0c5e-b8a2-4f43-9e51-2c0d8a6b4e19";

#[test]
fn every_admin_request_without_the_right_token_gets_401() {
    let gateway = Gateway::start(GatewayOptions {
        admin_token: Some(TOKEN.to_owned()),
        ..GatewayOptions::default()
    });
    let client = http_client();
    let mut same_length_wrong = TOKEN.to_owned().into_bytes();
    let last = same_length_wrong.len() - 1;
    same_length_wrong[last] ^= 1;
    let same_length_wrong = String::from_utf8(same_length_wrong).unwrap();
    let mut first_wrong = TOKEN.to_owned().into_bytes();
    first_wrong[0] ^= 1;
    let first_wrong = String::from_utf8(first_wrong).unwrap();
    let prefix = &TOKEN[..TOKEN.len() - 1];
    let extended = format!("{TOKEN}x");
    let upper = TOKEN.to_uppercase();
    let wrong_tokens: Vec<Option<&str>> = vec![
        None,
        Some(""),
        Some(&same_length_wrong),
        Some(&first_wrong),
        Some(prefix),
        Some(&extended),
        Some(&upper),
    ];
    let requests: &[(Method, &str)] = &[
        (Method::GET, "/"),
        (Method::GET, "/status"),
        (Method::GET, "/consumers"),
        (Method::GET, "/no/such/endpoint"),
        (Method::POST, "/consumers"),
        (Method::PUT, "/consumers/planted"),
        (Method::PATCH, "/consumers/planted"),
        (Method::DELETE, "/consumers/planted"),
        (Method::POST, "/config"),
        (Method::GET, "/config"),
        (Method::OPTIONS, "/consumers"),
        (Method::HEAD, "/"),
    ];
    for token in &wrong_tokens {
        for (method, path) in requests {
            let mut request = client
                .request(method.clone(), gateway.admin_url(path))
                .header("Content-Type", "application/json")
                .body(json!({"username": "planted"}).to_string());
            if let Some(token) = token {
                request = request.header("Kong-Admin-Token", *token);
            }
            let response = request.send().expect("an answer");
            assert_eq!(
                response.status(),
                401,
                "{method} {path} with token {token:?} must be refused"
            );
        }
    }
    // The token is a header, not a query argument.
    let in_query = client
        .get(gateway.admin_url(&format!("/consumers?kong_admin_token={TOKEN}")))
        .send()
        .expect("an answer");
    assert_eq!(in_query.status(), 401, "a token in the query string");

    let right = |method: Method, path: &str| {
        client
            .request(method, gateway.admin_url(path))
            .header("Kong-Admin-Token", TOKEN)
    };
    let consumers = right(Method::GET, "/consumers").send().expect("an answer");
    assert_eq!(consumers.status(), 200, "the right token");
    let body: serde_json::Value = consumers.json().expect("JSON");
    assert_eq!(body["data"], json!([]), "nothing was planted");
    let created = right(Method::POST, "/consumers")
        .json(&json!({"username": "allowed"}))
        .send()
        .expect("an answer");
    assert_eq!(created.status(), 201);
}

// ----- DNS rebinding --------------------------------------------------------------

/// A client that resolves `evil.example` to the admin listener, as a
/// browser does after a DNS rebinding.
fn rebound_client(admin: SocketAddr, http2: bool) -> reqwest::blocking::Client {
    let builder = reqwest::blocking::Client::builder()
        .no_proxy()
        .resolve("evil.example", admin)
        .timeout(Duration::from_secs(10));
    let builder = if http2 {
        builder.http2_prior_knowledge()
    } else {
        builder.http1_only()
    };
    builder.build().expect("a client")
}

#[test]
fn a_rebound_host_name_is_refused_over_http1_and_h2c() {
    let gateway = Gateway::start(GatewayOptions::default());
    let admin = gateway.admin_addr();
    for http2 in [false, true] {
        let client = rebound_client(admin, http2);
        let url = format!("http://evil.example:{}/consumers", admin.port());
        let read = client.get(&url).send().expect("an answer");
        assert_eq!(
            read.status(),
            403,
            "a read through a rebound name (http2: {http2})"
        );
        let write = client
            .post(&url)
            .json(&json!({"username": "planted"}))
            .send()
            .expect("an answer");
        assert_eq!(
            write.status(),
            403,
            "a write through a rebound name (http2: {http2})"
        );
    }
    let listed: serde_json::Value = http_client()
        .get(gateway.admin_url("/consumers"))
        .send()
        .and_then(|response| response.json())
        .expect("the consumers");
    assert_eq!(listed["data"], json!([]), "nothing was planted");
}

// ----- secrets in logs ------------------------------------------------------------

const API_KEY: &str = "k3y-5f1c9a7e-0b24-4d8e-a6c3-91e2f4b7d058";
const WRONG_KEY: &str = "wr0ng-3e8d1b6a-7c42-4f90-b5e1-0a9c2d7f6e34";
const SESSION_SECRET: &str = "s3ss10n-secret-8b4e2f7a-1d6c-4a93-9e05-c7f2b1a8d640";

#[test]
fn keys_cookies_and_secrets_never_appear_in_trace_logs() {
    let env = Env::start_with(GatewayOptions {
        tls: true,
        extra_env: vec![("RUST_LOG".to_owned(), "trace".to_owned())],
        ..GatewayOptions::default()
    });
    env.plugin(json!({
        "name": "key-auth", "service": {"name": "echo-service"},
        "config": {"key_names": ["apikey"], "anonymous": ANONYMOUS_ID},
    }));
    env.admin_post("/consumers", json!({"username": "alex"}));
    env.key("alex", API_KEY);
    env.admin_post(
        "/consumers",
        json!({"username": "anonymous_users", "id": ANONYMOUS_ID}),
    );
    env.plugin(json!({
        "name": "request-termination", "service": {"name": "echo-service"},
        "consumer": {"username": "anonymous_users"},
        "config": {"status_code": 403, "message": "Forbidden"},
    }));
    env.plugin(json!({
        "name": "session", "service": {"name": "echo-service"},
        "config": {"storage": "kong", "secret": SESSION_SECRET, "cookie_secure": false},
    }));
    // A duplicate key: Kong's 409 names the key in its answer, which is
    // fine for the caller, but it must not be logged.
    let (status, _) = env.admin(
        Method::POST,
        "/consumers/alex/key-auth",
        Some(json!({"key": API_KEY})),
    );
    assert_eq!(status, 409);

    // Requests over HTTP/1.1: the key in a header and in the query, a
    // wrong key, the session cookie.
    let login = send(env.get("/anything").header("apikey", API_KEY));
    login.expect(200);
    let pair = login.cookie_pair("session").expect("a session cookie");
    send(env.get(&format!("/anything?apikey={API_KEY}"))).expect(200);
    send(env.get("/anything").header("apikey", WRONG_KEY)).expect(403);
    send(env.get("/anything").header("cookie", pair.as_str())).expect(200);
    // HTTP/2 over TLS: header compression must not log values either.
    let tls = env.gateway.tls_files().expect("TLS files");
    let h2 = alpn_client_trusting(&tls.ca_pem);
    for (name, value) in [("apikey", API_KEY), ("cookie", pair.as_str())] {
        let response = h2
            .get(env.gateway.proxy_tls_url("/anything"))
            .header(name, value)
            .send()
            .expect("an HTTP/2 answer");
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.status(), 200, "HTTP/2 with {name}");
    }
    // Logout revokes the session row (a storage write with the id).
    let logout = send(
        env.proxy(Method::POST, "/anything?session_logout=true")
            .header("cookie", pair.as_str()),
    );
    logout.expect(200);
    // The whole configuration through POST /config, which carries them all.
    let config = env.admin_get("/config");
    let kong_form = serde_json::json!({ "config": config["config"].clone() });
    let (status, _) = env.admin(Method::POST, "/config", Some(kong_form));
    assert_eq!(status, 201, "re-posting the exported configuration");

    std::thread::sleep(Duration::from_millis(200));
    let logs = env.gateway.stderr();
    assert!(
        logs.len() < 1_000_000,
        "the harness keeps 1 MiB of stderr; {} bytes may be truncated, the check would be partial",
        logs.len()
    );
    assert!(
        logs.lines().count() > 50,
        "RUST_LOG=trace should log plenty ({} lines)",
        logs.lines().count()
    );
    eprintln!(
        "{} lines ({} bytes) of trace logs checked",
        logs.lines().count(),
        logs.len()
    );
    let cookie_value = pair.split_once('=').map_or("", |(_, value)| value);
    for (what, secret) in [
        ("the API key", API_KEY),
        ("a wrong API key", WRONG_KEY),
        ("the session secret", SESSION_SECRET),
        ("the session cookie", cookie_value),
    ] {
        assert!(
            !logs.contains(secret),
            "{what} appears in the logs:\n{}",
            lines_containing(&logs, secret)
        );
    }
    // No 24-character slice of the cookie either: its session id part
    // (characters 4..47) is what names the stored row.
    for start in 0..cookie_value.len().saturating_sub(24) {
        let slice = &cookie_value[start..start + 24];
        assert!(
            !logs.contains(slice),
            "part of the session cookie ({slice}) appears in the logs:\n{}",
            lines_containing(&logs, slice)
        );
    }
}

#[test]
fn the_admin_token_never_appears_in_trace_logs() {
    let gateway = Gateway::start(GatewayOptions {
        admin_token: Some(TOKEN.to_owned()),
        extra_env: vec![("RUST_LOG".to_owned(), "trace".to_owned())],
        ..GatewayOptions::default()
    });
    let client = http_client();
    for token in [TOKEN, "wrong-token"] {
        let _ = client
            .post(gateway.admin_url("/consumers"))
            .header("Kong-Admin-Token", token)
            .json(&json!({"username": "someone"}))
            .send()
            .expect("an answer");
    }
    let logs = gateway.stderr();
    assert!(!logs.is_empty(), "RUST_LOG=trace logs something");
    assert!(
        !logs.contains(TOKEN),
        "the admin token appears in the logs:\n{}",
        lines_containing(&logs, TOKEN)
    );
}

fn lines_containing(logs: &str, needle: &str) -> String {
    logs.lines()
        .filter(|line| line.contains(needle))
        .take(5)
        .collect::<Vec<_>>()
        .join("\n")
}

// ----- TLS versions ---------------------------------------------------------------

/// A raw ClientHello offering only `version` (legacy style: no
/// `supported_versions` extension), with the ECDHE-ECDSA suites and the
/// extensions a server needs to answer it.
fn client_hello(version: [u8; 2]) -> Vec<u8> {
    let mut extensions = Vec::new();
    let mut extension = |kind: u16, body: &[u8]| {
        extensions.extend_from_slice(&kind.to_be_bytes());
        extensions.extend_from_slice(&(body.len() as u16).to_be_bytes());
        extensions.extend_from_slice(body);
    };
    extension(0x000a, &[0, 4, 0x00, 0x17, 0x00, 0x1d]); // groups: P-256, X25519
    extension(0x000b, &[1, 0]); // EC point formats: uncompressed
    extension(0x000d, &[0, 4, 0x04, 0x03, 0x08, 0x04]); // ecdsa_secp256r1_sha256, rsa_pss
    extension(0xff01, &[0]); // renegotiation_info
    let mut hello = Vec::new();
    hello.extend_from_slice(&version);
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.push(0); // session id
    let suites: &[u8] = &[0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x09, 0xc0, 0x13, 0x00, 0x2f];
    hello.extend_from_slice(&(suites.len() as u16).to_be_bytes());
    hello.extend_from_slice(suites);
    hello.extend_from_slice(&[1, 0]); // compression: null
    hello.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    hello.extend_from_slice(&extensions);
    let mut handshake = vec![0x01];
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// The first bytes the server sends back to `hello` (empty if it closed).
fn server_reply(addr: SocketAddr, hello: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("a connection");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(hello).expect("sending the hello");
    let mut reply = [0u8; 16];
    let n = stream.read(&mut reply).unwrap_or(0);
    reply[..n].to_vec()
}

fn is_server_hello(reply: &[u8]) -> bool {
    reply.len() >= 6 && reply[0] == 0x16 && reply[5] == 0x02
}

#[test]
fn the_tls_listener_refuses_tls_1_1_and_older() {
    let gateway = Gateway::start(GatewayOptions {
        tls: true,
        ..GatewayOptions::default()
    });
    let addr: SocketAddr = gateway
        .proxy_tls_url("")
        .trim_start_matches("https://")
        .parse()
        .expect("the TLS address");
    // The same hello as TLS 1.2 gets a ServerHello: the probe is sound.
    let reply = server_reply(addr, &client_hello([3, 3]));
    assert!(
        is_server_hello(&reply),
        "a TLS 1.2 hello must get a ServerHello, got {reply:02x?}"
    );
    for (name, version) in [("SSLv3", [3, 0]), ("TLS 1.0", [3, 1]), ("TLS 1.1", [3, 2])] {
        let reply = server_reply(addr, &client_hello(version));
        assert!(
            !is_server_hello(&reply),
            "{name} must be refused, got {reply:02x?}"
        );
        if let [0x15, ..] = reply.as_slice() {
            // An alert record: fine (rustls sends protocol_version).
        } else {
            assert!(
                reply.is_empty(),
                "{name}: an alert or a close, got {reply:02x?}"
            );
        }
    }
}

#[test]
fn the_tls_listener_speaks_tls_1_2_and_tls_1_3() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    let gateway = Gateway::start(GatewayOptions {
        tls: true,
        ..GatewayOptions::default()
    });
    let addr: SocketAddr = gateway
        .proxy_tls_url("")
        .trim_start_matches("https://")
        .parse()
        .expect("the TLS address");
    let tls = gateway.tls_files().expect("TLS files");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(tls.ca_pem.as_bytes()).expect("the CA"))
        .expect("a root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[version])
            .expect("the version")
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").unwrap();
        let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let socket = TcpStream::connect(addr).expect("a connection");
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut stream = rustls::StreamOwned::new(connection, socket);
        stream
            .write_all(b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap_or_else(|error| panic!("{:?}: {error}", version.version));
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 404"),
            "{:?}: an answer over TLS\n{answer}",
            version.version
        );
        assert_eq!(stream.conn.protocol_version(), Some(version.version));
    }
}
