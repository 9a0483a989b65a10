//! `Listener` to what the listener and HTTP layers need: where to bind, where routes come from,
//! and how to log.
//!
//! Only listeners that terminate HTTP are understood: the HTTP connection manager is looked up
//! in the filter chains in order (then the default chain), and the first one wins.

use std::net::SocketAddr;
use std::sync::Arc;

use prost::Message;
use xds_protos::pb::envoy::config::listener::v3::{filter, FilterChain, Listener};
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use xds_protos::type_url;

use super::access_log::access_logs;
use super::downstream::{downstream_limits, DownstreamLimits};
use super::endpoint::{endpoint_address, EndpointAddress};
use super::error::{duration, AtField, FieldError, ValidationError};
use super::http_filters::http_filter_chain;
use super::log_format::LogFormat;
use super::route::route_table;
use super::tracing::{tracing_config, TracingConfig};
use crate::router::filter_config::HttpFilterChain;
use crate::router::RouteTable;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub name: String,
    /// `None` when the listener has no address (it only receives handed-off connections).
    pub address: Option<SocketAddr>,
    pub route_source: RouteSource,
    /// One format per access logger; empty when the listener logs nothing.
    pub access_log: Arc<[LogFormat]>,
    /// The connection manager's `stat_prefix`, else the listener's, else the listener name.
    pub stat_prefix: String,
    pub http_filters: Arc<HttpFilterChain>,
    /// `stream_idle_timeout` (Envoy's default 5 minutes); `None` when disabled with 0.
    pub stream_idle_timeout: Option<Duration>,
    /// Header limits, connection timeouts and HTTP/2 settings from the connection manager.
    pub downstream: DownstreamLimits,
    /// `ignore_global_conn_limit`: this listener accepts past `--max-downstream-connections`.
    pub ignore_global_conn_limit: bool,
    /// The connection manager's `tracing`; `None` when it traces nothing.
    pub tracing: Option<Arc<TracingConfig>>,
}

/// Envoy's default `stream_idle_timeout`.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub enum RouteSource {
    /// `rds.route_config_name`: the table arrives separately over RDS.
    Rds(String),
    Inline(Arc<RouteTable>),
}

pub const HTTP_CONNECTION_MANAGER_NAME: &str = "envoy.filters.network.http_connection_manager";

pub fn compile_listener(l: &Listener) -> Result<ListenerConfig, ValidationError> {
    compile(l).map_err(|e| e.into_error("Listener", &l.name))
}

fn compile(l: &Listener) -> Result<ListenerConfig, FieldError> {
    if l.name.is_empty() {
        return Err(FieldError::new("name", "must not be empty"));
    }
    let address = match &l.address {
        None => None,
        Some(a) => match endpoint_address(a, false).at("address")? {
            EndpointAddress::Socket(s) => Some(s),
            // Unreachable with `allow_hostnames` off; kept as an error rather than a panic.
            EndpointAddress::Dns { .. } => {
                return Err(FieldError::new("address", "must be an IP address"))
            }
        },
    };
    let (field, hcm) = find_http_connection_manager(l)?;
    let route_source = route_source(&hcm).at(&field)?;
    let access_log = access_logs(&hcm.access_log).at(&field)?.into();
    let http_filters = Arc::new(http_filter_chain(&hcm.http_filters).at(&field)?);
    let stream_idle_timeout = match &hcm.stream_idle_timeout {
        None => Some(DEFAULT_STREAM_IDLE_TIMEOUT),
        Some(d) => {
            Some(duration(d).at(&format!("{field}.stream_idle_timeout"))?).filter(|d| !d.is_zero())
        }
    };
    let downstream = downstream_limits(&hcm).at(&field)?;
    let tracing = tracing_config(hcm.tracing.as_ref(), l.traffic_direction)
        .at(&format!("{field}.tracing"))?
        .map(Arc::new);
    let stat_prefix = [
        hcm.stat_prefix.as_str(),
        l.stat_prefix.as_str(),
        l.name.as_str(),
    ]
    .into_iter()
    .find(|p| !p.is_empty())
    .unwrap_or_default()
    .to_string();
    Ok(ListenerConfig {
        name: l.name.clone(),
        address,
        route_source,
        access_log,
        stat_prefix,
        http_filters,
        stream_idle_timeout,
        downstream,
        ignore_global_conn_limit: l.ignore_global_conn_limit,
        tracing,
    })
}

