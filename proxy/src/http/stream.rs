//! One request through the connection manager: route it, plan it, run the filter chain, let
//! the router carry out the plan, then account for it (stats, access log).

use super::filter::{self, ResponseHooks};
use super::forward::{forward, Forward, Outcome};
use super::headers::{self, X_FORWARDED_FOR};
use super::local_reply::{
    into_grpc, is_grpc, local_reply, no_route, ResponseFlag, ResponseFlags, GRPC_DEADLINE_EXCEEDED,
};
use super::plan::{plan, Target};
use crate::body::ProxyBody;
use crate::config::{EndpointAddress, ListenerConfig, RouteSource};
use crate::context::ProxyContext;
use crate::observe::access_log::LogRecord;
use crate::observe::istio::RequestSample;
use crate::observe::trace::{self, RequestTrace, SpanEnd};
use crate::router::{RequestView, RouteTable};
use crate::snapshot::Snapshot;
use http::uri::{Authority, PathAndQuery};
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// The request fields the access log needs, captured before the request is forwarded; only
/// when the listener logs at all.
struct LogCapture {
    start_wall: SystemTime,
    method: Method,
    path: Option<PathAndQuery>,
    version: Version,
    forwarded_for: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
}

impl LogCapture {
    fn new(req: &Request<Incoming>) -> Self {
        LogCapture {
            start_wall: SystemTime::now(),
            method: req.method().clone(),
            path: req.uri().path_and_query().cloned(),
            version: req.version(),
            forwarded_for: req.headers().get(&X_FORWARDED_FOR).cloned(),
            user_agent: req.headers().get(header::USER_AGENT).cloned(),
        }
    }
}

pub async fn handle(
    ctx: &ProxyContext,
    listener: &str,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    let start = Instant::now();
    let snapshot = ctx.snapshot.load_full();
    let request_id = headers::ensure_request_id(req.headers_mut());
    let authority = RequestAuthority::of(&req);
    let listener_cfg = snapshot.listeners.get(listener);
    let log_format = listener_cfg.and_then(|l| l.access_log);
    let capture = log_format.map(|_| LogCapture::new(&req));
    let grpc_request = is_grpc(req.headers());
    let request_bytes = content_length(req.headers());
    let trace = trace::start(
        listener_cfg.and_then(|l| l.tracing.as_ref()),
        &mut req,
        authority.as_str(),
        peer,
        &request_id,
    );

    let mut outcome = Outcome::default();
    // Boxed: the router's state (retry loop, timers, the upstream exchange) is large, and
    // hyper moves the request's future around; one allocation is cheaper than copying
    // kilobytes several times per request (measured with benches/callgrind).
    let response = Box::pin(run(
        &snapshot,
        listener_cfg.map(|l| &**l),
        authority.as_str(),
        peer,
        req,
        grpc_request,
        &mut outcome,
    ))
    .await;

    let status = response.status().as_u16();
    let duration = start.elapsed();
    let response_bytes = content_length(response.headers());
    let sample = RequestSample {
        status,
        flags: outcome.flags.bits(),
        flags_label: ResponseFlags::label_of_bits,
        grpc: grpc_request,
        grpc_status: grpc_status(response.headers()),
        duration_ms: duration.as_secs_f64() * 1000.0,
        request_bytes,
        response_bytes,
    };
    let metrics = &ctx.metrics;
    match outcome.cluster {
        Some(cluster) => {
            cluster.runtime.stats.record(status);
            cluster
                .istio_metrics(outcome.host.map(|h| &**h), metrics)
                .record(metrics, &sample);
        }
        None => metrics.unrouted().record(metrics, &sample),
    }
    if let Some(t) = trace.filter(RequestTrace::sampled) {
        let flags = outcome.flags.as_str();
        t.finish(
            &ctx.tracing,
            &SpanEnd {
                status,
                response_flags: &flags,
                upstream_cluster: outcome.cluster.map(|c| &*c.name),
                upstream_address: outcome.host.map(|h| h.address()),
                operation: outcome.decorator,
                request_bytes,
                response_bytes,
                collector_hosts: &|name| collector_hosts(&snapshot, name),
            },
        );
    }
    if let (Some(format), Some(c)) = (log_format, capture) {
        let upstream_host = outcome
            .host
            .map(|h| h.address().to_string())
            .unwrap_or_default();
        let flags = outcome.flags.as_str();
        ctx.access_log.log(
            format,
            &LogRecord {
                start: c.start_wall,
                method: c.method.as_str(),
                path: c.path.as_ref().map_or("/", |p| p.as_str()),
                protocol: protocol_name(c.version),
                status,
                flags: &flags,
                bytes_received: request_bytes,
                bytes_sent: response_bytes,
                duration_ms: duration.as_millis(),
                upstream_service_time_ms: outcome.upstream_time,
                forwarded_for: header_str(c.forwarded_for.as_ref()),
                user_agent: header_str(c.user_agent.as_ref()),
                request_id: request_id.to_str().unwrap_or("-"),
                authority: authority.as_str(),
                upstream_host: &upstream_host,
                upstream_cluster: outcome.cluster.map_or("", |c| &c.name),
                route_name: outcome.route_name,
            },
        );
    }
    response
}

