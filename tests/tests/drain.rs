//! Graceful drain of a weft-proxy process: SIGTERM or `POST /quitquitquit` stop the listeners,
//! let in-flight requests finish within `--drain-time`, and exit 0; `GET /quitquitquit` is
//! refused; `--exit-on-zero-active-connections` (or Istio's EXIT_ON_ZERO_ACTIVE_CONNECTIONS)
//! exits as soon as no connection is left.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_e2e::client::{ProxyConn, Reply};
use weft_e2e::config::{service_entry, Mesh, Proxy, ProxyLaunch};
use weft_e2e::upstream::Echo;

/// Longest any of these tests waits for the proxy to exit; every drain time used here that is
/// expected to run out is far shorter, and the ones expected not to be waited out are longer.
const EXIT_WAIT: Duration = Duration::from_secs(30);

async fn mesh() -> (Mesh, Echo) {
    let echo = Echo::start("details-v1").await;
    let mut mesh = Mesh::new();
    mesh.write(
        "se.yaml",
        &service_entry("details", 9080, "HTTP", &[(echo.port(), "v1")]),
    );
    mesh.start_weftd().await;
    (mesh, echo)
}

/// A request held `delay_ms` at the upstream, started in the background once sent.
fn slow_request(proxy: &Proxy, delay_ms: u64) -> tokio::task::JoinHandle<anyhow::Result<Reply>> {
    let addr = proxy.outbound;
    tokio::spawn(async move {
        ProxyConn::new(addr)
            .get(
                &format!("http://details:9080/slow?delay_ms={delay_ms}"),
                &[],
            )
            .await
    })
}

async fn until_at_upstream(echo: &Echo, n: u64) {
    weft_e2e::eventually(
        "the request reaches the upstream",
        Duration::from_secs(10),
        || {
            let seen = echo.requests.load(std::sync::atomic::Ordering::Relaxed);
            async move { (seen >= n).then_some(()) }
        },
    )
    .await;
}

async fn wait_exit(mut proxy: Proxy) -> (std::process::ExitStatus, Proxy) {
    tokio::task::spawn_blocking(move || {
        let status = proxy.proc.wait_exit(EXIT_WAIT);
        (status.expect("weft-proxy exits"), proxy)
    })
    .await
    .expect("join")
}

/// Sends `method path` to the admin server and returns the status line and body.
async fn admin(proxy: &Proxy, method: &str, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(proxy.admin)
        .await
        .expect("connect admin");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .expect("admin answers in time")
        .expect("read");
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_the_in_flight_request_refuses_new_connections_and_exits_zero() {
    let (mesh, echo) = mesh().await;
    let launch = ProxyLaunch {
        args: &["--drain-time", "4s"],
        ..Default::default()
    };
    let proxy = mesh.start_proxy_launched("client", "default", launch).await;
    let in_flight = slow_request(&proxy, 1500);
    until_at_upstream(&echo, 1).await;
    proxy.proc.sigterm();
    let outbound = proxy.outbound;
    weft_e2e::eventually(
        "new connections are refused",
        Duration::from_secs(10),
        || async move { tokio::net::TcpStream::connect(outbound).await.err() },
    )
    .await;
    let reply = in_flight
        .await
        .expect("join")
        .expect("the in-flight request completes");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers.get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "an HTTP/1.1 answer during drain closes its connection"
    );
    let (status, proxy) = wait_exit(proxy).await;
    assert!(status.success(), "exit status {status:?}");
    let log = proxy.proc.log();
    assert!(log.contains("draining: no longer accepting"), "{log}");
    assert!(log.contains("drained, exiting"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn get_quitquitquit_is_refused_and_post_drains_exiting_at_zero_connections() {
    let (mesh, _echo) = mesh().await;
    // Istio's environment variable; a drain time far longer than the wait below shows the
    // proxy did not wait it out.
    let launch = ProxyLaunch {
        args: &["--drain-time", "300s"],
        shell_prelude: Some("export EXIT_ON_ZERO_ACTIVE_CONNECTIONS=true"),
    };
    let proxy = mesh.start_proxy_launched("client", "default", launch).await;
    let refused = admin(&proxy, "GET", "/quitquitquit").await;
    assert!(refused.starts_with("HTTP/1.1 405"), "{refused}");
    assert!(
        refused.to_ascii_lowercase().contains("allow: post"),
        "{refused}"
    );
    assert_eq!(
        proxy.admin_get("/ready").await.status,
        200,
        "GET did not stop it"
    );
    let ok = ProxyConn::new(proxy.outbound)
        .get("http://details:9080/", &[])
        .await
        .expect("still serving");
    assert_eq!(ok.status, 200);

    let accepted = admin(&proxy, "POST", "/quitquitquit").await;
    assert!(accepted.starts_with("HTTP/1.1 200"), "{accepted}");
    let (status, proxy) = wait_exit(proxy).await;
    assert!(status.success(), "exit status {status:?}");
    assert!(proxy.proc.log().contains("no active connections left"));
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_on_zero_waits_for_the_in_flight_request_then_exits() {
    let (mesh, echo) = mesh().await;
    let launch = ProxyLaunch {
        args: &["--drain-time", "300s", "--exit-on-zero-active-connections"],
        ..Default::default()
    };
    let proxy = mesh.start_proxy_launched("client", "default", launch).await;
    let in_flight = slow_request(&proxy, 1500);
    until_at_upstream(&echo, 1).await;
    proxy.proc.sigterm();
    let reply = in_flight.await.expect("join").expect("completes");
    assert_eq!(reply.status, 200);
    let (status, _proxy) = wait_exit(proxy).await;
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_drain_time_cuts_a_request_that_would_outlast_it() {
    let (mesh, echo) = mesh().await;
    let launch = ProxyLaunch {
        args: &["--drain-time", "1s", "--exit-on-zero-active-connections"],
        ..Default::default()
    };
    let proxy = mesh.start_proxy_launched("client", "default", launch).await;
    // Held at the upstream for far longer than the test waits for the exit.
    let in_flight = slow_request(&proxy, 120_000);
    until_at_upstream(&echo, 1).await;
    proxy.proc.sigterm();
    let (status, proxy) = wait_exit(proxy).await;
    assert!(status.success(), "exit status {status:?}");
    let cut = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the client learns at once")
        .expect("join");
    assert!(
        cut.is_err(),
        "the request was cut: {:?}",
        cut.map(|r| r.status)
    );
    assert!(proxy.proc.log().contains("drain time over"));
}
