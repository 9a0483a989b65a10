//! The inbound side of a sidecar: `virtualInbound` on 15006 and one `inbound|PORT||` cluster
//! per port of the workload, to the application on localhost.
//!
//! The workload's ports are those of the registry's endpoints whose address is the pod's IP
//! (ServiceEntry endpoints and WorkloadEntries alike): for each such endpoint, every port of
//! its service, at the endpoint's target port. When two services declare one target port with
//! different protocols, the port is sniffed, which serves both kinds of client.

use super::super::access_log::access_log;
use super::super::clusters::{pb_duration, CONNECT_TIMEOUT};
use super::super::endpoints::socket_address;
use super::super::listeners::hcm_filter;
use super::super::names::{
    inbound_cluster, is_http2, listener_name, PortProtocol, BLACK_HOLE_CLUSTER,
    HTTP_INSPECTOR_FILTER, INBOUND_CAPTURE_PORT, INBOUND_PASSTHROUGH_CLUSTER, ORIGINAL_DST_FILTER,
    OUTBOUND_CAPTURE_PORT, ROUTER_FILTER, TLS_INSPECTOR_FILTER, VIRTUAL_INBOUND,
};
use super::super::tracing::{hcm_tracing_side, Side};
use super::super::MeshSnapshot;
use super::{chains_for, listener_filter, tcp_proxy_filter, uint32};
use std::collections::BTreeMap;
use std::net::IpAddr;
use xds_protos::any::pack;
use xds_protos::node::NodeIdentity;
use xds_protos::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use xds_protos::pb::envoy::config::cluster::v3::Cluster;
use xds_protos::pb::envoy::config::core::v3::{Http2ProtocolOptions, TrafficDirection};
use xds_protos::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use xds_protos::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch, Listener};
use xds_protos::pb::envoy::config::route::v3::{
    route, route_action::ClusterSpecifier, route_match::PathSpecifier, Route, RouteAction,
    RouteConfiguration, RouteMatch, VirtualHost,
};
use xds_protos::pb::envoy::extensions::filters::http::router::v3::Router;
use xds_protos::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use xds_protos::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use xds_protos::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{CodecType, RouteSpecifier},
    http_filter, HttpConnectionManager, HttpFilter,
};
use xds_protos::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    explicit_http_config::ProtocolConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
};
use xds_protos::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use xds_protos::pb::google::protobuf::{BoolValue, Duration as PbDuration};
use xds_protos::type_url::{
    HTTP_INSPECTOR, HTTP_PROTOCOL_OPTIONS, ORIGINAL_DST_LISTENER_FILTER, ROUTER, TLS_INSPECTOR,
};

/// One port the workload serves on, as the inbound side needs it. This list is all the
/// inbound translation reads of the proxy, so sidecars with equal lists share it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InboundPort {
    /// The port the application listens on (the endpoint's target port).
    pub port: u32,
    pub protocol: PortProtocol,
    /// Whether the application speaks HTTP/2 on it (declared HTTP2, GRPC or GRPC-WEB).
    pub http2: bool,
}

/// The ports of the registry's endpoints at `instance_ip`, by port number.
pub fn inbound_ports(mesh: &MeshSnapshot, instance_ip: &str) -> Vec<InboundPort> {
    let mine = |address: &str| match (address.parse::<IpAddr>(), instance_ip.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => address == instance_ip,
    };
    let mut ports: BTreeMap<u32, InboundPort> = BTreeMap::new();
    for svc in &mesh.registry.services {
        for ep in svc.endpoints.iter().filter(|ep| mine(&ep.address)) {
            for sp in &svc.ports {
                let port = svc.endpoint_port(ep, sp);
                // The capture ports are the sidecar's own: a chain for them would loop.
                if port == INBOUND_CAPTURE_PORT || port == OUTBOUND_CAPTURE_PORT {
                    continue;
                }
                let protocol = PortProtocol::of(sp.protocol.as_deref());
                let http2 = is_http2(sp.protocol.as_deref());
                ports
                    .entry(port)
                    .and_modify(|p| {
                        if p.protocol != protocol {
                            p.protocol = PortProtocol::Sniffed;
                        }
                        p.http2 &= http2;
                    })
                    .or_insert(InboundPort {
                        port,
                        protocol,
                        http2,
                    });
            }
        }
    }
    ports.into_values().collect()
}

