//! One ADS stream to the control plane, kept up for the proxy's lifetime: delta (incremental)
//! xDS by default, as Istio's sidecars use, or state of the world.
//!
//! Delta sends a proxy only the resources that changed and names those removed: with a
//! thousand services, a change is one cluster and one route configuration, not three thousand
//! clusters decoded and compared again at every proxy. weftd's side is measured in
//! `benches/results/weftd-scale.md`: at 2,000 proxies a change reaches all of them in about a
//! third of the time state of the world takes. A control plane that does not serve delta (the
//! RPC is unimplemented) gets state of the world instead, for the rest of the proxy's life.
//!
//! Each response is applied to the [`XdsCache`] resource by resource and published as one new
//! snapshot; the proxy answers with an ACK, or with a NACK whose `error_detail` names every
//! refused resource and field (those keep their last good version; the rest apply). When a new
//! cluster or listener needs endpoints or routes, the request for them goes out before the
//! ACK, so the control plane can push them before anything uses the new cluster. When the
//! stream breaks, the proxy keeps serving what it has and reconnects with jittered exponential
//! back-off, re-announcing the versions and names it holds.

use super::state::{Applied, XdsCache};
use crate::context::ProxyContext;
use crate::listener::ListenerManager;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;
use tracing::{info, warn};
use xds_protos::pb::envoy::config::core::v3::Node;
use xds_protos::pb::google::rpc::Status as RpcStatus;
use xds_protos::type_url::LISTENER;
use xds_protos::AggregatedDiscoveryServiceClient;

mod delta;
mod sotw;

const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Which variant of the ADS protocol the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Protocol {
    /// Incremental xDS: only what changed is sent.
    #[default]
    Delta,
    /// State of the world: every response of a type carries all of it.
    Sotw,
}

pub struct XdsClient {
    address: String,
    node: Node,
    ctx: Arc<ProxyContext>,
    cache: XdsCache,
    listeners: ListenerManager,
    protocol: Protocol,
    /// The names last requested per type (routes and endpoints are subscribed by name).
    requested: HashMap<&'static str, BTreeSet<String>>,
    /// State of the world: the nonce of the latest response per type, which a new request
    /// must carry.
    last_nonce: HashMap<&'static str, String>,
    /// Whether the current stream has delivered anything (resets the back-off).
    stream_delivered: bool,
}

#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("cannot connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("stream failed: {0}")]
    Grpc(#[from] tonic::Status),
    #[error("the control plane closed the stream")]
    Closed,
}

impl XdsClient {
    pub fn new(address: String, node: Node, ctx: Arc<ProxyContext>) -> Self {
        let listeners = ListenerManager::new(ctx.clone());
        XdsClient {
            address,
            node,
            ctx,
            cache: XdsCache::default(),
            listeners,
            protocol: Protocol::default(),
            requested: HashMap::new(),
            last_nonce: HashMap::new(),
            stream_delivered: false,
        }
    }

    pub fn with_protocol(self, protocol: Protocol) -> Self {
        XdsClient { protocol, ..self }
    }

    /// Runs until the process ends.
    pub async fn run(mut self) {
        let mut failures = 0u32;
        loop {
            self.stream_delivered = false;
            let ended = match self.protocol {
                Protocol::Delta => self.stream_delta().await,
                Protocol::Sotw => self.stream_sotw().await,
            };
            match ended {
                Err(StreamError::Grpc(status))
                    if status.code() == tonic::Code::Unimplemented
                        && self.protocol == Protocol::Delta
                        && !self.stream_delivered =>
                {
                    warn!(xds = %self.address, "the control plane does not serve delta xDS; using state of the world");
                    self.protocol = Protocol::Sotw;
                    continue;
                }
                Err(e) => {
                    warn!(xds = %self.address, error = %e, "xDS stream down; serving last good config")
                }
                Ok(never) => match never {},
            }
            failures = if self.stream_delivered {
                1
            } else {
                failures.saturating_add(1)
            };
            tokio::time::sleep(backoff(failures)).await;
        }
    }

    /// A channel to the control plane, taking frames as large as a route configuration.
    async fn connect(&self) -> Result<AggregatedDiscoveryServiceClient<Channel>, StreamError> {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", self.address))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .max_frame_size(xds_protos::CLIENT_MAX_FRAME_SIZE)
            .http2_keep_alive_interval(Duration::from_secs(30));
        let channel = endpoint.connect().await?;
        Ok(AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(256 << 20))
    }

    /// Binds the listeners of a change that the cache took: a port that cannot be bound is
    /// refused in the answer (and retried with the next listener update), while the listeners
    /// that did bind serve.
    fn bind_listeners(&mut self, t: &str, applied: &mut Applied) {
        if t != LISTENER {
            return;
        }
        let snapshot_listeners = self
            .cache
            .listeners
            .iter()
            .map(|(n, e)| (n.clone(), e.compiled.clone()))
            .collect();
        applied
            .rejected
            .extend(self.listeners.reconcile(&snapshot_listeners));
    }

    /// Drops what nothing refers to any more and publishes the new snapshot.
    fn settle(&mut self) {
        self.cache.prune();
        self.publish();
    }

    /// Builds the snapshot from the whole cache and publishes it in one step.
    fn publish(&self) {
        let previous = self.ctx.snapshot.load_full();
        let snapshot = self.cache.build_snapshot(&previous);
        let became_ready = snapshot.complete && !previous.complete;
        self.ctx.snapshot.store(Arc::new(snapshot));
        if became_ready {
            info!("first complete configuration applied; ready");
        }
    }
}

fn rpc_error(message: String) -> RpcStatus {
    RpcStatus {
        code: tonic::Code::InvalidArgument as i32,
        message,
        details: Vec::new(),
    }
}

/// Exponential back-off with full jitter, so a control plane that restarts is not hit by
/// every proxy at the same instant.
fn backoff(failures: u32) -> Duration {
    let cap = BACKOFF_BASE
        .saturating_mul(1u32 << failures.min(10))
        .min(BACKOFF_MAX);
    let millis = rand::random_range(BACKOFF_BASE.as_millis() as u64..=cap.as_millis() as u64);
    Duration::from_millis(millis)
}

#[cfg(test)]
mod tests;
