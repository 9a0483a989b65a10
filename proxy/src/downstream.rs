//! A downstream connection as the listener hands it to what serves it (the HTTP connection
//! manager or the TCP proxy): its addresses, and its place in the proxy's connection count.

use crate::context::ProxyContext;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

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
