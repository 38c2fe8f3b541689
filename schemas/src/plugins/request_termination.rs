//! The request-termination plugin's config.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::PluginSchema;
use crate::error::{FieldError, FieldPath};
use crate::schema::{is_present, Field, Record};
use crate::typedefs::header_name_check;

/// The plugin's name.
pub const NAME: &str = "request-termination";

pub fn plugin_schema() -> PluginSchema {
    PluginSchema {
        name: NAME,
        priority: 2,
        version: "3.10.0",
        config: config_schema(),
        no_consumer: false,
        http_only: true,
        translate_shorthands: super::no_shorthands,
        generated: &[],
    }
}

fn config_schema() -> Record {
    Record::new(vec![
        Field::integer("status_code")
            .required()
            .default(json!(503))
            .between(100, 599),
        Field::string("message"),
        Field::string("content_type"),
        Field::string("body"),
        Field::boolean("echo").required().default(json!(false)),
        Field::string("trigger").check(header_name_check()),
    ])
    .with_check(body_rules)
}

/// The record-level rules, attached to `config` as a whole as Kong does.
fn body_rules(config: &Map<String, Value>) -> Vec<FieldError> {
    let has = |name| is_present(config, name);
    let echo = config.get("echo") == Some(&Value::Bool(true));
    let mut errors = Vec::new();
    let mut fail = |message: &str| errors.push(FieldError::entity(FieldPath::root(), message));
    if has("message") && (has("content_type") || has("body")) {
        fail("message cannot be used with content_type or body");
    }
    if has("content_type") && !has("body") {
        fail("content_type requires a body");
    }
    if echo && (has("content_type") || has("body")) {
        fail("echo cannot be used with content_type and body");
    }
    errors
}

/// request-termination's canonical config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestTerminationConfig {
    pub status_code: u16,
    pub message: Option<String>,
    pub content_type: Option<String>,
    pub body: Option<String>,
    pub echo: bool,
    pub trigger: Option<String>,
}

/// Kong's default message for the statuses that have one.
pub fn default_message(status: u16) -> Option<&'static str> {
    match status {
        401 => Some("Unauthorized"),
        404 => Some("Not found"),
        405 => Some("Method not allowed"),
        500 => Some("An unexpected error occurred"),
        502 => Some("Bad Gateway"),
        503 => Some("Service unavailable"),
        _ => None,
    }
}
