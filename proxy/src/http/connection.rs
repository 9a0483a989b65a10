//! One downstream connection: hyper's HTTP/1.1 and HTTP/2 server set up with the listener's
//! limits, the connection's own idle and header-read timers, and draining.
//!
//! Limits and what the client sees when it passes one:
//! - request headers larger than `max_request_headers_kb` (path plus every name and value) or
//!   more than `max_headers_count`: 431. On HTTP/1.1 hyper answers 431 itself when the head
//!   does not fit its read buffer or has too many headers, and closes the connection; a head
//!   that fits hyper's buffer but is over the byte limit is answered 431 here, with
//!   `Connection: close`. On HTTP/2 the SETTINGS_MAX_HEADER_LIST_SIZE advertised lets h2 answer
//!   an oversized header block with a 431 and reset the stream; a block within it but over the
//!   limits is answered 431 here. Neither reaches the access log.
//! - `request_headers_timeout` (HTTP/1.1): the connection is closed without an answer.
//! - `idle_timeout`: HTTP/1.1 closes; HTTP/2 sends GOAWAY, then closes once its streams are
//!   done, at most [`IDLE_DRAIN_LIMIT`] later (Envoy's default `drain_timeout`).
//! - HTTP/2 rapid reset (CVE-2023-44487): streams the client resets before the proxy has taken
//!   them off the accept queue are counted, and past [`MAX_PENDING_ACCEPT_RESET_STREAMS`] h2
//!   sends GOAWAY(ENHANCE_YOUR_CALM) and closes; streams the proxy resets on protocol errors
//!   are capped the same way by [`MAX_LOCAL_ERROR_RESET_STREAMS`]. A reset stream also drops
//!   its request future, which cancels the upstream exchange. A client that resets its streams
//!   only once they have been accepted is caught by Envoy's premature-reset rule
//!   ([`premature_reset`]): the connection is closed outright.

mod activity;
mod premature_reset;

use self::activity::{expiry, Activity, Expiry, Tracked, TrackedBody};
use super::stream;
use crate::body::ProxyBody;
use crate::config::{DownstreamLimits, HttpConnectionConfig};
use crate::downstream::{DownstreamConnection, OpenConnection};
use crate::hcm_stats::ConnectionEnd;
use http::{header, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, warn};

/// Remotely reset streams allowed to wait in h2's accept queue at once (h2's own default).
/// A rapid-reset flood fills it within one read of the socket.
pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// Streams the proxy may reset for protocol errors before it gives up on the connection.
pub const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;
/// How long an idle HTTP/2 connection may take to finish after its GOAWAY.
pub const IDLE_DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// Room in hyper's HTTP/1 read buffer past the header bytes: request line, `": "` and CRLFs.
const HEAD_FRAMING_ALLOWANCE: usize = 8 * 1024;
/// hyper's smallest allowed read buffer.
const MIN_READ_BUFFER: usize = 8 * 1024;
/// RFC 9113's per-entry overhead in SETTINGS_MAX_HEADER_LIST_SIZE.
const H2_ENTRY_OVERHEAD: usize = 32;

