//! Headers the proxy adds, replaces or removes (Kong's §5.4–5.6).
//!
//! - [`prepare_client_request`] runs on every client request before it is
//!   routed and before any plugin sees it. It removes what the client sent
//!   for the proxy alone: the hop-by-hop fields (`Connection` and every
//!   field it lists, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`,
//!   `Transfer-Encoding`, `Upgrade`; RFC 9110 7.6.1), `Proxy` (httpoxy,
//!   CVE-2016-5385; Kong clears it too), and the identity aliases (below).
//!   `TE` stays as `TE: trailers` when the client listed `trailers`, as
//!   Kong forwards it. A `Connection` token cannot remove `Host`. Because
//!   this happens before the plugins, a client can no longer name a header
//!   the gateway or a plugin sets (`Connection: X-Consumer-ID`) and have it
//!   removed on the way out (Kong removes them after its plugins ran).
//! - **Identity aliases.** A client header whose name contains `_` and,
//!   with every `_` read as `-`, is one the gateway or its auth plugins set
//!   upstream is dropped: `X-Consumer-*`, `X-Credential-*`,
//!   `X-Anonymous-*`, `X-Authenticated-*`, `X-Forwarded-*`, `X-Real-IP`.
//!   CGI, WSGI and PHP upstreams read `X_Consumer_ID` as `X-Consumer-ID`
//!   (both become `HTTP_X_CONSUMER_ID`), so a forged alias would shadow the
//!   real header. Names differing only in case are one header already.
//!   Other underscored headers pass, as in Kong (`underscores_in_headers
//!   on`): key-auth `key_names` such as `api_key` keep working.
//! - Upstream requests get `Host` (per `preserve_host`), `X-Forwarded-*`,
//!   `X-Real-IP`, `Via` and `X-Kong-Request-Id`; client-sent copies are
//!   replaced, except `X-Forwarded-For` and `Via`, which are appended to.
//! - Responses lose their hop-by-hop fields (the `Connection`-listed ones,
//!   and `Trailer` unless the client asked for trailers, as Kong does) and
//!   get `Via`, latency headers and `X-Kong-Request-Id`; the gateway's own
//!   responses get `Server` instead of `Via`.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, EXPECT, HOST, SERVER, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE, VIA,
};
use http::Version;
use once_cell::sync::Lazy;
use schemas::model::Service;

