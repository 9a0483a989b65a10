//! Connection pools, one per host of a cluster.
//!
//! HTTP/1.1: idle keep-alive connections wait in a stack (most recently used first, so the
//! hottest connections stay warm and surplus ones age out). A connection is checked out for
//! one request and comes back when its response body has been read to the end
//! ([`ConnectionReturn`]); one whose response was abandoned is simply dropped.
//! HTTP/2: multiplexed connections shared by all requests, a new one only when every open one
//! is full or retired ([`h2_conns`]: the peer's stream limit, GOAWAY, REFUSED_STREAM). While one is
//! being opened, every request that needs it waits on that one attempt and sees its outcome,
//! so a host that does not answer costs each of them one connect timeout, not one per request
//! queued before it. A request an HTTP/2 connection hands back unsent goes out once more on
//! another connection, as a reused HTTP/1.1 connection's does.
//!
//! The locks here guard plain vectors for a few instructions and are never held across an
//! await.

mod h2_conns;
mod unique_values;

use super::connect::{connect_from, ConnectError};
use super::limits::{Limits, Overflow};
use crate::body::{ConnectionReturn, Http1Connection, IdleSink, ProxyBody, UpstreamBody};
use crate::config::{ConnectionOptions, EndpointAddress, UpstreamHttp2, UpstreamProtocol};
use futures::future::{BoxFuture, FutureExt, Shared};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::debug;

pub use h2_conns::unprocessed;
use h2_conns::{H2Conns, H2State, LeastBusy, StreamSlot};
use unique_values::never_index_unique_values;

/// One HTTP/2 connection attempt, awaited by every request that needs the connection.
type H2Attempt = Shared<BoxFuture<'static, Result<(), Arc<ConnectError>>>>;

/// How many times a request that found every HTTP/2 connection full waits for a new one
/// before it settles for the least busy (where h2 queues it until a stream ends).
const H2_OPEN_ROUNDS: usize = 4;

/// Idle HTTP/1.1 connections kept per host; more are closed when they come back.
const MAX_IDLE_PER_HOST: usize = 256;

pub struct HostPool {
    address: EndpointAddress,
    protocol: UpstreamProtocol,
    /// Idle connections with the time each became idle, oldest first: reuse takes the newest
    /// (the hottest stay warm), expiry drops from the front.
    idle: Mutex<VecDeque<(Http1Connection, Instant)>>,
    h2: Mutex<H2Conns>,
    /// The HTTP/2 connection attempt under way, which every request needing it awaits.
    h2_connecting: Mutex<Option<H2Attempt>>,
    /// The cluster's circuit breakers and connection options.
    limits: Arc<Limits>,
    /// This host's open connections.
    open: Arc<AtomicU64>,
    /// Wakes requests waiting for a connection of this host when one comes back idle.
    returned: Notify,
    /// Wakes requests waiting for a stream when one ends on an HTTP/2 connection that was at
    /// the cluster's `max_concurrent_streams`.
    h2_stream_freed: Arc<Notify>,
}

pub enum Connection {
    /// An HTTP/1.1 connection; `reused` when it came from the idle stack.
    Http1(Http1Connection, ConnectionReturn, bool),
    Http2(http2::SendRequest<ProxyBody>, StreamSlot),
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
    /// A circuit breaker refused the request before it left.
    #[error(transparent)]
    Overflow(#[from] Overflow),
}

impl HostPool {
    pub fn new(
        address: EndpointAddress,
        protocol: UpstreamProtocol,
        limits: Arc<Limits>,
    ) -> Arc<Self> {
        Arc::new(HostPool {
            address,
            protocol,
            idle: Mutex::new(VecDeque::new()),
            h2: Mutex::new(H2Conns::default()),
            h2_connecting: Mutex::new(None),
            limits,
            open: Arc::default(),
            returned: Notify::new(),
            h2_stream_freed: Arc::default(),
        })
    }

    pub fn address(&self) -> &EndpointAddress {
        &self.address
    }

    /// A connection ready to send one request on.
    async fn checkout(
        self: &Arc<Self>,
        connect_timeout: Duration,
    ) -> Result<Connection, SendError> {
        match self.protocol {
            UpstreamProtocol::Http1 => self.checkout_http1(connect_timeout).await,
            UpstreamProtocol::Http2 => self.checkout_http2(connect_timeout).await,
        }
    }

