//! The HTTP filter chain: the listener's filters, in order, before the router.
//!
//! A filter sees the request after its route is chosen (it reads the route's per-filter
//! config, as in Envoy) and either lets it go on or answers it itself. On the way back, filters
//! that asked to touch the response do so. The chain is plain data built once per snapshot
//! (`HttpFilterChain`); dispatch is a `match`, so a filter that is not configured on a route
//! costs one lookup in an empty list.

mod cors;
mod fault;

use super::local_reply::ResponseFlags;
use crate::body::ProxyBody;
use crate::router::filter_config::{HttpFilterChain, HttpFilterKind};
use crate::router::Route;
use http::{HeaderMap, Method, Response};

/// What the request filters left for the response.
#[derive(Default)]
pub struct ResponseHooks {
    /// Headers the CORS filter adds to an actual cross-origin request's response.
    cors_headers: Option<HeaderMap>,
}

/// Runs the request side of the chain. `Some(response)` when a filter answered the request.
pub async fn on_request(
    chain: &HttpFilterChain,
    route: &Route,
    method: &Method,
    headers: &HeaderMap,
    flags: &mut ResponseFlags,
    hooks: &mut ResponseHooks,
) -> Option<Response<ProxyBody>> {
    for spec in &chain.filters {
        let Some(on_route) = spec.on_route(&route.policy.filters) else {
            continue;
        };
        let answer = match &spec.kind {
            HttpFilterKind::Fault(default) => {
                fault::on_request(default, on_route.per_route, headers, flags).await
            }
            HttpFilterKind::Cors => cors::on_request(on_route.per_route, method, headers, hooks),
        };
        if answer.is_some() {
            return answer;
        }
    }
    None
}

/// Runs the response side: what request filters asked for.
pub fn on_response(hooks: ResponseHooks, response: &mut Response<ProxyBody>) {
    if let Some(cors) = hooks.cors_headers {
        cors::on_response(cors, response);
    }
}
