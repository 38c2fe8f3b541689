//! Reading and rewriting request arguments the way Kong's PDK exposes them
//! (`kong.request.get_headers`, `get_query`, `get_body`).
//!
//! Lookups return an [`Arg`]: absent, one string, several values (Kong's
//! table, which key-auth treats as a duplicate), or something that is present
//! but not a string (a bare `?name`, a JSON number, ...).
//!
//! - Headers: case-insensitive; a name with `_` also matches the header with
//!   `-` (but not the other way round), as OpenResty's header table does.
//! - Query and form bodies: `&`-separated, `+` and `%XX` decoded, exact
//!   names; `name` without `=` is a flag (Lua `true`).
//! - Bodies: `application/x-www-form-urlencoded`, `application/json` (an
//!   object) and `multipart/form-data`, chosen by `Content-Type`; anything
//!   else, or a parse failure, is an empty body.
//!
//! Removal (`hide_credentials`) keeps every other argument as it was sent:
//! other query and form arguments keep their order and raw encoding, other
//! multipart parts keep their bytes, and a JSON body is re-serialized
//! without the field.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, CONTENT_TYPE};
use serde_json::{Map, Value};

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// No argument with that name.
    Absent,
    /// Present, but not a string (a flag, a number, a boolean, null).
    NotAString,
    /// Exactly one string value.
    One(String),
    /// Several values, or a JSON array/object (Kong's table).
    Many,
}

impl Arg {
    /// Whether something was found (Lua truthiness of the lookup).
    pub fn is_present(&self) -> bool {
        !matches!(self, Arg::Absent)
    }
}

/// The header `name` matched, if any: the lowercase name itself, or else
/// the same name with `_` replaced by `-`.
pub fn header_name_for(headers: &HeaderMap, name: &str) -> Option<HeaderName> {
    let exact = name.to_ascii_lowercase();
    if let Ok(header) = HeaderName::try_from(exact.as_str()) {
        if headers.contains_key(&header) {
            return Some(header);
        }
    }
    let dashed = exact.replace('_', "-");
    let header = HeaderName::try_from(dashed.as_str()).ok()?;
    headers.contains_key(&header).then_some(header)
}

/// The header `name` (see [`header_name_for`]).
pub fn header_arg(headers: &HeaderMap, name: &str) -> Arg {
    let Some(header) = header_name_for(headers, name) else {
        return Arg::Absent;
    };
    let mut values = headers.get_all(&header).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Arg::One(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        (Some(_), Some(_)) => Arg::Many,
        (None, _) => Arg::Absent,
    }
}

/// Removes the headers `name` and (for a name with `_`) its `-` variant.
pub fn remove_header(headers: &mut HeaderMap, name: &str) {
    let exact = name.to_ascii_lowercase();
    let dashed = exact.replace('_', "-");
    for candidate in [exact, dashed] {
        if let Ok(header) = HeaderName::try_from(candidate.as_str()) {
            headers.remove(header);
        }
    }
}

/// One `name[=value]` pair of a query string or form body, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The decoded name.
    pub name: String,
    /// The decoded value; `None` for a bare `name` (Lua `true`).
    pub value: Option<String>,
}

/// The pairs of `query` (or a form body) in order; empty segments skipped.
pub fn parse_pairs(query: &str) -> Vec<Pair> {
    query
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| match segment.split_once('=') {
            Some((name, value)) => Pair {
                name: form_decode(name),
                value: Some(form_decode(value)),
            },
            None => Pair {
                name: form_decode(segment),
                value: None,
            },
        })
        .collect()
}

/// The argument `name` among `pairs` (exact name).
pub fn pairs_arg(pairs: &[Pair], name: &str) -> Arg {
    let mut found = pairs.iter().filter(|pair| pair.name == name);
    match (found.next(), found.next()) {
        (None, _) => Arg::Absent,
        (Some(_), Some(_)) => Arg::Many,
        (Some(pair), None) => match &pair.value {
            Some(value) => Arg::One(value.clone()),
            None => Arg::NotAString,
        },
    }
}

/// The query argument `name` of `query`.
pub fn query_arg(query: Option<&str>, name: &str) -> Arg {
    pairs_arg(&parse_pairs(query.unwrap_or("")), name)
}

