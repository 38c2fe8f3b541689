//! Sending a request to the service and getting its response head.
//!
//! One pooled keep-alive client (hyper-util's legacy `Client` over the
//! [`crate::tls`] connector, HTTP/1.1) exists per thread and distinct
//! connect timeout: the connect timeout lives in the connector (most
//! configurations share one), and each proxy worker thread keeps its own
//! connections, whose tasks then run next to the requests that use them
//! (see `listener.rs`). The response head must arrive within `read_timeout` once the
//! request body is sent; the response body then fails if the upstream stays
//! silent for `read_timeout`. `write_timeout` is not enforced separately.
//!
//! Retries, up to `service.retries` in all, as nginx's default
//! `proxy_next_upstream error` does:
//! - a connect failure, for any method (nothing was sent);
//! - a connection closed or reset before the response head arrived (a
//!   pooled keep-alive connection the upstream closed as the request
//!   arrived), for idempotent methods only. hyper drops that connection,
//!   so the next attempt takes another pooled one or a fresh one. hyper
//!   does not say whether part of a head had arrived; nothing of the
//!   response has reached the client either way.
//!
//! Another attempt needs the body again: the body itself if the failed
//! attempt never touched it, else the copy a [`RequestBody`] keeps of an
//! empty body or of one a plugin buffered; a streamed body that was read is
//! not retried.
//!
//! A failure of the client's own request body ([`RequestBodyError`], e.g. a
//! broken chunked encoding) is reported as [`UpstreamError::RequestBody`],
//! a 400, and never retried.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::io;
use std::thread::ThreadId;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Body as _;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use schemas::model::Service;

use super::body::{self, IdleTimeout, ProxyBody, Reclaimable, RequestBodyError};
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
    /// The client's request body failed while it was being sent (a broken
    /// chunked encoding, a client gone): the client's fault.
    #[error("the client's request body failed: {0}")]
    RequestBody(#[source] hyper_util::client::legacy::Error),
}

impl UpstreamError {
    /// Whether the client should get a 504.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            UpstreamError::ConnectTimeout(_) | UpstreamError::ReadTimeout(_)
        )
    }

    /// The status the client gets: 400 for its own broken body, 504 for
    /// timeouts, else 502.
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::RequestBody(_) => StatusCode::BAD_REQUEST,
            _ if self.is_timeout() => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// The request body sent upstream, and a copy of it for another attempt
/// when the body is empty or already in memory.
pub struct RequestBody {
    /// The body of the first attempt.
    body: ProxyBody,
    /// The whole body, to send again after an attempt that read `body`:
    /// set for an empty body and for one the gateway holds in memory.
    replay: Option<Bytes>,
}

impl RequestBody {
    /// `body` to send; `buffered` is the same body when the gateway holds
    /// it in memory (a plugin buffered it), which makes it replayable.
    pub fn new(body: ProxyBody, buffered: Option<Bytes>) -> Self {
        let replay = buffered.or_else(|| body.is_end_stream().then(Bytes::new));
        RequestBody { body, replay }
    }
}

