//! Opening a session: [`open_header`] validates a header (steps 1-7 of the
//! reference), chunked cookies, [`decrypt_payload`] (steps 8-9).

use std::borrow::Cow;
use std::io::Read;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Nonce, Tag};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use flate2::read::DeflateDecoder;
use hmac::Mac;

use super::*;

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
pub(super) fn decode_header(cookie_value: &str) -> Result<[u8; HEADER_SIZE], OpenError> {
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
pub(super) fn check_storage_flag(
    header: &SessionHeader,
    storage: StorageMode,
) -> Result<(), OpenError> {
    let expects_server = storage == StorageMode::Server;
    if header.uses_server_storage() != expects_server {
        return Err(OpenError::StorageMismatch);
    }
    Ok(())
}

/// Steps 4-6, in the library's order. Elapsed times may be negative when
/// the cookie comes from a clock ahead of ours; like the library we accept
/// those.
pub(super) fn check_timeouts(
    header: &SessionHeader,
    policy: &OpenPolicy,
    now: u64,
) -> Result<(), OpenError> {
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
pub(super) fn exceeds(elapsed: i128, timeout: u64) -> bool {
    timeout != 0 && elapsed > i128::from(timeout)
}

/// Step 7: constant-time comparison of the truncated HMAC.
pub(super) fn verify_mac(header: &SessionHeader) -> Result<(), OpenError> {
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
pub(super) fn chunk_name(cookie_name: &str, index: usize) -> String {
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
pub(super) fn inflate(data: &[u8]) -> Result<Vec<u8>, OpenError> {
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
