//! One accepted connection: what its requests share, and the socket that counts what it sent.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::fault::Host;

/// What one accepted connection shares with the requests it carries.
#[derive(Debug)]
pub(crate) struct ConnShared {
    pub(crate) host: Host,
    /// Accept order, for telling kept-alive connections apart in the request log.
    pub(crate) id: u64,
    /// Bytes the socket accepted so far (all responses of this connection).
    pub(crate) written: AtomicU64,
    /// Close with a TCP reset when the connection ends.
    pub(crate) reset: AtomicBool,
    /// This connection's own rate cap in bytes per second (0: none), set by a fault.
    pub(crate) slow: AtomicU64,
}

impl ConnShared {
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    pub(crate) fn reset_on_close(&self) {
        self.reset.store(true, Ordering::Release);
    }

    /// Holds this connection to `bytes_per_sec` from now on.
    pub(crate) fn slow_down(&self, bytes_per_sec: u64) {
        self.slow.store(bytes_per_sec, Ordering::Release);
    }

    /// The rate this connection sends at under a hub-wide cap of `hub_rate` (0: none).
    pub(crate) fn rate(&self, hub_rate: u64) -> u64 {
        match (self.slow.load(Ordering::Acquire), hub_rate) {
            (0, r) | (r, 0) => r,
            (a, b) => a.min(b),
        }
    }
}

/// Request extension: the connection a request arrived on.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo(pub(crate) Arc<ConnShared>);

/// A TCP stream that counts the bytes the socket accepts, so byte counters report what was
/// really written rather than what was handed to the HTTP layer.
pub(crate) struct MeteredIo {
    pub(crate) inner: TcpStream,
    pub(crate) conn: Arc<ConnShared>,
}

impl MeteredIo {
    fn count(&self, r: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = r {
            self.conn.written.fetch_add(*n as u64, Ordering::AcqRel);
        }
    }
}

impl AsyncRead for MeteredIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for MeteredIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.count(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.count(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.conn.reset.load(Ordering::Acquire) {
            // A reset must not be preceded by a FIN: skip the orderly shutdown.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Drop for MeteredIo {
    fn drop(&mut self) {
        if self.conn.reset.load(Ordering::Acquire) {
            // SO_LINGER 0: closing sends RST. Failure only means an ordinary close.
            let _ = self.inner.set_zero_linger();
        }
    }
}
