//! A cluster's circuit breakers: Envoy's DEFAULT-priority resource limits.
//!
//! Each resource is an atomic counter with an atomic maximum; taking one is a `fetch_add`
//! and, over the limit, a `fetch_sub` back, so no check ever takes a lock. The counters live
//! in the cluster's runtime state, which reloads carry over: a new limit applies to the next
//! request, and requests in flight keep the slots they hold.
//!
//! - connections: open upstream connections of all hosts. Over the limit a request does not
//!   fail but waits (as pending) for a connection to come free, except on a host with no
//!   connection at all, which opens one anyway so its requests cannot starve (Envoy does the
//!   same);
//! - pending requests: requests waiting for a connection (connecting, or waiting for one to be
//!   free); over the limit the request fails with `UO`;
//! - requests: requests in flight, until their response body ends;
//! - retries: retries in flight; over the limit the retry is not made.

use super::stats::ClusterStats;
use crate::config::{CircuitBreakers, ConnectionOptions};
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

pub struct Limits {
    max_connections: AtomicU64,
    max_pending: AtomicU64,
    max_requests: AtomicU64,
    max_retries: AtomicU64,
    pub connections: Arc<AtomicU64>,
    pub pending: Arc<AtomicU64>,
    pub requests: Arc<AtomicU64>,
    pub retries: Arc<AtomicU64>,
    /// Wakes requests waiting for a connection when one closes anywhere in the cluster.
    pub released: Notify,
    /// How the cluster's connections are kept; read at checkout.
    pub connection: ArcSwap<ConnectionOptions>,
    pub stats: Arc<ClusterStats>,
}

/// Which circuit breaker a request overflowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Overflow {
    #[error("pending requests overflow")]
    Pending,
    #[error("active requests overflow")]
    Requests,
}

impl Limits {
    pub fn new(
        cb: CircuitBreakers,
        connection: ConnectionOptions,
        stats: Arc<ClusterStats>,
    ) -> Self {
        let l = Limits {
            max_connections: AtomicU64::new(0),
            max_pending: AtomicU64::new(0),
            max_requests: AtomicU64::new(0),
            max_retries: AtomicU64::new(0),
            connections: Arc::default(),
            pending: Arc::default(),
            requests: Arc::default(),
            retries: Arc::default(),
            released: Notify::new(),
            connection: ArcSwap::from_pointee(connection),
            stats,
        };
        l.set(cb);
        l
    }

    /// New thresholds for the next requests; slots already held are kept.
    pub fn set(&self, cb: CircuitBreakers) {
        self.max_connections
            .store(cb.max_connections, Ordering::Relaxed);
        self.max_pending
            .store(cb.max_pending_requests, Ordering::Relaxed);
        self.max_requests.store(cb.max_requests, Ordering::Relaxed);
        self.max_retries.store(cb.max_retries, Ordering::Relaxed);
    }

    pub fn thresholds(&self) -> CircuitBreakers {
        CircuitBreakers {
            max_connections: self.max_connections.load(Ordering::Relaxed),
            max_pending_requests: self.max_pending.load(Ordering::Relaxed),
            max_requests: self.max_requests.load(Ordering::Relaxed),
            max_retries: self.max_retries.load(Ordering::Relaxed),
        }
    }

    /// A connection slot; `false` at the limit (the caller counts `upstream_cx_overflow`).
    pub fn try_connection(&self) -> bool {
        let taken = try_take(&self.connections, &self.max_connections);
        if taken {
            self.stats.cx_total.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    /// Counts a connection opened over the limit (a host's first one).
    pub fn force_connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.stats.cx_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
        self.released.notify_waiters();
    }

    /// A pending-request slot, held by the returned guard.
    pub fn try_pending(&self) -> Result<Slot, Overflow> {
        if try_take(&self.pending, &self.max_pending) {
            Ok(Slot(self.pending.clone()))
        } else {
            self.stats
                .rq_pending_overflow
                .fetch_add(1, Ordering::Relaxed);
            Err(Overflow::Pending)
        }
    }

    /// An active-request slot: the counter to hold (see `InFlight::with_slot`).
    pub fn try_request(&self) -> Result<Arc<AtomicU64>, Overflow> {
        if try_take(&self.requests, &self.max_requests) {
            Ok(self.requests.clone())
        } else {
            // Envoy counts a request refused by this breaker as a pending overflow too.
            self.stats
                .rq_pending_overflow
                .fetch_add(1, Ordering::Relaxed);
            Err(Overflow::Requests)
        }
    }

    /// A retry slot; `None` (and `upstream_rq_retry_overflow` counted) at the limit.
    pub fn try_retry(&self) -> Option<Slot> {
        if try_take(&self.retries, &self.max_retries) {
            Some(Slot(self.retries.clone()))
        } else {
            self.stats.rq_retry_overflow.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// (open, remaining) for each breaker, as Envoy's gauges: `cx`, `rq_pending`, `rq`,
    /// `rq_retry`.
    pub fn gauges(&self) -> [(&'static str, &'static str, bool, u64); 4] {
        let g = |c: &AtomicU64, m: &AtomicU64| {
            let (c, m) = (c.load(Ordering::Relaxed), m.load(Ordering::Relaxed));
            (c >= m, m.saturating_sub(c))
        };
        let (cx, cx_r) = g(&self.connections, &self.max_connections);
        let (p, p_r) = g(&self.pending, &self.max_pending);
        let (r, r_r) = g(&self.requests, &self.max_requests);
        let (rt, rt_r) = g(&self.retries, &self.max_retries);
        [
            ("cx_open", "remaining_cx", cx, cx_r),
            ("rq_pending_open", "remaining_pending", p, p_r),
            ("rq_open", "remaining_rq", r, r_r),
            ("rq_retry_open", "remaining_retries", rt, rt_r),
        ]
    }
}

fn try_take(counter: &AtomicU64, max: &AtomicU64) -> bool {
    let prev = counter.fetch_add(1, Ordering::Relaxed);
    if prev >= max.load(Ordering::Relaxed) {
        counter.fetch_sub(1, Ordering::Relaxed);
        false
    } else {
        true
    }
}

/// One taken slot of a counter, given back when dropped.
pub struct Slot(Arc<AtomicU64>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: u64) -> Limits {
        Limits::new(
            CircuitBreakers {
                max_connections: max,
                max_pending_requests: max,
                max_requests: max,
                max_retries: max,
            },
            ConnectionOptions::default(),
            Arc::default(),
        )
    }

    #[test]
    fn slots_are_given_back_and_limits_change_without_dropping_them() {
        let l = limits(1);
        let p = l.try_pending().expect("first");
        assert_eq!(l.try_pending().err(), Some(Overflow::Pending));
        assert_eq!(l.stats.rq_pending_overflow.load(Ordering::Relaxed), 1);
        drop(p);
        let p = l.try_pending().expect("free again");
        l.set(CircuitBreakers {
            max_pending_requests: 2,
            ..l.thresholds()
        });
        let q = l.try_pending().expect("raised limit");
        assert_eq!(l.pending.load(Ordering::Relaxed), 2);
        drop((p, q));
        assert_eq!(l.pending.load(Ordering::Relaxed), 0);
        let r = l.try_retry().expect("one retry");
        assert!(l.try_retry().is_none());
        assert_eq!(l.stats.rq_retry_overflow.load(Ordering::Relaxed), 1);
        drop(r);
        assert_eq!(l.gauges()[0], ("cx_open", "remaining_cx", false, 1));
    }
}
