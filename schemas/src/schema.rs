//! The schema engine: field types, defaults and rules, and the validator that
//! turns raw JSON into the canonical form.
//!
//! Schemas are data, as Kong's Lua schemas are: a [`Record`] lists its
//! [`Field`]s, each with a [`Type`], a default and [`Check`]s, plus
//! record-level checks. One engine then serves the Admin API (400 schema
//! violations), `gwctl validate` (positioned messages), `GET /schemas/...`
//! and `gwctl dump` (which leaves defaults out).
//!
//! The canonical form is what [`Record::validate`] returns: every field of
//! the schema present in schema order, defaults filled, unset optional fields
//! `null`, and sets deduplicated in the order given (Kong's `set` keeps the
//! first of each value, in order: a reorder is a change, as in Kong).
//! Validating a canonical value again returns it unchanged.
//!
//! Defaults fill absent fields only, as Kong's `process_auto_fields` does:
//! an explicit `null` for a required field is `required field missing`
//! even when the field has a default. A foreign key given as a record
//! without an id has its other fields checked against the referenced
//! entity's schema (Kong's `service.protocol: ...`), then `missing primary
//! key`.

use regex::Regex;
use serde_json::{Map, Number, Value};

use crate::error::{FieldError, FieldPath};

/// A record-level rule, run on the filled record when all its fields are
/// individually valid. Returns the problems found (paths relative to the
/// record).
pub type RecordCheck = fn(&Map<String, Value>) -> Vec<FieldError>;

/// A field-level rule beyond the type. Returns Kong's message on failure.
pub type CustomCheck = fn(&Value) -> Result<(), String>;

/// The shape of a field's value.
#[derive(Debug, Clone)]
pub enum Type {
    String,
    Integer,
    Number,
    Boolean,
    /// An ordered list.
    Array(Box<Field>),
    /// A list compared as a set: canonical form is sorted and deduplicated.
    Set(Box<Field>),
    /// String keys to values of one type.
    Map(Box<Field>),
    Record(Record),
    /// A reference to another entity, canonical `{"id": "<uuid>"}`.
    Foreign(&'static str),
}

/// Extra rules on a field's value.
#[derive(Debug, Clone)]
pub enum Check {
    OneOf(Vec<&'static str>),
    Between(i64, i64),
    /// The string must match; the message is Kong's text for this field.
    Pattern(Regex, &'static str),
    LenMin(usize),
    Uuid,
    Custom(CustomCheck),
    /// A rule for every key of a map, each failure reported at its key
    /// (`headers.X-Bad`). Runs even when some values are invalid.
    Keys(CustomCheck),
}

/// One field of a record.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub ty: Type,
    pub required: bool,
    pub default: Option<Value>,
    pub checks: Vec<Check>,
    /// Filled by the store (ids, timestamps), never a user error when absent.
    pub auto: bool,
    /// A secret: masked in `gwctl` output unless asked for.
    pub secret: bool,
}

impl Field {
    pub fn new(name: &'static str, ty: Type) -> Self {
        Self {
            name,
            ty,
            required: false,
            default: None,
            checks: Vec::new(),
            auto: false,
            secret: false,
        }
    }

