//! Per-route policies, translated as istiod translates them: retries (and Istio's default
//! retry policy when a route sets none), fault injection, CORS, header mutations, and the
//! percentages they use.
//!
//! Istio's defaults differ from Envoy's and are the ones users expect: a route without
//! `retries` is retried twice on connect failures, refused streams, gRPC `unavailable` and
//! `cancelled`, and 503, preferring hosts not tried yet; a percentage given as a double is a
//! fraction of a million, the deprecated integer ones fractions of a hundred.

use super::clusters::pb_duration;
use super::route_match::string_matcher;
use crate::model::grpc_status_code;
use crate::model::{
    CorsPolicy, FaultAbort, FaultDelay, Headers, HttpFaultInjection, HttpRetry, Percent,
    StringMatch, UnmatchedPreflights,
};
use std::collections::BTreeMap;
use xds_protos::any::pack;
use xds_protos::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption,
    RuntimeFractionalPercent,
};
use xds_protos::pb::envoy::config::route::v3::{retry_policy, RetryPolicy};
use xds_protos::pb::envoy::extensions::filters::common::fault::v3::{
    fault_delay::FaultDelaySecifier, FaultDelay as EnvoyFaultDelay,
};
use xds_protos::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as EnvoyCorsPolicy;
use xds_protos::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort::ErrorType, FaultAbort as EnvoyFaultAbort, HttpFault,
};
use xds_protos::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use xds_protos::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use xds_protos::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use xds_protos::pb::google::protobuf::{BoolValue, UInt32Value};
use xds_protos::type_url::{PREVIOUS_HOSTS_PREDICATE, PREVIOUS_PRIORITIES_CONFIG};

/// Istio's default `retryOn`.
pub const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
/// Istio's default number of retries.
pub const DEFAULT_RETRIES: u32 = 2;
/// How many times Envoy may re-pick a host that the host predicate rejected (Istio's value).
pub const HOST_SELECTION_RETRY_MAX_ATTEMPTS: i64 = 5;
pub const PREVIOUS_HOSTS: &str = "envoy.retry_host_predicates.previous_hosts";
pub const PREVIOUS_PRIORITIES: &str = "envoy.retry_priorities.previous_priorities";
/// How often (in attempts) `previous_priorities` moves on to the next priority (Istio's value).
const PREVIOUS_PRIORITIES_UPDATE_FREQUENCY: i32 = 2;

/// The retry policy of a route. `None` in the VirtualService means Istio's default;
/// `attempts: 0` (or less) turns retries off, so no policy at all. With consistent hashing
/// the default does not move retries to other hosts, which would defeat the hash.
pub fn retry_policy(retries: Option<&HttpRetry>, consistent_hash: bool) -> Option<RetryPolicy> {
    let mut out = default_retry_policy(!consistent_hash);
    let Some(r) = retries else {
        return Some(out);
    };
    if r.attempts <= 0 {
        return None;
    }
    out.num_retries = Some(UInt32Value {
        value: r.attempts as u32,
    });
    if let Some(retry_on) = r.retry_on.as_deref().filter(|s| !s.trim().is_empty()) {
        let (names, codes) = parse_retry_on(retry_on);
        out.retry_on = names;
        // Status codes alone mean nothing to Envoy without `retriable-status-codes`.
        if !codes.is_empty() && !out.retry_on.contains("retriable-status-codes") {
            if !out.retry_on.is_empty() {
                out.retry_on.push(',');
            }
            out.retry_on.push_str("retriable-status-codes");
        }
        out.retriable_status_codes = codes;
    }
    if let Some(t) = r.per_try_timeout {
        out.per_try_timeout = Some(pb_duration(t));
    }
    if let Some(ignore_previous) = r.retry_ignore_previous_hosts {
        out.retry_host_predicate = if ignore_previous {
            vec![previous_hosts()]
        } else {
            Vec::new()
        };
    }
    if r.retry_remote_localities == Some(true) {
        out.retry_priority = Some(retry_policy::RetryPriority {
            name: PREVIOUS_PRIORITIES.to_string(),
            config_type: Some(retry_policy::retry_priority::ConfigType::TypedConfig(pack(
                PREVIOUS_PRIORITIES_CONFIG,
                &PreviousPrioritiesConfig {
                    update_frequency: PREVIOUS_PRIORITIES_UPDATE_FREQUENCY,
                },
            ))),
        });
    }
    if let Some(base) = r.backoff {
        out.retry_back_off = Some(retry_policy::RetryBackOff {
            base_interval: Some(pb_duration(base)),
            max_interval: None,
        });
    }
    Some(out)
}

