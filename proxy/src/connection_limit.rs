//! Envoy's `envoy.filters.network.connection_limit`: a filter chain holds at most
//! `max_connections` connections at once; one past the limit is counted in
//! `limited_connections`, held for `delay` (so a client that retries at once does not spin) and
//! closed without being served.
//!
//! Two things are counted, on purpose apart, as in Envoy:
//! - the *limit* is counted per filter config ([`Limiter`]): connections admitted by one chain's
//!   filter with these settings. A listener update that leaves the chain and the filter as they
//!   were resolves the same limiter (the [`LimiterTable`] finds it by listener, chain and
//!   settings), so the connections already open keep counting against the limit; changed
//!   settings start a new count, like a new filter config in Envoy.
//! - the *stats* are named by `stat_prefix` ([`LimitStats`], Prometheus
//!   `envoy_connection_limit_active_connections` and `envoy_connection_limit_limited_connections`
//!   with an `envoy_connection_limit_prefix` label) and live as long as the proxy, as Envoy's
//!   named stats do, shared by every filter with that prefix.
//!
//! The admission check is one compare-and-swap on an atomic; the table's lock is taken once per
//! compiled filter config (see [`LimiterSlot`]) and when a scrape renders the stats.

use crate::envoy_stats::{Page, StatScope};
use crate::log_throttle::Throttle;
use metrics::Label;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

/// The stats of one `stat_prefix`.
pub struct LimitStats {
    scope: StatScope,
    /// Connections admitted and still open (a gauge).
    pub active_connections: Arc<AtomicU64>,
    /// Connections closed because the limit was reached.
    pub limited_connections: Arc<AtomicU64>,
}

impl LimitStats {
    fn new(stat_prefix: &str) -> Self {
        let scope = StatScope::new(vec![Label::new(
            "envoy_connection_limit_prefix",
            stat_prefix.to_string(),
        )]);
        LimitStats {
            active_connections: scope.gauge("envoy_connection_limit_active_connections"),
            limited_connections: scope.counter("envoy_connection_limit_limited_connections"),
            scope,
        }
    }
}

/// What one filter config enforces with.
pub struct Limiter {
    max: u64,
    open: AtomicU64,
    stats: Arc<LimitStats>,
    /// One "connection limited" log line per period for this filter.
    log: Mutex<Throttle>,
}

/// A connection the filter let through; the count goes down when it is dropped.
pub struct Admitted(Arc<Limiter>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0
            .stats
            .active_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Limiter {
    /// Admits one more connection unless `max` are open; a refusal is counted.
    pub fn try_admit(self: &Arc<Self>) -> Option<Admitted> {
        let max = self.max;
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if admitted {
            self.stats
                .active_connections
                .fetch_add(1, Ordering::Relaxed);
            Some(Admitted(self.clone()))
        } else {
            self.stats
                .limited_connections
                .fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    pub fn max_connections(&self) -> u64 {
        self.max
    }

    /// Whether a refusal may be logged now: `Some(refusals not logged since the last line)`.
    pub fn log_refusal(&self) -> Option<u64> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allow()
    }

    #[cfg(test)]
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Acquire)
    }
}

/// Which filter a limiter belongs to: the listener, the chain, and the filter's settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LimiterKey {
    pub listener: String,
    pub chain: String,
    pub stat_prefix: String,
    pub max_connections: u64,
    pub delay: Option<Duration>,
}

/// The limiters of the filter configs in use and the stats of every prefix seen.
#[derive(Default)]
pub struct LimiterTable {
    inner: Mutex<Tables>,
}

#[derive(Default)]
struct Tables {
    /// Weak: a limiter lives as long as a compiled config or an open connection holds it.
    limiters: HashMap<LimiterKey, Weak<Limiter>>,
    stats: BTreeMap<String, Arc<LimitStats>>,
}

impl LimiterTable {
    /// The limiter of the filter `key` names: the one already in use when there is one.
    pub fn limiter(&self, key: LimiterKey) -> Arc<Limiter> {
        let mut t = self.lock();
        if let Some(l) = t.limiters.get(&key).and_then(Weak::upgrade) {
            return l;
        }
        // Forget the filters no config and no connection uses any more.
        t.limiters.retain(|_, l| l.strong_count() > 0);
        let stats = t
            .stats
            .entry(key.stat_prefix.clone())
            .or_insert_with(|| Arc::new(LimitStats::new(&key.stat_prefix)))
            .clone();
        let limiter = Arc::new(Limiter {
            max: key.max_connections,
            open: AtomicU64::new(0),
            stats,
            log: Mutex::new(Throttle::default()),
        });
        t.limiters.insert(key, Arc::downgrade(&limiter));
        limiter
    }

    /// Adds every prefix's series to a scrape.
    pub fn render(&self, page: &mut Page) {
        for s in self.lock().stats.values() {
            page.add(&s.scope);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // Entries are inserted and removed whole, so a poisoned lock holds nothing half-written.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn limiters(&self) -> usize {
        self.lock().limiters.len()
    }
}

/// A compiled filter config's limiter, resolved from the table by its first connection.
#[derive(Default, Clone)]
pub struct LimiterSlot(OnceLock<Arc<Limiter>>);

impl LimiterSlot {
    pub fn get_or_resolve(
        &self,
        table: &LimiterTable,
        key: impl FnOnce() -> LimiterKey,
    ) -> &Arc<Limiter> {
        self.0.get_or_init(|| table.limiter(key()))
    }
}

impl std::fmt::Debug for LimiterSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.get() {
            Some(l) => write!(f, "LimiterSlot(open {})", l.open.load(Ordering::Relaxed)),
            None => f.write_str("LimiterSlot(unresolved)"),
        }
    }
}

#[cfg(test)]
mod tests;
