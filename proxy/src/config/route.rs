//! `RouteConfiguration` to a [`RouteTable`]: virtual hosts, routes and their actions.
//!
//! Settings that Envoy lets three levels carry (route configuration, virtual host, route:
//! header mutations, per-filter configs, the retry policy) are folded into each route here,
//! most specific first, so the request path reads one [`RoutePolicy`] per route.
//!
//! Fields that change traffic but are not implemented are refused by name (a NACK is better
//! than silently routing elsewhere); fields that only label, trace or count are accepted.

use bytes::Bytes;
use xds_protos::pb::envoy::config::core::v3::data_source;
use xds_protos::pb::envoy::config::route::v3::{
    redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier},
    route, route_action, weighted_cluster, Decorator, DirectResponseAction, RedirectAction, Route,
    RouteAction as ProtoRouteAction, RouteConfiguration, VirtualHost as ProtoVirtualHost,
    WeightedCluster,
};

use super::error::{AtField, FieldError, ValidationError};
use super::filter_config::per_filter_configs;
use super::header_mutation::{header_policy, HeaderLists};
use super::retry::retry_policy;
use super::route_match::route_match;
use super::route_policy::{action_policy, ActionPolicy};
use crate::router::filter_config::FilterConfigs;
use crate::router::{
    ClusterTarget, Decorator as RouteDecorator, HeaderPolicy, Redirect, RedirectPath, RetryPolicy, Route as CompiledRoute,
    RouteAction, RoutePolicy, RouteTable, VirtualHost, WeightError, WeightedClusterSpec,
    WeightedClusters,
};
use http::HeaderValue;
use std::sync::Arc;
use xds_protos::pb::envoy::config::route::v3::weighted_cluster::cluster_weight::HostRewriteSpecifier::HostRewriteLiteral;

/// Envoy's default for `max_direct_response_body_size_bytes`.
const DEFAULT_MAX_DIRECT_RESPONSE_BODY: u32 = 4096;

pub fn compile_route_config(rc: &RouteConfiguration) -> Result<RouteTable, ValidationError> {
    route_table(rc).map_err(|e| e.into_error("RouteConfiguration", &rc.name))
}

/// What a level above the route hands down to it.
#[derive(Default)]
struct Inherited {
    headers: HeaderPolicy,
    filters: FilterConfigs,
    retry: Option<Arc<RetryPolicy>>,
    include_attempt_count: bool,
    body_limit: u32,
}

