//! HTTP/1.1 upgrades (WebSocket) through the router, as Envoy proxies them.
//!
//! An upgrade request is one with `Upgrade` and a `Connection` header naming `upgrade`. It is
//! allowed when its type is `websocket` and the route's `upgrade_configs` enables it, or the
//! route says nothing and the connection manager's does; otherwise it is answered 403
//! (`upgrade_failed`), as Envoy answers it. WebSocket over HTTP/2 (extended CONNECT) and
//! `CONNECT` are not proxied (the configuration that would enable them is refused).
//!
//! An allowed upgrade is routed like any other request (route match, weighted cluster pick,
//! header mutations, the HTTP filters) and then sent, once, on a connection of its own to the
//! picked host: the request goes out with `Connection: upgrade` and its `Upgrade` header. It is
//! never retried nor mirrored: after the upstream's `101` the request's body is the tunnel's
//! bytes, which cannot be replayed, and a mirror would open a second tunnel. The wait for the
//! `101` is bounded by the route's timeouts, like a normal request's wait for its head.
//!
//! An answer other than `101` is forwarded as a normal response. After a `101` both
//! connections are handed over by hyper (`hyper::upgrade::on`) and bytes are copied both ways
//! until either side closes, bounded by the stream idle timeout (the route's `idle_timeout`,
//! else the connection manager's `stream_idle_timeout`) and by the route's
//! `max_stream_duration`. The tunnel holds the host's in-flight request count and the
//! cluster's request and connection circuit-breaker slots until it ends.
//!
//! The request is counted like any other (cluster `upstream_rq` with code 101, Istio's
//! request metrics, the access log) when its `101` is sent; known differences from Envoy: the
//! record's duration and byte counts end there and do not include the tunnel's traffic, and a
//! tunnel is not counted among the proxy's open connections while it drains.

use super::forward::{
    failure_reply, overflow_reply, Forward, Outcome, X_ENVOY_UPSTREAM_SERVICE_TIME,
};
use super::headers;
use super::local_reply::{local_reply, ResponseCodeDetails, ResponseFlag};
use crate::body::{ProxyBody, UpstreamBody};
use crate::config::{Discovery, HttpConnectionConfig, UpstreamProtocol, WEBSOCKET};
use crate::router::{Route, TryFailure};
use crate::upstream::connect::{connect_from, ConnectError};
use crate::upstream::limits::Limits;
use crate::upstream::outlier::TryOutcome;
use crate::upstream::pool::SendError;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tracing::debug;

/// Whether the request asks to upgrade its connection: an `Upgrade` header and `upgrade`
/// among the `Connection` tokens (RFC 9110 §7.8). The caller checked `Upgrade` is present and
/// the request is HTTP/1.x.
pub fn requested(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    })
}

/// Whether this upgrade may go ahead: only WebSocket, enabled by the route or, when the route
/// (or a missing route) does not say, by the connection manager.
pub fn allowed(hcm: &HttpConnectionConfig, route: Option<&Route>, headers: &HeaderMap) -> bool {
    let websocket = headers
        .get(header::UPGRADE)
        .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(WEBSOCKET.as_bytes()));
    websocket
        && route
            .and_then(|r| r.policy.websocket)
            .unwrap_or(hcm.websocket)
}