    /// An idle connection, else a new one if the cluster's connection limit allows (or this
    /// host has none), else a wait for one to come back or close. The request counts as
    /// pending from the moment it finds no idle connection until it has one.
    async fn checkout_http1(
        self: &Arc<Self>,
        connect_timeout: Duration,
    ) -> Result<Connection, SendError> {
        let mut pending = None;
        let mut counted_overflow = false;
        loop {
            let returned = self.returned.notified();
            let released = self.limits.released.notified();
            tokio::pin!(returned, released);
            returned.as_mut().enable();
            released.as_mut().enable();
            if let Some(conn) = self.reusable_idle() {
                return Ok(self.http1(conn, true));
            }
            if pending.is_none() {
                pending = Some(self.limits.try_pending()?);
            }
            if self.limits.try_connection() {
                return Ok(self.http1(self.open_boxed(connect_timeout).await?, false));
            }
            if self.open.load(Ordering::Relaxed) == 0 {
                // Over the cluster's limit because of other hosts: a host with no connection
                // opens one anyway, or its requests could wait for ever.
                self.limits.force_connection();
                return Ok(self.http1(self.open_boxed(connect_timeout).await?, false));
            }
            if !counted_overflow {
                self.limits
                    .stats
                    .cx_overflow
                    .fetch_add(1, Ordering::Relaxed);
                counted_overflow = true;
            }
            tokio::select! {
                () = returned => {}
                () = released => {}
            }
        }
    }

    /// Pops idle connections until one may carry a request. Only a connection ready right now
    /// is reused: one the server closed while idle is dropped here; so is one still sending a
    /// request body the server answered early (it came back when the response ended), one idle
    /// for longer than the idle timeout, and one past its maximum duration.
    fn reusable_idle(&self) -> Option<Http1Connection> {
        let options = self.limits.connection.load();
        let now = Instant::now();
        drop_expired(&mut lock(&self.idle), &options, now);
        while let Some((conn, since)) = lock(&self.idle).pop_back() {
            if conn.sender.is_ready()
                && !expired(&options, conn.opened, since, now)
                && !used_up(&options, conn.requests)
            {
                return Some(conn);
            }
        }
        None
    }

    /// Opening a connection (connect, handshake) is the rare path but its future is large:
    /// boxed, it costs an allocation when a connection opens instead of making every
    /// request's future (which hyper moves around) that much bigger.
    async fn open_boxed(&self, connect_timeout: Duration) -> Result<Http1Connection, ConnectError> {
        Box::pin(self.open_http1(connect_timeout)).await
    }