use crate::pdk::response::SERVER_TOKEN;

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Forwarded-Port`.
pub const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
/// `X-Forwarded-Path`.
pub const X_FORWARDED_PATH: HeaderName = HeaderName::from_static("x-forwarded-path");
/// `X-Forwarded-Prefix`.
pub const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
/// `X-Real-IP`.
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// `X-Kong-Request-Id`.
pub const X_KONG_REQUEST_ID: HeaderName = HeaderName::from_static("x-kong-request-id");
/// `X-Kong-Upstream-Latency`.
pub const X_KONG_UPSTREAM_LATENCY: HeaderName = HeaderName::from_static("x-kong-upstream-latency");
/// `X-Kong-Proxy-Latency`.
pub const X_KONG_PROXY_LATENCY: HeaderName = HeaderName::from_static("x-kong-proxy-latency");
/// `X-Kong-Response-Latency`.
pub const X_KONG_RESPONSE_LATENCY: HeaderName = HeaderName::from_static("x-kong-response-latency");

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// `Proxy`: never forwarded (httpoxy).
const PROXY: HeaderName = HeaderName::from_static("proxy");

/// The prefixes (and whole names) of the headers the gateway and its auth
/// plugins set upstream, whose underscored aliases a client may not send.
const IDENTITY_PREFIXES: [&[u8]; 6] = [
    b"x-consumer-",
    b"x-credential-",
    b"x-anonymous-",
    b"x-authenticated-",
    b"x-forwarded-",
    b"x-real-ip",
];

/// Readies a client request's headers before routing and plugins (see the
/// module doc): hop-by-hop fields, `Proxy` and identity aliases go,
/// `TE: trailers` stays. One pass over the names finds what to do; a
/// request with nothing to remove allocates nothing.
pub fn prepare_client_request(headers: &mut HeaderMap) {
    let mut hop_by_hop = false;
    let mut aliases = false;
    for name in headers.keys() {
        if is_request_hop_by_hop(name) {
            hop_by_hop = true;
        } else if name.as_str().as_bytes().contains(&b'_') {
            aliases |= is_identity_alias(name.as_str().as_bytes());
        }
    }
    if hop_by_hop {
        remove_client_hop_by_hop(headers);
    }
    if aliases {
        let forged: Vec<HeaderName> = headers
            .keys()
            .filter(|name| is_identity_alias(name.as_str().as_bytes()))
            .cloned()
            .collect();
        for name in forged {
            headers.remove(name);
        }
    }
}

/// Whether `name` is one [`prepare_client_request`] removes (or, `TE`,
/// rewrites) by its name alone.
fn is_request_hop_by_hop(name: &HeaderName) -> bool {
    [
        &CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &TE,
        &TRAILER,
        &TRANSFER_ENCODING,
        &UPGRADE,
        &PROXY,
    ]
    .contains(&name)
}

/// Removes a request's hop-by-hop fields; `TE` becomes `TE: trailers` when
/// it lists `trailers`.
fn remove_client_hop_by_hop(headers: &mut HeaderMap) {
    // Before the `Connection` tokens go: a `TE` sender lists `TE` there
    // (RFC 9110 10.1.4).
    let wants_trailers = headers
        .get_all(TE)
        .iter()
        .any(|value| has_token(value.as_bytes(), b"trailers"));
    remove_connection_listed(headers, &[b"close", b"keep-alive", b"host"]);
    for name in [
        KEEP_ALIVE,
        PROXY_CONNECTION,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
        PROXY,
    ] {
        headers.remove(name);
    }
    if wants_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
}

/// Removes `Connection` and the fields its tokens name, except the tokens
/// in `kept` (lowercase).
fn remove_connection_listed(headers: &mut HeaderMap, kept: &[&[u8]]) {
    let mut values = headers.get_all(CONNECTION).iter();
    let (Some(first), None) = (values.next(), values.next()) else {
        // None, or several fields (rare): the general case.
        if !headers.contains_key(CONNECTION) {
            return;
        }
        let listed: Vec<HeaderValue> = headers.get_all(CONNECTION).iter().cloned().collect();
        headers.remove(CONNECTION);
        for value in &listed {
            remove_listed(headers, value, kept);
        }
        return;
    };
    let first = first.clone();
    headers.remove(CONNECTION);
    remove_listed(headers, &first, kept);
}

/// Removes the fields a `Connection` value lists, except those in `kept`.
fn remove_listed(headers: &mut HeaderMap, value: &HeaderValue, kept: &[&[u8]]) {
    for token in value.as_bytes().split(|&byte| byte == b',') {
        let token = token.trim_ascii();
        if token.is_empty() || kept.iter().any(|kept| token.eq_ignore_ascii_case(kept)) {
            continue;
        }
        if let Ok(name) = HeaderName::from_bytes(token) {
            headers.remove(name);
        }
    }
}

/// Whether a (lowercase) header name with `_` in it reads, with `_` as
/// `-`, as one of [`IDENTITY_PREFIXES`].
fn is_identity_alias(name: &[u8]) -> bool {
    name.contains(&b'_')
        && IDENTITY_PREFIXES.iter().any(|prefix| {
            name.len() >= prefix.len()
                && name
                    .iter()
                    .zip(prefix.iter())
                    .all(|(&byte, &want)| byte == want || (byte == b'_' && want == b'-'))
        })
}

/// Whether the comma-separated list `value` holds `token` (any case).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&byte| byte == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token))
}

/// Removes a response's hop-by-hop fields: `Connection` and what it lists,
/// `Keep-Alive`, `Proxy-Connection`, `TE`, `Transfer-Encoding`, `Upgrade`,
/// and `Trailer` unless `keep_trailer` (the client sent `TE: trailers`).
fn remove_response_hop_by_hop(headers: &mut HeaderMap, keep_trailer: bool) {
    if headers.contains_key(CONNECTION) {
        remove_connection_listed(headers, &[b"close", b"keep-alive", b"upgrade"]);
    }
    for name in [KEEP_ALIVE, PROXY_CONNECTION, TE, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
    if !keep_trailer {
        headers.remove(TRAILER);
    }
}

/// What the upstream request's added headers are computed from.
pub struct Forwarding<'a> {
    /// The client's IP.
    pub client_ip: IpAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The request's host name (no port, lowercase).
    pub host: &'a str,
    /// The client's Host header as sent (for `preserve_host`).
    pub host_header: Option<&'a str>,
    /// The proxy listener's port.
    pub listen_port: u16,
    /// The original request path, without the query.
    pub path: &'a str,
    /// The stripped prefix, when `strip_path` removed more than `/`.
    pub prefix: Option<&'a str>,
    /// The client request's HTTP version.
    pub version: Version,
    /// Kong's request id.
    pub request_id: &'a str,
}

/// Turns the client's headers into the upstream request's headers.
pub fn prepare_upstream(
    headers: &mut HeaderMap,
    forwarding: &Forwarding<'_>,
    service: &Service,
    preserve_host: bool,
) {
    // The client's hop-by-hop fields went before the plugins ran
    // (`prepare_client_request`); what the plugins set stays.
    // Kong answers `Expect: 100-continue` itself; the upstream never sees it.
    headers.remove(EXPECT);
    let host = match (preserve_host, forwarding.host_header) {
        (true, Some(client_host)) => client_host.to_owned(),
        _ => service_host_header(service),
    };
    set(headers, HOST, &host);
    let client_ip = ip_value(forwarding.client_ip);
    append_list(headers, X_FORWARDED_FOR, client_ip.clone());
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(forwarding.scheme),
    );
    set(headers, X_FORWARDED_HOST, forwarding.host);
    headers.insert(X_FORWARDED_PORT, HeaderValue::from(forwarding.listen_port));
    set(headers, X_FORWARDED_PATH, forwarding.path);
    match forwarding.prefix {
        Some(prefix) => set(headers, X_FORWARDED_PREFIX, prefix),
        None => {
            headers.remove(X_FORWARDED_PREFIX);
        }
    }
    headers.insert(X_REAL_IP, client_ip);
    append_list(headers, VIA, via_value(forwarding.version));
    set(headers, X_KONG_REQUEST_ID, forwarding.request_id);
}

/// An IP address as a header value.
fn ip_value(ip: IpAddr) -> HeaderValue {
    // Longest text form: an IPv4-mapped IPv6 address, 45 characters.
    let mut text = String::with_capacity(45);
    let _ = write!(text, "{ip}");
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `<version> kong/<version>`, the `Via` entry for a client request of
/// `version` (`1.1 kong/3.10.0` for HTTP/1.1); built once per version.
fn via_value(version: Version) -> HeaderValue {
    static VIA: Lazy<[HeaderValue; 5]> = Lazy::new(|| {
        [
            Version::HTTP_09,
            Version::HTTP_10,
            Version::HTTP_11,
            Version::HTTP_2,
            Version::HTTP_3,
        ]
        .map(|version| {
            let via = format!("{} {SERVER_TOKEN}", version_token(version));
            HeaderValue::try_from(via).expect("the Via entry is a valid header value")
        })
    });
    let index = match version {
        Version::HTTP_09 => 0,
        Version::HTTP_10 => 1,
        Version::HTTP_2 => 3,
        Version::HTTP_3 => 4,
        _ => 2,
    };
    VIA[index].clone()
}

/// The Host sent upstream without `preserve_host`: the service host, with
/// `:port` unless it is the scheme's default port.
pub fn service_host_header(service: &Service) -> String {
    let default_port = match service.protocol.as_str() {
        "https" | "grpcs" | "tls" => 443,
        _ => 80,
    };
    let host = bracketed(&service.host);
    if service.port == default_port {
        host
    } else {
        format!("{host}:{}", service.port)
    }
}

/// An IPv6 literal in brackets; other hosts unchanged.
fn bracketed(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Headers of a proxied response: hop-by-hop removed (`Trailer` kept
/// only with `keep_trailer`), `Via` appended, `Server` added if the
/// upstream sent none, latencies and request id. Also the headers of the
/// gateway's error for a failed upstream exchange (502, 504), which Kong
/// sends as a proxied response.
pub fn prepare_proxied_response(
    headers: &mut HeaderMap,
    latencies: Latencies,
    request_id: &str,
    keep_trailer: bool,
) {
    remove_response_hop_by_hop(headers, keep_trailer);
    append_list(headers, VIA, via_value(Version::HTTP_11));
    if !headers.contains_key(SERVER) {
        headers.insert(SERVER, HeaderValue::from_static(SERVER_TOKEN));
    }
    headers.insert(X_KONG_UPSTREAM_LATENCY, millis(latencies.upstream));
    headers.insert(X_KONG_PROXY_LATENCY, millis(latencies.proxy));
    set(headers, X_KONG_REQUEST_ID, request_id);
}

/// The latencies of a proxied request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latencies {
    /// From sending the request upstream to its response head (Kong's
    /// `KONG_WAITING_TIME`).
    pub upstream: Duration,
    /// From the request's arrival to sending it upstream.
    pub proxy: Duration,
}

/// Headers of a response the gateway generated: `Server`,
/// `X-Kong-Response-Latency` and the request id.
pub fn prepare_generated_response(headers: &mut HeaderMap, latency: Duration, request_id: &str) {
    headers.insert(SERVER, HeaderValue::from_static(SERVER_TOKEN));
    headers.insert(X_KONG_RESPONSE_LATENCY, millis(latency));
    set(headers, X_KONG_REQUEST_ID, request_id);
}

/// `1.0`, `1.1` or `2`, as Kong writes the client's version in `Via`.
fn version_token(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// Whole milliseconds, as a header value.
fn millis(duration: Duration) -> HeaderValue {
    HeaderValue::from(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// Replaces every `name` header by `value` (dropped if not a valid value).
fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(value) => {
            headers.insert(name, value);
        }
        Err(_) => {
            headers.remove(name);
        }
    }
}

/// Appends `value` to a comma-separated list header (joining repeated
/// headers into one).
fn append_list(headers: &mut HeaderMap, name: HeaderName, value: HeaderValue) {
    let existing: Vec<&str> = headers
        .get_all(&name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    if existing.is_empty() {
        headers.insert(name, value);
        return;
    }
    let joined = format!(
        "{}, {}",
        existing.join(", "),
        value.to_str().unwrap_or_default()
    );
    set(headers, name, &joined);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(protocol: &str, port: u16) -> Service {
        serde_json::from_value(serde_json::json!({
            "id": uuid::Uuid::new_v4(), "name": null, "protocol": protocol, "host": "upstream.test",
            "port": port, "path": null, "retries": 5, "connect_timeout": 1, "write_timeout": 1,
            "read_timeout": 1, "enabled": true, "tls_verify": null, "tls_verify_depth": null,
            "tags": null, "created_at": null, "updated_at": null
        }))
        .unwrap()
    }

    fn forwarding<'a>(prefix: Option<&'a str>) -> Forwarding<'a> {
        Forwarding {
            client_ip: "10.0.0.1".parse().unwrap(),
            scheme: "http",
            host: "example.com",
            host_header: Some("Example.com:8000"),
            listen_port: 8000,
            path: "/api/x",
            prefix,
            version: Version::HTTP_11,
            request_id: "rid",
        }
    }

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    /// The names, sorted (removals reorder the map).
    fn names(headers: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn client_hop_by_hop_headers_go_before_the_plugins() {
        let mut headers = map(&[
            ("connection", "keep-alive, X-Private"),
            ("connection", "x-consumer-id,,host"),
            ("x-private", "1"),
            ("x-consumer-id", "forged"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("proxy-connection", "keep-alive"),
            ("upgrade", "websocket"),
            ("trailer", "x-t"),
            ("te", "gzip"),
            ("proxy", "http://evil.test"),
            ("host", "a.test"),
            ("x-kept", "1"),
        ]);
        prepare_client_request(&mut headers);
        assert_eq!(names(&headers), ["host", "x-kept"]);
    }

    #[test]
    fn te_trailers_is_kept_alone() {
        let mut headers = map(&[("te", "gzip, Trailers;q=1"), ("te", "deflate")]);
        prepare_client_request(&mut headers);
        assert!(
            headers.get(TE).is_none(),
            "a parameter makes it another token"
        );
        let mut headers = map(&[("te", "gzip, trailers"), ("connection", "TE")]);
        prepare_client_request(&mut headers);
        assert_eq!(headers[TE], "trailers");
        assert!(!headers.contains_key(CONNECTION));
    }

    #[test]
    fn identity_aliases_are_dropped_and_other_underscores_kept() {
        let mut headers = map(&[
            ("x_consumer_id", "forged"),
            ("x-consumer_username", "forged"),
            ("x_credential_identifier", "forged"),
            ("x_anonymous_consumer", "forged"),
            ("x_authenticated_groups", "forged"),
            ("x_forwarded_for", "forged"),
            ("x_real_ip", "forged"),
            ("x_real_ip_2", "forged"),
            ("api_key", "kept"),
            ("x_consumer", "kept: not an alias of an X-Consumer-* header"),
            ("x-consumer-id", "kept: the plugins replace it"),
        ]);
        prepare_client_request(&mut headers);
        assert_eq!(names(&headers), ["api_key", "x-consumer-id", "x_consumer"]);
    }

    #[test]
    fn response_hop_by_hop_headers_go_and_trailer_only_when_asked() {
        let upstream = || {
            map(&[
                ("connection", "close, x-private, Upgrade"),
                ("x-private", "1"),
                ("keep-alive", "timeout=5"),
                ("transfer-encoding", "chunked"),
                ("trailer", "x-checksum"),
                ("x-kept", "1"),
            ])
        };
        let mut headers = upstream();
        prepare_proxied_response(&mut headers, Latencies::default(), "r", false);
        assert!(!headers.contains_key(TRAILER));
        assert!(!headers.contains_key("x-private"));
        assert!(!headers.contains_key(CONNECTION));
        assert!(!headers.contains_key(TRANSFER_ENCODING));
        assert!(headers.contains_key("x-kept"));
        let mut headers = upstream();
        prepare_proxied_response(&mut headers, Latencies::default(), "r", true);
        assert_eq!(headers[TRAILER], "x-checksum");
    }

    #[test]
    fn upstream_headers_are_set_and_appended() {
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("1.2.3.4"));
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("spoofed"));
        headers.insert(X_FORWARDED_PREFIX, HeaderValue::from_static("spoofed"));
        headers.insert(X_REAL_IP, HeaderValue::from_static("spoofed"));
        headers.insert(VIA, HeaderValue::from_static("1.0 other"));
        prepare_upstream(
            &mut headers,
            &forwarding(None),
            &service("http", 8080),
            false,
        );
        assert_eq!(headers[HOST], "upstream.test:8080");
        assert_eq!(headers[X_FORWARDED_FOR], "1.2.3.4, 10.0.0.1");
        assert_eq!(headers[X_FORWARDED_PROTO], "http");
        assert_eq!(headers[X_FORWARDED_HOST], "example.com");
        assert_eq!(headers[X_FORWARDED_PORT], "8000");
        assert_eq!(headers[X_FORWARDED_PATH], "/api/x");
        assert!(!headers.contains_key(X_FORWARDED_PREFIX));
        assert_eq!(headers[X_REAL_IP], "10.0.0.1");
        assert_eq!(headers[VIA], "1.0 other, 1.1 kong/3.10.0");
        assert_eq!(headers[X_KONG_REQUEST_ID], "rid");
    }

    #[test]
    fn host_header_choice() {
        let mut headers = HeaderMap::new();
        prepare_upstream(
            &mut headers,
            &forwarding(Some("/api")),
            &service("http", 80),
            true,
        );
        assert_eq!(headers[HOST], "Example.com:8000");
        assert_eq!(headers[X_FORWARDED_PREFIX], "/api");
        assert_eq!(service_host_header(&service("http", 80)), "upstream.test");
        assert_eq!(service_host_header(&service("https", 443)), "upstream.test");
        assert_eq!(
            service_host_header(&service("https", 80)),
            "upstream.test:80"
        );
    }

    #[test]
    fn response_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(VIA, HeaderValue::from_static("1.1 upstream"));
        let latencies = Latencies {
            upstream: Duration::from_millis(12),
            proxy: Duration::from_millis(3),
        };
        prepare_proxied_response(&mut headers, latencies, "r", false);
        assert_eq!(headers[VIA], "1.1 upstream, 1.1 kong/3.10.0");
        assert_eq!(headers[SERVER], "kong/3.10.0");
        assert_eq!(headers[X_KONG_UPSTREAM_LATENCY], "12");
        assert_eq!(headers[X_KONG_PROXY_LATENCY], "3");

        let mut headers = HeaderMap::new();
        headers.insert(SERVER, HeaderValue::from_static("echo"));
        prepare_proxied_response(&mut headers, Latencies::default(), "r", false);
        assert_eq!(headers[SERVER], "echo");

        let mut generated = HeaderMap::new();
        prepare_generated_response(&mut generated, Duration::from_millis(1), "r");
        assert_eq!(generated[SERVER], "kong/3.10.0");
        assert_eq!(generated[X_KONG_RESPONSE_LATENCY], "1");
    }
}
