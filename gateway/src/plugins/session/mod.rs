//! The session plugin: the lua-resty-session v4 cookie codec ([`cookie`]),
//! the server-side rows of `storage: kong` ([`storage`]) and the plugin
//! itself ([`plugin`]).

pub mod cookie;
pub mod plugin;
pub mod storage;

pub use plugin::{build, PRIORITY};
