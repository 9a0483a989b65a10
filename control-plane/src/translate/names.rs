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

/// How a sidecar treats a service port's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortProtocol {
    /// Declared HTTP, HTTP2, gRPC or gRPC-Web: an HTTP connection manager.
    Http,
    /// Declared, and not HTTP (TCP, TLS, HTTPS, MONGO, ...): relayed as opaque bytes.
    Tcp,
    /// No protocol declared: Istio sniffs the first bytes, HTTP/1.1 and h2c get the HTTP
    /// connection manager, anything else is relayed as TCP.
    Sniffed,
}

impl PortProtocol {
    pub fn of(protocol: Option<&str>) -> PortProtocol {
        match protocol {
            None | Some("") => PortProtocol::Sniffed,
            p if is_http(p) => PortProtocol::Http,
            Some(_) => PortProtocol::Tcp,
        }
    }

    /// Whether HTTP requests on this port are routed by the port's route configuration.
    pub fn carries_http(self) -> bool {
        self != PortProtocol::Tcp
    }
}

/// The listener that receives a sidecar's inbound traffic (15006).
pub const VIRTUAL_INBOUND: &str = "virtualInbound";
/// The ports iptables redirects a pod's outbound and inbound TCP to.
pub const OUTBOUND_CAPTURE_PORT: u32 = 15001;
pub const INBOUND_CAPTURE_PORT: u32 = 15006;

/// Istio's clusters and filter chains for traffic that no service claims.
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";
pub const BLACK_HOLE_CLUSTER: &str = "BlackHoleCluster";
pub const INBOUND_PASSTHROUGH_CLUSTER: &str = "InboundPassthroughClusterIpv4";
pub const PASSTHROUGH_FILTER_CHAIN: &str = "PassthroughFilterChain";
/// The inbound chain for connections addressed to 15006 itself, which would otherwise loop.
pub const VIRTUAL_INBOUND_BLACKHOLE_CHAIN: &str = "virtualInbound-blackhole";

/// Network filter names.
pub const HTTP_CONNECTION_MANAGER_FILTER: &str = "envoy.filters.network.http_connection_manager";
pub const TCP_PROXY_FILTER: &str = "envoy.filters.network.tcp_proxy";
/// Listener filter names.
pub const ORIGINAL_DST_FILTER: &str = "envoy.filters.listener.original_dst";
pub const TLS_INSPECTOR_FILTER: &str = "envoy.filters.listener.tls_inspector";
pub const HTTP_INSPECTOR_FILTER: &str = "envoy.filters.listener.http_inspector";

/// `inbound|9080||`: the cluster of the application's own port on localhost.
pub fn inbound_cluster(port: u32) -> String {
    format!("inbound|{port}||")
}

/// `0.0.0.0_9080`, `10.96.0.20_27017`: a listener (or inbound chain) by address and port.
pub fn listener_name(address: &str, port: u32) -> String {
    format!("{address}_{port}")
}
