//! Saving a session: sealing, `Set-Cookie` values (chunked for cookie
//! storage), `storage: kong` rows, the remember cookie, and the
//! `Session-*` headers.

use http::header::{HeaderMap, HeaderValue, SET_COOKIE};
use schemas::model::Consumer;

use super::cookie::{
    cookie_chunk_count, encode_payload, generate_sid, seal, split_cookie_chunks, AudienceEntry,
    CookieKind, KongSessionData, SealInput, SealedSession, SessionHeader, StorageMode,
    HEADER_ENCODED_SIZE, MAX_TTL,
};
use super::open::{describe, subject};
use super::plugin::{AuthenticatedGroups, Property, Saved, Session, SessionState};
use crate::pdk::AuthCredential;

impl Session {
    // -----------------------------------------------------------------------
    // Saving
    // -----------------------------------------------------------------------

    /// Kong's `save`: seals `entries` under a new session id, keeping the
    /// creation time of `previous` (the cookie being replaced) or starting
    /// at `now`. With kong storage, inserts the row (expiring after the
    /// rolling timeout, capped at 400 days) and retires `previous`'s row.
    /// Returns `None` (after logging) when sealing or storing fails.
    pub(super) async fn save(
        &self,
        kind: CookieKind,
        entries: &[AudienceEntry],
        previous: Option<&SessionHeader>,
        now: u64,
    ) -> Option<Saved> {
        let created_at = previous.map_or(now, SessionHeader::created_at);
        let plaintext = encode_payload(entries);
        let input = SealInput {
            sid: generate_sid(),
            created_at,
            rolling_offset: now.saturating_sub(created_at),
            idling_offset: 0,
            plaintext: &plaintext,
            storage: self.mode,
            kind,
        };
        let sealed = match seal(&self.secret, &input) {
            Ok(sealed) => sealed,
            Err(error) => {
                tracing::warn!(%error, "cannot save the session");
                return None;
            }
        };
        let (cookies, initial_chunk) = self.set_cookies(kind, &sealed, previous, created_at)?;
        self.store(kind, &sealed, previous, now).await?;
        Some(Saved {
            header: sealed.header,
            cookies,
            initial_chunk,
        })
    }

    /// The `Set-Cookie` values of a sealed session (split in chunks for
    /// large cookie-storage sessions, expiring chunks the previous cookie
    /// had beyond the new count), and the ciphertext of the first cookie.
    pub(super) fn set_cookies(
        &self,
        kind: CookieKind,
        sealed: &SealedSession,
        previous: Option<&SessionHeader>,
        created_at: u64,
    ) -> Option<(Vec<HeaderValue>, String)> {
        let name = self.cookie_name_of(kind);
        if self.mode == StorageMode::Server {
            let cookie = self.cookie_line(kind, name, &sealed.cookie_value, created_at);
            return Some((header_values([cookie]), String::new()));
        }
        let Some(chunks) = split_cookie_chunks(name, &sealed.cookie_value) else {
            tracing::warn!("session too large for cookies; not saved");
            return None;
        };
        let initial_chunk = chunks
            .first()
            .and_then(|(_, value)| value.get(HEADER_ENCODED_SIZE..))
            .unwrap_or("")
            .to_owned();
        let mut lines: Vec<String> = chunks
            .iter()
            .map(|(chunk, value)| self.cookie_line(kind, chunk, value, created_at))
            .collect();
        let before = previous.and_then(|header| cookie_chunk_count(name, header.data_size()));
        for index in chunks.len() + 1..=before.unwrap_or(0) {
            lines.push(self.flags.expired_cookie(&format!("{name}{index}")));
        }
        Some((header_values(lines), initial_chunk))
    }

    /// One `Set-Cookie` value: a browser-session cookie, or the persistent
    /// remember cookie.
    pub(super) fn cookie_line(
        &self,
        kind: CookieKind,
        name: &str,
        value: &str,
        created_at: u64,
    ) -> String {
        match (&self.remember, kind) {
            (Some(remember), CookieKind::Remember) => {
                self.flags
                    .remember_cookie(name, value, created_at, remember.rolling_timeout)
            }
            _ => self.flags.session_cookie(name, value),
        }
    }

    /// Kong storage: inserts the row of `sealed` and retires the row of
    /// `previous` (a remember row is deleted, a session row kept readable
    /// for `stale_ttl`). `None` when the insert fails; cookie storage has
    /// nothing to store.
    pub(super) async fn store(
        &self,
        kind: CookieKind,
        sealed: &SealedSession,
        previous: Option<&SessionHeader>,
        now: u64,
    ) -> Option<()> {
        let (Some(rows), Some(data)) = (&self.storage, &sealed.stored_data) else {
            return Some(());
        };
        let ttl = match (&self.remember, kind) {
            (Some(remember), CookieKind::Remember) => storage_ttl(remember.rolling_timeout),
            _ => storage_ttl(self.rolling_timeout),
        };
        let session_id = sealed.header.session_id();
        if let Err(error) = rows
            .insert(&session_id, data, now.saturating_add(ttl))
            .await
        {
            tracing::warn!(error = %describe(&error), "cannot store the session");
            return None;
        }
        let Some(previous) = previous else {
            return Some(());
        };
        let retired = match kind {
            CookieKind::Remember => rows.remove(&previous.session_id()).await.map(drop),
            CookieKind::Session => {
                let expires = now.saturating_add(self.stale_ttl);
                rows.set_expiry(&previous.session_id(), expires)
                    .await
                    .map(drop)
            }
        };
        if let Err(error) = retired {
            tracing::warn!(error = %describe(&error), "cannot retire the previous session row");
        }
        Some(())
    }

