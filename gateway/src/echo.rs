//! `gateway echo`: a small, fast httpbin-like upstream for tutorials, tests and benchmarks.
//!
//! Every request is answered by [`serve`] according to its path:
//!
//! | path                | answer                                                                 |
//! |---------------------|------------------------------------------------------------------------|
//! | `/status/NNN`       | status `NNN` (200..=599) with an empty body; anything else is a 400    |
//! | `/bytes/N`          | `N` bytes of `application/octet-stream`, streamed in 64 KiB chunks     |
//! | `/stream-upload`    | `{"received_bytes": N}` after counting the request body chunk by chunk |
//! | `/delay/S`          | sleeps `S` seconds (fractional, clamped to 10) then echoes             |
//! | `/drop`             | closes the connection without answering                                |
//! | `/reset-mid-body`   | sends headers and 1 KiB of a promised 64 KiB body, then drops          |
//! | `/ws`               | a WebSocket echo (`websocket.rs`); 400 without a handshake             |
//! | anything else       | 200 with the JSON echo of the request (httpbin's `/anything`)          |
//!
//! The echo document is
//! `{"method", "url", "path", "args", "headers", "origin", "data", "json", "form"}`:
//! `args` and `form` map each name to a string, or to an array of strings when the name
//! repeats; `headers` uses canonical Title-Case names and joins repeated headers with `,`
//! like httpbin; `origin` is the IP of the TCP peer; `data` is the body as lossy UTF-8 and
//! `json` the body parsed as JSON (or `null`).
//!
//! Deliberate differences from httpbin: a 1xx status cannot be a final response (hyper refuses
//! to send one), so `/status/1xx` answers 501; the echoed body is capped at
//! [`MAX_ECHO_BODY`] bytes (413 beyond) so memory stays bounded; `/stream-upload` exists for
//! arbitrarily large uploads.
//!
//! Connections are served by hyper-util's auto builder (HTTP/1.1 with keep-alive, and h2c with
//! prior knowledge), without per-request logging.

use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, CONTENT_TYPE, HOST};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

mod websocket;

/// Largest request body echoed back by the JSON endpoints; larger bodies get a 413.
pub const MAX_ECHO_BODY: usize = 64 * 1024 * 1024;
/// Longest delay `/delay/S` sleeps, in seconds (httpbin's limit).
pub const MAX_DELAY_SECS: f64 = 10.0;
/// How long [`serve`] waits for in-flight requests after the shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause after a failed `accept` (e.g. too many open files) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Bytes promised in the `Content-Length` of `/reset-mid-body`.
const RESET_DECLARED_LEN: u64 = 64 * 1024;
/// Bytes actually sent by `/reset-mid-body` before the connection is dropped.
const RESET_SENT_LEN: usize = 1024;
/// Pause between the partial body and the drop, so the partial body reaches the client.
const RESET_PAUSE: Duration = Duration::from_millis(50);

/// The payload served by `/bytes/N`, one chunk at a time.
static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];

/// Errors of the echo server; each names the address or resource involved.
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    /// The listening socket could not be bound.
    #[error("cannot bind the echo listener on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The bound address of the listener could not be read.
    #[error("cannot read the local address of the echo listener bound on {addr}: {source}")]
    LocalAddr {
        /// The requested address.
        addr: SocketAddr,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The `echo listening on ...` line could not be written to stdout.
    #[error("cannot write the listening line to stdout: {0}")]
    Stdout(#[source] io::Error),
    /// A shutdown signal handler could not be installed.
    #[error("cannot install the {signal} handler: {source}")]
    Signal {
        /// The signal name (`SIGTERM`).
        signal: &'static str,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
}

/// Binds `addr`, prints `echo listening on http://<bound addr>` to stdout and serves until
/// Ctrl-C or SIGTERM, then drains in-flight requests.
///
/// # Errors
///
/// When `addr` cannot be bound, stdout cannot be written or the SIGTERM handler cannot be
/// installed.
pub async fn run(addr: SocketAddr) -> Result<(), EchoError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| EchoError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| EchoError::LocalAddr { addr, source })?;
    let shutdown = shutdown_signal()?;
    announce(local)?;
    serve(listener, shutdown).await
}

