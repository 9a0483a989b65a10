//! Test helpers for the end-to-end tests: the real binaries on ephemeral loopback ports,
//! in-process upstreams, a mesh config folder, and an HTTP client that talks to a proxy.

pub mod client;
pub mod config;
pub mod dns;
pub mod faulty;
pub mod load;
pub mod netns;
pub mod otlp;
pub mod pods;
pub mod procs;
pub mod upstream;

use std::time::Duration;

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`. This bounds a
/// test's run time; it is not a performance assertion.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A free loopback port (bound then released; good enough on a test machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// The first of `n` consecutive free loopback ports, for programs that number ports from a
/// base.
pub fn free_port_range(n: u16) -> u16 {
    for _ in 0..100 {
        let base = rand::random_range(20_000..60_000u16);
        let listeners: Vec<_> = (base..base + n)
            .map_while(|p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if listeners.len() == usize::from(n) {
            return base;
        }
    }
    panic!("no {n} consecutive free ports");
}
