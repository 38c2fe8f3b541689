//! [`RequestCtx`]: everything a plugin sees and may change about one request.
//!
//! The request head in [`RequestCtx::request`] is what will be sent upstream
//! (plugins edit its headers and, through [`RequestCtx::set_query`], its
//! query string); the upstream path itself is computed by the proxy from the
//! route match, so edits to the URI path are ignored.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::uri::PathAndQuery;
use http::{StatusCode, Uri};
use schemas::model::{Consumer, Route, Service};

use super::body::{self, Buffered, ProxyBody};
use super::identity::{AuthCredential, Identities};
use super::plugin::PluginResponse;
use super::response::{self as respond, ExitBody};
use crate::router::UriCaptures;

/// The protocol of a request as plugins' `protocols` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Protocol {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
        }
    }
}

/// The client connection a request arrived on.
#[derive(Debug, Clone)]
pub struct Downstream {
    /// The client's address.
    pub client_addr: SocketAddr,
    /// The connection is TLS.
    pub tls: bool,
    /// The port of the listener that accepted the connection.
    pub listen_port: u16,
    /// The TLS server name the client asked for, if any.
    pub sni: Option<Arc<str>>,
}

/// The route a request matched.
#[derive(Debug, Clone)]
pub struct Matched {
    /// The matched route.
    pub route: Arc<Route>,
    /// Its service; `None` for a serviceless route.
    pub service: Option<Arc<Service>>,
    /// Regex path groups (Kong's `uri_captures`).
    pub uri_captures: UriCaptures,
}

/// Where the request body is.
enum BodyState {
    /// Not read: it streams to the upstream.
    Streaming(ProxyBody),
    /// Read into memory (a plugin asked for it).
    Buffered(Bytes),
    /// Longer than the buffering cap: streams, and plugins cannot see it.
    Oversized(ProxyBody),
    /// Handed to the upstream request.
    Taken,
}

/// One request as plugins see it.
pub struct RequestCtx {
    /// The request head sent upstream: method, URI (for its query), headers.
    pub request: http::request::Parts,
    body: BodyState,
    /// The client connection.
    pub downstream: Downstream,
    /// Kong's request id (`X-Kong-Request-Id`).
    pub request_id: String,
    /// The matched route and service.
    pub matched: Matched,
    consumer: Option<Arc<Consumer>>,
    credential: Option<AuthCredential>,
    /// The consumers and credentials of the configuration this request is
    /// served with.
    identities: Arc<dyn Identities>,
    /// Headers added to the response the client receives (appended, before
    /// the response phase runs), e.g. a `Set-Cookie` from session renewal.
    pub response_headers: HeaderMap,
    /// Typed per-request values plugins pass from access to response.
    pub extensions: http::Extensions,
}

impl RequestCtx {
    /// A context for a request that matched `matched`.
    pub fn new(
        request: http::request::Parts,
        body: ProxyBody,
        downstream: Downstream,
        request_id: String,
        matched: Matched,
        identities: Arc<dyn Identities>,
    ) -> Self {
        RequestCtx {
            request,
            body: BodyState::Streaming(body),
            downstream,
            request_id,
            matched,
            consumer: None,
            credential: None,
            identities,
            response_headers: HeaderMap::new(),
            extensions: http::Extensions::new(),
        }
    }

    /// `http` or `https`, by the client connection.
    pub fn protocol(&self) -> Protocol {
        if self.downstream.tls {
            Protocol::Https
        } else {
            Protocol::Http
        }
    }

