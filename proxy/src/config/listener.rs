//! `Listener` to what the listener layer needs: where to bind (or that it does not bind and only
//! receives connections handed off by a `use_original_dst` listener), how a new connection is
//! inspected (the listener filters), and its filter chains — each an HTTP connection manager
//! or a TCP proxy — with the `filter_chain_match` that chooses between them.
//!
//! This is Envoy's listener model as istiod emits it for a sidecar: `virtualOutbound` on 15001
//! hands each redirected connection to the listener for its original destination
//! (`0.0.0.0_9080`, `10.96.0.20_27017`, which have `bind_to_port: false`), and
//! `virtualInbound` on 15006 picks a chain by destination port and sniffed protocol.
//! Everything else that would change where a connection goes, or skip a filter the operator
//! configured, is refused by name.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use xds_protos::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use xds_protos::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use xds_protos::type_url;

use super::connection_limit::{
    connection_limit, ConnectionLimitConfig, CONNECTION_LIMIT_NAME, CONNECTION_LIMIT_TYPE,
};
use super::endpoint::{endpoint_address, EndpointAddress};
use super::error::{duration, refuse_set, AtField, FieldError, ValidationError};
use super::filter_chain_match::{filter_chain_match, ChainMatch};
use super::http_connection::{http_connection, HttpConnectionConfig};
use super::listener_filters::{listener_filters, ListenerFilters};
use super::tcp_proxy::{tcp_proxy, TcpProxyConfig, TCP_PROXY_NAME};

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub name: String,
    /// `None` when the listener has no address.
    pub address: Option<SocketAddr>,
    /// `bind_to_port` (default true). A listener that does not bind only serves connections
    /// a `use_original_dst` listener hands to it.
    pub bind_to_port: bool,
    /// `use_original_dst`: a connection whose original destination is another listener's
    /// address is handed to that listener.
    pub use_original_dst: bool,
    pub listener_filters: ListenerFilters,
    pub chains: FilterChains,
    /// `ignore_global_conn_limit`: this listener accepts past `--max-downstream-connections`.
    pub ignore_global_conn_limit: bool,
    /// `traffic_direction: INBOUND`: what it serves is for this proxy's own workload, so its
    /// metrics report as `reporter="destination"`.
    pub inbound: bool,
}

/// The filter chains, with their matches side by side for [`super::filter_chain_match::select`].
#[derive(Debug, Clone, Default)]
pub struct FilterChains {
    pub matches: Vec<ChainMatch>,
    pub chains: Vec<Arc<FilterChainConfig>>,
    pub default: Option<Arc<FilterChainConfig>>,
}

#[derive(Debug, Clone)]
pub struct FilterChainConfig {
    /// The chain's `name`, or its place in the listener (`filter_chains[2]`).
    pub name: String,
    /// The `connection_limit` filters before the terminal one, in order.
    pub connection_limits: Vec<Arc<ConnectionLimitConfig>>,
    pub action: ChainAction,
}

/// What a connection that lands in a chain gets: the chain's terminal network filter.
#[derive(Debug, Clone)]
pub enum ChainAction {
    Http(Arc<HttpConnectionConfig>),
    Tcp(Arc<TcpProxyConfig>),
}

impl ListenerConfig {
    /// Every connection manager in the listener's chains (to learn which RDS names it needs).
    pub fn http_connection_managers(&self) -> impl Iterator<Item = &Arc<HttpConnectionConfig>> {
        self.chains
            .chains
            .iter()
            .chain(self.chains.default.iter())
            .filter_map(|c| match &c.action {
                ChainAction::Http(h) => Some(h),
                ChainAction::Tcp(_) => None,
            })
    }

    /// The connection manager of a listener with one HTTP chain (tests of HCM settings).
    #[cfg(test)]
    pub(crate) fn only_http(&self) -> &HttpConnectionConfig {
        let mut all = self.http_connection_managers();
        match (all.next(), all.next()) {
            (Some(h), None) => h,
            _ => panic!(
                "listener {} has not exactly one connection manager",
                self.name
            ),
        }
    }

    /// Whether the listener binds its address itself.
    pub fn binds(&self) -> Option<SocketAddr> {
        self.address.filter(|_| self.bind_to_port)
    }

    /// The chain a connection uses, by Envoy's matching order; `None` when no chain matches and
    /// there is no default chain (Envoy closes such a connection).
    pub fn chain_for(
        &self,
        conn: &super::filter_chain_match::Connection<'_>,
    ) -> Option<&Arc<FilterChainConfig>> {
        match super::filter_chain_match::select(&self.chains.matches, conn) {
            Some(i) => self.chains.chains.get(i),
            None => self.chains.default.as_ref(),
        }
    }
}

