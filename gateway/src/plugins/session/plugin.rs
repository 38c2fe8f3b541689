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

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue, SET_COOKIE};
use http::Method;
use schemas::plugins::session::SessionConfig;
use uuid::Uuid;

use super::cookie::{
    AudienceEntry, CookieFlags, CookieKind, KongSessionData, OpenError, SameSite, SessionHeader,
    SessionSecret, StorageMode,
};
use super::save::{merge_all, merge_set_cookie};
use crate::pdk::{Flow, Plugin, PluginBuildError, PluginEnv, RequestCtx};
use crate::store::SessionStore;

/// Upstream header carrying the groups a session restored.
pub const AUTHENTICATED_GROUPS: HeaderName = HeaderName::from_static("x-authenticated-groups");

/// Methods whose body may carry the logout argument.
pub(super) const BODY_METHODS: [Method; 4] =
    [Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// The groups a session authenticated (Kong's `authenticated_groups`), kept
/// in [`RequestCtx::extensions`] so a new session saves them again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedGroups(pub Vec<String>);

/// A session property exposed as a `Session-*` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Property {
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
    pub(super) fn parse(name: &str) -> Option<Self> {
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
    pub(super) fn header_name(self) -> HeaderName {
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
pub(super) struct Remember {
    pub(super) cookie_name: String,
    pub(super) rolling_timeout: u64,
    pub(super) absolute_timeout: u64,
}

/// One session instance: the config parsed, the secret derived once.
pub struct Session {
    pub(super) secret: SessionSecret,
    pub(super) mode: StorageMode,
    /// The rows of `storage: kong`; `None` for cookie storage.
    pub(super) storage: Option<Arc<dyn SessionStore>>,
    pub(super) audience: String,
    pub(super) idling_timeout: u64,
    pub(super) rolling_timeout: u64,
    pub(super) absolute_timeout: u64,
    pub(super) stale_ttl: u64,
    pub(super) cookie_name: String,
    pub(super) flags: CookieFlags,
    pub(super) remember: Option<Remember>,
    pub(super) request_headers: Vec<Property>,
    pub(super) response_headers: Vec<Property>,
    pub(super) read_body_for_logout: bool,
    pub(super) logout_methods: Vec<Method>,
    pub(super) logout_query_arg: String,
    pub(super) logout_post_arg: String,
}

/// A cookie that opened (header, payload and decryption all valid).
#[derive(Debug, Clone)]
pub(super) struct Opened {
    /// The current header (after any renewal or touch in this request).
    pub(super) header: SessionHeader,
    /// Every audience entry of the payload.
    pub(super) entries: Vec<AudienceEntry>,
    /// The entry of the configured audience; `None` for an audience miss.
    pub(super) index: Option<usize>,
    /// Cookie storage: the ciphertext part of the first cookie (re-sent by a
    /// touch). Empty for kong storage.
    pub(super) initial_chunk: String,
}

impl Opened {
    /// The entry of the configured audience.
    pub(super) fn entry(&self) -> Option<&AudienceEntry> {
        self.entries.get(self.index?)
    }

    /// The entries with `entry` in place of (or added as) ours.
    pub(super) fn entries_with(&self, entry: AudienceEntry) -> Vec<AudienceEntry> {
        let mut entries = self.entries.clone();
        match self.index.and_then(|index| entries.get_mut(index)) {
            Some(slot) => *slot = entry,
            None => entries.push(entry),
        }
        entries
    }

    /// The entries without ours.
    pub(super) fn other_entries(&self) -> Vec<AudienceEntry> {
        let mut entries = self.entries.clone();
        if let Some(index) = self.index.filter(|index| *index < entries.len()) {
            entries.remove(index);
        }
        entries
    }
}

/// What access leaves for the response phase, in [`RequestCtx::extensions`].
#[derive(Debug, Clone, Default)]
pub(super) struct SessionState {
    /// The session cookie that opened (authenticated or an audience miss).
    pub(super) opened: Option<Opened>,
    /// The remember cookie header restored or saved in access.
    pub(super) remember: Option<SessionHeader>,
    /// The valid session cookie whose `storage: kong` row could not be read
    /// (database down): a logout with it still expires the cookie.
    pub(super) unreadable: Option<SessionHeader>,
}

impl SessionState {
    /// True when the opened session already holds this consumer and
    /// credential (Kong compares the stored ids with the context's).
    pub(super) fn holds(&self, consumer_id: Uuid, credential_id: Uuid) -> bool {
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
pub(super) enum OpenFailure {
    #[error("no session cookie")]
    Missing,
    #[error(transparent)]
    Invalid(#[from] OpenError),
}

/// The result of saving a session.
pub(super) struct Saved {
    pub(super) header: SessionHeader,
    /// `Set-Cookie` values, in order.
    pub(super) cookies: Vec<HeaderValue>,
    pub(super) initial_chunk: String,
}

/// Builds an instance from a plugin row (the [`crate::pdk::PluginFactory`]).
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
) -> Result<(StorageMode, Option<Arc<dyn SessionStore>>), PluginBuildError> {
    match storage {
        "cookie" => Ok((StorageMode::Cookie, None)),
        "kong" => {
            let rows = env.sessions.clone();
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

#[async_trait::async_trait]
impl Plugin for Session {
    /// The body is read only with `read_body_for_logout`.
    fn needs_body(&self) -> bool {
        self.read_body_for_logout
    }

    /// Runs before the auth plugins. Restores the consumer of a valid
    /// session cookie (refreshing the cookie when due), or answers a logout
    /// with 200. Returns [`Flow::Respond`] only for a logout; every other
    /// case, including any invalid cookie, continues.
    async fn access(&self, ctx: &mut RequestCtx) -> Flow {
        let now = now();
        let mut cookies = HeaderMap::new();
        let mut state = SessionState::default();
        let opened = self
            .open_session(&ctx.request.headers, now, &mut state, &mut cookies)
            .await;
        if let Some(opened) = opened {
            if self.is_logout(ctx) {
                let response = self.logout(ctx, &opened, &state, cookies, now).await;
                return Flow::Respond(response);
            }
            self.restore(ctx, opened, &mut state, &mut cookies, now)
                .await;
        } else if let Some(header) = state.unreadable.take() {
            if self.is_logout(ctx) {
                return Flow::Respond(
                    self.logout_unreadable(ctx, &header, &state, cookies, now)
                        .await,
                );
            }
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
    async fn response(&self, ctx: &mut RequestCtx, head: &mut http::response::Parts) {
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
        let Some(saved) = self
            .save(CookieKind::Session, &entries, previous, now)
            .await
        else {
            return;
        };
        merge_all(&mut head.headers, saved.cookies);
        self.save_remember(
            &ctx.request.headers,
            state,
            &entries,
            &mut head.headers,
            now,
        )
        .await;
        self.set_properties(
            &self.response_headers,
            &mut head.headers,
            &saved.header,
            &entry,
            now,
        );
    }
}
pub(super) fn parse_uuid(text: &str) -> Option<Uuid> {
    Uuid::parse_str(text).ok()
}

pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests;
