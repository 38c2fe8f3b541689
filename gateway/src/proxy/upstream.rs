//! Sending a request to the service and getting its response head.
//!
//! One pooled keep-alive client (hyper-util's legacy `Client` over the
//! [`crate::tls`] connector, HTTP/1.1) exists per distinct connect timeout,
//! since the connect timeout lives in the connector; most configurations
//! share one. A connect failure is retried up to `service.retries` times
//! with the same body (which the connection never touched). The response
//! head must arrive within `read_timeout` once the request body is sent;
//! the response body then fails if the upstream stays silent for
//! `read_timeout`. `write_timeout` is not enforced separately.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use schemas::model::Service;

use super::body::{self, IdleTimeout, ProxyBody, Reclaimable};
use crate::tls::{self, UpstreamConnector, UpstreamOptions};

/// Why the upstream did not answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream URI could not be built from the service and path.
    #[error("invalid upstream uri {0:?}")]
    InvalidUri(String),
    /// Connecting failed (after retries).
    #[error("cannot connect to the upstream: {0}")]
    Connect(#[source] hyper_util::client::legacy::Error),
    /// Connecting timed out (after retries).
    #[error("connecting to the upstream timed out: {0}")]
    ConnectTimeout(#[source] hyper_util::client::legacy::Error),
    /// The response head did not arrive within the read timeout.
    #[error("the upstream did not answer within {0:?}")]
    ReadTimeout(Duration),
    /// The upstream broke the exchange or sent an invalid response.
    #[error("invalid upstream response: {0}")]
    Exchange(#[source] hyper_util::client::legacy::Error),
}

impl UpstreamError {
    /// Whether the client should get a 504 (else a 502).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            UpstreamError::ConnectTimeout(_) | UpstreamError::ReadTimeout(_)
        )
    }
}

/// Pool settings of the upstream clients.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// How long an idle keep-alive connection stays in the pool.
    pub idle_timeout: Duration,
    /// The most idle connections kept per upstream host.
    pub max_idle_per_host: usize,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            idle_timeout: Duration::from_secs(60),
            max_idle_per_host: 1024,
        }
    }
}

type UpstreamClient = Client<UpstreamConnector, Reclaimable>;

/// The pooled upstream clients, by connect timeout in milliseconds.
pub struct UpstreamClients {
    by_connect_timeout: ArcSwap<HashMap<u64, UpstreamClient>>,
    settings: PoolSettings,
}

impl UpstreamClients {
    /// No client yet; they are created on first use.
    pub fn new(settings: PoolSettings) -> Self {
        UpstreamClients {
            by_connect_timeout: ArcSwap::from_pointee(HashMap::new()),
            settings,
        }
    }

    /// The client for a connect timeout, created once.
    fn client(&self, connect_timeout_ms: u64) -> UpstreamClient {
        if let Some(client) = self.by_connect_timeout.load().get(&connect_timeout_ms) {
            return client.clone();
        }
        let created = self.build(connect_timeout_ms);
        self.by_connect_timeout.rcu(|clients| {
            let mut clients = HashMap::clone(clients);
            clients
                .entry(connect_timeout_ms)
                .or_insert_with(|| created.clone());
            clients
        });
        self.by_connect_timeout
            .load()
            .get(&connect_timeout_ms)
            .cloned()
            .unwrap_or(created)
    }

