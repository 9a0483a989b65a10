//! Answers the proxy makes itself, and Envoy's response flags that say why a response is what
//! it is (several can apply: a connect failure whose retries ran out is `UF,URX`).

mod details;

pub use details::{failure_token, ResetReason, ResponseCodeDetails};

use crate::body::ProxyBody;
use http::{header, HeaderValue, Response, StatusCode};
use std::borrow::Cow;

/// One of Envoy's response flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ResponseFlag {
    /// NR: no route configured for the request.
    NoRoute = 1,
    /// NC: the route names a cluster the proxy does not have.
    NoCluster = 1 << 1,
    /// UH: no healthy upstream host.
    NoHealthyUpstream = 1 << 2,
    /// UF: upstream connection failure.
    UpstreamConnectFailure = 1 << 3,
    /// UC: upstream connection terminated.
    UpstreamConnectionTermination = 1 << 4,
    /// UT: upstream request timeout (the route's, or a per-try timeout).
    UpstreamTimeout = 1 << 5,
    /// DC: downstream connection terminated.
    DownstreamTermination = 1 << 6,
    /// UPE: upstream protocol error.
    UpstreamProtocolError = 1 << 7,
    /// URX: the retry limit was reached.
    UpstreamRetryLimitExceeded = 1 << 8,
    /// DI: the fault filter delayed the request.
    DelayInjected = 1 << 9,
    /// FI: the fault filter aborted the request.
    FaultInjected = 1 << 10,
    /// SI: the stream idle timeout fired.
    StreamIdleTimeout = 1 << 11,
    /// UO: a circuit breaker refused the request (or its retry).
    UpstreamOverflow = 1 << 12,
}

impl ResponseFlag {
    const ALL: [ResponseFlag; 13] = [
        ResponseFlag::NoRoute,
        ResponseFlag::NoCluster,
        ResponseFlag::NoHealthyUpstream,
        ResponseFlag::UpstreamConnectFailure,
        ResponseFlag::UpstreamConnectionTermination,
        ResponseFlag::UpstreamTimeout,
        ResponseFlag::DownstreamTermination,
        ResponseFlag::UpstreamProtocolError,
        ResponseFlag::UpstreamRetryLimitExceeded,
        ResponseFlag::DelayInjected,
        ResponseFlag::FaultInjected,
        ResponseFlag::StreamIdleTimeout,
        ResponseFlag::UpstreamOverflow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResponseFlag::NoRoute => "NR",
            ResponseFlag::NoCluster => "NC",
            ResponseFlag::NoHealthyUpstream => "UH",
            ResponseFlag::UpstreamConnectFailure => "UF",
            ResponseFlag::UpstreamConnectionTermination => "UC",
            ResponseFlag::UpstreamTimeout => "UT",
            ResponseFlag::DownstreamTermination => "DC",
            ResponseFlag::UpstreamProtocolError => "UPE",
            ResponseFlag::UpstreamRetryLimitExceeded => "URX",
            ResponseFlag::DelayInjected => "DI",
            ResponseFlag::FaultInjected => "FI",
            ResponseFlag::StreamIdleTimeout => "SI",
            ResponseFlag::UpstreamOverflow => "UO",
        }
    }
}

/// The flags of one response; empty prints as `-`, as in Envoy's logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseFlags(u16);

impl ResponseFlags {
    pub fn set(&mut self, flag: ResponseFlag) {
        self.0 |= flag as u16;
    }

