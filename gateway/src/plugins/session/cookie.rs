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

use std::borrow::Cow;
use std::fmt;
use std::io::{Read, Write};
use std::time::{Duration, UNIX_EPOCH};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

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

const COOKIE_TYPE: u8 = 1;
const FLAGS_AT: usize = 1;
const SID_AT: usize = 3;
const CREATED_AT_AT: usize = 35;
const ROLLING_OFFSET_AT: usize = 40;
const DATA_SIZE_AT: usize = 44;
const TAG_AT: usize = 47;
const IDLING_OFFSET_AT: usize = 63;
const MAC_AT: usize = 66;
const KEY_SIZE: usize = 32;
const IV_SIZE: usize = 12;
const ENCRYPTION_USAGE: &[u8] = b"encryption:";
const AUTHENTICATION_USAGE: &[u8] = b"authentication:";
/// Inflated plaintexts larger than this are refused (decompression bombs).
const MAX_INFLATED_SIZE: usize = MAX_DATA_SIZE;
/// `http-date` cannot represent year 10000 or later; Expires is clamped below it.
const MAX_HTTP_DATE: u64 = 253_402_300_799;
/// Attributes appended to expire a cookie immediately (logout).
const COOKIE_EXPIRE_FLAGS: &str = "; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0";

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

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

/// The plugin secret, pre-hashed and HKDF-extracted once per plugin config.
#[derive(Clone)]
pub struct SessionSecret {
    /// SHA-256 of the configured secret (the "ikm"); PBKDF2's password.
    ikm: [u8; KEY_SIZE],
    /// HKDF state holding the PRK extracted from `ikm` with an empty salt.
    hkdf: Hkdf<Sha256>,
}

impl SessionSecret {
    /// Hashes `secret` (ikm = SHA-256(secret)) and runs HKDF-Extract once.
    pub fn new(secret: &[u8]) -> Self {
        let ikm: [u8; KEY_SIZE] = Sha256::digest(secret).into();
        // An empty salt and RFC 5869's default all-zero salt give the same
        // PRK, because HMAC zero-pads its key to the block size either way.
        let hkdf = Hkdf::<Sha256>::new(Some(&[]), &ikm);
        Self { ikm, hkdf }
    }

    /// HKDF-Expand(PRK, `usage` ‖ SID) into `okm`.
    fn expand(&self, usage: &[u8], sid: &Sid, okm: &mut [u8]) {
        // Infallible: HKDF-SHA256 can expand up to 8160 bytes; we ask for <= 44.
        self.hkdf
            .expand_multi_info(&[usage, sid], okm)
            .expect("HKDF output length is a small constant");
    }

    /// The HMAC-SHA256 key authenticating the header of session `sid`.
    fn mac_key(&self, sid: &Sid) -> [u8; KEY_SIZE] {
        let mut key = [0u8; KEY_SIZE];
        self.expand(AUTHENTICATION_USAGE, sid, &mut key);
        key
    }

    /// The AES-256-GCM key and IV for session `sid`.
    fn encryption_key(&self, sid: &Sid, kind: CookieKind) -> EncryptionKey {
        let mut okm = [0u8; KEY_SIZE + IV_SIZE];
        match kind {
            CookieKind::Session => self.expand(ENCRYPTION_USAGE, sid, &mut okm),
            CookieKind::Remember => {
                let mut salt = Vec::with_capacity(ENCRYPTION_USAGE.len() + SID_SIZE);
                salt.extend_from_slice(ENCRYPTION_USAGE);
                salt.extend_from_slice(sid);
                pbkdf2::pbkdf2_hmac::<Sha256>(
                    &self.ikm,
                    &salt,
                    REMEMBER_PBKDF2_ITERATIONS,
                    &mut okm,
                );
            }
        }
        EncryptionKey::from_okm(&okm)
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(..)")
    }
}

/// AES-256-GCM key and 12-byte IV derived for one SID.
struct EncryptionKey {
    cipher: Aes256Gcm,
    iv: [u8; IV_SIZE],
}

impl EncryptionKey {
    /// Splits 44 bytes of key material into the key (0..32) and IV (32..44).
    fn from_okm(okm: &[u8; KEY_SIZE + IV_SIZE]) -> Self {
        let mut key = [0u8; KEY_SIZE];
        let mut iv = [0u8; IV_SIZE];
        key.copy_from_slice(&okm[..KEY_SIZE]);
        iv.copy_from_slice(&okm[KEY_SIZE..]);
        Self {
            cipher: Aes256Gcm::new(&key.into()),
            iv,
        }
    }
}

/// A fresh HMAC-SHA256 keyed by `mac_key`.
fn hmac_sha256(mac_key: &[u8; KEY_SIZE]) -> HmacSha256 {
    // Infallible: HMAC accepts keys of any length.
    <HmacSha256 as Mac>::new_from_slice(mac_key).expect("HMAC takes any key length")
}

/// Returns 32 fresh random bytes for a new session id.
pub fn generate_sid() -> Sid {
    let mut sid = [0u8; SID_SIZE];
    rand::thread_rng().fill_bytes(&mut sid);
    sid
}

/// The textual session id: base64url (no padding) of the SID, 43 characters.
/// Kong's `sessions.session_id` column and the `Session-Id` header hold it.
pub fn session_id_string(sid: &Sid) -> String {
    URL_SAFE_NO_PAD.encode(sid)
}

// ---------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------

/// Reads a little-endian unsigned integer of up to 8 bytes.
fn read_le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0, |value, byte| (value << 8) | u64::from(*byte))
}

/// Writes the low `out.len()` bytes of `value`, little-endian.
fn write_le(out: &mut [u8], value: u64) {
    for (index, byte) in out.iter_mut().enumerate() {
        *byte = (value >> (8 * index)) as u8;
    }
}

/// A validated (opened or freshly sealed) 82-byte session header.
///
/// It also keeps the MAC key derived for its SID, so that a `touch` later
/// in the same request needs no second derivation.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionHeader {
    bytes: [u8; HEADER_SIZE],
    kind: CookieKind,
    mac_key: [u8; KEY_SIZE],
}

impl SessionHeader {
    /// The raw 82 header bytes.
    pub fn as_bytes(&self) -> &[u8; HEADER_SIZE] {
        &self.bytes
    }

