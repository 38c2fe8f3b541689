//! HTTP clients, [`send`] and the [`Answer`] it returns.

use std::fmt;

use crate::*;

/// HTTP/1.1 only: reqwest is built with `http2` (for [`alpn_client_trusting`]),
/// and the usual clients must not switch to HTTP/2 by ALPN behind the
/// tests' backs.
pub(crate) fn client_builder() -> reqwest::blocking::ClientBuilder {
    base_client_builder().http1_only()
}

pub(crate) fn base_client_builder() -> reqwest::blocking::ClientBuilder {
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
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
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
