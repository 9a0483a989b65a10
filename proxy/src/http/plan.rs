//! Planning a request: a pure function of the configuration and the request's head that
//! decides the route, what the route does (which cluster, with which headers; or a redirect or
//! a direct answer) and the request's timeouts. Executing the plan is `forward.rs`'s job.
//!
//! Timeouts follow Envoy's router: the route's `timeout`, which an internal caller may replace
//! with `x-envoy-upstream-rq-timeout-ms` (the connection manager removed the header from any
//! other request: `headers::forwarding`); for gRPC, the caller's `grpc-timeout` when the route
//! says to honour it; the retry policy's per-try timeout (or
//! `x-envoy-upstream-rq-per-try-timeout-ms`) when shorter; and the stream idle timeout, the
//! route's own or the connection manager's.

use crate::router::{HeaderPolicy, Redirect, Route, RouteAction, RoutePolicy};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::Duration;

pub static X_ENVOY_UPSTREAM_RQ_TIMEOUT_MS: HeaderName =
    HeaderName::from_static("x-envoy-upstream-rq-timeout-ms");
pub static X_ENVOY_UPSTREAM_RQ_PER_TRY_TIMEOUT_MS: HeaderName =
    HeaderName::from_static("x-envoy-upstream-rq-per-try-timeout-ms");
pub static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// What the matched route does with the request.
pub enum Target<'s> {
    Cluster {
        name: &'s Arc<str>,
        settings: ClusterSettings<'s>,
    },
    Redirect(&'s Redirect),
    Direct {
        status: u16,
        body: Option<&'s Bytes>,
    },
}

/// What the picked cluster of a weighted route adds to the route's own settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClusterSettings<'a> {
    pub headers: Option<&'a HeaderPolicy>,
    /// Its `host_rewrite_literal`, which wins over the route's.
    pub host_rewrite: Option<&'a HeaderValue>,
}

pub struct Plan<'s> {
    pub route: &'s Route,
    pub target: Target<'s>,
    pub timeouts: Timeouts,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// From the end of planning to the end of the response, across every try.
    pub total: Option<Duration>,
    /// One try, up to its response headers.
    pub per_try: Option<Duration>,
    /// The longest the stream may go without activity.
    pub idle: Option<Duration>,
    /// `total` is the stream's lifetime (`max_stream_duration`, or the caller's `grpc-timeout`
    /// under it): when it runs out a gRPC caller hears DEADLINE_EXCEEDED.
    pub total_from_grpc: bool,
}

/// `draw` picks among weighted clusters; it should return a number uniform in
/// `0..u64::MAX`, and is only called for a weighted route.
pub fn plan<'s>(
    route: &'s Route,
    headers: &HeaderMap,
    listener_idle: Option<Duration>,
    draw: impl FnOnce() -> u64,
) -> Plan<'s> {
    let target = match &route.action {
        RouteAction::Cluster(c) => Target::Cluster {
            name: &c.name,
            settings: ClusterSettings::default(),
        },
        RouteAction::Weighted(w) => {
            let picked = w.pick_cluster(draw() % w.total());
            Target::Cluster {
                name: &picked.target.name,
                settings: ClusterSettings {
                    headers: (!picked.headers.is_empty()).then_some(&picked.headers),
                    host_rewrite: picked.host_rewrite.as_ref(),
                },
            }
        }
        RouteAction::Redirect(r) => Target::Redirect(r),
        RouteAction::DirectResponse { status, body } => Target::Direct {
            status: *status,
            body: body.as_ref(),
        },
    };
    Plan {
        route,
        target,
        timeouts: timeouts(&route.policy, listener_idle, headers),
    }
}

pub fn timeouts(policy: &RoutePolicy, listener_idle: Option<Duration>, h: &HeaderMap) -> Timeouts {
    let caller = CallerTimeouts::of(h);
    let mut total = policy.timeout;
    if let Some(ms) = caller.total_ms {
        total = (ms > 0).then(|| Duration::from_millis(ms));
    }
    let streams = &policy.max_stream_duration;
    let asked = caller.grpc;
    // The deprecated form: the caller's deadline becomes the route timeout.
    if let (Some(cap), Some(asked)) = (streams.legacy_grpc_timeout_max, asked) {
        let offset = streams.legacy_grpc_timeout_offset.unwrap_or_default();
        total = grpc_deadline(asked.saturating_sub(offset), cap);
    }
    // The stream's lifetime, which the caller's deadline may set; it ends the request too,
    // as DEADLINE_EXCEEDED for a gRPC caller.
    let mut lifetime = streams.max;
    if let (Some(cap), Some(asked)) = (streams.grpc_timeout_header_max, asked) {
        let offset = streams.grpc_timeout_header_offset.unwrap_or_default();
        lifetime = grpc_deadline(asked.saturating_sub(offset), cap);
    }
    let mut total_from_grpc = false;
    if let Some(life) = lifetime {
        if total.is_none_or(|t| life < t) {
            total = Some(life);
            total_from_grpc = true;
        }
    }
    let mut per_try = policy.retry.as_ref().and_then(|r| r.per_try_timeout);
    if let Some(ms) = caller.per_try_ms {
        per_try = (ms > 0).then(|| Duration::from_millis(ms));
    }
    // A per-try timeout no shorter than the whole request's means nothing.
    if let (Some(p), Some(t)) = (per_try, total) {
        if p >= t {
            per_try = None;
        }
    }
    let idle = match policy.idle_timeout {
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
        None => listener_idle,
    };
    Timeouts {
        total,
        per_try,
        idle,
        total_from_grpc,
    }
}

/// A caller's deadline under the route's cap (zero: no cap); `grpc-timeout: 0` is none.
fn grpc_deadline(asked: Duration, cap: Duration) -> Option<Duration> {
    match (asked.is_zero(), cap.is_zero()) {
        (true, true) => None,
        (true, false) => Some(cap),
        (false, true) => Some(asked),
        (false, false) => Some(asked.min(cap)),
    }
}

/// The timeouts a caller asked for in its headers, read in one pass over the headers rather
/// than three lookups: most requests carry none of them.
#[derive(Default)]
struct CallerTimeouts {
    total_ms: Option<u64>,
    per_try_ms: Option<u64>,
    grpc: Option<Duration>,
}

impl CallerTimeouts {
    fn of(h: &HeaderMap) -> CallerTimeouts {
        let mut out = CallerTimeouts::default();
        for (name, value) in h {
            if *name == X_ENVOY_UPSTREAM_RQ_TIMEOUT_MS {
                out.total_ms = millis(value);
            } else if *name == X_ENVOY_UPSTREAM_RQ_PER_TRY_TIMEOUT_MS {
                out.per_try_ms = millis(value);
            } else if *name == GRPC_TIMEOUT {
                out.grpc = parse_grpc_timeout(value);
            }
        }
        out
    }
}

fn millis(v: &HeaderValue) -> Option<u64> {
    v.to_str().ok()?.trim().parse().ok()
}

/// gRPC's `grpc-timeout`: at most 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(v: &HeaderValue) -> Option<Duration> {
    let v = v.to_str().ok()?;
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