pub(crate) fn route_table(rc: &RouteConfiguration) -> Result<RouteTable, FieldError> {
    for (set, field) in [
        (rc.vhds.is_some(), "vhds"),
        (
            !rc.cluster_specifier_plugins.is_empty(),
            "cluster_specifier_plugins",
        ),
        (
            !rc.internal_only_headers.is_empty(),
            "internal_only_headers",
        ),
        (
            rc.most_specific_header_mutations_wins,
            "most_specific_header_mutations_wins",
        ),
        (
            !rc.request_mirror_policies.is_empty(),
            "request_mirror_policies",
        ),
        (!rc.vhost_header.is_empty(), "vhost_header"),
        (
            rc.ignore_path_parameters_in_path_matching,
            "ignore_path_parameters_in_path_matching",
        ),
        (!rc.route_specifiers.is_empty(), "route_specifiers"),
    ] {
        if set {
            return Err(FieldError::unsupported(field));
        }
    }
    let top = Inherited {
        headers: header_policy(HeaderLists {
            request_add: &rc.request_headers_to_add,
            request_remove: &rc.request_headers_to_remove,
            response_add: &rc.response_headers_to_add,
            response_remove: &rc.response_headers_to_remove,
        })?,
        filters: per_filter_configs(&rc.typed_per_filter_config)?,
        retry: None,
        include_attempt_count: false,
        body_limit: rc
            .max_direct_response_body_size_bytes
            .map_or(DEFAULT_MAX_DIRECT_RESPONSE_BODY, |v| v.value),
    };
    let virtual_hosts = rc
        .virtual_hosts
        .iter()
        .enumerate()
        .map(|(i, vh)| virtual_host(vh, &top).at_index("virtual_hosts", i))
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

#[allow(deprecated)] // `cors` is deprecated but still sent.
fn virtual_host(vh: &ProtoVirtualHost, top: &Inherited) -> Result<VirtualHost, FieldError> {
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
    for (set, field) in [
        (vh.matcher.is_some(), "matcher"),
        (vh.require_tls != 0, "require_tls"),
        (!vh.rate_limits.is_empty(), "rate_limits"),
        (vh.cors.is_some(), "cors"),
        (
            vh.include_attempt_count_in_response,
            "include_attempt_count_in_response",
        ),
        (
            vh.retry_policy_typed_config.is_some(),
            "retry_policy_typed_config",
        ),
        (vh.hedge_policy.is_some(), "hedge_policy"),
        (
            vh.include_is_timeout_retry_header,
            "include_is_timeout_retry_header",
        ),
        (
            vh.per_request_buffer_limit_bytes.is_some(),
            "per_request_buffer_limit_bytes",
        ),
        (
            vh.request_body_buffer_limit.is_some(),
            "request_body_buffer_limit",
        ),
        (
            !vh.request_mirror_policies.is_empty(),
            "request_mirror_policies",
        ),
        (!vh.route_specifiers.is_empty(), "route_specifiers"),
    ] {
        if set {
            return Err(FieldError::unsupported(field));
        }
    }
    let mut headers = header_policy(HeaderLists {
        request_add: &vh.request_headers_to_add,
        request_remove: &vh.request_headers_to_remove,
        response_add: &vh.response_headers_to_add,
        response_remove: &vh.response_headers_to_remove,
    })?;
    headers.then(&top.headers);
    let mut filters = per_filter_configs(&vh.typed_per_filter_config)?;
    filters.then(&top.filters);
    let retry = vh
        .retry_policy
        .as_ref()
        .map(|p| retry_policy(p).at("retry_policy").map(Arc::new))
        .transpose()?;
    let inherited = Inherited {
        headers,
        filters,
        retry,
        include_attempt_count: vh.include_request_attempt_count,
        body_limit: top.body_limit,
    };
    let routes = vh
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| compile_route(r, &inherited).at_index("routes", i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(VirtualHost {
        name: vh.name.clone(),
        domains: vh.domains.clone(),
        routes,
    })
}

#[allow(deprecated)] // `per_request_buffer_limit_bytes` is deprecated but still sent.
fn compile_route(r: &Route, up: &Inherited) -> Result<CompiledRoute, FieldError> {
    for (set, field) in [
        (
            r.per_request_buffer_limit_bytes.is_some(),
            "per_request_buffer_limit_bytes",
        ),
        (
            r.request_body_buffer_limit.is_some(),
            "request_body_buffer_limit",
        ),
        (!r.route_specifiers.is_empty(), "route_specifiers"),
    ] {
        if set {
            return Err(FieldError::unsupported(field));
        }
    }
    let matcher = r
        .r#match
        .as_ref()
        .ok_or_else(|| FieldError::new("match", "required"))
        .and_then(|m| route_match(m).at("match"))?;
    let (action, action_policy) = match &r.action {
        Some(route::Action::Route(ra)) => {
            let (action, policy) = route_action(ra).at("route")?;
            (action, Some(policy))
        }
        Some(route::Action::Redirect(rd)) => {
            (RouteAction::Redirect(redirect(rd).at("redirect")?), None)
        }
        Some(route::Action::DirectResponse(dr)) => (
            direct_response(dr, up.body_limit).at("direct_response")?,
            None,
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
    let mut headers = header_policy(HeaderLists {
        request_add: &r.request_headers_to_add,
        request_remove: &r.request_headers_to_remove,
        response_add: &r.response_headers_to_add,
        response_remove: &r.response_headers_to_remove,
    })?;
    headers.then(&up.headers);
    let mut filters = per_filter_configs(&r.typed_per_filter_config)?;
    filters.then(&up.filters);
    let mut policy = RoutePolicy {
        headers,
        filters,
        retry: up.retry.clone(),
        include_attempt_count: up.include_attempt_count,
        decorator: decorator(r.decorator.as_ref()).at("decorator")?,
        ..RoutePolicy::default()
    };
    if let Some(p) = action_policy {
        policy.timeout = p.timeout;
        policy.idle_timeout = p.idle_timeout;
        policy.max_stream_duration = p.max_stream_duration;
        if let Some(retry) = p.retry {
            policy.retry = Some(Arc::new(retry));
        }
        policy.mirrors = p.mirrors;
        policy.rewrite = p.rewrite;
        policy.cluster_not_found_status = p.cluster_not_found_status;
        policy.hash_policy = p.hash_policy;
        policy.websocket = p.websocket;
    }
    Ok(CompiledRoute {
        name: r.name.as_str().into(),
        matcher,
        action,
        policy,
    })
}

/// The span name a route gives its requests, and whether it goes upstream as
/// `x-envoy-decorator-operation` (Envoy's default).
fn decorator(d: Option<&Decorator>) -> Result<Option<Arc<RouteDecorator>>, FieldError> {
    let Some(d) = d else {
        return Ok(None);
    };
    if d.operation.is_empty() {
        return Err(FieldError::new("operation", "must not be empty"));
    }
    let propagate = if d.propagate.as_ref().is_none_or(|p| p.value) {
        Some(http::HeaderValue::from_str(&d.operation).map_err(|_| {
            FieldError::new(
                "operation",
                "cannot be sent as x-envoy-decorator-operation (set propagate to false)",
            )
        })?)
    } else {
        None
    };
    Ok(Some(Arc::new(RouteDecorator {
        operation: Arc::from(d.operation.as_str()),
        propagate,
    })))
}

fn route_action(ra: &ProtoRouteAction) -> Result<(RouteAction, ActionPolicy), FieldError> {
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
    Ok((action, action_policy(ra)?))
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
        for (set, field) in [
            (c.metadata_match.is_some(), "metadata_match"),
            (
                !c.typed_per_filter_config.is_empty(),
                "typed_per_filter_config",
            ),
            (c.host_rewrite_specifier.is_some(), "host_rewrite_specifier"),
        ] {
            if set {
                return Err(at(FieldError::unsupported(field)));
            }
        }
        let headers = header_policy(HeaderLists {
            request_add: &c.request_headers_to_add,
            request_remove: &c.request_headers_to_remove,
            response_add: &c.response_headers_to_add,
            response_remove: &c.response_headers_to_remove,
        })
        .map_err(at)?;
        let host_rewrite = match &c.host_rewrite_specifier {
            Some(HostRewriteLiteral(h)) if !h.is_empty() => {
                Some(HeaderValue::from_str(h).map_err(|_| {
                    at(FieldError::new(
                        "host_rewrite_literal",
                        "not a valid authority",
                    ))
                })?)
            }
            _ => None,
        };
        clusters.push(WeightedClusterSpec {
            target: ClusterTarget::new(&c.name),
            weight: c.weight.map_or(0, |w| w.value),
            headers,
            host_rewrite,
        });
    }
    let sum: u64 = clusters.iter().map(|c| u64::from(c.weight)).sum();
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
    WeightedClusters::with_settings(clusters).map_err(|e| match e {
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
