//! Distributed tracing: one span per request, as Envoy's OpenTelemetry tracer reports it.
//!
//! Two hooks. [`start`] runs when a request arrives on a connection manager that traces: it
//! reads the caller's context (W3C or B3, see [`propagation`]), decides whether the trace is
//! sampled (the caller's decision wins; otherwise `x-client-trace-id` with the client
//! sampling rate, else the random sampling rate, then the overall rate, as Envoy decides),
//! and writes the proxy's own context into the request so the upstream continues the same
//! trace with the proxy's span as its parent. `x-envoy-force-trace` on an internal request
//! samples it as Envoy does (after `x-client-trace-id`, before the random rate, still subject
//! to the overall rate); see [`force_trace`]. Unsampled requests still propagate (flag `00`),
//! so the decision holds along the whole call chain, and cost no more than the headers.
//! [`RequestTrace::finish`] runs when the response is known: a sampled request becomes one
//! span (Envoy's name and tags plus the configured custom tags) handed to [`TraceExport`],
//! which batches spans off the request path and never blocks it.
//!
//! The span name is Envoy's: on an inbound listener a request's `x-envoy-decorator-operation`
//! (taken off the request), else the matched route's decorator (istiod gives every route one,
//! `host:port/path*`), else `ingress` on inbound listeners and `egress <host>` elsewhere. An
//! outbound listener sends the decorator upstream in that header unless the route's
//! `propagate` is false, so the callee's server span can carry the caller's operation. (Envoy
//! also returns it in an inbound response; weft-proxy does not yet.)

pub mod export;
pub mod propagation;
mod span;

#[cfg(test)]
mod tests;

pub use export::{ExportError, TraceExport};
pub use span::SpanEnd;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderName, HeaderValue, Request};

use crate::config::TracingConfig;
use crate::router::Decorator;
use propagation::{Incoming, Outgoing, Parent};

pub static X_CLIENT_TRACE_ID: HeaderName = HeaderName::from_static("x-client-trace-id");
pub static X_ENVOY_FORCE_TRACE: HeaderName = HeaderName::from_static("x-envoy-force-trace");
pub static X_ENVOY_DECORATOR_OPERATION: HeaderName =
    HeaderName::from_static("x-envoy-decorator-operation");

/// The route hook of a tracing outbound listener: the route's decorator goes upstream as
/// `x-envoy-decorator-operation` (unless the route says not to).
pub fn propagate_decorator(
    config: Option<&TracingConfig>,
    decorator: Option<&Decorator>,
    headers: &mut http::HeaderMap,
) {
    let (Some(config), Some(value)) = (config, decorator.and_then(|d| d.propagate.as_ref())) else {
        return;
    };
    if !config.inbound {
        headers.insert(X_ENVOY_DECORATOR_OPERATION.clone(), value.clone());
    }
}

/// A request's place in its trace, from arrival to completion.
pub struct RequestTrace {
    config: Arc<TracingConfig>,
    trace_id: u128,
    span_id: u64,
    parent: Option<Parent>,
    sampled: bool,
    /// The request asked for its trace with `x-envoy-force-trace`.
    forced: bool,
    /// What the span reports about the request, captured only for sampled requests (the
    /// request head is gone by the time the span ends).
    start: Option<Box<span::SpanStart>>,
}

impl RequestTrace {
    pub fn sampled(&self) -> bool {
        self.sampled
    }

    /// Whether an internal request carried `x-envoy-force-trace`. Envoy then also returns the
    /// request's `x-request-id` in the response, so the caller can find its trace.
    pub fn forced(&self) -> bool {
        self.forced
    }

    pub fn trace_id(&self) -> u128 {
        self.trace_id
    }

    pub fn span_id(&self) -> u64 {
        self.span_id
    }

    /// The caller's span, when the request arrived with a trace context.
    pub fn parent_span_id(&self) -> Option<u64> {
        self.parent.map(|p| p.span_id)
    }
}

