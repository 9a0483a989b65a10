//! Per-route HTTP filter configuration (`typed_per_filter_config`) and the filter configs
//! both levels share: the fault filter's `HTTPFault` and the CORS filter's `CorsPolicy`.
//!
//! Envoy keys per-route configs by the filter's name in the connection manager and knows the
//! config by its type. A type weft-proxy does not act on is refused, unless wrapped in a
//! `FilterConfig` marked `is_optional` (then it is skipped, as Envoy skips an optional filter
//! it does not know).

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;
use prost::Message;
use xds_protos::pb::envoy::config::route::v3::FilterConfig;
use xds_protos::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use xds_protos::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as ProtoCorsPolicy;
use xds_protos::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort::ErrorType, HttpFault,
};
use xds_protos::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use xds_protos::pb::google::protobuf::Any;
use xds_protos::type_url;

use super::error::{duration, AtField, FieldError};
use super::route_match::string_matcher;
use crate::router::filter_config::{
    AbortKind, CorsPolicy, FaultAbort, FaultConfig, FaultDelay, FilterConfigs, PerFilter,
};
use crate::router::{Fraction, MILLION};

pub(crate) fn per_filter_configs(
    configs: &HashMap<String, Any>,
) -> Result<FilterConfigs, FieldError> {
    // Sorted, so the same input always yields the same NACK.
    let mut names: Vec<&String> = configs.keys().collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let field = format!("typed_per_filter_config[{name:?}]");
        if let Some(config) = per_filter(&configs[name]).at(&field)? {
            out.push((name.as_str().into(), config));
        }
    }
    Ok(FilterConfigs::new(out))
}

/// `None` for an optional config weft-proxy does not know.
fn per_filter(any: &Any) -> Result<Option<PerFilter>, FieldError> {
    if any.type_url != type_url::ROUTE_FILTER_CONFIG {
        return known_config(any).map(Some);
    }
    let wrapper = FilterConfig::decode(any.value.as_slice())
        .map_err(|e| FieldError::new("", format!("cannot decode: {e}")))?;
    if wrapper.disabled {
        return Ok(Some(PerFilter::Disabled));
    }
    match &wrapper.config {
        None => Ok(Some(PerFilter::Enabled)),
        Some(inner) if !is_known(&inner.type_url) && wrapper.is_optional => Ok(None),
        Some(inner) => known_config(inner).at("config").map(Some),
    }
}

fn is_known(type_url_: &str) -> bool {
    type_url_ == type_url::HTTP_FAULT || type_url_ == type_url::CORS_POLICY
}

fn known_config(any: &Any) -> Result<PerFilter, FieldError> {
    let decode_error = |e: prost::DecodeError| FieldError::new("", format!("cannot decode: {e}"));
    match any.type_url.as_str() {
        type_url::HTTP_FAULT => {
            let fault = HttpFault::decode(any.value.as_slice()).map_err(decode_error)?;
            Ok(PerFilter::Fault(Arc::new(fault_config(&fault)?)))
        }
        type_url::CORS_POLICY => {
            let cors = ProtoCorsPolicy::decode(any.value.as_slice()).map_err(decode_error)?;
            Ok(PerFilter::Cors(Arc::new(cors_policy(&cors)?)))
        }
        other => Err(FieldError::new(
            "",
            format!("filter config type {other} is not supported"),
        )),
    }
}

