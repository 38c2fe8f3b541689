//! A blocking client for the gateway's Admin API (Kong's, or ours with its
//! `POST /config` batch endpoint).
//!
//! Every request carries the `--header` values and is bounded by
//! `--timeout`. An answer outside 2xx becomes [`ClientError::Status`], which
//! keeps the HTTP status, Kong's `message` and the whole JSON body, and
//! prints the way decK prints it: `HTTP status 409 (message: "...")`.
//! [`GatewayArgs`] are the flags that say how to reach the Admin API.
//! Idempotent requests (GET, PUT, DELETE) are retried a few times on 5xx
//! answers, which Kong gives for transient database errors.

use std::error::Error as _;
use std::thread;
use std::time::Duration;

use clap::Args;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde_json::Value;

/// How to reach the gateway's Admin API.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// Admin API address of the gateway.
    #[arg(long, env = "GWCTL_ADDR", default_value = "http://127.0.0.1:8001")]
    pub addr: String,
    /// Extra header sent with every Admin API request, as 'Name: value'
    /// (repeatable), e.g. 'Kong-Admin-Token: secret'.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Seconds to wait for each Admin API request.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Only manage entities carrying all these tags (repeatable); also read
    /// from `_info.select_tags` in the files.
    #[arg(long = "select-tag", value_name = "TAG")]
    pub select_tags: Vec<String>,
    /// Print machine-readable JSON instead of text.
    #[arg(long)]
    pub json_output: bool,
}

/// How many times an idempotent request is retried after a 5xx answer.
const RETRIES: u32 = 3;
/// The first pause before a retry; each later one is three times longer.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// How Kong's `/config` answers when Kong runs with a database.
const KONG_DB_ONLY: &str =
    "this endpoint is only available when Kong is configured to not use a database";
/// The least time a whole-configuration request (`/config`) may take.
const MIN_CONFIG_TIMEOUT: Duration = Duration::from_secs(120);

/// What went wrong talking to the Admin API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid --addr '{addr}': {reason}")]
    InvalidAddr { addr: String, reason: String },
    #[error("invalid --header '{header}': {reason}")]
    InvalidHeader { header: String, reason: String },
    #[error("could not set up the HTTP client: {0}")]
    Setup(#[source] reqwest::Error),
    /// No answer: connection refused, timeout, TLS failure...
    #[error("{method} {url}: {detail}")]
    Transport {
        method: Method,
        url: String,
        detail: String,
    },
    /// An answer outside 2xx.
    #[error("{0}")]
    Status(Box<StatusError>),
    #[error("{method} {path}: the answer is not JSON: {detail}")]
    Decode {
        method: Method,
        path: String,
        detail: String,
    },
}

/// An answer outside 2xx, printed as decK prints it.
#[derive(Debug, thiserror::Error)]
#[error("{method} {path}: HTTP status {status} (message: {message:?})")]
pub struct StatusError {
    pub method: Method,
    pub path: String,
    pub status: u16,
    /// Kong's `message`, or the start of a non-JSON body.
    pub message: String,
    /// The whole JSON body (`Null` when it was not JSON).
    pub body: Value,
}

impl ClientError {
    /// The HTTP status of an answer outside 2xx.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status(answer) => Some(answer.status),
            _ => None,
        }
    }

    /// The JSON body of an answer outside 2xx.
    pub fn body(&self) -> Option<&Value> {
        match self {
            Self::Status(answer) => Some(&answer.body),
            _ => None,
        }
    }

    /// Whether the endpoint does not exist on this server (404 or 405), or
    /// is one a real Kong with a database refuses: its `/config` answers
    /// 400 "this endpoint is only available when Kong is configured to not
    /// use a database" (kong/api/routes/config.lua).
    pub fn is_unsupported_endpoint(&self) -> bool {
        match self {
            Self::Status(answer) => {
                matches!(answer.status, 404 | 405)
                    || (answer.status == 400 && answer.message.starts_with(KONG_DB_ONLY))
            }
            _ => false,
        }
    }
}

/// The Admin API of one gateway. Cheap to clone and safe to share between
/// threads (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct AdminClient {
    http: Client,
    base: Url,
    timeout: Duration,
}

