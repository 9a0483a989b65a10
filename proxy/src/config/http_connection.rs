//! `envoy.filters.network.http_connection_manager` to what the HTTP layer needs: where routes
//! come from, the HTTP filters, how to log and trace, the downstream limits, and what is done
//! to every request and response head. Every other field is refused or accepted by value, one
//! by one, in [`fields`] (its module documentation is the table of all of them).

mod fields;

pub use fields::{
    Cidr, EscapedSlashes, Forwarding, HeadPolicy, PathNormalization, ServerHeader, StripPort,
    DEFAULT_SERVER_NAME, WEBSOCKET,
};

use std::sync::Arc;
use std::time::Duration;

use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};

use super::access_log::access_logs;
use super::downstream::{downstream_limits, DownstreamLimits};
use super::error::{duration, AtField, FieldError};
use super::http_filters::http_filter_chain;
use super::log_format::LogFormat;
use super::route::route_table;
use super::tracing::{tracing_config, TracingConfig};
use crate::hcm_stats::StatsSlot;
use crate::router::filter_config::HttpFilterChain;
use crate::router::RouteTable;

#[derive(Debug, Clone)]
pub struct HttpConnectionConfig {
    pub route_source: RouteSource,
    /// One format per access logger; empty when the connection manager logs nothing.
    pub access_log: Arc<[LogFormat]>,
    /// The connection manager's `stat_prefix`, else the listener's, else the listener name.
    pub stat_prefix: String,
    /// The stats of `stat_prefix`, resolved by the first connection (see `crate::hcm_stats`).
    pub stats: StatsSlot,
    pub http_filters: Arc<HttpFilterChain>,
    /// `stream_idle_timeout` (Envoy's default 5 minutes); `None` when disabled with 0.
    pub stream_idle_timeout: Option<Duration>,
    /// Header limits, connection timeouts and HTTP/2 settings.
    pub downstream: Arc<DownstreamLimits>,
    /// `tracing`; `None` when it traces nothing.
    pub tracing: Option<Arc<TracingConfig>>,
    /// Path normalization, host port stripping, `x-forwarded-client-cert`, the `server` header
    /// and the request id in responses.
    pub head: HeadPolicy,
    /// `upgrade_configs` enables WebSocket upgrades (a route's own setting wins).
    pub websocket: bool,
}

/// Envoy's default `stream_idle_timeout`.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub enum RouteSource {
    /// `rds.route_config_name`: the table arrives separately over RDS.
    Rds(String),
    Inline(Arc<RouteTable>),
}

/// Compiles one connection manager of a listener whose `traffic_direction`, `stat_prefix` and
/// name are given (tracing and the stat prefix fall back on them).
pub(crate) fn http_connection(
    hcm: &HttpConnectionManager,
    traffic_direction: i32,
    listener_stat_prefix: &str,
    listener_name: &str,
) -> Result<HttpConnectionConfig, FieldError> {
    let head = fields::head_policy(hcm)?;
    let websocket = fields::upgrade_configs(&hcm.upgrade_configs)?;
    let route_source = route_source(hcm)?;
    let access_log = access_logs(&hcm.access_log)?.into();
    let http_filters = Arc::new(http_filter_chain(&hcm.http_filters)?);
    let stream_idle_timeout = match &hcm.stream_idle_timeout {
        None => Some(DEFAULT_STREAM_IDLE_TIMEOUT),
        Some(d) => Some(duration(d).at("stream_idle_timeout")?).filter(|d| !d.is_zero()),
    };
    let downstream = Arc::new(downstream_limits(hcm)?);
    let tracing = tracing_config(hcm.tracing.as_ref(), traffic_direction)
        .at("tracing")?
        .map(Arc::new);
    let stat_prefix = [
        hcm.stat_prefix.as_str(),
        listener_stat_prefix,
        listener_name,
    ]
    .into_iter()
    .find(|p| !p.is_empty())
    .unwrap_or_default()
    .to_string();
    Ok(HttpConnectionConfig {
        route_source,
        access_log,
        stat_prefix,
        stats: StatsSlot::default(),
        http_filters,
        stream_idle_timeout,
        downstream,
        tracing,
        head,
        websocket,
    })
}

fn route_source(hcm: &HttpConnectionManager) -> Result<RouteSource, FieldError> {
    match &hcm.route_specifier {
        Some(RouteSpecifier::Rds(rds)) if rds.route_config_name.is_empty() => Err(FieldError::new(
            "rds.route_config_name",
            "must not be empty",
        )),
        Some(RouteSpecifier::Rds(rds)) => Ok(RouteSource::Rds(rds.route_config_name.clone())),
        Some(RouteSpecifier::RouteConfig(rc)) => Ok(RouteSource::Inline(Arc::new(
            route_table(rc).at("route_config")?,
        ))),
        Some(RouteSpecifier::ScopedRoutes(_)) => Err(FieldError::unsupported("scoped_routes")),
        None => Err(FieldError::new(
            "route_specifier",
            "one of rds or route_config is required",
        )),
    }
}
