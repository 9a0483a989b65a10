//! What a matched route does, and the per-route settings kept for the filters that come later.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::filter_config::FilterConfigs;
use super::fraction::Fraction;
use super::hash_policy::HashPolicy;
use super::header_mutation::HeaderPolicy;
use super::retry::RetryPolicy;
use super::rewrite::Rewrite;
use super::target::ClusterTarget;
use super::weighted::WeightedClusters;

#[derive(Debug, Clone)]
pub enum RouteAction {
    Cluster(ClusterTarget),
    Weighted(WeightedClusters),
    Redirect(Redirect),
    DirectResponse { status: u16, body: Option<Bytes> },
}

/// A compiled `RedirectAction`. Each `None` keeps that part of the request's URL
/// (`http::redirect` builds the `Location`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// `https_redirect` becomes `Some("https")`.
    pub scheme: Option<Box<str>>,
    pub host: Option<Box<str>>,
    pub port: Option<u16>,
    pub path: Option<RedirectPath>,
    pub strip_query: bool,
    /// 301 (Envoy's default), 302, 303, 307 or 308.
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectPath {
    /// `path_redirect`: replaces the whole path (and the query, if it carries one).
    Path(Box<str>),
    /// `prefix_rewrite`: replaces the part the route's prefix matched.
    PrefixRewrite(Box<str>),
}

/// Per-route settings compiled from the xDS route, with the virtual host's and the route
/// configuration's levels already folded in. Everything unset costs nothing per request.
#[derive(Debug, Clone)]
pub struct RoutePolicy {
    /// `route.timeout` with Envoy's default (15 s) applied; `None` when configured as 0, which
    /// Envoy reads as "no timeout".
    pub timeout: Option<Duration>,
    /// `route.idle_timeout`: `None` keeps the connection manager's stream idle timeout,
    /// `Some(ZERO)` disables it for this route.
    pub idle_timeout: Option<Duration>,
    pub max_stream_duration: MaxStreamDuration,
    pub retry: Option<Arc<RetryPolicy>>,
    pub mirrors: Box<[MirrorPolicy]>,
    pub rewrite: Rewrite,
    pub headers: HeaderPolicy,
    pub filters: FilterConfigs,
    /// The virtual host's `include_request_attempt_count`: send `x-envoy-attempt-count`.
    pub include_attempt_count: bool,
    /// Envoy's `cluster_not_found_response_code` (default 503).
    pub cluster_not_found_status: u16,
    /// What a consistent-hash balancer hashes the request by.
    pub hash_policy: Box<[HashPolicy]>,
    /// The route's `decorator`: the name of the request's span.
    pub decorator: Option<Arc<Decorator>>,
    /// The route's `upgrade_configs` for WebSocket: `Some` overrides the connection manager.
    pub websocket: Option<bool>,
}

/// A route's `decorator`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decorator {
    pub operation: Arc<str>,
    /// `propagate` (default true): the operation, ready to send upstream as
    /// `x-envoy-decorator-operation` from a tracing egress listener; `None` when false.
    pub propagate: Option<http::HeaderValue>,
}

impl Default for RoutePolicy {
    fn default() -> Self {
        RoutePolicy {
            timeout: Some(DEFAULT_ROUTE_TIMEOUT),
            idle_timeout: None,
            max_stream_duration: MaxStreamDuration::default(),
            retry: None,
            mirrors: Box::default(),
            rewrite: Rewrite::default(),
            headers: HeaderPolicy::default(),
            filters: FilterConfigs::default(),
            include_attempt_count: false,
            cluster_not_found_status: 503,
            hash_policy: Box::default(),
            decorator: None,
            websocket: None,
        }
    }
}

/// `route.max_stream_duration`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaxStreamDuration {
    /// The stream's total lifetime.
    pub max: Option<Duration>,
    /// When set, a request's `grpc-timeout` header sets its timeout, capped at this value
    /// (zero: no cap).
    pub grpc_timeout_header_max: Option<Duration>,
    /// Subtracted from the `grpc-timeout` header's value, leaving the proxy time to answer.
    pub grpc_timeout_header_offset: Option<Duration>,
    /// The deprecated `max_grpc_timeout` / `grpc_timeout_offset`: the caller's `grpc-timeout`
    /// becomes the route timeout instead of the stream's lifetime, so when it runs out the
    /// answer is an upstream timeout (gRPC UNAVAILABLE), not DEADLINE_EXCEEDED.
    pub legacy_grpc_timeout_max: Option<Duration>,
    pub legacy_grpc_timeout_offset: Option<Duration>,
}

/// `request_mirror_policies[]`: a copy of the request to another cluster, answer ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorPolicy {
    pub cluster: ClusterTarget,
    pub fraction: Fraction,
    /// Envoy appends `-shadow` to the copy's authority unless told not to.
    pub shadow_suffix: bool,
}

/// Envoy's upstream timeout when a route sets none.
pub const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);
