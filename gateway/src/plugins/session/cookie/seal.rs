//! Sealing a session: [`seal`] encrypts the payload and builds the header.

use std::io::Write;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::Nonce;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use flate2::write::DeflateEncoder;
use flate2::Compression;

use super::*;

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
pub(super) fn check_seal_ranges(input: &SealInput<'_>) -> Result<(), SealError> {
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
pub(super) fn seal_flags(storage: StorageMode, deflated: bool) -> u16 {
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
pub(super) fn maybe_deflate(plaintext: &[u8]) -> (Vec<u8>, bool) {
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
pub(super) fn base64_len(len: usize) -> usize {
    (len / 3) * 4 + [0, 2, 3][len % 3]
}
