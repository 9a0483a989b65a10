//! A sidecar's route configurations: one per port that some service serves HTTP on (declared
//! or sniffed), named by the port (`9080`), as istiod names them.
//!
//! Each service of that port gets a virtual host with the VirtualService's routes, the same as
//! in local mode's `http_proxy`. Its domains are istiod's for a port-specific configuration:
//! every name a client may write, with and without the port (the listener already fixed the
//! port), and the service's virtual IPs. The last virtual host catches every other host:
//! `allow_any` to `PassthroughCluster` under ALLOW_ANY, `block_all` answering 502 under
//! REGISTRY_ONLY.

use super::super::names::PASSTHROUGH_CLUSTER;
use super::super::routes::{claim, host_names, service_virtual_host};
use super::super::MeshSnapshot;
use super::cidr_range;
use super::outbound::services_by_port;
use crate::model::OutboundTrafficPolicy;
use crate::registry::Service;
use std::collections::HashSet;
use xds_protos::node::NodeIdentity;
use xds_protos::pb::envoy::config::route::v3::{
    route, route_action::ClusterSpecifier, route_match::PathSpecifier, DirectResponseAction, Route,
    RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use xds_protos::pb::google::protobuf::{BoolValue, Duration as PbDuration};

pub const ALLOW_ANY_VHOST: &str = "allow_any";
pub const BLOCK_ALL_VHOST: &str = "block_all";

pub fn route_configs(mesh: &MeshSnapshot, node: &NodeIdentity) -> Vec<RouteConfiguration> {
    let mut out = Vec::new();
    for (port, services) in services_by_port(mesh) {
        let http: Vec<&Service> = services
            .iter()
            .filter(|(_, p)| p.carries_http())
            .map(|(s, _)| *s)
            .collect();
        if http.is_empty() {
            continue;
        }
        let mut used = HashSet::new();
        let mut virtual_hosts = Vec::new();
        for svc in http {
            let domains = claim(&mut used, domains(svc, port, &node.namespace));
            if !domains.is_empty() {
                virtual_hosts.push(service_virtual_host(mesh, node, svc, port, domains));
            }
        }
        virtual_hosts.push(unclaimed_host(mesh));
        out.push(RouteConfiguration {
            name: port.to_string(),
            virtual_hosts,
            validate_clusters: Some(BoolValue { value: false }),
            ..Default::default()
        });
    }
    out
}

/// Every name of the service (short forms from the proxy's namespace) and its virtual IPs,
/// each alone and with `:port`.
pub fn domains(svc: &Service, port: u32, proxy_namespace: &str) -> Vec<String> {
    let vips = svc
        .addresses
        .iter()
        .filter(|a| cidr_range(a).is_some() && !a.contains('/'))
        .cloned();
    let mut out = Vec::new();
    for name in host_names(svc, proxy_namespace).into_iter().chain(vips) {
        out.push(format!("{name}:{port}"));
        out.push(name);
    }
    out
}

fn unclaimed_host(mesh: &MeshSnapshot) -> VirtualHost {
    let catch_all = || {
        Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix("/".to_string())),
            ..Default::default()
        })
    };
    let (name, action) = match mesh.options.mesh_config.outbound_traffic_policy {
        OutboundTrafficPolicy::AllowAny => (
            ALLOW_ANY_VHOST,
            route::Action::Route(RouteAction {
                cluster_specifier: Some(ClusterSpecifier::Cluster(PASSTHROUGH_CLUSTER.to_string())),
                // As istiod: the destination is unknown, so no timeout is imposed on it.
                timeout: Some(PbDuration::default()),
                ..Default::default()
            }),
        ),
        OutboundTrafficPolicy::RegistryOnly => (
            BLOCK_ALL_VHOST,
            route::Action::DirectResponse(DirectResponseAction {
                status: 502,
                ..Default::default()
            }),
        ),
    };
    VirtualHost {
        name: name.to_string(),
        domains: vec!["*".to_string()],
        routes: vec![Route {
            name: name.to_string(),
            r#match: catch_all(),
            action: Some(action),
            ..Default::default()
        }],
        include_request_attempt_count: true,
        ..Default::default()
    }
}
