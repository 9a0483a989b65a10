//! Protos that several test modules build the same way (what istiod and weftd send), and the
//! one way they read a sample off the Prometheus page.

use prost::Message;
use std::net::SocketAddr;
use xds_protos::pb::envoy::config::cluster::v3::{
    cluster::{ClusterDiscoveryType, DiscoveryType},
    Cluster,
};
use xds_protos::pb::envoy::config::core::v3::{
    address, socket_address::PortSpecifier, Address, Metadata, SocketAddress,
};
use xds_protos::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use xds_protos::pb::envoy::config::route::v3::{
    retry_policy::{retry_host_predicate, RetryHostPredicate},
    RetryPolicy,
};
use xds_protos::pb::google::protobuf::{value::Kind, Any, Struct, UInt32Value, Value};
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

/// The telemetry metadata weftd puts on an endpoint (`istio.workload`): istiod's five fields
/// (workload, namespace, canonical service and revision, cluster), then app and version; the
/// namespace is `bookinfo`, the cluster unset.
pub(crate) fn workload_metadata(workload: &str, app: &str, version: &str) -> Metadata {
    let encoded = format!("{workload};bookinfo;{app};{version};;{app};{version}");
    let field = Value {
        kind: Some(Kind::StringValue(encoded)),
    };
    Metadata {
        filter_metadata: [(
            "istio".to_string(),
            Struct {
                fields: [("workload".to_string(), field)].into(),
            },
        )]
        .into(),
        ..Default::default()
    }
}

/// The value of the one sample of metric `name` on a Prometheus text page whose labels
/// include every one of `labels`; panics, showing the page, unless exactly one does.
pub(crate) fn prometheus_sample(page: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    let hits: Vec<&str> = page
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{'))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .collect();
    assert_eq!(hits.len(), 1, "{name} {labels:?} in\n{page}");
    hits[0]
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value in {}", hits[0]))
}
