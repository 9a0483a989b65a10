//! The route configuration of the HTTP proxy listener: one virtual host per service port,
//! with the VirtualService's HTTP routes, or a default route to all endpoints.

use super::clusters::pb_duration;
use super::names::{is_http, outbound_cluster, HTTP_PROXY_ROUTE};
use super::MeshSnapshot;
use crate::model::{
    host_matches, HttpDirectResponse, HttpMatchRequest, HttpRedirect, HttpRoute,
    HttpRouteDestination, Resource, StringMatch, VirtualService,
};
use crate::registry::Service;
use std::collections::HashSet;
use std::time::Duration;
use xds_protos::node::NodeIdentity;
use xds_protos::pb::envoy::config::core::v3::{data_source, DataSource};
use xds_protos::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, query_parameter_matcher::QueryParameterMatchSpecifier,
    redirect_action, route, route_action::ClusterSpecifier, route_match::PathSpecifier,
    weighted_cluster::ClusterWeight, DirectResponseAction, HeaderMatcher, QueryParameterMatcher,
    RedirectAction, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
    WeightedCluster,
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
                Some(vs) => vs_routes(mesh, vs, port.number, node),
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
    // A VirtualService bound to gateways only does not apply to sidecars.
    let vss: Vec<&Resource<VirtualService>> = mesh
        .config
        .virtual_services
        .iter()
        .filter(|vs| {
            vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == MESH_GATEWAY)
        })
        .collect();
    let exact = vss
        .iter()
        .find(|vs| vs.spec.hosts.iter().any(|h| h == hostname));
    exact
        .or_else(|| {
            vss.iter()
                .find(|vs| vs.spec.hosts.iter().any(|h| host_matches(h, hostname)))
        })
        .copied()
}

/// The reserved gateway name for "all sidecars".
const MESH_GATEWAY: &str = "mesh";

fn vs_routes(
    mesh: &MeshSnapshot,
    vs: &Resource<VirtualService>,
    port: u32,
    node: &NodeIdentity,
) -> Vec<Route> {
    let mut out = Vec::new();
    for http in &vs.spec.http {
        let Some(action) = http_action(mesh, http, port) else {
            continue;
        };
        let name = http.name.clone().unwrap_or_default();
        if http.r#match.is_empty() {
            out.push(route(&name, catch_all(), action));
            continue;
        }
        // Match blocks are ORed: each becomes its own route with the same action. Conditions
        // on the client (its labels, namespace, or being a gateway) are decided here, for this
        // proxy, as Istio does for sidecars.
        for m in http.r#match.iter().filter(|m| applies_to(m, port, node)) {
            out.push(route(&name, route_match(m), action.clone()));
        }
    }
    out
}

/// Whether a match block can match traffic from this sidecar on this port.
fn applies_to(m: &HttpMatchRequest, port: u32, node: &NodeIdentity) -> bool {
    m.port.is_none_or(|p| p == port)
        && (m.gateways.is_empty() || m.gateways.iter().any(|g| g == MESH_GATEWAY))
        && m.source_namespace
            .as_ref()
            .is_none_or(|ns| *ns == node.namespace)
        && m.source_labels
            .iter()
            .all(|(k, v)| node.labels.get(k) == Some(v))
}

/// What an HTTP route does: forward, redirect or answer. `None` for what weft does not
/// translate yet (delegation), which `weftctl analyze` reports as not acted on.
fn http_action(mesh: &MeshSnapshot, http: &HttpRoute, port: u32) -> Option<route::Action> {
    if let Some(r) = &http.redirect {
        return Some(route::Action::Redirect(redirect(r)));
    }
    if let Some(d) = &http.direct_response {
        return Some(route::Action::DirectResponse(direct_response(d)));
    }
    (!http.route.is_empty()).then(|| route::Action::Route(route_action(mesh, &http.route, port)))
}

fn redirect(r: &HttpRedirect) -> RedirectAction {
    use redirect_action::{
        PathRewriteSpecifier, RedirectResponseCode as Code, SchemeRewriteSpecifier,
    };
    let response_code = match r.redirect_code.unwrap_or(301) {
        302 => Code::Found,
        303 => Code::SeeOther,
        307 => Code::TemporaryRedirect,
        308 => Code::PermanentRedirect,
        _ => Code::MovedPermanently,
    };
    RedirectAction {
        host_redirect: r.authority.clone().unwrap_or_default(),
        port_redirect: r.port.unwrap_or(0),
        response_code: response_code as i32,
        scheme_rewrite_specifier: r.scheme.clone().map(SchemeRewriteSpecifier::SchemeRedirect),
        path_rewrite_specifier: r.uri.clone().map(PathRewriteSpecifier::PathRedirect),
        ..Default::default()
    }
}

fn direct_response(d: &HttpDirectResponse) -> DirectResponseAction {
    let body = d.body.as_ref().and_then(|b| match (&b.string, &b.bytes) {
        (Some(s), _) => Some(data_source::Specifier::InlineString(s.clone())),
        (None, Some(b64)) => Some(data_source::Specifier::InlineBytes(decode_base64(b64))),
        (None, None) => None,
    });
    DirectResponseAction {
        status: d.status,
        body: body.map(|specifier| DataSource {
            specifier: Some(specifier),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Standard base64 (the model has already checked it is valid).
fn decode_base64(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn route(name: &str, m: RouteMatch, action: route::Action) -> Route {
    Route {
        name: name.to_string(),
        r#match: Some(m),
        action: Some(action),
        ..Default::default()
    }
}

fn default_route(cluster: &str) -> Route {
    route(
        "default",
        catch_all(),
        route::Action::Route(cluster_action(ClusterSpecifier::Cluster(
            cluster.to_string(),
        ))),
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
    if let Some(sm) = &m.scheme {
        headers.push(header_matcher(":scheme", sm));
    }
    // withoutHeaders: the header is absent, or does not match.
    headers.extend(m.without_headers.iter().map(|(name, sm)| HeaderMatcher {
        invert_match: true,
        treat_missing_header_as_empty: true,
        ..header_matcher(&name.to_ascii_lowercase(), sm)
    }));
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