/// The line [`run`] prints once the listener is bound.
#[must_use]
pub fn listening_line(addr: SocketAddr) -> String {
    format!("echo listening on http://{addr}")
}

/// Serves echo requests on `listener` until `shutdown` completes, then stops accepting,
/// asks open connections to close and waits (bounded) for in-flight requests.
///
/// # Errors
///
/// None today: failed accepts are retried after a short pause. The `Result` leaves room for
/// fatal listener errors.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), EchoError> {
    let builder = connection_builder();
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => spawn_connection(&builder, &graceful, stream, peer),
                Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
            },
        }
    }
    drop(listener);
    // Connections still busy after the drain timeout are simply abandoned.
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    Ok(())
}

/// Prints the listening line and flushes stdout.
fn announce(addr: SocketAddr) -> Result<(), EchoError> {
    let mut out = io::stdout().lock();
    writeln!(out, "{}", listening_line(addr)).map_err(EchoError::Stdout)?;
    out.flush().map_err(EchoError::Stdout)
}

/// A future completing on Ctrl-C or (on Unix) SIGTERM.
fn shutdown_signal() -> Result<impl Future<Output = ()>, EchoError> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| EchoError::Signal {
            signal: "SIGTERM",
            source,
        })?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// HTTP/1.1 (keep-alive) and h2c connection settings.
///
/// hyper's 30 s header read timeout also runs while a keep-alive connection is idle, which
/// would close pooled connections under a proxy (whose idle timeout is longer) and race with
/// its next request; it is disabled, idle connections stay open until the client closes them.
fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// Serves one accepted connection on its own task, watched for graceful shutdown.
fn spawn_connection(
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| handle(req, peer));
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .into_owned();
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        // Connection errors (client gone, `/drop`, `/reset-mid-body`) are expected.
        let _ = conn.await;
    });
}

/// Returned by the service to make hyper close the connection without a response.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose")]
struct DropConnection;

/// What a request path asks for.
#[derive(Debug, PartialEq)]
enum Route {
    Status(u16),
    Bytes(u64),
    StreamUpload,
    Delay(Duration),
    Drop,
    ResetMidBody,
    WebSocket,
    Anything,
    Invalid(String),
}

/// Maps a request path to its [`Route`]; malformed parameters give [`Route::Invalid`].
fn route(path: &str) -> Route {
    if let Some(code) = path.strip_prefix("/status/") {
        return parse_status(code);
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        return n.parse().map_or_else(
            |_| Route::Invalid(format!("invalid byte count {n:?}")),
            Route::Bytes,
        );
    }
    if let Some(secs) = path.strip_prefix("/delay/") {
        return parse_delay(secs);
    }
    match path {
        "/stream-upload" => Route::StreamUpload,
        "/drop" => Route::Drop,
        "/reset-mid-body" => Route::ResetMidBody,
        "/ws" => Route::WebSocket,
        _ => Route::Anything,
    }
}

/// Parses the `NNN` of `/status/NNN`: a number in 100..=599.
fn parse_status(code: &str) -> Route {
    match code.parse::<u16>() {
        Ok(n) if (100..=599).contains(&n) => Route::Status(n),
        _ => Route::Invalid(format!("invalid status code {code:?} (expected 100..=599)")),
    }
}

/// Parses the `S` of `/delay/S`: non-negative seconds, clamped to [`MAX_DELAY_SECS`].
fn parse_delay(secs: &str) -> Route {
    match secs.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => {
            Route::Delay(Duration::from_secs_f64(s.min(MAX_DELAY_SECS)))
        }
        _ => Route::Invalid(format!("invalid delay {secs:?} (expected seconds, max 10)")),
    }
}