/// `query` without the arguments named `name`; the others keep their order
/// and raw encoding.
pub fn remove_pairs(query: &str, name: &str) -> String {
    query
        .split('&')
        .filter(|segment| !segment.is_empty())
        .filter(|segment| {
            let raw_name = segment.split_once('=').map_or(*segment, |(raw, _)| raw);
            form_decode(raw_name) != name
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes `+` as space and `%XX` escapes (invalid UTF-8 is replaced).
pub fn form_decode(raw: &str) -> String {
    let spaced: Cow<'_, str> = if raw.contains('+') {
        Cow::Owned(raw.replace('+', " "))
    } else {
        Cow::Borrowed(raw)
    };
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// A request body parsed by its `Content-Type`.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedBody {
    /// Unsupported type, no body, or unparsable: no arguments.
    Empty,
    /// `application/x-www-form-urlencoded`.
    Form(String),
    /// `application/json` with an object (other JSON values are `Empty`).
    Json(Map<String, Value>),
    /// `multipart/form-data`.
    Multipart(Multipart),
}

impl ParsedBody {
    /// Parses `body` according to the request's `Content-Type`.
    pub fn parse(headers: &HeaderMap, body: &[u8]) -> ParsedBody {
        let Some(content_type) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
            return ParsedBody::Empty;
        };
        let lowered = content_type.to_ascii_lowercase();
        if lowered.contains("application/x-www-form-urlencoded") {
            return match std::str::from_utf8(body) {
                Ok(text) => ParsedBody::Form(text.to_owned()),
                Err(_) => ParsedBody::Empty,
            };
        }
        if lowered.contains("application/json") {
            return match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(object)) => ParsedBody::Json(object),
                _ => ParsedBody::Empty,
            };
        }
        if lowered.contains("multipart/form-data") {
            return boundary_of(content_type)
                .and_then(|boundary| Multipart::parse(body, &boundary))
                .map_or(ParsedBody::Empty, ParsedBody::Multipart);
        }
        ParsedBody::Empty
    }

    /// The body argument `name`.
    pub fn arg(&self, name: &str) -> Arg {
        match self {
            ParsedBody::Empty => Arg::Absent,
            ParsedBody::Form(text) => pairs_arg(&parse_pairs(text), name),
            ParsedBody::Json(object) => match object.get(name) {
                None => Arg::Absent,
                Some(Value::String(value)) => Arg::One(value.clone()),
                Some(Value::Array(_) | Value::Object(_)) => Arg::Many,
                Some(_) => Arg::NotAString,
            },
            ParsedBody::Multipart(multipart) => multipart.arg(name),
        }
    }

    /// The body without the argument `name`, re-serialized in the same
    /// format; `None` when there was no such argument.
    pub fn without(&self, name: &str) -> Option<Bytes> {
        match self {
            ParsedBody::Empty => None,
            ParsedBody::Form(text) => pairs_arg(&parse_pairs(text), name)
                .is_present()
                .then(|| Bytes::from(remove_pairs(text, name))),
            ParsedBody::Json(object) => {
                let mut object = object.clone();
                object.remove(name)?;
                serde_json::to_vec(&Value::Object(object))
                    .ok()
                    .map(Bytes::from)
            }
            ParsedBody::Multipart(multipart) => multipart.without(name),
        }
    }

    /// The parsed body as a JSON value (request-termination's echo), or
    /// `None` for an empty or unsupported body.
    pub fn to_json(&self) -> Option<Value> {
        match self {
            ParsedBody::Empty => None,
            ParsedBody::Form(text) => Some(pairs_to_json(&parse_pairs(text))),
            ParsedBody::Json(object) => Some(Value::Object(object.clone())),
            ParsedBody::Multipart(multipart) => Some(multipart.to_json()),
        }
    }
}

/// Pairs as Kong shows them: one string per name, an array when repeated,
/// `true` for a bare name.
pub fn pairs_to_json(pairs: &[Pair]) -> Value {
    let mut object = Map::new();
    for pair in pairs {
        let value = pair.value.clone().map_or(Value::Bool(true), Value::String);
        match object.get_mut(&pair.name) {
            None => {
                object.insert(pair.name.clone(), value);
            }
            Some(Value::Array(values)) => values.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
        }
    }
    Value::Object(object)
}