    /// The header as it appears in the cookie (110 base64url characters).
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.bytes)
    }

    /// Which cookie this header belongs to.
    pub fn kind(&self) -> CookieKind {
        self.kind
    }

    /// The flag bits (`FLAG_*`).
    pub fn flags(&self) -> u16 {
        read_le(&self.bytes[FLAGS_AT..SID_AT]) as u16
    }

    /// True when the payload lives in server-side storage.
    pub fn uses_server_storage(&self) -> bool {
        self.flags() & FLAG_STORAGE != 0
    }

    /// True when the plaintext was DEFLATE-compressed.
    pub fn is_deflated(&self) -> bool {
        self.flags() & FLAG_DEFLATE != 0
    }

    /// The 32-byte session id.
    pub fn sid(&self) -> Sid {
        let mut sid = [0u8; SID_SIZE];
        sid.copy_from_slice(&self.bytes[SID_AT..CREATED_AT_AT]);
        sid
    }

    /// The textual session id (base64url of the SID).
    pub fn session_id(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.bytes[SID_AT..CREATED_AT_AT])
    }

    /// Creation time of the session (epoch seconds; kept across renewals).
    pub fn created_at(&self) -> u64 {
        read_le(&self.bytes[CREATED_AT_AT..ROLLING_OFFSET_AT])
    }

    /// Seconds from creation to the last renewal.
    pub fn rolling_offset(&self) -> u64 {
        read_le(&self.bytes[ROLLING_OFFSET_AT..DATA_SIZE_AT])
    }

    /// Length of the base64url ciphertext.
    pub fn data_size(&self) -> usize {
        read_le(&self.bytes[DATA_SIZE_AT..TAG_AT]) as usize
    }

    /// The AES-GCM tag.
    pub fn tag(&self) -> &[u8] {
        &self.bytes[TAG_AT..IDLING_OFFSET_AT]
    }

    /// Seconds from the last renewal to the last touch.
    pub fn idling_offset(&self) -> u64 {
        read_le(&self.bytes[IDLING_OFFSET_AT..MAC_AT])
    }

    /// The truncated HMAC.
    pub fn mac(&self) -> &[u8] {
        &self.bytes[MAC_AT..]
    }

    /// Seconds since the last renewal (negative if the clock went back).
    fn rolling_elapsed(&self, now: u64) -> i128 {
        i128::from(now) - i128::from(self.created_at()) - i128::from(self.rolling_offset())
    }

    /// Seconds since the last touch or renewal.
    fn idling_elapsed(&self, now: u64) -> i128 {
        self.rolling_elapsed(now) - i128::from(self.idling_offset())
    }

    /// True when `refresh` must fully re-save the session (new SID): more
    /// than ceil(3/4 of `rolling_timeout`) has passed since the last renewal.
    /// A timeout of 0 never renews.
    pub fn needs_renewal(&self, now: u64, rolling_timeout: u64) -> bool {
        if rolling_timeout == 0 {
            return false;
        }
        let threshold = (u128::from(rolling_timeout) * 3).div_ceil(4);
        self.rolling_elapsed(now) > threshold as i128
    }

    /// True when `refresh` should touch the cookie: idling checks are on and
    /// the session has been idle for more than [`TOUCH_THRESHOLD`] seconds.
    pub fn needs_touch(&self, now: u64, idling_timeout: u64) -> bool {
        idling_timeout > 0 && self.idling_elapsed(now) > i128::from(TOUCH_THRESHOLD)
    }

    /// The same session (same SID and payload) with its idling offset moved
    /// to `now` and the MAC recomputed.
    pub fn touch(&self, now: u64) -> SessionHeader {
        let idling_offset = self
            .rolling_elapsed(now)
            .clamp(0, MAX_IDLING_OFFSET as i128);
        let mut touched = self.clone();
        write_le(
            &mut touched.bytes[IDLING_OFFSET_AT..MAC_AT],
            idling_offset as u64,
        );
        touched.write_mac();
        touched
    }

    /// The cookie value for this header: the encoded header, followed by
    /// `cookie_payload` (the base64url ciphertext) unless the payload lives
    /// in server storage, in which case `cookie_payload` is ignored.
    pub fn cookie_value(&self, cookie_payload: &str) -> String {
        let mut value = self.encode();
        if !self.uses_server_storage() {
            value.push_str(cookie_payload);
        }
        value
    }

    /// Computes the MAC over bytes 0..66 and stores it in bytes 66..82.
    fn write_mac(&mut self) {
        let mut mac = hmac_sha256(&self.mac_key);
        mac.update(&self.bytes[..MAC_AT]);
        let digest = mac.finalize().into_bytes();
        let mac_size = HEADER_SIZE - MAC_AT;
        self.bytes[MAC_AT..].copy_from_slice(&digest[..mac_size]);
    }
}

impl fmt::Debug for SessionHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionHeader")
            .field("kind", &self.kind)
            .field("flags", &self.flags())
            .field("session_id", &self.session_id())
            .field("created_at", &self.created_at())
            .field("rolling_offset", &self.rolling_offset())
            .field("data_size", &self.data_size())
            .field("idling_offset", &self.idling_offset())
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------
// Sealing
// ---------------------------------------------------------------------------

/// Everything needed to seal one session.
#[derive(Clone, Copy, Debug)]
pub struct SealInput<'a> {
    /// The session id; a fresh [`generate_sid`] on every save.
    pub sid: Sid,
    /// Creation time; `now` for a new session, kept across renewals.
    pub created_at: u64,
    /// `now - created_at` on renewal, 0 for a new session.
    pub rolling_offset: u64,
    /// Normally 0 (a save resets idleness).
    pub idling_offset: u64,
    /// The JSON payload (see [`encode_payload`]).
    pub plaintext: &'a [u8],
    /// Where the ciphertext goes.
    pub storage: StorageMode,
    /// Session or remember cookie (selects the key derivation).
    pub kind: CookieKind,
}

/// The result of sealing a session.
#[derive(Clone, Debug)]
pub struct SealedSession {
    /// The new header (use it for later touches in the same request).
    pub header: SessionHeader,
    /// The whole cookie value: header, plus ciphertext for cookie storage.
    pub cookie_value: String,
    /// For server storage: the base64url ciphertext to store under
    /// `header.session_id()`. `None` for cookie storage.
    pub stored_data: Option<String>,
}

/// Encrypts and authenticates a session, producing its cookie value.
pub fn seal(secret: &SessionSecret, input: &SealInput<'_>) -> Result<SealedSession, SealError> {
    check_seal_ranges(input)?;
    let (mut data, deflated) = maybe_deflate(input.plaintext);
    let data_size = base64_len(data.len());
    if data_size > MAX_DATA_SIZE {
        return Err(SealError::DataTooLarge);
    }
    let flags = seal_flags(input.storage, deflated);

    let mut bytes = [0u8; HEADER_SIZE];
    bytes[0] = COOKIE_TYPE;
    write_le(&mut bytes[FLAGS_AT..SID_AT], u64::from(flags));
    bytes[SID_AT..CREATED_AT_AT].copy_from_slice(&input.sid);
    write_le(
        &mut bytes[CREATED_AT_AT..ROLLING_OFFSET_AT],
        input.created_at,
    );
    write_le(
        &mut bytes[ROLLING_OFFSET_AT..DATA_SIZE_AT],
        input.rolling_offset,
    );
    write_le(&mut bytes[DATA_SIZE_AT..TAG_AT], data_size as u64);

    let key = secret.encryption_key(&input.sid, input.kind);
    let tag = key
        .cipher
        .encrypt_in_place_detached(Nonce::from_slice(&key.iv), &bytes[..TAG_AT], &mut data)
        .map_err(|_| SealError::EncryptFailed)?;
    bytes[TAG_AT..IDLING_OFFSET_AT].copy_from_slice(&tag);
    write_le(&mut bytes[IDLING_OFFSET_AT..MAC_AT], input.idling_offset);

    let mut header = SessionHeader {
        bytes,
        kind: input.kind,
        mac_key: secret.mac_key(&input.sid),
    };
    header.write_mac();

    let payload = URL_SAFE_NO_PAD.encode(&data);
    let cookie_value = header.cookie_value(&payload);
    let stored_data = (input.storage == StorageMode::Server).then_some(payload);
    Ok(SealedSession {
        header,
        cookie_value,
        stored_data,
    })
}

/// Rejects header fields that do not fit their byte widths.
fn check_seal_ranges(input: &SealInput<'_>) -> Result<(), SealError> {
    if input.created_at > MAX_CREATION_TIME {
        return Err(SealError::CreatedAtOutOfRange);
    }
    if input.rolling_offset > MAX_ROLLING_OFFSET {
        return Err(SealError::RollingOffsetOutOfRange);
    }
    if input.idling_offset > MAX_IDLING_OFFSET {
        return Err(SealError::IdlingOffsetOutOfRange);
    }
    Ok(())
}

/// Header flags for a new seal.
fn seal_flags(storage: StorageMode, deflated: bool) -> u16 {
    let mut flags = 0;
    if storage == StorageMode::Server {
        flags |= FLAG_STORAGE;
    }
    if deflated {
        flags |= FLAG_DEFLATE;
    }
    flags
}

/// Raw-DEFLATEs plaintexts above the threshold, keeping the result only when
/// it is smaller. Returns the bytes to encrypt and whether they are deflated.
fn maybe_deflate(plaintext: &[u8]) -> (Vec<u8>, bool) {
    if plaintext.len() > COMPRESSION_THRESHOLD {
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
        // Writing into a Vec cannot fail; on any error we simply send it raw.
        let deflated = encoder.write_all(plaintext).and_then(|()| encoder.finish());
        if let Ok(deflated) = deflated {
            if deflated.len() < plaintext.len() {
                return (deflated, true);
            }
        }
    }
    (plaintext.to_vec(), false)
}

/// Length of unpadded base64 for `len` bytes: ceil(4 * len / 3).
fn base64_len(len: usize) -> usize {
    (len / 3) * 4 + [0, 2, 3][len % 3]
}

// ---------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------

/// What a cookie is validated against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenPolicy {
    /// The configured storage; the header's STORAGE flag must agree.
    pub storage: StorageMode,
    /// Which cookie is being opened.
    pub kind: CookieKind,
    /// Idling timeout in seconds (0 disables; ignored for remember cookies,
    /// which must have an idling offset of 0 instead).
    pub idling_timeout: u64,
    /// Rolling timeout in seconds (0 disables). For remember cookies pass
    /// `remember_rolling_timeout`.
    pub rolling_timeout: u64,
    /// Absolute timeout in seconds (0 disables). For remember cookies pass
    /// `remember_absolute_timeout`.
    pub absolute_timeout: u64,
}

