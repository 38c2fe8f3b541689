//! Key material: the [`SessionSecret`] (built once per plugin config) and
//! the per-SID key derivation (HKDF-SHA256, or PBKDF2 for remember cookies).

use std::fmt;

use aes_gcm::aead::KeyInit;
use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hkdf::Hkdf;
use hmac::Mac;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::*;

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
    pub(super) fn mac_key(&self, sid: &Sid) -> [u8; KEY_SIZE] {
        let mut key = [0u8; KEY_SIZE];
        self.expand(AUTHENTICATION_USAGE, sid, &mut key);
        key
    }

    /// The AES-256-GCM key and IV for session `sid`.
    pub(super) fn encryption_key(&self, sid: &Sid, kind: CookieKind) -> EncryptionKey {
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
pub(super) struct EncryptionKey {
    pub(super) cipher: Aes256Gcm,
    pub(super) iv: [u8; IV_SIZE],
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
pub(super) fn hmac_sha256(mac_key: &[u8; KEY_SIZE]) -> HmacSha256 {
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
