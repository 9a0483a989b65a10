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
use crate::config::{EndpointAddress, UpstreamProtocol};
use crate::http::body::ProxyBody;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::{Arc, Mutex, Weak};
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
    Http1(http1::SendRequest<ProxyBody>, ConnectionReturn),
    Http2(http2::SendRequest<ProxyBody>),
}

/// Gives an HTTP/1.1 connection back to its pool.
pub struct ConnectionReturn {
    pool: Weak<HostPool>,
    sender: Option<http1::SendRequest<ProxyBody>>,
}

impl ConnectionReturn {
    pub fn release(mut self) {
        if let (Some(pool), Some(sender)) = (self.pool.upgrade(), self.sender.take()) {
            pool.put_idle(sender);
        }
    }
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
    pub async fn checkout(
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
        while let Some(mut sender) = self.pop_idle() {
            // A keep-alive connection the server closed while idle fails here, not on the
            // request, so the request is never sent on a dead connection from the pool.
            if sender.ready().await.is_ok() {
                return Ok(self.http1(sender));
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
        Ok(self.http1(sender))
    }

    fn http1(self: &Arc<Self>, sender: http1::SendRequest<ProxyBody>) -> Connection {
        let ret = ConnectionReturn {
            pool: Arc::downgrade(self),
            sender: None,
        };
        Connection::Http1(sender, ret)
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

    fn put_idle(&self, sender: http1::SendRequest<ProxyBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE_PER_HOST {
            idle.push(sender);
        }
    }

    /// Connections currently idle (HTTP/1.1) or open (HTTP/2), for the admin page.
    pub fn idle_connections(&self) -> usize {
        lock(&self.idle).len() + usize::from(lock(&self.h2).is_some())
    }
}

impl Connection {
    /// Sends the request. For HTTP/1.1 the connection rides along with the response body and
    /// returns to the pool when the body ends.
    pub async fn send(
        self,
        req: http::Request<ProxyBody>,
    ) -> Result<http::Response<ProxyBody>, hyper::Error> {
        match self {
            Connection::Http1(mut sender, mut ret) => {
                let resp = sender.send_request(req).await?;
                ret.sender = Some(sender);
                let (parts, body) = resp.into_parts();
                let body = if hyper::body::Body::is_end_stream(&body) {
                    ret.release();
                    ProxyBody::Incoming(body)
                } else {
                    ProxyBody::Pooled(body, Some(ret))
                };
                Ok(http::Response::from_parts(parts, body))
            }
            Connection::Http2(mut sender) => {
                let resp = sender.send_request(req).await?;
                Ok(resp.map(ProxyBody::Incoming))
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
