//! Per-cluster stats, Envoy's `cluster.<name>.*` family, as the `envoy_cluster_*` series of the
//! cluster's [`StatScope`] (label `cluster_name`).
//!
//! Every counter is a cell created once with the cluster and kept across reloads with the
//! cluster's runtime state: a request bumps it without any lookup by name. Response codes get
//! their `upstream_rq{envoy_response_code}` and `upstream_rq_xx{envoy_response_code_class}`
//! cells on first sight (as Envoy creates those stats when first used), through a fixed slot
//! per code, so the request path never allocates or hashes for them. Gauges that are a view of
//! other state (circuit breakers, membership, ejections) are set when a scrape reads them.

use crate::envoy_stats::{Page, StatScope};
use metrics::Label;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// HTTP status codes are three digits; anything outside counts in `upstream_rq_total` only.
const FIRST_CODE: u16 = 100;
const LAST_CODE: u16 = 599;

pub struct ClusterStats {
    scope: StatScope,
    pub rq_total: Arc<AtomicU64>,
    pub rq_retry: Arc<AtomicU64>,
    pub rq_timeout: Arc<AtomicU64>,
    pub rq_per_try_timeout: Arc<AtomicU64>,
    pub cx_total: Arc<AtomicU64>,
    pub cx_connect_fail: Arc<AtomicU64>,
    pub cx_overflow: Arc<AtomicU64>,
    pub rq_pending_overflow: Arc<AtomicU64>,
    pub rq_retry_overflow: Arc<AtomicU64>,
    pub ejections_enforced_total: Arc<AtomicU64>,
    pub ejections_overflow: Arc<AtomicU64>,
    pub ejections_enforced_consecutive_5xx: Arc<AtomicU64>,
    pub ejections_enforced_consecutive_gateway_failure: Arc<AtomicU64>,
    pub ejections_enforced_consecutive_local_origin_failure: Arc<AtomicU64>,
    pub ejections_detected_consecutive_5xx: Arc<AtomicU64>,
    pub ejections_detected_consecutive_gateway_failure: Arc<AtomicU64>,
    pub ejections_detected_consecutive_local_origin_failure: Arc<AtomicU64>,
    /// Outcomes the outlier detector's queue had no room for (not an Envoy stat: Envoy's
    /// detector runs inline and drops nothing).
    pub outlier_reports_dropped: Arc<AtomicU64>,
    /// Views of other state, set by [`ClusterStats::render`].
    pub(super) gauges: ClusterGauges,
    /// A counter per response code, the table made on the cluster's first request: it is 8 KB,
    /// and most clusters of a big mesh never carry a request through a given sidecar (with
    /// 3,000 clusters, the tables were 24 MB of a sidecar's heap, measured with heaptrack).
    by_code: OnceLock<Box<[OnceLock<Arc<AtomicU64>>]>>,
    by_class: [OnceLock<Arc<AtomicU64>>; 5],
}

/// Envoy's gauges of a cluster, set from the state they describe when a scrape reads them.
pub(super) struct ClusterGauges {
    pub cx_active: Arc<AtomicU64>,
    pub rq_active: Arc<AtomicU64>,
    pub rq_pending_active: Arc<AtomicU64>,
    /// (open, remaining) per breaker, in `Limits::gauges`' order.
    pub breakers: [(Arc<AtomicU64>, Arc<AtomicU64>); 4],
    pub membership_healthy: Arc<AtomicU64>,
    pub membership_total: Arc<AtomicU64>,
    pub ejections_active: Arc<AtomicU64>,
}

impl Default for ClusterStats {
    /// The stats of a cluster with no name (hosts built on their own, in tests).
    fn default() -> Self {
        ClusterStats::new("")
    }
}

