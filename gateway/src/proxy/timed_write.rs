//! Writes bounded in time, the way nginx bounds them with `send_timeout`
//! (to clients) and `proxy_send_timeout` (to upstreams, the service's
//! `write_timeout` in Kong): the timeout runs only while a write is
//! blocked, and restarts whenever bytes go out, so a slow but moving peer
//! is never cut off; one that takes nothing for the whole timeout fails
//! the write with [`io::ErrorKind::TimedOut`].
//!
//! - [`write_all`] and [`flush`]: for the HTTP/1.1 server's responses and
//!   the upstream requests. A write that completes at once (the usual
//!   case) never reads the clock or touches the timer wheel.
//! - [`TimedWriteIo`]: a stream whose writes are bounded the same way, for
//!   the HTTP/2 connections hyper serves.

use std::future::{poll_fn, Future as _};
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How far ahead a deadline beyond `Instant`'s range is put instead.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The error of a write that made no progress for its timeout.
fn timed_out(timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("the peer took nothing for {timeout:?}"),
    )
}

/// Now plus `timeout`, or far ahead when that is out of range.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| now + FAR_FUTURE)
}

/// The timer of one blocked write: armed at the first `Pending`, moved on
/// after progress.
struct Stall<'a> {
    timer: Pin<&'a mut Option<Sleep>>,
    timeout: Duration,
    /// Bytes went out since the timer was (re)armed.
    progressed: bool,
}

impl Stall<'_> {
    /// Called when the write is blocked: ready once it has been blocked,
    /// without progress, for the whole timeout.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.timer.as_mut().as_pin_mut() {
            None => self
                .timer
                .set(Some(tokio::time::sleep_until(deadline_after(self.timeout)))),
            Some(timer) if self.progressed => timer.reset(deadline_after(self.timeout)),
            Some(_) => {}
        }
        self.progressed = false;
        match self.timer.as_mut().as_pin_mut() {
            Some(timer) => timer.poll(cx),
            None => Poll::Pending,
        }
    }
}

/// Writes all of `buf`, failing once the writer has taken nothing for
/// `timeout`.
pub(crate) async fn write_all<W: AsyncWrite + Unpin + ?Sized>(
    io: &mut W,
    mut buf: &[u8],
    timeout: Duration,
) -> io::Result<()> {
    let timer = pin!(None);
    let mut stall = Stall {
        timer,
        timeout,
        progressed: false,
    };
    poll_fn(|cx| {
        while !buf.is_empty() {
            match Pin::new(&mut *io).poll_write(cx, buf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(written)) => {
                    buf = &buf[written..];
                    stall.progressed = true;
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => {
                    return match stall.poll_expired(cx) {
                        Poll::Ready(()) => Poll::Ready(Err(timed_out(timeout))),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
        Poll::Ready(Ok(()))
    })
    .await
}

/// Flushes `io` (TLS may still hold bytes), failing after `timeout`
/// blocked.
pub(crate) async fn flush<W: AsyncWrite + Unpin + ?Sized>(
    io: &mut W,
    timeout: Duration,
) -> io::Result<()> {
    let timer = pin!(None);
    let mut stall = Stall {
        timer,
        timeout,
        progressed: false,
    };
    poll_fn(|cx| match Pin::new(&mut *io).poll_flush(cx) {
        Poll::Ready(flushed) => Poll::Ready(flushed),
        Poll::Pending => match stall.poll_expired(cx) {
            Poll::Ready(()) => Poll::Ready(Err(timed_out(timeout))),
            Poll::Pending => Poll::Pending,
        },
    })
    .await
}

/// A stream whose writes fail once they have been blocked for `timeout`
/// without progress; reads pass through.
pub(crate) struct TimedWriteIo<T> {
    inner: T,
    timeout: Duration,
    /// Armed while a write is blocked.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<T> TimedWriteIo<T> {
    /// `inner` with writes bounded by `timeout`.
    pub(crate) fn new(inner: T, timeout: Duration) -> Self {
        TimedWriteIo {
            inner,
            timeout,
            timer: None,
        }
    }

    /// Bookkeeping after a write or flush poll: bytes written disarm the
    /// timer, a block arms it; a block past the timeout becomes the error.
    /// A flush that completes says nothing about progress and leaves the
    /// timer as it is.
    fn after<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
        progressed: impl FnOnce(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        if let Poll::Ready(result) = &polled {
            if result.as_ref().is_ok_and(progressed) {
                self.timer = None;
            }
            return polled;
        }
        let timeout = self.timeout;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline_after(timeout))));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(timed_out(timeout))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedWriteIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedWriteIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.after(cx, polled, |&written| written > 0)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after(cx, polled, |&written| written > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.after(cx, polled, |()| false)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn a_reader_that_takes_nothing_times_the_write_out() {
        let (mut writer, _reader) = tokio::io::duplex(16);
        let started = std::time::Instant::now();
        let error = write_all(&mut writer, &[0; 64], Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_taking_is_not_cut_off() {
        let (mut writer, mut reader) = tokio::io::duplex(16);
        let reading = tokio::spawn(async move {
            let mut all = Vec::new();
            let mut chunk = [0u8; 16];
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                match reader.read(&mut chunk).await.unwrap() {
                    0 => return all,
                    read => all.extend_from_slice(&chunk[..read]),
                }
            }
        });
        // 8 reads of 20 ms each: 160 ms in all, each wait under 100 ms.
        write_all(&mut writer, &[7; 128], Duration::from_millis(100))
            .await
            .unwrap();
        flush(&mut writer, Duration::from_millis(100))
            .await
            .unwrap();
        drop(writer);
        assert_eq!(reading.await.unwrap(), vec![7; 128]);
    }

    #[tokio::test]
    async fn the_wrapped_stream_times_out_blocked_writes() {
        let (writer, _reader) = tokio::io::duplex(16);
        let mut timed = TimedWriteIo::new(writer, Duration::from_millis(50));
        let error = timed.write_all(&[0; 64]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
