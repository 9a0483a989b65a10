//! The connection manager's `http_filters` to an [`HttpFilterChain`].
//!
//! A filter weft-proxy does not implement is refused by name, unless the listener marks it
//! `is_optional`: an ignored `rbac` or `ext_authz` filter would let through what the operator
//! meant to stop.

use std::sync::Arc;

use prost::Message;
use xds_protos::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use xds_protos::pb::envoy::extensions::filters::http::router::v3::Router;
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use xds_protos::type_url;

use super::error::{AtField, FieldError};
use super::filter_config::fault_config;
use crate::router::filter_config::{HttpFilterChain, HttpFilterKind, HttpFilterSpec, RouterConfig};

const ROUTER_NAME: &str = "envoy.filters.http.router";
const FAULT_NAME: &str = "envoy.filters.http.fault";
const CORS_NAME: &str = "envoy.filters.http.cors";

enum Compiled {
    Filter(HttpFilterKind),
    Router(RouterConfig),
    /// An optional filter weft-proxy does not know: skipped, as Envoy allows.
    Skipped,
}

/// An empty list means the router alone (as hand-written configs often leave it).
pub(crate) fn http_filter_chain(filters: &[HttpFilter]) -> Result<HttpFilterChain, FieldError> {
    let mut chain = HttpFilterChain::default();
    if filters.is_empty() {
        return Ok(chain);
    }
    let mut router = None;
    for (i, f) in filters.iter().enumerate() {
        let at = |e: FieldError| e.under(&format!("http_filters[{i}]"));
        if router.is_some() {
            return Err(at(FieldError::new(
                "",
                format!(
                    "{:?} comes after the router, which must be the last filter",
                    f.name
                ),
            )));
        }
        match compile(f).map_err(at)? {
            Compiled::Filter(kind) => chain.filters.push(HttpFilterSpec {
                name: f.name.as_str().into(),
                kind,
                disabled: f.disabled,
            }),
            Compiled::Router(config) => router = Some(config),
            Compiled::Skipped => {}
        }
    }
    chain.router = router.ok_or_else(|| {
        FieldError::new(
            "http_filters",
            "no router filter (envoy.filters.http.router)",
        )
    })?;
    Ok(chain)
}

fn compile(f: &HttpFilter) -> Result<Compiled, FieldError> {
    if f.name.is_empty() {
        return Err(FieldError::new("name", "must not be empty"));
    }
    let any = match &f.config_type {
        Some(http_filter::ConfigType::TypedConfig(any)) => Some(any),
        Some(http_filter::ConfigType::ConfigDiscovery(_)) => {
            return Err(FieldError::unsupported("config_discovery"))
        }
        None => None,
    };
    let decode_error =
        |e: prost::DecodeError| FieldError::new("typed_config", format!("cannot decode: {e}"));
    let type_url_ = any.map(|a| a.type_url.as_str());
    let bytes = any.map_or(&[][..], |a| a.value.as_slice());
    match (type_url_, f.name.as_str()) {
        (Some(type_url::ROUTER), _) | (None, ROUTER_NAME) => {
            if f.disabled {
                return Err(FieldError::new("disabled", "the router cannot be disabled"));
            }
            router(&Router::decode(bytes).map_err(decode_error)?).map(Compiled::Router)
        }
        (Some(type_url::HTTP_FAULT), _) | (None, FAULT_NAME) => {
            let fault = HttpFault::decode(bytes).map_err(decode_error)?;
            let config = fault_config(&fault).at("typed_config")?;
            Ok(Compiled::Filter(HttpFilterKind::Fault(Arc::new(config))))
        }
        (Some(type_url::CORS), _) | (None, CORS_NAME) => Ok(Compiled::Filter(HttpFilterKind::Cors)),
        _ if f.is_optional => Ok(Compiled::Skipped),
        (Some(other), name) => Err(FieldError::new(
            "typed_config",
            format!("HTTP filter {name:?} ({other}) is not supported by weft-proxy"),
        )),
        (None, name) => Err(FieldError::new(
            "",
            format!("HTTP filter {name:?} is not supported by weft-proxy"),
        )),
    }
}

fn router(r: &Router) -> Result<RouterConfig, FieldError> {
    for (set, field) in [
        (!r.upstream_log.is_empty(), "upstream_log"),
        (r.upstream_log_options.is_some(), "upstream_log_options"),
        (r.respect_expected_rq_timeout, "respect_expected_rq_timeout"),
        (!r.upstream_http_filters.is_empty(), "upstream_http_filters"),
        // Envoy answers 400 to a malformed x-envoy-* value in this list; weft-proxy ignores it.
        (!r.strict_check_headers.is_empty(), "strict_check_headers"),
    ] {
        if set {
            return Err(FieldError::unsupported(field).under("typed_config"));
        }
    }
    Ok(RouterConfig {
        suppress_envoy_headers: r.suppress_envoy_headers,
    })
}
