//! The session cookie decoder: `find_cookie`, `open_header`,
//! `cookie_payload`, `decrypt_payload`, `decode_payload` and
//! `KongSessionData::from_value` on hostile input.
//!
//! The first byte picks a mode:
//! - even: the rest is a `Cookie` header, opened with every policy
//!   (cookie and server storage, session and remember cookie). Nothing may
//!   panic; a forged header must never pass the MAC.
//! - odd: the rest is a list of (position, xor mask) edits applied to one
//!   valid cookie sealed with a fixed secret. A cookie that still opens
//!   and decrypts must be the untouched original: no edit authenticates.
//!
//! Every input is also fed to `decode_payload` as a decrypted plaintext,
//! the part after the MAC that random cookies cannot reach.

#![no_main]

use std::sync::OnceLock;

use gateway::plugins::session::cookie::{
    cookie_payload, decode_payload, decrypt_payload, find_cookie, open_header, seal, CookieKind,
    KongSessionData, OpenPolicy, SealInput, SessionSecret, StorageMode,
};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_700_000_000;
const NAME: &str = "session";

fn secret() -> &'static SessionSecret {
    static SECRET: OnceLock<SessionSecret> = OnceLock::new();
    SECRET.get_or_init(|| SessionSecret::new(b"fuzzing-secret-0123456789abcdefghijklmn"))
}

/// One valid cookie-storage session cookie value, sealed at `NOW - 10`.
fn valid_cookie() -> &'static str {
    static COOKIE: OnceLock<String> = OnceLock::new();
    COOKIE.get_or_init(|| {
        let plaintext = br#"[[["5a1e0000-0000-4000-8000-00000000a1e0","c7ed0000-0000-4000-8000-000000000001"],"default","alex"]]"#;
        let sealed = seal(
            secret(),
            &SealInput {
                sid: [7u8; 32],
                created_at: NOW - 10,
                rolling_offset: 0,
                idling_offset: 0,
                plaintext,
                storage: StorageMode::Cookie,
                kind: CookieKind::Session,
            },
        )
        .expect("sealing the reference cookie");
        sealed.cookie_value
    })
}

fn policies() -> [OpenPolicy; 4] {
    let policy = |storage, kind| OpenPolicy {
        storage,
        kind,
        idling_timeout: 900,
        rolling_timeout: 3600,
        absolute_timeout: 86_400,
    };
    [
        policy(StorageMode::Cookie, CookieKind::Session),
        policy(StorageMode::Server, CookieKind::Session),
        policy(StorageMode::Cookie, CookieKind::Remember),
        policy(StorageMode::Server, CookieKind::Remember),
    ]
}

/// Open `value` as a cookie-storage session cookie (with chunks from
/// `header`); the decrypted plaintext if everything checks out.
fn open_cookie(value: &str, header_text: &str, policy: &OpenPolicy) -> Option<Vec<u8>> {
    let header = open_header(secret(), value, policy, NOW).ok()?;
    if policy.storage == StorageMode::Server {
        // The payload would come from the store; the header alone passed.
        return Some(Vec::new());
    }
    let payload = cookie_payload(value, &header, NAME, |chunk| {
        find_cookie([header_text], chunk)
    })
    .ok()?;
    decrypt_payload(secret(), &header, &payload).ok()
}

fn hostile_header(text: &str) {
    let Some(value) = find_cookie([text], NAME) else {
        return;
    };
    for policy in policies() {
        if let Some(plaintext) = open_cookie(value, text, &policy) {
            // Only the genuine cookie can get this far.
            assert_eq!(
                value,
                valid_cookie(),
                "a cookie that is not the sealed one opened"
            );
            assert!(!plaintext.is_empty() || policy.storage == StorageMode::Server);
        }
    }
}

fn edited_cookie(edits: &[u8]) {
    let original = valid_cookie();
    let mut bytes = original.as_bytes().to_vec();
    for edit in edits.chunks_exact(3) {
        let position = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % bytes.len();
        bytes[position] ^= edit[2];
    }
    let Ok(value) = String::from_utf8(bytes) else {
        return;
    };
    let header = format!("{NAME}={value}");
    let policy = policies()[0];
    if open_cookie(&value, &header, &policy).is_some() {
        assert_eq!(value, original, "an edited cookie authenticated");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = decode_payload(data) {
        for entry in &entries {
            let _ = KongSessionData::from_value(&entry.data);
        }
    }
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            hostile_header(text);
        }
    } else {
        edited_cookie(rest);
    }
});
