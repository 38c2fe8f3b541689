//! The Route entity (Kong 3.x `routes`, traditional_compatible fields).

use serde_json::{json, Map, Value};

use super::{EntityDescriptor, EntityKind, OnDelete, Reference};
use crate::error::{FieldError, FieldPath};
use crate::matching::{self, MatchFieldError};
use crate::schema::{is_present, pattern, Check, Field, Record, Type};
use crate::typedefs;

/// Routes (Kong's `routes`, endpoint key `name`). A service cannot be
/// deleted while routes point at it (Kong's default `on_delete`).
pub const DESCRIPTOR: EntityDescriptor = EntityDescriptor {
    collection: "routes",
    admin_path: "routes",
    deck_kind: "route",
    nested_path: "routes",
    endpoint_key: "name",
    unique: &["name"],
    display_names: &["name"],
    references: &[Reference {
        field: "service",
        parent: EntityKind::Service,
        on_delete: OnDelete::Restrict,
    }],
    generated: &[],
    schema,
    entity_checks,
};

/// Kong's declaration of the route's record checks: `snis` only with TLS
/// protocols, and the two custom checks (path handling, the matching
/// fields) by their sources.
fn entity_checks() -> Value {
    json!([
        {"conditional": {
            "if_field": "protocols",
            "if_match": {"elements": {"type": "string",
                "not_one_of": ["grpcs", "https", "tls", "tls_passthrough"]}},
            "then_field": "snis", "then_match": {"len_eq": 0},
            "then_err": "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'"}},
        {"custom_entity_check": {"field_sources": ["path_handling"]}},
        {"custom_entity_check": {
            "field_sources": ["id", "protocols", "snis", "sources", "destinations",
                "methods", "hosts", "paths", "headers", "expression",
                "regex_priority", "priority"],
            "run_with_missing_fields": true}}
    ])
}

pub fn schema() -> Record {
    Record::new(vec![
        typedefs::id(),
        typedefs::created_at(),
        typedefs::updated_at(),
        typedefs::utf8_name("name"),
        Field::set(
            "protocols",
            Field::item(Type::String).one_of(typedefs::PROTOCOLS),
        )
        .required()
        .default(json!(["http", "https"]))
        .check(Check::LenMin(1)),
        Field::set("methods", Field::item(Type::String).custom(check_method)),
        Field::array("hosts", Field::item(Type::String).custom(check_route_host)),
        Field::array("paths", Field::item(Type::String).custom(check_route_path)),
        Field::map(
            "headers",
            Field::item(Type::Array(Box::new(
                Field::item(Type::String).custom(check_header_value),
            ))),
        )
        .keys(check_header_name),
        Field::integer("https_redirect_status_code")
            .required()
            .default(json!(426))
            .custom(check_redirect_status),
        Field::integer("regex_priority")
            .required()
            .default(json!(0)),
        Field::boolean("strip_path").required().default(json!(true)),
        Field::string("path_handling")
            .required()
            .default(json!("v0"))
            .one_of(&["v0", "v1"]),
        Field::boolean("preserve_host")
            .required()
            .default(json!(false)),
        Field::boolean("request_buffering")
            .required()
            .default(json!(true)),
        Field::boolean("response_buffering")
            .required()
            .default(json!(true)),
        Field::set(
            "snis",
            Field::item(Type::String).custom(typedefs::check_wildcard_sni),
        ),
        Field::set("sources", Field::item(Type::Record(endpoint()))),
        Field::set("destinations", Field::item(Type::Record(endpoint()))),
        typedefs::tags(),
        Field::foreign("service", "services"),
    ])
    .with_check(protocols_not_mixed)
    .with_check(http_needs_a_matcher)
    .with_check(snis_need_tls)
    .with_check(grpc_never_strips)
}

fn endpoint() -> Record {
    Record::new(vec![
        Field::string("ip"),
        Field::integer("port").between(0, 65535),
    ])
}

fn check_method(value: &Value) -> Result<(), String> {
    let method = value.as_str().unwrap_or_default();
    if method.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!("invalid value: {method}"))
    }
}

fn check_redirect_status(value: &Value) -> Result<(), String> {
    match value.as_i64() {
        Some(426 | 301 | 302 | 307 | 308) => Ok(()),
        _ => Err("expected one of: 426, 301, 302, 307, 308".to_owned()),
    }
}