    pub fn string(name: &'static str) -> Self {
        Self::new(name, Type::String)
    }
    pub fn integer(name: &'static str) -> Self {
        Self::new(name, Type::Integer)
    }
    pub fn number(name: &'static str) -> Self {
        Self::new(name, Type::Number)
    }
    pub fn boolean(name: &'static str) -> Self {
        Self::new(name, Type::Boolean)
    }
    pub fn array(name: &'static str, item: Field) -> Self {
        Self::new(name, Type::Array(Box::new(item)))
    }
    pub fn set(name: &'static str, item: Field) -> Self {
        Self::new(name, Type::Set(Box::new(item)))
    }
    pub fn map(name: &'static str, value: Field) -> Self {
        Self::new(name, Type::Map(Box::new(value)))
    }
    pub fn record(name: &'static str, record: Record) -> Self {
        Self::new(name, Type::Record(record))
    }
    pub fn foreign(name: &'static str, entity: &'static str) -> Self {
        Self::new(name, Type::Foreign(entity))
    }
    /// The element type of an array/set/map (its name is not used).
    pub fn item(ty: Type) -> Self {
        Self::new("", ty)
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub fn default(mut self, value: Value) -> Self {
        self.default = Some(value);
        self
    }
    pub fn check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }
    pub fn one_of(self, values: &[&'static str]) -> Self {
        self.check(Check::OneOf(values.to_vec()))
    }
    pub fn between(self, min: i64, max: i64) -> Self {
        self.check(Check::Between(min, max))
    }
    pub fn custom(self, check: CustomCheck) -> Self {
        self.check(Check::Custom(check))
    }
    /// Check every key of a map field with `check` (see [`Check::Keys`]).
    pub fn keys(self, check: CustomCheck) -> Self {
        self.check(Check::Keys(check))
    }
    pub fn auto(mut self) -> Self {
        self.auto = true;
        self
    }
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }
}

/// A record: an entity or a nested object such as a plugin's `config`.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub fields: Vec<Field>,
    pub checks: Vec<RecordCheck>,
}

impl Record {
    pub fn new(fields: Vec<Field>) -> Self {
        Self {
            fields,
            checks: Vec::new(),
        }
    }

    pub fn with_check(mut self, check: RecordCheck) -> Self {
        self.checks.push(check);
        self
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name == name)
    }

    /// Validate `input` and return its canonical form, or every problem.
    pub fn validate(&self, input: &Value) -> Result<Value, Vec<FieldError>> {
        let mut errors = Vec::new();
        let canonical = self.validate_at(input, &FieldPath::root(), &mut errors);
        if errors.is_empty() {
            Ok(canonical)
        } else {
            errors.sort();
            errors.dedup();
            Err(errors)
        }
    }

    fn validate_at(&self, input: &Value, path: &FieldPath, errors: &mut Vec<FieldError>) -> Value {
        let Some(object) = input.as_object() else {
            errors.push(FieldError::new(path.clone(), "expected a record"));
            return Value::Null;
        };
        for key in object.keys() {
            if self.field(key).is_none() {
                errors.push(FieldError::new(path.key(key), "unknown field"));
            }
        }
        let errors_before = errors.len();
        let mut canonical = Map::with_capacity(self.fields.len());
        for field in &self.fields {
            let value = field_value(field, object.get(field.name), &path.key(field.name), errors);
            canonical.insert(field.name.to_owned(), value);
        }
        if errors.len() == errors_before {
            for check in &self.checks {
                for error in check(&canonical) {
                    errors.push(FieldError::new(error.path.under(path), error.message));
                }
            }
        }
        Value::Object(canonical)
    }

    /// Whether the canonical `entity` leaves a generated (`auto`) field
    /// unset, at any depth: a session's `secret`, a credential's `key`; not
    /// the id and timestamps every entity has.
    pub fn lacks_generated(&self, entity: &Value) -> bool {
        self.fields.iter().any(|field| {
            if is_store_field(field.name) {
                return false;
            }
            let value = entity.get(field.name).unwrap_or(&Value::Null);
            match &field.ty {
                _ if field.auto && value.is_null() => true,
                Type::Record(nested) if value.is_object() => nested.lacks_generated(value),
                _ => false,
            }
        })
    }

    /// Fill the generated fields `target` leaves unset with `live`'s
    /// values, at any depth (id and timestamps aside).
    pub fn adopt_generated(&self, target: &mut Value, live: &Value) {
        for field in &self.fields {
            if is_store_field(field.name) {
                continue;
            }
            let Some(live_value) = live.get(field.name).filter(|value| !value.is_null()) else {
                continue;
            };
            let Some(value) = target.get_mut(field.name) else {
                continue;
            };
            if value.is_null() && field.auto {
                *value = live_value.clone();
            } else if let Type::Record(nested) = &field.ty {
                nested.adopt_generated(value, live_value);
            }
        }
    }

