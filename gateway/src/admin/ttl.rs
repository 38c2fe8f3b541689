//! Key-auth credentials with a `ttl`, as Kong's Admin API shows them: an
//! expired credential is gone (404, and left out of listings), and `ttl`
//! reads back as the seconds it has left (Kong stores the expiry and
//! answers `ttl` as what remains; `spec/03-plugins/09-key-auth/
//! 01-api_spec.lua` "creates a key-auth credential with a ttl", "GET
//! #ttl").
//!
//! The store keeps `ttl` as given, with `created_at` (what the proxy and
//! gwctl's flat `/config` read); [`present`] rewrites the answers of the
//! credential endpoints.

use bytes::Bytes;
use http::Method;
use schemas::model::{ttl_expiry, unix_now};
use schemas::EntityKind;
use serde_json::Value;

use super::response::{ApiError, Reply};
use super::routes::Endpoint;

/// Whether `endpoint` answers key-auth credentials.
pub fn answers_credentials(endpoint: &Endpoint) -> bool {
    match endpoint {
        Endpoint::Collection(kind) | Endpoint::Entity(kind, _) => {
            *kind == EntityKind::KeyAuthCredential
        }
        Endpoint::Nested(relation, _) | Endpoint::NestedEntity(relation, _, _) => {
            relation.child == EntityKind::KeyAuthCredential
        }
        _ => false,
    }
}

/// The answer of a credential endpoint as Kong gives it: expired
/// credentials gone (a `GET` of one is 404), `ttl` as the seconds left.
/// `credentials`: the endpoint answers them ([`answers_credentials`]).
pub fn present(credentials: bool, method: &Method, reply: Reply) -> Result<Reply, ApiError> {
    if !credentials {
        return Ok(reply);
    }
    let now = unix_now();
    let Reply { status, body, text } = reply;
    let Some(mut body) = body else {
        return Ok(Reply {
            status,
            body: None,
            text,
        });
    };
    if let Some(Value::Array(data)) = body.get_mut("data") {
        data.retain_mut(|credential| remaining(credential, now));
    } else if body.get("key").is_some() && !remaining(&mut body, now) && *method == Method::GET {
        return Err(ApiError::NotFound);
    }
    Ok(Reply {
        status,
        body: Some(body),
        text,
    })
}

/// [`present`] for a listing of stored rows: each credential with a `ttl`
/// shows the seconds it has left, expired ones are left out; rows without
/// one go as they are.
pub fn present_rows(rows: Vec<Bytes>) -> Vec<Bytes> {
    let now = unix_now();
    rows.into_iter()
        .filter_map(|row| {
            let no_ttl: &[u8] = b"\"ttl\":null";
            if row.windows(no_ttl.len()).any(|window| window == no_ttl) {
                return Some(row);
            }
            let mut credential: Value = serde_json::from_slice(&row).ok()?;
            if !remaining(&mut credential, now) {
                return None;
            }
            serde_json::to_vec(&credential).ok().map(Bytes::from)
        })
        .collect()
}

/// Rewrites a credential's `ttl` to the seconds it has left; `false` when
/// it has expired.
fn remaining(credential: &mut Value, now: i64) -> bool {
    let ttl = credential.get("ttl").and_then(Value::as_i64);
    let created_at = credential.get("created_at").and_then(Value::as_i64);
    let (Some(ttl), Some(created_at)) = (ttl, created_at) else {
        return true;
    };
    let Some(expires_at) = ttl_expiry(ttl, created_at) else {
        return true;
    };
    let left = expires_at.saturating_sub(now);
    if let Some(object) = credential.as_object_mut() {
        object.insert("ttl".to_owned(), Value::from(left.max(0)));
    }
    left > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ttl_reads_as_the_seconds_left_and_expired_ones_go() {
        let mut fresh = json!({"key": "k", "ttl": 100, "created_at": 1_000});
        assert!(remaining(&mut fresh, 1_030));
        assert_eq!(fresh["ttl"], 70);
        let mut expired = json!({"key": "k", "ttl": 10, "created_at": 1_000});
        assert!(!remaining(&mut expired, 1_010));
        let mut forever = json!({"key": "k", "ttl": null, "created_at": 1_000});
        assert!(remaining(&mut forever, 9_999_999));
        assert_eq!(forever["ttl"], Value::Null);
    }

    #[test]
    fn listed_rows_without_a_ttl_go_as_stored() {
        let row = |value: Value| Bytes::from(serde_json::to_vec(&value).unwrap());
        let forever = row(json!({"key": "a", "ttl": null, "created_at": 1_000}));
        let now = unix_now();
        let counting = row(json!({"key": "b", "ttl": 1_000, "created_at": now - 10}));
        let expired = row(json!({"key": "c", "ttl": 10, "created_at": 1_000}));
        let shown = present_rows(vec![forever.clone(), counting, expired]);
        assert_eq!(shown.len(), 2, "the expired one is left out");
        assert_eq!(
            shown[0].as_ptr(),
            forever.as_ptr(),
            "not parsed and written again"
        );
        let left: Value = serde_json::from_slice(&shown[1]).unwrap();
        let left = left["ttl"].as_i64().unwrap();
        assert!((980..=990).contains(&left), "{left}");
    }
}