impl ClusterStats {
    pub fn new(cluster: &str) -> Self {
        let scope = StatScope::new(vec![Label::new("cluster_name", cluster.to_string())]);
        let c = |name| scope.counter(name);
        let g = |name| scope.gauge(name);
        let breaker = |open, remaining| (g(open), g(remaining));
        let gauges = ClusterGauges {
            cx_active: g("envoy_cluster_upstream_cx_active"),
            rq_active: g("envoy_cluster_upstream_rq_active"),
            rq_pending_active: g("envoy_cluster_upstream_rq_pending_active"),
            breakers: [
                breaker(
                    "envoy_cluster_circuit_breakers_default_cx_open",
                    "envoy_cluster_circuit_breakers_default_remaining_cx",
                ),
                breaker(
                    "envoy_cluster_circuit_breakers_default_rq_pending_open",
                    "envoy_cluster_circuit_breakers_default_remaining_pending",
                ),
                breaker(
                    "envoy_cluster_circuit_breakers_default_rq_open",
                    "envoy_cluster_circuit_breakers_default_remaining_rq",
                ),
                breaker(
                    "envoy_cluster_circuit_breakers_default_rq_retry_open",
                    "envoy_cluster_circuit_breakers_default_remaining_retries",
                ),
            ],
            membership_healthy: g("envoy_cluster_membership_healthy"),
            membership_total: g("envoy_cluster_membership_total"),
            ejections_active: g("envoy_cluster_outlier_detection_ejections_active"),
        };
        ClusterStats {
            rq_total: c("envoy_cluster_upstream_rq_total"),
            rq_retry: c("envoy_cluster_upstream_rq_retry"),
            rq_timeout: c("envoy_cluster_upstream_rq_timeout"),
            rq_per_try_timeout: c("envoy_cluster_upstream_rq_per_try_timeout"),
            cx_total: c("envoy_cluster_upstream_cx_total"),
            cx_connect_fail: c("envoy_cluster_upstream_cx_connect_fail"),
            cx_overflow: c("envoy_cluster_upstream_cx_overflow"),
            rq_pending_overflow: c("envoy_cluster_upstream_rq_pending_overflow"),
            rq_retry_overflow: c("envoy_cluster_upstream_rq_retry_overflow"),
            ejections_enforced_total: c("envoy_cluster_outlier_detection_ejections_enforced_total"),
            ejections_overflow: c("envoy_cluster_outlier_detection_ejections_overflow"),
            ejections_enforced_consecutive_5xx: c(
                "envoy_cluster_outlier_detection_ejections_enforced_consecutive_5xx",
            ),
            ejections_enforced_consecutive_gateway_failure: c(
                "envoy_cluster_outlier_detection_ejections_enforced_consecutive_gateway_failure",
            ),
            ejections_enforced_consecutive_local_origin_failure: c(
                "envoy_cluster_outlier_detection_ejections_enforced_consecutive_local_origin_failure",
            ),
            ejections_detected_consecutive_5xx: c(
                "envoy_cluster_outlier_detection_ejections_detected_consecutive_5xx",
            ),
            ejections_detected_consecutive_gateway_failure: c(
                "envoy_cluster_outlier_detection_ejections_detected_consecutive_gateway_failure",
            ),
            ejections_detected_consecutive_local_origin_failure: c(
                "envoy_cluster_outlier_detection_ejections_detected_consecutive_local_origin_failure",
            ),
            outlier_reports_dropped: c("weft_cluster_outlier_reports_dropped"),
            gauges,
            by_code: OnceLock::new(),
            by_class: Default::default(),
            scope,
        }
    }

    /// Counts a finished request with the response status the client got.
    pub fn record(&self, status: u16) {
        self.rq_total.fetch_add(1, Ordering::Relaxed);
        let by_code = self
            .by_code
            .get_or_init(|| (FIRST_CODE..=LAST_CODE).map(|_| OnceLock::new()).collect());
        let Some(slot) = status
            .checked_sub(FIRST_CODE)
            .and_then(|i| by_code.get(usize::from(i)))
        else {
            return;
        };
        slot.get_or_init(|| {
            self.scope.counter_with(
                "envoy_cluster_upstream_rq",
                Label::new("envoy_response_code", status.to_string()),
            )
        })
        .fetch_add(1, Ordering::Relaxed);
        let class = status / 100;
        self.by_class[usize::from(class - 1)]
            .get_or_init(|| {
                self.scope.counter_with(
                    "envoy_cluster_upstream_rq_xx",
                    Label::new("envoy_response_code_class", class.to_string()),
                )
            })
            .fetch_add(1, Ordering::Relaxed);
    }

    /// (code, count) for every code seen.
    pub fn codes(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.by_code
            .get()
            .into_iter()
            .flat_map(|by_code| by_code.iter())
            .zip(FIRST_CODE..)
            .filter_map(|(c, code)| {
                let n = c.get()?.load(Ordering::Relaxed);
                Some((code, n))
            })
    }

    /// Adds the cluster's series to a scrape (gauges set by the caller just before).
    pub fn render(&self, page: &mut Page) {
        page.add(&self.scope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(stats: &ClusterStats) -> String {
        let mut page = Page::default();
        stats.render(&mut page);
        let mut out = String::new();
        page.render(&mut out);
        out
    }

    #[test]
    fn codes_and_classes_appear_when_first_seen() {
        let s = ClusterStats::new("outbound|9080||reviews");
        let before = page(&s);
        assert!(!before.contains("envoy_cluster_upstream_rq{"), "{before}");
        assert_eq!(s.codes().count(), 0);
        assert!(
            before.contains(
                "envoy_cluster_upstream_rq_total{cluster_name=\"outbound|9080||reviews\"} 0"
            ),
            "{before}"
        );
        for status in [200, 200, 201, 503, 42, 600] {
            s.record(status);
        }
        let out = page(&s);
        let cluster = "cluster_name=\"outbound|9080||reviews\"";
        for line in [
            format!("envoy_cluster_upstream_rq_total{{{cluster}}} 6"),
            format!("envoy_cluster_upstream_rq{{envoy_response_code=\"200\",{cluster}}} 2"),
            format!("envoy_cluster_upstream_rq{{envoy_response_code=\"201\",{cluster}}} 1"),
            format!("envoy_cluster_upstream_rq{{envoy_response_code=\"503\",{cluster}}} 1"),
            format!("envoy_cluster_upstream_rq_xx{{envoy_response_code_class=\"2\",{cluster}}} 3"),
            format!("envoy_cluster_upstream_rq_xx{{envoy_response_code_class=\"5\",{cluster}}} 1"),
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
        // Codes that are not HTTP's count in the total only.
        assert!(!out.contains("envoy_response_code=\"42\""), "{out}");
        assert!(!out.contains("envoy_response_code=\"600\""), "{out}");
        assert_eq!(
            s.codes().collect::<Vec<_>>(),
            vec![(200, 2), (201, 1), (503, 1)]
        );
    }
}