/// The listener's HTTP connection manager, decoded, with the path of its `typed_config`.
///
/// weft-proxy serves a listener with one filter chain (in `filter_chains` or as the default)
/// whose one network filter is the HCM. Anything that would choose between chains or act on
/// the connection first — more chains, a `filter_chain_match`, listener filters,
/// `use_original_dst`, another network filter — is refused by name: serving the HCM and
/// ignoring it would send connections where the listener says they must not go. A filter
/// counts as the HCM when it has the well-known name or carries the HCM type (v3 lets names
/// be anything).
fn find_http_connection_manager(
    l: &Listener,
) -> Result<(String, HttpConnectionManager), FieldError> {
    if let Some(f) = l.listener_filters.first() {
        return Err(FieldError::new(
            "listener_filters[0]",
            format!("listener filter {} is not supported", f.name),
        ));
    }
    if l.use_original_dst.is_some_and(|v| v.value) {
        return Err(FieldError::unsupported("use_original_dst"));
    }
    let mut chains = l
        .filter_chains
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("filter_chains[{i}]"), c))
        .chain(
            l.default_filter_chain
                .iter()
                .map(|c| ("default_filter_chain".to_string(), c)),
        );
    let Some((chain_field, chain)) = chains.next() else {
        return Err(no_hcm("filter_chains"));
    };
    if let Some((extra, _)) = chains.next() {
        return Err(FieldError::new(
            extra,
            "only one filter chain is supported (choosing between chains is not)",
        ));
    }
    if chain.filter_chain_match.is_some() {
        return Err(FieldError::unsupported("filter_chain_match").under(&chain_field));
    }
    match hcm_in_chain(chain).at(&chain_field)? {
        Some((field, hcm)) => Ok((format!("{chain_field}.{field}"), hcm)),
        None => Err(no_hcm(&chain_field)),
    }
}

fn no_hcm(field: &str) -> FieldError {
    FieldError::new(
        field,
        format!("no {HTTP_CONNECTION_MANAGER_NAME} filter (only HTTP listeners are supported)"),
    )
}

/// The chain's HCM; every other network filter in it is refused by name.
fn hcm_in_chain(
    chain: &FilterChain,
) -> Result<Option<(String, HttpConnectionManager)>, FieldError> {
    let mut found = None;
    for (j, f) in chain.filters.iter().enumerate() {
        let field = format!("filters[{j}]");
        let any = match &f.config_type {
            Some(filter::ConfigType::TypedConfig(any)) => Some(any),
            Some(filter::ConfigType::ConfigDiscovery(_)) => {
                return Err(FieldError::unsupported("config_discovery").under(&field))
            }
            None => None,
        };
        let is_hcm = any.is_some_and(|a| a.type_url == type_url::HTTP_CONNECTION_MANAGER);
        if !is_hcm && f.name != HTTP_CONNECTION_MANAGER_NAME {
            return Err(FieldError::new(
                field,
                format!("network filter {} is not supported", f.name),
            ));
        }
        let field = format!("{field}.typed_config");
        let Some(any) = any else {
            return Err(FieldError::new(field, "is required"));
        };
        if !is_hcm {
            return Err(FieldError::new(
                field,
                format!(
                    "expected {}, got {}",
                    type_url::HTTP_CONNECTION_MANAGER,
                    any.type_url
                ),
            ));
        }
        if found.is_some() {
            return Err(FieldError::new(
                field,
                "a second connection manager in one chain",
            ));
        }
        let hcm = HttpConnectionManager::decode(any.value.as_slice())
            .map_err(|e| FieldError::new(field.clone(), format!("cannot decode: {e}")))?;
        found = Some((field, hcm));
    }
    Ok(found)
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
