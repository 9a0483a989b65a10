//! A route's retry policy, compiled, and the pure decisions the retry loop asks of it: is this
//! outcome worth another try, and how long to back off first.
//!
//! Conditions are Envoy's `retry_on` names. The umbrella ones expand as Envoy documents them:
//! `5xx` covers every 5xx answer plus connect failures, resets and refused streams;
//! `gateway-error` covers 502/503/504 plus connect failures, resets and refused streams.
//! gRPC conditions read `grpc-status` from the response headers (a trailers-only answer), as
//! Envoy does; a status in the trailers comes after the answer has been forwarded.

use http::{HeaderMap, HeaderName};
use std::time::Duration;

/// Envoy's retry back-off defaults: 25 ms base, at most ten times that.
pub const DEFAULT_BASE_INTERVAL: Duration = Duration::from_millis(25);
pub const MAX_INTERVAL_FACTOR: u32 = 10;
/// `num_retries` when a policy does not set it.
pub const DEFAULT_NUM_RETRIES: u32 = 1;

static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static X_ENVOY_RATELIMITED: HeaderName = HeaderName::from_static("x-envoy-ratelimited");

/// The set of `retry_on` conditions, one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOn(u32);

impl RetryOn {
    pub const FIVE_XX: RetryOn = RetryOn(1);
    pub const GATEWAY_ERROR: RetryOn = RetryOn(1 << 1);
    pub const RESET: RetryOn = RetryOn(1 << 2);
    pub const CONNECT_FAILURE: RetryOn = RetryOn(1 << 3);
    pub const RETRIABLE_4XX: RetryOn = RetryOn(1 << 4);
    pub const REFUSED_STREAM: RetryOn = RetryOn(1 << 5);
    pub const RETRIABLE_STATUS_CODES: RetryOn = RetryOn(1 << 6);
    pub const RESET_BEFORE_REQUEST: RetryOn = RetryOn(1 << 7);
    pub const ENVOY_RATELIMITED: RetryOn = RetryOn(1 << 8);
    pub const GRPC_CANCELLED: RetryOn = RetryOn(1 << 9);
    pub const GRPC_DEADLINE_EXCEEDED: RetryOn = RetryOn(1 << 10);
    pub const GRPC_INTERNAL: RetryOn = RetryOn(1 << 11);
    pub const GRPC_RESOURCE_EXHAUSTED: RetryOn = RetryOn(1 << 12);
    pub const GRPC_UNAVAILABLE: RetryOn = RetryOn(1 << 13);
    /// Accepted for compatibility: this proxy never speaks HTTP/3, so it never applies.
    pub const HTTP3_POST_CONNECT_FAILURE: RetryOn = RetryOn(1 << 14);

    /// Parses Envoy's comma-separated list. Unknown names are an error, naming the name.
    pub fn parse(list: &str) -> Result<RetryOn, String> {
        let mut on = RetryOn::default();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            on.0 |= match name {
                "5xx" => RetryOn::FIVE_XX,
                "gateway-error" => RetryOn::GATEWAY_ERROR,
                "reset" => RetryOn::RESET,
                "reset-before-request" => RetryOn::RESET_BEFORE_REQUEST,
                "connect-failure" => RetryOn::CONNECT_FAILURE,
                "retriable-4xx" => RetryOn::RETRIABLE_4XX,
                "refused-stream" => RetryOn::REFUSED_STREAM,
                "retriable-status-codes" => RetryOn::RETRIABLE_STATUS_CODES,
                "envoy-ratelimited" => RetryOn::ENVOY_RATELIMITED,
                "http3-post-connect-failure" => RetryOn::HTTP3_POST_CONNECT_FAILURE,
                "cancelled" => RetryOn::GRPC_CANCELLED,
                "deadline-exceeded" => RetryOn::GRPC_DEADLINE_EXCEEDED,
                "internal" => RetryOn::GRPC_INTERNAL,
                "resource-exhausted" => RetryOn::GRPC_RESOURCE_EXHAUSTED,
                "unavailable" => RetryOn::GRPC_UNAVAILABLE,
                other => return Err(format!("unknown retry condition {other:?}")),
            }
            .0;
        }
        Ok(on)
    }

    pub fn contains(self, other: RetryOn) -> bool {
        self.0 & other.0 != 0
    }

    fn any(self, of: &[RetryOn]) -> bool {
        of.iter().any(|c| self.contains(*c))
    }
}