/// The router's work for an allowed upgrade: see the module documentation.
pub async fn forward(
    f: Forward<'_, '_>,
    mut req: Request<Incoming>,
    outcome: &mut Outcome,
) -> Response<ProxyBody> {
    let Some(cluster) = f.cluster else {
        // The router's own answer for a missing cluster.
        return super::forward::forward(f, req, outcome).await;
    };
    if cluster.config.protocol == UpstreamProtocol::Http2 {
        // An HTTP/1.1 upgrade cannot cross an HTTP/2 hop without extended CONNECT.
        debug!(cluster = %cluster.name, "upgrade to an HTTP/2 cluster refused");
        outcome.details = ResponseCodeDetails::UpgradeFailed;
        return local_reply(StatusCode::FORBIDDEN, "");
    }
    let start = Instant::now();
    let policy = &f.route.policy;
    let downstream = hyper::upgrade::on(&mut req);
    let upgrade = req.headers().get(header::UPGRADE).cloned();
    let hash = f.request_hash(&req);
    outcome.forwarded = true;
    outcome.attempts = 1;
    let (parts, body) = req.into_parts();
    let mut head = f.upstream_head(parts);
    restore_upgrade(&mut head.headers, upgrade);

    let host = if cluster.config.discovery == Discovery::OriginalDst {
        f.original_dst.map(|dst| cluster.original_dst_host(dst))
    } else {
        cluster.pick(hash.as_ref().and_then(|h| h.hash)).cloned()
    };
    let Some(host) = host else {
        outcome.fail(
            ResponseFlag::NoHealthyUpstream,
            ResponseCodeDetails::NoHealthyUpstream,
        );
        return local_reply(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream");
    };
    outcome.host = Some(host.clone());
    let limits = &cluster.runtime.limits;
    let Ok(request_slot) = limits.try_request() else {
        return overflow_reply(outcome, f.router.suppress_envoy_headers);
    };
    let in_flight = host.start_request().with_slot(request_slot);
    // The tunnel's connection is its own: it never goes back to a pool.
    if !limits.try_connection() {
        limits.stats.cx_overflow.fetch_add(1, Ordering::Relaxed);
        return overflow_reply(outcome, f.router.suppress_envoy_headers);
    }
    let connection_slot = Arc::new(ConnectionSlot(limits.clone()));

    let try_start = Instant::now();
    let deadline = earliest(
        f.timeouts.total.map(|t| start + t),
        f.timeouts.per_try.map(|t| try_start + t),
    );
    let request = head.into_request(UpstreamProtocol::Http1, ProxyBody::Incoming(body));
    let exchange = exchange(
        host.address(),
        limits,
        cluster.config.connect_timeout,
        request,
        connection_slot.clone(),
    );
    let waited = match earliest(deadline, f.timeouts.idle.map(|i| try_start + i)) {
        Some(limit) => tokio::time::timeout_at(limit, exchange).await.ok(),
        None => Some(exchange.await),
    };
    let mut resp = match waited {
        Some(Ok(resp)) => resp,
        Some(Err(e)) => {
            debug!(host = %host.address(), error = %e, "upgrade request failed");
            let failure = match &e {
                SendError::Connect(_) => {
                    limits.stats.cx_connect_fail.fetch_add(1, Ordering::Relaxed);
                    TryFailure::ConnectFailure
                }
                _ => TryFailure::Reset,
            };
            cluster.report(&host, TryOutcome::LocalFailure);
            return failure_reply(failure, Some(&e), outcome);
        }
        None if deadline.is_some_and(|d| d <= Instant::now()) => {
            cluster.report(&host, TryOutcome::LocalTimeout);
            limits.stats.rq_timeout.fetch_add(1, Ordering::Relaxed);
            outcome.fail(
                ResponseFlag::UpstreamTimeout,
                ResponseCodeDetails::ResponseTimeout,
            );
            return local_reply(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout");
        }
        None => {
            outcome.fail(
                ResponseFlag::StreamIdleTimeout,
                ResponseCodeDetails::StreamIdleTimeout,
            );
            return local_reply(StatusCode::REQUEST_TIMEOUT, "stream timeout");
        }
    };
    cluster.report(&host, TryOutcome::Status(resp.status().as_u16()));
    let elapsed = try_start.elapsed().as_millis() as u64;
    outcome.upstream_time = Some(elapsed);
    outcome.details = ResponseCodeDetails::ViaUpstream;

    let switched = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    let upstream = switched.then(|| hyper::upgrade::on(&mut resp));
    let (mut parts, body) = resp.into_parts();
    let upgrade = parts.headers.get(header::UPGRADE).cloned();
    headers::strip_hop_by_hop(&mut parts.headers);
    let h = &mut parts.headers;
    if !f.router.suppress_envoy_headers {
        h.insert(
            X_ENVOY_UPSTREAM_SERVICE_TIME.clone(),
            HeaderValue::from(elapsed),
        );
    }
    if let Some(cluster_headers) = f.cluster_settings.headers {
        cluster_headers.response.apply(h);
    }
    policy.headers.response.apply(h);
    if let Some(cookie) = hash.and_then(|h| h.set_cookie) {
        h.append(header::SET_COOKIE, cookie);
    }
    match upstream {
        Some(upstream) => {
            restore_upgrade(&mut parts.headers, upgrade);
            let limits = Tunnel {
                idle: f.timeouts.idle,
                lifetime: policy.max_stream_duration.max.map(|m| start + m),
            };
            let held = (in_flight, connection_slot);
            tokio::spawn(async move {
                tunnel(downstream, upstream, limits).await;
                drop(held);
            });
            Response::from_parts(parts, ProxyBody::Empty)
        }
        None => {
            // A normal answer: its body keeps the in-flight count and the timers, and the
            // connection closes with it.
            let mut body = UpstreamBody::new(body, None);
            body.count_in_flight(in_flight);
            if let Some(d) = f.timeouts.total.map(|t| start + t) {
                body.set_deadline(d);
            }
            if let Some(i) = f.timeouts.idle {
                body.set_idle_timeout(i);
            }
            Response::from_parts(parts, ProxyBody::Upstream(body))
        }
    }
}

/// `Connection: upgrade` and the `Upgrade` value back on a head that `strip_hop_by_hop`
/// cleaned (the only hop-by-hop headers an upgrade carries across).
fn restore_upgrade(h: &mut HeaderMap, upgrade: Option<HeaderValue>) {
    if let Some(u) = upgrade {
        h.insert(header::UPGRADE, u);
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Connects to the host and sends the upgrade request on a connection of its own, driven
/// by a task that hands the connection over to the tunnel after a `101`.
async fn exchange(
    address: &crate::config::EndpointAddress,
    limits: &Limits,
    connect_timeout: Duration,
    request: Request<ProxyBody>,
    slot: Arc<ConnectionSlot>,
) -> Result<Response<Incoming>, SendError> {
    let options = limits.connection.load();
    let io = connect_from(
        address,
        options.source_address,
        connect_timeout,
        options.tcp_keepalive,
    )
    .await?;
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(ConnectError::Handshake)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            debug!(error = %e, "upstream upgrade connection ended");
        }
        drop(slot);
    });
    sender.send_request(request).await.map_err(SendError::Reset)
}

/// The cluster's connection slot of a tunnel's upstream connection, given back when both the
/// connection's task and the tunnel are done with it.
struct ConnectionSlot(Arc<Limits>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

/// What bounds a tunnel.
#[derive(Clone, Copy)]
struct Tunnel {
    /// No byte either way for this long ends it.
    idle: Option<Duration>,
    /// `max_stream_duration`: it ends then whatever its traffic.
    lifetime: Option<Instant>,
}

/// Copies bytes both ways between the two upgraded connections until both directions are
/// done, or the tunnel is idle or out of time (then both connections are dropped, which
/// closes them).
async fn tunnel(
    downstream: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    t: Tunnel,
) {
    let origin = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let handed_over = async { tokio::try_join!(downstream, upstream) };
    // hyper hands both over at once (the downstream one right after the 101 is written), or
    // not at all when the client went away first.
    let handed_over = match earliest(t.idle.map(|i| origin + i), t.lifetime) {
        Some(limit) => tokio::time::timeout_at(limit, handed_over).await.ok(),
        None => Some(handed_over.await),
    };
    let (down, up) = match handed_over {
        Some(Ok(both)) => both,
        Some(Err(e)) => {
            debug!(error = %e, "upgrade not completed");
            return;
        }
        None => return,
    };
    let mut down = Watched::new(TokioIo::new(down), origin, last.clone());
    let mut up = Watched::new(TokioIo::new(up), origin, last.clone());
    let copy = tokio::io::copy_bidirectional(&mut down, &mut up);
    tokio::pin!(copy);
    let mut idle_at = t.idle.map(|i| origin + i);
    loop {
        tokio::select! {
            done = &mut copy => {
                if let Err(e) = done {
                    debug!(error = %e, "tunnel ended with an error");
                }
                return;
            }
            () = sleep_until(t.lifetime) => {
                debug!("tunnel reached its max_stream_duration");
                return;
            }
            () = sleep_until(idle_at) => {
                let idle = t.idle.unwrap_or_default();
                let active = origin + Duration::from_nanos(last.load(Ordering::Relaxed));
                if active + idle > Instant::now() {
                    idle_at = Some(active + idle);
                } else {
                    debug!("tunnel idle timeout");
                    return;
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A connection that notes when it last read a byte (nanoseconds since `origin`).
struct Watched<T> {
    inner: T,
    origin: Instant,
    last: Arc<AtomicU64>,
}

impl<T> Watched<T> {
    fn new(inner: T, origin: Instant, last: Arc<AtomicU64>) -> Self {
        Watched {
            inner,
            origin,
            last,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let at = self.origin.elapsed().as_nanos() as u64;
            self.last.store(at, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upgrade_needs_the_connection_token() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!requested(&h));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(requested(&h));
    }
}
