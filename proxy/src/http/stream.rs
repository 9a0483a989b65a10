//! One request through the connection manager: route it, plan it, run the filter chain, let
//! the router carry out the plan, then account for it (stats, access log) when its response
//! body ends (see `account`).

mod account;
mod body;

pub use account::{Account, Completion};
pub use body::ResponseBody;

use super::filter::{self, ResponseHooks};
use super::forward::{forward, Forward, Outcome};
use super::headers;
use super::local_reply::{
    into_grpc, is_grpc, local_reply, no_route, ResponseCodeDetails, ResponseFlag,
    GRPC_DEADLINE_EXCEEDED,
};
use super::plan::{plan, Target};
use crate::body::ProxyBody;
use crate::config::HttpConnectionConfig;
use crate::context::ProxyContext;
use crate::downstream::DownstreamConnection;
use crate::hcm_stats::HcmStats;
use crate::observe::trace;
use crate::router::RequestView;
use crate::snapshot::Snapshot;
use http::uri::Authority;
use http::{header, HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use std::sync::Arc;

pub async fn handle(
    ctx: &Arc<ProxyContext>,
    hcm: &HttpConnectionConfig,
    stats: Arc<HcmStats>,
    conn: &DownstreamConnection,
    mut req: Request<Incoming>,
) -> Response<ResponseBody> {
    let snapshot = ctx.snapshot.load_full();
    // Before the request id is read: an edge request's id is replaced.
    headers::forwarding::sanitize(req.headers_mut(), &hcm.head.forwarding, conn.peer.ip());
    let request_id = headers::ensure_request_id(req.headers_mut());
    let path_ok = headers::prepare_request(&mut req, &hcm.head, conn.local.port()).is_ok();
    let authority = RequestAuthority::of(&req);
    let peer = conn.peer;
    let grpc_request = is_grpc(req.headers());
    let method = req.method().clone();
    // Completes itself when dropped: here if the client leaves before there is a response,
    // else with the response body. Boxed: it rides in the request future and then in the
    // response, which hyper moves several times; moving a pointer is cheaper than copying
    // the record each time (measured with benches/callgrind).
    let mut account = Box::new(Account::start(
        ctx,
        stats,
        &req,
        authority.as_str(),
        peer,
        Some((&hcm.access_log, Some(conn.local))),
        grpc_request,
    ));
    if conn.inbound {
        account.set_inbound();
    }
    account.set_trace(trace::start(
        hcm.tracing.as_ref(),
        &mut req,
        authority.as_str(),
        peer,
        &request_id,
    ));
    // Only an internal request keeps the header past `trace::start`.
    let forced_trace = req.headers().contains_key(&trace::X_ENVOY_FORCE_TRACE);

    // Boxed: the router's state (retry loop, timers, the upstream exchange) is large, and
    // hyper moves the request's future around; one allocation is cheaper than copying
    // kilobytes several times per request (measured with benches/callgrind).
    let mut response = if path_ok {
        Box::pin(run(
            &snapshot,
            hcm,
            authority.as_str(),
            conn,
            req,
            grpc_request,
            account.outcome(),
        ))
        .await
    } else {
        account.outcome().details = ResponseCodeDetails::PathNormalizationFailed;
        let mut r = local_reply(StatusCode::BAD_REQUEST, "");
        if grpc_request {
            into_grpc(&mut r, None);
        }
        r
    };

    headers::finish_response(response.headers_mut(), &hcm.head, request_id, forced_trace);
    let outcome = account.outcome();
    if let (Some(cluster), true) = (&outcome.cluster, outcome.forwarded) {
        cluster.runtime.stats.record(response.status().as_u16());
    }
    account.response_head(&response, &method);
    response.map(|body| ResponseBody::new(body, account))
}

async fn run<'s>(
    snapshot: &'s Snapshot,
    hcm: &'s HttpConnectionConfig,
    authority: &str,
    conn: &DownstreamConnection,
    mut req: Request<Incoming>,
    grpc: bool,
    outcome: &mut Outcome,
) -> Response<ProxyBody> {
    let mut upgrade = false;
    if let Some(offer) = req.headers().get(header::UPGRADE) {
        if offer.as_bytes().eq_ignore_ascii_case(b"h2c") {
            // An offer to switch to cleartext HTTP/2: declined by carrying on in HTTP/1.1, as
            // the offer allows (some clients make it on every request).
            headers::strip_h2c_upgrade(req.headers_mut());
        } else if req.version() < Version::HTTP_2 {
            upgrade = super::upgrade::requested(req.headers());
        }
    }
    let mut response =
        route_and_forward(snapshot, hcm, authority, conn, req, upgrade, outcome).await;
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
    hcm: &'s HttpConnectionConfig,
    authority: &str,
    conn: &DownstreamConnection,
    mut req: Request<Incoming>,
    upgrade: bool,
    outcome: &mut Outcome,
) -> Response<ProxyBody> {
    let origin_form = req.uri().authority().is_none() && req.version() < Version::HTTP_2;
    let Some(table) = snapshot.route_table_for(hcm) else {
        outcome.fail(
            ResponseFlag::NoRoute,
            ResponseCodeDetails::RouteConfigurationNotFound,
        );
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
    if upgrade && !super::upgrade::allowed(hcm, route, req.headers()) {
        // As Envoy: an upgrade neither the route nor the connection manager allows.
        outcome.details = ResponseCodeDetails::UpgradeFailed;
        return local_reply(StatusCode::FORBIDDEN, "");
    }
    let Some(route) = route else {
        outcome.fail(ResponseFlag::NoRoute, ResponseCodeDetails::RouteNotFound);
        return no_route(authority, origin_form);
    };
    outcome.route_name = Some(route.name.clone());
    outcome.decorator = route.policy.decorator.clone();
    trace::propagate_decorator(
        hcm.tracing.as_deref(),
        route.policy.decorator.as_deref(),
        req.headers_mut(),
    );
    let plan = plan(route, req.headers(), hcm.stream_idle_timeout, rand::random);
    outcome.grpc_deadline = plan.timeouts.total_from_grpc;

    // Known before the filters run, so a fault filter's answer is still counted against the
    // route's destination, as Envoy reports it.
    let cluster = match &plan.target {
        Target::Cluster { name, .. } => snapshot.cluster(name),
        _ => None,
    };
    outcome.cluster = cluster.cloned();
    let mut hooks = ResponseHooks::default();
    let chain = &hcm.http_filters;
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
        outcome.details = if outcome.flags.contains(ResponseFlag::FaultInjected) {
            ResponseCodeDetails::FaultFilterAbort
        } else {
            ResponseCodeDetails::CorsResponse
        };
        return answer;
    }
    let mut response = match plan.target {
        Target::Cluster { settings, .. } => {
            let f = Forward {
                snapshot,
                route,
                cluster,
                cluster_settings: settings,
                timeouts: &plan.timeouts,
                router: chain.router,
                authority,
                peer: conn.peer,
                original_dst: conn.original_dst,
            };
            if upgrade {
                super::upgrade::forward(f, req, outcome).await
            } else {
                forward(f, req, outcome).await
            }
        }
        Target::Redirect(r) => {
            outcome.details = ResponseCodeDetails::DirectResponse;
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let mut resp = super::redirect::respond(r, &route.matcher.path, authority, path);
            route.policy.headers.response.apply(resp.headers_mut());
            resp
        }
        Target::Direct { status, body } => {
            outcome.details = ResponseCodeDetails::DirectResponse;
            let mut resp = Response::new(body.cloned().map_or(ProxyBody::Empty, ProxyBody::full));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            route.policy.headers.response.apply(resp.headers_mut());
            resp
        }
    };
    filter::on_response(hooks, &mut response);
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
