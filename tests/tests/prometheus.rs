//! A real Prometheus (Debian's `prometheus` package) scrapes a running weft-proxy and weftd
//! with Istio's job layout (`envoy-stats` on the proxy's `/stats/prometheus`, `istiod` on
//! weftd's `/metrics`), and PromQL over what it stored gives the exact request count, the
//! destination labels weftd sent in EDS, and weftd's `pilot_xds`.
//!
//! The scrape config is generated the way `deploy/observability/prometheus.yml` lays its jobs
//! out, with a one-second interval so that the test does not wait long.

use std::path::{Path, PathBuf};
use std::time::Duration;
use weft_e2e::client::{get_plain, ProxyConn};
use weft_e2e::config::{reviews_mesh, service_entry, weighted_vs};
use weft_e2e::eventually;
use weft_e2e::free_port;
use weft_e2e::procs::Proc;

const URL: &str = "http://reviews:9080/reviews/1";

/// Debian's Prometheus; panics when it is not installed, so the test cannot pass without it.
fn prometheus_binary() -> PathBuf {
    std::env::var_os("PROMETHEUS_BIN")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths)
                .map(|d| d.join("prometheus")),
        )
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "prometheus is not installed (apt-get install prometheus, or set PROMETHEUS_BIN)"
            )
        })
}

fn scrape_config(proxy_admin: &str, weftd: &str) -> String {
    [
        "global:".to_string(),
        "  scrape_interval: 1s".into(),
        "  evaluation_interval: 1s".into(),
        "scrape_configs:".into(),
        "  - job_name: envoy-stats".into(),
        "    metrics_path: /stats/prometheus".into(),
        "    static_configs:".into(),
        format!("      - targets: ['{proxy_admin}']"),
        "  - job_name: istiod".into(),
        "    metrics_path: /metrics".into(),
        "    static_configs:".into(),
        format!("      - targets: ['{weftd}']"),
    ]
    .join("\n")
        + "\n"
}

fn start_prometheus(dir: &Path, config: &str, port: u16) -> Proc {
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config).expect("write prometheus.yml");
    let args = vec![
        format!("--config.file={}", file.display()),
        format!("--storage.tsdb.path={}", dir.join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--log.level=warn".to_string(),
    ];
    Proc::spawn("prometheus", &prometheus_binary(), &args, dir)
}

/// Percent-encodes a PromQL expression for a query string.
fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Prometheus' answer to an instant query (its JSON, errors included); `None` while it does
/// not answer.
async fn query_json(port: u16, promql: &str) -> Option<serde_json::Value> {
    let url = format!(
        "http://127.0.0.1:{port}/api/v1/query?query={}",
        encode(promql)
    );
    Some(get_plain(&url).await.ok()?.json())
}

/// [`query_json`] of a Prometheus that is known to be up.
async fn answer(port: u16, promql: &str) -> serde_json::Value {
    query_json(port, promql)
        .await
        .unwrap_or_else(|| panic!("no answer to {promql}"))
}

/// The value of an instant query whose result is one sample; `None` while Prometheus has no
/// such series yet.
async fn query(port: u16, promql: &str) -> Option<f64> {
    let json = query_json(port, promql).await?;
    let result = json["data"]["result"].as_array()?;
    let [sample] = &result[..] else {
        return None;
    };
    sample["value"][1].as_str()?.parse().ok()
}

/// Waits (bounded) until `promql` evaluates to exactly `want`.
async fn until_equal(port: u16, promql: &str, want: f64) {
    let what = format!("{promql} == {want}");
    eventually(&what, Duration::from_secs(60), || async {
        (query(port, promql).await == Some(want)).then_some(())
    })
    .await;
}