fn default_retry_policy(prefer_other_hosts: bool) -> RetryPolicy {
    RetryPolicy {
        retry_on: DEFAULT_RETRY_ON.to_string(),
        num_retries: Some(UInt32Value {
            value: DEFAULT_RETRIES,
        }),
        retriable_status_codes: vec![503],
        retry_host_predicate: if prefer_other_hosts {
            vec![previous_hosts()]
        } else {
            Vec::new()
        },
        host_selection_retry_max_attempts: HOST_SELECTION_RETRY_MAX_ATTEMPTS,
        ..Default::default()
    }
}

fn previous_hosts() -> retry_policy::RetryHostPredicate {
    retry_policy::RetryHostPredicate {
        name: PREVIOUS_HOSTS.to_string(),
        config_type: Some(retry_policy::retry_host_predicate::ConfigType::TypedConfig(
            pack(PREVIOUS_HOSTS_PREDICATE, &PreviousHostsPredicate {}),
        )),
    }
}

/// Splits Istio's `retryOn` into Envoy's condition names and its retriable status codes: an
/// item that is a known HTTP status code is a code, anything else a name.
pub fn parse_retry_on(retry_on: &str) -> (String, Vec<u32>) {
    let mut names = Vec::new();
    let mut codes = Vec::new();
    for part in retry_on.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u32>() {
            Ok(code) if is_known_status(code) => codes.push(code),
            _ => names.push(part),
        }
    }
    (names.join(","), codes)
}

/// The status codes that have a registered reason phrase (those istiod treats as codes).
fn is_known_status(code: u32) -> bool {
    matches!(code,
        100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428
        | 429 | 431 | 451 | 500..=508 | 510 | 511)
}

/// A double percentage (`{value: 12.5}`) as Envoy's fraction of a million, truncated as
/// istiod does.
pub fn percent_of_million(p: Percent) -> FractionalPercent {
    FractionalPercent {
        numerator: (p.value * 10_000.0) as u32,
        denominator: DenominatorType::Million as i32,
    }
}

/// A deprecated integer percentage as a fraction of a hundred.
pub fn percent_of_hundred(p: i32) -> FractionalPercent {
    FractionalPercent {
        numerator: p.max(0) as u32,
        denominator: DenominatorType::Hundred as i32,
    }
}

/// The fault filter's per-route config. `None` when nothing Envoy can inject is left
/// (exponential delays and HTTP/2 error aborts have no Envoy equivalent; validation reports
/// them).
pub fn fault(f: &HttpFaultInjection) -> Option<HttpFault> {
    let delay = f.delay.as_ref().and_then(fault_delay);
    let abort = f.abort.as_ref().and_then(fault_abort);
    (delay.is_some() || abort.is_some()).then(|| HttpFault {
        delay,
        abort,
        ..Default::default()
    })
}

fn fault_delay(d: &FaultDelay) -> Option<EnvoyFaultDelay> {
    let fixed = d.fixed_delay?;
    // Without either percentage field the integer one reads as 0: no request is delayed.
    let percentage = match d.percentage {
        Some(p) => percent_of_million(p),
        None => percent_of_hundred(d.percent.unwrap_or(0)),
    };
    Some(EnvoyFaultDelay {
        percentage: Some(percentage),
        fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(pb_duration(fixed))),
    })
}

fn fault_abort(a: &FaultAbort) -> Option<EnvoyFaultAbort> {
    let error_type = match (&a.http_status, &a.grpc_status) {
        (Some(status), _) => ErrorType::HttpStatus((*status).max(0) as u32),
        (None, Some(name)) => ErrorType::GrpcStatus(grpc_status_code(name)?),
        (None, None) => return None,
    };
    // The deprecated integer `percent` counts as on a delay; with neither field the
    // percentage is left out, as istiod leaves it, and then Envoy aborts no request.
    let percentage = match (a.percentage, a.percent) {
        (Some(p), _) => Some(percent_of_million(p)),
        (None, Some(n)) => Some(percent_of_hundred(n)),
        (None, None) => None,
    };
    Some(EnvoyFaultAbort {
        percentage,
        error_type: Some(error_type),
        ..Default::default()
    })
}

