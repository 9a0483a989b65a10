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
    // weftd's default is Istio's text format: the details say why.
    assert!(line("req-ok").contains(" 200 - via_upstream "), "{log}");
    assert!(line("req-nr").contains(" 404 NR route_not_found "), "{log}");
    assert!(
        line("req-uf")
            .contains(" upstream_reset_before_response_started{remote_connection_failure"),
        "{log}"
    );
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
    assert_eq!(entry["response_code_details"], "via_upstream");
    assert_eq!(entry["authority"], "ratings:9080");
    assert_eq!(
        entry["upstream_cluster"],
        "outbound|9080||ratings.default.svc.cluster.local"
    );
}

/// A client that hangs up while the upstream is still thinking leaves a line (response code
/// 0, flag `DC`) and a count in `istio_requests_total`, as with Envoy.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_hangs_up_is_logged_and_counted_dc() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An upstream that reads requests and never answers; it says when one has arrived.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = upstream.local_addr().expect("addr").port();
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::channel::<()>(4);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = upstream.accept().await {
            let tx = arrived_tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                if matches!(s.read(&mut buf).await, Ok(n) if n > 0) {
                    let _ = tx.send(()).await;
                }
                // Hold the connection open without answering.
                let _ = s.read(&mut buf).await;
            });
        }
    });
    let mut mesh = Mesh::new();
    mesh.write(
        "se.yaml",
        &service_entry("hang", 9080, "HTTP", &[(port, "v1")]),
    );
    mesh.start_weftd().await;
    let proxy = mesh.start_proxy("client", "default").await;
    // Try until the route has arrived (a 404 does not reach the upstream); each try hangs
    // up once the upstream has the request, before any answer.
    let mut reached = false;
    for _ in 0..40 {
        let mut c = tokio::net::TcpStream::connect(proxy.outbound)
            .await
            .expect("connect");
        c.write_all(
            b"GET http://hang:9080/ HTTP/1.1\r\nhost: hang:9080\r\nx-request-id: dc-1\r\n\r\n",
        )
        .await
        .expect("write");
        let got = tokio::time::timeout(Duration::from_millis(250), arrived.recv()).await;
        drop(c);
        if matches!(got, Ok(Some(()))) {
            reached = true;
            break;
        }
    }
    assert!(reached, "the request never reached the upstream");
    // (Tries made before the route arrived were answered 404 and logged so.)
    eventually("a DC line", Duration::from_secs(10), || {
        let log = proxy.proc.log();
        async move {
            log.lines()
                .any(|l| l.contains("\"dc-1\"") && l.contains("\"GET / HTTP/1.1\" 0 DC "))
                .then_some(())
        }
    })
    .await;
    let page = eventually(
        "the DC request counted",
        Duration::from_secs(10),
        || async {
            let page = proxy.admin_get("/stats/prometheus").await.body;
            page.lines()
                .any(|l| {
                    l.starts_with("istio_requests_total{")
                        && l.contains("response_code=\"0\"")
                        && l.contains("response_flags=\"DC\"")
                })
                .then_some(page)
        },
    )
    .await;
    assert!(page.contains("destination_service=\"hang.default.svc.cluster.local\""));
}
