//! Opening a session in the access phase: the cookie (and `storage: kong`
//! row), the remember cookie, restoring the consumer, refreshing, logout.

use std::borrow::Cow;
use std::sync::Arc;

use http::header::{HeaderMap, HeaderValue, COOKIE};
use http::StatusCode;
use schemas::model::Consumer;
use serde_json::Value;

use super::cookie::{
    cookie_chunk_count, cookie_payload, decode_payload, decrypt_payload, find_audience,
    find_cookie, open_header, AudienceEntry, CookieKind, KongSessionData, OpenError, OpenPolicy,
    SessionHeader, StorageMode, HEADER_ENCODED_SIZE,
};
use super::plugin::{
    parse_uuid, AuthenticatedGroups, OpenFailure, Opened, Session, SessionState,
    AUTHENTICATED_GROUPS, BODY_METHODS,
};
use super::save::{header_values, merge_all};
use crate::pdk::request_data::{query_arg, ParsedBody};
use crate::pdk::response::ExitBody;
use crate::pdk::{set_identity_headers, AuthCredential, PluginResponse, RequestCtx};
use crate::store::{SessionError, SessionStore};

impl Session {
    // -----------------------------------------------------------------------
    // Opening
    // -----------------------------------------------------------------------

    /// The session of the request, if one opened for our audience: the
    /// session cookie, else (with `remember`) the remember cookie saved again
    /// with a new session cookie (their `Set-Cookie`s go to `cookies`). An
    /// audience miss is kept in `state` for the response phase.
    pub(super) async fn open_session(
        &self,
        headers: &HeaderMap,
        now: u64,
        state: &mut SessionState,
        cookies: &mut HeaderMap,
    ) -> Option<Opened> {
        match self.open_cookie(headers, CookieKind::Session, now).await {
            Ok(opened) if opened.index.is_some() => Some(opened),
            Ok(other_audiences) => {
                tracing::debug!("session cookie has no entry for this audience");
                state.opened = Some(other_audiences);
                None
            }
            Err(failure) => {
                tracing::debug!(%failure, "no session");
                if matches!(failure, OpenFailure::Invalid(OpenError::StorageUnavailable)) {
                    state.unreadable = self.open_cookie_header(headers, CookieKind::Session, now);
                }
                self.open_remembered(headers, now, state, cookies).await
            }
        }
    }

    /// With `remember`: opens the remember cookie and, if it holds our
    /// audience, saves it again plus a new session cookie.
    pub(super) async fn open_remembered(
        &self,
        headers: &HeaderMap,
        now: u64,
        state: &mut SessionState,
        cookies: &mut HeaderMap,
    ) -> Option<Opened> {
        self.remember.as_ref()?;
        let remembered = match self.open_cookie(headers, CookieKind::Remember, now).await {
            Ok(remembered) => remembered,
            Err(failure) => {
                tracing::debug!(%failure, "no remember session");
                return None;
            }
        };
        remembered.index?;
        let entries = remembered.entries;
        let remember = self
            .save(
                CookieKind::Remember,
                &entries,
                Some(&remembered.header),
                now,
            )
            .await?;
        merge_all(cookies, remember.cookies);
        state.remember = Some(remember.header);
        let saved = self.save(CookieKind::Session, &entries, None, now).await?;
        merge_all(cookies, saved.cookies);
        Some(Opened {
            header: saved.header,
            entries,
            index: remembered.index,
            initial_chunk: saved.initial_chunk,
        })
    }

    /// Opens one cookie completely: header checks, payload, decryption,
    /// decoding, audience lookup (a miss leaves `index` empty).
    pub(super) async fn open_cookie(
        &self,
        headers: &HeaderMap,
        kind: CookieKind,
        now: u64,
    ) -> Result<Opened, OpenFailure> {
        let name = self.cookie_name_of(kind);
        let value = request_cookie(headers, name).ok_or(OpenFailure::Missing)?;
        let header = open_header(&self.secret, value, &self.policy(kind), now)?;
        let payload = match &self.storage {
            Some(rows) => Cow::Owned(load_row(rows.as_ref(), &header, now).await?),
            None => cookie_payload(value, &header, name, |chunk| request_cookie(headers, chunk))?,
        };
        let plaintext = decrypt_payload(&self.secret, &header, &payload)?;
        let entries = decode_payload(&plaintext)?;
        let index = find_audience(&entries, &self.audience).ok();
        let initial_chunk = match self.mode {
            StorageMode::Cookie => value.get(HEADER_ENCODED_SIZE..).unwrap_or("").to_owned(),
            StorageMode::Server => String::new(),
        };
        Ok(Opened {
            header,
            entries,
            index,
            initial_chunk,
        })
    }

