//! What ends a wait for a request head: the header read deadline and the
//! start of a graceful shutdown.
//!
//! Both are polled only while a connection waits for bytes, and both are
//! built to cost nothing per request: the [`HeadDeadline`] is a plain
//! instant moved forward for each head, its timer is armed once per
//! connection and re-armed only when it fires early; the [`Shutdown`]
//! listener is registered once per connection.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// How far ahead a deadline beyond `Instant`'s range is put instead (a
/// timeout of "forever").
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The time by which the current request head must have arrived.
pub(super) struct HeadDeadline {
    timeout: Duration,
    at: Instant,
    /// Armed on the first wait; may run behind `at` (see [`Self::poll_expired`]).
    timer: Option<Pin<Box<Sleep>>>,
    /// The timer is registered with the connection's task and pending.
    armed: bool,
}

impl HeadDeadline {
    /// A deadline `timeout` from now.
    pub(super) fn new(timeout: Duration) -> Self {
        HeadDeadline {
            timeout,
            at: deadline_after(timeout),
            timer: None,
            armed: false,
        }
    }

    /// Moves the deadline to `timeout` from now, for the next head.
    pub(super) fn restart(&mut self) {
        self.at = deadline_after(self.timeout);
    }

    /// Ready once the deadline has passed. The timer keeps the deadline of
    /// the head it was armed for; when it fires before the current
    /// deadline it is moved there, so a connection whose requests keep
    /// coming touches the timer wheel about once per timeout, not once per
    /// request. Between firings a call only checks whether the timer has
    /// fired: the timer wakes the task that armed it, so every call must
    /// come from the same task (the connection's).
    pub(super) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let at = self.at;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if self.armed && !timer.is_elapsed() {
            return Poll::Pending;
        }
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                self.armed = true;
                return Poll::Pending;
            }
            if timer.deadline() >= at {
                return Poll::Ready(());
            }
            timer.as_mut().reset(at);
        }
    }
}

/// Now plus `timeout`, or far ahead when that is out of range.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| now + FAR_FUTURE)
}

/// A connection's view of the listener's graceful shutdown.
pub(in crate::proxy) struct Shutdown {
    receiver: watch::Receiver<bool>,
    started: bool,
    /// The wait for the signal, registered on first use (and kept, so the
    /// registration stays).
    waiting: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Shutdown {
    /// Listens to `receiver`, whose value turns `true` when the shutdown
    /// starts (its sender dropped counts as started).
    pub(in crate::proxy) fn new(receiver: watch::Receiver<bool>) -> Self {
        let started = *receiver.borrow();
        Shutdown {
            receiver,
            started,
            waiting: None,
        }
    }

    /// Whether the shutdown has started: one atomic load.
    pub(super) fn is_started(&mut self) -> bool {
        if !self.started {
            self.started = self.receiver.has_changed().unwrap_or(true);
        }
        self.started
    }

    /// Ready once the shutdown has started. The first call registers the
    /// calling task's waker with the shutdown signal; later calls only
    /// check [`Self::is_started`] (no lock), so every call must come from
    /// the same task, which the signal wakes.
    pub(super) fn poll_started(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_started() {
            return Poll::Ready(());
        }
        if self.waiting.is_some() {
            return Poll::Pending;
        }
        let mut receiver = self.receiver.clone();
        let mut waiting: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
            let _ = receiver.wait_for(|started| *started).await;
        });
        if waiting.as_mut().poll(cx).is_ready() {
            self.started = true;
            return Poll::Ready(());
        }
        self.waiting = Some(waiting);
        Poll::Pending
    }

    /// Waits until the shutdown has started.
    pub(in crate::proxy) async fn started(&mut self) {
        std::future::poll_fn(|cx| self.poll_started(cx)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_restarted_deadline_fires_at_the_new_time() {
        let started = Instant::now();
        let mut deadline = HeadDeadline::new(Duration::from_millis(300));
        // Arm the timer for the first deadline.
        assert!(
            std::future::poll_fn(|cx| Poll::Ready(deadline.poll_expired(cx)))
                .await
                .is_pending()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        deadline.restart();
        std::future::poll_fn(|cx| deadline.poll_expired(cx)).await;
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    }

    #[tokio::test]
    async fn a_huge_timeout_does_not_overflow() {
        let mut deadline = HeadDeadline::new(Duration::MAX);
        deadline.restart();
        assert!(
            std::future::poll_fn(|cx| Poll::Ready(deadline.poll_expired(cx)))
                .await
                .is_pending()
        );
    }

    #[tokio::test]
    async fn shutdown_is_seen_by_polls_and_checks() {
        let (sender, _) = watch::channel(false);
        let mut shutdown = Shutdown::new(sender.subscribe());
        assert!(!shutdown.is_started());
        assert!(
            std::future::poll_fn(|cx| Poll::Ready(shutdown.poll_started(cx)))
                .await
                .is_pending()
        );
        sender.send_replace(true);
        shutdown.started().await;
        assert!(shutdown.is_started());
        let mut late = Shutdown::new(sender.subscribe());
        assert!(late.is_started(), "subscribed after the start");
    }
}