/// The `boundary` parameter of a multipart `Content-Type`.
fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim().trim_matches('"');
        (!value.is_empty()).then(|| value.to_owned())
    })
}

/// A parsed `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq)]
pub struct Multipart {
    boundary: String,
    parts: Vec<Part>,
}

/// One part: its field name, its raw bytes (headers, blank line, content)
/// and its content.
#[derive(Debug, Clone, PartialEq)]
struct Part {
    name: Option<String>,
    raw: Bytes,
    content: Bytes,
}

impl Multipart {
    /// Splits `body` at `--boundary` delimiters; `None` if it is not a
    /// well-formed multipart body.
    pub fn parse(body: &[u8], boundary: &str) -> Option<Multipart> {
        let delimiter = format!("--{boundary}");
        let separator = format!("\r\n--{boundary}");
        let mut position = if body.starts_with(delimiter.as_bytes()) {
            delimiter.len()
        } else {
            find(body, separator.as_bytes(), 0)? + separator.len()
        };
        let mut parts = Vec::new();
        loop {
            if body[position..].starts_with(b"--") {
                break;
            }
            let line_end = find(body, b"\r\n", position)?;
            let start = line_end + 2;
            let end = find(body, separator.as_bytes(), start)?;
            parts.push(Part::parse(Bytes::copy_from_slice(&body[start..end])));
            position = end + separator.len();
        }
        Some(Multipart {
            boundary: boundary.to_owned(),
            parts,
        })
    }

    fn arg(&self, name: &str) -> Arg {
        let mut found = self
            .parts
            .iter()
            .filter(|part| part.name.as_deref() == Some(name));
        match (found.next(), found.next()) {
            (None, _) => Arg::Absent,
            (Some(_), Some(_)) => Arg::Many,
            (Some(part), None) => Arg::One(String::from_utf8_lossy(&part.content).into_owned()),
        }
    }

    fn without(&self, name: &str) -> Option<Bytes> {
        if !self.arg(name).is_present() {
            return None;
        }
        let mut out = BytesMut::new();
        for part in self
            .parts
            .iter()
            .filter(|part| part.name.as_deref() != Some(name))
        {
            out.put_slice(b"--");
            out.put_slice(self.boundary.as_bytes());
            out.put_slice(b"\r\n");
            out.put_slice(&part.raw);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"--");
        out.put_slice(self.boundary.as_bytes());
        out.put_slice(b"--\r\n");
        Some(out.freeze())
    }

    fn to_json(&self) -> Value {
        let pairs: Vec<Pair> = self
            .parts
            .iter()
            .filter_map(|part| {
                Some(Pair {
                    name: part.name.clone()?,
                    value: Some(String::from_utf8_lossy(&part.content).into_owned()),
                })
            })
            .collect();
        pairs_to_json(&pairs)
    }
}

impl Part {
    fn parse(raw: Bytes) -> Part {
        let (head, content) = match find(&raw, b"\r\n\r\n", 0) {
            Some(end) => (&raw[..end], raw.slice(end + 4..)),
            None if raw.starts_with(b"\r\n") => (&raw[..0], raw.slice(2..)),
            None => (&raw[..], Bytes::new()),
        };
        let name = String::from_utf8_lossy(head)
            .split("\r\n")
            .find_map(disposition_name);
        Part { name, raw, content }
    }
}

