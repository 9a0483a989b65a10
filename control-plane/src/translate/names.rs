//! Istio's resource names.

/// `outbound|9080|v1|reviews.default.svc.cluster.local`; the subset is empty for the cluster of
/// all endpoints.
pub fn outbound_cluster(port: u32, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

pub const VIRTUAL_OUTBOUND: &str = "virtualOutbound";
pub const HTTP_PROXY_ROUTE: &str = "http_proxy";

/// HTTP filter names; routes name the first two in `typed_per_filter_config`.
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
pub const CORS_FILTER: &str = "envoy.filters.http.cors";
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";

/// Whether a ServiceEntry port protocol is spoken as HTTP/2 to the upstream.
pub fn is_http2(protocol: Option<&str>) -> bool {
    matches!(
        protocol.map(|p| p.to_ascii_uppercase()).as_deref(),
        Some("HTTP2") | Some("GRPC") | Some("GRPC-WEB")
    )
}

/// Whether a port carries HTTP at all (only those get routes in the HTTP proxy listener).
pub fn is_http(protocol: Option<&str>) -> bool {
    matches!(
        protocol.map(|p| p.to_ascii_uppercase()).as_deref(),
        None | Some("HTTP") | Some("HTTP2") | Some("GRPC") | Some("GRPC-WEB")
    )
}
