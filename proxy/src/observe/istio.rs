//! Istio's standard request metrics (`istio_requests_total`, `istio_request_duration_milliseconds`,
//! `istio_request_bytes`, `istio_response_bytes`) on the `metrics` facade, rendered by
//! `metrics-exporter-prometheus`.
//!
//! Each proxy owns its recorder rather than installing the process-global one, so several
//! proxies in one process (the in-process tests) keep their counts apart.
//!
//! The request path never builds a metric name or looks a series up by string: each
//! destination (a cluster, or "no cluster" for requests that never reached one) holds a
//! [`DestinationMetrics`] created once with its fixed labels, and that keeps the registered
//! handles per request-dependent label set (response code, flags, protocol, gRPC status)
//! under a packed integer key. The first request with a new label set registers it; every
//! later one reads the handles under an uncontended read lock.
//!
//! The destination workload comes from the endpoint that answered: weftd sends each endpoint's
//! identity in EDS as istiod does (see `config::WorkloadMetadata`), and the cluster keeps one
//! [`DestinationMetrics`] per workload, so a request picks its series through the host it
//! reached with no lookup. A request that reached no host, or a host without metadata, reports
//! the destination workload as `unknown`, as Istio does. Outbound TCP connections are counted
//! the same way: a workload's [`WorkloadSeries`] holds its HTTP and its TCP series.
//!
//! What a sidecar receives for its own workload is reported as `reporter="destination"`
//! ([`IstioMetrics::inbound`]), and TCP connections have their own four counters
//! ([`IstioMetrics::tcp`], see [`tcp`]); the labels are built in [`labels`].
//!
//! Labels Weft cannot know yet are `unknown`, as Istio reports them when it cannot tell:
//! principals and the source side of inbound traffic (no mTLS, so no peer metadata), the
//! source cluster (no cluster id), and `connection_security_policy` from the source (from the
//! destination it is `none`: there is no mTLS).

mod labels;
pub mod tcp;

pub use labels::Reporter;
pub use tcp::TcpMetrics;

