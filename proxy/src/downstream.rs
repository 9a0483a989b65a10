//! A downstream connection as the listener hands it to what serves it (the HTTP connection
//! manager or the TCP proxy): its addresses, its place in the proxy's connection count, and
//! the bytes a listener filter already read from it.

use crate::context::ProxyContext;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Where a connection comes from and where it was going.
#[derive(Debug, Clone)]
pub struct DownstreamConnection {
    /// The listener whose chain serves it (after a `use_original_dst` hand-off, the one it was
    /// handed to).
    pub listener: Arc<str>,
    pub peer: SocketAddr,
    /// The local address: the original destination when the listener recovered one, else the
    /// socket's own (Envoy's `%DOWNSTREAM_LOCAL_ADDRESS%`).
    pub local: SocketAddr,
    /// The destination iptables redirected the connection away from, if it was.
    pub original_dst: Option<SocketAddr>,
    /// Its listener is `INBOUND`: the proxy reports it as its workload's (destination) side.
    pub inbound: bool,
}

/// Counts the connection in `ProxyContext::open_connections` while it lives, and wakes a
/// draining proxy when the last one closes.
pub struct OpenConnection(Arc<ProxyContext>);

impl OpenConnection {
    pub fn ctx(&self) -> &Arc<ProxyContext> {
        &self.0
    }

    pub fn open(ctx: Arc<ProxyContext>) -> Self {
        ctx.open_connections.fetch_add(1, Ordering::AcqRel);
        OpenConnection(ctx)
    }

    /// Counts one more connection unless `limit` are open already. Counting at accept time,
    /// before the connection's task runs, keeps a burst of accepts from overshooting.
    pub fn try_open(ctx: &Arc<ProxyContext>, limit: usize) -> Option<Self> {
        ctx.open_connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| OpenConnection(ctx.clone()))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if self.0.open_connections.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.connections_closed.notify_waiters();
        }
    }
}

/// A connection with bytes already read from it put back in front.
pub struct Prefixed<T> {
    prefix: Vec<u8>,
    read: usize,
    inner: T,
}

impl<T> Prefixed<T> {
    pub fn new(prefix: Vec<u8>, inner: T) -> Self {
        Prefixed {
            prefix,
            read: 0,
            inner,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.read < this.prefix.len() {
            let rest = &this.prefix[this.read..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.read += n;
            if this.read == this.prefix.len() {
                // Done with it: give the memory back for the connection's lifetime.
                this.prefix = Vec::new();
                this.read = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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
}
