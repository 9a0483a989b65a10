//! The control plane failing around a running proxy: weftd killed and restarted while traffic
//! and config changes continue, and an update the proxy must refuse (NACKed, the last good
//! config keeps serving).

use std::sync::atomic::Ordering;
use std::time::Duration;
use weft_e2e::client::ProxyConn;
use weft_e2e::config::{reviews_mesh, weighted_vs, Mesh, Proxy};
use weft_e2e::eventually;
use weft_e2e::load::Load;
use weft_e2e::upstream::Echo;

const URL: &str = "http://reviews:9080/reviews/1";
const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

async fn mesh_with_reviews(to: &str) -> (Mesh, Vec<Echo>) {
    let (mesh, echoes) = reviews_mesh().await;
    mesh.write("reviews-vs.yaml", &weighted_vs("reviews", &[(to, 100)]));
    (mesh, echoes)
}

/// Waits until 5 fresh requests in a row are all served by `who`.
async fn converge_to(proxy: &Proxy, who: &str) {
    eventually(
        &format!("traffic moves to {who}"),
        Duration::from_secs(20),
        || async {
            let mut c = ProxyConn::new(proxy.outbound);
            for _ in 0..5 {
                if c.get(URL, &[]).await.ok()?.served_by() != who {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
}

/// 20 requests in a row, all served by `who`.
async fn all_served_by(proxy: &Proxy, who: &str) {
    let mut c = ProxyConn::new(proxy.outbound);
    for _ in 0..20 {
        let reply = c.get(URL, &[]).await.expect("a reply");
        assert_eq!((reply.status.as_u16(), reply.served_by()), (200, who));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weftd_killed_and_restarted_while_traffic_and_config_change() {
    let (mut mesh, _echoes) = mesh_with_reviews("v1").await;
    mesh.start_weftd().await;
    let proxy = mesh.start_proxy("productpage-v1", "default").await;
    converge_to(&proxy, "reviews-v1").await;
    let load = Load::start(proxy.outbound, URL, 4);

    mesh.kill_weftd();
    // Config keeps changing while the control plane is down: none of it can reach the
    // proxy, which serves its last good config and stays ready.
    for to in ["v2", "v3"] {
        mesh.write("reviews-vs.yaml", &weighted_vs("reviews", &[(to, 100)]));
        all_served_by(&proxy, "reviews-v1").await;
    }
    assert_eq!(proxy.admin_get("/ready").await.status, 200);
    // The proxy is retrying in the meantime: the restart on the same port is picked up
    // (within the back-off's cap) and the latest config applies.
    mesh.start_weftd().await;
    converge_to(&proxy, "reviews-v3").await;
    // And changes flow again on the new stream.
    mesh.write("reviews-vs.yaml", &weighted_vs("reviews", &[("v2", 100)]));
    converge_to(&proxy, "reviews-v2").await;

    let stats = load.stop().await;
    println!("{}", stats.summary());
    assert_eq!(
        stats.failed.load(Ordering::Relaxed),
        0,
        "{}",
        stats.summary()
    );
    assert!(
        stats.ok.load(Ordering::Relaxed) > 100,
        "{}",
        stats.summary()
    );
    let log = proxy.proc.log();
    assert!(log.contains("xDS stream down"), "{log}");
}

/// A VirtualService weftd accepts and translates but weft-proxy must refuse: a header value
/// with an Envoy substitution formatter (`%START_TIME%`), which weft-proxy does not expand
/// and so NACKs rather than sending the text literally.
fn vs_with_formatter_header(to: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n  namespace: default\nspec:\n  hosts:\n  - reviews\n  http:\n  - headers:\n      request:\n        set:\n          x-started: \"%START_TIME%\"\n    route:\n    - destination:\n        host: reviews\n        subset: {to}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_the_proxy_refuses_is_nacked_and_the_last_good_config_serves() {
    let (mut mesh, _echoes) = mesh_with_reviews("v1").await;
    mesh.start_weftd().await;
    let proxy = mesh.start_proxy("productpage-v1", "default").await;
    converge_to(&proxy, "reviews-v1").await;
    let load = Load::start(proxy.outbound, URL, 4);

    mesh.write("reviews-vs.yaml", &vs_with_formatter_header("v3"));
    let routes = eventually(
        "the route NACK in /debug/syncz",
        Duration::from_secs(20),
        || {
            let mesh = &mesh;
            let node = proxy.node_id.clone();
            async move {
                let syncz = mesh.syncz().await;
                let me = syncz
                    .as_array()?
                    .iter()
                    .find(|p| p["node_id"].as_str() == Some(node.as_str()))?;
                let routes = me["types"][ROUTE_TYPE].clone();
                (!routes["last_nack"].is_null()).then_some(routes)
            }
        },
    )
    .await;
    let detail = routes["last_nack"]["error_detail"]
        .as_str()
        .unwrap_or_default();
    assert!(detail.contains("substitution formatters"), "{routes:#}");
    // The proxy acknowledged an earlier version, never the refused one...
    assert_ne!(
        routes["last_acked_version"], routes["last_nack"]["version"],
        "{routes:#}"
    );
    // ...and the refused routes never took effect: v1 still serves.
    all_served_by(&proxy, "reviews-v1").await;

    // A good update after the bad one applies as usual.
    mesh.write("reviews-vs.yaml", &weighted_vs("reviews", &[("v3", 100)]));
    converge_to(&proxy, "reviews-v3").await;
    let stats = load.stop().await;
    assert_eq!(
        stats.failed.load(Ordering::Relaxed),
        0,
        "{}",
        stats.summary()
    );
}
