//! `RouteConfiguration` to a [`RouteTable`]: virtual hosts, routes and their actions.
//!
//! Fields that would change where a request goes but are not implemented are rejected (a NACK
//! is better than silently routing elsewhere); fields that only tune behaviour the proxy does
//! not have yet (CORS, hash policy, rate limits, ...) are ignored.

use bytes::Bytes;
use xds_protos::pb::envoy::config::core::v3::data_source;
use xds_protos::pb::envoy::config::route::v3::{
    redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier},
    route, route_action, weighted_cluster, DirectResponseAction, RedirectAction, Route,
    RouteAction as ProtoRouteAction, RouteConfiguration, VirtualHost as ProtoVirtualHost,
    WeightedCluster,
};

use super::error::{duration, AtField, FieldError, ValidationError};
use super::route_match::route_match;
use crate::router::{
    ClusterTarget, Redirect, RedirectPath, Route as CompiledRoute, RouteAction, RoutePolicy,
    RouteTable, VirtualHost, WeightError, WeightedClusters, DEFAULT_ROUTE_TIMEOUT,
};

/// Envoy's default for `max_direct_response_body_size_bytes`.
const DEFAULT_MAX_DIRECT_RESPONSE_BODY: u32 = 4096;

pub fn compile_route_config(rc: &RouteConfiguration) -> Result<RouteTable, ValidationError> {
    route_table(rc).map_err(|e| e.into_error("RouteConfiguration", &rc.name))
}

pub(crate) fn route_table(rc: &RouteConfiguration) -> Result<RouteTable, FieldError> {
    if rc.vhds.is_some() {
        return Err(FieldError::unsupported("vhds"));
    }
    if !rc.cluster_specifier_plugins.is_empty() {
        return Err(FieldError::unsupported("cluster_specifier_plugins"));
    }
    let body_limit = rc
        .max_direct_response_body_size_bytes
        .map_or(DEFAULT_MAX_DIRECT_RESPONSE_BODY, |v| v.value);
    let virtual_hosts = rc
        .virtual_hosts
        .iter()
        .enumerate()
        .map(|(i, vh)| virtual_host(vh, body_limit).at_index("virtual_hosts", i))
        .collect::<Result<Vec<_>, _>>()?;
    RouteTable::new(
        rc.name.clone(),
        virtual_hosts,
        rc.ignore_port_in_host_matching,
    )
    .map_err(|dup| {
        FieldError::new(
            format!(
                "virtual_hosts[{}].domains[{}]",
                dup.virtual_host, dup.domain
            ),
            format!(
                "domain {:?} is already used by another virtual host",
                dup.value
            ),
        )
    })
}