    /// The first value of a request header, if it is valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.headers.get(name)?.to_str().ok()
    }

    /// The Host header (or HTTP/2 authority) as sent, with any port.
    pub fn host_header(&self) -> Option<&str> {
        match self.request.headers.get(HOST) {
            Some(host) => host.to_str().ok(),
            None => self
                .request
                .uri
                .authority()
                .map(|authority| authority.as_str()),
        }
    }

    /// The request's host name: the Host header without its port,
    /// lowercased (Kong's `kong.request.get_host()`).
    pub fn host(&self) -> String {
        let host = self.host_header().unwrap_or("");
        host_without_port(host).to_ascii_lowercase()
    }

    /// The raw request path, without the query.
    pub fn path(&self) -> &str {
        self.request.uri.path()
    }

    /// The raw query string (without `?`); `Some("")` for a bare `?`.
    pub fn query(&self) -> Option<&str> {
        self.request.uri.query()
    }

    /// Replaces the query string sent upstream; `None` or `""` removes it.
    pub fn set_query(&mut self, query: Option<&str>) {
        let path = self.request.uri.path();
        let path_and_query = match query.filter(|query| !query.is_empty()) {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        let Ok(path_and_query) = PathAndQuery::try_from(path_and_query) else {
            return;
        };
        let mut parts = self.request.uri.clone().into_parts();
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = Uri::from_parts(parts) {
            self.request.uri = uri;
        }
    }

    /// The buffered request body, when a plugin asked for it and it fit
    /// under the cap; `None` otherwise.
    pub fn body(&self) -> Option<&Bytes> {
        match &self.body {
            BodyState::Buffered(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// Replaces the request body sent upstream and fixes `Content-Length`.
    pub fn set_body(&mut self, body: Bytes) {
        self.request.headers.remove(TRANSFER_ENCODING);
        self.request
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        self.body = BodyState::Buffered(body);
    }

    /// Reads the body into memory unless already done; a body longer than
    /// `cap` keeps streaming and [`RequestCtx::body`] stays `None`.
    pub async fn buffer_body(&mut self, cap: usize) -> Result<(), body::BoxError> {
        let BodyState::Streaming(_) = &self.body else {
            return Ok(());
        };
        let BodyState::Streaming(stream) = std::mem::replace(&mut self.body, BodyState::Taken)
        else {
            return Ok(());
        };
        let declared = declared_length(&self.request.headers);
        self.body = match body::buffer(stream, cap, declared).await? {
            Buffered::Complete(bytes) => BodyState::Buffered(bytes),
            Buffered::TooLarge(rest) => BodyState::Oversized(rest),
        };
        Ok(())
    }

    /// The body to send upstream; afterwards the context holds none.
    pub fn take_body(&mut self) -> ProxyBody {
        match std::mem::replace(&mut self.body, BodyState::Taken) {
            BodyState::Streaming(stream) | BodyState::Oversized(stream) => stream,
            BodyState::Buffered(bytes) if bytes.is_empty() => body::empty(),
            BodyState::Buffered(bytes) => body::full(bytes),
            BodyState::Taken => body::empty(),
        }
    }

    /// The consumers and key-auth credentials to authenticate against.
    pub fn identities(&self) -> &Arc<dyn Identities> {
        &self.identities
    }

    /// The authenticated consumer (Kong's `kong.client.get_consumer()`).
    pub fn consumer(&self) -> Option<&Arc<Consumer>> {
        self.consumer.as_ref()
    }

    /// The authenticated credential (Kong's `kong.client.get_credential()`).
    pub fn credential(&self) -> Option<&AuthCredential> {
        self.credential.as_ref()
    }

    /// Kong's `kong.client.authenticate(consumer, credential)`: replaces both
    /// values. Consumer-scoped plugins resolved after this call see
    /// `consumer`.
    pub fn authenticate(
        &mut self,
        consumer: Option<Arc<Consumer>>,
        credential: Option<AuthCredential>,
    ) {
        self.consumer = consumer;
        self.credential = credential;
    }

    /// `kong.response.error(status, message, headers)` for this request: the
    /// body format follows its `Accept` header and carries its request id.
    pub fn error(
        &self,
        status: StatusCode,
        message: Option<&str>,
        headers: HeaderMap,
    ) -> PluginResponse {
        respond::error(
            status,
            message,
            &self.request.headers,
            &self.request_id,
            headers,
        )
    }

    /// `kong.response.exit(status, body, headers)`.
    pub fn exit(&self, status: StatusCode, body: ExitBody, headers: HeaderMap) -> PluginResponse {
        respond::exit(status, body, headers)
    }
}

/// `host` without a trailing `:port` (IPv6 literals keep their brackets).
pub fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The `Content-Length` a request declares, if valid.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(host_without_port("example.com:8000"), "example.com");
        assert_eq!(host_without_port("example.com"), "example.com");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(host_without_port("[::1]"), "[::1]");
    }
}
