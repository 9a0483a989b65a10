//! Connection pools, one per host of a cluster.
//!
//! HTTP/1.1: idle keep-alive connections wait in a stack (most recently used first, so the
//! hottest connections stay warm and surplus ones age out). A connection is checked out for
//! one request and comes back when its response body has been read to the end
//! ([`ConnectionReturn`]); one whose response was abandoned is simply dropped.
//! HTTP/2: one multiplexed connection per host, shared by all requests, replaced when it
//! closes.
//!
//! The locks here guard plain vectors for a few instructions and are never held across an
//! await.

use super::connect::{connect, ConnectError};
use crate::body::{ConnectionReturn, IdleSink, ProxyBody, UpstreamBody};
use crate::config::{EndpointAddress, UpstreamProtocol};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::debug;

/// Idle HTTP/1.1 connections kept per host; more are closed when they come back.
const MAX_IDLE_PER_HOST: usize = 256;

pub struct HostPool {
    address: EndpointAddress,
    protocol: UpstreamProtocol,
    idle: Mutex<Vec<http1::SendRequest<ProxyBody>>>,
    h2: Mutex<Option<http2::SendRequest<ProxyBody>>>,
    /// Serializes HTTP/2 connection setup so a burst of requests opens one connection.
    h2_connecting: tokio::sync::Mutex<()>,
}

pub enum Connection {
    /// An HTTP/1.1 connection; `reused` when it came from the idle stack.
    Http1(http1::SendRequest<ProxyBody>, ConnectionReturn, bool),
    Http2(http2::SendRequest<ProxyBody>),
}

/// Why an upstream exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("upstream reset: {0}")]
    Reset(hyper::Error),
    #[error("upstream closed the connection before the request was sent")]
    ClosedBeforeSend,
}

impl HostPool {
    pub fn new(address: EndpointAddress, protocol: UpstreamProtocol) -> Arc<Self> {
        Arc::new(HostPool {
            address,
            protocol,
            idle: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
            h2_connecting: tokio::sync::Mutex::new(()),
        })
    }

    pub fn address(&self) -> &EndpointAddress {
        &self.address
    }

    /// A connection ready to send one request on.
    async fn checkout(
        self: &Arc<Self>,
        connect_timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        match self.protocol {
            UpstreamProtocol::Http1 => self.checkout_http1(connect_timeout).await,
            UpstreamProtocol::Http2 => self.checkout_http2(connect_timeout).await,
        }
    }

    async fn checkout_http1(
        self: &Arc<Self>,
        connect_timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        while let Some(sender) = self.pop_idle() {
            // Only a connection ready right now is reused. One the server closed while idle is
            // dropped here; so is one still sending a request body the server answered early
            // (it came back when the response ended): waiting for it could take for ever.
            if sender.is_ready() {
                return Ok(self.http1(sender, true));
            }
        }
        let io = connect(&self.address, connect_timeout).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(ConnectError::Handshake)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(error = %e, "upstream http/1.1 connection ended");
            }
        });
        Ok(self.http1(sender, false))
    }

    fn http1(self: &Arc<Self>, sender: http1::SendRequest<ProxyBody>, reused: bool) -> Connection {
        let sink: Arc<dyn IdleSink> = self.clone();
        let ret = ConnectionReturn::new(Arc::downgrade(&sink));
        Connection::Http1(sender, ret, reused)
    }

    /// One request/response exchange with this host.
    ///
    /// A keep-alive connection can be closed by the server at the very moment it is reused;
    /// then the request never left and is safe to send again, once, on a new connection
    /// (whatever its method). A request that did go out is never replayed here: that is the
    /// retry policy's decision.
    pub async fn send(
        self: &Arc<Self>,
        req: http::Request<ProxyBody>,
        connect_timeout: Duration,
    ) -> Result<http::Response<UpstreamBody>, SendError> {
        let conn = self.checkout(connect_timeout).await?;
        match conn.send(req).await {
            Ok(resp) => Ok(resp),
            Err(Unsent::Retry(req)) => {
                debug!(host = %self.address, "reused connection closed before the request went out; retrying on a new one");
                let fresh = self.fresh_http1(connect_timeout).await?;
                fresh.send(*req).await.map_err(|e| match e {
                    Unsent::Retry(_) => SendError::ClosedBeforeSend,
                    Unsent::Failed(e) => SendError::Reset(e),
                })
            }
            Err(Unsent::Failed(e)) => Err(SendError::Reset(e)),
        }
    }

    async fn fresh_http1(
        self: &Arc<Self>,
        connect_timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        // Drop idle connections first: if one was closed under us, its siblings likely were too.
        lock(&self.idle).clear();
        self.checkout_http1(connect_timeout).await
    }

    async fn checkout_http2(
        self: &Arc<Self>,
        connect_timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        if let Some(sender) = self.live_h2() {
            return Ok(Connection::Http2(sender));
        }
        let _guard = self.h2_connecting.lock().await;
        if let Some(sender) = self.live_h2() {
            return Ok(Connection::Http2(sender));
        }
        let io = connect(&self.address, connect_timeout).await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .adaptive_window(true)
            .handshake(TokioIo::new(io))
            .await
            .map_err(ConnectError::Handshake)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(error = %e, "upstream http/2 connection ended");
            }
        });
        *lock(&self.h2) = Some(sender.clone());
        Ok(Connection::Http2(sender))
    }

    fn live_h2(&self) -> Option<http2::SendRequest<ProxyBody>> {
        let mut slot = lock(&self.h2);
        match slot.as_ref() {
            Some(s) if !s.is_closed() => Some(s.clone()),
            Some(_) => {
                *slot = None;
                None
            }
            None => None,
        }
    }

    fn pop_idle(&self) -> Option<http1::SendRequest<ProxyBody>> {
        lock(&self.idle).pop()
    }

    /// Connections currently idle (HTTP/1.1) or open (HTTP/2), for the admin page.
    pub fn idle_connections(&self) -> usize {
        lock(&self.idle).len() + usize::from(lock(&self.h2).is_some())
    }
}

