//! Request bodies: JSON, `application/x-www-form-urlencoded` and
//! `multipart/form-data` (text fields), as Kong's Admin API accepts them.
//!
//! Form keys follow Kong's conventions: `config.key_names` nests objects,
//! `paths[]` appends to an array, `paths[2]` sets a 1-based index and a
//! repeated key becomes an array. Form values are strings until
//! [`infer_types`] converts them with the entity's schema (integers,
//! booleans, one-element arrays, `""` meaning null), as Kong's
//! `arguments.infer_value` does.

use bytes::Bytes;
use schemas::schema::{Field, Record, Type};
use serde_json::{Map, Value};

use super::response::ApiError;

/// A parsed request body: always a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub value: Value,
    /// Came from a form: values are strings and need [`infer_types`].
    pub form: bool,
    /// A non-empty body was sent.
    pub present: bool,
    /// The JSON text itself, unparsed (`value` is then empty), for an
    /// endpoint that reads it as it goes (`POST /config`, see
    /// [`parse_deferred`]); empty otherwise.
    pub raw: Bytes,
}

impl Body {
    /// An empty object (no body sent).
    pub fn empty() -> Self {
        Self {
            value: Value::Object(Map::new()),
            form: false,
            present: false,
            raw: Bytes::new(),
        }
    }
}

/// Parse a body given its `Content-Type`.
///
/// An empty body declared as JSON is Kong's 400 `Cannot parse JSON body`
/// (`api_helpers.parse_params`); more than 1000 form fields are `Too many
/// arguments` (Kong's `lua_max_post_args`).
pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Body, ApiError> {
    let media = content_type
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        if media.starts_with("application/json") {
            return Err(ApiError::BadJson);
        }
        return Ok(Body::empty());
    }
    if media.starts_with("application/json") {
        return parse_json(bytes);
    }
    let value = if media.starts_with("application/x-www-form-urlencoded") {
        parse_urlencoded(bytes)?
    } else if media.starts_with("multipart/form-data") {
        parse_multipart(content_type.unwrap_or_default(), bytes)?
    } else {
        return Err(ApiError::UnsupportedMediaType);
    };
    Ok(Body {
        value,
        form: true,
        present: true,
        raw: Bytes::new(),
    })
}

/// [`parse_config`], except that a JSON body is kept as its text in
/// [`Body::raw`], for the endpoint to check and read: `POST /config`
/// reads gwctl's flat form entity by entity instead of as one tree.
pub fn parse_deferred(content_type: Option<&str>, bytes: Bytes) -> Result<Body, ApiError> {
    let json = content_type
        .is_some_and(|media| media.to_ascii_lowercase().starts_with("application/json"));
    if !json || bytes.iter().all(u8::is_ascii_whitespace) {
        return parse_config(content_type, &bytes);
    }
    Ok(Body {
        value: Value::Object(Map::new()),
        form: false,
        present: true,
        raw: bytes,
    })
}

/// Parse a `POST /config` body: JSON and forms as [`parse`] does; any
/// other type (`application/yaml`, none) is the declarative file itself,
/// given as `{"config": text}` (Kong reads the raw body when `config` is
/// absent).
pub fn parse_config(content_type: Option<&str>, bytes: &[u8]) -> Result<Body, ApiError> {
    match parse(content_type, bytes) {
        Err(ApiError::UnsupportedMediaType) => {
            let text = std::str::from_utf8(bytes).map_err(|_| {
                ApiError::BadRequest("the declarative configuration must be UTF-8".to_owned())
            })?;
            Ok(Body {
                value: serde_json::json!({ "config": text }),
                form: false,
                present: true,
                raw: Bytes::new(),
            })
        }
        parsed => parsed,
    }
}

fn parse_json(bytes: &[u8]) -> Result<Body, ApiError> {
    match serde_json::from_slice(bytes) {
        Ok(value @ Value::Object(_)) => Ok(Body {
            value,
            form: false,
            present: true,
            raw: Bytes::new(),
        }),
        _ => Err(ApiError::BadJson),
    }
}

fn parse_urlencoded(bytes: &[u8]) -> Result<Value, ApiError> {
    let mut root = Map::new();
    for (count, (key, value)) in form_urlencoded::parse(bytes).enumerate() {
        if count >= super::MAX_ARGUMENTS {
            return Err(too_many_arguments());
        }
        insert_form_value(&mut root, &key, value.into_owned())?;
    }
    Ok(Value::Object(root))
}

fn too_many_arguments() -> ApiError {
    ApiError::BadRequest("Too many arguments".to_owned())
}

/// The deepest form key accepted (`a.b[1].c` is 4 steps deep).
const MAX_FORM_KEY_DEPTH: usize = 16;
/// The largest array index a form key may name (`paths[1000]`).
const MAX_FORM_INDEX: usize = 1000;

