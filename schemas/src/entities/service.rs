//! The Service entity (Kong 3.x `services`), including the `url` shorthand.
//!
//! `client_certificate` and `ca_certificates` name certificate entities,
//! which this gateway does not have: a service naming one would be stored
//! and the certificate never presented nor used. Both are refused, in
//! files and in the Admin API alike, until certificates exist. decK writes
//! `client_certificate` as a plain id string, Kong's Admin API as `{id}`;
//! both forms are read.

use serde_json::{json, Map, Value};

use super::EntityDescriptor;
use crate::error::{FieldError, FieldPath};
use crate::schema::{Check, Field, Record, Type};
use crate::typedefs;

/// Services (Kong's `services`, endpoint key `name`).
pub const DESCRIPTOR: EntityDescriptor = EntityDescriptor {
    collection: "services",
    admin_path: "services",
    deck_kind: "service",
    nested_path: "services",
    endpoint_key: "name",
    unique: &["name"],
    display_names: &["name"],
    references: &[],
    generated: &[],
    schema,
    entity_checks,
};

/// Kong's declaration of the service's record checks: no `path` for
/// stream and gRPC protocols, no TLS settings unless the protocol is
/// `https` or `tls`.
fn entity_checks() -> Value {
    let not_tls = json!({"not_one_of": ["https", "tls"]});
    let eq_null = json!({"eq": null});
    let mut checks = vec![json!({"conditional": {
        "if_field": "protocol",
        "if_match": {"one_of": ["tcp", "tls", "udp", "grpc", "grpcs"]},
        "then_field": "path", "then_match": eq_null}})];
    for field in [
        "client_certificate",
        "tls_verify",
        "tls_verify_depth",
        "ca_certificates",
    ] {
        checks.push(
            json!({"conditional": {"if_field": "protocol", "if_match": not_tls,
            "then_field": field, "then_match": eq_null}}),
        );
    }
    Value::Array(checks)
}

const TIMEOUT_MAX: i64 = 2_147_483_646;

pub fn schema() -> Record {
    Record::new(vec![
        typedefs::id(),
        typedefs::created_at(),
        typedefs::updated_at(),
        typedefs::utf8_name("name"),
        Field::integer("retries")
            .default(json!(5))
            .between(0, 32767),
        Field::string("protocol")
            .required()
            .default(json!("http"))
            .one_of(typedefs::PROTOCOLS),
        Field::string("host")
            .required()
            .custom(typedefs::check_host),
        Field::integer("port")
            .required()
            .default(json!(80))
            .between(0, 65535),
        Field::string("path").custom(typedefs::check_path),
        timeout("connect_timeout"),
        timeout("write_timeout"),
        timeout("read_timeout"),
        typedefs::tags(),
        Field::foreign("client_certificate", "certificates").custom(no_client_certificates),
        Field::boolean("tls_verify"),
        Field::integer("tls_verify_depth").between(0, 64),
        Field::set(
            "ca_certificates",
            Field::item(Type::String).check(Check::Uuid),
        )
        .custom(no_ca_certificates),
        Field::boolean("enabled").required().default(json!(true)),
    ])
    .with_check(path_only_for_http)
    .with_check(tls_fields_only_for_tls)
}

fn no_client_certificates(_: &Value) -> Result<(), String> {
    Err(
        "client certificates are not supported by this gateway (it has no certificates \
         to present to the upstream); remove client_certificate"
            .to_owned(),
    )
}

fn no_ca_certificates(_: &Value) -> Result<(), String> {
    Err(
        "CA certificates are not supported by this gateway (it has no ca_certificates \
         to verify the upstream with); remove ca_certificates"
            .to_owned(),
    )
}

fn timeout(name: &'static str) -> Field {
    Field::integer(name)
        .default(json!(60000))
        .between(1, TIMEOUT_MAX)
}

fn protocol(record: &Map<String, Value>) -> &str {
    record
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("http")
}

fn path_only_for_http(record: &Map<String, Value>) -> Vec<FieldError> {
    let protocol = protocol(record);
    let stream_like = matches!(
        protocol,
        "tcp" | "tls" | "udp" | "grpc" | "grpcs" | "tls_passthrough"
    );
    if stream_like && crate::schema::is_present(record, "path") {
        return vec![FieldError::new(
            FieldPath::root().key("path"),
            format!("value must be null when 'protocol' is '{protocol}'"),
        )];
    }
    Vec::new()
}

fn tls_fields_only_for_tls(record: &Map<String, Value>) -> Vec<FieldError> {
    let protocol = protocol(record);
    if matches!(protocol, "https" | "tls" | "grpcs") {
        return Vec::new();
    }
    [
        "tls_verify",
        "tls_verify_depth",
        "ca_certificates",
        "client_certificate",
    ]
    .into_iter()
    .filter(|field| crate::schema::is_present(record, field))
    .map(|field| {
        FieldError::new(
            FieldPath::root().key(field),
            format!("value must be null when 'protocol' is '{protocol}'"),
        )
    })
    .collect()
}

