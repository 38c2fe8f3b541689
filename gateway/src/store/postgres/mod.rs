//! The PostgreSQL backend: several gateway nodes sharing one database for
//! their configuration and `storage: kong` sessions (Kong's traditional
//! mode, with changes pushed instead of polled).
//!
//! Design:
//!
//! - Every node keeps the whole configuration in memory, as with sled (the
//!   store's state and the proxy's snapshot); PostgreSQL holds the rows, a
//!   gap-free revision and a change log ([`entities`], [`migrations`]).
//! - A write on any node is one transaction, opened before the write is
//!   planned ([`EntityBackend::begin_write`]): it locks the revision row,
//!   so writers on different nodes take turns (bounded by `lock_timeout`);
//!   a node that finds the database ahead catches up first, then plans.
//!   Then it claims `revision + 1` (refused as `Stale` should the write
//!   still be planned on an older revision: the store catches up and plans
//!   again), writes the rows, the change-log entry and `NOTIFY`, and
//!   commits; only then the 2xx. A session's connection that times out is
//!   closed, never returned to the pool mid-transaction.
//! - Every node applies the other nodes' commits in revision order: the
//!   [`listener`] wakes the store's follower on each notification and
//!   every poll interval; the follower reads the log after its revision
//!   ([`EntityBackend::changes_since`]). A node whose revision is older
//!   than the log (trimmed), or that meets a whole-configuration replace,
//!   reloads everything in one snapshot and swaps it in at once.
//! - The proxy never reads PostgreSQL for configuration; only `storage:
//!   kong` session rows ([`sessions`]) are read per request.
//! - Database down: reads and the proxy use memory; writes fail with
//!   [`StoreError::Unavailable`] (503); the listener reconnects with
//!   backoff and the follower catches up. A node started while the
//!   database is down starts from its local copy
//!   ([`crate::store::local_copy`]) of the database it last saw.
//!
//! All connections live on one runtime of their own ([`runtime`]); the
//! URL and its TLS are parsed in [`settings`]. This module and its
//! children are the only code that names tokio-postgres.

pub mod changelog;
pub mod entities;
pub mod listener;
pub mod migrations;
pub mod runtime;
pub mod sessions;
pub mod settings;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use schemas::EntityKind;
use uuid::Uuid;

use super::backend::{EntityBackend, KindRows, Loaded, LoggedChange, RowChange, Since};
use super::error::StoreError;
use super::local_copy;
use super::sessions::SessionStore;
use entities::Writer;
use runtime::PgRuntime;
use sessions::PgSessions;
pub use settings::DatabaseUrl;

/// What went wrong talking to PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error("database TLS: {0}")]
    Tls(String),
    #[error("database runtime: {0}")]
    Runtime(String),
    #[error("the database did not answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(String),
    #[error("the commit's outcome is unknown: {0}")]
    CommitUnknown(String),
    #[error("another node committed since revision {base}")]
    Stale { base: u64 },
    #[error("unexpected data in the database: {0}")]
    Corrupt(String),
    #[error("{}", migrations::NEEDS_BOOTSTRAP)]
    NeedsBootstrap,
    #[error("Database has pending migrations ({0}); run 'gateway migrations up' to proceed")]
    PendingMigrations(String),
    #[error("the database is unreachable ({reason}) and {dir} holds no local copy to start from")]
    NoLocalCopy { reason: String, dir: String },
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => PgError::Postgres(error),
            other => PgError::Pool(other.to_string()),
        }
    }
}

impl PgError {
    /// Whether the database could not be reached or did not answer (as
    /// opposed to refusing a statement).
    pub fn is_unavailable(&self) -> bool {
        match self {
            PgError::Timeout(_) | PgError::Pool(_) | PgError::CommitUnknown(_) => true,
            PgError::Runtime(_) => true,
            PgError::Postgres(error) => match error.as_db_error() {
                None => true,
                // Connection exception, insufficient resources, operator
                // intervention (shutdown, terminated backend).
                Some(db) => matches!(&db.code().code()[..2], "08" | "53" | "57"),
            },
            _ => false,
        }
    }