/// A body sending `bytes` (again).
fn replayed(bytes: &Bytes) -> ProxyBody {
    if bytes.is_empty() {
        body::empty()
    } else {
        body::full(bytes.clone())
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

/// Which client a request uses: its thread's (a pooled connection is
/// driven by a task on the runtime that opened it, so it stays with that
/// thread's requests) for its connect timeout in milliseconds.
type ClientKey = (ThreadId, u64);

/// The pooled upstream clients, by thread and connect timeout.
pub struct UpstreamClients {
    clients: ArcSwap<HashMap<ClientKey, UpstreamClient>>,
    settings: PoolSettings,
}

impl UpstreamClients {
    /// No client yet; they are created on first use.
    pub fn new(settings: PoolSettings) -> Self {
        UpstreamClients {
            clients: ArcSwap::from_pointee(HashMap::new()),
            settings,
        }
    }

    /// The current thread's client for a connect timeout, created once.
    fn client(&self, connect_timeout_ms: u64) -> UpstreamClient {
        let key = (std::thread::current().id(), connect_timeout_ms);
        if let Some(client) = self.clients.load().get(&key) {
            return client.clone();
        }
        let created = self.build(connect_timeout_ms);
        self.clients.rcu(|clients| {
            let mut clients = HashMap::clone(clients);
            clients.entry(key).or_insert_with(|| created.clone());
            clients
        });
        self.clients.load().get(&key).cloned().unwrap_or(created)
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
    /// body streams under the read timeout. Failed attempts are retried as
    /// the module doc says.
    pub async fn send(
        &self,
        service: &Service,
        method: &Method,
        path_and_query: &str,
        headers: &(dyn Fn() -> HeaderMap + Sync),
        body: RequestBody,
    ) -> Result<Response<ProxyBody>, UpstreamError> {
        let uri = upstream_uri(service, path_and_query)?;
        let client = self.client(service.connect_timeout);
        let read_timeout = Duration::from_millis(service.read_timeout);
        let RequestBody { mut body, replay } = body;
        let mut attempt = 0;
        loop {
            let (upstream_body, reclaim) = Reclaimable::new(body);
            let request = build_request(method, &uri, headers(), upstream_body);
            let error = match send_once(&client, request, read_timeout).await {
                Ok(response) => return Ok(with_idle_timeout(response, read_timeout)),
                Err(SendError::Timeout) => return Err(UpstreamError::ReadTimeout(read_timeout)),
                Err(SendError::Client(error)) => error,
            };
            let (error, retryable) = classify(error, method);
            let again = if retryable && attempt < service.retries {
                reclaim.reclaim().or_else(|| replay.as_ref().map(replayed))
            } else {
                None
            };
            let Some(again) = again else {
                return Err(error);
            };
            attempt += 1;
            tracing::debug!(service = %service.id, attempt, %error, "retrying the upstream request");
            body = again;
        }
    }
}

/// The error of a failed attempt, and whether another attempt may succeed:
/// after a connect failure (nothing was sent), or, for an idempotent
/// method, after the connection closed before the response head arrived.
fn classify(error: hyper_util::client::legacy::Error, method: &Method) -> (UpstreamError, bool) {
    if causes(&error).any(|cause| cause.is::<RequestBodyError>()) {
        return (UpstreamError::RequestBody(error), false);
    }
    if error.is_connect() {
        return (connect_error(error), true);
    }
    let retryable = method.is_idempotent() && closed_before_response(&error);
    (UpstreamError::Exchange(error), retryable)
}

/// Whether the upstream connection ended (closed, reset, or gone before the
/// request could be written) without a complete response head.
fn closed_before_response(error: &hyper_util::client::legacy::Error) -> bool {
    causes(error).any(|cause| {
        if let Some(hyper_error) = cause.downcast_ref::<hyper::Error>() {
            return hyper_error.is_incomplete_message() || hyper_error.is_canceled();
        }
        cause.downcast_ref::<io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
            )
        })
    })
}

