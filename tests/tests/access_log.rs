//! Access logs: one line per request on the proxy's stdout, in Envoy's default format or as
//! JSON, with the response flags of the proxy's own answers.

use std::time::Duration;
use weft_e2e::client::ProxyConn;
use weft_e2e::config::{service_entry, Mesh};
use weft_e2e::eventually;
use weft_e2e::upstream::Echo;

#[tokio::test(flavor = "multi_thread")]
async fn default_format_logs_flags_for_own_answers() {
    let echo = Echo::start("ratings-v1").await;
    let mut mesh = Mesh::new();
    mesh.write(
        "se.yaml",
        &service_entry("ratings", 9080, "HTTP", &[(echo.port(), "v1")]),
    );
    // A service whose only endpoint refuses connections: UF.
    let closed = weft_e2e::free_port();
    mesh.write(
        "dead.yaml",
        &service_entry("dead", 9080, "HTTP", &[(closed, "v1")]),
    );
    mesh.start_weftd().await;
    let proxy = mesh.start_proxy("client", "default").await;
    let mut conn = ProxyConn::new(proxy.outbound);
    assert_eq!(
        conn.get(
            "http://ratings:9080/ratings/1",
            &[("x-request-id", "req-ok")]
        )
        .await
        .expect("ok")
        .status,
        200
    );
    assert_eq!(
        conn.get("http://missing:9080/", &[("x-request-id", "req-nr")])
            .await
            .expect("nr")
            .status,
        404
    );
    let uf = conn
        .get("http://dead:9080/", &[("x-request-id", "req-uf")])
        .await
        .expect("uf");
    assert_eq!(uf.status, 503);
    let log = eventually("three access log lines", Duration::from_secs(10), || {
        let log = proxy.proc.log();
        async move { (log.matches("\"req-").count() >= 3).then_some(log) }
    })
    .await;
    let line = |id: &str| {
        log.lines()
            .find(|l| l.contains(id))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("req-ok").contains("\"GET /ratings/1 HTTP/1.1\" 200 - "),
        "{log}"
    );
    assert!(
        line("req-ok").contains(&format!("\"127.0.0.1:{}\"", echo.port())),
        "{log}"
    );
    assert!(line("req-nr").contains(" 404 NR "), "{log}");
    // Istio's default retry policy retries connect failures twice; then the retries are
    // exhausted too, and Envoy logs both flags.
    assert!(line("req-uf").contains(" 503 UF,URX "), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_format_when_weftd_asks_for_it() {
    let echo = Echo::start("ratings-v1").await;
    let mut mesh = Mesh::new();
    mesh.weftd_args = vec!["--access-log-format".into(), "json".into()];
    mesh.write(
        "se.yaml",
        &service_entry("ratings", 9080, "HTTP", &[(echo.port(), "v1")]),
    );
    mesh.start_weftd().await;
    let proxy = mesh.start_proxy("client", "default").await;
    let r = ProxyConn::new(proxy.outbound)
        .get("http://ratings:9080/r", &[("x-request-id", "json-1")])
        .await
        .expect("request");
    assert_eq!(r.status, 200);
    let entry = eventually("a JSON access log line", Duration::from_secs(10), || {
        let log = proxy.proc.log();
        async move {
            log.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["request_id"] == "json-1")
        }
    })
    .await;
    assert_eq!(entry["response_code"], 200);
    assert_eq!(entry["authority"], "ratings:9080");
    assert_eq!(
        entry["upstream_cluster"],
        "outbound|9080||ratings.default.svc.cluster.local"
    );
}
