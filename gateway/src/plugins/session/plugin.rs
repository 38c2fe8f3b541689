//! The session plugin (priority 1900): keeps a consumer logged in with a
//! lua-resty-session v4 cookie once another plugin authenticated it.
//!
//! **access** ([`Session::access`]), before every auth plugin:
//! 1. open the session cookie (header checks, payload from the cookie or the
//!    `storage: kong` row, decryption, audience). Any failure means "no
//!    session": the request continues unauthenticated. With `remember`, a
//!    failed cookie (not an audience miss) falls back to the remember cookie,
//!    which, when valid, is saved again together with a new session cookie;
//! 2. a logout (method in `logout_methods` and `logout_query_arg` in the
//!    query, or with `read_body_for_logout` the `logout_post_arg` in the
//!    body) destroys the session and answers 200 with an empty body and
//!    expiring `Set-Cookie`s;
//! 3. the consumer is loaded by id: gone → the cookie is expired and the
//!    request continues unauthenticated;
//! 4. refresh: renewal (new session id, same creation time) past 3/4 of the
//!    rolling timeout, or a "touch" (same id, new idling offset) after 60 s
//!    of idleness;
//! 5. `request_headers` / `response_headers`, identity headers, and
//!    `authenticate(consumer, {credential_id, consumer_id})`. Auth plugins in
//!    OR mode (`anonymous` set) then skip.
//!
//! **response** ([`Session::response`]), for every response: when the
//! request carries a credential (not an anonymous consumer) that the opened
//! session does not already hold, a new session is saved (new id, data
//! `[consumer_id, credential_id]`, subject = username, else custom_id, else
//! id) and its `Set-Cookie` replaces any cookie of the same name in the
//! response. With `storage: kong` the row is written synchronously.
//! When a cookie did open (another audience's session, or one of another
//! credential), the new session keeps its creation time and the other
//! audiences' entries, and its old row is retired, as Kong's `save` does.
//!
//! Every `Set-Cookie` replaces a queued one of the same name and keeps the
//! others. The session cookie is not stripped from the upstream request.
//! `hash_subject` and `store_metadata` only concern Kong's
//! `session_metadatas` table, which this gateway does not keep.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue, COOKIE, SET_COOKIE};
use http::{Method, StatusCode};
use schemas::model::Consumer;
use schemas::plugins::session::SessionConfig;
use serde_json::Value;
use uuid::Uuid;

use super::cookie::{
    cookie_chunk_count, cookie_payload, decode_payload, decrypt_payload, encode_payload,
    find_audience, find_cookie, generate_sid, open_header, seal, split_cookie_chunks,
    AudienceEntry, CookieFlags, CookieKind, KongSessionData, OpenError, OpenPolicy, SameSite,
    SealInput, SealedSession, SessionHeader, SessionSecret, StorageMode, HEADER_ENCODED_SIZE,
    MAX_TTL,
};
use super::storage::{SessionStorage, StorageError};
use crate::plugins::request_data::{query_arg, ParsedBody};
use crate::plugins::{
    set_identity_headers, AuthCredential, Flow, Plugin, PluginBuildError, PluginEnv,
    PluginResponse, RequestCtx,
};
use crate::proxy::respond::ExitBody;

/// The plugin's name.
pub const NAME: &str = "session";

/// Kong's priority for session.
pub const PRIORITY: u32 = 1900;

/// Upstream header carrying the groups a session restored.
pub const AUTHENTICATED_GROUPS: HeaderName = HeaderName::from_static("x-authenticated-groups");

/// Methods whose body may carry the logout argument.
const BODY_METHODS: [Method; 4] = [Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// The groups a session authenticated (Kong's `authenticated_groups`), kept
/// in [`RequestCtx::extensions`] so a new session saves them again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedGroups(pub Vec<String>);

/// A session property exposed as a `Session-*` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Property {
    Id,
    Audience,
    Subject,
    Timeout,
    IdlingTimeout,
    RollingTimeout,
    AbsoluteTimeout,
}

impl Property {
    /// The property of a config name (`id`, `idling-timeout`, ...).
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "id" => Property::Id,
            "audience" => Property::Audience,
            "subject" => Property::Subject,
            "timeout" => Property::Timeout,
            "idling-timeout" => Property::IdlingTimeout,
            "rolling-timeout" => Property::RollingTimeout,
            "absolute-timeout" => Property::AbsoluteTimeout,
            _ => return None,
        })
    }

    /// The header it is sent in (`Session-Id`, ...).
    fn header_name(self) -> HeaderName {
        HeaderName::from_static(match self {
            Property::Id => "session-id",
            Property::Audience => "session-audience",
            Property::Subject => "session-subject",
            Property::Timeout => "session-timeout",
            Property::IdlingTimeout => "session-idling-timeout",
            Property::RollingTimeout => "session-rolling-timeout",
            Property::AbsoluteTimeout => "session-absolute-timeout",
        })
    }
}

/// The remember cookie's settings (`remember: true`).
#[derive(Debug, Clone)]
struct Remember {
    cookie_name: String,
    rolling_timeout: u64,
    absolute_timeout: u64,
}

/// One session instance: the config parsed, the secret derived once.
#[derive(Debug)]
pub struct Session {
    secret: SessionSecret,
    mode: StorageMode,
    /// The rows of `storage: kong`; `None` for cookie storage.
    storage: Option<SessionStorage>,
    audience: String,
    idling_timeout: u64,
    rolling_timeout: u64,
    absolute_timeout: u64,
    stale_ttl: u64,
    cookie_name: String,
    flags: CookieFlags,
    remember: Option<Remember>,
    request_headers: Vec<Property>,
    response_headers: Vec<Property>,
    read_body_for_logout: bool,
    logout_methods: Vec<Method>,
    logout_query_arg: String,
    logout_post_arg: String,
}

/// A cookie that opened (header, payload and decryption all valid).
#[derive(Debug, Clone)]
struct Opened {
    /// The current header (after any renewal or touch in this request).
    header: SessionHeader,
    /// Every audience entry of the payload.
    entries: Vec<AudienceEntry>,
    /// The entry of the configured audience; `None` for an audience miss.
    index: Option<usize>,
    /// Cookie storage: the ciphertext part of the first cookie (re-sent by a
    /// touch). Empty for kong storage.
    initial_chunk: String,
}

impl Opened {
    /// The entry of the configured audience.
    fn entry(&self) -> Option<&AudienceEntry> {
        self.entries.get(self.index?)
    }

    /// The entries with `entry` in place of (or added as) ours.
    fn entries_with(&self, entry: AudienceEntry) -> Vec<AudienceEntry> {
        let mut entries = self.entries.clone();
        match self.index.and_then(|index| entries.get_mut(index)) {
            Some(slot) => *slot = entry,
            None => entries.push(entry),
        }
        entries
    }

    /// The entries without ours.
    fn other_entries(&self) -> Vec<AudienceEntry> {
        let mut entries = self.entries.clone();
        if let Some(index) = self.index.filter(|index| *index < entries.len()) {
            entries.remove(index);
        }
        entries
    }
}

/// What access leaves for the response phase, in [`RequestCtx::extensions`].
#[derive(Debug, Clone, Default)]
struct SessionState {
    /// The session cookie that opened (authenticated or an audience miss).
    opened: Option<Opened>,
    /// The remember cookie header restored or saved in access.
    remember: Option<SessionHeader>,
}

impl SessionState {
    /// True when the opened session already holds this consumer and
    /// credential (Kong compares the stored ids with the context's).
    fn holds(&self, consumer_id: Uuid, credential_id: Uuid) -> bool {
        let Some(entry) = self.opened.as_ref().and_then(Opened::entry) else {
            return false;
        };
        let Some(data) = KongSessionData::from_value(&entry.data) else {
            return false;
        };
        let credential = data.credential_id.as_deref().and_then(parse_uuid);
        parse_uuid(&data.consumer_id) == Some(consumer_id) && credential == Some(credential_id)
    }
}