async fn run<'s>(
    snapshot: &'s Snapshot,
    listener: Option<&'s ListenerConfig>,
    authority: &str,
    peer: SocketAddr,
    mut req: Request<Incoming>,
    grpc: bool,
    outcome: &mut Outcome<'s>,
) -> Response<ProxyBody> {
    if let Some(upgrade) = req.headers().get(header::UPGRADE) {
        if upgrade.as_bytes().eq_ignore_ascii_case(b"h2c") {
            // An offer to switch to cleartext HTTP/2: declined by carrying on in HTTP/1.1, as
            // the offer allows (some clients make it on every request).
            headers::strip_h2c_upgrade(req.headers_mut());
        } else if req.version() < Version::HTTP_2 {
            // Upgrades (WebSocket and friends) are not configured on any route: refuse them
            // cleanly, as Envoy does when a route does not allow the upgrade type.
            return local_reply(StatusCode::FORBIDDEN, "");
        }
    }
    let mut response = route_and_forward(snapshot, listener, authority, peer, req, outcome).await;
    // The proxy's own error answers only: upstream answers and gRPC-shaped ones pass as they are.
    let own_error = response.status().as_u16() >= 400
        && !matches!(response.body(), ProxyBody::Upstream(_))
        && !is_grpc(response.headers());
    if grpc && own_error {
        let deadline =
            outcome.flags.contains(ResponseFlag::UpstreamTimeout) && outcome.grpc_deadline;
        into_grpc(&mut response, deadline.then_some(GRPC_DEADLINE_EXCEEDED));
    }
    response
}

async fn route_and_forward<'s>(
    snapshot: &'s Snapshot,
    listener: Option<&'s ListenerConfig>,
    authority: &str,
    peer: SocketAddr,
    mut req: Request<Incoming>,
    outcome: &mut Outcome<'s>,
) -> Response<ProxyBody> {
    let origin_form = req.uri().authority().is_none() && req.version() < Version::HTTP_2;
    let Some(listener) = listener else {
        outcome.flags.set(ResponseFlag::NoRoute);
        return no_route(authority, origin_form);
    };
    let Some(table) = route_table(snapshot, &listener.route_source) else {
        outcome.flags.set(ResponseFlag::NoRoute);
        return no_route(authority, origin_form);
    };
    let route = {
        let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let view = RequestView {
            authority,
            path_and_query,
            method: req.method(),
            headers: req.headers(),
        };
        table.find(&view)
    };
    let Some(route) = route else {
        outcome.flags.set(ResponseFlag::NoRoute);
        return no_route(authority, origin_form);
    };
    outcome.route_name = &route.name;
    outcome.decorator = route.policy.decorator.as_deref().map(|d| &*d.operation);
    trace::propagate_decorator(
        listener.tracing.as_deref(),
        route.policy.decorator.as_deref(),
        req.headers_mut(),
    );
    let plan = plan(
        route,
        req.headers(),
        listener.stream_idle_timeout,
        rand::random,
    );
    outcome.grpc_deadline = plan.timeouts.total_from_grpc;

    let mut hooks = ResponseHooks::default();
    let chain = &listener.http_filters;
    if let Some(answer) = filter::on_request(
        chain,
        route,
        req.method(),
        req.headers(),
        &mut outcome.flags,
        &mut hooks,
    )
    .await
    {
        return answer;
    }
    let mut response = match plan.target {
        Target::Cluster { name, settings } => {
            let f = Forward {
                snapshot,
                route,
                cluster_name: name,
                cluster_settings: settings,
                timeouts: &plan.timeouts,
                router: chain.router,
                authority,
                peer,
            };
            forward(f, req, outcome).await
        }
        Target::Redirect(r) => {
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let mut resp = super::redirect::respond(r, &route.matcher.path, authority, path);
            route.policy.headers.response.apply(resp.headers_mut());
            resp
        }
        Target::Direct { status, body } => {
            let mut resp = Response::new(body.cloned().map_or(ProxyBody::Empty, ProxyBody::full));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            route.policy.headers.response.apply(resp.headers_mut());
            resp
        }
    };
    filter::on_response(hooks, &mut response);
    response
}

/// Where a trace collector named by its cluster is: the cluster's hosts now.
fn collector_hosts(snapshot: &Snapshot, cluster: &str) -> Option<Vec<EndpointAddress>> {
    let c = snapshot.cluster(cluster)?;
    Some(c.hosts.iter().map(|h| h.address().clone()).collect())
}

fn route_table<'a>(snapshot: &'a Snapshot, source: &'a RouteSource) -> Option<&'a Arc<RouteTable>> {
    match source {
        RouteSource::Rds(name) => snapshot.route_table(name),
        RouteSource::Inline(table) => Some(table),
    }
}

/// The authority a request is for: the absolute-form target or `:authority`, else `Host`.
/// Both are reference-counted buffers, so keeping it costs no copy.
enum RequestAuthority {
    Uri(Authority),
    Host(HeaderValue),
    None,
}

impl RequestAuthority {
    fn of(req: &Request<Incoming>) -> Self {
        if let Some(a) = req.uri().authority() {
            return RequestAuthority::Uri(a.clone());
        }
        match req.headers().get(header::HOST) {
            Some(h) => RequestAuthority::Host(h.clone()),
            None => RequestAuthority::None,
        }
    }

    fn as_str(&self) -> &str {
        match self {
            RequestAuthority::Uri(a) => a.as_str(),
            RequestAuthority::Host(h) => h.to_str().unwrap_or(""),
            RequestAuthority::None => "",
        }
    }
}

fn header_str(v: Option<&HeaderValue>) -> &str {
    v.and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn content_length(h: &http::HeaderMap) -> u64 {
    header_str(h.get(header::CONTENT_LENGTH))
        .parse()
        .unwrap_or(0)
}

/// The `grpc-status` a response carries in its headers (a trailers-only gRPC response). A code
/// outside gRPC's range counts as UNKNOWN (2), as gRPC clients read it, which also keeps the
/// number of metric series an upstream can cause bounded.
fn grpc_status(h: &http::HeaderMap) -> Option<u16> {
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