use crate::config::WorkloadMetadata;
use labels::fixed_labels;
use metrics::{Counter, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

pub const REQUESTS_TOTAL: &str = "istio_requests_total";
pub const REQUEST_DURATION: &str = "istio_request_duration_milliseconds";
pub const REQUEST_BYTES: &str = "istio_request_bytes";
pub const RESPONSE_BYTES: &str = "istio_response_bytes";

/// Envoy's default histogram buckets, which Istio's stats extension uses for all three
/// request histograms.
pub const BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Who this proxy is: the source side of every request it reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceIdentity {
    pub workload: String,
    pub namespace: String,
    /// The workload's `app` label.
    pub app: Option<String>,
    /// The workload's `version` label.
    pub version: Option<String>,
}

/// The proxy's metric registry and its Prometheus renderer.
pub struct IstioMetrics {
    /// Shared with every [`TcpMetrics`], which registers a connection's closing flags itself.
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    identity: SourceIdentity,
    /// Outbound requests that reached no cluster (no route, direct responses, refused
    /// upgrades).
    unrouted: DestinationMetrics,
    /// The same for requests to the proxy's own workload.
    inbound_unrouted: DestinationMetrics,
}

impl IstioMetrics {
    pub fn new(source: &SourceIdentity) -> Self {
        let recorder = [REQUEST_DURATION, REQUEST_BYTES, RESPONSE_BYTES]
            .iter()
            .fold(PrometheusBuilder::new(), |b, name| {
                b.set_buckets_for_metric(Matcher::Full((*name).to_string()), &BUCKETS)
                    .unwrap_or_else(|_| unreachable!("the bucket list is not empty"))
            })
            .build_recorder();
        for (name, help) in [
            (
                REQUESTS_TOTAL,
                "Requests, by source, destination and response.",
            ),
            (REQUEST_DURATION, "Request durations in milliseconds."),
            (REQUEST_BYTES, "Request body sizes in bytes."),
            (RESPONSE_BYTES, "Response body sizes in bytes."),
        ] {
            if name == REQUESTS_TOTAL {
                recorder.describe_counter(name.into(), None, help.into());
            } else {
                recorder.describe_histogram(name.into(), None, help.into());
            }
        }
        tcp::describe(&recorder);
        let handle = recorder.handle();
        let unrouted = DestinationMetrics::new(Reporter::Source, source, None, None);
        let inbound_unrouted = DestinationMetrics::new(Reporter::Destination, source, None, None);
        IstioMetrics {
            recorder: Arc::new(recorder),
            handle,
            identity: source.clone(),
            unrouted,
            inbound_unrouted,
        }
    }

    /// The series of outbound requests to `cluster` answered by `workload`
    /// (`reporter="source"`), for [`DestinationMetrics`] kept with the cluster's hosts of that
    /// workload.
    pub fn destination(
        &self,
        cluster: &str,
        workload: Option<&WorkloadMetadata>,
    ) -> DestinationMetrics {
        DestinationMetrics::new(Reporter::Source, &self.identity, Some(cluster), workload)
    }

    /// The series of requests the proxy receives for its own workload through the inbound
    /// `cluster` (`reporter="destination"`): the destination is this proxy's workload, the
    /// service the cluster's when its name carries one (`inbound|PORT|SUBSET|HOST`), else the
    /// workload's canonical service, as Istio's inbound stats name it (see `labels`), and the
    /// source `unknown` (the caller's identity travels only in Istio's mTLS metadata
    /// exchange). Create it once per inbound cluster and keep it, like [`Self::destination`].
    pub fn inbound(&self, cluster: &str) -> DestinationMetrics {
        DestinationMetrics::new(Reporter::Destination, &self.identity, Some(cluster), None)
    }

    /// The four TCP counters of connections through `cluster`, reported as `reporter`.
    /// `peer` is the other end's workload when the proxy knows it: for `Reporter::Source`, the
    /// endpoint's EDS metadata (its `destination_*` labels); for `Reporter::Destination`, the
    /// caller's, which Weft never knows without mTLS (pass `None`: `source_*` are `unknown`).
    /// Create it once per (cluster, workload) and keep it with the cluster's hosts: every
    /// series is registered here, none per connection.
    pub fn tcp(
        &self,
        cluster: &str,
        peer: Option<&WorkloadMetadata>,
        reporter: Reporter,
    ) -> TcpMetrics {
        TcpMetrics::new(
            self.recorder.clone(),
            reporter,
            fixed_labels(reporter, &self.identity, Some(cluster), peer),
        )
    }

    pub fn unrouted(&self) -> &DestinationMetrics {
        &self.unrouted
    }

    /// Inbound requests that reached no cluster (`reporter="destination"`).
    pub fn inbound_unrouted(&self) -> &DestinationMetrics {
        &self.inbound_unrouted
    }

    /// Every series in Prometheus' text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds recorded histogram samples into their buckets so they do not pile up between
    /// scrapes; the admin server runs it periodically.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// Istio's series of one workload behind one cluster, as the source reports them: its HTTP
/// requests and its TCP connections, each registered by the first request or connection that
/// workload answers. The cluster's hosts of one workload share one, kept across reloads, so a
/// request or connection reaches its series through the host it picked, with no lookup.
#[derive(Default)]
pub struct WorkloadSeries {
    http: OnceLock<DestinationMetrics>,
    tcp: OnceLock<TcpMetrics>,
}

impl WorkloadSeries {
    /// The request series of `workload` behind `cluster` (see [`IstioMetrics::destination`]).
    pub fn http(
        &self,
        metrics: &IstioMetrics,
        cluster: &str,
        workload: &WorkloadMetadata,
    ) -> &DestinationMetrics {
        self.http
            .get_or_init(|| metrics.destination(cluster, Some(workload)))
    }

    /// The TCP series of connections to `cluster` that `workload` answered: the
    /// `destination_*` labels are the endpoint's, as for its HTTP requests.
    pub fn tcp(
        &self,
        metrics: &IstioMetrics,
        cluster: &str,
        workload: &WorkloadMetadata,
    ) -> &TcpMetrics {
        self.tcp
            .get_or_init(|| metrics.tcp(cluster, Some(workload), Reporter::Source))
    }
}

/// One finished request, as the metrics see it.
#[derive(Debug, Clone, Copy)]
pub struct RequestSample {
    pub status: u16,
    /// Envoy's response flags as a bit set, and how to spell them for the `response_flags`
    /// label (called only when the label set is new).
    pub flags: u16,
    pub flags_label: fn(u16) -> String,
    pub grpc: bool,
    /// The response's `grpc-status` header, when it has one.
    pub grpc_status: Option<u16>,
    pub duration_ms: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

impl RequestSample {
    /// The request-dependent labels packed in one integer.
    fn key(&self) -> u64 {
        let grpc_status = self.grpc_status.map_or(0, |s| u64::from(s) + 1);
        u64::from(self.status)
            | u64::from(self.flags) << 16
            | u64::from(self.grpc) << 32
            | grpc_status << 33
    }
}

struct RequestHandles {
    requests: Counter,
    duration: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

/// The series of one destination, created once per cluster and kept across reloads.
pub struct DestinationMetrics {
    /// Source and destination labels, in Istio's order up to the request-dependent ones.
    labels: Vec<Label>,
    security_policy: &'static str,
    sets: RwLock<HashMap<u64, RequestHandles, BuildHasherDefault<PackedKeyHasher>>>,
}

/// Hashes a [`RequestSample::key`], already unique per label set, by one multiplication
/// instead of SipHash: the keys come from a small bounded set (HTTP status 100-999, flag bits,
/// gRPC codes 0-16), so there is nothing for a flooding attack to aim at.
#[derive(Default)]
pub(super) struct PackedKeyHasher(u64);

impl Hasher for PackedKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing spreads the key's bits over the whole word, high bits included.
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl DestinationMetrics {
    fn new(
        reporter: Reporter,
        own: &SourceIdentity,
        cluster: Option<&str>,
        peer: Option<&WorkloadMetadata>,
    ) -> Self {
        DestinationMetrics {
            labels: fixed_labels(reporter, own, cluster, peer),
            security_policy: reporter.security_policy(),
            sets: RwLock::new(HashMap::default()),
        }
    }

    pub fn record(&self, metrics: &IstioMetrics, sample: &RequestSample) {
        let key = sample.key();
        {
            let sets = self.sets.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(h) = sets.get(&key) {
                h.record(sample);
                return;
            }
        }
        // A new label set: registered once. Two threads racing here register the same
        // series twice, which the recorder resolves to one.
        let handles = self.register(&metrics.recorder, sample);
        handles.record(sample);
        self.sets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert(handles);
    }

    fn register(&self, recorder: &PrometheusRecorder, sample: &RequestSample) -> RequestHandles {
        let labels = self.series_labels(sample);
        let meta = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));
        let key = |name: &'static str| Key::from_parts(name, labels.clone());
        RequestHandles {
            requests: recorder.register_counter(&key(REQUESTS_TOTAL), &meta),
            duration: recorder.register_histogram(&key(REQUEST_DURATION), &meta),
            request_bytes: recorder.register_histogram(&key(REQUEST_BYTES), &meta),
            response_bytes: recorder.register_histogram(&key(RESPONSE_BYTES), &meta),
        }
    }

    /// All labels of the series `sample` belongs to, in Istio's order.
    fn series_labels(&self, sample: &RequestSample) -> Vec<Label> {
        let mut labels = self.labels.clone();
        let protocol = if sample.grpc { "grpc" } else { "http" };
        let grpc_status = sample
            .grpc_status
            .map(|s| s.to_string())
            .unwrap_or_default();
        labels.extend([
            Label::new("request_protocol", protocol),
            Label::new("response_code", sample.status.to_string()),
            Label::new("grpc_response_status", grpc_status),
            Label::new("response_flags", (sample.flags_label)(sample.flags)),
            Label::new("connection_security_policy", self.security_policy),
        ]);
        labels
    }
}

impl RequestHandles {
    fn record(&self, s: &RequestSample) {
        self.requests.increment(1);
        self.duration.record(s.duration_ms);
        self.request_bytes.record(s.request_bytes as f64);
        self.response_bytes.record(s.response_bytes as f64);
    }
}

#[cfg(test)]
mod tests;
