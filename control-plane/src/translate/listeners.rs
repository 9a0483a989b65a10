//! Listeners: the outbound HTTP proxy listener (`virtualOutbound`) where the local application
//! sends its calls.

use super::clusters::ads_config_source;
use super::endpoints::socket_address;
use super::names::{
    CORS_FILTER, FAULT_FILTER, HTTP_CONNECTION_MANAGER_FILTER, HTTP_PROXY_ROUTE, ROUTER_FILTER,
    VIRTUAL_OUTBOUND,
};
use super::tracing::Side;
use super::MeshSnapshot;
use xds_protos::any::pack;
use xds_protos::node::NodeIdentity;
use xds_protos::pb::envoy::config::core::v3::{CidrRange, TrafficDirection};
use xds_protos::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use xds_protos::pb::envoy::extensions::filters::http::cors::v3::Cors;
use xds_protos::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use xds_protos::pb::envoy::extensions::filters::http::router::v3::Router;
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{CodecType, InternalAddressConfig, RouteSpecifier, UpgradeConfig},
    http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use xds_protos::pb::google::protobuf::{BoolValue, UInt32Value};
use xds_protos::type_url::{CORS, HTTP_CONNECTION_MANAGER, HTTP_FAULT, ROUTER};

/// The addresses local mode's HTTP proxy listener treats as internal: loopback and RFC 1918.
pub const LOCAL_INTERNAL_RANGES: [(&str, u32); 5] = [
    ("127.0.0.0", 8),
    ("::1", 128),
    ("10.0.0.0", 8),
    ("172.16.0.0", 12),
    ("192.168.0.0", 16),
];

pub fn listeners(mesh: &MeshSnapshot, node: &NodeIdentity) -> Vec<Listener> {
    let Some((host, port)) = node
        .outbound_addr
        .as_deref()
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u32>().ok()?)))
    else {
        return Vec::new();
    };
    vec![outbound_listener(mesh, node, host, port)]
}

fn outbound_listener(mesh: &MeshSnapshot, node: &NodeIdentity, host: &str, port: u32) -> Listener {
    let mut hcm = outbound_hcm(
        mesh,
        node,
        format!("outbound_{host}_{port}"),
        HTTP_PROXY_ROUTE,
    );
    // The application calls through this listener as through a front proxy: the proxy is the
    // edge (it appends its peer to `x-forwarded-for`), and callers on loopback or private
    // addresses are internal, so their `x-envoy-*` controls (forced traces, timeouts) are
    // honoured. A caller's `x-request-id` is kept even when it is external (another local
    // proxy in a chain is: it forwarded the request), so one id follows a request through
    // every hop. A sidecar's listeners keep istiod's `use_remote_address: false`.
    hcm.use_remote_address = Some(BoolValue { value: true });
    hcm.preserve_external_request_id = true;
    hcm.internal_address_config = Some(InternalAddressConfig {
        cidr_ranges: LOCAL_INTERNAL_RANGES
            .iter()
            .map(|(prefix, len)| CidrRange {
                address_prefix: (*prefix).to_string(),
                prefix_len: Some(UInt32Value { value: *len }),
            })
            .collect(),
        ..Default::default()
    });
    Listener {
        name: VIRTUAL_OUTBOUND.to_string(),
        traffic_direction: TrafficDirection::Outbound as i32,
        address: Some(socket_address(host, port)),
        filter_chains: vec![FilterChain {
            filters: vec![hcm_filter(&hcm)],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The connection manager of an outbound HTTP listener: routes from RDS (`route_config_name`),
/// the outbound HTTP filters, the proxy's client-side tracing and the access log. Local mode's
/// HTTP proxy listener and a sidecar's per-port listeners share it.
pub(super) fn outbound_hcm(
    mesh: &MeshSnapshot,
    node: &NodeIdentity,
    stat_prefix: String,
    route_config_name: &str,
) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix,
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: route_config_name.to_string(),
        })),
        http_filters: http_filters(),
        tracing: super::tracing::hcm_tracing(mesh, node),
        access_log: super::access_log::access_log(mesh, node, Side::Client),
        upgrade_configs: websocket_upgrades(),
        ..Default::default()
    }
}

/// As istiod: WebSocket upgrades are allowed on every HTTP connection manager, outbound and
/// inbound.
pub(super) fn websocket_upgrades() -> Vec<UpgradeConfig> {
    vec![UpgradeConfig {
        upgrade_type: "websocket".to_string(),
        ..Default::default()
    }]
}

/// The network filter that runs `hcm`.
pub(super) fn hcm_filter(hcm: &HttpConnectionManager) -> Filter {
    Filter {
        name: HTTP_CONNECTION_MANAGER_FILTER.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack(
            HTTP_CONNECTION_MANAGER,
            hcm,
        ))),
    }
}

/// The HTTP filters of the outbound listener, in istiod's order for a sidecar (restricted to
/// those weft uses): fault injection, then CORS, then the router. Fault and CORS are configured
/// empty here and act only on routes whose `typed_per_filter_config` configures them.
pub(super) fn http_filters() -> Vec<HttpFilter> {
    let filter = |name: &str, config| HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    };
    vec![
        filter(FAULT_FILTER, pack(HTTP_FAULT, &HttpFault::default())),
        filter(CORS_FILTER, pack(CORS, &Cors::default())),
        filter(ROUTER_FILTER, pack(ROUTER, &Router::default())),
    ]
}
