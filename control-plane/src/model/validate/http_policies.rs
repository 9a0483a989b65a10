//! Checks of an HTTP route's policies (retries, fault injection, redirect, rewrite, CORS,
//! header operations, mirroring) as Istio's validation makes them: combinations Istio
//! rejects are errors naming the field, deprecated spellings are warnings.

use super::common::*;
use super::Findings;
use crate::model::grpc_status_code;
use crate::model::path::FieldPath;
use crate::model::string_match::StringMatch;
use crate::model::virtual_service::*;
use std::time::Duration;

/// Istio's retry-on policies: Envoy's `x-envoy-retry-on` and `x-envoy-retry-grpc-on` values.
/// An HTTP status code is accepted too (`retriable-status-codes` reads them).
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// The methods Istio accepts in a CORS policy.
const CORS_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE",
];

/// Istio refuses a direct response body above 1 MB and warns above 100 KB: every proxy holds
/// it in its configuration.
const BODY_LIMIT: usize = 1 << 20;
const BODY_WARNING: usize = 100 << 10;

/// Istio's rule for a duration: at least 1ms, in whole milliseconds.
pub(super) fn check_duration(f: &mut Findings, path: &FieldPath, d: Option<Duration>) {
    let Some(d) = d else { return };
    if d < Duration::from_millis(1) {
        f.error(
            path,
            format!("{d:?} is too short: a duration must be at least 1ms"),
        );
    } else if d.subsec_nanos() % 1_000_000 != 0 {
        f.error(
            path,
            format!("{d:?}: durations are precise to the millisecond only"),
        );
    }
}

/// A fractional percentage: Istio takes 0, or a value in [0.0001, 100].
pub(super) fn check_fraction(f: &mut Findings, path: &FieldPath, p: &Option<Percent>) {
    let Some(p) = p else { return };
    let v = p.value;
    if !(0.0..=100.0).contains(&v) || (v > 0.0 && v < 0.0001) {
        f.error(
            &path.key("value"),
            format!("{v} is not a percentage: it must be 0, or between 0.0001 and 100"),
        );
    }
}

/// What may not come with a redirect or a direct response: the proxy answers by itself and
/// never forwards, so a fault or a rewrite would never apply.
pub(super) fn check_local_reply_conflicts(f: &mut Findings, p: &FieldPath, r: &HttpRoute) {
    let local = if r.redirect.is_some() {
        Some("redirect")
    } else if r.direct_response.is_some() {
        Some("directResponse")
    } else {
        None
    };
    let Some(local) = local else { return };
    if r.fault.is_some() {
        f.error(
            &p.key("fault"),
            format!("an HTTP route cannot have both fault and {local}"),
        );
    }
    if r.rewrite.is_some() {
        f.error(
            &p.key("rewrite"),
            format!("an HTTP route cannot have both rewrite and {local}"),
        );
    }
}

pub(super) fn check_retries(f: &mut Findings, p: &FieldPath, retries: &HttpRetry) {
    let rp = p.key("retries");
    if retries.attempts < 0 {
        f.error(
            &rp.key("attempts"),
            format!("attempts {} is negative", retries.attempts),
        );
    }
    if retries.attempts == 0
        && (retries.per_try_timeout.is_some()
            || retries.retry_on.is_some()
            || retries.retry_remote_localities.is_some())
    {
        f.error(
            &rp.key("attempts"),
            "attempts is 0 (retries disabled) but perTryTimeout, retryOn or \
             retryRemoteLocalities is set: set attempts, or remove the policy",
        );
    }
    check_duration(f, &rp.key("perTryTimeout"), retries.per_try_timeout);
    check_duration(f, &rp.key("backoff"), retries.backoff);
    if let Some(retry_on) = &retries.retry_on {
        for policy in retry_on.split(',') {
            let policy = policy.trim();
            let status = policy
                .parse::<u16>()
                .is_ok_and(|code| (100..=599).contains(&code));
            if !status && !RETRY_ON.contains(&policy) {
                f.error(
                    &rp.key("retryOn"),
                    format!(
                        "{policy:?} is not a retry-on policy (one of {}, or an HTTP status code)",
                        RETRY_ON.join(", ")
                    ),
                );
            }
        }
    }
}