pub const HTTP_CONNECTION_MANAGER_NAME: &str = "envoy.filters.network.http_connection_manager";

pub fn compile_listener(l: &Listener) -> Result<ListenerConfig, ValidationError> {
    compile(l).map_err(|e| e.into_error("Listener", &l.name))
}

fn compile(l: &Listener) -> Result<ListenerConfig, FieldError> {
    if l.name.is_empty() {
        return Err(FieldError::new("name", "must not be empty"));
    }
    refuse_unsupported(l)?;
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
    let bind_to_port = l.bind_to_port.as_ref().is_none_or(|b| b.value);
    let use_original_dst = l.use_original_dst.as_ref().is_some_and(|b| b.value);
    let inspection_timeout = match &l.listener_filters_timeout {
        None => Some(DEFAULT_LISTENER_FILTERS_TIMEOUT),
        // Envoy reads 0 as "no timeout"; a silent client is then bounded by nothing but the
        // client itself, as in Envoy.
        Some(d) => Some(duration(d).at("listener_filters_timeout")?).filter(|d| !d.is_zero()),
    };
    let listener_filters = listener_filters(
        &l.listener_filters,
        inspection_timeout,
        l.continue_on_listener_filters_timeout,
    )?;
    let chains = filter_chains(l)?;
    if chains.chains.is_empty() && chains.default.is_none() {
        return Err(FieldError::new(
            "filter_chains",
            "no filter chain (and no default_filter_chain)",
        ));
    }
    Ok(ListenerConfig {
        name: l.name.clone(),
        address,
        bind_to_port,
        use_original_dst,
        listener_filters,
        chains,
        ignore_global_conn_limit: l.ignore_global_conn_limit,
        inbound: l.traffic_direction
            == xds_protos::pb::envoy::config::core::v3::TrafficDirection::Inbound as i32,
    })
}

/// Envoy's default `listener_filters_timeout`.
pub const DEFAULT_LISTENER_FILTERS_TIMEOUT: Duration = Duration::from_secs(15);

/// Listener fields that change where connections come from or go, which weft-proxy does not
/// carry out.
fn refuse_unsupported(l: &Listener) -> Result<(), FieldError> {
    let unsupported = [
        ("additional_addresses", !l.additional_addresses.is_empty()),
        ("filter_chain_matcher", l.filter_chain_matcher.is_some()),
        ("fcds_config", l.fcds_config.is_some()),
        (
            "transparent",
            l.transparent.as_ref().is_some_and(|b| b.value),
        ),
        ("udp_listener_config", l.udp_listener_config.is_some()),
        ("api_listener", l.api_listener.is_some()),
        ("access_log", !l.access_log.is_empty()),
    ];
    refuse_set(&unsupported)
}

fn filter_chains(l: &Listener) -> Result<FilterChains, FieldError> {
    let mut out = FilterChains::default();
    for (i, chain) in l.filter_chains.iter().enumerate() {
        let field = format!("filter_chains[{i}]");
        let matcher = match &chain.filter_chain_match {
            None => ChainMatch::default(),
            Some(m) => filter_chain_match(m).at("filter_chain_match").at(&field)?,
        };
        if let Some(j) = out.matches.iter().position(|m| *m == matcher) {
            // Envoy refuses such a listener: the second chain could never be chosen.
            return Err(FieldError::new(
                format!("{field}.filter_chain_match"),
                format!("the same as filter_chains[{j}]'s: one of the two could never be used"),
            ));
        }
        let compiled = filter_chain(chain, l, &field).at(&field)?;
        out.matches.push(matcher);
        out.chains.push(Arc::new(compiled));
    }
    if let Some(chain) = &l.default_filter_chain {
        let field = "default_filter_chain";
        if chain.filter_chain_match.is_some() {
            return Err(FieldError::new(
                format!("{field}.filter_chain_match"),
                "must not be set on the default chain",
            ));
        }
        out.default = Some(Arc::new(filter_chain(chain, l, field).at(field)?));
    }
    Ok(out)
}