/// `virtualInbound`: a chain per workload port, matched on the destination port; connections
/// to 15006 itself go nowhere; every other port passes through to the application as
/// addressed.
pub fn listener(mesh: &MeshSnapshot, node: &NodeIdentity, ports: &[InboundPort]) -> Listener {
    let log = || access_log(mesh, node, Side::Server);
    let mut filter_chains = vec![FilterChain {
        name: super::super::names::VIRTUAL_INBOUND_BLACKHOLE_CHAIN.to_string(),
        filter_chain_match: Some(FilterChainMatch {
            destination_port: uint32(INBOUND_CAPTURE_PORT),
            ..Default::default()
        }),
        filters: vec![tcp_proxy_filter(BLACK_HOLE_CLUSTER, log())],
        ..Default::default()
    }];
    for p in ports {
        let cluster = inbound_cluster(p.port);
        filter_chains.extend(chains_for(
            p.protocol,
            &listener_name("0.0.0.0", p.port),
            FilterChainMatch {
                destination_port: uint32(p.port),
                ..Default::default()
            },
            || hcm_filter(&inbound_hcm(mesh, node, p.port)),
            || tcp_proxy_filter(&cluster, log()),
        ));
    }
    Listener {
        name: VIRTUAL_INBOUND.to_string(),
        address: Some(socket_address("0.0.0.0", INBOUND_CAPTURE_PORT)),
        traffic_direction: TrafficDirection::Inbound as i32,
        listener_filters: vec![
            listener_filter(
                ORIGINAL_DST_FILTER,
                pack(ORIGINAL_DST_LISTENER_FILTER, &OriginalDst {}),
            ),
            listener_filter(
                TLS_INSPECTOR_FILTER,
                pack(TLS_INSPECTOR, &TlsInspector::default()),
            ),
            listener_filter(
                HTTP_INSPECTOR_FILTER,
                pack(HTTP_INSPECTOR, &HttpInspector {}),
            ),
        ],
        // Istio's default `protocolDetectionTimeout` (0s): sniffing waits for the client's first
        // bytes, and a server-first protocol goes on as TCP instead of being cut.
        listener_filters_timeout: Some(Default::default()),
        continue_on_listener_filters_timeout: true,
        filter_chains,
        // Istio names the chain of unclaimed inbound traffic after the listener.
        default_filter_chain: Some(FilterChain {
            name: VIRTUAL_INBOUND.to_string(),
            filters: vec![tcp_proxy_filter(INBOUND_PASSTHROUGH_CLUSTER, log())],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The connection manager of an inbound HTTP port: every request to the application, with an
/// inline route configuration as istiod writes it (`inbound|PORT||`, virtual host
/// `inbound|http|PORT`). Its routes have no timeout: the caller's sidecar enforces the
/// route's. It reports the server side's spans.
fn inbound_hcm(mesh: &MeshSnapshot, node: &NodeIdentity, port: u32) -> HttpConnectionManager {
    let cluster = inbound_cluster(port);
    let route = Route {
        name: "default".to_string(),
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix("/".to_string())),
            ..Default::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.clone())),
            timeout: Some(PbDuration::default()),
            ..Default::default()
        })),
        ..Default::default()
    };
    HttpConnectionManager {
        stat_prefix: format!("inbound_{}", listener_name("0.0.0.0", port)),
        upgrade_configs: crate::translate::listeners::websocket_upgrades(),
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::RouteConfig(RouteConfiguration {
            name: cluster,
            virtual_hosts: vec![VirtualHost {
                name: format!("inbound|http|{port}"),
                domains: vec!["*".to_string()],
                routes: vec![route],
                ..Default::default()
            }],
            validate_clusters: Some(BoolValue { value: false }),
            ..Default::default()
        })),
        http_filters: vec![HttpFilter {
            name: ROUTER_FILTER.to_string(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack(
                ROUTER,
                &Router::default(),
            ))),
            ..Default::default()
        }],
        access_log: access_log(mesh, node, Side::Server),
        tracing: hcm_tracing_side(mesh, node, Side::Server),
        ..Default::default()
    }
}

/// `inbound|PORT||` for each port: the application on localhost, spoken to in HTTP/2 where
/// the port declares it.
pub fn clusters(ports: &[InboundPort]) -> Vec<Cluster> {
    ports.iter().map(cluster).collect()
}

fn cluster(p: &InboundPort) -> Cluster {
    let name = inbound_cluster(p.port);
    let mut c = Cluster {
        name: name.clone(),
        connect_timeout: Some(pb_duration(CONNECT_TIMEOUT)),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name,
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                        address: Some(socket_address("127.0.0.1", p.port)),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    if p.http2 {
        let opts = HttpProtocolOptions {
            upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                        Http2ProtocolOptions::default(),
                    )),
                },
            )),
            ..Default::default()
        };
        c.typed_extension_protocol_options.insert(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
            pack(HTTP_PROTOCOL_OPTIONS, &opts),
        );
    }
    c
}
