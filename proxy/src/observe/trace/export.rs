//! Span export: OpenTelemetry's batch span processor in front of the OTLP gRPC exporter, one
//! per collector and service name.
//!
//! The request path only hands a finished span over: a counter of spans not yet exported
//! bounds the queue (the tracer's `max_cache_size`), and a span that finds it full is dropped
//! and counted, never waited for. The batch processor exports on its own thread.
//!
//! A collector named by cluster (istiod's way: `outbound|4317||otel-collector…`) is found in
//! the proxy's cluster state. The hosts are copied into the sink whenever a span is handed
//! over (only when they changed), and the gRPC channel's connector picks from that list each
//! time it (re)connects, so a collector that moves is followed without a new exporter.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::rt::TokioIo;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SpanData, SpanExporter, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use tonic::transport::{Channel, Endpoint};

use crate::config::{Collector, EndpointAddress, TracingConfig};

/// How long one connection attempt to a collector may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How often queued spans are exported (Envoy's OpenTelemetry tracer flushes every 5 s; a
/// shorter interval keeps traces prompt at the same batch sizes).
const EXPORT_INTERVAL: Duration = Duration::from_secs(1);
const MAX_EXPORT_BATCH: usize = 512;
/// Sinks kept at once; past it, sinks no configuration refers to any more are shut down.
const SINKS_BEFORE_CLEANUP: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot build the OTLP exporter for {collector}: {reason}")]
    Build { collector: String, reason: String },
}

/// Every exporter of the proxy, shared by all listeners.
#[derive(Default)]
pub struct TraceExport {
    sinks: ArcSwap<HashMap<SinkKey, Arc<SpanSink>>>,
    /// Serialises sink creation; the request path never takes it once a sink exists.
    creating: Mutex<()>,
    node_id: OnceLock<String>,
    dropped: AtomicU64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SinkKey {
    collector: Collector,
    service_name: String,
    max_queued: usize,
    timeout: Duration,
    sdk_attributes: bool,
}

impl SinkKey {
    fn of(c: &TracingConfig) -> SinkKey {
        SinkKey {
            collector: c.collector.clone(),
            service_name: c.service_name.clone(),
            max_queued: c.max_queued_spans,
            timeout: c.export_timeout,
            sdk_attributes: c.sdk_resource_attributes,
        }
    }
}

impl TraceExport {
    /// The proxy's node id, reported as every span's `node_id` tag. Set once at startup.
    pub fn set_node_id(&self, id: String) {
        let _ = self.node_id.set(id);
    }

    pub fn node_id(&self) -> Option<&str> {
        self.node_id.get().map(String::as_str)
    }

    /// Spans dropped because an export queue was full (or no exporter could be built).
    pub fn dropped_spans(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Hands a finished span to its collector's queue; drops it when the queue is full.
    pub(super) fn submit(
        &self,
        config: &TracingConfig,
        collector_hosts: &dyn Fn(&str) -> Option<Vec<EndpointAddress>>,
        span: SpanData,
    ) {
        let sink = match self.sink(config) {
            Ok(s) => s,
            Err(e) => {
                self.count_drop();
                tracing::warn!(error = %e, "span dropped");
                return;
            }
        };
        if let Collector::Cluster { name, .. } = &config.collector {
            sink.follow(collector_hosts(name).unwrap_or_default());
        }
        if !sink.try_enqueue(span) {
            self.count_drop();
        }
    }

    fn count_drop(&self) {
        if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                "a span was dropped: the export queue is full or the collector unusable \
                 (further drops are only counted)"
            );
        }
    }

    fn sink(&self, config: &TracingConfig) -> Result<Arc<SpanSink>, ExportError> {
        let key = SinkKey::of(config);
        if let Some(s) = self.sinks.load().get(&key) {
            return Ok(s.clone());
        }
        let _guard = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = self.sinks.load().get(&key) {
            return Ok(s.clone());
        }
        let sink = Arc::new(SpanSink::new(&key)?);
        let mut next = HashMap::clone(&self.sinks.load());
        if next.len() >= SINKS_BEFORE_CLEANUP {
            // Sinks only this map holds belong to configurations that are gone: flush and
            // stop them off the request path.
            let unused: Vec<SinkKey> = next
                .iter()
                .filter(|(_, s)| Arc::strong_count(s) == 1)
                .map(|(k, _)| k.clone())
                .collect();
            for k in unused {
                if let Some(old) = next.remove(&k) {
                    tokio::task::spawn_blocking(move || old.shutdown());
                }
            }
        }
        next.insert(key, sink.clone());
        self.sinks.store(Arc::new(next));
        Ok(sink)
    }

    /// Exports what is queued; for a proxy that is exiting, and for tests.
    pub fn flush(&self) {
        for sink in self.sinks.load().values() {
            let _ = sink.processor.force_flush();
        }
    }
}

/// One collector's queue and exporter.
struct SpanSink {
    processor: BatchSpanProcessor,
    /// Spans handed over and not yet taken by an export.
    pending: Arc<AtomicUsize>,
    capacity: usize,
    /// Where the collector cluster's hosts are, for the channel's connector.
    hosts: Arc<ArcSwap<Vec<EndpointAddress>>>,
}