    /// Strip the fields whose value equals their default (for `gwctl dump`
    /// without `--with-defaults`), recursing into nested records.
    pub fn strip_defaults(&self, canonical: &Value) -> Value {
        let Some(object) = canonical.as_object() else {
            return canonical.clone();
        };
        let mut stripped = Map::new();
        for (key, value) in object {
            let Some(field) = self.field(key) else {
                stripped.insert(key.clone(), value.clone());
                continue;
            };
            if value.is_null() || field.default.as_ref() == Some(value) {
                continue;
            }
            let value = match &field.ty {
                Type::Record(record) => record.strip_defaults(value),
                _ => value.clone(),
            };
            if value.as_object().is_some_and(|nested| nested.is_empty()) {
                continue;
            }
            stripped.insert(key.clone(), value);
        }
        Value::Object(stripped)
    }

    /// Paths (relative to this record) of the fields marked secret.
    pub fn secret_fields(&self) -> Vec<FieldPath> {
        let mut found = Vec::new();
        self.collect_secrets(&FieldPath::root(), &mut found);
        found
    }

    fn collect_secrets(&self, path: &FieldPath, found: &mut Vec<FieldPath>) {
        for field in &self.fields {
            let field_path = path.key(field.name);
            if field.secret {
                found.push(field_path.clone());
            }
            if let Type::Record(record) = &field.ty {
                record.collect_secrets(&field_path, found);
            }
        }
    }

    /// The schema as JSON, in the shape of Kong's `GET /schemas/...`.
    pub fn describe(&self) -> Value {
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|field| {
                let mut single = Map::new();
                single.insert(field.name.to_owned(), describe_field(field));
                Value::Object(single)
            })
            .collect();
        serde_json::json!({ "fields": fields })
    }
}

/// Validate one field's value (absent takes the default; `null` too,
/// unless the field is required).
fn field_value(
    field: &Field,
    input: Option<&Value>,
    path: &FieldPath,
    errors: &mut Vec<FieldError>,
) -> Value {
    if field.required && !field.auto && input.is_some_and(Value::is_null) {
        errors.push(FieldError::new(path.clone(), "required field missing"));
        return Value::Null;
    }
    let given = input.filter(|value| !value.is_null());
    let Some(value) = given.or(field.default.as_ref()) else {
        if field.required && !field.auto {
            errors.push(FieldError::new(path.clone(), "required field missing"));
        }
        return Value::Null;
    };
    let errors_before = errors.len();
    let canonical = typed_value(&field.ty, value, path, errors);
    let typed_ok = errors.len() == errors_before;
    check_keys(&field.checks, &canonical, path, errors);
    if typed_ok {
        run_checks(&field.checks, &canonical, path, errors);
    }
    canonical
}

fn typed_value(ty: &Type, value: &Value, path: &FieldPath, errors: &mut Vec<FieldError>) -> Value {
    let mismatch = |errors: &mut Vec<FieldError>, expected: &str| {
        errors.push(FieldError::new(
            path.clone(),
            format!("expected {expected}"),
        ));
        Value::Null
    };
    match ty {
        Type::String => match value {
            Value::String(text) if text.is_empty() => {
                errors.push(FieldError::new(path.clone(), "length must be at least 1"));
                Value::Null
            }
            Value::String(_) => value.clone(),
            _ => mismatch(errors, "a string"),
        },
        Type::Integer => match integer_of(value) {
            Some(number) => Value::Number(number.into()),
            None => mismatch(errors, "an integer"),
        },
        Type::Number => match value {
            Value::Number(number) => normalize_number(number),
            _ => mismatch(errors, "a number"),
        },
        Type::Boolean => match value {
            Value::Bool(_) => value.clone(),
            _ => mismatch(errors, "a boolean"),
        },
        Type::Array(item) => match value {
            Value::Array(items) => Value::Array(list_items(item, items, path, errors)),
            _ => mismatch(errors, "an array"),
        },
        Type::Set(item) => match value {
            Value::Array(items) => Value::Array(ordered_set(list_items(item, items, path, errors))),
            _ => mismatch(errors, "a set"),
        },
        Type::Map(item) => match value {
            Value::Object(entries) => {
                let mut canonical = Map::new();
                for (key, entry) in entries {
                    let entry_value = field_value(item, Some(entry), &path.key(key), errors);
                    canonical.insert(key.clone(), entry_value);
                }
                Value::Object(canonical)
            }
            _ => mismatch(errors, "a map"),
        },
        Type::Record(record) => record.validate_at(value, path, errors),
        Type::Foreign(collection) => foreign_value(collection, value, path, errors),
    }
}