/// The causes of `error`, outermost first (not `error` itself).
fn causes<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(error.source(), |&cause| cause.source())
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
    let timed_out = causes(&error).any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
    });
    if timed_out {
        UpstreamError::ConnectTimeout(error)
    } else {
        UpstreamError::Connect(error)
    }
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
                RequestBody::new(body::full("payload"), None),
            )
            .await
            .expect_err("nothing listens");
        assert!(matches!(error, UpstreamError::Connect(_)), "{error}");
        assert!(!error.is_timeout());
    }

    /// An upstream on 127.0.0.1 that closes each of its first `unanswered`
    /// connections once a request head has arrived, unanswered, and answers
    /// `200 ok` on the later ones. Returns its port and its connection count.
    async fn closing_upstream(unanswered: usize) -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let index = counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    read_head(&mut stream).await;
                    if index >= unanswered {
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        let _ = stream.write_all(answer).await;
                    }
                });
            }
        });
        (port, connections)
    }

    /// Reads until the end of a request head; false if the stream ended
    /// first.
    async fn read_head(stream: &mut tokio::net::TcpStream) -> bool {
        let mut head = Vec::new();
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|window| window == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(read) => head.extend_from_slice(&chunk[..read]),
            }
        }
        true
    }

    async fn send(
        service: &Service,
        method: Method,
        body: RequestBody,
    ) -> Result<Response<ProxyBody>, UpstreamError> {
        let clients = UpstreamClients::new(PoolSettings::default());
        clients
            .send(service, &method, "/", &HeaderMap::new, body)
            .await
    }

    fn empty_body() -> RequestBody {
        RequestBody::new(body::empty(), None)
    }

    /// An upstream on 127.0.0.1 answering `200 ok` with keep-alive to
    /// every request, closing each connection after `per_connection`
    /// answers. Returns its port and its connection count.
    async fn keep_alive_upstream(per_connection: usize) -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    for _ in 0..per_connection {
                        if !read_head(&mut stream).await {
                            return;
                        }
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        let _ = stream.write_all(answer).await;
                    }
                });
            }
        });
        (port, connections)
    }

    /// Reads a response body as hyper's server does: frames until the body
    /// says it has ended, then drops it.
    async fn read_like_hyper(response: Response<ProxyBody>) -> Bytes {
        let mut body = response.into_body();
        let mut read = Vec::new();
        while !body.is_end_stream() {
            match body.frame().await {
                Some(frame) => read.extend_from_slice(&frame.unwrap().into_data().unwrap()),
                None => break,
            }
        }
        Bytes::from(read)
    }

    #[tokio::test]
    async fn connections_are_reused_once_the_body_was_read() {
        let (port, connections) = keep_alive_upstream(usize::MAX).await;
        let service = service("http", "127.0.0.1", port);
        let clients = UpstreamClients::new(PoolSettings::default());
        for _ in 0..3 {
            let response = clients
                .send(&service, &Method::GET, "/", &HeaderMap::new, empty_body())
                .await
                .unwrap();
            assert_eq!(read_like_hyper(response).await, "ok");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_pooled_connection_the_upstream_closed_is_not_used() {
        let (port, connections) = keep_alive_upstream(1).await;
        let mut service = service("http", "127.0.0.1", port);
        service.retries = 0;
        let clients = UpstreamClients::new(PoolSettings::default());
        for _ in 0..2 {
            // Not idempotent and no retries: only a fresh connection works.
            let response = clients
                .send(&service, &Method::POST, "/", &HeaderMap::new, empty_body())
                .await
                .expect("a connection that is still open");
            assert_eq!(read_like_hyper(response).await, "ok");
            // Gives the upstream time to close the answered connection.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_get_on_a_connection_closed_before_any_answer_is_retried() {
        let (port, connections) = closing_upstream(1).await;
        let response = send(
            &service("http", "127.0.0.1", port),
            Method::GET,
            empty_body(),
        )
        .await
        .expect("the retry is answered");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_buffered_body_is_replayed_on_the_retry() {
        let (port, connections) = closing_upstream(1).await;
        let payload = Bytes::from_static(b"payload");
        let body = RequestBody::new(body::full(payload.clone()), Some(payload));
        let response = send(&service("http", "127.0.0.1", port), Method::PUT, body)
            .await
            .expect("the retry is answered");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn retries_stop_at_the_services_retries() {
        let (port, connections) = closing_upstream(usize::MAX).await;
        let mut no_retries = service("http", "127.0.0.1", port);
        no_retries.retries = 0;
        let error = send(&no_retries, Method::GET, empty_body())
            .await
            .expect_err("never answered");
        assert!(matches!(error, UpstreamError::Exchange(_)), "{error}");
        assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(connections.load(Ordering::SeqCst), 1);

        let error = send(
            &service("http", "127.0.0.1", port),
            Method::GET,
            empty_body(),
        )
        .await
        .expect_err("never answered");
        assert!(matches!(error, UpstreamError::Exchange(_)), "{error}");
        assert_eq!(
            connections.load(Ordering::SeqCst),
            1 + 3,
            "a first try and 2 retries"
        );
    }

    #[tokio::test]
    async fn non_idempotent_requests_are_not_retried_once_sent() {
        let (port, connections) = closing_upstream(1).await;
        let error = send(
            &service("http", "127.0.0.1", port),
            Method::POST,
            empty_body(),
        )
        .await
        .expect_err("the POST is not sent again");
        assert!(matches!(error, UpstreamError::Exchange(_)), "{error}");
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_broken_client_body_is_the_clients_fault() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            // Holds the connection: only the client's body can fail.
            let (stream, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(stream);
        });
        let body = RequestBody::new(BreaksAfterOneChunk(false).boxed_unsync(), None);
        let error = send(&service("http", "127.0.0.1", port), Method::POST, body)
            .await
            .expect_err("the body breaks");
        assert!(matches!(error, UpstreamError::RequestBody(_)), "{error}");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    }

    /// A client body that sends one chunk and then fails, like a chunked
    /// body with an invalid chunk size.
    struct BreaksAfterOneChunk(bool);

    impl hyper::body::Body for BreaksAfterOneChunk {
        type Data = Bytes;
        type Error = body::BoxError;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, body::BoxError>>> {
            let sent = std::mem::replace(&mut self.0, true);
            std::task::Poll::Ready(Some(match sent {
                false => Ok(hyper::body::Frame::data(Bytes::from_static(b"hello"))),
                true => Err("invalid chunk size".into()),
            }))
        }
    }
}