fn filter_chain(
    chain: &FilterChain,
    l: &Listener,
    place: &str,
) -> Result<FilterChainConfig, FieldError> {
    if chain.transport_socket.is_some() {
        // TLS termination is not implemented: accepting would serve TLS bytes as plaintext.
        return Err(FieldError::unsupported("transport_socket"));
    }
    #[allow(deprecated)] // Still on the wire from older control planes; acting on it matters.
    let proxy_protocol = chain.use_proxy_proto.as_ref().is_some_and(|b| b.value);
    if proxy_protocol {
        return Err(FieldError::unsupported("use_proxy_proto"));
    }
    let Some((last, rest)) = chain.filters.split_last() else {
        return Err(FieldError::new(
            "filters",
            "no network filter (Envoy would close every connection)",
        ));
    };
    let mut connection_limits = Vec::new();
    for (i, f) in rest.iter().enumerate() {
        if let Some(limit) = leading_filter(f).at_index("filters", i)? {
            connection_limits.push(Arc::new(limit));
        }
    }
    let field = format!("filters[{}]", chain.filters.len() - 1);
    let action = terminal_filter(last, l).at(&field)?;
    let name = if chain.name.is_empty() {
        place.to_string()
    } else {
        chain.name.clone()
    };
    Ok(FilterChainConfig {
        name,
        connection_limits,
        action,
    })
}

/// A network filter before the terminal one. Only `connection_limit` is implemented: any other
/// (RBAC, a rate limit, metadata exchange) would be skipped, so it is refused. `None` when the
/// filter is configured off.
fn leading_filter(f: &Filter) -> Result<Option<ConnectionLimitConfig>, FieldError> {
    let refused = || {
        FieldError::new(
            "",
            format!(
                "network filter {} is not supported (only {CONNECTION_LIMIT_NAME} before a terminal {HTTP_CONNECTION_MANAGER_NAME} or {TCP_PROXY_NAME})",
                f.name
            ),
        )
    };
    match &f.config_type {
        Some(filter::ConfigType::TypedConfig(any)) if any.type_url == CONNECTION_LIMIT_TYPE => {
            connection_limit(any)
        }
        Some(filter::ConfigType::TypedConfig(any)) if f.name == CONNECTION_LIMIT_NAME => {
            Err(FieldError::new(
                "typed_config",
                format!("{} cannot carry {}", f.name, any.type_url),
            ))
        }
        Some(filter::ConfigType::ConfigDiscovery(_)) if f.name == CONNECTION_LIMIT_NAME => {
            Err(FieldError::unsupported("config_discovery"))
        }
        None if f.name == CONNECTION_LIMIT_NAME => {
            Err(FieldError::new("typed_config", "is required"))
        }
        _ => Err(refused()),
    }
}

/// The chain's one network filter: an HTTP connection manager or a TCP proxy, known by its
/// type (v3 lets names be anything) or, without a type, by its well-known name.
fn terminal_filter(f: &Filter, l: &Listener) -> Result<ChainAction, FieldError> {
    let any = match &f.config_type {
        Some(filter::ConfigType::TypedConfig(any)) => any,
        Some(filter::ConfigType::ConfigDiscovery(_)) => {
            return Err(FieldError::unsupported("config_discovery"))
        }
        None if f.name == HTTP_CONNECTION_MANAGER_NAME || f.name == TCP_PROXY_NAME => {
            return Err(FieldError::new("typed_config", "is required"))
        }
        None => {
            return Err(FieldError::new(
                "",
                format!("network filter {} is not supported", f.name),
            ))
        }
    };
    let decode_error =
        |e: prost::DecodeError| FieldError::new("typed_config", format!("cannot decode: {e}"));
    match any.type_url.as_str() {
        type_url::HTTP_CONNECTION_MANAGER => {
            let hcm = HttpConnectionManager::decode(any.value.as_slice()).map_err(decode_error)?;
            let config = http_connection(&hcm, l.traffic_direction, &l.stat_prefix, &l.name)
                .at("typed_config")?;
            Ok(ChainAction::Http(Arc::new(config)))
        }
        type_url::TCP_PROXY => {
            let tcp = TcpProxy::decode(any.value.as_slice()).map_err(decode_error)?;
            Ok(ChainAction::Tcp(Arc::new(
                tcp_proxy(&tcp).at("typed_config")?,
            )))
        }
        other if f.name == HTTP_CONNECTION_MANAGER_NAME || f.name == TCP_PROXY_NAME => Err(
            FieldError::new("typed_config", format!("{} cannot carry {other}", f.name)),
        ),
        _ => Err(FieldError::new(
            "",
            format!("network filter {} is not supported", f.name),
        )),
    }
}