/// Steps 1-7: decodes the header at the start of `cookie_value`, checks its
/// type, storage flag and timeouts at `now`, then its MAC.
pub fn open_header(
    secret: &SessionSecret,
    cookie_value: &str,
    policy: &OpenPolicy,
    now: u64,
) -> Result<SessionHeader, OpenError> {
    let bytes = decode_header(cookie_value)?;
    if bytes[0] != COOKIE_TYPE {
        return Err(OpenError::InvalidType(bytes[0]));
    }
    let mut header = SessionHeader {
        bytes,
        kind: policy.kind,
        mac_key: [0u8; KEY_SIZE],
    };
    check_storage_flag(&header, policy.storage)?;
    check_timeouts(&header, policy, now)?;
    header.mac_key = secret.mac_key(&header.sid());
    verify_mac(&header)?;
    Ok(header)
}

/// Step 1: the first 110 characters must base64url-decode to 82 bytes.
fn decode_header(cookie_value: &str) -> Result<[u8; HEADER_SIZE], OpenError> {
    let encoded = cookie_value
        .as_bytes()
        .get(..HEADER_ENCODED_SIZE)
        .ok_or(OpenError::HeaderTooShort)?;
    let decoded = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| OpenError::HeaderNotBase64)?;
    <[u8; HEADER_SIZE]>::try_from(decoded.as_slice()).map_err(|_| OpenError::HeaderNotBase64)
}

/// Step 3: STORAGE must be set exactly when storage is server-side.
fn check_storage_flag(header: &SessionHeader, storage: StorageMode) -> Result<(), OpenError> {
    let expects_server = storage == StorageMode::Server;
    if header.uses_server_storage() != expects_server {
        return Err(OpenError::StorageMismatch);
    }
    Ok(())
}

/// Steps 4-6, in the library's order. Elapsed times may be negative when
/// the cookie comes from a clock ahead of ours; like the library we accept
/// those.
fn check_timeouts(header: &SessionHeader, policy: &OpenPolicy, now: u64) -> Result<(), OpenError> {
    let absolute_elapsed = i128::from(now) - i128::from(header.created_at());
    if absolute_elapsed > i128::from(MAX_ROLLING_OFFSET) {
        return Err(OpenError::LifetimeExceeded);
    }
    if exceeds(absolute_elapsed, policy.absolute_timeout) {
        return Err(OpenError::AbsoluteTimeout);
    }
    if exceeds(header.rolling_elapsed(now), policy.rolling_timeout) {
        return Err(OpenError::RollingTimeout);
    }
    match policy.kind {
        CookieKind::Remember if header.idling_offset() != 0 => Err(OpenError::RememberIdlingOffset),
        CookieKind::Remember => Ok(()),
        CookieKind::Session if exceeds(header.idling_elapsed(now), policy.idling_timeout) => {
            Err(OpenError::IdlingTimeout)
        }
        CookieKind::Session => Ok(()),
    }
}

/// True when `elapsed` is past a timeout; a timeout of 0 is disabled.
fn exceeds(elapsed: i128, timeout: u64) -> bool {
    timeout != 0 && elapsed > i128::from(timeout)
}

/// Step 7: constant-time comparison of the truncated HMAC.
fn verify_mac(header: &SessionHeader) -> Result<(), OpenError> {
    let mut mac = hmac_sha256(&header.mac_key);
    mac.update(&header.bytes[..MAC_AT]);
    mac.verify_truncated_left(header.mac())
        .map_err(|_| OpenError::BadMac)
}

/// Number of cookies (`<name>`, `<name>2`, …) needed for a cookie-storage
/// session whose ciphertext is `data_size` characters, or `None` when it
/// exceeds [`MAX_COOKIES`] cookies of [`MAX_COOKIE_SIZE`] bytes.
pub fn cookie_chunk_count(cookie_name: &str, data_size: usize) -> Option<usize> {
    let limit = MAX_COOKIES * MAX_COOKIE_SIZE;
    let name_size = cookie_name.len();
    let mut space_needed = (name_size + 1 + HEADER_ENCODED_SIZE).saturating_add(data_size);
    if space_needed <= MAX_COOKIE_SIZE {
        return Some(1);
    }
    // Every extra chunk costs its own name, a digit and `=`.
    for chunks in 2..=MAX_COOKIES {
        space_needed = space_needed.saturating_add(name_size + 2);
        if space_needed > limit {
            return None;
        }
        if space_needed <= MAX_COOKIE_SIZE * chunks {
            return Some(chunks);
        }
    }
    None
}

/// Name of chunk `index` (2..=9) of cookie `cookie_name`.
fn chunk_name(cookie_name: &str, index: usize) -> String {
    format!("{cookie_name}{index}")
}

/// Splits a cookie-storage value into `(cookie name, value)` pairs the way
/// the library does when it exceeds one cookie; a single pair otherwise.
/// Returns `None` when the value needs more than [`MAX_COOKIES`] cookies.
pub fn split_cookie_chunks(cookie_name: &str, cookie_value: &str) -> Option<Vec<(String, String)>> {
    let data_size = cookie_value.len().checked_sub(HEADER_ENCODED_SIZE)?;
    let chunks = cookie_chunk_count(cookie_name, data_size)?;
    if chunks == 1 {
        return Some(vec![(cookie_name.to_string(), cookie_value.to_string())]);
    }
    let first_size = MAX_COOKIE_SIZE.checked_sub(cookie_name.len() + 1)?;
    let next_size = MAX_COOKIE_SIZE.checked_sub(cookie_name.len() + 2)?;
    let (first, mut rest) = cookie_value.split_at_checked(first_size)?;
    let mut pairs = vec![(cookie_name.to_string(), first.to_string())];
    for index in 2..=chunks {
        let (chunk, tail) = rest.split_at_checked(next_size.min(rest.len()))?;
        pairs.push((chunk_name(cookie_name, index), chunk.to_string()));
        rest = tail;
    }
    Some(pairs)
}

/// Step 8 for cookie storage: the base64url ciphertext following the header
/// in `cookie_value`, joined with chunks `<name>2`… fetched through
/// `find_chunk` when the session spans several cookies.
pub fn cookie_payload<'a>(
    cookie_value: &'a str,
    header: &SessionHeader,
    cookie_name: &str,
    mut find_chunk: impl FnMut(&str) -> Option<&'a str>,
) -> Result<Cow<'a, str>, OpenError> {
    let initial = cookie_value
        .get(HEADER_ENCODED_SIZE..)
        .ok_or(OpenError::PayloadMissing)?;
    let chunks =
        cookie_chunk_count(cookie_name, header.data_size()).ok_or(OpenError::PayloadTooLarge)?;
    if chunks == 1 {
        return Ok(Cow::Borrowed(initial));
    }
    let mut payload = String::with_capacity(header.data_size());
    payload.push_str(initial);
    for index in 2..=chunks {
        let chunk = find_chunk(&chunk_name(cookie_name, index)).ok_or(OpenError::PayloadMissing)?;
        payload.push_str(chunk);
    }
    Ok(Cow::Owned(payload))
}

/// Steps 8-9: checks the payload length against the header, base64url-decodes,
/// decrypts with AES-256-GCM (AAD = header bytes 0..47) and inflates when
/// flagged. Returns the JSON plaintext.
pub fn decrypt_payload(
    secret: &SessionSecret,
    header: &SessionHeader,
    payload: &str,
) -> Result<Vec<u8>, OpenError> {
    if payload.len() != header.data_size() {
        return Err(OpenError::PayloadSizeMismatch {
            expected: header.data_size(),
            actual: payload.len(),
        });
    }
    let mut data = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| OpenError::PayloadNotBase64)?;
    let key = secret.encryption_key(&header.sid(), header.kind);
    key.cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(&key.iv),
            &header.bytes[..TAG_AT],
            &mut data,
            Tag::from_slice(header.tag()),
        )
        .map_err(|_| OpenError::DecryptFailed)?;
    if header.is_deflated() {
        return inflate(&data);
    }
    Ok(data)
}

