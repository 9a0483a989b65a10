//! One request's record, from the moment it arrives until the last byte of its response has
//! gone (or the client has gone): the single home of its Istio metrics and access log lines.
//!
//! The record rides with the request future while the proxy works on the request, then with
//! the response body ([`super::ResponseBody`]) until that ends. Whichever is dropped last
//! completes it, in `Drop`, so every request is accounted for exactly once however it ends:
//!
//! - the body ended (last frame, trailers, or no body to send): a normal completion;
//! - the body failed (an upstream reset or timeout mid-body): the failure's flag and details;
//! - the body was dropped before its end, or the request future before there was a response
//!   at all: the client went away (hyper drops what it no longer needs), which Envoy logs as
//!   `DC`, with response code 0 when no response had started.

use super::super::forward::Outcome;
use super::super::local_reply::{ResponseCodeDetails, ResponseFlag, ResponseFlags};
use crate::body::{BoxError, ProxyBody, UpstreamBodyError};
use crate::config::EndpointAddress;
use crate::config::{LogFormat, RequestField};
use crate::context::ProxyContext;
use crate::hcm_stats::HcmStats;
use crate::observe::access_log::LogRecord;
use crate::observe::istio::RequestSample;
use crate::observe::trace::{RequestTrace, SpanEnd};
use crate::snapshot::Snapshot;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Version};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// What one request was, once it is over: the input of its metrics, its log lines and (for
/// whoever adds them) its span.
#[derive(Default)]
pub struct Completion {
    /// The response code sent, 0 when the client left before any.
    pub status: u16,
    /// Flags, details, cluster, host, route, tries: what the request path learned.
    pub outcome: Outcome,
    /// From the request's arrival to the response's last byte (or the client's departure).
    pub duration: Duration,
    /// Request body bytes read from the client.
    pub bytes_received: u64,
    /// Response body bytes handed to the client's connection.
    pub bytes_sent: u64,
    pub grpc: bool,
    /// `grpc-status` from the trailers, or from the headers of a trailers-only answer.
    pub grpc_status: Option<u16>,
}

/// The record under way. Completes itself when dropped.
pub struct Account {
    ctx: Arc<ProxyContext>,
    /// The connection manager's stats (`downstream_rq_*`).
    hcm_stats: Arc<HcmStats>,
    start: Instant,
    record: Completion,
    body: BodyProgress,
    /// What the access log needs beyond the record; only when the listener logs.
    log: Option<Box<LogCapture>>,
    /// The request's span, when it is traced; ended with the record.
    trace: Option<RequestTrace>,
    /// Received by an inbound listener: reported as `reporter="destination"`.
    inbound: bool,
}

#[derive(Default, Clone, Copy)]
struct BodyProgress {
    /// A response head was produced.
    head: bool,
    /// The response may have a body (not HEAD, 204, 304).
    expected: bool,
    /// The body reached its end, or failed: either way it did not end by the client leaving.
    over: bool,
}

impl Account {
    /// Starts the record of `req`, capturing what its log lines will need.
    pub fn start(
        ctx: &Arc<ProxyContext>,
        hcm_stats: Arc<HcmStats>,
        req: &Request<hyper::body::Incoming>,
        authority: &str,
        peer: SocketAddr,
        listener: Option<(&Arc<[LogFormat]>, Option<SocketAddr>)>,
        grpc: bool,
    ) -> Account {
        let log = listener
            .filter(|(formats, _)| !formats.is_empty())
            .map(|(formats, local)| {
                Box::new(LogCapture::new(formats, req, authority, peer, local))
            });
        hcm_stats.request_started(req.version() == Version::HTTP_2);
        Account {
            ctx: ctx.clone(),
            hcm_stats,
            start: Instant::now(),
            record: Completion {
                grpc,
                ..Completion::default()
            },
            body: BodyProgress::default(),
            log,
            trace: None,
            inbound: false,
        }
    }

    /// The request came in on an inbound listener: its metrics report the proxy's own workload
    /// as the destination.
    pub fn set_inbound(&mut self) {
        self.inbound = true;
    }

    /// The request's trace (from `observe::trace::start`), ended when the record completes.
    pub fn set_trace(&mut self, trace: Option<RequestTrace>) {
        self.trace = trace.filter(RequestTrace::sampled);
    }

    pub fn outcome(&mut self) -> &mut Outcome {
        &mut self.record.outcome
    }

    /// The response head is ready to go.
    pub fn response_head(&mut self, response: &Response<ProxyBody>, method: &Method) {
        let status = response.status().as_u16();
        self.record.status = status;
        if self.record.grpc {
            self.record.grpc_status = grpc_status(response.headers());
        }
        self.body.head = true;
        self.body.expected =
            method != Method::HEAD && status != 204 && status != 304 && status >= 200;
        if let Some(log) = &mut self.log {
            log.capture_response(response.headers());
        }
    }