impl SpanSink {
    fn new(key: &SinkKey) -> Result<SpanSink, ExportError> {
        let hosts = Arc::new(ArcSwap::from_pointee(Vec::new()));
        let error = |reason: String| ExportError::Build {
            collector: format!("{:?}", key.collector),
            reason,
        };
        let channel = match &key.collector {
            Collector::Cluster { name, authority } => {
                cluster_channel(name, authority.as_deref(), hosts.clone(), key.timeout)
            }
            Collector::Target(uri) => Endpoint::from_shared(uri.clone())
                .map_err(|e| error(e.to_string()))?
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(key.timeout)
                .connect_lazy(),
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_channel(channel)
            .with_timeout(key.timeout)
            .build()
            .map_err(|e| error(e.to_string()))?;
        let pending = Arc::new(AtomicUsize::new(0));
        let counting = CountingExporter {
            inner: exporter,
            pending: pending.clone(),
        };
        let batch = BatchConfigBuilder::default()
            // One more than our own bound, so the processor itself never drops a span.
            .with_max_queue_size(key.max_queued + 1)
            .with_max_export_batch_size(MAX_EXPORT_BATCH.min(key.max_queued))
            .with_scheduled_delay(EXPORT_INTERVAL)
            .build();
        let mut processor = BatchSpanProcessor::builder(counting)
            .with_batch_config(batch)
            .build();
        processor.set_resource(&resource(key));
        Ok(SpanSink {
            processor,
            pending,
            capacity: key.max_queued,
            hosts,
        })
    }

    fn try_enqueue(&self, span: SpanData) -> bool {
        if self.pending.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        self.processor.on_end(span);
        true
    }

    fn follow(&self, hosts: Vec<EndpointAddress>) {
        if **self.hosts.load() != hosts {
            self.hosts.store(Arc::new(hosts));
        }
    }

    fn shutdown(&self) {
        let _ = self.processor.shutdown_with_timeout(Duration::from_secs(2));
    }
}

fn resource(key: &SinkKey) -> Resource {
    let mut b = Resource::builder_empty().with_service_name(key.service_name.clone());
    if key.sdk_attributes {
        b = b.with_attributes([
            KeyValue::new("telemetry.sdk.name", "weft-proxy"),
            KeyValue::new("telemetry.sdk.language", "rust"),
            KeyValue::new("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
        ]);
    }
    b.build()
}

/// A lazy channel to whichever host of the cluster is known when it connects.
fn cluster_channel(
    cluster: &str,
    authority: Option<&str>,
    hosts: Arc<ArcSwap<Vec<EndpointAddress>>>,
    timeout: Duration,
) -> Channel {
    let next = Arc::new(AtomicUsize::new(0));
    let connector = tower::service_fn(move |_: http::Uri| {
        let hosts = hosts.load_full();
        let first = next.fetch_add(1, Ordering::Relaxed);
        async move { connect_any(&hosts, first).await.map(TokioIo::new) }
    });
    let uri = match authority {
        Some(a) => format!("http://{a}"),
        None => collector_uri(cluster),
    };
    Endpoint::from_shared(uri)
        .unwrap_or_else(|_| Endpoint::from_static("http://otel-collector"))
        .timeout(timeout)
        .connect_with_connector_lazy(connector)
}

/// The URI whose authority the export requests carry when the config names none: the
/// service of an Istio-style cluster name (a cluster name with `|` is not a valid authority) (`outbound|4317||otel-collector.istio-system.svc.cluster.local`), else the name.
fn collector_uri(cluster: &str) -> String {
    let parts: Vec<&str> = cluster.split('|').collect();
    match parts.as_slice() {
        [_, port, _, host] => format!("http://{host}:{port}"),
        _ => format!("http://{cluster}"),
    }
}

/// Tries the hosts in turn, starting at `first`, each under [`CONNECT_TIMEOUT`].
async fn connect_any(
    hosts: &[EndpointAddress],
    first: usize,
) -> std::io::Result<tokio::net::TcpStream> {
    let mut last = std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "the collector cluster has no hosts",
    );
    for i in 0..hosts.len() {
        let host = &hosts[(first + i) % hosts.len()];
        let attempt = async {
            match host {
                EndpointAddress::Socket(a) => tokio::net::TcpStream::connect(*a).await,
                EndpointAddress::Dns { host, port } => {
                    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), *port))
                        .await?
                        .collect();
                    tokio::net::TcpStream::connect(addrs.as_slice()).await
                }
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = e,
            Err(_) => last = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
        }
    }
    Err(last)
}

/// Releases queue room as the batch processor takes spans for export.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    pending: Arc<AtomicUsize>,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.pending.fetch_sub(batch.len(), Ordering::AcqRel);
        self.inner.export(batch).await
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authority_is_the_service_of_an_istio_cluster_name() {
        assert_eq!(
            collector_uri("outbound|4317||otel.istio-system.svc.cluster.local"),
            "http://otel.istio-system.svc.cluster.local:4317"
        );
        assert_eq!(collector_uri("collector"), "http://collector");
    }

    fn key(max_queued: usize) -> SinkKey {
        SinkKey {
            collector: Collector::Target("http://127.0.0.1:9".into()),
            service_name: "s".into(),
            max_queued,
            timeout: Duration::from_secs(1),
            sdk_attributes: false,
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_instead_of_waiting() {
        let sink = SpanSink::new(&key(2)).unwrap();
        // Spans handed over and not yet exported fill the bound.
        sink.pending.store(2, Ordering::Relaxed);
        let span = crate::observe::trace::tests::some_span();
        assert!(!sink.try_enqueue(span.clone()));
        sink.pending.store(1, Ordering::Relaxed);
        assert!(sink.try_enqueue(span));
        sink.shutdown();
    }

    #[tokio::test]
    async fn drops_are_counted() {
        let export = TraceExport::default();
        let mut c = crate::observe::trace::tests::config_for_export();
        c.max_queued_spans = 1;
        let span = crate::observe::trace::tests::some_span();
        // The sink is made on first use; its queue then holds one span.
        export.submit(&c, &|_| None, span.clone());
        let sink = export.sink(&c).unwrap();
        sink.pending.store(1, Ordering::Relaxed);
        export.submit(&c, &|_| None, span);
        assert_eq!(export.dropped_spans(), 1);
        sink.shutdown();
    }
}