    /// Opens a connection whose slot the caller has taken; the slot is given back when the
    /// connection ends.
    async fn open_http1(&self, connect_timeout: Duration) -> Result<Http1Connection, ConnectError> {
        let guard = ConnectionSlot::new(&self.limits, &self.open);
        let (keepalive, source) = self.socket_options();
        let io = connect_from(&self.address, source, connect_timeout, keepalive).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(ConnectError::Handshake)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(error = %e, "upstream http/1.1 connection ended");
            }
            drop(guard);
        });
        Ok(Http1Connection {
            sender,
            requests: 0,
            opened: Instant::now(),
        })
    }

    fn http1(self: &Arc<Self>, conn: Http1Connection, reused: bool) -> Connection {
        let sink: Arc<dyn IdleSink> = self.clone();
        let ret = ConnectionReturn::new(Arc::downgrade(&sink));
        Connection::Http1(conn, ret, reused)
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
                debug!(host = %self.address, "connection closed before the request went out; retrying on a new one");
                // Rare, and large: boxed for the same reason as `open_boxed`.
                let fresh = Box::pin(self.fresh(connect_timeout)).await?;
                fresh.send(*req).await.map_err(|e| match e {
                    Unsent::Retry(_) => SendError::ClosedBeforeSend,
                    Unsent::Failed(e) => SendError::Reset(e),
                })
            }
            Err(Unsent::Failed(e)) => Err(SendError::Reset(e)),
        }
    }

    /// A connection other than the one that just handed a request back.
    async fn fresh(self: &Arc<Self>, connect_timeout: Duration) -> Result<Connection, SendError> {
        match self.protocol {
            UpstreamProtocol::Http1 => {
                // Drop idle connections first: if one was closed under us, its siblings likely
                // were too.
                lock(&self.idle).clear();
                self.checkout_http1(connect_timeout).await
            }
            // The one that handed it back is retired, so it is not picked again.
            UpstreamProtocol::Http2 => self.checkout_http2(connect_timeout).await,
        }
    }

    /// A stream on a connection with room; else one more connection (all waiting requests
    /// share its opening); else, over the cluster's connection limit, the least busy one below
    /// the cluster's own stream limit, or a wait for a stream or a connection to end.
    async fn checkout_http2(
        self: &Arc<Self>,
        connect_timeout: Duration,
    ) -> Result<Connection, SendError> {
        if let Some(conn) = self.pick_h2() {
            return Ok(conn);
        }
        let _pending = self.limits.try_pending()?;
        let mut counted_overflow = false;
        loop {
            let freed = self.h2_stream_freed.notified();
            let released = self.limits.released.notified();
            tokio::pin!(freed, released);
            freed.as_mut().enable();
            released.as_mut().enable();
            if let Some(conn) = self
                .open_or_share_h2(connect_timeout, &mut counted_overflow)
                .await?
            {
                return Ok(conn);
            }
            tokio::select! {
                () = freed => {}
                () = released => {}
            }
        }
    }

    /// `None` when every connection carries the cluster's `max_concurrent_streams` and no new
    /// one may be opened. A request's connection overflow is counted once, however often it
    /// comes back here.
    async fn open_or_share_h2(
        self: &Arc<Self>,
        connect_timeout: Duration,
        counted_overflow: &mut bool,
    ) -> Result<Option<Connection>, SendError> {
        for _ in 0..H2_OPEN_ROUNDS {
            let attempt = {
                let mut slot = lock(&self.h2_connecting);
                if let Some(conn) = self.pick_h2() {
                    return Ok(Some(conn));
                }
                match slot.as_ref() {
                    // A finished attempt is stale: its connection (if any) was already checked.
                    Some(a) if a.peek().is_none() => a.clone(),
                    _ => {
                        if !self.limits.try_connection() {
                            if !std::mem::replace(counted_overflow, true) {
                                self.limits
                                    .stats
                                    .cx_overflow
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                            match lock(&self.h2).least_busy() {
                                LeastBusy::Stream(sender, stream) => {
                                    return Ok(Some(Connection::Http2(sender, stream)))
                                }
                                LeastBusy::AllAtLimit => return Ok(None),
                                // A host's first connection opens even over the cluster's
                                // limit, or its requests could wait for ever.
                                LeastBusy::NoConnection => self.limits.force_connection(),
                            }
                        }
                        let a = self.clone().open_http2(connect_timeout).boxed().shared();
                        *slot = Some(a.clone());
                        a
                    }
                }
            };
            attempt
                .await
                .map_err(|e| SendError::Connect(ConnectError::Shared(e)))?;
        }
        // Every new connection filled up before this request got a stream on one.
        match lock(&self.h2).least_busy() {
            LeastBusy::Stream(sender, stream) => Ok(Some(Connection::Http2(sender, stream))),
            LeastBusy::AllAtLimit => Ok(None),
            LeastBusy::NoConnection => Err(SendError::ClosedBeforeSend),
        }
    }

    fn pick_h2(&self) -> Option<Connection> {
        let options = self.limits.connection.load();
        let (sender, stream) = lock(&self.h2).pick(&options)?;
        Some(Connection::Http2(sender, stream))
    }

    /// Opens one more HTTP/2 connection to the host (its slot already taken by the caller)
    /// and adds it to the host's set.
    async fn open_http2(
        self: Arc<Self>,
        connect_timeout: Duration,
    ) -> Result<(), Arc<ConnectError>> {
        let slot = ConnectionSlot::new(&self.limits, &self.open);
        let (keepalive, source) = self.socket_options();
        let io = connect_from(&self.address, source, connect_timeout, keepalive)
            .await
            .map_err(Arc::new)?;
        let settings = self.limits.connection.load().http2.clone();
        let (sender, conn) = http2_builder(&settings)
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| Arc::new(ConnectError::Handshake(e)))?;
        let state = H2State::new(
            settings.max_concurrent_streams,
            self.h2_stream_freed.clone(),
        );
        let task_state = state.clone();
        tokio::spawn(async move {
            let ended =
                h2_conns::drive(conn, task_state.clone(), |c| c.current_max_send_streams()).await;
            // The connection task ends on GOAWAY too, while h2 finishes the streams under way.
            task_state.retire();
            if let Err(e) = ended {
                debug!(error = %e, "upstream http/2 connection ended");
            }
            drop(slot);
        });
        lock(&self.h2).add(sender, state);
        Ok(())
    }

    /// Connections currently idle (HTTP/1.1) or open (HTTP/2), for the admin page.
    pub fn idle_connections(&self) -> usize {
        lock(&self.idle).len() + lock(&self.h2).len()
    }

    /// The cluster's TCP keepalive and source address, as they are now.
    fn socket_options(
        &self,
    ) -> (
        Option<crate::config::TcpKeepalive>,
        Option<std::net::IpAddr>,
    ) {
        let options = self.limits.connection.load();
        (options.tcp_keepalive, options.source_address)
    }

    /// This host's open connections.
    pub fn open_connections(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }
}