/// Hosts may carry one `*` as the leftmost or rightmost label, and a port
/// (split as the router splits it, see [`matching::split_port_text`]).
fn check_route_host(value: &Value) -> Result<(), String> {
    let host_and_port = value.as_str().unwrap_or_default();
    let (host, port) = matching::split_port_text(host_and_port);
    if let Some(port) = port.filter(|text| matching::parse_port(text).is_none()) {
        return Err(format!("invalid port number: {port}"));
    }
    let plain = match host.matches('*').count() {
        0 => host,
        1 => host
            .strip_prefix("*.")
            .or_else(|| host.strip_suffix(".*"))
            .ok_or("invalid wildcard: must be placed at leftmost or rightmost label")?,
        _ => return Err("invalid wildcard: must have at most one wildcard".to_owned()),
    };
    if typedefs::is_host(plain) {
        Ok(())
    } else {
        Err(format!("invalid hostname: {host_and_port}"))
    }
}

/// A route path is a normalized prefix (`/foo`) or a regex (`~/foo/\d+`).
fn check_route_path(value: &Value) -> Result<(), String> {
    let path = value.as_str().unwrap_or_default();
    if let Some(regex) = path.strip_prefix('~') {
        if !regex.starts_with('/') {
            return Err("should start with: / (fixed path) or ~/ (regex path)".to_owned());
        }
        return matching::compile_path(path)
            .map(drop)
            .map_err(|error| MatchFieldError::invalid_regex(regex, &error).to_string());
    }
    if !path.starts_with('/') {
        return Err("should start with: / (fixed path) or ~/ (regex path)".to_owned());
    }
    if path.contains("//") {
        return Err("must not have empty segments".to_owned());
    }
    typedefs::check_percent_encoding(path)?;
    let normalized = normalize_prefix(path);
    if normalized != path {
        return Err(format!(
            "non-normalized path, consider use '{normalized}' instead"
        ));
    }
    Ok(())
}

/// Dot segments removed and unreserved escapes decoded, as Kong expects a
/// prefix path to be written already.
fn normalize_prefix(path: &str) -> String {
    let decoded = decode_unreserved(path);
    let mut segments: Vec<&str> = Vec::new();
    let ends_with_slash =
        decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    for segment in decoded.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut normalized = format!("/{}", segments.join("/"));
    if ends_with_slash && !normalized.ends_with('/') {
        normalized.push('/');
    }
    normalized
}

fn decode_unreserved(path: &str) -> String {
    static ESCAPE: once_cell::sync::Lazy<regex::Regex> =
        once_cell::sync::Lazy::new(|| pattern("%([0-9A-Fa-f]{2})"));
    ESCAPE
        .replace_all(path, |captures: &regex::Captures<'_>| {
            let byte = u8::from_str_radix(&captures[1], 16).unwrap_or(0);
            let c = byte as char;
            if c.is_ascii_alphanumeric() || "-._~".contains(c) {
                c.to_string()
            } else {
                captures[0].to_uppercase()
            }
        })
        .into_owned()
}

