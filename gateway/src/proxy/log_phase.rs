//! The end of a request: the access log line and the plugins' log phase,
//! run once the response body is done.
//!
//! [`Ending`] gathers what the end needs while the pipeline runs: the
//! access log line's start (built from the request head as received), the
//! request's size (its head in HTTP/1.1 form, and its body counted by
//! [`CountedBody`]) when a configured plugin has a log phase.
//! [`Ending::respond`] then wraps the response body in a [`LoggedBody`],
//! which counts the body bytes and, when it ends or is dropped (sent,
//! failed, or the client went away), finishes the line and runs
//! [`LogPhase`] with a [`LogEntry`]. A request with no access log and no
//! log-phase instance keeps its body as it is: no wrapper, no allocation.
//!
//! Sizes as nginx counts them for Kong's serializer: the response's
//! `$bytes_sent` comes from the HTTP/1.1 connection, which records what it
//! wrote for the response in [`BytesSent`] (taken from the response's
//! extensions) before dropping the body; over HTTP/2 the head's HTTP/1.1
//! form plus the body stands in for it.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode, Version};
use hyper::body::{Body, Frame, SizeHint};

use super::phases::LogPhase;
use crate::observability::{AccessLog, LineStart};
use crate::pdk::body::{BoxError, ProxyBody};
use crate::pdk::{LogEntry, LogLatencies, RequestCtx, ResponseSource};
use crate::snapshot::Snapshot;

/// The bytes the HTTP/1.1 connection wrote for one response (head, body
/// and framing), set before it drops the body.
#[derive(Debug, Clone, Default)]
pub(in crate::proxy) struct BytesSent(Arc<AtomicU64>);

