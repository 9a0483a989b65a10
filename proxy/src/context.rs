//! What every part of a running proxy shares.

use crate::observe::access_log::AccessLogWriter;
use crate::observe::istio::IstioMetrics;
use crate::observe::server_stats::ServerStats;
use crate::observe::trace::TraceExport;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use tokio::sync::{watch, Notify};

pub struct ProxyContext {
    /// The configuration the request path reads; swapped whole on every accepted update.
    pub snapshot: ArcSwap<Snapshot>,
    pub access_log: AccessLogWriter,
    /// Istio's request metrics, rendered by the admin server's `/stats/prometheus`.
    pub metrics: IstioMetrics,
    /// Where sampled requests' spans go (one exporter per collector, created on first use).
    pub tracing: TraceExport,
    /// Flips to true when the proxy starts draining: listeners stop accepting and connections
    /// finish their in-flight requests.
    pub draining: watch::Sender<bool>,
    /// Downstream connections open now, so a draining proxy knows when it may exit.
    pub open_connections: AtomicUsize,
    /// Notified (all waiters) when `open_connections` drops to zero.
    pub connections_closed: Notify,
    /// `--max-downstream-connections`: listeners refuse connections past it (`usize::MAX`
    /// when unlimited), like Envoy's global downstream connection limit.
    pub max_downstream_connections: AtomicUsize,
    /// Per-listener accept counters for `/stats/prometheus`.
    pub listener_stats: crate::listener_stats::ListenerStatsTable,
    /// Envoy's `server.*` stats, rendered by `/stats/prometheus`.
    pub server_stats: ServerStats,
    /// The HTTP connection managers' stats by stat prefix, for `/stats/prometheus`.
    pub hcm_stats: crate::hcm_stats::HcmStatsTable,
    /// The `connection_limit` filters' counters and stats.
    pub connection_limits: crate::connection_limit::LimiterTable,
}

impl ProxyContext {
    pub fn new(access_log: AccessLogWriter, metrics: IstioMetrics) -> Arc<Self> {
        Arc::new(ProxyContext {
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            access_log,
            metrics,
            tracing: TraceExport::default(),
            draining: watch::channel(false).0,
            open_connections: AtomicUsize::new(0),
            connections_closed: Notify::new(),
            max_downstream_connections: AtomicUsize::new(usize::MAX),
            listener_stats: Default::default(),
            server_stats: ServerStats::default(),
            hcm_stats: Default::default(),
            connection_limits: Default::default(),
        })
    }

    /// Ready once the first complete configuration is being served.
    pub fn is_ready(&self) -> bool {
        self.snapshot.load().complete
    }
}