#[tokio::test]
#[ignore = "needs prometheus: apt-get install prometheus; run with --include-ignored"]
async fn prometheus_scrapes_the_exact_request_count_and_weftds_pilot_metrics() {
    let binary = prometheus_binary();
    let (mut mesh, _echoes) = reviews_mesh().await;
    // Every request goes to subset v2, so every one is answered by a v2 endpoint.
    mesh.write("reviews-vs.yaml", &weighted_vs("reviews", &[("v2", 100)]));
    mesh.start_weftd().await;
    let proxy = mesh
        .start_proxy_with_labels("productpage-v1", "default", "app=productpage,version=v1")
        .await;
    const N: u64 = 23;
    let mut conn = ProxyConn::new(proxy.outbound);
    for _ in 0..N {
        let r = conn.get(URL, &[]).await.expect("request");
        assert_eq!(r.status, 200);
        assert_eq!(r.served_by(), "reviews-v2");
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = scrape_config(
        &proxy.admin.to_string(),
        &format!("127.0.0.1:{}", mesh.http_port),
    );
    let mut prom = start_prometheus(dir.path(), &config, port);
    eprintln!("prometheus: {}", binary.display());

    until_equal(port, "sum(up)", 2.0).await;
    let count = "sum(istio_requests_total{job=\"envoy-stats\",reporter=\"source\",\
                 source_workload=\"productpage-v1\",\
                 destination_service=\"reviews.default.svc.cluster.local\",\
                 destination_version=\"v2\",destination_canonical_service=\"reviews\",\
                 response_code=\"200\"})";
    until_equal(port, count, N as f64).await;
    // No request is counted under another version.
    until_equal(
        port,
        "count(istio_requests_total{destination_service_name=\"reviews\"})",
        1.0,
    )
    .await;
    until_equal(
        port,
        "sum(envoy_cluster_upstream_rq{job=\"envoy-stats\",\
         cluster_name=\"outbound|9080|v2|reviews.default.svc.cluster.local\",\
         envoy_response_code=\"200\"})",
        N as f64,
    )
    .await;
    // The HTTP metrics Kiali reads (its TCP and gRPC-message ones need traffic Weft does not
    // carry yet).
    for name in [
        "istio_requests_total",
        "istio_request_duration_milliseconds_bucket",
        "istio_request_bytes_bucket",
        "istio_response_bytes_bucket",
    ] {
        let present = format!("count({{__name__=\"{name}\",job=\"envoy-stats\"}}) > bool 0");
        until_equal(port, &present, 1.0).await;
    }
    until_equal(port, "pilot_xds{job=\"istiod\"}", 1.0).await;
    until_equal(
        port,
        "pilot_xds_pushes{job=\"istiod\",type=\"cds\"} > bool 0",
        1.0,
    )
    .await;
    // A configuration change reaches the proxy: weftd records how long it took.
    mesh.write(
        "ratings-se.yaml",
        &service_entry("ratings", 9080, "HTTP", &[(1, "v1")]),
    );
    until_equal(
        port,
        "pilot_proxy_convergence_time_count{job=\"istiod\"} > bool 0",
        1.0,
    )
    .await;
    check_dashboard(port).await;
    prom.terminate(Duration::from_secs(10));
}

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Every query of `deploy/observability/grafana-dashboard.json` is PromQL this Prometheus
/// accepts, with the dashboard's variables set to this mesh's names, and the mesh, service
/// and control-plane views have data.
async fn check_dashboard(port: u16) {
    let text = std::fs::read_to_string(repo_file("deploy/observability/grafana-dashboard.json"))
        .expect("read the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard["panels"], &mut exprs);
    assert!(exprs.len() >= 20, "{exprs:?}");
    let set = |e: &str| {
        e.replace("$__rate_interval", "1m")
            .replace("$service", "reviews.default.svc.cluster.local")
            .replace("$namespace", "default")
            .replace("$workload", "productpage-v1")
    };
    for (title, expr) in &exprs {
        let answer = answer(port, &set(expr)).await;
        assert_eq!(answer["status"], "success", "{title}: {expr}: {answer}");
    }
    for title in [
        "Requests by service",
        "Requests by serving workload and version",
        "Outbound requests by service",
        "Connected proxies",
    ] {
        let (_, expr) = exprs
            .iter()
            .find(|(t, _)| t == title)
            .unwrap_or_else(|| panic!("no panel {title}"));
        let expr = set(expr);
        eventually(
            &format!("data for {title}"),
            Duration::from_secs(30),
            || async {
                let answer = query_json(port, &expr).await?;
                let n = answer["data"]["result"].as_array().map_or(0, Vec::len);
                (n > 0).then_some(())
            },
        )
        .await;
    }
    // The template variables' label_values(selector, label) select series too.
    for var in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        let Some(q) = var["query"]["query"].as_str() else {
            continue;
        };
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(", "))
            .unwrap_or_else(|| panic!("variable query {q}"));
        let promql = format!("count by ({}) ({})", inner.1, set(inner.0));
        let answer = answer(port, &promql).await;
        let n = answer["data"]["result"].as_array().map_or(0, Vec::len);
        assert!(n > 0, "{promql}: {answer}");
    }
}

/// (panel title, expr) of every query, rows' nested panels included.
fn collect_exprs(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
    for panel in panels.as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or_default().to_string();
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push((title.clone(), expr.to_string()));
            }
        }
        collect_exprs(&panel["panels"], out);
    }
}

/// The scrape configuration deploy/observability ships is one Debian's `promtool` accepts.
#[test]
#[ignore = "needs prometheus: apt-get install prometheus; run with --include-ignored"]
fn the_shipped_scrape_config_is_valid() {
    let promtool = prometheus_binary().with_file_name("promtool");
    let out = std::process::Command::new(&promtool)
        .args(["check", "config"])
        .arg(repo_file("deploy/observability/prometheus.yml"))
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", promtool.display()));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