/// What went wrong with one try before a response arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryFailure {
    /// No connection could be made (refused, unreachable, connect timeout).
    ConnectFailure,
    /// The request never left: the connection closed under it.
    ResetBeforeRequest,
    /// The connection or stream was reset after the request went out.
    Reset,
    /// HTTP/2 `REFUSED_STREAM`: the server did not process the request.
    RefusedStream,
    /// The per-try timeout fired before the response headers.
    PerTryTimeout,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub on: RetryOn,
    pub num_retries: u32,
    pub per_try_timeout: Option<Duration>,
    pub retriable_status_codes: Box<[u16]>,
    pub base_interval: Duration,
    pub max_interval: Duration,
    /// `envoy.retry_host_predicates.previous_hosts`: a retry avoids the hosts already tried.
    pub avoid_previous_hosts: bool,
    /// How many picks a retry may make to find a host the predicates accept (Envoy default 1).
    pub host_selection_max_attempts: u32,
}

impl RetryPolicy {
    /// Whether a response with this status and these headers is worth another try.
    pub fn retries_response(&self, status: u16, headers: &HeaderMap) -> bool {
        let on = self.on;
        if on.contains(RetryOn::FIVE_XX) && (500..600).contains(&status) {
            return true;
        }
        if on.contains(RetryOn::GATEWAY_ERROR) && matches!(status, 502..=504) {
            return true;
        }
        if on.contains(RetryOn::RETRIABLE_4XX) && status == 409 {
            return true;
        }
        if on.contains(RetryOn::RETRIABLE_STATUS_CODES)
            && self.retriable_status_codes.contains(&status)
        {
            return true;
        }
        if on.contains(RetryOn::ENVOY_RATELIMITED) && headers.contains_key(&X_ENVOY_RATELIMITED) {
            return true;
        }
        let grpc = headers
            .get(&GRPC_STATUS)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok());
        let condition = match grpc {
            Some(1) => RetryOn::GRPC_CANCELLED,
            Some(4) => RetryOn::GRPC_DEADLINE_EXCEEDED,
            Some(8) => RetryOn::GRPC_RESOURCE_EXHAUSTED,
            Some(13) => RetryOn::GRPC_INTERNAL,
            Some(14) => RetryOn::GRPC_UNAVAILABLE,
            _ => return false,
        };
        on.contains(condition)
    }

    /// Whether a try that failed before any response is worth another try.
    pub fn retries_failure(&self, failure: TryFailure) -> bool {
        let on = self.on;
        let umbrella = [RetryOn::FIVE_XX, RetryOn::GATEWAY_ERROR];
        match failure {
            TryFailure::ConnectFailure => {
                on.any(&umbrella) || on.any(&[RetryOn::CONNECT_FAILURE, RetryOn::RESET])
            }
            TryFailure::ResetBeforeRequest => {
                on.any(&umbrella) || on.any(&[RetryOn::RESET, RetryOn::RESET_BEFORE_REQUEST])
            }
            TryFailure::Reset => on.any(&umbrella) || on.contains(RetryOn::RESET),
            TryFailure::RefusedStream => {
                on.any(&umbrella) || on.any(&[RetryOn::REFUSED_STREAM, RetryOn::RESET])
            }
            // Envoy answers a per-try timeout with a 504 and retries it like one.
            TryFailure::PerTryTimeout => {
                on.any(&umbrella) || on.contains(RetryOn::RESET) || self.retries_status(504)
            }
        }
    }

    fn retries_status(&self, status: u16) -> bool {
        self.on.contains(RetryOn::RETRIABLE_STATUS_CODES)
            && self.retriable_status_codes.contains(&status)
    }

    /// The wait before retry number `retry` (1 for the first retry): fully jittered
    /// exponential back-off, uniform in `[0, (2^retry - 1) * base)`, capped at the maximum.
    /// `draw` is uniform in `[0, 1)`.
    pub fn backoff(&self, retry: u32, draw: f64) -> Duration {
        let factor = (1u64 << retry.clamp(1, 32)) - 1;
        let ceiling = self
            .base_interval
            .saturating_mul(u32::try_from(factor).unwrap_or(u32::MAX))
            .min(self.max_interval);
        ceiling.mul_f64(draw.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests;