/// The echo service.
async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<EchoBody>, DropConnection> {
    match route(req.uri().path()) {
        Route::Status(code) => Ok(status_response(code)),
        Route::Bytes(n) => Ok(bytes_response(n)),
        Route::StreamUpload => Ok(count_upload(req.into_body()).await),
        Route::Delay(d) => {
            tokio::time::sleep(d).await;
            Ok(echo(req, peer).await)
        }
        Route::Drop => Err(DropConnection),
        Route::ResetMidBody => Ok(reset_mid_body_response()),
        Route::WebSocket => Ok(websocket_response(req)),
        Route::Anything => Ok(echo(req, peer).await),
        Route::Invalid(msg) => Ok(error_response(StatusCode::BAD_REQUEST, &msg)),
    }
}

/// `/ws`: the `101` to a WebSocket handshake, the echo running once hyper
/// hands the connection over; 400 to anything else.
fn websocket_response(req: Request<Incoming>) -> Response<EchoBody> {
    let accepted = websocket::is_handshake(&req)
        .then(|| websocket::accept(&req))
        .flatten();
    let Some(accepted) = accepted else {
        return error_response(StatusCode::BAD_REQUEST, "expected a WebSocket handshake");
    };
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(req).await {
            websocket::serve(upgraded).await;
        }
    });
    accepted.map(|()| EchoBody::empty())
}

/// `/status/NNN`: that status with an empty body (501 for 1xx, see the module doc).
fn status_response(code: u16) -> Response<EchoBody> {
    match StatusCode::from_u16(code) {
        Ok(status) if !status.is_informational() => with_status(status, EchoBody::empty(), None),
        _ => error_response(
            StatusCode::NOT_IMPLEMENTED,
            "a 1xx status cannot be sent as a final response",
        ),
    }
}

/// `/bytes/N`: `N` bytes streamed from a static chunk.
fn bytes_response(n: u64) -> Response<EchoBody> {
    let body = EchoBody(Kind::Repeat { remaining: n });
    with_status(StatusCode::OK, body, Some("application/octet-stream"))
}

/// `/reset-mid-body`: promises [`RESET_DECLARED_LEN`] bytes, sends fewer, then fails.
fn reset_mid_body_response() -> Response<EchoBody> {
    let body = EchoBody(Kind::Reset(ResetState::Start));
    with_status(StatusCode::OK, body, Some("application/octet-stream"))
}

/// `/stream-upload`: counts the request body frame by frame without keeping it.
async fn count_upload(mut body: Incoming) -> Response<EchoBody> {
    let mut received: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => received += frame.data_ref().map_or(0, |d| d.len() as u64),
            Err(e) => {
                let msg = format!("request body failed after {received} bytes: {e}");
                return error_response(StatusCode::BAD_REQUEST, &msg);
            }
        }
    }
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "received_bytes": received }),
    )
}

/// The httpbin `/anything` echo.
async fn echo(req: Request<Incoming>, peer: SocketAddr) -> Response<EchoBody> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_ECHO_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            let msg = format!("request body larger than {MAX_ECHO_BODY} bytes; use /stream-upload");
            return error_response(StatusCode::PAYLOAD_TOO_LARGE, &msg);
        }
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("request body failed: {e}"),
            )
        }
    };
    let doc = echo_document(&parts.method, &parts.uri, &parts.headers, peer, &body);
    json_response(StatusCode::OK, &doc)
}

/// Builds the echo JSON document for one request.
fn echo_document(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    peer: SocketAddr,
    body: &[u8],
) -> Value {
    let mut doc = Map::with_capacity(9);
    doc.insert("method".into(), Value::String(method.as_str().to_owned()));
    doc.insert("url".into(), Value::String(full_url(uri, headers)));
    doc.insert("path".into(), Value::String(uri.path().to_owned()));
    doc.insert(
        "args".into(),
        pairs_to_json(uri.query().unwrap_or("").as_bytes()),
    );
    doc.insert("headers".into(), headers_to_json(uri, headers));
    doc.insert(
        "origin".into(),
        Value::String(peer.ip().to_canonical().to_string()),
    );
    doc.insert(
        "data".into(),
        Value::String(String::from_utf8_lossy(body).into_owned()),
    );
    doc.insert("json".into(), body_json(body));
    doc.insert("form".into(), body_form(headers, body));
    Value::Object(doc)
}

