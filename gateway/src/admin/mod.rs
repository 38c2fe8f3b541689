//! The Kong 3.x-compatible Admin API over the [`Store`].
//!
//! [`serve`] runs a hyper server on a listener. Each request goes through:
//!
//! 1. access checks: the `Host` (and `Origin`) header must name this node
//!    when it listens on loopback (DNS-rebinding and CSRF protection; an
//!    `--admin-gui-url` origin is allowed too, see [`cors`]), and
//!    `Kong-Admin-Token` must match when a token is configured; more than
//!    1000 query arguments are `Too many arguments` (Kong's
//!    `lua_max_uri_args`);
//! 2. dispatch ([`routes`]): 404 for unknown paths, 405 for wrong methods;
//! 3. body parsing ([`body`]), capped at 1 MiB (64 MiB for `/config`, whose
//!    JSON its handler reads entity by entity);
//! 4. the handler, on tokio's blocking pool because store writes wait for
//!    the disk or the database.
//!
//! Answers are JSON with Kong's messages and headers (`Server: kong/<v>`,
//! `X-Kong-Admin-Latency`), except `GET /metrics` (Prometheus text).
//! Connections and requests count into the node's counters; with an
//! access log, each request gets a line in nginx's `combined` format. Request bodies, keys and entity names are never
//! logged: logs carry the method, a path template and the status.

pub mod body;
mod config;
mod cors;
mod crud;
mod declarative;
pub mod handlers;
mod info;
mod input;
mod nested;
pub mod response;
pub mod routes;
mod tags;
mod ttl;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{
    HeaderMap, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN, RETRY_AFTER, SERVER,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::http_server::{self, ServerSettings};
use crate::observability::{AccessLog, Exposition};
use crate::store::Store;
use body::Body;
use handlers::ApiRequest;
use response::{ApiError, Reply};
use routes::Endpoint;

/// Body size limit of ordinary requests.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Body size limit of `POST /config`.
pub const MAX_CONFIG_BODY_BYTES: usize = 64 * 1024 * 1024;
/// The header carrying the admin token.
pub const ADMIN_TOKEN_HEADER: &str = "kong-admin-token";
/// How long in-flight requests may take once shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a client may take to send request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What the Admin API needs from the node.
pub struct AdminState {
    pub store: Arc<Store>,
    /// When set, every request must carry it in `Kong-Admin-Token`.
    pub admin_token: Option<String>,
    pub node_id: Uuid,
    /// The Kong version this node reports, e.g. `3.10.0`.
    pub version: &'static str,
    /// The address the Admin API listens on (for `Host` checks).
    pub listen_addr: SocketAddr,
    /// `GET /metrics`, and the node's counters (`GET /status`), which the
    /// Admin API's connections and requests count into.
    pub exposition: Arc<Exposition>,
    /// The Admin API's access log (nginx's `combined` format), when on.
    pub access_log: Option<Arc<AccessLog>>,
    /// The origins of `--admin-gui-url` (Kong's `admin_gui_url`): they may
    /// drive the Admin API from a browser and get Kong's CORS answers.
    pub gui_origins: Vec<String>,
}

/// The origins of the `--admin-gui-url` values, in order; an URL without
/// scheme or host is an error.
pub fn gui_origins(urls: &[String]) -> Result<Vec<String>, String> {
    urls.iter()
        .map(|url| {
            cors::origin_of(url).ok_or_else(|| {
                format!("--admin-gui-url {url:?}: expected scheme://host[:port][/path]")
            })
        })
        .collect()
}

/// The most query (or form) arguments a request may carry (Kong's
/// `lua_max_uri_args` and `lua_max_post_args`).
pub const MAX_ARGUMENTS: usize = 1000;

/// Everything a handler can see.
pub struct Context {
    pub state: Arc<AdminState>,
}

/// The client's address, put in a request's extensions by the server (for
/// the access log).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Serve the Admin API on `listener` until `shutdown` completes, then let
/// in-flight requests finish (up to 10 s).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let settings = ServerSettings {
        name: "admin",
        header_read_timeout: HEADER_READ_TIMEOUT,
        shutdown_grace: SHUTDOWN_GRACE,
    };
    let stats = Arc::clone(&state.exposition.stats);
    let context = Arc::new(Context { state });
    let answer = move |mut request: Request<Incoming>, client| {
        request.extensions_mut().insert(ClientAddr(client));
        handle(Arc::clone(&context), request)
    };
    http_server::serve(listener, settings, stats, answer, shutdown).await;
}

