//! The lua-resty-session v4 cookie codec that Kong's session plugin speaks.
//!
//! Everything here is pure: no I/O and no clock (`now`, in epoch seconds, is
//! always a parameter). What lives here:
//!
//! - key material: [`SessionSecret`] (built once per plugin config) and the
//!   per-SID key derivation (HKDF-SHA256, or PBKDF2 for remember cookies);
//! - the 82-byte [`SessionHeader`]: [`seal`] builds one, [`open_header`]
//!   validates one (steps 1-7 of the reference), [`SessionHeader::touch`]
//!   refreshes its idling offset;
//! - the payload: [`decrypt_payload`] (steps 8-9), [`decode_payload`] and
//!   [`find_audience`] (steps 10-11), [`KongSessionData`] for Kong's data;
//! - cookie transport: `Cookie` request header parsing ([`find_cookie`]),
//!   chunked cookies, and `Set-Cookie` building ([`CookieFlags`]).
//!
//! Header layout (little-endian unsigned integers):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | type = 1 |
//! | 1 | 2 | flags |
//! | 3 | 32 | SID |
//! | 35 | 5 | creation time |
//! | 40 | 4 | rolling offset |
//! | 44 | 3 | data size (length of the base64url ciphertext) |
//! | 47 | 16 | AES-256-GCM tag (AAD = bytes 0..47) |
//! | 63 | 3 | idling offset |
//! | 66 | 16 | MAC = HMAC-SHA256(mac key, bytes 0..66), first 16 bytes |

mod header;
mod keys;
mod open;
mod payload;
mod seal;
mod transport;

#[cfg(test)]
mod tests;

pub use header::*;
pub use keys::*;
pub use open::*;
pub use payload::*;
pub use seal::*;
pub use transport::*;

use thiserror::Error;

/// HMAC-SHA256, for the header MAC and key derivation.
pub(super) type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Size of a session id (SID) in bytes.
pub const SID_SIZE: usize = 32;
/// Size of the binary header in bytes.
pub const HEADER_SIZE: usize = 82;
/// Size of the base64url header at the start of every cookie value.
pub const HEADER_ENCODED_SIZE: usize = 110;
/// Length of the textual session id (base64url of the SID).
pub const SESSION_ID_SIZE: usize = 43;

/// Header flag: the payload lives in server-side storage, not in the cookie.
pub const FLAG_STORAGE: u16 = 0x0001;
/// Header flag: the user asked not to be remembered (Kong never sets it).
pub const FLAG_FORGET: u16 = 0x0002;
/// Header flag: the plaintext was raw-DEFLATEd before encryption.
pub const FLAG_DEFLATE: u16 = 0x0010;

/// Largest creation time the 5-byte field holds.
pub const MAX_CREATION_TIME: u64 = (1 << 40) - 1;
/// Largest rolling offset the 4-byte field holds (also the maximum lifetime).
pub const MAX_ROLLING_OFFSET: u64 = (1 << 32) - 1;
/// Largest idling offset the 3-byte field holds.
pub const MAX_IDLING_OFFSET: u64 = (1 << 24) - 1;
/// Largest data size the 3-byte field holds.
pub const MAX_DATA_SIZE: usize = (1 << 24) - 1;
/// Cap for cookie Max-Age and storage TTLs (400 days, RFC 6265bis).
pub const MAX_TTL: u64 = 34_560_000;
/// Idle seconds after which `refresh` re-sends ("touches") the cookie.
pub const TOUCH_THRESHOLD: u64 = 60;
/// Plaintexts longer than this are DEFLATE-compressed when that helps.
pub const COMPRESSION_THRESHOLD: usize = 1024;
/// PBKDF2 iterations for remember cookies (lua-resty-session "Medium").
pub const REMEMBER_PBKDF2_ITERATIONS: u32 = 10_000;
/// Largest single cookie the library emits, name and `=` included.
pub const MAX_COOKIE_SIZE: usize = 4096;
/// Largest number of chunks (`<name>`, `<name>2` … `<name>9`).
pub const MAX_COOKIES: usize = 9;

pub(super) const COOKIE_TYPE: u8 = 1;
pub(super) const FLAGS_AT: usize = 1;
pub(super) const SID_AT: usize = 3;
pub(super) const CREATED_AT_AT: usize = 35;
pub(super) const ROLLING_OFFSET_AT: usize = 40;
pub(super) const DATA_SIZE_AT: usize = 44;
pub(super) const TAG_AT: usize = 47;
pub(super) const IDLING_OFFSET_AT: usize = 63;
pub(super) const MAC_AT: usize = 66;
pub(super) const KEY_SIZE: usize = 32;
pub(super) const IV_SIZE: usize = 12;
pub(super) const ENCRYPTION_USAGE: &[u8] = b"encryption:";
pub(super) const AUTHENTICATION_USAGE: &[u8] = b"authentication:";
/// Inflated plaintexts larger than this are refused (decompression bombs).
pub(super) const MAX_INFLATED_SIZE: usize = MAX_DATA_SIZE;
/// `http-date` cannot represent year 10000 or later; Expires is clamped below it.
pub(super) const MAX_HTTP_DATE: u64 = 253_402_300_799;
/// Attributes appended to expire a cookie immediately (logout).
pub(super) const COOKIE_EXPIRE_FLAGS: &str = "; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0";

