//! Downstream connection limits of a weft-proxy process: past `--max-downstream-connections`
//! a connection is closed at once, logged and counted in Envoy's
//! `downstream_global_cx_overflow`; closing one frees a place.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_e2e::config::{service_entry, Mesh, ProxyLaunch};
use weft_e2e::upstream::Echo;

const REQUEST: &[u8] = b"GET http://details:9080/ HTTP/1.1\r\nHost: details:9080\r\n\r\n";

/// Sends one request on `s` and reads until the answer's head has come, or the connection
/// ends; what was read.
async fn exchange(s: &mut TcpStream) -> String {
    if s.write_all(REQUEST).await.is_err() {
        return String::new();
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("an answer or a close in time")
            .unwrap_or(0);
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).to_string();
        if n == 0 || text.contains("\r\n\r\n") {
            return text;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_past_the_global_limit_are_closed_counted_and_logged() {
    let echo = Echo::start("details-v1").await;
    let mut mesh = Mesh::new();
    mesh.write(
        "se.yaml",
        &service_entry("details", 9080, "HTTP", &[(echo.port(), "v1")]),
    );
    mesh.start_weftd().await;
    let launch = ProxyLaunch {
        args: &["--max-downstream-connections", "2"],
        ..Default::default()
    };
    let proxy = mesh.start_proxy_launched("client", "default", launch).await;

    let mut first = TcpStream::connect(proxy.outbound).await.expect("connect");
    let mut second = TcpStream::connect(proxy.outbound).await.expect("connect");
    assert!(exchange(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(exchange(&mut second).await.starts_with("HTTP/1.1 200"));
    // The kernel completes the handshake; the proxy closes without reading.
    let mut third = TcpStream::connect(proxy.outbound).await.expect("connect");
    assert_eq!(exchange(&mut third).await, "", "closed without an answer");

    let stats = proxy.admin_get("/stats/prometheus").await.body;
    let line = format!(
        "envoy_listener_downstream_global_cx_overflow{{envoy_listener_address=\"127.0.0.1_{}\"}} 1",
        proxy.outbound.port()
    );
    assert!(stats.contains(&line), "{line} in\n{stats}");
    assert!(proxy
        .proc
        .log()
        .contains("connection refused: --max-downstream-connections reached"));

    drop(first);
    let outbound = proxy.outbound;
    weft_e2e::eventually(
        "a closed connection frees a place",
        Duration::from_secs(10),
        || async move {
            let mut s = TcpStream::connect(outbound).await.ok()?;
            exchange(&mut s)
                .await
                .starts_with("HTTP/1.1 200")
                .then_some(())
        },
    )
    .await;
    assert!(
        exchange(&mut second).await.starts_with("HTTP/1.1 200"),
        "kept connections keep working"
    );
}
