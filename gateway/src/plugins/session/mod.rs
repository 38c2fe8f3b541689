//! The session plugin (Kong's `session`, priority 1900): keeps a consumer
//! logged in with a lua-resty-session v4 cookie once another plugin
//! authenticated it.
//!
//! - [`cookie`]: the cookie codec (header, encryption, chunks, audiences).
//! - [`plugin`]: the instance, its config and its two phase hooks.
//! - `open`: the access phase (opening, restoring, refreshing, logout).
//! - `save`: saving sessions (cookies, `storage: kong` rows, headers).
//! - [`sweeper`]: the background task removing expired `storage: kong`
//!   rows (the rows live in the database's [`crate::store::SessionStore`]).

pub mod cookie;
mod open;
pub mod plugin;
mod save;
pub mod sweeper;

pub use plugin::{build, Session};
pub use save::merge_set_cookie;
pub use schemas::plugins::session::NAME;

use crate::pdk::{Phases, PluginDescriptor};

/// The session plugin: access (open) and response (save) phases, and a
/// sweeper of expired rows.
pub const DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    name: NAME,
    phases: Phases {
        access: true,
        response: true,
        log: false,
    },
    build,
    background: Some(sweeper::start),
};