    /// Only the validated header of a cookie (to find the row and creation
    /// time of a remember cookie that is replaced or destroyed).
    pub(super) fn open_cookie_header(
        &self,
        headers: &HeaderMap,
        kind: CookieKind,
        now: u64,
    ) -> Option<SessionHeader> {
        let value = request_cookie(headers, self.cookie_name_of(kind))?;
        open_header(&self.secret, value, &self.policy(kind), now).ok()
    }

    /// What a cookie of `kind` is checked against.
    pub(super) fn policy(&self, kind: CookieKind) -> OpenPolicy {
        let (rolling_timeout, absolute_timeout) = match (&self.remember, kind) {
            (Some(remember), CookieKind::Remember) => {
                (remember.rolling_timeout, remember.absolute_timeout)
            }
            _ => (self.rolling_timeout, self.absolute_timeout),
        };
        OpenPolicy {
            storage: self.mode,
            kind,
            idling_timeout: self.idling_timeout,
            rolling_timeout,
            absolute_timeout,
        }
    }

    /// The cookie name of `kind`.
    pub(super) fn cookie_name_of(&self, kind: CookieKind) -> &str {
        match (&self.remember, kind) {
            (Some(remember), CookieKind::Remember) => &remember.cookie_name,
            _ => &self.cookie_name,
        }
    }

    // -----------------------------------------------------------------------
    // Access steps
    // -----------------------------------------------------------------------

    /// Steps 3-7 of access for an opened session: load the consumer,
    /// refresh, set headers, authenticate. A missing consumer expires the
    /// cookie; data naming no consumer leaves the request unauthenticated.
    pub(super) async fn restore(
        &self,
        ctx: &mut RequestCtx,
        mut opened: Opened,
        state: &mut SessionState,
        cookies: &mut HeaderMap,
        now: u64,
    ) {
        match owner_of(ctx, &opened) {
            Owner::Unreadable => {
                tracing::debug!("session data names no consumer");
                state.opened = Some(opened);
            }
            Owner::Gone => {
                tracing::debug!("session consumer no longer exists; destroying the session");
                self.destroy(ctx, &opened, state, cookies, now).await;
            }
            Owner::Found(consumer, data) => {
                self.refresh(&mut opened, cookies, now).await;
                self.set_session_headers(ctx, &opened, now);
                authenticate(ctx, consumer, &data);
                state.opened = Some(opened);
            }
        }
    }

    /// Sets the configured `Session-*` headers: `request_headers` on the
    /// upstream request, `response_headers` queued for the client.
    pub(super) fn set_session_headers(&self, ctx: &mut RequestCtx, opened: &Opened, now: u64) {
        let Some(entry) = opened.entry() else {
            return;
        };
        let header = &opened.header;
        self.set_properties(
            &self.request_headers,
            &mut ctx.request.headers,
            header,
            entry,
            now,
        );
        self.set_properties(
            &self.response_headers,
            &mut ctx.response_headers,
            header,
            entry,
            now,
        );
    }

    /// Kong's `session:refresh()`: renewal (new id, new row, the old row
    /// kept `stale_ttl` seconds) when 3/4 of the rolling timeout has passed,
    /// else a touch after 60 idle seconds. Failures keep the session as is.
    pub(super) async fn refresh(&self, opened: &mut Opened, cookies: &mut HeaderMap, now: u64) {
        if opened.header.needs_renewal(now, self.rolling_timeout) {
            let renewed = self
                .save(
                    CookieKind::Session,
                    &opened.entries,
                    Some(&opened.header),
                    now,
                )
                .await;
            if let Some(saved) = renewed {
                merge_all(cookies, saved.cookies);
                opened.header = saved.header;
                opened.initial_chunk = saved.initial_chunk;
            }
        } else if opened.header.needs_touch(now, self.idling_timeout) {
            let touched = opened.header.touch(now);
            let value = touched.cookie_value(&opened.initial_chunk);
            let cookie = self.flags.session_cookie(&self.cookie_name, &value);
            merge_all(cookies, header_values([cookie]));
            opened.header = touched;
        }
    }

