//! What a connection needs from its byte stream beyond reading and writing.

use std::io;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};

/// A stream an MQTT connection runs over.
pub trait ConnStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Ready when a read may make progress. A plain socket can say so
    /// without a buffer, so an idle connection holds no read buffer while it
    /// waits; streams that cannot tell (TLS, WebSocket) are always ready and
    /// read into a small buffer that is given back when the read would block.
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl ConnStream for tokio::net::TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> ConnStream
    for tokio_rustls::server::TlsStream<S>
{
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> ConnStream
    for crate::transport::websocket::WsByteStream<S>
{
}

/// Test streams (`tokio::io::duplex`).
impl ConnStream for tokio::io::DuplexStream {}
