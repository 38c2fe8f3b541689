//! Secrets in output: which fields are secret, masking them in diffs, and
//! the `--sanitize` marker of dumps that `sync` refuses.
//!
//! A field is secret when its schema says so ([`Record::secret_fields`]):
//! a credential's `key`, the session plugin's `config.secret`, and whatever
//! later schemas mark. Diffs show `[masked]` in their place.
//!
//! `dump --sanitize` replaces each secret with `[sanitized:<16 hex>]`, a
//! keyed hash (the key is random per run, so the hash tells nothing about
//! the secret, while equal secrets within one dump stay equal). Any string
//! of that shape in a file makes `sync` stop before it sends anything.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use schemas::schema::Record;
use schemas::EntityKind;
use serde_json::Value;

/// What a secret value is shown as in diffs.
pub const MASK: &str = "[masked]";
const SANITIZED_PREFIX: &str = "[sanitized:";
const SANITIZED_HASH_LEN: usize = 16;

/// Dotted paths (`key`, `config.secret`) of the secret fields of `entity`.
pub fn secret_paths(kind: EntityKind, entity: &Value) -> Vec<String> {
    kind.record_for(entity)
        .map(Record::secret_fields)
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Whether the field at `path` is, or is inside, one of `secrets`.
pub fn is_secret_path(path: &str, secrets: &[String]) -> bool {
    secrets.iter().any(|secret| {
        path == secret
            || path
                .strip_prefix(secret.as_str())
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    })
}

/// `value`, or [`MASK`] in its place when it is set.
pub fn mask(value: &Value) -> Value {
    if value.is_null() {
        Value::Null
    } else {
        Value::String(MASK.to_owned())
    }
}

/// The values of the `DECK_*` variables substituted into the files, to be
/// shown as [`MASK`] wherever they appear in a diff (decK's
/// `--no-mask-deck-env-vars-value` turns that off).
#[derive(Debug, Clone, Default)]
pub struct EnvValues {
    /// Non-empty values, longest first: a value that contains another is
    /// masked whole.
    values: Vec<String>,
}

impl EnvValues {
    pub fn new(values: &[String]) -> Self {
        let mut values: Vec<String> = values.iter().filter(|v| !v.is_empty()).cloned().collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Self { values }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Mask the values in `value`: inside strings wherever they occur (a
    /// host in a longer URL too), numbers and booleans when they are one
    /// of the values (`port: ${{ env "DECK_PORT" }}` reads as a number).
    pub fn mask(&self, value: &mut Value) {
        match value {
            Value::String(text) => {
                for secret in &self.values {
                    if text.contains(secret.as_str()) {
                        *text = text.replace(secret.as_str(), MASK);
                    }
                }
            }
            Value::Number(_) | Value::Bool(_) => {
                let text = value.to_string();
                if self.values.contains(&text) {
                    *value = Value::String(MASK.to_owned());
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.mask(item)),
            Value::Object(members) => members.values_mut().for_each(|member| self.mask(member)),
            Value::Null => {}
        }
    }
}

/// Replaces secrets with `[sanitized:<hash>]`; one per dump.
#[derive(Debug, Default)]
pub struct Sanitizer {
    keys: RandomState,
}

impl Sanitizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The marker for one secret value.
    pub fn marker(&self, secret: &Value) -> Value {
        let hash = self.keys.hash_one(secret.to_string());
        Value::String(format!("{SANITIZED_PREFIX}{hash:016x}]"))
    }

    /// `entity` with every set secret field replaced by its marker.
    pub fn sanitize(&self, kind: EntityKind, entity: &mut Value) {
        for path in secret_paths(kind, entity) {
            let pointer = format!("/{}", path.replace('.', "/"));
            if let Some(field) = entity.pointer_mut(&pointer) {
                if !field.is_null() {
                    *field = self.marker(field);
                }
            }
        }
    }
}

/// Whether `text` is a marker written by `dump --sanitize`.
pub fn is_sanitized(text: &str) -> bool {
    let Some(rest) = text.strip_prefix(SANITIZED_PREFIX) else {
        return false;
    };
    let Some(hash) = rest.strip_suffix(']') else {
        return false;
    };
    hash.len() == SANITIZED_HASH_LEN && hash.chars().all(|c| c.is_ascii_hexdigit())
}

/// The path (keys and indexes) of the first sanitized marker in `value`.
pub fn find_sanitized(value: &Value) -> Option<Vec<schemas::PathSeg>> {
    match value {
        Value::String(text) if is_sanitized(text) => Some(Vec::new()),
        Value::Object(object) => object.iter().find_map(|(key, member)| {
            let mut path = find_sanitized(member)?;
            path.insert(0, schemas::PathSeg::Key(key.clone()));
            Some(path)
        }),
        Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            let mut path = find_sanitized(item)?;
            path.insert(0, schemas::PathSeg::Index(index));
            Some(path)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schemas_say_what_is_secret() {
        let credential = json!({"key": "k"});
        assert_eq!(
            secret_paths(EntityKind::KeyAuthCredential, &credential),
            vec!["key"]
        );
        let session = json!({"name": "session", "config": {}});
        assert_eq!(
            secret_paths(EntityKind::Plugin, &session),
            vec!["config.secret"]
        );
        let service = json!({"name": "s"});
        assert!(secret_paths(EntityKind::Service, &service).is_empty());
    }

    #[test]
    fn secret_paths_cover_what_is_inside_them() {
        let secrets = vec!["config.secret".to_owned()];
        assert!(is_secret_path("config.secret", &secrets));
        assert!(is_secret_path("config.secret.part", &secrets));
        assert!(!is_secret_path("config.secretive", &secrets));
        assert!(!is_secret_path("config", &secrets));
    }

    #[test]
    fn sanitized_markers_are_recognised_and_stable_within_a_dump() {
        let sanitizer = Sanitizer::new();
        let mut first = json!({"key": "hello_world", "consumer": {"id": "c"}});
        let mut second = first.clone();
        sanitizer.sanitize(EntityKind::KeyAuthCredential, &mut first);
        sanitizer.sanitize(EntityKind::KeyAuthCredential, &mut second);
        assert_eq!(first, second);
        let marker = first["key"].as_str().unwrap();
        assert!(is_sanitized(marker), "{marker}");
        assert!(!marker.contains("hello"));
        assert!(!is_sanitized("[sanitized:xyz]"));
        let document = json!({"consumers": [{"keyauth_credentials": [first]}]});
        let path = find_sanitized(&document).unwrap();
        assert_eq!(
            schemas::FieldPath(path).to_string(),
            "consumers[0].keyauth_credentials[0].key"
        );
        assert_eq!(find_sanitized(&json!({"key": "plain"})), None);
    }

    #[test]
    fn env_values_are_masked_inside_strings_numbers_and_lists() {
        let values = EnvValues::new(&["upstream.internal".into(), "9000".into(), String::new()]);
        let mut value = json!({"host": "upstream.internal", "port": 9000, "retries": 5,
            "url": "http://upstream.internal:9000/x", "hosts": ["a.upstream.internal"]});
        values.mask(&mut value);
        assert_eq!(
            value,
            json!({"host": MASK, "port": MASK, "retries": 5,
                "url": "http://[masked]:[masked]/x", "hosts": ["a.[masked]"]})
        );
        let longest_first = EnvValues::new(&["abc".into(), "abcdef".into()]);
        let mut text = json!("xabcdefx abc");
        longest_first.mask(&mut text);
        assert_eq!(text, json!("x[masked]x [masked]"));
        assert!(EnvValues::new(&[String::new()]).is_empty());
    }

    #[test]
    fn masks_hide_set_values_only() {
        assert_eq!(mask(&json!("s3cret")), json!(MASK));
        assert_eq!(mask(&Value::Null), Value::Null);
    }
}
