//! Responses the gateway produces itself, formatted as Kong formats them.
//!
//! - [`error`] is `kong.response.error`: the body format is negotiated from
//!   the request's `Accept` header (JSON by default, `text/plain`,
//!   `text/html`, `application/xml`, each with `; charset=utf-8`) and carries
//!   the message and the request id. Used for 404 "no Route matched", the
//!   upstream 502/503/504, key-auth failures and so on.
//! - [`nginx_error`] is Kong's `error_handlers.lua`, for the errors nginx
//!   itself produces (a refused request, a failed upstream exchange): the
//!   same bodies, but without `Accept` the request's `Content-Type` is
//!   read instead, and without either Kong's `error_default_type`
//!   (`text/plain`). The templates end with a line feed, as Kong's
//!   (`kong/tools/http.lua`; its specs strip bodies before comparing).
//! - [`exit`] is `kong.response.exit`: a JSON value is encoded compactly
//!   (no request id), a raw body is sent as is, no body means
//!   `Content-Length: 0`. Used by request-termination and session logout.
//!
//! Both return an `http::Response<Bytes>`; the proxy adds `Server`,
//! `X-Kong-Response-Latency` and `X-Kong-Request-Id` when it sends one.
//!
//! Deviation from Kong, on purpose: Kong pastes the message into its
//! templates unescaped; here it is JSON-escaped in JSON bodies and
//! entity-escaped in HTML and XML ones, so a message can never break the
//! document. Kong's own messages contain nothing that needs escaping, so
//! their bodies are byte-for-byte identical.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Response, StatusCode};

/// The product token of `Server` and `Via` headers.
pub const SERVER_TOKEN: &str = "kong/3.10.0";

/// A response built by the gateway (not proxied).
pub type GeneratedResponse = Response<Bytes>;

const JSON_UTF8: &str = "application/json; charset=utf-8";
const HTML_UTF8: &str = "text/html; charset=utf-8";
const XML_UTF8: &str = "application/xml; charset=utf-8";
const PLAIN_UTF8: &str = "text/plain; charset=utf-8";

/// The body formats of `kong.response.error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    /// `application/json; charset=utf-8`, the default.
    Json,
    /// `text/html; charset=utf-8`.
    Html,
    /// `application/xml; charset=utf-8`.
    Xml,
    /// `text/plain; charset=utf-8`.
    Plain,
}

impl ErrorFormat {
    /// The `Content-Type` value of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            ErrorFormat::Json => JSON_UTF8,
            ErrorFormat::Html => HTML_UTF8,
            ErrorFormat::Xml => XML_UTF8,
            ErrorFormat::Plain => PLAIN_UTF8,
        }
    }

    /// The format named by a `Content-Type` value a caller supplied, if it
    /// is one of the four (parameters ignored).
    fn from_content_type(value: &str) -> Option<ErrorFormat> {
        let essence = value.split(';').next().unwrap_or("").trim();
        let essence = essence.to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Some(ErrorFormat::Json),
            "text/html" => Some(ErrorFormat::Html),
            "application/xml" => Some(ErrorFormat::Xml),
            "text/plain" => Some(ErrorFormat::Plain),
            _ => None,
        }
    }
}

/// What `kong.response.exit` sends as the body.
#[derive(Debug, Clone, PartialEq)]
pub enum ExitBody {
    /// No body: `Content-Length: 0`.
    Empty,
    /// A value encoded as compact JSON, with
    /// `Content-Type: application/json; charset=utf-8` unless the caller
    /// supplied a content type.
    Json(serde_json::Value),
    /// Bytes sent as they are; no `Content-Type` is added.
    Raw(Bytes),
}

/// Kong's default message for an error status (`HTTP_MESSAGES` of the PDK),
/// or `The upstream server responded with <status>`.
pub fn status_message(status: StatusCode) -> Cow<'static, str> {
    let known = match status.as_u16() {
        400 => "Bad request",
        401 => "Unauthorized",
        402 => "Payment required",
        403 => "Forbidden",
        404 => "Not found",
        405 => "Method not allowed",
        406 => "Not acceptable",
        407 => "Proxy authentication required",
        408 => "Request timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length required",
        412 => "Precondition failed",
        413 => "Payload too large",
        414 => "URI too long",
        415 => "Unsupported media type",
        416 => "Range not satisfiable",
        417 => "Expectation failed",
        418 => "I'm a teapot",
        421 => "Misdirected request",
        422 => "Unprocessable entity",
        423 => "Locked",
        424 => "Failed dependency",
        425 => "Too early",
        426 => "Upgrade required",
        428 => "Precondition required",
        429 => "Too many requests",
        431 => "Request header fields too large",
        451 => "Unavailable for legal reasons",
        494 => "Request header or cookie too large",
        500 => "An unexpected error occurred",
        501 => "Not implemented",
        502 => "An invalid response was received from the upstream server",
        503 => "The upstream server is currently unavailable",
        504 => "The upstream server is timing out",
        505 => "HTTP version not supported",
        506 => "Variant also negotiates",
        507 => "Insufficient storage",
        508 => "Loop detected",
        510 => "Not extended",
        511 => "Network authentication required",
        other => return Cow::Owned(format!("The upstream server responded with {other}")),
    };
    Cow::Borrowed(known)
}