/// Integers given as whole floats (`5.0`) are accepted, as Kong does.
fn integer_of(value: &Value) -> Option<i64> {
    let number = value.as_number()?;
    if let Some(integer) = number.as_i64() {
        return Some(integer);
    }
    let float = number.as_f64()?;
    let in_range = float.fract() == 0.0 && float.abs() < 9.0e15;
    in_range.then_some(float as i64)
}

/// Whole numbers are kept as integers so `900` and `900.0` compare equal.
fn normalize_number(number: &Number) -> Value {
    match integer_of(&Value::Number(number.clone())) {
        Some(integer) => Value::Number(integer.into()),
        None => Value::Number(number.clone()),
    }
}

fn list_items(
    item: &Field,
    items: &[Value],
    path: &FieldPath,
    errors: &mut Vec<FieldError>,
) -> Vec<Value> {
    items
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let item_path = path.index(index);
            if value.is_null() {
                errors.push(FieldError::new(item_path, "required field missing"));
                return Value::Null;
            }
            field_value(item, Some(value), &item_path, errors)
        })
        .collect()
}

/// Sets keep the order given and drop repeats (the first stays), as
/// Kong's `set` type does.
fn ordered_set(items: Vec<Value>) -> Vec<Value> {
    let mut kept: Vec<Value> = Vec::with_capacity(items.len());
    for item in items {
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    kept
}

fn foreign_value(
    collection: &str,
    value: &Value,
    path: &FieldPath,
    errors: &mut Vec<FieldError>,
) -> Value {
    let id = match value {
        Value::Object(object) => object.get("id").and_then(Value::as_str),
        _ => None,
    };
    if let (None, Value::Object(object)) = (id, value) {
        let errors_before = errors.len();
        check_foreign_fields(collection, object, path, errors);
        if errors.len() > errors_before {
            return Value::Null;
        }
    }
    match id.map(uuid::Uuid::parse_str) {
        Some(Ok(uuid)) => crate::config::id_reference(uuid.to_string()),
        Some(Err(_)) => {
            errors.push(FieldError::new(path.key("id"), "expected a valid UUID"));
            Value::Null
        }
        None => {
            errors.push(FieldError::new(path.key("id"), "missing primary key"));
            Value::Null
        }
    }
}

/// The fields given in a foreign record without an id, each checked
/// against the referenced entity's field (an unknown one is reported).
fn check_foreign_fields(
    collection: &str,
    object: &Map<String, Value>,
    path: &FieldPath,
    errors: &mut Vec<FieldError>,
) {
    let Some(record) = crate::entities::EntityKind::from_collection(collection)
        .map(crate::entities::EntityKind::schema)
    else {
        return;
    };
    for (key, given) in object {
        let field_path = path.key(key);
        match record.field(key) {
            None => errors.push(FieldError::new(field_path, "unknown field")),
            Some(_) if given.is_null() => {}
            Some(field) => {
                field_value(field, Some(given), &field_path, errors);
            }
        }
    }
}

/// Runs the [`Check::Keys`] rules on the keys of a map value, reporting
/// each bad key at its own path.
fn check_keys(checks: &[Check], value: &Value, path: &FieldPath, errors: &mut Vec<FieldError>) {
    let Some(entries) = value.as_object() else {
        return;
    };
    for check in checks {
        let Check::Keys(check) = check else {
            continue;
        };
        for key in entries.keys() {
            if let Err(message) = check(&Value::String(key.clone())) {
                errors.push(FieldError::new(path.key(key), message));
            }
        }
    }
}

/// Runs the value checks, stopping at the first that fails.
fn run_checks(checks: &[Check], value: &Value, path: &FieldPath, errors: &mut Vec<FieldError>) {
    for check in checks {
        if let Err(message) = run_check(check, value) {
            errors.push(FieldError::new(path.clone(), message));
            return;
        }
    }
}

fn run_check(check: &Check, value: &Value) -> Result<(), String> {
    match check {
        Check::OneOf(allowed) => match value.as_str() {
            Some(text) if allowed.contains(&text) => Ok(()),
            _ => Err(format!("expected one of: {}", allowed.join(", "))),
        },
        Check::Between(min, max) => match value.as_f64() {
            Some(number) if number >= *min as f64 && number <= *max as f64 => Ok(()),
            _ => Err(format!("value should be between {min} and {max}")),
        },
        Check::Pattern(regex, message) => match value.as_str() {
            Some(text) if regex.is_match(text) => Ok(()),
            _ => Err(message.replace("%s", value.as_str().unwrap_or_default())),
        },
        Check::LenMin(min) => {
            let len = match value {
                Value::Array(items) => items.len(),
                Value::String(text) => text.chars().count(),
                Value::Object(entries) => entries.len(),
                _ => 0,
            };
            if len >= *min {
                Ok(())
            } else {
                Err(format!("length must be at least {min}"))
            }
        }
        Check::Uuid => match value.as_str().map(uuid::Uuid::parse_str) {
            Some(Ok(_)) => Ok(()),
            _ => Err("expected a valid UUID".to_owned()),
        },
        Check::Custom(check) => check(value),
        // Keys are checked one by one, by `check_keys`.
        Check::Keys(_) => Ok(()),
    }
}

fn describe_field(field: &Field) -> Value {
    let mut out = Map::new();
    let type_name = match &field.ty {
        Type::String => "string",
        Type::Integer => "integer",
        Type::Number => "number",
        Type::Boolean => "boolean",
        Type::Array(_) => "array",
        Type::Set(_) => "set",
        Type::Map(_) => "map",
        Type::Record(_) => "record",
        Type::Foreign(_) => "foreign",
    };
    out.insert("type".into(), Value::from(type_name));
    if field.required {
        out.insert("required".into(), Value::Bool(true));
    }
    if let Some(default) = &field.default {
        out.insert("default".into(), default.clone());
    }
    if field.auto {
        out.insert("auto".into(), Value::Bool(true));
    }
    if field.secret {
        out.insert("encrypted".into(), Value::Bool(true));
    }
    for check in &field.checks {
        match check {
            Check::OneOf(values) => {
                out.insert("one_of".into(), Value::from(values.clone()));
            }
            Check::Between(min, max) => {
                out.insert("between".into(), serde_json::json!([min, max]));
            }
            Check::Pattern(regex, _) => {
                out.insert("match".into(), Value::from(regex.as_str()));
            }
            Check::LenMin(min) => {
                out.insert("len_min".into(), Value::from(*min));
            }
            Check::Uuid => {
                out.insert("uuid".into(), Value::Bool(true));
            }
            Check::Custom(_) | Check::Keys(_) => {}
        }
    }
    match &field.ty {
        Type::Array(item) | Type::Set(item) => {
            out.insert("elements".into(), describe_field(item));
        }
        Type::Map(item) => {
            out.insert("keys".into(), serde_json::json!({"type": "string"}));
            out.insert("values".into(), describe_field(item));
        }
        Type::Record(record) => {
            if let Some(fields) = record.describe().get("fields") {
                out.insert("fields".into(), fields.clone());
            }
        }
        Type::Foreign(entity) => {
            out.insert("reference".into(), Value::from(*entity));
        }
        _ => {}
    }
    Value::Object(out)
}

/// Helper for record checks: is this field set to a non-empty value?
pub fn is_present(record: &Map<String, Value>, name: &str) -> bool {
    match record.get(name) {
        None | Some(Value::Null) => false,
        Some(Value::String(text)) => !text.is_empty(),
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Object(entries)) => !entries.is_empty(),
        Some(_) => true,
    }
}

