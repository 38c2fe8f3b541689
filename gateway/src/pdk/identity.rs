//! Who a request is: the identities plugins authenticate against
//! ([`Identities`]: consumers and key-auth credentials as the current
//! configuration holds them), the credential a request authenticated with
//! ([`AuthCredential`]), and the upstream identity headers Kong's auth
//! plugins set ([`set_identity_headers`]).

use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use schemas::model::Consumer;
use uuid::Uuid;

/// Consumers and key-auth credentials, looked up the way Kong's PDK and
/// DAO caches do; the proxy's configuration snapshot implements it, so a
/// lookup is a map access, never a database call.
pub trait Identities: Send + Sync {
    /// The consumer with this id.
    fn consumer(&self, id: &Uuid) -> Option<&Arc<Consumer>>;

    /// The consumer `value` names: an id, else (with `by_username`) a
    /// username (Kong's `kong.client.load_consumer`).
    fn load_consumer(&self, value: &str, by_username: bool) -> Option<&Arc<Consumer>>;

    /// The key-auth credential with this key, compared in constant time.
    fn credential_by_key(&self, key: &str) -> Option<&Arc<Credential>>;
}

/// A key-auth credential, ready for lookups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The credential's id.
    pub id: Uuid,
    /// The consumer it authenticates.
    pub consumer_id: Uuid,
    /// The API key.
    pub key: String,
    /// Epoch second after which the key no longer authenticates.
    pub expires_at: Option<i64>,
}

impl Credential {
    /// Whether the credential's TTL has run out at `now` (epoch seconds).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|expires_at| now >= expires_at)
    }
}

/// The credential a request authenticated with (Kong's
/// `kong.client.get_credential()`): a key-auth credential, or the credential
/// id a session restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthCredential {
    /// The credential's id.
    pub id: Uuid,
    /// The consumer it belongs to.
    pub consumer_id: Uuid,
}

/// Upstream header carrying the consumer's id.
pub const CONSUMER_ID: HeaderName = HeaderName::from_static("x-consumer-id");
/// Upstream header carrying the consumer's custom_id.
pub const CONSUMER_CUSTOM_ID: HeaderName = HeaderName::from_static("x-consumer-custom-id");
/// Upstream header carrying the consumer's username.
pub const CONSUMER_USERNAME: HeaderName = HeaderName::from_static("x-consumer-username");
/// Upstream header carrying the credential's id.
pub const CREDENTIAL_IDENTIFIER: HeaderName = HeaderName::from_static("x-credential-identifier");
/// Upstream header set to `true` for an anonymous consumer.
pub const ANONYMOUS_CONSUMER: HeaderName = HeaderName::from_static("x-anonymous-consumer");

/// Sets or clears the upstream identity headers as Kong's auth plugins do:
/// `X-Consumer-ID`, `X-Consumer-Custom-ID` and `X-Consumer-Username` from the
/// consumer (cleared when absent), `X-Credential-Identifier` from the
/// credential, and `X-Anonymous-Consumer: true` only without a credential.
/// Any client-sent copy is replaced or removed.
pub fn set_identity_headers(
    headers: &mut HeaderMap,
    consumer: Option<&Consumer>,
    credential: Option<&AuthCredential>,
) {
    let mut buffer = Uuid::encode_buffer();
    let consumer_id = consumer.map(|consumer| &*consumer.id.hyphenated().encode_lower(&mut buffer));
    set_or_clear(headers, CONSUMER_ID, consumer_id);
    let custom_id = consumer.and_then(|consumer| consumer.custom_id.as_deref());
    set_or_clear(headers, CONSUMER_CUSTOM_ID, custom_id);
    let username = consumer.and_then(|consumer| consumer.username.as_deref());
    set_or_clear(headers, CONSUMER_USERNAME, username);
    let mut buffer = Uuid::encode_buffer();
    let credential_id =
        credential.map(|credential| &*credential.id.hyphenated().encode_lower(&mut buffer));
    set_or_clear(headers, CREDENTIAL_IDENTIFIER, credential_id);
    let anonymous = credential.is_none().then_some("true");
    set_or_clear(headers, ANONYMOUS_CONSUMER, anonymous);
}

/// Replaces every `name` header with `value`, or removes them for `None` (or
/// a value that cannot be a header value).
fn set_or_clear(headers: &mut HeaderMap, name: HeaderName, value: Option<&str>) {
    match value.and_then(|value| HeaderValue::from_str(value).ok()) {
        Some(value) => {
            headers.insert(name, value);
        }
        None => {
            headers.remove(name);
        }
    }
}
