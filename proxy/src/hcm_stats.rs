//! The HTTP connection manager's own stats (Envoy's `http.<stat_prefix>.*`), rendered on
//! `/stats/prometheus` as Envoy's default tag extraction names them: `envoy_http_<stat>` with
//! an `envoy_http_conn_manager_prefix` label, and `downstream_rq_xx` with an
//! `envoy_response_code_class` label before it.
//!
//! One [`HcmStats`] per stat prefix, kept in [`HcmStatsTable`] for the life of the proxy: as in
//! Envoy, whose stats are named and so shared by every connection manager with the same
//! prefix, a listener update that recompiles a connection manager keeps counting on the same
//! series, and two connection managers with one prefix add up. A compiled connection manager
//! resolves its handle once (see `HttpConnectionConfig::stats`); requests and connections then
//! increment atomics.
//!
//! The label keeps the whole prefix. Envoy's default extractor takes only the prefix's first
//! dot-separated token (istiod's `outbound_0.0.0.0_9080` would become a label `outbound_0` and
//! a metric `envoy_http_0_0_0_9080_…`); a prefix without dots renders exactly as Envoy does.
//!
//! A module of its own, below both the connection manager that counts and the context that
//! holds the table, so neither depends on the other.

use crate::envoy_stats::{Page, StatScope};
use metrics::Label;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

type Cell = Arc<AtomicU64>;

/// The series of one stat prefix.
pub struct HcmStats {
    scope: StatScope,
    pub downstream_cx_total: Cell,
    pub downstream_cx_active: Cell,
    pub downstream_cx_http1_total: Cell,
    pub downstream_cx_http2_total: Cell,
    pub downstream_cx_http1_active: Cell,
    pub downstream_cx_http2_active: Cell,
    pub downstream_cx_destroy: Cell,
    pub downstream_cx_destroy_local: Cell,
    pub downstream_cx_destroy_remote: Cell,
    pub downstream_cx_destroy_active_rq: Cell,
    pub downstream_cx_destroy_local_active_rq: Cell,
    pub downstream_cx_destroy_remote_active_rq: Cell,
    pub downstream_cx_idle_timeout: Cell,
    pub downstream_cx_drain_close: Cell,
    pub downstream_rq_total: Cell,
    pub downstream_rq_http1_total: Cell,
    pub downstream_rq_http2_total: Cell,
    pub downstream_rq_active: Cell,
    pub downstream_rq_completed: Cell,
    /// `downstream_rq_1xx` … `downstream_rq_5xx`, by the code's first digit.
    pub downstream_rq_xx: [Cell; 5],
    pub downstream_rq_rx_reset: Cell,
    pub downstream_rq_idle_timeout: Cell,
    pub downstream_rq_header_timeout: Cell,
    pub downstream_rq_too_many_premature_resets: Cell,
    pub no_route: Cell,
    pub no_cluster: Cell,
}