/// The absolute URL of the request: as received when absolute (HTTP/2, absolute-form),
/// otherwise `http://<Host><path?query>`.
fn full_url(uri: &Uri, headers: &HeaderMap) -> String {
    if uri.scheme().is_some() {
        return uri.to_string();
    }
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    match headers.get(HOST).and_then(|h| h.to_str().ok()) {
        Some(host) => format!("http://{host}{target}"),
        None => target.to_owned(),
    }
}

/// Decodes `application/x-www-form-urlencoded` pairs; repeated names become arrays.
fn pairs_to_json(encoded: &[u8]) -> Value {
    let mut map = Map::new();
    for (name, value) in form_urlencoded::parse(encoded) {
        insert_multi(&mut map, name.into_owned(), value.into_owned());
    }
    Value::Object(map)
}

/// Inserts `value` under `name`, turning a repeated name into an array of its values.
fn insert_multi(map: &mut Map<String, Value>, name: String, value: String) {
    match map.get_mut(&name) {
        None => {
            map.insert(name, Value::String(value));
        }
        Some(Value::Array(values)) => values.push(Value::String(value)),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, Value::String(value)]);
        }
    }
}

/// Request headers with Title-Case names; repeated headers are joined with `,`.
/// HTTP/2 requests carry no `Host` header, so the `:authority` is shown as `Host`.
fn headers_to_json(uri: &Uri, headers: &HeaderMap) -> Value {
    let mut map = Map::with_capacity(headers.keys_len() + 1);
    if !headers.contains_key(HOST) {
        if let Some(authority) = uri.authority() {
            map.insert("Host".into(), Value::String(authority.to_string()));
        }
    }
    for name in headers.keys() {
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect::<Vec<_>>()
            .join(",");
        map.insert(title_case(name.as_str()), Value::String(joined));
    }
    Value::Object(map)
}

/// `x-consumer-username` -> `X-Consumer-Username`.
fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == '-';
    }
    out
}

/// The body parsed as JSON, or `null` when empty or not JSON.
fn body_json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

/// The body parsed as an urlencoded form when the content type says so, else `{}`.
fn body_form(headers: &HeaderMap, body: &[u8]) -> Value {
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if is_form {
        pairs_to_json(body)
    } else {
        Value::Object(Map::new())
    }
}

/// A JSON response (`Content-Type: application/json`).
fn json_response(status: StatusCode, doc: &Value) -> Response<EchoBody> {
    // Serializing a `Value` into memory cannot fail; fall back to an empty object anyway.
    let bytes = serde_json::to_vec(doc).unwrap_or_else(|_| b"{}".to_vec());
    with_status(
        status,
        EchoBody::full(bytes.into()),
        Some("application/json"),
    )
}

/// An error response with a `{"error": msg}` JSON body.
fn error_response(status: StatusCode, msg: &str) -> Response<EchoBody> {
    json_response(status, &serde_json::json!({ "error": msg }))
}

/// A response with `status`, `body` and an optional content type.
fn with_status(
    status: StatusCode,
    body: EchoBody,
    content_type: Option<&'static str>,
) -> Response<EchoBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Some(ct) = content_type {
        resp.headers_mut()
            .insert(CONTENT_TYPE, http::HeaderValue::from_static(ct));
    }
    resp
}

/// Response bodies of the echo server.
struct EchoBody(Kind);

enum Kind {
    /// A complete body, sent as one frame (`None` once sent).
    Full(Option<Bytes>),
    /// `remaining` more bytes from [`CHUNK`].
    Repeat { remaining: u64 },
    /// The `/reset-mid-body` sequence.
    Reset(ResetState),
}

