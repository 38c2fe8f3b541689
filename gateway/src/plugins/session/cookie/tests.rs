//! Unit tests of the cookie codec.

use super::*;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::Mac;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sha2::{Digest, Sha256};

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

fn seal_with(sid: Sid, plaintext: &[u8], storage: StorageMode, kind: CookieKind) -> SealedSession {
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
