//! The plugin trait, the runner and one module per plugin.

pub mod session;
