//! Istio's clusters for traffic no service claims: `PassthroughCluster` (to the address the
//! application dialled), `BlackHoleCluster` (nowhere), and `InboundPassthroughClusterIpv4`
//! (inbound traffic to a port the workload does not declare, to the application as addressed).

use super::super::clusters::pb_duration;
use super::super::clusters::CONNECT_TIMEOUT;
use super::super::endpoints::socket_address;
use super::super::names::{BLACK_HOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER};
use xds_protos::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use xds_protos::pb::envoy::config::cluster::v3::Cluster;
use xds_protos::pb::envoy::config::core::v3::{address, BindConfig};

/// The address inbound passthrough connections come from. iptables sends the application's
/// own outbound traffic through the sidecar except from this address, so a connection the
/// sidecar makes to the pod's IP on the application's behalf is not captured again (Istio's
/// choice, kept so Weft's rules and Istio's agree).
pub const INBOUND_PASSTHROUGH_SOURCE: &str = "127.0.0.6";

pub fn clusters() -> Vec<Cluster> {
    vec![
        original_dst(PASSTHROUGH_CLUSTER, None),
        Cluster {
            name: BLACK_HOLE_CLUSTER.to_string(),
            connect_timeout: Some(pb_duration(CONNECT_TIMEOUT)),
            // STATIC with no endpoints: every connection to it fails at once.
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
            ..Default::default()
        },
        original_dst(
            INBOUND_PASSTHROUGH_CLUSTER,
            Some(INBOUND_PASSTHROUGH_SOURCE),
        ),
    ]
}

/// A cluster that connects to each connection's original destination.
fn original_dst(name: &str, source: Option<&str>) -> Cluster {
    let upstream_bind_config = source.and_then(|ip| match socket_address(ip, 0).address {
        Some(address::Address::SocketAddress(sa)) => Some(BindConfig {
            source_address: Some(sa),
            ..Default::default()
        }),
        _ => None,
    });
    Cluster {
        name: name.to_string(),
        connect_timeout: Some(pb_duration(CONNECT_TIMEOUT)),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(
            DiscoveryType::OriginalDst as i32,
        )),
        lb_policy: LbPolicy::ClusterProvided as i32,
        upstream_bind_config,
        ..Default::default()
    }
}
