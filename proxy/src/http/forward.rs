//! One request through the proxy: plan (listener, route, cluster, host), then execute
//! (upstream request, response), then account (stats, access log).

use super::body::ProxyBody;
use super::headers::{self, X_ENVOY_UPSTREAM_SERVICE_TIME, X_FORWARDED_FOR, X_FORWARDED_PROTO};
use super::local_reply::{local_reply, ResponseFlag};
use crate::config::snapshot::Snapshot;
use crate::config::{RouteSource, UpstreamProtocol};
use crate::context::ProxyContext;
use crate::observe::access_log::LogRecord;
use crate::router::{RequestView, RouteAction, RouteTable};
use crate::upstream::connect::ConnectError;
use crate::upstream::pool::SendError;
use crate::upstream::{Cluster, Host};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// What the request path learned, for the access log and stats. It borrows from the
/// snapshot the request runs on, so recording it costs no allocation.
struct Outcome<'s> {
    flag: ResponseFlag,
    cluster: Option<&'s Arc<Cluster>>,
    host: Option<&'s Arc<Host>>,
    route_name: &'s str,
    upstream_time: Option<u128>,
}

impl Default for Outcome<'_> {
    fn default() -> Self {
        Outcome {
            flag: ResponseFlag::None,
            cluster: None,
            host: None,
            route_name: "",
            upstream_time: None,
        }
    }
}

/// The request fields the access log needs, captured before the request is forwarded; only
/// when the listener logs at all.
struct LogCapture {
    start_wall: SystemTime,
    method: Method,
    path: Option<PathAndQuery>,
    version: Version,
    bytes_received: u64,
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
            bytes_received: content_length(req.headers()),
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

    let mut outcome = Outcome::default();
    let response = proxy(
        &snapshot,
        listener_cfg.map(|l| &**l),
        authority.as_str(),
        peer,
        req,
        &mut outcome,
    )
    .await;

