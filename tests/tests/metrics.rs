//! Istio's standard metrics on a running weft-proxy's `/stats/prometheus`: after N requests
//! the next scrape counts exactly N under Istio's names and labels, with the source labels
//! from the proxy's own identity flags. (A stock Envoy has no `istio_*` metrics: they come
//! from Istio's own Envoy extensions, so this runs against weft-proxy only.)

use weft_e2e::client::ProxyConn;
use weft_e2e::config::reviews_mesh;

const URL: &str = "http://reviews:9080/reviews/1";

/// The value of the one `name` sample whose labels include all of `labels`.
fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    let prefix = format!("{name}{{");
    let hits: Vec<&str> = page
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .collect();
    assert_eq!(hits.len(), 1, "{name} {labels:?} in\n{page}");
    hits[0]
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value in {}", hits[0]))
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
    assert_eq!(sample(&page, "istio_requests_total", &labels), N);
    assert_eq!(
        sample(&page, "istio_request_duration_milliseconds_count", &labels),
        N
    );
    let inf = [labels.as_slice(), &[("le", "+Inf")]].concat();
    assert_eq!(
        sample(&page, "istio_request_duration_milliseconds_bucket", &inf),
        N
    );
    assert!(
        page.contains("# TYPE istio_response_bytes histogram"),
        "{page}"
    );
}