    /// The store's error for a failed `context`.
    fn into_store(self, context: &'static str) -> StoreError {
        match self {
            PgError::Stale { base } => StoreError::Stale { base },
            PgError::Corrupt(reason) => StoreError::CorruptRow {
                collection: "gw_entities",
                reason,
            },
            unavailable if unavailable.is_unavailable() => {
                StoreError::unavailable(context, unavailable)
            }
            other => StoreError::database(context)(other),
        }
    }
}

/// Records whether the database answered.
pub(crate) fn track<T>(reachable: &AtomicBool, outcome: &Result<T, PgError>) {
    match outcome {
        Ok(_) => reachable.store(true, Ordering::Relaxed),
        Err(error) if error.is_unavailable() => reachable.store(false, Ordering::Relaxed),
        Err(_) => {}
    }
}

/// How a node uses the database.
#[derive(Debug, Clone)]
pub struct PgOptions {
    pub url: DatabaseUrl,
    /// This node's id (recorded with its commits).
    pub node_id: Uuid,
    /// The limit of one database call (Kong's `pg_timeout`).
    pub timeout: Duration,
    /// The periodic check for missed notifications.
    pub poll_interval: Duration,
    /// Pooled connections (the listener has its own).
    pub pool_size: usize,
    /// Where the node-local copy lives (`--data-dir`).
    pub data_dir: PathBuf,
}

/// Entity rows (and sessions) in PostgreSQL. See the module documentation.
pub struct PgBackend {
    runtime: Arc<PgRuntime>,
    pool: Pool,
    node_id: Uuid,
    timeout: Duration,
    /// The database the store's rows come from.
    cluster: Mutex<Option<Uuid>>,
    reachable: Arc<AtomicBool>,
    sessions: Arc<PgSessions>,
    wakeups: Mutex<Option<Receiver<()>>>,
    /// What the first [`EntityBackend::load`] returns (read at open).
    first_load: Mutex<Option<Loaded>>,
    /// The connection of the open write session, its transaction holding
    /// the revision row's lock.
    session: Mutex<Option<Held>>,
}

/// A pooled connection in the middle of a transaction: dropped without
/// [`Held::release`] (an error, a timeout), it is closed rather than put
/// back in the pool, and PostgreSQL rolls the transaction back.
struct Held(Option<deadpool_postgres::Object>);

impl Held {
    fn client(&self) -> Result<&deadpool_postgres::Object, PgError> {
        self.0
            .as_ref()
            .ok_or_else(|| PgError::Runtime("no write session".to_owned()))
    }

    /// The connection is out of its transaction: back to the pool.
    fn release(mut self) {
        drop(self.0.take());
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            drop(deadpool_postgres::Object::take(object));
        }
    }
}

impl PgBackend {
    /// Connects, checks the schema and reads the configuration; when the
    /// database cannot be reached, starts from the local copy instead.
    /// Fails at once on a database that was never bootstrapped or has
    /// pending migrations.
    pub fn open(options: PgOptions) -> Result<Self, PgError> {
        let runtime = Arc::new(PgRuntime::new(options.timeout)?);
        let pool = pool(&options)?;
        let reachable = Arc::new(AtomicBool::new(false));
        let (wake, wakeups) = std::sync::mpsc::channel();
        runtime.spawn(
            listener::Listener {
                url: options.url.clone(),
                wake,
                reachable: Arc::clone(&reachable),
                poll_interval: options.poll_interval,
                timeout: options.timeout,
            }
            .run(),
        );
        let fetched = runtime.block_on(options.timeout * 2, fetch_all(pool.clone()));
        track(&reachable, &fetched);
        let (cluster, loaded) = match fetched {
            Ok((head, loaded)) => (Some(head.cluster), loaded),
            Err(error) if error.is_unavailable() => start_from_local_copy(&options, error)?,
            Err(error) => return Err(error),
        };
        let sessions = Arc::new(PgSessions::new(
            pool.clone(),
            Arc::clone(&runtime),
            Arc::clone(&reachable),
        ));
        Ok(PgBackend {
            runtime,
            pool,
            node_id: options.node_id,
            timeout: options.timeout,
            cluster: Mutex::new(cluster),
            reachable,
            sessions,
            wakeups: Mutex::new(Some(wakeups)),
            first_load: Mutex::new(Some(loaded)),
            session: Mutex::new(None),
        })
    }

