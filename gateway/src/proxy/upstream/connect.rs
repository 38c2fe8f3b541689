//! Opening a connection to a service: name resolution, TCP connect and,
//! for `https` services, the TLS handshake, all within the service's
//! connect timeout (nginx's `proxy_connect_timeout` also bounds the
//! handshake).
//!
//! [`UpstreamStream`] is the plain or TLS stream; `connection.rs` adds the
//! buffers and the pool it goes back to.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Where a service's requests go.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// TLS (`https`, `grpcs`) or plain.
    pub tls: bool,
    /// A host name or an IP address (IPv6 without brackets).
    pub host: &'a str,
    /// The TCP port.
    pub port: u16,
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Resolution, the TCP connect or the TLS handshake failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The whole connect took longer than the connect timeout.
    #[error("no connection within {0:?}")]
    Timeout(Duration),
}

/// A TCP connection to the upstream, TLS or not.
pub enum UpstreamStream {
    /// `http`.
    Plain(TcpStream),
    /// `https`.
    Tls(Box<TlsStream<TcpStream>>),
}

/// Opens a stream to `target` within `timeout`.
pub async fn connect(
    target: Target<'_>,
    timeout: Duration,
    tls: &TlsConnector,
) -> Result<UpstreamStream, ConnectError> {
    tokio::time::timeout(timeout, open(target, tls))
        .await
        .map_err(|_| ConnectError::Timeout(timeout))?
        .map_err(ConnectError::Io)
}

/// Resolves, connects and runs the TLS handshake if any.
async fn open(target: Target<'_>, tls: &TlsConnector) -> io::Result<UpstreamStream> {
    let tcp = connect_tcp(target.host, target.port).await?;
    tcp.set_nodelay(true)?;
    if !target.tls {
        return Ok(UpstreamStream::Plain(tcp));
    }
    let server_name = ServerName::try_from(target.host.to_owned())
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
    let stream = tls.connect(server_name, tcp).await?;
    Ok(UpstreamStream::Tls(Box::new(stream)))
}

/// Connects to the first address of `host` that accepts.
async fn connect_tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return TcpStream::connect(SocketAddr::new(ip, port)).await;
    }
    let mut last_error = None;
    for address in tokio::net::lookup_host((host, port)).await? {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} resolves to no address"),
        )
    }))
}

/// The TLS connector of the upstream pool: no certificate verification,
/// Kong's default (see [`crate::tls::insecure_client_config`]).
pub fn tls_connector() -> TlsConnector {
    TlsConnector::from(Arc::new(crate::tls::insecure_client_config()))
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            UpstreamStream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            UpstreamStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            UpstreamStream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            UpstreamStream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
