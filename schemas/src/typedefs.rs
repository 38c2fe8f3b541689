//! Field definitions and validators shared by entities and plugin configs
//! (Kong's `typedefs`): ids, timestamps, tags, names, hosts and paths, and
//! [`Generated`] fields.

use once_cell::sync::Lazy;
use regex::Regex;
use serde_json::Value;

use crate::schema::{pattern, Check, Field, Type};

/// A field the server fills when the input leaves it out, e.g. a key-auth
/// `key`; an update keeps the stored value.
#[derive(Debug, Clone, Copy)]
pub struct Generated {
    /// The field name.
    pub field: &'static str,
    /// Makes a fresh value.
    pub make: fn() -> String,
}

/// Every protocol a service or route may name (Kong's `typedefs.protocol`).
pub const PROTOCOLS: &[&str] = &[
    "grpc",
    "grpcs",
    "http",
    "https",
    "tcp",
    "tls",
    "tls_passthrough",
    "udp",
];

/// `bytes` random bytes in base64, with the characters in `replaced` swapped
/// for random letters and digits: how Kong makes credential keys and
/// session secrets that are safe in headers and URLs.
pub fn random_token(bytes: usize, replaced: &[char]) -> String {
    use base64::Engine;
    use rand::{Rng, RngCore};
    const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let mut random = vec![0u8; bytes];
    rng.fill_bytes(&mut random);
    base64::engine::general_purpose::STANDARD
        .encode(random)
        .chars()
        .map(|c| {
            if replaced.contains(&c) {
                ALPHANUMERIC[rng.gen_range(0..ALPHANUMERIC.len())] as char
            } else {
                c
            }
        })
        .collect()
}

pub fn id() -> Field {
    Field::string("id").check(Check::Uuid).auto()
}

pub fn created_at() -> Field {
    Field::integer("created_at").auto()
}

pub fn updated_at() -> Field {
    Field::integer("updated_at").auto()
}

pub fn tags() -> Field {
    Field::set("tags", Field::item(Type::String).custom(check_tag))
}

/// Kong's `utf8_name`: service, route and plugin instance names.
pub fn utf8_name(name: &'static str) -> Field {
    Field::string(name).custom(check_utf8_name)
}

fn check_tag(value: &Value) -> Result<(), String> {
    let tag = value.as_str().unwrap_or_default();
    let bad = tag.chars().any(|c| c == ',' || c == '/' || c.is_control());
    if bad {
        return Err(format!(
            "invalid tag '{tag}': expected printable ascii (except `,` and `/`) or valid utf-8 sequences"
        ));
    }
    Ok(())
}

fn check_utf8_name(value: &Value) -> Result<(), String> {
    let name = value.as_str().unwrap_or_default();
    let allowed =
        |c: char| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '~') || !c.is_ascii();
    if name.chars().all(allowed) {
        Ok(())
    } else {
        Err(format!(
            "invalid value '{name}': it must only contain alphanumeric and '., -, _, ~' characters"
        ))
    }
}

static HOSTNAME: Lazy<Regex> = Lazy::new(|| {
    pattern(
        r"^(?i)[a-z0-9_]([a-z0-9_-]{0,62}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,62}[a-z0-9_])?)*\.?$",
    )
});

/// A hostname or IP address without a port.
pub fn check_host(value: &Value) -> Result<(), String> {
    let host = value.as_str().unwrap_or_default();
    if is_host(host) {
        Ok(())
    } else {
        Err(format!("invalid hostname: {host}"))
    }
}

/// A route's SNI as Kong's `typedefs.wildcard_host` allows it: one `*`,
/// leftmost or rightmost (`*.example.test`, `example.*`), then a name that
/// is not an IP and has no port.
pub fn check_wildcard_sni(value: &Value) -> Result<(), String> {
    let sni = value.as_str().unwrap_or_default();
    let stars = sni.matches('*').count();
    if stars > 0 {
        let leftmost_or_rightmost = sni.starts_with('*') || sni.ends_with('*');
        if !leftmost_or_rightmost {
            return Err("wildcard must be leftmost or rightmost character".to_owned());
        }
        if stars > 1 {
            return Err("only one wildcard must be specified".to_owned());
        }
    }
    let name = sni.replace('*', "wildcard");
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err("must not be an IP".to_owned());
    }
    if let Some((_, port)) = name.rsplit_once(':') {
        if port.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err("must not have a port".to_owned());
        }
    }
    if name.len() > 253 || !HOSTNAME.is_match(&name) {
        return Err(format!("invalid value: {sni}"));
    }
    Ok(())
}

pub fn is_host(host: &str) -> bool {
    let bracketed = host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'));
    let ip_text = bracketed.unwrap_or(host);
    ip_text.parse::<std::net::IpAddr>().is_ok() || (host.len() <= 253 && HOSTNAME.is_match(host))
}

/// A header name as Kong's key_names and trigger fields allow.
pub fn header_name_check() -> Check {
    Check::Pattern(
        pattern(r"^[a-zA-Z0-9\-_]+$"),
        "bad header name '%s', allowed characters are A-Z, a-z, 0-9, '_', and '-'",
    )
}

/// Characters RFC 3986 allows in a path (unreserved, sub-delims, `:`, `@`,
/// `/` and percent-escapes).
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%".contains(c)
}

/// Kong's `typedefs.path` for a service path: starts with `/`, no empty
/// segments, RFC 3986 characters and valid percent-encoding.
pub fn check_path(value: &Value) -> Result<(), String> {
    let path = value.as_str().unwrap_or_default();
    if !path.starts_with('/') {
        return Err("should start with: /".to_owned());
    }
    if path.contains("//") {
        return Err("must not have empty segments".to_owned());
    }
    if !path.chars().all(is_path_char) {
        return Err(format!(
            "invalid path: '{path}' (characters outside of the reserved list of RFC 3986 found)"
        ));
    }
    check_percent_encoding(path)
}

pub fn check_percent_encoding(path: &str) -> Result<(), String> {
    let bytes = path.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3);
            let valid = hex.is_some_and(|pair| pair.iter().all(u8::is_ascii_hexdigit));
            if !valid {
                return Err(format!("invalid url-encoded value: '{}'", &path[index..]));
            }
            index += 3;
        } else {
            index += 1;
        }
    }
    Ok(())
}