impl AdminClient {
    /// A client for `addr` (`http://host:port`, optionally with a path
    /// prefix), sending `headers` (`Name: value`) with every request.
    pub fn new(addr: &str, headers: &[String], timeout: Duration) -> Result<Self, ClientError> {
        let base = parse_addr(addr)?;
        let default_headers = parse_headers(headers)?;
        let http = Client::builder()
            .default_headers(default_headers)
            .user_agent(concat!("gwctl/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .build()
            .map_err(ClientError::Setup)?;
        Ok(Self {
            http,
            base,
            timeout,
        })
    }

    /// The Admin API's address, as given.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `GET path?query`, the answer as JSON.
    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, ClientError> {
        self.send_idempotent(Method::GET, path, query, None)
    }

    /// `GET path?query`, the answer's text (a 2xx answer; an error as
    /// [`AdminClient::get`] reports it). For pages read without making
    /// them values first.
    pub fn get_text(&self, path: &str, query: &[(&str, &str)]) -> Result<String, ClientError> {
        self.retrying(|| {
            let request = self.request(Method::GET, path, query);
            self.send_text(Method::GET, path, request)
        })
    }

    /// The error [`AdminClient::get`] gives for a 2xx answer to `GET path`
    /// that is not JSON.
    pub fn decode_error(path: &str, detail: String) -> ClientError {
        ClientError::Decode {
            method: Method::GET,
            path: format!("/{}", path.trim_start_matches('/')),
            detail,
        }
    }

    /// `PUT path` with a JSON body (Kong's upsert), the answer as JSON.
    pub fn put(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send_idempotent(Method::PUT, path, &[], Some(body))
    }

    /// `DELETE path`. A 404 counts as done: the entity is already gone.
    pub fn delete(&self, path: &str) -> Result<(), ClientError> {
        match self.send_idempotent(Method::DELETE, path, &[], None) {
            Ok(_) => Ok(()),
            Err(error) if error.status() == Some(404) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// `GET /config?format=flat`: the whole stored configuration in the
    /// flat form `POST /config` takes from gwctl (our gateway only; a
    /// plain `GET /config` answers Kong's YAML export).
    pub fn get_config(&self) -> Result<Value, ClientError> {
        let request = self.request(Method::GET, "config", &[("format", "flat")]);
        self.send(
            Method::GET,
            "config",
            request.timeout(self.config_timeout()),
        )
    }

    /// `POST /config`: replace the whole configuration in one transaction
    /// (our gateway only). Never retried: the caller decides.
    pub fn post_config(&self, body: String) -> Result<Value, ClientError> {
        let request = self
            .request(Method::POST, "config", &[])
            .timeout(self.config_timeout())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        self.send(Method::POST, "config", request)
    }

    /// A whole configuration may take longer than one entity.
    fn config_timeout(&self) -> Duration {
        self.timeout.max(MIN_CONFIG_TIMEOUT)
    }

    fn send_idempotent(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        self.retrying(|| {
            let mut request = self.request(method.clone(), path, query);
            if let Some(body) = body {
                request = with_json(request, body);
            }
            self.send(method.clone(), path, request)
        })
    }

    /// `attempt_once` again, with backoff, while it fails with a transient
    /// status (the call must be idempotent).
    fn retrying<T>(
        &self,
        attempt_once: impl Fn() -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            match attempt_once() {
                Err(error) if is_transient(&error) && attempt < RETRIES => {
                    attempt += 1;
                    thread::sleep(backoff);
                    backoff *= 3;
                }
                result => return result,
            }
        }
    }

    fn request(&self, method: Method, path: &str, query: &[(&str, &str)]) -> RequestBuilder {
        self.http.request(method, self.url(path, query))
    }

    /// The base address with `path` appended and `query` encoded.
    fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        let joined = format!(
            "{}/{}",
            self.base.path().trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        url.set_path(&joined);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    fn send(
        &self,
        method: Method,
        path: &str,
        request: RequestBuilder,
    ) -> Result<Value, ClientError> {
        let text = self.send_text(method.clone(), path, request)?;
        parse_body(&text).map_err(|detail| ClientError::Decode {
            method,
            path: format!("/{}", path.trim_start_matches('/')),
            detail,
        })
    }

    /// The text of a 2xx answer, or the error the answer makes.
    fn send_text(
        &self,
        method: Method,
        path: &str,
        request: RequestBuilder,
    ) -> Result<String, ClientError> {
        let response = request.send().map_err(|error| ClientError::Transport {
            method: method.clone(),
            url: error
                .url()
                .map_or_else(|| path.to_owned(), ToString::to_string),
            detail: error_chain(&error.without_url()),
        })?;
        let status = response.status();
        let text = response.text().map_err(|error| ClientError::Transport {
            method: method.clone(),
            url: path.to_owned(),
            detail: error_chain(&error),
        })?;
        let path = format!("/{}", path.trim_start_matches('/'));
        if status.is_success() {
            return Ok(text);
        }
        let body = parse_body(&text).unwrap_or(Value::Null);
        Err(ClientError::Status(Box::new(StatusError {
            method,
            path,
            status: status.as_u16(),
            message: error_message(&body, &text, status.canonical_reason()),
            body,
        })))
    }
}

fn with_json(request: RequestBuilder, body: &Value) -> RequestBuilder {
    // Serializing a `Value` cannot fail (its keys are strings).
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    request.header(CONTENT_TYPE, "application/json").body(bytes)
}

fn is_transient(error: &ClientError) -> bool {
    matches!(error.status(), Some(500 | 502 | 503 | 504))
}

fn parse_body(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|error| error.to_string())
}

/// Kong's `message`, else the start of the body, else the status reason.
fn error_message(body: &Value, text: &str, reason: Option<&str>) -> String {
    if let Some(message) = body.get("message").and_then(Value::as_str) {
        return message.to_owned();
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return reason.unwrap_or("no message").to_owned();
    }
    words.join(" ").chars().take(200).collect()
}

/// A reqwest error with its causes ("error sending request: connection
/// refused").
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn parse_addr(addr: &str) -> Result<Url, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidAddr {
        addr: addr.to_owned(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(addr).map_err(|error| invalid(&error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("expected an http:// or https:// address"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("an address may not have a query or a fragment"));
    }
    Ok(url)
}

fn parse_headers(headers: &[String]) -> Result<HeaderMap, ClientError> {
    let mut map = HeaderMap::new();
    for header in headers {
        let invalid = |reason: &str| ClientError::InvalidHeader {
            header: header.clone(),
            reason: reason.to_owned(),
        };
        let Some((name, value)) = header.split_once(':') else {
            return Err(invalid("expected 'Name: value'"));
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| invalid("not a valid header name"))?;
        let mut value =
            HeaderValue::from_str(value.trim()).map_err(|_| invalid("not a valid header value"))?;
        value.set_sensitive(true);
        map.append(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(addr: &str) -> AdminClient {
        AdminClient::new(addr, &[], Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn urls_keep_the_address_prefix_and_encode_the_query() {
        let plain = client("http://127.0.0.1:8001");
        assert_eq!(
            plain
                .url("services", &[("size", "1000"), ("offset", "a+b/c=")])
                .as_str(),
            "http://127.0.0.1:8001/services?size=1000&offset=a%2Bb%2Fc%3D"
        );
        let prefixed = client("https://admin.example/kong/");
        assert_eq!(
            prefixed.url("/consumers/x/key-auth/y", &[]).as_str(),
            "https://admin.example/kong/consumers/x/key-auth/y"
        );
    }

    #[test]
    fn bad_addresses_and_headers_are_refused() {
        let headers = |list: &[&str]| {
            let owned: Vec<String> = list.iter().map(|h| (*h).to_owned()).collect();
            AdminClient::new("http://localhost:8001", &owned, Duration::from_secs(1))
        };
        assert!(matches!(
            AdminClient::new("localhost:8001", &[], Duration::from_secs(1)),
            Err(ClientError::InvalidAddr { .. })
        ));
        assert!(matches!(
            AdminClient::new("ftp://localhost", &[], Duration::from_secs(1)),
            Err(ClientError::InvalidAddr { .. })
        ));
        assert!(matches!(
            headers(&["no-colon"]),
            Err(ClientError::InvalidHeader { .. })
        ));
        assert!(headers(&["Kong-Admin-Token: s3cret", "X-A:b"]).is_ok());
    }

    #[test]
    fn status_errors_read_like_decks() {
        let error = ClientError::Status(Box::new(StatusError {
            method: Method::PUT,
            path: "/services/1".to_owned(),
            status: 409,
            message: "UNIQUE violation detected on '{name=\"svc1\"}'".to_owned(),
            body: Value::Null,
        }));
        assert_eq!(
            error.to_string(),
            r#"PUT /services/1: HTTP status 409 (message: "UNIQUE violation detected on '{name=\"svc1\"}'")"#
        );
        assert!(!error.is_unsupported_endpoint());
    }

    #[test]
    fn kongs_config_endpoint_with_a_database_is_unsupported() {
        let answer = |status: u16, message: &str| {
            ClientError::Status(Box::new(StatusError {
                method: Method::POST,
                path: "/config".to_owned(),
                status,
                message: message.to_owned(),
                body: Value::Null,
            }))
        };
        assert!(answer(400, KONG_DB_ONLY).is_unsupported_endpoint());
        assert!(answer(404, "Not found").is_unsupported_endpoint());
        assert!(answer(405, "Method not allowed").is_unsupported_endpoint());
        assert!(!answer(
            400,
            "schema violation (services.1.host: required field missing)"
        )
        .is_unsupported_endpoint());
    }

    #[test]
    fn messages_come_from_the_body_or_the_reason() {
        let body = serde_json::json!({"message": "Not found"});
        assert_eq!(error_message(&body, "", None), "Not found");
        assert_eq!(
            error_message(&Value::Null, "", Some("Not Found")),
            "Not Found"
        );
        assert_eq!(
            error_message(&Value::Null, " <html>\n  <p>x</p> ", None),
            "<html> <p>x</p>"
        );
    }

    #[test]
    fn an_unreachable_gateway_is_a_transport_error() {
        let unreachable = client("http://127.0.0.1:9");
        let error = unreachable.get("services", &[]).unwrap_err();
        assert!(matches!(error, ClientError::Transport { .. }), "{error}");
    }
}