enum ResetState {
    /// Nothing sent yet.
    Start,
    /// Partial body sent; waiting before failing.
    Pausing(Pin<Box<Sleep>>),
    /// Failed; nothing more to send.
    Done,
}

/// The error `/reset-mid-body` fails its body with, making hyper drop the connection.
#[derive(Debug, thiserror::Error)]
#[error("body reset on purpose after {RESET_SENT_LEN} of {RESET_DECLARED_LEN} bytes")]
struct ResetOnPurpose;

impl EchoBody {
    fn empty() -> Self {
        Self(Kind::Full(None))
    }

    fn full(bytes: Bytes) -> Self {
        Self(Kind::Full(Some(bytes).filter(|b| !b.is_empty())))
    }
}

impl Body for EchoBody {
    type Data = Bytes;
    type Error = ResetOnPurpose;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ResetOnPurpose>>> {
        match &mut self.get_mut().0 {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Repeat { remaining } => Poll::Ready(next_chunk(remaining).map(Ok)),
            Kind::Reset(state) => poll_reset(state, cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Repeat { remaining } => *remaining == 0,
            Kind::Reset(state) => matches!(state, ResetState::Done),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Repeat { remaining } => SizeHint::with_exact(*remaining),
            Kind::Reset(_) => SizeHint::with_exact(RESET_DECLARED_LEN),
        }
    }
}

/// The next `/bytes/N` frame, or `None` when all bytes were sent.
fn next_chunk(remaining: &mut u64) -> Option<Frame<Bytes>> {
    if *remaining == 0 {
        return None;
    }
    let n = usize::try_from(*remaining).map_or(CHUNK.len(), |r| r.min(CHUNK.len()));
    *remaining -= n as u64;
    Some(Frame::data(Bytes::from_static(&CHUNK[..n])))
}

/// Drives `/reset-mid-body`: partial data, a short pause, then an error.
fn poll_reset(
    state: &mut ResetState,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, ResetOnPurpose>>> {
    match state {
        ResetState::Start => {
            *state = ResetState::Pausing(Box::pin(tokio::time::sleep(RESET_PAUSE)));
            let part = Bytes::from_static(&CHUNK[..RESET_SENT_LEN]);
            Poll::Ready(Some(Ok(Frame::data(part))))
        }
        ResetState::Pausing(sleep) => {
            std::task::ready!(sleep.as_mut().poll(cx));
            *state = ResetState::Done;
            Poll::Ready(Some(Err(ResetOnPurpose)))
        }
        ResetState::Done => Poll::Ready(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::CONTENT_LENGTH;
    use http_body_util::combinators::BoxBody;
    use http_body_util::Full;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::client::legacy::Client;
    use std::convert::Infallible;
    use tokio::sync::oneshot;

    type TestClient = Client<HttpConnector, BoxBody<Bytes, Infallible>>;

    /// A running echo server; shuts down when dropped.
    struct Echo {
        addr: SocketAddr,
        _stop: oneshot::Sender<()>,
    }

    async fn start_echo() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, async move {
            let _ = stopped.await;
        }));
        Echo { addr, _stop: stop }
    }

    fn client() -> TestClient {
        Client::builder(TokioExecutor::new()).build_http()
    }

    fn full(body: impl Into<Bytes>) -> BoxBody<Bytes, Infallible> {
        Full::new(body.into()).boxed()
    }

    /// A request body of `remaining` bytes in 64 KiB chunks, of unknown length (chunked).
    struct Chunks {
        remaining: u64,
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(next_chunk(&mut self.get_mut().remaining).map(Ok))
        }
    }

    async fn send(
        client: &TestClient,
        req: Request<BoxBody<Bytes, Infallible>>,
    ) -> (StatusCode, HeaderMap, Bytes) {
        let resp = client.request(req).await.expect("response");
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        (parts.status, parts.headers, bytes)
    }