    /// Whether this request asks to log out: its method is a logout method
    /// and the query has `logout_query_arg` (any value, even none), or, with
    /// `read_body_for_logout` on POST/PUT/PATCH/DELETE, the body has
    /// `logout_post_arg` (a JSON `false` does not count).
    pub(super) fn is_logout(&self, ctx: &RequestCtx) -> bool {
        let method = &ctx.request.method;
        if !self.logout_methods.contains(method) {
            return false;
        }
        if query_arg(ctx.query(), &self.logout_query_arg).is_present() {
            return true;
        }
        self.read_body_for_logout
            && BODY_METHODS.contains(method)
            && ctx
                .body()
                .is_some_and(|body| body_has_arg(&ctx.request.headers, body, &self.logout_post_arg))
    }

    /// Logs out: destroys the session (or, when other audiences share the
    /// cookie, saves them without ours) and answers 200 with an empty body
    /// and the resulting `Set-Cookie`s.
    pub(super) async fn logout(
        &self,
        ctx: &mut RequestCtx,
        opened: &Opened,
        state: &SessionState,
        mut cookies: HeaderMap,
        now: u64,
    ) -> PluginResponse {
        let others = opened.other_entries();
        if others.is_empty() {
            self.expire_session(opened, &mut cookies).await;
        } else if let Some(saved) = self
            .save(CookieKind::Session, &others, Some(&opened.header), now)
            .await
        {
            merge_all(&mut cookies, saved.cookies);
        }
        self.logout_remember(&ctx.request.headers, state, &others, &mut cookies, now)
            .await;
        ctx.exit(StatusCode::OK, ExitBody::Empty, cookies)
    }

    /// A logout whose session row cannot be read (the database is down):
    /// the cookie is expired all the same, and the row's deletion is left
    /// to the session store (which retries it once the database is back).
    pub(super) async fn logout_unreadable(
        &self,
        ctx: &mut RequestCtx,
        header: &SessionHeader,
        state: &SessionState,
        mut cookies: HeaderMap,
        now: u64,
    ) -> PluginResponse {
        self.remove_row(Some(header)).await;
        merge_all(
            &mut cookies,
            header_values([self.flags.expired_cookie(&self.cookie_name)]),
        );
        self.logout_remember(&ctx.request.headers, state, &[], &mut cookies, now)
            .await;
        ctx.exit(StatusCode::OK, ExitBody::Empty, cookies)
    }

    /// The remember part of a logout, when remember is on and the request
    /// sent a remember cookie (or access just saved one): expire it (and
    /// delete its row), or save the other audiences in it.
    pub(super) async fn logout_remember(
        &self,
        headers: &HeaderMap,
        state: &SessionState,
        others: &[AudienceEntry],
        cookies: &mut HeaderMap,
        now: u64,
    ) {
        let Some(remember) = &self.remember else {
            return;
        };
        let sent = request_cookie(headers, &remember.cookie_name).is_some();
        if !sent && state.remember.is_none() {
            return;
        }
        let previous = state
            .remember
            .clone()
            .or_else(|| self.open_cookie_header(headers, CookieKind::Remember, now));
        if others.is_empty() {
            self.remove_row(previous.as_ref()).await;
            merge_all(
                cookies,
                header_values([self.flags.expired_cookie(&remember.cookie_name)]),
            );
        } else if let Some(saved) = self
            .save(CookieKind::Remember, others, previous.as_ref(), now)
            .await
        {
            merge_all(cookies, saved.cookies);
        }
    }

    /// Destroys a session whose consumer is gone: expiring `Set-Cookie`s
    /// (also for the remember cookie when one was sent) and, with kong
    /// storage, no more rows.
    pub(super) async fn destroy(
        &self,
        ctx: &mut RequestCtx,
        opened: &Opened,
        state: &SessionState,
        cookies: &mut HeaderMap,
        now: u64,
    ) {
        self.expire_session(opened, cookies).await;
        self.logout_remember(&ctx.request.headers, state, &[], cookies, now)
            .await;
    }