/// Expand the input's shorthands: decK's plain-id `client_certificate`
/// becomes `{id}`, and `url` becomes protocol, host, port and path.
pub fn expand_shorthands(input: &Value) -> Result<Value, FieldError> {
    match input.get("client_certificate") {
        Some(Value::String(id)) => {
            let mut object = input.as_object().cloned().unwrap_or_default();
            object.insert("client_certificate".into(), json!({ "id": id }));
            expand_url(&Value::Object(object))
        }
        _ => expand_url(input),
    }
}

/// Expand the write-only `url` shorthand into protocol, host, port and path.
/// Fields given explicitly beside `url` win, as in decK. A `url` without a
/// scheme is all path, as Kong's parser reads it (`invalid url` → `host:
/// required field missing`, `path: should start with: /`).
pub fn expand_url(input: &Value) -> Result<Value, FieldError> {
    let Some(object) = input.as_object() else {
        return Ok(input.clone());
    };
    let Some(url_value) = object.get("url") else {
        return Ok(input.clone());
    };
    let url_path = FieldPath::root().key("url");
    let Some(url_text) = url_value.as_str() else {
        return Err(FieldError::new(url_path, "expected a string"));
    };
    if matches!(
        url::Url::parse(url_text),
        Err(url::ParseError::RelativeUrlWithoutBase)
    ) {
        // No scheme: Kong's URL parser reads it all as the path, so the
        // path rule and the missing host are what is reported.
        let mut expanded = object.clone();
        expanded.remove("url");
        let explicit = expanded.get("path").is_some_and(|given| !given.is_null());
        if !explicit {
            expanded.insert("path".into(), Value::from(url_text));
        }
        return Ok(Value::Object(expanded));
    }
    let parsed = url::Url::parse(url_text).map_err(|error| {
        FieldError::new(
            url_path.clone(),
            format!("invalid url '{url_text}': {error}"),
        )
    })?;
    let host = parsed.host_str().ok_or_else(|| {
        FieldError::new(
            url_path.clone(),
            format!("missing host in url '{url_text}'"),
        )
    })?;
    let scheme = parsed.scheme().to_owned();
    let default_port = if matches!(scheme.as_str(), "https" | "grpcs" | "tls") {
        443
    } else {
        80
    };
    let mut from_url = Map::new();
    from_url.insert("protocol".into(), Value::from(scheme));
    from_url.insert("host".into(), Value::from(host));
    from_url.insert(
        "port".into(),
        Value::from(parsed.port().unwrap_or(default_port)),
    );
    let path = parsed.path();
    if !(path.is_empty() || path == "/" && !url_text.ends_with('/')) {
        from_url.insert("path".into(), Value::from(path));
    }
    let mut expanded = object.clone();
    expanded.remove("url");
    for (key, value) in from_url {
        let explicit = expanded.get(&key).is_some_and(|given| !given.is_null());
        if !explicit {
            expanded.insert(key, value);
        }
    }
    Ok(Value::Object(expanded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_shorthand_fills_fields() {
        let expanded = expand_url(&json!({"name": "s", "url": "https://example.com/v1"})).unwrap();
        assert_eq!(
            expanded,
            json!({"name": "s", "protocol": "https", "host": "example.com", "port": 443, "path": "/v1"})
        );
        let local = expand_url(&json!({"url": "http://127.0.0.1:9000"})).unwrap();
        assert_eq!(local["port"], 9000);
        assert!(local.get("path").is_none());
        let slash = expand_url(&json!({"url": "https://h/"})).unwrap();
        assert_eq!(slash["path"], "/");
    }

    #[test]
    fn certificates_are_refused_in_both_forms() {
        let id = "5f3b3c42-8bd2-4c3a-9a4e-0c6a1e1d2b01";
        for form in [json!(id), json!({ "id": id })] {
            let input = json!({"host": "h", "protocol": "https", "client_certificate": form});
            let expanded = expand_shorthands(&input).unwrap();
            let errors = schema().validate(&expanded).unwrap_err();
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].path.to_string(), "client_certificate");
            assert!(errors[0].message.contains("not supported by this gateway"));
        }
        let input = json!({"host": "h", "protocol": "https", "ca_certificates": [id]});
        let errors = schema().validate(&input).unwrap_err();
        assert_eq!(errors[0].path.to_string(), "ca_certificates");
        assert!(errors[0].message.contains("not supported by this gateway"));
    }

    #[test]
    fn explicit_fields_beat_the_url() {
        let expanded = expand_url(&json!({"url": "http://a:1/x", "port": 2})).unwrap();
        assert_eq!(expanded["port"], 2);
    }
}
