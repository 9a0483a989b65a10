//! The TCP proxy's Istio metrics through `serve`: each outbound connection counts under the
//! workload of the endpoint that answered it, as the endpoint's EDS metadata names it.

use super::*;
use crate::observe::access_log::AccessLogWriter;
use crate::observe::istio::{IstioMetrics, SourceIdentity};
use crate::test_fixtures::{any, prometheus_sample, static_cluster, workload_metadata};
use crate::xds::state::XdsCache;
use std::sync::atomic::AtomicUsize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xds_protos::type_url;

const CLUSTER: &str = "outbound|9080||ratings.bookinfo.svc.cluster.local";

/// A server that reads a connection to its end, answers `pong` and closes; counts connections.
async fn pong_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf).await;
                let _ = s.write_all(b"pong").await;
            });
        }
    });
    (addr, accepted)
}

fn publish(ctx: &ProxyContext, cache: &mut XdsCache, version: &str, hosts: &[SocketAddr]) {
    let mut c = static_cluster(CLUSTER, hosts);
    let endpoints = &mut c.load_assignment.as_mut().unwrap().endpoints[0].lb_endpoints;
    endpoints[0].metadata = Some(workload_metadata("ratings-v1", "ratings", "v1"));
    endpoints[1].metadata = Some(workload_metadata("ratings-v1", "ratings", "v1"));
    endpoints[2].metadata = Some(workload_metadata("ratings-v2", "ratings", "v2"));
    let applied = cache.apply(type_url::CLUSTER, version, &[any(type_url::CLUSTER, &c)]);
    assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
    let snapshot = cache.build_snapshot(&ctx.snapshot.load());
    ctx.snapshot.store(Arc::new(snapshot));
}

/// One connection through the proxy: `ping` up, `pong` back.
async fn one_connection(ctx: &ProxyContext, cfg: &TcpProxyConfig) {
    let (mut client, proxied) = tokio::io::duplex(64);
    let talk = async {
        client.write_all(b"ping").await.unwrap();
        client.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        answer
    };
    let (answer, session) = tokio::join!(talk, serve(ctx, cfg, proxied, None, Reporter::Source));
    assert_eq!(answer, b"pong");
    assert!(
        matches!(session.outcome, TcpOutcome::Relayed(_)),
        "{session:?}"
    );
}

#[tokio::test]
async fn outbound_connections_count_under_the_workload_that_answered() {
    let servers = [
        pong_server().await,
        pong_server().await,
        pong_server().await,
    ];
    let hosts: Vec<SocketAddr> = servers.iter().map(|(a, _)| *a).collect();
    let ctx = ProxyContext::new(
        AccessLogWriter::stdout(),
        IstioMetrics::new(&SourceIdentity {
            workload: "productpage-v1".into(),
            namespace: "bookinfo".into(),
            app: Some("productpage".into()),
            version: Some("v1".into()),
        }),
    );
    let mut cache = XdsCache::default();
    publish(&ctx, &mut cache, "1", &hosts);
    let cfg = TcpProxyConfig {
        stat_prefix: CLUSTER.into(),
        access_log: Arc::from([]),
        target: crate::config::TcpTarget::Cluster(CLUSTER.into()),
        idle_timeout: None,
        max_connect_attempts: 1,
    };
    for _ in 0..6 {
        one_connection(&ctx, &cfg).await;
    }
    // The two hosts of ratings-v1 share one set of series, resolved once; a reload that keeps
    // the workload keeps it.
    let before = ctx.snapshot.load_full();
    let series = |snapshot: &crate::snapshot::Snapshot, host: usize| {
        let cluster = snapshot.cluster(CLUSTER).unwrap();
        let host = Some(&*cluster.hosts[host]);
        std::ptr::from_ref(cluster.tcp_istio_metrics(host, &ctx.metrics, Reporter::Source))
    };
    assert_eq!(series(&before, 0), series(&before, 1));
    assert_ne!(series(&before, 0), series(&before, 2));
    publish(&ctx, &mut cache, "2", &hosts);
    let after = ctx.snapshot.load_full();
    assert!(!Arc::ptr_eq(&before, &after));
    assert_eq!(series(&before, 0), series(&after, 1));
    for _ in 0..6 {
        one_connection(&ctx, &cfg).await;
    }

    let accepted = |i: usize| servers[i].1.load(Ordering::SeqCst) as u64;
    assert_eq!(accepted(0) + accepted(1) + accepted(2), 12);
    let page = ctx.metrics.render();
    let of = |workload: &'static str, version: &'static str| {
        vec![
            ("reporter", "source"),
            ("source_workload", "productpage-v1"),
            ("destination_workload", workload),
            ("destination_workload_namespace", "bookinfo"),
            ("destination_app", "ratings"),
            ("destination_version", version),
            ("destination_canonical_revision", version),
            ("destination_service", "ratings.bookinfo.svc.cluster.local"),
            ("destination_service_name", "ratings"),
            ("destination_principal", "unknown"),
            ("destination_cluster", "unknown"),
            ("request_protocol", "tcp"),
        ]
    };
    for (workload, version, answered) in [
        ("ratings-v1", "v1", accepted(0) + accepted(1)),
        ("ratings-v2", "v2", accepted(2)),
    ] {
        let labels = of(workload, version);
        let count = |name| prometheus_sample(&page, name, &labels);
        assert_eq!(count("istio_tcp_connections_opened_total"), answered);
        assert_eq!(count("istio_tcp_connections_closed_total"), answered);
        assert_eq!(count("istio_tcp_received_bytes_total"), 4 * answered);
        assert_eq!(count("istio_tcp_sent_bytes_total"), 4 * answered);
    }
    // Round robin reached both workloads, and no connection counted without its workload.
    assert!(accepted(2) > 0 && accepted(0) + accepted(1) > 0, "{page}");
    assert!(!page.contains("destination_workload=\"unknown\""), "{page}");
}