/// `kong.response.error(status, message, headers)`.
///
/// The format comes from a `Content-Type` in `headers` if it names one of
/// the four formats, else from the request's `Accept` header(s) in
/// `request_headers` ([`negotiate`]). `message` defaults to
/// [`status_message`]. `headers` are added to the response (a caller's
/// `Content-Type` is kept as given).
pub fn error(
    status: StatusCode,
    message: Option<&str>,
    request_headers: &HeaderMap,
    request_id: &str,
    mut headers: HeaderMap,
) -> GeneratedResponse {
    let format = match headers.get(CONTENT_TYPE) {
        Some(given) => given
            .to_str()
            .ok()
            .and_then(ErrorFormat::from_content_type)
            .unwrap_or(ErrorFormat::Json),
        None => {
            let format = negotiate(joined_accept(request_headers).as_deref());
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            format
        }
    };
    let message = message.map_or_else(|| status_message(status), Cow::Borrowed);
    let body = format_error(format, &message, request_id);
    build(status, Bytes::from(body), headers)
}

/// Kong's `error_default_type`: the error format when a request says
/// nothing about what it accepts.
pub const ERROR_DEFAULT_TYPE: &str = "text/plain";

/// An error nginx produces, rendered by Kong's `error_handlers.lua` (see
/// the module doc): Kong's message for `status`, the format from `Accept`,
/// else `Content-Type`, else [`ERROR_DEFAULT_TYPE`].
pub fn nginx_error(
    status: StatusCode,
    request_headers: &HeaderMap,
    request_id: &str,
    mut headers: HeaderMap,
) -> GeneratedResponse {
    let format = match joined_accept(request_headers) {
        Some(accept) => negotiate(Some(&accept)),
        None => {
            let content_type = request_headers
                .get(CONTENT_TYPE)
                .and_then(|value| value.to_str().ok());
            negotiate(Some(content_type.unwrap_or(ERROR_DEFAULT_TYPE)))
        }
    };
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    let body = format_error(format, &status_message(status), request_id);
    build(status, Bytes::from(body), headers)
}

/// `kong.response.exit(status, body, headers)`.
pub fn exit(status: StatusCode, body: ExitBody, mut headers: HeaderMap) -> GeneratedResponse {
    let bytes = match body {
        ExitBody::Empty => Bytes::new(),
        ExitBody::Raw(bytes) => bytes,
        ExitBody::Json(value) => {
            if !headers.contains_key(CONTENT_TYPE) {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
            }
            // Serializing a `Value` cannot fail.
            Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
        }
    };
    build(status, bytes, headers)
}

/// Every `Accept` header value joined with `,`, as Kong joins repeated ones.
fn joined_accept(request_headers: &HeaderMap) -> Option<String> {
    let mut values = request_headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .peekable();
    values.peek()?;
    Some(values.collect::<Vec<_>>().join(","))
}

/// The status, body and headers, with `Content-Length` set unless the status
/// forbids a body (1xx, 204, 304), in which case the body is dropped.
fn build(status: StatusCode, body: Bytes, headers: HeaderMap) -> GeneratedResponse {
    let bodyless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let body = if bodyless { Bytes::new() } else { body };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    if bodyless {
        response.headers_mut().remove(CONTENT_LENGTH);
    } else if !response.headers().contains_key(CONTENT_LENGTH) {
        let length = HeaderValue::from(response.body().len());
        response.headers_mut().insert(CONTENT_LENGTH, length);
    }
    response
}

/// The error body of `format` for `message` and `request_id`.
pub fn format_error(format: ErrorFormat, message: &str, request_id: &str) -> String {
    match format {
        ErrorFormat::Json => format!(
            "{{\n  \"message\":\"{}\",\n  \"request_id\":\"{}\"\n}}",
            json_escape(message),
            json_escape(request_id)
        ),
        ErrorFormat::Plain => format!("{message}\nrequest_id: {request_id}\n"),
        ErrorFormat::Html => format!(
            "<!doctype html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n    \
             <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n    \
             <p>{}.</p>\n    <p>request_id: {}</p>\n  </body>\n</html>\n",
            markup_escape(message),
            markup_escape(request_id)
        ),
        ErrorFormat::Xml => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>{}</message>\n  \
             <requestid>{}</requestid>\n</error>\n",
            markup_escape(message),
            markup_escape(request_id)
        ),
    }
}

