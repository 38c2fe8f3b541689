//! The declarative file: reading, templating, Markdown blocks, positions.

pub mod build;
pub mod hash;
pub mod load;
pub mod markdown;
pub mod parallel;
pub mod pos;
pub mod template;
pub mod yaml;
mod yaml_split;
