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

use crate::pdk::{Flow, Plugin, RequestCtx};

/// Answers 500 in place of the plugin it stands for (whose table it sits
/// in, so it runs at that plugin's priority).
#[derive(Debug, Default)]
pub struct Unavailable;

#[async_trait::async_trait]
impl Plugin for Unavailable {
    /// Refuses the request: the plugin it stands for cannot run.
    async fn access(&self, ctx: &mut RequestCtx) -> Flow {
        Flow::Respond(ctx.error(StatusCode::INTERNAL_SERVER_ERROR, None, HeaderMap::new()))
    }
}
