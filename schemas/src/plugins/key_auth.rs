//! The key-auth plugin's config.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::PluginSchema;
use crate::schema::{Field, Record, Type};
use crate::typedefs::header_name_check;

/// The plugin's name.
pub const NAME: &str = "key-auth";

pub fn plugin_schema() -> PluginSchema {
    PluginSchema {
        name: NAME,
        priority: 1250,
        version: "3.10.0",
        config: config_schema(),
        no_consumer: true,
        http_only: true,
        translate_shorthands: super::no_shorthands,
        generated: &[],
    }
}

fn config_schema() -> Record {
    Record::new(vec![
        Field::array(
            "key_names",
            Field::item(Type::String).check(header_name_check()),
        )
        .required()
        .default(json!(["apikey"])),
        Field::boolean("hide_credentials")
            .required()
            .default(json!(false)),
        Field::string("anonymous"),
        Field::boolean("key_in_header")
            .required()
            .default(json!(true)),
        Field::boolean("key_in_query")
            .required()
            .default(json!(true)),
        Field::boolean("key_in_body")
            .required()
            .default(json!(false)),
        Field::boolean("run_on_preflight")
            .required()
            .default(json!(true)),
        Field::string("realm"),
    ])
}

/// key-auth's canonical config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAuthConfig {
    pub key_names: Vec<String>,
    pub hide_credentials: bool,
    /// A consumer id or username used when authentication fails.
    pub anonymous: Option<String>,
    pub key_in_header: bool,
    pub key_in_query: bool,
    pub key_in_body: bool,
    pub run_on_preflight: bool,
    pub realm: Option<String>,
}
