//! The policy half of a `RouteAction`: timeouts, retries, mirrors and rewrites. What the
//! action routes to is compiled in `route.rs`.
//!
//! Fields that change traffic and are not implemented are refused by name; fields that only
//! label or trace (`include_vh_rate_limits`) are accepted. A `priority` other than DEFAULT is
//! refused: Envoy would apply the cluster's HIGH circuit-breaker thresholds, which weft-proxy
//! does not keep.

use std::time::Duration;

use http::HeaderValue;
use xds_protos::pb::envoy::config::route::v3::{
    route_action::{self, ClusterNotFoundResponseCode, HostRewriteSpecifier},
    RouteAction as ProtoRouteAction,
};

use super::error::{duration, AtField, FieldError};
use super::filter_config::fraction;
use super::hash_policy::compile_hash_policies;
use super::retry::retry_policy;
use crate::router::{
    substitution_from_envoy, ClusterTarget, Fraction, HashPolicy, MaxStreamDuration, MirrorPolicy,
    PathRewrite, RetryPolicy, Rewrite, DEFAULT_ROUTE_TIMEOUT,
};

/// What `route.rs` folds into the route's [`RoutePolicy`](crate::router::RoutePolicy).
pub(crate) struct ActionPolicy {
    pub timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub max_stream_duration: MaxStreamDuration,
    pub retry: Option<RetryPolicy>,
    pub mirrors: Box<[MirrorPolicy]>,
    pub rewrite: Rewrite,
    /// The status when the route's cluster does not exist (Envoy's default 503).
    pub cluster_not_found_status: u16,
    pub hash_policy: Box<[HashPolicy]>,
    /// `upgrade_configs`: whether this route allows WebSocket upgrades, overriding the
    /// connection manager; `None` when it does not say.
    pub websocket: Option<bool>,
}

#[allow(deprecated)] // `max_grpc_timeout`, `grpc_timeout_offset`, `cors` and
                     // `internal_redirect_action` are deprecated but still sent.
pub(crate) fn action_policy(ra: &ProtoRouteAction) -> Result<ActionPolicy, FieldError> {
    for (set, field) in [
        (ra.metadata_match.is_some(), "metadata_match"),
        (ra.path_rewrite_policy.is_some(), "path_rewrite_policy"),
        (!ra.path_rewrite.is_empty(), "path_rewrite"),
        (ra.flush_timeout.is_some(), "flush_timeout"),
        (ra.early_data_policy.is_some(), "early_data_policy"),
        (
            ra.retry_policy_typed_config.is_some(),
            "retry_policy_typed_config",
        ),
        (!ra.rate_limits.is_empty(), "rate_limits"),
        (ra.cors.is_some(), "cors"),
        (
            ra.internal_redirect_policy.is_some(),
            "internal_redirect_policy",
        ),
        (ra.internal_redirect_action != 0, "internal_redirect_action"),
        (
            ra.max_internal_redirects.is_some(),
            "max_internal_redirects",
        ),
        (ra.hedge_policy.is_some(), "hedge_policy"),
        (ra.priority != 0, "priority"),
    ] {
        if set {
            return Err(FieldError::unsupported(field));
        }
    }
    let timeout = match &ra.timeout {
        None => Some(DEFAULT_ROUTE_TIMEOUT),
        Some(d) => Some(duration(d).at("timeout")?).filter(|d| !d.is_zero()),
    };
    let idle_timeout = ra
        .idle_timeout
        .as_ref()
        .map(|d| duration(d).at("idle_timeout"))
        .transpose()?;
    let retry = ra
        .retry_policy
        .as_ref()
        .map(|p| retry_policy(p).at("retry_policy"))
        .transpose()?;
    let mirrors = ra
        .request_mirror_policies
        .iter()
        .enumerate()
        .map(|(i, m)| mirror(m).at_index("request_mirror_policies", i))
        .collect::<Result<_, _>>()?;
    let cluster_not_found_status =
        match ClusterNotFoundResponseCode::try_from(ra.cluster_not_found_response_code) {
            Ok(ClusterNotFoundResponseCode::ServiceUnavailable) => 503,
            Ok(ClusterNotFoundResponseCode::NotFound) => 404,
            Ok(ClusterNotFoundResponseCode::InternalServerError) => 500,
            Err(_) => {
                return Err(FieldError::new(
                    "cluster_not_found_response_code",
                    format!("unknown code {}", ra.cluster_not_found_response_code),
                ))
            }
        };
    Ok(ActionPolicy {
        timeout,
        idle_timeout,
        max_stream_duration: max_stream_duration(ra)?,
        retry,
        mirrors,
        rewrite: rewrite(ra)?,
        cluster_not_found_status,
        hash_policy: compile_hash_policies(&ra.hash_policy)?.into(),
        websocket: route_upgrades(&ra.upgrade_configs)?,
    })
}

/// A route's `upgrade_configs`: an entry for `websocket` overrides the connection manager's
/// setting either way (Envoy's table: the route wins when it says). Another type may only be
/// disabled (weft-proxy proxies no other upgrade); `connect_config` is refused with CONNECT.
fn route_upgrades(upgrades: &[route_action::UpgradeConfig]) -> Result<Option<bool>, FieldError> {
    unique_upgrade_types(upgrades.iter().map(|u| u.upgrade_type.as_str()))?;
    let mut websocket = None;
    for (i, u) in upgrades.iter().enumerate() {
        let at = |m: String| FieldError::new(format!("upgrade_configs[{i}]"), m);
        if u.connect_config.is_some() {
            return Err(FieldError::unsupported(&format!(
                "upgrade_configs[{i}].connect_config"
            )));
        }
        let enabled = u.enabled.is_none_or(|b| b.value);
        if u.upgrade_type
            .eq_ignore_ascii_case(crate::config::WEBSOCKET)
        {
            websocket = Some(enabled);
        } else if enabled {
            return Err(at(format!(
                "upgrade {:?} is not supported (only websocket is proxied)",
                u.upgrade_type
            )));
        }
    }
    Ok(websocket)
}

