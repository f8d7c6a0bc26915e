//! Closing a connection so that the client reads its answer: when a request is refused before
//! its body is read (an upload without a valid token, too large, over quota), the server answers
//! and closes; closing a socket with unread bytes in it sends a TCP reset, and a reset makes the
//! client's system drop the answer it has not read yet — the client sees "connection reset", not
//! the 401 or 413 that says what to do. As web servers do ("lingering close"), the relay sends
//! its answer and a FIN, then reads and discards what the client still sends, for a bounded time
//! and number of bytes, before closing.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How long a closed connection is read from at most.
const LINGER_FOR: Duration = Duration::from_secs(2);
/// How many bytes a closed connection is read at most.
const LINGER_BYTES: u64 = 8 << 20;

/// What the HTTP server reads and writes: the socket, or TLS over it.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The socket as the HTTP server uses it; `released` turns true when the server lets go of it
/// (dropped: the connection ended), and stays false while an upgrade (a WebSocket) holds it.
pub(crate) struct Watched {
    tcp: TcpStream,
    released: Arc<AtomicBool>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.released.store(true, Ordering::Release);
    }
}

/// What closes the connection gently once the server has let go of it.
pub(crate) struct Linger {
    second: std::net::TcpStream,
    released: Arc<AtomicBool>,
}

/// Splits `tcp` into the stream the server uses and a second handle on the same socket, which
/// keeps it open after the server drops its own, so that [`Linger::close`] can end it.
pub(crate) fn watch(tcp: TcpStream) -> std::io::Result<(Watched, Linger)> {
    let std = tcp.into_std()?;
    let second = std.try_clone()?;
    let released = Arc::new(AtomicBool::new(false));
    Ok((
        Watched {
            tcp: TcpStream::from_std(std)?,
            released: Arc::clone(&released),
        },
        Linger { second, released },
    ))
}

impl Linger {
    /// Once the server has let go of the socket (not upgraded): sends a FIN after what was
    /// written, then discards what the client still sends until it closes too, for at most
    /// [`LINGER_FOR`] and [`LINGER_BYTES`]. An upgraded connection is left to its upgrade.
    pub(crate) async fn close(self) {
        if !self.released.load(Ordering::Acquire) {
            return;
        }
        let _ = self.second.shutdown(std::net::Shutdown::Write);
        let Ok(mut tcp) = TcpStream::from_std(self.second) else {
            return;
        };
        let drain = async {
            let mut buf = vec![0u8; 64 << 10];
            let mut read = 0u64;
            while read < LINGER_BYTES {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n as u64,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_FOR, drain).await;
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