    pub fn contains(self, flag: ResponseFlag) -> bool {
        self.0 & flag as u16 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set as bits, a compact key for per-flag-set metric series.
    pub fn bits(self) -> u16 {
        self.0
    }

    /// [`ResponseFlags::as_str`] of a set given as [`ResponseFlags::bits`].
    pub fn label_of_bits(bits: u16) -> String {
        ResponseFlags(bits).as_str().into_owned()
    }

    /// Envoy's short form; allocates only when more than one flag is set.
    pub fn as_str(self) -> Cow<'static, str> {
        let mut set = ResponseFlag::ALL.iter().filter(|f| self.contains(**f));
        match (set.next(), set.next()) {
            (None, _) => Cow::Borrowed("-"),
            (Some(only), None) => Cow::Borrowed(only.as_str()),
            (Some(_), Some(_)) => Cow::Owned(
                ResponseFlag::ALL
                    .iter()
                    .filter(|f| self.contains(**f))
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        }
    }
}

impl From<ResponseFlag> for ResponseFlags {
    fn from(flag: ResponseFlag) -> Self {
        ResponseFlags(flag as u16)
    }
}

/// A response the proxy wrote itself, as Envoy words it: plain text.
pub fn local_reply(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<ProxyBody> {
    let body = body.into();
    let mut resp = Response::new(ProxyBody::full(body.clone()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if !body.is_empty() {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    resp
}

/// The 404 for a request no route matches. Envoy sends it empty; a short body naming the
/// authority saves a newcomer the guesswork, and a request that came in origin-form
/// (`curl http://127.0.0.1:15001/path` instead of `curl -x`) gets told how to use the proxy.
pub fn no_route(authority: &str, origin_form: bool) -> Response<ProxyBody> {
    let mut body = if authority.is_empty() {
        "no route: the request names no host\n".to_string()
    } else {
        format!("no route for host {authority:?}\n")
    };
    if origin_form {
        body.push_str(
            "hint: this port is an HTTP proxy; send the full URL through it, \
             e.g. curl -x http://<this proxy> http://<service>:<port>/<path>\n",
        );
    }
    local_reply(StatusCode::NOT_FOUND, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_print_as_envoy_does() {
        let mut f = ResponseFlags::default();
        assert_eq!(f.as_str(), "-");
        f.set(ResponseFlag::UpstreamRetryLimitExceeded);
        assert_eq!(f.as_str(), "URX");
        f.set(ResponseFlag::UpstreamConnectFailure);
        assert_eq!(f.as_str(), "UF,URX");
    }
}

static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: http::HeaderName = http::HeaderName::from_static("grpc-message");
/// gRPC's DEADLINE_EXCEEDED.
pub const GRPC_DEADLINE_EXCEEDED: u32 = 4;

/// Whether a request speaks gRPC (by its `content-type`).
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// A gRPC client reads errors from `grpc-status`, not the HTTP status: Envoy turns its own
/// answers to gRPC requests into trailers-only responses, the status mapped from the HTTP one
/// (or `grpc_status` when the caller's deadline ran out) and the text in `grpc-message`.
pub fn into_grpc(resp: &mut Response<ProxyBody>, grpc_status: Option<u32>) {
    let status = grpc_status.unwrap_or_else(|| grpc_status_of(resp.status()));
    let message = match std::mem::take(resp.body_mut()) {
        ProxyBody::Full(Some(b)) => HeaderValue::from_maybe_shared(b).ok(),
        _ => None,
    };
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.remove(header::CONTENT_LENGTH);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(GRPC_STATUS.clone(), HeaderValue::from(status));
    match message {
        Some(m) => h.insert(GRPC_MESSAGE.clone(), m),
        None => h.remove(&GRPC_MESSAGE),
    };
}

/// Envoy's mapping from an HTTP status to a gRPC status.
fn grpc_status_of(status: StatusCode) -> u32 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

#[cfg(test)]
mod grpc_tests {
    use super::*;

    #[test]
    fn local_replies_to_grpc_requests_become_trailers_only_answers() {
        let mut r = local_reply(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream");
        into_grpc(&mut r, None);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["grpc-status"], "14");
        assert_eq!(r.headers()["grpc-message"], "no healthy upstream");
        assert_eq!(r.headers()["content-type"], "application/grpc");
        let mut r = local_reply(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout");
        into_grpc(&mut r, Some(GRPC_DEADLINE_EXCEEDED));
        assert_eq!(r.headers()["grpc-status"], "4");
        let mut r = no_route("x", false);
        into_grpc(&mut r, None);
        assert_eq!(r.headers()["grpc-status"], "12");
    }
}