fn protocols(record: &Map<String, Value>) -> Vec<&str> {
    record
        .get("protocols")
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn protocols_not_mixed(record: &Map<String, Value>) -> Vec<FieldError> {
    let groups: [&[&str]; 4] = [
        &["http", "https"],
        &["tcp", "tls", "udp"],
        &["tls_passthrough"],
        &["grpc", "grpcs"],
    ];
    let protocols = protocols(record);
    let used = groups
        .iter()
        .filter(|group| protocols.iter().any(|p| group.contains(p)))
        .count();
    if used > 1 {
        return vec![FieldError::new(
            FieldPath::root().key("protocols"),
            "mixing http, tcp, tls_passthrough and grpc protocols is not allowed",
        )];
    }
    Vec::new()
}

fn http_needs_a_matcher(record: &Map<String, Value>) -> Vec<FieldError> {
    let protocols = protocols(record);
    let http_like = protocols
        .iter()
        .any(|p| matches!(*p, "http" | "https" | "grpc" | "grpcs"));
    if !http_like {
        return Vec::new();
    }
    let tls = protocols.iter().any(|p| matches!(*p, "https" | "grpcs"));
    let mut matchers = vec!["methods", "hosts", "headers", "paths"];
    if tls {
        matchers.push("snis");
    }
    if matchers.iter().any(|field| is_present(record, field)) {
        return Vec::new();
    }
    let quoted: Vec<String> = matchers.iter().map(|field| format!("'{field}'")).collect();
    // Kong names the TLS protocol when there is one, as its own check runs
    // last for https.
    let named = protocols
        .iter()
        .find(|p| !tls || matches!(**p, "https" | "grpcs"))
        .copied()
        .unwrap_or("http");
    vec![FieldError::entity(
        FieldPath::root(),
        format!(
            "must set one of {} when 'protocols' is '{named}'",
            quoted.join(", ")
        ),
    )]
}

/// A `headers` key: a Kong header name, and not `Host` (which belongs in
/// `hosts`).
fn check_header_name(value: &Value) -> Result<(), String> {
    let name = value.as_str().unwrap_or_default();
    matching::check_header_name(name).map_err(|error| error.to_string())?;
    if name.eq_ignore_ascii_case("host") {
        return Err(
            "cannot contain 'host' header, which must be specified in the 'hosts' attribute"
                .to_owned(),
        );
    }
    Ok(())
}

/// A `headers` value: exact, or a `~*` regex that must compile as the
/// router compiles it.
fn check_header_value(value: &Value) -> Result<(), String> {
    let text = value.as_str().unwrap_or_default();
    matching::compile_header_value(text)
        .map(drop)
        .map_err(|error| {
            let pattern = text.strip_prefix("~*").unwrap_or(text);
            MatchFieldError::invalid_regex(pattern, &error).to_string()
        })
}

fn snis_need_tls(record: &Map<String, Value>) -> Vec<FieldError> {
    let tls = protocols(record)
        .iter()
        .any(|p| matches!(*p, "https" | "grpcs" | "tls" | "tls_passthrough"));
    if !tls && is_present(record, "snis") {
        return vec![FieldError::new(
            FieldPath::root().key("snis"),
            "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'",
        )];
    }
    Vec::new()
}

fn grpc_never_strips(record: &Map<String, Value>) -> Vec<FieldError> {
    let grpc = protocols(record)
        .iter()
        .any(|p| matches!(*p, "grpc" | "grpcs"));
    if grpc && record.get("strip_path") == Some(&Value::Bool(true)) {
        return vec![FieldError::new(
            FieldPath::root().key("strip_path"),
            "cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs'",
        )];
    }
    Vec::new()
}

/// Kong turns `strip_path` off for grpc routes when it is not given.
pub fn grpc_default_strip_path(input: &Value) -> Value {
    let mut value = input.clone();
    let Some(object) = value.as_object_mut() else {
        return value;
    };
    let grpc = object
        .get("protocols")
        .and_then(Value::as_array)
        .is_some_and(|items| {
            items
                .iter()
                .any(|p| matches!(p.as_str(), Some("grpc" | "grpcs")))
        });
    let strip_given = object.get("strip_path").is_some_and(|v| !v.is_null());
    if grpc && !strip_given {
        object.insert("strip_path".into(), Value::Bool(false));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(input: Value) -> Vec<String> {
        match schema().validate(&input) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_route_needs_a_matcher() {
        assert_eq!(
            errors_of(json!({"name": "r"})),
            vec!["must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'"]
        );
        assert_eq!(
            errors_of(json!({"protocols": ["http"]})),
            vec![
                "must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'"
            ]
        );
    }

    #[test]
    fn paths_are_checked() {
        assert!(errors_of(json!({"paths": ["/anything", "~/users/(?<id>\\d+)$"]})).is_empty());
        assert_eq!(
            errors_of(json!({"paths": ["anything"]})),
            vec!["paths[0]: should start with: / (fixed path) or ~/ (regex path)"]
        );
        assert_eq!(
            errors_of(json!({"paths": ["/a/../b"]})),
            vec!["paths[0]: non-normalized path, consider use '/b' instead"]
        );
        assert_eq!(
            errors_of(json!({"paths": ["/a//b"]})),
            vec!["paths[0]: must not have empty segments"]
        );
        assert!(
            errors_of(json!({"paths": ["~/(unclosed"]}))[0].starts_with("paths[0]: invalid regex")
        );
    }

    #[test]
    fn hosts_and_wildcards() {
        assert!(errors_of(json!({"hosts": ["*.example.com", "example.*", "a.b:8000"]})).is_empty());
        assert_eq!(
            errors_of(json!({"hosts": ["a.*.com"]})),
            vec!["hosts[0]: invalid wildcard: must be placed at leftmost or rightmost label"]
        );
        assert_eq!(
            errors_of(json!({"hosts": ["*.a.*"]})),
            vec!["hosts[0]: invalid wildcard: must have at most one wildcard"]
        );
    }

    #[test]
    fn enums_and_headers() {
        assert_eq!(
            errors_of(json!({"paths": ["/"], "https_redirect_status_code": 300})),
            vec!["https_redirect_status_code: expected one of: 426, 301, 302, 307, 308"]
        );
        assert_eq!(
            errors_of(json!({"headers": {"Host": ["x"]}})),
            vec!["headers.Host: cannot contain 'host' header, which must be specified in the 'hosts' attribute"]
        );
        assert_eq!(
            errors_of(json!({"methods": ["get"]})),
            vec!["methods[0]: invalid value: get"]
        );
    }

    #[test]
    fn header_names_must_be_kong_header_names() {
        assert!(errors_of(json!({"headers": {"X-Version_2": ["v1"]}})).is_empty());
        assert_eq!(
            errors_of(json!({"headers": {"": ["v1"], "a\0b": ["v1"], "x y": ["v1"]}})),
            vec![
                "headers.: no header name provided",
                "headers.a\0b: bad header name 'a\\u{0}b', allowed characters are A-Z, a-z, 0-9, '_', and '-'",
                "headers.x y: bad header name 'x y', allowed characters are A-Z, a-z, 0-9, '_', and '-'",
            ]
        );
    }

    #[test]
    fn header_regex_values_must_compile() {
        assert!(errors_of(json!({"headers": {"x": ["~*^v[12]$", "(exact"]}})).is_empty());
        assert_eq!(
            errors_of(json!({"headers": {"x-version": ["v1", "~*("]}})),
            vec!["headers.x-version[1]: invalid regex: '(' (error: unclosed group)"]
        );
        // A bad name and a bad value are both reported (the router fuzz
        // target's first crash, fuzz/artifacts/router/crash-be01aa2d...).
        assert_eq!(
            errors_of(json!({"headers": {"": ["~*?"]}})),
            vec![
                "headers.: no header name provided",
                "headers.[0]: invalid regex: '?' (error: repetition operator missing expression)",
            ]
        );
    }

    #[test]
    fn regexes_are_held_to_the_routers_size_limit_and_flags() {
        let too_big = errors_of(json!({"paths": ["~/(a{1000}){1000}"]}));
        assert_eq!(
            too_big,
            vec!["paths[0]: invalid regex: '/(a{1000}){1000}' (Compiled regex exceeds size limit of 10485760 bytes.)"]
        );
        // Fits case-sensitively, but not with the `~*` case-insensitivity.
        assert!(errors_of(json!({"paths": ["~/k{60000}"]})).is_empty());
        assert_eq!(
            errors_of(json!({"headers": {"x": ["~*k{60000}"]}})),
            vec!["headers.x[0]: invalid regex: 'k{60000}' (Compiled regex exceeds size limit of 10485760 bytes.)"]
        );
    }

    #[test]
    fn host_ports_are_read_as_the_router_reads_them() {
        assert!(errors_of(json!({"hosts": ["[::1]:8000", "[::2]", "::3", "a.b:0"]})).is_empty());
        assert_eq!(
            errors_of(json!({"hosts": ["a.b:+80", "a.b:", "a.b:70000", "[::1]:x"]})),
            vec![
                "hosts[0]: invalid port number: +80",
                "hosts[1]: invalid port number: ",
                "hosts[2]: invalid port number: 70000",
                "hosts[3]: invalid port number: x",
            ]
        );
    }

    #[test]
    fn grpc_routes_do_not_strip() {
        let input = grpc_default_strip_path(&json!({"protocols": ["grpc"], "paths": ["/"]}));
        assert!(errors_of(input).is_empty());
        assert_eq!(
            errors_of(json!({"protocols": ["grpc"], "paths": ["/"], "strip_path": true})),
            vec!["strip_path: cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs'"]
        );
    }
}