    async fn get(echo: &Echo, path: &str) -> (StatusCode, HeaderMap, Bytes) {
        let req = Request::get(format!("http://{}{path}", echo.addr))
            .body(full(Bytes::new()))
            .expect("request");
        send(&client(), req).await
    }

    fn json(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("JSON body")
    }

    #[tokio::test]
    async fn echoes_method_path_args_headers_and_json_body() {
        let echo = start_echo().await;
        let req = Request::post(format!("http://{}/some/path?a=1&b=x%20y", echo.addr))
            .header("x-consumer-username", "bob")
            .header("x-multi", "one")
            .header("x-multi", "two")
            .header("content-type", "application/json")
            .body(full(r#"{"k":[1,2]}"#))
            .expect("request");
        let (status, headers, body) = send(&client(), req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        let doc = json(&body);
        assert_eq!(doc["method"], "POST");
        assert_eq!(doc["path"], "/some/path");
        let url = format!("http://{}/some/path?a=1&b=x%20y", echo.addr);
        assert_eq!(doc["url"], url.as_str());
        assert_eq!(doc["args"], serde_json::json!({"a": "1", "b": "x y"}));
        assert_eq!(doc["headers"]["X-Consumer-Username"], "bob");
        assert_eq!(doc["headers"]["X-Multi"], "one,two");
        assert_eq!(doc["headers"]["Host"], echo.addr.to_string().as_str());
        assert_eq!(doc["origin"], "127.0.0.1");
        assert_eq!(doc["data"], r#"{"k":[1,2]}"#);
        assert_eq!(doc["json"], serde_json::json!({"k": [1, 2]}));
        assert_eq!(doc["form"], serde_json::json!({}));
    }

    #[tokio::test]
    async fn repeated_query_args_become_arrays() {
        let echo = start_echo().await;
        let (_, _, body) = get(&echo, "/anything?x=1&x=2&y=3&x=4").await;
        let doc = json(&body);
        assert_eq!(
            doc["args"],
            serde_json::json!({"x": ["1", "2", "4"], "y": "3"})
        );
        assert_eq!(doc["json"], Value::Null);
        assert_eq!(doc["data"], "");
    }

    #[tokio::test]
    async fn parses_urlencoded_forms() {
        let echo = start_echo().await;
        let req = Request::put(format!("http://{}/form", echo.addr))
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(full("name=a+b&tag=1&tag=2"))
            .expect("request");
        let doc = json(&send(&client(), req).await.2);
        assert_eq!(doc["method"], "PUT");
        assert_eq!(
            doc["form"],
            serde_json::json!({"name": "a b", "tag": ["1", "2"]})
        );
        assert_eq!(doc["data"], "name=a+b&tag=1&tag=2");
    }

    #[tokio::test]
    async fn status_endpoint() {
        let echo = start_echo().await;
        let (status, _, body) = get(&echo, "/status/418").await;
        assert_eq!(status.as_u16(), 418);
        assert!(body.is_empty());
        assert_eq!(get(&echo, "/status/204").await.0, StatusCode::NO_CONTENT);
        for bad in ["/status/abc", "/status/99", "/status/600", "/status/"] {
            assert_eq!(get(&echo, bad).await.0, StatusCode::BAD_REQUEST, "{bad}");
        }
        assert_eq!(
            get(&echo, "/status/100").await.0,
            StatusCode::NOT_IMPLEMENTED
        );
    }

    #[tokio::test]
    async fn bytes_endpoint_streams_exact_length() {
        let echo = start_echo().await;
        let req = Request::get(format!("http://{}/bytes/1048576", echo.addr))
            .body(full(Bytes::new()))
            .expect("request");
        let resp = client().request(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[CONTENT_LENGTH], "1048576");
        let mut body = resp.into_body();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            total += frame.expect("frame").data_ref().map_or(0, |d| d.len());
        }
        assert_eq!(total, 1_048_576);
        assert_eq!(get(&echo, "/bytes/0").await.2.len(), 0);
        assert_eq!(get(&echo, "/bytes/-1").await.0, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn stream_upload_counts_a_chunked_10mb_body() {
        let echo = start_echo().await;
        let size = 10 * 1024 * 1024 + 7;
        let req = Request::post(format!("http://{}/stream-upload", echo.addr))
            .body(Chunks { remaining: size }.boxed())
            .expect("request");
        let (status, _, body) = send(&client(), req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json(&body), serde_json::json!({ "received_bytes": size }));
    }

    #[tokio::test]
    async fn delay_sleeps_then_echoes() {
        let echo = start_echo().await;
        let started = std::time::Instant::now();
        let (status, _, body) = get(&echo, "/delay/0.2?q=1").await;
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json(&body)["args"]["q"], "1");
        assert_eq!(get(&echo, "/delay/-1").await.0, StatusCode::BAD_REQUEST);
        assert_eq!(get(&echo, "/delay/NaN").await.0, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn drop_closes_without_answering() {
        let echo = start_echo().await;
        let req = Request::get(format!("http://{}/drop", echo.addr))
            .body(full(Bytes::new()))
            .expect("request");
        assert!(client().request(req).await.is_err());
    }

    #[tokio::test]
    async fn reset_mid_body_sends_headers_then_fails() {
        let echo = start_echo().await;
        let req = Request::get(format!("http://{}/reset-mid-body", echo.addr))
            .body(full(Bytes::new()))
            .expect("request");
        let resp = client().request(req).await.expect("headers arrive");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[CONTENT_LENGTH], "65536");
        let mut body = resp.into_body();
        let mut received = 0;
        let failure = loop {
            match body.frame().await {
                Some(Ok(frame)) => received += frame.data_ref().map_or(0, |d| d.len()),
                Some(Err(e)) => break Some(e),
                None => break None,
            }
        };
        assert!(failure.is_some(), "the body must fail");
        assert_eq!(received, RESET_SENT_LEN);
    }

    #[tokio::test]
    async fn keep_alive_and_h2c_prior_knowledge() {
        let echo = start_echo().await;
        let h2: TestClient = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
        for _ in 0..3 {
            let req = Request::get(format!("http://{}/h2?v=2", echo.addr))
                .body(full(Bytes::new()))
                .expect("request");
            let doc = json(&send(&h2, req).await.2);
            assert_eq!(doc["args"]["v"], "2");
            assert_eq!(doc["headers"]["Host"], echo.addr.to_string().as_str());
        }
    }

    #[tokio::test]
    async fn oversized_echo_body_is_rejected() {
        let echo = start_echo().await;
        let req = Request::post(format!("http://{}/anything", echo.addr))
            .body(
                Chunks {
                    remaining: MAX_ECHO_BODY as u64 + 1,
                }
                .boxed(),
            )
            .expect("request");
        let resp = client().request(req).await;
        // The server may answer 413 before the client finished sending, or drop the socket.
        if let Ok(resp) = resp {
            assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        }
    }

    #[tokio::test]
    async fn serve_returns_after_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let served = serve(listener, async {});
        let result = tokio::time::timeout(Duration::from_secs(5), served).await;
        assert!(matches!(result, Ok(Ok(()))));
    }

    #[test]
    fn routes_and_helpers() {
        assert_eq!(route("/status/200"), Route::Status(200));
        assert_eq!(route("/delay/99"), Route::Delay(Duration::from_secs(10)));
        assert_eq!(route("/stream-upload"), Route::StreamUpload);
        assert_eq!(route("/status-ish"), Route::Anything);
        assert_eq!(title_case("x-consumer-username"), "X-Consumer-Username");
        assert_eq!(title_case("host"), "Host");
        let addr: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        assert_eq!(
            listening_line(addr),
            "echo listening on http://127.0.0.1:8080"
        );
    }
}
