//! [`Connection`]: an open upstream stream with the buffers that live as
//! long as it (so a request on a pooled connection allocates neither) and
//! the idle list it goes back to ([`Home`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio_rustls::TlsConnector;

use super::connect::{connect, ConnectError, Target, UpstreamStream};

/// The first read buffer of a connection; it grows for larger heads.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Which idle list a connection belongs to.
#[derive(Debug, Clone)]
pub struct Home {
    /// The [`Pool`] that opened it.
    pub(super) pool: u64,
    pub(super) tls: bool,
    pub(super) port: u16,
    pub(super) host: Arc<str>,
    /// The most idle connections kept for this target.
    pub(super) max_idle: usize,
    /// How long a connection may stay idle.
    pub(super) idle_timeout: Duration,
}

/// An open upstream connection and its buffers.
pub struct Connection {
    pub stream: UpstreamStream,
    /// Bytes read and not yet consumed; empty between exchanges.
    pub read_buf: BytesMut,
    /// The request head being written.
    pub write_buf: Vec<u8>,
    /// The pool this connection goes back to.
    pub home: Home,
}

impl Connection {
    /// Opens a connection to `target` within `timeout`, going back to
    /// `home` when idle.
    pub async fn open(
        target: Target<'_>,
        timeout: Duration,
        tls: &TlsConnector,
        home: Home,
    ) -> Result<Connection, ConnectError> {
        let stream = connect(target, timeout, tls).await?;
        Ok(Connection {
            stream,
            read_buf: BytesMut::with_capacity(READ_BUFFER_BYTES),
            write_buf: Vec::with_capacity(1024),
            home,
        })
    }
}