/// Answer one HTTP request (never fails: errors become Kong error bodies).
pub async fn handle<B>(context: Arc<Context>, request: Request<B>) -> Response<Full<Bytes>>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let _in_progress = context.state.exposition.stats.request_started();
    let (parts, body) = request.into_parts();
    let line = context.state.access_log.as_ref().map(|log| {
        let client = parts
            .extensions
            .get::<ClientAddr>()
            .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |client| {
                client.0.ip()
            });
        (log, log.begin(client, &parts, ""))
    });
    let request = Request::from_parts(parts, body);
    let method = request.method().clone();
    let template = routes::parse(request.uri().path()).map(|endpoint| endpoint.template());
    let request_headers = request.headers().clone();
    let (reply, allow) = match answer(&context, request).await {
        Ok(answered) => answered,
        Err(error) => {
            if error.status().is_server_error() {
                tracing::error!(%error, "admin request failed");
            }
            (error.into_reply(), None)
        }
    };
    tracing::debug!(
        %method,
        path = template.as_deref().unwrap_or("(unknown)"),
        status = reply.status.as_u16(),
        "admin request"
    );
    let cors = cors_for(&context.state, &request_headers, allow);
    let response = render(&context.state, reply, allow, &cors, started);
    if let Some((log, line)) = line {
        let body_bytes = if method == Method::HEAD {
            0
        } else {
            hyper::body::Body::size_hint(response.body())
                .exact()
                .unwrap_or(0)
        };
        log.finish(line, response.status().as_u16(), body_bytes);
    }
    response
}

/// The CORS headers for a request with these headers (see `cors.rs`).
fn cors_for(
    state: &AdminState,
    request_headers: &HeaderMap,
    allow: Option<&'static str>,
) -> Vec<(&'static str, http::HeaderValue)> {
    let own_origin = request_headers
        .get(ORIGIN)
        .and_then(|origin| origin.to_str().ok())
        .is_some_and(|origin| is_own_origin(state.listen_addr.ip(), origin));
    cors::headers(
        &state.gui_origins,
        &cors::Request {
            headers: request_headers,
            own_origin,
            preflight: allow,
        },
    )
}

/// The reply, plus an `Allow` header value for `OPTIONS`.
async fn answer<B>(
    context: &Arc<Context>,
    request: Request<B>,
) -> Result<(Reply, Option<&'static str>), ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (parts, body) = request.into_parts();
    check_access(&context.state, &parts.headers, parts.uri.authority())?;
    let endpoint = routes::parse(parts.uri.path()).ok_or(ApiError::NotFound)?;
    if parts.method == Method::OPTIONS {
        return Ok((Reply::no_content(), Some(endpoint.allow_header())));
    }
    let method = if parts.method == Method::HEAD {
        Method::GET
    } else {
        parts.method
    };
    if !endpoint.allows(&method) {
        return Err(ApiError::MethodNotAllowed);
    }
    let body = if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
        read_body(&parts.headers, body, &endpoint).await?
    } else {
        Body::empty()
    };
    let request = ApiRequest {
        method,
        endpoint,
        query: query_arguments(parts.uri.query())?,
        body,
    };
    let context = Arc::clone(context);
    let reply = tokio::task::spawn_blocking(move || handlers::dispatch(&context, request))
        .await
        .map_err(|error| ApiError::Internal(format!("handler task failed: {error}")))??;
    Ok((reply, None))
}

fn body_limit(endpoint: &Endpoint) -> usize {
    match endpoint {
        Endpoint::Config => MAX_CONFIG_BODY_BYTES,
        _ => MAX_BODY_BYTES,
    }
}

/// Read and parse a request body of at most the endpoint's limit; the
/// JSON of `POST /config` is left unparsed ([`body::parse_deferred`]).
async fn read_body<B>(headers: &HeaderMap, body: B, endpoint: &Endpoint) -> Result<Body, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limit = body_limit(endpoint);
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if let Some(length) = declared.filter(|length| *length > limit as u64) {
        if length <= MAX_DRAINED_BYTES {
            discard(body).await;
        }
        return Err(ApiError::PayloadTooLarge);
    }
    let bytes = collect_body(body, limit, declared).await?;
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    match endpoint {
        Endpoint::Config => body::parse_deferred(content_type, bytes),
        _ => body::parse(content_type, &bytes),
    }
}

