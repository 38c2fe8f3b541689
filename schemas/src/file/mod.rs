//! The declarative file: reading, templating, Markdown blocks, positions.

pub mod build;
pub mod load;
pub mod markdown;
pub mod pos;
pub mod template;
pub mod yaml;