    fn take_session(&self) -> Option<Held> {
        self.session
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take()
    }

    fn put_session(&self, held: Option<Held>) {
        *self
            .session
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = held;
    }

    /// Runs a commit (`work`) in the write session (opening one if there
    /// is none), within `limit`. The session stays open after `Stale`; any
    /// other outcome ends it.
    fn in_session<F, Fut>(&self, limit: Duration, work: F) -> Result<u64, PgError>
    where
        F: FnOnce(Arc<Held>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<u64, PgError>> + Send,
    {
        let held = self.take_session();
        let pool = self.pool.clone();
        let timeout = self.timeout;
        let outcome = self.runtime.block_on(limit, async move {
            let held = match held {
                Some(held) => held,
                None => {
                    let held = Held(Some(pool.get().await?));
                    entities::begin_write(held.client()?, timeout).await?;
                    held
                }
            };
            let held = Arc::new(held);
            let outcome = work(Arc::clone(&held)).await;
            let held = Arc::into_inner(held);
            Ok(match (&outcome, held) {
                (Err(PgError::Stale { .. }), held) => (outcome, held),
                (Ok(_), Some(held)) => {
                    held.release();
                    (outcome, None)
                }
                _ => (outcome, None),
            })
        });
        let outcome = match outcome {
            Ok((outcome, held)) => {
                self.put_session(held);
                outcome
            }
            Err(error) => Err(error),
        };
        track(&self.reachable, &outcome);
        outcome
    }

    fn cluster(&self) -> Option<Uuid> {
        *self
            .cluster
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn set_cluster(&self, cluster: Uuid) {
        *self
            .cluster
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(cluster);
    }

    /// Runs `work` with a pooled connection, blocking, within `limit`.
    fn with_client<T, F, Fut>(&self, limit: Duration, work: F) -> Result<T, PgError>
    where
        F: FnOnce(deadpool_postgres::Object) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, PgError>> + Send,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        let outcome = self.runtime.block_on(limit, async move {
            let client = pool.get().await?;
            work(client).await
        });
        track(&self.reachable, &outcome);
        outcome
    }

    fn writer(&self, base: u64) -> Result<Writer, StoreError> {
        let cluster = self.cluster().ok_or(StoreError::Stale { base })?;
        Ok(Writer {
            node: self.node_id,
            cluster,
            base,
        })
    }
}

/// The pool of connections for writes, catch-ups and sessions.
fn pool(options: &PgOptions) -> Result<Pool, PgError> {
    let manager = Manager::from_config(
        options.url.config.clone(),
        options.url.tls()?,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(options.pool_size.max(1))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(options.timeout))
        .create_timeout(Some(options.timeout))
        .recycle_timeout(Some(options.timeout))
        .build()
        .map_err(|error| PgError::Pool(error.to_string()))
}

/// Checks the schema, then reads every row.
async fn fetch_all(pool: Pool) -> Result<(entities::Head, Loaded), PgError> {
    let mut client = pool.get().await?;
    migrations::check(&client).await?;
    entities::load(&mut client).await
}

/// The local copy's rows, when the database cannot be reached at start.
fn start_from_local_copy(
    options: &PgOptions,
    error: PgError,
) -> Result<(Option<Uuid>, Loaded), PgError> {
    let no_copy = |reason: String| PgError::NoLocalCopy {
        reason,
        dir: options.data_dir.display().to_string(),
    };
    let copy = local_copy::read(&options.data_dir)
        .map_err(|read| no_copy(format!("{error}; {read}")))?
        .ok_or_else(|| no_copy(error.to_string()))?;
    tracing::warn!(
        %error,
        revision = copy.loaded.revision,
        "the database is unreachable; serving the local copy of the configuration until it is back"
    );
    Ok((Uuid::parse_str(&copy.origin).ok(), copy.loaded))
}

impl EntityBackend for PgBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn load(&self) -> Result<Loaded, StoreError> {
        let first = self
            .first_load
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        if let Some(loaded) = first {
            return Ok(loaded);
        }
        let (head, loaded) = self
            .with_client(self.timeout, |mut client| async move {
                entities::load(&mut client).await
            })
            .map_err(|error| error.into_store("loading the configuration"))?;
        self.set_cluster(head.cluster);
        Ok(loaded)
    }