    /// Kong storage: deletes the row of `header`, if any.
    pub(super) async fn remove_row(&self, header: Option<&SessionHeader>) {
        let (Some(rows), Some(header)) = (&self.storage, header) else {
            return;
        };
        if let Err(error) = rows.remove(&header.session_id()).await {
            tracing::warn!(error = %describe(&error), "cannot delete the session row");
        }
    }

    /// With `remember`, in the response phase: saves the remember cookie of
    /// a new session, replacing the one restored in access or sent.
    pub(super) async fn save_remember(
        &self,
        request_headers: &HeaderMap,
        state: &SessionState,
        entries: &[AudienceEntry],
        response_headers: &mut HeaderMap,
        now: u64,
    ) {
        if self.remember.is_none() {
            return;
        }
        let previous = state
            .remember
            .clone()
            .or_else(|| self.open_cookie_header(request_headers, CookieKind::Remember, now));
        if let Some(saved) = self
            .save(CookieKind::Remember, entries, previous.as_ref(), now)
            .await
        {
            merge_all(response_headers, saved.cookies);
        }
    }

    /// The audience entry of a new session for `consumer` and `credential`.
    pub(super) fn new_entry(
        &self,
        consumer: &Consumer,
        credential: &AuthCredential,
        groups: Option<&AuthenticatedGroups>,
    ) -> AudienceEntry {
        let data = KongSessionData {
            consumer_id: consumer.id.to_string(),
            credential_id: Some(credential.id.to_string()),
            groups: groups.map(|groups| groups.0.clone()),
        };
        AudienceEntry {
            data: data.to_value(),
            audience: self.audience.clone(),
            subject: Some(subject(consumer)),
        }
    }

    // -----------------------------------------------------------------------
    // Headers
    // -----------------------------------------------------------------------

    /// Sets the `Session-*` headers of `properties` in `headers`, replacing
    /// existing ones; a property without a value (a disabled timeout, no
    /// subject) is skipped.
    pub(super) fn set_properties(
        &self,
        properties: &[Property],
        headers: &mut HeaderMap,
        header: &SessionHeader,
        entry: &AudienceEntry,
        now: u64,
    ) {
        for &property in properties {
            let value = self.property(property, header, entry, now);
            if let Some(value) = value.and_then(|value| HeaderValue::from_str(&value).ok()) {
                headers.insert(property.header_name(), value);
            }
        }
    }

    /// The value of one property at `now` (remaining seconds for timeouts,
    /// as lua-resty-session's `get_property`).
    pub(super) fn property(
        &self,
        property: Property,
        header: &SessionHeader,
        entry: &AudienceEntry,
        now: u64,
    ) -> Option<String> {
        let remaining = Remaining::of(self, header, now);
        let seconds = match property {
            Property::Id => return Some(header.session_id()),
            Property::Audience => return Some(entry.audience.clone()),
            Property::Subject => return entry.subject.clone(),
            Property::Timeout => remaining.closest(),
            Property::IdlingTimeout => remaining.idling,
            Property::RollingTimeout => remaining.rolling,
            Property::AbsoluteTimeout => remaining.absolute,
        };
        seconds.map(|seconds| seconds.to_string())
    }
}

/// What is left of each enabled timeout, in seconds.
pub(super) struct Remaining {
    idling: Option<i128>,
    rolling: Option<i128>,
    absolute: Option<i128>,
}

impl Remaining {
    /// The remaining times of `header` at `now` under `session`'s timeouts.
    pub(super) fn of(session: &Session, header: &SessionHeader, now: u64) -> Self {
        let absolute_elapsed = i128::from(now) - i128::from(header.created_at());
        let rolling_elapsed = absolute_elapsed - i128::from(header.rolling_offset());
        let idling_elapsed = rolling_elapsed - i128::from(header.idling_offset());
        let left =
            |timeout: u64, elapsed: i128| (timeout > 0).then(|| i128::from(timeout) - elapsed);
        Remaining {
            idling: left(session.idling_timeout, idling_elapsed),
            rolling: left(session.rolling_timeout, rolling_elapsed),
            absolute: left(session.absolute_timeout, absolute_elapsed),
        }
    }

    /// The closest timeout (`Session-Timeout`).
    pub(super) fn closest(&self) -> Option<i128> {
        [self.idling, self.rolling, self.absolute]
            .into_iter()
            .flatten()
            .min()
    }
}

pub(super) fn storage_ttl(timeout: u64) -> u64 {
    if timeout == 0 || timeout > MAX_TTL {
        MAX_TTL
    } else {
        timeout
    }
}

pub(super) fn header_values(lines: impl IntoIterator<Item = String>) -> Vec<HeaderValue> {
    lines
        .into_iter()
        .filter_map(|line| HeaderValue::from_str(&line).ok())
        .collect()
}

pub(super) fn merge_all(headers: &mut HeaderMap, cookies: Vec<HeaderValue>) {
    for cookie in cookies {
        merge_set_cookie(headers, cookie);
    }
}

pub fn merge_set_cookie(headers: &mut HeaderMap, cookie: HeaderValue) {
    let name = set_cookie_name(cookie.as_bytes());
    let existing = headers
        .get_all(SET_COOKIE)
        .iter()
        .position(|value| set_cookie_name(value.as_bytes()) == name);
    let Some(index) = existing else {
        headers.append(SET_COOKIE, cookie);
        return;
    };
    let mut values: Vec<HeaderValue> = headers.get_all(SET_COOKIE).iter().cloned().collect();
    if let Some(slot) = values.get_mut(index) {
        *slot = cookie;
    }
    headers.remove(SET_COOKIE);
    for value in values {
        headers.append(SET_COOKIE, value);
    }
}

pub(super) fn set_cookie_name(value: &[u8]) -> &[u8] {
    value.split(|byte| *byte == b'=').next().unwrap_or(value)
}