/// The `name` of a `Content-Disposition: form-data; name="..."` line.
fn disposition_name(line: &str) -> Option<String> {
    let (header, value) = line.split_once(':')?;
    if !header.trim().eq_ignore_ascii_case("content-disposition") {
        return None;
    }
    value.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("name")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The first index of `needle` in `haystack` at or after `from`.
fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|index| index + from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::try_from(*name).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn header_lookup_matches_underscore_names_to_dashes() {
        let map = headers(&[("api-key", "k1")]);
        assert_eq!(header_arg(&map, "api_key"), Arg::One("k1".into()));
        assert_eq!(header_arg(&map, "API-KEY"), Arg::One("k1".into()));
        let map = headers(&[("api_key", "k2")]);
        assert_eq!(header_arg(&map, "api-key"), Arg::Absent);
        assert_eq!(header_arg(&map, "api_key"), Arg::One("k2".into()));
        let map = headers(&[("apikey", "a"), ("apikey", "b")]);
        assert_eq!(header_arg(&map, "apikey"), Arg::Many);
    }

    #[test]
    fn query_lookup_distinguishes_flags_values_and_duplicates() {
        assert_eq!(
            query_arg(Some("apikey=a%20b+c"), "apikey"),
            Arg::One("a b c".into())
        );
        assert_eq!(query_arg(Some("apikey"), "apikey"), Arg::NotAString);
        assert_eq!(
            query_arg(Some("apikey="), "apikey"),
            Arg::One(String::new())
        );
        assert_eq!(query_arg(Some("apikey=a&apikey=b"), "apikey"), Arg::Many);
        assert_eq!(query_arg(Some("other=1"), "apikey"), Arg::Absent);
        assert_eq!(query_arg(None, "apikey"), Arg::Absent);
    }

    #[test]
    fn removing_query_args_keeps_the_others_in_order() {
        assert_eq!(
            remove_pairs("b=2&apikey=x&a=1%20&apikey", "apikey"),
            "b=2&a=1%20"
        );
        assert_eq!(remove_pairs("api%6Bey=x&z=1", "apikey"), "z=1");
        assert_eq!(remove_pairs("apikey=x", "apikey"), "");
    }

    #[test]
    fn form_bodies() {
        let map = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        let body = ParsedBody::parse(&map, b"a=1&apikey=secret&b=2");
        assert_eq!(body.arg("apikey"), Arg::One("secret".into()));
        assert_eq!(body.without("apikey").unwrap(), "a=1&b=2");
        assert_eq!(body.without("missing"), None);
    }

    #[test]
    fn json_bodies() {
        let map = headers(&[("content-type", "application/json; charset=utf-8")]);
        let body = ParsedBody::parse(&map, br#"{"a":1,"apikey":"secret","b":[1]}"#);
        assert_eq!(body.arg("apikey"), Arg::One("secret".into()));
        assert_eq!(body.arg("a"), Arg::NotAString);
        assert_eq!(body.arg("b"), Arg::Many);
        assert_eq!(body.without("apikey").unwrap(), r#"{"a":1,"b":[1]}"#);
        assert_eq!(ParsedBody::parse(&map, b"[1,2]"), ParsedBody::Empty);
        assert_eq!(ParsedBody::parse(&map, b"{broken"), ParsedBody::Empty);
    }

    #[test]
    fn multipart_bodies() {
        let map = headers(&[("content-type", "multipart/form-data; boundary=XyZ")]);
        let raw = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n\
                   --XyZ\r\nContent-Disposition: form-data; name=\"apikey\"\r\n\r\nsecret\r\n\
                   --XyZ--\r\n";
        let body = ParsedBody::parse(&map, raw.as_bytes());
        assert_eq!(body.arg("apikey"), Arg::One("secret".into()));
        assert_eq!(body.arg("a"), Arg::One("1".into()));
        let stripped = body.without("apikey").unwrap();
        assert_eq!(
            stripped,
            "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ--\r\n"
        );
        let reparsed = ParsedBody::parse(&map, &stripped);
        assert_eq!(reparsed.arg("apikey"), Arg::Absent);
        assert_eq!(reparsed.arg("a"), Arg::One("1".into()));
    }

    #[test]
    fn unsupported_bodies_are_empty() {
        let map = headers(&[("content-type", "text/plain")]);
        assert_eq!(ParsedBody::parse(&map, b"apikey=x"), ParsedBody::Empty);
        assert_eq!(
            ParsedBody::parse(&HeaderMap::new(), b"apikey=x"),
            ParsedBody::Empty
        );
    }

    #[test]
    fn pairs_as_json() {
        let json = pairs_to_json(&parse_pairs("a=1&a=2&flag&b=x"));
        assert_eq!(
            json,
            serde_json::json!({"a": ["1", "2"], "flag": true, "b": "x"})
        );
    }
}
