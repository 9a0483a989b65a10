//! The router's own answers when a request cannot be forwarded: Envoy's status, body text,
//! response flag and response code details for each way a try can fail.

use super::super::local_reply::{
    failure_token, local_reply, ResetReason, ResponseCodeDetails, ResponseFlag,
};
use super::outcome::Outcome;
use crate::body::ProxyBody;
use crate::router::TryFailure;
use crate::upstream::connect::ConnectError;
use crate::upstream::pool::SendError;
use http::{HeaderName, HeaderValue, Response, StatusCode};

pub static X_ENVOY_OVERLOADED: HeaderName = HeaderName::from_static("x-envoy-overloaded");

pub(super) const RESET_TEXT: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: connection termination";

/// Envoy's answer when a circuit breaker refuses a request: 503 `UO`, and
/// `x-envoy-overloaded` unless the router suppresses Envoy's headers.
pub(in crate::http) fn overflow_reply(
    outcome: &mut Outcome,
    suppress_envoy_headers: bool,
) -> Response<ProxyBody> {
    outcome.flags.set(ResponseFlag::UpstreamOverflow);
    outcome.details =
        ResponseCodeDetails::UpstreamResetBeforeResponseStarted(ResetReason::Overflow);
    let mut resp = local_reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream connect error or disconnect/reset before headers. reset reason: overflow",
    );
    if !suppress_envoy_headers {
        resp.headers_mut()
            .insert(X_ENVOY_OVERLOADED.clone(), HeaderValue::from_static("true"));
    }
    resp
}

pub(in crate::http) fn failure_reply(
    failure: TryFailure,
    error: Option<&SendError>,
    outcome: &mut Outcome,
) -> Response<ProxyBody> {
    let reset = |outcome: &mut Outcome, flag, reason| {
        outcome.fail(
            flag,
            ResponseCodeDetails::UpstreamResetBeforeResponseStarted(reason),
        );
    };
    match failure {
        TryFailure::PerTryTimeout => {
            outcome.fail(
                ResponseFlag::UpstreamTimeout,
                ResponseCodeDetails::UpstreamPerTryTimeout,
            );
            local_reply(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout")
        }
        TryFailure::ConnectFailure => {
            let connect = match error {
                Some(SendError::Connect(e)) => Some(e),
                _ => None,
            };
            if connect.is_some_and(|e| e.is_timeout()) {
                reset(
                    outcome,
                    ResponseFlag::UpstreamConnectFailure,
                    ResetReason::ConnectionTimeout,
                );
                return local_reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "upstream connect error or disconnect/reset before headers. reset reason: connection timeout",
                );
            }
            reset(
                outcome,
                ResponseFlag::UpstreamConnectFailure,
                ResetReason::RemoteConnectionFailure,
            );
            outcome.transport_failure = connect.map(|e| transport_failure(e).into());
            local_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
            )
        }
        TryFailure::RefusedStream => {
            reset(
                outcome,
                ResponseFlag::UpstreamConnectionTermination,
                ResetReason::RemoteRefusedStreamReset,
            );
            local_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream connect error or disconnect/reset before headers. reset reason: remote refused stream reset",
            )
        }
        TryFailure::Reset | TryFailure::ResetBeforeRequest => {
            reset(
                outcome,
                ResponseFlag::UpstreamConnectionTermination,
                ResetReason::ConnectionTermination,
            );
            local_reply(StatusCode::SERVICE_UNAVAILABLE, RESET_TEXT)
        }
    }
}

/// Why a connection could not be made, as one token in Envoy's style: an OS error during the
/// (non-blocking) connect is Envoy's `delayed_connect_error:_<text>`.
fn transport_failure(e: &ConnectError) -> String {
    match e {
        ConnectError::Shared(inner) => transport_failure(inner),
        ConnectError::Io(io) => {
            let text = io.to_string();
            // std appends " (os error N)"; Envoy prints the text alone.
            let text = text.split(" (os error").next().unwrap_or(&text);
            failure_token(&format!("delayed connect error: {text}"))
        }
        other => failure_token(&other.to_string()),
    }
}
