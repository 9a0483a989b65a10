//! The route configuration of the HTTP proxy listener: one virtual host per service port,
//! with the VirtualService's HTTP routes, or a default route to all endpoints.

use super::clusters::pb_duration;
use super::names::{is_http, outbound_cluster, HTTP_PROXY_ROUTE};
use super::MeshSnapshot;
use crate::model::{
    host_matches, HttpMatchRequest, HttpRouteDestination, Resource, StringMatch, VirtualService,
};
use crate::registry::Service;
use std::collections::HashSet;
use std::time::Duration;
use xds_protos::node::NodeIdentity;
use xds_protos::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, query_parameter_matcher::QueryParameterMatchSpecifier,
    route, route_action::ClusterSpecifier, route_match::PathSpecifier,
    weighted_cluster::ClusterWeight, HeaderMatcher, QueryParameterMatcher, Route, RouteAction,
    RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster,
};
use xds_protos::pb::envoy::r#type::matcher::v3::{
    string_matcher::MatchPattern, RegexMatcher, StringMatcher,
};
use xds_protos::pb::google::protobuf::{BoolValue, UInt32Value};

pub fn http_proxy_routes(mesh: &MeshSnapshot, node: &NodeIdentity) -> RouteConfiguration {
    let mut used_domains = HashSet::new();
    let mut virtual_hosts = Vec::new();
    for svc in &mesh.registry.services {
        for port in svc.ports.iter().filter(|p| is_http(p.protocol.as_deref())) {
            // Envoy rejects a route configuration in which two virtual hosts share a domain:
            // the first service to claim a name keeps it.
            let domains: Vec<String> = domains(svc, port.number, &node.namespace)
                .into_iter()
                .filter(|d| used_domains.insert(d.clone()))
                .collect();
            if domains.is_empty() {
                continue;
            }
            let routes = match virtual_service_for(mesh, &svc.hostname) {
                Some(vs) => vs_routes(mesh, vs, port.number),
                None => vec![default_route(&outbound_cluster(
                    port.number,
                    "",
                    &svc.hostname,
                ))],
            };
            virtual_hosts.push(VirtualHost {
                name: format!("{}:{}", svc.hostname, port.number),
                domains,
                routes,
                ..Default::default()
            });
        }
    }
    RouteConfiguration {
        name: HTTP_PROXY_ROUTE.to_string(),
        virtual_hosts,
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

/// The names a client may use for a service port. Kubernetes-style hosts get their short
/// forms (the bare name only from the service's own namespace). A name without a port means
/// port 80, so port-less forms belong to port 80 only.
pub fn domains(svc: &Service, port: u32, proxy_namespace: &str) -> Vec<String> {
    let host = svc.hostname.as_str();
    let mut names = vec![host.to_string()];
    if let Some(rest) = host.strip_suffix(".svc.cluster.local") {
        if let Some((name, ns)) = rest.split_once('.') {
            if !ns.contains('.') {
                names.push(format!("{name}.{ns}.svc"));
                names.push(format!("{name}.{ns}"));
                if ns == proxy_namespace {
                    names.push(name.to_string());
                }
            }
        }
    }
    let mut out = Vec::with_capacity(names.len() * 2);
    for n in names {
        out.push(format!("{n}:{port}"));
        if port == 80 {
            out.push(n);
        }
    }
    out
}

/// The VirtualService that routes a host: one naming it exactly, else one whose wildcard host
/// covers it. When several qualify, the first by namespace and name wins, so the choice is
/// stable. (Hosts in the config set are already resolved to what the registry uses.)
fn virtual_service_for<'a>(
    mesh: &'a MeshSnapshot,
    hostname: &str,
) -> Option<&'a Resource<VirtualService>> {
    let vss = &mesh.config.virtual_services;
    vss.iter()
        .find(|vs| vs.spec.hosts.iter().any(|h| h == hostname))
        .or_else(|| {
            vss.iter()
                .find(|vs| vs.spec.hosts.iter().any(|h| host_matches(h, hostname)))
        })
}