    pub fn sent(&mut self, bytes: usize) {
        self.record.bytes_sent += bytes as u64;
    }

    pub fn trailers(&mut self, trailers: &HeaderMap) {
        if self.record.grpc {
            if let Some(s) = grpc_status(trailers) {
                self.record.grpc_status = Some(s);
            }
        }
    }

    pub fn ended(&mut self) {
        self.body.over = true;
    }

    /// The body failed mid-way: the response had begun, so only the log and metrics can say
    /// why (the client sees a reset stream or a closed connection).
    pub fn failed(&mut self, error: &BoxError) {
        self.body.over = true;
        let outcome = &mut self.record.outcome;
        let after = ResponseCodeDetails::UpstreamResetAfterResponseStarted;
        match error.downcast_ref::<UpstreamBodyError>() {
            Some(UpstreamBodyError::Timeout) => outcome.fail(
                ResponseFlag::UpstreamTimeout,
                ResponseCodeDetails::UpstreamResponseTimeout,
            ),
            Some(UpstreamBodyError::Idle) => outcome.fail(
                ResponseFlag::StreamIdleTimeout,
                ResponseCodeDetails::StreamIdleTimeout,
            ),
            Some(UpstreamBodyError::Upstream(_)) | None => outcome.fail(
                ResponseFlag::UpstreamConnectionTermination,
                after(super::super::local_reply::ResetReason::ConnectionTermination),
            ),
        }
    }

    /// Whether the client left before the response was over.
    fn client_left(&self) -> bool {
        let b = self.body;
        !b.head || (b.expected && !b.over)
    }

    /// Writes the record to its metrics and log lines. The one place a request is counted.
    fn complete(&mut self) {
        if self.client_left() {
            self.record
                .outcome
                .flags
                .set(ResponseFlag::DownstreamTermination);
            if !self.body.head {
                self.record.outcome.details = ResponseCodeDetails::DownstreamRemoteDisconnect;
            }
        }
        let r = &mut self.record;
        r.duration = self.start.elapsed();
        r.bytes_received = r
            .outcome
            .request_bytes
            .as_ref()
            .map_or(0, |n| n.load(Ordering::Relaxed));
        let r = &self.record;
        self.count_in_connection_manager();
        let sample = RequestSample {
            status: r.status,
            flags: r.outcome.flags.bits(),
            flags_label: ResponseFlags::label_of_bits,
            grpc: r.grpc,
            grpc_status: r.grpc_status,
            duration_ms: r.duration.as_secs_f64() * 1000.0,
            request_bytes: r.bytes_received,
            response_bytes: r.bytes_sent,
        };
        let metrics = &self.ctx.metrics;
        match (&r.outcome.cluster, self.inbound) {
            (Some(cluster), false) => cluster
                .istio_metrics(r.outcome.host.as_deref(), metrics)
                .record(metrics, &sample),
            (Some(cluster), true) => cluster
                .inbound_istio_metrics(metrics)
                .record(metrics, &sample),
            (None, false) => metrics.unrouted().record(metrics, &sample),
            (None, true) => metrics.inbound_unrouted().record(metrics, &sample),
        }
        if let Some(t) = self.trace.take() {
            let o = &r.outcome;
            let flags = o.flags.as_str();
            let snapshot = self.ctx.snapshot.load();
            t.finish(
                &self.ctx.tracing,
                &SpanEnd {
                    status: r.status,
                    response_flags: &flags,
                    upstream_cluster: o.cluster.as_ref().map(|c| &*c.name),
                    upstream_address: o.host.as_ref().map(|h| h.address()),
                    operation: o.decorator.as_deref().map(|d| &*d.operation),
                    request_bytes: r.bytes_received,
                    response_bytes: r.bytes_sent,
                    collector_hosts: &|name| collector_hosts(&snapshot, name),
                },
            );
        }
        if let Some(log) = &self.log {
            log.write(&self.ctx, r);
        }
    }
}

impl Account {
    /// The connection manager's request stats, from the finished record.
    fn count_in_connection_manager(&self) {
        let r = &self.record;
        let stats = &self.hcm_stats;
        stats.request_ended(
            r.status,
            !r.outcome
                .flags
                .contains(ResponseFlag::DownstreamTermination),
        );
        let flags = &r.outcome.flags;
        let count = |flag, cell: &std::sync::atomic::AtomicU64| {
            if flags.contains(flag) {
                cell.fetch_add(1, Ordering::Relaxed);
            }
        };
        count(ResponseFlag::NoRoute, &stats.no_route);
        count(ResponseFlag::NoCluster, &stats.no_cluster);
        count(
            ResponseFlag::StreamIdleTimeout,
            &stats.downstream_rq_idle_timeout,
        );
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        self.complete();
    }
}

