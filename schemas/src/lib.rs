//! The entity model, plugin config schemas and the declarative file format,
//! shared by `gateway` and `gwctl`.
//!
//! - [`schema`]: the schema engine (types, defaults, rules, canonical form).
//! - [`typedefs`]: field definitions and validators shared by entities and
//!   plugin configs (Kong's `typedefs`).
//! - [`entities`]: services, routes, consumers, plugins, key-auth credentials.
//! - [`plugins`]: config schemas of key-auth, prometheus, session, request-termination.
//! - [`model`]: typed views of canonical entities.
//! - [`config`]: a whole configuration, kind by kind ([`config::Config`]);
//!   [`packed`]: the same with each entity as its compact JSON text, how
//!   `gwctl` holds a large one.
//! - [`matching`]: how route paths, headers and hosts are compiled for
//!   matching, shared by the route schema and the gateway's router.
//! - [`file`]: the declarative file (decK format, docs blocks, Markdown).

pub mod config;
pub mod entities;
pub mod error;
pub mod file;
pub mod matching;
pub mod model;
pub mod packed;
pub mod plugins;
pub mod schema;
pub mod typedefs;

pub use entities::EntityKind;
pub use error::{FieldError, FieldPath, PathSeg, SchemaViolation};