    /// Expires the session cookie (and its chunks) and deletes its row.
    pub(super) async fn expire_session(&self, opened: &Opened, cookies: &mut HeaderMap) {
        self.remove_row(Some(&opened.header)).await;
        let mut expired = vec![self.flags.expired_cookie(&self.cookie_name)];
        if self.mode == StorageMode::Cookie {
            let chunks =
                cookie_chunk_count(&self.cookie_name, opened.header.data_size()).unwrap_or(1);
            let names = (2..=chunks).map(|index| format!("{}{index}", self.cookie_name));
            expired.extend(names.map(|name| self.flags.expired_cookie(&name)));
        }
        merge_all(cookies, header_values(expired));
    }
}

pub(super) enum Owner {
    /// The consumer exists; the session's data.
    Found(Arc<Consumer>, KongSessionData),
    /// The data names a consumer that no longer exists.
    Gone,
    /// The data names no consumer (not Kong's data, or not a UUID).
    Unreadable,
}

pub(super) fn owner_of(ctx: &RequestCtx, opened: &Opened) -> Owner {
    let data = opened
        .entry()
        .and_then(|entry| KongSessionData::from_value(&entry.data));
    let Some(data) = data else {
        return Owner::Unreadable;
    };
    let Some(consumer_id) = parse_uuid(&data.consumer_id) else {
        return Owner::Unreadable;
    };
    match ctx.identities().consumer(&consumer_id) {
        Some(consumer) => Owner::Found(Arc::clone(consumer), data),
        None => Owner::Gone,
    }
}

pub(super) fn authenticate(ctx: &mut RequestCtx, consumer: Arc<Consumer>, data: &KongSessionData) {
    let credential = data
        .credential_id
        .as_deref()
        .and_then(parse_uuid)
        .map(|id| AuthCredential {
            id,
            consumer_id: consumer.id,
        });
    set_identity_headers(
        &mut ctx.request.headers,
        Some(&consumer),
        credential.as_ref(),
    );
    let groups = data.groups.as_ref().map(|groups| groups.join(", "));
    match groups.and_then(|groups| HeaderValue::from_str(&groups).ok()) {
        Some(value) => {
            ctx.request.headers.insert(AUTHENTICATED_GROUPS, value);
        }
        None => {
            ctx.request.headers.remove(AUTHENTICATED_GROUPS);
        }
    }
    if let Some(groups) = &data.groups {
        ctx.extensions.insert(AuthenticatedGroups(groups.clone()));
    }
    ctx.authenticate(Some(consumer), credential);
}

pub(super) fn subject(consumer: &Consumer) -> String {
    consumer
        .username
        .clone()
        .or_else(|| consumer.custom_id.clone())
        .unwrap_or_else(|| consumer.id.to_string())
}

pub(super) fn body_has_arg(headers: &HeaderMap, body: &[u8], name: &str) -> bool {
    let parsed = ParsedBody::parse(headers, body);
    if let ParsedBody::Json(object) = &parsed {
        if object.get(name) == Some(&Value::Bool(false)) {
            return false;
        }
    }
    parsed.arg(name).is_present()
}

pub(super) fn request_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let values = headers.get_all(COOKIE).iter();
    find_cookie(values.filter_map(|value| value.to_str().ok()), name)
}

pub(super) async fn load_row(
    rows: &dyn SessionStore,
    header: &SessionHeader,
    now: u64,
) -> Result<String, OpenError> {
    match rows.get(&header.session_id(), now).await {
        Ok(Some(data)) => Ok(data),
        Ok(None) => Err(OpenError::PayloadMissing),
        Err(SessionError::Backend(error)) => {
            tracing::warn!(%error, "cannot read the session row");
            Err(OpenError::StorageUnavailable)
        }
        Err(error) => {
            tracing::warn!(error = %describe(&error), "cannot read the session row");
            Err(OpenError::PayloadMissing)
        }
    }
}

pub(super) fn describe(error: &SessionError) -> Cow<'static, str> {
    match error {
        SessionError::CorruptRecord(_) => Cow::Borrowed("corrupt session row"),
        other => Cow::Owned(other.to_string()),
    }
}
