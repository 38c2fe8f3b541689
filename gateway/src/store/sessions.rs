//! [`SessionStore`]: server-side session rows for the session plugin's
//! `storage: kong` (Kong's `sessions` table: `session_id`, `data`,
//! `expires`), behind an async trait so that a networked backend never
//! blocks a proxy worker.
//!
//! Expiry follows Kong's database TTL: a row is readable while
//! `now <= expires` and gone once `expires < now`. Rows are swept in
//! batches by [`SessionStore::sweep_expired`].

use std::future::Future;
use std::pin::Pin;

use super::error::BackendError;

/// A boxed future of a session store call.
pub type SessionFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SessionError>> + Send + 'a>>;

/// Why a session store call failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The database failed or cannot be reached.
    #[error("session storage error: {0}")]
    Backend(#[source] BackendError),
    /// The session id is empty, too long, or not visible ASCII.
    #[error("invalid session id")]
    InvalidSessionId,
    /// A stored row could not be decoded.
    #[error("corrupt session row for {0:?}")]
    CorruptRecord(String),
}

impl SessionError {
    /// A backend failure.
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        SessionError::Backend(Box::new(error))
    }
}

/// Longest session id accepted (Kong's are 43 characters).
pub const MAX_SESSION_ID_SIZE: usize = 255;

/// Rejects ids a store cannot key on safely: empty, longer than
/// [`MAX_SESSION_ID_SIZE`], or not visible ASCII.
pub fn validate_session_id(session_id: &str) -> Result<(), SessionError> {
    let valid = !session_id.is_empty()
        && session_id.len() <= MAX_SESSION_ID_SIZE
        && session_id.bytes().all(|byte| byte.is_ascii_graphic());
    if valid {
        Ok(())
    } else {
        Err(SessionError::InvalidSessionId)
    }
}

/// Session rows keyed by session id. Every method validates the id with
/// [`validate_session_id`]. A write has reached the database (durably for
/// a networked one) when its future completes with `Ok`.
pub trait SessionStore: Send + Sync + 'static {
    /// Stores `data` under `session_id` until `expires` (epoch seconds),
    /// replacing any previous row of that id.
    fn insert<'a>(
        &'a self,
        session_id: &'a str,
        data: &'a str,
        expires: u64,
    ) -> SessionFuture<'a, ()>;

    /// The data of `session_id`, or `None` when absent or expired at `now`.
    fn get<'a>(&'a self, session_id: &'a str, now: u64) -> SessionFuture<'a, Option<String>>;

    /// Moves the expiry of an existing row (on renewal the old row gets
    /// `now + stale_ttl`). Returns `false` when there is no such row.
    fn set_expiry<'a>(&'a self, session_id: &'a str, expires: u64) -> SessionFuture<'a, bool>;

    /// Deletes the row of `session_id` (logout). Returns `false` when there
    /// was no such row.
    fn remove<'a>(&'a self, session_id: &'a str) -> SessionFuture<'a, bool>;

    /// Deletes up to `batch` rows that expired before `now` and returns how
    /// many it deleted; callers repeat while a full batch comes back.
    fn sweep_expired(&self, now: u64, batch: usize) -> SessionFuture<'_, usize>;
}
