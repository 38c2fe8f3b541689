//! The listener: one dedicated connection per node (not pooled) that
//! `LISTEN`s on [`CHANNEL`] and wakes the store's follower
//! ([`crate::store::Store::follow`]) when another node committed.
//!
//! ```text
//! loop {
//!     connect (backoff 100 ms .. 2 s); LISTEN;  -- LISTEN first, then read:
//!     wake                                      -- nothing falls in between
//!     on a notification: wake
//!     every poll interval: SELECT 1 (is the connection alive?) and wake,
//!         so a missed notification costs one interval at most
//!     connection lost or check timed out: reachable = false, reconnect
//! }
//! ```
//!
//! Waking is cheap when nothing changed: the follower's catch-up reads the
//! revision and stops there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::AsyncMessage;

use super::entities::CHANNEL;
use super::settings::DatabaseUrl;
use super::PgError;

/// The first and the longest wait between two connection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// What the listener needs.
pub struct Listener {
    pub url: DatabaseUrl,
    /// Wakes the follower.
    pub wake: Sender<()>,
    /// The node's view of whether the database answers.
    pub reachable: Arc<AtomicBool>,
    /// The periodic check (Kong's `db_update_frequency`).
    pub poll_interval: Duration,
    /// How long the periodic check may take.
    pub timeout: Duration,
}

impl Listener {
    /// Runs until the follower is gone.
    pub async fn run(self) {
        let mut backoff = BACKOFF.0;
        loop {
            match self.listen().await {
                Ok(Stop::FollowerGone) => return,
                Ok(Stop::ConnectionLost) => backoff = BACKOFF.0,
                Err(error) => {
                    tracing::debug!(%error, "configuration listener cannot connect");
                }
            }
            if self.reachable.swap(false, Ordering::Relaxed) {
                tracing::warn!("lost the database connection; serving the last configuration");
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    }

    /// One connection's life.
    async fn listen(&self) -> Result<Stop, PgError> {
        let tls = self.url.tls()?;
        let (client, connection) = self.url.config.connect(tls).await?;
        let mut notifications = drive(connection);
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        if !self.reachable.swap(true, Ordering::Relaxed) {
            tracing::info!("connected to the database");
        }
        let mut ticks = tokio::time::interval(self.poll_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.wake.send(()).is_err() {
                return Ok(Stop::FollowerGone);
            }
            tokio::select! {
                notification = notifications.recv() => {
                    if notification.is_none() {
                        return Ok(Stop::ConnectionLost);
                    }
                }
                _ = ticks.tick() => {
                    let alive = tokio::time::timeout(self.timeout, client.simple_query("SELECT 1")).await;
                    if !matches!(alive, Ok(Ok(_))) {
                        return Ok(Stop::ConnectionLost);
                    }
                }
            }
        }
    }
}

/// Why a connection's life ended.
enum Stop {
    FollowerGone,
    ConnectionLost,
}

/// Drives `connection` in its own task and hands its notifications over;
/// the receiver ends when the connection does.
fn drive<S, T>(mut connection: tokio_postgres::Connection<S, T>) -> UnboundedReceiver<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(notification))) => {
                    if sender.send(notification.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Some(Ok(_notice)) => {}
                Some(Err(error)) => {
                    tracing::debug!(%error, "configuration listener connection ended");
                    return;
                }
                None => return,
            }
        }
    });
    receiver
}