/// The HTTP/2 client for one new connection, with the cluster's settings. Interval PINGs go
/// out whether or not streams are open, as Envoy's `connection_keepalive` does.
fn http2_builder(settings: &UpstreamHttp2) -> http2::Builder<TokioExecutor> {
    let mut b = http2::Builder::new(TokioExecutor::new());
    b.timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .header_table_size(settings.hpack_table_size);
    if settings.initial_stream_window_size.is_none()
        && settings.initial_connection_window_size.is_none()
    {
        b.adaptive_window(true);
    } else {
        b.initial_stream_window_size(settings.initial_stream_window_size)
            .initial_connection_window_size(settings.initial_connection_window_size);
    }
    if let Some(k) = settings.keepalive {
        b.keep_alive_interval(k.interval)
            .keep_alive_timeout(k.timeout)
            .keep_alive_while_idle(true);
    }
    b
}

/// Whether a connection is too old to take a request: idle past the idle timeout, or open
/// past the maximum duration.
fn expired(
    options: &ConnectionOptions,
    opened: Instant,
    idle_since: Instant,
    now: Instant,
) -> bool {
    options
        .idle_timeout
        .is_some_and(|t| now.saturating_duration_since(idle_since) >= t)
        || options
            .max_connection_duration
            .is_some_and(|t| now.saturating_duration_since(opened) >= t)
}

/// Closes the idle connections past the idle timeout or their maximum duration, oldest first.
/// Expiry is checked whenever the pool is used; a host nobody sends to keeps its idle
/// connections until the next request (or until the server closes them).
fn drop_expired(
    idle: &mut VecDeque<(Http1Connection, Instant)>,
    options: &ConnectionOptions,
    now: Instant,
) {
    while idle
        .front()
        .is_some_and(|(c, since)| expired(options, c.opened, *since, now))
    {
        idle.pop_front();
    }
}

fn used_up(options: &ConnectionOptions, requests: u32) -> bool {
    options
        .max_requests_per_connection
        .is_some_and(|max| requests >= max)
}

/// One open connection, counted for the cluster and the host until dropped (when the
/// connection's task ends), which wakes requests waiting for a connection.
struct ConnectionSlot {
    limits: Arc<Limits>,
    host: Arc<AtomicU64>,
}

impl ConnectionSlot {
    /// The cluster's count is already taken by the caller.
    fn new(limits: &Arc<Limits>, host: &Arc<AtomicU64>) -> Self {
        host.fetch_add(1, Ordering::Relaxed);
        ConnectionSlot {
            limits: limits.clone(),
            host: host.clone(),
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.host.fetch_sub(1, Ordering::Relaxed);
        self.limits.connection_closed();
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
            Connection::Http1(mut conn, mut ret, reused) => {
                let resp = match conn.sender.try_send_request(req).await {
                    Ok(resp) => resp,
                    Err(mut e) => {
                        return Err(match e.take_message() {
                            Some(req) if reused => Unsent::Retry(Box::new(req)),
                            _ => Unsent::Failed(e.into_error()),
                        })
                    }
                };
                conn.requests += 1;
                ret.hold(conn);
                Ok(resp.map(|body| UpstreamBody::new(body, Some(ret))))
            }
            Connection::Http2(mut sender, stream) => {
                let mut req = req;
                never_index_unique_values(req.headers_mut());
                let resp = match sender.try_send_request(req).await {
                    Ok(resp) => resp,
                    Err(mut e) => {
                        // Whatever went wrong, the connection takes no new stream: it handed
                        // the request back (closing), or the peer refused it or is going away.
                        let unsent = e.take_message();
                        let error = e.into_error();
                        if unsent.is_some() || unprocessed(&error) || error.is_closed() {
                            stream.state().retire();
                        }
                        return Err(match unsent {
                            Some(req) => Unsent::Retry(Box::new(req)),
                            None => Unsent::Failed(error),
                        });
                    }
                };
                Ok(resp.map(|body| UpstreamBody::new(body, None)))
            }
        }
    }
}

impl IdleSink for HostPool {
    fn put_idle(&self, conn: Http1Connection) {
        // A connection that may carry no more requests is dropped, which closes it.
        let options = self.limits.connection.load();
        let now = Instant::now();
        if conn.sender.is_closed()
            || used_up(&options, conn.requests)
            || expired(&options, conn.opened, now, now)
        {
            return;
        }
        let mut idle = lock(&self.idle);
        drop_expired(&mut idle, &options, now);
        if idle.len() < MAX_IDLE_PER_HOST {
            idle.push_back((conn, now));
            drop(idle);
            self.returned.notify_waiters();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod end_stream_tests;