pub(super) fn check_fault(f: &mut Findings, p: &FieldPath, fault: &HttpFaultInjection) {
    if fault.delay.is_none() && fault.abort.is_none() {
        f.error(p, "a fault needs a delay or an abort");
    }
    if let Some(delay) = &fault.delay {
        let dp = p.key("delay");
        if delay.exponential_delay.is_some() {
            f.error(
                &dp.key("exponentialDelay"),
                "exponentialDelay is not supported (Istio refuses it too): use fixedDelay",
            );
        } else if delay.fixed_delay.is_none() {
            f.error(&dp, "a delay needs fixedDelay");
        }
        check_duration(f, &dp.key("fixedDelay"), delay.fixed_delay);
        deprecated_percent(f, &dp, delay.percent, &delay.percentage);
        check_fraction(f, &dp.key("percentage"), &delay.percentage);
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
        if let Some(status) = &abort.grpc_status {
            if grpc_status_code(status).is_none() {
                f.error(
                    &ap.key("grpcStatus"),
                    format!(
                        "{status:?} is not a gRPC status name, such as NOT_FOUND or UNAVAILABLE"
                    ),
                );
            }
        }
        if abort.http2_error.is_some() {
            f.error(
                &ap.key("http2Error"),
                "http2Error aborts are not supported (Istio refuses them too)",
            );
        }
        deprecated_percent(f, &ap, abort.percent, &abort.percentage);
        check_fraction(f, &ap.key("percentage"), &abort.percentage);
    }
}

/// The integer `percent` of Istio's older API: accepted with a warning, as Istio's own
/// bookinfo samples still use it.
fn deprecated_percent(
    f: &mut Findings,
    p: &FieldPath,
    percent: Option<i32>,
    percentage: &Option<Percent>,
) {
    let Some(percent) = percent else { return };
    let pp = p.key("percent");
    check_percent_value(f, &pp, f64::from(percent));
    if percentage.is_some() {
        f.warning(&pp, "deprecated, and ignored: percentage is set too");
    } else {
        f.warning(
            &pp,
            format!("deprecated: write percentage: {{value: {percent}}}"),
        );
    }
}

pub(super) fn check_redirect(f: &mut Findings, p: &FieldPath, redirect: &HttpRedirect) {
    let rp = p.key("redirect");
    if redirect.uri.is_none()
        && redirect.authority.is_none()
        && redirect.port.is_none()
        && redirect.derive_port.is_none()
        && redirect.scheme.is_none()
    {
        f.error(
            &rp,
            "a redirect must change something: set uri, authority, scheme, port or derivePort",
        );
    }
    check_optional_port(f, &rp.key("port"), redirect.port);
    if redirect.port.is_some() && redirect.derive_port.is_some() {
        f.error(
            &rp.key("derivePort"),
            "set either port or derivePort, not both",
        );
    }
    if let Some(code) = redirect.redirect_code {
        if !(300..=399).contains(&code) {
            f.error(
                &rp.key("redirectCode"),
                format!("{code} is not a redirect code (3xx)"),
            );
        }
    }
    if let Some(scheme) = &redirect.scheme {
        if scheme != "http" && scheme != "https" {
            f.error(
                &rp.key("scheme"),
                format!("redirect scheme {scheme:?} must be http or https"),
            );
        }
    }
}

pub(super) fn check_direct_response(f: &mut Findings, p: &FieldPath, direct: &HttpDirectResponse) {
    let dp = p.key("directResponse");
    if !(200..=599).contains(&direct.status) {
        f.error(
            &dp.key("status"),
            format!("status {} is not an HTTP status (200-599)", direct.status),
        );
    }
    let Some(body) = &direct.body else { return };
    if body.string.is_some() && body.bytes.is_some() {
        f.error(&dp.key("body"), "set either string or bytes, not both");
    }
    let size = body
        .string
        .as_ref()
        .or(body.bytes.as_ref())
        .map_or(0, String::len);
    if size > BODY_LIMIT {
        f.error(
            &dp.key("body"),
            format!("the body is {size} bytes: at most 1 MB, since every proxy holds it in memory"),
        );
    } else if size > BODY_WARNING {
        f.warning(
            &dp.key("body"),
            format!("the body is {size} bytes: every proxy holds it in memory"),
        );
    }
}