/// Why no session was found.
#[derive(Debug, thiserror::Error)]
enum OpenFailure {
    #[error("no session cookie")]
    Missing,
    #[error(transparent)]
    Invalid(#[from] OpenError),
}

/// The result of saving a session.
struct Saved {
    header: SessionHeader,
    /// `Set-Cookie` values, in order.
    cookies: Vec<HeaderValue>,
    initial_chunk: String,
}

/// Builds an instance from a plugin row (the [`crate::plugins::PluginFactory`]).
pub fn build(
    row: &schemas::model::Plugin,
    env: &PluginEnv,
) -> Result<Arc<dyn Plugin>, PluginBuildError> {
    let config: SessionConfig = serde_json::from_value(row.config.clone())?;
    Ok(Arc::new(Session::new(&config, env)?))
}

impl Session {
    /// Parses and precomputes `config`.
    fn new(config: &SessionConfig, env: &PluginEnv) -> Result<Self, PluginBuildError> {
        let secret = config
            .secret
            .as_deref()
            .ok_or_else(|| invalid("session secret missing"))?;
        let (mode, storage) = storage_of(&config.storage, env)?;
        let same_site = same_site_of(&config.cookie_same_site)?;
        let flags = CookieFlags::new(
            &config.cookie_path,
            config.cookie_domain.as_deref(),
            same_site,
            config.cookie_secure,
            config.cookie_http_only,
        );
        let remember = config.remember.then(|| Remember {
            cookie_name: config.remember_cookie_name.clone(),
            rolling_timeout: seconds(config.remember_rolling_timeout),
            absolute_timeout: seconds(config.remember_absolute_timeout),
        });
        check_cookie_names(&flags, &config.cookie_name, remember.as_ref())?;
        Ok(Session {
            secret: SessionSecret::new(secret.as_bytes()),
            mode,
            storage,
            audience: config.audience.clone(),
            idling_timeout: seconds(config.idling_timeout),
            rolling_timeout: seconds(config.rolling_timeout),
            absolute_timeout: seconds(config.absolute_timeout),
            stale_ttl: seconds(config.stale_ttl),
            cookie_name: config.cookie_name.clone(),
            flags,
            remember,
            request_headers: properties(config.request_headers.as_deref())?,
            response_headers: properties(config.response_headers.as_deref())?,
            read_body_for_logout: config.read_body_for_logout,
            logout_methods: methods(&config.logout_methods)?,
            logout_query_arg: config.logout_query_arg.clone(),
            logout_post_arg: config.logout_post_arg.clone(),
        })
    }
}

/// A [`PluginBuildError::Invalid`].
fn invalid(message: &str) -> PluginBuildError {
    PluginBuildError::Invalid(message.to_owned())
}

/// The storage mode and, for `kong`, the shared session rows.
fn storage_of(
    storage: &str,
    env: &PluginEnv,
) -> Result<(StorageMode, Option<SessionStorage>), PluginBuildError> {
    match storage {
        "cookie" => Ok((StorageMode::Cookie, None)),
        "kong" => {
            let rows = env.shared.get::<SessionStorage>().cloned();
            let rows = rows.ok_or_else(|| invalid("session storage unavailable"))?;
            Ok((StorageMode::Server, Some(rows)))
        }
        other => Err(PluginBuildError::Invalid(format!(
            "unknown session storage {other:?}"
        ))),
    }
}

/// The `SameSite` attribute of `cookie_same_site`.
fn same_site_of(value: &str) -> Result<SameSite, PluginBuildError> {
    match value {
        "Strict" => Ok(SameSite::Strict),
        "Lax" => Ok(SameSite::Lax),
        "None" => Ok(SameSite::None),
        "Default" => Ok(SameSite::Default),
        other => Err(PluginBuildError::Invalid(format!(
            "unknown cookie_same_site {other:?}"
        ))),
    }
}

/// Rejects cookie names and attributes that cannot make a `Set-Cookie`.
fn check_cookie_names(
    flags: &CookieFlags,
    cookie_name: &str,
    remember: Option<&Remember>,
) -> Result<(), PluginBuildError> {
    let names = std::iter::once(cookie_name).chain(remember.map(|r| r.cookie_name.as_str()));
    for name in names {
        let usable = !name.is_empty()
            && !name.contains(['=', ';', ' ', '\t', ','])
            && HeaderValue::from_str(&flags.session_cookie(name, "v")).is_ok();
        if !usable {
            return Err(invalid(
                "cookie name or attributes cannot form a Set-Cookie header",
            ));
        }
    }
    Ok(())
}

/// The headers of `request_headers` / `response_headers`.
fn properties(names: Option<&[String]>) -> Result<Vec<Property>, PluginBuildError> {
    names
        .unwrap_or_default()
        .iter()
        .map(|name| {
            Property::parse(name).ok_or_else(|| {
                PluginBuildError::Invalid(format!("unknown session header {name:?}"))
            })
        })
        .collect()
}

/// The `logout_methods`.
fn methods(names: &[String]) -> Result<Vec<Method>, PluginBuildError> {
    names
        .iter()
        .map(|name| {
            Method::from_bytes(name.as_bytes())
                .map_err(|_| PluginBuildError::Invalid(format!("bad logout method {name:?}")))
        })
        .collect()
}

/// A config duration in whole seconds: 0 (disabled) for zero, negative or
/// NaN; a positive fraction below one second counts as one.
fn seconds(value: f64) -> u64 {
    if value.is_nan() || value <= 0.0 {
        return 0;
    }
    // `as` saturates at u64::MAX for huge values.
    (value.floor() as u64).max(1)
}

impl Plugin for Session {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> u32 {
        PRIORITY
    }

    /// The body is read only with `read_body_for_logout`.
    fn needs_body(&self) -> bool {
        self.read_body_for_logout
    }

    /// Runs before the auth plugins. Restores the consumer of a valid
    /// session cookie (refreshing the cookie when due), or answers a logout
    /// with 200. Returns [`Flow::Respond`] only for a logout; every other
    /// case, including any invalid cookie, continues.
    fn access(&self, ctx: &mut RequestCtx) -> Flow {
        let now = now();
        let mut cookies = HeaderMap::new();
        let mut state = SessionState::default();
        let opened = self.open_session(&ctx.request.headers, now, &mut state, &mut cookies);
        if let Some(opened) = opened {
            if self.is_logout(ctx) {
                let response = self.logout(ctx, &opened, &state, cookies, now);
                return Flow::Respond(response);
            }
            self.restore(ctx, opened, &mut state, &mut cookies, now);
        }
        for cookie in cookies.get_all(SET_COOKIE) {
            merge_set_cookie(&mut ctx.response_headers, cookie.clone());
        }
        ctx.extensions.insert(state);
        Flow::Continue
    }

    /// Runs for every response. When the request authenticated with a
    /// credential that the opened session does not hold, saves a new
    /// session and adds its `Set-Cookie` (and the remember cookie) to
    /// `head`; anonymous and unauthenticated requests get nothing.
    fn response(&self, ctx: &mut RequestCtx, head: &mut http::response::Parts) {
        let (Some(credential), Some(consumer)) = (ctx.credential(), ctx.consumer()) else {
            return;
        };
        let empty = SessionState::default();
        let state = ctx.extensions.get::<SessionState>().unwrap_or(&empty);
        if state.holds(consumer.id, credential.id) {
            return;
        }
        let groups = ctx.extensions.get::<AuthenticatedGroups>();
        let entry = self.new_entry(consumer, credential, groups);
        let now = now();
        let (entries, previous) = match &state.opened {
            Some(opened) => (opened.entries_with(entry.clone()), Some(&opened.header)),
            None => (vec![entry.clone()], None),
        };
        let Some(saved) = self.save(CookieKind::Session, &entries, previous, now) else {
            return;
        };
        merge_all(&mut head.headers, saved.cookies);
        self.save_remember(
            &ctx.request.headers,
            state,
            &entries,
            &mut head.headers,
            now,
        );
        self.set_properties(
            &self.response_headers,
            &mut head.headers,
            &saved.header,
            &entry,
            now,
        );
    }
}

impl Session {
    // -----------------------------------------------------------------------
    // Opening
    // -----------------------------------------------------------------------

