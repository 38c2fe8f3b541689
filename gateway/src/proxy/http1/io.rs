//! The connection's byte streams.
//!
//! - [`Reader`]: the read side and its buffer, reused by every request of
//!   the connection. It moves into a request body while the body is read
//!   and comes back afterwards (see `request_body.rs`).
//! - [`Split`]: splits a connection into independently owned read and
//!   write halves (the read half must be `'static` to live in a body).
//! - [`Rewind`]: a stream that first replays bytes already read from it,
//!   for handing a connection that opened with the HTTP/2 preface to hyper.

use std::future::Future as _;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// The read buffer's size when a connection opens, and the least room a
/// read of a request head gets; what a request head of usual size needs.
pub(super) const READ_CHUNK: usize = 8 * 1024;

/// The most room a read of a request body asks for.
pub(super) const MAX_BODY_READ: usize = 64 * 1024;

/// A connection's read side and the bytes read but not yet used.
pub(super) struct Reader<R> {
    io: R,
    /// Bytes read from `io`, not yet parsed or handed on.
    pub(super) buf: BytesMut,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// A reader of `io` that starts with `buf`'s bytes.
    pub(super) fn new(io: R, buf: BytesMut) -> Self {
        Reader { io, buf }
    }

    /// Reads once from the connection into the buffer, first making room
    /// for at least `room` bytes when less than half of that is free;
    /// `Ok(0)` is the end of the stream. The buffer's allocation is reused
    /// once the bytes handed out of it (request heads, body chunks) are
    /// dropped.
    pub(super) fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        room: usize,
    ) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < room / 2 {
            self.buf.reserve(room);
        }
        pin!(self.io.read_buf(&mut self.buf)).poll(cx)
    }

    /// The stream and the bytes read from it but not used.
    pub(super) fn into_parts(self) -> (R, BytesMut) {
        (self.io, self.buf)
    }
}

/// A connection that splits into owned read and write halves.
pub(in crate::proxy) trait Split:
    AsyncRead + AsyncWrite + Unpin + Send + Sized + 'static
{
    /// The read half.
    type Read: AsyncRead + Unpin + Send + 'static;
    /// The write half.
    type Write: AsyncWrite + Unpin + Send + 'static;

    /// Both halves; dropping both closes the connection.
    fn split(self) -> (Self::Read, Self::Write);
}

impl Split for TcpStream {
    type Read = OwnedReadHalf;
    type Write = OwnedWriteHalf;

    /// The socket's own halves: no lock between them.
    fn split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.into_split()
    }
}

impl Split for tokio_rustls::server::TlsStream<TcpStream> {
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;

    /// TLS state is shared by both directions: tokio's split, which locks.
    fn split(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
}

#[cfg(test)]
impl Split for tokio::io::DuplexStream {
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;

    fn split(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
}

/// A stream whose reads first return `prefix`, then the stream's own bytes.
pub(in crate::proxy) struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    /// `inner`, with `prefix` (bytes already read from it) put back.
    pub(in crate::proxy) fn new(inner: S, prefix: Bytes) -> Self {
        Rewind { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let len = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..len]);
        self.prefix.advance(len);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    #[tokio::test]
    async fn rewind_replays_the_prefix_first() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b" world").await.unwrap();
        drop(client);
        let mut rewound = Rewind::new(server, Bytes::from_static(b"hello"));
        let mut all = String::new();
        rewound.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "hello world");
    }

    #[tokio::test]
    async fn the_reader_appends_to_its_buffer() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"abc").await.unwrap();
        let mut reader = Reader::new(server, BytesMut::from(&b"x"[..]));
        let read = std::future::poll_fn(|cx| reader.poll_fill(cx, READ_CHUNK))
            .await
            .unwrap();
        assert_eq!(read, 3);
        assert_eq!(&reader.buf[..], b"xabc");
        drop(client);
        let read = std::future::poll_fn(|cx| reader.poll_fill(cx, READ_CHUNK))
            .await
            .unwrap();
        assert_eq!(read, 0, "the end of the stream");
    }
}