pub(super) fn check_rewrite(f: &mut Findings, p: &FieldPath, r: &HttpRoute) {
    let Some(rewrite) = &r.rewrite else { return };
    let rp = p.key("rewrite");
    if rewrite.uri.is_none() && rewrite.uri_regex_rewrite.is_none() && rewrite.authority.is_none() {
        f.error(&rp, "a rewrite needs uri, uriRegexRewrite or authority");
    }
    if let Some(rr) = &rewrite.uri_regex_rewrite {
        let rrp = rp.key("uriRegexRewrite");
        if rewrite.uri.is_some() {
            f.error(&rrp, "set either uri or uriRegexRewrite, not both");
        }
        check_regex(f, &rrp.key("match"), &rr.r#match);
        if rr.rewrite.is_empty() {
            f.error(&rrp.key("rewrite"), "uriRegexRewrite needs a rewrite");
        }
    }
    // The authority may be rewritten in one place only.
    if rewrite.authority.is_some() {
        let request = r.headers.as_ref().and_then(|h| h.request.as_ref());
        if let Some(ops) = request {
            for (op, names) in [("set", &ops.set), ("add", &ops.add)] {
                if let Some(name) = names.keys().find(|n| is_authority(n)) {
                    f.error(
                        &p.key("headers").key("request").key(op).key(name),
                        "the authority is already rewritten by rewrite.authority",
                    );
                }
            }
        }
    }
}

pub(super) fn check_mirroring(f: &mut Findings, p: &FieldPath, r: &HttpRoute) {
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
        let pp = p.key("mirrorPercent");
        check_percent_value(f, &pp, f64::from(percent));
        f.warning(&pp, "deprecated: use mirrorPercentage");
    }
    check_percent(f, &p.key("mirrorPercentage"), &r.mirror_percentage);
}

pub(super) fn check_cors(f: &mut Findings, p: &FieldPath, cors: &CorsPolicy) {
    let cp = p.key("corsPolicy");
    for (k, origin) in cors.allow_origins.iter().enumerate() {
        let op = cp.key("allowOrigins").index(k);
        match origin {
            StringMatch::Exact(v) | StringMatch::Prefix(v) if v.is_empty() => {
                f.error(&op, "an allowed origin must not be empty")
            }
            _ => check_string_match(f, &op, origin),
        }
    }
    for (k, method) in cors.allow_methods.iter().enumerate() {
        if !CORS_METHODS.contains(&method.as_str()) {
            f.error(
                &cp.key("allowMethods").index(k),
                format!(
                    "{method:?} is not an HTTP method ({})",
                    CORS_METHODS.join(", ")
                ),
            );
        }
    }
    for (field, names) in [
        ("allowHeaders", &cors.allow_headers),
        ("exposeHeaders", &cors.expose_headers),
    ] {
        for (k, name) in names.iter().enumerate() {
            if name != "*" && !is_header_name(name) {
                f.error(
                    &cp.key(field).index(k),
                    format!("{name:?} is not a header name"),
                );
            }
        }
    }
    if let Some(max_age) = cors.max_age {
        let mp = cp.key("maxAge");
        check_duration(f, &mp, Some(max_age));
        if max_age.subsec_nanos() != 0 && max_age >= Duration::from_millis(1) {
            f.error(&mp, "maxAge is precise to the second only");
        }
    }
}

/// Header operations of a route or a destination.
pub(super) fn check_headers(f: &mut Findings, p: &FieldPath, headers: &Option<Headers>) {
    let Some(headers) = headers else { return };
    for (side, ops) in [
        ("request", &headers.request),
        ("response", &headers.response),
    ] {
        let Some(ops) = ops else { continue };
        let sp = p.key(side);
        for (op, names) in [("set", &ops.set), ("add", &ops.add)] {
            for (name, value) in names {
                let np = sp.key(op).key(name);
                // Only the request's authority may be set, and through `:authority`/`host`.
                let authority_ok = side == "request" && is_authority(name);
                check_header_name(f, &np, name, authority_ok);
                if value.chars().any(|c| c.is_control() && c != '\t') {
                    f.error(&np, "a header value must not contain control characters");
                }
            }
        }
        for (i, name) in ops.remove.iter().enumerate() {
            check_header_name(f, &sp.key("remove").index(i), name, false);
        }
    }
}

fn check_header_name(f: &mut Findings, p: &FieldPath, name: &str, authority_ok: bool) {
    if name.is_empty() {
        f.error(p, "header names must not be empty");
    } else if !authority_ok && (name.starts_with(':') || name.eq_ignore_ascii_case("host")) {
        f.error(
            p,
            format!("{name:?} cannot be changed: pseudo-headers and Host are the proxy's"),
        );
    }
}

fn is_authority(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// Istio's rule for header names in matches and CORS lists.
pub(super) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
