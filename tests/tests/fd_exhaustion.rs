//! A weft-proxy out of file descriptors: 10,000 connections opened at once against a proxy
//! whose open-file limit is 512. It logs the condition, backs off instead of spinning or
//! crashing, and serves normally once the flood is gone.
//!
//! A file of its own, so that its 10,000 sockets are not shared with other tests' budgets.

use std::time::Duration;
use weft_e2e::client::ProxyConn;
use weft_e2e::config::{service_entry, Mesh, ProxyLaunch};
use weft_e2e::upstream::Echo;

const FLOOD: usize = 10_000;

/// This process's soft open-file limit, from /proc (the test crate has no libc).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Raises this process's soft limit with `prlimit` when it is below `need`.
fn ensure_open_file_limit(need: u64) {
    if open_file_limit().is_some_and(|l| l >= need) {
        return;
    }
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={need}:"),
        ])
        .status();
    let have = open_file_limit();
    assert!(
        have.is_some_and(|l| l >= need),
        "this test opens {FLOOD} sockets and needs an open-file limit of {need} \
         (have {have:?}; prlimit: {status:?}); raise the hard limit (ulimit -Hn)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_connections_at_once_do_not_bring_down_a_proxy_with_512_fds() {
    ensure_open_file_limit(FLOOD as u64 + 1024);
    let echo = Echo::start("details-v1").await;
    let mut mesh = Mesh::new();
    mesh.write(
        "se.yaml",
        &service_entry("details", 9080, "HTTP", &[(echo.port(), "v1")]),
    );
    mesh.start_weftd().await;
    let launch = ProxyLaunch {
        shell_prelude: Some("ulimit -n 512"),
        ..Default::default()
    };
    let mut proxy = mesh.start_proxy_launched("client", "default", launch).await;
    let outbound = proxy.outbound;

    let connects: Vec<_> = (0..FLOOD)
        .map(|_| {
            tokio::spawn(async move {
                // Past the listen backlog a connect may wait on SYN retries: bounded.
                tokio::time::timeout(
                    Duration::from_secs(5),
                    tokio::net::TcpStream::connect(outbound),
                )
                .await
                .ok()
                .and_then(Result::ok)
            })
        })
        .collect();
    let mut held = Vec::new();
    for c in connects {
        if let Some(s) = c.await.expect("join") {
            held.push(s);
        }
    }
    assert!(
        held.len() > 512,
        "the flood opened {} connections",
        held.len()
    );
    weft_e2e::eventually(
        "the proxy reports running out of file descriptors",
        Duration::from_secs(20),
        || {
            let log = proxy.proc.log();
            async move { log.contains("out of file descriptors").then_some(()) }
        },
    )
    .await;
    assert!(proxy.proc.is_running(), "alive while flooded");
    drop(held);

    weft_e2e::eventually(
        "a normal request succeeds after the flood",
        Duration::from_secs(30),
        || async move {
            // One try may sit in SYN retries while the backlog drains: bounded, then retried.
            let r = tokio::time::timeout(
                Duration::from_secs(3),
                ProxyConn::new(outbound).get("http://details:9080/after", &[]),
            )
            .await
            .ok()?
            .ok()?;
            (r.status == 200).then_some(())
        },
    )
    .await;
    assert!(proxy.proc.is_running(), "alive after the flood");
    assert_eq!(proxy.admin_get("/ready").await.status, 200);
}