pub(crate) fn fault_config(f: &HttpFault) -> Result<FaultConfig, FieldError> {
    for (set, field) in [
        (!f.upstream_cluster.is_empty(), "upstream_cluster"),
        (!f.headers.is_empty(), "headers"),
        (!f.downstream_nodes.is_empty(), "downstream_nodes"),
        (f.max_active_faults.is_some(), "max_active_faults"),
        (f.response_rate_limit.is_some(), "response_rate_limit"),
    ] {
        if set {
            return Err(FieldError::unsupported(field));
        }
    }
    let delay = match &f.delay {
        None => None,
        Some(d) => {
            let duration = match &d.fault_delay_secifier {
                Some(FaultDelaySecifier::FixedDelay(fixed)) => {
                    duration(fixed).at("delay.fixed_delay")?
                }
                Some(FaultDelaySecifier::HeaderDelay(_)) => {
                    return Err(FieldError::unsupported("delay.header_delay"))
                }
                None => return Err(FieldError::new("delay.fixed_delay", "required")),
            };
            Some(FaultDelay {
                duration,
                fraction: fraction(d.percentage.as_ref()).at("delay.percentage")?,
            })
        }
    };
    let abort = match &f.abort {
        None => None,
        Some(a) => {
            if !a.response_body.is_empty() {
                return Err(FieldError::unsupported("abort.response_body"));
            }
            let kind = match &a.error_type {
                Some(ErrorType::HttpStatus(s)) => AbortKind::Http(
                    u16::try_from(*s)
                        .ok()
                        .filter(|s| (200..600).contains(s))
                        .ok_or_else(|| {
                            FieldError::new(
                                "abort.http_status",
                                format!("{s} is not in [200, 600)"),
                            )
                        })?,
                ),
                Some(ErrorType::GrpcStatus(s)) => AbortKind::Grpc(*s),
                Some(ErrorType::HeaderAbort(_)) => {
                    return Err(FieldError::unsupported("abort.header_abort"))
                }
                None => return Err(FieldError::new("abort.error_type", "required")),
            };
            Some(FaultAbort {
                kind,
                fraction: fraction(a.percentage.as_ref()).at("abort.percentage")?,
            })
        }
    };
    Ok(FaultConfig { delay, abort })
}

pub(crate) fn cors_policy(c: &ProtoCorsPolicy) -> Result<CorsPolicy, FieldError> {
    let allow_origins = c
        .allow_origin_string_match
        .iter()
        .enumerate()
        .map(|(i, m)| string_matcher(m).at_index("allow_origin_string_match", i))
        .collect::<Result<Vec<_>, _>>()?;
    let header = |value: &str, field: &str| -> Result<Option<HeaderValue>, FieldError> {
        if value.is_empty() {
            return Ok(None);
        }
        HeaderValue::from_str(value)
            .map(Some)
            .map_err(|_| FieldError::new(field, "not a valid header value"))
    };
    if !c.max_age.is_empty() && c.max_age.parse::<u64>().is_err() {
        return Err(FieldError::new("max_age", "must be a number of seconds"));
    }
    let enabled = match &c.filter_enabled {
        None => Fraction::ALWAYS,
        Some(r) => match &r.default_value {
            None => Fraction::ALWAYS,
            Some(fp) => fraction(Some(fp)).at("filter_enabled.default_value")?,
        },
    };
    Ok(CorsPolicy {
        allow_origins,
        allow_methods: header(&c.allow_methods, "allow_methods")?,
        allow_headers: header(&c.allow_headers, "allow_headers")?,
        expose_headers: header(&c.expose_headers, "expose_headers")?,
        max_age: header(&c.max_age, "max_age")?,
        allow_credentials: c.allow_credentials.is_some_and(|b| b.value),
        allow_private_network_access: c.allow_private_network_access.is_some_and(|b| b.value),
        enabled,
        forward_not_matching_preflights: c.forward_not_matching_preflights.is_none_or(|b| b.value),
    })
}

/// A `FractionalPercent`; unset means 0 %, as Envoy reads an absent message.
pub(crate) fn fraction(fp: Option<&FractionalPercent>) -> Result<Fraction, FieldError> {
    let Some(fp) = fp else {
        return Ok(Fraction::NEVER);
    };
    let denominator = match DenominatorType::try_from(fp.denominator) {
        Ok(DenominatorType::Hundred) => 100,
        Ok(DenominatorType::TenThousand) => 10_000,
        Ok(DenominatorType::Million) => MILLION,
        Err(_) => {
            return Err(FieldError::new(
                "denominator",
                format!("unknown denominator {}", fp.denominator),
            ))
        }
    };
    Ok(Fraction::new(fp.numerator, denominator))
}