/// One step of a form key: `config.key_names[2]` → `config`, `key_names`, 2.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    /// A 1-based index, or `None` for `[]` (append).
    Index(Option<usize>),
}

fn key_steps(key: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for part in key.split('.') {
        let (name, indexes) = match part.find('[') {
            Some(open) if open > 0 && part.ends_with(']') => part.split_at(open),
            _ => (part, ""),
        };
        steps.push(Step::Key(name.to_owned()));
        for index in indexes.split(']').filter(|chunk| chunk.starts_with('[')) {
            let digits = &index[1..];
            steps.push(Step::Index(digits.parse().ok().filter(|n: &usize| *n > 0)));
        }
    }
    steps
}

/// Put `value` at the place a form key names, creating objects and arrays.
/// Keys too deep or indexes too large are refused (they would cost deep
/// recursion or huge arrays).
fn insert_form_value(
    root: &mut Map<String, Value>,
    key: &str,
    value: String,
) -> Result<(), ApiError> {
    let steps = key_steps(key);
    let huge_index = steps
        .iter()
        .any(|step| matches!(step, Step::Index(Some(index)) if *index > MAX_FORM_INDEX));
    if steps.len() > MAX_FORM_KEY_DEPTH || huge_index {
        return Err(ApiError::BadRequest(format!(
            "form key too deep or index too large (at most {MAX_FORM_KEY_DEPTH} levels, index {MAX_FORM_INDEX})"
        )));
    }
    if let Some((Step::Key(first), rest)) = steps.split_first() {
        let slot = root.entry(first.clone()).or_insert(Value::Null);
        place(slot, rest, Value::String(value));
    }
    Ok(())
}

fn place(slot: &mut Value, steps: &[Step], value: Value) {
    let Some((step, rest)) = steps.split_first() else {
        assign_leaf(slot, value);
        return;
    };
    match step {
        Step::Key(name) => {
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Some(object) = slot.as_object_mut() {
                place(
                    object.entry(name.clone()).or_insert(Value::Null),
                    rest,
                    value,
                );
            }
        }
        Step::Index(index) => {
            if !slot.is_array() {
                *slot = Value::Array(Vec::new());
            }
            if let Some(items) = slot.as_array_mut() {
                let position = index.map_or(items.len(), |one_based| one_based - 1);
                if items.len() <= position {
                    items.resize(position + 1, Value::Null);
                }
                place(&mut items[position], rest, value);
            }
        }
    }
}

/// A repeated plain key (`paths=/a&paths=/b`) collects into an array.
fn assign_leaf(slot: &mut Value, value: Value) {
    match slot {
        Value::Null => *slot = value,
        Value::Array(items) => items.push(value),
        Value::String(_) => {
            let first = std::mem::take(slot);
            *slot = Value::Array(vec![first, value]);
        }
        _ => *slot = value,
    }
}

/// Parse the text fields of a `multipart/form-data` body.
fn parse_multipart(content_type: &str, bytes: &[u8]) -> Result<Value, ApiError> {
    let boundary = media_parameter(content_type, "boundary")
        .ok_or_else(|| ApiError::BadRequest("multipart body without a boundary".to_owned()))?;
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::BadRequest("multipart fields must be UTF-8 text".to_owned()))?;
    let delimiter = format!("--{boundary}");
    let mut root = Map::new();
    for (count, part) in text.split(delimiter.as_str()).skip(1).enumerate() {
        if count >= super::MAX_ARGUMENTS {
            return Err(too_many_arguments());
        }
        if part.starts_with("--") {
            break;
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let Some((headers, content)) = part.split_once("\r\n\r\n") else {
            return Err(ApiError::BadRequest("malformed multipart body".to_owned()));
        };
        let content = content.strip_suffix("\r\n").unwrap_or(content);
        let name = field_name(headers)
            .ok_or_else(|| ApiError::BadRequest("multipart part without a name".to_owned()))?;
        insert_form_value(&mut root, &name, content.to_owned())?;
    }
    Ok(Value::Object(root))
}

