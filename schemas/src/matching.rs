//! How a route's match fields are compiled for request matching.
//!
//! This is the one definition that both the route schema and the gateway's
//! router use: the schema refuses a value when compiling it here fails, and
//! the router compiles the values the schema accepted with the very same
//! functions, so the two cannot drift apart (an accepted route that the
//! router then cannot build would stop every later configuration change).
//!
//! - `paths`: `/prefix` is kept as is; `~/re` becomes the regex `^/re`,
//!   anchored at the start only ([`compile_path`]).
//! - `headers`: names must be Kong header names ([`check_header_name`]) and
//!   are looked up lowercased with `_` read as `-`
//!   ([`canonical_header_name`]); a `~*re` value is a case-insensitive,
//!   unanchored regex, any other value an exact one
//!   ([`compile_header_value`]).
//! - `hosts`: `host`, `host:port`, `[v6]` or `[v6]:port`, with at most one
//!   `*` wildcard label at either end ([`RouteHost::parse`],
//!   [`split_host_port`]).
//!
//! Every regex is built by [`build_regex`] with the `regex` crate and the
//! limits below. Flags matter: a case-insensitive `k{60000}` exceeds the
//! size limit that a case-sensitive one fits in, so checking a header regex
//! without the router's flags would let it through.

use std::fmt::Write as _;

use regex::{Regex, RegexBuilder};

/// Size limit of a compiled route regex, in bytes (the `regex` crate's
/// default, made explicit so that schema and router share it).
pub const REGEX_SIZE_LIMIT: usize = 10 << 20;

/// Cache size of the lazy DFA of one route regex, in bytes (the crate's
/// default).
pub const REGEX_DFA_SIZE_LIMIT: usize = 2 << 20;

/// How deeply groups and repetitions of a route regex may nest (the
/// crate's default).
pub const REGEX_NEST_LIMIT: u32 = 250;

/// Why a match field value cannot be used; the messages are Kong's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchFieldError {
    /// An empty header name.
    #[error("no header name provided")]
    NoHeaderName,
    /// A header name with a character outside `A-Z a-z 0-9 _ -`.
    #[error(
        "bad header name '{}', allowed characters are A-Z, a-z, 0-9, '_', and '-'",
        printable(.0)
    )]
    BadHeaderName(String),
    /// A `~` path or `~*` header value that does not compile.
    #[error("invalid regex: '{}' ({reason})", printable(.pattern))]
    InvalidRegex {
        /// The pattern as written, without its `~` or `~*` marker.
        pattern: String,
        /// The last line of the `regex` crate's message.
        reason: String,
    },
}

impl MatchFieldError {
    /// The error for `pattern` failing to compile with `error`.
    pub fn invalid_regex(pattern: &str, error: &regex::Error) -> Self {
        let text = error.to_string();
        let reason = text.lines().last().unwrap_or(&text).trim().to_owned();
        MatchFieldError::InvalidRegex {
            pattern: pattern.to_owned(),
            reason,
        }
    }
}

/// `text` with control characters escaped (`\u{0}`), for messages.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Compiles `pattern` the way every route regex is compiled.
pub fn build_regex(pattern: &str, case_insensitive: bool) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
}

// ----- paths -----------------------------------------------------------------

/// A compiled `paths` entry.
#[derive(Debug, Clone)]
pub enum CompiledPath {
    /// A plain prefix (`/foo` also matches `/foobar`).
    Prefix(String),
    /// From `~/re`: the regex `^/re`, anchored at the start only.
    Regex(Regex),
}

/// Compiles a `paths` entry; only a `~` path can fail. The schema also
/// requires a leading `/` (or `~/`) and a normalized prefix, which the
/// router does not depend on.
pub fn compile_path(path: &str) -> Result<CompiledPath, regex::Error> {
    match path.strip_prefix('~') {
        Some(pattern) => build_regex(&format!("^{pattern}"), false).map(CompiledPath::Regex),
        None => Ok(CompiledPath::Prefix(path.to_owned())),
    }
}

// ----- headers ---------------------------------------------------------------

/// A compiled value of a `headers` entry.
#[derive(Debug, Clone)]
pub enum CompiledHeaderValue {
    /// Compared ASCII-case-insensitively with the request's value.
    Exact(String),
    /// From `~*re`: a case-insensitive, unanchored regex.
    Regex(Regex),
}

/// Compiles one value of a `headers` entry; only a `~*` value can fail.
pub fn compile_header_value(value: &str) -> Result<CompiledHeaderValue, regex::Error> {
    match value.strip_prefix("~*") {
        Some(pattern) => build_regex(pattern, true).map(CompiledHeaderValue::Regex),
        None => Ok(CompiledHeaderValue::Exact(value.to_owned())),
    }
}

/// Kong's rule for a header name (`utils.validate_header_name`): one or
/// more of `A-Z a-z 0-9 _ -`. Its [`canonical_header_name`] is then always
/// a valid HTTP field name.
pub fn check_header_name(name: &str) -> Result<(), MatchFieldError> {
    if name.is_empty() {
        return Err(MatchFieldError::NoHeaderName);
    }
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_';
    if name.bytes().all(allowed) {
        Ok(())
    } else {
        Err(MatchFieldError::BadHeaderName(name.to_owned()))
    }
}

/// The name the router looks a header up by: lowercased, with `_` read as
/// `-` (Kong makes them interchangeable).
pub fn canonical_header_name(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

// ----- hosts -----------------------------------------------------------------

/// The host name part of a `hosts` entry, lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostName {
    Exact(String),
    /// From `*.example.com`: the request host must end with `.example.com`.
    Suffix(String),
    /// From `example.*`: the request host must start with `example.`.
    Prefix(String),
}