/// Inflates raw DEFLATE data, refusing outputs above [`MAX_INFLATED_SIZE`].
fn inflate(data: &[u8]) -> Result<Vec<u8>, OpenError> {
    let mut plaintext = Vec::new();
    DeflateDecoder::new(data)
        .take(MAX_INFLATED_SIZE as u64 + 1)
        .read_to_end(&mut plaintext)
        .map_err(|_| OpenError::InflateFailed)?;
    if plaintext.len() > MAX_INFLATED_SIZE {
        return Err(OpenError::InflateFailed);
    }
    Ok(plaintext)
}

// ---------------------------------------------------------------------------
// Payload
// ---------------------------------------------------------------------------

/// One audience entry of the plaintext: `[data, audience, subject]`.
#[derive(Clone, Debug, PartialEq)]
pub struct AudienceEntry {
    /// Application data; for Kong see [`KongSessionData`].
    pub data: Value,
    /// The audience (Kong's `audience` config, default `"default"`).
    pub audience: String,
    /// The subject (Kong: username, else custom_id, else consumer id).
    pub subject: Option<String>,
}

impl AudienceEntry {
    /// The JSON array for this entry; a missing subject is omitted, as
    /// lua-cjson drops a trailing nil.
    fn to_value(&self) -> Value {
        let mut entry = vec![self.data.clone(), Value::String(self.audience.clone())];
        if let Some(subject) = &self.subject {
            entry.push(Value::String(subject.clone()));
        }
        Value::Array(entry)
    }

    /// Parses one `[data, audience, subject?]` array.
    fn from_value(value: &Value) -> Result<Self, OpenError> {
        let entry = value.as_array().ok_or(OpenError::InvalidPayloadShape)?;
        let audience = entry
            .get(1)
            .and_then(Value::as_str)
            .ok_or(OpenError::InvalidPayloadShape)?;
        Ok(Self {
            data: entry.first().cloned().unwrap_or(Value::Null),
            audience: audience.to_string(),
            subject: entry.get(2).and_then(Value::as_str).map(str::to_string),
        })
    }
}

/// Encodes audience entries as the JSON plaintext `[[data, audience, subject], ...]`.
pub fn encode_payload(entries: &[AudienceEntry]) -> Vec<u8> {
    let entries = entries.iter().map(AudienceEntry::to_value).collect();
    Value::Array(entries).to_string().into_bytes()
}

/// Step 10: decodes the JSON plaintext into audience entries.
pub fn decode_payload(plaintext: &[u8]) -> Result<Vec<AudienceEntry>, OpenError> {
    let value: Value = serde_json::from_slice(plaintext).map_err(|_| OpenError::InvalidJson)?;
    let entries = value.as_array().ok_or(OpenError::InvalidPayloadShape)?;
    entries.iter().map(AudienceEntry::from_value).collect()
}

/// Step 11: the index of the first entry for `audience`.
pub fn find_audience(entries: &[AudienceEntry], audience: &str) -> Result<usize, OpenError> {
    entries
        .iter()
        .position(|entry| entry.audience == audience)
        .ok_or(OpenError::MissingAudience)
}

/// Kong's session data: `[consumer_id, credential_id]`, or
/// `[consumer_id, credential_id, [groups...]]` when groups exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KongSessionData {
    /// The consumer's id.
    pub consumer_id: String,
    /// The credential's id (Kong stores the consumer id when there is none).
    pub credential_id: Option<String>,
    /// Authenticated groups, if any.
    pub groups: Option<Vec<String>>,
}

impl KongSessionData {
    /// The JSON array Kong stores as the entry's data.
    pub fn to_value(&self) -> Value {
        let mut data = vec![Value::String(self.consumer_id.clone())];
        let credential = self
            .credential_id
            .clone()
            .map_or(Value::Null, Value::String);
        match &self.groups {
            Some(groups) => {
                let groups = groups.iter().cloned().map(Value::String).collect();
                data.extend([credential, Value::Array(groups)]);
            }
            None if !credential.is_null() => data.push(credential),
            None => {}
        }
        Value::Array(data)
    }

    /// Reads Kong's data array; `None` when it has no string consumer id.
    /// An empty Lua table (encoded as `{}`) counts as an empty group list.
    pub fn from_value(value: &Value) -> Option<Self> {
        let data = value.as_array()?;
        let consumer_id = data.first()?.as_str()?.to_string();
        let credential_id = data.get(1).and_then(Value::as_str).map(str::to_string);
        let groups = data.get(2).and_then(groups_from_value);
        Some(Self {
            consumer_id,
            credential_id,
            groups,
        })
    }
}