impl HcmStats {
    pub fn new(stat_prefix: &str) -> Self {
        let scope = StatScope::new(vec![Label::new(
            "envoy_http_conn_manager_prefix",
            stat_prefix.to_string(),
        )]);
        let c = |name| scope.counter(name);
        let g = |name| scope.gauge(name);
        let class = |digit: &'static str| {
            scope.counter_with(
                "envoy_http_downstream_rq_xx",
                Label::new("envoy_response_code_class", digit),
            )
        };
        HcmStats {
            downstream_cx_total: c("envoy_http_downstream_cx_total"),
            downstream_cx_active: g("envoy_http_downstream_cx_active"),
            downstream_cx_http1_total: c("envoy_http_downstream_cx_http1_total"),
            downstream_cx_http2_total: c("envoy_http_downstream_cx_http2_total"),
            downstream_cx_http1_active: g("envoy_http_downstream_cx_http1_active"),
            downstream_cx_http2_active: g("envoy_http_downstream_cx_http2_active"),
            downstream_cx_destroy: c("envoy_http_downstream_cx_destroy"),
            downstream_cx_destroy_local: c("envoy_http_downstream_cx_destroy_local"),
            downstream_cx_destroy_remote: c("envoy_http_downstream_cx_destroy_remote"),
            downstream_cx_destroy_active_rq: c("envoy_http_downstream_cx_destroy_active_rq"),
            downstream_cx_destroy_local_active_rq: c(
                "envoy_http_downstream_cx_destroy_local_active_rq",
            ),
            downstream_cx_destroy_remote_active_rq: c(
                "envoy_http_downstream_cx_destroy_remote_active_rq",
            ),
            downstream_cx_idle_timeout: c("envoy_http_downstream_cx_idle_timeout"),
            downstream_cx_drain_close: c("envoy_http_downstream_cx_drain_close"),
            downstream_rq_total: c("envoy_http_downstream_rq_total"),
            downstream_rq_http1_total: c("envoy_http_downstream_rq_http1_total"),
            downstream_rq_http2_total: c("envoy_http_downstream_rq_http2_total"),
            downstream_rq_active: g("envoy_http_downstream_rq_active"),
            downstream_rq_completed: c("envoy_http_downstream_rq_completed"),
            downstream_rq_xx: ["1", "2", "3", "4", "5"].map(class),
            downstream_rq_rx_reset: c("envoy_http_downstream_rq_rx_reset"),
            downstream_rq_idle_timeout: c("envoy_http_downstream_rq_idle_timeout"),
            downstream_rq_header_timeout: c("envoy_http_downstream_rq_header_timeout"),
            downstream_rq_too_many_premature_resets: c(
                "envoy_http_downstream_rq_too_many_premature_resets",
            ),
            no_route: c("envoy_http_no_route"),
            no_cluster: c("envoy_http_no_cluster"),
            scope,
        }
    }

    /// A request's head arrived (HTTP/2 when `http2`, else HTTP/1.x).
    pub fn request_started(&self, http2: bool) {
        inc(&self.downstream_rq_total);
        inc(if http2 {
            &self.downstream_rq_http2_total
        } else {
            &self.downstream_rq_http1_total
        });
        inc(&self.downstream_rq_active);
    }

    /// A request started with [`Self::request_started`] is over. `status` is the response
    /// code sent (0 when none was), `completed` whether the response reached its end rather
    /// than the client leaving (Envoy's `downstream_rq_completed` leaves aborted requests out).
    pub fn request_ended(&self, status: u16, completed: bool) {
        dec(&self.downstream_rq_active);
        self.response_code(status);
        if completed {
            inc(&self.downstream_rq_completed);
        } else {
            inc(&self.downstream_rq_rx_reset);
        }
    }

    /// Counts `status` in its `downstream_rq_<n>xx` class (nothing for 0 or a code out of
    /// HTTP's range).
    pub fn response_code(&self, status: u16) {
        if let Some(cell) = (status / 100)
            .checked_sub(1)
            .and_then(|i| self.downstream_rq_xx.get(usize::from(i)))
        {
            inc(cell);
        }
    }

    /// Counts a new connection; the guard counts its protocol and how it ended.
    pub fn connection_opened(self: &Arc<Self>) -> ConnectionStats {
        inc(&self.downstream_cx_total);
        inc(&self.downstream_cx_active);
        ConnectionStats {
            stats: self.clone(),
            protocol: AtomicU64::new(PROTOCOL_UNKNOWN),
            ended: AtomicBool::new(false),
        }
    }

    fn add_to(&self, page: &mut Page) {
        page.add(&self.scope);
    }
}

fn inc(cell: &AtomicU64) {
    cell.fetch_add(1, Ordering::Relaxed);
}

fn dec(cell: &AtomicU64) {
    cell.fetch_sub(1, Ordering::Relaxed);
}

const PROTOCOL_UNKNOWN: u64 = 0;
const PROTOCOL_HTTP1: u64 = 1;
const PROTOCOL_HTTP2: u64 = 2;

/// Why a downstream connection ended, as Envoy tells local from remote closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// The client closed it (or broke it: a reset, a protocol error).
    Remote,
    /// The proxy closed it after a response that ended the connection (`Connection: close`).
    Local,
    /// The proxy closed it on draining.
    Drain,
    /// The proxy closed it after `idle_timeout`.
    Idle,
    /// The proxy closed it after `request_headers_timeout`.
    RequestHeadersTimeout,
    /// The proxy closed it: too many requests reset before being answered.
    PrematureResets,
}

/// One connection's place in its connection manager's stats: `downstream_cx_active` while it
/// lives, its protocol once known, and how it ended.
pub struct ConnectionStats {
    stats: Arc<HcmStats>,
    protocol: AtomicU64,
    ended: AtomicBool,
}

