//! Endpoint assignments: the endpoints of a service port, filtered by subset labels.

use super::names::outbound_cluster;
use super::MeshSnapshot;
use crate::model::Resolution;
use crate::registry::{subset_matches, Service};
use std::collections::BTreeMap;
use xds_protos::pb::envoy::config::core::v3::{
    address, socket_address::PortSpecifier, Address, SocketAddress,
};
use xds_protos::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use xds_protos::pb::google::protobuf::UInt32Value;

/// Assignments for every EDS cluster (services resolved STATIC).
pub fn load_assignments(mesh: &MeshSnapshot) -> Vec<ClusterLoadAssignment> {
    let mut out = Vec::new();
    for svc in mesh
        .registry
        .services
        .iter()
        .filter(|s| s.resolution == Resolution::Static)
    {
        for port in &svc.ports {
            out.push(assignment(mesh, svc, port.number, ""));
            for subset in mesh.subsets_of(&svc.hostname) {
                out.push(assignment(mesh, svc, port.number, &subset.name));
            }
        }
    }
    out
}

/// The endpoints of a service port, all of them (`subset` empty) or those of one subset.
pub fn assignment(
    mesh: &MeshSnapshot,
    svc: &Service,
    port: u32,
    subset: &str,
) -> ClusterLoadAssignment {
    let name = outbound_cluster(port, subset, &svc.hostname);
    if subset.is_empty() {
        return filtered(svc, port, &name, |_| true);
    }
    let labels = subset_labels(mesh, &svc.hostname, subset);
    filtered(svc, port, &name, |l| subset_matches(&labels, l))
}

fn subset_labels(mesh: &MeshSnapshot, hostname: &str, subset: &str) -> BTreeMap<String, String> {
    mesh.subsets_of(hostname)
        .find(|s| s.name == subset)
        .map(|s| s.labels.clone())
        .unwrap_or_default()
}

fn filtered(
    svc: &Service,
    port: u32,
    name: &str,
    keep: impl Fn(&BTreeMap<String, String>) -> bool,
) -> ClusterLoadAssignment {
    let Some(sp) = svc.ports.iter().find(|p| p.number == port) else {
        return ClusterLoadAssignment {
            cluster_name: name.to_string(),
            ..Default::default()
        };
    };
    let lb_endpoints = svc
        .endpoints
        .iter()
        .filter(|ep| keep(&ep.labels))
        .map(|ep| LbEndpoint {
            host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                address: Some(socket_address(&ep.address, svc.endpoint_port(ep, sp))),
                ..Default::default()
            })),
            load_balancing_weight: Some(UInt32Value {
                value: ep.weight.max(1),
            }),
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints,
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub fn socket_address(host: &str, port: u32) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: host.to_string(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}
