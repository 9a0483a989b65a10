//! Answers the proxy makes itself, each with the Envoy response flag that says why.

use super::body::ProxyBody;
use http::{header, HeaderValue, Response, StatusCode};

/// Envoy's response flags, as they appear in access logs and the `response_flags` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFlag {
    None,
    /// NR: no route configured for the request.
    NoRoute,
    /// NC: the route names a cluster the proxy does not have.
    NoCluster,
    /// UH: no healthy upstream host.
    NoHealthyUpstream,
    /// UF: upstream connection failure.
    UpstreamConnectFailure,
    /// UC: upstream connection terminated.
    UpstreamConnectionTermination,
    /// UT: upstream request timeout.
    UpstreamTimeout,
    /// DC: downstream connection terminated.
    DownstreamTermination,
    /// UPE: upstream protocol error.
    UpstreamProtocolError,
}

impl ResponseFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseFlag::None => "-",
            ResponseFlag::NoRoute => "NR",
            ResponseFlag::NoCluster => "NC",
            ResponseFlag::NoHealthyUpstream => "UH",
            ResponseFlag::UpstreamConnectFailure => "UF",
            ResponseFlag::UpstreamConnectionTermination => "UC",
            ResponseFlag::UpstreamTimeout => "UT",
            ResponseFlag::DownstreamTermination => "DC",
            ResponseFlag::UpstreamProtocolError => "UPE",
        }
    }
}

/// A response the proxy wrote itself, as Envoy words it: plain text, `server: envoy`-style
/// identification replaced by our own.
pub fn local_reply(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if !body.is_empty() {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    resp
}