/// The body's bytes in one buffer, sized from its `Content-Length` when
/// it has one, each frame copied in and dropped as it arrives: a 60 MB
/// configuration is not held twice (as its frames and as their copy).
async fn collect_body<B>(body: B, limit: usize, declared: Option<u64>) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let capacity = declared.map_or(0, |length| usize::try_from(length).unwrap_or(limit));
    let mut buffer = BytesMut::with_capacity(capacity.min(limit));
    let mut body = std::pin::pin!(Limited::new(body, limit));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            if error.is::<LengthLimitError>() {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("could not read the request body".to_owned())
            }
        })?;
        if let Ok(data) = frame.into_data() {
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

/// The largest refused body read to its end before the 413 goes out.
/// A client that sends its whole body before reading the answer would
/// otherwise get a connection reset instead of the 413 (the server closes
/// with unread data); a bigger body is not worth reading just to say no.
const MAX_DRAINED_BYTES: u64 = 8 * 1024 * 1024;

/// How long reading a refused body may take.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and drops the rest of `body` (a refused one), for at most
/// [`DRAIN_TIMEOUT`].
async fn discard<B>(body: B)
where
    B: hyper::body::Body<Data = Bytes> + Send,
{
    let drain = async {
        let mut body = std::pin::pin!(body);
        while let Some(Ok(_)) = body.frame().await {}
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
}

/// The first value of each query argument; more than [`MAX_ARGUMENTS`]
/// is Kong's 400 `Too many arguments`. A value that is not UTF-8 once
/// decoded reads as a NUL character, which no argument accepts (an
/// invalid `tags` is then `invalid filter syntax`, as in Kong).
fn query_arguments(query: Option<&str>) -> Result<HashMap<String, String>, ApiError> {
    let query = query.unwrap_or_default();
    let mut arguments = HashMap::new();
    for (count, pair) in query.split('&').filter(|pair| !pair.is_empty()).enumerate() {
        if count >= MAX_ARGUMENTS {
            return Err(ApiError::BadRequest("Too many arguments".to_owned()));
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        arguments
            .entry(decode_argument(name))
            .or_insert_with(|| decode_argument(value));
    }
    Ok(arguments)
}

/// A percent-decoded query text (`+` is a space); invalid UTF-8 → NUL.
fn decode_argument(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map_or_else(|_| "\u{0}".to_owned(), |decoded| decoded.into_owned())
}

/// Host/Origin checks (loopback listeners only), then the admin token.
fn check_access(
    state: &AdminState,
    headers: &HeaderMap,
    authority: Option<&http::uri::Authority>,
) -> Result<(), ApiError> {
    if state.listen_addr.ip().is_loopback() {
        let header = |name| {
            headers
                .get(name)
                .map(|value| value.to_str().unwrap_or("\u{0}"))
        };
        // HTTP/2 carries the host in the `:authority` pseudo-header.
        let host = header(HOST).or(authority.map(|authority| authority.as_str()));
        if host.is_some_and(|host| !is_own_host(state.listen_addr.ip(), host)) {
            return Err(ApiError::ForbiddenHost);
        }
        let allowed = |origin: &str| {
            is_own_origin(state.listen_addr.ip(), origin)
                || state
                    .gui_origins
                    .iter()
                    .any(|gui| gui.eq_ignore_ascii_case(origin))
        };
        if header(ORIGIN).is_some_and(|origin| !allowed(origin)) {
            return Err(ApiError::ForbiddenOrigin);
        }
    }
    if let Some(expected) = &state.admin_token {
        let given = headers
            .get(ADMIN_TOKEN_HEADER)
            .map(|value| value.as_bytes())
            .unwrap_or_default();
        if !bool::from(given.ct_eq(expected.as_bytes())) {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(())
}

/// Is `host` (a `Host` header) a name of this loopback listener?
fn is_own_host(bound: IpAddr, host: &str) -> bool {
    let name = host_without_port(host.trim()).to_ascii_lowercase();
    let bound_name = match bound {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    matches!(name.as_str(), "localhost" | "127.0.0.1" | "[::1]") || name == bound_name
}

fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Is `origin` (`scheme://host[:port]`) this listener? Browsers send it on
/// cross-site requests; a page elsewhere must not drive the Admin API.
fn is_own_origin(bound: IpAddr, origin: &str) -> bool {
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| is_own_host(bound, authority))
}

/// Build the HTTP response with Kong's headers.
fn render(
    state: &AdminState,
    reply: Reply,
    allow: Option<&'static str>,
    cors: &[(&'static str, http::HeaderValue)],
    started: Instant,
) -> Response<Full<Bytes>> {
    let latency = started.elapsed().as_millis().to_string();
    let mut builder = Response::builder()
        .status(reply.status)
        .header(SERVER, format!("kong/{}", state.version))
        .header("x-kong-admin-latency", latency);
    if let Some(allow) = allow {
        builder = builder.header(ALLOW, allow);
    }
    for (name, value) in cors {
        builder = builder.header(*name, value.clone());
    }
    if reply.status == StatusCode::SERVICE_UNAVAILABLE {
        // The Admin API's only 503: a write the database could not take
        // now (unreachable, or contended); it may be sent again.
        builder = builder.header(RETRY_AFTER, "1");
    }
    let body = match (
        reply.text,
        reply.body.map(|value| serde_json::to_vec(&value)),
    ) {
        (Some((content_type, text)), _) => {
            builder = builder.header(CONTENT_TYPE, content_type);
            Bytes::from(text)
        }
        (None, Some(Ok(bytes))) => {
            builder = builder.header(CONTENT_TYPE, "application/json; charset=utf-8");
            Bytes::from(bytes)
        }
        (None, Some(Err(_)) | None) => Bytes::new(),
    };
    builder.body(Full::new(body)).unwrap_or_else(|_| {
        let mut fallback = Response::new(Full::new(Bytes::new()));
        *fallback.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}
