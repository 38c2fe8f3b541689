//! The session plugin's config, with the deprecated 2.x field names
//! translated on input.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::PluginSchema;
use crate::schema::{Field, Record, Type};
use crate::typedefs::Generated;

pub const HEADER_NAMES: &[&str] = &[
    "id",
    "audience",
    "subject",
    "timeout",
    "idling-timeout",
    "rolling-timeout",
    "absolute-timeout",
];

/// The plugin's name.
pub const NAME: &str = "session";

pub fn plugin_schema() -> PluginSchema {
    PluginSchema {
        name: NAME,
        priority: 1900,
        version: "3.10.0",
        config: config_schema(),
        no_consumer: true,
        http_only: false,
        translate_shorthands,
        generated: &[Generated {
            field: "secret",
            make: generate_secret,
        }],
    }
}

fn seconds(name: &'static str, default: i64) -> Field {
    Field::number(name).default(json!(default))
}

fn header_set(name: &'static str) -> Field {
    Field::set(name, Field::item(Type::String).one_of(HEADER_NAMES))
}

/// Kong's session schema marks no field required: each takes its default
/// when absent (or null).
fn config_schema() -> Record {
    Record::new(vec![
        // Generated and persisted by the gateway when absent (see the
        // gateway's store), so a file that leaves it out keeps the live one.
        Field::string("secret").auto().secret(),
        Field::string("storage")
            .default(json!("cookie"))
            .one_of(&["cookie", "kong"]),
        Field::string("audience").default(json!("default")),
        seconds("idling_timeout", 900),
        seconds("rolling_timeout", 3600),
        seconds("absolute_timeout", 86400),
        seconds("stale_ttl", 10),
        Field::string("cookie_name").default(json!("session")),
        Field::string("cookie_path").default(json!("/")),
        Field::string("cookie_domain"),
        Field::string("cookie_same_site")
            .default(json!("Strict"))
            .one_of(&["Strict", "Lax", "None", "Default"]),
        Field::boolean("cookie_http_only").default(json!(true)),
        Field::boolean("cookie_secure").default(json!(true)),
        Field::boolean("remember").default(json!(false)),
        Field::string("remember_cookie_name").default(json!("remember")),
        seconds("remember_rolling_timeout", 604800),
        seconds("remember_absolute_timeout", 2592000),
        header_set("response_headers"),
        header_set("request_headers"),
        Field::boolean("read_body_for_logout").default(json!(false)),
        Field::set(
            "logout_methods",
            Field::item(Type::String).one_of(&["GET", "POST", "DELETE"]),
        )
        .default(json!(["POST", "DELETE"])),
        Field::string("logout_query_arg").default(json!("session_logout")),
        Field::string("logout_post_arg").default(json!("session_logout")),
        Field::boolean("hash_subject").default(json!(false)),
        Field::boolean("store_metadata").default(json!(false)),
    ])
}

/// Kong 2.x names still accepted on input: `cookie_lifetime`,
/// `cookie_idletime`, `cookie_renew` (ignored), `cookie_discard`,
/// `cookie_samesite`, `cookie_httponly`, `cookie_persistent`.
fn translate_shorthands(config: &Value) -> Value {
    let Some(object) = config.as_object() else {
        return config.clone();
    };
    let mut translated = object.clone();
    let mut rename = |old: &str, new: &str, convert: fn(Value) -> Value| {
        if let Some(value) = translated.remove(old) {
            translated.entry(new.to_owned()).or_insert(convert(value));
        }
    };
    rename("cookie_lifetime", "rolling_timeout", |v| v);
    rename("cookie_idletime", "idling_timeout", |v| {
        if v.is_null() {
            json!(0)
        } else {
            v
        }
    });
    rename("cookie_discard", "stale_ttl", |v| v);
    rename("cookie_samesite", "cookie_same_site", |v| {
        if v == "off" {
            json!("Lax")
        } else {
            v
        }
    });
    rename("cookie_httponly", "cookie_http_only", |v| v);
    rename("cookie_persistent", "remember", |v| v);
    translated.remove("cookie_renew");
    Value::Object(translated)
}

/// session's canonical config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionConfig {
    pub secret: Option<String>,
    pub storage: String,
    pub audience: String,
    pub idling_timeout: f64,
    pub rolling_timeout: f64,
    pub absolute_timeout: f64,
    pub stale_ttl: f64,
    pub cookie_name: String,
    pub cookie_path: String,
    pub cookie_domain: Option<String>,
    pub cookie_same_site: String,
    pub cookie_http_only: bool,
    pub cookie_secure: bool,
    pub remember: bool,
    pub remember_cookie_name: String,
    pub remember_rolling_timeout: f64,
    pub remember_absolute_timeout: f64,
    pub response_headers: Option<Vec<String>>,
    pub request_headers: Option<Vec<String>>,
    pub read_body_for_logout: bool,
    pub logout_methods: Vec<String>,
    pub logout_query_arg: String,
    pub logout_post_arg: String,
    pub hash_subject: bool,
    pub store_metadata: bool,
}

/// A new session secret as Kong makes one: 32 random bytes in base64 with
/// `/`, `+` and `=` replaced by random alphanumerics (44 characters).
pub fn generate_secret() -> String {
    crate::typedefs::random_token(32, &['/', '+', '='])
}
