//! The fault filter at work: wait out an injected delay, answer an injected abort. Which
//! requests are hit is decided by `FaultConfig::decide` with fresh draws.

use super::super::local_reply::{local_reply, ResponseFlag, ResponseFlags};
use crate::body::ProxyBody;
use crate::router::filter_config::{AbortKind, FaultConfig, PerFilter};
use crate::router::MILLION;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

const ABORT_BODY: &str = "fault filter abort";

pub async fn on_request(
    default: &FaultConfig,
    per_route: Option<&PerFilter>,
    _headers: &HeaderMap,
    flags: &mut ResponseFlags,
) -> Option<Response<ProxyBody>> {
    let config = match per_route {
        Some(PerFilter::Fault(c)) => &**c,
        _ => default,
    };
    if config.is_empty() {
        return None;
    }
    let decision = config.decide(
        rand::random_range(0..MILLION),
        rand::random_range(0..MILLION),
    );
    if let Some(delay) = decision.delay {
        flags.set(ResponseFlag::DelayInjected);
        tokio::time::sleep(delay).await;
    }
    let kind = decision.abort?;
    flags.set(ResponseFlag::FaultInjected);
    Some(abort(kind))
}

fn abort(kind: AbortKind) -> Response<ProxyBody> {
    match kind {
        AbortKind::Http(status) => local_reply(
            StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            ABORT_BODY,
        ),
        // A trailers-only gRPC answer: status in the headers, no body.
        AbortKind::Grpc(code) => {
            let mut resp = Response::new(ProxyBody::Empty);
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            h.insert("grpc-status", HeaderValue::from(code));
            h.insert("grpc-message", HeaderValue::from_static(ABORT_BODY));
            resp
        }
    }
}
