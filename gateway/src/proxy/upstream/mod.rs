//! Sending a request to the service and getting its response head, over
//! our own HTTP/1.1 client.
//!
//! The exchange runs in the request's own task: take a pooled connection
//! (or open one, see `connect.rs`), write the request head and body, read
//! the response head (`exchange.rs`), and hand the client a body that reads
//! the rest off the connection and returns the connection to the pool at
//! its end (`response_body.rs`). No connection task, channel or lock sits
//! between the request and its socket; idle connections are kept per
//! proxy worker thread (`pool.rs`). Upstreams are spoken to in HTTP/1.1,
//! as Kong does; `https` services over TLS without certificate
//! verification (Kong's default when `tls_verify` is unset).
//!
//! Timeouts: `connect_timeout` bounds resolving, connecting and the TLS
//! handshake; the response head must arrive within `read_timeout` once the
//! request body is sent; the response body then fails if the upstream stays
//! silent for `read_timeout`; a write of the request that stays blocked for
//! `write_timeout` fails the exchange (504, as Kong's `proxy_send_timeout`).
//! A connection whose exchange failed in any way is closed, never pooled.
//!
//! A WebSocket handshake (a request whose headers carry `Upgrade`, which
//! only `tunnel::prepare_upstream` sets) answered with `101` leaves its
//! connection in the response's extensions for the tunnel
//! (`proxy/tunnel.rs`), never in the pool; any other answer to it is an
//! ordinary response.
//!
//! Retries, up to `service.retries` in all, as nginx's default
//! `proxy_next_upstream error` does:
//! - a connect failure, for any method (nothing was sent);
//! - a connection closed or reset before the response head arrived (a
//!   pooled keep-alive connection the upstream closed as the request
//!   arrived), for idempotent methods only. The next attempt takes another
//!   pooled connection or a fresh one; nothing of the response has reached
//!   the client.
//!
//! Another attempt needs the body again: the body itself if the failed
//! attempt never read it, else the copy a [`RequestBody`] keeps of an empty
//! body or of one a plugin buffered; a streamed body that was read is not
//! retried.
//!
//! A failure of the client's own request body (e.g. a broken chunked
//! encoding) is reported as [`UpstreamError::RequestBody`], a 400, and
//! never retried.

mod connect;
mod connection;
mod exchange;
mod pool;
mod response_body;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Body as _;
use schemas::model::Service;
use tokio_rustls::TlsConnector;

use crate::pdk::body::{self, BoxError, IdleTimeout, ProxyBody};
use crate::proxy::tunnel;
use connect::{ConnectError, Target};
use connection::Connection;
use exchange::{ExchangeError, Framing, Outgoing, SendFailure};
use pool::Pool;
use response_body::UpstreamBody;

/// Why the upstream did not answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Connecting failed (after retries).
    #[error("cannot connect to the upstream: {0}")]
    Connect(#[source] std::io::Error),
    /// Connecting timed out (after retries).
    #[error("connecting to the upstream timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// The response head did not arrive within the read timeout.
    #[error("the upstream did not answer within {0:?}")]
    ReadTimeout(Duration),
    /// The upstream broke the exchange or sent an invalid response.
    #[error("invalid upstream response: {0}")]
    Exchange(#[source] ExchangeError),
    /// The client's request body failed while it was being sent (a broken
    /// chunked encoding, a client gone): the client's fault.
    #[error("the client's request body failed: {0}")]
    RequestBody(#[source] BoxError),
}

impl UpstreamError {
    /// Whether the client should get a 504.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            UpstreamError::ConnectTimeout(_)
                | UpstreamError::ReadTimeout(_)
                | UpstreamError::Exchange(ExchangeError::WriteTimeout(_))
        )
    }

    /// The status the client gets: 408 for its own body stalling past the
    /// client body timeout, 400 for it otherwise broken, 504 for timeouts,
    /// else 502.
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::RequestBody(error) if body::is_client_body_timeout(error.as_ref()) => {
                StatusCode::REQUEST_TIMEOUT
            }
            UpstreamError::RequestBody(_) => StatusCode::BAD_REQUEST,
            _ if self.is_timeout() => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// Whether another attempt may succeed: after a connect failure
    /// (nothing was sent), or, for an idempotent method, after the
    /// connection closed before the response head arrived.
    fn retryable(&self, method: &Method) -> bool {
        match self {
            UpstreamError::Connect(_) | UpstreamError::ConnectTimeout(_) => true,
            UpstreamError::Exchange(error) => {
                method.is_idempotent() && error.closed_before_response()
            }
            _ => false,
        }
    }
}

