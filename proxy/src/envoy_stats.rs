//! Envoy's own stats (`envoy_cluster_*`, `envoy_server_*`) under the names and labels a real
//! Envoy gives them on `/stats/prometheus`.
//!
//! A [`StatScope`] is Envoy's stat scope: the series of one owner (a cluster, the server) with
//! the owner's fixed labels (`cluster_name`). Its cells are created once, with the owner, and
//! handed out as `Arc<AtomicU64>`: the request path increments them directly (or through a
//! `metrics::Counter` over the same cell) and never looks a series up by name. Series keys
//! are `metrics::Key`s and the page is written by `metrics-exporter-prometheus`'s formatter.
//!
//! The scope lives with its owner, not in a registry of the proxy: the page is rendered by
//! walking the current snapshot's clusters, so the series of a cluster that a push removed
//! disappear from the next scrape without any bookkeeping (as they do in Envoy, whose stats die
//! with the cluster), while a cluster kept across pushes keeps its counts.

use indexmap::IndexMap;
use metrics::{Key, Label};
use metrics_exporter_prometheus::formatting::{write_metric_line, write_type_line};
use metrics_exporter_prometheus::LabelSet;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A Prometheus metric type: Envoy's counters and gauges (its histograms are not rendered
/// by weft-proxy yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

struct Cell {
    /// The full Prometheus name, `envoy_` included.
    name: &'static str,
    kind: Kind,
    labels: LabelSet,
    value: Arc<AtomicU64>,
}

/// The series of one owner, created with it.
pub struct StatScope {
    labels: Vec<Label>,
    /// Appended to while the owner lives (a first response code, say); read by a scrape.
    cells: Mutex<Vec<Cell>>,
}

impl StatScope {
    /// A scope whose every series carries `labels` (after any label of its own, as Envoy
    /// orders them: `envoy_response_code` before `cluster_name`).
    pub fn new(labels: Vec<Label>) -> Self {
        StatScope {
            labels,
            cells: Mutex::new(Vec::new()),
        }
    }

    /// A new counter `name` (Envoy's Prometheus name, `envoy_` included).
    pub fn counter(&self, name: &'static str) -> Arc<AtomicU64> {
        self.cell(name, Kind::Counter, None)
    }

    /// A new counter `name` with one label of its own.
    pub fn counter_with(&self, name: &'static str, label: Label) -> Arc<AtomicU64> {
        self.cell(name, Kind::Counter, Some(label))
    }

    /// A new gauge `name`, an integer as all of Envoy's gauges are.
    pub fn gauge(&self, name: &'static str) -> Arc<AtomicU64> {
        self.cell(name, Kind::Gauge, None)
    }

    fn cell(&self, name: &'static str, kind: Kind, own: Option<Label>) -> Arc<AtomicU64> {
        let labels: Vec<Label> = own.into_iter().chain(self.labels.iter().cloned()).collect();
        let key = Key::from_parts(name, labels);
        let value = Arc::new(AtomicU64::new(0));
        self.lock().push(Cell {
            name,
            kind,
            labels: LabelSet::from_key_and_global(&key, &IndexMap::new()),
            value: value.clone(),
        });
        value
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Cell>> {
        // Cells are only ever pushed whole, so a poisoned lock holds nothing half-written.
        self.cells.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One scrape: the series of every scope, grouped by name as Prometheus' text format needs
/// (one `# TYPE` line per name, however many clusters have the series).
#[derive(Default)]
pub struct Page {
    metrics: BTreeMap<&'static str, Family>,
}

/// The series of one metric name, from every scope.
struct Family {
    kind: Kind,
    series: Vec<(LabelSet, u64)>,
}

impl Page {
    pub fn add(&mut self, scope: &StatScope) {
        for cell in scope.lock().iter() {
            let family = self.metrics.entry(cell.name).or_insert_with(|| Family {
                kind: cell.kind,
                series: Vec::new(),
            });
            family
                .series
                .push((cell.labels.clone(), cell.value.load(Ordering::Relaxed)));
        }
    }

    /// Appends the page to `out` in Prometheus' text format, series sorted by name.
    pub fn render(self, out: &mut String) {
        for (name, family) in self.metrics {
            write_type_line(out, name, None, None, family.kind.as_str());
            for (labels, value) in family.series {
                write_metric_line::<&str, u64>(out, name, None, &labels, None, value, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(cluster: &str) -> StatScope {
        StatScope::new(vec![Label::new("cluster_name", cluster.to_string())])
    }

    #[test]
    fn series_of_several_scopes_share_one_type_line_and_keep_envoys_label_order() {
        let a = scope("a");
        let b = scope("b");
        a.counter("envoy_cluster_upstream_rq_total")
            .fetch_add(3, Ordering::Relaxed);
        b.counter("envoy_cluster_upstream_rq_total");
        a.counter_with(
            "envoy_cluster_upstream_rq",
            Label::new("envoy_response_code", "200"),
        )
        .fetch_add(2, Ordering::Relaxed);
        a.gauge("envoy_cluster_upstream_cx_active")
            .store(4, Ordering::Relaxed);
        let mut page = Page::default();
        page.add(&a);
        page.add(&b);
        let mut out = String::new();
        page.render(&mut out);
        assert_eq!(
            out,
            "# TYPE envoy_cluster_upstream_cx_active gauge\n\
             envoy_cluster_upstream_cx_active{cluster_name=\"a\"} 4\n\
             # TYPE envoy_cluster_upstream_rq counter\n\
             envoy_cluster_upstream_rq{envoy_response_code=\"200\",cluster_name=\"a\"} 2\n\
             # TYPE envoy_cluster_upstream_rq_total counter\n\
             envoy_cluster_upstream_rq_total{cluster_name=\"a\"} 3\n\
             envoy_cluster_upstream_rq_total{cluster_name=\"b\"} 0\n"
        );
    }

    #[test]
    fn a_scope_left_out_of_the_page_leaves_no_series() {
        let kept = scope("kept");
        let removed = scope("removed");
        kept.counter("envoy_cluster_upstream_rq_total");
        removed.counter("envoy_cluster_upstream_rq_total");
        let mut page = Page::default();
        page.add(&kept);
        let mut out = String::new();
        page.render(&mut out);
        assert!(out.contains("cluster_name=\"kept\""), "{out}");
        assert!(!out.contains("removed"), "{out}");
    }

    #[test]
    fn label_values_are_escaped() {
        let s = scope("outbound|80||a\"b");
        s.counter("envoy_cluster_upstream_rq_total");
        let mut page = Page::default();
        page.add(&s);
        let mut out = String::new();
        page.render(&mut out);
        assert!(out.contains(r#"cluster_name="outbound|80||a\"b""#), "{out}");
    }
}