/// Compile a pattern known at build time. Every pattern passed here is a
/// literal in this crate, so failure is a programming error caught by tests.
pub fn pattern(source: &str) -> Regex {
    Regex::new(source).unwrap_or_else(|error| panic!("invalid built-in pattern {source}: {error}"))
}

/// The fields every entity has and the store sets: never "generated" in
/// the sense of [`Record::lacks_generated`].
fn is_store_field(name: &str) -> bool {
    matches!(name, "id" | "created_at" | "updated_at")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Record {
        Record::new(vec![
            Field::string("name").required(),
            Field::integer("port").default(json!(80)).between(0, 65535),
            Field::set(
                "protocols",
                Field::item(Type::String).one_of(&["http", "https"]),
            )
            .default(json!(["http", "https"])),
            Field::string("path"),
        ])
    }

    #[test]
    fn fills_defaults_and_nulls() {
        let canonical = sample().validate(&json!({"name": "a"})).unwrap();
        assert_eq!(
            canonical,
            json!({"name": "a", "port": 80, "protocols": ["http", "https"], "path": null})
        );
    }

    #[test]
    fn canonical_is_a_fixed_point() {
        let record = sample();
        let canonical = record
            .validate(&json!({"name": "a", "protocols": ["https", "http", "https"]}))
            .unwrap();
        assert_eq!(record.validate(&canonical).unwrap(), canonical);
        // Kong's set: repeats dropped, the order given kept.
        assert_eq!(canonical["protocols"], json!(["https", "http"]));
    }

    #[test]
    fn an_explicit_null_for_a_required_field_with_a_default_is_missing() {
        let record = Record::new(vec![Field::integer("status_code")
            .required()
            .default(json!(503))]);
        let errors = record.validate(&json!({"status_code": null})).unwrap_err();
        assert_eq!(
            errors,
            [FieldError::new(
                FieldPath::root().key("status_code"),
                "required field missing"
            )]
        );
        assert_eq!(record.validate(&json!({})).unwrap()["status_code"], 503);
        // An optional field with a default takes it for null.
        let optional = sample()
            .validate(&json!({"name": "a", "port": null}))
            .unwrap();
        assert_eq!(optional["port"], 80);
    }

    #[test]
    fn reports_every_problem() {
        let errors = sample()
            .validate(&json!({"port": "x", "protocols": ["ftp"], "extra": 1}))
            .unwrap_err();
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            vec![
                "extra: unknown field",
                "name: required field missing",
                "port: expected an integer",
                "protocols[0]: expected one of: http, https",
            ]
        );
    }

    #[test]
    fn range_and_whole_floats() {
        let record = sample();
        assert_eq!(
            record
                .validate(&json!({"name": "a", "port": 8000.0}))
                .unwrap()["port"],
            json!(8000)
        );
        let errors = record
            .validate(&json!({"name": "a", "port": 70000}))
            .unwrap_err();
        assert_eq!(errors[0].message, "value should be between 0 and 65535");
    }

    #[test]
    fn map_keys_are_checked_one_by_one_even_beside_bad_values() {
        fn short_key(key: &Value) -> Result<(), String> {
            match key.as_str() {
                Some(text) if text.len() <= 2 => Ok(()),
                _ => Err("too long".to_owned()),
            }
        }
        let record = Record::new(vec![
            Field::map("labels", Field::item(Type::Integer)).keys(short_key)
        ]);
        assert!(record.validate(&json!({"labels": {"ok": 1}})).is_ok());
        let errors = record
            .validate(&json!({"labels": {"long": 1, "ok": "x", "longer": 2}}))
            .unwrap_err();
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            vec![
                "labels.long: too long",
                "labels.longer: too long",
                "labels.ok: expected an integer",
            ]
        );
    }

    #[test]
    fn strip_defaults_leaves_what_differs() {
        let record = sample();
        let canonical = record.validate(&json!({"name": "a", "port": 81})).unwrap();
        assert_eq!(
            record.strip_defaults(&canonical),
            json!({"name": "a", "port": 81})
        );
    }
}