/// The request-start hook. `None` when the listener does not trace.
pub fn start<B>(
    config: Option<&Arc<TracingConfig>>,
    req: &mut Request<B>,
    authority: &str,
    peer: SocketAddr,
    request_id: &HeaderValue,
) -> Option<RequestTrace> {
    let config = config?;
    start_with(config, req, authority, peer, request_id, &mut rand::random)
}

/// Whether the request forces its trace: it carries `x-envoy-force-trace` (any value). Envoy
/// honours the header only on internal requests; the connection manager has already removed
/// it from every other one (`crate::http::headers::forwarding`), so a client outside the
/// trusted network cannot make every request traced. An internal request keeps the header so
/// the hops after it trace too.
pub fn force_trace(headers: &http::HeaderMap) -> bool {
    headers.contains_key(&X_ENVOY_FORCE_TRACE)
}

/// [`start`] with the random source given, so tests can fix the rolls.
fn start_with<B>(
    config: &Arc<TracingConfig>,
    req: &mut Request<B>,
    authority: &str,
    peer: SocketAddr,
    request_id: &HeaderValue,
    roll: &mut dyn FnMut() -> f64,
) -> Option<RequestTrace> {
    let incoming: Incoming = propagation::extract(req.headers());
    // An inbound request's operation name, set by the caller's proxy, renames the span and
    // goes no further.
    let operation = if config.inbound {
        req.headers_mut()
            .remove(&X_ENVOY_DECORATOR_OPERATION)
            .and_then(|v| v.to_str().ok().map(str::to_string))
            .filter(|v| !v.is_empty())
    } else {
        None
    };
    let forced = force_trace(req.headers());
    // Envoy's order: a client trace id at the client rate, else a forced trace, else the
    // random rate; whatever chose the trace, the overall rate can still drop it.
    let sampled = match incoming.sampled {
        Some(decided) => decided,
        None => {
            let client = req.headers().contains_key(&X_CLIENT_TRACE_ID)
                && chance(roll, config.client_sampling);
            (client || forced || chance(roll, config.random_sampling))
                && chance(roll, config.overall_sampling)
        }
    };
    let trace_id = match incoming.parent {
        Some(p) => p.trace_id,
        None => nonzero_u128(),
    };
    let span_id = nonzero_u64();
    if incoming.parent.is_none() && req.headers().contains_key(&propagation::TRACESTATE) {
        // A tracestate belongs to the traceparent it came with; without one it is meaningless.
        req.headers_mut().remove(&propagation::TRACESTATE);
    }
    propagation::inject(
        req.headers_mut(),
        &Outgoing {
            trace_id,
            span_id,
            parent_span_id: incoming.parent.map(|p| p.span_id),
            sampled,
            b3: incoming.b3,
        },
    );
    let start = sampled.then(|| {
        Box::new(span::SpanStart::capture(
            config,
            req,
            authority,
            peer,
            request_id,
            SystemTime::now(),
            operation,
        ))
    });
    Some(RequestTrace {
        config: config.clone(),
        trace_id,
        span_id,
        parent: incoming.parent,
        sampled,
        forced,
        start,
    })
}

impl RequestTrace {
    /// The completion hook: a sampled request's span goes to the exporter, without waiting.
    pub fn finish(self, export: &TraceExport, end: &SpanEnd<'_>) {
        let Some(start) = self.start else {
            return;
        };
        let data = span::span_data(
            &self.config,
            export.node_id(),
            self.trace_id,
            self.span_id,
            self.parent,
            &start,
            end,
        );
        export.submit(&self.config, end.collector_hosts, data);
    }
}

/// True with probability `percent` / 100.
fn chance(roll: &mut dyn FnMut() -> f64, percent: f64) -> bool {
    if percent >= 100.0 {
        return true;
    }
    if percent <= 0.0 {
        return false;
    }
    roll() * 100.0 < percent
}

fn nonzero_u128() -> u128 {
    loop {
        let id: u128 = rand::random();
        if id != 0 {
            return id;
        }
    }
}

fn nonzero_u64() -> u64 {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id;
        }
    }
}
