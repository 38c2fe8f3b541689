//! The declarative file: reading, templating, Markdown blocks, positions.

pub mod load;
pub mod markdown;
pub mod template;
pub mod yaml;
