//! The plugins this gateway can run: one module per plugin and the
//! registry ([`DESCRIPTORS`]). What a plugin is and sees — the phase
//! trait, the request context, responses — is the plugin development kit,
//! [`crate::pdk`]; plugins use nothing else of the gateway.
//!
//! # Adding a plugin
//!
//! Its config schema in `schemas/src/plugins/<name>.rs` (name, priority,
//! version, fields), its handler here in `<name>.rs` (a `DESCRIPTOR`, a
//! [`PluginDescriptor`], and a [`crate::pdk::Plugin`]), and its module name
//! in the one list both sides read, `schemas::with_plugin_modules!`.

pub mod unavailable;

use crate::pdk::{BackgroundTask, PluginDescriptor, PluginEnv};

/// Declares a handler module per plugin and [`DESCRIPTORS`].
macro_rules! declare_handlers {
    ($($module:ident),*) => {
        $(pub mod $module;)*

        /// The plugins this gateway can run.
        pub const DESCRIPTORS: &[PluginDescriptor] = &[$($module::DESCRIPTOR),*];
    };
}

schemas::with_plugin_modules!(declare_handlers);

/// The plugin of this name, if this gateway can run it.
pub fn descriptor(name: &str) -> Option<&'static PluginDescriptor> {
    DESCRIPTORS.iter().find(|plugin| plugin.name == name)
}

/// The background tasks of every plugin that has one.
pub fn background_tasks(env: &PluginEnv) -> Vec<BackgroundTask> {
    DESCRIPTORS
        .iter()
        .filter_map(|plugin| plugin.background)
        .filter_map(|start| start(env))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_has_a_handler_and_every_handler_a_schema() {
        let mut handlers: Vec<&str> = DESCRIPTORS.iter().map(|plugin| plugin.name).collect();
        let mut schemas: Vec<&str> = schemas::plugins::all()
            .iter()
            .map(|schema| schema.name)
            .collect();
        handlers.sort_unstable();
        schemas.sort_unstable();
        assert_eq!(handlers, schemas);
    }
}