impl From<ConnectError> for UpstreamError {
    fn from(error: ConnectError) -> Self {
        match error {
            ConnectError::Io(error) => UpstreamError::Connect(error),
            ConnectError::Timeout(after) => UpstreamError::ConnectTimeout(after),
        }
    }
}

impl From<SendFailure> for UpstreamError {
    fn from(failure: SendFailure) -> Self {
        match failure {
            SendFailure::Exchange(error) => UpstreamError::Exchange(error),
            SendFailure::RequestBody(error) => UpstreamError::RequestBody(error),
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

/// Pool settings of the upstream connections.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// How long an idle keep-alive connection stays in the pool.
    pub idle_timeout: Duration,
    /// The most idle connections kept per upstream host (per worker
    /// thread).
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

/// The proxy's upstream client: its connection pool and TLS settings.
pub struct UpstreamClients {
    pool: Pool,
    tls: TlsConnector,
}

impl UpstreamClients {
    /// No connection yet; they are opened on first use.
    pub fn new(settings: PoolSettings) -> Self {
        UpstreamClients {
            pool: Pool::new(settings.idle_timeout, settings.max_idle_per_host),
            tls: connect::tls_connector(),
        }
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
        let target = target(service);
        let RequestBody { body, replay } = body;
        let mut body = Some(body);
        let mut attempt = 0;
        loop {
            let mut request = Outgoing {
                method,
                path_and_query,
                headers: headers(),
                write_timeout: Duration::from_millis(service.write_timeout),
            };
            let error = match self.attempt(service, target, &mut request, &mut body).await {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            if !error.retryable(method) || attempt >= service.retries {
                return Err(error);
            }
            if body.is_none() {
                body = replay.as_ref().map(replayed);
            }
            if body.is_none() {
                return Err(error);
            }
            attempt += 1;
            tracing::debug!(service = %service.id, attempt, %error, "retrying the upstream request");
        }
    }

    /// One attempt on a pooled or new connection.
    async fn attempt(
        &self,
        service: &Service,
        target: Target<'_>,
        request: &mut Outgoing<'_>,
        body: &mut Option<ProxyBody>,
    ) -> Result<Response<ProxyBody>, UpstreamError> {
        let mut connection = match self.pool.take(target) {
            Some(connection) => connection,
            None => {
                let connect_timeout = Duration::from_millis(service.connect_timeout);
                let home = self.pool.home(target);
                Connection::open(target, connect_timeout, &self.tls, home).await?
            }
        };
        let upgrade = request.headers.contains_key(http::header::UPGRADE);
        exchange::write_request(&mut connection, request, body).await?;
        let read_timeout = Duration::from_millis(service.read_timeout);
        let head = tokio::time::timeout(
            read_timeout,
            exchange::read_head(&mut connection, request.method, upgrade),
        )
        .await
        .map_err(|_| UpstreamError::ReadTimeout(read_timeout))?
        .map_err(UpstreamError::Exchange)?;
        if head.framing == Framing::Switched {
            return Ok(switched(head, connection, service));
        }
        Ok(with_body(head, connection, read_timeout))
    }
}

/// Where `service`'s requests go.
fn target(service: &Service) -> Target<'_> {
    Target {
        tls: matches!(service.protocol.as_str(), "https" | "grpcs"),
        host: &service.host,
        port: service.port,
    }
}

/// A `101` to a WebSocket handshake: no body; the connection (and what
/// the upstream sent behind the head) goes with it to the tunnel, under
/// the service's read and write timeouts.
fn switched(
    head: exchange::Head,
    connection: Connection,
    service: &Service,
) -> Response<ProxyBody> {
    let mut response = head.response.map(|()| body::empty());
    let Some(protocol) = tunnel::switched_protocol(response.headers()) else {
        return response;
    };
    let Connection {
        stream, read_buf, ..
    } = connection;
    let upstream = tunnel::Upstream {
        stream: Box::new(stream),
        early: read_buf.freeze(),
        protocol,
        idle_timeout: Duration::from_millis(service.read_timeout),
        write_timeout: Duration::from_millis(service.write_timeout),
    };
    tunnel::attach(&mut response, upstream);
    response
}

/// The response with its body: empty (the connection is free at once) or
/// read off the connection, failing after `read_timeout` of silence.
fn with_body(
    head: exchange::Head,
    connection: Connection,
    read_timeout: Duration,
) -> Response<ProxyBody> {
    let exchange::Head {
        response,
        framing,
        keep_alive,
    } = head;
    if framing == Framing::Empty {
        if keep_alive && connection.read_buf.is_empty() {
            pool::put(connection);
        }
        return response.map(|()| body::empty());
    }
    let streamed = UpstreamBody::new(connection, framing, keep_alive);
    response.map(|()| IdleTimeout::new(streamed.boxed_unsync(), read_timeout).into_body())
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
    fn targets() {
        let https = service("https", "::1", 8443);
        let target = target(&https);
        assert!(target.tls);
        assert_eq!((target.host, target.port), ("::1", 8443));
        assert!(!super::target(&service("http", "example.com", 80)).tls);
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

    /// `GET /` on `service` with an empty body; the response body.
    async fn get(clients: &UpstreamClients, service: &Service) -> Bytes {
        let response = clients
            .send(service, &Method::GET, "/", &HeaderMap::new, empty_body())
            .await
            .unwrap();
        read_like_hyper(response).await
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
            assert_eq!(get(&clients, &service).await, "ok");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn connections_idle_past_the_idle_timeout_are_not_reused() {
        let (port, connections) = keep_alive_upstream(usize::MAX).await;
        let service = service("http", "127.0.0.1", port);
        let settings = PoolSettings {
            idle_timeout: Duration::from_millis(50),
            max_idle_per_host: 8,
        };
        let clients = UpstreamClients::new(settings);
        for pause in [0, 0, 120] {
            tokio::time::sleep(Duration::from_millis(pause)).await;
            assert_eq!(get(&clients, &service).await, "ok");
        }
        assert_eq!(
            connections.load(Ordering::SeqCst),
            2,
            "reused once, then expired"
        );

        let no_pool = UpstreamClients::new(PoolSettings {
            idle_timeout: Duration::from_secs(60),
            max_idle_per_host: 0,
        });
        for _ in 0..2 {
            assert_eq!(get(&no_pool, &service).await, "ok");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 4, "nothing kept idle");
    }

    #[tokio::test]
    async fn chunked_and_close_delimited_responses_stream_through() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let index = counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    // First connection: two chunked answers; later ones: one
                    // answer delimited by the close.
                    let answers: &[&[u8]] = if index == 0 {
                        &[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n",
                          b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nf\r\n0\r\n\r\n"]
                    } else {
                        &[b"HTTP/1.0 200 OK\r\n\r\nuntil close"]
                    };
                    for answer in answers {
                        if !read_head(&mut stream).await {
                            return;
                        }
                        let _ = stream.write_all(answer).await;
                    }
                });
            }
        });
        let service = service("http", "127.0.0.1", port);
        let clients = UpstreamClients::new(PoolSettings::default());
        let mut bodies = Vec::new();
        for _ in 0..3 {
            let response = clients
                .send(&service, &Method::GET, "/", &HeaderMap::new, empty_body())
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            bodies.push(read_like_hyper(response).await);
        }
        assert_eq!(bodies, ["abcde", "f", "until close"]);
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn bodies_of_unknown_length_go_chunked_and_known_ones_with_a_length() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(crate::echo::serve(listener, std::future::pending()));
        let service = service("http", "127.0.0.1", port);
        let clients = UpstreamClients::new(PoolSettings::default());
        let chunks = (0..50).map(|_| Bytes::from(vec![b'c'; 20_000])).collect();
        let streamed = Chunks(chunks);
        let bodies = [
            RequestBody::new(streamed.boxed_unsync(), None),
            RequestBody::new(body::full(vec![b'f'; 1_000_000]), None),
        ];
        for body in bodies {
            let response = clients
                .send(
                    &service,
                    &Method::POST,
                    "/stream-upload",
                    &HeaderMap::new,
                    body,
                )
                .await
                .unwrap();
            let received: serde_json::Value =
                serde_json::from_slice(&read_like_hyper(response).await).unwrap();
            assert_eq!(received["received_bytes"], 1_000_000);
        }
    }

    /// A body yielding one frame per chunk, of unknown length.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl hyper::body::Body for Chunks {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
            let chunk = self.0.pop_front();
            std::task::Poll::Ready(chunk.map(|chunk| Ok(hyper::body::Frame::data(chunk))))
        }
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
