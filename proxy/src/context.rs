//! What every part of a running proxy shares.

use crate::observe::access_log::AccessLogWriter;
use crate::observe::istio::IstioMetrics;
use crate::observe::server_stats::ServerStats;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use tokio::sync::watch;

pub struct ProxyContext {
    /// The configuration the request path reads; swapped whole on every accepted update.
    pub snapshot: ArcSwap<Snapshot>,
    pub access_log: AccessLogWriter,
    /// Istio's request metrics, rendered by the admin server's `/stats/prometheus`.
    pub metrics: IstioMetrics,
    /// Flips to true when the proxy starts draining: listeners stop accepting and connections
    /// finish their in-flight requests.
    pub draining: watch::Sender<bool>,
    /// Downstream connections open now, so a draining proxy knows when it may exit.
    pub open_connections: AtomicUsize,
    /// Envoy's `server.*` stats, rendered by `/stats/prometheus`.
    pub server_stats: ServerStats,
}

impl ProxyContext {
    pub fn new(access_log: AccessLogWriter, metrics: IstioMetrics) -> Arc<Self> {
        Arc::new(ProxyContext {
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            access_log,
            metrics,
            draining: watch::channel(false).0,
            open_connections: AtomicUsize::new(0),
            server_stats: ServerStats::default(),
        })
    }

    /// Ready once the first complete configuration is being served.
    pub fn is_ready(&self) -> bool {
        self.snapshot.load().complete
    }
}
