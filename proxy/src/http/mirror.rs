//! Request mirroring: a copy of the request goes to another cluster, fire and forget.
//!
//! The copy runs in its own task and reads the body from the shared replay record, so it
//! never slows the main request down; its answer is read and dropped; its failures are only
//! logged. It is bounded by the request's timeout, or a fixed cap when the route has none.

use super::upstream_request::UpstreamHead;
use crate::body::ProxyBody;
use crate::upstream::Cluster;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;

/// The longest a mirrored copy may take when its route sets no timeout.
const DEFAULT_MIRROR_TIMEOUT: Duration = Duration::from_secs(60);

pub fn spawn(cluster: Arc<Cluster>, head: UpstreamHead, body: ProxyBody, limit: Option<Duration>) {
    let limit = limit.unwrap_or(DEFAULT_MIRROR_TIMEOUT);
    tokio::spawn(async move {
        let exchange = async {
            let host = cluster
                .pick(None)
                .ok_or_else(|| "no healthy upstream".to_string())?;
            let _in_flight = host.start_request();
            let req = head.into_request(cluster.config.protocol, body);
            let resp = host
                .pool()
                .send(req, cluster.config.connect_timeout)
                .await
                .map_err(|e| e.to_string())?;
            // Read to the end so the connection can be reused.
            resp.into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(cluster = %cluster.name, error = %e, "mirrored request failed")
            }
            Err(_) => tracing::debug!(cluster = %cluster.name, "mirrored request timed out"),
        }
    });
}
