//! What every client request must pass before it is routed, as nginx's
//! request-header processing does before Kong sees a request (HTTP/1.x and
//! HTTP/2 alike):
//!
//! - the host (RFC 9112 3.2, RFC 9113 8.3.1):
//!   - no `Host` in an HTTP/1.1 request, or two `Host` fields in any → 400;
//!   - an HTTP/1.x absolute-form target (`GET http://b.example/ HTTP/1.1`):
//!     its authority replaces the `Host` field, which routing, `preserve_host`
//!     and `X-Forwarded-Host` then all see (RFC 9112 3.2.2, as nginx);
//!   - an HTTP/2 `:authority` and `host` that differ → 400 (as nginx);
//!   - a host that is not `host[:port]` → 400: an RFC 3986 reg-name (no
//!     empty label, so no `..`), an IPv4 address or a bracketed IPv6
//!     literal, then optional `:` and digits. No userinfo, path, space or
//!     control byte gets through to the router or to `X-Forwarded-Host`;
//! - HTTP/2 `cookie` fields are joined into one with `"; "` for the
//!   HTTP/1.1 upstream (RFC 9113 8.2.3);
//! - then `TRACE` gets 405 `Method not allowed` (nginx refuses it outright,
//!   after the host checks).
//!
//! A refused HTTP/1 request's connection closes after the 400, as nginx's
//! does after a bad request; the 405 keeps it.

use std::net::Ipv6Addr;

use http::header::{HeaderValue, COOKIE, HOST};
use http::request::Parts;
use http::{Method, StatusCode, Version};

/// Why a request is answered before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refusal {
    /// 400 or 405.
    pub(super) status: StatusCode,
    /// Whether an HTTP/1 connection closes afterwards.
    pub(super) close: bool,
}

impl Refusal {
    const BAD_REQUEST: Refusal = Refusal {
        status: StatusCode::BAD_REQUEST,
        close: true,
    };
    const TRACE: Refusal = Refusal {
        status: StatusCode::METHOD_NOT_ALLOWED,
        close: false,
    };
}

/// Checks `parts` and normalises its host and cookies (see the module
/// doc).
pub(super) fn check(parts: &mut Parts) -> Result<(), Refusal> {
    check_host_count(parts)?;
    match parts.version {
        Version::HTTP_2 => {
            check_authority_matches_host(parts)?;
            join_cookies(parts);
        }
        _ => take_absolute_form_authority(parts)?,
    }
    let host = match parts.headers.get(HOST) {
        Some(host) => Some(host.as_bytes()),
        None => parts
            .uri
            .authority()
            .map(|authority| authority.as_str().as_bytes()),
    };
    if host.is_some_and(|host| !is_valid_host(host)) {
        return Err(Refusal::BAD_REQUEST);
    }
    // nginx checks the method after the host.
    if parts.method == Method::TRACE {
        return Err(Refusal::TRACE);
    }
    Ok(())
}

/// Never more than one `Host`, and one in every HTTP/1.1 request (HTTP/1.0
/// may omit it; HTTP/2 carries `:authority` instead).
fn check_host_count(parts: &Parts) -> Result<(), Refusal> {
    let mut hosts = parts.headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => Err(Refusal::BAD_REQUEST),
        (None, None) if parts.version == Version::HTTP_11 => Err(Refusal::BAD_REQUEST),
        _ => Ok(()),
    }
}

/// An HTTP/1.x absolute-form target's authority replaces `Host`.
fn take_absolute_form_authority(parts: &mut Parts) -> Result<(), Refusal> {
    if parts.uri.scheme().is_none() {
        return Ok(());
    }
    let Some(authority) = parts.uri.authority() else {
        return Ok(());
    };
    let host = HeaderValue::from_str(authority.as_str()).map_err(|_| Refusal::BAD_REQUEST)?;
    parts.headers.insert(HOST, host);
    Ok(())
}

/// An HTTP/2 request's `host`, if any, must name its `:authority`.
fn check_authority_matches_host(parts: &Parts) -> Result<(), Refusal> {
    match (parts.headers.get(HOST), parts.uri.authority()) {
        (Some(host), Some(authority))
            if !host
                .as_bytes()
                .eq_ignore_ascii_case(authority.as_str().as_bytes()) =>
        {
            Err(Refusal::BAD_REQUEST)
        }
        _ => Ok(()),
    }
}

/// Several HTTP/2 `cookie` fields become one, joined with `"; "`.
fn join_cookies(parts: &mut Parts) {
    let mut cookies = parts.headers.get_all(COOKIE).iter();
    if let (Some(_), None) | (None, _) = (cookies.next(), cookies.next()) {
        return;
    }
    let mut joined = Vec::new();
    for cookie in parts.headers.get_all(COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(cookie.as_bytes());
    }
    if let Ok(joined) = HeaderValue::from_bytes(&joined) {
        parts.headers.insert(COOKIE, joined);
    }
}

/// Whether `value` is `host[:port]` as RFC 9112 3.2 wants a `Host`: an
/// RFC 3986 reg-name without empty labels (which covers IPv4 addresses)
/// or a bracketed IPv6 literal, then an optional `:` and digits.
pub fn is_valid_host(value: &[u8]) -> bool {
    if let Some(literal) = value.strip_prefix(b"[") {
        let Some(end) = literal.iter().position(|&byte| byte == b']') else {
            return false;
        };
        return is_ipv6_literal(&literal[..end]) && is_port_suffix(&literal[end + 1..]);
    }
    let (host, port) = match value.iter().position(|&byte| byte == b':') {
        Some(colon) => value.split_at(colon),
        None => (value, &b""[..]),
    };
    is_reg_name(host) && is_port_suffix(port)
}