    fn build(&self, connect_timeout_ms: u64) -> UpstreamClient {
        let options = UpstreamOptions {
            connect_timeout: Some(Duration::from_millis(connect_timeout_ms)),
            http2: false,
        };
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(self.settings.idle_timeout)
            .pool_max_idle_per_host(self.settings.max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .set_host(false)
            .build(tls::upstream_connector(&options))
    }

    /// Sends `method path_and_query` with the headers `headers` makes (once
    /// per attempt) and `body` to `service` and returns its response, whose
    /// body streams under the read timeout.
    pub async fn send(
        &self,
        service: &Service,
        method: &Method,
        path_and_query: &str,
        headers: &(dyn Fn() -> HeaderMap + Sync),
        body: ProxyBody,
    ) -> Result<Response<ProxyBody>, UpstreamError> {
        let uri = upstream_uri(service, path_and_query)?;
        let client = self.client(service.connect_timeout);
        let read_timeout = Duration::from_millis(service.read_timeout);
        let mut body = body;
        let mut attempt = 0;
        loop {
            let (upstream_body, reclaim) = Reclaimable::new(body);
            let request = build_request(method, &uri, headers(), upstream_body);
            match send_once(&client, request, read_timeout).await {
                Ok(response) => return Ok(with_idle_timeout(response, read_timeout)),
                Err(SendError::Client(error)) if error.is_connect() => {
                    let reclaimed = reclaim.reclaim();
                    match reclaimed {
                        Some(again) if attempt < service.retries => {
                            attempt += 1;
                            tracing::debug!(service = %service.id, attempt, %error, "retrying upstream connect");
                            body = again;
                        }
                        _ => return Err(connect_error(error)),
                    }
                }
                Err(SendError::Client(error)) => return Err(UpstreamError::Exchange(error)),
                Err(SendError::Timeout) => return Err(UpstreamError::ReadTimeout(read_timeout)),
            }
        }
    }
}

enum SendError {
    Client(hyper_util::client::legacy::Error),
    Timeout,
}

/// One attempt: the response head, or an error. The read timeout starts
/// once the request body has been sent.
async fn send_once(
    client: &UpstreamClient,
    request: Request<Reclaimable>,
    read_timeout: Duration,
) -> Result<Response<hyper::body::Incoming>, SendError> {
    let body_sent = request.body().sent();
    let body_is_empty = hyper::body::Body::is_end_stream(request.body());
    let deadline = async move {
        if !body_is_empty {
            body_sent.notified().await;
        }
        tokio::time::sleep(read_timeout).await;
    };
    tokio::select! {
        result = client.request(request) => result.map_err(SendError::Client),
        () = deadline => Err(SendError::Timeout),
    }
}

fn build_request(
    method: &Method,
    uri: &Uri,
    headers: HeaderMap,
    body: Reclaimable,
) -> Request<Reclaimable> {
    let mut request = Request::new(body);
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri.clone();
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    request
}

fn with_idle_timeout(
    response: Response<hyper::body::Incoming>,
    read_timeout: Duration,
) -> Response<ProxyBody> {
    response.map(|incoming| IdleTimeout::new(body::boxed(incoming), read_timeout).into_body())
}

/// A connect error, classified as a timeout when an I/O timeout caused it.
fn connect_error(error: hyper_util::client::legacy::Error) -> UpstreamError {
    let mut source: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(cause) = source {
        if cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
        {
            return UpstreamError::ConnectTimeout(error);
        }
        source = cause.source();
    }
    UpstreamError::Connect(error)
}

/// `scheme://host:port` + `path_and_query` for `service`.
pub fn upstream_uri(service: &Service, path_and_query: &str) -> Result<Uri, UpstreamError> {
    let scheme = match service.protocol.as_str() {
        "https" | "grpcs" => "https",
        _ => "http",
    };
    let host = super::headers::bracketed(&service.host);
    let text = format!("{scheme}://{host}:{}{path_and_query}", service.port);
    Uri::try_from(text.as_str()).map_err(|_| UpstreamError::InvalidUri(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(protocol: &str, host: &str, port: u16) -> Service {
        serde_json::from_value(serde_json::json!({
            "id": uuid::Uuid::new_v4(), "name": null, "protocol": protocol, "host": host,
            "port": port, "path": null, "retries": 2, "connect_timeout": 200,
            "write_timeout": 1000, "read_timeout": 1000, "enabled": true, "tls_verify": null,
            "tls_verify_depth": null, "tags": null, "created_at": null, "updated_at": null
        }))
        .unwrap()
    }

    #[test]
    fn uris() {
        let uri = upstream_uri(&service("https", "::1", 8443), "/a?b=1").unwrap();
        assert_eq!(uri.to_string(), "https://[::1]:8443/a?b=1");
        let uri = upstream_uri(&service("http", "example.com", 80), "/x?").unwrap();
        assert_eq!(uri.path_and_query().unwrap().as_str(), "/x?");
    }

    #[tokio::test]
    async fn refused_connections_are_retried_then_502() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let clients = UpstreamClients::new(PoolSettings::default());
        let error = clients
            .send(
                &service("http", "127.0.0.1", port),
                &Method::POST,
                "/",
                &HeaderMap::new,
                body::full("payload"),
            )
            .await
            .expect_err("nothing listens");
        assert!(matches!(error, UpstreamError::Connect(_)), "{error}");
        assert!(!error.is_timeout());
    }
}