fn vs_routes(mesh: &MeshSnapshot, vs: &Resource<VirtualService>, port: u32) -> Vec<Route> {
    let mut out = Vec::new();
    for http in &vs.spec.http {
        if http.route.is_empty() {
            continue;
        }
        let action = route_action(mesh, &http.route, port);
        let name = http.name.clone().unwrap_or_default();
        if http.r#match.is_empty() {
            out.push(route(&name, catch_all(), action));
            continue;
        }
        // Match blocks are ORed: each becomes its own route with the same action.
        for m in &http.r#match {
            if m.port.is_some_and(|p| p != port) {
                continue;
            }
            out.push(route(&name, route_match(m), action.clone()));
        }
    }
    out
}

fn route(name: &str, m: RouteMatch, action: RouteAction) -> Route {
    Route {
        name: name.to_string(),
        r#match: Some(m),
        action: Some(route::Action::Route(action)),
        ..Default::default()
    }
}

fn default_route(cluster: &str) -> Route {
    route(
        "default",
        catch_all(),
        cluster_action(ClusterSpecifier::Cluster(cluster.to_string())),
    )
}

fn catch_all() -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix("/".to_string())),
        ..Default::default()
    }
}

fn cluster_action(spec: ClusterSpecifier) -> RouteAction {
    RouteAction {
        cluster_specifier: Some(spec),
        // Istio disables Envoy's 15 s default route timeout unless a VirtualService sets one.
        timeout: Some(pb_duration(Duration::ZERO)),
        ..Default::default()
    }
}

fn route_action(mesh: &MeshSnapshot, dests: &[HttpRouteDestination], port: u32) -> RouteAction {
    let cluster_of = |d: &HttpRouteDestination| {
        let host = d.destination.host.as_str();
        let port = d
            .destination
            .port
            .as_ref()
            .map(|p| p.number)
            .or_else(|| {
                let svc = mesh.registry.service(host)?;
                (svc.ports.len() == 1).then(|| svc.ports[0].number)
            })
            .unwrap_or(port);
        outbound_cluster(port, d.destination.subset.as_deref().unwrap_or(""), host)
    };
    if let [only] = dests {
        return cluster_action(ClusterSpecifier::Cluster(cluster_of(only)));
    }
    let clusters = dests
        .iter()
        .filter(|d| d.weight.unwrap_or(0) > 0)
        .map(|d| ClusterWeight {
            name: cluster_of(d),
            weight: Some(UInt32Value {
                value: d.weight.unwrap_or(0).max(0) as u32,
            }),
            ..Default::default()
        })
        .collect();
    cluster_action(ClusterSpecifier::WeightedClusters(WeightedCluster {
        clusters,
        ..Default::default()
    }))
}

fn route_match(m: &HttpMatchRequest) -> RouteMatch {
    let path_specifier = Some(match &m.uri {
        None => PathSpecifier::Prefix("/".to_string()),
        Some(StringMatch::Exact(p)) => PathSpecifier::Path(p.clone()),
        Some(StringMatch::Prefix(p)) => PathSpecifier::Prefix(p.clone()),
        Some(StringMatch::Regex(r)) => PathSpecifier::SafeRegex(regex(r)),
    });
    let mut headers: Vec<HeaderMatcher> = m
        .headers
        .iter()
        .map(|(name, sm)| header_matcher(&name.to_ascii_lowercase(), sm))
        .collect();
    if let Some(sm) = &m.method {
        headers.push(header_matcher(":method", sm));
    }
    if let Some(sm) = &m.authority {
        headers.push(header_matcher(":authority", sm));
    }
    let query_parameters = m
        .query_params
        .iter()
        .map(|(name, sm)| QueryParameterMatcher {
            name: name.clone(),
            query_parameter_match_specifier: Some(QueryParameterMatchSpecifier::StringMatch(
                string_matcher(sm),
            )),
        })
        .collect();
    RouteMatch {
        path_specifier,
        case_sensitive: m.ignore_uri_case.then_some(BoolValue { value: false }),
        headers,
        query_parameters,
        ..Default::default()
    }
}

fn header_matcher(name: &str, sm: &StringMatch) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(string_matcher(sm))),
        ..Default::default()
    }
}

fn string_matcher(sm: &StringMatch) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(match sm {
            StringMatch::Exact(s) => MatchPattern::Exact(s.clone()),
            StringMatch::Prefix(s) => MatchPattern::Prefix(s.clone()),
            StringMatch::Regex(r) => MatchPattern::SafeRegex(regex(r)),
        }),
        ..Default::default()
    }
}

fn regex(r: &str) -> RegexMatcher {
    RegexMatcher {
        regex: r.to_string(),
        ..Default::default()
    }
}