/// A `hosts` entry as the router matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteHost {
    pub name: HostName,
    /// `None` matches any port.
    pub port: Option<u16>,
}

impl RouteHost {
    /// Reads a `hosts` entry. Never fails: the schema refuses what would
    /// make no sense (a bad port, a misplaced wildcard, an invalid name);
    /// read here, such a value simply never matches a request.
    pub fn parse(raw: &str) -> Self {
        let lowered = raw.to_ascii_lowercase();
        let (host, port) = split_host_port(&lowered);
        let name = if let Some(suffix) = host.strip_prefix('*') {
            HostName::Suffix(suffix.to_owned())
        } else if let Some(prefix) = host.strip_suffix('*') {
            HostName::Prefix(prefix.to_owned())
        } else {
            HostName::Exact(host.to_owned())
        };
        RouteHost { name, port }
    }
}

/// Splits `host:port`, `[v6]:port` into the host and the text after the
/// port's colon, without judging that text. A name with several colons
/// (a bare IPv6 address) has no port.
pub fn split_port_text(authority: &str) -> (&str, Option<&str>) {
    let colon = if authority.starts_with('[') {
        authority.find("]:").map(|bracket| bracket + 1)
    } else if authority.matches(':').count() == 1 {
        authority.find(':')
    } else {
        None
    };
    match colon {
        Some(colon) => (&authority[..colon], Some(&authority[colon + 1..])),
        None => (authority, None),
    }
}

/// A port: one or more plain decimal digits (no sign) within `u16`.
pub fn parse_port(digits: &str) -> Option<u16> {
    let all_digits = !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit());
    all_digits.then(|| digits.parse().ok()).flatten()
}

/// Splits `host[:port]`, `[v6]` or `[v6]:port`, for route hosts and request
/// Host headers alike. A port that is not a plain decimal `u16` is treated
/// as part of the host, as Kong does.
pub fn split_host_port(authority: &str) -> (&str, Option<u16>) {
    match split_port_text(authority) {
        (host, Some(text)) => match parse_port(text) {
            Some(port) => (host, Some(port)),
            None => (authority, None),
        },
        (host, None) => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_host_and_port() {
        let cases = [
            ("example.com", ("example.com", None)),
            ("example.com:8000", ("example.com", Some(8000))),
            ("example.com:", ("example.com:", None)),
            ("example.com:80b", ("example.com:80b", None)),
            ("example.com:+80", ("example.com:+80", None)),
            ("example.com:70000", ("example.com:70000", None)),
            ("::1", ("::1", None)),
            ("[::1]", ("[::1]", None)),
            ("[::1]:8000", ("[::1]", Some(8000))),
            ("*.example.com:8443", ("*.example.com", Some(8443))),
            ("", ("", None)),
        ];
        for (input, expected) in cases {
            assert_eq!(split_host_port(input), expected, "{input}");
        }
        assert_eq!(split_port_text("a.b:+80"), ("a.b", Some("+80")));
        assert_eq!(split_port_text("[::1]:"), ("[::1]", Some("")));
    }

    #[test]
    fn route_hosts_are_lowercased_and_classified() {
        let parsed = RouteHost::parse("*.Example.COM:8443");
        assert_eq!(parsed.name, HostName::Suffix(".example.com".to_owned()));
        assert_eq!(parsed.port, Some(8443));
        let parsed = RouteHost::parse("example.*");
        assert_eq!(parsed.name, HostName::Prefix("example.".to_owned()));
        assert_eq!(parsed.port, None);
    }

    #[test]
    fn header_names_follow_kong() {
        assert_eq!(check_header_name("X-Version_2"), Ok(()));
        assert_eq!(check_header_name(""), Err(MatchFieldError::NoHeaderName));
        let nul = check_header_name("a\0b").unwrap_err();
        assert_eq!(
            nul.to_string(),
            "bad header name 'a\\u{0}b', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
        );
        assert_eq!(canonical_header_name("X_Version"), "x-version");
    }

    #[test]
    fn path_regexes_are_anchored_at_the_start() {
        let Ok(CompiledPath::Regex(regex)) = compile_path(r"~/users/\d+") else {
            panic!("a regex path compiles to a regex");
        };
        assert!(regex.is_match("/users/1/x"));
        assert!(!regex.is_match("/x/users/1"));
        assert!(matches!(
            compile_path("/plain("),
            Ok(CompiledPath::Prefix(_))
        ));
        assert!(compile_path("~/(").is_err());
    }

    #[test]
    fn header_regexes_are_case_insensitive_and_unanchored() {
        let Ok(CompiledHeaderValue::Regex(regex)) = compile_header_value("~*v[12]") else {
            panic!("a ~* value compiles to a regex");
        };
        assert!(regex.is_match("API-V2"));
        assert!(matches!(
            compile_header_value("(exact"),
            Ok(CompiledHeaderValue::Exact(_))
        ));
        let error = compile_header_value("~*(").unwrap_err();
        assert_eq!(
            MatchFieldError::invalid_regex("(", &error).to_string(),
            "invalid regex: '(' (error: unclosed group)"
        );
    }

    #[test]
    fn the_case_insensitive_flag_counts_towards_the_size_limit() {
        // `k` also matches `K` and the Kelvin sign when case-insensitive.
        assert!(build_regex("k{60000}", false).is_ok());
        let error = build_regex("k{60000}", true).unwrap_err();
        assert!(matches!(
            error,
            regex::Error::CompiledTooBig(REGEX_SIZE_LIMIT)
        ));
        assert!(compile_header_value("~*k{60000}").is_err());
    }
}