/// The request's side of its log lines, captured when it arrives (the request itself moves
/// on upstream), plus the response headers the formats read.
struct LogCapture {
    formats: Arc<[LogFormat]>,
    start: SystemTime,
    version: Version,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    /// Per format, its request fields by slot.
    request: Vec<Vec<Option<HeaderValue>>>,
    /// Per format, its response headers by slot.
    response: Vec<Vec<Option<HeaderValue>>>,
}

impl LogCapture {
    fn new(
        formats: &Arc<[LogFormat]>,
        req: &Request<hyper::body::Incoming>,
        authority: &str,
        peer: SocketAddr,
        local: Option<SocketAddr>,
    ) -> Self {
        let request = formats
            .iter()
            .map(|f| {
                f.request_fields
                    .iter()
                    .map(|field| request_field(req, authority, field))
                    .collect()
            })
            .collect();
        LogCapture {
            formats: formats.clone(),
            start: SystemTime::now(),
            version: req.version(),
            peer,
            local,
            request,
            response: Vec::new(),
        }
    }

    fn capture_response(&mut self, headers: &HeaderMap) {
        self.response = self
            .formats
            .iter()
            .map(|f| {
                f.response_headers
                    .iter()
                    .map(|h| headers.get(h).cloned())
                    .collect()
            })
            .collect();
    }

    fn write(&self, ctx: &ProxyContext, r: &Completion) {
        let o = &r.outcome;
        let flags = o.flags.as_str();
        let details = o
            .details
            .display(o.transport_failure.as_deref())
            .to_string();
        let host = o
            .host
            .as_ref()
            .map(|h| h.address().to_string())
            .unwrap_or_default();
        for (i, format) in self.formats.iter().enumerate() {
            let record = LogRecord {
                start: self.start,
                protocol: protocol_name(self.version),
                status: r.status,
                flags: &flags,
                details: if details == "-" { "" } else { &details },
                transport_failure: o.transport_failure.as_deref().unwrap_or(""),
                bytes_received: r.bytes_received,
                bytes_sent: r.bytes_sent,
                duration_ms: r.duration.as_millis() as u64,
                upstream_host: &host,
                upstream_cluster: o.cluster.as_ref().map_or("", |c| &c.name),
                downstream_local: self.local,
                downstream_remote: self.peer,
                route_name: o.route_name.as_deref().unwrap_or(""),
                grpc_status: r.grpc_status,
                attempts: o.attempts,
                request: self.request.get(i).map_or(&[], Vec::as_slice),
                response: self.response.get(i).map_or(&[], Vec::as_slice),
            };
            ctx.access_log.log(format, &record);
        }
    }
}

fn request_field(
    req: &Request<hyper::body::Incoming>,
    authority: &str,
    field: &RequestField,
) -> Option<HeaderValue> {
    match field {
        RequestField::Method => HeaderValue::from_str(req.method().as_str()).ok(),
        RequestField::Path => req
            .uri()
            .path_and_query()
            .and_then(|p| HeaderValue::from_str(p.as_str()).ok()),
        RequestField::Authority => Some(authority)
            .filter(|a| !a.is_empty())
            .and_then(|a| HeaderValue::from_str(a).ok()),
        RequestField::Scheme => Some(HeaderValue::from_static(
            if req.uri().scheme() == Some(&http::uri::Scheme::HTTPS) {
                "https"
            } else {
                "http"
            },
        )),
        RequestField::Header(name) => req.headers().get(name).cloned(),
    }
}

/// Where a trace collector named by its cluster is: the cluster's hosts now.
fn collector_hosts(snapshot: &Snapshot, cluster: &str) -> Option<Vec<EndpointAddress>> {
    let c = snapshot.cluster(cluster)?;
    Some(c.hosts.iter().map(|h| h.address().clone()).collect())
}

fn header_str(v: Option<&HeaderValue>) -> &str {
    v.and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// The `grpc-status` a response carries. A code outside gRPC's range counts as UNKNOWN (2),
/// as gRPC clients read it, which also keeps the number of metric series an upstream can cause
/// bounded.
fn grpc_status(h: &HeaderMap) -> Option<u16> {
    let code: u16 = header_str(h.get("grpc-status")).parse().ok()?;
    Some(if code <= GRPC_MAX_CODE {
        code
    } else {
        GRPC_UNKNOWN
    })
}

/// UNAUTHENTICATED, the highest code gRPC defines.
const GRPC_MAX_CODE: u16 = 16;
const GRPC_UNKNOWN: u16 = 2;

fn protocol_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        _ => "HTTP/?",
    }
}
