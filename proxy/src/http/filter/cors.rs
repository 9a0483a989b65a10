//! The CORS filter at work: answer preflights, remember what an actual request's response
//! must carry. The rules are `CorsPolicy::action`'s.

use super::ResponseHooks;
use crate::body::ProxyBody;
use crate::router::filter_config::cors::CorsAction;
use crate::router::filter_config::PerFilter;
use http::{HeaderMap, Method, Response, StatusCode};

pub fn on_request(
    per_route: Option<&PerFilter>,
    method: &Method,
    headers: &HeaderMap,
    hooks: &mut ResponseHooks,
) -> Option<Response<ProxyBody>> {
    let Some(PerFilter::Cors(policy)) = per_route else {
        return None;
    };
    if !policy.enabled.roll() {
        return None;
    }
    match policy.action(method, headers) {
        CorsAction::Pass => None,
        CorsAction::Actual(add) => {
            hooks.cors_headers = Some(add);
            None
        }
        CorsAction::Preflight(add) => {
            let mut resp = Response::new(ProxyBody::Empty);
            *resp.headers_mut() = add;
            Some(resp)
        }
        CorsAction::RejectPreflight => {
            let mut resp = Response::new(ProxyBody::Empty);
            *resp.status_mut() = StatusCode::OK;
            Some(resp)
        }
    }
}

pub fn on_response(add: HeaderMap, response: &mut Response<ProxyBody>) {
    for (name, value) in add {
        if let Some(name) = name {
            response.headers_mut().insert(name, value);
        }
    }
}
