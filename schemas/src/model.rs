//! Typed views of canonical entities.
//!
//! The schema engine ([`crate::schema`]) validates raw JSON and fills every
//! default, producing the canonical form. These structs deserialize that form
//! so the gateway can compile routes and plugins without re-checking fields.
//! Every field is present in canonical JSON (unset optional fields are
//! `null`), so deserializing a canonical entity never fails.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A reference to another entity, as stored: `{"id": "<uuid>"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ForeignKey {
    pub id: Uuid,
}

/// A Gateway Service: where matched requests are proxied to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub id: Uuid,
    pub name: Option<String>,
    pub protocol: String,
    pub host: String,
    pub port: u16,
    pub path: Option<String>,
    pub retries: u32,
    pub connect_timeout: u64,
    pub write_timeout: u64,
    pub read_timeout: u64,
    pub enabled: bool,
    pub tls_verify: Option<bool>,
    pub tls_verify_depth: Option<u8>,
    pub tags: Option<Vec<String>>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

/// A Route: the rules that pick a Service for a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub id: Uuid,
    pub name: Option<String>,
    pub protocols: Vec<String>,
    pub methods: Option<Vec<String>>,
    pub hosts: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    pub headers: Option<BTreeMap<String, Vec<String>>>,
    pub snis: Option<Vec<String>>,
    pub strip_path: bool,
    pub preserve_host: bool,
    pub regex_priority: i64,
    pub path_handling: String,
    pub https_redirect_status_code: u16,
    pub request_buffering: bool,
    pub response_buffering: bool,
    pub service: Option<ForeignKey>,
    pub tags: Option<Vec<String>>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

/// A Consumer: someone who calls the APIs behind the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    pub id: Uuid,
    pub username: Option<String>,
    pub custom_id: Option<String>,
    pub tags: Option<Vec<String>>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

/// A plugin instance with its scope. `config` is canonical for the plugin's
/// schema; see [`crate::plugins`] for the typed configs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plugin {
    pub id: Uuid,
    pub name: String,
    pub instance_name: Option<String>,
    pub config: serde_json::Value,
    pub enabled: bool,
    pub protocols: Vec<String>,
    pub service: Option<ForeignKey>,
    pub route: Option<ForeignKey>,
    pub consumer: Option<ForeignKey>,
    pub tags: Option<Vec<String>>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

/// A key-auth credential of a consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAuthCredential {
    pub id: Uuid,
    pub key: String,
    pub consumer: ForeignKey,
    /// Lifetime in seconds from `created_at`; `None` never expires.
    pub ttl: Option<u64>,
    pub tags: Option<Vec<String>>,
    pub created_at: Option<i64>,
}

impl KeyAuthCredential {
    /// Epoch second after which the credential no longer authenticates.
    pub fn expires_at(&self) -> Option<i64> {
        let ttl = i64::try_from(self.ttl?).unwrap_or(i64::MAX);
        ttl_expiry(ttl, self.created_at?)
    }
}

/// The epoch second from which a credential with a `ttl` of that many
/// seconds, created at `created_at`, no longer authenticates; `None` for a
/// `ttl` of 0 (or below), which never expires (Kong's key-auth `ttl`).
pub fn ttl_expiry(ttl: i64, created_at: i64) -> Option<i64> {
    (ttl > 0).then(|| created_at.saturating_add(ttl))
}

/// Epoch seconds now (`created_at` of new rows, `ttl` checks).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}
