//! Idle keep-alive upstream connections, kept per thread.
//!
//! Each proxy worker thread runs its own single-threaded runtime (see
//! `listener.rs`), and a socket belongs to the runtime that opened it, so
//! each thread keeps its own idle connections in a thread-local map: no
//! lock, no cross-thread wake-up. A connection goes back to its thread's
//! map when its response has been read to the end (see
//! `response_body.rs`) and is taken out for the next request to the same
//! `(tls, host, port)`.
//!
//! Nothing polls an idle connection, so a connection the upstream closed
//! is found out when it is taken: its socket then reads as ready (end of
//! file, or unexpected bytes), and it is dropped for the next one. The most
//! recently used connection is taken first; at most `max_idle_per_host` are
//! kept per target (the oldest goes). Connections idle longer than
//! `idle_timeout` are dropped when met, and a thread that puts connections
//! back sweeps all its lists at most once per [`SWEEP_EVERY`], so
//! connections to targets no longer used are closed too.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, ReadBuf};

use super::connect::Target;
use super::connection::{Connection, Home};

/// The idle lists of one pool and target, without the host name (the
/// inner map's key), so a look-up allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ListKey {
    pool: u64,
    tls: bool,
    port: u16,
}

/// An idle connection and when it became idle.
struct Idle {
    connection: Connection,
    since: Instant,
}

type IdleLists = HashMap<ListKey, HashMap<Arc<str>, VecDeque<Idle>>>;

/// How often a thread sweeps its idle lists for expired connections.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

thread_local! {
    static IDLE: RefCell<IdleLists> = RefCell::new(HashMap::new());
    static LAST_SWEEP: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Distinguishes pools in the thread-local maps (tests run several).
static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(0);

/// One upstream connection pool's settings and identity.
#[derive(Debug)]
pub struct Pool {
    id: u64,
    idle_timeout: Duration,
    max_idle_per_host: usize,
}

impl Pool {
    /// A pool keeping connections idle up to `idle_timeout`, at most
    /// `max_idle_per_host` per target.
    pub fn new(idle_timeout: Duration, max_idle_per_host: usize) -> Self {
        Pool {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            idle_timeout,
            max_idle_per_host,
        }
    }

    /// Where a new connection to `target` goes back to.
    pub fn home(&self, target: Target<'_>) -> Home {
        Home {
            pool: self.id,
            tls: target.tls,
            port: target.port,
            host: Arc::from(target.host),
            max_idle: self.max_idle_per_host,
            idle_timeout: self.idle_timeout,
        }
    }

    /// This thread's most recently used open connection to `target`.
    pub fn take(&self, target: Target<'_>) -> Option<Connection> {
        let key = ListKey {
            pool: self.id,
            tls: target.tls,
            port: target.port,
        };
        IDLE.with_borrow_mut(|lists| {
            let idle = lists.get_mut(&key)?.get_mut(target.host)?;
            while let Some(Idle {
                mut connection,
                since,
            }) = idle.pop_back()
            {
                if since.elapsed() > self.idle_timeout {
                    // The rest idled even longer.
                    idle.clear();
                    return None;
                }
                if still_open(&mut connection) {
                    return Some(connection);
                }
            }
            None
        })
    }
}

/// Puts `connection` back into its thread's idle list, after an exchange
/// that left nothing unread on it.
pub fn put(connection: Connection) {
    if connection.home.max_idle == 0 {
        return;
    }
    let home = connection.home.clone();
    let key = ListKey {
        pool: home.pool,
        tls: home.tls,
        port: home.port,
    };
    let now = Instant::now();
    IDLE.with_borrow_mut(|lists| {
        if sweep_due(now) {
            sweep(lists, now);
        }
        let idle = lists.entry(key).or_default().entry(home.host).or_default();
        if idle.len() >= home.max_idle {
            idle.pop_front();
        }
        idle.push_back(Idle {
            connection,
            since: now,
        });
    });
}

/// Whether this thread's last sweep is [`SWEEP_EVERY`] ago (and notes a
/// sweep at `now` if so).
fn sweep_due(now: Instant) -> bool {
    LAST_SWEEP.with(|last| match last.get() {
        Some(at) if now.duration_since(at) < SWEEP_EVERY => false,
        _ => {
            last.set(Some(now));
            true
        }
    })
}

/// Closes every connection idle longer than its idle timeout, and forgets
/// lists left empty.
fn sweep(lists: &mut IdleLists, now: Instant) {
    lists.retain(|_, hosts| {
        hosts.retain(|_, idle| {
            while idle.front().is_some_and(|oldest| {
                now.duration_since(oldest.since) > oldest.connection.home.idle_timeout
            }) {
                idle.pop_front();
            }
            !idle.is_empty()
        });
        !hosts.is_empty()
    });
}

/// Whether an idle connection can take a request: reading it would block.
/// The runtime answers from the readiness it last saw (reading a response
/// to its end clears it), so this costs a system call only when something
/// arrived while the connection was idle: an end of file, a reset, or bytes
/// no request asked for; each makes the connection unusable. On TLS the
/// read also takes in what TLS sends between records (session tickets)
/// without losing any byte of it.
fn still_open(connection: &mut Connection) -> bool {
    let mut probe = [0u8; 1];
    let mut probe = ReadBuf::new(&mut probe);
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(&mut connection.stream)
        .poll_read(&mut cx, &mut probe)
        .is_pending()
}
