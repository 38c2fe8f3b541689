//! The stand-in for a plugin row that could not be turned into an instance.
//!
//! A row can pass its schema and still fail its factory (say a
//! request-termination `content_type` that is not a valid header value).
//! Leaving such a row out would open what it guards (a key-auth, say), and
//! refusing the whole configuration would stop every later change from
//! reaching the proxy. So the row's place is taken by this stand-in, which
//! fails closed: every request in the row's scope is answered 500, as Kong
//! answers a plugin that fails at run time, and the error is logged once
//! when the snapshot is built.

use http::header::HeaderMap;
use http::StatusCode;

use super::{Available, Flow, Plugin, RequestCtx};

/// Answers 500 in place of the plugin it stands for.
#[derive(Debug)]
pub struct Unavailable {
    plugin: Available,
}

impl Unavailable {
    /// A stand-in running where `plugin`'s instance would have run.
    pub fn new(plugin: Available) -> Self {
        Unavailable { plugin }
    }
}

impl Plugin for Unavailable {
    fn name(&self) -> &'static str {
        self.plugin.name
    }

    fn priority(&self) -> u32 {
        self.plugin.priority
    }

    /// Refuses the request: the plugin it stands for cannot run.
    fn access(&self, ctx: &mut RequestCtx) -> Flow {
        Flow::Respond(ctx.error(StatusCode::INTERNAL_SERVER_ERROR, None, HeaderMap::new()))
    }
}
