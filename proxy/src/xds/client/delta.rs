//! The delta (incremental) stream: a response carries the resources that changed and names
//! those removed; a request changes the subscription by the names it adds and drops, or
//! answers a response by its nonce. A reconnecting proxy announces every resource it holds
//! with its version (`initial_resource_versions`), so it is sent only what it lacks and told
//! what went away while it was gone.

use super::{rpc_error, StreamError, XdsClient};
use crate::xds::state::Applied;
use std::collections::BTreeSet;
use std::convert::Infallible;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{info, warn};
use xds_protos::type_url::{self, CLUSTER, ENDPOINT, LISTENER, ROUTE};
use xds_protos::{DeltaDiscoveryRequest, DeltaDiscoveryResponse};

impl XdsClient {
    pub(super) async fn stream_delta(&mut self) -> Result<Infallible, StreamError> {
        let mut client = self.connect().await?;
        let (tx, rx) = mpsc::channel(16);
        self.requested.clear();
        // Clusters and listeners: a first request naming nothing subscribes to all of them.
        for (i, t) in [CLUSTER, LISTENER].into_iter().enumerate() {
            let req = DeltaDiscoveryRequest {
                node: (i == 0).then(|| self.node.clone()),
                type_url: t.to_string(),
                initial_resource_versions: self.cache.held_versions(t),
                ..Default::default()
            };
            let _ = tx.send(req).await;
        }
        // Routes and endpoints by the names the cache refers to (after a reconnect, so they
        // are not lost until the next CDS/LDS). Never an empty first request: that would be a
        // wildcard subscription to every route or endpoint the control plane has.
        for (t, names) in [
            (ENDPOINT, self.cache.wanted_endpoints()),
            (ROUTE, self.cache.wanted_routes()),
        ] {
            if !names.is_empty() {
                let req = DeltaDiscoveryRequest {
                    type_url: t.to_string(),
                    resource_names_subscribe: names.iter().cloned().collect(),
                    initial_resource_versions: self.cache.held_versions(t),
                    ..Default::default()
                };
                self.requested.insert(t, names);
                let _ = tx.send(req).await;
            }
        }
        let mut responses = client
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await?
            .into_inner();
        info!(xds = %self.address, "xDS stream up (delta)");
        while let Some(resp) = responses.message().await? {
            self.on_delta_response(resp, &tx).await;
        }
        Err(StreamError::Closed)
    }

    async fn on_delta_response(
        &mut self,
        resp: DeltaDiscoveryResponse,
        tx: &mpsc::Sender<DeltaDiscoveryRequest>,
    ) {
        let applied = match self.apply_delta(&resp) {
            Ok(applied) => applied,
            Err(reason) => {
                warn!(type_url = %resp.type_url, nonce = %resp.nonce, %reason, "NACK");
                let _ = tx.send(answer(&resp, Some(reason))).await;
                return;
            }
        };
        let (t, mut applied) = applied;
        self.stream_delivered = true;
        // What was accepted serves, even when the response also held refused resources.
        if applied.changed {
            self.bind_listeners(t, &mut applied);
            // Ask for the routes and endpoints new listeners and clusters need before ACKing
            // them (each is a no-op when the names did not change).
            self.resubscribe_delta(ENDPOINT, self.cache.wanted_endpoints(), tx)
                .await;
            self.resubscribe_delta(ROUTE, self.cache.wanted_routes(), tx)
                .await;
            self.settle();
        }
        let error = applied.error_detail();
        if let Some(reason) = &error {
            warn!(type_url = type_url::short_name(t), nonce = %resp.nonce, %reason, "NACK");
        }
        let _ = tx.send(answer(&resp, error)).await;
    }

    /// Applies one response to the cache; an error refuses all of it.
    fn apply_delta(
        &mut self,
        resp: &DeltaDiscoveryResponse,
    ) -> Result<(&'static str, Applied), String> {
        if !resp.removed_resource_names.is_empty() {
            // Removals named by xdstp locator: weft-proxy names resources by plain name only,
            // and would otherwise keep what the control plane removed.
            return Err(
                "removed_resource_names: not supported (resources are named by name)".into(),
            );
        }
        let t = type_url::known(&resp.type_url)
            .ok_or_else(|| format!("unsupported type {}", resp.type_url))?;
        let applied = self.cache.apply_delta(
            t,
            &resp.system_version_info,
            &resp.resources,
            &resp.removed_resources,
        );
        Ok((t, applied))
    }

    /// Changes the subscription to routes or endpoints to `names`, by what it adds and drops.
    /// It carries no nonce: to the control plane a nonce would answer a response.
    async fn resubscribe_delta(
        &mut self,
        t: &'static str,
        names: BTreeSet<String>,
        tx: &mpsc::Sender<DeltaDiscoveryRequest>,
    ) {
        let held = self.requested.get(t);
        // Nothing asked before and nothing to ask for: an empty first request would be a
        // wildcard subscription.
        if held.is_none() && names.is_empty() {
            return;
        }
        let empty = BTreeSet::new();
        let held = held.unwrap_or(&empty);
        let subscribe: Vec<String> = names.difference(held).cloned().collect();
        let unsubscribe: Vec<String> = held.difference(&names).cloned().collect();
        if subscribe.is_empty() && unsubscribe.is_empty() {
            return;
        }
        let req = DeltaDiscoveryRequest {
            type_url: t.to_string(),
            resource_names_subscribe: subscribe,
            resource_names_unsubscribe: unsubscribe,
            ..Default::default()
        };
        self.requested.insert(t, names);
        let _ = tx.send(req).await;
    }
}

/// The ACK (no error) or NACK of a response.
fn answer(resp: &DeltaDiscoveryResponse, error: Option<String>) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: resp.type_url.clone(),
        response_nonce: resp.nonce.clone(),
        error_detail: error.map(rpc_error),
        ..Default::default()
    }
}
