//! Request mirroring: a copy of the request goes to another cluster, fire and forget.
//!
//! The copy runs in its own task and reads the body from the shared replay record, so it
//! never slows the main request down; its answer is read and dropped; its failures are only
//! logged. It is bounded by the request's timeout, or a fixed cap when the route has none.
//!
//! Accounting follows Envoy, whose router sends a shadow through the shadow cluster like any
//! other request ("all normal statistics are collected for the shadow cluster"): the copy takes
//! one of that cluster's active-request slots, counts in its `envoy_cluster_upstream_rq_total`,
//! `_rq{envoy_response_code}` and `_rq_xx` under the status it got (or the router's own 503 when
//! it reached no answer, 504 when its time ran out, which also counts `_rq_timeout`), counts a
//! failed connect in `_cx_connect_fail`, and tells the cluster's outlier detection how its host
//! did. It is not one of Istio's requests: Istio's stats filter sits in the connection
//! manager's filter chain, which only the main request passes through, so the client's
//! `istio_requests_total` counts the main request alone (istio/istio#23496); the shadow's
//! receiver counts it as `reporter="destination"`.

use super::upstream_request::UpstreamHead;
use crate::body::ProxyBody;
use crate::upstream::outlier::TryOutcome;
use crate::upstream::pool::SendError;
use crate::upstream::Cluster;
use http_body_util::BodyExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{timeout_at, Instant};
use tracing::debug;

/// The longest a mirrored copy may take when its route sets no timeout.
const DEFAULT_MIRROR_TIMEOUT: Duration = Duration::from_secs(60);

/// The router's own status when the copy got no answer: no host, a breaker, a failed connect
/// or a reset (503), or its time ran out (504).
const NO_ANSWER: u16 = 503;
const TIMED_OUT: u16 = 504;

pub fn spawn(cluster: Arc<Cluster>, head: UpstreamHead, body: ProxyBody, limit: Option<Duration>) {
    let deadline = Instant::now() + limit.unwrap_or(DEFAULT_MIRROR_TIMEOUT);
    tokio::spawn(async move { shadow(&cluster, head, body, deadline).await });
}

/// Sends the copy and accounts for it in the shadow cluster's stats.
async fn shadow(cluster: &Cluster, head: UpstreamHead, body: ProxyBody, deadline: Instant) {
    let stats = &cluster.runtime.stats;
    let Some(host) = cluster.pick(None) else {
        debug!(cluster = %cluster.name, "mirrored request: no healthy upstream");
        stats.record(NO_ANSWER);
        return;
    };
    let Ok(slot) = cluster.runtime.limits.try_request() else {
        debug!(cluster = %cluster.name, "mirrored request: circuit breaker open");
        stats.record(NO_ANSWER);
        return;
    };
    let _in_flight = host.start_request().with_slot(slot);
    let req = head.into_request(cluster.config.protocol, body);
    let sent = timeout_at(
        deadline,
        host.pool().send(req, cluster.config.connect_timeout),
    )
    .await;
    let resp = match sent {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => {
            debug!(cluster = %cluster.name, error = %e, "mirrored request failed");
            match e {
                // A breaker of the pool: the host was never tried.
                SendError::Overflow(_) => {}
                SendError::Connect(_) => {
                    stats.cx_connect_fail.fetch_add(1, Ordering::Relaxed);
                    cluster.report(host, TryOutcome::LocalFailure);
                }
                _ => cluster.report(host, TryOutcome::LocalFailure),
            }
            stats.record(NO_ANSWER);
            return;
        }
        Err(_) => {
            debug!(cluster = %cluster.name, "mirrored request timed out");
            stats.rq_timeout.fetch_add(1, Ordering::Relaxed);
            cluster.report(host, TryOutcome::LocalTimeout);
            stats.record(TIMED_OUT);
            return;
        }
    };
    // Counted when the head arrives, as Envoy charges a response code.
    let status = resp.status().as_u16();
    stats.record(status);
    cluster.report(host, TryOutcome::Status(status));
    // Read to the end so the connection can be reused.
    match timeout_at(deadline, resp.into_body().collect()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => debug!(cluster = %cluster.name, error = %e, "mirrored response body failed"),
        Err(_) => {
            debug!(cluster = %cluster.name, "mirrored response body timed out");
            stats.rq_timeout.fetch_add(1, Ordering::Relaxed);
        }
    }
}
