//! Endpoint assignments: the endpoints of a service port, filtered by subset labels, each
//! with the telemetry metadata istiod gives it.
//!
//! istiod tells a client proxy who an endpoint is in `filter_metadata["istio"]["workload"]`,
//! one string `workload;namespace;canonical-service;canonical-revision;cluster-id`, which
//! Istio's stats filter reads for the `destination_*` labels when it has nothing better. That
//! string carries no `app` and `version` (Istio learns those from the peer by metadata
//! exchange, which Weft does not do), so weftd appends them as two more fields,
//! `...;cluster-id;app;version`: Istio's reader takes the first five fields and ignores the
//! rest, so an Istio proxy reads the same identity as from istiod.
//!
//! It is one field in one namespace on purpose: protobuf maps are encoded in hash order, so a
//! second key would make the encoded endpoint (and its version) differ from one translation
//! to the next and push unchanged endpoints again.

use super::names::outbound_cluster;
use super::MeshSnapshot;
use crate::model::Resolution;
use crate::registry::{subset_matches, Endpoint as RegistryEndpoint, Service};
use std::collections::BTreeMap;
use std::collections::HashMap;
use xds_protos::pb::envoy::config::core::v3::{
    address, socket_address::PortSpecifier, Address, Metadata, SocketAddress,
};
use xds_protos::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use xds_protos::pb::google::protobuf::{value, Struct, UInt32Value, Value};

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
            metadata: Some(telemetry_metadata(ep)),
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

/// The metadata filter namespace of Istio's endpoint telemetry.
pub const ISTIO_METADATA: &str = "istio";

/// The endpoint's identity for the client's telemetry (see the module note).
fn telemetry_metadata(ep: &RegistryEndpoint) -> Metadata {
    let label = |keys: &[&str]| keys.iter().find_map(|k| ep.labels.get(*k)).cloned();
    let canonical_service = label(&[
        "service.istio.io/canonical-name",
        "app.kubernetes.io/name",
        "app",
    ])
    .unwrap_or_else(|| ep.workload_name.clone());
    // istiod's default revision is "latest", which it does not bother sending.
    let canonical_revision = label(&[
        "service.istio.io/canonical-revision",
        "app.kubernetes.io/version",
        "version",
    ])
    .filter(|r| r != "latest")
    .unwrap_or_default();
    let workload = [
        ep.workload_name.as_str(),
        &ep.workload_namespace,
        &canonical_service,
        &canonical_revision,
        // Weft has no cluster id; istiod's last field stays empty.
        "",
        // weftd's two extra fields.
        &label(&["app"]).unwrap_or_default(),
        &label(&["version"]).unwrap_or_default(),
    ]
    .join(";");
    let field = Value {
        kind: Some(value::Kind::StringValue(workload)),
    };
    Metadata {
        filter_metadata: HashMap::from([(
            ISTIO_METADATA.to_string(),
            Struct {
                fields: HashMap::from([("workload".to_string(), field)]),
            },
        )]),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str, labels: &[(&str, &str)]) -> RegistryEndpoint {
        RegistryEndpoint {
            address: "10.0.0.1".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            weight: 1,
            ports: BTreeMap::new(),
            workload_name: name.into(),
            workload_namespace: if name.is_empty() { "" } else { "bookinfo" }.into(),
        }
    }

    fn field(m: &Metadata, namespace: &str, key: &str) -> Option<String> {
        match m
            .filter_metadata
            .get(namespace)?
            .fields
            .get(key)?
            .kind
            .as_ref()?
        {
            value::Kind::StringValue(s) => Some(s.clone()),
            other => panic!("{namespace}.{key} is {other:?}"),
        }
    }

    #[test]
    fn the_workload_string_is_istiods_with_app_and_version_appended() {
        let m = telemetry_metadata(&endpoint(
            "reviews-v2",
            &[("app", "reviews"), ("version", "v2")],
        ));
        assert_eq!(m.filter_metadata.len(), 1);
        assert_eq!(m.filter_metadata[ISTIO_METADATA].fields.len(), 1);
        assert_eq!(
            field(&m, ISTIO_METADATA, "workload").as_deref(),
            Some("reviews-v2;bookinfo;reviews;v2;;reviews;v2")
        );
    }

    #[test]
    fn canonical_labels_win_and_defaults_follow_istiod() {
        let m = telemetry_metadata(&endpoint(
            "details-vm",
            &[
                ("app", "details"),
                ("service.istio.io/canonical-name", "details-svc"),
                ("app.kubernetes.io/version", "1.2"),
            ],
        ));
        assert_eq!(
            field(&m, ISTIO_METADATA, "workload").as_deref(),
            Some("details-vm;bookinfo;details-svc;1.2;;details;")
        );
        // No labels: the workload names the canonical service and "latest" is not sent.
        let m = telemetry_metadata(&endpoint("batch", &[]));
        assert_eq!(
            field(&m, ISTIO_METADATA, "workload").as_deref(),
            Some("batch;bookinfo;batch;;;;")
        );
        let m = telemetry_metadata(&endpoint("", &[("version", "latest")]));
        assert_eq!(
            field(&m, ISTIO_METADATA, "workload").as_deref(),
            Some(";;;;;;latest")
        );
    }
}
