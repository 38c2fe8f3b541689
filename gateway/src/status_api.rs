//! Kong's Status API (`status_listen`): a read-only listener for probes
//! and scrapers, apart from the Admin API.
//!
//! - `GET /status`: the Admin API's `/status` body (database
//!   reachability, the node's connection counters, memory).
//! - `GET /status/ready`: 200 `{"message":"ready"}` once a configuration
//!   is loaded and served; before, 503 with the reason (what the start is
//!   waiting for). It stays 200 when the database becomes unreachable
//!   later, since the node keeps serving its last configuration (Kong's
//!   answers 503 then; see `docs/observability.md`).
//! - `GET /metrics`: the Prometheus exposition, the same as the Admin
//!   API's.
//!
//! Other paths get 404 `{"message":"Not found"}`, other methods 405. The
//! listener opens before the store, so that probes see the start.
//! `HEAD` is answered as `GET`, without a body.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, SERVER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::http_server::{self, ServerSettings};
use crate::observability::exposition::CONTENT_TYPE as EXPOSITION_TYPE;
use crate::observability::node::status_document;
use crate::observability::Exposition;
use crate::store::Store;

/// How long in-flight requests may take once shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long a client may take to send request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the Status API reports.
pub struct StatusState {
    exposition: Arc<Exposition>,
    version: &'static str,
    /// The store, once the configuration is loaded and served.
    loaded: OnceLock<Arc<Store>>,
    /// Why it is not ready yet.
    waiting_for: Mutex<&'static str>,
}

impl StatusState {
    /// Not ready: waiting for `waiting_for`.
    pub fn new(
        exposition: Arc<Exposition>,
        version: &'static str,
        waiting_for: &'static str,
    ) -> Self {
        StatusState {
            exposition,
            version,
            loaded: OnceLock::new(),
            waiting_for: Mutex::new(waiting_for),
        }
    }

    /// Says what the start waits for now.
    pub fn waiting_for(&self, reason: &'static str) {
        *self
            .waiting_for
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = reason;
    }

    /// The configuration of `store` is loaded and served: ready.
    pub fn loaded(&self, store: &Arc<Store>) {
        let _ = self.loaded.set(Arc::clone(store));
    }

    fn reachable(&self) -> bool {
        self.loaded.get().is_some_and(|store| store.is_reachable())
    }

    fn status(&self) -> Value {
        let revision = self.loaded.get().map(|store| store.revision());
        status_document(self.exposition.stats.counts(), self.reachable(), revision)
    }

    fn ready(&self) -> (StatusCode, Value) {
        if self.loaded.get().is_some() {
            return (StatusCode::OK, json!({"message": "ready"}));
        }
        let reason = *self
            .waiting_for
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "message": reason }),
        )
    }
}

/// Serves the Status API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: Arc<StatusState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let settings = ServerSettings {
        name: "status",
        header_read_timeout: HEADER_READ_TIMEOUT,
        shutdown_grace: SHUTDOWN_GRACE,
    };
    let stats = Arc::clone(&state.exposition.stats);
    let answer = move |request: Request<Incoming>, _client| {
        let state = Arc::clone(&state);
        async move { handle(&state, &request) }
    };
    http_server::serve(listener, settings, stats, answer, shutdown).await;
}

/// Answers one request.
fn handle<B>(state: &StatusState, request: &Request<B>) -> Response<Full<Bytes>> {
    let _in_progress = state.exposition.stats.request_started();
    let path = request.uri().path().trim_end_matches('/');
    let known = matches!(path, "/status" | "/status/ready" | "/metrics");
    let (status, content_type, body) = if !known {
        json_answer(StatusCode::NOT_FOUND, &json!({"message": "Not found"}))
    } else if !matches!(*request.method(), Method::GET | Method::HEAD) {
        json_answer(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"message": "Method not allowed"}),
        )
    } else {
        match path {
            "/status" => json_answer(StatusCode::OK, &state.status()),
            "/status/ready" => {
                let (status, body) = state.ready();
                json_answer(status, &body)
            }
            _ => (
                StatusCode::OK,
                EXPOSITION_TYPE,
                Bytes::from(state.exposition.render(state.reachable())),
            ),
        }
    };
    let body = if request.method() == Method::HEAD {
        Bytes::new()
    } else {
        body
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    if let Ok(server) = http::HeaderValue::from_str(&format!("kong/{}", state.version)) {
        headers.insert(SERVER, server);
    }
    response
}

fn json_answer(status: StatusCode, body: &Value) -> (StatusCode, &'static str, Bytes) {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (
        status,
        "application/json; charset=utf-8",
        Bytes::from(bytes),
    )
}
