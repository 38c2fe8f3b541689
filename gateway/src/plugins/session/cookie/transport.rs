//! Cookie transport: `Cookie` request header parsing ([`find_cookie`]) and
//! `Set-Cookie` building ([`CookieFlags`]).

use std::time::{Duration, UNIX_EPOCH};

use super::*;

/// Finds the value of cookie `name` in one or more `Cookie` request headers.
///
/// The first occurrence wins, like nginx's `$cookie_<name>`. Pairs are split
/// on `;`, names and values are trimmed of spaces and tabs, pairs without
/// `=` are skipped. One linear pass over the input, no allocation.
pub fn find_cookie<'a, I>(cookie_headers: I, name: &str) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    cookie_headers
        .into_iter()
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .find(|(pair_name, _)| trim_cookie_whitespace(pair_name) == name)
        .map(|(_, value)| trim_cookie_whitespace(value))
}

/// Trims spaces and tabs (the whitespace allowed around cookie pairs).
pub(super) fn trim_cookie_whitespace(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

/// The `SameSite` attribute value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Strict` (Kong's default).
    Strict,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=None`; forces `Secure`.
    None,
    /// Emitted literally as `SameSite=Default`, as lua-resty-session 4.0.5 does.
    Default,
}

impl SameSite {
    /// The attribute value as written in the header.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
            SameSite::Default => "Default",
        }
    }
}

/// The attribute part shared by every `Set-Cookie` of one plugin config:
/// `[; Domain=<d>]; Path=<p>; SameSite=<s>[; Secure][; HttpOnly]`.
/// Build it once per config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieFlags(String);

impl CookieFlags {
    /// Builds the attributes. The domain is omitted when absent, empty or
    /// `localhost`; `SameSite=None` forces `Secure`.
    pub fn new(
        path: &str,
        domain: Option<&str>,
        same_site: SameSite,
        secure: bool,
        http_only: bool,
    ) -> Self {
        let mut flags = String::new();
        if let Some(domain) = domain.filter(|d| !d.is_empty() && *d != "localhost") {
            flags.push_str("; Domain=");
            flags.push_str(domain);
        }
        flags.push_str("; Path=");
        flags.push_str(path);
        flags.push_str("; SameSite=");
        flags.push_str(same_site.as_str());
        if secure || same_site == SameSite::None {
            flags.push_str("; Secure");
        }
        if http_only {
            flags.push_str("; HttpOnly");
        }
        Self(flags)
    }

    /// The attribute string, starting with `"; "`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `Set-Cookie` value for the session cookie (a browser-session cookie:
    /// no Expires, no Max-Age).
    pub fn session_cookie(&self, name: &str, value: &str) -> String {
        format!("{name}={value}{}", self.0)
    }

    /// `Set-Cookie` value for the remember cookie, which persists until
    /// `created_at + max_age`. A `max_age` of 0 or above [`MAX_TTL`] is
    /// capped at `MAX_TTL`.
    pub fn remember_cookie(
        &self,
        name: &str,
        value: &str,
        created_at: u64,
        max_age: u64,
    ) -> String {
        let max_age = if max_age == 0 {
            MAX_TTL
        } else {
            max_age.min(MAX_TTL)
        };
        let expires = http_date(created_at.saturating_add(max_age));
        format!(
            "{name}={value}{}; Expires={expires}; Max-Age={max_age}",
            self.0
        )
    }

    /// `Set-Cookie` value that deletes cookie `name` (logout): empty value,
    /// the usual attributes, then an Expires in 1970 and `Max-Age=0`.
    pub fn expired_cookie(&self, name: &str) -> String {
        format!("{name}={}{COOKIE_EXPIRE_FLAGS}", self.0)
    }
}

/// Formats epoch seconds as an IMF-fixdate, clamped to year 9999.
pub(super) fn http_date(epoch_seconds: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(epoch_seconds.min(MAX_HTTP_DATE));
    httpdate::fmt_http_date(time)
}
