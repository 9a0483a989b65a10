//! Circuit breakers and outlier detection on the request path: pending-request overflow
//! answered 503 `UO` with `x-envoy-overloaded`, retry overflow, a failing host ejected, and the
//! counters behind them.

use super::harness::*;
use crate::test_fixtures::istio_default_retry;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::Semaphore;
use xds_protos::pb::envoy::config::cluster::v3::{circuit_breakers::Thresholds, CircuitBreakers};
use xds_protos::pb::google::protobuf::UInt32Value;

fn limited(
    name: &str,
    hosts: &[std::net::SocketAddr],
    t: Thresholds,
) -> xds_protos::pb::envoy::config::cluster::v3::Cluster {
    let mut c = cluster(name, hosts);
    c.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![t],
        ..Default::default()
    });
    c
}

fn n(v: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value: v })
}

/// Waits (yielding, no timer) until `cond` holds.
async fn until(cond: impl Fn() -> bool) {
    while !cond() {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn a_request_over_the_pending_limit_is_answered_503_uo() {
    // The upstream answers only when the test lets it.
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let up = Upstream::start(move |_, _| {
        let g = g.clone();
        async move {
            g.acquire().await.unwrap().forget();
            respond(200, "ok")
        }
    })
    .await;
    let mut c = limited(
        "svc",
        &[up.addr],
        Thresholds {
            max_connections: n(1),
            max_pending_requests: n(1),
            ..Default::default()
        },
    );
    #[allow(deprecated)] // The cluster's own field, which older control planes still send.
    {
        c.max_requests_per_connection = n(1);
    }
    let proxy =
        Arc::new(TestProxy::start(vhost(vec![route_to("svc", |_, _| {})]), vec![], vec![c]).await);
    let snap = proxy.ctx.snapshot.load_full();
    let limits = snap.cluster("svc").unwrap().runtime.limits.clone();

    let p = proxy.clone();
    let first = tokio::spawn(async move { p.get("/1").await });
    until(|| up.requests() == 1).await;
    // The one connection is busy: the second request waits for it, as the one pending.
    let p = proxy.clone();
    let second = tokio::spawn(async move { p.get("/2").await });
    until(|| limits.pending.load(Ordering::Relaxed) == 1).await;
    // The third finds the pending queue full.
    let third = proxy.get("/3").await;
    assert_eq!(third.status, 503);
    assert_eq!(third.headers["x-envoy-overloaded"], "true");
    assert!(third.body.contains("overflow"), "{}", third.body);
    assert_eq!(limits.stats.rq_pending_overflow.load(Ordering::Relaxed), 1);
    assert!(limits.stats.cx_overflow.load(Ordering::Relaxed) >= 1);

    gate.add_permits(2);
    assert_eq!(first.await.unwrap().status, 200);
    // One request per connection: the second went out on a new connection once the first
    // closed.
    assert_eq!(second.await.unwrap().status, 200);
    assert_eq!(up.requests(), 2);
    until(|| limits.connections.load(Ordering::Relaxed) == 0).await;
    assert_eq!(limits.pending.load(Ordering::Relaxed), 0);
    assert_eq!(limits.requests.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_retry_over_the_retry_limit_is_not_made() {
    let up = Upstream::fixed(503, "busy").await;
    let c = limited(
        "svc",
        &[up.addr],
        Thresholds {
            max_retries: n(0),
            ..Default::default()
        },
    );
    let vh = vhost(vec![route_to("svc", |_, ra| {
        ra.retry_policy = Some(istio_default_retry())
    })]);
    let proxy = TestProxy::start(vh, vec![], vec![c]).await;
    let reply = proxy.get("/").await;
    // The upstream's own answer, not retried.
    assert_eq!(reply.status, 503);
    assert_eq!(reply.body, "busy");
    assert_eq!(up.requests(), 1);
    let snap = proxy.ctx.snapshot.load_full();
    let stats = &snap.cluster("svc").unwrap().runtime.stats;
    assert_eq!(stats.rq_retry_overflow.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn the_active_request_limit_refuses_the_next_request() {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let up = Upstream::start(move |_, _| {
        let g = g.clone();
        async move {
            g.acquire().await.unwrap().forget();
            respond(200, "ok")
        }
    })
    .await;
    let c = limited(
        "svc",
        &[up.addr],
        Thresholds {
            max_requests: n(1),
            ..Default::default()
        },
    );
    let proxy =
        Arc::new(TestProxy::start(vhost(vec![route_to("svc", |_, _| {})]), vec![], vec![c]).await);
    let p = proxy.clone();
    let first = tokio::spawn(async move { p.get("/1").await });
    until(|| up.requests() == 1).await;
    let second = proxy.get("/2").await;
    assert_eq!(second.status, 503);
    assert_eq!(second.headers["x-envoy-overloaded"], "true");
    gate.add_permits(1);
    assert_eq!(first.await.unwrap().status, 200);
}

#[tokio::test]
async fn a_failing_host_is_ejected_and_traffic_avoids_it() {
    use xds_protos::pb::envoy::config::cluster::v3::OutlierDetection;
    let good = Upstream::fixed(200, "good").await;
    let bad = Upstream::fixed(500, "bad").await;
    let mut c = cluster("svc", &[good.addr, bad.addr]);
    // What weftd sends for consecutive5xxErrors: 2, maxEjectionPercent: 50.
    c.outlier_detection = Some(OutlierDetection {
        consecutive_5xx: n(2),
        enforcing_consecutive_5xx: n(100),
        enforcing_success_rate: n(0),
        max_ejection_percent: n(50),
        ..Default::default()
    });
    let proxy = TestProxy::start(vhost(vec![route_to("svc", |_, _| {})]), vec![], vec![c]).await;
    let snap = proxy.ctx.snapshot.load_full();
    let cluster = snap.cluster("svc").unwrap().clone();
    // Round robin: every other request meets the bad host until it is ejected.
    let mut sent = 0;
    while cluster.ejected_hosts() == 0 {
        proxy.get("/").await;
        sent += 1;
        assert!(sent < 1000, "the failing host was never ejected");
    }
    let bad_before = bad.requests();
    // Ejected at the second consecutive 5xx; the decision is the detector task's, so one more
    // request may have met the host before it was published.
    assert!((2..=3).contains(&bad_before), "{bad_before}");
    for _ in 0..20 {
        assert_eq!(proxy.get("/").await.status, 200);
    }
    assert_eq!(bad.requests(), bad_before, "no traffic to the ejected host");
    let stats = &cluster.runtime.stats;
    assert_eq!(stats.ejections_enforced_total.load(Ordering::Relaxed), 1);
    let ejected = cluster.hosts.iter().find(|h| h.is_ejected()).unwrap();
    assert_eq!(ejected.address().to_string(), bad.addr.to_string());
}