/// A parameter of a media type or header value, e.g. `boundary=xyz`.
fn media_parameter(header: &str, wanted: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case(wanted)
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The `name` of a part from its `Content-Disposition` header.
fn field_name(headers: &str) -> Option<String> {
    headers
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-disposition"))
        .and_then(|(_, value)| media_parameter(value, "name"))
}

/// Convert form strings to the types `record` expects. Unknown fields are
/// left alone (validation reports them).
pub fn infer_types(value: Value, record: &Record) -> Value {
    match value {
        Value::Object(object) => {
            let inferred = object
                .into_iter()
                .map(|(key, value)| {
                    let converted = match record.field(&key) {
                        Some(field) => infer_field(value, field),
                        None => value,
                    };
                    (key, converted)
                })
                .collect();
            Value::Object(inferred)
        }
        other => other,
    }
}

fn infer_field(value: Value, field: &Field) -> Value {
    if value.as_str() == Some("") {
        return Value::Null;
    }
    match (&field.ty, value) {
        (Type::Integer | Type::Number, Value::String(text)) => {
            number_of(&text).unwrap_or(Value::String(text))
        }
        (Type::Boolean, Value::String(text)) => match text.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(text),
        },
        (Type::Array(item) | Type::Set(item), Value::String(text)) => {
            Value::Array(vec![infer_field(Value::String(text), item)])
        }
        (Type::Array(item) | Type::Set(item), Value::Array(items)) => Value::Array(
            items
                .into_iter()
                .map(|entry| infer_field(entry, item))
                .collect(),
        ),
        (Type::Map(item), Value::Object(entries)) => Value::Object(
            entries
                .into_iter()
                .map(|(key, entry)| (key, infer_field(entry, item)))
                .collect(),
        ),
        (Type::Record(record), value @ Value::Object(_)) => infer_types(value, record),
        (_, value) => value,
    }
}

fn number_of(text: &str) -> Option<Value> {
    if let Ok(integer) = text.trim().parse::<i64>() {
        return Some(Value::from(integer));
    }
    let float: f64 = text.trim().parse().ok()?;
    serde_json::Number::from_f64(float).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::EntityKind;
    use serde_json::json;

    fn form(text: &str) -> Value {
        parse(Some("application/x-www-form-urlencoded"), text.as_bytes())
            .expect("form")
            .value
    }

    #[test]
    fn json_bodies() {
        let body = parse(Some("application/json; charset=utf-8"), br#"{"name":"a"}"#).unwrap();
        assert_eq!(body.value, json!({"name": "a"}));
        assert!(body.present && !body.form);
        assert!(matches!(
            parse(Some("application/json"), b"{nope"),
            Err(ApiError::BadJson)
        ));
        assert!(matches!(
            parse(Some("application/json"), b"[1]"),
            Err(ApiError::BadJson)
        ));
        assert!(matches!(
            parse(Some("application/json"), b""),
            Err(ApiError::BadJson)
        ));
        assert_eq!(parse(None, b"").unwrap(), Body::empty());
        assert!(matches!(
            parse(Some("text/plain"), b"x"),
            Err(ApiError::UnsupportedMediaType)
        ));
        assert!(matches!(
            parse(None, b"x"),
            Err(ApiError::UnsupportedMediaType)
        ));
    }

    #[test]
    fn form_keys_nest_and_collect() {
        assert_eq!(
            form("name=key-auth&config.key_names=apikey&config.hide_credentials=true"),
            json!({"name": "key-auth", "config": {"key_names": "apikey", "hide_credentials": "true"}})
        );
        assert_eq!(
            form("paths[]=/a&paths[]=/b"),
            json!({"paths": ["/a", "/b"]})
        );
        assert_eq!(
            form("paths[2]=/b&paths[1]=/a"),
            json!({"paths": ["/a", "/b"]})
        );
        assert_eq!(form("hosts=a&hosts=b"), json!({"hosts": ["a", "b"]}));
        let form_body =
            |text: &str| parse(Some("application/x-www-form-urlencoded"), text.as_bytes());
        assert!(form_body("paths[100000000]=/x").is_err());
        assert!(form_body(&format!("{}=1", vec!["a"; 100].join("."))).is_err());
        assert_eq!(form("service.id=x"), json!({"service": {"id": "x"}}));
        assert_eq!(form("headers.x-a=1"), json!({"headers": {"x-a": "1"}}));
    }

    #[test]
    fn form_values_take_schema_types() {
        let route = infer_types(
            form("paths=/a&strip_path=false&regex_priority=3&headers.x-a=1&methods=GET&name="),
            EntityKind::Route.schema(),
        );
        assert_eq!(
            route,
            json!({"paths": ["/a"], "strip_path": false, "regex_priority": 3,
                "headers": {"x-a": ["1"]}, "methods": ["GET"], "name": null})
        );
        let record = schemas::entities::plugin_record("key-auth").unwrap();
        let plugin = infer_types(
            form("name=key-auth&config.key_names=k&config.key_in_body=true"),
            record,
        );
        assert_eq!(
            plugin["config"],
            json!({"key_names": ["k"], "key_in_body": true})
        );
        let bad = infer_types(form("port=eighty"), EntityKind::Service.schema());
        assert_eq!(bad["port"], "eighty");
    }

    #[test]
    fn multipart_text_fields() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nsvc\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"tags[]\"\r\n\r\nt1\r\n--XyZ--\r\n";
        let parsed = parse(Some("multipart/form-data; boundary=XyZ"), body.as_bytes()).unwrap();
        assert_eq!(parsed.value, json!({"name": "svc", "tags": ["t1"]}));
        assert!(parsed.form);
        assert!(parse(Some("multipart/form-data"), body.as_bytes()).is_err());
    }
}
