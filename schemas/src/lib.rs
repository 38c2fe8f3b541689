//! The entity model, plugin config schemas and the declarative file format,
//! shared by `gateway` and `gwctl`.

pub mod file;
