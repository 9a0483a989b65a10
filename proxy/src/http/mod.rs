//! The HTTP connection manager: serves downstream connections (HTTP/1.1 and HTTP/2 with prior
//! knowledge) and runs each request through the proxy.

pub mod filter;
pub mod forward;
pub mod headers;
pub mod local_reply;
pub mod mirror;
pub mod plan;
pub mod redirect;
pub mod stream;
pub mod upstream_request;

use crate::context::ProxyContext;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpStream;
use tracing::debug;

/// Serves one accepted connection until it closes, or until the proxy drains and the
/// connection has finished its in-flight requests.
pub async fn serve_connection(
    ctx: Arc<ProxyContext>,
    listener: Arc<str>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let _ = stream.set_nodelay(true);
    ctx.open_connections.fetch_add(1, Ordering::Relaxed);
    let _open = OpenConnection(ctx.clone());
    let mut draining = ctx.draining.subscribe();
    let svc_ctx = ctx.clone();
    let service = service_fn(move |req| {
        let ctx = svc_ctx.clone();
        let listener = listener.clone();
        async move {
            Ok::<_, std::convert::Infallible>(stream::handle(&ctx, &listener, peer, req).await)
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(60));
    builder
        .http2()
        .timer(TokioTimer::new())
        .adaptive_window(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = wait_true(&mut draining) => {
            // Finish what is in flight, close keep-alive connections, send GOAWAY on HTTP/2.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "downstream connection ended with an error");
    }
}

struct OpenConnection(Arc<ProxyContext>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves once the watched flag is true. (The guard `wait_for` returns must not be held
/// across an await, so it is dropped here.)
pub async fn wait_true(flag: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = flag.wait_for(|v| *v).await.map(|_| ());
}

#[cfg(test)]
mod tests;
