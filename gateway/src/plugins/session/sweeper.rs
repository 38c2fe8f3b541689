//! Removes expired `storage: kong` session rows in the background (Kong
//! relies on its database TTL for this). Expired rows are already
//! unreadable; the sweep only frees their space. Rows go in batches, so a
//! networked database never gets one huge delete, and several nodes
//! sweeping the same table only ever delete rows that are expired.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::plugins::{BackgroundTask, PluginEnv};
use crate::store::SessionStore;

/// How often expired rows are removed.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// The most rows one sweep call deletes.
pub const SWEEP_BATCH: usize = 1000;

/// The sweeper of the node's session rows, when it has a database.
pub fn start(env: &PluginEnv) -> Option<BackgroundTask> {
    let sessions = env.sessions.clone()?;
    Some(Box::pin(sweep_forever(sessions)))
}

async fn sweep_forever(sessions: Arc<dyn SessionStore>) {
    let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        ticks.tick().await;
        match sweep_now(sessions.as_ref()).await {
            0 => {}
            removed => tracing::debug!(removed, "swept expired sessions"),
        }
    }
}

/// Deletes every row expired now, batch by batch; returns how many.
pub async fn sweep_now(sessions: &dyn SessionStore) -> usize {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let mut removed = 0;
    loop {
        match sessions.sweep_expired(now, SWEEP_BATCH).await {
            Ok(count) => {
                removed += count;
                if count < SWEEP_BATCH {
                    return removed;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "sweeping expired sessions failed");
                return removed;
            }
        }
    }
}
