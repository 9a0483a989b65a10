//! Per-cluster request counters, Envoy's `cluster.<name>.upstream_rq_*` family.
//!
//! The counters are atomics owned by the cluster's runtime state, created once with the
//! cluster: a request bumps them without any lookup by name. Status codes are counted per
//! exact code in a fixed array, so the request path never allocates for them.

use std::sync::atomic::{AtomicU64, Ordering};

const CODES: usize = 600;

pub struct ClusterStats {
    pub rq_total: AtomicU64,
    pub cx_connect_fail: AtomicU64,
    pub rq_timeout: AtomicU64,
    pub cx_overflow: AtomicU64,
    pub rq_pending_overflow: AtomicU64,
    pub rq_retry_overflow: AtomicU64,
    pub ejections_enforced_total: AtomicU64,
    pub ejections_overflow: AtomicU64,
    pub ejections_enforced_consecutive_5xx: AtomicU64,
    pub ejections_enforced_consecutive_gateway_failure: AtomicU64,
    pub ejections_enforced_consecutive_local_origin_failure: AtomicU64,
    pub ejections_detected_consecutive_5xx: AtomicU64,
    pub ejections_detected_consecutive_gateway_failure: AtomicU64,
    pub ejections_detected_consecutive_local_origin_failure: AtomicU64,
    /// Outcomes the outlier detector's queue had no room for.
    pub outlier_reports_dropped: AtomicU64,
    by_code: Box<[AtomicU64]>,
}

impl Default for ClusterStats {
    fn default() -> Self {
        ClusterStats {
            rq_total: AtomicU64::new(0),
            cx_connect_fail: AtomicU64::new(0),
            rq_timeout: AtomicU64::new(0),
            cx_overflow: AtomicU64::new(0),
            rq_pending_overflow: AtomicU64::new(0),
            rq_retry_overflow: AtomicU64::new(0),
            ejections_enforced_total: AtomicU64::new(0),
            ejections_overflow: AtomicU64::new(0),
            ejections_enforced_consecutive_5xx: AtomicU64::new(0),
            ejections_enforced_consecutive_gateway_failure: AtomicU64::new(0),
            ejections_enforced_consecutive_local_origin_failure: AtomicU64::new(0),
            ejections_detected_consecutive_5xx: AtomicU64::new(0),
            ejections_detected_consecutive_gateway_failure: AtomicU64::new(0),
            ejections_detected_consecutive_local_origin_failure: AtomicU64::new(0),
            outlier_reports_dropped: AtomicU64::new(0),
            by_code: (0..CODES).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl ClusterStats {
    pub fn record(&self, status: u16) {
        self.rq_total.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = self.by_code.get(usize::from(status)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (code, count) for every code seen.
    pub fn codes(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.by_code.iter().enumerate().filter_map(|(code, c)| {
            let n = c.load(Ordering::Relaxed);
            (n > 0).then_some((code as u16, n))
        })
    }
}