    /// The session of the request, if one opened for our audience: the
    /// session cookie, else (with `remember`) the remember cookie saved again
    /// with a new session cookie (their `Set-Cookie`s go to `cookies`). An
    /// audience miss is kept in `state` for the response phase.
    fn open_session(
        &self,
        headers: &HeaderMap,
        now: u64,
        state: &mut SessionState,
        cookies: &mut HeaderMap,
    ) -> Option<Opened> {
        match self.open_cookie(headers, CookieKind::Session, now) {
            Ok(opened) if opened.index.is_some() => Some(opened),
            Ok(other_audiences) => {
                tracing::debug!("session cookie has no entry for this audience");
                state.opened = Some(other_audiences);
                None
            }
            Err(failure) => {
                tracing::debug!(%failure, "no session");
                self.open_remembered(headers, now, state, cookies)
            }
        }
    }

    /// With `remember`: opens the remember cookie and, if it holds our
    /// audience, saves it again plus a new session cookie.
    fn open_remembered(
        &self,
        headers: &HeaderMap,
        now: u64,
        state: &mut SessionState,
        cookies: &mut HeaderMap,
    ) -> Option<Opened> {
        self.remember.as_ref()?;
        let remembered = match self.open_cookie(headers, CookieKind::Remember, now) {
            Ok(remembered) => remembered,
            Err(failure) => {
                tracing::debug!(%failure, "no remember session");
                return None;
            }
        };
        remembered.index?;
        let entries = remembered.entries;
        let remember = self.save(
            CookieKind::Remember,
            &entries,
            Some(&remembered.header),
            now,
        )?;
        merge_all(cookies, remember.cookies);
        state.remember = Some(remember.header);
        let saved = self.save(CookieKind::Session, &entries, None, now)?;
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
    fn open_cookie(
        &self,
        headers: &HeaderMap,
        kind: CookieKind,
        now: u64,
    ) -> Result<Opened, OpenFailure> {
        let name = self.cookie_name_of(kind);
        let value = request_cookie(headers, name).ok_or(OpenFailure::Missing)?;
        let header = open_header(&self.secret, value, &self.policy(kind), now)?;
        let payload = match &self.storage {
            Some(rows) => Cow::Owned(load_row(rows, &header, now)?),
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
    fn open_cookie_header(
        &self,
        headers: &HeaderMap,
        kind: CookieKind,
        now: u64,
    ) -> Option<SessionHeader> {
        let value = request_cookie(headers, self.cookie_name_of(kind))?;
        open_header(&self.secret, value, &self.policy(kind), now).ok()
    }

    /// What a cookie of `kind` is checked against.
    fn policy(&self, kind: CookieKind) -> OpenPolicy {
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
    fn cookie_name_of(&self, kind: CookieKind) -> &str {
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
    fn restore(
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
                self.destroy(ctx, &opened, state, cookies, now);
            }
            Owner::Found(consumer, data) => {
                self.refresh(&mut opened, cookies, now);
                self.set_session_headers(ctx, &opened, now);
                authenticate(ctx, consumer, &data);
                state.opened = Some(opened);
            }
        }
    }

    /// Sets the configured `Session-*` headers: `request_headers` on the
    /// upstream request, `response_headers` queued for the client.
    fn set_session_headers(&self, ctx: &mut RequestCtx, opened: &Opened, now: u64) {
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
    fn refresh(&self, opened: &mut Opened, cookies: &mut HeaderMap, now: u64) {
        if opened.header.needs_renewal(now, self.rolling_timeout) {
            let renewed = self.save(
                CookieKind::Session,
                &opened.entries,
                Some(&opened.header),
                now,
            );
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
    fn is_logout(&self, ctx: &RequestCtx) -> bool {
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
    fn logout(
        &self,
        ctx: &RequestCtx,
        opened: &Opened,
        state: &SessionState,
        mut cookies: HeaderMap,
        now: u64,
    ) -> PluginResponse {
        let others = opened.other_entries();
        if others.is_empty() {
            self.expire_session(opened, &mut cookies);
        } else if let Some(saved) =
            self.save(CookieKind::Session, &others, Some(&opened.header), now)
        {
            merge_all(&mut cookies, saved.cookies);
        }
        self.logout_remember(&ctx.request.headers, state, &others, &mut cookies, now);
        ctx.exit(StatusCode::OK, ExitBody::Empty, cookies)
    }

    /// The remember part of a logout, when remember is on and the request
    /// sent a remember cookie (or access just saved one): expire it (and
    /// delete its row), or save the other audiences in it.
    fn logout_remember(
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
            self.remove_row(previous.as_ref());
            merge_all(
                cookies,
                header_values([self.flags.expired_cookie(&remember.cookie_name)]),
            );
        } else if let Some(saved) = self.save(CookieKind::Remember, others, previous.as_ref(), now)
        {
            merge_all(cookies, saved.cookies);
        }
    }

    /// Destroys a session whose consumer is gone: expiring `Set-Cookie`s
    /// (also for the remember cookie when one was sent) and, with kong
    /// storage, no more rows.
    fn destroy(
        &self,
        ctx: &RequestCtx,
        opened: &Opened,
        state: &SessionState,
        cookies: &mut HeaderMap,
        now: u64,
    ) {
        self.expire_session(opened, cookies);
        self.logout_remember(&ctx.request.headers, state, &[], cookies, now);
    }

    /// Expires the session cookie (and its chunks) and deletes its row.
    fn expire_session(&self, opened: &Opened, cookies: &mut HeaderMap) {
        self.remove_row(Some(&opened.header));
        let mut expired = vec![self.flags.expired_cookie(&self.cookie_name)];
        if self.mode == StorageMode::Cookie {
            let chunks =
                cookie_chunk_count(&self.cookie_name, opened.header.data_size()).unwrap_or(1);
            let names = (2..=chunks).map(|index| format!("{}{index}", self.cookie_name));
            expired.extend(names.map(|name| self.flags.expired_cookie(&name)));
        }
        merge_all(cookies, header_values(expired));
    }

    // -----------------------------------------------------------------------
    // Saving
    // -----------------------------------------------------------------------

    /// Kong's `save`: seals `entries` under a new session id, keeping the
    /// creation time of `previous` (the cookie being replaced) or starting
    /// at `now`. With kong storage, inserts the row (expiring after the
    /// rolling timeout, capped at 400 days) and retires `previous`'s row.
    /// Returns `None` (after logging) when sealing or storing fails.
    fn save(
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
        self.store(kind, &sealed, previous, now)?;
        Some(Saved {
            header: sealed.header,
            cookies,
            initial_chunk,
        })
    }

    /// The `Set-Cookie` values of a sealed session (split in chunks for
    /// large cookie-storage sessions, expiring chunks the previous cookie
    /// had beyond the new count), and the ciphertext of the first cookie.
    fn set_cookies(
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
    fn cookie_line(&self, kind: CookieKind, name: &str, value: &str, created_at: u64) -> String {
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
    fn store(
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
        if let Err(error) = rows.insert(&session_id, data, now.saturating_add(ttl)) {
            tracing::warn!(error = %describe(&error), "cannot store the session");
            return None;
        }
        let Some(previous) = previous else {
            return Some(());
        };
        let retired = match kind {
            CookieKind::Remember => rows.remove(&previous.session_id()),
            CookieKind::Session => {
                rows.set_expiry(&previous.session_id(), now.saturating_add(self.stale_ttl))
            }
        };
        if let Err(error) = retired {
            tracing::warn!(error = %describe(&error), "cannot retire the previous session row");
        }
        Some(())
    }

    /// Kong storage: deletes the row of `header`, if any.
    fn remove_row(&self, header: Option<&SessionHeader>) {
        let (Some(rows), Some(header)) = (&self.storage, header) else {
            return;
        };
        if let Err(error) = rows.remove(&header.session_id()) {
            tracing::warn!(error = %describe(&error), "cannot delete the session row");
        }
    }

    /// With `remember`, in the response phase: saves the remember cookie of
    /// a new session, replacing the one restored in access or sent.
    fn save_remember(
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
        if let Some(saved) = self.save(CookieKind::Remember, entries, previous.as_ref(), now) {
            merge_all(response_headers, saved.cookies);
        }
    }

    /// The audience entry of a new session for `consumer` and `credential`.
    fn new_entry(
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
    fn set_properties(
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
    fn property(
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
struct Remaining {
    idling: Option<i128>,
    rolling: Option<i128>,
    absolute: Option<i128>,
}

impl Remaining {
    /// The remaining times of `header` at `now` under `session`'s timeouts.
    fn of(session: &Session, header: &SessionHeader, now: u64) -> Self {
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
    fn closest(&self) -> Option<i128> {
        [self.idling, self.rolling, self.absolute]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Whom an opened session belongs to.
enum Owner {
    /// The consumer exists; the session's data.
    Found(Arc<Consumer>, KongSessionData),
    /// The data names a consumer that no longer exists.
    Gone,
    /// The data names no consumer (not Kong's data, or not a UUID).
    Unreadable,
}

/// Looks up the consumer of `opened` in the snapshot, by id only.
fn owner_of(ctx: &RequestCtx, opened: &Opened) -> Owner {
    let data = opened
        .entry()
        .and_then(|entry| KongSessionData::from_value(&entry.data));
    let Some(data) = data else {
        return Owner::Unreadable;
    };
    let Some(consumer_id) = parse_uuid(&data.consumer_id) else {
        return Owner::Unreadable;
    };
    match ctx.snapshot.consumer(&consumer_id) {
        Some(consumer) => Owner::Found(Arc::clone(consumer), data),
        None => Owner::Gone,
    }
}

/// Sets the identity headers and authenticates the session's consumer with
/// `{id: credential_id, consumer_id}` (no credential id: anonymous-style
/// headers, as Kong does); groups go to `X-Authenticated-Groups`.
fn authenticate(ctx: &mut RequestCtx, consumer: Arc<Consumer>, data: &KongSessionData) {
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

/// The session subject of `consumer`: username, else custom_id, else id.
fn subject(consumer: &Consumer) -> String {
    consumer
        .username
        .clone()
        .or_else(|| consumer.custom_id.clone())
        .unwrap_or_else(|| consumer.id.to_string())
}

/// Whether a request body has the logout argument `name`, with Lua
/// truthiness: any value but a JSON `false`.
fn body_has_arg(headers: &HeaderMap, body: &[u8], name: &str) -> bool {
    let parsed = ParsedBody::parse(headers, body);
    if let ParsedBody::Json(object) = &parsed {
        if object.get(name) == Some(&Value::Bool(false)) {
            return false;
        }
    }
    parsed.arg(name).is_present()
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn request_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let values = headers.get_all(COOKIE).iter();
    find_cookie(values.filter_map(|value| value.to_str().ok()), name)
}

/// Kong storage: the ciphertext of the row of `header`.
fn load_row(rows: &SessionStorage, header: &SessionHeader, now: u64) -> Result<String, OpenError> {
    match rows.get(&header.session_id(), now) {
        Ok(Some(data)) => Ok(data),
        Ok(None) => Err(OpenError::PayloadMissing),
        Err(error) => {
            tracing::warn!(error = %describe(&error), "cannot read the session row");
            Err(OpenError::PayloadMissing)
        }
    }
}

/// A storage error for the logs, without the session id that a corrupt
/// row error names.
fn describe(error: &StorageError) -> Cow<'static, str> {
    match error {
        StorageError::CorruptRecord(_) => Cow::Borrowed("corrupt session row"),
        other => Cow::Owned(other.to_string()),
    }
}

/// A storage TTL: 0 or more than 400 days means 400 days.
fn storage_ttl(timeout: u64) -> u64 {
    if timeout == 0 || timeout > MAX_TTL {
        MAX_TTL
    } else {
        timeout
    }
}

/// Header values of `Set-Cookie` lines (lines that cannot be one are
/// dropped; names and attributes were checked when the plugin was built).
fn header_values(lines: impl IntoIterator<Item = String>) -> Vec<HeaderValue> {
    lines
        .into_iter()
        .filter_map(|line| HeaderValue::from_str(&line).ok())
        .collect()
}

/// Merges each `Set-Cookie` value into `headers` ([`merge_set_cookie`]).
fn merge_all(headers: &mut HeaderMap, cookies: Vec<HeaderValue>) {
    for cookie in cookies {
        merge_set_cookie(headers, cookie);
    }
}

/// Adds a `Set-Cookie`, replacing the first one for the same cookie name
/// and keeping the others (lua-resty-session's `merge_cookies`).
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

/// The cookie name of a `Set-Cookie` value (the bytes before the first `=`).
fn set_cookie_name(value: &[u8]) -> &[u8] {
    value.split(|byte| *byte == b'=').next().unwrap_or(value)
}

/// A UUID in any of its textual forms.
fn parse_uuid(text: &str) -> Option<Uuid> {
    Uuid::parse_str(text).ok()
}

/// The current time in epoch seconds.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::runner::tests::ctx_with_request;
    use crate::plugins::runner::{PluginRunner, DEFAULT_BODY_CAP};
    use crate::plugins::{
        ANONYMOUS_CONSUMER, CONSUMER_ID, CONSUMER_USERNAME, CREDENTIAL_IDENTIFIER,
    };
    use crate::snapshot::tests::{consumer, credential, plugin, route, service};
    use crate::snapshot::{Scope, Snapshot};
    use bytes::Bytes;
    use schemas::config::Config;
    use serde_json::json;

    const SECRET: &str = "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7dEf0hIj3k";
    const EXPIRED: &str = "; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0";

    /// A canonical session config (cookie_secure off, as in the tutorial)
    /// with `overrides` applied.
    fn session_config(overrides: Value) -> Value {
        let mut config = json!({
            "secret": SECRET, "storage": "cookie", "audience": "default",
            "idling_timeout": 900, "rolling_timeout": 3600, "absolute_timeout": 86400,
            "stale_ttl": 10, "cookie_name": "session", "cookie_path": "/",
            "cookie_domain": null, "cookie_same_site": "Strict", "cookie_http_only": true,
            "cookie_secure": false, "remember": false, "remember_cookie_name": "remember",
            "remember_rolling_timeout": 604800, "remember_absolute_timeout": 2592000,
            "response_headers": null, "request_headers": null, "read_body_for_logout": false,
            "logout_methods": ["DELETE", "POST"], "logout_query_arg": "session_logout",
            "logout_post_arg": "session_logout", "hash_subject": false, "store_metadata": false
        });
        for (key, value) in overrides.as_object().unwrap() {
            config[key] = value.clone();
        }
        config
    }

    /// The tutorial: key-auth in OR mode (anonymous `anon`), a session
    /// plugin, consumer `alex` with key `hello_world`.
    struct World {
        config: Config,
        env: PluginEnv,
        snapshot: Arc<Snapshot>,
        alex: Uuid,
        anonymous: Uuid,
        credential: Uuid,
        rows: Option<SessionStorage>,
    }

    fn world(overrides: Value) -> World {
        let session = session_config(overrides);
        let (service_id, route_id) = (Uuid::new_v4(), Uuid::new_v4());
        let (alex, anonymous, credential_id) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let key_auth = json!({"key_names": ["apikey"], "hide_credentials": false,
            "anonymous": "anon", "key_in_header": true, "key_in_query": true,
            "key_in_body": false, "run_on_preflight": true, "realm": null});
        let config = Config {
            services: vec![service(service_id)],
            routes: vec![route(route_id, Some(service_id), "/")],
            consumers: vec![consumer(alex, "alex"), consumer(anonymous, "anon")],
            keyauth_credentials: vec![credential(credential_id, alex, "hello_world", None, 1)],
            plugins: vec![
                plugin("key-auth", key_auth, Scope::default()),
                plugin(NAME, session.clone(), Scope::default()),
            ],
        };
        let mut env = PluginEnv::default();
        let rows = (session["storage"] == "kong").then(temporary_rows);
        if let Some(rows) = &rows {
            env.shared.insert(rows.clone());
        }
        let snapshot = Arc::new(Snapshot::build(&config, &env).unwrap());
        World {
            config,
            env,
            snapshot,
            alex,
            anonymous,
            credential: credential_id,
            rows,
        }
    }

    fn temporary_rows() -> SessionStorage {
        let db = sled::Config::new().temporary(true).open().unwrap();
        SessionStorage::new(db.open_tree("sessions").unwrap())
    }

    impl World {
        /// The session instance of this world, to inspect cookies.
        fn session(&self) -> Session {
            let config = serde_json::from_value(self.config.plugins[1]["config"].clone()).unwrap();
            Session::new(&config, &self.env).unwrap()
        }

        /// A cookie value sealed as the plugin would, for `data` in
        /// `audience`, created at `created_at` (rows stored for kong).
        fn craft(
            &self,
            kind: CookieKind,
            data: &KongSessionData,
            audience: &str,
            created_at: u64,
        ) -> String {
            let entries = [AudienceEntry {
                data: data.to_value(),
                audience: audience.into(),
                subject: Some("alex".into()),
            }];
            let plaintext = encode_payload(&entries);
            let storage = if self.rows.is_some() {
                StorageMode::Server
            } else {
                StorageMode::Cookie
            };
            let input = SealInput {
                sid: generate_sid(),
                created_at,
                rolling_offset: 0,
                idling_offset: 0,
                plaintext: &plaintext,
                storage,
                kind,
            };
            let sealed = seal(&SessionSecret::new(SECRET.as_bytes()), &input).unwrap();
            if let (Some(rows), Some(data)) = (&self.rows, &sealed.stored_data) {
                rows.insert(&sealed.header.session_id(), data, now() + 3600)
                    .unwrap();
            }
            sealed.cookie_value
        }

        fn alex_data(&self) -> KongSessionData {
            KongSessionData {
                consumer_id: self.alex.to_string(),
                credential_id: Some(self.credential.to_string()),
                groups: None,
            }
        }
    }

    /// One request through access, the (simulated) proxy and response.
    struct Exchange {
        ctx: RequestCtx,
        status: Option<StatusCode>,
        body: Bytes,
        head: http::response::Parts,
    }

    impl Exchange {
        fn set_cookies(&self) -> Vec<String> {
            let values = self.head.headers.get_all(SET_COOKIE).iter();
            values
                .map(|value| value.to_str().unwrap().to_owned())
                .collect()
        }

        /// The value of the `Set-Cookie` for `name`.
        fn cookie(&self, name: &str) -> Option<String> {
            let prefix = format!("{name}=");
            self.set_cookies().into_iter().find_map(|line| {
                let pair = line.split(';').next()?.strip_prefix(&prefix)?.to_owned();
                Some(pair)
            })
        }

        fn consumer_id(&self) -> Option<Uuid> {
            self.ctx.consumer().map(|consumer| consumer.id)
        }
    }

    async fn send(world: &World, request: http::Request<Bytes>) -> Exchange {
        let mut ctx = ctx_with_request(Arc::clone(&world.snapshot), &world.config, request);
        let mut runner = PluginRunner::new(DEFAULT_BODY_CAP);
        let response = runner.access(&mut ctx).await;
        let status = response.as_ref().map(|response| response.status());
        let (mut head, body) = response.unwrap_or_default().into_parts();
        for (name, value) in &ctx.response_headers {
            head.headers.append(name, value.clone());
        }
        runner.response(&mut ctx, &mut head);
        Exchange {
            ctx,
            status,
            body,
            head,
        }
    }

    fn request(method: Method, uri: &str, cookie: Option<&str>) -> http::Request<Bytes> {
        let mut builder = http::Request::builder().method(method).uri(uri);
        if let Some(cookie) = cookie {
            builder = builder.header(COOKIE, cookie);
        }
        builder.body(Bytes::new()).unwrap()
    }

    fn get(uri: &str, cookie: Option<&str>) -> http::Request<Bytes> {
        request(Method::GET, uri, cookie)
    }

    /// Opens a cookie value with the world's config.
    fn open(world: &World, name: &str, value: &str, kind: CookieKind) -> Opened {
        let mut headers = HeaderMap::new();
        let cookie = format!("{name}={value}");
        headers.insert(COOKIE, HeaderValue::from_str(&cookie).unwrap());
        world.session().open_cookie(&headers, kind, now()).unwrap()
    }

    async fn login(world: &World) -> Exchange {
        send(world, get("/?apikey=hello_world", None)).await
    }

    // -----------------------------------------------------------------------
    // Building
    // -----------------------------------------------------------------------

    fn build_with(overrides: Value, env: &PluginEnv) -> Result<Session, PluginBuildError> {
        let config: SessionConfig = serde_json::from_value(session_config(overrides)).unwrap();
        Session::new(&config, env)
    }

    #[test]
    fn builds_from_the_canonical_config() {
        let session = build_with(json!({}), &PluginEnv::default()).unwrap();
        assert_eq!(session.mode, StorageMode::Cookie);
        assert!(session.storage.is_none());
        assert_eq!(
            (
                session.idling_timeout,
                session.rolling_timeout,
                session.absolute_timeout
            ),
            (900, 3600, 86400)
        );
        assert_eq!(
            session.flags.as_str(),
            "; Path=/; SameSite=Strict; HttpOnly"
        );
        assert_eq!(session.logout_methods, [Method::DELETE, Method::POST]);
        assert!(session.remember.is_none());
        assert!(!session.needs_body());
        assert_eq!(session.priority(), 1900);

        let session = build_with(
            json!({"cookie_secure": true, "cookie_same_site": "None", "cookie_domain": "example.com",
                   "remember": true, "read_body_for_logout": true, "idling_timeout": 0.5,
                   "response_headers": ["id", "absolute-timeout"]}),
            &PluginEnv::default(),
        )
        .unwrap();
        assert_eq!(
            session.flags.as_str(),
            "; Domain=example.com; Path=/; SameSite=None; Secure; HttpOnly"
        );
        assert_eq!(session.remember.as_ref().unwrap().rolling_timeout, 604800);
        assert!(session.needs_body());
        assert_eq!(session.idling_timeout, 1);
        assert_eq!(
            session.response_headers,
            [Property::Id, Property::AbsoluteTimeout]
        );
    }

    #[test]
    fn unusable_configs_fail_to_build() {
        let env = PluginEnv::default();
        let message = |overrides| build_with(overrides, &env).err().unwrap().to_string();
        assert_eq!(message(json!({"secret": null})), "session secret missing");
        assert_eq!(
            message(json!({"storage": "kong"})),
            "session storage unavailable"
        );
        assert!(message(json!({"cookie_same_site": "Sometimes"})).contains("cookie_same_site"));
        assert!(message(json!({"response_headers": ["nope"]})).contains("nope"));
        assert!(message(json!({"cookie_name": "a;b"})).contains("cookie name"));
        assert!(message(json!({"cookie_path": "/\n"})).contains("cookie name"));

        let mut env = PluginEnv::default();
        env.shared.insert(temporary_rows());
        let session = build_with(json!({"storage": "kong"}), &env).unwrap();
        assert_eq!(session.mode, StorageMode::Server);
        assert!(session.storage.is_some());
    }

    #[test]
    fn seconds_are_whole_and_never_negative() {
        assert_eq!(seconds(900.0), 900);
        assert_eq!(seconds(0.0), 0);
        assert_eq!(seconds(-5.0), 0);
        assert_eq!(seconds(f64::NAN), 0);
        assert_eq!(seconds(1.9), 1);
        assert_eq!(seconds(0.2), 1);
        assert_eq!(seconds(1e300), u64::MAX);
    }

    #[test]
    fn subject_is_username_then_custom_id_then_id() {
        let id = Uuid::new_v4();
        let mut consumer = Consumer {
            id,
            username: Some("alex".into()),
            custom_id: Some("c-1".into()),
            tags: None,
            created_at: None,
            updated_at: None,
        };
        assert_eq!(subject(&consumer), "alex");
        consumer.username = None;
        assert_eq!(subject(&consumer), "c-1");
        consumer.custom_id = None;
        assert_eq!(subject(&consumer), id.to_string());
    }

    // -----------------------------------------------------------------------
    // Logout detection
    // -----------------------------------------------------------------------

    async fn is_logout(world: &World, request: http::Request<Bytes>) -> bool {
        let mut ctx = ctx_with_request(Arc::clone(&world.snapshot), &world.config, request);
        let session = world.session();
        if session.needs_body() {
            ctx.buffer_body(DEFAULT_BODY_CAP).await.unwrap();
        }
        session.is_logout(&ctx)
    }

    fn with_body(method: Method, content_type: &str, body: &'static str) -> http::Request<Bytes> {
        http::Request::builder()
            .method(method)
            .uri("/")
            .header("content-type", content_type)
            .body(Bytes::from_static(body.as_bytes()))
            .unwrap()
    }

    #[tokio::test]
    async fn logout_by_query_arg_with_any_value() {
        let world = world(json!({}));
        for uri in [
            "/?session_logout",
            "/?session_logout=",
            "/?a=1&session_logout=false",
        ] {
            assert!(
                is_logout(&world, request(Method::POST, uri, None)).await,
                "{uri}"
            );
            assert!(
                is_logout(&world, request(Method::DELETE, uri, None)).await,
                "{uri}"
            );
            assert!(
                !is_logout(&world, request(Method::GET, uri, None)).await,
                "GET {uri}"
            );
        }
        assert!(!is_logout(&world, request(Method::POST, "/?session_logou", None)).await);
        assert!(!is_logout(&world, request(Method::POST, "/", None)).await);

        let world = self::world(json!({"logout_methods": ["GET"], "logout_query_arg": "bye"}));
        assert!(is_logout(&world, get("/?bye", None)).await);
        assert!(!is_logout(&world, request(Method::POST, "/?bye", None)).await);
    }

    #[tokio::test]
    async fn logout_by_body_arg_only_when_enabled() {
        let form = || {
            with_body(
                Method::POST,
                "application/x-www-form-urlencoded",
                "session_logout=1",
            )
        };
        let world = world(json!({}));
        assert!(
            !is_logout(&world, form()).await,
            "the body is not read by default"
        );

        let world = self::world(json!({"read_body_for_logout": true}));
        assert!(is_logout(&world, form()).await);
        let bare = with_body(
            Method::DELETE,
            "application/x-www-form-urlencoded",
            "a=1&session_logout",
        );
        assert!(is_logout(&world, bare).await);
        let json_true = with_body(
            Method::POST,
            "application/json",
            r#"{"session_logout":true}"#,
        );
        assert!(is_logout(&world, json_true).await);
        let json_false = with_body(
            Method::POST,
            "application/json",
            r#"{"session_logout":false}"#,
        );
        assert!(!is_logout(&world, json_false).await);
        let other = with_body(Method::POST, "application/json", r#"{"logout":"yes"}"#);
        assert!(!is_logout(&world, other).await);
        let get = with_body(
            Method::GET,
            "application/x-www-form-urlencoded",
            "session_logout=1",
        );
        assert!(!is_logout(&world, get).await, "GET is not a logout method");
    }

    // -----------------------------------------------------------------------
    // The tutorial flow
    // -----------------------------------------------------------------------

    #[tokio::test]
    async fn key_auth_login_sets_a_cookie_that_authenticates_later() {
        let world = world(json!({}));
        let login = login(&world).await;
        assert_eq!(login.consumer_id(), Some(world.alex));
        let set_cookies = login.set_cookies();
        assert_eq!(set_cookies.len(), 1, "{set_cookies:?}");
        let value = login.cookie("session").unwrap();
        assert_eq!(
            set_cookies[0],
            format!("session={value}; Path=/; SameSite=Strict; HttpOnly")
        );
        let opened = open(&world, "session", &value, CookieKind::Session);
        let entry = opened.entry().unwrap();
        assert_eq!(entry.subject.as_deref(), Some("alex"));
        assert_eq!(
            entry.data,
            json!([world.alex.to_string(), world.credential.to_string()])
        );

        let cookie = format!("other=1; session={value}");
        let again = send(&world, get("/anything", Some(&cookie))).await;
        assert_eq!(again.status, None);
        assert_eq!(again.consumer_id(), Some(world.alex));
        assert_eq!(again.ctx.credential().unwrap().id, world.credential);
        let upstream = &again.ctx.request.headers;
        assert_eq!(upstream[CONSUMER_USERNAME], "alex");
        assert_eq!(upstream[CONSUMER_ID], world.alex.to_string().as_str());
        assert_eq!(
            upstream[CREDENTIAL_IDENTIFIER],
            world.credential.to_string().as_str()
        );
        assert!(!upstream.contains_key(ANONYMOUS_CONSUMER));
        assert_eq!(
            upstream[COOKIE],
            cookie.as_str(),
            "the cookie is not stripped"
        );
        assert!(
            again.set_cookies().is_empty(),
            "a fresh session is neither renewed nor touched"
        );
    }

    #[tokio::test]
    async fn anonymous_consumers_get_no_cookie() {
        let world = world(json!({}));
        let exchange = send(&world, get("/", None)).await;
        assert_eq!(exchange.consumer_id(), Some(world.anonymous));
        assert!(exchange.set_cookies().is_empty());
    }

    #[tokio::test]
    async fn invalid_cookies_mean_no_session() {
        let world = world(json!({}));
        let value = login(&world).await.cookie("session").unwrap();
        let mut tampered = value.clone().into_bytes();
        let last = tampered.len() - 5;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        let other_secret = self::world(json!({"secret": "another-secret"}));
        let foreign = login(&other_secret).await.cookie("session").unwrap();
        for bad in [
            tampered.as_str(),
            &value[..120],
            &value[..50],
            "",
            "%%%",
            foreign.as_str(),
        ] {
            let exchange = send(&world, get("/", Some(&format!("session={bad}")))).await;
            assert_eq!(exchange.status, None);
            assert_eq!(exchange.consumer_id(), Some(world.anonymous), "{bad}");
            assert!(exchange.set_cookies().is_empty(), "no cookie is cleared");
        }
    }

    #[tokio::test]
    async fn expired_cookies_mean_no_session() {
        let world = world(json!({}));
        let old = world.craft(
            CookieKind::Session,
            &world.alex_data(),
            "default",
            now() - 90_000,
        );
        let exchange = send(&world, get("/", Some(&format!("session={old}")))).await;
        assert_eq!(exchange.consumer_id(), Some(world.anonymous));
    }

    #[tokio::test]
    async fn other_audiences_are_kept_when_logging_in() {
        let world = world(json!({}));
        let foreign = world.craft(
            CookieKind::Session,
            &world.alex_data(),
            "elsewhere",
            now() - 5,
        );
        let exchange = send(
            &world,
            get("/?apikey=hello_world", Some(&format!("session={foreign}"))),
        )
        .await;
        assert_eq!(exchange.consumer_id(), Some(world.alex));
        let value = exchange.cookie("session").unwrap();
        let opened = open(&world, "session", &value, CookieKind::Session);
        let audiences: Vec<&str> = opened.entries.iter().map(|e| e.audience.as_str()).collect();
        assert_eq!(audiences, ["elsewhere", "default"]);

        let only_foreign = send(&world, get("/", Some(&format!("session={foreign}")))).await;
        assert_eq!(
            only_foreign.consumer_id(),
            Some(world.anonymous),
            "an audience miss is no session"
        );
    }

    #[tokio::test]
    async fn deleted_consumers_lose_their_session() {
        let world = world(json!({}));
        let ghost = KongSessionData {
            consumer_id: Uuid::new_v4().to_string(),
            credential_id: Some(Uuid::new_v4().to_string()),
            groups: None,
        };
        let value = world.craft(CookieKind::Session, &ghost, "default", now() - 5);
        let exchange = send(&world, get("/", Some(&format!("session={value}")))).await;
        assert_eq!(exchange.consumer_id(), Some(world.anonymous));
        assert_eq!(
            exchange.set_cookies(),
            [format!(
                "session=; Path=/; SameSite=Strict; HttpOnly{EXPIRED}"
            )]
        );
    }

    #[tokio::test]
    async fn groups_are_restored_and_saved_again() {
        let world = world(json!({}));
        let mut data = world.alex_data();
        data.groups = Some(vec!["admins".into(), "ops".into()]);
        let value = world.craft(CookieKind::Session, &data, "default", now() - 5);
        let exchange = send(&world, get("/", Some(&format!("session={value}")))).await;
        assert_eq!(
            exchange.ctx.request.headers[AUTHENTICATED_GROUPS],
            "admins, ops"
        );
        let groups = exchange
            .ctx
            .extensions
            .get::<AuthenticatedGroups>()
            .unwrap();
        assert_eq!(groups.0, ["admins", "ops"]);

        let without = world.craft(
            CookieKind::Session,
            &world.alex_data(),
            "default",
            now() - 5,
        );
        let request = http::Request::get("/")
            .header(COOKIE, format!("session={without}"))
            .header(AUTHENTICATED_GROUPS, "spoofed")
            .body(Bytes::new())
            .unwrap();
        let exchange = send(&world, request).await;
        assert!(!exchange
            .ctx
            .request
            .headers
            .contains_key(AUTHENTICATED_GROUPS));
    }

    #[tokio::test]
    async fn another_credential_replaces_the_session_keeping_its_creation_time() {
        let mut world = world(json!({}));
        world.config.plugins[0]["config"]["anonymous"] = Value::Null;
        world.snapshot = Arc::new(Snapshot::build(&world.config, &world.env).unwrap());
        let mut data = world.alex_data();
        data.credential_id = Some(Uuid::new_v4().to_string());
        let created = now() - 100;
        let value = world.craft(CookieKind::Session, &data, "default", created);
        let cookie = format!("session={value}");
        let exchange = send(&world, get("/?apikey=hello_world", Some(&cookie))).await;
        assert_eq!(exchange.ctx.credential().unwrap().id, world.credential);
        let renewed = exchange.cookie("session").expect("a new session");
        let opened = open(&world, "session", &renewed, CookieKind::Session);
        assert_eq!(opened.header.created_at(), created);
        let expected = json!([world.alex.to_string(), world.credential.to_string()]);
        assert_eq!(opened.entry().unwrap().data, expected);

        let same = world.craft(
            CookieKind::Session,
            &world.alex_data(),
            "default",
            now() - 5,
        );
        let cookie = format!("session={same}");
        let exchange = send(&world, get("/?apikey=hello_world", Some(&cookie))).await;
        assert!(
            exchange.set_cookies().is_empty(),
            "same consumer and credential"
        );
    }

    // -----------------------------------------------------------------------
    // Refresh
    // -----------------------------------------------------------------------

    #[tokio::test]
    async fn renewal_keeps_creation_time_and_retires_the_old_row() {
        let world = world(json!({"storage": "kong", "idling_timeout": 0}));
        let created = now() - 3000;
        let value = world.craft(CookieKind::Session, &world.alex_data(), "default", created);
        let old = open(&world, "session", &value, CookieKind::Session);
        let exchange = send(&world, get("/", Some(&format!("session={value}")))).await;
        assert_eq!(exchange.consumer_id(), Some(world.alex));
        let renewed = exchange.cookie("session").expect("renewed cookie");
        assert_eq!(
            renewed.len(),
            HEADER_ENCODED_SIZE,
            "kong storage: header only"
        );
        let new = open(&world, "session", &renewed, CookieKind::Session);
        assert_ne!(new.header.session_id(), old.header.session_id());
        assert_eq!(new.header.created_at(), created);
        assert!(new.header.rolling_offset() >= 3000);
        assert_eq!(new.header.idling_offset(), 0);
        let rows = world.rows.as_ref().unwrap();
        let old_id = old.header.session_id();
        assert!(
            rows.get(&old_id, now()).unwrap().is_some(),
            "stale but readable"
        );
        assert!(
            rows.get(&old_id, now() + 11).unwrap().is_none(),
            "gone after stale_ttl"
        );
        assert!(rows
            .get(&new.header.session_id(), now() + 3000)
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn idle_sessions_are_touched_with_the_same_id() {
        let world = world(json!({}));
        let value = world.craft(
            CookieKind::Session,
            &world.alex_data(),
            "default",
            now() - 120,
        );
        let exchange = send(&world, get("/", Some(&format!("session={value}")))).await;
        assert_eq!(exchange.consumer_id(), Some(world.alex));
        let touched = exchange.cookie("session").expect("touched cookie");
        assert_ne!(touched, value);
        assert_eq!(
            touched[HEADER_ENCODED_SIZE..],
            value[HEADER_ENCODED_SIZE..],
            "same payload"
        );
        let before = open(&world, "session", &value, CookieKind::Session);
        let after = open(&world, "session", &touched, CookieKind::Session);
        assert_eq!(after.header.session_id(), before.header.session_id());
        assert!(after.header.idling_offset() >= 120);
    }

    // -----------------------------------------------------------------------
    // Kong storage and logout
    // -----------------------------------------------------------------------

    #[tokio::test]
    async fn kong_storage_rows_and_logout() {
        let world = world(json!({"storage": "kong"}));
        let value = login(&world).await.cookie("session").unwrap();
        assert_eq!(value.len(), HEADER_ENCODED_SIZE);
        let opened = open(&world, "session", &value, CookieKind::Session);
        let rows = world.rows.as_ref().unwrap();
        let session_id = opened.header.session_id();
        assert!(rows.get(&session_id, now() + 3590).unwrap().is_some());
        assert!(
            rows.get(&session_id, now() + 3602).unwrap().is_none(),
            "expires after rolling_timeout"
        );

        let cookie = format!("session={value}");
        let restored = send(&world, get("/", Some(&cookie))).await;
        assert_eq!(restored.consumer_id(), Some(world.alex));

        let logout = send(
            &world,
            request(Method::DELETE, "/?session_logout", Some(&cookie)),
        )
        .await;
        assert_eq!(logout.status, Some(StatusCode::OK));
        assert!(logout.body.is_empty());
        assert_eq!(logout.head.headers["content-length"], "0");
        assert!(logout.ctx.consumer().is_none(), "no auth plugin ran");
        assert_eq!(
            logout.set_cookies(),
            [format!(
                "session=; Path=/; SameSite=Strict; HttpOnly{EXPIRED}"
            )]
        );
        assert!(
            rows.get(&session_id, now()).unwrap().is_none(),
            "row deleted"
        );
        let after = send(&world, get("/", Some(&cookie))).await;
        assert_eq!(after.consumer_id(), Some(world.anonymous));
    }

    #[tokio::test]
    async fn logout_needs_a_valid_session() {
        let world = world(json!({}));
        let exchange = send(&world, request(Method::POST, "/?session_logout", None)).await;
        assert_eq!(exchange.status, None, "no session: proxied as usual");
        assert_eq!(exchange.consumer_id(), Some(world.anonymous));
    }

    // -----------------------------------------------------------------------
    // Remember
    // -----------------------------------------------------------------------

    #[tokio::test]
    async fn remember_cookie_restores_a_session_and_logout_expires_both() {
        let world = world(json!({"remember": true}));
        let login = login(&world).await;
        let remember = login.cookie("remember").expect("remember cookie");
        let line = login
            .set_cookies()
            .into_iter()
            .find(|l| l.starts_with("remember="))
            .unwrap();
        assert!(
            line.contains("; Path=/; SameSite=Strict; HttpOnly; Expires="),
            "{line}"
        );
        assert!(line.ends_with("; Max-Age=604800"), "{line}");
        assert!(login.cookie("session").is_some());

        let cookie = format!("remember={remember}");
        let restored = send(&world, get("/", Some(&cookie))).await;
        assert_eq!(restored.consumer_id(), Some(world.alex));
        assert_eq!(restored.ctx.credential().unwrap().id, world.credential);
        let new_session = restored.cookie("session").expect("new session cookie");
        let new_remember = restored.cookie("remember").expect("remember saved again");
        assert_eq!(restored.set_cookies().len(), 2);
        let opened = open(&world, "remember", &new_remember, CookieKind::Remember);
        assert_eq!(opened.entry().unwrap().subject.as_deref(), Some("alex"));

        let both = format!("session={new_session}; remember={new_remember}");
        let logout = send(
            &world,
            request(Method::POST, "/?session_logout", Some(&both)),
        )
        .await;
        assert_eq!(logout.status, Some(StatusCode::OK));
        let mut expired = logout.set_cookies();
        expired.sort();
        assert_eq!(
            expired,
            [
                format!("remember=; Path=/; SameSite=Strict; HttpOnly{EXPIRED}"),
                format!("session=; Path=/; SameSite=Strict; HttpOnly{EXPIRED}"),
            ]
        );
    }

    #[tokio::test]
    async fn remember_rows_are_replaced_and_deleted_with_kong_storage() {
        let world = world(json!({"remember": true, "storage": "kong"}));
        let rows = world.rows.as_ref().unwrap();
        let login = login(&world).await;
        let remember = login.cookie("remember").unwrap();
        assert_eq!(remember.len(), HEADER_ENCODED_SIZE);
        let old = open(&world, "remember", &remember, CookieKind::Remember);
        let old_id = old.header.session_id();
        assert!(
            rows.get(&old_id, now() + 604_000).unwrap().is_some(),
            "remember ttl"
        );

        let restored = send(&world, get("/", Some(&format!("remember={remember}")))).await;
        assert_eq!(restored.consumer_id(), Some(world.alex));
        assert!(
            rows.get(&old_id, now()).unwrap().is_none(),
            "old remember row deleted"
        );
        let session = restored.cookie("session").unwrap();
        let remember = restored.cookie("remember").unwrap();
        let new_session = open(&world, "session", &session, CookieKind::Session);
        let new_remember = open(&world, "remember", &remember, CookieKind::Remember);
        assert_eq!(new_remember.header.created_at(), old.header.created_at());

        let both = format!("session={session}; remember={remember}");
        let logout = send(
            &world,
            request(Method::DELETE, "/?session_logout", Some(&both)),
        )
        .await;
        assert_eq!(logout.status, Some(StatusCode::OK));
        assert!(rows
            .get(&new_session.header.session_id(), now())
            .unwrap()
            .is_none());
        assert!(rows
            .get(&new_remember.header.session_id(), now())
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn remember_is_not_tried_when_off() {
        let world = world(json!({"remember": true}));
        let remember = login(&world).await.cookie("remember").unwrap();
        let world_off = self::world(json!({}));
        let exchange = send(&world_off, get("/", Some(&format!("remember={remember}")))).await;
        assert_eq!(exchange.consumer_id(), Some(world_off.anonymous));
    }

    // -----------------------------------------------------------------------
    // Headers
    // -----------------------------------------------------------------------

    #[tokio::test]
    async fn session_headers_go_upstream_and_to_the_client() {
        let world = world(
            json!({"request_headers": ["id", "subject", "timeout", "rolling-timeout"],
                                  "response_headers": ["id", "audience"]}),
        );
        let login = login(&world).await;
        let value = login.cookie("session").unwrap();
        let opened = open(&world, "session", &value, CookieKind::Session);
        assert_eq!(
            login.head.headers["session-id"],
            opened.header.session_id().as_str()
        );
        assert_eq!(login.head.headers["session-audience"], "default");

        let exchange = send(&world, get("/", Some(&format!("session={value}")))).await;
        let upstream = &exchange.ctx.request.headers;
        assert_eq!(upstream["session-id"], opened.header.session_id().as_str());
        assert_eq!(upstream["session-subject"], "alex");
        let timeout: i64 = upstream["session-timeout"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((895..=900).contains(&timeout), "{timeout}");
        let rolling: i64 = upstream["session-rolling-timeout"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((3595..=3600).contains(&rolling), "{rolling}");
        assert!(!upstream.contains_key("session-audience"));
        assert_eq!(exchange.head.headers["session-audience"], "default");
    }

    #[test]
    fn set_cookie_merge_replaces_the_same_name_only() {
        let mut headers = HeaderMap::new();
        headers.append(SET_COOKIE, HeaderValue::from_static("a=1; Path=/"));
        headers.append(SET_COOKIE, HeaderValue::from_static("session=old; Path=/"));
        headers.append(SET_COOKIE, HeaderValue::from_static("sessionx=2"));
        merge_set_cookie(
            &mut headers,
            HeaderValue::from_static("session=new; Path=/"),
        );
        merge_set_cookie(&mut headers, HeaderValue::from_static("b=3"));
        let values: Vec<_> = headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            values,
            ["a=1; Path=/", "session=new; Path=/", "sessionx=2", "b=3"]
        );
    }

    #[test]
    fn upstream_set_cookie_of_the_same_name_is_replaced() {
        let world = world(json!({}));
        let session = world.session();
        let mut ctx = ctx_with_request(Arc::clone(&world.snapshot), &world.config, get("/", None));
        let alex = world.snapshot.consumer(&world.alex).cloned();
        let credential = AuthCredential {
            id: world.credential,
            consumer_id: world.alex,
        };
        ctx.authenticate(alex, Some(credential));
        let (mut head, ()) = http::Response::new(()).into_parts();
        head.headers
            .append(SET_COOKIE, HeaderValue::from_static("session=upstream"));
        head.headers
            .append(SET_COOKIE, HeaderValue::from_static("theirs=1"));
        session.response(&mut ctx, &mut head);
        let values: Vec<_> = head
            .headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(values.len(), 2);
        assert!(values[0].starts_with("session=") && values[0] != "session=upstream");
        assert_eq!(values[1], "theirs=1");
    }
}