/// The CORS filter's per-route config.
pub fn cors_policy(c: &CorsPolicy) -> EnvoyCorsPolicy {
    let allow_origin_string_match = if !c.allow_origins.is_empty() {
        c.allow_origins.iter().map(string_matcher).collect()
    } else {
        c.allow_origin
            .iter()
            .map(|o| string_matcher(&StringMatch::Exact(o.clone())))
            .collect()
    };
    EnvoyCorsPolicy {
        allow_origin_string_match,
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age: c
            .max_age
            .map(|d| d.as_secs().to_string())
            .unwrap_or_default(),
        allow_credentials: c.allow_credentials.map(|value| BoolValue { value }),
        filter_enabled: Some(RuntimeFractionalPercent {
            default_value: Some(percent_of_hundred(100)),
            runtime_key: String::new(),
        }),
        // Preflights from origins not allowed go on to the upstream unless told to ignore
        // them (Istio's default, and Envoy's before 1.30).
        forward_not_matching_preflights: Some(BoolValue {
            value: c.unmatched_preflights != Some(UnmatchedPreflights::Ignore),
        }),
        ..Default::default()
    }
}

/// Header mutations of a route or a destination.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct HeaderMutations {
    pub request_headers_to_add: Vec<HeaderValueOption>,
    pub request_headers_to_remove: Vec<String>,
    pub response_headers_to_add: Vec<HeaderValueOption>,
    pub response_headers_to_remove: Vec<String>,
    /// Setting `host` or `:authority` rewrites the authority instead (Envoy cannot mutate
    /// pseudo-headers); `set` wins over `add`.
    pub authority: Option<String>,
}

/// `set` overwrites (or adds), `add` appends; pseudo-headers and `host` are never mutated
/// directly, as in istiod.
pub fn header_mutations(h: &Headers) -> HeaderMutations {
    let req = h.request.as_ref();
    let resp = h.response.as_ref();
    let (mut request_headers_to_add, set_authority) = header_options(
        req.map(|r| &r.set),
        HeaderAppendAction::OverwriteIfExistsOrAdd,
    );
    let (request_add, add_authority) =
        header_options(req.map(|r| &r.add), HeaderAppendAction::AppendIfExistsOrAdd);
    request_headers_to_add.extend(request_add);
    let (mut response_headers_to_add, _) = header_options(
        resp.map(|r| &r.set),
        HeaderAppendAction::OverwriteIfExistsOrAdd,
    );
    response_headers_to_add.extend(
        header_options(
            resp.map(|r| &r.add),
            HeaderAppendAction::AppendIfExistsOrAdd,
        )
        .0,
    );
    let removable = |names: Option<&Vec<String>>| -> Vec<String> {
        names
            .into_iter()
            .flatten()
            .filter(|n| !is_internal_header(n))
            .cloned()
            .collect()
    };
    HeaderMutations {
        request_headers_to_add,
        request_headers_to_remove: removable(req.map(|r| &r.remove)),
        response_headers_to_add,
        response_headers_to_remove: removable(resp.map(|r| &r.remove)),
        authority: set_authority.or(add_authority),
    }
}

/// One option per header, in name order (the map's), and the authority if one was named.
fn header_options(
    headers: Option<&BTreeMap<String, String>>,
    action: HeaderAppendAction,
) -> (Vec<HeaderValueOption>, Option<String>) {
    let mut authority = None;
    let mut out = Vec::new();
    for (key, value) in headers.into_iter().flatten() {
        if key.eq_ignore_ascii_case(":authority") || key.eq_ignore_ascii_case("host") {
            authority = Some(value.clone());
        }
        if is_internal_header(key) {
            continue;
        }
        out.push(HeaderValueOption {
            header: Some(HeaderValue {
                key: key.clone(),
                value: value.clone(),
                ..Default::default()
            }),
            append_action: action as i32,
            ..Default::default()
        });
    }
    (out, authority)
}

fn is_internal_header(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}
