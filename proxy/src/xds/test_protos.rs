//! Protos the xDS tests build: a listener (optionally bound) routing everything to one
//! cluster, static clusters, RDS route configurations and endpoint assignments.

use std::net::SocketAddr;
use xds_protos::pb::envoy::config::cluster::v3::{
    cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig},
    Cluster,
};
use xds_protos::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use xds_protos::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use xds_protos::pb::envoy::config::route::v3::{
    route, route_action, route_match::PathSpecifier, Route, RouteAction, RouteConfiguration,
    RouteMatch, VirtualHost,
};
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use xds_protos::pb::google::protobuf::Any;
use xds_protos::type_url;

/// Bytes no listener decodes from: a field 1 (`name`, a string) whose length runs past the end.
pub fn undecodable(type_url: &str) -> Any {
    Any {
        type_url: type_url.into(),
        value: vec![0x0a, 0x7f, b'x'],
    }
}

pub fn route_config(name: &str, cluster: &str) -> RouteConfiguration {
    RouteConfiguration {
        name: name.into(),
        virtual_hosts: vec![VirtualHost {
            name: "all".into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                        cluster.into(),
                    )),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn listener_with(name: &str, addr: Option<SocketAddr>, routes: RouteSpecifier) -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: name.into(),
        route_specifier: Some(routes),
        ..Default::default()
    };
    Listener {
        name: name.into(),
        address: addr.map(socket),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(any(
                    type_url::HTTP_CONNECTION_MANAGER,
                    &hcm,
                ))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A listener whose inline routes send every request to `cluster`.
pub fn listener(name: &str, addr: Option<SocketAddr>, cluster: &str) -> Listener {
    listener_with(
        name,
        addr,
        RouteSpecifier::RouteConfig(route_config(name, cluster)),
    )
}

/// A listener whose routes come over RDS under `route_name`.
pub fn rds_listener(name: &str, route_name: &str) -> Listener {
    use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::Rds;
    listener_with(
        name,
        None,
        RouteSpecifier::Rds(Rds {
            route_config_name: route_name.into(),
            ..Default::default()
        }),
    )
}

use crate::test_fixtures::load_assignment;
pub(crate) use crate::test_fixtures::{any, socket, static_cluster};

pub fn eds_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig::default()),
        ..Default::default()
    }
}

pub fn endpoints(name: &str, hosts: &[SocketAddr]) -> ClusterLoadAssignment {
    load_assignment(name, hosts)
}
