//! What a matched route does, and the per-route settings kept for the filters that come later.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::weighted::WeightedClusters;

#[derive(Debug, Clone)]
pub enum RouteAction {
    Cluster(ClusterTarget),
    Weighted(WeightedClusters),
    Redirect(Redirect),
    DirectResponse { status: u16, body: Option<Bytes> },
}

/// A cluster by name; the `Arc<str>` lets the request path carry the name without copying it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterTarget {
    pub name: Arc<str>,
}

impl ClusterTarget {
    pub fn new(name: &str) -> Self {
        ClusterTarget { name: name.into() }
    }
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

/// Per-route settings compiled from the xDS route. The timeout is kept but **not yet acted
/// on** (the timeout work reads it). Retries, mirroring, rewrites and header mutations are not
/// compiled at all: a route that sets them is refused with a NACK, so no control plane is told
/// they are in force when they are not.
#[derive(Debug, Clone, Default)]
pub struct RoutePolicy {
    /// `route.timeout` with Envoy's default (15 s) applied; `None` when configured as 0, which
    /// Envoy reads as "no timeout".
    pub timeout: Option<Duration>,
}

/// Envoy's upstream timeout when a route sets none.
pub const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);
