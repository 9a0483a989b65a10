//! One state-of-the-world ADS stream to the control plane, kept up for the proxy's lifetime.
//!
//! Each response is applied to the [`XdsCache`] as one transaction; the proxy answers with an
//! ACK and publishes a new snapshot, or with a NACK whose `error_detail` names every rejected
//! resource and field, keeping everything it had. When a new cluster or listener needs endpoints or routes, the request for them
//! goes out before the ACK, so the control plane can push them before anything uses the new
//! cluster. When the stream breaks, the proxy keeps serving what it has and reconnects with
//! jittered exponential back-off, re-announcing the versions and names it holds.

use super::resource::{Clusters, Endpoints, Listeners, Routes};
use super::state::{Applied, Stored, XdsCache};
use crate::context::ProxyContext;
use crate::listener::ListenerManager;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{info, warn};
use xds_protos::pb::envoy::config::core::v3::Node;
use xds_protos::pb::google::rpc::Status as RpcStatus;
use xds_protos::type_url::{self, CLUSTER, ENDPOINT, LISTENER, ROUTE};
use xds_protos::{AggregatedDiscoveryServiceClient, DiscoveryRequest, DiscoveryResponse};

const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub struct XdsClient {
    address: String,
    node: Node,
    ctx: Arc<ProxyContext>,
    cache: XdsCache,
    listeners: ListenerManager,
    /// The names last requested per type (routes and endpoints are subscribed by name).
    requested: HashMap<&'static str, BTreeSet<String>>,
    /// The nonce of the latest response per type, which a new request must carry.
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
            requested: HashMap::new(),
            last_nonce: HashMap::new(),
            stream_delivered: false,
        }
    }

    /// Runs until the process ends.
    pub async fn run(mut self) {
        let mut failures = 0u32;
        loop {
            self.stream_delivered = false;
            if let Err(e) = self.stream_once().await {
                warn!(xds = %self.address, error = %e, "xDS stream down; serving last good config");
            }
            failures = if self.stream_delivered {
                1
            } else {
                failures.saturating_add(1)
            };
            tokio::time::sleep(backoff(failures)).await;
        }
    }

    async fn stream_once(&mut self) -> Result<(), StreamError> {
        self.last_nonce.clear();
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", self.address))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .max_frame_size(xds_protos::CLIENT_MAX_FRAME_SIZE)
            .http2_keep_alive_interval(Duration::from_secs(30));
        let channel = endpoint.connect().await?;
        let mut client =
            AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(256 << 20);
        let (tx, rx) = mpsc::channel(16);
        // Subscribe: clusters and listeners by wildcard; routes and endpoints by the names the
        // cache holds (after a reconnect, so they are not lost until the next CDS/LDS).
        self.requested.clear();
        let mut first = true;
        for t in [CLUSTER, LISTENER] {
            let req = self.request(t, BTreeSet::new(), String::new(), None, first);
            first = false;
            let _ = tx.send(req).await;
        }
        for (t, names) in [
            (ENDPOINT, self.cache.wanted_endpoints()),
            (ROUTE, self.cache.wanted_routes()),
        ] {
            if !names.is_empty() {
                let _ = tx
                    .send(self.request(t, names, String::new(), None, false))
                    .await;
            }
        }
        let mut responses = client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await?
            .into_inner();
        info!(xds = %self.address, "xDS stream up");
        while let Some(resp) = responses.message().await? {
            self.on_response(resp, &tx).await;
        }
        Err(StreamError::Closed)
    }

    async fn on_response(&mut self, resp: DiscoveryResponse, tx: &mpsc::Sender<DiscoveryRequest>) {
        let (t, mut applied) = match resp.type_url.as_str() {
            LISTENER => self.apply::<Listeners>(&resp),
            ROUTE => self.apply::<Routes>(&resp),
            CLUSTER => self.apply::<Clusters>(&resp),
            ENDPOINT => self.apply::<Endpoints>(&resp),
            other => {
                let reason = format!("unsupported type {other}");
                warn!(%reason, "NACK");
                let _ = tx
                    .send(DiscoveryRequest {
                        type_url: resp.type_url.clone(),
                        response_nonce: resp.nonce.clone(),
                        error_detail: Some(rpc_error(reason)),
                        ..Default::default()
                    })
                    .await;
                return;
            }
        };
        self.stream_delivered = true;
        self.last_nonce.insert(t, resp.nonce.clone());
        // What was accepted serves, even when the response also held refused resources.
        if applied.outcome.changed {
            if t == LISTENER {
                // Binding happens after the cache took the listeners: a port that cannot be
                // bound is NACKed (and retried with the next listener update), while the
                // listeners that did bind serve.
                let snapshot_listeners = self
                    .cache
                    .listeners
                    .iter()
                    .map(|(n, e)| (n.clone(), e.compiled.clone()))
                    .collect();
                applied
                    .outcome
                    .rejected
                    .extend(self.listeners.reconcile(&snapshot_listeners));
            }
            // Ask for the routes and endpoints new listeners and clusters need before ACKing
            // them (each is a no-op when the names did not change).
            self.resubscribe(ENDPOINT, self.cache.wanted_endpoints(), tx)
                .await;
            self.resubscribe(ROUTE, self.cache.wanted_routes(), tx)
                .await;
            self.cache.prune();
            self.publish();
        }

        let error = applied.outcome.error_detail();
        let version = match &error {
            None => resp.version_info.clone(),
            // A NACK names the version the proxy still runs, not the one it refused.
            Some(_) => applied.previous_version,
        };
        if let Some(reason) = &error {
            warn!(type_url = type_url::short_name(t), nonce = %resp.nonce, %reason, "NACK");
        }
        let names = self.requested.get(t).cloned().unwrap_or_default();
        let req = self.request(t, names, version, error.map(rpc_error), false);
        let req = DiscoveryRequest {
            response_nonce: resp.nonce,
            ..req
        };
        let _ = tx.send(req).await;
    }

    /// Applies one response of type `T` to the cache, resource by resource.
    fn apply<T: Stored>(&mut self, resp: &DiscoveryResponse) -> (&'static str, Response) {
        let previous_version = self
            .cache
            .versions
            .get(T::TYPE_URL)
            .cloned()
            .unwrap_or_default();
        let outcome = self
            .cache
            .apply_typed::<T>(&resp.version_info, &resp.resources);
        (
            T::TYPE_URL,
            Response {
                outcome,
                previous_version,
            },
        )
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

    async fn resubscribe(
        &mut self,
        t: &'static str,
        names: BTreeSet<String>,
        tx: &mpsc::Sender<DiscoveryRequest>,
    ) {
        // Nothing to ask for and nothing asked before: an empty first request would read as a
        // wildcard subscription to every route or endpoint the control plane has.
        let unchanged = match self.requested.get(t) {
            Some(held) => *held == names,
            None => names.is_empty(),
        };
        if unchanged {
            return;
        }
        let version = self.cache.versions.get(t).cloned().unwrap_or_default();
        let nonce = self.last_nonce.get(t).cloned().unwrap_or_default();
        let req = DiscoveryRequest {
            response_nonce: nonce,
            ..self.request(t, names, version, None, false)
        };
        let _ = tx.send(req).await;
    }

    fn request(
        &mut self,
        t: &'static str,
        names: BTreeSet<String>,
        version: String,
        error: Option<RpcStatus>,
        with_node: bool,
    ) -> DiscoveryRequest {
        self.requested.insert(t, names.clone());
        DiscoveryRequest {
            version_info: version,
            node: with_node.then(|| self.node.clone()),
            resource_names: names.into_iter().collect(),
            type_url: t.to_string(),
            error_detail: error,
            ..Default::default()
        }
    }
}

/// What became of one response.
struct Response {
    /// What the cache took and refused (a listener that then fails to bind still NACKs).
    outcome: Applied,
    /// The version held before it, which a NACK reports.
    previous_version: String,
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
