//! `RetryPolicy` to [`RetryPolicy`](crate::router::RetryPolicy).
//!
//! Extensions are known by name and type: the previous-hosts host predicate is acted on; the
//! previous-priorities retry priority is accepted because every endpoint here sits at one
//! priority (EDS priorities are flattened), where it changes nothing. Anything else is refused.

use std::time::Duration;

use xds_protos::pb::envoy::config::route::v3::{
    retry_policy::{retry_host_predicate, retry_priority},
    RetryPolicy as ProtoRetryPolicy,
};
use xds_protos::type_url;

use super::error::{duration, AtField, FieldError};
use crate::router::retry::{DEFAULT_BASE_INTERVAL, DEFAULT_NUM_RETRIES, MAX_INTERVAL_FACTOR};
use crate::router::{RetryOn, RetryPolicy};

const PREVIOUS_HOSTS: &str = "envoy.retry_host_predicates.previous_hosts";
const PREVIOUS_PRIORITIES: &str = "envoy.retry_priorities.previous_priorities";

pub(crate) fn retry_policy(p: &ProtoRetryPolicy) -> Result<RetryPolicy, FieldError> {
    let on = RetryOn::parse(&p.retry_on).map_err(|e| FieldError::new("retry_on", e))?;
    for (set, field) in [
        (p.per_try_idle_timeout.is_some(), "per_try_idle_timeout"),
        (
            !p.retry_options_predicates.is_empty(),
            "retry_options_predicates",
        ),
        (
            p.rate_limited_retry_back_off.is_some(),
            "rate_limited_retry_back_off",
        ),
        (!p.retriable_headers.is_empty(), "retriable_headers"),
        (
            !p.retriable_request_headers.is_empty(),
            "retriable_request_headers",
        ),
        (p.refresh_cluster_on_retry, "refresh_cluster_on_retry"),
    ] {
        if set {
            return Err(FieldError::unsupported(field));
        }
    }
    let per_try_timeout = match &p.per_try_timeout {
        None => None,
        Some(d) => Some(duration(d).at("per_try_timeout")?).filter(|d| !d.is_zero()),
    };
    let mut avoid_previous_hosts = false;
    for (i, predicate) in p.retry_host_predicate.iter().enumerate() {
        let typed = predicate.config_type.as_ref().map(|c| match c {
            retry_host_predicate::ConfigType::TypedConfig(any) => any.type_url.as_str(),
        });
        if predicate.name == PREVIOUS_HOSTS || typed == Some(type_url::PREVIOUS_HOSTS_PREDICATE) {
            avoid_previous_hosts = true;
        } else {
            return Err(FieldError::new(
                format!("retry_host_predicate[{i}]"),
                format!("{:?} is not supported", predicate.name),
            ));
        }
    }
    if let Some(priority) = &p.retry_priority {
        let typed = priority.config_type.as_ref().map(|c| match c {
            retry_priority::ConfigType::TypedConfig(any) => any.type_url.as_str(),
        });
        if priority.name != PREVIOUS_PRIORITIES
            && typed != Some(type_url::PREVIOUS_PRIORITIES_CONFIG)
        {
            return Err(FieldError::new(
                "retry_priority",
                format!("{:?} is not supported", priority.name),
            ));
        }
    }
    let retriable_status_codes = p
        .retriable_status_codes
        .iter()
        .enumerate()
        .map(|(i, code)| {
            u16::try_from(*code)
                .ok()
                .filter(|c| (100..600).contains(c))
                .ok_or_else(|| {
                    FieldError::new(
                        format!("retriable_status_codes[{i}]"),
                        format!("{code} is not an HTTP status"),
                    )
                })
        })
        .collect::<Result<Box<[u16]>, _>>()?;
    let (base_interval, max_interval) = back_off(p)?;
    Ok(RetryPolicy {
        on,
        num_retries: p.num_retries.map_or(DEFAULT_NUM_RETRIES, |n| n.value),
        per_try_timeout,
        retriable_status_codes,
        base_interval,
        max_interval,
        avoid_previous_hosts,
        host_selection_max_attempts: u32::try_from(p.host_selection_retry_max_attempts.max(1))
            .unwrap_or(u32::MAX),
    })
}

fn back_off(p: &ProtoRetryPolicy) -> Result<(Duration, Duration), FieldError> {
    let Some(b) = &p.retry_back_off else {
        return Ok((
            DEFAULT_BASE_INTERVAL,
            DEFAULT_BASE_INTERVAL * MAX_INTERVAL_FACTOR,
        ));
    };
    let base = b
        .base_interval
        .as_ref()
        .ok_or_else(|| FieldError::new("retry_back_off.base_interval", "required"))
        .and_then(|d| duration(d).at("retry_back_off.base_interval"))?;
    if base < Duration::from_millis(1) {
        return Err(FieldError::new(
            "retry_back_off.base_interval",
            "must be at least 1ms",
        ));
    }
    let max = match &b.max_interval {
        None => base * MAX_INTERVAL_FACTOR,
        Some(d) => duration(d).at("retry_back_off.max_interval")?,
    };
    if max < base {
        return Err(FieldError::new(
            "retry_back_off.max_interval",
            "must not be less than base_interval",
        ));
    }
    Ok((base, max))
}
