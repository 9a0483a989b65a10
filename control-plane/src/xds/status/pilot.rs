//! weftd's `/metrics` on the `metrics` facade, rendered by `metrics-exporter-prometheus`, with
//! istiod's names where istiod has the series:
//!
//! - `pilot_xds` (gauge): proxies with an open ADS stream;
//! - `pilot_xds_pushes{type}` (counter): xDS responses sent, by istiod's short type name
//!   (`cds`, `eds`, `lds`, `rds`, `sds`; anything else `other`);
//! - `pilot_total_xds_rejects{type}` (counter): responses a proxy NACKed;
//! - `pilot_proxy_convergence_time` (histogram, seconds, istiod's buckets): from a
//!   configuration change to a proxy's ACK of everything it was sent for it.
//!
//! and weftd's own where istiod has none: `weftd_xds_connections_total`, `weftd_xds_acks_total`,
//! `weftd_config_errors`, `weftd_config_warnings`, `weftd_config_reloads_total`.
//!
//! Every handle is registered once, here; the streams' status hooks only increment them. The
//! recorder belongs to the registry rather than being the process-global one, so several weftd
//! instances in one test process keep their counts apart.

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const PILOT_XDS: &str = "pilot_xds";
const PUSHES: &str = "pilot_xds_pushes";
const REJECTS: &str = "pilot_total_xds_rejects";
const CONVERGENCE: &str = "pilot_proxy_convergence_time";

/// istiod's buckets for `pilot_proxy_convergence_time`, in seconds.
const CONVERGENCE_BUCKETS: [f64; 8] = [0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0, 30.0];

/// The xDS types istiod names in the `type` label, in the order of [`type_index`].
const TYPES: [&str; 6] = ["cds", "eds", "lds", "rds", "sds", "other"];

/// istiod's short name of a type URL, as an index into [`TYPES`].
fn type_index(type_url: &str) -> usize {
    let short = match type_url.rsplit('.').next() {
        Some("Cluster") => "cds",
        Some("ClusterLoadAssignment") => "eds",
        Some("Listener") => "lds",
        Some("RouteConfiguration") => "rds",
        Some("Secret") => "sds",
        _ => "other",
    };
    TYPES
        .iter()
        .position(|t| *t == short)
        .unwrap_or(TYPES.len() - 1)
}

/// What the daemon (not the streams) knows, read when a scrape renders.
#[derive(Debug, Clone, Copy, Default)]
pub struct DaemonView {
    pub connected: usize,
    pub config_errors: usize,
    pub config_warnings: usize,
}

pub struct XdsMetrics {
    handle: PrometheusHandle,
    connected: Gauge,
    pushes: [Counter; TYPES.len()],
    rejects: [Counter; TYPES.len()],
    convergence: Histogram,
    connections: Counter,
    acks: Counter,
    config_errors: Gauge,
    config_warnings: Gauge,
    reloads: Counter,
}

impl Default for XdsMetrics {
    fn default() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(CONVERGENCE.into()), &CONVERGENCE_BUCKETS)
            .unwrap_or_else(|_| unreachable!("the bucket list is not empty"))
            .build_recorder();
        let meta = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));
        // The exporter keeps one description per name, whatever the kind.
        let describe = |name: &'static str, help: &'static str| {
            recorder.describe_counter(name.into(), None, help.into());
        };
        describe(PILOT_XDS, "Proxies connected to weftd over ADS.");
        describe(PUSHES, "xDS responses sent, by type.");
        describe(REJECTS, "xDS responses NACKed by a proxy, by type.");
        describe(
            CONVERGENCE,
            "Seconds from a configuration change to a proxy's ACK of all of it.",
        );
        describe("weftd_xds_connections_total", "ADS streams opened.");
        describe("weftd_xds_acks_total", "xDS responses ACKed.");
        describe(
            "weftd_config_errors",
            "Errors in the configuration folder now.",
        );
        describe(
            "weftd_config_warnings",
            "Warnings about the configuration folder now.",
        );
        describe(
            "weftd_config_reloads_total",
            "Configuration versions published.",
        );
        let counter = |name: &'static str| recorder.register_counter(&Key::from_name(name), &meta);
        let gauge = |name: &'static str| recorder.register_gauge(&Key::from_name(name), &meta);
        let by_type = |name: &'static str| {
            TYPES.map(|t| {
                let key = Key::from_parts(name, vec![Label::new("type", t)]);
                recorder.register_counter(&key, &meta)
            })
        };
        XdsMetrics {
            connected: gauge(PILOT_XDS),
            pushes: by_type(PUSHES),
            rejects: by_type(REJECTS),
            convergence: recorder.register_histogram(&Key::from_name(CONVERGENCE), &meta),
            connections: counter("weftd_xds_connections_total"),
            acks: counter("weftd_xds_acks_total"),
            config_errors: gauge("weftd_config_errors"),
            config_warnings: gauge("weftd_config_warnings"),
            reloads: counter("weftd_config_reloads_total"),
            handle: recorder.handle(),
        }
    }
}

