//! VirtualService checks.

use super::common::*;
use super::http_policies::*;
use super::Findings;
use crate::model::path::FieldPath;
use crate::model::string_match::StringMatch;
use crate::model::virtual_service::*;

pub(super) fn check(vs: &VirtualService, f: &mut Findings) {
    let spec = FieldPath::spec();
    if vs.http.is_empty() && vs.tcp.is_empty() && vs.tls.is_empty() {
        f.error(
            &spec,
            "a VirtualService needs at least one http, tcp or tls route",
        );
    }
    if vs.hosts.is_empty() {
        f.warning(
            &spec.key("hosts"),
            "no hosts: this VirtualService can only be used as a delegate, which weft-proxy does not act on yet",
        );
    }
    check_hosts(f, &spec.key("hosts"), &vs.hosts);
    for (i, gw) in vs.gateways.iter().enumerate() {
        if gw.is_empty() {
            f.error(
                &spec.key("gateways").index(i),
                "gateway name must not be empty",
            );
        }
    }
    check_export_to(f, &spec.key("exportTo"), &vs.export_to);
    for (i, route) in vs.http.iter().enumerate() {
        check_http_route(f, &spec.key("http").index(i), route);
    }
    for (i, route) in vs.tcp.iter().enumerate() {
        let p = spec.key("tcp").index(i);
        for (j, m) in route.r#match.iter().enumerate() {
            let mp = p.key("match").index(j);
            check_optional_port(f, &mp.key("port"), m.port);
            check_subnets(f, &mp.key("destinationSubnets"), &m.destination_subnets);
            if let Some(s) = &m.source_subnet {
                if !is_ip_or_cidr(s) {
                    f.error(
                        &mp.key("sourceSubnet"),
                        format!("{s:?} is neither an IP address nor a CIDR block"),
                    );
                }
            }
        }
        check_route_destinations(f, &p.key("route"), &route.route, "a TCP route");
    }
    for (i, route) in vs.tls.iter().enumerate() {
        let p = spec.key("tls").index(i);
        if route.r#match.is_empty() {
            f.error(
                &p.key("match"),
                "a TLS route needs at least one match with sniHosts",
            );
        }
        for (j, m) in route.r#match.iter().enumerate() {
            let mp = p.key("match").index(j);
            if m.sni_hosts.is_empty() {
                f.error(&mp.key("sniHosts"), "sniHosts is required in a TLS match");
            }
            check_hosts(f, &mp.key("sniHosts"), &m.sni_hosts);
            check_optional_port(f, &mp.key("port"), m.port);
            check_subnets(f, &mp.key("destinationSubnets"), &m.destination_subnets);
        }
        check_route_destinations(f, &p.key("route"), &route.route, "a TLS route");
    }
}

fn check_route_destinations(
    f: &mut Findings,
    path: &FieldPath,
    route: &[RouteDestination],
    what: &str,
) {
    if route.is_empty() {
        f.error(path, format!("{what} needs at least one destination"));
    }
    for (j, d) in route.iter().enumerate() {
        check_destination(f, &path.index(j).key("destination"), &d.destination);
    }
    let weights: Vec<Option<i32>> = route.iter().map(|d| d.weight).collect();
    check_weights(f, path, &weights);
}

