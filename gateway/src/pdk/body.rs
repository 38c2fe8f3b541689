//! Body types of the proxy. Bodies stream: nothing here buffers except
//! [`buffer`], which the plugin runner calls only when a plugin asked for the
//! request body.
//!
//! - [`ProxyBody`]: the one boxed body type used for downstream requests,
//!   upstream requests and both kinds of responses.
//! - [`buffer`]: reads a body into memory up to a cap; past the cap the bytes
//!   read so far are put back in front of the rest ([`Prefixed`]) so the
//!   body still reaches the upstream intact.
//! - [`IdleTimeout`]: fails an upstream response body that stays silent
//!   longer than the service's read timeout, or an HTTP/2 request body
//!   silent longer than the client body timeout ([`ClientBodyTimedOut`],
//!   which the HTTP/1.1 server's own request body fails with too; see
//!   [`is_client_body_timeout`]).

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Any error a body can fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every request and response the proxy handles.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// An empty body.
pub fn empty() -> ProxyBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Boxes any body whose errors convert into [`BoxError`].
pub fn boxed<B>(body: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// The result of [`buffer`].
pub enum Buffered {
    /// The whole body, at most the cap long.
    Complete(Bytes),
    /// The body is longer than the cap: this body replays what was read and
    /// then streams the rest.
    TooLarge(ProxyBody),
}

/// Reads `body` into memory if it is at most `cap` bytes long. A declared
/// length above the cap (`declared_len`, from `Content-Length`) returns
/// [`Buffered::TooLarge`] without reading anything. Trailers are dropped.
pub async fn buffer(
    mut body: ProxyBody,
    cap: usize,
    declared_len: Option<u64>,
) -> Result<Buffered, BoxError> {
    if declared_len.is_some_and(|len| len > cap as u64) {
        return Ok(Buffered::TooLarge(body));
    }
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        collected.extend_from_slice(&data);
        if collected.len() > cap {
            let prefix = collected.freeze();
            return Ok(Buffered::TooLarge(Prefixed::new(prefix, body).into_body()));
        }
    }
    Ok(Buffered::Complete(collected.freeze()))
}

/// A body that yields `prefix` first and then everything of `rest`.
pub struct Prefixed {
    prefix: Option<Bytes>,
    rest: ProxyBody,
}

impl Prefixed {
    /// `prefix` followed by `rest`.
    pub fn new(prefix: Bytes, rest: ProxyBody) -> Self {
        Prefixed {
            prefix: Some(prefix).filter(|bytes| !bytes.is_empty()),
            rest,
        }
    }

    /// Boxes this body.
    pub fn into_body(self) -> ProxyBody {
        self.boxed_unsync()
    }
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let prefix_len = self.prefix.as_ref().map_or(0, |bytes| bytes.len() as u64);
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + prefix_len);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + prefix_len);
        }
        hint
    }
}

/// The error of an [`IdleTimeout`] upstream response body.
#[derive(Debug, thiserror::Error)]
#[error("the upstream sent nothing for {0:?}")]
pub struct IdleTimedOut(Duration);

/// The error of a request body that stayed silent longer than the client
/// body timeout (nginx's `client_body_timeout`): the client gets 408.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the client sent nothing of its request body for {0:?}")]
pub struct ClientBodyTimedOut(pub Duration);

/// Whether `error`, or an error it was caused by, is a
/// [`ClientBodyTimedOut`].
pub fn is_client_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<ClientBodyTimedOut>() {
            return true;
        }
        current = error.source();
    }
    false
}

/// Fails when no frame arrives for `timeout` (the service's read timeout,
/// or the client body timeout).
///
/// The timer is only armed when the body has to wait: a body whose frames
/// are ready when polled (a small response arriving with its head) never
/// touches the timer wheel. The silence is counted from the first wait
/// after the last frame.
pub struct IdleTimeout {
    inner: ProxyBody,
    timeout: Duration,
    /// The running timer, when waiting for a frame.
    deadline: Option<Pin<Box<Sleep>>>,
    /// A frame arrived since the timer was armed.
    progressed: bool,
    /// The error once the timer fires.
    expired: fn(Duration) -> BoxError,
}

impl IdleTimeout {
    /// Wraps an upstream response body `inner` with an idle timeout.
    pub fn new(inner: ProxyBody, timeout: Duration) -> Self {
        IdleTimeout {
            inner,
            timeout,
            deadline: None,
            progressed: false,
            expired: |timeout| Box::new(IdleTimedOut(timeout)),
        }
    }

    /// Wraps a client's request body `inner`: silence fails it with
    /// [`ClientBodyTimedOut`].
    pub fn client_body(inner: ProxyBody, timeout: Duration) -> Self {
        IdleTimeout {
            expired: |timeout| Box::new(ClientBodyTimedOut(timeout)),
            ..IdleTimeout::new(inner, timeout)
        }
    }

    /// Boxes this body.
    pub fn into_body(self) -> ProxyBody {
        self.boxed_unsync()
    }
}

impl Body for IdleTimeout {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.progressed = true;
            return Poll::Ready(frame);
        }
        let progressed = std::mem::take(&mut this.progressed);
        let deadline = match this.deadline.take() {
            Some(mut deadline) => {
                if progressed {
                    deadline.as_mut().reset(Instant::now() + this.timeout);
                }
                deadline
            }
            None => Box::pin(tokio::time::sleep(this.timeout)),
        };
        match this.deadline.insert(deadline).as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err((this.expired)(this.timeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(body: ProxyBody) -> Bytes {
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn buffers_small_bodies() {
        let Buffered::Complete(bytes) = buffer(full("hello"), 10, None).await.unwrap() else {
            panic!("expected a complete body");
        };
        assert_eq!(bytes, "hello");
    }

    #[tokio::test]
    async fn oversized_bodies_are_replayed_intact() {
        let chunks = (0..5).map(|i| Bytes::from(format!("chunk{i}-"))).collect();
        let Buffered::TooLarge(body) = buffer(Chunks(chunks).boxed_unsync(), 8, None)
            .await
            .unwrap()
        else {
            panic!("expected too large");
        };
        assert_eq!(collect(body).await, "chunk0-chunk1-chunk2-chunk3-chunk4-");
    }

    #[tokio::test]
    async fn declared_length_above_cap_is_not_read() {
        let Buffered::TooLarge(body) = buffer(full("abc"), 2, Some(3)).await.unwrap() else {
            panic!("expected too large");
        };
        assert_eq!(collect(body).await, "abc");
    }

    #[tokio::test]
    async fn idle_bodies_time_out() {
        let body = IdleTimeout::new(Silent.boxed_unsync(), Duration::from_millis(20)).into_body();
        let error = body.collect().await.expect_err("times out");
        assert!(error.to_string().contains("sent nothing"));
        assert!(!is_client_body_timeout(error.as_ref()));
        let client = IdleTimeout::client_body(Silent.boxed_unsync(), Duration::from_millis(20));
        let error = client.into_body().collect().await.expect_err("times out");
        assert!(is_client_body_timeout(error.as_ref()), "{error}");
    }

    /// A body yielding one frame per chunk.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
        }
    }

    /// A body that never yields anything.
    struct Silent;

    impl Body for Silent {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Pending
        }
    }
}