/// The contents of a JSON string literal for `text`, without the quotes.
fn json_escape(text: &str) -> String {
    let quoted = serde_json::Value::from(text).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// `text` with `&`, `<`, `>`, `"` and `'` escaped for HTML and XML.
fn markup_escape(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    Cow::Owned(escaped)
}

/// Picks the error format from an `Accept` value as Kong does: the first
/// media range with the strictly highest quality wins; `*/*`,
/// `application/*`, unknown types and a missing header give JSON;
/// `text/*` gives plain text; ranges with `q=0` are never chosen.
pub fn negotiate(accept: Option<&str>) -> ErrorFormat {
    let Some(accept) = accept else {
        return ErrorFormat::Json;
    };
    let mut chosen = ErrorFormat::Json;
    let mut best_quality = 0.0_f32;
    for range in accept.split(',') {
        if let Some((media_type, quality)) = parse_media_range(range.trim()) {
            if quality > best_quality {
                best_quality = quality;
                chosen = format_of_media_type(&media_type);
            }
        }
    }
    chosen
}

/// `type/subtype` (lowercased) and its quality, or `None` when the range
/// does not start with a valid media type.
fn parse_media_range(range: &str) -> Option<(String, f32)> {
    let mut parts = range.split(';');
    let media_type = parts.next()?.trim().to_ascii_lowercase();
    let (main, sub) = media_type.split_once('/')?;
    if !is_media_token(main.trim()) || !is_media_token(sub.trim()) {
        return None;
    }
    let media_type = format!("{}/{}", main.trim(), sub.trim());
    Some((media_type, quality_of(parts)))
}

/// A media type or subtype token as Kong's pattern accepts it: `*`, or at
/// least two characters starting with an alphanumeric.
fn is_media_token(token: &str) -> bool {
    if token == "*" {
        return true;
    }
    let mut chars = token.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    first_ok
        && token.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || "-!#$&^_+.".contains(c))
}

/// The `q` parameter among `params`; 1 when absent or malformed.
fn quality_of<'a>(params: impl Iterator<Item = &'a str>) -> f32 {
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("q") {
            return parse_quality(value.trim()).unwrap_or(1.0);
        }
    }
    1.0
}

/// A quality value: `1`, `1.`, `1.000`, `0`, `0.5`, `0.123` (at most three
/// decimals; longer forms are cut at three like Kong's pattern does).
fn parse_quality(value: &str) -> Option<f32> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits: String = fraction
        .chars()
        .take_while(char::is_ascii_digit)
        .take(3)
        .collect();
    match whole {
        "1" => Some(1.0),
        "0" if digits.is_empty() => Some(0.0),
        "0" => format!("0.{digits}").parse().ok(),
        _ => None,
    }
}

