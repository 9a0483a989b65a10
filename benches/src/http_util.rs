//! A one-shot HTTP/1.1 GET for readiness checks, probes and weftd's debug endpoints.

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// GET `path` from `addr` with the given Host header; (status, body).
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Result<(u16, Bytes)> {
    let fut = async {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = http::Request::get(path)
            .header(http::header::HOST, host)
            .body(Empty::<Bytes>::new())?;
        let resp = send.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .with_context(|| format!("GET http://{addr}{path} timed out"))?
}

/// Whether GET answers 200.
pub async fn is_ok(addr: SocketAddr, host: &str, path: &str) -> bool {
    matches!(get(addr, host, path).await, Ok((200, _)))
}

/// Polls `check` every 50 ms until it is true, `alive` turns false, or `limit` passes.
pub async fn wait_until<F, Fut>(
    what: &str,
    limit: Duration,
    mut alive: impl FnMut() -> Result<()>,
    mut check: F,
) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    loop {
        if check().await {
            return Ok(start.elapsed());
        }
        alive()?;
        if start.elapsed() > limit {
            anyhow::bail!("{what}: not ready after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
