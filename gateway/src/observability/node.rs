//! The node's connection and request counters (nginx's `stub_status`,
//! which Kong's `/status` and `kong_nginx_*` metrics report), and the
//! process's memory.
//!
//! Every listener (proxy, Admin API, Status API) counts into one
//! [`NodeStats`], as nginx counts every server's connections:
//!
//! - `accepted` / `handled`: connections accepted (the same number here:
//!   nginx's differ only when it runs out of resources);
//! - `active`: connections open now;
//! - `writing`: requests in progress (from the request head to the
//!   response head; nginx counts until the response is written);
//! - `reading`: 0 (the HTTP/1.1 server does not report when it is
//!   reading a head);
//! - `waiting`: open connections with no request in progress;
//! - `total_requests`: requests received.
//!
//! Each count is one relaxed atomic addition on its own cache line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

/// One counter on its own cache line, so that worker threads updating two
/// different counters do not contend.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

impl Padded {
    fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The node's counters.
#[derive(Debug, Default)]
pub struct NodeStats {
    connections_opened: Padded,
    connections_closed: Padded,
    requests_started: Padded,
    requests_finished: Padded,
}

/// The counters at one moment, as nginx names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerCounts {
    pub connections_accepted: u64,
    pub connections_handled: u64,
    pub connections_active: u64,
    pub connections_reading: u64,
    pub connections_writing: u64,
    pub connections_waiting: u64,
    pub total_requests: u64,
}

impl NodeStats {
    /// Counts an accepted connection until the guard is dropped.
    pub fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.connections_opened.add();
        ConnectionGuard(Arc::clone(self))
    }

    /// Counts a request in progress until the guard is dropped.
    pub fn request_started(&self) -> RequestGuard<'_> {
        self.requests_started.add();
        RequestGuard(self)
    }

    /// The counts now.
    pub fn counts(&self) -> ServerCounts {
        // Read the ends first: a count read before its start could dip
        // below zero.
        let closed = self.connections_closed.get();
        let finished = self.requests_finished.get();
        let opened = self.connections_opened.get();
        let started = self.requests_started.get();
        let active = opened.saturating_sub(closed);
        let writing = started.saturating_sub(finished);
        ServerCounts {
            connections_accepted: opened,
            connections_handled: opened,
            connections_active: active,
            connections_reading: 0,
            connections_writing: writing,
            connections_waiting: active.saturating_sub(writing),
            total_requests: started,
        }
    }
}

/// An open connection; dropping it counts the connection as closed.
#[derive(Debug)]
pub struct ConnectionGuard(Arc<NodeStats>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections_closed.add();
    }
}

/// A request in progress; dropping it counts the request as finished.
#[derive(Debug)]
pub struct RequestGuard<'a>(&'a NodeStats);

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        self.0.requests_finished.add();
    }
}

/// The body of `GET /status` (Admin API and Status API), Kong's shape
/// (`kong/api/routes/health.lua`): `database.reachable`, nginx's
/// `server` counters, `memory` (no Lua VMs or shared dicts here; ours:
/// `resident_set_size`), and ours: the `configuration_revision` served,
/// when known.
pub fn status_document(counts: ServerCounts, reachable: bool, revision: Option<u64>) -> Value {
    let mut document = json!({
        "database": {"reachable": reachable},
        "server": {
            "connections_accepted": counts.connections_accepted,
            "connections_handled": counts.connections_handled,
            "connections_active": counts.connections_active,
            "connections_reading": counts.connections_reading,
            "connections_writing": counts.connections_writing,
            "connections_waiting": counts.connections_waiting,
            "total_requests": counts.total_requests,
        },
        "memory": {
            "workers_lua_vms": [],
            "lua_shared_dicts": {},
            "resident_set_size": resident_memory_bytes().map(|bytes| {
                format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
            }),
        },
    });
    if let (Some(revision), Some(object)) = (revision, document.as_object_mut()) {
        object.insert("configuration_revision".to_owned(), Value::from(revision));
    }
    document
}

/// The process's resident memory in bytes (`/proc/self/statm`), if known.
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_what_is_open() {
        let stats = Arc::new(NodeStats::default());
        let first = stats.connection_opened();
        let second = stats.connection_opened();
        let request = stats.request_started();
        let counts = stats.counts();
        assert_eq!(counts.connections_accepted, 2);
        assert_eq!(counts.connections_active, 2);
        assert_eq!(counts.connections_writing, 1);
        assert_eq!(counts.connections_waiting, 1);
        assert_eq!(counts.total_requests, 1);
        drop((first, request));
        let counts = stats.counts();
        assert_eq!(counts.connections_active, 1);
        assert_eq!(counts.connections_writing, 0);
        assert_eq!(counts.total_requests, 1);
        drop(second);
        assert_eq!(stats.counts().connections_active, 0);
        assert_eq!(stats.counts().connections_handled, 2);
    }
}
