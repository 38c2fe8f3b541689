//! Headers the proxy adds, replaces or removes (Kong's §5.4–5.6).
//!
//! - Hop-by-hop headers (and those a `Connection` header lists) are removed
//!   in both directions.
//! - Upstream requests get `Host` (per `preserve_host`), `X-Forwarded-*`,
//!   `X-Real-IP`, `Via` and `X-Kong-Request-Id`; client-sent copies are
//!   replaced, except `X-Forwarded-For` and `Via`, which are appended to.
//! - Responses get `Via`, latency headers and `X-Kong-Request-Id`; the
//!   gateway's own responses also get `Server`.

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

use super::respond::SERVER_TOKEN;

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

/// Removes hop-by-hop headers: `Connection` and every header it lists,
/// `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`
/// and `Upgrade`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::try_from(token.trim()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        CONNECTION,
        KEEP_ALIVE,
        PROXY_CONNECTION,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
    ] {
        headers.remove(name);
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
    remove_hop_by_hop(headers);
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

/// Headers of a proxied response: hop-by-hop removed, `Via` appended,
/// `Server` added if the upstream sent none, latencies and request id.
pub fn prepare_proxied_response(
    headers: &mut HeaderMap,
    upstream_latency: Duration,
    proxy_latency: Duration,
    request_id: &str,
) {
    remove_hop_by_hop(headers);
    append_list(headers, VIA, via_value(Version::HTTP_11));
    if !headers.contains_key(SERVER) {
        headers.insert(SERVER, HeaderValue::from_static(SERVER_TOKEN));
    }
    headers.insert(X_KONG_UPSTREAM_LATENCY, millis(upstream_latency));
    headers.insert(X_KONG_PROXY_LATENCY, millis(proxy_latency));
    set(headers, X_KONG_REQUEST_ID, request_id);
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

    #[test]
    fn hop_by_hop_headers_go() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
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
        prepare_proxied_response(
            &mut headers,
            Duration::from_millis(12),
            Duration::from_millis(3),
            "r",
        );
        assert_eq!(headers[VIA], "1.1 upstream, 1.1 kong/3.10.0");
        assert_eq!(headers[SERVER], "kong/3.10.0");
        assert_eq!(headers[X_KONG_UPSTREAM_LATENCY], "12");
        assert_eq!(headers[X_KONG_PROXY_LATENCY], "3");

        let mut headers = HeaderMap::new();
        headers.insert(SERVER, HeaderValue::from_static("echo"));
        prepare_proxied_response(&mut headers, Duration::ZERO, Duration::ZERO, "r");
        assert_eq!(headers[SERVER], "echo");

        let mut generated = HeaderMap::new();
        prepare_generated_response(&mut generated, Duration::from_millis(1), "r");
        assert_eq!(generated[SERVER], "kong/3.10.0");
        assert_eq!(generated[X_KONG_RESPONSE_LATENCY], "1");
    }
}