/// Serves one connection a listener's chain gave to this connection manager, until it closes,
/// times out, or the proxy drains and the connection has finished its in-flight requests.
/// `io` may carry bytes a listener filter already read (see `listener::detect`).
pub async fn serve_http<T>(
    open: OpenConnection,
    hcm: Arc<HttpConnectionConfig>,
    io: T,
    conn: DownstreamConnection,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ctx = open.ctx().clone();
    let _open = open;
    let stats = hcm
        .stats
        .get_or_resolve(&ctx.hcm_stats, &hcm.stat_prefix)
        .clone();
    let cx_stats = Arc::new(stats.connection_opened());
    let limits = hcm.downstream.clone();
    let peer = conn.peer;
    let conn = Arc::new(conn);
    let mut draining = ctx.draining.subscribe();
    let activity = Activity::new();
    let log_listener = conn.listener.clone();
    let svc_ctx = ctx.clone();
    let svc_activity = activity.clone();
    let svc_limits = limits.clone();
    let svc_cx_stats = cx_stats.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let in_flight = svc_activity.request_started();
        svc_cx_stats.protocol(req.version() == Version::HTTP_2);
        let ctx = svc_ctx.clone();
        let hcm = hcm.clone();
        let conn = conn.clone();
        let limits = svc_limits.clone();
        let stats = svc_cx_stats.stats().clone();
        async move {
            // A head over the limits is answered here, before a request record exists.
            let response = match over_header_limits(&req, &limits) {
                Some(too_large) => {
                    stats.request_started(req.version() == Version::HTTP_2);
                    stats.request_ended(too_large.status().as_u16(), true);
                    too_large.map(Either::Right)
                }
                None => stream::handle(&ctx, &hcm, stats, &conn, req)
                    .await
                    .map(Either::Left),
            };
            let in_flight = in_flight.answered();
            Ok::<_, std::convert::Infallible>(response.map(|b| TrackedBody::new(b, in_flight)))
        }
    });
    let builder = server_builder(&limits);
    let io = TokioIo::new(Tracked::new(io, activity.clone()));
    // Upgrades: hyper hands an upgraded connection to `http::upgrade` after its 101.
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let idle_timeout = limits.idle_timeout;
    let headers_timeout = limits.request_headers_timeout;
    // How it ended, for the stats; the requests still in flight are read before the
    // connection (and with it hyper's request futures) is dropped.
    let (end, result) = tokio::select! {
        r = conn.as_mut() => {
            // hyper also ends a connection it closed itself (after `Connection: close`).
            let end = if activity.closed_by_client() || r.is_err() {
                ConnectionEnd::Remote
            } else {
                ConnectionEnd::Local
            };
            (end, Some(r))
        }
        _ = crate::http::wait_true(&mut draining) => {
            // Finish what is in flight, close keep-alive connections (HTTP/1.1 responses get
            // `Connection: close`), send GOAWAY on HTTP/2. The process's drain time bounds it.
            conn.as_mut().graceful_shutdown();
            (ConnectionEnd::Drain, Some(conn.as_mut().await))
        }
        why = expiry(&activity, idle_timeout, headers_timeout) => match why {
            Expiry::RequestHeadersTimeout => {
                debug!(%peer, "request headers timeout, closing the connection");
                (ConnectionEnd::RequestHeadersTimeout, None)
            }
            Expiry::TooManyPrematureResets => {
                warn!(%peer, listener = %log_listener, "too many requests reset before being answered, closing the connection");
                (ConnectionEnd::PrematureResets, None)
            }
            Expiry::Idle => {
                debug!(%peer, "idle timeout, closing the connection");
                conn.as_mut().graceful_shutdown();
                let r = tokio::time::timeout(IDLE_DRAIN_LIMIT, conn.as_mut()).await.ok();
                (ConnectionEnd::Idle, r)
            }
        },
    };
    cx_stats.ended(end, activity.in_flight());
    if let Some(Err(e)) = result {
        debug!(%peer, error = %e, "downstream connection ended with an error");
    }
}

fn server_builder(limits: &DownstreamLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let header_bytes = limits.max_request_header_bytes;
    builder
        .http1()
        .timer(TokioTimer::new())
        // The connection's own timer implements `request_headers_timeout`; hyper's would also
        // cut keep-alive connections waiting for their next request.
        .header_read_timeout(None)
        .max_headers(limits.max_headers_count)
        .max_buf_size(
            (header_bytes + 4 * limits.max_headers_count + HEAD_FRAMING_ALLOWANCE)
                .max(MIN_READ_BUFFER),
        );
    let h2 = &limits.http2;
    let header_list = header_bytes + H2_ENTRY_OVERHEAD * limits.max_headers_count;
    let mut http2 = builder.http2();
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(h2.max_concurrent_streams)
        .max_header_list_size(u32::try_from(header_list).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESET_STREAMS);
    if h2.initial_stream_window_size.is_none() && h2.initial_connection_window_size.is_none() {
        http2.adaptive_window(true);
    } else {
        http2
            .initial_stream_window_size(h2.initial_stream_window_size)
            .initial_connection_window_size(h2.initial_connection_window_size);
    }
    if let Some(k) = h2.keepalive {
        http2
            .keep_alive_interval(k.interval)
            .keep_alive_timeout(k.timeout);
    }
    builder
}

/// A 431 when the request's head is over the listener's limits: Envoy counts the path and
/// every header name and value against `max_request_headers_kb`.
fn over_header_limits(
    req: &Request<Incoming>,
    limits: &DownstreamLimits,
) -> Option<Response<ProxyBody>> {
    let headers = req.headers();
    let too_many = headers.len() > limits.max_headers_count;
    let path = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    let bytes = headers
        .iter()
        .fold(path, |sum, (k, v)| sum + k.as_str().len() + v.len());
    if !too_many && bytes <= limits.max_request_header_bytes {
        return None;
    }
    debug!(
        headers = headers.len(),
        bytes, "request headers over the listener's limits: 431"
    );
    let mut r = Response::new(ProxyBody::full(bytes::Bytes::new()));
    *r.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    if req.version() < Version::HTTP_2 {
        // The rest of what the client sent may be the oversized request's body.
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Some(r)
}
