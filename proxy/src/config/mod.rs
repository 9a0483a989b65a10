//! The compiled configuration the request path reads, built from Envoy v3 xDS resources.
//!
//! Each `compile_*` function turns one resource into an immutable domain value, or explains
//! why it cannot with a [`ValidationError`] naming the resource and the field. Compiling is
//! pure and side-effect free, so the xDS client can compile a whole update off to the side,
//! NACK the bad resources one by one, and publish a `snapshot::Snapshot` built only from good
//! ones.
//!
//! Semantics and defaults follow Envoy's documentation. What is parsed but not acted on yet is
//! said where it is stored (see [`crate::router::RoutePolicy`]); features not acted on at all
//! are refused, so a NACK says so instead of an ACK that misleads.

mod access_log;
mod cluster;
mod connection_limit;
mod downstream;
mod endpoint;
mod error;
pub mod filter_chain_match;
mod filter_config;
mod hash_policy;
mod header_mutation;
mod http_connection;
mod http_filters;
mod listener;
mod listener_filters;
mod log_format;
mod resilience;
mod retry;
mod route;
mod route_match;
mod route_policy;
mod tcp_proxy;
mod tracing;
mod upstream_http;
mod workload_metadata;

#[cfg(test)]
mod tests;

pub use cluster::{
    compile_cluster, ClusterConfig, Discovery, Finite, LbPolicy, LeastRequest, RingHash,
    RingHashFunction, SlowStart, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DNS_REFRESH_RATE,
    DEFAULT_HEALTHY_PANIC_THRESHOLD,
};
pub use connection_limit::{ConnectionLimitConfig, CONNECTION_LIMIT_NAME, CONNECTION_LIMIT_TYPE};
pub use downstream::{
    DownstreamLimits, Http2Keepalive, Http2Limits, DEFAULT_DOWNSTREAM_IDLE_TIMEOUT,
    DEFAULT_MAX_CONCURRENT_STREAMS, DEFAULT_MAX_HEADERS_COUNT, DEFAULT_MAX_REQUEST_HEADERS_KB,
};
pub use endpoint::{compile_load_assignment, Endpoint, EndpointAddress};
pub use error::ValidationError;
pub use http_connection::{
    Cidr, EscapedSlashes, Forwarding, HeadPolicy, HttpConnectionConfig, PathNormalization,
    RouteSource, ServerHeader, StripPort, DEFAULT_SERVER_NAME, DEFAULT_STREAM_IDLE_TIMEOUT,
    WEBSOCKET,
};
pub use listener::{
    compile_listener, ChainAction, FilterChainConfig, FilterChains, ListenerConfig,
    DEFAULT_LISTENER_FILTERS_TIMEOUT, HTTP_CONNECTION_MANAGER_NAME,
};
pub use listener_filters::{ListenerFilters, PortPredicate};
pub use log_format::{
    FormatBody, JsonValue, LogFormat, Operator, Piece, RequestField, ENVOY_DEFAULT_FORMAT,
    ISTIO_DEFAULT_TEXT_FORMAT,
};
pub use resilience::{
    CircuitBreakers, ConnectionOptions, OutlierDetection, TcpKeepalive, DEFAULT_IDLE_TIMEOUT,
};
pub use route::compile_route_config;
pub use tcp_proxy::{TcpProxyConfig, TcpTarget, DEFAULT_TCP_IDLE_TIMEOUT};
pub use tracing::{
    Collector, Tag, TagValue, TracingConfig, DEFAULT_MAX_PATH_TAG_LENGTH, OPEN_TELEMETRY_CONFIG,
};
pub use upstream_http::{UpstreamHttp2, UpstreamProtocol, DEFAULT_HPACK_TABLE_SIZE};
pub use workload_metadata::WorkloadMetadata;
