//! What the log phase sees of a finished request ([`LogEntry`]), in the
//! spirit of Kong's `kong.log.serialize()`: the final status and who
//! produced it, the sizes both ways, the latencies, the request as plugins
//! left it (route, service, consumer), and the matched route's metric
//! handles.

use std::sync::Arc;

use http::StatusCode;

use super::context::RequestCtx;
use crate::observability::RouteSeries;

/// Who produced the response (Kong's `kong.response.get_source()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseSource {
    /// The upstream service answered.
    Service,
    /// A plugin answered (`kong.response.exit`).
    Exit,
    /// The gateway answered with an error (no service, a failed upstream
    /// exchange, a broken request body).
    Error,
}

impl ResponseSource {
    /// `service`, `exit` or `error`, as Kong names them.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseSource::Service => "service",
            ResponseSource::Exit => "exit",
            ResponseSource::Error => "error",
        }
    }
}

/// Kong's `latencies`, in whole milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLatencies {
    /// Time spent in the gateway before proxying, or before answering
    /// when it answered itself (Kong's `latencies.kong`).
    pub kong: u64,
    /// Time from sending the request upstream to its response head
    /// (`latencies.proxy`); `None` when nothing was proxied.
    pub proxy: Option<u64>,
    /// The whole request, from its head to the end of the response body
    /// (`latencies.request`).
    pub request: u64,
}

/// One finished request, as the log phase sees it.
pub struct LogEntry<'a> {
    /// The request as the other phases left it: route, service, consumer,
    /// credential, request id, headers.
    pub ctx: &'a RequestCtx,
    /// The status the client received.
    pub status: StatusCode,
    /// Who produced the response.
    pub source: ResponseSource,
    /// Bytes received from the client: the request head in its HTTP/1.1
    /// form and the body bytes read (nginx's `$request_length`).
    pub request_size: u64,
    /// Bytes sent to the client: head and body as written on an HTTP/1.1
    /// connection (nginx's `$bytes_sent`); over HTTP/2, the head's HTTP/1.1
    /// form and the body.
    pub response_size: u64,
    /// The latencies.
    pub latencies: LogLatencies,
    /// The matched route's metric handles (for the prometheus plugin).
    pub series: Option<&'a Arc<RouteSeries>>,
}