/// An IPv6 address, as in `[::1]` (no zone, no IPvFuture).
fn is_ipv6_literal(literal: &[u8]) -> bool {
    std::str::from_utf8(literal)
        .ok()
        .and_then(|text| text.parse::<Ipv6Addr>().ok())
        .is_some()
}

/// Empty, or `:` and decimal digits.
fn is_port_suffix(port: &[u8]) -> bool {
    match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// RFC 3986 reg-name (unreserved, sub-delims, percent-encoded bytes), not
/// empty, without two dots in a row; a leading or trailing dot is allowed
/// as nginx allows it.
fn is_reg_name(host: &[u8]) -> bool {
    if host.is_empty() {
        return false;
    }
    let mut index = 0;
    let mut previous = 0u8;
    while index < host.len() {
        let byte = host[index];
        match byte {
            b'%' => {
                let escaped = host.get(index + 1..index + 3);
                if !escaped.is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                index += 2;
            }
            b'.' if previous == b'.' => return false,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {}
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => {}
            _ => return false,
        }
        previous = byte;
        index += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(version: Version, target: &str, headers: &[(&str, &'static str)]) -> Parts {
        let mut request = Request::builder().uri(target).version(version);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn host_counts_as_rfc_9112_requires() {
        let checked = |version, hosts: &[&'static str]| {
            let headers: Vec<_> = hosts.iter().map(|host| ("host", *host)).collect();
            check(&mut parts(version, "/", &headers))
        };
        assert!(checked(Version::HTTP_11, &["a"]).is_ok());
        assert!(checked(Version::HTTP_11, &[]).is_err());
        assert!(checked(Version::HTTP_11, &["a", "b"]).is_err());
        assert!(checked(Version::HTTP_11, &["a", "a"]).is_err());
        assert!(checked(Version::HTTP_10, &[]).is_ok());
        assert!(checked(Version::HTTP_10, &["a", "b"]).is_err());
        assert!(checked(Version::HTTP_2, &[]).is_ok());
        assert!(checked(Version::HTTP_2, &["a", "b"]).is_err());
    }

    #[test]
    fn hosts_must_be_host_and_port() {
        for valid in [
            "a.example",
            "A.Example.",
            ".leading.dot",
            "x",
            "127.0.0.1:8000",
            "a-b_c~d.example:",
            "%41.example",
            "[::1]",
            "[2001:db8::1]:443",
            "sub!$&'()*+,;=.example",
        ] {
            assert!(is_valid_host(valid.as_bytes()), "{valid}");
        }
        for invalid in [
            "",
            ":80",
            "evil.test/x.w.example",
            "evil.test\\x",
            "a b.example",
            "user@a.example",
            "a..example",
            "..",
            "a.example:80x",
            "a.example:80:90",
            "[::1",
            "[::1]x",
            "[not-ip]",
            "[127.0.0.1]",
            "%4.example",
            "a\"b",
            "a?b",
            "a#b",
            "caf\u{e9}.example",
        ] {
            assert!(!is_valid_host(invalid.as_bytes()), "{invalid:?}");
        }
    }

    #[test]
    fn trace_is_refused_and_keeps_the_connection() {
        let mut trace = parts(Version::HTTP_11, "/", &[("host", "a")]);
        trace.method = Method::TRACE;
        let refusal = check(&mut trace).unwrap_err();
        assert_eq!(refusal.status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(!refusal.close);
    }

    #[test]
    fn an_absolute_form_authority_replaces_host() {
        let mut absolute = parts(
            Version::HTTP_11,
            "http://b.example:81/x?y",
            &[("host", "a.example")],
        );
        assert!(check(&mut absolute).is_ok());
        assert_eq!(absolute.headers[HOST], "b.example:81");
        assert_eq!(absolute.uri.path(), "/x");
        let mut userinfo = parts(
            Version::HTTP_11,
            "http://u@b.example/",
            &[("host", "a.example")],
        );
        assert_eq!(check(&mut userinfo), Err(Refusal::BAD_REQUEST));
    }

    #[test]
    fn http2_authority_and_host_must_agree() {
        let mut same = parts(
            Version::HTTP_2,
            "https://A.example/",
            &[("host", "a.example")],
        );
        assert!(check(&mut same).is_ok());
        let mut differ = parts(
            Version::HTTP_2,
            "https://a.example/",
            &[("host", "b.example")],
        );
        assert_eq!(check(&mut differ), Err(Refusal::BAD_REQUEST));
        let mut userinfo = parts(Version::HTTP_2, "https://u@a.example/", &[]);
        assert_eq!(check(&mut userinfo), Err(Refusal::BAD_REQUEST));
    }

    #[test]
    fn http2_cookies_are_joined() {
        let mut request = parts(
            Version::HTTP_2,
            "https://a.example/",
            &[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")],
        );
        check(&mut request).unwrap();
        let cookies: Vec<_> = request.headers.get_all(COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1; b=2; c=3"]);
        let mut http1 = parts(
            Version::HTTP_11,
            "/",
            &[("host", "a"), ("cookie", "a=1"), ("cookie", "b=2")],
        );
        check(&mut http1).unwrap();
        assert_eq!(http1.headers.get_all(COOKIE).iter().count(), 2);
    }
}
