//! One `GET` to an admin endpoint (a proxy's admin port, weftd's HTTP port), in origin form,
//! bounded in time and size. The inspection commands use it; they make one call each, so
//! there is nothing to pool.

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// A large mesh's config dump runs to tens of MiB; more than this is not a dump we can show.
const MAX_BODY: usize = 256 << 20;

/// `GET http://{addr}{path_and_query}`; the body on 200, an error naming the address otherwise.
pub async fn get(addr: &str, path_and_query: &str, timeout: Duration) -> anyhow::Result<Bytes> {
    tokio::time::timeout(timeout, exchange(addr, path_and_query))
        .await
        .with_context(|| format!("{addr} did not answer {path_and_query} within {timeout:?}"))?
}

async fn exchange(addr: &str, path_and_query: &str) -> anyhow::Result<Bytes> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .with_context(|| format!("HTTP handshake with {addr} failed"))?;
    tokio::spawn(conn);
    let request = http::Request::get(path_and_query)
        .header(http::header::HOST, addr)
        .body(Empty::<Bytes>::new())
        .context("invalid request")?;
    let response = sender
        .send_request(request)
        .await
        .with_context(|| format!("GET {path_and_query} from {addr} failed"))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading {path_and_query} from {addr}: {e}"))?
        .to_bytes();
    if !status.is_success() {
        bail!(
            "{addr}{path_and_query} answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        );
    }
    Ok(body)
}
