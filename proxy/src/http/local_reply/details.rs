//! Envoy's response code details: why a response has the code it has, in Envoy's words
//! (`%RESPONSE_CODE_DETAILS%`). A 503 alone says little; `no_healthy_upstream` or
//! `upstream_reset_before_response_started{remote_connection_failure|…}` says what to fix.
//!
//! The strings are the ones Envoy writes (checked against Envoy 1.40's logs for the same
//! situations), so dashboards and searches built for Envoy carry over.

use std::fmt;

/// Why a response has its code. Small and `Copy`: it is set on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseCodeDetails {
    /// Nothing answered yet (the client left first: see `DownstreamRemoteDisconnect`).
    #[default]
    Unset,
    /// The upstream's own answer.
    ViaUpstream,
    RouteNotFound,
    /// The listener's route configuration has not arrived (RDS) or is gone.
    RouteConfigurationNotFound,
    ClusterNotFound,
    NoHealthyUpstream,
    /// The last try ran out of its per-try timeout.
    UpstreamPerTryTimeout,
    /// The route's timeout expired before the response began.
    ResponseTimeout,
    /// The route's timeout expired while the response body was on its way.
    UpstreamResponseTimeout,
    StreamIdleTimeout,
    FaultFilterAbort,
    /// A route's direct response or redirect.
    DirectResponse,
    /// The CORS filter answered a preflight request itself.
    CorsResponse,
    /// An upgrade no route allows.
    UpgradeFailed,
    /// The path is malformed, or has an escaped slash where those are rejected.
    PathNormalizationFailed,
    /// A retry was needed but the request body had outgrown what was kept to resend it.
    RequestPayloadExceededRetryBufferLimit,
    /// The client went away before the response was complete.
    DownstreamRemoteDisconnect,
    UpstreamResetBeforeResponseStarted(ResetReason),
    /// The response had begun; the upstream failed or the route's timers ended it mid-body.
    UpstreamResetAfterResponseStarted(ResetReason),
}

/// Envoy's stream reset reasons, as they appear inside `{…}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// The connection to the upstream could not be made.
    RemoteConnectionFailure,
    ConnectionTimeout,
    ConnectionTermination,
    RemoteRefusedStreamReset,
    RemoteReset,
    /// A circuit breaker refused the request.
    Overflow,
}

impl ResetReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::RemoteConnectionFailure => "remote_connection_failure",
            ResetReason::ConnectionTimeout => "connection_timeout",
            ResetReason::ConnectionTermination => "connection_termination",
            ResetReason::RemoteRefusedStreamReset => "remote_refused_stream_reset",
            ResetReason::RemoteReset => "remote_reset",
            ResetReason::Overflow => "overflow",
        }
    }
}

impl ResponseCodeDetails {
    /// The details with the upstream transport failure reason, when there is one, inside the
    /// braces after a `|`, as Envoy writes them.
    pub fn display(self, transport_failure: Option<&str>) -> DetailsDisplay<'_> {
        DetailsDisplay {
            details: self,
            transport_failure,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ResponseCodeDetails::Unset => "-",
            ResponseCodeDetails::ViaUpstream => "via_upstream",
            ResponseCodeDetails::RouteNotFound => "route_not_found",
            ResponseCodeDetails::RouteConfigurationNotFound => "route_configuration_not_found",
            ResponseCodeDetails::ClusterNotFound => "cluster_not_found",
            ResponseCodeDetails::NoHealthyUpstream => "no_healthy_upstream",
            ResponseCodeDetails::UpstreamPerTryTimeout => "upstream_per_try_timeout",
            ResponseCodeDetails::ResponseTimeout => "response_timeout",
            ResponseCodeDetails::UpstreamResponseTimeout => "upstream_response_timeout",
            ResponseCodeDetails::StreamIdleTimeout => "stream_idle_timeout",
            ResponseCodeDetails::FaultFilterAbort => "fault_filter_abort",
            ResponseCodeDetails::DirectResponse => "direct_response",
            ResponseCodeDetails::CorsResponse => "cors_response",
            ResponseCodeDetails::UpgradeFailed => "upgrade_failed",
            ResponseCodeDetails::PathNormalizationFailed => "path_normalization_failed",
            ResponseCodeDetails::RequestPayloadExceededRetryBufferLimit => {
                "request_payload_exceeded_retry_buffer_limit"
            }
            ResponseCodeDetails::DownstreamRemoteDisconnect => "downstream_remote_disconnect",
            ResponseCodeDetails::UpstreamResetBeforeResponseStarted(_) => {
                "upstream_reset_before_response_started"
            }
            ResponseCodeDetails::UpstreamResetAfterResponseStarted(_) => {
                "upstream_reset_after_response_started"
            }
        }
    }
}

pub struct DetailsDisplay<'a> {
    details: ResponseCodeDetails,
    transport_failure: Option<&'a str>,
}

impl fmt::Display for DetailsDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.details.name())?;
        if let ResponseCodeDetails::UpstreamResetBeforeResponseStarted(r)
        | ResponseCodeDetails::UpstreamResetAfterResponseStarted(r) = self.details
        {
            f.write_str("{")?;
            f.write_str(r.as_str())?;
            if let Some(t) = self.transport_failure.filter(|t| !t.is_empty()) {
                write!(f, "|{t}")?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

/// An error's text as one token, the way Envoy writes failure reasons into logs: spaces
/// become `_` so the field stays one word for tools that split lines on spaces.
pub fn failure_token(text: &str) -> String {
    text.replace(' ', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_print_as_envoy_writes_them() {
        let d = ResponseCodeDetails::UpstreamResetBeforeResponseStarted(
            ResetReason::RemoteConnectionFailure,
        );
        assert_eq!(
            d.display(Some("delayed_connect_error:_Connection_refused"))
                .to_string(),
            "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"
        );
        let d = ResponseCodeDetails::UpstreamResetBeforeResponseStarted(ResetReason::Overflow);
        assert_eq!(
            d.display(None).to_string(),
            "upstream_reset_before_response_started{overflow}"
        );
        assert_eq!(
            ResponseCodeDetails::ResponseTimeout
                .display(None)
                .to_string(),
            "response_timeout"
        );
        assert_eq!(ResponseCodeDetails::Unset.display(None).to_string(), "-");
        assert_eq!(
            failure_token("delayed connect error: Connection refused"),
            "delayed_connect_error:_Connection_refused"
        );
    }
}