impl std::fmt::Debug for XdsMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdsMetrics").finish_non_exhaustive()
    }
}

impl XdsMetrics {
    pub(super) fn connected(&self) {
        self.connections.increment(1);
    }

    pub(super) fn pushed(&self, type_url: &str) {
        self.pushes[type_index(type_url)].increment(1);
    }

    pub(super) fn acked(&self) {
        self.acks.increment(1);
    }

    pub(super) fn rejected(&self, type_url: &str) {
        self.rejects[type_index(type_url)].increment(1);
    }

    pub(super) fn converged(&self, seconds: f64) {
        self.convergence.record(seconds);
    }

    /// The daemon published a new configuration version.
    pub fn reloaded(&self) {
        self.reloads.increment(1);
    }

    /// Every series in Prometheus' text format, the daemon's gauges set from `view` first.
    pub fn render(&self, view: DaemonView) -> String {
        self.connected.set(view.connected as f64);
        self.config_errors.set(view.config_errors as f64);
        self.config_warnings.set(view.config_warnings as f64);
        self.handle.render()
    }

    /// Folds recorded histogram samples into their buckets between scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xds_protos::type_url;

    fn value(page: &str, series: &str) -> String {
        page.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{page}"))
            .to_string()
    }

    #[test]
    fn type_urls_get_istiods_short_names() {
        assert_eq!(TYPES[type_index(type_url::CLUSTER)], "cds");
        assert_eq!(TYPES[type_index(type_url::ENDPOINT)], "eds");
        assert_eq!(TYPES[type_index(type_url::LISTENER)], "lds");
        assert_eq!(TYPES[type_index(type_url::ROUTE)], "rds");
        assert_eq!(
            TYPES[type_index(
                "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
            )],
            "sds"
        );
        assert_eq!(TYPES[type_index("type.googleapis.com/x.Y")], "other");
    }

    #[test]
    fn pushes_rejects_and_convergence_under_istiods_names() {
        let m = XdsMetrics::default();
        m.connected();
        m.pushed(type_url::CLUSTER);
        m.pushed(type_url::CLUSTER);
        m.pushed(type_url::ENDPOINT);
        m.rejected(type_url::ROUTE);
        m.acked();
        m.converged(0.3);
        m.converged(4.0);
        for _ in 0..3 {
            m.reloaded();
        }
        let view = DaemonView {
            connected: 2,
            config_errors: 1,
            config_warnings: 0,
        };
        let page = m.render(view);
        assert_eq!(value(&page, "pilot_xds"), "2");
        assert_eq!(value(&page, "pilot_xds_pushes{type=\"cds\"}"), "2");
        assert_eq!(value(&page, "pilot_xds_pushes{type=\"eds\"}"), "1");
        assert_eq!(value(&page, "pilot_xds_pushes{type=\"lds\"}"), "0");
        assert_eq!(value(&page, "pilot_total_xds_rejects{type=\"rds\"}"), "1");
        assert_eq!(value(&page, "pilot_proxy_convergence_time_count"), "2");
        assert_eq!(
            value(&page, "pilot_proxy_convergence_time_bucket{le=\"0.5\"}"),
            "1"
        );
        assert_eq!(
            value(&page, "pilot_proxy_convergence_time_bucket{le=\"5\"}"),
            "2"
        );
        assert_eq!(value(&page, "weftd_config_errors"), "1");
        assert_eq!(value(&page, "weftd_config_reloads_total"), "3");
        assert!(page.contains("# TYPE pilot_xds_pushes counter"), "{page}");
        assert!(
            page.contains("# TYPE pilot_proxy_convergence_time histogram"),
            "{page}"
        );
    }
}