impl BytesSent {
    /// Records the total.
    pub(in crate::proxy) fn record(&self, bytes: u64) {
        self.0.store(bytes, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the end of one request needs, gathered as the pipeline runs.
pub(super) struct Ending {
    started: Instant,
    /// The request came over HTTP/2 (hyper writes the response).
    http2: bool,
    access: Option<(Arc<AccessLog>, LineStart)>,
    /// Present when a plugin may log: the request head's size and the
    /// count of body bytes read.
    request_size: Option<RequestSize>,
}

struct RequestSize {
    head: u64,
    body: Option<Arc<AtomicU64>>,
}

/// The plugins' part of a routed request's end.
pub(super) struct PluginEnding {
    pub(super) phase: LogPhase,
    pub(super) ctx: RequestCtx,
    pub(super) snapshot: Arc<Snapshot>,
    pub(super) source: ResponseSource,
    /// Kong's latency, and the upstream's when something was proxied.
    pub(super) kong: Duration,
    pub(super) upstream: Option<Duration>,
}

impl Ending {
    /// Starts the end of a request whose head is `request` (as received):
    /// its access log line when `log` is on, its size when `measure`.
    pub(super) fn begin(
        log: Option<&Arc<AccessLog>>,
        measure: bool,
        client: IpAddr,
        request: &http::request::Parts,
        request_id: &str,
        started: Instant,
    ) -> Self {
        Ending {
            started,
            http2: request.version == Version::HTTP_2,
            access: log.map(|log| (Arc::clone(log), log.begin(client, request, request_id))),
            request_size: measure.then(|| RequestSize {
                head: request_head_size(request),
                body: None,
            }),
        }
    }

    /// The request body, counted when the request's size is wanted.
    pub(super) fn count_request_body(&mut self, body: ProxyBody) -> ProxyBody {
        match &mut self.request_size {
            Some(size) if !body.is_end_stream() => {
                let count = Arc::new(AtomicU64::new(0));
                size.body = Some(Arc::clone(&count));
                CountedBody { inner: body, count }.boxed()
            }
            _ => body,
        }
    }

    /// The response to send: as it is when nothing waits for its end,
    /// else with its body wrapped to run the end when it is done.
    pub(super) fn respond(
        self,
        response: Response<ProxyBody>,
        plugins: Option<PluginEnding>,
    ) -> Response<ProxyBody> {
        if self.access.is_none() && plugins.is_none() {
            return response;
        }
        let (mut head, body) = response.into_parts();
        let sent = BytesSent::default();
        // Only the log phase needs the response's size.
        let head_size = match (&plugins, self.http2) {
            (None, _) => 0,
            (Some(_), true) => response_head_size(head.status, &head.headers),
            (Some(_), false) => {
                head.extensions.insert(sent.clone());
                0
            }
        };
        let completion = Completion {
            ending: self,
            status: head.status,
            plugins,
            sent,
            head_size,
        };
        let body = LoggedBody {
            inner: body,
            body_bytes: 0,
            completion: Some(completion),
        };
        Response::from_parts(head, body.boxed())
    }
}

/// Everything the end runs with, held by the response body.
struct Completion {
    ending: Ending,
    status: StatusCode,
    plugins: Option<PluginEnding>,
    sent: BytesSent,
    /// The response head's HTTP/1.1 size, for HTTP/2 (0 otherwise).
    head_size: u64,
}

impl Completion {
    /// Finishes the access log line and runs the log phase.
    fn finish(self, body_bytes: u64) {
        let Completion {
            ending,
            status,
            plugins,
            sent,
            head_size,
        } = self;
        if let Some((log, line)) = ending.access {
            log.finish(line, status.as_u16(), body_bytes);
        }
        let Some(plugins) = plugins else {
            return;
        };
        let request_size = ending.request_size.map_or(0, |size| {
            size.head + size.body.map_or(0, |count| count.load(Ordering::Relaxed))
        });
        let response_size = match sent.get() {
            0 => head_size + body_bytes,
            written => written,
        };
        let series = plugins.snapshot.route_series(&plugins.ctx.matched.route.id);
        let entry = LogEntry {
            ctx: &plugins.ctx,
            status,
            source: plugins.source,
            request_size,
            response_size,
            latencies: LogLatencies {
                kong: millis(plugins.kong),
                proxy: plugins.upstream.map(millis),
                request: millis(ending.started.elapsed()),
            },
            series,
        };
        plugins.phase.run(&entry);
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A response body that counts its data bytes and runs its
/// [`Completion`] when it ends or is dropped.
struct LoggedBody {
    inner: ProxyBody,
    body_bytes: u64,
    completion: Option<Completion>,
}

impl LoggedBody {
    fn boxed(self) -> ProxyBody {
        http_body_util::BodyExt::boxed_unsync(self)
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.body_bytes += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(completion) = self.completion.take() {
            completion.finish(self.body_bytes);
        }
    }
}

/// A request body that counts the data bytes read from it.
struct CountedBody {
    inner: ProxyBody,
    count: Arc<AtomicU64>,
}

impl CountedBody {
    fn boxed(self) -> ProxyBody {
        http_body_util::BodyExt::boxed_unsync(self)
    }
}

impl Body for CountedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.count.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request head's size in HTTP/1.1 form: `METHOD target HTTP/x.y`,
/// each field as `name: value`, each line with CRLF, and the empty line
/// (the bytes an HTTP/1.1 client sent, when it wrote one space after each
/// colon, as clients do).
fn request_head_size(request: &http::request::Parts) -> u64 {
    let target = if request.uri.scheme().is_some() && request.version != Version::HTTP_2 {
        request.uri.to_string().len()
    } else {
        request
            .uri
            .path_and_query()
            .map_or(1, |path_and_query| path_and_query.as_str().len())
    };
    let line = request.method.as_str().len() + 1 + target + 1 + "HTTP/1.1".len() + 2;
    (line + fields_size(&request.headers) + 2) as u64
}

/// A response head's size in HTTP/1.1 form.
fn response_head_size(status: StatusCode, headers: &HeaderMap) -> u64 {
    let reason = status.canonical_reason().unwrap_or("<none>");
    let line = "HTTP/1.1 200 ".len() + reason.len() + 2;
    (line + fields_size(headers) + 2) as u64
}

fn fields_size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_sizes_are_their_http_1_1_form() {
        let request = http::Request::get("/path?q=1")
            .header("host", "example.test")
            .header("user-agent", "x")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let text = "GET /path?q=1 HTTP/1.1\r\nhost: example.test\r\nuser-agent: x\r\n\r\n";
        assert_eq!(request_head_size(&request), text.len() as u64);
        let mut headers = HeaderMap::new();
        headers.insert("content-length", "2".parse().unwrap());
        let text = "HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n";
        assert_eq!(
            response_head_size(StatusCode::NOT_FOUND, &headers),
            text.len() as u64
        );
    }
}
