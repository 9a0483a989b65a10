//! VirtualService checks.

use super::common::*;
use super::Findings;
use crate::model::path::FieldPath;
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
        check_optional_port(f, &p.key("redirect").key("port"), redirect.port);
        if redirect.port.is_some() && redirect.derive_port.is_some() {
            f.error(
                &p.key("redirect").key("derivePort"),
                "set either port or derivePort, not both",
            );
        }
    }
    if let Some(direct) = &r.direct_response {
        let dp = p.key("directResponse");
        if !(200..=599).contains(&direct.status) {
            f.error(
                &dp.key("status"),
                format!("status {} is not an HTTP status (200-599)", direct.status),
            );
        }
        if let Some(body) = &direct.body {
            if body.string.is_some() && body.bytes.is_some() {
                f.error(&dp.key("body"), "set either string or bytes, not both");
            }
        }
    }
    if let Some(delegate) = &r.delegate {
        if delegate.name.is_empty() {
            f.error(
                &p.key("delegate").key("name"),
                "the delegate VirtualService's name is required",
            );
        }
    }
    if let Some(rewrite) = &r.rewrite {
        let rp = p.key("rewrite");
        if let Some(rr) = &rewrite.uri_regex_rewrite {
            if rewrite.uri.is_some() {
                f.error(
                    &rp.key("uriRegexRewrite"),
                    "set either uri or uriRegexRewrite, not both",
                );
            }
            check_regex(f, &rp.key("uriRegexRewrite").key("match"), &rr.r#match);
        }
    }
    if let Some(retries) = &r.retries {
        if retries.attempts < 0 {
            f.error(
                &p.key("retries").key("attempts"),
                format!("attempts {} is negative", retries.attempts),
            );
        }
    }
    if let Some(fault) = &r.fault {
        check_fault(f, &p.key("fault"), fault);
    }
    if let Some(mirror) = &r.mirror {
        check_destination(f, &p.key("mirror"), mirror);
        if !r.mirrors.is_empty() {
            f.error(&p.key("mirrors"), "set either mirror or mirrors, not both");
        }
    }
    for (k, m) in r.mirrors.iter().enumerate() {
        let mp = p.key("mirrors").index(k);
        check_destination(f, &mp.key("destination"), &m.destination);
        check_percent(f, &mp.key("percentage"), &m.percentage);
    }
    if let Some(percent) = r.mirror_percent {
        check_percent_value(f, &p.key("mirrorPercent"), f64::from(percent));
    }
    check_percent(f, &p.key("mirrorPercentage"), &r.mirror_percentage);
    if let Some(cors) = &r.cors_policy {
        for (k, origin) in cors.allow_origins.iter().enumerate() {
            check_string_match(f, &p.key("corsPolicy").key("allowOrigins").index(k), origin);
        }
    }
    check_headers(f, &p.key("headers"), &r.headers);
}

fn check_match(f: &mut Findings, p: &FieldPath, m: &HttpMatchRequest) {
    check_optional_string_match(f, &p.key("uri"), &m.uri);
    check_optional_string_match(f, &p.key("scheme"), &m.scheme);
    check_optional_string_match(f, &p.key("method"), &m.method);
    check_optional_string_match(f, &p.key("authority"), &m.authority);
    check_string_match_map(f, &p.key("headers"), &m.headers);
    check_string_match_map(f, &p.key("queryParams"), &m.query_params);
    check_string_match_map(f, &p.key("withoutHeaders"), &m.without_headers);
    check_optional_port(f, &p.key("port"), m.port);
}

fn check_fault(f: &mut Findings, p: &FieldPath, fault: &HttpFaultInjection) {
    if fault.delay.is_none() && fault.abort.is_none() {
        f.error(p, "a fault needs a delay or an abort");
    }
    if let Some(delay) = &fault.delay {
        let dp = p.key("delay");
        if delay.fixed_delay.is_none() && delay.exponential_delay.is_none() {
            f.error(&dp, "a delay needs fixedDelay");
        }
        if let Some(percent) = delay.percent {
            check_percent_value(f, &dp.key("percent"), f64::from(percent));
        }
        check_percent(f, &dp.key("percentage"), &delay.percentage);
    }
    if let Some(abort) = &fault.abort {
        let ap = p.key("abort");
        let set = [
            abort.http_status.is_some(),
            abort.grpc_status.is_some(),
            abort.http2_error.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            f.error(
                &ap,
                "an abort needs exactly one of httpStatus, grpcStatus or http2Error",
            );
        }
        if let Some(status) = abort.http_status {
            if !(200..=599).contains(&status) {
                f.error(
                    &ap.key("httpStatus"),
                    format!("{status} is not an HTTP status (200-599)"),
                );
            }
        }
        check_percent(f, &ap.key("percentage"), &abort.percentage);
    }
}

fn check_headers(f: &mut Findings, p: &FieldPath, headers: &Option<Headers>) {
    let Some(headers) = headers else { return };
    for (side, ops) in [
        ("request", &headers.request),
        ("response", &headers.response),
    ] {
        let Some(ops) = ops else { continue };
        let sp = p.key(side);
        for (op, names) in [
            ("set", ops.set.keys().collect::<Vec<_>>()),
            ("add", ops.add.keys().collect()),
        ] {
            for name in names {
                if name.is_empty() {
                    f.error(&sp.key(op).key(name), "header names must not be empty");
                }
            }
        }
        for (i, name) in ops.remove.iter().enumerate() {
            if name.is_empty() {
                f.error(&sp.key("remove").index(i), "header names must not be empty");
            }
        }
    }
}
