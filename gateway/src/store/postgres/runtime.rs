//! [`PgRuntime`]: the tokio runtime every PostgreSQL connection of the
//! node lives on.
//!
//! The store's API is synchronous (Admin API handlers run on tokio's
//! blocking pool) while tokio-postgres is async, and session lookups come
//! from the proxy's per-core runtimes. One small runtime of its own drives
//! every connection and the listener, so that no caller's runtime (or lack
//! of one) matters: sync callers wait on [`PgRuntime::block_on`], async
//! callers await [`PgRuntime::run`]. Each call is bounded by the
//! configured timeout.

use std::future::Future;
use std::time::Duration;

use super::PgError;

/// Threads of the runtime: connections are I/O-bound, two keep a slow
/// query from delaying the listener.
const THREADS: usize = 2;

/// The runtime of the PostgreSQL connections. Dropping it stops every
/// connection.
pub struct PgRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    timeout: Duration,
}

impl PgRuntime {
    /// A runtime whose calls give up after `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, PgError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(THREADS)
            .thread_name("postgres")
            .enable_all()
            .build()
            .map_err(|error| PgError::Runtime(error.to_string()))?;
        Ok(PgRuntime {
            runtime: Some(runtime),
            timeout,
        })
    }

    /// The configured time limit of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        match &self.runtime {
            Some(runtime) => runtime.handle(),
            None => unreachable!("the runtime is only taken when dropped"),
        }
    }

    /// Spawns a task for the node's lifetime (the listener).
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.handle().spawn(task);
    }

    /// Runs `work` on the runtime and waits for it from async code, for at
    /// most the timeout.
    pub async fn run<T, F>(&self, work: F) -> Result<T, PgError>
    where
        F: Future<Output = Result<T, PgError>> + Send + 'static,
        T: Send + 'static,
    {
        let timeout = self.timeout;
        let task = self
            .handle()
            .spawn(async move { tokio::time::timeout(timeout, work).await });
        match task.await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_elapsed)) => Err(PgError::Timeout(timeout)),
            Err(error) => Err(PgError::Runtime(error.to_string())),
        }
    }

    /// Runs `work` on the runtime and blocks the calling thread until it is
    /// done (for at most `limit`). Never call it from async code.
    pub fn block_on<T, F>(&self, limit: Duration, work: F) -> Result<T, PgError>
    where
        F: Future<Output = Result<T, PgError>> + Send + 'static,
        T: Send + 'static,
    {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        self.handle().spawn(async move {
            let outcome = match tokio::time::timeout(limit, work).await {
                Ok(outcome) => outcome,
                Err(_elapsed) => Err(PgError::Timeout(limit)),
            };
            let _ = sender.send(outcome);
        });
        receiver
            .recv()
            .unwrap_or_else(|_| Err(PgError::Runtime("the database task ended".to_owned())))
    }
}

impl Drop for PgRuntime {
    fn drop(&mut self) {
        // Dropping a runtime inside async code panics; this does not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