impl ConnectionStats {
    pub fn stats(&self) -> &Arc<HcmStats> {
        &self.stats
    }

    /// The protocol the client speaks, from its first request (later calls do nothing).
    pub fn protocol(&self, http2: bool) {
        if self.protocol.load(Ordering::Relaxed) != PROTOCOL_UNKNOWN {
            return;
        }
        let p = if http2 {
            PROTOCOL_HTTP2
        } else {
            PROTOCOL_HTTP1
        };
        let first = self
            .protocol
            .compare_exchange(PROTOCOL_UNKNOWN, p, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if first {
            let s = &self.stats;
            if http2 {
                inc(&s.downstream_cx_http2_total);
                inc(&s.downstream_cx_http2_active);
            } else {
                inc(&s.downstream_cx_http1_total);
                inc(&s.downstream_cx_http1_active);
            }
        }
    }

    /// The connection ended for `why` with `active_requests` still in flight. The guard's drop
    /// counts it as a remote close when this was not called.
    pub fn ended(&self, why: ConnectionEnd, active_requests: usize) {
        if self.ended.swap(true, Ordering::Relaxed) {
            return;
        }
        let s = &self.stats;
        let active = active_requests > 0;
        inc(&s.downstream_cx_destroy);
        if active {
            inc(&s.downstream_cx_destroy_active_rq);
        }
        let (destroyed, destroyed_active) = if why == ConnectionEnd::Remote {
            (
                &s.downstream_cx_destroy_remote,
                &s.downstream_cx_destroy_remote_active_rq,
            )
        } else {
            (
                &s.downstream_cx_destroy_local,
                &s.downstream_cx_destroy_local_active_rq,
            )
        };
        inc(destroyed);
        if active {
            inc(destroyed_active);
        }
        match why {
            ConnectionEnd::Remote | ConnectionEnd::Local => {}
            ConnectionEnd::Drain => inc(&s.downstream_cx_drain_close),
            ConnectionEnd::Idle => inc(&s.downstream_cx_idle_timeout),
            ConnectionEnd::RequestHeadersTimeout => inc(&s.downstream_rq_header_timeout),
            ConnectionEnd::PrematureResets => inc(&s.downstream_rq_too_many_premature_resets),
        }
    }
}

impl Drop for ConnectionStats {
    fn drop(&mut self) {
        self.ended(ConnectionEnd::Remote, 0);
        let s = &self.stats;
        dec(&s.downstream_cx_active);
        match self.protocol.load(Ordering::Relaxed) {
            PROTOCOL_HTTP1 => dec(&s.downstream_cx_http1_active),
            PROTOCOL_HTTP2 => dec(&s.downstream_cx_http2_active),
            _ => {}
        }
    }
}

/// The stats of every stat prefix seen since start. Locked when a compiled connection manager
/// first resolves its handle and when stats are rendered, never per request.
#[derive(Default)]
pub struct HcmStatsTable(Mutex<BTreeMap<String, Arc<HcmStats>>>);

impl HcmStatsTable {
    /// The stats of `stat_prefix`, the same ones for every caller.
    pub fn for_prefix(&self, stat_prefix: &str) -> Arc<HcmStats> {
        let mut table = self.lock();
        if let Some(s) = table.get(stat_prefix) {
            return s.clone();
        }
        let s = Arc::new(HcmStats::new(stat_prefix));
        table.insert(stat_prefix.to_string(), s.clone());
        s
    }

    /// Adds every prefix's series to a scrape.
    pub fn render(&self, page: &mut Page) {
        for s in self.lock().values() {
            s.add_to(page);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<HcmStats>>> {
        // Entries are inserted whole, so a poisoned lock holds nothing half-written.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A compiled connection manager's handle on its stats, resolved from the table by its first
/// connection and kept with the compiled config from then on.
#[derive(Default, Clone)]
pub struct StatsSlot(OnceLock<Arc<HcmStats>>);

impl StatsSlot {
    pub fn get_or_resolve(&self, table: &HcmStatsTable, stat_prefix: &str) -> &Arc<HcmStats> {
        self.0.get_or_init(|| table.for_prefix(stat_prefix))
    }
}

impl std::fmt::Debug for StatsSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "StatsSlot(resolved)"
        } else {
            "StatsSlot(unresolved)"
        })
    }
}

#[cfg(test)]
mod tests;