/// The 32 random bytes identifying one session (and salting its keys).
pub type Sid = [u8; SID_SIZE];

/// Where the encrypted payload lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageMode {
    /// In the cookie itself, after the header (`storage: cookie`).
    Cookie,
    /// In server-side rows keyed by session id (`storage: kong`).
    Server,
}

/// Which of the two cookies a header belongs to; it selects the key derivation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieKind {
    /// The normal browser-session cookie (HKDF keys).
    Session,
    /// The persistent "remember me" cookie (PBKDF2 encryption key).
    Remember,
}

/// Why a cookie did not open. Callers treat every variant as "no session".
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum OpenError {
    /// Step 1: the value is shorter than the 110-character header.
    #[error("invalid session header: cookie too short")]
    HeaderTooShort,
    /// Step 1: the header is not valid unpadded base64url.
    #[error("unable to base64url decode session header")]
    HeaderNotBase64,
    /// Step 2: the type byte is not 1.
    #[error("invalid session cookie type {0}")]
    InvalidType(u8),
    /// Step 3: the STORAGE flag disagrees with the configured storage.
    #[error("invalid session flags: storage mismatch")]
    StorageMismatch,
    /// Step 4: the session is older than the 4-byte offsets can express.
    #[error("session lifetime exceeded")]
    LifetimeExceeded,
    /// Step 4: older than the absolute timeout.
    #[error("session absolute timeout exceeded")]
    AbsoluteTimeout,
    /// Step 5: not renewed within the rolling timeout.
    #[error("session rolling timeout exceeded")]
    RollingTimeout,
    /// Step 6: idle for longer than the idling timeout.
    #[error("session idling timeout exceeded")]
    IdlingTimeout,
    /// Step 6: a remember cookie must carry an idling offset of 0.
    #[error("invalid session idling offset")]
    RememberIdlingOffset,
    /// Step 7: the header MAC does not match (tampered or another secret).
    #[error("invalid session message authentication code")]
    BadMac,
    /// Step 8: no payload was found (storage row or cookie chunk missing).
    #[error("session payload not found")]
    PayloadMissing,
    /// Step 8 (`storage: kong`): the session store could not be asked (its
    /// database is down). The request goes on without a session, but a
    /// logout still expires the cookie.
    #[error("session storage unavailable")]
    StorageUnavailable,
    /// Step 8: the payload cannot fit in the allowed cookies.
    #[error("session payload too large for cookies")]
    PayloadTooLarge,
    /// Step 9: the payload length differs from the header's data size.
    #[error("invalid session payload size: expected {expected}, got {actual}")]
    PayloadSizeMismatch {
        /// Data size announced by the header.
        expected: usize,
        /// Length of the payload that was found.
        actual: usize,
    },
    /// Step 9: the payload is not valid unpadded base64url.
    #[error("unable to base64url decode session data")]
    PayloadNotBase64,
    /// Step 9: AES-GCM authentication failed (tampered or foreign payload).
    #[error("unable to decrypt session data")]
    DecryptFailed,
    /// Step 9: the DEFLATE stream is corrupt or inflates too large.
    #[error("unable to inflate session data")]
    InflateFailed,
    /// Step 10: the plaintext is not JSON.
    #[error("unable to json decode session data")]
    InvalidJson,
    /// Step 10: the JSON is not `[[data, audience, subject], ...]`.
    #[error("invalid session data structure")]
    InvalidPayloadShape,
    /// Step 11: the configured audience has no entry.
    #[error("missing session audience")]
    MissingAudience,
}

/// Why a session could not be sealed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SealError {
    /// The creation time does not fit in 5 bytes.
    #[error("session maximum creation time exceeded")]
    CreatedAtOutOfRange,
    /// The rolling offset does not fit in 4 bytes.
    #[error("session maximum rolling offset exceeded")]
    RollingOffsetOutOfRange,
    /// The idling offset does not fit in 3 bytes.
    #[error("session maximum idling offset exceeded")]
    IdlingOffsetOutOfRange,
    /// The encoded ciphertext does not fit in the 3-byte data size.
    #[error("session maximum data size exceeded")]
    DataTooLarge,
    /// AES-GCM refused the plaintext.
    #[error("unable to encrypt session data")]
    EncryptFailed,
}