/// A group list: an array of strings (non-strings skipped) or an empty object.
fn groups_from_value(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Array(groups) => Some(
            groups
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        ),
        Value::Object(map) if map.is_empty() => Some(Vec::new()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Cookie headers
// ---------------------------------------------------------------------------

/// Finds the value of cookie `name` in one or more `Cookie` request headers.
///
/// The first occurrence wins, like nginx's `$cookie_<name>`. Pairs are split
/// on `;`, names and values are trimmed of spaces and tabs, pairs without
/// `=` are skipped. One linear pass over the input, no allocation.
pub fn find_cookie<'a, I>(cookie_headers: I, name: &str) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    cookie_headers
        .into_iter()
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .find(|(pair_name, _)| trim_cookie_whitespace(pair_name) == name)
        .map(|(_, value)| trim_cookie_whitespace(value))
}

/// Trims spaces and tabs (the whitespace allowed around cookie pairs).
fn trim_cookie_whitespace(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

/// The `SameSite` attribute value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Strict` (Kong's default).
    Strict,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=None`; forces `Secure`.
    None,
    /// Emitted literally as `SameSite=Default`, as lua-resty-session 4.0.5 does.
    Default,
}

impl SameSite {
    /// The attribute value as written in the header.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
            SameSite::Default => "Default",
        }
    }
}

/// The attribute part shared by every `Set-Cookie` of one plugin config:
/// `[; Domain=<d>]; Path=<p>; SameSite=<s>[; Secure][; HttpOnly]`.
/// Build it once per config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieFlags(String);

impl CookieFlags {
    /// Builds the attributes. The domain is omitted when absent, empty or
    /// `localhost`; `SameSite=None` forces `Secure`.
    pub fn new(
        path: &str,
        domain: Option<&str>,
        same_site: SameSite,
        secure: bool,
        http_only: bool,
    ) -> Self {
        let mut flags = String::new();
        if let Some(domain) = domain.filter(|d| !d.is_empty() && *d != "localhost") {
            flags.push_str("; Domain=");
            flags.push_str(domain);
        }
        flags.push_str("; Path=");
        flags.push_str(path);
        flags.push_str("; SameSite=");
        flags.push_str(same_site.as_str());
        if secure || same_site == SameSite::None {
            flags.push_str("; Secure");
        }
        if http_only {
            flags.push_str("; HttpOnly");
        }
        Self(flags)
    }

    /// The attribute string, starting with `"; "`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `Set-Cookie` value for the session cookie (a browser-session cookie:
    /// no Expires, no Max-Age).
    pub fn session_cookie(&self, name: &str, value: &str) -> String {
        format!("{name}={value}{}", self.0)
    }

    /// `Set-Cookie` value for the remember cookie, which persists until
    /// `created_at + max_age`. A `max_age` of 0 or above [`MAX_TTL`] is
    /// capped at `MAX_TTL`.
    pub fn remember_cookie(
        &self,
        name: &str,
        value: &str,
        created_at: u64,
        max_age: u64,
    ) -> String {
        let max_age = if max_age == 0 {
            MAX_TTL
        } else {
            max_age.min(MAX_TTL)
        };
        let expires = http_date(created_at.saturating_add(max_age));
        format!(
            "{name}={value}{}; Expires={expires}; Max-Age={max_age}",
            self.0
        )
    }

    /// `Set-Cookie` value that deletes cookie `name` (logout): empty value,
    /// the usual attributes, then an Expires in 1970 and `Max-Age=0`.
    pub fn expired_cookie(&self, name: &str) -> String {
        format!("{name}={}{COOKIE_EXPIRE_FLAGS}", self.0)
    }
}

/// Formats epoch seconds as an IMF-fixdate, clamped to year 9999.
fn http_date(epoch_seconds: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(epoch_seconds.min(MAX_HTTP_DATE));
    httpdate::fmt_http_date(time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const NOW: u64 = 1_700_000_000;
    const SECRET: &[u8] = b"a-test-secret-of-44-characters-aaaaaaaaaaaa";

    fn secret() -> SessionSecret {
        SessionSecret::new(SECRET)
    }

    fn policy(storage: StorageMode) -> OpenPolicy {
        OpenPolicy {
            storage,
            kind: CookieKind::Session,
            idling_timeout: 900,
            rolling_timeout: 3600,
            absolute_timeout: 86400,
        }
    }

    fn kong_plaintext(subject: &str) -> Vec<u8> {
        let data = KongSessionData {
            consumer_id: "5f3b4c3e-6c1a-4d5e-9a55-0b1c2d3e4f50".into(),
            credential_id: Some("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".into()),
            groups: None,
        };
        encode_payload(&[AudienceEntry {
            data: data.to_value(),
            audience: "default".into(),
            subject: Some(subject.into()),
        }])
    }

    fn seal_with(
        sid: Sid,
        plaintext: &[u8],
        storage: StorageMode,
        kind: CookieKind,
    ) -> SealedSession {
        let input = SealInput {
            sid,
            created_at: NOW,
            rolling_offset: 0,
            idling_offset: 0,
            plaintext,
            storage,
            kind,
        };
        seal(&secret(), &input).expect("seal")
    }

    fn seal_cookie(plaintext: &[u8]) -> SealedSession {
        seal_with(
            generate_sid(),
            plaintext,
            StorageMode::Cookie,
            CookieKind::Session,
        )
    }

    /// Opens a cookie-storage value completely (steps 1-9).
    fn open_cookie(
        secret: &SessionSecret,
        value: &str,
        policy: &OpenPolicy,
        now: u64,
    ) -> Result<Vec<u8>, OpenError> {
        let header = open_header(secret, value, policy, now)?;
        let payload = cookie_payload(value, &header, "session", |_| None)?;
        decrypt_payload(secret, &header, &payload)
    }

    #[test]
    fn cookie_storage_round_trip() {
        let plaintext = kong_plaintext("bob");
        let sealed = seal_cookie(&plaintext);
        assert!(sealed.stored_data.is_none());
        assert!(!sealed.header.is_deflated());
        let opened = open_cookie(
            &secret(),
            &sealed.cookie_value,
            &policy(StorageMode::Cookie),
            NOW,
        )
        .expect("open");
        assert_eq!(opened, plaintext);
        let entries = decode_payload(&opened).expect("decode");
        let index = find_audience(&entries, "default").expect("audience");
        let data = KongSessionData::from_value(&entries[index].data).expect("kong data");
        assert_eq!(data.consumer_id, "5f3b4c3e-6c1a-4d5e-9a55-0b1c2d3e4f50");
        assert_eq!(entries[index].subject.as_deref(), Some("bob"));
    }

    #[test]
    fn server_storage_round_trip() {
        let plaintext = kong_plaintext("alice");
        let sealed = seal_with(
            generate_sid(),
            &plaintext,
            StorageMode::Server,
            CookieKind::Session,
        );
        assert_eq!(sealed.cookie_value.len(), HEADER_ENCODED_SIZE);
        assert!(sealed.header.uses_server_storage());
        let stored = sealed.stored_data.expect("stored data");
        let policy = policy(StorageMode::Server);
        let header = open_header(&secret(), &sealed.cookie_value, &policy, NOW + 5).expect("open");
        assert_eq!(header.session_id().len(), SESSION_ID_SIZE);
        assert_eq!(header.session_id(), session_id_string(&header.sid()));
        let opened = decrypt_payload(&secret(), &header, &stored).expect("decrypt");
        assert_eq!(opened, plaintext);
    }

    #[test]
    fn storage_flag_must_match_configuration() {
        let sealed = seal_cookie(&kong_plaintext("bob"));
        let err = open_header(
            &secret(),
            &sealed.cookie_value,
            &policy(StorageMode::Server),
            NOW,
        );
        assert_eq!(err, Err(OpenError::StorageMismatch));
    }

    #[test]
    fn large_compressible_payload_is_deflated() {
        let groups: Vec<String> = (0..200).map(|i| format!("group-{i}")).collect();
        let data = KongSessionData {
            consumer_id: "c".into(),
            credential_id: Some("k".into()),
            groups: Some(groups),
        };
        let plaintext = encode_payload(&[AudienceEntry {
            data: data.to_value(),
            audience: "default".into(),
            subject: None,
        }]);
        assert!(plaintext.len() > COMPRESSION_THRESHOLD);
        for storage in [StorageMode::Cookie, StorageMode::Server] {
            let sealed = seal_with(generate_sid(), &plaintext, storage, CookieKind::Session);
            assert!(sealed.header.is_deflated());
            assert!(sealed.header.data_size() < base64_len(plaintext.len()));
            let header =
                open_header(&secret(), &sealed.cookie_value, &policy(storage), NOW).expect("open");
            let payload = match &sealed.stored_data {
                Some(stored) => stored.clone(),
                None => sealed.cookie_value[HEADER_ENCODED_SIZE..].to_string(),
            };
            let opened = decrypt_payload(&secret(), &header, &payload).expect("decrypt");
            assert_eq!(opened, plaintext);
            let entries = decode_payload(&opened).expect("decode");
            assert_eq!(
                KongSessionData::from_value(&entries[0].data),
                Some(data.clone())
            );
        }
    }

    #[test]
    fn incompressible_payload_is_sent_raw() {
        // Random bytes do not shrink under DEFLATE, so they are sent as is.
        let mut rng = StdRng::seed_from_u64(7);
        let plaintext: Vec<u8> = (0..2000).map(|_| rng.gen()).collect();
        let sealed = seal_cookie(&plaintext);
        assert!(!sealed.header.is_deflated());
        let opened = open_cookie(
            &secret(),
            &sealed.cookie_value,
            &policy(StorageMode::Cookie),
            NOW,
        )
        .expect("open");
        assert_eq!(opened, plaintext);
    }

    #[test]
    fn remember_cookie_round_trip_uses_pbkdf2_key() {
        let plaintext = kong_plaintext("bob");
        let sid = [9u8; SID_SIZE];
        let remember = seal_with(sid, &plaintext, StorageMode::Cookie, CookieKind::Remember);
        let session = seal_with(sid, &plaintext, StorageMode::Cookie, CookieKind::Session);
        // Same SID and plaintext, different encryption keys.
        assert_ne!(
            remember.cookie_value[HEADER_ENCODED_SIZE..],
            session.cookie_value[HEADER_ENCODED_SIZE..]
        );
        let remember_policy = OpenPolicy {
            kind: CookieKind::Remember,
            idling_timeout: 900,
            rolling_timeout: 604_800,
            absolute_timeout: 2_592_000,
            storage: StorageMode::Cookie,
        };
        // Idle for a day: fine for a remember cookie, which has no idling check.
        let later = NOW + 86_400;
        let opened = open_cookie(&secret(), &remember.cookie_value, &remember_policy, later)
            .expect("open remember");
        assert_eq!(opened, plaintext);
        // Opening the remember cookie with session keys fails in AES-GCM.
        let err = open_cookie(
            &secret(),
            &remember.cookie_value,
            &policy(StorageMode::Cookie),
            NOW,
        );
        assert_eq!(err, Err(OpenError::DecryptFailed));
    }

    #[test]
    fn remember_cookie_requires_zero_idling_offset() {
        let input = SealInput {
            sid: generate_sid(),
            created_at: NOW,
            rolling_offset: 0,
            idling_offset: 5,
            plaintext: b"[]",
            storage: StorageMode::Cookie,
            kind: CookieKind::Remember,
        };
        let sealed = seal(&secret(), &input).expect("seal");
        let remember_policy = OpenPolicy {
            kind: CookieKind::Remember,
            ..policy(StorageMode::Cookie)
        };
        let err = open_header(&secret(), &sealed.cookie_value, &remember_policy, NOW);
        assert_eq!(err, Err(OpenError::RememberIdlingOffset));
    }

    /// Flips every bit of `value` (as bytes) and asserts no variant opens.
    fn assert_no_bit_flip_opens(value: &str) {
        let policy = policy(StorageMode::Cookie);
        let secret = secret();
        let mut bytes = value.as_bytes().to_vec();
        for index in 0..bytes.len() {
            for bit in 0..8 {
                bytes[index] ^= 1 << bit;
                if let Ok(flipped) = std::str::from_utf8(&bytes) {
                    let result = open_cookie(&secret, flipped, &policy, NOW);
                    assert!(result.is_err(), "flip of byte {index} bit {bit} opened");
                }
                bytes[index] ^= 1 << bit;
            }
        }
    }

    #[test]
    fn every_single_bit_flip_of_the_cookie_text_fails() {
        let sealed = seal_cookie(&kong_plaintext("bob"));
        assert_no_bit_flip_opens(&sealed.cookie_value);
    }

    #[test]
    fn every_single_bit_flip_of_the_decoded_cookie_fails() {
        let sealed = seal_cookie(&kong_plaintext("bob"));
        let mut header = *sealed.header.as_bytes();
        let mut payload = URL_SAFE_NO_PAD
            .decode(&sealed.cookie_value[HEADER_ENCODED_SIZE..])
            .expect("payload");
        let policy = policy(StorageMode::Cookie);
        let secret = secret();
        let reencode = |header: &[u8], payload: &[u8]| {
            URL_SAFE_NO_PAD.encode(header) + &URL_SAFE_NO_PAD.encode(payload)
        };
        assert!(open_cookie(&secret, &reencode(&header, &payload), &policy, NOW).is_ok());
        for index in 0..header.len() * 8 {
            header[index / 8] ^= 1 << (index % 8);
            let value = reencode(&header, &payload);
            assert!(
                open_cookie(&secret, &value, &policy, NOW).is_err(),
                "header bit {index}"
            );
            header[index / 8] ^= 1 << (index % 8);
        }
        for index in 0..payload.len() * 8 {
            payload[index / 8] ^= 1 << (index % 8);
            let value = reencode(&header, &payload);
            let err = open_cookie(&secret, &value, &policy, NOW);
            assert_eq!(err, Err(OpenError::DecryptFailed), "payload bit {index}");
            payload[index / 8] ^= 1 << (index % 8);
        }
    }

    #[test]
    fn truncated_cookies_fail() {
        let sealed = seal_cookie(&kong_plaintext("bob"));
        let policy = policy(StorageMode::Cookie);
        for len in 0..sealed.cookie_value.len() {
            let truncated = &sealed.cookie_value[..len];
            let result = open_cookie(&secret(), truncated, &policy, NOW);
            assert!(result.is_err(), "prefix of {len} opened");
            if len < HEADER_ENCODED_SIZE {
                assert_eq!(result, Err(OpenError::HeaderTooShort));
            }
        }
    }

    #[test]
    fn random_input_never_opens_or_panics() {
        let mut rng = StdRng::seed_from_u64(42);
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let policy = policy(StorageMode::Cookie);
        let secret = secret();
        for round in 0..2000 {
            let len = rng.gen_range(0..400);
            let value: String = if round % 2 == 0 {
                (0..len)
                    .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
                    .collect()
            } else {
                let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            };
            assert!(open_cookie(&secret, &value, &policy, NOW).is_err());
        }
        // A header of the right type and flags with random fields must still
        // be rejected, by the MAC at the latest.
        for _ in 0..200 {
            let mut header = [0u8; HEADER_SIZE];
            rng.fill(&mut header[..]);
            header[0] = COOKIE_TYPE;
            header[FLAGS_AT] = 0;
            write_le(&mut header[CREATED_AT_AT..ROLLING_OFFSET_AT], NOW);
            write_le(&mut header[ROLLING_OFFSET_AT..DATA_SIZE_AT], 0);
            write_le(&mut header[IDLING_OFFSET_AT..MAC_AT], 0);
            let value = URL_SAFE_NO_PAD.encode(header) + "AAAA";
            assert_eq!(
                open_cookie(&secret, &value, &policy, NOW),
                Err(OpenError::BadMac)
            );
        }
    }

    #[test]
    fn huge_or_odd_inputs_do_not_panic() {
        let policy = policy(StorageMode::Cookie);
        let secret = secret();
        let huge = "A".repeat(1 << 20);
        assert!(open_cookie(&secret, &huge, &policy, NOW).is_err());
        let multibyte = "é".repeat(200);
        assert!(open_cookie(&secret, &multibyte, &policy, NOW).is_err());
        let sealed = seal_cookie(b"[]");
        let header = open_header(&secret, &sealed.cookie_value, &policy, NOW).expect("open");
        assert!(matches!(
            decrypt_payload(&secret, &header, &huge),
            Err(OpenError::PayloadSizeMismatch { .. })
        ));
        assert!(inflate(&[0xff; 64]).is_err());
        assert_eq!(
            decode_payload(b"{\"a\":1}"),
            Err(OpenError::InvalidPayloadShape)
        );
        assert_eq!(decode_payload(b"[1]"), Err(OpenError::InvalidPayloadShape));
        assert_eq!(decode_payload(b"not json"), Err(OpenError::InvalidJson));
    }

    #[test]
    fn wrong_secret_fails_mac() {
        let sealed = seal_cookie(&kong_plaintext("bob"));
        let other = SessionSecret::new(b"another secret");
        let err = open_cookie(
            &other,
            &sealed.cookie_value,
            &policy(StorageMode::Cookie),
            NOW,
        );
        assert_eq!(err, Err(OpenError::BadMac));
    }

    #[test]
    fn another_sessions_payload_glued_to_a_valid_header_fails() {
        let first = seal_cookie(&kong_plaintext("bob"));
        let second = seal_cookie(&kong_plaintext("eve"));
        assert_eq!(first.cookie_value.len(), second.cookie_value.len());
        let glued = format!(
            "{}{}",
            &first.cookie_value[..HEADER_ENCODED_SIZE],
            &second.cookie_value[HEADER_ENCODED_SIZE..]
        );
        let err = open_cookie(&secret(), &glued, &policy(StorageMode::Cookie), NOW);
        assert_eq!(err, Err(OpenError::DecryptFailed));
        // Same for server storage: a foreign stored row does not decrypt.
        let server_first = seal_with(
            generate_sid(),
            b"[]",
            StorageMode::Server,
            CookieKind::Session,
        );
        let server_second = seal_with(
            generate_sid(),
            b"[]",
            StorageMode::Server,
            CookieKind::Session,
        );
        let header = open_header(
            &secret(),
            &server_first.cookie_value,
            &policy(StorageMode::Server),
            NOW,
        )
        .expect("open");
        let foreign = server_second.stored_data.expect("stored");
        assert_eq!(
            decrypt_payload(&secret(), &header, &foreign),
            Err(OpenError::DecryptFailed)
        );
    }

    fn sealed_at(created_at: u64, rolling_offset: u64, idling_offset: u64) -> SealedSession {
        let input = SealInput {
            sid: generate_sid(),
            created_at,
            rolling_offset,
            idling_offset,
            plaintext: b"[]",
            storage: StorageMode::Cookie,
            kind: CookieKind::Session,
        };
        seal(&secret(), &input).expect("seal")
    }

    #[test]
    fn expired_sessions_fail_with_the_right_check() {
        let policy = OpenPolicy {
            idling_timeout: 100,
            rolling_timeout: 1000,
            absolute_timeout: 10_000,
            ..policy(StorageMode::Cookie)
        };
        let open = |sealed: &SealedSession, now| {
            open_header(&secret(), &sealed.cookie_value, &policy, now).map(|_| ())
        };
        // Absolute: created 10_001 s ago, renewed and touched recently.
        let absolute = sealed_at(NOW - 10_001, 9_990, 5);
        assert_eq!(open(&absolute, NOW), Err(OpenError::AbsoluteTimeout));
        assert_eq!(open(&absolute, NOW - 1), Ok(()));
        // Rolling: renewed 1001 s ago, touched recently.
        let rolling = sealed_at(NOW - 2_000, 999, 995);
        assert_eq!(open(&rolling, NOW), Err(OpenError::RollingTimeout));
        assert_eq!(open(&rolling, NOW - 1), Ok(()));
        // Idling: touched 101 s ago.
        let idling = sealed_at(NOW - 500, 100, 299);
        assert_eq!(open(&idling, NOW), Err(OpenError::IdlingTimeout));
        assert_eq!(open(&idling, NOW - 1), Ok(()));
        // Beyond the 4-byte lifetime, even with every timeout disabled.
        let disabled = OpenPolicy {
            idling_timeout: 0,
            rolling_timeout: 0,
            absolute_timeout: 0,
            ..policy
        };
        let ancient = sealed_at(1, 0, 0);
        let far_future = 1 + MAX_ROLLING_OFFSET + 1;
        let result = open_header(&secret(), &ancient.cookie_value, &disabled, far_future);
        assert_eq!(result.map(|_| ()), Err(OpenError::LifetimeExceeded));
    }

    #[test]
    fn zero_timeouts_disable_checks() {
        let disabled = OpenPolicy {
            idling_timeout: 0,
            rolling_timeout: 0,
            absolute_timeout: 0,
            ..policy(StorageMode::Cookie)
        };
        let sealed = sealed_at(NOW, 0, 0);
        let later = NOW + 100 * 86_400;
        assert!(open_header(&secret(), &sealed.cookie_value, &disabled, later).is_ok());
        // A cookie from a clock that runs ahead still opens.
        assert!(open_header(
            &secret(),
            &sealed.cookie_value,
            &policy(StorageMode::Cookie),
            NOW - 60
        )
        .is_ok());
    }

    #[test]
    fn renewal_decision_uses_three_quarters_rounded_up() {
        let header = sealed_at(NOW, 100, 0).header;
        let renewed_at = NOW + 100;
        // ceil(0.75 * 3601) = 2701.
        assert!(!header.needs_renewal(renewed_at + 2701, 3601));
        assert!(header.needs_renewal(renewed_at + 2702, 3601));
        assert!(!header.needs_renewal(renewed_at + 2700, 3600));
        assert!(header.needs_renewal(renewed_at + 2701, 3600));
        assert!(!header.needs_renewal(renewed_at + 1_000_000, 0));
    }

    #[test]
    fn touch_decision_uses_sixty_second_threshold() {
        let header = sealed_at(NOW, 100, 40).header;
        let touched_at = NOW + 140;
        assert!(!header.needs_touch(touched_at + 60, 900));
        assert!(header.needs_touch(touched_at + 61, 900));
        assert!(!header.needs_touch(touched_at + 10_000, 0));
    }

    #[test]
    fn touch_moves_idling_offset_and_keeps_sid_and_payload() {
        let plaintext = kong_plaintext("bob");
        let policy = policy(StorageMode::Cookie);
        let sealed = seal_cookie(&plaintext);
        let payload = &sealed.cookie_value[HEADER_ENCODED_SIZE..];
        let later = NOW + 800;
        let touched = sealed.header.touch(later);
        assert_eq!(touched.sid(), sealed.header.sid());
        assert_eq!(touched.idling_offset(), 800);
        assert_eq!(touched.tag(), sealed.header.tag());
        let touched_value = touched.cookie_value(payload);
        // The untouched cookie idles out at later + 200; the touched one not.
        let check_at = later + 200;
        assert_eq!(
            open_header(&secret(), &sealed.cookie_value, &policy, check_at).map(|_| ()),
            Err(OpenError::IdlingTimeout)
        );
        let opened = open_cookie(&secret(), &touched_value, &policy, check_at).expect("open");
        assert_eq!(opened, plaintext);
        // Server storage: the touched cookie is still the header alone.
        let server = seal_with(
            generate_sid(),
            &plaintext,
            StorageMode::Server,
            CookieKind::Session,
        );
        let server_touched = server.header.touch(later).cookie_value("ignored");
        assert_eq!(server_touched.len(), HEADER_ENCODED_SIZE);
    }

    #[test]
    fn seal_rejects_out_of_range_fields() {
        let base = SealInput {
            sid: [0; SID_SIZE],
            created_at: NOW,
            rolling_offset: 0,
            idling_offset: 0,
            plaintext: b"[]",
            storage: StorageMode::Cookie,
            kind: CookieKind::Session,
        };
        let cases = [
            (
                SealInput {
                    created_at: MAX_CREATION_TIME + 1,
                    ..base
                },
                SealError::CreatedAtOutOfRange,
            ),
            (
                SealInput {
                    rolling_offset: MAX_ROLLING_OFFSET + 1,
                    ..base
                },
                SealError::RollingOffsetOutOfRange,
            ),
            (
                SealInput {
                    idling_offset: MAX_IDLING_OFFSET + 1,
                    ..base
                },
                SealError::IdlingOffsetOutOfRange,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(seal(&secret(), &input).map(|_| ()), Err(expected));
        }
    }

    /// RFC 5869 HKDF written out with HMAC, independent of the `hkdf` crate.
    fn hkdf_by_hand(ikm: &[u8], info: &[u8], len: usize) -> Vec<u8> {
        let mut extract = <HmacSha256 as Mac>::new_from_slice(&[]).expect("hmac");
        extract.update(ikm);
        let prk = extract.finalize().into_bytes();
        let mut okm = Vec::new();
        let mut previous = Vec::new();
        for counter in 1u8.. {
            if okm.len() >= len {
                break;
            }
            let mut expand = <HmacSha256 as Mac>::new_from_slice(&prk).expect("hmac");
            expand.update(&previous);
            expand.update(info);
            expand.update(&[counter]);
            previous = expand.finalize().into_bytes().to_vec();
            okm.extend_from_slice(&previous);
        }
        okm.truncate(len);
        okm
    }

    #[test]
    fn known_answer_pins_the_byte_layout() {
        let sid: Sid = std::array::from_fn(|i| i as u8);
        let plaintext = br#"[[["consumer","credential"],"default","bobby"]]"#;
        let input = SealInput {
            sid,
            created_at: 0x01_2345_6789,
            rolling_offset: 0x0A0B_0C0D,
            idling_offset: 0x0E_0F10,
            plaintext,
            storage: StorageMode::Server,
            kind: CookieKind::Session,
        };
        let sealed = seal(&secret(), &input).expect("seal");
        let bytes = sealed.header.as_bytes();

        // Fields, by hand.
        assert_eq!(bytes[0], 0x01);
        assert_eq!(&bytes[1..3], &[0x01, 0x00]); // STORAGE
        assert_eq!(&bytes[3..35], &sid);
        assert_eq!(&bytes[35..40], &[0x89, 0x67, 0x45, 0x23, 0x01]);
        assert_eq!(&bytes[40..44], &[0x0D, 0x0C, 0x0B, 0x0A]);
        // 47 plaintext bytes -> ceil(47 * 4 / 3) = 63 base64 characters.
        assert_eq!(plaintext.len(), 47);
        assert_eq!(&bytes[44..47], &[63, 0, 0]);
        assert_eq!(&bytes[63..66], &[0x10, 0x0F, 0x0E]);

        // Keys, by hand: ikm = SHA-256(secret); HKDF with an empty salt.
        let ikm = Sha256::digest(SECRET);
        let enc = hkdf_by_hand(
            &ikm,
            &[b"encryption:".as_slice(), sid.as_slice()].concat(),
            44,
        );
        let mac_key = hkdf_by_hand(
            &ikm,
            &[b"authentication:".as_slice(), sid.as_slice()].concat(),
            32,
        );

        // Ciphertext and tag: AES-256-GCM, AAD = header bytes 0..47.
        let cipher = Aes256Gcm::new_from_slice(&enc[..32]).expect("key");
        let mut data = plaintext.to_vec();
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&enc[32..44]), &bytes[..47], &mut data)
            .expect("encrypt");
        assert_eq!(&bytes[47..63], tag.as_slice());
        let stored = sealed.stored_data.expect("stored");
        assert_eq!(stored, URL_SAFE_NO_PAD.encode(&data));
        assert_eq!(stored.len(), 63);

        // MAC: HMAC-SHA256(mac_key, bytes 0..66), first 16 bytes.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&mac_key).expect("hmac");
        mac.update(&bytes[..66]);
        assert_eq!(&bytes[66..82], &mac.finalize().into_bytes()[..16]);

        // The cookie is the 110-character header alone, and it opens.
        assert_eq!(sealed.cookie_value, URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(sealed.cookie_value.len(), 110);
        assert!(sealed.cookie_value.starts_with("AQEAAAECAwQF"));
        let open_policy = OpenPolicy {
            idling_timeout: 0,
            rolling_timeout: 0,
            absolute_timeout: 0,
            ..policy(StorageMode::Server)
        };
        let header = open_header(
            &secret(),
            &sealed.cookie_value,
            &open_policy,
            input.created_at,
        )
        .expect("open");
        assert_eq!(header.created_at(), 0x01_2345_6789);
        assert_eq!(header.rolling_offset(), 0x0A0B_0C0D);
        assert_eq!(header.idling_offset(), 0x0E_0F10);
        assert_eq!(header.data_size(), 63);
        assert_eq!(
            decrypt_payload(&secret(), &header, &stored).expect("decrypt"),
            plaintext
        );
    }

    #[test]
    fn chunked_cookie_round_trip() {
        let mut rng = StdRng::seed_from_u64(3);
        let noise: String = (0..9000)
            .map(|_| char::from(rng.gen_range(b'a'..=b'z')))
            .collect();
        let plaintext = format!("[[{{}},\"default\",\"{noise}\"]]").into_bytes();
        let sealed = seal_cookie(&plaintext);
        assert!(sealed.header.data_size() > MAX_COOKIE_SIZE);
        let chunks = split_cookie_chunks("session", &sealed.cookie_value).expect("chunks");
        assert!(chunks.len() > 1);
        assert!(chunks
            .iter()
            .all(|(name, value)| name.len() + 1 + value.len() <= MAX_COOKIE_SIZE));
        let header_line: String = chunks
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        let first = find_cookie([header_line.as_str()], "session").expect("first");
        let policy = policy(StorageMode::Cookie);
        let header = open_header(&secret(), first, &policy, NOW).expect("open");
        let payload = cookie_payload(first, &header, "session", |name| {
            find_cookie([header_line.as_str()], name)
        })
        .expect("payload");
        assert_eq!(
            decrypt_payload(&secret(), &header, &payload).expect("decrypt"),
            plaintext
        );
        // A missing chunk is a missing payload.
        let missing = cookie_payload(first, &header, "session", |_| None);
        assert_eq!(missing, Err(OpenError::PayloadMissing));
    }

    #[test]
    fn chunk_count_matches_library_arithmetic() {
        assert_eq!(cookie_chunk_count("session", 4096 - 8 - 110), Some(1));
        assert_eq!(cookie_chunk_count("session", 4096 - 8 - 110 + 1), Some(2));
        assert_eq!(cookie_chunk_count("session", 30_000), Some(8));
        assert_eq!(cookie_chunk_count("session", 40_000), None);
        assert_eq!(cookie_chunk_count("session", usize::MAX / 2), None);
    }

    #[test]
    fn audience_lookup() {
        let entries = vec![
            AudienceEntry {
                data: Value::Array(vec![]),
                audience: "other".into(),
                subject: None,
            },
            AudienceEntry {
                data: Value::Array(vec![]),
                audience: "default".into(),
                subject: Some("bob".into()),
            },
        ];
        let decoded = decode_payload(&encode_payload(&entries)).expect("decode");
        assert_eq!(decoded, entries);
        assert_eq!(find_audience(&decoded, "default"), Ok(1));
        assert_eq!(
            find_audience(&decoded, "admin"),
            Err(OpenError::MissingAudience)
        );
        // Lua-cjson may omit the subject, or send an empty data object.
        let lua = decode_payload(br#"[[{},"default"]]"#).expect("decode");
        assert_eq!(lua[0].subject, None);
        assert_eq!(lua[0].data, Value::Object(Default::default()));
    }

    #[test]
    fn kong_data_encoding() {
        let plain = KongSessionData {
            consumer_id: "c".into(),
            credential_id: Some("k".into()),
            groups: None,
        };
        assert_eq!(plain.to_value().to_string(), r#"["c","k"]"#);
        let grouped = KongSessionData {
            groups: Some(vec!["a".into(), "b".into()]),
            ..plain.clone()
        };
        assert_eq!(grouped.to_value().to_string(), r#"["c","k",["a","b"]]"#);
        assert_eq!(
            KongSessionData::from_value(&grouped.to_value()),
            Some(grouped)
        );
        let empty_groups: Value = serde_json::from_str(r#"["c","k",{}]"#).expect("json");
        assert_eq!(
            KongSessionData::from_value(&empty_groups).and_then(|d| d.groups),
            Some(vec![])
        );
        assert_eq!(
            KongSessionData::from_value(&serde_json::json!([1, "k"])),
            None
        );
        assert_eq!(KongSessionData::from_value(&serde_json::json!({})), None);
    }

    #[test]
    fn set_cookie_layout() {
        let defaults = CookieFlags::new("/", None, SameSite::Strict, true, true);
        assert_eq!(
            defaults.session_cookie("session", "v"),
            "session=v; Path=/; SameSite=Strict; Secure; HttpOnly"
        );
        for domain in [Some(""), Some("localhost"), None] {
            let flags = CookieFlags::new("/", domain, SameSite::Lax, false, false);
            assert_eq!(flags.as_str(), "; Path=/; SameSite=Lax");
        }
        let full = CookieFlags::new("/app", Some("example.com"), SameSite::None, false, true);
        assert_eq!(
            full.as_str(),
            "; Domain=example.com; Path=/app; SameSite=None; Secure; HttpOnly"
        );
        let default_same_site = CookieFlags::new("/", None, SameSite::Default, false, false);
        assert_eq!(default_same_site.as_str(), "; Path=/; SameSite=Default");
    }

    #[test]
    fn remember_and_expired_cookie_layout() {
        let flags = CookieFlags::new("/", None, SameSite::Strict, true, true);
        assert_eq!(
            flags.remember_cookie("remember", "v", 1_700_000_000, 604_800),
            "remember=v; Path=/; SameSite=Strict; Secure; HttpOnly; \
             Expires=Tue, 21 Nov 2023 22:13:20 GMT; Max-Age=604800"
        );
        let capped = flags.remember_cookie("remember", "v", 0, 0);
        assert!(capped.ends_with("; Max-Age=34560000"), "{capped}");
        let capped = flags.remember_cookie("remember", "v", 0, u64::MAX);
        assert!(capped.ends_with("; Max-Age=34560000"), "{capped}");
        let far = flags.remember_cookie("remember", "v", MAX_CREATION_TIME, 1);
        assert!(
            far.contains("Expires=Fri, 31 Dec 9999 23:59:59 GMT"),
            "{far}"
        );
        assert_eq!(
            flags.expired_cookie("session"),
            "session=; Path=/; SameSite=Strict; Secure; HttpOnly; \
             Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0"
        );
    }

    #[test]
    fn cookie_header_parsing() {
        let headers = ["a=1; session=first ;b", "session=second"];
        assert_eq!(find_cookie(headers, "session"), Some("first"));
        assert_eq!(find_cookie(headers, "b"), None);
        assert_eq!(
            find_cookie(["x=1", " \tsession = v ; y=2"], "session"),
            Some("v")
        );
        assert_eq!(find_cookie(["session2=x"], "session"), None);
        assert_eq!(find_cookie(["session="], "session"), Some(""));
        assert_eq!(find_cookie(["k=a=b"], "k"), Some("a=b"));
        assert_eq!(find_cookie(Vec::<&str>::new(), "session"), None);
        assert_eq!(find_cookie(["é=ü; session=ok"], "session"), Some("ok"));
    }

    #[test]
    fn cookie_header_parsing_scales_linearly() {
        let many: String = (0..20_000)
            .map(|i| format!("c{i}=v{i}"))
            .collect::<Vec<_>>()
            .join("; ");
        let huge = format!("{many}; session=found");
        assert!(huge.len() > 64 * 1024);
        assert_eq!(find_cookie([huge.as_str()], "session"), Some("found"));
        let semicolons = ";".repeat(64 * 1024);
        assert_eq!(find_cookie([semicolons.as_str()], "session"), None);
        let one_big_value = format!("session={}", "x".repeat(64 * 1024));
        assert_eq!(
            find_cookie([one_big_value.as_str()], "session").map(str::len),
            Some(64 * 1024)
        );
    }

    #[test]
    fn session_ids_are_43_character_base64url() {
        let sid = generate_sid();
        assert_ne!(sid, generate_sid());
        let id = session_id_string(&sid);
        assert_eq!(id.len(), SESSION_ID_SIZE);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(URL_SAFE_NO_PAD.decode(&id).expect("decode"), sid);
    }

    #[test]
    fn base64_len_matches_encoder() {
        for len in 0..50 {
            assert_eq!(
                base64_len(len),
                URL_SAFE_NO_PAD.encode(vec![0u8; len]).len()
            );
        }
    }
}
