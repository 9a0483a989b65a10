//! A host's HTTP/2 connections: which one a new stream goes on, and when one is retired.
//!
//! A host starts with one multiplexed connection and gets another only when every open one
//! is full: each connection counts the streams it carries against the lower of the peer's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`, as h2 last reported it, and the cluster's own
//! `max_concurrent_streams` (as Envoy does). Beyond the peer's limit h2 would hold the request
//! back until a stream ends; a new connection serves it now instead. When no new connection
//! may be opened, a request goes on the least busy connection below the cluster's limit
//! (h2 queues it there if the peer's is lower), or waits for a stream to end.
//!
//! A connection is retired (never picked again; its streams in flight finish) when the peer
//! says it is going away (GOAWAY), refuses a stream (`REFUSED_STREAM`), hands a request back
//! unsent, or reaches its maximum duration or request count. Retired connections close when
//! their last stream ends.
//!
//! Two approximations, both erring towards queueing on h2 rather than failing: a stream
//! counts from the pick until its response headers arrive (hyper does not say when the
//! stream itself ends; the body module owns the response body), and the peer's limit is
//! learnt when the connection task next runs after its SETTINGS frame, so requests picked in
//! a connection's first round trip use h2's default (100).

use super::{expired, used_up, ProxyBody};
use crate::config::ConnectionOptions;
use hyper::client::conn::http2;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What the pool and the connection's task share about one connection.
#[derive(Debug)]
pub struct H2State {
    /// The peer's `SETTINGS_MAX_CONCURRENT_STREAMS`, as h2 reports it.
    max_streams: AtomicUsize,
    /// Streams picked on this connection whose response headers have not arrived.
    streams: AtomicUsize,
    /// No new stream may go on this connection.
    retired: AtomicBool,
    /// The cluster's `max_concurrent_streams`.
    local_max: usize,
    /// Notified when a stream ends on this connection while it was at `local_max`.
    freed: Arc<Notify>,
}

impl H2State {
    pub fn new(local_max: u32, freed: Arc<Notify>) -> Arc<Self> {
        Arc::new(H2State {
            // h2's own starting value until the peer's SETTINGS say otherwise.
            max_streams: AtomicUsize::new(100),
            streams: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
            local_max: usize::try_from(local_max).unwrap_or(usize::MAX).max(1),
            freed,
        })
    }

    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    fn has_room(&self) -> bool {
        // A peer that allows 0 streams would leave a request nowhere to go: it gets one.
        let max = self
            .max_streams
            .load(Ordering::Relaxed)
            .min(self.local_max)
            .max(1);
        self.streams.load(Ordering::Relaxed) < max
    }

    fn below_local_max(&self) -> bool {
        self.streams.load(Ordering::Relaxed) < self.local_max
    }
}

/// One stream counted on its connection until dropped.
pub struct StreamSlot(Arc<H2State>);

impl StreamSlot {
    pub fn state(&self) -> &Arc<H2State> {
        &self.0
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        // Only a connection at the cluster's limit can have requests waiting for it.
        if self.0.streams.fetch_sub(1, Ordering::Relaxed) >= self.0.local_max {
            self.0.freed.notify_waiters();
        }
    }
}

/// What [`H2Conns::least_busy`] found.
pub enum LeastBusy {
    Stream(http2::SendRequest<ProxyBody>, StreamSlot),
    /// Every usable connection carries the cluster's `max_concurrent_streams`.
    AllAtLimit,
    NoConnection,
}

/// One open connection as the pool holds it.
struct H2Conn {
    sender: http2::SendRequest<ProxyBody>,
    state: Arc<H2State>,
    opened: Instant,
    requests: u32,
}

/// A host's open HTTP/2 connections, oldest first.
#[derive(Default)]
pub struct H2Conns {
    conns: Vec<H2Conn>,
}

impl H2Conns {
    pub fn add(&mut self, sender: http2::SendRequest<ProxyBody>, state: Arc<H2State>) {
        self.conns.push(H2Conn {
            sender,
            state,
            opened: Instant::now(),
            requests: 0,
        });
    }

    /// A connection with room for one more stream, the oldest first (so newer ones empty
    /// out and age away when load drops), with the stream counted on it. Connections that
    /// are closed, retired or past their limits are dropped from the set here.
    pub fn pick(
        &mut self,
        options: &ConnectionOptions,
    ) -> Option<(http2::SendRequest<ProxyBody>, StreamSlot)> {
        let now = Instant::now();
        self.conns.retain(|c| {
            !c.sender.is_closed()
                && !c.state.is_retired()
                && !expired(options, c.opened, now, now)
                && !used_up(options, c.requests)
        });
        let conn = self.conns.iter_mut().find(|c| c.state.has_room())?;
        Some(Self::take(conn))
    }

    /// The least busy usable connection below the cluster's stream limit, even if it is at
    /// the peer's (h2 queues the stream until one ends), for when no new connection may be
    /// opened.
    pub fn least_busy(&mut self) -> LeastBusy {
        let mut usable = self
            .conns
            .iter_mut()
            .filter(|c| !c.sender.is_closed() && !c.state.is_retired())
            .peekable();
        if usable.peek().is_none() {
            return LeastBusy::NoConnection;
        }
        match usable
            .filter(|c| c.state.below_local_max())
            .min_by_key(|c| c.state.streams.load(Ordering::Relaxed))
        {
            Some(conn) => {
                let (sender, stream) = Self::take(conn);
                LeastBusy::Stream(sender, stream)
            }
            None => LeastBusy::AllAtLimit,
        }
    }

    fn take(conn: &mut H2Conn) -> (http2::SendRequest<ProxyBody>, StreamSlot) {
        conn.requests += 1;
        conn.state.streams.fetch_add(1, Ordering::Relaxed);
        (conn.sender.clone(), StreamSlot(conn.state.clone()))
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }
}

/// Drives a connection to its end, noting the peer's stream limit each time it runs (the
/// limit is only readable on the connection object, which this task owns).
pub async fn drive<C>(conn: C, state: Arc<H2State>, limit: impl Fn(&C) -> usize) -> C::Output
where
    C: Future,
{
    let mut conn = Box::pin(conn);
    std::future::poll_fn(|cx| {
        let polled = conn.as_mut().poll(cx);
        state.max_streams.store(limit(&*conn), Ordering::Relaxed);
        polled
    })
    .await
}

/// Whether a stream failed in a way that says the peer did not process it, so it is safe to
/// send again whatever the method: the peer refused it (`REFUSED_STREAM`) or said it was
/// going away before reaching it (a GOAWAY whose last stream id is below it).
pub fn unprocessed(e: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h2.is_go_away() && h2.is_remote());
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests;
