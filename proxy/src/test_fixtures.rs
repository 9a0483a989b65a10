//! Protos that several test modules build the same way: what istiod sends.

use prost::Message;
use std::net::SocketAddr;
use xds_protos::pb::envoy::config::cluster::v3::{
    cluster::{ClusterDiscoveryType, DiscoveryType},
    Cluster,
};
use xds_protos::pb::envoy::config::core::v3::{
    address, socket_address::PortSpecifier, Address, SocketAddress,
};
use xds_protos::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use xds_protos::pb::envoy::config::route::v3::{
    retry_policy::{retry_host_predicate, RetryHostPredicate},
    RetryPolicy,
};
use xds_protos::pb::google::protobuf::{Any, UInt32Value};
use xds_protos::type_url;

pub(crate) fn any<M: Message>(type_url: &str, m: &M) -> Any {
    Any {
        type_url: type_url.into(),
        value: m.encode_to_vec(),
    }
}

pub(crate) fn socket(addr: SocketAddr) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: addr.ip().to_string(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(addr.port()))),
            ..Default::default()
        })),
    }
}

/// The hosts of one cluster, as an EDS answer or a static cluster's inline assignment.
pub(crate) fn load_assignment(name: &str, hosts: &[SocketAddr]) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: hosts
                .iter()
                .map(|h| LbEndpoint {
                    host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                        address: Some(socket(*h)),
                        ..Default::default()
                    })),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A static cluster of the given hosts.
pub(crate) fn static_cluster(name: &str, hosts: &[SocketAddr]) -> Cluster {
    Cluster {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: Some(load_assignment(name, hosts)),
        ..Default::default()
    }
}

/// What istiod sends for a route whose VirtualService sets no retries.
pub(crate) fn istio_default_retry() -> RetryPolicy {
    RetryPolicy {
        retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
            .into(),
        num_retries: Some(UInt32Value { value: 2 }),
        retry_host_predicate: vec![RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".into(),
            config_type: Some(retry_host_predicate::ConfigType::TypedConfig(Any {
                type_url: type_url::PREVIOUS_HOSTS_PREDICATE.into(),
                value: vec![],
            })),
        }],
        host_selection_retry_max_attempts: 5,
        retriable_status_codes: vec![503],
        ..Default::default()
    }
}
