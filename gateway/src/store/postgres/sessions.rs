//! [`PgSessions`]: the session plugin's `storage: kong` rows in Kong's
//! `sessions` table, shared by every node.
//!
//! - Each call is one prepared statement, no transaction, no NOTIFY (a
//!   NOTIFY takes a global lock at commit; session writes are per login).
//!   Its future completes once PostgreSQL committed the row, so the
//!   response carrying `Set-Cookie` leaves after the row exists: a second
//!   request through any other node finds it (Kong writes it from a timer
//!   after the response).
//! - Calls run on the node's database runtime, each within the configured
//!   timeout. A failed lookup is an error the plugin treats as "no session"
//!   (fail closed); the cookie stays valid for when the database is back.
//! - A logout whose delete fails is remembered (up to
//!   [`MAX_PENDING_REMOVALS`] ids): this node answers those sessions as
//!   absent and retries the deletes every second until they succeed.
//! - Sweeps delete expired rows in batches picked with `FOR UPDATE SKIP
//!   LOCKED`, so nodes sweeping at the same time take different rows.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;

use super::runtime::PgRuntime;
use super::PgError;
use crate::store::sessions::{validate_session_id, SessionError, SessionFuture, SessionStore};

/// The most logouts remembered for a retry while the database is down.
pub const MAX_PENDING_REMOVALS: usize = 10_000;

/// How often remembered logouts are retried.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

const SELECT: &str = "SELECT data FROM sessions WHERE session_id = $1 AND expires >= $2";
const UPSERT: &str = "INSERT INTO sessions (session_id, expires, data, ttl) \
     VALUES ($1, $2::bigint, $3, to_timestamp($2::bigint)) \
     ON CONFLICT (session_id) DO UPDATE \
     SET data = EXCLUDED.data, expires = EXCLUDED.expires, ttl = EXCLUDED.ttl";
const SET_EXPIRY: &str =
    "UPDATE sessions SET expires = $2::bigint, ttl = to_timestamp($2::bigint) WHERE session_id = $1";
const DELETE: &str = "DELETE FROM sessions WHERE session_id = $1";
const DELETE_MANY: &str = "DELETE FROM sessions WHERE session_id = ANY($1)";
const SWEEP: &str = "DELETE FROM sessions WHERE id IN (\
     SELECT id FROM sessions WHERE expires < $1 ORDER BY expires LIMIT $2 \
     FOR UPDATE SKIP LOCKED)";

/// Session rows in PostgreSQL. See the module documentation.
pub struct PgSessions {
    pool: Pool,
    runtime: Arc<PgRuntime>,
    reachable: Arc<AtomicBool>,
    pending_removals: Arc<Mutex<HashSet<String>>>,
}

impl PgSessions {
    pub(super) fn new(pool: Pool, runtime: Arc<PgRuntime>, reachable: Arc<AtomicBool>) -> Self {
        let sessions = PgSessions {
            pool,
            runtime,
            reachable,
            pending_removals: Arc::default(),
        };
        sessions.retry_removals_forever();
        sessions
    }

    /// Runs one statement's work on the database runtime.
    async fn call<T, F, Fut>(&self, work: F) -> Result<T, SessionError>
    where
        F: FnOnce(Pool) -> Fut,
        Fut: std::future::Future<Output = Result<T, PgError>> + Send + 'static,
        T: Send + 'static,
    {
        let outcome = self.runtime.run(work(self.pool.clone())).await;
        super::track(&self.reachable, &outcome);
        outcome.map_err(SessionError::backend)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.pending_removals
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Retries the remembered logouts every second.
    fn retry_removals_forever(&self) {
        let pool = self.pool.clone();
        let pending = Arc::clone(&self.pending_removals);
        self.runtime.spawn(async move {
            let mut ticks = tokio::time::interval(RETRY_INTERVAL);
            loop {
                ticks.tick().await;
                let ids: Vec<String> = {
                    let pending = pending.lock().unwrap_or_else(|poison| poison.into_inner());
                    pending.iter().cloned().collect()
                };
                if ids.is_empty() {
                    continue;
                }
                if delete_many(&pool, &ids).await.is_ok() {
                    let mut pending = pending.lock().unwrap_or_else(|poison| poison.into_inner());
                    for id in &ids {
                        pending.remove(id);
                    }
                    tracing::info!(
                        count = ids.len(),
                        "deleted sessions logged out while the database was down"
                    );
                }
            }
        });
    }
}

async fn delete_many(pool: &Pool, ids: &[String]) -> Result<u64, PgError> {
    let client = pool.get().await?;
    Ok(client.execute(DELETE_MANY, &[&ids]).await?)
}

impl SessionStore for PgSessions {
    fn insert<'a>(
        &'a self,
        session_id: &'a str,
        data: &'a str,
        expires: u64,
    ) -> SessionFuture<'a, ()> {
        Box::pin(async move {
            validate_session_id(session_id)?;
            let (id, data) = (session_id.to_owned(), data.to_owned());
            let expires = clamp(expires);
            self.call(|pool| async move {
                let client = pool.get().await?;
                let statement = client.prepare_cached(UPSERT).await?;
                client.execute(&statement, &[&id, &expires, &data]).await?;
                Ok(())
            })
            .await
        })
    }

    fn get<'a>(&'a self, session_id: &'a str, now: u64) -> SessionFuture<'a, Option<String>> {
        Box::pin(async move {
            validate_session_id(session_id)?;
            if self.pending().contains(session_id) {
                return Ok(None);
            }
            let id = session_id.to_owned();
            let now = clamp(now);
            self.call(|pool| async move {
                let client = pool.get().await?;
                let statement = client.prepare_cached(SELECT).await?;
                let row = client.query_opt(&statement, &[&id, &now]).await?;
                Ok(row.map(|row| row.get::<_, String>(0)))
            })
            .await
        })
    }

    fn set_expiry<'a>(&'a self, session_id: &'a str, expires: u64) -> SessionFuture<'a, bool> {
        Box::pin(async move {
            validate_session_id(session_id)?;
            let id = session_id.to_owned();
            let expires = clamp(expires);
            self.call(|pool| async move {
                let client = pool.get().await?;
                let statement = client.prepare_cached(SET_EXPIRY).await?;
                Ok(client.execute(&statement, &[&id, &expires]).await? > 0)
            })
            .await
        })
    }

    fn remove<'a>(&'a self, session_id: &'a str) -> SessionFuture<'a, bool> {
        Box::pin(async move {
            validate_session_id(session_id)?;
            let id = session_id.to_owned();
            let removed = self
                .call(|pool| async move {
                    let client = pool.get().await?;
                    let statement = client.prepare_cached(DELETE).await?;
                    Ok(client.execute(&statement, &[&id]).await? > 0)
                })
                .await;
            if removed.is_err() {
                let mut pending = self.pending();
                if pending.len() < MAX_PENDING_REMOVALS {
                    pending.insert(session_id.to_owned());
                }
            }
            removed
        })
    }

    fn sweep_expired(&self, now: u64, batch: usize) -> SessionFuture<'_, usize> {
        Box::pin(async move {
            let now = clamp(now);
            let batch = i64::try_from(batch).unwrap_or(i64::MAX);
            self.call(|pool| async move {
                let client = pool.get().await?;
                let statement = client.prepare_cached(SWEEP).await?;
                let removed = client.execute(&statement, &[&now, &batch]).await?;
                Ok(usize::try_from(removed).unwrap_or(usize::MAX))
            })
            .await
        })
    }
}

/// Epoch seconds as PostgreSQL's `bigint`.
fn clamp(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}
