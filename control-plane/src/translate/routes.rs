//! The route configuration of the HTTP proxy listener: one virtual host per service port,
//! with the VirtualService's HTTP routes, or a default route to all endpoints.
//!
//! What a route does is split by concern: matching in `route_match`, forwarding in
//! `route_action`, per-route policies (retries, fault, CORS, headers) in `route_policy`.

use super::names::{is_http, CORS_FILTER, FAULT_FILTER, HTTP_PROXY_ROUTE};
use super::route_action::{apply_forwarding, default_action};
use super::route_match::route_match;
use super::route_policy::{cors_policy, fault, header_mutations};
use super::MeshSnapshot;
use crate::model::{
    host_matches, HttpDirectResponse, HttpMatchRequest, HttpRedirect, HttpRoute, Resource,
    VirtualService,
};
use crate::registry::Service;
use std::collections::HashSet;
use xds_protos::any::pack;
use xds_protos::node::NodeIdentity;
use xds_protos::pb::envoy::config::core::v3::{data_source, DataSource};
use xds_protos::pb::envoy::config::route::v3::{
    redirect_action, route, route_match::PathSpecifier, DirectResponseAction, RedirectAction,
    RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use xds_protos::pb::google::protobuf::BoolValue;
use xds_protos::type_url::{CORS_POLICY, HTTP_FAULT};

pub fn http_proxy_routes(mesh: &MeshSnapshot, node: &NodeIdentity) -> RouteConfiguration {
    let mut used_domains = HashSet::new();
    let mut virtual_hosts = Vec::new();
    for svc in &mesh.registry.services {
        for port in svc.ports.iter().filter(|p| is_http(p.protocol.as_deref())) {
            let domains = claim(
                &mut used_domains,
                domains(svc, port.number, &node.namespace),
            );
            if !domains.is_empty() {
                virtual_hosts.push(service_virtual_host(mesh, node, svc, port.number, domains));
            }
        }
    }
    RouteConfiguration {
        name: HTTP_PROXY_ROUTE.to_string(),
        virtual_hosts,
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

/// The domains not yet claimed by an earlier virtual host. Envoy rejects a route configuration
/// in which two virtual hosts share a domain: the first service to claim a name keeps it.
pub(super) fn claim(used: &mut HashSet<String>, domains: Vec<String>) -> Vec<String> {
    domains
        .into_iter()
        .filter(|d| used.insert(d.clone()))
        .collect()
}

/// The virtual host of one service port: the VirtualService's HTTP routes for it, or a default
/// route to all its endpoints. Local mode's `http_proxy` and a sidecar's per-port route
/// configurations are made of these.
pub(super) fn service_virtual_host(
    mesh: &MeshSnapshot,
    node: &NodeIdentity,
    svc: &Service,
    port: u32,
    domains: Vec<String>,
) -> VirtualHost {
    let vs = virtual_service_for(mesh, &svc.hostname);
    let mut routes = match vs {
        Some(vs) => vs_routes(mesh, vs, port, node),
        None => vec![default_route(mesh, &svc.hostname, port)],
    };
    let vs_name = vs.map_or(svc.hostname.as_str(), |vs| vs.meta.name.as_str());
    super::tracing::decorate(&mut routes, vs_name, port);
    let retry_policy = hoist_shared_retry_policy(&mut routes);
    VirtualHost {
        name: format!("{}:{}", svc.hostname, port),
        domains,
        routes,
        retry_policy,
        // As istiod: every try carries `x-envoy-attempt-count`, so an upstream can tell
        // a retry from a first request.
        include_request_attempt_count: true,
        ..Default::default()
    }
}

/// When every forwarding route of a virtual host has the same retry policy, it is moved to the
/// virtual host, which routes without their own policy inherit (Envoy's rule, and
/// weft-proxy's): the same behaviour in fewer bytes. istiod repeats the policy on every
/// route, where it is nearly half of a typical virtual host's encoding, and a sidecar's route
/// configuration holds a virtual host per service of the port, all resent to every proxy
/// whenever one of them changes. A vhost whose routes differ (one without retries, say)
/// keeps them per route: a route without a policy must not inherit one.
fn hoist_shared_retry_policy(routes: &mut [Route]) -> Option<RetryPolicy> {
    fn forwarding(r: &mut Route) -> Option<&mut RouteAction> {
        match &mut r.action {
            Some(route::Action::Route(a)) => Some(a),
            _ => None,
        }
    }
    let mut actions = routes.iter_mut().filter_map(forwarding).peekable();
    let shared = actions.peek()?.retry_policy.clone()?;
    let actions: Vec<&mut RouteAction> = actions.collect();
    if actions
        .iter()
        .any(|a| a.retry_policy.as_ref() != Some(&shared))
    {
        return None;
    }
    for a in actions {
        a.retry_policy = None;
    }
    Some(shared)
}

/// The names a client may use for a service port. Kubernetes-style hosts get their short
/// forms (the bare name only from the service's own namespace). A name without a port means
/// port 80, so port-less forms belong to port 80 only.
pub fn domains(svc: &Service, port: u32, proxy_namespace: &str) -> Vec<String> {
    let mut out = Vec::new();
    for n in host_names(svc, proxy_namespace) {
        out.push(format!("{n}:{port}"));
        if port == 80 {
            out.push(n);
        }
    }
    out
}

/// The service's host name and, for a Kubernetes-style host, its short forms as a client in
/// `proxy_namespace` may write them: `name.ns.svc`, `name.ns`, and `name` from the same
/// namespace only.
pub fn host_names(svc: &Service, proxy_namespace: &str) -> Vec<String> {
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
    names
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
        .map(|vs| &**vs)
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
        let Some(template) = http_route(mesh, http, port) else {
            continue;
        };
        if http.r#match.is_empty() {
            out.push(Route {
                r#match: Some(catch_all()),
                ..template
            });
            continue;
        }
        // Match blocks are ORed: each becomes its own route with the same action. Conditions
        // on the client (its labels, namespace, or being a gateway) are decided here, for this
        // proxy, as Istio does for sidecars.
        for m in http.r#match.iter().filter(|m| applies_to(m, port, node)) {
            out.push(Route {
                r#match: Some(route_match(m)),
                ..template.clone()
            });
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

/// An HTTP route without its match: what it does (forward, redirect or answer) and the
/// policies around that (header mutations, fault injection, CORS). `None` for what weft
/// does not translate yet (delegation), which `weftctl analyze` reports as not acted on.
fn http_route(mesh: &MeshSnapshot, http: &HttpRoute, port: u32) -> Option<Route> {
    let mut out = Route {
        name: http.name.clone().unwrap_or_default(),
        ..Default::default()
    };
    let mut authority = None;
    if let Some(h) = &http.headers {
        let m = header_mutations(h);
        out.request_headers_to_add = m.request_headers_to_add;
        out.request_headers_to_remove = m.request_headers_to_remove;
        out.response_headers_to_add = m.response_headers_to_add;
        out.response_headers_to_remove = m.response_headers_to_remove;
        authority = m.authority;
    }
    out.action = Some(if let Some(r) = &http.redirect {
        route::Action::Redirect(redirect(r))
    } else if let Some(d) = &http.direct_response {
        route::Action::DirectResponse(direct_response(d))
    } else if !http.route.is_empty() {
        let action = apply_forwarding(&mut out, mesh, http, port, authority);
        route::Action::Route(action)
    } else {
        return None;
    });
    if let Some(f) = http.fault.as_ref().and_then(fault) {
        out.typed_per_filter_config
            .insert(FAULT_FILTER.to_string(), pack(HTTP_FAULT, &f));
    }
    if let Some(c) = &http.cors_policy {
        out.typed_per_filter_config
            .insert(CORS_FILTER.to_string(), pack(CORS_POLICY, &cors_policy(c)));
    }
    Some(out)
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

fn default_route(mesh: &MeshSnapshot, host: &str, port: u32) -> Route {
    Route {
        name: "default".to_string(),
        r#match: Some(catch_all()),
        action: Some(route::Action::Route(default_action(mesh, host, port))),
        ..Default::default()
    }
}

fn catch_all() -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix("/".to_string())),
        ..Default::default()
    }
}