/// How sending on one connection failed.
enum Unsent {
    /// The request never left a reused connection: it may go out again on a new one.
    Retry(Box<http::Request<ProxyBody>>),
    Failed(hyper::Error),
}

impl Connection {
    /// Sends the request. For HTTP/1.1 the connection rides along with the response body and
    /// returns to the pool when the body ends.
    async fn send(
        self,
        req: http::Request<ProxyBody>,
    ) -> Result<http::Response<UpstreamBody>, Unsent> {
        match self {
            Connection::Http1(mut sender, mut ret, reused) => {
                let resp = match sender.try_send_request(req).await {
                    Ok(resp) => resp,
                    Err(mut e) => {
                        return Err(match e.take_message() {
                            Some(req) if reused => Unsent::Retry(Box::new(req)),
                            _ => Unsent::Failed(e.into_error()),
                        })
                    }
                };
                ret.hold(sender);
                Ok(resp.map(|body| UpstreamBody::new(body, Some(ret))))
            }
            Connection::Http2(mut sender) => {
                let resp = sender.send_request(req).await.map_err(Unsent::Failed)?;
                Ok(resp.map(|body| UpstreamBody::new(body, None)))
            }
        }
    }
}

impl IdleSink for HostPool {
    fn put_idle(&self, sender: http1::SendRequest<ProxyBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE_PER_HOST {
            idle.push(sender);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An upstream that answers one request per connection and then closes it, without saying
    /// so (no `Connection: close`): the pooled connection looks reusable but is dead.
    async fn one_shot_server() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = s.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                    }
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                });
            }
        });
        addr
    }

    fn request() -> http::Request<ProxyBody> {
        http::Request::get("/")
            .header("host", "up")
            .body(ProxyBody::Empty)
            .unwrap()
    }

    #[tokio::test]
    async fn keep_alive_connections_the_server_closed_are_not_reused() {
        let addr = one_shot_server().await;
        let pool = HostPool::new(EndpointAddress::Socket(addr), UpstreamProtocol::Http1);
        for _ in 0..5 {
            let resp = pool
                .send(request(), Duration::from_secs(1))
                .await
                .expect("sent");
            assert_eq!(resp.status(), 200);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"ok");
        }
    }

    #[tokio::test]
    async fn connections_return_to_the_pool_when_the_body_is_read() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"hello")),
                    ))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc),
                );
            }
        });
        let pool = HostPool::new(EndpointAddress::Socket(addr), UpstreamProtocol::Http1);
        for _ in 0..10 {
            let resp = pool
                .send(request(), Duration::from_secs(1))
                .await
                .expect("sent");
            resp.into_body().collect().await.unwrap();
        }
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "one keep-alive connection"
        );
        assert_eq!(pool.idle_connections(), 1);
    }
}