/// Kong's `get_mime_type` restricted to the four error formats.
fn format_of_media_type(media_type: &str) -> ErrorFormat {
    match media_type {
        "text/*" | "text/plain" => ErrorFormat::Plain,
        "text/html" => ErrorFormat::Html,
        "application/xml" => ErrorFormat::Xml,
        _ => ErrorFormat::Json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn body_text(response: &GeneratedResponse) -> &str {
        std::str::from_utf8(response.body()).unwrap()
    }

    #[test]
    fn json_is_the_default_with_request_id() {
        let response = error(
            StatusCode::NOT_FOUND,
            Some("no Route matched with those values"),
            &HeaderMap::new(),
            "abc123",
            HeaderMap::new(),
        );
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers()[CONTENT_TYPE], JSON_UTF8);
        assert_eq!(
            body_text(&response),
            "{\n  \"message\":\"no Route matched with those values\",\n  \"request_id\":\"abc123\"\n}"
        );
        assert_eq!(
            response.headers()[CONTENT_LENGTH],
            response.body().len().to_string().as_str()
        );
    }

    #[test]
    fn plain_html_and_xml_by_accept() {
        let plain = error(
            StatusCode::UNAUTHORIZED,
            None,
            &accept("text/plain"),
            "id1",
            HeaderMap::new(),
        );
        assert_eq!(plain.headers()[CONTENT_TYPE], PLAIN_UTF8);
        assert_eq!(body_text(&plain), "Unauthorized\nrequest_id: id1\n");

        let html = error(
            StatusCode::BAD_GATEWAY,
            None,
            &accept("text/html"),
            "id2",
            HeaderMap::new(),
        );
        assert_eq!(html.headers()[CONTENT_TYPE], HTML_UTF8);
        assert!(body_text(&html)
            .contains("<p>An invalid response was received from the upstream server.</p>"));
        assert!(body_text(&html).contains("<p>request_id: id2</p>"));

        let xml = error(
            StatusCode::GATEWAY_TIMEOUT,
            None,
            &accept("application/xml"),
            "id3",
            HeaderMap::new(),
        );
        assert_eq!(xml.headers()[CONTENT_TYPE], XML_UTF8);
        assert!(body_text(&xml).contains("<message>The upstream server is timing out</message>"));
        assert!(body_text(&xml).contains("<requestid>id3</requestid>"));
    }

    #[test]
    fn negotiation_follows_quality_and_wildcards() {
        assert_eq!(negotiate(None), ErrorFormat::Json);
        assert_eq!(negotiate(Some("*/*")), ErrorFormat::Json);
        assert_eq!(negotiate(Some("application/*")), ErrorFormat::Json);
        assert_eq!(negotiate(Some("text/*")), ErrorFormat::Plain);
        assert_eq!(negotiate(Some("image/png")), ErrorFormat::Json);
        assert_eq!(negotiate(Some("TEXT/HTML")), ErrorFormat::Html);
        assert_eq!(
            negotiate(Some("text/html;q=0.5, application/xml;q=0.9")),
            ErrorFormat::Xml
        );
        assert_eq!(
            negotiate(Some("text/plain, text/html")),
            ErrorFormat::Plain,
            "ties keep the first"
        );
        assert_eq!(negotiate(Some("text/html;q=0")), ErrorFormat::Json);
        assert_eq!(
            negotiate(Some("text/html;level=1;q=0.2, text/plain;q=0.1")),
            ErrorFormat::Html
        );
        assert_eq!(negotiate(Some("garbage")), ErrorFormat::Json);
    }

    #[test]
    fn repeated_accept_headers_are_joined() {
        let mut headers = HeaderMap::new();
        headers.append(ACCEPT, HeaderValue::from_static("text/plain;q=0.1"));
        headers.append(ACCEPT, HeaderValue::from_static("text/html"));
        let response = error(StatusCode::FORBIDDEN, None, &headers, "x", HeaderMap::new());
        assert_eq!(response.headers()[CONTENT_TYPE], HTML_UTF8);
    }

    #[test]
    fn caller_content_type_wins_and_messages_are_escaped() {
        let mut given = HeaderMap::new();
        given.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let response = error(
            StatusCode::FORBIDDEN,
            Some("no"),
            &accept("text/html"),
            "r",
            given,
        );
        assert_eq!(response.headers()[CONTENT_TYPE], "text/plain");
        assert_eq!(body_text(&response), "no\nrequest_id: r\n");

        let json = format_error(ErrorFormat::Json, "say \"hi\"", "r");
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["message"], "say \"hi\"");
        assert!(format_error(ErrorFormat::Html, "<b>", "r").contains("&lt;b&gt;"));
    }

    #[test]
    fn default_messages() {
        assert_eq!(
            status_message(StatusCode::SERVICE_UNAVAILABLE),
            "The upstream server is currently unavailable"
        );
        assert_eq!(
            status_message(StatusCode::from_u16(599).unwrap()),
            "The upstream server responded with 599"
        );
    }

    #[test]
    fn exit_bodies() {
        let json = exit(
            StatusCode::SERVICE_UNAVAILABLE,
            ExitBody::Json(serde_json::json!({"message": "Service unavailable"})),
            HeaderMap::new(),
        );
        assert_eq!(body_text(&json), "{\"message\":\"Service unavailable\"}");
        assert_eq!(json.headers()[CONTENT_TYPE], JSON_UTF8);

        let empty = exit(StatusCode::FORBIDDEN, ExitBody::Empty, HeaderMap::new());
        assert_eq!(empty.headers()[CONTENT_LENGTH], "0");
        assert!(!empty.headers().contains_key(CONTENT_TYPE));

        let raw = exit(
            StatusCode::OK,
            ExitBody::Raw(Bytes::from_static(b"hi")),
            HeaderMap::new(),
        );
        assert_eq!(body_text(&raw), "hi");
        assert!(!raw.headers().contains_key(CONTENT_TYPE));

        let no_content = exit(
            StatusCode::NO_CONTENT,
            ExitBody::Raw(Bytes::from_static(b"dropped")),
            HeaderMap::new(),
        );
        assert!(no_content.body().is_empty());
        assert!(!no_content.headers().contains_key(CONTENT_LENGTH));
    }
}