    let status = response.status().as_u16();
    if let Some(cluster) = outcome.cluster {
        cluster.runtime.stats.record(status);
    }
    if let (Some(format), Some(c)) = (log_format, capture) {
        let upstream_host = outcome
            .host
            .map(|h| h.address().to_string())
            .unwrap_or_default();
        ctx.access_log.log(
            format,
            &LogRecord {
                start: c.start_wall,
                method: c.method.as_str(),
                path: c.path.as_ref().map_or("/", |p| p.as_str()),
                protocol: protocol_name(c.version),
                status,
                flags: outcome.flag.as_str(),
                bytes_received: c.bytes_received,
                bytes_sent: content_length(response.headers()),
                duration_ms: start.elapsed().as_millis(),
                upstream_service_time_ms: outcome.upstream_time,
                forwarded_for: c
                    .forwarded_for
                    .as_ref()
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
                user_agent: c
                    .user_agent
                    .as_ref()
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
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

async fn proxy<'s>(
    snapshot: &'s Snapshot,
    listener: Option<&'s crate::config::ListenerConfig>,
    authority: &str,
    peer: SocketAddr,
    mut req: Request<Incoming>,
    outcome: &mut Outcome<'s>,
) -> Response<ProxyBody> {
    if let Some(upgrade) = req.headers().get(header::UPGRADE) {
        if upgrade.as_bytes().eq_ignore_ascii_case(b"h2c") {
            // An offer to switch to cleartext HTTP/2: declined by carrying on in HTTP/1.1, as
            // the offer allows (some clients make it on every request).
            headers::strip_h2c_upgrade(req.headers_mut());
        } else if req.version() < Version::HTTP_2 {
            // Upgrades (WebSocket and friends) are not configured on any route yet: refuse
            // them cleanly, as Envoy does when a route does not allow the upgrade type.
            return local_reply(StatusCode::FORBIDDEN, "");
        }
    }
    let table = listener.and_then(|l| route_table(snapshot, &l.route_source));
    let Some(table) = table else {
        outcome.flag = ResponseFlag::NoRoute;
        return local_reply(StatusCode::NOT_FOUND, "");
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
        outcome.flag = ResponseFlag::NoRoute;
        return local_reply(StatusCode::NOT_FOUND, "");
    };
    outcome.route_name = &route.name;
    let cluster_name = match &route.action {
        RouteAction::Cluster(target) => target.name.clone(),
        RouteAction::Weighted(w) => w.pick_random().name.clone(),
        RouteAction::DirectResponse { status, body } => {
            let mut resp = Response::new(body.clone().map_or(ProxyBody::Empty, ProxyBody::full));
            *resp.status_mut() = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
            return resp;
        }
        RouteAction::Redirect(r) => {
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            return super::redirect::respond(r, &route.matcher.path, authority, path);
        }
    };
    let Some(cluster) = snapshot.cluster(&cluster_name) else {
        outcome.flag = ResponseFlag::NoCluster;
        return local_reply(StatusCode::SERVICE_UNAVAILABLE, "no cluster");
    };
    outcome.cluster = Some(cluster);
    let Some(host) = cluster.pick(None) else {
        outcome.flag = ResponseFlag::NoHealthyUpstream;
        return local_reply(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream");
    };
    outcome.host = Some(host);

    prepare_upstream_request(&mut req, authority, peer, cluster.config.protocol);
    let _active = host.start_request();
    let upstream_start = Instant::now();
    let req = req.map(ProxyBody::Incoming);
    match host.pool().send(req, cluster.config.connect_timeout).await {
        Ok(mut resp) => {
            let elapsed = upstream_start.elapsed().as_millis();
            outcome.upstream_time = Some(elapsed);
            headers::strip_hop_by_hop(resp.headers_mut());
            resp.headers_mut().insert(
                X_ENVOY_UPSTREAM_SERVICE_TIME.clone(),
                HeaderValue::from(elapsed as u64),
            );
            resp
        }
        Err(SendError::Connect(e)) => {
            cluster
                .runtime
                .stats
                .cx_connect_fail
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            outcome.flag = ResponseFlag::UpstreamConnectFailure;
            tracing::debug!(host = %host.address(), error = %e, "upstream connect failed");
            local_reply(StatusCode::SERVICE_UNAVAILABLE, connect_failure_text(&e))
        }
        Err(e) => {
            tracing::debug!(host = %host.address(), error = %e, "upstream request failed");
            outcome.flag = ResponseFlag::UpstreamConnectionTermination;
            local_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
            )
        }
    }
}

fn route_table<'a>(snapshot: &'a Snapshot, source: &'a RouteSource) -> Option<&'a Arc<RouteTable>> {
    match source {
        RouteSource::Rds(name) => snapshot.route_table(name),
        RouteSource::Inline(table) => Some(table),
    }
}

/// Rewrites the downstream request into the upstream one: hop-by-hop headers out, forwarding
/// headers in, and the target in the form the upstream protocol wants (origin-form plus `Host`
/// for HTTP/1.1, scheme and `:authority` for HTTP/2). The authority the client asked for is
/// kept, as Envoy keeps it, rather than replaced by the upstream host's address.
fn prepare_upstream_request(
    req: &mut Request<Incoming>,
    authority: &str,
    peer: SocketAddr,
    protocol: UpstreamProtocol,
) {
    let h = req.headers_mut();
    headers::strip_hop_by_hop(h);
    // The proxy already answered any `Expect: 100-continue` towards the client.
    h.remove(header::EXPECT);
    headers::append_forwarded_for(h, peer.ip());
    if !h.contains_key(&X_FORWARDED_PROTO) {
        h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    match protocol {
        UpstreamProtocol::Http1 => {
            *req.uri_mut() = Uri::from(path);
            *req.version_mut() = Version::HTTP_11;
            let host_is_authority = req
                .headers()
                .get(header::HOST)
                .is_some_and(|h| h.as_bytes() == authority.as_bytes());
            if !host_is_authority {
                if let Ok(v) = HeaderValue::from_str(authority) {
                    req.headers_mut().insert(header::HOST, v);
                }
            }
        }
        UpstreamProtocol::Http2 => {
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(Scheme::HTTP);
            parts.authority = Authority::try_from(authority).ok();
            parts.path_and_query = Some(path);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
            *req.version_mut() = Version::HTTP_2;
            req.headers_mut().remove(header::HOST);
        }
    }
}

fn connect_failure_text(e: &ConnectError) -> &'static str {
    match e {
        ConnectError::Timeout => "upstream connect error or disconnect/reset before headers. reset reason: connection timeout",
        _ => "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
    }
}

fn header_str<'a>(h: &'a http::HeaderMap, name: &header::HeaderName) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn content_length(h: &http::HeaderMap) -> u64 {
    header_str(h, &header::CONTENT_LENGTH).parse().unwrap_or(0)
}

fn protocol_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        _ => "HTTP/?",
    }
}