    fn commit(&self, base_revision: u64, changes: &[RowChange<'_>]) -> Result<u64, StoreError> {
        let writer = self.writer(base_revision)?;
        let changes: Vec<LoggedChange> = changes
            .iter()
            .map(|change| LoggedChange {
                kind: change.kind,
                id: change.id,
                row: change.row.cloned(),
            })
            .collect();
        self.in_session(self.timeout, move |held| async move {
            entities::commit(held.client()?, writer, changes).await
        })
        .map_err(|error| error.into_store("committing a write"))
    }

    fn replace(&self, base_revision: u64, rows: &[KindRows]) -> Result<u64, StoreError> {
        let writer = self.writer(base_revision)?;
        let rows: Vec<(EntityKind, Uuid, Bytes)> = EntityKind::ALL
            .iter()
            .zip(rows)
            .flat_map(|(kind, rows)| rows.iter().map(|(id, row)| (*kind, *id, row.clone())))
            .collect();
        // A whole configuration may take longer than one statement.
        let limit = self.timeout * 12;
        self.in_session(limit, move |held| async move {
            entities::replace(held.client()?, writer, rows).await
        })
        .map_err(|error| error.into_store("replacing the configuration"))
    }

    fn can_conflict(&self) -> bool {
        true
    }

    fn begin_write(&self) -> Result<Option<u64>, StoreError> {
        self.end_write();
        let pool = self.pool.clone();
        let timeout = self.timeout;
        let outcome = self.runtime.block_on(timeout, async move {
            let held = Held(Some(pool.get().await?));
            let revision = entities::begin_write(held.client()?, timeout).await?;
            Ok((held, revision))
        });
        track(&self.reachable, &outcome);
        let (held, revision) = outcome.map_err(|error| error.into_store("starting a write"))?;
        self.put_session(Some(held));
        Ok(Some(revision))
    }

    fn end_write(&self) {
        let Some(held) = self.take_session() else {
            return;
        };
        // Rolled back in the background; the connection goes back to the
        // pool only once it is out of the transaction.
        self.runtime.spawn(async move {
            let rolled_back = match held.client() {
                Ok(client) => client.batch_execute("ROLLBACK").await.is_ok(),
                Err(_) => false,
            };
            if rolled_back {
                held.release();
            }
        });
    }

    fn changes_since(&self, revision: u64) -> Result<Since, StoreError> {
        let known = self.cluster();
        let (head, since) = self
            // Under the store's write lock: bounded tighter than a replace,
            // so a frozen database holds up local writes for seconds only.
            .with_client(self.timeout * 2, move |mut client| async move {
                entities::changes_since(&mut client, known, revision).await
            })
            .map_err(|error| error.into_store("catching up"))?;
        self.set_cluster(head.cluster);
        Ok(since)
    }

    fn subscribe(&self) -> Option<Receiver<()>> {
        self.wakeups
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take()
    }

    fn origin(&self) -> Option<String> {
        self.cluster().map(|cluster| cluster.to_string())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    fn sessions(&self) -> Arc<dyn SessionStore> {
        Arc::clone(&self.sessions) as Arc<dyn SessionStore>
    }
}

/// Connects one client for a migrations command (on the caller's runtime).
pub async fn connect_once(url: &DatabaseUrl) -> Result<tokio_postgres::Client, PgError> {
    let (client, connection) = url.config.connect(url.tls()?).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "migrations connection ended");
        }
    });
    Ok(client)
}
