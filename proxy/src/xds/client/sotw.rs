//! The state-of-the-world stream: every response of a type carries all of it (listeners,
//! clusters) or every resource asked for by name (routes, endpoints), and each request repeats
//! the whole subscription with the nonce of the latest response.

use super::{rpc_error, StreamError, XdsClient};
use std::collections::BTreeSet;
use std::convert::Infallible;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{info, warn};
use xds_protos::pb::google::rpc::Status as RpcStatus;
use xds_protos::type_url::{self, CLUSTER, ENDPOINT, LISTENER, ROUTE};
use xds_protos::{DiscoveryRequest, DiscoveryResponse};

impl XdsClient {
    pub(super) async fn stream_sotw(&mut self) -> Result<Infallible, StreamError> {
        self.last_nonce.clear();
        let mut client = self.connect().await?;
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
        info!(xds = %self.address, "xDS stream up (state of the world)");
        while let Some(resp) = responses.message().await? {
            self.on_response(resp, &tx).await;
        }
        Err(StreamError::Closed)
    }

    async fn on_response(&mut self, resp: DiscoveryResponse, tx: &mpsc::Sender<DiscoveryRequest>) {
        let Some(t) = type_url::known(&resp.type_url) else {
            let reason = format!("unsupported type {}", resp.type_url);
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
        };
        // A NACK names the version the proxy still runs, not the one it refused.
        let previous_version = self.cache.versions.get(t).cloned().unwrap_or_default();
        let mut outcome = self.cache.apply(t, &resp.version_info, &resp.resources);
        self.stream_delivered = true;
        self.last_nonce.insert(t, resp.nonce.clone());
        // What was accepted serves, even when the response also held refused resources.
        if outcome.changed {
            self.bind_listeners(t, &mut outcome);
            // Ask for the routes and endpoints new listeners and clusters need before ACKing
            // them (each is a no-op when the names did not change).
            self.resubscribe(ENDPOINT, self.cache.wanted_endpoints(), tx)
                .await;
            self.resubscribe(ROUTE, self.cache.wanted_routes(), tx)
                .await;
            self.settle();
        }

        let error = outcome.error_detail();
        let version = match &error {
            None => resp.version_info.clone(),
            Some(_) => previous_version,
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