fn virtual_host(vh: &ProtoVirtualHost, body_limit: u32) -> Result<VirtualHost, FieldError> {
    if vh.name.is_empty() {
        return Err(FieldError::new("name", "must not be empty"));
    }
    if vh.domains.is_empty() {
        return Err(FieldError::new("domains", "must not be empty"));
    }
    if let Some(i) = vh.domains.iter().position(|d| d.is_empty()) {
        return Err(FieldError::new(
            format!("domains[{i}]"),
            "must not be empty",
        ));
    }
    if vh.matcher.is_some() {
        return Err(FieldError::unsupported("matcher"));
    }
    let routes = vh
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| compile_route(r, body_limit).at_index("routes", i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(VirtualHost {
        name: vh.name.clone(),
        domains: vh.domains.clone(),
        routes,
    })
}

fn compile_route(r: &Route, body_limit: u32) -> Result<CompiledRoute, FieldError> {
    let matcher = r
        .r#match
        .as_ref()
        .ok_or_else(|| FieldError::new("match", "required"))
        .and_then(|m| route_match(m).at("match"))?;
    let (action, policy) = match &r.action {
        Some(route::Action::Route(ra)) => route_action(ra).at("route")?,
        Some(route::Action::Redirect(rd)) => (
            RouteAction::Redirect(redirect(rd).at("redirect")?),
            RoutePolicy::default(),
        ),
        Some(route::Action::DirectResponse(dr)) => (
            direct_response(dr, body_limit).at("direct_response")?,
            RoutePolicy::default(),
        ),
        Some(route::Action::FilterAction(_)) => {
            return Err(FieldError::unsupported("filter_action"))
        }
        Some(route::Action::NonForwardingAction(_)) => {
            return Err(FieldError::unsupported("non_forwarding_action"))
        }
        None => {
            return Err(FieldError::new(
                "action",
                "one of route, redirect or direct_response is required",
            ))
        }
    };
    // Header mutations are not acted on yet: refuse them rather than pretend.
    for (set, field) in [
        (
            !r.request_headers_to_add.is_empty(),
            "request_headers_to_add",
        ),
        (
            !r.request_headers_to_remove.is_empty(),
            "request_headers_to_remove",
        ),
        (
            !r.response_headers_to_add.is_empty(),
            "response_headers_to_add",
        ),
        (
            !r.response_headers_to_remove.is_empty(),
            "response_headers_to_remove",
        ),
    ] {
        if set {
            return Err(FieldError::unsupported(field));
        }
    }
    Ok(CompiledRoute {
        name: r.name.clone(),
        matcher,
        action,
        policy,
    })
}

fn route_action(ra: &ProtoRouteAction) -> Result<(RouteAction, RoutePolicy), FieldError> {
    use route_action::ClusterSpecifier as Spec;
    let action = match &ra.cluster_specifier {
        Some(Spec::Cluster(name)) if name.is_empty() => {
            return Err(FieldError::new("cluster", "must not be empty"))
        }
        Some(Spec::Cluster(name)) => RouteAction::Cluster(ClusterTarget::new(name)),
        Some(Spec::WeightedClusters(wc)) => {
            RouteAction::Weighted(weighted_clusters(wc).at("weighted_clusters")?)
        }
        Some(Spec::ClusterHeader(_)) => return Err(FieldError::unsupported("cluster_header")),
        Some(Spec::ClusterSpecifierPlugin(_)) => {
            return Err(FieldError::unsupported("cluster_specifier_plugin"))
        }
        Some(Spec::InlineClusterSpecifierPlugin(_)) => {
            return Err(FieldError::unsupported("inline_cluster_specifier_plugin"))
        }
        None => {
            return Err(FieldError::new(
                "cluster_specifier",
                "one of cluster or weighted_clusters is required",
            ))
        }
    };
    let timeout = match &ra.timeout {
        None => Some(DEFAULT_ROUTE_TIMEOUT),
        Some(d) => Some(duration(d).at("timeout")?).filter(|d| !d.is_zero()),
    };
    // Retries, mirroring and rewrites are not acted on yet: refuse them rather than pretend.
    for (set, field) in [
        (ra.retry_policy.is_some(), "route.retry_policy"),
        (
            !ra.request_mirror_policies.is_empty(),
            "route.request_mirror_policies",
        ),
        (!ra.prefix_rewrite.is_empty(), "route.prefix_rewrite"),
        (ra.regex_rewrite.is_some(), "route.regex_rewrite"),
        (
            ra.host_rewrite_specifier.is_some(),
            "route.host_rewrite_specifier",
        ),
    ] {
        if set {
            return Err(FieldError::unsupported(field));
        }
    }
    let policy = RoutePolicy { timeout };
    Ok((action, policy))
}

#[allow(deprecated)] // `total_weight` is deprecated but still checked when sent.
fn weighted_clusters(wc: &WeightedCluster) -> Result<WeightedClusters, FieldError> {
    match &wc.random_value_specifier {
        Some(weighted_cluster::RandomValueSpecifier::HeaderName(_)) => {
            return Err(FieldError::unsupported("header_name"))
        }
        Some(weighted_cluster::RandomValueSpecifier::UseHashPolicy(b)) if b.value => {
            return Err(FieldError::unsupported("use_hash_policy"))
        }
        _ => {}
    }
    let mut clusters = Vec::with_capacity(wc.clusters.len());
    for (i, c) in wc.clusters.iter().enumerate() {
        let at = |e: FieldError| e.under(&format!("clusters[{i}]"));
        if !c.cluster_header.is_empty() {
            return Err(at(FieldError::unsupported("cluster_header")));
        }
        if c.name.is_empty() {
            return Err(at(FieldError::new("name", "must not be empty")));
        }
        clusters.push((ClusterTarget::new(&c.name), c.weight.map_or(0, |w| w.value)));
    }
    let sum: u64 = clusters.iter().map(|(_, w)| u64::from(*w)).sum();
    if sum > u64::from(u32::MAX) {
        return Err(FieldError::new(
            "clusters",
            format!("the sum of the weights ({sum}) exceeds {}", u32::MAX),
        ));
    }
    if let Some(total) = wc.total_weight.filter(|t| u64::from(t.value) != sum) {
        return Err(FieldError::new(
            "total_weight",
            format!(
                "{} differs from the sum of the weights ({sum})",
                total.value
            ),
        ));
    }
    WeightedClusters::new(clusters).map_err(|e| match e {
        WeightError::Empty => FieldError::new("clusters", "must not be empty"),
        WeightError::ZeroTotal => {
            FieldError::new("clusters", "the sum of the weights must be greater than 0")
        }
    })
}

fn redirect(rd: &RedirectAction) -> Result<Redirect, FieldError> {
    let scheme = match &rd.scheme_rewrite_specifier {
        Some(SchemeRewriteSpecifier::HttpsRedirect(true)) => Some("https".into()),
        Some(SchemeRewriteSpecifier::SchemeRedirect(s)) if !s.is_empty() => {
            Some(s.to_ascii_lowercase().into_boxed_str())
        }
        _ => None,
    };
    let port =
        match rd.port_redirect {
            0 => None,
            p => Some(u16::try_from(p).map_err(|_| {
                FieldError::new("port_redirect", format!("{p} is not a valid port"))
            })?),
        };
    let path = match &rd.path_rewrite_specifier {
        None => None,
        Some(PathRewriteSpecifier::PathRedirect(p)) => Some(RedirectPath::Path(p.as_str().into())),
        Some(PathRewriteSpecifier::PrefixRewrite(p)) => {
            Some(RedirectPath::PrefixRewrite(p.as_str().into()))
        }
        Some(PathRewriteSpecifier::RegexRewrite(_)) => {
            return Err(FieldError::unsupported("regex_rewrite"))
        }
        Some(PathRewriteSpecifier::PathRewrite(_)) => {
            return Err(FieldError::unsupported("path_rewrite"))
        }
    };
    let status = match RedirectResponseCode::try_from(rd.response_code) {
        Ok(RedirectResponseCode::MovedPermanently) => 301,
        Ok(RedirectResponseCode::Found) => 302,
        Ok(RedirectResponseCode::SeeOther) => 303,
        Ok(RedirectResponseCode::TemporaryRedirect) => 307,
        Ok(RedirectResponseCode::PermanentRedirect) => 308,
        Err(_) => {
            return Err(FieldError::new(
                "response_code",
                format!("unknown response code {}", rd.response_code),
            ))
        }
    };
    Ok(Redirect {
        scheme,
        host: Some(rd.host_redirect.as_str())
            .filter(|h| !h.is_empty())
            .map(Into::into),
        port,
        path,
        strip_query: rd.strip_query,
        status,
    })
}

fn direct_response(dr: &DirectResponseAction, body_limit: u32) -> Result<RouteAction, FieldError> {
    let status = u16::try_from(dr.status)
        .ok()
        .filter(|s| (200..600).contains(s))
        .ok_or_else(|| FieldError::new("status", format!("{} is not in [200, 600)", dr.status)))?;
    if dr.body_format.is_some() {
        return Err(FieldError::unsupported("body_format"));
    }
    let body = match dr.body.as_ref().and_then(|b| b.specifier.as_ref()) {
        None => None,
        Some(data_source::Specifier::InlineBytes(b)) => Some(Bytes::from(b.clone())),
        Some(data_source::Specifier::InlineString(s)) => Some(Bytes::from(s.clone())),
        Some(data_source::Specifier::Filename(_)) => {
            return Err(FieldError::unsupported("body.filename"))
        }
        Some(data_source::Specifier::EnvironmentVariable(_)) => {
            return Err(FieldError::unsupported("body.environment_variable"))
        }
    };
    if let Some(body) = &body {
        if body.len() > body_limit as usize {
            return Err(FieldError::new(
                "body",
                format!(
                    "{} bytes exceed max_direct_response_body_size_bytes ({body_limit})",
                    body.len()
                ),
            ));
        }
    }
    Ok(RouteAction::DirectResponse { status, body })
}
