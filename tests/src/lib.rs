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

mod binaries;
mod http;
pub mod postgres;
mod process;
pub mod raw;
mod run;
mod servers;

pub use binaries::*;
pub use http::*;
pub use process::*;
pub use run::*;
pub use servers::*;

use std::time::Duration;

/// How long a server may take to print its `listening on` lines.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a one-shot command may run before the test gives up on it.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The most stderr kept per server, so a chatty one cannot fill memory.
const STDERR_LIMIT: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::thread;

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
