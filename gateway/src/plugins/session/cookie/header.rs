//! The 82-byte [`SessionHeader`]: field access, renewal and touch checks.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::Mac;

use super::*;

/// Reads a little-endian unsigned integer of up to 8 bytes.
pub(super) fn read_le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0, |value, byte| (value << 8) | u64::from(*byte))
}

/// Writes the low `out.len()` bytes of `value`, little-endian.
pub(super) fn write_le(out: &mut [u8], value: u64) {
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
    pub(super) bytes: [u8; HEADER_SIZE],
    pub(super) kind: CookieKind,
    pub(super) mac_key: [u8; KEY_SIZE],
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
    pub(super) fn rolling_elapsed(&self, now: u64) -> i128 {
        i128::from(now) - i128::from(self.created_at()) - i128::from(self.rolling_offset())
    }

    /// Seconds since the last touch or renewal.
    pub(super) fn idling_elapsed(&self, now: u64) -> i128 {
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
    pub(super) fn write_mac(&mut self) {
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