fn check_http_route(f: &mut Findings, p: &FieldPath, r: &HttpRoute) {
    let has_route = !r.route.is_empty();
    if has_route && r.redirect.is_some() {
        f.error(
            &p.key("redirect"),
            "an HTTP route cannot have both route and redirect",
        );
    }
    if has_route && r.direct_response.is_some() {
        f.error(
            &p.key("directResponse"),
            "an HTTP route cannot have both route and directResponse",
        );
    }
    if r.redirect.is_some() && r.direct_response.is_some() {
        f.error(
            &p.key("directResponse"),
            "an HTTP route cannot have both redirect and directResponse",
        );
    }
    if r.delegate.is_some() && (has_route || r.redirect.is_some() || r.direct_response.is_some()) {
        f.error(
            &p.key("delegate"),
            "an HTTP route with a delegate cannot also have route, redirect or directResponse",
        );
    }
    if !has_route && r.redirect.is_none() && r.direct_response.is_none() && r.delegate.is_none() {
        f.error(
            p,
            "an HTTP route needs one of route, redirect, directResponse or delegate",
        );
    }

    check_local_reply_conflicts(f, p, r);

    for (j, m) in r.r#match.iter().enumerate() {
        check_match(f, &p.key("match").index(j), m);
    }
    for (j, d) in r.route.iter().enumerate() {
        let dp = p.key("route").index(j);
        check_destination(f, &dp.key("destination"), &d.destination);
        check_headers(f, &dp.key("headers"), &d.headers);
    }
    let weights: Vec<Option<i32>> = r.route.iter().map(|d| d.weight).collect();
    check_weights(f, &p.key("route"), &weights);

    if let Some(redirect) = &r.redirect {
        check_redirect(f, p, redirect);
    }
    if let Some(direct) = &r.direct_response {
        check_direct_response(f, p, direct);
    }
    if let Some(delegate) = &r.delegate {
        if delegate.name.is_empty() {
            f.error(
                &p.key("delegate").key("name"),
                "the delegate VirtualService's name is required",
            );
        }
    }
    check_rewrite(f, p, r);
    check_duration(f, &p.key("timeout"), r.timeout);
    if let Some(retries) = &r.retries {
        check_retries(f, p, retries);
    }
    if let Some(fault) = &r.fault {
        check_fault(f, &p.key("fault"), fault);
    }
    check_mirroring(f, p, r);
    if let Some(cors) = &r.cors_policy {
        check_cors(f, p, cors);
    }
    check_headers(f, &p.key("headers"), &r.headers);
}

fn check_match(f: &mut Findings, p: &FieldPath, m: &HttpMatchRequest) {
    check_optional_string_match(f, &p.key("uri"), &m.uri);
    for (field, sm) in [
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(sm) = sm {
            check_non_uri_match(f, &p.key(field), sm);
        }
    }
    for (field, map) in [("headers", &m.headers), ("queryParams", &m.query_params)] {
        for (name, sm) in map {
            let np = p.key(field).key(name);
            if field == "headers" {
                check_match_header_name(f, &np, name);
            } else if name.is_empty() {
                f.error(&np, "the name must not be empty");
            }
            check_non_uri_match(f, &np, sm);
        }
    }
    for (name, sm) in &m.without_headers {
        let np = p.key("withoutHeaders").key(name);
        check_match_header_name(f, &np, name);
        if matches!(sm, StringMatch::Regex(r) if r == "*") {
            // Istio reads `regex: "*"` here as "the header is absent", not as a regex.
            f.error(
                &np.key("regex"),
                "Istio's \"*\" shorthand (the header is absent) is not supported by weft yet",
            );
        } else {
            check_non_uri_match(f, &np, sm);
        }
    }
    check_optional_port(f, &p.key("port"), m.port);
}

/// Every string match but the URI's: Envoy refuses an empty prefix there.
fn check_non_uri_match(f: &mut Findings, p: &FieldPath, sm: &StringMatch) {
    if matches!(sm, StringMatch::Prefix(v) if v.is_empty()) {
        f.error(&p.key("prefix"), "a prefix match must not be empty");
    }
    check_string_match(f, p, sm);
}

fn check_match_header_name(f: &mut Findings, p: &FieldPath, name: &str) {
    if name.starts_with("@request.auth.claims") {
        f.error(p, "routing on JWT claims is not supported by weft yet");
    } else if !is_header_name(name) {
        f.error(
            p,
            format!("{name:?} is not a header name (letters, digits, - and _)"),
        );
    }
}