#[allow(deprecated)]
fn max_stream_duration(ra: &ProtoRouteAction) -> Result<MaxStreamDuration, FieldError> {
    let opt = |d: Option<&xds_protos::pb::google::protobuf::Duration>, field: &str| {
        d.map(|d| duration(d).at(field)).transpose()
    };
    let mut out = MaxStreamDuration {
        legacy_grpc_timeout_max: opt(ra.max_grpc_timeout.as_ref(), "max_grpc_timeout")?,
        legacy_grpc_timeout_offset: opt(ra.grpc_timeout_offset.as_ref(), "grpc_timeout_offset")?,
        ..MaxStreamDuration::default()
    };
    if let Some(m) = &ra.max_stream_duration {
        out.max = opt(
            m.max_stream_duration.as_ref(),
            "max_stream_duration.max_stream_duration",
        )?
        .filter(|d| !d.is_zero());
        out.grpc_timeout_header_max = opt(
            m.grpc_timeout_header_max.as_ref(),
            "max_stream_duration.grpc_timeout_header_max",
        )?;
        out.grpc_timeout_header_offset = opt(
            m.grpc_timeout_header_offset.as_ref(),
            "max_stream_duration.grpc_timeout_header_offset",
        )?;
    }
    Ok(out)
}

fn mirror(m: &route_action::RequestMirrorPolicy) -> Result<MirrorPolicy, FieldError> {
    for (set, field) in [
        (!m.cluster_header.is_empty(), "cluster_header"),
        (
            !m.request_headers_mutations.is_empty(),
            "request_headers_mutations",
        ),
        (!m.host_rewrite_literal.is_empty(), "host_rewrite_literal"),
    ] {
        if set {
            return Err(FieldError::unsupported(field));
        }
    }
    if m.cluster.is_empty() {
        return Err(FieldError::new("cluster", "must not be empty"));
    }
    // Without a fraction every request is mirrored.
    let fraction = match m
        .runtime_fraction
        .as_ref()
        .and_then(|r| r.default_value.as_ref())
    {
        None => Fraction::ALWAYS,
        Some(fp) => fraction(Some(fp)).at("runtime_fraction.default_value")?,
    };
    Ok(MirrorPolicy {
        cluster: ClusterTarget::new(&m.cluster),
        fraction,
        shadow_suffix: !m.disable_shadow_host_suffix_append,
    })
}

fn rewrite(ra: &ProtoRouteAction) -> Result<Rewrite, FieldError> {
    let path = match (&*ra.prefix_rewrite, &ra.regex_rewrite) {
        ("", None) => None,
        (p, None) => Some(PathRewrite::Prefix(p.into())),
        ("", Some(r)) => {
            let pattern = r
                .pattern
                .as_ref()
                .ok_or_else(|| FieldError::new("regex_rewrite.pattern", "required"))?;
            let compiled = regex::Regex::new(&pattern.regex).map_err(|e| {
                FieldError::new("regex_rewrite.pattern.regex", format!("invalid regex: {e}"))
            })?;
            Some(PathRewrite::Regex {
                pattern: compiled,
                substitution: substitution_from_envoy(&r.substitution).into(),
            })
        }
        (_, Some(_)) => {
            return Err(FieldError::new(
                "regex_rewrite",
                "only one of prefix_rewrite and regex_rewrite may be set",
            ))
        }
    };
    let authority = match &ra.host_rewrite_specifier {
        None => None,
        Some(HostRewriteSpecifier::HostRewriteLiteral(h)) if h.is_empty() => None,
        Some(HostRewriteSpecifier::HostRewriteLiteral(h)) => Some(
            HeaderValue::from_str(h)
                .map_err(|_| FieldError::new("host_rewrite_literal", "not a valid authority"))?,
        ),
        Some(HostRewriteSpecifier::AutoHostRewrite(b)) if !b.value => None,
        Some(HostRewriteSpecifier::AutoHostRewrite(_)) => {
            return Err(FieldError::unsupported("auto_host_rewrite"))
        }
        Some(HostRewriteSpecifier::HostRewriteHeader(_)) => {
            return Err(FieldError::unsupported("host_rewrite_header"))
        }
        Some(HostRewriteSpecifier::HostRewritePathRegex(_)) => {
            return Err(FieldError::unsupported("host_rewrite_path_regex"))
        }
        Some(HostRewriteSpecifier::HostRewrite(_)) => {
            return Err(FieldError::unsupported("host_rewrite"))
        }
    };
    Ok(Rewrite {
        path,
        authority,
        append_x_forwarded_host: ra.append_x_forwarded_host,
    })
}

/// Refuses an upgrade type listed twice (case-insensitively), as Envoy does, on a connection
/// manager or a route.
pub(crate) fn unique_upgrade_types<'a>(
    types: impl Iterator<Item = &'a str> + Clone,
) -> Result<(), FieldError> {
    for (i, t) in types.clone().enumerate() {
        if types.clone().take(i).any(|p| p.eq_ignore_ascii_case(t)) {
            return Err(FieldError::new(
                format!("upgrade_configs[{i}]"),
                format!("upgrade {t:?} is listed twice"),
            ));
        }
    }
    Ok(())
}
